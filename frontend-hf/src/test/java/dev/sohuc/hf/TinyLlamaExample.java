package dev.sohuc.hf;

import ai.onnx.proto.OnnxMl;
import ai.onnxruntime.OrtException;
import com.google.protobuf.ByteString;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

/**
 * Writes {@code examples/tiny-llama/}: a Llama config (hidden 64, 2 layers, 4 heads, 2 KV heads,
 * vocab 256, intermediate 128), {@code model.safetensors} with seeded random f32 weights,
 * {@code inputs/input_0.pb} (input_ids, i64 [1, 8]) and {@code expected/output_0.pb} (the logits
 * ONNX Runtime computes for that input from the plain-op reference graph). Byte-for-byte
 * deterministic: {@link TinyLlamaExampleTest} regenerates it and compares with the committed
 * files.
 *
 * <pre>mvn -pl frontend-hf test-compile exec:java -Dexec.classpathScope=test \
 *     -Dexec.mainClass=dev.sohuc.hf.TinyLlamaExample -Dexec.args=../examples/tiny-llama</pre>
 */
public final class TinyLlamaExample {
  static final long SEED = 20240611;
  static final long HIDDEN = 64;
  static final long LAYERS = 2;
  static final long HEADS = 4;
  static final long KV_HEADS = 2;
  static final long INTERMEDIATE = 128;
  static final long VOCAB = 256;
  static final long PROMPT = 8;

  private TinyLlamaExample() {}

  public static void main(String[] args) throws IOException, OrtException {
    write(Path.of(args.length > 0 ? args[0] : "examples/tiny-llama"));
  }

  static final String CONFIG = """
      {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 256,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "rope_scaling": null,
        "tie_word_embeddings": false,
        "torch_dtype": "float32"
      }
      """;

  /** The model as {@link TinyModel} data, so the reference graph can be built from it. */
  static TinyModel model() {
    TinyModel m = TinyModel.empty("tiny-llama", SEED);
    m.config.put("model_type", "llama");
    m.config.put("hidden_size", HIDDEN);
    m.config.put("intermediate_size", INTERMEDIATE);
    m.config.put("num_hidden_layers", LAYERS);
    m.config.put("num_attention_heads", HEADS);
    m.config.put("num_key_value_heads", KV_HEADS);
    m.config.put("vocab_size", VOCAB);
    m.config.put("max_position_embeddings", 128);
    m.config.put("rms_norm_eps", 1e-5);
    m.config.put("rope_theta", 10000.0);
    long d = HIDDEN / HEADS;
    m.matrix("model.embed_tokens.weight", VOCAB, HIDDEN);
    for (int i = 0; i < LAYERS; i++) {
      String p = "model.layers." + i;
      m.norm(p + ".input_layernorm.weight", HIDDEN);
      m.matrix(p + ".self_attn.q_proj.weight", HEADS * d, HIDDEN);
      m.matrix(p + ".self_attn.k_proj.weight", KV_HEADS * d, HIDDEN);
      m.matrix(p + ".self_attn.v_proj.weight", KV_HEADS * d, HIDDEN);
      m.matrix(p + ".self_attn.o_proj.weight", HIDDEN, HEADS * d);
      m.norm(p + ".post_attention_layernorm.weight", HIDDEN);
      m.matrix(p + ".mlp.gate_proj.weight", INTERMEDIATE, HIDDEN);
      m.matrix(p + ".mlp.up_proj.weight", INTERMEDIATE, HIDDEN);
      m.matrix(p + ".mlp.down_proj.weight", HIDDEN, INTERMEDIATE);
    }
    m.norm("model.norm.weight", HIDDEN);
    m.matrix("lm_head.weight", VOCAB, HIDDEN);
    return m;
  }

  static long[] inputIds() {
    Random r = new Random(SEED + 1);
    long[] ids = new long[(int) PROMPT];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = r.nextInt((int) VOCAB);
    }
    return ids;
  }

  static void write(Path dir) throws IOException, OrtException {
    Files.createDirectories(dir.resolve("inputs"));
    Files.createDirectories(dir.resolve("expected"));
    Files.writeString(dir.resolve("config.json"), CONFIG);
    TinyModel m = model();
    SafetensorsWriter w = new SafetensorsWriter();
    m.weights.forEach((n, data) -> w.add(n, Safetensors.Dtype.F32, m.shapes.get(n), data));
    w.write(dir.resolve("model.safetensors"));
    long[] ids = inputIds();
    Files.write(dir.resolve("inputs/input_0.pb"), tensorProto("input_ids", ids).toByteArray());
    float[] logits = OrtReference.run(ReferenceModels.build(m, 1, PROMPT, 0).modelBytes(),
        Map.of("input_ids", OrtReference.Input.longs(ids, 1, PROMPT))).get("logits");
    Files.write(dir.resolve("expected/output_0.pb"), tensorProto("logits", logits, 1, PROMPT, VOCAB).toByteArray());
  }

  static OnnxMl.TensorProto tensorProto(String name, long[] ids) {
    ByteBuffer b = ByteBuffer.allocate(ids.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    b.asLongBuffer().put(ids);
    return OnnxMl.TensorProto.newBuilder().setName(name).addDims(1).addDims(ids.length)
        .setDataType(OnnxMl.TensorProto.DataType.INT64.getNumber()).setRawData(ByteString.copyFrom(b.array())).build();
  }

  static OnnxMl.TensorProto tensorProto(String name, float[] data, long... dims) {
    ByteBuffer b = ByteBuffer.allocate(data.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(data);
    OnnxMl.TensorProto.Builder t = OnnxMl.TensorProto.newBuilder().setName(name)
        .setDataType(OnnxMl.TensorProto.DataType.FLOAT.getNumber()).setRawData(ByteString.copyFrom(b.array()));
    for (long d : dims) {
      t.addDims(d);
    }
    return t.build();
  }
}
