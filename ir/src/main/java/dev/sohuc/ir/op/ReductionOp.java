package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.List;

/** Ops that combine elements along axes. */
public sealed interface ReductionOp extends Op {

  enum ReduceKind {
    SUM, MEAN, MAX, MIN, PROD;

    public String mnemonic() {
      return "reduce_" + name().toLowerCase();
    }
  }

  /**
   * {@code %m = reduce_mean %x {axes = [-1], keepdims = true}}: reduces over {@code axes}
   * (all axes when empty).
   */
  record Reduce(ReduceKind kind, Value x, List<Long> axes, boolean keepdims) implements ReductionOp {
    public Reduce {
      axes = List.copyOf(axes);
    }

    @Override
    public String mnemonic() {
      return kind.mnemonic();
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.ints("axes", axes), Attr.Named.of("keepdims", keepdims));
    }

    /** The normalized axes reduced over. */
    public List<Integer> reducedAxes() {
      int rank = x.type().rank();
      if (axes.isEmpty()) {
        return java.util.stream.IntStream.range(0, rank).boxed().toList();
      }
      return Shapes.axes(axes, rank, "axis");
    }

    @Override
    public List<TensorType> inferResultTypes() {
      if ((kind == ReduceKind.MEAN) && !x.type().elementType().isFloat()) {
        throw new OpException("reduce_mean takes a float tensor, got " + x.type());
      }
      List<Integer> reduced = reducedAxes();
      List<Dim> out = new ArrayList<>();
      for (int i = 0; i < x.type().rank(); i++) {
        if (!reduced.contains(i)) {
          out.add(x.type().dim(i));
        } else if (keepdims) {
          out.add(Dim.of(1));
        }
      }
      return List.of(x.type().withDims(out));
    }
  }

  /** {@code %p = softmax %x {axis = -1}}; with {@code log = true}, log-softmax. */
  record Softmax(Value x, long axis, boolean log) implements ReductionOp {
    @Override
    public String mnemonic() {
      return log ? "log_softmax" : "softmax";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("axis", axis));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireFloat(x, "operand");
      Shapes.axis(axis, x.type().rank(), "axis");
      return List.of(x.type());
    }
  }

  /** {@code %c = cumsum %x {axis = 1, exclusive = false, reverse = false}}: running sums. */
  record CumSum(Value x, long axis, boolean exclusive, boolean reverse) implements ReductionOp {
    @Override
    public String mnemonic() {
      return "cumsum";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("axis", axis), Attr.Named.of("exclusive", exclusive),
          Attr.Named.of("reverse", reverse));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      if (x.type().elementType() == dev.sohuc.ir.type.ElementType.BOOL) {
        throw new OpException("cumsum takes numbers, got " + x.type());
      }
      Shapes.axis(axis, x.type().rank(), "axis");
      return List.of(x.type());
    }
  }

  static void register(OpRegistry.Registrar r) {
    for (ReduceKind k : ReduceKind.values()) {
      r.op(k.mnemonic(), 1, k.name().toLowerCase() + " over axes", (o, a) ->
          new Reduce(k, o.get(0), a.getInts("axes", List.of()), a.getBool("keepdims", true)));
    }
    r.op("softmax", 1, "exp(x - max) / sum along an axis", (o, a) -> new Softmax(o.get(0), a.getInt("axis", -1), false));
    r.op("log_softmax", 1, "log of softmax along an axis", (o, a) -> new Softmax(o.get(0), a.getInt("axis", -1), true));
    r.op("cumsum", 1, "running sum along an axis", (o, a) -> new CumSum(o.get(0), a.getInt("axis"),
        a.getBool("exclusive", false), a.getBool("reverse", false)));
  }
}
