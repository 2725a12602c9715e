package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.binary;
import static dev.sohuc.passes.rewrite.Patterns.def;
import static dev.sohuc.passes.rewrite.Patterns.unary;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.TransformerOp.Rope;
import dev.sohuc.ir.op.TransformerOp.RopeStyle;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * {@code fuse-rope}: recognizes rotary embeddings in the rotate-half form of Llama/NeoX exports,
 * {@code x * cos + cat(-x[.., d/2:], x[.., :d/2]) * sin}, and replaces them with {@code rope}.
 */
public final class FuseRopePass extends RewritePass {

  /** {@code slice(x, [from, to))} along the last axis with step 1: returns x. */
  private static Optional<Value> lastAxisSlice(Value v, long from, long to) {
    return def(v, DataOp.Slice.class).filter(s -> {
      int rank = s.x().type().rank();
      Dim d = s.x().type().dim(rank - 1);
      if (s.axes().size() != 1 || !d.isStatic() || s.steps().get(0) != 1) {
        return false;
      }
      long axis = s.axes().get(0) < 0 ? s.axes().get(0) + rank : s.axes().get(0);
      long start = bound(s.starts().get(0), d.value());
      long end = Math.min(bound(s.ends().get(0), d.value()), d.value());
      return axis == rank - 1 && start == from && end == to;
    }).map(DataOp.Slice::x);
  }

  private static long bound(Dim b, long dim) {
    if (!b.isStatic()) {
      return Long.MIN_VALUE;
    }
    return b.value() < 0 ? b.value() + dim : b.value();
  }

  /** {@code concat(neg(x[.., h:]), x[.., :h], axis = -1)} with h half the last dim: returns x. */
  static Optional<Value> rotateHalfOf(Value v) {
    return def(v, DataOp.Concat.class).filter(c -> c.inputs().size() == 2
        && (c.axis() == -1 || c.axis() == v.type().rank() - 1)).flatMap(c -> {
          Dim d = v.type().dim(v.type().rank() - 1);
          if (!d.isStatic() || d.value() % 2 != 0) {
            return Optional.empty();
          }
          long h = d.value() / 2;
          Optional<Value> x2 = unary(c.inputs().get(0), UnaryKind.NEG).flatMap(neg -> lastAxisSlice(neg.x(), h, 2 * h));
          Optional<Value> x1 = lastAxisSlice(c.inputs().get(1), 0, h);
          return x1.isPresent() && x2.isPresent() && x1.get() == x2.get()
              && x1.get().type().dim(x1.get().type().rank() - 1).is(2 * h) ? x1 : Optional.empty();
        });
  }

  // add(mul(x, cos), mul(concat(neg(x[.., d/2:]), x[.., :d/2]), sin)) -> rope(x, cos, sin, "rotate_half")
  public static final RewriteRule ROPE_ROTATE_HALF = RewriteRule.of("rope-rotate-half", Set.of("add"), (n, cx) -> {
    Binary add = (Binary) n.op();
    for (Value[] terms : Patterns.orders(add)) {
      Optional<Binary> rotTerm = binary(terms[1], BinaryKind.MUL);
      Optional<Binary> cosTerm = binary(terms[0], BinaryKind.MUL);
      if (rotTerm.isEmpty() || cosTerm.isEmpty()) {
        continue;
      }
      for (Value[] r : Patterns.orders(rotTerm.get())) {
        Optional<Value> x = rotateHalfOf(r[0]);
        if (x.isEmpty()) {
          continue;
        }
        Optional<Value> cos = Patterns.other(cosTerm.get(), x.get());
        Value sin = r[1];
        if (cos.isPresent() && cos.get().type().equals(sin.type())
            && cos.get().type().dim(cos.get().type().rank() - 1).equals(x.get().type().dim(x.get().type().rank() - 1))) {
          return Replacement.op(new Rope(x.get(), cos.get(), sin, RopeStyle.ROTATE_HALF));
        }
      }
    }
    return Optional.empty();
  });

  private static final List<RewriteRule> RULES = List.of(ROPE_ROTATE_HALF);

  @Override
  public String name() {
    return "fuse-rope";
  }

  @Override
  public String summary() {
    return "fuse rotate-half rotary embeddings into rope";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
