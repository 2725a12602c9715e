package dev.sohuc.ir;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A function: named, typed arguments, a straight-line body of nodes in SSA order, and named
 * results (the model's outputs, e.g. {@code last_hidden_state}).
 */
public final class Function {
  /** One function result: the name users see (an ONNX output name) and the value returned. */
  public record Output(String name, Value value) {}

  private final String name;
  private final List<Value> arguments;
  private final List<Node> body = new ArrayList<>();
  private final List<Output> outputs = new ArrayList<>();

  public Function(String name, List<Value> arguments) {
    this.name = name;
    this.arguments = List.copyOf(arguments);
  }

  public String name() {
    return name;
  }

  public List<Value> arguments() {
    return arguments;
  }

  /** The body, in order; passes edit it directly. */
  public List<Node> body() {
    return body;
  }

  public List<Output> outputs() {
    return outputs;
  }

  public void setOutputs(List<Output> newOutputs) {
    outputs.clear();
    outputs.addAll(newOutputs);
  }

  /** The values the function returns (each once, whatever names it is returned under). */
  public java.util.Set<Value> outputValues() {
    java.util.Set<Value> vs = new java.util.HashSet<>();
    for (Output o : outputs) {
      vs.add(o.value());
    }
    return vs;
  }

  /** Uses of each value (by the nodes that read it); outputs are not counted. */
  public Map<Value, List<Node>> users() {
    Map<Value, List<Node>> users = new HashMap<>();
    for (Node n : body) {
      for (Value v : n.op().operands()) {
        users.computeIfAbsent(v, k -> new ArrayList<>()).add(n);
      }
    }
    return users;
  }

  /** Replaces every use of {@code from} by {@code to}, in operands and outputs. */
  public void replaceAllUses(Value from, Value to) {
    replaceUses(from, to, body);
  }

  /**
   * {@link #replaceAllUses} where {@code readers} holds every node that reads {@code from} (a
   * use list kept by the caller), so the body is not walked.
   */
  public void replaceUses(Value from, Value to, Collection<Node> readers) {
    for (Node n : readers) {
      if (n.op().operands().contains(from)) {
        List<Value> ops = new ArrayList<>(n.op().operands());
        Collections.replaceAll(ops, from, to);
        n.setOp(n.op().withOperands(ops));
      }
    }
    outputs.replaceAll(o -> o.value() == from ? new Output(o.name(), to) : o);
  }
}
