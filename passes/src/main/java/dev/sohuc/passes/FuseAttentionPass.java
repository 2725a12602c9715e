package dev.sohuc.passes;

import static dev.sohuc.passes.rewrite.Patterns.binary;
import static dev.sohuc.passes.rewrite.Patterns.def;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.TransformerOp.Attention;
import dev.sohuc.ir.op.TransformerOp.KvCacheAppend;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.RewriteContext;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.Set;

/**
 * {@code fuse-attention}: replaces {@code softmax(scale * q @ k^T + mask) @ v} with one
 * {@code attention} op. It recognizes the scale as a Div or Mul by a constant, the transposed
 * keys under any transpose, additive masks (kept as ops and passed as the mask operand; a mask
 * that {@link CausalMasks} proves causal becomes {@code causal = true} instead), masking by
 * {@code where(keep, scores, NEG)}, Llama's repeat_kv (unsqueeze/expand/reshape of k and v,
 * folded into grouped-query attention), and Concat of a past KV-cache input with new keys or
 * values on the sequence axis ({@code kv_cache_append}). The reshapes and transposes that split
 * and merge heads stay as they are.
 */
public final class FuseAttentionPass extends RewritePass {

  /** The pieces of the scores feeding the softmax. */
  private static final class Scores {
    Value q;
    Value keysTransposed;
    double scale = 1.0;
    final List<Value> additiveMasks = new ArrayList<>();
    final List<ElementwiseOp.Where> keepConditions = new ArrayList<>();
  }

  /** {@code q @ kT}, optionally scaled by a constant (Div or Mul), optionally under where-masks. */
  private static boolean chain(Value v, Scores sc, RewriteContext cx, CausalMasksFactory masks) {
    Optional<ElementwiseOp.Where> w = def(v, ElementwiseOp.Where.class);
    if (w.isPresent() && masks.isNeg(w.get().onFalse(), cx)) {
      sc.keepConditions.add(w.get());
      return chain(w.get().onTrue(), sc, cx, masks);
    }
    Optional<LinalgOp.MatMul> mm = def(v, LinalgOp.MatMul.class);
    if (mm.isPresent()) {
      sc.q = mm.get().a();
      sc.keysTransposed = mm.get().b();
      return true;
    }
    Optional<Binary> div = binary(v, BinaryKind.DIV);
    if (div.isPresent()) {
      OptionalDouble c = cx.splat(div.get().rhs());
      if (c.isPresent() && c.getAsDouble() != 0 && chain(div.get().lhs(), sc, cx, masks)) {
        sc.scale /= c.getAsDouble();
        return true;
      }
      return false;
    }
    Optional<Binary> mul = binary(v, BinaryKind.MUL);
    if (mul.isPresent()) {
      for (Value[] o : Patterns.orders(mul.get())) {
        OptionalDouble c = cx.splat(o[1]);
        if (c.isPresent() && chain(o[0], sc, cx, masks)) {
          sc.scale *= c.getAsDouble();
          return true;
        }
      }
    }
    return false;
  }

  /** Defers building {@link CausalMasks} until q and k are known. */
  private static final class CausalMasksFactory {
    boolean isNeg(Value v, RewriteContext cx) {
      OptionalDouble d = cx.splat(v);
      return d.isPresent() && d.getAsDouble() <= CausalMasks.NEG_LIMIT;
    }
  }

  /** The scores before softmax: exactly one add-term is the q @ kT chain, the others are masks. */
  private static Optional<Scores> scores(Value s, RewriteContext cx) {
    List<Value> terms = Patterns.terms(s, 8);
    Scores found = null;
    List<Value> masks = new ArrayList<>();
    for (Value term : terms) {
      Scores sc = new Scores();
      if (found == null && chain(term, sc, cx, new CausalMasksFactory())) {
        found = sc;
      } else {
        masks.add(term);
      }
    }
    if (found == null) {
      return Optional.empty();
    }
    found.additiveMasks.addAll(masks);
    return Optional.of(found);
  }

  /** k from k^T: undoes the transpose that made it, building one only when needed. */
  private static Value untranspose(Value kT, RewriteContext cx) {
    List<Long> swapLast = List.of(0L, 1L, 3L, 2L);
    Optional<DataOp.Transpose> t = def(kT, DataOp.Transpose.class);
    if (t.isPresent()) {
      List<Long> perm = CanonicalizePass.compose(t.get().perm(), swapLast);
      return CanonicalizePass.isIdentity(perm) ? t.get().x() : cx.add(new DataOp.Transpose(t.get().x(), perm));
    }
    return cx.add(new DataOp.Transpose(kT, swapLast));
  }

  /** Llama's repeat_kv: {@code reshape(expand(reshape(x, [B,H,1,T,D]), [B,H,n,T,D]), [B,H*n,T,D])}. */
  private record Repeated(Value x, long times) {}

  private static Optional<Repeated> repeatKv(Value v) {
    Optional<DataOp.Reshape> merge = def(v, DataOp.Reshape.class);
    Optional<DataOp.Expand> expand = merge.flatMap(m -> def(m.x(), DataOp.Expand.class));
    Optional<DataOp.Reshape> unsqueeze = expand.flatMap(e -> def(e.x(), DataOp.Reshape.class));
    if (unsqueeze.isEmpty()) {
      return Optional.empty();
    }
    Value x = unsqueeze.get().x();
    if (x.type().rank() != 4 || v.type().rank() != 4) {
      return Optional.empty();
    }
    List<Dim> xd = x.type().dims();
    List<Dim> u = merge.get().x().producer().op().operands().get(0).type().dims();
    List<Dim> e = merge.get().x().type().dims();
    if (!u.equals(List.of(xd.get(0), xd.get(1), Dim.of(1), xd.get(2), xd.get(3)))
        || e.size() != 5 || !e.get(0).equals(xd.get(0)) || !e.get(1).equals(xd.get(1))
        || !e.get(3).equals(xd.get(2)) || !e.get(4).equals(xd.get(3)) || !e.get(2).isStatic()) {
      return Optional.empty();
    }
    long n = e.get(2).value();
    if (!v.type().dims().equals(List.of(xd.get(0), xd.get(1).times(Dim.of(n)), xd.get(2), xd.get(3)))) {
      return Optional.empty();
    }
    return Optional.of(new Repeated(x, n));
  }

  // matmul(softmax(scale * (q @ k^T) + mask), v) -> attention(q, k, v, mask, scale, causal)
  public static final RewriteRule ATTENTION = RewriteRule.of("attention", Set.of("matmul"), (n, cx) -> {
    LinalgOp.MatMul pv = (LinalgOp.MatMul) n.op();
    Optional<ReductionOp.Softmax> sm = def(pv.a(), ReductionOp.Softmax.class)
        .filter(s -> !s.log() && s.x().type().rank() == 4 && (s.axis() == -1 || s.axis() == 3));
    if (sm.isEmpty() || pv.b().type().rank() != 4) {
      return Optional.empty();
    }
    Optional<Scores> found = scores(sm.get().x(), cx);
    if (found.isEmpty() || found.get().q.type().rank() != 4 || found.get().keysTransposed.type().rank() != 4) {
      return Optional.empty();
    }
    Scores sc = found.get();
    Value k = untranspose(sc.keysTransposed, cx);
    Value v = pv.b();
    Optional<Repeated> rk = repeatKv(k);
    Optional<Repeated> rv = repeatKv(v);
    if (rk.isPresent() && rv.isPresent() && rk.get().times() == rv.get().times()) {
      k = rk.get().x();
      v = rv.get().x();
    }
    CausalMasks causal = new CausalMasks(sc.q.type().dim(2), k.type().dim(2), cx);
    boolean isCausal = false;
    List<Value> masks = new ArrayList<>();
    ElementType et = sc.q.type().elementType();
    for (ElementwiseOp.Where keep : sc.keepConditions) {
      if (causal.is(keep.condition(), true)) {
        isCausal = true;
      } else {
        // where(keep, s, NEG) == s + where(keep, 0, NEG) up to NEG's rounding, which softmax drops.
        masks.add(cx.add(new ElementwiseOp.Where(keep.condition(), cx.scalar(0.0, et), keep.onFalse())));
      }
    }
    for (Value m : sc.additiveMasks) {
      if (causal.isAdditiveCausal(m)) {
        isCausal = true;
      } else {
        masks.add(m);
      }
    }
    Value mask = null;
    for (Value m : masks) {
      mask = mask == null ? m : cx.add(new Binary(BinaryKind.ADD, mask, m));
    }
    double scale = et == ElementType.F32 ? RewriteContext.shortestF32(sc.scale) : sc.scale;
    return Replacement.op(new Attention(sc.q, k, v, mask, scale, isCausal, 0));
  });

  // concat(past, new, axis = 2) -> kv_cache_append(past, new)   when past is a rank-4 function argument
  public static final RewriteRule KV_CACHE_APPEND = RewriteRule.of("kv-cache-append", Set.of("concat"), (n, cx) -> {
    DataOp.Concat c = (DataOp.Concat) n.op();
    if (c.inputs().size() != 2 || n.result().type().rank() != 4 || !(c.axis() == 2 || c.axis() == -2)
        || !c.inputs().get(0).isArgument()) {
      return Optional.empty();
    }
    return Replacement.op(new KvCacheAppend(c.inputs().get(0), c.inputs().get(1)));
  });

  private static final List<RewriteRule> RULES = List.of(KV_CACHE_APPEND, ATTENTION);

  @Override
  public String name() {
    return "fuse-attention";
  }

  @Override
  public String summary() {
    return "fuse softmax(q @ k^T * scale + mask) @ v (with GQA, causal masks, KV-cache concat) into attention";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
