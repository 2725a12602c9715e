package dev.sohuc.passes.rewrite;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.Op;

import java.util.Optional;

/** What a rule replaces its root with: an existing value, or a new op in the root's place. */
public sealed interface Replacement {

  /** Every use of the root's value becomes a use of {@code value}; the root dies. */
  record WithValue(Value value) implements Replacement {}

  /** The root node keeps its result name and location and now computes {@code op}. */
  record WithOp(Op op) implements Replacement {}

  static Optional<Replacement> value(Value v) {
    return Optional.of(new WithValue(v));
  }

  static Optional<Replacement> op(Op op) {
    return Optional.of(new WithOp(op));
  }
}
