package dev.sohuc.hf;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.List;

/**
 * Llama-style decoders: pre-norm RMSNorm blocks, rotary embeddings, grouped-query attention
 * and a gated MLP, with the variations of each family:
 * <ul>
 *   <li>llama (1, 2, 3, 3.1 with {@code rope_scaling} llama3): {@code attention_bias}, {@code mlp_bias};
 *   <li>mistral: {@code sliding_window} becomes the attention window;
 *   <li>qwen2: biases on q, k and v; sliding window only with {@code use_sliding_window};
 *   <li>gemma: RMSNorm scales by {@code 1 + weight}, embeddings by {@code sqrt(hidden_size)},
 *       GeGLU MLP with tanh GELU, tied LM head;
 *   <li>phi3: fused {@code qkv_proj} and {@code gate_up_proj} whose outputs are split,
 *       {@code partial_rotary_factor};
 *   <li>mixtral: a sparse MoE MLP with top-k routing.
 * </ul>
 *
 * <p>Mixtral's routing is expressed densely with existing ops: the k-th largest router logit is
 * found by k rounds of max-and-mask, logits below it are set to -inf, and the softmax of what
 * is left weights every expert (zero outside the top k). That equals Hugging Face's
 * softmax-top-k-renormalize exactly in real arithmetic; the graph computes every expert, which
 * a later pass can make sparse.
 */
final class DecoderModel {
  /**
   * Rotary cos/sin tables {@code [max_position_embeddings, rotary_dim]} up to this many elements
   * (64 KB of f32 each) are precomputed as inline weights and sliced by position; larger ones
   * (Llama-3-8B/70B: 8192 x 128) are computed in the graph from the positions and the inline
   * inverse frequencies, so that IR dumps and shape-only imports stay small.
   */
  static final long INLINE_ROPE_TABLE_LIMIT = 1L << 14;

  enum Family { LLAMA, MISTRAL, QWEN2, GEMMA, PHI3, MIXTRAL }

  private final ModelContext ctx;
  private final HfConfig c;
  private final Family family;

  final long hidden;
  final long layers;
  final long heads;
  final long kvHeads;
  final long headDim;
  final long intermediate;
  final long vocab;
  final double eps;
  final double theta;
  final long maxPositions;
  final int rotaryDim;
  final boolean tied;
  final boolean qkvBias;
  final boolean outBias;
  final boolean mlpBias;
  final Activation act;
  final long experts;
  final long topK;
  private final long slidingWindow;
  private final long firstWindowLayer;

  DecoderModel(ModelContext ctx, Family family) {
    this.ctx = ctx;
    this.c = ctx.config;
    this.family = family;
    hidden = c.getPositive("hidden_size");
    layers = c.getPositive("num_hidden_layers");
    heads = c.getPositive("num_attention_heads");
    kvHeads = c.has("num_key_value_heads") ? c.getPositive("num_key_value_heads") : heads;
    if (c.has("head_dim")) {
      headDim = c.getPositive("head_dim");
    } else {
      if (hidden % heads != 0) {
        throw c.error("hidden_size (" + hidden + ") is not divisible by num_attention_heads (" + heads
            + "), and there is no head_dim");
      }
      headDim = hidden / heads;
    }
    if (heads % kvHeads != 0) {
      throw c.error("num_attention_heads (" + heads + ") is not a multiple of num_key_value_heads (" + kvHeads + ")");
    }
    intermediate = c.getPositive("intermediate_size");
    vocab = c.getPositive("vocab_size");
    eps = c.getDouble(1e-6, "rms_norm_eps");
    theta = c.getDouble(10000.0, "rope_theta");
    maxPositions = c.getPositive("max_position_embeddings");
    double partial = c.getDouble(1.0, "partial_rotary_factor");
    rotaryDim = (int) (headDim * partial);
    if (rotaryDim <= 0 || rotaryDim % 2 != 0 || rotaryDim > headDim) {
      throw c.error("partial_rotary_factor " + partial + " gives " + rotaryDim
          + " rotary dims of head_dim " + headDim + "; it must be even and positive");
    }
    tied = c.getBool(family == Family.GEMMA, "tie_word_embeddings");
    qkvBias = family == Family.QWEN2 || c.getBool(false, "attention_bias");
    outBias = family != Family.QWEN2 && c.getBool(false, "attention_bias");
    mlpBias = c.getBool(false, "mlp_bias");
    if (family == Family.GEMMA) {
      act = Activation.parse(c, "hidden_activation", c.getString("hidden_activation").orElse("gelu_pytorch_tanh"));
    } else {
      act = Activation.parse(c, "hidden_act", c.getString("hidden_act").orElse("silu"));
    }
    if (family == Family.MIXTRAL) {
      experts = c.getPositive("num_local_experts");
      topK = c.getPositive("num_experts_per_tok");
      if (topK > experts) {
        throw c.error("num_experts_per_tok (" + topK + ") exceeds num_local_experts (" + experts + ")");
      }
    } else {
      experts = 0;
      topK = 0;
    }
    long window = 0;
    long firstWindowed = 0;
    boolean windowed = switch (family) {
      case MISTRAL, MIXTRAL, PHI3 -> true;
      case QWEN2 -> c.getBool(false, "use_sliding_window");
      default -> false;
    };
    if (windowed && c.has("sliding_window")) {
      window = c.getPositive("sliding_window");
      if (family == Family.QWEN2) {
        firstWindowed = c.getLong(0, "max_window_layers");
      }
    }
    slidingWindow = window;
    firstWindowLayer = firstWindowed;
  }

  /** Parameters of the model as the config describes it (the rotary tables are not parameters). */
  long parameterCount() {
    long attn = hidden * heads * headDim + 2 * hidden * kvHeads * headDim + heads * headDim * hidden;
    long mlpOne = 3 * hidden * intermediate;
    long mlp = family == Family.MIXTRAL ? experts * mlpOne + experts * hidden : mlpOne;
    long perLayer = attn + mlp + 2 * hidden;
    return vocab * hidden * (tied ? 1 : 2) + layers * perLayer + hidden;
  }

  Function build() {
    Dim batch = ctx.dim("batch");
    Dim seq = ctx.dim("seq");
    Dim past = ctx.decode() ? ctx.dim("past") : Dim.of(0);
    List<Value> args = new ArrayList<>();
    Value ids = ModelContext.arg("input_ids", List.of(batch, seq), ElementType.I64);
    args.add(ids);
    List<Value> pastK = new ArrayList<>();
    List<Value> pastV = new ArrayList<>();
    if (ctx.decode()) {
      List<Dim> cacheDims = List.of(batch, Dim.of(kvHeads), past, Dim.of(headDim));
      for (int i = 0; i < layers; i++) {
        pastK.add(ModelContext.arg("past_key_values." + i + ".key", cacheDims, ElementType.F32));
        pastV.add(ModelContext.arg("past_key_values." + i + ".value", cacheDims, ElementType.F32));
      }
      for (int i = 0; i < layers; i++) {
        args.add(pastK.get(i));
        args.add(pastV.get(i));
      }
    }
    if (ctx.decode()) {
      checkPositions(past, seq);
    }
    Graph g = ctx.start(args, "");
    Location embedLoc = new Location("model.embed_tokens");
    Value table = g.weights.use("model.embed_tokens.weight", List.of(vocab, hidden), embedLoc);
    Value h = g.b.add(new TransformerOp.Embedding(table, ids), embedLoc, "embeddings");
    if (family == Family.GEMMA) {
      // Gemma scales by sqrt(hidden_size) rounded to the activation dtype (f32 here).
      h = g.binary(BinaryKind.MUL, h, g.scalar((float) Math.sqrt(hidden), embedLoc, "normalizer"), embedLoc,
          "embeddings");
    }
    Value[] cosSin = rotary(g, past, seq);
    List<Function.Output> presents = new ArrayList<>();
    for (int i = 0; i < layers; i++) {
      String p = "model.layers." + i;
      Value x = rmsNorm(g, h, p + ".input_layernorm", p + ".norm1");
      Value[] kv = new Value[2];
      Value a = attention(g, x, i, batch, seq, cosSin, ctx.decode() ? pastK.get(i) : null,
          ctx.decode() ? pastV.get(i) : null, kv);
      presents.add(new Function.Output("present." + i + ".key", kv[0]));
      presents.add(new Function.Output("present." + i + ".value", kv[1]));
      h = g.add(h, a, new Location(p), p + ".attn_residual");
      x = rmsNorm(g, h, p + ".post_attention_layernorm", p + ".norm2");
      Value m = family == Family.MIXTRAL ? moe(g, x, p) : mlp(g, x, p + ".mlp");
      h = g.add(h, m, new Location(p), p + ".mlp_residual");
    }
    h = rmsNorm(g, h, "model.norm", "final_norm");
    Location headLoc = new Location("lm_head");
    Value logits;
    if (tied) {
      Value wt = g.transpose(table, List.of(1L, 0L), headLoc, "lm_head.wT");
      logits = g.matmul(h, wt, headLoc, "logits");
    } else {
      logits = g.linear(h, "lm_head.weight", null, hidden, vocab, headLoc, "logits");
    }
    List<Function.Output> outputs = new ArrayList<>();
    outputs.add(new Function.Output("logits", logits));
    outputs.addAll(presents);
    g.b.function().setOutputs(outputs);
    g.weights.checkComplete(ctx.checkpointPath,
        name -> name.endsWith(".rotary_emb.inv_freq") || (tied && name.equals("lm_head.weight")));
    ctx.checkBindings();
    return g.b.function();
  }

  private void checkPositions(Dim past, Dim seq) {
    Dim end = past.plus(seq);
    if (end.isStatic() && end.value() > maxPositions) {
      throw c.error("past + seq (" + end.value() + ") exceeds max_position_embeddings (" + maxPositions + ")");
    }
  }

  private Value rmsNorm(Graph g, Value x, String module, String hint) {
    Location loc = new Location(module);
    Value w = g.weights.use(module + ".weight", List.of(hidden), loc);
    double offset = family == Family.GEMMA ? 1.0 : 0.0;
    return g.b.add(new TransformerOp.RmsNorm(x, w, eps, offset), loc, hint);
  }

  /** cos and sin {@code [seq, rotaryDim]} for positions {@code past .. past+seq-1}. */
  private Value[] rotary(Graph g, Dim past, Dim seq) {
    Location loc = new Location("model.rotary_emb");
    if (maxPositions * rotaryDim <= INLINE_ROPE_TABLE_LIMIT) {
      RotaryTables t = RotaryTables.compute(c, theta, rotaryDim, (int) maxPositions);
      TensorType type = TensorType.of(ElementType.F32, maxPositions, rotaryDim);
      Value cosTable = g.weights.inline("rotary_emb.cos", type, RotaryTables.bytes(t.cos), loc);
      Value sinTable = g.weights.inline("rotary_emb.sin", type, RotaryTables.bytes(t.sin), loc);
      return new Value[] {g.rows(cosTable, past, seq, loc, "cos"), g.rows(sinTable, past, seq, loc, "sin")};
    }
    // Large tables (long-context models) are computed from the positions instead.
    float[] inv = RotaryTables.inverseFrequencies(c, theta, rotaryDim);
    Value invFreq = g.weights.inline("rotary_emb.inv_freq", TensorType.of(ElementType.F32, 1, inv.length),
        RotaryTables.bytes(inv), loc);
    Value pos = g.b.add(new SourceOp.Range(0, past.plus(seq), 1, ElementType.F32), loc, "positions");
    if (!past.is(0)) {
      pos = g.rows(pos, past, seq, loc, "positions.new");
    }
    pos = g.reshape(pos, List.of(seq, Dim.of(1)), loc, "positions.column");
    Value freqs = g.matmul(pos, invFreq, loc, "freqs");
    Value emb = g.b.add(new DataOp.Concat(List.of(freqs, freqs), -1), loc, "angles");
    return new Value[] {
        g.b.add(new ElementwiseOp.Unary(UnaryKind.COS, emb), loc, "cos"),
        g.b.add(new ElementwiseOp.Unary(UnaryKind.SIN, emb), loc, "sin")};
  }

  private Value attention(Graph g, Value x, int layer, Dim batch, Dim seq, Value[] cosSin, Value pastK, Value pastV,
                          Value[] presentOut) {
    String p = "model.layers." + layer + ".self_attn";
    Location loc = new Location(p);
    long qOut = heads * headDim;
    long kvOut = kvHeads * headDim;
    Value q;
    Value k;
    Value v;
    if (family == Family.PHI3) {
      Value qkv = g.linear(x, p + ".qkv_proj.weight", null, hidden, qOut + 2 * kvOut, loc, p + ".qkv");
      List<Value> parts = g.b.addNode(new DataOp.Split(qkv, -1, List.of(Dim.of(qOut), Dim.of(kvOut), Dim.of(kvOut))),
          loc, List.of(p + ".q", p + ".k", p + ".v")).results();
      q = parts.get(0);
      k = parts.get(1);
      v = parts.get(2);
    } else {
      q = g.linear(x, p + ".q_proj.weight", qkvBias ? p + ".q_proj.bias" : null, hidden, qOut, loc, p + ".q");
      k = g.linear(x, p + ".k_proj.weight", qkvBias ? p + ".k_proj.bias" : null, hidden, kvOut, loc, p + ".k");
      v = g.linear(x, p + ".v_proj.weight", qkvBias ? p + ".v_proj.bias" : null, hidden, kvOut, loc, p + ".v");
    }
    q = g.splitHeads(q, batch, seq, heads, headDim, loc, p + ".q");
    k = g.splitHeads(k, batch, seq, kvHeads, headDim, loc, p + ".k");
    v = g.splitHeads(v, batch, seq, kvHeads, headDim, loc, p + ".v");
    var style = TransformerOp.RopeStyle.ROTATE_HALF;
    q = g.b.add(new TransformerOp.Rope(q, cosSin[0], cosSin[1], style), loc, p + ".q_rot");
    k = g.b.add(new TransformerOp.Rope(k, cosSin[0], cosSin[1], style), loc, p + ".k_rot");
    if (pastK != null) {
      k = g.b.add(new TransformerOp.KvCacheAppend(pastK, k), loc, "present." + layer + ".key");
      v = g.b.add(new TransformerOp.KvCacheAppend(pastV, v), loc, "present." + layer + ".value");
    }
    presentOut[0] = k;
    presentOut[1] = v;
    long window = slidingWindow > 0 && layer >= firstWindowLayer ? slidingWindow : 0;
    Value a = g.b.add(new TransformerOp.Attention(q, k, v, null, 1.0 / Math.sqrt(headDim), true, window),
        loc, p + ".attn");
    a = g.mergeHeads(a, batch, seq, heads, headDim, loc, p + ".attn");
    return g.linear(a, p + ".o_proj.weight", outBias ? p + ".o_proj.bias" : null, qOut, hidden, loc, p + ".o");
  }

  private Value mlp(Graph g, Value x, String p) {
    Location loc = new Location(p);
    Value gate;
    Value up;
    if (family == Family.PHI3) {
      Value gu = g.linear(x, p + ".gate_up_proj.weight", null, hidden, 2 * intermediate, loc, p + ".gate_up");
      List<Value> parts = g.b.addNode(new DataOp.Split(gu, -1, List.of(Dim.of(intermediate), Dim.of(intermediate))),
          loc, List.of(p + ".gate", p + ".up")).results();
      gate = parts.get(0);
      up = parts.get(1);
    } else {
      gate = g.linear(x, p + ".gate_proj.weight", mlpBias ? p + ".gate_proj.bias" : null, hidden, intermediate, loc,
          p + ".gate");
      up = g.linear(x, p + ".up_proj.weight", mlpBias ? p + ".up_proj.bias" : null, hidden, intermediate, loc,
          p + ".up");
    }
    Value hAct = gated(g, gate, up, loc, p + ".act");
    return g.linear(hAct, p + ".down_proj.weight", mlpBias ? p + ".down_proj.bias" : null, intermediate, hidden, loc,
        p + ".down");
  }

  /** {@code act(gate) * up}: swiglu for SiLU, gelu then mul otherwise. */
  private Value gated(Graph g, Value gate, Value up, Location loc, String hint) {
    if (act == Activation.SILU) {
      return g.b.add(new TransformerOp.SwiGlu(gate, up), loc, hint);
    }
    Value a = g.b.add(new TransformerOp.Gelu(gate, act == Activation.GELU_TANH), loc, hint);
    return g.binary(BinaryKind.MUL, a, up, loc, hint);
  }

  private Value moe(Graph g, Value x, String layerPrefix) {
    String p = layerPrefix + ".block_sparse_moe";
    Location loc = new Location(p);
    Value logits = g.linear(x, p + ".gate.weight", null, hidden, experts, loc, p + ".router_logits");
    Value negInf = g.scalar(Double.NEGATIVE_INFINITY, loc, p + ".neg_inf");
    // k rounds of max-and-mask leave the k-th largest logit in `threshold`.
    Value remaining = logits;
    Value threshold = null;
    for (int r = 0; r < topK; r++) {
      threshold = g.b.add(new ReductionOp.Reduce(ReductionOp.ReduceKind.MAX, remaining, List.of(-1L), true), loc,
          p + ".kth_max");
      if (r + 1 < topK) {
        Value taken = g.binary(BinaryKind.GREATER_EQUAL, remaining, threshold, loc, p + ".taken");
        remaining = g.b.add(new ElementwiseOp.Where(taken, negInf, remaining), loc, p + ".remaining");
      }
    }
    Value selected = g.binary(BinaryKind.GREATER_EQUAL, logits, threshold, loc, p + ".selected");
    Value masked = g.b.add(new ElementwiseOp.Where(selected, logits, negInf), loc, p + ".top_k_logits");
    Value routing = g.b.add(new ReductionOp.Softmax(masked, -1, false), loc, p + ".routing_weights");
    Value sum = null;
    for (int e = 0; e < experts; e++) {
      String ep = p + ".experts." + e;
      Location eloc = new Location(ep);
      Value gate = g.linear(x, ep + ".w1.weight", null, hidden, intermediate, eloc, ep + ".gate");
      Value up = g.linear(x, ep + ".w3.weight", null, hidden, intermediate, eloc, ep + ".up");
      Value y = g.linear(gated(g, gate, up, eloc, ep + ".act"), ep + ".w2.weight", null, intermediate, hidden, eloc,
          ep + ".down");
      Value weight = g.b.add(new DataOp.Slice(routing, List.of(Dim.of(e)), List.of(Dim.of(e + 1)), List.of(-1L),
          List.of(1L)), eloc, ep + ".routing_weight");
      Value weighted = g.binary(BinaryKind.MUL, y, weight, eloc, ep + ".weighted");
      sum = sum == null ? weighted : g.add(sum, weighted, loc, p + ".sum");
    }
    return sum;
  }
}
