package dev.sohuc.ir;

import dev.sohuc.ir.type.TensorType;

/**
 * An SSA value: defined once, by a function argument or by one result of a node. Identity
 * matters (two values with the same name in different functions are different), so this is a
 * class, not a record.
 */
public final class Value {
  private final String name;
  private final TensorType type;
  private final Node producer;
  private final int resultIndex;

  private Value(String name, TensorType type, Node producer, int resultIndex) {
    this.name = name;
    this.type = type;
    this.producer = producer;
    this.resultIndex = resultIndex;
  }

  /** A function argument. */
  public static Value argument(String name, TensorType type) {
    return new Value(name, type, null, -1);
  }

  static Value result(String name, TensorType type, Node producer, int index) {
    return new Value(name, type, producer, index);
  }

  public String name() {
    return name;
  }

  public TensorType type() {
    return type;
  }

  /** The node that defines this value, or null for a function argument. */
  public Node producer() {
    return producer;
  }

  public int resultIndex() {
    return resultIndex;
  }

  public boolean isArgument() {
    return producer == null;
  }

  @Override
  public String toString() {
    return "%" + dev.sohuc.ir.type.Names.quoteIfNeeded(name) + ": " + type;
  }
}
