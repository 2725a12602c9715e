package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.ReductionOp.ReduceKind;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * ONNX ops the IR has no op of its own for, imported as the elementwise ops and reductions they
 * are defined by (the formulas of the ONNX operator specs), so every later stage (fusion,
 * interpreter, backend) already knows them: the activations of the ReLU family and its smooth
 * relatives, sign, rounding and the NaN and infinity tests, the reductions that transform their
 * input or their result, the arg-extremes and hardmax, global pools and Lp normalization.
 */
final class Composites {
  private Composites() {}

  /** LeakyRelu: alpha * x below 0, x from 0 up. */
  static void leakyRelu(OnnxNode n) {
    Value x = n.value(0);
    n.emit(new ElementwiseOp.Where(less(n, x, 0), times(n, x, n.attrFloat("alpha", 0.01)), x));
  }

  /** PRelu: slope * x below 0 (slope broadcast to x), x from 0 up. */
  static void prelu(OnnxNode n) {
    Value x = n.value(0);
    n.emit(new ElementwiseOp.Where(less(n, x, 0), op(n, BinaryKind.MUL, x, n.value(1)), x));
  }

  /** ThresholdedRelu: x above alpha, else 0. */
  static void thresholdedRelu(OnnxNode n) {
    Value x = n.value(0);
    Value above = op(n, BinaryKind.GREATER, x, scalar(n, x, n.attrFloat("alpha", 1)));
    n.emit(new ElementwiseOp.Where(above, x, scalar(n, x, 0)));
  }

  /** Elu: alpha * (exp(x) - 1) below 0, x from 0 up. */
  static void elu(OnnxNode n) {
    Value x = n.value(0);
    n.emit(new ElementwiseOp.Where(less(n, x, 0), times(n, expm1(n, x), n.attrFloat("alpha", 1)), x));
  }

  /** Selu: gamma * (alpha * exp(x) - alpha) up to 0, gamma * x above. */
  static void selu(OnnxNode n) {
    Value x = n.value(0);
    double alpha = n.attrFloat("alpha", 1.67326319217681884765625);
    double gamma = n.attrFloat("gamma", 1.05070102214813232421875);
    Value negative = op(n, BinaryKind.SUB, times(n, unary(n, UnaryKind.EXP, x), alpha), scalar(n, x, alpha));
    Value atMostZero = op(n, BinaryKind.LESS_EQUAL, x, scalar(n, x, 0));
    Value y = n.temp(new ElementwiseOp.Where(atMostZero, negative, x));
    n.emit(new ElementwiseOp.Binary(BinaryKind.MUL, y, scalar(n, x, gamma)));
  }

  /** Celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1)). */
  static void celu(OnnxNode n) {
    Value x = n.value(0);
    double alpha = n.attrFloat("alpha", 1);
    Value smooth = times(n, expm1(n, op(n, BinaryKind.DIV, x, scalar(n, x, alpha))), alpha);
    n.emit(new ElementwiseOp.Binary(BinaryKind.ADD, unary(n, UnaryKind.RELU, x),
        op(n, BinaryKind.MIN, smooth, scalar(n, x, 0))));
  }

  /** HardSigmoid: max(0, min(1, alpha * x + beta)). */
  static void hardSigmoid(OnnxNode n) {
    n.emit(hardSigmoidOp(n, n.value(0), n.attrFloat("alpha", 0.2), n.attrFloat("beta", 0.5)));
  }

  /** HardSwish: x * HardSigmoid(x) with alpha 1/6, beta 0.5. */
  static void hardSwish(OnnxNode n) {
    Value x = n.value(0);
    n.emit(new ElementwiseOp.Binary(BinaryKind.MUL, x, n.temp(hardSigmoidOp(n, x, 1.0 / 6, 0.5))));
  }

  private static Op hardSigmoidOp(OnnxNode n, Value x, double alpha, double beta) {
    Value line = op(n, BinaryKind.ADD, times(n, x, alpha), scalar(n, x, beta));
    return new ElementwiseOp.Clip(line, 0, 1);
  }

  /**
   * Softplus: log(exp(x) + 1), as max(x, 0) + log(exp(-|x|) + 1), which is the same where exp(x)
   * is finite and does not overflow past it (x near 89 and above in f32).
   */
  static void softplus(OnnxNode n) {
    n.set(0, softplusOf(n, n.value(0)));
  }

  private static Value softplusOf(OnnxNode n, Value x) {
    Value negAbs = unary(n, UnaryKind.NEG, unary(n, UnaryKind.ABS, x));
    Value tail = unary(n, UnaryKind.LOG, op(n, BinaryKind.ADD, unary(n, UnaryKind.EXP, negAbs), scalar(n, x, 1)));
    return op(n, BinaryKind.ADD, unary(n, UnaryKind.RELU, x), tail);
  }

  /** Mish: x * tanh(softplus(x)). */
  static void mish(OnnxNode n) {
    Value x = n.value(0);
    n.emit(new ElementwiseOp.Binary(BinaryKind.MUL, x, unary(n, UnaryKind.TANH, softplusOf(n, x))));
  }

  /** Shrink: x + bias below -lambd, x - bias above lambd, 0 between. */
  static void shrink(OnnxNode n) {
    Value x = n.value(0);
    double lambd = n.attrFloat("lambd", 0.5);
    double bias = n.attrFloat("bias", 0);
    Value above = n.temp(new ElementwiseOp.Where(op(n, BinaryKind.GREATER, x, scalar(n, x, lambd)),
        op(n, BinaryKind.SUB, x, scalar(n, x, bias)), scalar(n, x, 0)));
    n.emit(new ElementwiseOp.Where(less(n, x, -lambd), op(n, BinaryKind.ADD, x, scalar(n, x, bias)), above));
  }

  /** Sign: 1 above 0, -1 below, x itself otherwise (0, or NaN as ONNX Runtime gives it). */
  static void sign(OnnxNode n) {
    Value x = n.value(0);
    Value notBelow = n.temp(new ElementwiseOp.Where(op(n, BinaryKind.GREATER, x, scalar(n, x, 0)),
        scalar(n, x, 1), x));
    n.emit(new ElementwiseOp.Where(less(n, x, 0), scalar(n, x, -1), notBelow));
  }

  /**
   * Round, half to even: f = floor(x) and d = x - f (exact below 2^23, where a float still has
   * a fraction); f + 1 above a half, f below, at a half f plus its oddness (f - 2 floor(f / 2));
   * from 2^23 up (and infinities) x itself.
   */
  static void round(OnnxNode n) {
    Value x = n.value(0);
    Value f = unary(n, UnaryKind.FLOOR, x);
    Value d = op(n, BinaryKind.SUB, x, f);
    Value half = scalar(n, x, 0.5);
    Value odd = op(n, BinaryKind.SUB, f,
        times(n, unary(n, UnaryKind.FLOOR, op(n, BinaryKind.MUL, f, half)), 2));
    Value atHalf = n.temp(new ElementwiseOp.Where(op(n, BinaryKind.LESS, d, half), f,
        op(n, BinaryKind.ADD, f, odd)));
    Value rounded = n.temp(new ElementwiseOp.Where(op(n, BinaryKind.GREATER, d, half),
        op(n, BinaryKind.ADD, f, scalar(n, x, 1)), atHalf));
    Value integral = op(n, BinaryKind.GREATER_EQUAL, unary(n, UnaryKind.ABS, x), scalar(n, x, 0x1p23));
    n.emit(new ElementwiseOp.Where(integral, x, rounded));
  }

  /** IsNaN: x differs from itself. */
  static void isNaN(OnnxNode n) {
    Value x = n.value(0);
    n.emit(new ElementwiseOp.Unary(UnaryKind.NOT, op(n, BinaryKind.EQUAL, x, x)));
  }

  /** IsInf: x is +inf (detect_positive) or -inf (detect_negative); neither: nothing is. */
  static void isInf(OnnxNode n) {
    Value x = n.value(0);
    boolean positive = n.attrInt("detect_positive", 1) != 0;
    boolean negative = n.attrInt("detect_negative", 1) != 0;
    if (positive && negative) {
      n.emit(new ElementwiseOp.Binary(BinaryKind.EQUAL, unary(n, UnaryKind.ABS, x),
          scalar(n, x, Double.POSITIVE_INFINITY)));
    } else {
      // NaN equals nothing: with neither flag every element is false
      double v = positive ? Double.POSITIVE_INFINITY : negative ? Double.NEGATIVE_INFINITY : Double.NaN;
      n.emit(new ElementwiseOp.Binary(BinaryKind.EQUAL, x, scalar(n, x, v)));
    }
  }

  /** Softsign: x / (1 + |x|). */
  static void softsign(OnnxNode n) {
    Value x = n.value(0);
    n.emit(new ElementwiseOp.Binary(BinaryKind.DIV, x,
        op(n, BinaryKind.ADD, unary(n, UnaryKind.ABS, x), scalar(n, x, 1))));
  }

  /** Mean: the inputs' broadcast sum over their count. */
  static void mean(OnnxNode n) {
    Value sum = n.value(0);
    for (int i = 1; i < n.inputCount(); i++) {
      sum = op(n, BinaryKind.ADD, sum, n.value(i));
    }
    n.emit(new ElementwiseOp.Binary(BinaryKind.DIV, sum, scalar(n, sum, n.inputCount())));
  }

  /** ReduceSumSquare: the sum of x * x. */
  static void reduceSumSquare(OnnxNode n) {
    reduce(n, x -> op(n, BinaryKind.MUL, x, x), null);
  }

  /** ReduceL1: the sum of |x|. */
  static void reduceL1(OnnxNode n) {
    reduce(n, x -> unary(n, UnaryKind.ABS, x), null);
  }

  /** ReduceL2: the square root of the sum of x * x. */
  static void reduceL2(OnnxNode n) {
    reduce(n, x -> op(n, BinaryKind.MUL, x, x), UnaryKind.SQRT);
  }

  /** ReduceLogSum: the log of the sum. */
  static void reduceLogSum(OnnxNode n) {
    reduce(n, x -> x, UnaryKind.LOG);
  }

  /**
   * ReduceLogSumExp: max + log(sum(exp(x - max))), the max taken first as ONNX Runtime does, so
   * exp cannot overflow.
   */
  static void reduceLogSumExp(OnnxNode n) {
    Reduction r = Reduction.of(n);
    Value x = n.value(0);
    if (r.noop()) {
      OnnxOps.passThrough(n, 0, 0);
      return;
    }
    Value kept = n.temp(new ReductionOp.Reduce(ReduceKind.MAX, x, r.axes(), true));
    Value sum = n.temp(new ReductionOp.Reduce(ReduceKind.SUM,
        unary(n, UnaryKind.EXP, op(n, BinaryKind.SUB, x, kept)), r.axes(), r.keepdims()));
    Value max = r.keepdims() ? kept : n.temp(new ReductionOp.Reduce(ReduceKind.MAX, x, r.axes(), false));
    n.emit(new ElementwiseOp.Binary(BinaryKind.ADD, unary(n, UnaryKind.LOG, sum), max));
  }

  /**
   * The sum of {@code pre(x)}, then {@code post} (null: none). Over no axes with
   * noop_with_empty_axes, x as it is, as ONNX Runtime gives it (not {@code post(pre(x))}).
   */
  private static void reduce(OnnxNode n, UnaryOperator<Value> pre, UnaryKind post) {
    Reduction r = Reduction.of(n);
    if (r.noop()) {
      OnnxOps.passThrough(n, 0, 0);
      return;
    }
    Op sum = new ReductionOp.Reduce(ReduceKind.SUM, pre.apply(n.value(0)), r.axes(), r.keepdims());
    n.emit(post == null ? sum : new ElementwiseOp.Unary(post, n.temp(sum)));
  }

  /**
   * ArgMax (max) or ArgMin: the first index along the axis (the last with select_last_index)
   * where x equals its maximum (minimum), as int64.
   */
  static void argExtreme(OnnxNode n, boolean max) {
    Value x = n.value(0);
    int ax = OnnxOps.normalizeAxis(n, n.attrInt("axis", 0), x.type().rank());
    boolean last = n.attrInt("select_last_index", 0) != 0;
    Extremes e = extremes(n, x, ax, max, last);
    Value picked = n.temp(new ReductionOp.Reduce(last ? ReduceKind.MAX : ReduceKind.MIN, e.candidates(),
        List.of((long) ax), n.attrInt("keepdims", 1) != 0));
    n.emit(new ElementwiseOp.Cast(picked, ElementType.I64));
  }

  /** Hardmax (opset 13): 1 at the first maximum along the axis (default the last), 0 elsewhere. */
  static void hardmax(OnnxNode n) {
    Value x = n.value(0);
    int ax = OnnxOps.normalizeAxis(n, n.attrInt("axis", -1), x.type().rank());
    Extremes e = extremes(n, x, ax, true, false);
    Value first = n.temp(new ReductionOp.Reduce(ReduceKind.MIN, e.candidates(), List.of((long) ax), true));
    n.emit(new ElementwiseOp.Cast(op(n, BinaryKind.EQUAL, e.index(), first), x.type().elementType()));
  }

  /**
   * Along axis {@code ax}: the indices (a range shaped to broadcast along it) and, of x's
   * elements, their index where x equals its maximum (minimum) there, else out of range (2^24,
   * past every index f32 counts exactly; -1 when the last is wanted), for a min (max) to pick.
   * The indices are f32 whatever x's type (f16 counts exactly only to 2048, bf16 to 256).
   */
  private record Extremes(Value index, Value candidates) {}

  private static Extremes extremes(OnnxNode n, Value x, int ax, boolean max, boolean last) {
    Value extreme = n.temp(new ReductionOp.Reduce(max ? ReduceKind.MAX : ReduceKind.MIN, x, List.of((long) ax),
        true));
    Value index = indices(n, x, ax);
    Value outside = n.constant(Tensor.scalar(ElementType.F32, last ? -1 : 0x1p24));
    return new Extremes(index, n.temp(new ElementwiseOp.Where(op(n, BinaryKind.EQUAL, x, extreme), index,
        outside)));
  }

  /** 0, 1, .. along axis {@code ax} of x, in f32, shaped to broadcast against x. */
  private static Value indices(OnnxNode n, Value x, int ax) {
    List<Dim> along = new java.util.ArrayList<>(java.util.Collections.nCopies(x.type().rank(), Dim.of(1)));
    along.set(ax, x.type().dim(ax));
    return n.reshape(n.temp(new SourceOp.Range(0, x.type().dim(ax), 1, ElementType.F32)), along);
  }

  /** The largest K TopK imports: each of the K is a round of an extreme and its first index. */
  static final int MAX_TOP_K = 64;

  /**
   * TopK: the K largest (smallest with largest = 0) elements along the axis, in order, and
   * their indices, the lower index first among equal values, as ONNX Runtime orders them (with
   * sorted = 0 too, where the spec leaves the order open and ONNX Runtime's differs). K rounds,
   * each the extreme of the elements not yet taken and its first index there; a taken element
   * is marked, not overwritten, so that infinities in x come out in their turn.
   */
  static void topK(OnnxNode n) {
    Value x = n.value(0);
    int rank = x.type().rank();
    if (rank == 0 || !x.type().elementType().isFloat()) {
      throw n.error("X must be a float tensor of rank 1 or more, got " + x.type());
    }
    long[] ks = n.longs(1, "K");
    if (ks.length != 1) {
      throw n.error("K must hold one value, got " + ks.length);
    }
    long k = ks[0];
    int ax = OnnxOps.normalizeAxis(n, n.attrInt("axis", -1), rank);
    Dim along = x.type().dim(ax);
    if (k < 1 || k > MAX_TOP_K || along.isStatic() && k > along.value()) {
      throw n.error("K = " + k + ": 1 to " + Math.min(MAX_TOP_K, along.isStatic() ? along.value()
          : MAX_TOP_K) + " are supported (" + (along.isStatic() ? "the axis has " + along.value()
          + " elements; " : "") + "each of the K unrolls an extreme and its index)");
    }
    boolean largest = n.attrInt("largest", 1) != 0;
    Value index = indices(n, x, ax);
    Value outside = n.constant(Tensor.scalar(ElementType.F32, 0x1p24));
    Value passed = scalar(n, x, largest ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY);
    List<Value> values = new java.util.ArrayList<>();
    List<Value> indices = new java.util.ArrayList<>();
    Value taken = null;
    for (long j = 0; j < k; j++) {
      Value open = taken == null ? x : n.temp(new ElementwiseOp.Where(taken, passed, x));
      Value extreme = n.temp(new ReductionOp.Reduce(largest ? ReduceKind.MAX : ReduceKind.MIN,
          open, List.of((long) ax), true));
      Value hit = op(n, BinaryKind.EQUAL, open, extreme);
      if (taken != null) {
        hit = op(n, BinaryKind.AND, hit, unary(n, UnaryKind.NOT, taken));
      }
      Value first = n.temp(new ReductionOp.Reduce(ReduceKind.MIN,
          n.temp(new ElementwiseOp.Where(hit, index, outside)), List.of((long) ax), true));
      values.add(extreme);
      indices.add(first);
      Value mark = op(n, BinaryKind.EQUAL, index, first);
      taken = taken == null ? mark : op(n, BinaryKind.OR, taken, mark);
    }
    n.set(0, k == 1 ? values.get(0) : n.temp(new DataOp.Concat(values, ax)));
    Value at = k == 1 ? indices.get(0) : n.temp(new DataOp.Concat(indices, ax));
    n.set(1, n.temp(new ElementwiseOp.Cast(at, ElementType.I64)));
  }

  /**
   * BatchNormalization for inference: (x - mean) / sqrt(var + epsilon) * scale + B, each of
   * scale, B, mean and var one value a channel (axis 1), broadcast over the axes after it.
   */
  static void batchNormalization(OnnxNode n) {
    Value x = n.value(0);
    int rank = x.type().rank();
    if (rank < 2) {
      throw n.error("X must be [N, C, ...], got " + x.type());
    }
    if (n.attrInt("training_mode", 0) != 0 || n.wants(1) || n.wants(2)) {
      throw n.error("training mode (running mean and variance outputs) is not supported");
    }
    Value[] p = perAxis(n, new String[] {"scale", "B", "input_mean", "input_var"}, x.type().dim(1),
        "channel", rank - 2);
    Value std = unary(n, UnaryKind.SQRT, op(n, BinaryKind.ADD, p[3],
        scalar(n, p[3], n.attrFloat("epsilon", 1e-5))));
    Value normed = op(n, BinaryKind.DIV, op(n, BinaryKind.SUB, x, p[2]), std);
    n.emit(new ElementwiseOp.Binary(BinaryKind.ADD, op(n, BinaryKind.MUL, normed, p[0]), p[1]));
  }

  /**
   * InstanceNormalization (a group a channel) or GroupNormalization (num_groups): each group's
   * channels and positions normalized together as one layer norm, then scaled and shifted per
   * channel (per group before opset 21, as GroupNormalization's scale and bias were then).
   */
  static void groupNormalization(OnnxNode n, boolean instance) {
    Value x = n.value(0);
    TensorType t = x.type();
    if (t.rank() < 3 || !t.dim(1).isStatic()) {
      throw n.error("X must be [N, C, D1, ...] with static channels, got " + t);
    }
    long channels = t.dim(1).value();
    long groups = instance ? channels : n.attrInt("num_groups", 0);
    if (groups < 1 || channels % groups != 0) {
      throw n.error("num_groups " + groups + " must divide the " + channels + " channels");
    }
    boolean perGroup = !instance && n.opset < 21;
    Dim positions = Dim.of(1);
    for (int i = 2; i < t.rank(); i++) {
      positions = positions.times(t.dim(i));
    }
    Value grouped = n.reshape(x, List.of(t.dim(0), Dim.of(groups),
        positions.times(Dim.of(channels / groups))));
    Value normed = n.temp(new dev.sohuc.ir.op.TransformerOp.LayerNorm(grouped, scalar(n, x, 1), null, 2,
        n.attrFloat("epsilon", 1e-5)));
    // per group: along [N, G, positions]; per channel: along [N, C, D1, ...]
    Value[] p = perAxis(n, new String[] {"scale", "B"}, Dim.of(perGroup ? groups : channels),
        perGroup ? "group" : "channel", perGroup ? 1 : t.rank() - 2);
    Value scaled = perGroup ? normed : n.reshape(normed, t.dims());
    Value y = op(n, BinaryKind.ADD, op(n, BinaryKind.MUL, scaled, p[0]), p[1]);
    n.emit(new DataOp.Reshape(y, t.dims()));
  }

  /**
   * Inputs 1, 2, .. (named {@code roles}), each one value a {@code unit} ({@code count} of
   * them), shaped [count, 1 x {@code trailing}] to broadcast along the axis they scale.
   */
  private static Value[] perAxis(OnnxNode n, String[] roles, Dim count, String unit,
      int trailing) {
    List<Dim> shape = new java.util.ArrayList<>(java.util.Collections.nCopies(trailing + 1, Dim.of(1)));
    shape.set(0, count);
    Value[] out = new Value[roles.length];
    for (int i = 0; i < roles.length; i++) {
      Value v = n.value(i + 1);
      if (v.type().rank() != 1 || !v.type().dim(0).equals(count)) {
        throw n.error(roles[i] + " must hold one value a " + unit + " (" + count + "), got "
            + v.type());
      }
      out[i] = n.reshape(v, shape);
    }
    return out;
  }

  /** GlobalAveragePool or GlobalMaxPool: the mean or max over every axis after the channels. */
  static void globalPool(OnnxNode n, ReduceKind kind) {
    Value x = n.value(0);
    int rank = x.type().rank();
    if (rank < 3) {
      throw n.error("input must be [N, C, D1, ...], got " + x.type());
    }
    List<Long> spatial = java.util.stream.LongStream.range(2, rank).boxed().toList();
    n.emit(new ReductionOp.Reduce(kind, x, spatial, true));
  }

  /**
   * LpNormalization: x over its L1 (p = 1) or L2 (p = 2) norm along the axis; where the norm is
   * 0 (x all zeros there) x itself, as ONNX Runtime gives it, not the formula's NaN.
   */
  static void lpNormalization(OnnxNode n) {
    Value x = n.value(0);
    long p = n.attrInt("p", 2);
    if (p != 1 && p != 2) {
      throw n.error("p must be 1 or 2, got " + p);
    }
    List<Long> axis = List.of(n.attrInt("axis", -1));
    Value norm = p == 1
        ? n.temp(new ReductionOp.Reduce(ReduceKind.SUM, unary(n, UnaryKind.ABS, x), axis, true))
        : unary(n, UnaryKind.SQRT, n.temp(new ReductionOp.Reduce(ReduceKind.SUM, op(n, BinaryKind.MUL, x, x),
            axis, true)));
    Value divisor = n.temp(new ElementwiseOp.Where(op(n, BinaryKind.EQUAL, norm, scalar(n, x, 0)),
        scalar(n, x, 1), norm));
    n.emit(new ElementwiseOp.Binary(BinaryKind.DIV, x, divisor));
  }

  /** A reduction's axes (attribute before opset 18, input from it), keepdims and noop flag. */
  private record Reduction(List<Long> axes, boolean keepdims, boolean noop) {
    static Reduction of(OnnxNode n) {
      List<Long> axes = OnnxOps.axesOf(n, 1, 18);
      List<Long> all = axes == null ? List.of() : axes;
      return new Reduction(all, n.attrInt("keepdims", 1) != 0,
          all.isEmpty() && n.attrInt("noop_with_empty_axes", 0) != 0);
    }
  }

  private static Value less(OnnxNode n, Value x, double v) {
    return op(n, BinaryKind.LESS, x, scalar(n, x, v));
  }

  private static Value times(OnnxNode n, Value x, double v) {
    return op(n, BinaryKind.MUL, x, scalar(n, x, v));
  }

  /**
   * GatherND: indices [B..., ..., k] pick, within each of the first batch_dims axes' slices of
   * data (axes equal to the indices' first ones, static), rows of data's next k axes (static),
   * flattened with the batch axes into one axis, by the tuple's row-major position there plus
   * its batch's first row; each entry wrapped from the end where negative, and a tuple with an
   * entry outside its axis's range sent past the last row, so that the gather reports it
   * instead of reading another row. The positions are computed in f32 (exact below 2^24 rows;
   * the chip computes in f32) and cast back.
   */
  static void gatherNd(OnnxNode n) {
    TensorType data = n.type(0);
    TensorType indices = n.type(1);
    long b = n.attrInt("batch_dims", 0);
    if (indices.elementType() != ElementType.I64 || indices.rank() < 1) {
      throw n.error("indices must be an int64 tensor of rank 1 or more, got " + indices);
    }
    if (b < 0 || b >= Math.min(data.rank(), indices.rank())) {
      throw n.error("batch_dims " + b + " must be 0 to "
          + (Math.min(data.rank(), indices.rank()) - 1) + " (less than both ranks: data " + data
          + ", indices " + indices + ")");
    }
    int batch = (int) b;
    Dim last = indices.dim(indices.rank() - 1);
    if (!last.isStatic() || last.value() < 1 || last.value() > data.rank() - batch) {
      throw n.error("the index tuples' length " + last + " must be static, 1 to the data's rank "
          + data.rank() + (batch > 0 ? " less batch_dims " + batch : ""));
    }
    int k = (int) last.value();
    long rows = 1;
    for (int j = 0; j < batch + k; j++) {
      if (!data.dim(j).isStatic()) {
        throw n.error("data axis " + j + " must be static, got " + data.dim(j));
      }
      if (j < batch && !indices.dim(j).equals(data.dim(j))) {
        throw n.error("indices axis " + j + " is " + indices.dim(j) + ", data's " + data.dim(j)
            + ": the first batch_dims axes must match");
      }
      // each factor and the product at most 2^31: no overflow
      rows *= Math.min(data.dim(j).value(), 1L << 31);
      if (rows > 1L << 24) {
        throw n.error("data's first " + (batch + k) + " axes hold more than 2^24 rows: " + data);
      }
    }
    List<Dim> tupleShape = indices.dims().subList(0, indices.rank() - 1);
    Value tuples = n.temp(new ElementwiseOp.Cast(n.value(1), ElementType.F32));
    Value position = null;
    Value outside = null;
    long stride = 1;
    for (int j = k - 1; j >= 0; j--) {
      long extent = data.dim(batch + j).value();
      Value entry = n.reshape(n.temp(new DataOp.Slice(tuples, List.of(Dim.of(j)),
          List.of(Dim.of(j + 1)), List.of(-1L), List.of(1L))), tupleShape);
      Value negative = op(n, BinaryKind.LESS, entry, scalar(n, entry, 0));
      Value wrapped = n.temp(new ElementwiseOp.Where(negative,
          op(n, BinaryKind.ADD, entry, scalar(n, entry, extent)), entry));
      Value bad = op(n, BinaryKind.OR, op(n, BinaryKind.LESS, wrapped, scalar(n, entry, 0)),
          op(n, BinaryKind.GREATER_EQUAL, wrapped, scalar(n, entry, extent)));
      outside = outside == null ? bad : op(n, BinaryKind.OR, outside, bad);
      Value term = stride == 1 ? wrapped : op(n, BinaryKind.MUL, wrapped, scalar(n, entry, stride));
      position = position == null ? term : op(n, BinaryKind.ADD, position, term);
      stride *= extent;
    }
    if (batch > 0) {
      // each tuple's batch's first row: the batch's row-major number times the rows of a batch
      long batches = rows / stride;
      List<Dim> along = new ArrayList<>(tupleShape.subList(0, batch));
      along.addAll(java.util.Collections.nCopies(tupleShape.size() - batch, Dim.of(1)));
      Value first = op(n, BinaryKind.MUL, n.reshape(n.temp(new SourceOp.Range(0, Dim.of(batches),
          1, ElementType.F32)), along), scalar(n, position, stride));
      position = op(n, BinaryKind.ADD, position, first);
    }
    Value checked = n.temp(new ElementwiseOp.Cast(n.temp(new ElementwiseOp.Where(outside,
        scalar(n, position, rows), position)), ElementType.I64));
    List<Dim> tableShape = new ArrayList<>(List.of(Dim.of(rows)));
    tableShape.addAll(data.dims().subList(batch + k, data.rank()));
    n.emit(new DataOp.Gather(n.reshape(n.value(0), tableShape), checked, 0));
  }

  /**
   * DepthToSpace ({@code toSpace}: blocks of channels to b x b pixels, DCR or CRD order) or
   * SpaceToDepth (b x b pixels to channels, DCR order) of an [N, C, H, W] input, as a reshape
   * to six axes, a transpose and a reshape back.
   */
  static void blockRearrange(OnnxNode n, boolean toSpace) {
    TensorType x = n.type(0);
    long b = n.attrInt("blocksize", 0);
    if (x.rank() != 4) {
      throw n.error("input " + x + " must be [N, C, H, W]");
    }
    if (b < 1 || b > 1 << 12) {
      throw n.error("blocksize " + b + " must be 1 to 4096");
    }
    long c = ConvTaps.staticDim(n, x.dim(1), "channel count");
    long h = ConvTaps.staticDim(n, x.dim(2), "height");
    long w = ConvTaps.staticDim(n, x.dim(3), "width");
    Dim batch = x.dim(0);
    List<Dim> cut;
    List<Long> order;
    List<Dim> out;
    if (toSpace) {
      String mode = n.attrString("mode", "DCR");
      if (c % (b * b) != 0) {
        throw n.error(c + " channels do not split into blocks of " + b + " x " + b);
      }
      Dim depth = Dim.of(c / (b * b));
      Dim bd = Dim.of(b);
      switch (mode) {
        case "DCR" -> {
          cut = List.of(batch, bd, bd, depth, Dim.of(h), Dim.of(w));
          order = List.of(0L, 3L, 4L, 1L, 5L, 2L);
        }
        case "CRD" -> {
          cut = List.of(batch, depth, bd, bd, Dim.of(h), Dim.of(w));
          order = List.of(0L, 1L, 4L, 2L, 5L, 3L);
        }
        default -> throw n.error("mode " + mode + " (DCR or CRD)");
      }
      out = List.of(batch, depth, Dim.of(h * b), Dim.of(w * b));
    } else {
      if (h % b != 0 || w % b != 0) {
        throw n.error("a " + h + " x " + w + " image does not split into blocks of " + b + " x "
            + b);
      }
      cut = List.of(batch, Dim.of(c), Dim.of(h / b), Dim.of(b), Dim.of(w / b), Dim.of(b));
      order = List.of(0L, 3L, 5L, 1L, 2L, 4L);
      out = List.of(batch, Dim.of(c * b * b), Dim.of(h / b), Dim.of(w / b));
    }
    n.emit(new DataOp.Reshape(n.temp(new DataOp.Transpose(n.reshape(n.value(0), cut), order)),
        out));
  }

  /** exp(x) - 1, as the specs write it (no expm1: ONNX Runtime's Elu subtracts too). */
  private static Value expm1(OnnxNode n, Value x) {
    return op(n, BinaryKind.SUB, unary(n, UnaryKind.EXP, x), scalar(n, x, 1));
  }

  /** An intermediate binary op of {@code a} and {@code b}. */
  static Value op(OnnxNode n, BinaryKind kind, Value a, Value b) {
    return n.temp(new ElementwiseOp.Binary(kind, a, b));
  }

  private static Value unary(OnnxNode n, UnaryKind kind, Value x) {
    return n.temp(new ElementwiseOp.Unary(kind, x));
  }

  /** A scalar of x's element type. */
  private static Value scalar(OnnxNode n, Value x, double v) {
    return n.constant(Tensor.scalar(x.type().elementType(), v));
  }
}
