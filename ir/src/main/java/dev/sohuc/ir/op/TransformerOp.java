package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.List;

/**
 * The transformer-level ops that fusion produces and the HF frontend emits directly; each maps
 * onto one fused engine function or a short instruction sequence of the chip.
 */
public sealed interface TransformerOp extends Op {

  /**
   * {@code %o = attention %q, %k, %v, %mask {scale = 0.125, causal = true, window = 0}}:
   * {@code softmax(scale * q @ k^T + mask) @ v} per head. q is {@code [B, Hq, S, D]}, k and v
   * {@code [B, Hkv, T, D]} with {@code Hq} a multiple of {@code Hkv} (grouped-query attention:
   * query head h reads kv head {@code h / (Hq/Hkv)}). The optional additive mask broadcasts to
   * {@code [B, Hq, S, T]}. Causal masking aligns the queries with the last S keys (query i sees
   * keys {@code j <= i + T - S}), which is what a decode step over a KV cache needs; a non-zero
   * window also hides keys more than {@code window - 1} positions back (sliding window). k and v
   * may be stored in a narrower float type than q and the mask (a bf16 KV cache); the result has
   * q's type.
   *
   * <p>The optional integer {@code past_lengths [B]} (the operand after the mask, told from it by
   * its integer type) makes the key count per batch row: sequence b's cache holds
   * {@code past_lengths[b]} tokens and its S queries are the tokens after them, so it sees keys
   * {@code j < past_lengths[b] + S} of its T (a serving step's decodes, each with its own KV
   * length, over caches of one capacity T); causal masking and the window then count from its
   * queries' positions {@code past_lengths[b] + i}.
   */
  record Attention(Value q, Value k, Value v, Value mask, Value pastLengths, double scale, boolean causal,
                   long window) implements TransformerOp {
    public Attention(Value q, Value k, Value v, Value mask, double scale, boolean causal, long window) {
      this(q, k, v, mask, null, scale, causal, window);
    }

    @Override
    public String mnemonic() {
      return "attention";
    }

    @Override
    public List<Value> operands() {
      return OpRegistry.present(q, k, v, mask, pastLengths);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("scale", scale), Attr.Named.of("causal", causal),
          Attr.Named.of("window", window));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      ElementType t = Shapes.sameElementType(OpRegistry.present(q, mask), "q and mask");
      Shapes.sameElementType(List.of(k, v), "k and v");
      Shapes.requireFloat(q, "q");
      Shapes.requireFloat(k, "k");
      for (Value x : List.of(q, k, v)) {
        Shapes.requireRank(x, "q, k and v", 4);
      }
      var qd = q.type().dims();
      var kd = k.type().dims();
      var vd = v.type().dims();
      Shapes.requireSameDim(qd.get(0), kd.get(0), "batch dims of q and k");
      Shapes.requireSameDim(kd.get(0), vd.get(0), "batch dims of k and v");
      Shapes.requireSameDim(kd.get(1), vd.get(1), "head counts of k and v");
      Shapes.requireSameDim(kd.get(2), vd.get(2), "key lengths of k and v");
      Shapes.requireSameDim(qd.get(3), kd.get(3), "head sizes of q and k");
      Dim hq = qd.get(1);
      Dim hkv = kd.get(1);
      if (hq.isStatic() && hkv.isStatic() && (hkv.value() == 0 || hq.value() % hkv.value() != 0)) {
        throw new OpException("query heads (" + hq + ") must be a multiple of kv heads (" + hkv + ")");
      }
      if (window < 0) {
        throw new OpException("window must be 0 (none) or positive, got " + window);
      }
      if (pastLengths != null) {
        checkPastLengths(pastLengths, qd.get(0));
      }
      if (mask != null) {
        List<Dim> scores = List.of(qd.get(0), hq, qd.get(2), kd.get(2));
        if (mask.type().rank() > 4 || !Shapes.broadcast(scores, mask.type().dims()).equals(scores)) {
          throw new OpException("mask of shape " + Shapes.dimsText(mask.type().dims())
              + " does not broadcast to the scores " + Shapes.dimsText(scores));
        }
      }
      return List.of(new TensorType(List.of(qd.get(0), hq, qd.get(2), vd.get(3)), t));
    }
  }

  /**
   * {@code %present = kv_cache_append %past, %new}: the cache {@code [B, H, P, D]} with the new
   * keys or values {@code [B, H, S, D]} after it, {@code [B, H, P+S, D]}.
   */
  record KvCacheAppend(Value past, Value current) implements TransformerOp {
    @Override
    public String mnemonic() {
      return "kv_cache_append";
    }

    @Override
    public List<Value> operands() {
      return List.of(past, current);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      ElementType t = checkCacheAndNew(past, "past", current);
      List<Dim> out = new ArrayList<>(past.type().dims());
      out.set(2, past.type().dim(2).plus(current.type().dim(2)));
      return List.of(new TensorType(out, t));
    }
  }

  /**
   * {@code %present = kv_cache_write %cache, %new, %past_lengths}: the cache {@code [B, H, T, D]}
   * with sequence b's new keys or values {@code [B, H, S, D]} written at positions
   * {@code past_lengths[b] .. past_lengths[b]+S-1}: a cache of capacity T whose sequences each
   * hold their own number of tokens. Every {@code past_lengths[b] + S} must be at most T.
   */
  record KvCacheWrite(Value cache, Value current, Value pastLengths) implements TransformerOp {
    @Override
    public String mnemonic() {
      return "kv_cache_write";
    }

    @Override
    public List<Value> operands() {
      return List.of(cache, current, pastLengths);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      ElementType t = checkCacheAndNew(cache, "cache", current);
      checkPastLengths(pastLengths, cache.type().dim(0));
      return List.of(new TensorType(cache.type().dims(), t));
    }
  }

  /**
   * A cache {@code [B, H, T, D]} and new entries {@code [B, H, S, D]} of one element type, which
   * it returns.
   */
  private static ElementType checkCacheAndNew(Value cache, String role, Value current) {
    ElementType t = Shapes.sameElementType(List.of(cache, current), "cache and new entries");
    Shapes.requireRank(cache, role, 4);
    Shapes.requireRank(current, "new", 4);
    for (int i : new int[] {0, 1, 3}) {
      Shapes.requireSameDim(cache.type().dim(i), current.type().dim(i), "dims " + i + " of cache and new entries");
    }
    return t;
  }

  /** The checks on a {@code past_lengths} operand: one integer per batch row. */
  private static void checkPastLengths(Value lengths, Dim batch) {
    Shapes.requireType(lengths, "past_lengths", ElementType.I64, ElementType.I32);
    Shapes.requireRank(lengths, "past_lengths", 1);
    Shapes.requireSameDim(lengths.type().dim(0), batch, "past_lengths and the batch");
  }

  /**
   * {@code %y = layer_norm %x, %gamma, %beta {axis = -1, eps = 1.0e-12}}: normalizes over dims
   * {@code axis..} to zero mean and unit variance, then {@code * gamma + beta} (beta optional).
   */
  record LayerNorm(Value x, Value gamma, Value beta, long axis, double eps) implements TransformerOp {
    @Override
    public String mnemonic() {
      return "layer_norm";
    }

    @Override
    public List<Value> operands() {
      return OpRegistry.present(x, gamma, beta);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("axis", axis), Attr.Named.of("eps", eps));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireFloat(x, "input");
      Shapes.sameElementType(operands(), "input, gamma and beta");
      int ax = Shapes.axis(axis, x.type().rank(), "axis");
      checkNormParam(gamma, x.type().dims().subList(ax, x.type().rank()), "gamma");
      if (beta != null) {
        checkNormParam(beta, x.type().dims().subList(ax, x.type().rank()), "beta");
      }
      if (!(eps >= 0)) {
        throw new OpException("eps must be non-negative, got " + eps);
      }
      return List.of(x.type());
    }
  }

  private static void checkNormParam(Value p, List<Dim> normalized, String role) {
    if (!Shapes.broadcast(normalized, p.type().dims()).equals(normalized) || p.type().rank() > normalized.size()) {
      throw new OpException(role + " of shape " + Shapes.dimsText(p.type().dims())
          + " does not match the normalized dims " + Shapes.dimsText(normalized));
    }
  }

  /**
   * {@code %y = rms_norm %x, %gamma {eps = 1.0e-6, gamma_offset = 0.0}}:
   * {@code x / sqrt(mean(x^2) + eps) * (gamma + gamma_offset)} over the last dim (Gemma uses
   * offset 1).
   */
  record RmsNorm(Value x, Value gamma, double eps, double gammaOffset) implements TransformerOp {
    @Override
    public String mnemonic() {
      return "rms_norm";
    }

    @Override
    public List<Value> operands() {
      return List.of(x, gamma);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("eps", eps), Attr.Named.of("gamma_offset", gammaOffset));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireFloat(x, "input");
      Shapes.sameElementType(operands(), "input and gamma");
      Shapes.requireMinRank(x, "input", 1);
      checkNormParam(gamma, List.of(x.type().dim(x.type().rank() - 1)), "gamma");
      if (!(eps >= 0)) {
        throw new OpException("eps must be non-negative, got " + eps);
      }
      return List.of(x.type());
    }
  }

  /** How rotary embeddings pair up the dims they rotate. */
  enum RopeStyle {
    /** Llama/NeoX: dim i pairs with dim i + R/2 ({@code rotate_half}). */
    ROTATE_HALF,
    /** GPT-J: dim 2i pairs with dim 2i+1. */
    INTERLEAVED
  }

  /**
   * {@code %y = rope %x, %cos, %sin {style = "rotate_half"}}: {@code x * cos + rotate(x) * sin}
   * on the first R dims of the last axis, where R is the last dim of cos and sin (partial rotary
   * when R is less than the head size); the other dims pass through. cos and sin broadcast to
   * x's shape over the leading dims.
   */
  record Rope(Value x, Value cos, Value sin, RopeStyle style) implements TransformerOp {
    @Override
    public String mnemonic() {
      return "rope";
    }

    @Override
    public List<Value> operands() {
      return List.of(x, cos, sin);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("style", style.name().toLowerCase()));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireFloat(x, "input");
      Shapes.sameElementType(operands(), "input, cos and sin");
      Shapes.requireMinRank(x, "input", 1);
      if (!cos.type().dims().equals(sin.type().dims())) {
        throw new OpException("cos and sin must have one shape, got " + cos.type() + " and " + sin.type());
      }
      Shapes.requireMinRank(cos, "cos", 1);
      Dim r = cos.type().dim(cos.type().rank() - 1);
      Dim d = x.type().dim(x.type().rank() - 1);
      if (!r.isStatic() || r.value() % 2 != 0 || (d.isStatic() && r.value() > d.value())) {
        throw new OpException("rotary dims (last dim of cos, " + r + ") must be even, static and at most the head size " + d);
      }
      List<Dim> lead = x.type().dims().subList(0, x.type().rank() - 1);
      List<Dim> tableLead = cos.type().dims().subList(0, cos.type().rank() - 1);
      if (tableLead.size() > lead.size() || !Shapes.broadcast(lead, tableLead).equals(lead)) {
        throw new OpException("cos of shape " + Shapes.dimsText(cos.type().dims())
            + " does not broadcast over the input " + Shapes.dimsText(x.type().dims()));
      }
      return List.of(x.type());
    }
  }

  /** {@code %y = gelu %x {approximate = "tanh"}}; {@code "none"} is the exact erf form. */
  record Gelu(Value x, boolean tanhApproximation) implements TransformerOp, Op.Elementwise {
    @Override
    public String mnemonic() {
      return "gelu";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("approximate", tanhApproximation ? "tanh" : "none"));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireFloat(x, "input");
      return List.of(x.type());
    }
  }

  /** {@code %y = silu %x}: {@code x * sigmoid(x)}. */
  record Silu(Value x) implements TransformerOp, Op.Elementwise {
    @Override
    public String mnemonic() {
      return "silu";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireFloat(x, "input");
      return List.of(x.type());
    }
  }

  /** {@code %y = swiglu %gate, %up}: {@code silu(gate) * up}, same shapes. */
  record SwiGlu(Value gate, Value up) implements TransformerOp, Op.Elementwise {
    @Override
    public String mnemonic() {
      return "swiglu";
    }

    @Override
    public List<Value> operands() {
      return List.of(gate, up);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireFloat(gate, "gate");
      Shapes.sameElementType(operands(), "gate and up");
      if (!gate.type().dims().equals(up.type().dims())) {
        throw new OpException("gate and up must have one shape, got " + gate.type() + " and " + up.type());
      }
      return List.of(gate.type());
    }
  }

  /** {@code %h = embedding %table, %ids}: row {@code ids[i]} of the {@code [V, H]} table for each id. */
  record Embedding(Value table, Value ids) implements TransformerOp {
    @Override
    public String mnemonic() {
      return "embedding";
    }

    @Override
    public List<Value> operands() {
      return List.of(table, ids);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireRank(table, "table", 2);
      Shapes.requireType(ids, "ids", ElementType.I64, ElementType.I32);
      List<Dim> out = new ArrayList<>(ids.type().dims());
      out.add(table.type().dim(1));
      return List.of(table.type().withDims(out));
    }
  }

  /**
   * {@code %y = all_reduce %x {chips = 8}}: the element-wise sum of {@code x} over the {@code
   * chips} chips of a tensor-parallel group, the same result on every chip (what the
   * {@code shard-tensor-parallel} pass puts after row-parallel matmuls, whose per-chip outputs
   * are partial sums). One module is one chip's program, so its single-program meaning (the
   * reference interpreter's) is the identity; a multi-shard runner sums the shards' partials at
   * each all_reduce instead. Constraints: {@code chips >= 1}; x is f32 or bf16.
   */
  record AllReduce(Value x, long chips) implements TransformerOp {
    @Override
    public String mnemonic() {
      return "all_reduce";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("chips", chips));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireType(x, "input", ElementType.F32, ElementType.BF16);
      if (chips < 1) {
        throw new OpException("chips must be at least 1, got " + chips);
      }
      return List.of(x.type());
    }
  }

  /**
   * {@code %y = reduce_scatter %x {chips = 8, rank = 3, axis = 1}}: the element-wise sum of
   * {@code x} over the {@code chips} chips of a tensor-parallel group, of which chip {@code rank}
   * keeps block {@code rank} of {@code chips} equal blocks along {@code axis} (Megatron sequence
   * parallelism: the row-parallel partial sums arrive with 1/chips of the rows on each chip). As
   * for all_reduce, the single-program meaning is this chip's block of x (the other chips adding
   * nothing); a multi-shard runner adds the partials. Constraints: {@code 0 <= rank < chips}; x
   * is f32 or bf16; the axis's size divides by chips.
   */
  record ReduceScatter(Value x, long chips, long rank, long axis) implements TransformerOp {
    @Override
    public String mnemonic() {
      return "reduce_scatter";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return groupAttributes(chips, rank, axis);
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireType(x, "input", ElementType.F32, ElementType.BF16);
      int a = checkGroup(x, chips, rank, axis);
      Dim whole = x.type().dim(a);
      Dim block = whole.dividedBy(chips).orElseThrow(() -> new OpException("axis " + axis
          + " has " + whole + " elements, which do not split into " + chips + " equal blocks"));
      List<Dim> out = new ArrayList<>(x.type().dims());
      out.set(a, block);
      return List.of(x.type().withDims(out));
    }
  }

  /**
   * {@code %y = all_gather %x {chips = 8, rank = 3, axis = 1}}: the chips' {@code x} put one
   * after another along {@code axis}, chip 0's first; the same result on every chip. The
   * single-program meaning places this chip's x at block {@code rank} and zeros elsewhere (the
   * other chips contributing nothing, as for all_reduce); a multi-shard runner puts their blocks
   * there. Constraints: {@code 0 <= rank < chips}.
   */
  record AllGather(Value x, long chips, long rank, long axis) implements TransformerOp {
    @Override
    public String mnemonic() {
      return "all_gather";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return groupAttributes(chips, rank, axis);
    }

    @Override
    public List<TensorType> inferResultTypes() {
      int a = checkGroup(x, chips, rank, axis);
      List<Dim> out = new ArrayList<>(x.type().dims());
      try {
        out.set(a, x.type().dim(a).times(Dim.of(chips)));
      } catch (ArithmeticException overflow) {
        throw new OpException(chips + " blocks of " + x.type().dim(a) + " along axis " + axis
            + " overflow a dim");
      }
      return List.of(x.type().withDims(out));
    }
  }

  /** The attributes reduce_scatter and all_gather share: a group, this chip's place, an axis. */
  private static List<Attr.Named> groupAttributes(long chips, long rank, long axis) {
    return List.of(Attr.Named.of("chips", chips), Attr.Named.of("rank", rank),
        Attr.Named.of("axis", axis));
  }

  /** Checks a collective's group and returns its axis, counted from the front. */
  private static int checkGroup(Value x, long chips, long rank, long axis) {
    if (chips < 1) {
      throw new OpException("chips must be at least 1, got " + chips);
    }
    if (rank < 0 || rank >= chips) {
      throw new OpException("rank must be in [0, " + chips + "), got " + rank);
    }
    return Shapes.axis(axis, x.type().rank(), "axis");
  }

  static void register(OpRegistry.Registrar r) {
    r.op("all_reduce", 1, "sum over the chips of a tensor-parallel group",
        (o, a) -> new AllReduce(o.get(0), a.getInt("chips", 1)));
    r.op("reduce_scatter", 1, "sum over the chips of a group, each keeping its block of an axis",
        (o, a) -> new ReduceScatter(o.get(0), a.getInt("chips", 1), a.getInt("rank", 0),
            a.getInt("axis", 0)));
    r.op("all_gather", 1, "the chips' blocks of a group, one after another along an axis",
        (o, a) -> new AllGather(o.get(0), a.getInt("chips", 1), a.getInt("rank", 0),
            a.getInt("axis", 0)));
    r.op("attention", 3, 5, "scaled dot-product attention with GQA, causal mask, window and per-sequence "
        + "past lengths; k and v may be narrower (bf16) than q", (o, a) -> {
          // the mask is a float, the past lengths an integer tensor: either may come alone
          Value fourth = OpRegistry.optional(o, 3);
          boolean lengthsOnly = o.size() == 4 && fourth.type().elementType().isInteger();
          return new Attention(o.get(0), o.get(1), o.get(2), lengthsOnly ? null : fourth,
              lengthsOnly ? fourth : OpRegistry.optional(o, 4), a.getFloat("scale"), a.getBool("causal", false),
              a.getInt("window", 0));
        });
    r.op("kv_cache_append", 2, "append new keys or values to a KV cache",
        (o, a) -> new KvCacheAppend(o.get(0), o.get(1)));
    r.op("kv_cache_write", 3, "write new keys or values into a KV cache at each sequence's length",
        (o, a) -> new KvCacheWrite(o.get(0), o.get(1), o.get(2)));
    r.op("layer_norm", 2, 3, "layer normalization with optional bias",
        (o, a) -> new LayerNorm(o.get(0), o.get(1), OpRegistry.optional(o, 2), a.getInt("axis", -1),
            a.getFloat("eps", 1e-5)));
    r.op("rms_norm", 2, "root-mean-square normalization",
        (o, a) -> new RmsNorm(o.get(0), o.get(1), a.getFloat("eps", 1e-6), a.getFloat("gamma_offset", 0.0)));
    r.op("rope", 3, "rotary position embedding",
        (o, a) -> new Rope(o.get(0), o.get(1), o.get(2), DataOp.enumAttr(a, "style", RopeStyle.class, RopeStyle.ROTATE_HALF)));
    r.op("gelu", 1, "GELU, exact (erf) or tanh approximation", (o, a) -> {
      String approx = a.getString("approximate", "none");
      if (!approx.equals("none") && !approx.equals("tanh")) {
        throw new OpException("attribute 'approximate' must be \"none\" or \"tanh\", got \"" + approx + "\"");
      }
      return new Gelu(o.get(0), approx.equals("tanh"));
    });
    r.op("silu", 1, "x * sigmoid(x)", (o, a) -> new Silu(o.get(0)));
    r.op("swiglu", 2, "silu(gate) * up", (o, a) -> new SwiGlu(o.get(0), o.get(1)));
    r.op("embedding", 2, "table lookup by token id", (o, a) -> new Embedding(o.get(0), o.get(1)));
  }
}
