package dev.sohuc.ir.interp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.util.ArrayList;
import java.util.List;

/** Builds one-op functions with FunctionBuilder, runs them, and compares with written numbers. */
final class Harness {
  static final Location LOC = new Location("test");

  private Harness() {}

  static long[] shape(long... dims) {
    return dims;
  }

  static Tensor f32(long[] shape, double... v) {
    float[] f = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      f[i] = (float) v[i];
    }
    return Tensor.ofFloats(ElementType.F32, shape, f);
  }

  static Tensor ints(ElementType t, long[] shape, long... v) {
    return Tensor.ofLongs(t, shape, v.clone());
  }

  static Tensor i64(long[] shape, long... v) {
    return ints(ElementType.I64, shape, v);
  }

  static Tensor bool(long[] shape, long... v) {
    return ints(ElementType.BOOL, shape, v);
  }

  /** A function whose arguments have the inputs' static types and whose body is one op. */
  static List<Tensor> runAll(Module module, java.util.function.Function<List<Value>, Op> make, Tensor... inputs) {
    List<Value> args = new ArrayList<>();
    for (int i = 0; i < inputs.length; i++) {
      args.add(Value.argument("in" + i, inputs[i].type()));
    }
    Function f = new Function("main", args);
    Node n = new FunctionBuilder(f).addNode(make.apply(args), LOC, List.of("r"));
    f.setOutputs(n.results().stream().map(v -> new Function.Output(v.name(), v)).toList());
    return List.copyOf(new Interpreter(module).run(f, List.of(inputs)).values());
  }

  static List<Tensor> runAll(java.util.function.Function<List<Value>, Op> make, Tensor... inputs) {
    return runAll(new Module("test"), make, inputs);
  }

  static Tensor run(java.util.function.Function<List<Value>, Op> make, Tensor... inputs) {
    List<Tensor> r = runAll(make, inputs);
    assertEquals(1, r.size());
    return r.get(0);
  }

  /** Exact comparison of type, shape and values (NaN matches NaN). */
  static void assertTensor(Tensor actual, ElementType type, long[] shape, double... expected) {
    assertEquals(type, actual.elementType(), "element type");
    assertArrayEquals(shape, actual.shape(), "shape");
    assertEquals(expected.length, actual.size(), "element count");
    for (int i = 0; i < expected.length; i++) {
      double a = actual.get(i);
      double e = type.isFloat() ? (float) expected[i] : expected[i];
      assertTrue(Double.compare(a, e) == 0 || (a == e),
          "element " + i + ": expected " + e + ", got " + a);
    }
  }

  /** Comparison within {@code relTol} of each value's magnitude (at least 1e-30 absolute). */
  static void assertClose(Tensor actual, long[] shape, double relTol, double... expected) {
    assertArrayEquals(shape, actual.shape(), "shape");
    assertEquals(expected.length, actual.size(), "element count");
    for (int i = 0; i < expected.length; i++) {
      double a = actual.get(i);
      double e = expected[i];
      if (Double.isNaN(e) || Double.isInfinite(e)) {
        assertEquals(e, a, "element " + i);
        continue;
      }
      assertTrue(Math.abs(a - e) <= Math.max(1e-30, relTol * Math.abs(e)),
          "element " + i + ": expected " + e + ", got " + a);
    }
  }
}
