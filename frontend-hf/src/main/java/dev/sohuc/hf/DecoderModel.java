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
import java.util.Optional;

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
  /**
   * The most positions tables that must be inline hold (RotaryTables.tabulatedPositions;
   * Phi-3's longrope serves 4096).
   */
  static final long MAX_TABULATED_POSITIONS = 1L << 16;
  /** The most values (positions x rotary dims) each of those tables holds: 64 MB of f32. */
  static final long MAX_TABULATED_VALUES = 1L << 24;

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
  /** Whether the rotary tables are always inline (RotaryTables.tabulatedPositions). */
  private final boolean tabulated;
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
    layers = c.getCount(HfConfig.MAX_LAYERS, "num_hidden_layers");
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
    // the widths the graph derives must not wrap: q's (k's and v's divide it) and Phi-3's fused ones
    long qWidth = c.times(heads, headDim, "num_attention_heads x head_dim");
    if (family == Family.PHI3) {
      c.times(3, qWidth, "qkv_proj's width, 3 x num_attention_heads x head_dim,");
      c.times(2, intermediate, "gate_up_proj's width, 2 x intermediate_size,");
    }
    vocab = c.getPositive("vocab_size");
    eps = c.getNonNegative(1e-6, "rms_norm_eps");
    theta = c.getDouble(10000.0, "rope_theta");
    if (!(theta > 0) || Double.isInfinite(theta)) {
      // theta ** (2i/d) of zero or a negative theta makes every rotary angle inf or NaN
      throw c.error("key \"rope_theta\" must be a positive number, got " + theta);
    }
    // longrope and dynamic rope change their frequencies past a position: served below it,
    // with inline tables that every program checks its positions against
    Optional<Long> tabulatedPositions = RotaryTables.tabulatedPositions(c);
    tabulated = tabulatedPositions.isPresent();
    maxPositions = tabulatedPositions.orElseGet(() -> c.getPositive("max_position_embeddings"));
    if (tabulated && maxPositions > MAX_TABULATED_POSITIONS) {
      throw c.error("rope_scaling serves " + maxPositions + " positions from inline tables, "
          + "more than the " + MAX_TABULATED_POSITIONS + " this importer tabulates");
    }
    double partial = c.getDouble(1.0, "partial_rotary_factor");
    if (headDim * partial > Integer.MAX_VALUE) {
      throw c.error("head_dim " + headDim + " gives " + (long) (headDim * partial)
          + " rotary dims, more than this importer builds");
    }
    rotaryDim = (int) (headDim * partial);
    if (rotaryDim <= 0 || rotaryDim % 2 != 0 || rotaryDim > headDim) {
      throw c.error("partial_rotary_factor " + partial + " gives " + rotaryDim
          + " rotary dims of head_dim " + headDim + "; it must be even and positive");
    }
    // divided, not multiplied: the tables' length would overflow the int it is allocated with
    if (tabulated && maxPositions > MAX_TABULATED_VALUES / rotaryDim) {
      throw c.error("rope_scaling serves " + maxPositions + " positions of " + rotaryDim + " rotary dims from "
          + "inline tables, more than the " + MAX_TABULATED_VALUES + " values this importer tabulates");
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
      experts = c.getCount(HfConfig.MAX_EXPERTS, "num_local_experts");
      if (layers * experts > HfConfig.MAX_EXPERTS_IN_ALL_LAYERS) {
        throw c.error("num_hidden_layers (" + layers + ") x num_local_experts (" + experts + ") is "
            + layers * experts + " experts, more than the " + HfConfig.MAX_EXPERTS_IN_ALL_LAYERS
            + " this importer builds");
      }
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
    if (ctx.step()) {
      return buildStep();
    }
    if (ctx.raggedDecode()) {
      return buildRaggedDecode();
    }
    Dim batch = ctx.dim("batch");
    Dim seq = ctx.dim("seq");
    Dim past = ctx.decode() ? ctx.dim("past") : Dim.of(0);
    List<Value> args = new ArrayList<>();
    Value ids = ModelContext.arg("input_ids", List.of(batch, seq), ElementType.I64);
    args.add(ids);
    List<Value> caches = ctx.decode() ? cacheArguments(batch, past) : List.of();
    args.addAll(caches);
    checkPositions(past, seq);
    Graph g = ctx.start(args, "");
    Value table = embeddingTable(g);
    Value h = embed(g, table, ids, "embeddings");
    Value[] cosSin = rotary(g, past, seq);
    List<Function.Output> presents = new ArrayList<>();
    h = layers(g, List.of(h), (qkv, i, m) -> {
      Value[] kv = new Value[2];
      Value a = headsAttention(g, qkv, i, batch, seq, cosSin,
          ctx.decode() ? caches.subList(2 * i, 2 * i + 2) : null, kv, "");
      presents.add(new Function.Output("present." + i + ".key", kv[0]));
      presents.add(new Function.Output("present." + i + ".value", kv[1]));
      return List.of(a);
    }).get(0);
    Value logits = lmHead(g, rmsNorm(g, h, "model.norm", "final_norm"), table);
    List<Function.Output> outputs = new ArrayList<>();
    outputs.add(new Function.Output("logits", logits));
    outputs.addAll(presents);
    return finish(g, outputs);
  }

  /**
   * A serving step: one prompt of {@code micro x seq} tokens (positions 0 .. micro*seq-1) and
   * {@code batch} decode sequences of one token each, decode b at position
   * {@code past_lengths[b]}, in one graph. The prompt's rows and the decodes' rows go through
   * every linear layer together, so the weights are read once per step (once per micro-batch: a
   * micro-batch's layer then sums on the link while the next one computes); only attention splits
   * them (the prompt attends to itself causally, each decode to its own cache). Inputs
   * {@code input_ids [micro, seq]} (the prompt, row after row), {@code decode_ids [batch, 1]},
   * {@code past_lengths [batch]} (the tokens each decode's cache holds) and the decodes'
   * {@code past_key_values.N.* [batch, kv_heads, past, head_dim]}, caches of capacity
   * {@code past} (at least every past length plus one); outputs {@code logits [1, 1+batch, vocab]}
   * (the prompt's last position, then each decode: what serving samples from), the decodes'
   * caches {@code present.N.*} with each new key and value written at its sequence's length, and
   * the prompt's new cache {@code prompt.present.N.* [1, kv_heads, micro*seq, head_dim]}.
   */
  private Function buildStep() {
    int micro = ctx.options.microBatches();
    Dim batch = ctx.dim("batch");
    Dim seq = ctx.dim("seq");
    Dim past = ctx.dim("past");
    Value ids = ModelContext.arg("input_ids", List.of(Dim.of(micro), seq), ElementType.I64);
    Value decodeIds = ModelContext.arg("decode_ids", List.of(batch, Dim.of(1)), ElementType.I64);
    Value pastLengths = ModelContext.arg("past_lengths", List.of(batch), ElementType.I64);
    List<Value> caches = cacheArguments(batch, past);
    List<Value> args = new ArrayList<>(List.of(ids, decodeIds, pastLengths));
    args.addAll(caches);
    checkPositions(Dim.of(0), seq.times(Dim.of(micro)));
    checkPositions(past, Dim.of(0));
    Graph g = ctx.start(args, "");
    Value table = embeddingTable(g);
    Location embedLoc = new Location("model.embed_tokens");
    List<Value> streams = new ArrayList<>();
    List<Value[]> promptRope = new ArrayList<>();
    for (int m = 0; m < micro; m++) {
      Value rowIds = micro == 1 ? ids : g.b.add(new DataOp.Slice(ids, List.of(Dim.of(m)), List.of(Dim.of(m + 1)),
          List.of(0L), List.of(1L)), embedLoc, "input_ids.micro" + m);
      streams.add(embed(g, table, rowIds, "prompt_embeddings"));
      promptRope.add(rotary(g, seq.times(Dim.of(m)), seq));
    }
    // the decodes' rows ride on the first micro-batch, whose causal attention is the cheapest
    Value decodes = g.reshape(embed(g, table, decodeIds, "decode_embeddings"),
        List.of(Dim.of(1), batch, Dim.of(hidden)), embedLoc, "decode_embeddings.rows");
    streams.set(0, g.b.add(new DataOp.Concat(List.of(streams.get(0), decodes), 1), embedLoc,
        "embeddings"));
    Value[] decodeRope = rotaryAt(g, pastLengths);
    List<Function.Output> presents = new ArrayList<>();
    List<Function.Output> promptPresents = new ArrayList<>();
    List<Value> promptKeys = new ArrayList<>();
    List<Value> promptValues = new ArrayList<>();
    List<Value> h = layers(g, streams, (qkv, i, m) -> {
      Location loc = new Location("model.layers." + i + ".self_attn");
      String segment = micro == 1 ? ".prompt" : ".prompt" + m;
      // the decodes' attention first (it reads nothing of the prompt's): a second control
      // stream runs it while this one does the prompt's
      Value decode = null;
      if (m == 0) {
        Value[] decodeKv = new Value[2];
        decode = decodeAttention(g, rowsOf(g, qkv, seq, batch, loc), i, batch, decodeRope,
            caches.subList(2 * i, 2 * i + 2), pastLengths, decodeKv);
        presents.add(new Function.Output("present." + i + ".key", decodeKv[0]));
        presents.add(new Function.Output("present." + i + ".value", decodeKv[1]));
        decode = g.reshape(decode, List.of(Dim.of(1), batch, decode.type().dim(2)), loc,
            "decode.attn.rows");
      }
      Value[] promptKv = new Value[2];
      // micro-batch m's queries see the keys of micro-batches 0 .. m
      Value prompt = headsAttention(g, rowsOf(g, qkv, Dim.of(0), seq, loc), i, Dim.of(1), seq, promptRope.get(m),
          m == 0 ? null : List.of(promptKeys.get(m - 1), promptValues.get(m - 1)), promptKv, segment);
      promptKeys.add(promptKv[0]);
      promptValues.add(promptKv[1]);
      if (m == micro - 1) {
        promptPresents.add(new Function.Output("prompt.present." + i + ".key", promptKv[0]));
        promptPresents.add(new Function.Output("prompt.present." + i + ".value", promptKv[1]));
        promptKeys.clear();
        promptValues.clear();
      }
      // joined before the o projection, not here: with overlapped attention an MLP comes
      // between, and it must not wait for both attentions
      return m > 0 ? List.of(prompt) : List.of(prompt, decode);
    }, (m, hm) -> {
      // the rows serving samples from, taken as soon as each stream is done: the prompt's last
      // position (the last micro-batch's) and every decode (the first's), in that order; a
      // middle micro-batch has none
      if (m > 0 && m < micro - 1) {
        return hm;
      }
      Dim from = m == micro - 1 ? seq.minus(Dim.of(1)) : seq;
      Dim to = m == 0 ? seq.plus(batch) : seq;
      return g.b.add(new DataOp.Slice(hm, List.of(from), List.of(to), List.of(1L), List.of(1L)),
          new Location("lm_head"), m == 0 ? "decode_hidden" : "prompt_last_hidden");
    });
    Value sampled = micro == 1 ? h.get(0) : g.b.add(new DataOp.Concat(List.of(h.get(micro - 1), h.get(0)), 1),
        new Location("lm_head"), "sampled_hidden");
    sampled = rmsNorm(g, sampled, "model.norm", "final_norm");
    List<Function.Output> outputs = new ArrayList<>();
    outputs.add(new Function.Output("logits", lmHead(g, sampled, table)));
    outputs.addAll(presents);
    outputs.addAll(promptPresents);
    return finish(g, outputs);
  }

  /**
   * A decode step of one token a sequence, sequence b at position {@code past_lengths[b]}: inputs
   * {@code input_ids [batch, 1]}, {@code past_lengths [batch]} and {@code past_key_values.N.*}
   * (caches of capacity {@code past}); outputs {@code logits [batch, 1, vocab]} and the caches
   * {@code present.N.*} with each new key and value written at its sequence's length. The
   * decodes of {@link #buildStep} without the prompt.
   */
  private Function buildRaggedDecode() {
    Dim batch = ctx.dim("batch");
    Dim past = ctx.dim("past");
    Value ids = ModelContext.arg("input_ids", List.of(batch, Dim.of(1)), ElementType.I64);
    Value pastLengths = ModelContext.arg("past_lengths", List.of(batch), ElementType.I64);
    List<Value> caches = cacheArguments(batch, past);
    List<Value> args = new ArrayList<>(List.of(ids, pastLengths));
    args.addAll(caches);
    checkPositions(past, Dim.of(0));
    Graph g = ctx.start(args, "");
    Value table = embeddingTable(g);
    Value[] rope = rotaryAt(g, pastLengths);
    List<Function.Output> presents = new ArrayList<>();
    Value h = layers(g, List.of(embed(g, table, ids, "embeddings")), (qkv, i, m) -> {
      Value[] kv = new Value[2];
      Value a = decodeAttention(g, qkv, i, batch, rope, caches.subList(2 * i, 2 * i + 2), pastLengths, kv);
      presents.add(new Function.Output("present." + i + ".key", kv[0]));
      presents.add(new Function.Output("present." + i + ".value", kv[1]));
      return List.of(a);
    }).get(0);
    List<Function.Output> outputs = new ArrayList<>();
    outputs.add(new Function.Output("logits", lmHead(g, rmsNorm(g, h, "model.norm", "final_norm"), table)));
    outputs.addAll(presents);
    return finish(g, outputs);
  }

  /** {@code past_key_values.N.key} and {@code .value} of every layer, in that order. */
  private List<Value> cacheArguments(Dim batch, Dim past) {
    List<Dim> cacheDims = List.of(batch, Dim.of(kvHeads), past, Dim.of(headDim));
    List<Value> caches = new ArrayList<>();
    for (int i = 0; i < layers; i++) {
      caches.add(ModelContext.arg("past_key_values." + i + ".key", cacheDims, ElementType.F32));
      caches.add(ModelContext.arg("past_key_values." + i + ".value", cacheDims, ElementType.F32));
    }
    return caches;
  }

  private Value embeddingTable(Graph g) {
    return g.weights.use("model.embed_tokens.weight", List.of(vocab, hidden), new Location("model.embed_tokens"));
  }

  private Value embed(Graph g, Value table, Value ids, String hint) {
    Location loc = new Location("model.embed_tokens");
    Value h = g.b.add(new TransformerOp.Embedding(table, ids), loc, hint);
    if (family == Family.GEMMA) {
      // Gemma scales by sqrt(hidden_size) rounded to the activation dtype (f32 here).
      h = g.binary(BinaryKind.MUL, h, g.scalar((float) Math.sqrt(hidden), loc, "normalizer"), loc, hint);
    }
    return h;
  }

  /**
   * What a layer's attention makes of micro-batch {@code m}'s q, k and v projections:
   * {@code [.., rows, heads * head_dim]}, in parts whose rows the o projection reads in turn.
   */
  private interface AttentionCore {
    List<Value> apply(Value[] qkv, int layer, int m);
  }

  /**
   * The decoder blocks over the residual streams of the micro-batches (one for a plain graph),
   * attention's middle from {@code core}. Each half of a layer (attention, then the MLP) runs
   * for every micro-batch in turn, and a micro-batch's residual add comes with its next norm,
   * after the other micro-batches' work of that half: the sum on the link of one micro-batch's
   * o or down projection (tensor parallelism) has the next one's ops to overlap. With
   * overlapped attention each micro-batch's o projection and MLP wait until the next
   * micro-batch's attention is issued (the last's, the first's of the next layer), so that
   * every attention has an MLP to run beside.
   */
  private List<Value> layers(Graph g, List<Value> streams, AttentionCore core) {
    return layers(g, streams, core, (m, h) -> h);
  }

  /** {@link #layers}, each stream passed through {@code tail} as soon as its last layer is done. */
  private List<Value> layers(Graph g, List<Value> streams, AttentionCore core,
      java.util.function.BiFunction<Integer, Value, Value> tail) {
    List<Value> h = new ArrayList<>(streams);
    // each micro-batch's MLP or o projection output, added to its residual stream later
    List<Value> branch = new ArrayList<>(java.util.Collections.nCopies(h.size(), (Value) null));
    // each micro-batch's attention, not yet projected
    List<List<Value>> attention =
        new ArrayList<>(java.util.Collections.nCopies(h.size(), List.of()));
    int micro = h.size();
    boolean overlapped = ctx.options.overlapAttention() && micro > 1;
    for (int i = 0; i < layers; i++) {
      for (int m = 0; m < micro; m++) {
        if (!overlapped) {
          branch.set(m, outputProjection(g, attentionHalf(g, h, branch, core, i, m), i));
          continue;
        }
        // the micro-batch before this one (the last, of the layer before, for the first)
        int before = (m + micro - 1) % micro;
        int itsLayer = m == 0 ? i - 1 : i;
        if (itsLayer >= 0) {
          branch.set(before, outputProjection(g, attention.get(before), itsLayer));
        }
        attention.set(m, attentionHalf(g, h, branch, core, i, m));
        if (itsLayer >= 0) {
          mlpHalf(g, h, branch, itsLayer, before);
        }
      }
      if (!overlapped) {
        for (int m = 0; m < micro; m++) {
          mlpHalf(g, h, branch, i, m);
        }
      }
    }
    if (overlapped) {
      int last = (int) layers - 1;
      branch.set(micro - 1, outputProjection(g, attention.get(micro - 1), last));
      mlpHalf(g, h, branch, last, micro - 1);
    }
    for (int m = 0; m < h.size(); m++) {
      h.set(m, tail.apply(m, g.add(h.get(m), branch.get(m), new Location("model.layers." + (layers - 1)),
          "model.layers." + (layers - 1) + ".mlp_residual")));
    }
    return h;
  }

  /**
   * Layer {@code i}'s attention of micro-batch {@code m} up to its o projection: the MLP
   * output of the layer before added to the residual stream, the norm, the projections and
   * {@code core}.
   */
  private List<Value> attentionHalf(Graph g, List<Value> h, List<Value> branch, AttentionCore core,
      int i, int m) {
    String p = "model.layers." + i;
    Value r = i == 0 ? h.get(m) : g.add(h.get(m), branch.get(m),
        new Location("model.layers." + (i - 1)), "model.layers." + (i - 1) + ".mlp_residual");
    h.set(m, r);
    Value x = rmsNorm(g, r, p + ".input_layernorm", p + ".norm1");
    return core.apply(projections(g, x, i), i, m);
  }

  /**
   * Layer {@code i}'s MLP half of micro-batch {@code m}: the attention's residual, the norm, the
   * MLP.
   */
  private void mlpHalf(Graph g, List<Value> h, List<Value> branch, int i, int m) {
    String p = "model.layers." + i;
    Value r = g.add(h.get(m), branch.get(m), new Location(p), p + ".attn_residual");
    h.set(m, r);
    Value x = rmsNorm(g, r, p + ".post_attention_layernorm", p + ".norm2");
    branch.set(m, family == Family.MIXTRAL ? moe(g, x, p) : mlp(g, x, p + ".mlp"));
  }

  private Value lmHead(Graph g, Value h, Value table) {
    Location headLoc = new Location("lm_head");
    if (tied) {
      Value wt = g.transpose(table, List.of(1L, 0L), headLoc, "lm_head.wT");
      return g.matmul(h, wt, headLoc, "logits");
    }
    return g.linear(h, "lm_head.weight", null, hidden, vocab, headLoc, "logits");
  }

  private Function finish(Graph g, List<Function.Output> outputs) {
    g.b.function().setOutputs(outputs);
    g.weights.checkComplete(ctx.checkpointPath,
        name -> name.endsWith(".rotary_emb.inv_freq") || (tied && name.equals("lm_head.weight")));
    ctx.checkBindings();
    return g.b.function();
  }

  private void checkPositions(Dim past, Dim seq) {
    Dim end = past.plus(seq);
    if (end.isStatic() && end.value() > maxPositions) {
      throw c.error("past + seq (" + end.value() + ") exceeds " + (RotaryTables.longrope(c)
          ? "original_max_position_embeddings (" + maxPositions + "): longrope's long factors, "
              + "which HF takes past it, are not supported"
          : "max_position_embeddings (" + maxPositions + ")"));
    }
  }

  private Value rmsNorm(Graph g, Value x, String module, String hint) {
    Location loc = new Location(module);
    Value w = g.weights.use(module + ".weight", List.of(hidden), loc);
    double offset = family == Family.GEMMA ? 1.0 : 0.0;
    return g.b.add(new TransformerOp.RmsNorm(x, w, eps, offset), loc, hint);
  }

  /** The rotary tables (small models) or inverse frequencies (large ones), made once per graph. */
  private Value cosTable;
  private Value sinTable;
  private Value invFreq;

  /** cos and sin {@code [seq, rotaryDim]} for positions {@code past .. past+seq-1}. */
  private Value[] rotary(Graph g, Dim past, Dim seq) {
    Location loc = new Location("model.rotary_emb");
    if (inlineRopeTables(g)) {
      return new Value[] {g.rows(cosTable, past, seq, loc, "cos"), g.rows(sinTable, past, seq, loc, "sin")};
    }
    Value pos = g.b.add(new SourceOp.Range(0, past.plus(seq), 1, ElementType.F32), loc, "positions");
    if (!past.is(0)) {
      pos = g.rows(pos, past, seq, loc, "positions.new");
    }
    return rotaryFromPositions(g, g.reshape(pos, List.of(seq, Dim.of(1)), loc, "positions.column"));
  }

  /**
   * cos and sin {@code [batch, 1, 1, rotaryDim]} at each position of {@code positions [batch]}
   * (to broadcast over a sequence's heads).
   */
  private Value[] rotaryAt(Graph g, Value positions) {
    Location loc = new Location("model.rotary_emb");
    Dim batch = positions.type().dim(0);
    Value[] tables;
    if (inlineRopeTables(g)) {
      tables = new Value[] {
          g.b.add(new TransformerOp.Embedding(cosTable, positions), loc, "cos.at"),
          g.b.add(new TransformerOp.Embedding(sinTable, positions), loc, "sin.at")};
    } else {
      Value pos = g.b.add(new ElementwiseOp.Cast(positions, ElementType.F32), loc, "positions.at");
      tables = rotaryFromPositions(g, g.reshape(pos, List.of(batch, Dim.of(1)), loc, "positions.at.column"));
    }
    List<Dim> perSequence = List.of(batch, Dim.of(1), Dim.of(1), Dim.of(rotaryDim));
    return new Value[] {g.reshape(tables[0], perSequence, loc, "cos.at.rows"),
        g.reshape(tables[1], perSequence, loc, "sin.at.rows")};
  }

  /**
   * Whether the rotary tables are inline weights (made here once) rather than computed from the
   * positions with the inverse frequencies (made here once instead).
   */
  private boolean inlineRopeTables(Graph g) {
    Location loc = new Location("model.rotary_emb");
    // divided, not multiplied: max_position_embeddings near 2^63 must not wrap to a small table
    if (tabulated || maxPositions <= INLINE_ROPE_TABLE_LIMIT / rotaryDim) {
      if (cosTable == null) {
        RotaryTables t = RotaryTables.compute(c, theta, rotaryDim, (int) maxPositions);
        TensorType type = TensorType.of(ElementType.F32, maxPositions, rotaryDim);
        cosTable = g.weights.inline("rotary_emb.cos", type, RotaryTables.bytes(t.cos), loc);
        sinTable = g.weights.inline("rotary_emb.sin", type, RotaryTables.bytes(t.sin), loc);
      }
      return true;
    }
    // Large tables (long-context models) are computed from the positions instead.
    if (invFreq == null) {
      float[] inv = RotaryTables.inverseFrequencies(c, theta, rotaryDim);
      invFreq = g.weights.inline("rotary_emb.inv_freq", TensorType.of(ElementType.F32, 1, inv.length),
          RotaryTables.bytes(inv), loc);
    }
    return false;
  }

  /** cos and sin {@code [n, rotaryDim]} of the positions column {@code pos [n, 1]} (f32). */
  private Value[] rotaryFromPositions(Graph g, Value pos) {
    Location loc = new Location("model.rotary_emb");
    Value freqs = g.matmul(pos, invFreq, loc, "freqs");
    Value emb = g.b.add(new DataOp.Concat(List.of(freqs, freqs), -1), loc, "angles");
    Value cos = g.b.add(new ElementwiseOp.Unary(UnaryKind.COS, emb), loc, "cos");
    Value sin = g.b.add(new ElementwiseOp.Unary(UnaryKind.SIN, emb), loc, "sin");
    float factor = RotaryTables.attentionFactor(c);
    if (factor == 1.0f) {
      return new Value[] {cos, sin};
    }
    Value scale = g.scalar(factor, loc, "attention_factor");
    return new Value[] {g.binary(BinaryKind.MUL, cos, scale, loc, "cos.scaled"),
        g.binary(BinaryKind.MUL, sin, scale, loc, "sin.scaled")};
  }

  /** The q, k and v projections of {@code x}, heads not yet split. */
  private Value[] projections(Graph g, Value x, int layer) {
    String p = "model.layers." + layer + ".self_attn";
    Location loc = new Location(p);
    long qOut = heads * headDim;
    long kvOut = kvHeads * headDim;
    if (family == Family.PHI3) {
      Value qkv = g.linear(x, p + ".qkv_proj.weight", null, hidden, qOut + 2 * kvOut, loc, p + ".qkv");
      return g.b.addNode(new DataOp.Split(qkv, -1, List.of(Dim.of(qOut), Dim.of(kvOut), Dim.of(kvOut))),
          loc, List.of(p + ".q", p + ".k", p + ".v")).results().toArray(Value[]::new);
    }
    return new Value[] {
        g.linear(x, p + ".q_proj.weight", qkvBias ? p + ".q_proj.bias" : null, hidden, qOut, loc, p + ".q"),
        g.linear(x, p + ".k_proj.weight", qkvBias ? p + ".k_proj.bias" : null, hidden, kvOut, loc, p + ".k"),
        g.linear(x, p + ".v_proj.weight", qkvBias ? p + ".v_proj.bias" : null, hidden, kvOut, loc, p + ".v")};
  }

  /** Rows {@code [start, start+count)} (axis 1) of each of q, k and v. */
  private static Value[] rowsOf(Graph g, Value[] qkv, Dim start, Dim count, Location loc) {
    Value[] out = new Value[qkv.length];
    for (int i = 0; i < qkv.length; i++) {
      out[i] = g.b.add(new DataOp.Slice(qkv[i], List.of(start), List.of(start.plus(count)), List.of(1L),
          List.of(1L)), loc, qkv[i].name() + ".rows");
    }
    return out;
  }

  /**
   * Rotary embeddings, the KV cache ({@code cache}: the layer's past key and value, those of the
   * prompt's earlier micro-batches, or null) and attention over {@code [batch, seq]} rows of q, k
   * and v; returns {@code [batch, seq, heads * head_dim]} and puts the layer's new key and value
   * (the present) in {@code presentOut}.
   */
  private Value headsAttention(Graph g, Value[] qkv, int layer, Dim batch, Dim seq, Value[] cosSin,
                               List<Value> cache, Value[] presentOut, String segment) {
    String p = "model.layers." + layer + ".self_attn";
    String hint = p + segment;
    Location loc = new Location(p);
    Value q = g.splitHeads(qkv[0], batch, seq, heads, headDim, loc, hint + ".q");
    Value k = g.splitHeads(qkv[1], batch, seq, kvHeads, headDim, loc, hint + ".k");
    Value v = g.splitHeads(qkv[2], batch, seq, kvHeads, headDim, loc, hint + ".v");
    var style = TransformerOp.RopeStyle.ROTATE_HALF;
    q = g.b.add(new TransformerOp.Rope(q, cosSin[0], cosSin[1], style), loc, hint + ".q_rot");
    k = g.b.add(new TransformerOp.Rope(k, cosSin[0], cosSin[1], style), loc, hint + ".k_rot");
    if (cache != null) {
      k = g.b.add(new TransformerOp.KvCacheAppend(cache.get(0), k), loc, "present." + layer + segment + ".key");
      v = g.b.add(new TransformerOp.KvCacheAppend(cache.get(1), v), loc, "present." + layer + segment + ".value");
    }
    presentOut[0] = k;
    presentOut[1] = v;
    return attend(g, q, k, v, null, layer, batch, seq, hint);
  }

  /**
   * A step's decodes' attention: decode row b ({@code qkv} rows {@code [1, batch, ..]} or
   * {@code [batch, 1, ..]}) over its own cache ({@code cache}: the layer's past key and value, capacity {@code past}), its new key
   * and value written at position {@code pastLengths[b]}. Returns {@code [batch, 1, heads *
   * head_dim]} and puts the written caches in {@code presentOut}.
   */
  private Value decodeAttention(Graph g, Value[] qkv, int layer, Dim batch, Value[] cosSin, List<Value> cache,
                                Value pastLengths, Value[] presentOut) {
    String p = "model.layers." + layer + ".self_attn";
    String hint = p + ".decode";
    Location loc = new Location(p);
    Value q = decodeHeads(g, qkv[0], batch, heads, cosSin, loc, hint + ".q");
    Value k = decodeHeads(g, qkv[1], batch, kvHeads, cosSin, loc, hint + ".k");
    Value v = decodeHeads(g, qkv[2], batch, kvHeads, null, loc, hint + ".v");
    presentOut[0] = g.b.add(new TransformerOp.KvCacheWrite(cache.get(0), k, pastLengths), loc,
        "present." + layer + ".key");
    presentOut[1] = g.b.add(new TransformerOp.KvCacheWrite(cache.get(1), v, pastLengths), loc,
        "present." + layer + ".value");
    return attend(g, q, presentOut[0], presentOut[1], pastLengths, layer, batch, Dim.of(1), hint);
  }

  /**
   * The decodes' rows {@code [1, batch, n * head_dim]} as heads {@code [batch, n, 1, head_dim]},
   * rotated by {@code cosSin} (row b's tables, {@code [batch, 1, 1, rotary_dim]}: shared by its
   * heads) unless it is null.
   */
  private Value decodeHeads(Graph g, Value rows, Dim batch, long n, Value[] cosSin, Location loc, String hint) {
    Value x = g.splitHeads(rows, batch, Dim.of(1), n, headDim, loc, hint);
    if (cosSin == null) {
      return x;
    }
    return g.b.add(new TransformerOp.Rope(x, cosSin[0], cosSin[1], TransformerOp.RopeStyle.ROTATE_HALF), loc,
        hint + "_rot");
  }

  /** Attention of {@code [batch, heads, seq, head_dim]} queries, heads merged: {@code [batch, seq, ..]}. */
  private Value attend(Graph g, Value q, Value k, Value v, Value pastLengths, int layer, Dim batch, Dim seq,
                       String hint) {
    Location loc = new Location("model.layers." + layer + ".self_attn");
    long window = slidingWindow > 0 && layer >= firstWindowLayer ? slidingWindow : 0;
    Value a = g.b.add(new TransformerOp.Attention(q, k, v, null, pastLengths, 1.0 / Math.sqrt(headDim), true,
        window), loc, hint + ".attn");
    return g.mergeHeads(a, batch, seq, heads, headDim, loc, hint + ".attn");
  }

  /** The o projection of the attention's rows, in {@code parts} joined along the rows. */
  private Value outputProjection(Graph g, List<Value> parts, int layer) {
    String p = "model.layers." + layer + ".self_attn";
    Value a = parts.size() == 1 ? parts.get(0)
        : g.b.add(new DataOp.Concat(parts, 1), new Location(p), "attn.rows");
    return g.linear(a, p + ".o_proj.weight", outBias ? p + ".o_proj.bias" : null, heads * headDim, hidden,
        new Location(p), p + ".o");
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
