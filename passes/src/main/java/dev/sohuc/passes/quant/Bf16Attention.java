package dev.sohuc.passes.quant;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.ElementType;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Attention in bf16 for a quantized model: every attention reads bf16 K and V, which makes the
 * backend run {@code Q K^T} and {@code P V} as bf16 {@code mma}s (f32 accumulation, softmax in
 * f32) instead of f32 ones at an eighth of the rate, and the KV cache is stored in bf16:
 * <ul>
 *   <li>K or V appended to or written into a cache argument ({@code kv_cache_append %past, %new}
 *       or {@code kv_cache_write %past, %new, %lengths}, read only by attention): the argument
 *       becomes bf16, the new rows are cast before the append, and the appended cache (the
 *       {@code present.*} output) is bf16, so the step moves half the bytes and casts only its
 *       new rows. A past that something else reads too (a micro-batched prompt's first half,
 *       which its own attention reads) is cast instead, that cast shared with the other
 *       attention, so the append moves bf16 and nothing casts the whole appended cache;
 *   <li>any other f32 K or V is cast right before the attention, and where it is also returned
 *       (a prefill's {@code present.*}) the bf16 copy is what the function returns.
 * </ul>
 */
final class Bf16Attention {
  private Bf16Attention() {}

  /** Rewrites {@code m}'s main function. */
  static void apply(Module m) {
    Function f = m.main();
    Set<Value> kv = new HashSet<>();
    for (Node n : f.body()) {
      if (n.op() instanceof TransformerOp.Attention a
          && a.k().type().elementType() == ElementType.F32) {
        kv.add(a.k());
        kv.add(a.v());
      }
    }
    if (kv.isEmpty()) {
      return;
    }
    Set<Node> appends = narrowAppends(f, kv);
    Map<Value, Value> map = new IdentityHashMap<>();
    List<Value> args = new ArrayList<>();
    Map<Value, List<Node>> users = f.users();
    for (Value a : f.arguments()) {
      Value na = a;
      // a past cache that nothing else reads comes in bf16 (any other past is cast)
      if (users.getOrDefault(a, List.of()).size() == 1
          && appends.stream().anyMatch(n -> n.op().operands().get(0) == a)) {
        na = Value.argument(a.name(), a.type().withElementType(ElementType.BF16));
      }
      args.add(na);
      map.put(a, na);
    }
    Function g = new Function(f.name(), args);
    FunctionBuilder b = new FunctionBuilder(g);
    Map<Value, Value> bf16 = new IdentityHashMap<>();
    for (Node n : f.body()) {
      List<Value> ops = new ArrayList<>();
      for (Value v : n.op().operands()) {
        ops.add(map.getOrDefault(v, v));
      }
      Op op = n.op();
      if (appends.contains(n)) {
        ops.set(0, cast(b, ops.get(0), n, bf16));
        ops.set(1, cast(b, ops.get(1), n, bf16));
      } else if (op instanceof TransformerOp.Attention a && kv.contains(a.k())) {
        ops.set(1, cast(b, ops.get(1), n, bf16));
        ops.set(2, cast(b, ops.get(2), n, bf16));
      }
      b.addCopy(n, ops.isEmpty() ? op : op.withOperands(ops), map);
    }
    List<Function.Output> outs = new ArrayList<>();
    for (Function.Output o : f.outputs()) {
      Value v = map.getOrDefault(o.value(), o.value());
      outs.add(new Function.Output(o.name(), kv.contains(o.value()) ? bf16.getOrDefault(v, v) : v));
    }
    g.setOutputs(outs);
    m.functions().set(m.functions().indexOf(f), g);
  }

  /**
   * The {@code kv_cache_append}s and {@code kv_cache_write}s whose cache can be stored in bf16:
   * the past is f32 and the appended cache is read only by attention as K or V.
   */
  private static Set<Node> narrowAppends(Function f, Set<Value> kv) {
    Map<Value, List<Node>> users = f.users();
    Set<Node> out = new HashSet<>();
    for (Value v : kv) {
      Node p = v.producer();
      if (p == null || !(p.op() instanceof TransformerOp.KvCacheAppend
          || p.op() instanceof TransformerOp.KvCacheWrite)) {
        continue;
      }
      // the past cache, then the new entries, in both ops
      Value past = p.op().operands().get(0);
      boolean onlyAttention = users.get(v).stream().allMatch(u ->
          u.op() instanceof TransformerOp.Attention a && a.q() != v && a.mask() != v);
      if (past.type().elementType() == ElementType.F32 && onlyAttention) {
        out.add(p);
      }
    }
    return out;
  }

  /** {@code v} in bf16: itself when it already is, else one cast shared by its readers. */
  private static Value cast(FunctionBuilder b, Value v, Node at, Map<Value, Value> bf16) {
    if (v.type().elementType() == ElementType.BF16) {
      return v;
    }
    return bf16.computeIfAbsent(v, x -> b.add(new ElementwiseOp.Cast(x, ElementType.BF16),
        at.location(), x.name() + ".bf16"));
  }
}
