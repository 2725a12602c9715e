package dev.sohuc.ir;

import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.OpException;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Appends ops to a function, inferring result types and choosing unique value names. Used by
 * the frontends and by passes that build new ops.
 */
public final class FunctionBuilder {
  private final Function function;
  private final Set<String> usedNames = new HashSet<>();
  private int counter;
  /** Where new nodes go: before this node, or at the end when null. */
  private Node insertionPoint;

  public FunctionBuilder(Function function) {
    this.function = function;
    function.arguments().forEach(a -> usedNames.add(a.name()));
    for (Node n : function.body()) {
      n.results().forEach(r -> usedNames.add(r.name()));
    }
  }

  public Function function() {
    return function;
  }

  /**
   * Makes the following ops go just before {@code node} (which must be in the body) instead of
   * at the end, so that passes can build replacements next to the op they rewrite; {@code null}
   * appends again.
   */
  public FunctionBuilder insertBefore(Node node) {
    this.insertionPoint = node;
    return this;
  }

  /** Appends an op with one result and returns it. */
  public Value add(Op op, Location loc) {
    return addNode(op, loc, List.of()).result();
  }

  /** Appends an op with one result, named after {@code hint} where that name is free. */
  public Value add(Op op, Location loc, String hint) {
    return addNode(op, loc, hint == null ? List.of() : List.of(hint)).result();
  }

  /**
   * Appends {@code op} as the copy of {@code n}, a node of the function being rebuilt: at its
   * location, its results' names as hints, and each of its results mapped to the copy's in
   * {@code map}.
   */
  public Node addCopy(Node n, Op op, java.util.Map<Value, Value> map) {
    Node copy = addNode(op, n.location(), n.results().stream().map(Value::name).toList());
    for (int i = 0; i < n.results().size(); i++) {
      map.put(n.results().get(i), copy.results().get(i));
    }
    return copy;
  }

  /** Appends an op; {@code hints} name its results (missing hints get numbers). */
  public Node addNode(Op op, Location loc, List<String> hints) {
    List<TensorType> types;
    try {
      types = op.inferResultTypes();
    } catch (OpException e) {
      throw new IrException("'" + op.mnemonic() + "'" + (loc.isKnown() ? " at \"" + loc.text() + "\"" : "")
          + ": " + e.getMessage());
    }
    List<String> names = new ArrayList<>();
    for (int i = 0; i < types.size(); i++) {
      names.add(freshName(i < hints.size() ? hints.get(i) : null));
    }
    Node node = new Node(op, names, types, loc);
    if (insertionPoint == null) {
      function.body().add(node);
    } else {
      int at = function.body().indexOf(insertionPoint);
      if (at < 0) {
        throw new IllegalStateException("insertion point " + insertionPoint.describe() + " is not in the body");
      }
      function.body().add(at, node);
    }
    return node;
  }

  /** {@code hint} if unused, else {@code hint_1}, {@code hint_2}...; numbers when no hint. */
  public String freshName(String hint) {
    if (hint == null || hint.isEmpty()) {
      String n;
      do {
        n = String.valueOf(counter++);
      } while (!usedNames.add(n));
      return n;
    }
    if (usedNames.add(hint)) {
      return hint;
    }
    for (int i = 1; ; i++) {
      String n = hint + "_" + i;
      if (usedNames.add(n)) {
        return n;
      }
    }
  }
}
