package dev.sohuc.backend;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

/**
 * Which control stream runs each op ({@link BackendOptions#secondStream}): stream 1 the ops whose
 * result's name matches (a serving step's decode attention), stream 0 the others. An op lowered
 * inside another (a conversion fused into its reader, a cast its norm writes) runs where that
 * one does. A value read by an op of the other stream than its producer's is shared: it lives
 * in HBM until the end, its stream signals once it is there, and the reader's stream waits for
 * that signal before the op that reads it (SohuBackend).
 */
final class StreamPlan {
  private final Map<Node, Integer> stream;
  private final Set<Value> shared;
  private final boolean forked;

  private StreamPlan(Map<Node, Integer> stream, Set<Value> shared, boolean forked) {
    this.stream = stream;
    this.shared = shared;
    this.forked = forked;
  }

  /** Every op in stream 0. */
  static StreamPlan single() {
    return new StreamPlan(Map.of(), Set.of(), false);
  }

  /** The ops whose (first) result's name {@code names} finds; empty without a pattern. */
  static Set<Node> named(Function fn, Pattern names) {
    Set<Node> out = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    if (names == null) {
      return out;
    }
    for (Node n : fn.body()) {
      if (!n.results().isEmpty() && names.matcher(n.results().get(0).name()).find()) {
        out.add(n);
      }
    }
    if (out.isEmpty()) {
      throw new BackendException("second stream: no op's result is named to match "
          + names.pattern());
    }
    return out;
  }

  /** Whether {@code second} (from {@link #named}) leaves ops to stream 0: the program forks. */
  static boolean forks(Function fn, Set<Node> second, Predicate<Node> isSource) {
    return !second.isEmpty()
        && fn.body().stream().anyMatch(n -> !isSource.test(n) && !second.contains(n));
  }

  /**
   * The plan: {@code second} (from {@link #named}) in stream 1, each op of
   * {@code doneInside} (an op to the op that lowers it, which may itself be done inside another)
   * where that op runs.
   */
  static StreamPlan of(Function fn, Set<Node> second, Map<Node, Node> doneInside,
      UnaryOperator<Value> aliasRoot, Predicate<Node> isSource) {
    Map<Node, Integer> stream = new IdentityHashMap<>();
    for (Node n : fn.body()) {
      Node doer = n;
      while (doneInside.containsKey(doer)) {
        doer = doneInside.get(doer);
      }
      stream.put(n, second.contains(doer) ? 1 : 0);
    }
    boolean forked = forks(fn, second, isSource);
    Set<Value> shared = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node n : fn.body()) {
      for (Value v : n.op().operands()) {
        Value root = aliasRoot.apply(v);
        Node p = root.producer();
        if (p != null && !isSource.test(p) && !stream.get(p).equals(stream.get(n))) {
          shared.add(root);
        }
      }
    }
    return new StreamPlan(stream, shared, forked);
  }

  /** Whether both streams run ops. */
  boolean forked() {
    return forked;
  }

  /** The stream of op {@code n}: 0 or 1. */
  int of(Node n) {
    return forked ? stream.get(n) : 0;
  }

  /** Whether the other stream than its producer's reads {@code root} (an alias root). */
  boolean shared(Value root) {
    return forked && shared.contains(root);
  }
}
