package dev.sohuc.hf;

import ai.onnx.proto.OnnxMl;

import java.util.List;
import java.util.Map;

/**
 * The tiny models of {@link TinyModel} as plain-op ONNX graphs with static shapes, written from
 * the Hugging Face modeling code of each family: the ONNX Runtime oracle of the numerics tests.
 * Inputs: {@code input_ids} [B, S] (BERT: plus {@code attention_mask}, {@code token_type_ids}),
 * and when {@code past > 0}, {@code past_key_values.N.key/value} [B, KV, P, D]. Outputs: {@code
 * logits} (BERT: {@code last_hidden_state}) and {@code present.N.key/value}.
 */
public final class ReferenceModels {
  private ReferenceModels() {}

  public static OnnxGraph build(TinyModel m, long batch, long seq, long past) {
    return switch (m.type()) {
      case "gpt2" -> gpt2(m, batch, seq, past);
      case "bert" -> bert(m, batch, seq);
      default -> decoder(m, batch, seq, past);
    };
  }

  private static final OnnxMl.TensorProto.DataType I64 = OnnxMl.TensorProto.DataType.INT64;
  private static final OnnxMl.TensorProto.DataType F32 = OnnxMl.TensorProto.DataType.FLOAT;

  /**
   * HF's inverse frequencies, in double precision, with the llama3 rope_scaling when configured,
   * and longrope's short factors (the ones HF takes below original_max_position_embeddings);
   * dynamic NTK scaling changes them only past max_position_embeddings, which no test reaches.
   */
  @SuppressWarnings("unchecked")
  static double[] inverseFrequencies(TinyModel m, int r) {
    double theta = m.getDouble("rope_theta", 10000);
    double[] inv = new double[r / 2];
    Map<String, Object> scaling = (Map<String, Object>) m.config.get("rope_scaling");
    List<Number> shortFactors = scaling != null && "longrope".equals(scaling.get("type"))
        ? (List<Number>) scaling.get("short_factor") : null;
    for (int i = 0; i < inv.length; i++) {
      double divide = shortFactors == null ? 1 : shortFactors.get(i).doubleValue();
      inv[i] = 1.0 / (divide * Math.pow(theta, 2.0 * i / r));
    }
    if (scaling != null && "yarn".equals(scaling.get("type"))) {
      yarn(m, scaling, inv, r, theta);
    }
    if (scaling != null && "llama3".equals(scaling.get("rope_type"))) {
      double factor = ((Number) scaling.get("factor")).doubleValue();
      double low = ((Number) scaling.get("low_freq_factor")).doubleValue();
      double high = ((Number) scaling.get("high_freq_factor")).doubleValue();
      double old = ((Number) scaling.get("original_max_position_embeddings")).doubleValue();
      for (int i = 0; i < inv.length; i++) {
        double wavelen = 2 * Math.PI / inv[i];
        if (wavelen < old / high) {
          continue;
        } else if (wavelen > old / low) {
          inv[i] /= factor;
        } else {
          double smooth = (old / wavelen - low) / (high - low);
          inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
        }
      }
    }
    return inv;
  }

  /**
   * YaRN's blend, from the paper's definitions: pair i keeps its frequency when it turns at least
   * beta_fast times over the original context, takes it divided by factor when at most
   * beta_slow times, and a linear mix of the two between (bounds floored and ceiled unless
   * truncate is false).
   */
  private static void yarn(TinyModel m, Map<String, Object> scaling, double[] inv, int r,
      double theta) {
    double factor = ((Number) scaling.get("factor")).doubleValue();
    double fast = ((Number) scaling.getOrDefault("beta_fast", 32)).doubleValue();
    double slow = ((Number) scaling.getOrDefault("beta_slow", 1)).doubleValue();
    double original = ((Number) scaling.getOrDefault("original_max_position_embeddings",
        m.get("max_position_embeddings"))).doubleValue();
    // the pair index turning n times over the original context: r ln(L / 2 pi n) / 2 ln theta
    double low = r * Math.log(original / (2 * Math.PI * fast)) / (2 * Math.log(theta));
    double high = r * Math.log(original / (2 * Math.PI * slow)) / (2 * Math.log(theta));
    if (!Boolean.FALSE.equals(scaling.get("truncate"))) {
      low = Math.floor(low);
      high = Math.ceil(high);
    }
    low = Math.max(low, 0);
    high = Math.min(high, r - 1);
    for (int i = 0; i < inv.length; i++) {
      double toInterpolated = Math.min(1, Math.max(0, (i - low) / (high - low)));
      inv[i] = inv[i] / factor * toInterpolated + inv[i] * (1 - toInterpolated);
    }
  }

  /**
   * HF's longrope attention factor, sqrt(1 + ln(s) / ln(original)) for a context stretched s
   * times past its original_max_position_embeddings; YaRN's 0.1 ln(factor) + 1 (its mscale
   * over its mscale_all_dim form when both are given); 1 for every other rope.
   */
  @SuppressWarnings("unchecked")
  static double attentionFactor(TinyModel m) {
    Map<String, Object> scaling = (Map<String, Object>) m.config.get("rope_scaling");
    if (scaling != null && "yarn".equals(scaling.get("type"))) {
      double factor = ((Number) scaling.get("factor")).doubleValue();
      Number mscale = (Number) scaling.get("mscale");
      Number all = (Number) scaling.get("mscale_all_dim");
      return mscale == null ? 0.1 * Math.log(factor) + 1
          : (0.1 * mscale.doubleValue() * Math.log(factor) + 1)
              / (0.1 * all.doubleValue() * Math.log(factor) + 1);
    }
    if (scaling == null || !"longrope".equals(scaling.get("type"))) {
      return 1;
    }
    double original = m.get("original_max_position_embeddings");
    double stretch = m.get("max_position_embeddings") / original;
    return stretch <= 1 ? 1 : Math.sqrt(1 + Math.log(stretch) / Math.log(original));
  }

  private static float[][] rotary(TinyModel m, int r, long seq, long past) {
    double[] inv = inverseFrequencies(m, r);
    double scale = attentionFactor(m);
    float[] cos = new float[(int) (seq * r)];
    float[] sin = new float[(int) (seq * r)];
    for (int s = 0; s < seq; s++) {
      for (int i = 0; i < r / 2; i++) {
        double a = (past + s) * inv[i];
        cos[s * r + i] = cos[s * r + i + r / 2] = (float) (Math.cos(a) * scale);
        sin[s * r + i] = sin[s * r + i + r / 2] = (float) (Math.sin(a) * scale);
      }
    }
    return new float[][] {cos, sin};
  }

  private static OnnxGraph decoder(TinyModel m, long b, long s, long past) {
    OnnxGraph g = new OnnxGraph();
    String type = m.type();
    long h = m.get("hidden_size");
    long heads = m.get("num_attention_heads");
    long kv = m.get("num_key_value_heads");
    long d = m.headDim();
    long inter = m.get("intermediate_size");
    long vocab = m.get("vocab_size");
    long layers = m.get("num_hidden_layers");
    float eps = (float) m.getDouble("rms_norm_eps", 1e-6);
    float offset = type.equals("gemma") ? 1f : 0f;
    int r = (int) (d * m.getDouble("partial_rotary_factor", 1.0));
    long window = m.config.containsKey("sliding_window") ? m.get("sliding_window") : 0;
    boolean tied = m.getBool("tie_word_embeddings", type.equals("gemma"));
    Map<String, float[]> w = m.weights;

    String ids = g.input("input_ids", I64, b, s);
    String embed = g.init("embed", w.get("model.embed_tokens.weight"), vocab, h);
    String x = g.gather(embed, ids, 0);
    if (type.equals("gemma")) {
      x = g.mul(x, g.scalar((float) Math.sqrt(h)));
    }
    float[][] cs = rotary(m, r, s, past);
    String mask = g.causalMask(s, past + s, window);
    for (int i = 0; i < layers; i++) {
      String p = "model.layers." + i;
      String n = g.rmsNorm(x, w.get(p + ".input_layernorm.weight"), eps, offset);
      String q;
      String k;
      String v;
      if (type.equals("phi3")) {
        List<String> qkv = g.split(g.linear(n, w.get(p + ".self_attn.qkv_proj.weight"), null, h, (heads + 2 * kv) * d),
            -1, heads * d, kv * d, kv * d);
        q = qkv.get(0);
        k = qkv.get(1);
        v = qkv.get(2);
      } else {
        q = g.linear(n, w.get(p + ".self_attn.q_proj.weight"), w.get(p + ".self_attn.q_proj.bias"), h, heads * d);
        k = g.linear(n, w.get(p + ".self_attn.k_proj.weight"), w.get(p + ".self_attn.k_proj.bias"), h, kv * d);
        v = g.linear(n, w.get(p + ".self_attn.v_proj.weight"), w.get(p + ".self_attn.v_proj.bias"), h, kv * d);
      }
      q = g.rope(g.splitHeads(q, b, s, heads, d), cs[0], cs[1], s, r, d);
      k = g.rope(g.splitHeads(k, b, s, kv, d), cs[0], cs[1], s, r, d);
      v = g.splitHeads(v, b, s, kv, d);
      if (past > 0) {
        k = g.concat(2, g.input("past_key_values." + i + ".key", F32, b, kv, past, d), k);
        v = g.concat(2, g.input("past_key_values." + i + ".value", F32, b, kv, past, d), v);
      }
      g.output("present." + i + ".key", k);
      g.output("present." + i + ".value", v);
      String a = g.mergeHeads(g.attention(q, k, v, heads, kv, (float) (1 / Math.sqrt(d)), mask), b, s, heads, d);
      x = g.add(x, g.linear(a, w.get(p + ".self_attn.o_proj.weight"), null, heads * d, h));
      n = g.rmsNorm(x, w.get(p + ".post_attention_layernorm.weight"), eps, offset);
      String mlp;
      switch (type) {
        case "phi3" -> {
          List<String> gu = g.split(g.linear(n, w.get(p + ".mlp.gate_up_proj.weight"), null, h, 2 * inter), -1,
              inter, inter);
          mlp = g.linear(g.mul(g.silu(gu.get(0)), gu.get(1)), w.get(p + ".mlp.down_proj.weight"), null, inter, h);
        }
        case "mixtral" -> mlp = moe(g, m, n, p + ".block_sparse_moe", h, inter);
        default -> {
          String gate = g.linear(n, w.get(p + ".mlp.gate_proj.weight"), null, h, inter);
          String up = g.linear(n, w.get(p + ".mlp.up_proj.weight"), null, h, inter);
          String act = type.equals("gemma") ? g.gelu(gate, true) : g.silu(gate);
          mlp = g.linear(g.mul(act, up), w.get(p + ".mlp.down_proj.weight"), null, inter, h);
        }
      }
      x = g.add(x, mlp);
    }
    x = g.rmsNorm(x, w.get("model.norm.weight"), eps, offset);
    String logits = tied ? g.matmul(x, g.transpose(embed, 1, 0))
        : g.linear(x, w.get("lm_head.weight"), null, h, vocab);
    g.output("logits", logits);
    return g;
  }

  /** HF Mixtral: softmax over all experts, top-k, renormalize, weighted sum of the chosen experts. */
  private static String moe(OnnxGraph g, TinyModel m, String x, String p, long h, long inter) {
    long experts = m.get("num_local_experts");
    long k = m.get("num_experts_per_tok");
    Map<String, float[]> w = m.weights;
    String probs = g.node("Softmax", List.of(g.linear(x, w.get(p + ".gate.weight"), null, h, experts)),
        OnnxGraph.intAttr("axis", -1));
    String kName = g.initLongs("k", new long[] {k}, 1);
    List<String> topk = topK(g, probs, kName);
    String top = topk.get(0);
    String norm = g.node("Div", List.of(top, g.node("ReduceSum", List.of(top, g.initLongs("axes", new long[] {-1}, 1)),
        OnnxGraph.intAttr("keepdims", 1))));
    String sum = null;
    for (int e = 0; e < experts; e++) {
      String ep = p + ".experts." + e;
      String chosen = g.node("Cast", List.of(g.node("Equal", List.of(topk.get(1), g.initLongs("e", new long[] {e}, 1)))),
          OnnxGraph.intAttr("to", OnnxMl.TensorProto.DataType.FLOAT.getNumber()));
      String weight = g.node("ReduceSum", List.of(g.mul(chosen, norm), g.initLongs("axes", new long[] {-1}, 1)),
          OnnxGraph.intAttr("keepdims", 1));
      String y = g.linear(g.mul(g.silu(g.linear(x, w.get(ep + ".w1.weight"), null, h, inter)),
          g.linear(x, w.get(ep + ".w3.weight"), null, h, inter)), w.get(ep + ".w2.weight"), null, inter, h);
      String contribution = g.mul(y, weight);
      sum = sum == null ? contribution : g.add(sum, contribution);
    }
    return sum;
  }

  private static List<String> topK(OnnxGraph g, String x, String k) {
    return g.multi("TopK", List.of(x, k), 2, OnnxGraph.intAttr("axis", -1));
  }

  private static OnnxGraph gpt2(TinyModel m, long b, long s, long past) {
    OnnxGraph g = new OnnxGraph();
    long h = m.get("n_embd");
    long heads = m.get("n_head");
    long d = h / heads;
    long layers = m.get("n_layer");
    long vocab = m.get("vocab_size");
    float eps = (float) m.getDouble("layer_norm_epsilon", 1e-5);
    Map<String, float[]> w = m.weights;
    String ids = g.input("input_ids", I64, b, s);
    String wte = g.init("wte", w.get("wte.weight"), vocab, h);
    String wpe = g.init("wpe", w.get("wpe.weight"), m.get("n_positions"), h);
    String x = g.add(g.gather(wte, ids, 0), g.slice(wpe, 0, past, past + s));
    String mask = g.causalMask(s, past + s, 0);
    for (int i = 0; i < layers; i++) {
      String p = "h." + i;
      String n = g.layerNorm(x, w.get(p + ".ln_1.weight"), w.get(p + ".ln_1.bias"), eps);
      List<String> qkv = g.split(g.conv1d(n, w.get(p + ".attn.c_attn.weight"), w.get(p + ".attn.c_attn.bias"), h, 3 * h),
          -1, h, h, h);
      String q = g.splitHeads(qkv.get(0), b, s, heads, d);
      String k = g.splitHeads(qkv.get(1), b, s, heads, d);
      String v = g.splitHeads(qkv.get(2), b, s, heads, d);
      if (past > 0) {
        k = g.concat(2, g.input("past_key_values." + i + ".key", F32, b, heads, past, d), k);
        v = g.concat(2, g.input("past_key_values." + i + ".value", F32, b, heads, past, d), v);
      }
      g.output("present." + i + ".key", k);
      g.output("present." + i + ".value", v);
      String a = g.mergeHeads(g.attention(q, k, v, heads, heads, (float) (1 / Math.sqrt(d)), mask), b, s, heads, d);
      x = g.add(x, g.conv1d(a, w.get(p + ".attn.c_proj.weight"), w.get(p + ".attn.c_proj.bias"), h, h));
      n = g.layerNorm(x, w.get(p + ".ln_2.weight"), w.get(p + ".ln_2.bias"), eps);
      String f = g.gelu(g.conv1d(n, w.get(p + ".mlp.c_fc.weight"), w.get(p + ".mlp.c_fc.bias"), h, 4 * h), true);
      x = g.add(x, g.conv1d(f, w.get(p + ".mlp.c_proj.weight"), w.get(p + ".mlp.c_proj.bias"), 4 * h, h));
    }
    x = g.layerNorm(x, w.get("ln_f.weight"), w.get("ln_f.bias"), eps);
    g.output("logits", g.matmul(x, g.transpose(wte, 1, 0)));
    return g;
  }

  private static OnnxGraph bert(TinyModel m, long b, long s) {
    OnnxGraph g = new OnnxGraph();
    long h = m.get("hidden_size");
    long heads = m.get("num_attention_heads");
    long d = h / heads;
    long inter = m.get("intermediate_size");
    float eps = (float) m.getDouble("layer_norm_eps", 1e-12);
    Map<String, float[]> w = m.weights;
    String ids = g.input("input_ids", I64, b, s);
    String am = g.input("attention_mask", I64, b, s);
    String types = g.input("token_type_ids", I64, b, s);
    String x = g.add(g.add(
        g.gather(g.init("words", w.get("embeddings.word_embeddings.weight"), m.get("vocab_size"), h), ids, 0),
        g.gather(g.init("types", w.get("embeddings.token_type_embeddings.weight"), 2, h), types, 0)),
        g.slice(g.init("pos", w.get("embeddings.position_embeddings.weight"), m.get("max_position_embeddings"), h),
            0, 0, s));
    x = g.layerNorm(x, w.get("embeddings.LayerNorm.weight"), w.get("embeddings.LayerNorm.bias"), eps);
    String maskF = g.node("Cast", List.of(am), OnnxGraph.intAttr("to", F32.getNumber()));
    String mask = g.reshape(g.mul(g.sub(g.scalar(1f), maskF), g.scalar(-Float.MAX_VALUE)), b, 1, 1, s);
    for (int i = 0; i < m.get("num_hidden_layers"); i++) {
      String p = "encoder.layer." + i;
      String sp = p + ".attention.self.";
      String q = g.splitHeads(g.linear(x, w.get(sp + "query.weight"), w.get(sp + "query.bias"), h, h), b, s, heads, d);
      String k = g.splitHeads(g.linear(x, w.get(sp + "key.weight"), w.get(sp + "key.bias"), h, h), b, s, heads, d);
      String v = g.splitHeads(g.linear(x, w.get(sp + "value.weight"), w.get(sp + "value.bias"), h, h), b, s, heads, d);
      String a = g.mergeHeads(g.attention(q, k, v, heads, heads, (float) (1 / Math.sqrt(d)), mask), b, s, heads, d);
      String op = p + ".attention.output.";
      a = g.linear(a, w.get(op + "dense.weight"), w.get(op + "dense.bias"), h, h);
      x = g.layerNorm(g.add(a, x), w.get(op + "LayerNorm.weight"), w.get(op + "LayerNorm.bias"), eps);
      String f = g.gelu(g.linear(x, w.get(p + ".intermediate.dense.weight"), w.get(p + ".intermediate.dense.bias"),
          h, inter), false);
      f = g.linear(f, w.get(p + ".output.dense.weight"), w.get(p + ".output.dense.bias"), inter, h);
      x = g.layerNorm(g.add(f, x), w.get(p + ".output.LayerNorm.weight"), w.get(p + ".output.LayerNorm.bias"), eps);
    }
    g.output("last_hidden_state", x);
    return g;
  }
}
