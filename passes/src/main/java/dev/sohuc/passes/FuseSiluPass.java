package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.def;
import static dev.sohuc.passes.rewrite.Patterns.unary;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.TransformerOp.Silu;
import dev.sohuc.ir.op.TransformerOp.SwiGlu;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.util.List;
import java.util.Optional;
import java.util.Set;

/** {@code fuse-silu}: {@code x * sigmoid(x)} becomes {@code silu}, and {@code silu(g) * up} becomes {@code swiglu}. */
public final class FuseSiluPass extends RewritePass {

  // mul(x, sigmoid(x)) -> silu(x)
  public static final RewriteRule SILU = RewriteRule.of("silu", Set.of("mul"), (n, cx) -> {
    Binary m = (Binary) n.op();
    for (Value[] o : Patterns.orders(m)) {
      if (unary(o[1], UnaryKind.SIGMOID).filter(s -> s.x() == o[0]).isPresent()) {
        return Replacement.op(new Silu(o[0]));
      }
    }
    return Optional.empty();
  });

  // mul(silu(gate), up) -> swiglu(gate, up)   when gate and up have one shape
  public static final RewriteRule SWIGLU = RewriteRule.of("swiglu", Set.of("mul"), (n, cx) -> {
    Binary m = (Binary) n.op();
    for (Value[] o : Patterns.orders(m)) {
      Optional<Silu> silu = def(o[0], Silu.class);
      if (silu.isPresent() && silu.get().x().type().equals(o[1].type())) {
        return Replacement.op(new SwiGlu(silu.get().x(), o[1]));
      }
    }
    return Optional.empty();
  });

  private static final List<RewriteRule> RULES = List.of(SILU, SWIGLU);

  @Override
  public String name() {
    return "fuse-silu";
  }

  @Override
  public String summary() {
    return "fuse x * sigmoid(x) into silu and silu(gate) * up into swiglu";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
