package dev.sohuc.hf;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;

import java.util.List;

/**
 * BERT encoders: word, position and token-type embeddings, post-norm LayerNorm blocks,
 * bidirectional attention masked by {@code attention_mask}, GELU MLP. The output is
 * {@code last_hidden_state}; pooler and pre-training heads in the checkpoint are ignored.
 */
final class BertModel {
  private final ModelContext ctx;
  private final HfConfig c;
  final long hidden;
  final long layers;
  final long heads;
  final long headDim;
  final long intermediate;
  final long vocab;
  final long positions;
  final long typeVocab;
  final double eps;
  final Activation act;

  BertModel(ModelContext ctx) {
    this.ctx = ctx;
    this.c = ctx.config;
    hidden = c.getPositive("hidden_size");
    layers = c.getCount(HfConfig.MAX_LAYERS, "num_hidden_layers");
    heads = c.getPositive("num_attention_heads");
    if (hidden % heads != 0) {
      throw c.error("hidden_size (" + hidden + ") is not divisible by num_attention_heads (" + heads + ")");
    }
    headDim = hidden / heads;
    intermediate = c.getPositive("intermediate_size");
    vocab = c.getPositive("vocab_size");
    positions = c.getPositive("max_position_embeddings");
    typeVocab = c.has("type_vocab_size") ? c.getPositive("type_vocab_size") : 2;
    eps = c.getNonNegative(1e-12, "layer_norm_eps", "layer_norm_epsilon");
    act = Activation.parse(c, "hidden_act", c.getString("hidden_act").orElse("gelu"));
    String posType = c.getString("position_embedding_type").orElse("absolute");
    if (!posType.equals("absolute")) {
      throw c.error("position_embedding_type \"" + posType + "\" is not supported (only absolute)");
    }
    if (ctx.decode()) {
      throw c.error("bert is an encoder: it has no decode-step graph (import it as prefill)");
    }
  }

  long parameterCount() {
    long perLayer = 4 * (hidden * hidden + hidden) + 2 * hidden * intermediate + intermediate + hidden + 4 * hidden;
    return (vocab + positions + typeVocab) * hidden + 2 * hidden + layers * perLayer;
  }

  Function build() {
    Dim batch = ctx.dim("batch");
    Dim seq = ctx.dim("seq");
    Value ids = ModelContext.arg("input_ids", List.of(batch, seq), ElementType.I64);
    Value mask = ModelContext.arg("attention_mask", List.of(batch, seq), ElementType.I64);
    Value types = ModelContext.arg("token_type_ids", List.of(batch, seq), ElementType.I64);
    String prefix = ctx.checkpoint != null
        && ctx.checkpoint.tensors().containsKey("bert.embeddings.word_embeddings.weight") ? "bert." : "";
    Graph g = ctx.start(List.of(ids, mask, types), prefix);
    Location eloc = new Location("embeddings");
    Value words = g.b.add(new TransformerOp.Embedding(
        g.weights.use("embeddings.word_embeddings.weight", List.of(vocab, hidden), eloc), ids), eloc, "word_embeddings");
    Value typeEmb = g.b.add(new TransformerOp.Embedding(
        g.weights.use("embeddings.token_type_embeddings.weight", List.of(typeVocab, hidden), eloc), types), eloc,
        "token_type_embeddings");
    Value pos = g.rows(g.weights.use("embeddings.position_embeddings.weight", List.of(positions, hidden), eloc),
        Dim.of(0), seq, eloc, "position_embeddings");
    Value h = g.add(g.add(words, typeEmb, eloc, "embeddings"), pos, eloc, "embeddings");
    h = layerNorm(g, h, "embeddings.LayerNorm");

    // (1 - mask) * f32 min, as [batch, 1, 1, seq]: Hugging Face's extended attention mask.
    Location mloc = new Location("get_extended_attention_mask");
    Value m = g.b.add(new ElementwiseOp.Cast(mask, ElementType.F32), mloc, "mask");
    m = g.binary(BinaryKind.SUB, g.scalar(1.0, mloc, "one"), m, mloc, "mask");
    m = g.binary(BinaryKind.MUL, m, g.scalar(-Float.MAX_VALUE, mloc, "f32_min"), mloc, "mask");
    Value additive = g.reshape(m, List.of(batch, Dim.of(1), Dim.of(1), seq), mloc, "extended_attention_mask");

    for (int i = 0; i < layers; i++) {
      String p = "encoder.layer." + i;
      Location aloc = new Location(p + ".attention.self");
      String s = p + ".attention.self";
      Value q = g.splitHeads(g.linear(h, s + ".query.weight", s + ".query.bias", hidden, hidden, aloc, s + ".q"),
          batch, seq, heads, headDim, aloc, s + ".q");
      Value k = g.splitHeads(g.linear(h, s + ".key.weight", s + ".key.bias", hidden, hidden, aloc, s + ".k"),
          batch, seq, heads, headDim, aloc, s + ".k");
      Value v = g.splitHeads(g.linear(h, s + ".value.weight", s + ".value.bias", hidden, hidden, aloc, s + ".v"),
          batch, seq, heads, headDim, aloc, s + ".v");
      Value a = g.b.add(new TransformerOp.Attention(q, k, v, additive, 1.0 / Math.sqrt(headDim), false, 0), aloc,
          s + ".attn");
      a = g.mergeHeads(a, batch, seq, heads, headDim, aloc, s + ".attn");
      String o = p + ".attention.output";
      Location oloc = new Location(o);
      a = g.linear(a, o + ".dense.weight", o + ".dense.bias", hidden, hidden, oloc, o + ".dense");
      h = layerNorm(g, g.add(a, h, oloc, o + ".residual"), o + ".LayerNorm");
      Location iloc = new Location(p + ".intermediate");
      Value f = g.linear(h, p + ".intermediate.dense.weight", p + ".intermediate.dense.bias", hidden, intermediate,
          iloc, p + ".intermediate");
      f = switch (act) {
        case GELU_ERF -> g.b.add(new TransformerOp.Gelu(f, false), iloc, p + ".intermediate.act");
        case GELU_TANH -> g.b.add(new TransformerOp.Gelu(f, true), iloc, p + ".intermediate.act");
        case SILU -> g.b.add(new TransformerOp.Silu(f), iloc, p + ".intermediate.act");
      };
      Location outLoc = new Location(p + ".output");
      f = g.linear(f, p + ".output.dense.weight", p + ".output.dense.bias", intermediate, hidden, outLoc,
          p + ".output.dense");
      h = layerNorm(g, g.add(f, h, outLoc, p + ".output.residual"), p + ".output.LayerNorm");
    }
    g.b.function().setOutputs(List.of(new Function.Output("last_hidden_state", h)));
    String pre = g.weights.prefix();
    g.weights.checkComplete(ctx.checkpointPath, name -> name.startsWith("pooler.") || name.startsWith(pre + "pooler.")
        || name.startsWith("cls.") || name.endsWith("embeddings.position_ids"));
    ctx.checkBindings();
    return g.b.function();
  }

  private Value layerNorm(Graph g, Value x, String module) {
    Location loc = new Location(module);
    Value w = g.weights.use(module + ".weight", List.of(hidden), loc);
    Value b = g.weights.use(module + ".bias", List.of(hidden), loc);
    return g.b.add(new TransformerOp.LayerNorm(x, w, b, -1, eps), loc, module);
  }
}
