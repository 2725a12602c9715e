package dev.sohuc.passes.rewrite;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.Set;

/**
 * What a rule sees besides its root: the users of values, small constant data behind a value,
 * and a builder that inserts helper ops just before the root.
 */
public final class RewriteContext {
  /** Constants (and weights) up to this many elements are read for matching. */
  public static final int MAX_MATCHED_CONSTANT_ELEMENTS = 4096;

  private final Module module;
  private final Function function;
  private final FunctionBuilder builder;
  private final List<Node> inserted = new ArrayList<>();
  private Node root;
  private Map<Value, List<Node>> users;
  private Set<Value> outputs;

  public RewriteContext(Module module, Function function) {
    this.module = module;
    this.function = function;
    this.builder = new FunctionBuilder(function);
  }

  public Module module() {
    return module;
  }

  public Function function() {
    return function;
  }

  void begin(Node newRoot) {
    this.root = newRoot;
    inserted.clear();
    builder.insertBefore(newRoot);
  }

  /** Removes the helper ops of a rule that did not match. */
  void rollback() {
    if (inserted.isEmpty()) {
      return;
    }
    for (Node helper : inserted) {
      dropUses(helper, helper.op().operands());
    }
    // the builder inserts each helper just before the root, so they are the run of nodes
    // ending there: one index lookup instead of a membership test per node of the body
    List<Node> body = function.body();
    int end = body.indexOf(root);
    List<Node> run = body.subList(end - inserted.size(), end);
    for (int i = 0; i < run.size(); i++) {
      if (run.get(i) != inserted.get(i)) {
        throw new IllegalStateException("helper ops of a rule are not just before its root");
      }
    }
    run.clear();
    inserted.clear();
  }

  /**
   * {@code n}'s op was replaced by one with other operands ({@code before}, the old ones): the
   * use lists follow, so that no rewrite rebuilds them from the whole body.
   */
  void operandsChanged(Node n, List<Value> before) {
    dropUses(n, before);
    addUses(n, n.op().operands());
  }

  /** Every use of {@code n}'s result now reads {@code by}, and {@code n} leaves the body. */
  void replace(Node n, Value by) {
    Value from = n.result();
    List<Node> readers = users == null ? null : users.remove(from);
    if (readers == null) {
      function.replaceAllUses(from, by);
    } else {
      function.replaceUses(from, by, new java.util.LinkedHashSet<>(readers));
      users.computeIfAbsent(by, k -> new ArrayList<>()).addAll(readers);
    }
    dropUses(n, n.op().operands());
    function.body().remove(n);
    outputs = null;
  }

  private void addUses(Node n, List<Value> operands) {
    if (users != null) {
      for (Value v : operands) {
        users.computeIfAbsent(v, k -> new ArrayList<>()).add(n);
      }
    }
  }

  /** One use by {@code n} per operand (a node reading a value twice is listed twice). */
  private void dropUses(Node n, List<Value> operands) {
    if (users != null) {
      for (Value v : operands) {
        List<Node> readers = users.get(v);
        if (readers != null) {
          readers.remove(n);
        }
      }
    }
  }

  /** Builds a helper op before the root, at the root's location; throws when the op is ill-typed. */
  public Value add(Op op) {
    return addNode(op).result();
  }

  /** {@link #add} for an op with several results (dynamic_quantize): the new node. */
  public Node addNode(Op op) {
    String hint = root.results().isEmpty() ? null : root.results().get(0).name();
    Node n = builder.addNode(op, root.location(), hint == null ? List.of() : List.of(hint));
    inserted.add(n);
    addUses(n, n.op().operands());
    return n;
  }

  /** A scalar constant of the given type. */
  public Value scalar(double value, ElementType type) {
    return add(new SourceOp.Constant(Tensor.scalar(type, value)));
  }

  /** The nodes that read {@code v} now (a copy: a rule may add readers while it walks them). */
  public List<Node> users(Value v) {
    if (users == null) {
      users = function.users();
    }
    return List.copyOf(users.getOrDefault(v, List.of()));
  }

  public boolean isOutput(Value v) {
    if (outputs == null) {
      outputs = new HashSet<>();
      function.outputs().forEach(o -> outputs.add(o.value()));
    }
    return outputs.contains(v);
  }

  /** True when no op reads any result of {@code n} and none is a function output. */
  public boolean isDead(Node n) {
    if (users == null) {
      users = function.users();
    }
    for (Value r : n.results()) {
      if (!users.getOrDefault(r, List.of()).isEmpty() || isOutput(r)) {
        return false;
      }
    }
    return true;
  }

  /**
   * The data behind {@code v} when it is small and known at compile time: a {@code constant}, a
   * {@code fill} of static shape, or a module weight whose bytes are at hand.
   */
  public Optional<Tensor> constant(Value v) {
    Node p = v.producer();
    if (p == null) {
      return Optional.empty();
    }
    var count = v.type().staticElementCount();
    if (count.isEmpty() || count.getAsLong() > MAX_MATCHED_CONSTANT_ELEMENTS) {
      return Optional.empty();
    }
    return switch (p.op()) {
      case SourceOp.Constant c -> Optional.of(c.value());
      case SourceOp.Fill f -> {
        long[] shape = f.shape().stream().mapToLong(Dim::value).toArray();
        Tensor t = Tensor.zeros(f.dtype(), shape);
        for (int i = 0; i < t.size(); i++) {
          t.set(i, f.value());
        }
        yield Optional.of(t);
      }
      case SourceOp.WeightRef w -> {
        Weight weight = module.weights().get(w.name());
        if (weight == null || weight.data() instanceof Weight.Data.ShapeOnly) {
          yield Optional.empty();
        }
        try {
          long[] shape = weight.type().dims().stream().mapToLong(Dim::value).toArray();
          yield Optional.of(Tensor.fromBytes(weight.type().elementType(), shape, weight.bytes()));
        } catch (RuntimeException unreadable) {
          yield Optional.empty();
        }
      }
      default -> Optional.empty();
    };
  }

  /** The one value every element of a constant {@code v} has (a splat), if it is one. */
  public OptionalDouble splat(Value v) {
    Optional<Tensor> t = constant(v);
    if (t.isEmpty() || t.get().size() == 0) {
      return OptionalDouble.empty();
    }
    Tensor c = t.get();
    double first = c.get(0);
    for (int i = 1; i < c.size(); i++) {
      if (Double.doubleToLongBits(c.get(i)) != Double.doubleToLongBits(first)) {
        return OptionalDouble.empty();
      }
    }
    return OptionalDouble.of(first);
  }

  /**
   * A number read from f32 data, written back as the shortest decimal that rounds to the same
   * f32 ({@code 1.0E-12} rather than {@code 9.999999960041972E-13}), so fused attributes print
   * as the model wrote them.
   */
  public static double shortestF32(double v) {
    float f = (float) v;
    return Float.isFinite(f) ? Double.parseDouble(Float.toString(f)) : v;
  }

  /** True when {@code v} is a splat constant equal to {@code expected} within relative {@code tol}. */
  public boolean isSplat(Value v, double expected, double tol) {
    OptionalDouble s = splat(v);
    return s.isPresent() && Math.abs(s.getAsDouble() - expected) <= tol * Math.max(1.0, Math.abs(expected));
  }

  /** True when {@code v} is a splat constant exactly equal to {@code expected}. */
  public boolean isSplat(Value v, double expected) {
    OptionalDouble s = splat(v);
    return s.isPresent() && s.getAsDouble() == expected;
  }
}
