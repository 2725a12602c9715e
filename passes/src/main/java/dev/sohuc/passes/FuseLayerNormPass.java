package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.binary;
import static dev.sohuc.passes.rewrite.Patterns.def;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.TransformerOp.LayerNorm;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.RewriteContext;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * {@code fuse-layer-norm}: recognizes the layer normalization that PyTorch exports decompose
 * (ReduceMean, Sub, Pow 2 or Mul, ReduceMean, Add eps, Sqrt, Div or Reciprocal+Mul, Mul gamma,
 * Add beta) and replaces it with one {@code layer_norm}.
 */
public final class FuseLayerNormPass extends RewritePass {

  /** {@code x - reduce_mean(x)} over trailing axes: x and the mean. */
  private record Centered(Value x, ReductionOp.Reduce mean) {}

  private static Optional<Centered> centered(Value d) {
    return binary(d, BinaryKind.SUB).flatMap(sub -> NormPatterns.trailingMean(sub.rhs())
        .filter(m -> m.x() == sub.lhs())
        .map(m -> new Centered(sub.lhs(), m)));
  }

  // div(d, sqrt(add(reduce_mean(sq(d)), eps))) -> layer_norm(x, 1, eps)   where d = sub(x, reduce_mean(x)),
  // sq(d) = pow(d, 2) or mul(d, d), both means over the same trailing axes; also with mul(d, reciprocal(sqrt(..)))
  public static final RewriteRule LAYER_NORM = RewriteRule.of("layer-norm", Set.of("div", "mul"), (n, cx) ->
      NormPatterns.normalized(n.result(), cx).flatMap(norm -> {
        Optional<Centered> c = centered(norm.numerator());
        Optional<ReductionOp.Reduce> var = NormPatterns.trailingMean(norm.root().variance());
        if (c.isEmpty() || var.isEmpty() || !var.get().reducedAxes().equals(c.get().mean().reducedAxes())) {
          return Optional.empty();
        }
        Optional<Centered> inner = NormPatterns.squareOf(var.get().x(), cx).flatMap(FuseLayerNormPass::centered);
        if (inner.isEmpty() || inner.get().x() != c.get().x()
            || !inner.get().mean().reducedAxes().equals(c.get().mean().reducedAxes())) {
          return Optional.empty();
        }
        Value x = c.get().x();
        long axis = c.get().mean().reducedAxes().get(0);
        return Replacement.op(new LayerNorm(x, cx.scalar(1.0, x.type().elementType()), null, axis,
            norm.root().eps()));
      }));

  /** A layer_norm with unit gamma and no beta, as {@link #LAYER_NORM} makes it. */
  private static Optional<LayerNorm> unscaled(Value v, RewriteContext cx) {
    return def(v, LayerNorm.class).filter(ln -> ln.beta() == null && cx.isSplat(ln.gamma(), 1.0));
  }

  // mul(layer_norm(x, 1, eps), gamma) -> layer_norm(x, gamma, eps)
  public static final RewriteRule SCALE = RewriteRule.of("layer-norm-scale", Set.of("mul"), (n, cx) -> {
    Binary m = (Binary) n.op();
    for (Value[] o : Patterns.orders(m)) {
      Optional<LayerNorm> ln = unscaled(o[0], cx);
      if (ln.isPresent()) {
        return Replacement.op(new LayerNorm(ln.get().x(), o[1], null, ln.get().axis(), ln.get().eps()));
      }
    }
    return Optional.empty();
  });

  // add(layer_norm(x, gamma, eps), beta) -> layer_norm(x, gamma, beta, eps)
  public static final RewriteRule SHIFT = RewriteRule.of("layer-norm-shift", Set.of("add"), (n, cx) -> {
    Binary a = (Binary) n.op();
    for (Value[] o : Patterns.orders(a)) {
      Optional<LayerNorm> ln = def(o[0], LayerNorm.class).filter(l -> l.beta() == null);
      if (ln.isPresent()) {
        return Replacement.op(new LayerNorm(ln.get().x(), ln.get().gamma(), o[1], ln.get().axis(), ln.get().eps()));
      }
    }
    return Optional.empty();
  });

  private static final List<RewriteRule> RULES = List.of(LAYER_NORM, SCALE, SHIFT);

  @Override
  public String name() {
    return "fuse-layer-norm";
  }

  @Override
  public String summary() {
    return "fuse the mean/variance decomposition of layer normalization into layer_norm";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
