package dev.sohuc.passes.quant;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.type.ElementType;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A {@code qmatmul} whose f32 result is only ever cast to bf16, through reshapes, transposes and
 * slices (a V projection's heads, split into a prompt's rows and a decode step's, each cast for
 * a bf16 attention or KV cache), is cast once right after it, and the reshapes, transposes and
 * slices then move bf16: the backend rounds that cast in the qmatmul's own readout, so the f32
 * result is never stored, and every later copy moves half the bytes. Exact: a cast commutes
 * with ops that only move elements.
 */
final class CastsAtProjections {
  private CastsAtProjections() {}

  /** Rewrites {@code m}'s main function. */
  static void apply(Module m) {
    Function f = m.main();
    Map<Value, List<Node>> users = f.users();
    Set<Value> outputs = f.outputValues();
    // the projections to cast, and the nodes between each and its casts
    Set<Node> roots = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    Set<Node> moved = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node n : f.body()) {
      if (n.op() instanceof QuantOp.QMatMul && n.result().type().elementType() == ElementType.F32) {
        List<Node> tree = new ArrayList<>();
        if (onlyCastToBf16(n.result(), users, outputs, tree)) {
          roots.add(n);
          moved.addAll(tree);
        }
      }
    }
    if (roots.isEmpty()) {
      return;
    }
    Function g = new Function(f.name(), f.arguments());
    FunctionBuilder b = new FunctionBuilder(g);
    Map<Value, Value> map = new IdentityHashMap<>();
    for (Node n : f.body()) {
      List<Value> ops = new ArrayList<>();
      for (Value v : n.op().operands()) {
        ops.add(map.getOrDefault(v, v));
      }
      if (moved.contains(n) && n.op() instanceof ElementwiseOp.Cast) {
        // its operand is bf16 already
        map.put(n.result(), ops.get(0));
        continue;
      }
      Node nn = b.addCopy(n, ops.isEmpty() ? n.op() : n.op().withOperands(ops), map);
      if (roots.contains(n)) {
        map.put(n.result(), b.add(new ElementwiseOp.Cast(nn.result(), ElementType.BF16),
            n.location(), n.result().name() + ".bf16"));
      }
    }
    List<Function.Output> outs = new ArrayList<>();
    for (Function.Output o : f.outputs()) {
      outs.add(new Function.Output(o.name(), map.getOrDefault(o.value(), o.value())));
    }
    g.setOutputs(outs);
    m.functions().set(m.functions().indexOf(f), g);
  }

  /**
   * Whether every reader of {@code v}, transitively through reshapes, transposes and slices that
   * are not returned, is a cast to bf16, at least one of them; {@code tree} collects those
   * readers.
   */
  private static boolean onlyCastToBf16(Value v, Map<Value, List<Node>> users, Set<Value> outputs,
      List<Node> tree) {
    List<Node> readers = users.getOrDefault(v, List.of());
    if (readers.isEmpty() || outputs.contains(v)) {
      return false;
    }
    for (Node u : readers) {
      tree.add(u);
      if (u.op() instanceof ElementwiseOp.Cast c && c.to() == ElementType.BF16) {
        continue;
      }
      boolean moves = u.op() instanceof DataOp.Reshape || u.op() instanceof DataOp.Transpose
          || u.op() instanceof DataOp.Slice;
      if (!moves || u.op().operands().get(0) != v
          || !onlyCastToBf16(u.result(), users, outputs, tree)) {
        return false;
      }
    }
    return true;
  }
}
