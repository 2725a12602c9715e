package dev.sohuc.backend;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.ReductionOp.ReduceKind;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Rewrites, before lowering, of ops the chip runs only in another form; the module changes by
 * the same numbers in other ops:
 * <ul>
 *   <li>data movement of static shapes as copies the DMA makes: a tile is an expand of x with a
 *       1 before each dim, a pad the concat of its borders with x along each axis (constant
 *       blocks; for reflect and edge, gathers of x's rows at constant indices), negative pads
 *       slices; a trilu keeps x where a constant mask says (a where);
 *   <li>a cumulative sum along a static axis of up to {@value #MAX_CUMSUM} is a matmul with a
 *       constant triangle of ones (the MXU's f32 sums, exact for integers below 2^24);
 *   <li>a cast from f32 to i32 or i64 truncates toward zero first (the VPU's conversion rounds half to
 *       even), in f32 arithmetic, then converts a whole number; floor and ceil are f32
 *       arithmetic the same way; a cast to bool is not(x == 0);
 *   <li>a softmax, log-softmax or reduction over axes other than the last (the VPU reduces
 *       along rows) runs on a transposed copy with those axes last (several reduced axes
 *       merged into one), transposed back;
 *   <li>a rope whose tables are not known to repeat each value as the rope instruction reads
 *       them (equal halves, or for an interleaved rope equal pairs: {@link RopeTables}) is
 *       computed by parts: slices, a concat, multiplies and an add;
 *   <li>a log-softmax is {@code d - log(sum(exp(d)))} with {@code d = x - max(x)}, ONNX
 *       Runtime's own form: finite where {@code log(softmax)} would underflow to minus infinity;
 *   <li>an elementwise op whose operands broadcast otherwise than in the VPU's row patterns (a
 *       scalar, a row, a column, trailing planes: {@link Lowering#binaryPlan}; say both of them,
 *       or over middle dims: a [1, H, S, T] bias plus a [B, 1, 1, T] padding mask) reads
 *       full-shaped copies: each operand that is not the result's shape (nor a constant scalar,
 *       which the instructions take as an immediate) becomes an {@code expand}, a strided DMA
 *       copy;
 *   <li>a norm's gamma or beta that broadcasts over the normalized dims, and a rope's tables of
 *       one row for every position, are expanded to full copies.
 * </ul>
 */
final class Legalization {
  private Legalization() {}

  static final long MAX_CUMSUM = 2048;

  /**
   * Rewrites {@code fn}; returns the constants it added, for the caller to fold with the
   * others.
   */
  static List<Value> run(Function fn, Map<Value, Tensor> known, Map<String, Weight> weights) {
    List<Value> constants = new ArrayList<>();
    RopeTables tables = new RopeTables(known, weights);
    // one builder (it collects the function's names once), moved before each op it rewrites
    FunctionBuilder b = new FunctionBuilder(fn);
    for (Node n : List.copyOf(fn.body())) {
      b.insertBefore(n);
      Value y = switch (n.op()) {
        case DataOp.Tile t when staticDims(t.x()) -> tile(b, n, t);
        case DataOp.Pad p when staticDims(p.x()) -> pad(b, n, p, constants);
        case DataOp.Trilu t when staticDims(t.x()) && t.x().type().elementType() == ElementType.F32 ->
            trilu(b, n, t, constants);
        case ReductionOp.CumSum c when cumsumLowers(c) -> lastAxis(b, n, c.x(), c.axis(),
            x -> cumsumLast(b, n, x, c, constants));
        case ElementwiseOp.Cast c when (c.to() == ElementType.I32 || c.to() == ElementType.I64)
            && c.x().type().elementType() == ElementType.F32 -> add(b, n,
            new ElementwiseOp.Cast(truncated(b, n, c.x(), constants), c.to()));
        case ElementwiseOp.Cast c when c.to() == ElementType.BOOL && List.of(ElementType.F32, ElementType.I32,
            ElementType.I64).contains(c.x().type().elementType()) -> nonZero(b, n, c.x(), constants);
        case ElementwiseOp.Unary u when (u.kind() == UnaryKind.FLOOR || u.kind() == UnaryKind.CEIL)
            && u.x().type().elementType() == ElementType.F32 ->
            floorOrCeil(b, n, u.x(), u.kind() == UnaryKind.FLOOR, constants);
        case TransformerOp.Rope r when r.x().type().dim(r.x().type().rank() - 1).isStatic()
            && !(r.style() == TransformerOp.RopeStyle.ROTATE_HALF
                ? tables.halvesEqual(r.cos()) && tables.halvesEqual(r.sin())
                : tables.pairsEqual(r.cos()) && tables.pairsEqual(r.sin())) -> ropeByParts(b, n, r);
        default -> null;
      };
      if (y != null) {
        replace(fn, n, y);
      }
    }
    for (Node n : List.copyOf(fn.body())) {
      b.insertBefore(n);
      switch (n.op()) {
        case ReductionOp.Softmax s when !Lowering.lastAxis(s.axis(), s.x().type()) -> replace(fn, n,
            lastAxis(b, n, s.x(), s.axis(), t -> add(b, n, new ReductionOp.Softmax(t, -1, s.log()))));
        case ReductionOp.Reduce r when r.kind() != ReduceKind.PROD && !(r.reducedAxes().size() == 1
            && Lowering.lastAxis(r.reducedAxes().get(0), r.x().type())) && reducedStatic(r) ->
            replace(fn, n, reducedOverLast(b, n, r));
        default -> { }
      }
    }
    for (Node n : List.copyOf(fn.body())) {
      if (n.op() instanceof ReductionOp.Softmax s && s.log()) {
        replace(fn, n, logSoftmax(b.insertBefore(n), n, s.x()));
      }
    }
    for (Node n : List.copyOf(fn.body())) {
      if (needsFullOperands(n, known)) {
        expandOperands(b.insertBefore(n), n, known);
      }
      List<Dim> normalized = normalizedDims(n);
      if (normalized != null && normalized.stream().allMatch(Dim::isStatic)) {
        expandParams(b.insertBefore(n), n, normalized, known, constants);
      }
      List<Dim> rows = ropeTableRows(n);
      if (rows != null) {
        expandParams(b.insertBefore(n), n, rows, known, constants);
      }
    }
    return constants;
  }

  /** An op before n, named after n's result so that errors about it point back to n. */
  private static Value add(FunctionBuilder b, Node n, dev.sohuc.ir.op.Op op) {
    return b.add(op, n.location(), n.result().name());
  }

  private static boolean staticDims(Value v) {
    return v.type().dims().stream().allMatch(Dim::isStatic);
  }

  private static long[] shape(Value v) {
    return v.type().dims().stream().mapToLong(Dim::value).toArray();
  }

  private static Value constant(FunctionBuilder b, Node n, Tensor t, List<Value> constants) {
    Value c = add(b, n, new SourceOp.Constant(t));
    constants.add(c);
    return c;
  }

  /**
   * Axis by axis, x as [outer, 1, d, inner] expanded to [outer, r, d, inner] and merged back: r
   * copies of each block along the axis (four dims at most: the DMA's loop nest).
   */
  private static Value tile(FunctionBuilder b, Node n, DataOp.Tile t) {
    Value x = t.x();
    long[] s = shape(x);
    for (int axis = 0; axis < s.length; axis++) {
      long r = t.repeats().get(axis);
      if (r == 1) {
        continue;
      }
      long outer = java.util.Arrays.stream(s, 0, axis).reduce(1, Math::multiplyExact);
      long inner = java.util.Arrays.stream(s, axis + 1, s.length).reduce(1, Math::multiplyExact);
      Value split = add(b, n, new DataOp.Reshape(x, dims(outer, 1, s[axis], inner)));
      Value copies = add(b, n, new DataOp.Expand(split, dims(outer, r, s[axis], inner)));
      s[axis] *= r;
      x = add(b, n, new DataOp.Reshape(copies, dims(s)));
    }
    return x;
  }

  private static List<Dim> dims(long... d) {
    return java.util.Arrays.stream(d).mapToObj(Dim::of).toList();
  }

  /** Axis by axis: negative pads slice x, positive ones concat their borders before and after it. */
  private static Value pad(FunctionBuilder b, Node n, DataOp.Pad p, List<Value> constants) {
    Value x = p.x();
    int rank = x.type().rank();
    for (int axis = 0; axis < rank; axis++) {
      long before = p.pads().get(axis);
      long after = p.pads().get(axis + rank);
      long d = x.type().dim(axis).value();
      if (before < 0 || after < 0) {
        x = add(b, n, new DataOp.Slice(x, List.of(Dim.of(Math.max(0, -before))),
            List.of(Dim.of(d - Math.max(0, -after))), List.of((long) axis), List.of(1L)));
        before = Math.max(0, before);
        after = Math.max(0, after);
        d = x.type().dim(axis).value();
      }
      if (before == 0 && after == 0) {
        continue;
      }
      List<Value> parts = new ArrayList<>();
      if (before > 0) {
        parts.add(border(b, n, p, x, axis, before, true, constants));
      }
      parts.add(x);
      if (after > 0) {
        parts.add(border(b, n, p, x, axis, after, false, constants));
      }
      x = add(b, n, new DataOp.Concat(parts, axis));
    }
    return x;
  }

  /** The {@code count} rows along {@code axis} a pad puts before (or after) x. */
  private static Value border(FunctionBuilder b, Node n, DataOp.Pad p, Value x, int axis, long count,
      boolean before, List<Value> constants) {
    long[] shape = shape(x);
    long d = shape[axis];
    if (p.mode() == DataOp.PadMode.CONSTANT) {
      shape[axis] = count;
      Tensor fill = Tensor.zeros(x.type().elementType(), shape);
      for (int i = 0; i < fill.size(); i++) {
        fill.set(i, p.value());
      }
      return constant(b, n, fill, constants);
    }
    long[] rows = new long[(int) count];
    for (int i = 0; i < count; i++) {
      // reflect mirrors about the edge row (excluded), edge repeats it
      rows[i] = p.mode() == DataOp.PadMode.EDGE ? (before ? 0 : d - 1)
          : before ? count - i : d - 2 - i;
    }
    Value indices = constant(b, n, Tensor.ofLongs(ElementType.I64, new long[] {count}, rows), constants);
    return add(b, n, new DataOp.Gather(x, indices, axis));
  }

  /** x where the kept triangle's constant mask is true, 0 elsewhere. */
  private static Value trilu(FunctionBuilder b, Node n, DataOp.Trilu t, List<Value> constants) {
    long[] s = shape(t.x());
    long rows = s[s.length - 2];
    long cols = s[s.length - 1];
    Tensor keep = Tensor.zeros(ElementType.BOOL, rows, cols);
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        long diag = (long) j - i;
        keep.set((int) (i * cols + j), (t.upper() ? diag >= t.k() : diag <= t.k()) ? 1 : 0);
      }
    }
    return add(b, n, new ElementwiseOp.Where(constant(b, n, keep, constants), t.x(),
        constant(b, n, Tensor.scalar(ElementType.F32, 0), constants)));
  }

  /** 1.5 x 2^23: adding and taking it away rounds an f32 below 2^22 in size to a whole number. */
  private static final float ROUNDER = 12582912f;

  /**
   * x truncated toward zero, in f32: r = x rounded (half to even, by {@link #ROUNDER}), less
   * x's sign where r went past x; x itself from 2^22 up (whole there but for halves between
   * 2^22 and 2^23, which the conversion after then rounds to even).
   */
  private static Value truncated(FunctionBuilder b, Node n, Value x, List<Value> constants) {
    Value rounder = scalar(b, n, ROUNDER, constants);
    Value r = add(b, n, new ElementwiseOp.Binary(BinaryKind.SUB,
        add(b, n, new ElementwiseOp.Binary(BinaryKind.ADD, x, rounder)), rounder));
    Value zero = scalar(b, n, 0, constants);
    Value sign = add(b, n, new ElementwiseOp.Binary(BinaryKind.SUB,
        asF32(b, n, add(b, n, new ElementwiseOp.Binary(BinaryKind.GREATER, x, zero))),
        asF32(b, n, add(b, n, new ElementwiseOp.Binary(BinaryKind.LESS, x, zero)))));
    Value absX = add(b, n, new ElementwiseOp.Unary(UnaryKind.ABS, x));
    Value past = asF32(b, n, add(b, n, new ElementwiseOp.Binary(BinaryKind.GREATER,
        add(b, n, new ElementwiseOp.Unary(UnaryKind.ABS, r)), absX)));
    Value small = add(b, n, new ElementwiseOp.Binary(BinaryKind.SUB, r,
        add(b, n, new ElementwiseOp.Binary(BinaryKind.MUL, past, sign))));
    Value inRange = add(b, n, new ElementwiseOp.Binary(BinaryKind.LESS, absX,
        scalar(b, n, 4194304f, constants)));
    return add(b, n, new ElementwiseOp.Where(inRange, small, x));
  }

  /**
   * floor(x) or ceil(x) in f32: r = x rounded to a whole number by adding and taking away 2^23
   * with x's sign (one f32 rounding, exact below 2^23 in size), then one step back where r went
   * past x the wrong way; x itself from 2^23 up, where every f32 is whole (and for infinities
   * and NaN).
   */
  private static Value floorOrCeil(FunctionBuilder b, Node n, Value x, boolean floor,
      List<Value> constants) {
    Value zero = scalar(b, n, 0, constants);
    Value negative = asF32(b, n, add(b, n, new ElementwiseOp.Binary(BinaryKind.LESS, x, zero)));
    // 2^23 for x >= 0, -2^23 below: 2^23 - 2^24 * negative
    Value shift = add(b, n, new ElementwiseOp.Binary(BinaryKind.SUB, scalar(b, n, 0x1p23f, constants),
        add(b, n, new ElementwiseOp.Binary(BinaryKind.MUL, negative, scalar(b, n, 0x1p24f, constants)))));
    Value r = add(b, n, new ElementwiseOp.Binary(BinaryKind.SUB,
        add(b, n, new ElementwiseOp.Binary(BinaryKind.ADD, x, shift)), shift));
    Value past = asF32(b, n, add(b, n, new ElementwiseOp.Binary(floor ? BinaryKind.GREATER : BinaryKind.LESS,
        r, x)));
    Value whole = add(b, n, new ElementwiseOp.Binary(floor ? BinaryKind.SUB : BinaryKind.ADD, r, past));
    Value inRange = add(b, n, new ElementwiseOp.Binary(BinaryKind.LESS,
        add(b, n, new ElementwiseOp.Unary(UnaryKind.ABS, x)), scalar(b, n, 0x1p23f, constants)));
    return add(b, n, new ElementwiseOp.Where(inRange, whole, x));
  }

  /**
   * A cast to bool: x != 0, as not(x == 0) in f32 (an integer converted first: a nonzero one
   * stays nonzero in f32; NaN is not 0, so true, as ONNX casts it).
   */
  private static Value nonZero(FunctionBuilder b, Node n, Value x, List<Value> constants) {
    Value f = x.type().elementType() == ElementType.F32 ? x : asF32(b, n, x);
    Value zero = add(b, n, new ElementwiseOp.Binary(BinaryKind.EQUAL, f, scalar(b, n, 0, constants)));
    return add(b, n, new ElementwiseOp.Unary(UnaryKind.NOT, zero));
  }

  private static Value scalar(FunctionBuilder b, Node n, float v, List<Value> constants) {
    return constant(b, n, Tensor.scalar(ElementType.F32, v), constants);
  }

  /** A bool or an integer as f32 (which the backend converts). */
  private static Value asF32(FunctionBuilder b, Node n, Value x) {
    return add(b, n, new ElementwiseOp.Cast(x, ElementType.F32));
  }

  private static boolean cumsumLowers(ReductionOp.CumSum c) {
    Dim d = c.x().type().dim((int) Math.floorMod(c.axis(), c.x().type().rank()));
    return c.x().type().elementType() == ElementType.F32 && d.isStatic() && d.value() <= MAX_CUMSUM;
  }

  /** The cumulative sum along the last axis: x @ U, U[j][i] = 1 where j adds to position i. */
  private static Value cumsumLast(FunctionBuilder b, Node n, Value x, ReductionOp.CumSum c,
      List<Value> constants) {
    int d = (int) x.type().dim(x.type().rank() - 1).value();
    float[] u = new float[d * d];
    for (int j = 0; j < d; j++) {
      for (int i = 0; i < d; i++) {
        boolean adds = c.reverse() ? (c.exclusive() ? j > i : j >= i) : (c.exclusive() ? j < i : j <= i);
        u[j * d + i] = adds ? 1f : 0f;
      }
    }
    Value ones = constant(b, n, Tensor.ofFloats(ElementType.F32, new long[] {d, d}, u), constants);
    if (x.type().rank() > 1) {
      return add(b, n, new LinalgOp.MatMul(x, ones));
    }
    // a vector as a one-row matrix: the MXU takes matrices
    Value row = add(b, n, new DataOp.Reshape(x, dims(1, d)));
    return add(b, n, new DataOp.Reshape(add(b, n, new LinalgOp.MatMul(row, ones)), x.type().dims()));
  }

  private static boolean reducedStatic(ReductionOp.Reduce r) {
    return r.reducedAxes().stream().allMatch(a -> r.x().type().dim(a).isStatic());
  }

  private static void replace(Function fn, Node n, Value y) {
    fn.replaceAllUses(n.result(), y);
    fn.body().remove(n);
  }

  /**
   * {@code op} (along the last axis of what it is given) over {@code axis} of {@code x}: on x
   * with that axis moved last, moved back after.
   */
  private static Value lastAxis(FunctionBuilder b, Node n, Value x, long axis,
      java.util.function.UnaryOperator<Value> op) {
    int rank = x.type().rank();
    if (Lowering.lastAxis(axis, x.type())) {
      return op.apply(x);
    }
    List<Long> perm = moveLast(rank, List.of((int) Math.floorMod(axis, rank)));
    List<Long> back = new ArrayList<>(perm);
    for (int i = 0; i < rank; i++) {
      back.set(perm.get(i).intValue(), (long) i);
    }
    Value along = op.apply(add(b, n, new DataOp.Transpose(x, perm)));
    return add(b, n, new DataOp.Transpose(along, back));
  }

  /**
   * The reduction over the last axis of x with the reduced axes moved last and merged into one,
   * in the result's shape.
   */
  private static Value reducedOverLast(FunctionBuilder b, Node n, ReductionOp.Reduce r) {
    int rank = r.x().type().rank();
    // empty axes reduce over all of them
    List<Integer> axes = r.reducedAxes().stream().distinct().sorted().toList();
    Value moved = add(b, n, new DataOp.Transpose(r.x(), moveLast(rank, axes)));
    List<Dim> merged = new ArrayList<>(moved.type().dims().subList(0, rank - axes.size()));
    Dim reducedSize = Dim.of(1);
    for (int a : axes) {
      reducedSize = reducedSize.times(r.x().type().dim(a));
    }
    merged.add(reducedSize);
    Value flat = add(b, n, new DataOp.Reshape(moved, merged));
    // the other axes keep their order, so dropping the last one leaves the result's layout
    Value reduced = add(b, n, new ReductionOp.Reduce(r.kind(), flat, List.of(-1L), false));
    return add(b, n, new DataOp.Reshape(reduced, n.result().type().dims()));
  }

  /** 0 .. rank-1 with {@code axes} taken out and put last, in their order. */
  private static List<Long> moveLast(int rank, List<Integer> axes) {
    List<Long> perm = new ArrayList<>();
    for (long i = 0; i < rank; i++) {
      if (!axes.contains((int) i)) {
        perm.add(i);
      }
    }
    axes.forEach(a -> perm.add((long) a));
    return perm;
  }

  private static Value logSoftmax(FunctionBuilder b, Node n, Value x) {
    Value max = add(b, n, new ReductionOp.Reduce(ReduceKind.MAX, x, List.of(-1L), true));
    Value d = add(b, n, new ElementwiseOp.Binary(BinaryKind.SUB, x, max));
    Value sum = add(b, n, new ReductionOp.Reduce(ReduceKind.SUM,
        add(b, n, new ElementwiseOp.Unary(UnaryKind.EXP, d)), List.of(-1L), true));
    return add(b, n, new ElementwiseOp.Binary(BinaryKind.SUB, d,
        add(b, n, new ElementwiseOp.Unary(UnaryKind.LOG, sum))));
  }

  private static boolean needsFullOperands(Node n, Map<Value, Tensor> known) {
    return switch (n.op()) {
      case ElementwiseOp.Binary b when b.kind().isLogical() ->
          b.operands().stream().anyMatch(v -> !sameShape(v, n.result().type().dims()));
      case ElementwiseOp.Binary b when b.kind().isComparison() -> {
        // also ==, <= and > of a broadcast second operand, which compare only full-shaped ones
        Lowering.BinaryPlan p = Lowering.binaryPlan(b, known);
        yield p == null || p.bShape() == Lowering.Shape.PLANE || SelectLowering.compareReason(b, known) != null;
      }
      case ElementwiseOp.Binary b -> Lowering.binaryPlan(b, known) == null;
      case ElementwiseOp.Where w -> w.operands().stream().anyMatch(v ->
          !sameShape(v, n.result().type().dims()) && !isScalarConstant(v, known));
      default -> false;
    };
  }

  private static void expandOperands(FunctionBuilder b, Node n, Map<Value, Tensor> known) {
    List<Dim> out = n.result().type().dims();
    List<Value> operands = new ArrayList<>(n.op().operands());
    // the VPU takes an f32 scalar as an immediate, never a bool
    boolean logical = n.op() instanceof ElementwiseOp.Binary bin && bin.kind().isLogical();
    for (int i = 0; i < operands.size(); i++) {
      Value v = operands.get(i);
      if (!sameShape(v, out) && (logical || !isScalarConstant(v, known))) {
        operands.set(i, b.add(new DataOp.Expand(v, out), n.location(), v.name() + ".full"));
      }
    }
    n.setOp(n.op().withOperands(operands));
  }

  /**
   * {@code x * cos + rotate(x) * sin} on the first R dims (the rest passed through), for tables
   * the rope instruction cannot take: it reads half of each row for both dims of a pair.
   * rotate_half(x) is {@code [-x2, x1]} of its halves; the interleaved rotate is each pair
   * {@code (x1, x2)} turned to {@code (-x2, x1)}, as a [.., R/2, 2] view's columns.
   */
  private static Value ropeByParts(FunctionBuilder b, Node n, TransformerOp.Rope r) {
    Value x = r.x();
    long width = x.type().dim(x.type().rank() - 1).value();
    long rotary = r.cos().type().dim(r.cos().type().rank() - 1).value();
    Value rotated = rotary == width ? x : lastSlice(b, n, x, 0, rotary);
    Value turned;
    if (r.style() == TransformerOp.RopeStyle.ROTATE_HALF) {
      Value low = lastSlice(b, n, rotated, 0, rotary / 2);
      Value high = lastSlice(b, n, rotated, rotary / 2, rotary);
      turned = add(b, n, new DataOp.Concat(List.of(add(b, n,
          new ElementwiseOp.Unary(UnaryKind.NEG, high)), low), -1));
    } else {
      List<Dim> pairs = new java.util.ArrayList<>(rotated.type().dims());
      pairs.set(pairs.size() - 1, Dim.of(rotary / 2));
      pairs.add(Dim.of(2));
      Value view = add(b, n, new DataOp.Reshape(rotated, pairs));
      Value first = lastSlice(b, n, view, 0, 1);
      Value second = lastSlice(b, n, view, 1, 2);
      turned = add(b, n, new DataOp.Reshape(add(b, n, new DataOp.Concat(List.of(add(b, n,
          new ElementwiseOp.Unary(UnaryKind.NEG, second)), first), -1)), rotated.type().dims()));
    }
    Value y = add(b, n, new ElementwiseOp.Binary(BinaryKind.ADD,
        add(b, n, new ElementwiseOp.Binary(BinaryKind.MUL, rotated, r.cos())),
        add(b, n, new ElementwiseOp.Binary(BinaryKind.MUL, turned, r.sin()))));
    return rotary == width ? y
        : add(b, n, new DataOp.Concat(List.of(y, lastSlice(b, n, x, rotary, width)), -1));
  }

  private static Value lastSlice(FunctionBuilder b, Node n, Value x, long from, long to) {
    return add(b, n, new DataOp.Slice(x, List.of(Dim.of(from)), List.of(Dim.of(to)), List.of(-1L),
        List.of(1L)));
  }

  /** The dims a norm's gamma and beta span, its normalized dims; null for other ops. */
  private static List<Dim> normalizedDims(Node n) {
    return switch (n.op()) {
      case TransformerOp.LayerNorm l -> {
        List<Dim> d = l.x().type().dims();
        yield d.subList((int) Math.floorMod(l.axis(), d.size()), d.size());
      }
      case TransformerOp.RmsNorm r -> {
        List<Dim> d = r.x().type().dims();
        yield d.subList(d.size() - 1, d.size());
      }
      default -> null;
    };
  }

  /**
   * The dims a rope's tables must have when they broadcast one row over the positions (the
   * chip reads a row per position): x's positions, the tables' other dims; null when they
   * have a row per position already.
   */
  private static List<Dim> ropeTableRows(Node n) {
    if (!(n.op() instanceof TransformerOp.Rope r) || r.x().type().rank() < 2) {
      return null;
    }
    List<Dim> table = r.cos().type().dims();
    Dim positions = r.x().type().dim(r.x().type().rank() - 2);
    if (positions.is(1) || (table.size() >= 2 && !table.get(table.size() - 2).is(1))) {
      return null;
    }
    List<Dim> rows = new ArrayList<>(table.subList(0, Math.max(0, table.size() - 2)));
    rows.add(positions);
    rows.add(table.get(table.size() - 1));
    return rows;
  }

  /**
   * Parameters of {@code n} (its operands after the first) that broadcast over {@code dims}
   * become full copies: the VPU reads a norm's gamma and beta one per column (the unit gamma
   * that fuse-layer-norm leaves where no scale follows is a scalar), a rope's tables one row
   * per position. Constant ones are folded.
   */
  private static void expandParams(FunctionBuilder b, Node n, List<Dim> dims,
      Map<Value, Tensor> known, List<Value> constants) {
    List<Value> operands = new ArrayList<>(n.op().operands());
    for (int i = 1; i < operands.size(); i++) {
      Value v = operands.get(i);
      if (!v.type().dims().equals(dims)) {
        Value full = b.add(new DataOp.Expand(v, dims), n.location(), v.name() + ".full");
        if (known.containsKey(v)) {
          constants.add(full);
        }
        operands.set(i, full);
      }
    }
    n.setOp(n.op().withOperands(operands));
  }

  private static boolean sameShape(Value v, List<Dim> out) {
    return Lowering.squeezeEq(v.type().dims(), out);
  }

  private static boolean isScalarConstant(Value v, Map<Value, Tensor> known) {
    Tensor t = known.get(v);
    return t != null && t.size() == 1;
  }
}
