package dev.sohuc.backend;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.ReductionOp.ReduceKind;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Rewrites, before lowering, of ops the chip runs only in another form; the module changes by
 * the same numbers in other ops:
 * <ul>
 *   <li>a softmax, log-softmax or one-axis reduction over an axis other than the last (the VPU
 *       reduces along rows) runs on a transposed copy with that axis last, transposed back;
 *   <li>a log-softmax is {@code d - log(sum(exp(d)))} with {@code d = x - max(x)}, ONNX
 *       Runtime's own form: finite where {@code log(softmax)} would underflow to minus infinity;
 *   <li>an elementwise op whose operands broadcast otherwise than in the VPU's row patterns (a
 *       scalar, a row, a column, trailing planes: {@link Lowering#binaryPlan}; say both of them,
 *       or over middle dims: a [1, H, S, T] bias plus a [B, 1, 1, T] padding mask) reads
 *       full-shaped copies: each operand that is not the result's shape (nor a constant scalar,
 *       which the instructions take as an immediate) becomes an {@code expand}, a strided DMA
 *       copy.
 * </ul>
 */
final class Legalization {
  private Legalization() {}

  static void run(Function fn, Map<Value, Tensor> known) {
    for (Node n : List.copyOf(fn.body())) {
      switch (n.op()) {
        case ReductionOp.Softmax s when !isLast(s.axis(), s.x()) -> replace(fn, n, lastAxis(fn, n, s.x(),
            s.axis(), (b, t) -> b.add(new ReductionOp.Softmax(t, -1, s.log()), n.location())));
        case ReductionOp.Reduce r when r.axes().size() == 1 && !isLast(r.axes().get(0), r.x())
            && r.kind() != ReduceKind.PROD -> replace(fn, n, reducedOverLast(fn, n, r));
        default -> { }
      }
    }
    for (Node n : List.copyOf(fn.body())) {
      if (n.op() instanceof ReductionOp.Softmax s && s.log()) {
        replace(fn, n, logSoftmax(new FunctionBuilder(fn).insertBefore(n), n, s.x()));
      }
    }
    for (Node n : List.copyOf(fn.body())) {
      if (needsFullOperands(n, known)) {
        expandOperands(fn, n, known);
      }
    }
  }

  private static boolean isLast(long axis, Value x) {
    return Math.floorMod(axis, Math.max(1, x.type().rank())) == x.type().rank() - 1;
  }

  private static void replace(Function fn, Node n, Value y) {
    fn.replaceAllUses(n.result(), y);
    fn.body().remove(n);
  }

  /** The op along the last axis of a transposed copy of {@code x}. */
  private interface AlongLast {
    Value apply(FunctionBuilder b, Value transposed);
  }

  /** {@code op} over {@code axis} of {@code x}: over the last axis of x with that axis moved last. */
  private static Value lastAxis(Function fn, Node n, Value x, long axis, AlongLast op) {
    int rank = x.type().rank();
    List<Long> perm = moveLast(rank, (int) Math.floorMod(axis, rank));
    List<Long> back = new ArrayList<>(perm);
    for (int i = 0; i < rank; i++) {
      back.set(perm.get(i).intValue(), (long) i);
    }
    FunctionBuilder b = new FunctionBuilder(fn).insertBefore(n);
    Value along = op.apply(b, b.add(new DataOp.Transpose(x, perm), n.location()));
    return b.add(new DataOp.Transpose(along, back), n.location());
  }

  /** The reduction over the last axis of x with the reduced axis moved last, in the result's shape. */
  private static Value reducedOverLast(Function fn, Node n, ReductionOp.Reduce r) {
    int rank = r.x().type().rank();
    FunctionBuilder b = new FunctionBuilder(fn).insertBefore(n);
    Value moved = b.add(new DataOp.Transpose(r.x(), moveLast(rank,
        (int) Math.floorMod(r.axes().get(0), rank))), n.location());
    // the other axes keep their order, so dropping the last one leaves the result's layout
    Value reduced = b.add(new ReductionOp.Reduce(r.kind(), moved, List.of(-1L), false), n.location());
    return b.add(new DataOp.Reshape(reduced, n.result().type().dims()), n.location());
  }

  /** 0 .. rank-1 with {@code axis} taken out and put last. */
  private static List<Long> moveLast(int rank, int axis) {
    List<Long> perm = new ArrayList<>();
    for (long i = 0; i < rank; i++) {
      if (i != axis) {
        perm.add(i);
      }
    }
    perm.add((long) axis);
    return perm;
  }

  private static Value logSoftmax(FunctionBuilder b, Node n, Value x) {
    Value max = b.add(new ReductionOp.Reduce(ReduceKind.MAX, x, List.of(-1L), true), n.location());
    Value d = b.add(new ElementwiseOp.Binary(BinaryKind.SUB, x, max), n.location());
    Value sum = b.add(new ReductionOp.Reduce(ReduceKind.SUM,
        b.add(new ElementwiseOp.Unary(UnaryKind.EXP, d), n.location()), List.of(-1L), true), n.location());
    return b.add(new ElementwiseOp.Binary(BinaryKind.SUB, d,
        b.add(new ElementwiseOp.Unary(UnaryKind.LOG, sum), n.location())), n.location());
  }

  private static boolean needsFullOperands(Node n, Map<Value, Tensor> known) {
    return switch (n.op()) {
      case ElementwiseOp.Binary b when b.kind().isComparison() -> {
        Lowering.BinaryPlan p = Lowering.binaryPlan(b, known);
        yield p == null || p.bShape() == Lowering.Shape.PLANE;
      }
      case ElementwiseOp.Binary b -> Lowering.binaryPlan(b, known) == null;
      case ElementwiseOp.Where w -> w.operands().stream().anyMatch(v ->
          !sameShape(v, n.result().type().dims()) && !isScalarConstant(v, known));
      default -> false;
    };
  }

  private static void expandOperands(Function fn, Node n, Map<Value, Tensor> known) {
    List<Dim> out = n.result().type().dims();
    List<Value> operands = new ArrayList<>(n.op().operands());
    FunctionBuilder b = new FunctionBuilder(fn).insertBefore(n);
    for (int i = 0; i < operands.size(); i++) {
      Value v = operands.get(i);
      if (!sameShape(v, out) && !isScalarConstant(v, known)) {
        operands.set(i, b.add(new DataOp.Expand(v, out), n.location(), v.name() + ".full"));
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
