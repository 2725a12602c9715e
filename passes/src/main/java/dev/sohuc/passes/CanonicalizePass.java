package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.def;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * {@code canonicalize}: algebraic identities and data-movement simplifications that give later
 * passes one normal form (constants last in commutative ops, no identity reshapes, transposes,
 * casts, slices or expands, no chains of reshapes or transposes). Every rule is exact: the
 * replacement computes bit-for-bit the same values (up to the sign of a zero).
 */
public final class CanonicalizePass extends RewritePass {

  private static Optional<Binary> bin(Node n) {
    return n.op() instanceof Binary b ? Optional.of(b) : Optional.empty();
  }

  private static boolean isConst(Value v) {
    return v.producer() != null && v.producer().op() instanceof SourceOp;
  }

  /** {@code op(x, c) -> x} when c is the splat {@code identity}. */
  private static RewriteRule rightIdentity(String name, BinaryKind kind, double identity) {
    return RewriteRule.of(name, Set.of(kind.mnemonic()), (n, cx) -> bin(n)
        .filter(b -> b.kind() == kind && cx.isSplat(b.rhs(), identity))
        .flatMap(b -> Replacement.value(b.lhs())));
  }

  // add(x, 0) -> x   (x + 0 == x, also for -0 up to the sign of zero)
  public static final RewriteRule ADD_ZERO = rightIdentity("add-zero", BinaryKind.ADD, 0.0);
  // sub(x, 0) -> x
  public static final RewriteRule SUB_ZERO = rightIdentity("sub-zero", BinaryKind.SUB, 0.0);
  // mul(x, 1) -> x
  public static final RewriteRule MUL_ONE = rightIdentity("mul-one", BinaryKind.MUL, 1.0);
  // div(x, 1) -> x
  public static final RewriteRule DIV_ONE = rightIdentity("div-one", BinaryKind.DIV, 1.0);
  // pow(x, 1) -> x
  public static final RewriteRule POW_ONE = rightIdentity("pow-one", BinaryKind.POW, 1.0);

  // op(c, x) -> op(x, c) for commutative op, c constant and x not: constants go last
  public static final RewriteRule CONSTANT_LAST = RewriteRule.of("constant-last",
      Set.of("add", "mul", "max", "min", "equal", "and", "or", "xor"), (n, cx) -> bin(n)
          .filter(b -> b.kind().commutative && isConst(b.lhs()) && !isConst(b.rhs()))
          .flatMap(b -> Replacement.op(new Binary(b.kind(), b.rhs(), b.lhs()))));

  // mul(x, -1) -> neg(x)   (exact: multiplying by -1 flips the sign bit)
  public static final RewriteRule MUL_MINUS_ONE = RewriteRule.of("mul-minus-one", Set.of("mul"), (n, cx) -> bin(n)
      .filter(b -> cx.isSplat(b.rhs(), -1.0) && Patterns.isFloat(b.lhs()))
      .flatMap(b -> Replacement.op(new ElementwiseOp.Unary(UnaryKind.NEG, b.lhs()))));

  // sub(0, x) -> neg(x)
  public static final RewriteRule ZERO_MINUS = RewriteRule.of("zero-minus", Set.of("sub"), (n, cx) -> bin(n)
      .filter(b -> cx.isSplat(b.lhs(), 0.0) && b.rhs().type().equals(n.result().type()))
      .flatMap(b -> Replacement.op(new ElementwiseOp.Unary(UnaryKind.NEG, b.rhs()))));

  // neg(neg(x)) -> x
  public static final RewriteRule NEG_NEG = RewriteRule.of("neg-neg", Set.of("neg"), (n, cx) ->
      Patterns.unary(n.op().operands().get(0), UnaryKind.NEG).flatMap(inner -> Replacement.value(inner.x())));

  // where(c, x, x) -> x
  public static final RewriteRule WHERE_SAME = RewriteRule.of("where-same", Set.of("where"), (n, cx) ->
      n.op() instanceof ElementwiseOp.Where w && w.onTrue() == w.onFalse()
          ? Replacement.value(w.onTrue()) : Optional.empty());

  // cast(x : T, to = T) -> x
  public static final RewriteRule IDENTITY_CAST = RewriteRule.of("identity-cast", Set.of("cast"), (n, cx) ->
      n.op() instanceof ElementwiseOp.Cast c && c.to() == c.x().type().elementType()
          ? Replacement.value(c.x()) : Optional.empty());

  // cast(cast(x : A, to = B), to = A) -> x   when B holds every value of A exactly
  public static final RewriteRule CAST_ROUND_TRIP = RewriteRule.of("cast-round-trip", Set.of("cast"), (n, cx) -> {
    if (!(n.op() instanceof ElementwiseOp.Cast outer)) {
      return Optional.empty();
    }
    return def(outer.x(), ElementwiseOp.Cast.class)
        .filter(inner -> inner.x().type().elementType() == outer.to() && widens(outer.to(), inner.to()))
        .flatMap(inner -> Replacement.value(inner.x()));
  });

  // cast(cast(n : f32, to = i32), to = f32) -> n   when n = reduce_sum(cast(bool to f32)) over at
  //   most 2^24 elements: a count, which f32 and i32 both hold exactly (EmbedLayerNormalization's
  //   mask_index, an int32 count of the mask's ones, read back as f32 by Attention's mask)
  public static final RewriteRule COUNT_ROUND_TRIP = RewriteRule.of("count-round-trip",
      Set.of("cast"), (n, cx) -> {
        if (!(n.op() instanceof ElementwiseOp.Cast outer) || outer.to() != ElementType.F32) {
          return Optional.empty();
        }
        return def(outer.x(), ElementwiseOp.Cast.class)
            .filter(inner -> inner.to() == ElementType.I32 && isSmallCount(inner.x()))
            .flatMap(inner -> Replacement.value(inner.x()));
      });

  /** A sum of bools cast to f32 over a static count of at most 2^24 elements per result. */
  private static boolean isSmallCount(Value v) {
    Optional<ReductionOp.Reduce> sum = def(v, ReductionOp.Reduce.class)
        .filter(r -> r.kind() == ReductionOp.ReduceKind.SUM);
    if (sum.isEmpty() || sum.get().axes().isEmpty() || v.type().elementType() != ElementType.F32) {
      return false;
    }
    Value x = sum.get().x();
    if (def(x, ElementwiseOp.Cast.class).filter(c -> c.x().type().elementType() == ElementType.BOOL)
        .isEmpty()) {
      return false;
    }
    long count = 1;
    for (long axis : sum.get().axes()) {
      Dim d = x.type().dim((int) Math.floorMod(axis, Math.max(1, x.type().rank())));
      if (!d.isStatic()) {
        return false;
      }
      count = Math.multiplyExact(count, Math.max(1, d.value()));
      if (count > 1 << 24) {
        return false;
      }
    }
    return true;
  }

  /** True when every value of {@code narrow} is exactly a value of {@code wide}. */
  static boolean widens(ElementType narrow, ElementType wide) {
    if (narrow == wide) {
      return true;
    }
    return switch (narrow) {
      case F16, BF16 -> wide == ElementType.F32;
      case F8E4M3, F8E5M2 -> wide == ElementType.F32 || wide == ElementType.F16 || wide == ElementType.BF16;
      case I8 -> wide == ElementType.I32 || wide == ElementType.I64;
      case U8 -> wide == ElementType.I32 || wide == ElementType.I64;
      case I32 -> wide == ElementType.I64;
      case BOOL -> wide.isInteger();
      default -> false;
    };
  }

  // reshape(x) -> x   when the result type is x's type
  public static final RewriteRule IDENTITY_RESHAPE = RewriteRule.of("identity-reshape", Set.of("reshape"), (n, cx) ->
      identity(n));

  // expand(x) -> x   when the result type is x's type
  public static final RewriteRule IDENTITY_EXPAND = RewriteRule.of("identity-expand", Set.of("expand"), (n, cx) ->
      identity(n));

  // transpose(x, [0, 1, ..]) -> x
  public static final RewriteRule IDENTITY_TRANSPOSE = RewriteRule.of("identity-transpose", Set.of("transpose"),
      (n, cx) -> n.op() instanceof DataOp.Transpose t && isIdentity(t.perm()) ? Replacement.value(t.x()) : Optional.empty());

  // slice(x, starts = 0.., steps = 1..) -> x   when the result type is x's type
  public static final RewriteRule IDENTITY_SLICE = RewriteRule.of("identity-slice", Set.of("slice"), (n, cx) ->
      n.op() instanceof DataOp.Slice s
          && s.starts().stream().allMatch(d -> d.is(0)) && s.steps().stream().allMatch(st -> st == 1)
          ? identity(n) : Optional.empty());

  // concat(x) -> x
  public static final RewriteRule SINGLE_CONCAT = RewriteRule.of("single-concat", Set.of("concat"), (n, cx) ->
      n.op() instanceof DataOp.Concat c && c.inputs().size() == 1 ? Replacement.value(c.inputs().get(0)) : Optional.empty());

  // reshape(reshape(x, s1), s2) -> reshape(x, s2)
  public static final RewriteRule RESHAPE_RESHAPE = RewriteRule.of("reshape-reshape", Set.of("reshape"), (n, cx) ->
      n.op() instanceof DataOp.Reshape outer
          ? def(outer.x(), DataOp.Reshape.class).flatMap(inner ->
              Replacement.op(new DataOp.Reshape(inner.x(), n.result().type().dims())))
          : Optional.empty());

  // transpose(transpose(x, p), q) -> transpose(x, [p[q[0]], p[q[1]], ...])
  public static final RewriteRule TRANSPOSE_TRANSPOSE = RewriteRule.of("transpose-transpose", Set.of("transpose"),
      (n, cx) -> n.op() instanceof DataOp.Transpose outer
          ? def(outer.x(), DataOp.Transpose.class).flatMap(inner ->
              Replacement.op(new DataOp.Transpose(inner.x(), compose(inner.perm(), outer.perm()))))
          : Optional.empty());

  /** The permutation of {@code transpose(transpose(x, first), second)}. */
  public static List<Long> compose(List<Long> first, List<Long> second) {
    List<Long> out = new ArrayList<>();
    for (long q : second) {
      out.add(first.get((int) q));
    }
    return out;
  }

  public static boolean isIdentity(List<Long> perm) {
    for (int i = 0; i < perm.size(); i++) {
      if (perm.get(i) != i) {
        return false;
      }
    }
    return true;
  }

  private static Optional<Replacement> identity(Node n) {
    Value x = n.op().operands().get(0);
    return x.type().equals(n.result().type()) ? Replacement.value(x) : Optional.empty();
  }

  /** Reshape targets are written with plain dims after canonicalization (a -1 is resolved). */
  // reshape(x, [.., -1, ..]) -> reshape(x, result dims)
  public static final RewriteRule RESOLVE_RESHAPE = RewriteRule.of("resolve-reshape", Set.of("reshape"), (n, cx) ->
      n.op() instanceof DataOp.Reshape r && r.shape().stream().anyMatch(d -> d.is(-1))
          ? Replacement.op(new DataOp.Reshape(r.x(), n.result().type().dims()))
          : Optional.empty());

  private static final List<RewriteRule> RULES = List.of(
      ADD_ZERO, SUB_ZERO, MUL_ONE, DIV_ONE, POW_ONE, CONSTANT_LAST, MUL_MINUS_ONE, ZERO_MINUS, NEG_NEG,
      WHERE_SAME, IDENTITY_CAST, CAST_ROUND_TRIP, COUNT_ROUND_TRIP, IDENTITY_RESHAPE, IDENTITY_EXPAND, IDENTITY_TRANSPOSE,
      IDENTITY_SLICE, SINGLE_CONCAT, RESHAPE_RESHAPE, TRANSPOSE_TRANSPOSE, RESOLVE_RESHAPE);

  @Override
  public String name() {
    return "canonicalize";
  }

  @Override
  public String summary() {
    return "algebraic identities and reshape/transpose/cast simplifications into one normal form";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
