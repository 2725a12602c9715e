package dev.sohuc.hf;

import com.fasterxml.jackson.databind.json.JsonMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A tiny configuration of one model family with seeded random weights, named and shaped as
 * the Hugging Face checkpoint of that family names them (written here from the HF modeling
 * code, not from the importer).
 */
public final class TinyModel {
  final String name;
  public final Map<String, Object> config = new LinkedHashMap<>();
  final Map<String, float[]> weights = new LinkedHashMap<>();
  final Map<String, long[]> shapes = new LinkedHashMap<>();
  private final Random random;

  private TinyModel(String name, long seed) {
    this.name = name;
    this.random = new Random(seed);
  }

  /** A model without config or weights, to be filled by the caller. */
  static TinyModel empty(String name, long seed) {
    return new TinyModel(name, seed);
  }

  public long get(String key) {
    return ((Number) config.get(key)).longValue();
  }

  /** The attention head size: {@code head_dim}, else hidden size over heads. */
  public long headDim() {
    return config.containsKey("head_dim") ? get("head_dim") : get("hidden_size") / get("num_attention_heads");
  }

  double getDouble(String key, double fallback) {
    Object v = config.get(key);
    return v == null ? fallback : ((Number) v).doubleValue();
  }

  boolean getBool(String key, boolean fallback) {
    Object v = config.get(key);
    return v == null ? fallback : (Boolean) v;
  }

  String type() {
    return (String) config.get("model_type");
  }

  /** A matrix or vector of N(0, scale^2) values, or {@code 1 + N(0, scale^2)} for norm weights. */
  void weight(String name, float scale, float mean, long... shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    float[] data = new float[(int) n];
    for (int i = 0; i < data.length; i++) {
      data[i] = mean + scale * (float) random.nextGaussian();
    }
    weights.put(name, data);
    shapes.put(name, shape);
  }

  void matrix(String name, long... shape) {
    weight(name, 0.15f, 0f, shape);
  }

  void norm(String name, long size) {
    weight(name, 0.1f, 1f, size);
  }

  void bias(String name, long size) {
    weight(name, 0.1f, 0f, size);
  }

  /** Rounds every weight to bf16, as a bf16 checkpoint holds it. */
  public void roundToBf16() {
    for (float[] w : weights.values()) {
      for (int i = 0; i < w.length; i++) {
        w[i] = dev.sohuc.ir.tensor.FloatFormats.roundToBf16(w[i]);
      }
    }
  }

  /** Writes config.json and model.safetensors into {@code dir}. */
  public Path writeTo(Path dir, Safetensors.Dtype dtype) {
    try {
      Files.createDirectories(dir);
      JsonMapper.builder().build().writerWithDefaultPrettyPrinter().writeValue(dir.resolve("config.json").toFile(), config);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    SafetensorsWriter w = new SafetensorsWriter();
    weights.forEach((n, data) -> w.add(n, dtype, shapes.get(n), data));
    w.write(dir.resolve("model.safetensors"));
    return dir;
  }

  // ---- the families

  static final long H = 32;
  static final long LAYERS = 2;
  static final long HEADS = 4;
  static final long KV = 2;
  static final long INTER = 48;
  static final long VOCAB = 40;

  public static TinyModel of(String variant, long seed) {
    TinyModel m = new TinyModel(variant, seed);
    switch (variant) {
      case "gpt2" -> m.gpt2();
      case "bert" -> m.bert();
      default -> m.decoder(variant);
    }
    return m;
  }

  private void decoder(String variant) {
    String type = switch (variant) {
      case "llama31", "llama-bf16", "llama-longrope", "llama-dynamic", "llama-yarn" -> "llama";
      case "qwen2-yarn" -> "qwen2";
      case "gemma-wide" -> "gemma";
      case "phi3-longrope" -> "phi3";
      default -> variant;
    };
    config.put("model_type", type);
    config.put("hidden_size", H);
    config.put("num_hidden_layers", LAYERS);
    config.put("num_attention_heads", HEADS);
    config.put("num_key_value_heads", KV);
    config.put("intermediate_size", INTER);
    config.put("vocab_size", VOCAB);
    config.put("max_position_embeddings", 64);
    config.put("rms_norm_eps", 1e-5);
    config.put("rope_theta", 10000.0);
    config.put("torch_dtype", "float32");
    long headDim = H / HEADS;
    switch (variant) {
      case "llama31" -> {
        config.put("rope_theta", 500000.0);
        config.put("rope_scaling", Map.of("rope_type", "llama3", "factor", 8.0, "low_freq_factor", 1.0,
            "high_freq_factor", 4.0, "original_max_position_embeddings", 16));
      }
      case "llama-longrope" -> config.put("max_position_embeddings", 400000);
      case "llama-dynamic" -> config.put("rope_scaling", Map.of("type", "dynamic", "factor", 2.0));
      case "qwen2-yarn" -> {
        // Qwen2.5's long-context form, its tables too long to inline (computed from positions)
        config.put("max_position_embeddings", 400000);
        config.put("rope_scaling", Map.of("type", "yarn", "factor", 4.0,
            "original_max_position_embeddings", 100000));
      }
      case "llama-yarn" -> config.put("rope_scaling", Map.of("type", "yarn", "factor", 8.0,
          "original_max_position_embeddings", 256, "beta_fast", 8, "beta_slow", 2,
          "mscale", 0.707, "mscale_all_dim", 1.0, "truncate", false));
      case "mistral" -> config.put("sliding_window", 3);
      case "gemma", "gemma-wide" -> {
        // Gemma's real heads are 256 wide, twice the MXU's columns
        headDim = variant.equals("gemma") ? 16 : 256;
        config.put("head_dim", headDim);
        config.put("hidden_activation", "gelu_pytorch_tanh");
        config.put("rms_norm_eps", 1e-6);
      }
      case "phi3" -> {
        config.put("partial_rotary_factor", 0.5);
        config.put("sliding_window", 5);
        config.put("hidden_act", "silu");
      }
      case "phi3-longrope" -> {
        // Phi-3-mini-128k's form: a context stretched 32 times past its original 16 positions
        config.put("sliding_window", 5);
        config.put("hidden_act", "silu");
        config.put("max_position_embeddings", 512);
        config.put("original_max_position_embeddings", 16);
        config.put("rope_scaling", Map.of("type", "longrope",
            "short_factor", List.of(1.0, 1.25, 1.5, 2.0), "long_factor", List.of(4.0, 8.0, 16.0, 32.0)));
      }
      case "mixtral" -> {
        config.put("num_local_experts", 4);
        config.put("num_experts_per_tok", 2);
      }
      case "qwen2" -> config.put("tie_word_embeddings", true);
      default -> { }
    }
    boolean tied = getBool("tie_word_embeddings", type.equals("gemma"));
    matrix("model.embed_tokens.weight", VOCAB, H);
    for (int i = 0; i < LAYERS; i++) {
      String p = "model.layers." + i;
      norm(p + ".input_layernorm.weight", H);
      norm(p + ".post_attention_layernorm.weight", H);
      if (type.equals("phi3")) {
        matrix(p + ".self_attn.qkv_proj.weight", (HEADS + 2 * KV) * headDim, H);
      } else {
        matrix(p + ".self_attn.q_proj.weight", HEADS * headDim, H);
        matrix(p + ".self_attn.k_proj.weight", KV * headDim, H);
        matrix(p + ".self_attn.v_proj.weight", KV * headDim, H);
        if (type.equals("qwen2")) {
          bias(p + ".self_attn.q_proj.bias", HEADS * headDim);
          bias(p + ".self_attn.k_proj.bias", KV * headDim);
          bias(p + ".self_attn.v_proj.bias", KV * headDim);
        }
      }
      matrix(p + ".self_attn.o_proj.weight", H, HEADS * headDim);
      switch (type) {
        case "phi3" -> {
          matrix(p + ".mlp.gate_up_proj.weight", 2 * INTER, H);
          matrix(p + ".mlp.down_proj.weight", H, INTER);
        }
        case "mixtral" -> {
          matrix(p + ".block_sparse_moe.gate.weight", 4, H);
          for (int e = 0; e < 4; e++) {
            String ep = p + ".block_sparse_moe.experts." + e;
            matrix(ep + ".w1.weight", INTER, H);
            matrix(ep + ".w2.weight", H, INTER);
            matrix(ep + ".w3.weight", INTER, H);
          }
        }
        default -> {
          matrix(p + ".mlp.gate_proj.weight", INTER, H);
          matrix(p + ".mlp.up_proj.weight", INTER, H);
          matrix(p + ".mlp.down_proj.weight", H, INTER);
        }
      }
    }
    norm("model.norm.weight", H);
    if (!tied) {
      matrix("lm_head.weight", VOCAB, H);
    }
  }

  private void gpt2() {
    config.put("model_type", "gpt2");
    config.put("n_embd", H);
    config.put("n_layer", LAYERS);
    config.put("n_head", HEADS);
    config.put("n_positions", 32);
    config.put("vocab_size", VOCAB);
    config.put("layer_norm_epsilon", 1e-5);
    config.put("activation_function", "gelu_new");
    config.put("n_inner", null);
    matrix("wte.weight", VOCAB, H);
    matrix("wpe.weight", 32, H);
    for (int i = 0; i < LAYERS; i++) {
      String p = "h." + i;
      norm(p + ".ln_1.weight", H);
      bias(p + ".ln_1.bias", H);
      matrix(p + ".attn.c_attn.weight", H, 3 * H);
      bias(p + ".attn.c_attn.bias", 3 * H);
      matrix(p + ".attn.c_proj.weight", H, H);
      bias(p + ".attn.c_proj.bias", H);
      norm(p + ".ln_2.weight", H);
      bias(p + ".ln_2.bias", H);
      matrix(p + ".mlp.c_fc.weight", H, 4 * H);
      bias(p + ".mlp.c_fc.bias", 4 * H);
      matrix(p + ".mlp.c_proj.weight", 4 * H, H);
      bias(p + ".mlp.c_proj.bias", H);
    }
    norm("ln_f.weight", H);
    bias("ln_f.bias", H);
  }

  private void bert() {
    config.put("model_type", "bert");
    config.put("hidden_size", H);
    config.put("num_hidden_layers", LAYERS);
    config.put("num_attention_heads", HEADS);
    config.put("intermediate_size", INTER);
    config.put("vocab_size", VOCAB);
    config.put("max_position_embeddings", 32);
    config.put("type_vocab_size", 2);
    config.put("layer_norm_eps", 1e-12);
    config.put("hidden_act", "gelu");
    matrix("embeddings.word_embeddings.weight", VOCAB, H);
    matrix("embeddings.position_embeddings.weight", 32, H);
    matrix("embeddings.token_type_embeddings.weight", 2, H);
    norm("embeddings.LayerNorm.weight", H);
    bias("embeddings.LayerNorm.bias", H);
    for (int i = 0; i < LAYERS; i++) {
      String p = "encoder.layer." + i;
      for (String n : new String[] {"query", "key", "value"}) {
        matrix(p + ".attention.self." + n + ".weight", H, H);
        bias(p + ".attention.self." + n + ".bias", H);
      }
      matrix(p + ".attention.output.dense.weight", H, H);
      bias(p + ".attention.output.dense.bias", H);
      norm(p + ".attention.output.LayerNorm.weight", H);
      bias(p + ".attention.output.LayerNorm.bias", H);
      matrix(p + ".intermediate.dense.weight", INTER, H);
      bias(p + ".intermediate.dense.bias", INTER);
      matrix(p + ".output.dense.weight", H, INTER);
      bias(p + ".output.dense.bias", H);
      norm(p + ".output.LayerNorm.weight", H);
      bias(p + ".output.LayerNorm.bias", H);
    }
    // A pooler, as real BERT checkpoints carry: the importer must ignore it.
    matrix("pooler.dense.weight", H, H);
    bias("pooler.dense.bias", H);
  }
}
