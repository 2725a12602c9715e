package dev.sohuc.ir.interp;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.OpException;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The reference interpreter: runs any function of a module, at any IR level, on concrete
 * tensors, so that two levels (or the IR and the compiled binary) can be compared.
 *
 * <p>Symbolic dims are bound from the input shapes. After every node the result's concrete
 * shape is checked against the node's declared type under those bindings, so a wrong static
 * shape rule fails loudly here instead of passing silently. Every error is an
 * {@link IrException} naming the argument or the node.
 *
 * <p>Tensors handed in and out are shared, not copied (constants and decoded weights too):
 * callers must not modify them.
 */
public final class Interpreter {

  /** Sees every value as it is computed: arguments first, then each node's results in order. */
  @FunctionalInterface
  public interface Observer {
    void onValue(Value value, Tensor tensor);
  }

  private final Module module;
  private final Map<String, Tensor> weights = new ConcurrentHashMap<>();

  public Interpreter(Module module) {
    this.module = module;
  }

  public Module module() {
    return module;
  }

  /** Runs the module's entry function. */
  public Map<String, Tensor> run(List<Tensor> inputs) {
    return run(module.main(), inputs, null);
  }

  /** The function's outputs by output name, in declaration order. */
  public Map<String, Tensor> run(Function f, List<Tensor> inputs) {
    return run(f, inputs, null);
  }

  /**
   * Runs {@code f}, showing every value to {@code observer} (may be null). Values are dropped
   * after their last use, so the observer is the way to see intermediates of a large model.
   */
  public Map<String, Tensor> run(Function f, List<Tensor> inputs, Observer observer) {
    Map<String, Long> bindings = bindSymbols(f, inputs);
    Map<Value, Tensor> env = new HashMap<>();
    for (int i = 0; i < inputs.size(); i++) {
      Value arg = f.arguments().get(i);
      env.put(arg, inputs.get(i));
      if (observer != null) {
        observer.onValue(arg, inputs.get(i));
      }
    }
    Map<Value, Integer> lastUse = new HashMap<>();
    List<Node> body = f.body();
    for (int i = 0; i < body.size(); i++) {
      for (Value v : body.get(i).op().operands()) {
        lastUse.put(v, i);
      }
    }
    Set<Value> outputs = new HashSet<>();
    f.outputs().forEach(o -> outputs.add(o.value()));
    for (int i = 0; i < body.size(); i++) {
      Node node = body.get(i);
      List<Tensor> results = execute(node, env, bindings);
      for (int r = 0; r < results.size(); r++) {
        Value v = node.results().get(r);
        if (observer != null) {
          observer.onValue(v, results.get(r));
        }
        if (lastUse.containsKey(v) || outputs.contains(v)) {
          env.put(v, results.get(r)); // a dead result is not kept
        }
      }
      for (Value v : node.op().operands()) {
        if (lastUse.get(v) == i && !outputs.contains(v)) {
          env.remove(v);
        }
      }
    }
    Map<String, Tensor> out = new LinkedHashMap<>();
    for (Function.Output o : f.outputs()) {
      Tensor t = env.get(o.value());
      if (t == null) {
        throw new IrException("output '" + o.name() + "' of @" + f.name() + " reads %"
            + o.value().name() + ", which the function never defines");
      }
      out.put(o.name(), t);
    }
    return out;
  }

  /** Every value of a run (arguments and all node results), for layer-by-layer comparisons. */
  public Map<Value, Tensor> runAll(Function f, List<Tensor> inputs) {
    Map<Value, Tensor> all = new LinkedHashMap<>();
    run(f, inputs, all::put);
    return all;
  }

  /**
   * Checks the inputs against the function's arguments and binds each symbol to its size, e.g.
   * {@code {seq=128}}. Errors name the argument, the dim and the earlier binding.
   */
  public static Map<String, Long> bindSymbols(Function f, List<Tensor> inputs) {
    List<Value> args = f.arguments();
    if (inputs.size() != args.size()) {
      throw new IrException("@" + f.name() + " takes " + args.size() + " inputs "
          + args.stream().map(a -> "'" + a.name() + "'").toList() + ", got " + inputs.size());
    }
    Map<String, Long> bindings = new LinkedHashMap<>();
    Map<String, String> boundBy = new HashMap<>();
    for (int i = 0; i < args.size(); i++) {
      Value arg = args.get(i);
      Tensor t = inputs.get(i);
      TensorType type = arg.type();
      String name = "input '" + arg.name() + "'";
      if (t.elementType() != type.elementType()) {
        throw new IrException(name + " must be " + type.elementType() + " (" + type + "), got "
            + t.elementType());
      }
      if (t.rank() != type.rank()) {
        throw new IrException(name + " must have rank " + type.rank() + " (" + type + "), got shape "
            + Arrays.toString(t.shape()));
      }
      for (int d = 0; d < type.rank(); d++) {
        Dim dim = type.dim(d);
        long actual = t.dim(d);
        if (dim.isStatic() && dim.value() != actual) {
          throw new IrException(name + " dim " + d + " is " + actual + " but its type " + type
              + " says " + dim.value());
        }
        long multiple = multipleOfOneSymbol(dim);
        if (multiple > 1 && actual % multiple != 0) {
          throw new IrException(name + " dim " + d + " is " + actual + " but its type " + type
              + " says a multiple of " + multiple);
        }
        if (multiple > 0) {
          String sym = dim.symbols().get(0);
          actual /= multiple;
          Long prev = bindings.putIfAbsent(sym, actual);
          if (prev == null) {
            boundBy.put(sym, name + " dim " + d);
          } else if (prev != actual) {
            throw new IrException(name + " dim " + d + " is " + actual + " but " + Dim.symbolText(sym)
                + " is already " + prev + " (from " + boundBy.get(sym) + ")");
          }
        }
      }
    }
    // Compound dims such as ?past+?seq are checked once every lone symbol is bound.
    for (int i = 0; i < args.size(); i++) {
      Value arg = args.get(i);
      for (int d = 0; d < arg.type().rank(); d++) {
        Dim dim = arg.type().dim(d);
        if (dim.isStatic() || multipleOfOneSymbol(dim) > 0) {
          continue;
        }
        long actual = inputs.get(i).dim(d);
        long expected;
        try {
          expected = dim.evaluate(bindings);
        } catch (IllegalArgumentException unbound) {
          throw new IrException("input '" + arg.name() + "' dim " + d + " is " + dim
              + ", whose symbols no input binds on its own");
        }
        if (expected != actual) {
          throw new IrException("input '" + arg.name() + "' dim " + d + " is " + actual + " but "
              + dim + " is " + expected);
        }
      }
    }
    return bindings;
  }

  // ---- one node ----

  private List<Tensor> execute(Node node, Map<Value, Tensor> env, Map<String, Long> bindings) {
    Operands in = v -> {
      Tensor t = env.get(v);
      if (t == null) {
        throw new IrException("operand %" + v.name() + " is not defined before its use");
      }
      return t;
    };
    List<Tensor> results;
    try {
      results = execute(node.op(), in, bindings);
    } catch (IrException | OpException | ArithmeticException e) {
      throw new IrException(node.describe() + ": " + e.getMessage(), e);
    }
    checkResults(node, results, bindings);
    return results;
  }

  private static void checkResults(Node node, List<Tensor> results, Map<String, Long> bindings) {
    if (results.size() != node.results().size()) {
      throw new IrException(node.describe() + ": computed " + results.size() + " results, the node declares "
          + node.results().size());
    }
    for (int r = 0; r < results.size(); r++) {
      Value v = node.results().get(r);
      Tensor t = results.get(r);
      TensorType type = v.type();
      long[] expected;
      try {
        expected = type.evaluateShape(bindings);
      } catch (IllegalArgumentException unbound) {
        throw new IrException(node.describe() + ": result %" + v.name() + " has type " + type
            + ", whose symbols no input binds");
      }
      if (t.elementType() != type.elementType() || !Arrays.equals(t.shape(), expected)) {
        throw new IrException(node.describe() + ": computed " + t.elementType() + " "
            + Arrays.toString(t.shape()) + " for %" + v.name() + ", but its type " + type + " gives "
            + type.elementType() + " " + Arrays.toString(expected) + " under " + bindings);
      }
    }
  }

  /** How a kernel reads its operands. */
  @FunctionalInterface
  private interface Operands {
    Tensor of(Value v);

    default Tensor ofOptional(Value v) {
      return v == null ? null : of(v);
    }
  }

  private List<Tensor> execute(Op op, Operands in, Map<String, Long> b) {
    return switch (op) {
      case ElementwiseOp e -> List.of(elementwise(e, in));
      case LinalgOp l -> List.of(linalg(l, in));
      case DataOp d -> data(d, in, b);
      case ReductionOp r -> List.of(reduction(r, in));
      case SourceOp s -> List.of(source(s, b));
      case QuantOp q -> quant(q, in);
      case TransformerOp t -> List.of(transformer(t, in));
    };
  }

  private static Tensor elementwise(ElementwiseOp op, Operands in) {
    return switch (op) {
      case ElementwiseOp.Unary u -> ElementwiseKernels.unary(u.kind(), in.of(u.x()));
      case ElementwiseOp.Binary bin -> ElementwiseKernels.binary(bin.kind(), in.of(bin.lhs()), in.of(bin.rhs()));
      case ElementwiseOp.Where w -> ElementwiseKernels.where(in.of(w.condition()), in.of(w.onTrue()), in.of(w.onFalse()));
      case ElementwiseOp.Clip c -> ElementwiseKernels.clip(in.of(c.x()), c.min(), c.max());
      case ElementwiseOp.Cast c -> ElementwiseKernels.cast(in.of(c.x()), c.to());
    };
  }

  private static Tensor linalg(LinalgOp op, Operands in) {
    return switch (op) {
      case LinalgOp.MatMul m -> LinalgKernels.matmul(in.of(m.a()), in.of(m.b()));
      case LinalgOp.Gemm g -> LinalgKernels.gemm(in.of(g.a()), in.of(g.b()), in.ofOptional(g.c()),
          g.alpha(), g.beta(), g.transA(), g.transB());
    };
  }

  private static List<Tensor> data(DataOp op, Operands in, Map<String, Long> b) {
    return switch (op) {
      case DataOp.Reshape r -> List.of(DataKernels.reshape(in.of(r.x()), evaluate(r.shape(), b)));
      case DataOp.Transpose t -> List.of(DataKernels.transpose(in.of(t.x()), longs(t.perm())));
      case DataOp.Slice s -> List.of(DataKernels.slice(in.of(s.x()), evaluate(s.starts(), b),
          evaluate(s.ends(), b), longs(s.axes()), longs(s.steps())));
      case DataOp.Gather g -> {
        Tensor data = in.of(g.data());
        yield List.of(DataKernels.gather(data, in.of(g.indices()), axis(g.axis(), data.rank())));
      }
      case DataOp.GatherElements g -> {
        Tensor data = in.of(g.data());
        yield List.of(DataKernels.gatherElements(data, in.of(g.indices()), axis(g.axis(), data.rank())));
      }
      case DataOp.Concat c -> List.of(DataKernels.concat(c.inputs().stream().map(in::of).toList(), c.axis()));
      case DataOp.Split s -> {
        Tensor x = in.of(s.x());
        yield DataKernels.split(x, axis(s.axis(), x.rank()), evaluate(s.sizes(), b));
      }
      case DataOp.Expand e -> List.of(DataKernels.expand(in.of(e.x()), evaluate(e.shape(), b)));
      case DataOp.Tile t -> List.of(DataKernels.tile(in.of(t.x()), longs(t.repeats())));
      case DataOp.Pad p -> List.of(DataKernels.pad(in.of(p.x()), longs(p.pads()), p.mode(), p.value()));
      case DataOp.ScatterNd s -> List.of(DataKernels.scatterNd(in.of(s.data()), in.of(s.indices()),
          in.of(s.updates()), s.reduction()));
      case DataOp.Trilu t -> List.of(DataKernels.trilu(in.of(t.x()), t.upper(), t.k()));
      case DataOp.Shape s -> List.of(DataKernels.shape(in.of(s.x()), s.start(), s.end()));
      case DataOp.Size s -> List.of(DataKernels.size(in.of(s.x())));
    };
  }

  private static Tensor reduction(ReductionOp op, Operands in) {
    return switch (op) {
      case ReductionOp.Reduce r -> ReductionKernels.reduce(r.kind(), in.of(r.x()), r.reducedAxes(), r.keepdims());
      case ReductionOp.Softmax s -> {
        Tensor x = in.of(s.x());
        yield ReductionKernels.softmax(x, axis(s.axis(), x.rank()), s.log());
      }
      case ReductionOp.CumSum c -> {
        Tensor x = in.of(c.x());
        yield ReductionKernels.cumsum(x, axis(c.axis(), x.rank()), c.exclusive(), c.reverse());
      }
    };
  }

  private Tensor source(SourceOp op, Map<String, Long> b) {
    return switch (op) {
      case SourceOp.Constant c -> c.value();
      case SourceOp.Fill f -> {
        Tensor t = Tensor.zeros(f.dtype(), evaluate(f.shape(), b));
        if (f.value() != 0) {
          if (t.isFloat()) {
            Arrays.fill(t.floats(), Tensor.roundTo(f.dtype(), (float) f.value()));
          } else {
            long v = f.dtype() == dev.sohuc.ir.type.ElementType.BOOL ? 1 : (long) f.value();
            Arrays.fill(t.longs(), Tensor.wrapTo(f.dtype(), v));
          }
        }
        yield t;
      }
      case SourceOp.Range r -> range(r.start(), evaluate(List.of(r.limit()), b)[0], r.delta(), r.dtype());
      case SourceOp.WeightRef w -> weight(w.name(), w.type());
    };
  }

  private static Tensor range(long start, long limit, long delta, dev.sohuc.ir.type.ElementType type) {
    if (delta == 0) {
      throw new IrException("range delta must not be 0");
    }
    long span = limit - start;
    long length = Math.max(0, delta > 0 ? Math.ceilDiv(span, delta) : Math.ceilDiv(-span, -delta));
    Tensor t = Tensor.zeros(type, length);
    for (int i = 0; i < length; i++) {
      t.set(i, start + i * delta);
    }
    return t;
  }

  /** A module weight, decoded once per interpreter. */
  private Tensor weight(String name, TensorType type) {
    return weights.computeIfAbsent(name, n -> {
      Weight w = module.weights().get(n);
      if (w == null) {
        throw new IrException("no weight @" + n + " in module @" + module.name());
      }
      if (!w.type().equals(type)) {
        throw new IrException("weight @" + n + " has type " + w.type() + ", the op reads it as " + type);
      }
      long[] shape = w.type().evaluateShape(Map.of());
      return Tensor.fromBytes(w.type().elementType(), shape, w.bytes());
    });
  }

  private static List<Tensor> quant(QuantOp op, Operands in) {
    return switch (op) {
      case QuantOp.QuantizeLinear q -> List.of(QuantKernels.quantize(in.of(q.x()), in.of(q.scale()),
          in.of(q.zeroPoint()), q.axis()));
      case QuantOp.DequantizeLinear d -> List.of(QuantKernels.dequantize(in.of(d.x()), in.of(d.scale()),
          in.of(d.zeroPoint()), d.axis()));
      case QuantOp.DynamicQuantizeLinear d -> QuantKernels.dynamicQuantize(in.of(d.x()));
      case QuantOp.MatMulInteger m -> List.of(LinalgKernels.matmulInteger(in.of(m.a()), in.of(m.b()),
          in.of(m.aZeroPoint()), in.of(m.bZeroPoint())));
      case QuantOp.QMatMul m -> List.of(QuantizedKernels.qmatmul(in.of(m.x()), in.of(m.w()),
          in.of(m.xScale()), in.of(m.wScale())));
      case QuantOp.DynamicQuantize d -> QuantizedKernels.dynamicQuantize(in.of(d.x()), d.dtype(), d.granularity());
    };
  }

  private static Tensor transformer(TransformerOp op, Operands in) {
    return switch (op) {
      case TransformerOp.Attention a -> TransformerKernels.attention(in.of(a.q()), in.of(a.k()), in.of(a.v()),
          in.ofOptional(a.mask()), in.ofOptional(a.pastLengths()), a.scale(), a.causal(), a.window());
      case TransformerOp.KvCacheAppend k -> TransformerKernels.kvCacheAppend(in.of(k.past()), in.of(k.current()));
      case TransformerOp.KvCacheWrite w -> TransformerKernels.kvCacheWrite(in.of(w.cache()), in.of(w.current()),
          in.of(w.pastLengths()));
      case TransformerOp.LayerNorm l -> {
        Tensor x = in.of(l.x());
        yield TransformerKernels.layerNorm(x, in.of(l.gamma()), in.ofOptional(l.beta()),
            axis(l.axis(), x.rank()), l.eps());
      }
      case TransformerOp.RmsNorm r -> TransformerKernels.rmsNorm(in.of(r.x()), in.of(r.gamma()), r.eps(), r.gammaOffset());
      case TransformerOp.Rope r -> TransformerKernels.rope(in.of(r.x()), in.of(r.cos()), in.of(r.sin()), r.style());
      case TransformerOp.Gelu g -> TransformerKernels.gelu(in.of(g.x()), g.tanhApproximation());
      case TransformerOp.Silu s -> TransformerKernels.silu(in.of(s.x()));
      case TransformerOp.SwiGlu s -> TransformerKernels.swiglu(in.of(s.gate()), in.of(s.up()));
      case TransformerOp.Embedding e -> TransformerKernels.embedding(in.of(e.table()), in.of(e.ids()));
      // one chip's program: the group's sum is a multi-shard runner's business
      case TransformerOp.AllReduce a -> in.of(a.x());
      case TransformerOp.ReduceScatter r -> block(in.of(r.x()), r.chips(), r.rank(), r.axis());
      case TransformerOp.AllGather g -> placed(in.of(g.x()), g.chips(), g.rank(), g.axis());
    };
  }

  /**
   * k for a dim {@code k*?s} of one symbol (1 for {@code ?s}), which an input's extent binds
   * (to extent / k); 0 for any other dim.
   */
  private static long multipleOfOneSymbol(Dim dim) {
    var terms = dim.terms();
    if (terms.size() != 1 || terms.firstKey().symbols().size() != 1) {
      return 0;
    }
    long k = terms.firstEntry().getValue();
    return k > 0 ? k : 0;
  }

  /** Block {@code rank} of {@code chips} equal blocks of x along {@code axis}. */
  private static Tensor block(Tensor x, long chips, long rank, long axis) {
    int a = axis(axis, x.rank());
    long size = x.dim(a) / chips;
    return DataKernels.slice(x, new long[] {rank * size}, new long[] {(rank + 1) * size},
        new long[] {a}, new long[] {1});
  }

  /** x at block {@code rank} of {@code chips} along {@code axis}, zeros in the other blocks. */
  private static Tensor placed(Tensor x, long chips, long rank, long axis) {
    Tensor zeros = Tensor.zeros(x.elementType(), x.shape());
    List<Tensor> blocks = new ArrayList<>();
    for (long c = 0; c < chips; c++) {
      blocks.add(c == rank ? x : zeros);
    }
    return DataKernels.concat(blocks, axis(axis, x.rank()));
  }

  // ---- attribute helpers ----

  private static int axis(long axis, int rank) {
    if (axis < -rank || axis >= rank) {
      throw new IrException("axis " + axis + " is out of range for rank " + rank);
    }
    return (int) (axis < 0 ? axis + rank : axis);
  }

  private static long[] longs(List<Long> values) {
    return values.stream().mapToLong(Long::longValue).toArray();
  }

  private static long[] evaluate(List<Dim> dims, Map<String, Long> b) {
    long[] out = new long[dims.size()];
    for (int i = 0; i < out.length; i++) {
      try {
        out[i] = dims.get(i).evaluate(b);
      } catch (IllegalArgumentException unbound) {
        throw new IrException("dim " + dims.get(i) + " uses a symbol that no input binds");
      }
    }
    return out;
  }
}
