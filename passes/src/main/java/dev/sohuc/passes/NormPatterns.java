package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.binary;
import static dev.sohuc.passes.rewrite.Patterns.def;
import static dev.sohuc.passes.rewrite.Patterns.unary;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.RewriteContext;

import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;

/** Matchers shared by the layer_norm and rms_norm fusions. */
final class NormPatterns {
  private NormPatterns() {}

  /** {@code x*x} or {@code pow(x, 2)}: returns x. */
  static Optional<Value> squareOf(Value v, RewriteContext cx) {
    Optional<Binary> pow = binary(v, BinaryKind.POW).filter(p -> cx.isSplat(p.rhs(), 2.0));
    if (pow.isPresent()) {
      return Optional.of(pow.get().lhs());
    }
    return binary(v, BinaryKind.MUL).filter(m -> m.lhs() == m.rhs()).map(Binary::lhs);
  }

  /** {@code reduce_mean(x, axes, keepdims = true)} over trailing axes: returns it. */
  static Optional<ReductionOp.Reduce> trailingMean(Value v) {
    return def(v, ReductionOp.Reduce.class).filter(r -> r.kind() == ReductionOp.ReduceKind.MEAN && r.keepdims()
        && isTrailing(r.reducedAxes(), r.x().type().rank()));
  }

  static boolean isTrailing(List<Integer> axes, int rank) {
    for (int i = 0; i < axes.size(); i++) {
      if (axes.get(i) != rank - axes.size() + i) {
        return false;
      }
    }
    return !axes.isEmpty();
  }

  /** What {@code 1/sqrt(v + eps)} or {@code sqrt(v + eps)} is made of. */
  record RootOfSum(Value variance, double eps) {}

  /** {@code sqrt(add(v, eps))} with eps a non-negative splat constant. */
  static Optional<RootOfSum> sqrtOfSum(Value s, RewriteContext cx) {
    return unary(s, UnaryKind.SQRT).flatMap(sq -> binary(sq.x(), BinaryKind.ADD)).flatMap(add -> {
      for (Value[] o : Patterns.orders(add)) {
        OptionalDouble eps = cx.splat(o[1]);
        if (eps.isPresent() && eps.getAsDouble() >= 0) {
          double e = o[1].type().elementType() == dev.sohuc.ir.type.ElementType.F32
              ? RewriteContext.shortestF32(eps.getAsDouble()) : eps.getAsDouble();
          return Optional.of(new RootOfSum(o[0], e));
        }
      }
      return Optional.empty();
    });
  }

  /** {@code reciprocal(sqrt(v + eps))} or {@code div(1, sqrt(v + eps))}. */
  static Optional<RootOfSum> inverseSqrtOfSum(Value r, RewriteContext cx) {
    Optional<Value> root = unary(r, UnaryKind.RECIPROCAL).map(u -> u.x())
        .or(() -> binary(r, BinaryKind.DIV).filter(d -> cx.isSplat(d.lhs(), 1.0)).map(Binary::rhs));
    return root.flatMap(s -> sqrtOfSum(s, cx));
  }

  /** A normalized numerator divided by a root: {@code n / sqrt(v+eps)} or {@code n * (1/sqrt(v+eps))}. */
  record Normalized(Value numerator, RootOfSum root) {}

  static Optional<Normalized> normalized(Value v, RewriteContext cx) {
    Optional<Binary> div = binary(v, BinaryKind.DIV);
    if (div.isPresent()) {
      return sqrtOfSum(div.get().rhs(), cx).map(r -> new Normalized(div.get().lhs(), r));
    }
    Optional<Binary> mul = binary(v, BinaryKind.MUL);
    if (mul.isPresent()) {
      for (Value[] o : Patterns.orders(mul.get())) {
        Optional<RootOfSum> r = inverseSqrtOfSum(o[1], cx);
        if (r.isPresent()) {
          return Optional.of(new Normalized(o[0], r.get()));
        }
      }
    }
    return Optional.empty();
  }
}
