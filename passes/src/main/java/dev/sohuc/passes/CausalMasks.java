package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.binary;
import static dev.sohuc.passes.rewrite.Patterns.def;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.RewriteContext;

import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.function.DoublePredicate;

/**
 * Proves that a mask built from ops is the causal mask of attention with S queries and T keys:
 * query i sees key j exactly when {@code j <= i + (T - S)}. Recognized idioms, each seen through
 * reshapes and expands that only add or broadcast leading dims:
 * <ul>
 *   <li>additive: {@code trilu(fill(NEG, [S, T]), upper, k = T-S+1)} (HF's triu of a min-value
 *       tensor), {@code where(masked, NEG, 0)}, {@code where(keep, 0, NEG)};
 *   <li>boolean: {@code trilu(fill(true), lower, k = T-S)} (GPT-2's tril buffer),
 *       {@code not(..)} of the opposite, and comparisons of a column index
 *       {@code range(T)} with a row index {@code range(S) + offset} such as
 *       {@code greater(j, i + off)} (masked) or {@code less_equal(j, i + off)} (keep);
 *   <li>constant: any of the above already folded to data (a static-shape export, or GPT-2's
 *       tril buffer sliced to [S, T]), checked element by element when S and T are static.
 * </ul>
 * NEG is any value at or below {@link #NEG_LIMIT}: after it, exp underflows to 0 in f32 for any
 * scores of sane size, so the mask and {@code causal = true} mean the same.
 */
final class CausalMasks {
  static final double NEG_LIMIT = -1e4;

  private final Dim s;
  private final Dim t;
  private final RewriteContext cx;

  CausalMasks(Dim queries, Dim keys, RewriteContext cx) {
    this.s = queries;
    this.t = keys;
    this.cx = cx;
  }

  boolean isNeg(Value v) {
    OptionalDouble d = cx.splat(v);
    if (d.isPresent()) {
      return d.getAsDouble() <= NEG_LIMIT;
    }
    return def(v, SourceOp.Fill.class).filter(f -> f.value() <= NEG_LIMIT).isPresent();
  }

  /** Looks through reshapes and expands that keep the last two dims. */
  private static Value peel(Value v) {
    while (v.producer() != null && (v.producer().op() instanceof DataOp.Reshape
        || v.producer().op() instanceof DataOp.Expand)) {
      Value src = v.producer().op().operands().get(0);
      if (src.type().rank() < 2 || v.type().rank() < 2 || !lastTwo(src).equals(lastTwo(v))
          || !leadingOnes(src)) {
        break;
      }
      v = src;
    }
    return v;
  }

  private static List<Dim> lastTwo(Value v) {
    List<Dim> d = v.type().dims();
    return d.subList(d.size() - 2, d.size());
  }

  private static boolean leadingOnes(Value v) {
    List<Dim> d = v.type().dims();
    return d.subList(0, d.size() - 2).stream().allMatch(x -> x.is(1));
  }

  private boolean coversScores(Value v) {
    List<Dim> d = lastTwo(v);
    return d.get(0).equals(s) && d.get(1).equals(t);
  }

  /** An additive mask that is 0 where causal attention sees a key and NEG elsewhere. */
  boolean isAdditiveCausal(Value mask) {
    Value v = peel(mask);
    if (v.type().rank() < 2 || !coversScores(v)) {
      return false;
    }
    Optional<Boolean> folded = constantMatches(v, x -> x <= NEG_LIMIT, x -> x == 0.0);
    if (folded.isPresent()) {
      return folded.get();
    }
    Optional<DataOp.Trilu> tri = def(v, DataOp.Trilu.class);
    if (tri.isPresent()) {
      // triu(NEG, k): NEG where j - i >= k; causal hides j - i > T - S.
      return tri.get().upper() && isNeg(peel(tri.get().x())) && Dim.of(tri.get().k() - 1).equals(t.minus(s));
    }
    Optional<ElementwiseOp.Where> w = def(v, ElementwiseOp.Where.class);
    if (w.isPresent()) {
      var wh = w.get();
      if (isNeg(wh.onTrue()) && cx.isSplat(wh.onFalse(), 0.0)) {
        return is(wh.condition(), false);
      }
      if (cx.isSplat(wh.onTrue(), 0.0) && isNeg(wh.onFalse())) {
        return is(wh.condition(), true);
      }
    }
    return false;
  }

  /** A bool mask true where causal attention sees a key ({@code keep}) or where it does not. */
  boolean is(Value cond, boolean keep) {
    Value v = peel(cond);
    if (v.type().rank() < 2 || !coversScores(v)) {
      return false;
    }
    Optional<Boolean> folded = keep ? constantMatches(v, x -> x == 0.0, x -> x != 0.0)
        : constantMatches(v, x -> x != 0.0, x -> x == 0.0);
    if (folded.isPresent()) {
      return folded.get();
    }
    Optional<ElementwiseOp.Unary> not = Patterns.unary(v, UnaryKind.NOT);
    if (not.isPresent()) {
      return is(not.get().x(), !keep);
    }
    Optional<DataOp.Trilu> tri = def(v, DataOp.Trilu.class);
    if (tri.isPresent() && isTrue(peel(tri.get().x()))) {
      // tril(true, k) keeps j - i <= k; triu(true, k) is true where j - i >= k.
      Dim off = t.minus(s);
      return keep ? !tri.get().upper() && Dim.of(tri.get().k()).equals(off)
          : tri.get().upper() && Dim.of(tri.get().k() - 1).equals(off);
    }
    Optional<ElementwiseOp.Binary> cmp = def(v, ElementwiseOp.Binary.class).filter(b -> b.kind().isComparison());
    if (cmp.isPresent()) {
      return comparison(cmp.get(), keep);
    }
    return false;
  }

  /**
   * For a constant [.., S, T] mask with static S and T: whether every element is {@code hidden}
   * where causal attention hides key j from query i ({@code j > i + T - S}) and {@code visible}
   * elsewhere, in every leading slice. Empty when the value is not a constant.
   */
  private Optional<Boolean> constantMatches(Value v, DoublePredicate hidden, DoublePredicate visible) {
    if (!s.isStatic() || !t.isStatic()) {
      return Optional.empty();
    }
    Optional<Tensor> c = cx.constant(v);
    if (c.isEmpty() && v.producer() != null && v.producer().op() instanceof SourceOp.Constant k) {
      // larger than what rules match by value, but a mask is read once, element by element
      c = Optional.of(k.value());
    }
    if (c.isEmpty()) {
      return Optional.empty();
    }
    Tensor m = c.get();
    long rows = s.value();
    long cols = t.value();
    for (int e = 0; e < m.size(); e++) {
      long j = e % cols;
      long i = (e / cols) % rows;
      boolean masked = j > i + cols - rows;
      if (!(masked ? hidden : visible).test(m.get(e))) {
        return Optional.of(false);
      }
    }
    return Optional.of(true);
  }

  private boolean isTrue(Value v) {
    OptionalDouble d = cx.splat(v);
    if (d.isPresent()) {
      return d.getAsDouble() != 0;
    }
    return def(v, SourceOp.Fill.class).filter(f -> f.value() != 0).isPresent();
  }

  /** An index along one of the two last axes: {@code range(start, L)} placed as a row or a column, plus an offset. */
  private record Index(boolean row, Dim offset) {}

  private Optional<Index> index(Value v) {
    Optional<ElementwiseOp.Binary> add = binary(v, BinaryKind.ADD);
    if (add.isPresent()) {
      for (Value[] o : Patterns.orders(add.get())) {
        Optional<Dim> c = ShapeValues.scalarDim(o[1], cx);
        Optional<Index> i = index(o[0]);
        if (c.isPresent() && i.isPresent()) {
          return Optional.of(new Index(i.get().row(), i.get().offset().plus(c.get())));
        }
      }
      return Optional.empty();
    }
    Value src = v;
    while (src.producer() != null && src.producer().op() instanceof DataOp.Reshape r) {
      src = r.x();
    }
    Optional<SourceOp.Range> range = def(src, SourceOp.Range.class).filter(r -> r.delta() == 1);
    if (range.isEmpty() || v.type().rank() < 1) {
      return Optional.empty();
    }
    List<Dim> d = v.type().dims();
    Dim len = src.type().dim(0);
    boolean col = d.get(d.size() - 1).equals(len) && d.subList(0, d.size() - 1).stream().allMatch(x -> x.is(1));
    boolean row = d.size() >= 2 && d.get(d.size() - 2).equals(len) && d.get(d.size() - 1).is(1)
        && d.subList(0, d.size() - 2).stream().allMatch(x -> x.is(1));
    if (col == row) {
      return Optional.empty();
    }
    if ((row && !len.equals(s)) || (col && !len.equals(t))) {
      return Optional.empty();
    }
    return Optional.of(new Index(row, Dim.of(range.get().start())));
  }

  /** {@code j OP i + off} (or mirrored) decides the causal predicate {@code j <= i + (T - S)}. */
  private boolean comparison(ElementwiseOp.Binary b, boolean keep) {
    Optional<Index> l = index(b.lhs());
    Optional<Index> r = index(b.rhs());
    if (l.isEmpty() || r.isEmpty() || l.get().row() == r.get().row()) {
      return false;
    }
    boolean colLeft = !l.get().row();
    Index col = colLeft ? l.get() : r.get();
    Index row = colLeft ? r.get() : l.get();
    // j + cOff  OP  i + rOff   <=>   j  OP  i + (rOff - cOff)
    if (!row.offset().minus(col.offset()).equals(t.minus(s))) {
      return false;
    }
    BinaryKind k = b.kind();
    if (!colLeft) {
      k = switch (k) {
        case LESS -> BinaryKind.GREATER;
        case GREATER -> BinaryKind.LESS;
        case LESS_EQUAL -> BinaryKind.GREATER_EQUAL;
        case GREATER_EQUAL -> BinaryKind.LESS_EQUAL;
        default -> k;
      };
    }
    // Now: j k (i + off). keep is j <= i + off; masked is j > i + off.
    return keep ? k == BinaryKind.LESS_EQUAL : k == BinaryKind.GREATER;
  }
}
