package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.def;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.passes.rewrite.RewriteContext;

import java.util.Optional;

/** Integer scalars that are dims of tensors: what ONNX shape subgraphs compute. */
final class ShapeValues {
  private ShapeValues() {}

  /**
   * The dim a one-element integer value equals: a constant, {@code gather(shape(x), i)},
   * {@code shape(x, i, i+1)}, through reshapes and integer casts, and sums and differences of such.
   */
  static Optional<Dim> scalarDim(Value v, RewriteContext cx) {
    if (v.type().staticElementCount().orElse(0) != 1 || v.type().elementType().isFloat()) {
      return Optional.empty();
    }
    Optional<Tensor> c = cx.constant(v);
    if (c.isPresent()) {
      return Optional.of(Dim.of(c.get().getLong(0)));
    }
    var p = v.producer();
    if (p == null) {
      return Optional.empty();
    }
    return switch (p.op()) {
      case DataOp.Reshape r -> scalarDim(r.x(), cx);
      case ElementwiseOp.Cast cast when cast.to().isInteger() && cast.x().type().elementType().isInteger() ->
          scalarDim(cast.x(), cx);
      case DataOp.Shape s -> dimOf(s.x(), s.start());
      case DataOp.Gather g -> def(g.data(), DataOp.Shape.class).flatMap(s -> cx.constant(g.indices())
          .flatMap(i -> dimOf(s.x(), s.start() + i.getLong(0))));
      case ElementwiseOp.Binary b when b.kind() == BinaryKind.ADD || b.kind() == BinaryKind.SUB -> {
        Optional<Dim> l = scalarDim(b.lhs(), cx);
        Optional<Dim> r = scalarDim(b.rhs(), cx);
        yield l.isPresent() && r.isPresent()
            ? Optional.of(b.kind() == BinaryKind.ADD ? l.get().plus(r.get()) : l.get().minus(r.get()))
            : Optional.empty();
      }
      default -> Optional.empty();
    };
  }

  private static Optional<Dim> dimOf(Value x, long axis) {
    int rank = x.type().rank();
    long a = axis < 0 ? axis + rank : axis;
    return a >= 0 && a < rank ? Optional.of(x.type().dim((int) a)) : Optional.empty();
  }
}
