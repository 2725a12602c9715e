package dev.sohuc.passes;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.Attr;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code cse}: an op equal to an earlier one (same mnemonic, the very same operand values, equal
 * attributes and result types) is replaced by it. Operands of commutative binary ops match in
 * either order. Ops are pure, so this never changes meaning.
 */
public final class CommonSubexpressionEliminationPass implements Pass {

  /** What makes two ops the same computation; operands compare by identity. */
  private record Key(String mnemonic, List<Value> operands, List<Attr.Named> attributes, List<TensorType> types) {}

  @Override
  public String name() {
    return "cse";
  }

  @Override
  public String summary() {
    return "replace an op equal to an earlier one by its result";
  }

  @Override
  public PassResult run(Module module) {
    PassResult.Counters c = new PassResult.Counters();
    for (Function f : module.functions()) {
      c.add("merged-ops", run(f));
    }
    if (c.result().changed()) {
      DeadCodeEliminationPass.removeDead(module);
    }
    return c.result();
  }

  private static int run(Function f) {
    Map<Key, Node> seen = new HashMap<>();
    Map<Value, Value> replaced = new HashMap<>();
    List<Node> dead = new ArrayList<>();
    for (Node n : f.body()) {
      // Operands of earlier merged ops already point at the survivor: renaming is done eagerly.
      List<Value> ops = n.op().operands();
      if (ops.stream().anyMatch(replaced::containsKey)) {
        n.setOp(n.op().withOperands(ops.stream().map(v -> replaced.getOrDefault(v, v)).toList()));
      }
      Key key = keyOf(n);
      Node first = seen.get(key);
      if (first == null && n.op() instanceof ElementwiseOp.Binary b && b.kind().commutative) {
        first = seen.get(keyOf(n, List.of(b.rhs(), b.lhs())));
      }
      if (first == null) {
        seen.put(key, n);
      } else {
        for (int i = 0; i < n.results().size(); i++) {
          replaced.put(n.results().get(i), first.results().get(i));
        }
        dead.add(n);
      }
    }
    if (!replaced.isEmpty()) {
      f.setOutputs(f.outputs().stream()
          .map(o -> new Function.Output(o.name(), replaced.getOrDefault(o.value(), o.value())))
          .toList());
    }
    return dead.size();
  }

  private static Key keyOf(Node n) {
    return keyOf(n, n.op().operands());
  }

  private static Key keyOf(Node n, List<Value> operands) {
    return new Key(n.op().mnemonic(), operands, n.op().attributes(),
        n.results().stream().map(Value::type).toList());
  }
}
