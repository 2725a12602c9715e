package dev.sohuc.hf;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.type.ElementType;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * Imports a Hugging Face model ({@code config.json}, plus {@code model.safetensors} or a
 * sharded {@code model.safetensors.index.json} beside it) as an IR module built from
 * transformer ops. Weights keep their HF tensor names and stay in the checkpoint files; without
 * a checkpoint the import is shape-only.
 *
 * <p>Inputs and outputs: {@code input_ids} i64 {@code [?batch, ?seq]} in, {@code logits} f32
 * {@code [?batch, ?seq, vocab]} out, and for decoders {@code present.N.key}/{@code .value}
 * {@code [?batch, kv_heads, ?past+?seq, head_dim]} out (prefill writes the cache too); decode
 * graphs take {@code past_key_values.N.key}/{@code .value} {@code [?batch, kv_heads, ?past,
 * head_dim]} and place the new tokens at positions {@code past .. past+seq-1}. A serving step
 * ({@link HfOptions#step}) does both at once: see {@code DecoderModel.buildStep}. BERT takes
 * {@code input_ids}, {@code attention_mask} and {@code token_type_ids} and returns
 * {@code last_hidden_state}.
 */
public final class HfImporter {
  /** The {@code model_type} values this frontend builds. */
  public static final List<String> SUPPORTED_MODEL_TYPES =
      List.of("llama", "mistral", "qwen2", "gemma", "phi3", "mixtral", "gpt2", "bert");

  private HfImporter() {}

  /**
   * Imports the model whose {@code config.json} is {@code configJsonOrDir} (or lies in that
   * directory) and returns a verified module with one function, {@code @main}.
   *
   * @throws HfImportException when the config or checkpoint is wrong; the message names the file
   *     and the key or tensor
   */
  public static Module importModel(Path configJsonOrDir, HfOptions options) {
    Path config = HfConfig.locate(configJsonOrDir);
    if (!Files.isRegularFile(config)) {
      throw new HfImportException(config + ": no such file (expected a Hugging Face config.json or its directory)");
    }
    HfConfig c = HfConfig.read(config);
    Path dir = config.toAbsolutePath().getParent();
    String type = c.getString("model_type").orElseThrow(() -> c.error("missing key \"model_type\" (supported: "
        + String.join(", ", SUPPORTED_MODEL_TYPES) + ")"));
    if (!SUPPORTED_MODEL_TYPES.contains(type)) {
      throw c.error("model_type \"" + type + "\" is not supported (supported: "
          + String.join(", ", SUPPORTED_MODEL_TYPES) + ")");
    }
    boolean shapeOnly = options.shapeOnly() || !Safetensors.existsIn(dir);
    Safetensors checkpoint = shapeOnly ? null : Safetensors.find(dir).orElseThrow();
    Path checkpointPath = Files.isRegularFile(dir.resolve(Safetensors.INDEX_FILE))
        ? dir.resolve(Safetensors.INDEX_FILE) : dir.resolve(Safetensors.SINGLE_FILE);
    Module module = new Module(moduleName(dir, type));
    ModelContext ctx = new ModelContext(c, options, checkpoint, checkpointPath, shapeOnlyType(c), module);
    if ((options.graph() == HfOptions.GraphKind.STEP || options.graph() == HfOptions.GraphKind.RAGGED_DECODE)
        && List.of("gpt2", "bert").contains(type)) {
      throw c.error("model_type \"" + type + "\" has no " + (options.graph() == HfOptions.GraphKind.STEP
          ? "serving-step" : "ragged decode") + " graph (Llama-family decoders only: llama, mistral, qwen2, "
          + "gemma, phi3, mixtral)");
    }
    switch (type) {
      case "gpt2" -> new Gpt2Model(ctx).build();
      case "bert" -> new BertModel(ctx).build();
      default -> new DecoderModel(ctx, DecoderModel.Family.valueOf(type.toUpperCase())).build();
    }
    new Verifier().verify(module);
    return module;
  }

  /**
   * The parameter count the config implies (rotary tables and other import-time constants
   * excluded), without building a graph: 70.6e9 for Llama-3-70B.
   */
  public static long parameterCount(Path configJsonOrDir) {
    return sizeOf(configJsonOrDir, Gpt2Model::parameterCount, BertModel::parameterCount,
        DecoderModel::parameterCount);
  }

  /**
   * The positions the config's model serves, without building a graph: n_positions or
   * max_position_embeddings, or for rope scaling that tabulates its tables (longrope, dynamic)
   * the positions tabulated. A prompt and its output together fit in them.
   */
  public static long servedPositions(Path configJsonOrDir) {
    return sizeOf(configJsonOrDir, m -> m.positions, m -> m.positions, m -> m.maxPositions);
  }

  /** One figure of the config's model, read from the model object its type builds. */
  private static long sizeOf(Path configJsonOrDir, ToLongFunction<Gpt2Model> gpt2,
      ToLongFunction<BertModel> bert, ToLongFunction<DecoderModel> decoder) {
    Path config = HfConfig.locate(configJsonOrDir);
    HfConfig c = HfConfig.read(config);
    ModelContext ctx = new ModelContext(c, HfOptions.prefill(), null, config, ElementType.BF16, new Module("count"));
    String type = c.getString("model_type").orElse("");
    return switch (type) {
      case "gpt2" -> gpt2.applyAsLong(new Gpt2Model(ctx));
      case "bert" -> bert.applyAsLong(new BertModel(ctx));
      default -> {
        if (!SUPPORTED_MODEL_TYPES.contains(type)) {
          throw c.error("model_type \"" + type + "\" is not supported (supported: "
              + String.join(", ", SUPPORTED_MODEL_TYPES) + ")");
        }
        yield decoder.applyAsLong(new DecoderModel(ctx,
            DecoderModel.Family.valueOf(type.toUpperCase())));
      }
    };
  }

  private static String moduleName(Path dir, String type) {
    Path name = dir.getFileName();
    return name == null ? type : name.toString();
  }

  /** The dtype of shape-only weights: {@code torch_dtype} (or {@code dtype}), bf16 when absent. */
  private static ElementType shapeOnlyType(HfConfig c) {
    String dtype = c.getString("torch_dtype", "dtype").orElse("bfloat16");
    return switch (dtype) {
      case "bfloat16" -> ElementType.BF16;
      case "float16" -> ElementType.F16;
      case "float32" -> ElementType.F32;
      default -> throw c.error("torch_dtype \"" + dtype + "\" is not supported (bfloat16, float16 or float32)");
    };
  }
}
