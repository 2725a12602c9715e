package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.binary;
import static dev.sohuc.passes.rewrite.Patterns.unary;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.TransformerOp.Gelu;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.RewriteContext;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * {@code fuse-gelu}: recognizes {@code x * 0.5 * (1 + erf(x / sqrt(2)))} (BERT exports) and
 * {@code 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))} (GPT-2 exports), in any
 * association and operand order of the products, and replaces them with {@code gelu}.
 */
public final class FuseGeluPass extends RewritePass {
  /** Relative tolerance on the constants: exports round them to f32. */
  static final double CONSTANT_TOLERANCE = 1e-6;
  private static final double SQRT2 = Math.sqrt(2.0);
  private static final double SQRT_2_OVER_PI = Math.sqrt(2.0 / Math.PI);

  /** {@code add(f(arg), 1)} with f the given unary op: returns arg. */
  private static Optional<Value> onePlus(Value v, UnaryKind f, RewriteContext cx) {
    return binary(v, BinaryKind.ADD).flatMap(a -> {
      for (Value[] o : Patterns.orders(a)) {
        if (cx.isSplat(o[1], 1.0)) {
          Optional<Value> arg = unary(o[0], f).map(u -> u.x());
          if (arg.isPresent()) {
            return arg;
          }
        }
      }
      return Optional.empty();
    });
  }

  /** {@code x / sqrt(2)} or {@code x * (1/sqrt(2))}: returns x. */
  private static Optional<Value> overSqrt2(Value v, RewriteContext cx) {
    Optional<Binary> div = binary(v, BinaryKind.DIV).filter(d -> cx.isSplat(d.rhs(), SQRT2, CONSTANT_TOLERANCE));
    if (div.isPresent()) {
      return Optional.of(div.get().lhs());
    }
    return scaledBy(v, 1.0 / SQRT2, cx);
  }

  /** {@code x * c} in either order: returns x. */
  private static Optional<Value> scaledBy(Value v, double c, RewriteContext cx) {
    return binary(v, BinaryKind.MUL).flatMap(m -> {
      for (Value[] o : Patterns.orders(m)) {
        if (cx.isSplat(o[1], c, CONSTANT_TOLERANCE)) {
          return Optional.of(o[0]);
        }
      }
      return Optional.empty();
    });
  }

  /** {@code pow(x, 3)}, {@code x * (x * x)} or {@code (x * x) * x}: returns x. */
  private static Optional<Value> cubeOf(Value v, RewriteContext cx) {
    Optional<Binary> pow = binary(v, BinaryKind.POW).filter(p -> cx.isSplat(p.rhs(), 3.0));
    if (pow.isPresent()) {
      return Optional.of(pow.get().lhs());
    }
    List<Value> f = Patterns.factors(v, 3);
    return f.size() == 3 && f.get(0) == f.get(1) && f.get(1) == f.get(2) ? Optional.of(f.get(0)) : Optional.empty();
  }

  /** {@code sqrt(2/pi) * (x + 0.044715 * x^3)}: returns x. */
  private static Optional<Value> tanhArgument(Value v, RewriteContext cx) {
    return scaledBy(v, SQRT_2_OVER_PI, cx).flatMap(inner -> binary(inner, BinaryKind.ADD)).flatMap(add -> {
      for (Value[] o : Patterns.orders(add)) {
        Optional<Value> x = scaledBy(o[1], 0.044715, cx).flatMap(c -> cubeOf(c, cx)).filter(c -> c == o[0]);
        if (x.isPresent()) {
          return x;
        }
      }
      return Optional.empty();
    });
  }

  /**
   * The gelu whose product is {@code factors} (times {@code half} already accounted for when the
   * root divides by 2): one factor is {@code 1 + erf(x/sqrt2)} (or the tanh form), one is x, and
   * unless {@code halved}, one is 0.5.
   */
  private static Optional<Gelu> geluOf(List<Value> factors, boolean halved, RewriteContext cx) {
    if (factors.size() != (halved ? 2 : 3)) {
      return Optional.empty();
    }
    for (int i = 0; i < factors.size(); i++) {
      Value f = factors.get(i);
      Optional<Value> x = onePlus(f, UnaryKind.ERF, cx).flatMap(a -> overSqrt2(a, cx));
      boolean tanh = false;
      if (x.isEmpty()) {
        x = onePlus(f, UnaryKind.TANH, cx).flatMap(a -> tanhArgument(a, cx));
        tanh = true;
      }
      if (x.isEmpty()) {
        continue;
      }
      List<Value> rest = new ArrayList<>(factors);
      rest.remove(i);
      if (!rest.remove(x.get())) {
        continue;
      }
      if (!halved && !cx.isSplat(rest.get(0), 0.5)) {
        continue;
      }
      return Optional.of(new Gelu(x.get(), tanh));
    }
    return Optional.empty();
  }

  // mul(mul(x, 0.5), add(erf(div(x, sqrt2)), 1)) -> gelu(x)   and every association of the three factors
  // mul(mul(x, 0.5), add(tanh(sqrt(2/pi) * (x + 0.044715 * x^3)), 1)) -> gelu(x, approximate = "tanh")
  public static final RewriteRule GELU = RewriteRule.of("gelu", Set.of("mul"), (n, cx) ->
      geluOf(Patterns.factors(n.result(), 3), false, cx).flatMap(Replacement::op));

  // div(mul(x, add(erf(div(x, sqrt2)), 1)), 2) -> gelu(x)   (and the tanh form)
  public static final RewriteRule GELU_HALVED = RewriteRule.of("gelu-halved", Set.of("div"), (n, cx) -> {
    Binary d = (Binary) n.op();
    return cx.isSplat(d.rhs(), 2.0)
        ? geluOf(Patterns.factors(d.lhs(), 2), true, cx).flatMap(Replacement::op)
        : Optional.empty();
  });

  private static final List<RewriteRule> RULES = List.of(GELU, GELU_HALVED);

  @Override
  public String name() {
    return "fuse-gelu";
  }

  @Override
  public String summary() {
    return "fuse the erf and tanh forms of GELU into gelu";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
