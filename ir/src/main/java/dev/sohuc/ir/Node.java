package dev.sohuc.ir;

import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.List;

/**
 * One line of a function body: an op applied to its operands, the values it defines, and the
 * source location it came from. The op is immutable; a rewrite swaps it for another op with
 * the same result types.
 */
public final class Node {
  private Op op;
  private final List<Value> results;
  private final Location location;

  public Node(Op op, List<String> resultNames, List<TensorType> resultTypes, Location location) {
    if (resultNames.size() != resultTypes.size()) {
      throw new IllegalArgumentException("result names and types differ in count");
    }
    this.op = op;
    this.location = location;
    List<Value> r = new ArrayList<>(resultNames.size());
    for (int i = 0; i < resultNames.size(); i++) {
      r.add(Value.result(resultNames.get(i), resultTypes.get(i), this, i));
    }
    this.results = List.copyOf(r);
  }

  public Op op() {
    return op;
  }

  /** Replaces the op, for rewrites that keep the results (e.g. renaming an operand). */
  public void setOp(Op op) {
    this.op = op;
  }

  public List<Value> results() {
    return results;
  }

  public Value result() {
    if (results.size() != 1) {
      throw new IllegalStateException(op.mnemonic() + " has " + results.size() + " results");
    }
    return results.get(0);
  }

  public Location location() {
    return location;
  }

  /** How diagnostics name this node: {@code 'matmul' (%q, loc "Attention/MatMul")}. */
  public String describe() {
    String first = results.isEmpty() ? "" : "%" + results.get(0).name();
    return "'" + op.mnemonic() + "' (" + first
        + (location.isKnown() ? ", at \"" + location.text() + "\"" : "") + ")";
  }
}
