package dev.sohuc.passes.rewrite;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.Op;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Small matchers over the use-def chain, shared by the rules of every pass. */
public final class Patterns {
  private Patterns() {}

  /** The op defining {@code v} when it has class {@code kind}. */
  public static <T extends Op> Optional<T> def(Value v, Class<T> kind) {
    Node p = v.producer();
    return p != null && kind.isInstance(p.op()) ? Optional.of(kind.cast(p.op())) : Optional.empty();
  }

  public static Optional<ElementwiseOp.Binary> binary(Value v, BinaryKind kind) {
    return def(v, ElementwiseOp.Binary.class).filter(b -> b.kind() == kind);
  }

  public static Optional<ElementwiseOp.Unary> unary(Value v, UnaryKind kind) {
    return def(v, ElementwiseOp.Unary.class).filter(u -> u.kind() == kind);
  }

  /** For a binary op with {@code x} as one operand: the other one. */
  public static Optional<Value> other(ElementwiseOp.Binary b, Value x) {
    if (b.lhs() == x) {
      return Optional.of(b.rhs());
    }
    if (b.rhs() == x && b.kind().commutative) {
      return Optional.of(b.lhs());
    }
    return Optional.empty();
  }

  /** Both operand orders of a commutative op ({@code [lhs, rhs]} and {@code [rhs, lhs]}). */
  public static List<Value[]> orders(ElementwiseOp.Binary b) {
    List<Value[]> out = new ArrayList<>();
    out.add(new Value[] {b.lhs(), b.rhs()});
    if (b.kind().commutative && b.lhs() != b.rhs()) {
      out.add(new Value[] {b.rhs(), b.lhs()});
    }
    return out;
  }

  /**
   * The factors of a tree of {@code mul} ops rooted at {@code v} (at most {@code maxFactors}
   * leaves, looking through at most that many muls): {@code mul(mul(a, b), c)} gives {@code [a, b, c]}.
   */
  public static List<Value> factors(Value v, int maxFactors) {
    List<Value> out = new ArrayList<>();
    collect(v, BinaryKind.MUL, out, maxFactors);
    return out;
  }

  /** The terms of a tree of {@code add} ops rooted at {@code v}. */
  public static List<Value> terms(Value v, int maxTerms) {
    List<Value> out = new ArrayList<>();
    collect(v, BinaryKind.ADD, out, maxTerms);
    return out;
  }

  private static void collect(Value v, BinaryKind kind, List<Value> out, int max) {
    Optional<ElementwiseOp.Binary> b = binary(v, kind);
    if (b.isPresent() && out.size() + 2 <= max) {
      collect(b.get().lhs(), kind, out, max - 1);
      collect(b.get().rhs(), kind, out, max);
    } else {
      out.add(v);
    }
  }

  /** True when {@code v}'s element type is a float type. */
  public static boolean isFloat(Value v) {
    return v.type().elementType().isFloat();
  }
}
