package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.binary;
import static dev.sohuc.passes.rewrite.Patterns.def;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.TransformerOp.RmsNorm;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.RewriteContext;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * {@code fuse-rms-norm}: recognizes root-mean-square normalization as Llama exports write it
 * (Pow 2, ReduceMean over the last axis, Add eps, Sqrt, Reciprocal or Div, Mul, Mul gamma) and
 * Gemma's {@code * (1 + weight)}, and replaces it with one {@code rms_norm}. Casts to f32 and
 * back around the core stay as they are, so the fused op is exact at any precision.
 */
public final class FuseRmsNormPass extends RewritePass {

  // mul(h, reciprocal(sqrt(add(reduce_mean(sq(h), [-1]), eps)))) -> rms_norm(h, 1, eps)
  // div(h, sqrt(add(reduce_mean(sq(h), [-1]), eps)))              -> rms_norm(h, 1, eps)
  //   (h not itself x - mean(x): that is layer_norm's numerator)
  public static final RewriteRule RMS_NORM = RewriteRule.of("rms-norm", Set.of("div", "mul"), (n, cx) ->
      NormPatterns.normalized(n.result(), cx).flatMap(norm -> {
        Value h = norm.numerator();
        Optional<ReductionOp.Reduce> ms = NormPatterns.trailingMean(norm.root().variance())
            .filter(r -> r.reducedAxes().equals(List.of(h.type().rank() - 1)));
        if (ms.isEmpty() || NormPatterns.squareOf(ms.get().x(), cx).filter(s -> s == h).isEmpty()) {
          return Optional.empty();
        }
        boolean centered = binary(h, BinaryKind.SUB)
            .flatMap(s -> NormPatterns.trailingMean(s.rhs()).filter(m -> m.x() == s.lhs())).isPresent();
        if (centered) {
          return Optional.empty();
        }
        return Replacement.op(new RmsNorm(h, cx.scalar(1.0, h.type().elementType()), norm.root().eps(), 0.0));
      }));

  private static Optional<RmsNorm> unscaled(Value v, RewriteContext cx) {
    return def(v, RmsNorm.class).filter(r -> r.gammaOffset() == 0.0 && cx.isSplat(r.gamma(), 1.0));
  }

  // mul(rms_norm(h, 1, eps), add(w, 1)) -> rms_norm(h, w, eps, gamma_offset = 1)   (Gemma)
  public static final RewriteRule SCALE_WITH_OFFSET = RewriteRule.of("rms-norm-scale-offset", Set.of("mul"),
      (n, cx) -> {
        Binary m = (Binary) n.op();
        for (Value[] o : Patterns.orders(m)) {
          Optional<RmsNorm> r = unscaled(o[0], cx);
          Optional<Binary> plusOne = binary(o[1], BinaryKind.ADD).filter(a -> cx.isSplat(a.rhs(), 1.0)
              && a.lhs().type().equals(o[1].type()));
          if (r.isPresent() && plusOne.isPresent()) {
            return Replacement.op(new RmsNorm(r.get().x(), plusOne.get().lhs(), r.get().eps(), 1.0));
          }
        }
        return Optional.empty();
      });

  // mul(rms_norm(h, 1, eps), gamma) -> rms_norm(h, gamma, eps)
  public static final RewriteRule SCALE = RewriteRule.of("rms-norm-scale", Set.of("mul"), (n, cx) -> {
    Binary m = (Binary) n.op();
    for (Value[] o : Patterns.orders(m)) {
      Optional<RmsNorm> r = unscaled(o[0], cx);
      if (r.isPresent()) {
        return Replacement.op(new RmsNorm(r.get().x(), o[1], r.get().eps(), 0.0));
      }
    }
    return Optional.empty();
  });

  private static final List<RewriteRule> RULES = List.of(RMS_NORM, SCALE_WITH_OFFSET, SCALE);

  @Override
  public String name() {
    return "fuse-rms-norm";
  }

  @Override
  public String summary() {
    return "fuse the mean-of-squares decomposition of RMS normalization into rms_norm";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
