package dev.sohuc.hf;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;

import java.util.ArrayList;
import java.util.List;

/**
 * GPT-2: learned position embeddings, pre-norm LayerNorm blocks, {@code Conv1D} projections
 * (weights stored {@code [in, out]}), a fused {@code c_attn} split into q, k and v, a tanh-GELU
 * MLP, and the LM head tied to the token embeddings.
 */
final class Gpt2Model {
  private final ModelContext ctx;
  private final HfConfig c;
  final long hidden;
  final long layers;
  final long heads;
  final long headDim;
  final long inner;
  final long vocab;
  final long positions;
  final double eps;
  final Activation act;
  private final boolean scaleAttention;

  Gpt2Model(ModelContext ctx) {
    this.ctx = ctx;
    this.c = ctx.config;
    hidden = c.getPositive("n_embd", "hidden_size");
    layers = c.getCount(HfConfig.MAX_LAYERS, "n_layer", "num_hidden_layers");
    heads = c.getPositive("n_head", "num_attention_heads");
    if (hidden % heads != 0) {
      throw c.error("n_embd (" + hidden + ") is not divisible by n_head (" + heads + ")");
    }
    headDim = hidden / heads;
    c.times(3, hidden, "c_attn's width, 3 x n_embd,");
    inner = c.has("n_inner") ? c.getPositive("n_inner") : c.times(4, hidden, "the default n_inner, 4 x n_embd,");
    vocab = c.getPositive("vocab_size");
    positions = c.getPositive("n_positions", "max_position_embeddings");
    eps = c.getNonNegative(1e-5, "layer_norm_epsilon", "layer_norm_eps");
    act = Activation.parse(c, "activation_function", c.getString("activation_function").orElse("gelu_new"));
    scaleAttention = c.getBool(true, "scale_attn_weights");
    if (c.getBool(false, "scale_attn_by_inverse_layer_idx") || c.getBool(false, "reorder_and_upcast_attn")) {
      throw c.error("scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn are not supported");
    }
  }

  long parameterCount() {
    long perLayer = 4 * hidden + hidden * 3 * hidden + 3 * hidden + hidden * hidden + hidden
        + hidden * inner + inner + inner * hidden + hidden;
    return vocab * hidden + positions * hidden + layers * perLayer + 2 * hidden;
  }

  Function build() {
    Dim batch = ctx.dim("batch");
    Dim seq = ctx.dim("seq");
    Dim past = ctx.decode() ? ctx.dim("past") : Dim.of(0);
    Value ids = ModelContext.arg("input_ids", List.of(batch, seq), ElementType.I64);
    List<Value> args = new ArrayList<>(List.of(ids));
    List<Value> pastKv = new ArrayList<>();
    if (ctx.decode()) {
      Dim end = past.plus(seq);
      if (end.isStatic() && end.value() > positions) {
        throw c.error("past + seq (" + end.value() + ") exceeds n_positions (" + positions + ")");
      }
      List<Dim> cacheDims = List.of(batch, Dim.of(heads), past, Dim.of(headDim));
      for (int i = 0; i < layers; i++) {
        pastKv.add(ModelContext.arg("past_key_values." + i + ".key", cacheDims, ElementType.F32));
        pastKv.add(ModelContext.arg("past_key_values." + i + ".value", cacheDims, ElementType.F32));
      }
      args.addAll(pastKv);
    }
    String prefix = ctx.checkpoint != null && ctx.checkpoint.tensors().containsKey("transformer.wte.weight")
        ? "transformer." : "";
    Graph g = ctx.start(args, prefix);
    Location wteLoc = new Location("wte");
    Value wte = g.weights.use("wte.weight", List.of(vocab, hidden), wteLoc);
    Value tokens = g.b.add(new TransformerOp.Embedding(wte, ids), wteLoc, "token_embeddings");
    Location wpeLoc = new Location("wpe");
    Value wpe = g.weights.use("wpe.weight", List.of(positions, hidden), wpeLoc);
    Value pos = g.rows(wpe, past, seq, wpeLoc, "position_embeddings");
    Value h = g.add(tokens, pos, wpeLoc, "embeddings");
    List<Function.Output> presents = new ArrayList<>();
    for (int i = 0; i < layers; i++) {
      String p = "h." + i;
      Value x = layerNorm(g, h, p + ".ln_1");
      Location loc = new Location(p + ".attn");
      Value qkv = g.conv1d(x, p + ".attn.c_attn.weight", p + ".attn.c_attn.bias", hidden, 3 * hidden, loc,
          p + ".attn.qkv");
      List<Value> parts = g.b.addNode(new DataOp.Split(qkv, -1, List.of(Dim.of(hidden), Dim.of(hidden),
          Dim.of(hidden))), loc, List.of(p + ".attn.q", p + ".attn.k", p + ".attn.v")).results();
      Value q = g.splitHeads(parts.get(0), batch, seq, heads, headDim, loc, p + ".attn.q");
      Value k = g.splitHeads(parts.get(1), batch, seq, heads, headDim, loc, p + ".attn.k");
      Value v = g.splitHeads(parts.get(2), batch, seq, heads, headDim, loc, p + ".attn.v");
      if (ctx.decode()) {
        k = g.b.add(new TransformerOp.KvCacheAppend(pastKv.get(2 * i), k), loc, "present." + i + ".key");
        v = g.b.add(new TransformerOp.KvCacheAppend(pastKv.get(2 * i + 1), v), loc, "present." + i + ".value");
      }
      presents.add(new Function.Output("present." + i + ".key", k));
      presents.add(new Function.Output("present." + i + ".value", v));
      double scale = scaleAttention ? 1.0 / Math.sqrt(headDim) : 1.0;
      Value a = g.b.add(new TransformerOp.Attention(q, k, v, null, scale, true, 0), loc, p + ".attn");
      a = g.mergeHeads(a, batch, seq, heads, headDim, loc, p + ".attn");
      a = g.conv1d(a, p + ".attn.c_proj.weight", p + ".attn.c_proj.bias", hidden, hidden, loc, p + ".attn.out");
      h = g.add(h, a, new Location(p), p + ".attn_residual");
      x = layerNorm(g, h, p + ".ln_2");
      Location mlpLoc = new Location(p + ".mlp");
      Value f = g.conv1d(x, p + ".mlp.c_fc.weight", p + ".mlp.c_fc.bias", hidden, inner, mlpLoc, p + ".mlp.fc");
      f = activation(g, f, mlpLoc, p + ".mlp.act");
      f = g.conv1d(f, p + ".mlp.c_proj.weight", p + ".mlp.c_proj.bias", inner, hidden, mlpLoc, p + ".mlp.out");
      h = g.add(h, f, new Location(p), p + ".mlp_residual");
    }
    h = layerNorm(g, h, "ln_f");
    Location headLoc = new Location("lm_head");
    Value logits = g.matmul(h, g.transpose(wte, List.of(1L, 0L), headLoc, "lm_head.wT"), headLoc, "logits");
    List<Function.Output> outputs = new ArrayList<>();
    outputs.add(new Function.Output("logits", logits));
    outputs.addAll(presents);
    g.b.function().setOutputs(outputs);
    g.weights.checkComplete(ctx.checkpointPath, name -> name.endsWith(".attn.bias") && !name.endsWith("c_attn.bias")
        || name.endsWith(".attn.masked_bias") || name.equals("lm_head.weight"));
    ctx.checkBindings();
    return g.b.function();
  }

  private Value activation(Graph g, Value x, Location loc, String hint) {
    return switch (act) {
      case GELU_TANH -> g.b.add(new TransformerOp.Gelu(x, true), loc, hint);
      case GELU_ERF -> g.b.add(new TransformerOp.Gelu(x, false), loc, hint);
      case SILU -> g.b.add(new TransformerOp.Silu(x), loc, hint);
    };
  }

  private Value layerNorm(Graph g, Value x, String module) {
    Location loc = new Location(module);
    Value w = g.weights.use(module + ".weight", List.of(hidden), loc);
    Value b = g.weights.use(module + ".bias", List.of(hidden), loc);
    return g.b.add(new TransformerOp.LayerNorm(x, w, b, -1, eps), loc, module);
  }
}
