package dev.sohuc.tests;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.OperatorSetIdProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import ai.onnx.proto.OnnxMl.TypeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.onnx.ImportOptions;
import dev.sohuc.onnx.OnnxImporter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Seeded random one-node ONNX graphs of the ops the backend lowers (elementwise with broadcasts,
 * softmax, layer norm, reductions, matmul and gemm, transpose, reshape, concat, slice, gather,
 * expand, where, clip), at ranks 1 to 4 and dims that are and are not multiples of the 128-wide
 * tiles: each imports, runs on the reference interpreter, compiles and runs on the emulator,
 * whose outputs must be within 1e-4 of the interpreter's largest magnitude (exact for integer
 * results); or a step refuses it with its own error. A wrong number or an internal error fails.
 */
class RandomOpsCompiledTest {
  private static final long[] DIMS = {1, 1, 2, 3, 5, 7, 16, 33, 128, 130};
  private static final List<String> UNARY = List.of("Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Erf",
      "Sqrt", "Log", "Reciprocal", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Softplus",
      "Softsign", "ThresholdedRelu", "Mish", "Shrink", "Sign", "Floor", "Ceil", "Round");
  private static final List<String> BINARY = List.of("Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean");
  private static final List<String> REDUCTIONS = List.of("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
      "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp");

  @TempDir Path dir;

  /** A graph under construction: its inputs with their values, initializers and the node. */
  private static final class Graph {
    final GraphProto.Builder g = GraphProto.newBuilder().setName("g");
    final List<Tensor> values = new ArrayList<>();
    final Random r;
    int names;
    /** False where ONNX Runtime's numerics differ from the spec's by design (see matchOrt). */
    boolean ortComparable = true;

    Graph(Random r) {
      this.r = r;
    }

    /** A graph input of random floats in [lo, hi]. */
    String input(long[] shape, double lo, double hi) {
      String name = "x" + names++;
      TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
      for (long d : shape) {
        s.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
      }
      g.addInput(ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
          TypeProto.Tensor.newBuilder().setElemType(DataType.FLOAT.getNumber()).setShape(s))));
      float[] v = new float[(int) Arrays.stream(shape).reduce(1, Math::multiplyExact)];
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) (lo + (hi - lo) * r.nextDouble());
      }
      values.add(Tensor.ofFloats(ElementType.F32, shape, v));
      return name;
    }

    /** A graph input holding {@code t} (f32). */
    String input(Tensor t) {
      String name = input(t.shape(), 0, 0);
      values.set(values.size() - 1, t);
      return name;
    }

    /** A graph input holding {@code entries} (int64). */
    String longInput(long[] shape, long... entries) {
      String name = input(shape, 0, 0);
      g.setInput(g.getInputCount() - 1, g.getInput(g.getInputCount() - 1).toBuilder().setType(
          TypeProto.newBuilder().setTensorType(g.getInput(g.getInputCount() - 1).getType()
              .getTensorType().toBuilder().setElemType(DataType.INT64.getNumber()))));
      values.set(values.size() - 1, Tensor.ofLongs(ElementType.I64, shape, entries));
      return name;
    }

    String ints(long... v) {
      String name = "c" + names++;
      g.addInitializer(TensorProto.newBuilder().setName(name).setDataType(DataType.INT64.getNumber())
          .addDims(v.length).addAllInt64Data(Arrays.stream(v).boxed().toList()));
      return name;
    }

    /** A float vector initializer (Resize's scales). */
    String floatConstant(float... v) {
      String name = "c" + names++;
      TensorProto.Builder t = TensorProto.newBuilder().setName(name)
          .setDataType(DataType.FLOAT.getNumber()).addDims(v.length);
      for (float f : v) {
        t.addFloatData(f);
      }
      g.addInitializer(t);
      return name;
    }

    String scalar(float v) {
      String name = "c" + names++;
      g.addInitializer(TensorProto.newBuilder().setName(name).setDataType(DataType.FLOAT.getNumber())
          .addFloatData(v));
      return name;
    }

    /** An 8-bit initializer (int8 or uint8) of the given values. */
    String bytes(DataType type, long[] shape, long... v) {
      String name = "c" + names++;
      TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(type.getNumber());
      Arrays.stream(shape).forEach(t::addDims);
      byte[] raw = new byte[v.length];
      for (int i = 0; i < v.length; i++) {
        raw[i] = (byte) v[i];
      }
      g.addInitializer(t.setRawData(com.google.protobuf.ByteString.copyFrom(raw)));
      return name;
    }

    String floats(long[] shape, float... v) {
      String name = "c" + names++;
      TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(DataType.FLOAT.getNumber());
      Arrays.stream(shape).forEach(t::addDims);
      for (float f : v) {
        t.addFloatData(f);
      }
      g.addInitializer(t);
      return name;
    }

    /** An intermediate node with a fresh output. */
    String inner(String op, List<String> inputs, AttributeProto... attrs) {
      String out = "t" + names++;
      g.addNode(NodeProto.newBuilder().setOpType(op).setName(out).addAllInput(inputs).addOutput(out)
          .addAllAttribute(List.of(attrs)));
      return out;
    }

    void node(String op, List<String> inputs, AttributeProto... attrs) {
      g.addNode(NodeProto.newBuilder().setOpType(op).setName(op).addAllInput(inputs).addOutput("y")
          .addAllAttribute(List.of(attrs)));
      g.addOutput(ValueInfoProto.newBuilder().setName("y"));
    }
  }

  private static AttributeProto attr(String name, long v) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(v).build();
  }

  private static AttributeProto attr(String name, String v) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.STRING)
        .setS(com.google.protobuf.ByteString.copyFromUtf8(v)).build();
  }

  private static AttributeProto attrF(String name, float v) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.FLOAT).setF(v).build();
  }

  private static AttributeProto ints(String name, long... v) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INTS)
        .addAllInts(Arrays.stream(v).boxed().toList()).build();
  }

  private long[] shape(Random r, int rank) {
    long[] s = new long[rank];
    long total = 1;
    for (int i = 0; i < rank; i++) {
      s[i] = DIMS[r.nextInt(DIMS.length)];
      if (total * s[i] > 40_000) {
        s[i] = 1;
      }
      total *= s[i];
    }
    return s;
  }

  /** {@code s} with some dims set to 1 and some leading dims dropped: a shape that broadcasts to it. */
  private static long[] broadcastable(Random r, long[] s) {
    long[] b = s.clone();
    for (int i = 0; i < b.length; i++) {
      if (r.nextInt(3) == 0) {
        b[i] = 1;
      }
    }
    return Arrays.copyOfRange(b, r.nextInt(b.length + 1) / 2, b.length);
  }

  private static long[] perm(Random r, int rank) {
    List<Long> p = new ArrayList<>();
    for (long i = 0; i < rank; i++) {
      p.add(i);
    }
    java.util.Collections.shuffle(p, r);
    return p.stream().mapToLong(Long::longValue).toArray();
  }

  private void build(Graph g, Random r) {
    int rank = 1 + r.nextInt(4);
    long[] s = shape(r, rank);
    int axis = r.nextInt(rank);
    switch (r.nextInt(14)) {
      case 0 -> {
        String op = UNARY.get(r.nextInt(UNARY.size()));
        boolean positive = List.of("Sqrt", "Log", "Reciprocal").contains(op);
        g.node(op, List.of(g.input(s, positive ? 0.1 : -3, 3)));
      }
      case 1 -> {
        String op = BINARY.get(r.nextInt(BINARY.size()));
        String a = g.input(s, -3, 3);
        String b = g.input(broadcastable(r, s), op.equals("Div") ? 0.5 : -3, 3);
        g.node(op, r.nextBoolean() ? List.of(a, b) : List.of(b, a));
      }
      case 2 -> g.node(r.nextBoolean() ? "Softmax" : "LogSoftmax", List.of(g.input(s, -4, 4)),
          attr("axis", r.nextBoolean() ? -1 : axis - rank));
      case 3 -> {
        long[] norm = Arrays.copyOfRange(s, axis, rank);
        g.ortComparable = Arrays.stream(norm).reduce(1, Math::multiplyExact) >= 16;
        g.node("LayerNormalization", List.of(g.input(s, -2, 2), g.input(norm, 0.5, 1.5), g.input(norm, -1, 1)),
            attr("axis", axis), attrF("epsilon", 1e-5f));
      }
      case 4 -> {
        // at opset 17 ReduceSum takes its axes as an input, the others as an attribute
        String op = REDUCTIONS.get(r.nextInt(REDUCTIONS.size()));
        long axes = r.nextBoolean() ? -1 : axis;
        if (op.equals("ReduceSum")) {
          g.node(op, List.of(g.input(s, -2, 2), g.ints(axes)), attr("keepdims", r.nextInt(2)));
        } else {
          g.node(op, List.of(g.input(s, -2, 2)), ints("axes", axes), attr("keepdims", r.nextInt(2)));
        }
      }
      case 5 -> {
        long m = DIMS[r.nextInt(DIMS.length)];
        long k = DIMS[r.nextInt(DIMS.length)];
        long n = DIMS[r.nextInt(DIMS.length)];
        long batch = r.nextBoolean() ? 1 : DIMS[r.nextInt(5)];
        long[] a = batch == 1 ? new long[] {m, k} : new long[] {batch, m, k};
        long[] b = r.nextBoolean() ? new long[] {k, n} : batch == 1 ? new long[] {k, n} : new long[] {batch, k, n};
        g.node("MatMul", List.of(g.input(a, -1, 1), g.input(b, -1, 1)));
      }
      case 6 -> {
        long m = DIMS[r.nextInt(DIMS.length)];
        long k = DIMS[r.nextInt(DIMS.length)];
        long n = DIMS[r.nextInt(DIMS.length)];
        boolean tb = r.nextBoolean();
        List<String> in = new ArrayList<>(List.of(g.input(new long[] {m, k}, -1, 1),
            g.input(tb ? new long[] {n, k} : new long[] {k, n}, -1, 1)));
        if (r.nextBoolean()) {
          in.add(g.input(new long[] {n}, -1, 1));
        }
        g.node("Gemm", in, attr("transB", tb ? 1 : 0), attrF("alpha", r.nextBoolean() ? 1f : 0.5f));
      }
      case 7 -> g.node("Transpose", List.of(g.input(s, -1, 1)), ints("perm", perm(r, rank)));
      case 8 -> {
        long total = Arrays.stream(s).reduce(1, Math::multiplyExact);
        long first = total % 2 == 0 ? 2 : 1;
        g.node("Reshape", List.of(g.input(s, -1, 1), g.ints(first, -1)));
      }
      case 9 -> {
        long[] other = s.clone();
        other[axis] = DIMS[r.nextInt(DIMS.length)];
        g.node("Concat", List.of(g.input(s, -1, 1), g.input(other, -1, 1)), attr("axis", axis - (r.nextBoolean() ? rank : 0)));
      }
      case 10 -> {
        long d = s[axis];
        long start = r.nextInt((int) d);
        long end = start + 1 + r.nextInt((int) (d - start));
        boolean negative = r.nextBoolean();
        g.node("Slice", List.of(g.input(s, -1, 1), g.ints(negative ? start - d : start),
            g.ints(negative && end < d ? end - d : end), g.ints(axis)));
      }
      case 11 -> {
        long d = s[axis];
        long[] idx = new long[1 + r.nextInt(4)];
        for (int i = 0; i < idx.length; i++) {
          idx[i] = r.nextInt((int) d) - (r.nextBoolean() ? d : 0);
        }
        g.node("Gather", List.of(g.input(s, -1, 1), g.ints(idx)), attr("axis", axis));
      }
      case 12 -> {
        long[] small = broadcastable(r, s);
        g.node("Expand", List.of(g.input(small, -1, 1), g.ints(s)));
      }
      default -> {
        String a = g.input(s, -2, 2);
        String b = g.input(broadcastable(r, s), -2, 2);
        if (r.nextBoolean()) {
          g.node("Clip", List.of(a, g.scalar(-0.5f), g.scalar(0.75f)));
        } else {
          String c = "cond";
          g.g.addNode(NodeProto.newBuilder().setOpType("Less").setName("Less").addInput(a).addInput(b).addOutput(c));
          g.node("Where", List.of(c, a, b));
        }
      }
    }
  }

  /**
   * The interpreter's outputs against ONNX Runtime's (its nodes as the spec defines them, graph
   * optimizations off), within 1e-4 relative above 1, where ONNX Runtime runs the graph; not
   * layer norms over fewer than 16 values, whose variance ONNX Runtime takes as E[x^2] - E[x]^2
   * (two close values lose digits: 1.6e-3 off on one such row, where the interpreter and the
   * chip subtract the mean first).
   */
  private static void matchOrt(String form, byte[] model, Module module, Graph graph) {
    if (!graph.ortComparable) {
      return;
    }
    Map<String, Tensor> in = new LinkedHashMap<>();
    for (int k = 0; k < graph.values.size(); k++) {
      in.put(graph.g.getInput(k).getName(), graph.values.get(k));
    }
    Map<String, Tensor> reference;
    try {
      reference = new Interpreter(module).run(graph.values);
    } catch (IrException e) {
      return;
    }
    try {
      Models.matchUnoptimizedOrt(form, model, in, reference, 1e-4);
    } catch (ai.onnxruntime.OrtException e) {
      // ONNX Runtime's own refusal
    }
  }

  /**
   * Ops that reach the chip through the backend's Legalization (tile, pad, cumsum, trilu,
   * reductions over several axes) and other data movement (split, unsqueeze, flatten, pow).
   */
  private void buildMore(Graph g, Random r) {
    int rank = 1 + r.nextInt(4);
    long[] s = shape(r, rank);
    int axis = r.nextInt(rank);
    switch (r.nextInt(9)) {
      case 0 -> {
        long[] reps = new long[rank];
        for (int i = 0; i < rank; i++) {
          reps[i] = 1 + r.nextInt(3);
        }
        g.node("Tile", List.of(g.input(s, -1, 1), g.ints(reps)));
      }
      case 1 -> {
        long[] pads = new long[2 * rank];
        for (int i = 0; i < pads.length; i++) {
          pads[i] = r.nextInt(3);
        }
        g.node("Pad", List.of(g.input(s, -1, 1), g.ints(pads)), AttributeProto.newBuilder().setName("mode")
            .setType(AttributeProto.AttributeType.STRING).setS(com.google.protobuf.ByteString.copyFromUtf8(
                List.of("constant", "reflect", "edge").get(r.nextInt(3)))).build());
      }
      case 2 -> g.node("CumSum", List.of(g.input(s, -1, 1), g.ints(axis)), attr("exclusive", r.nextInt(2)),
          attr("reverse", r.nextInt(2)));
      case 3 -> {
        long[] m = {DIMS[r.nextInt(DIMS.length)], DIMS[r.nextInt(DIMS.length)]};
        g.node("Trilu", List.of(g.input(m, -1, 1)), attr("upper", r.nextInt(2)));
      }
      case 4 -> {
        long d = s[axis];
        g.node("Split", List.of(g.input(s, -1, 1), g.ints(d / 2, d - d / 2)), attr("axis", axis));
      }
      case 5 -> g.node("Unsqueeze", List.of(g.input(s, -1, 1), g.ints(r.nextInt(rank + 1))));
      case 6 -> g.node("Pow", List.of(g.input(s, 0.1, 3), g.input(broadcastable(r, s), -2, 2)));
      case 7 -> g.node("ReduceSum", List.of(g.input(s, -1, 1), g.ints(perm(r, rank)[0], -1)),
          attr("keepdims", r.nextInt(2)));
      default -> g.node("Flatten", List.of(g.input(s, -1, 1)), attr("axis", axis));
    }
  }

  @Test
  void otherOpsCompileToTheInterpretersNumbersOrAreRefused() throws Exception {
    int emulated = compiled(98, 300, this::buildMore);
    // the rest: reflect pads as wide as their axis (the IR refuses them: ONNX Runtime writes zeros
    // and NaNs there), splits with an empty part (measured 280 of 300)
    assertTrue(emulated >= 270, emulated + " of 300 graphs compiled");
  }

  /**
   * Static-quantization (QDQ) forms that fold into the chip's quantized matmul exactly: an i8
   * activation pair of zero point 0, times int8 weights through DequantizeLinear (a per-tensor or
   * per-channel scale), then a bias or a ReLU. (The u8 pairs with a zero point that
   * quantize_static writes by default fold into a per-token i8 requantization, within a bound
   * FoldQdqPass states, checked against ONNX Runtime in QuantizedOnnxModelsTest.)
   */
  private void buildQdq(Graph g, Random r) {
    long m = DIMS[r.nextInt(DIMS.length)];
    long k = DIMS[2 + r.nextInt(DIMS.length - 2)];
    long n = DIMS[2 + r.nextInt(DIMS.length - 2)];
    String x = g.input(new long[] {m, k}, -2, 2);
    String xs = g.floats(new long[0], 0.01f + r.nextFloat() * 0.03f);
    String xz = g.bytes(DataType.INT8, new long[0], 0);
    String xq = g.inner("DequantizeLinear", List.of(g.inner("QuantizeLinear", List.of(x, xs, xz)), xs, xz));
    long[] w = new long[(int) (k * n)];
    for (int i = 0; i < w.length; i++) {
      w[i] = r.nextInt(255) - 127;
    }
    boolean perChannel = r.nextBoolean();
    float[] ws = new float[perChannel ? (int) n : 1];
    for (int i = 0; i < ws.length; i++) {
      ws[i] = 0.002f + r.nextFloat() * 0.01f;
    }
    long[] zeros = new long[ws.length];
    String wd = g.inner("DequantizeLinear", List.of(g.bytes(DataType.INT8, new long[] {k, n}, w),
        g.floats(perChannel ? new long[] {n} : new long[0], ws),
        g.bytes(DataType.INT8, perChannel ? new long[] {n} : new long[0], zeros)), attr("axis", 1));
    String y = g.inner("MatMul", List.of(xq, wd));
    if (r.nextBoolean()) {
      float[] bias = new float[(int) n];
      for (int i = 0; i < bias.length; i++) {
        bias[i] = r.nextFloat() - 0.5f;
      }
      g.node("Add", List.of(y, g.floats(new long[] {n}, bias)));
    } else {
      g.node("Relu", List.of(y));
    }
  }

  @Test
  void qdqMatmulsCompileToTheInterpretersNumbers() throws Exception {
    int emulated = compiled(97, 100, this::buildQdq);
    assertTrue(emulated == 100, emulated + " of 100 graphs compiled");
  }

  /**
   * IsNaN, IsInf, Sign, Floor, Ceil, Round, a cast to bool and Where's select over NaN, the infinities, signed
   * zeros and a denormal (and the rounding ops over halves, their neighbours and the edges of
   * f32's fractions), on the chip as on the interpreter (whose results ONNX Runtime's match,
   * OpConformanceTest): every VPU comparison with NaN is 0, as IEEE's, a bool's not is 1 minus
   * its mask (and, or and xor products, maxima and differences of masks), the select copies the element its condition picks whatever the other side holds,
   * and floor and ceil are exact f32 arithmetic (Legalization).
   */
  @Test
  void nanAndInfinityCompileToTheInterpretersNumbers() throws Exception {
    Tensor special = Tensor.ofFloats(ElementType.F32, new long[] {2, 4}, new float[] {Float.NaN,
        Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f, 1.5f, -2f, Float.MIN_VALUE});
    // halves, their neighbours and the edges of f32's fractions, for floor, ceil and round
    Tensor fractions = Tensor.ofFloats(ElementType.F32, new long[] {4, 6}, new float[] {0.5f, 1.5f, 2.5f,
        -0.5f, -1.5f, -2.5f, 0.49999997f, -0.49999997f, 0.50000006f, 2.4999998f, 1e-30f, -1e-30f, 4194303.5f,
        -4194303.5f, 8388607.5f, -8388607.5f, 8388609f, -8388609f, 1e30f, -1e30f, 3.7f, -3.7f, -0f, -1f});
    List<Object[]> nodes = List.of(new Object[] {"IsInf"}, new Object[] {"IsInf", attr("detect_negative", 0)},
        new Object[] {"IsInf", attr("detect_positive", 0)}, new Object[] {"IsNaN"}, new Object[] {"Sign"},
        new Object[] {"Floor"}, new Object[] {"Ceil"}, new Object[] {"Round"},
        new Object[] {"Cast", attr("to", 9)});
    int i = 0;
    for (Object[] node : nodes) {
      Graph g = new Graph(new Random(i));
      g.ortComparable = false;  // bool results: matchOrt reads floats
      AttributeProto[] attrs = java.util.Arrays.copyOfRange(node, 1, node.length, AttributeProto[].class);
      g.node((String) node[0], List.of(g.input(special)), attrs);
      assertTrue(check(i++, g), List.of(node) + " compiled");
    }
    for (String op : List.of("Floor", "Ceil", "Round")) {
      Graph g = new Graph(new Random(i));
      g.node(op, List.of(g.input(fractions)));
      assertTrue(check(i++, g), op + " of fractions compiled");
    }
    for (String logical : List.of("And", "Or", "Xor")) {
      // x < y with y > 0 (a [1, 4] row, broadcast), NaN on both sides
      Graph g = new Graph(new Random(i));
      g.ortComparable = false;
      String x = g.input(special);
      String y = g.input(Tensor.ofFloats(ElementType.F32, new long[] {2, 4}, new float[] {1f, Float.NaN,
          Float.POSITIVE_INFINITY, -0f, 0f, Float.NEGATIVE_INFINITY, Float.NaN, 0f}));
      String row = g.input(Tensor.ofFloats(ElementType.F32, new long[] {1, 4}, new float[] {1f, -1f, Float.NaN, 0f}));
      g.g.addNode(NodeProto.newBuilder().setOpType("Less").setName("lt").addInput(x).addInput(y).addOutput("lt"));
      g.g.addNode(NodeProto.newBuilder().setOpType("Greater").setName("gt").addInput(row).addInput(g.scalar(0f))
          .addOutput("gt"));
      g.node(logical, List.of("lt", "gt"));
      assertTrue(check(i++, g), logical + " compiled");
    }
    for (String compare : List.of("Less", "Greater")) {
      // where(x < y, x, y) and where(x > y, ...) with NaN and infinities on both sides
      Graph g = new Graph(new Random(i));
      g.ortComparable = false;
      String x = g.input(special);
      String y = g.input(Tensor.ofFloats(ElementType.F32, new long[] {2, 4}, new float[] {1f, Float.NaN,
          Float.POSITIVE_INFINITY, -0f, 0f, Float.NEGATIVE_INFINITY, Float.NaN, 0f}));
      g.g.addNode(NodeProto.newBuilder().setOpType(compare).setName(compare).addInput(x).addInput(y)
          .addOutput("cond"));
      g.node("Where", List.of("cond", x, y));
      assertTrue(check(i++, g), compare + " then Where compiled");
    }
  }

  /**
   * GlobalAveragePool and GlobalMaxPool over [2, 3, 5, 7], LpNormalization (p = 2 along the last
   * axis, p = 1 along the middle one, and a row of zeros, which stays zeros) on the chip as on
   * the interpreter, and the interpreter as ONNX Runtime.
   */
  @Test
  void globalPoolsAndLpNormalizationCompileToTheInterpretersNumbers() throws Exception {
    int i = 0;
    for (String pool : List.of("GlobalAveragePool", "GlobalMaxPool")) {
      Graph g = new Graph(new Random(i));
      g.node(pool, List.of(g.input(new long[] {2, 3, 5, 7}, -2, 2)));
      assertTrue(check(i++, g), pool + " compiled");
    }
    for (AttributeProto[] attrs : new AttributeProto[][] {{}, {attr("axis", 1), attr("p", 1)}}) {
      Graph g = new Graph(new Random(i));
      g.node("LpNormalization", List.of(g.input(new long[] {3, 4, 130}, -2, 2)), attrs);
      assertTrue(check(i++, g), "LpNormalization " + List.of(attrs) + " compiled");
    }
    Graph g = new Graph(new Random(i));
    g.node("LpNormalization", List.of(g.input(Tensor.ofFloats(ElementType.F32, new long[] {2, 3},
        new float[] {0, 0, 0, 3, -4, 0}))));
    assertTrue(check(i, g), "LpNormalization of a zero row compiled");
  }

  /**
   * ArgMax and ArgMin (i64 results: the chip writes each index's low word and its sign as the
   * high word) over each axis, with ties (whole numbers 0 to 3) taken first or last, and of
   * [3, 130] random values, Hardmax of ties along each axis, and a cast to i64 of negative and
   * positive values, on the chip as on the interpreter.
   */
  @Test
  void argMaxAndArgMinCompileToTheInterpretersNumbers() throws Exception {
    int i = 0;
    for (String op : List.of("ArgMax", "ArgMin")) {
      for (int axis = 0; axis < 2; axis++) {
        for (int last = 0; last < 2; last++) {
          Graph g = new Graph(new Random(i));
          g.ortComparable = false;  // i64 results: matchOrt reads floats
          float[] ties = new float[24];
          for (int k = 0; k < ties.length; k++) {
            ties[k] = g.r.nextInt(4);
          }
          g.node(op, List.of(g.input(Tensor.ofFloats(ElementType.F32, new long[] {4, 6}, ties))),
              attr("axis", axis), attr("select_last_index", last), attr("keepdims", axis));
          assertTrue(check(i++, g), op + " axis " + axis + " last " + last + " compiled");
        }
      }
      Graph g = new Graph(new Random(i));
      g.ortComparable = false;
      g.node(op, List.of(g.input(new long[] {3, 130}, -2, 2)), attr("axis", -1));
      assertTrue(check(i++, g), op + " of [3, 130] compiled");
    }
    for (int axis = 0; axis < 2; axis++) {
      Graph g = new Graph(new Random(i));
      float[] ties = new float[24];
      for (int k = 0; k < ties.length; k++) {
        ties[k] = g.r.nextInt(4);
      }
      g.node("Hardmax", List.of(g.input(Tensor.ofFloats(ElementType.F32, new long[] {4, 6}, ties))),
          attr("axis", axis));
      assertTrue(check(i++, g), "Hardmax axis " + axis + " compiled");
    }
    // a cast to i64 truncates toward zero; a negative result's high word is all ones
    Graph g = new Graph(new Random(i));
    g.ortComparable = false;
    g.node("Cast", List.of(g.input(Tensor.ofFloats(ElementType.F32, new long[] {8}, new float[] {-3.7f, -1f,
        -0.5f, 0f, 0.5f, 2.9f, 1e6f, -2147483520f}))), attr("to", 7));
    assertTrue(check(i, g), "Cast to int64 compiled");
  }

  /**
   * TopK (K rounds of an extreme and its first index among the elements not yet taken) of ties
   * (whole numbers 0 to 3) and infinities along each axis, largest and smallest, on the chip as on
   * the interpreter: the values and the indices (cast to f32) concatenated as one output.
   */
  @Test
  void topKCompilesToTheInterpretersNumbers() throws Exception {
    int i = 0;
    for (int axis = 0; axis < 2; axis++) {
      for (int largest = 0; largest < 2; largest++) {
        Graph g = new Graph(new Random(i));
        // infinities: matchOrt's relative error cannot take them (OpConformanceTest has TopK with
        // infinities against ONNX Runtime)
        g.ortComparable = false;
        float[] x = new float[24];
        for (int k = 0; k < x.length; k++) {
          x[k] = g.r.nextInt(4);
        }
        x[5] = Float.POSITIVE_INFINITY;
        x[7] = Float.NEGATIVE_INFINITY;
        String in = g.input(Tensor.ofFloats(ElementType.F32, new long[] {4, 6}, x));
        g.g.addNode(NodeProto.newBuilder().setOpType("TopK").setName("top").addInput(in)
            .addInput(g.ints(3)).addOutput("v").addOutput("ix")
            .addAttribute(attr("axis", axis)).addAttribute(attr("largest", largest)));
        g.node("Concat", List.of("v", g.inner("Cast", List.of("ix"), attr("to", 1))),
            attr("axis", axis));
        assertTrue(check(i++, g), "TopK axis " + axis + " largest " + largest + " compiled");
      }
    }
  }

  /**
   * Convolutions tap by tap (ConvTaps: pad, a slice per tap, concat, matmul): Whisper's 1-D stem
   * (80 mel channels, kernel 3, pad 1, stride 1 then 2) and a 2-D 3 x 3 of stride 2 with padding
   * and dilation; pooling over the same taps, BatchNormalization, and wav2vec2's strided 1-D
   * convolution into an InstanceNormalization; grouped: wav2vec2's positional convolution and a
   * depthwise one; a 3-D tubelet embedding and a 2 x 2 ConvTranspose upsampling; on the chip as
   * on the interpreter and ONNX Runtime.
   */
  @Test
  void convolutionsCompileToTheInterpretersNumbers() throws Exception {
    Graph g = new Graph(new Random(1));
    String stem = g.inner("Conv", List.of(g.input(new long[] {1, 80, 64}, -1, 1),
        g.floats(new long[] {16, 80, 3}, randomFloats(g.r, 16 * 80 * 3, 0.1f)),
        g.floats(new long[] {16}, randomFloats(g.r, 16, 0.1f))), ints("pads", 1, 1));
    g.node("Conv", List.of(stem, g.floats(new long[] {16, 16, 3}, randomFloats(g.r, 16 * 16 * 3, 0.1f))),
        ints("pads", 1, 1), ints("strides", 2));
    assertTrue(check(0, g), "Whisper's 1-D stem compiled");
    Graph g2 = new Graph(new Random(2));
    g2.node("Conv", List.of(g2.input(new long[] {2, 3, 9, 7}, -1, 1),
        g2.floats(new long[] {4, 3, 3, 3}, randomFloats(g2.r, 4 * 3 * 3 * 3, 0.3f))),
        ints("pads", 1, 2, 1, 0), ints("strides", 2, 1), ints("dilations", 1, 2));
    assertTrue(check(1, g2), "2-D 3 x 3 compiled");
    // a CNN stem's 3 x 3 stride 2 max pool over a batch-normalized input (the padding -inf;
    // ceil_mode, as GoogLeNet's and SqueezeNet's, adds a last column of windows past the
    // padding), and an average whose padded windows count only their positions inside the input
    Graph g3 = new Graph(new Random(3));
    String bn = g3.inner("BatchNormalization", List.of(g3.input(new long[] {2, 3, 9, 8}, -2, 2),
        g3.floats(new long[] {3}, 1.5f, -0.5f, 2f), g3.floats(new long[] {3}, 0.1f, 0.2f, -0.3f),
        g3.floats(new long[] {3}, 0.5f, -1f, 0f), g3.floats(new long[] {3}, 1f, 0.25f, 4f)));
    g3.node("MaxPool", List.of(bn), ints("kernel_shape", 3, 3), ints("strides", 2, 2),
        ints("pads", 1, 1, 1, 1), attr("ceil_mode", 1));
    assertTrue(check(2, g3), "BatchNormalization and MaxPool compiled");
    Graph g4 = new Graph(new Random(4));
    g4.node("AveragePool", List.of(g4.input(new long[] {1, 4, 7, 10}, -1, 1)), ints("kernel_shape", 3, 2),
        ints("strides", 2, 3), ints("pads", 1, 0, 1, 1));
    assertTrue(check(3, g4), "AveragePool compiled");
    // a video transformer's tubelet embedding (ViViT, VideoMAE): a 3-D patch convolution
    Graph tubelets = new Graph(new Random(10));
    tubelets.node("Conv", List.of(tubelets.input(new long[] {1, 3, 4, 16, 16}, -1, 1),
        tubelets.floats(new long[] {8, 3, 2, 8, 8}, randomFloats(tubelets.r, 8 * 3 * 2 * 8 * 8, 0.1f)),
        tubelets.floats(new long[] {8}, randomFloats(tubelets.r, 8, 0.1f))), ints("strides", 2, 8, 8));
    assertTrue(check(7, tubelets), "3-D tubelet embedding compiled");
    // and the other way: SAM's mask decoder upsamples by a 2 x 2 ConvTranspose of stride 2
    Graph up = new Graph(new Random(11));
    up.node("ConvTranspose", List.of(up.input(new long[] {1, 8, 6, 7}, -1, 1),
        up.floats(new long[] {8, 4, 2, 2}, randomFloats(up.r, 8 * 4 * 2 * 2, 0.3f)),
        up.floats(new long[] {4}, randomFloats(up.r, 4, 0.1f))), ints("strides", 2, 2));
    assertTrue(check(8, up), "2 x 2 ConvTranspose compiled");
    // wav2vec2's feature encoder: a strided 1-D convolution, then a group norm of a group a channel
    Graph g5 = new Graph(new Random(5));
    String conv = g5.inner("Conv", List.of(g5.input(new long[] {1, 1, 400}, -1, 1),
        g5.floats(new long[] {8, 1, 10}, randomFloats(g5.r, 80, 0.3f))), ints("strides", 5));
    g5.node("InstanceNormalization", List.of(conv, g5.floats(new long[] {8}, randomFloats(g5.r, 8, 1f)),
        g5.floats(new long[] {8}, randomFloats(g5.r, 8, 1f))));
    assertTrue(check(4, g5), "Conv and InstanceNormalization compiled");
    // wav2vec2's positional convolution (128 taps, pad 64, 16 groups: a batched matmul over
    // the groups), and a depthwise 2-D 3 x 3 (a group a channel)
    Graph g6 = new Graph(new Random(6));
    g6.node("Conv", List.of(g6.input(new long[] {1, 32, 96}, -1, 1),
        g6.floats(new long[] {32, 2, 128}, randomFloats(g6.r, 32 * 2 * 128, 0.1f)),
        g6.floats(new long[] {32}, randomFloats(g6.r, 32, 0.1f))), attr("group", 16),
        ints("pads", 64, 64));
    assertTrue(check(5, g6), "grouped 128-tap Conv compiled");
    Graph g7 = new Graph(new Random(7));
    g7.node("Conv", List.of(g7.input(new long[] {2, 6, 8, 7}, -1, 1),
        g7.floats(new long[] {6, 1, 3, 3}, randomFloats(g7.r, 54, 0.3f))), attr("group", 6),
        ints("pads", 1, 1, 1, 1), ints("strides", 2, 1));
    assertTrue(check(6, g7), "depthwise Conv compiled");
  }

  /**
   * Resize as vision models and diffusion U-Nets use it: PyTorch's nearest x2 (an expand), a
   * bilinear x2 and ViT's bicubic position-embedding interpolation (constant gathers along each
   * axis, weighted).
   */
  @Test
  void resizeCompilesToTheInterpretersNumbers() throws Exception {
    Graph g = new Graph(new Random(9));
    g.node("Resize", List.of(g.input(new long[] {1, 3, 5, 6}, -1, 1), "", g.floatConstant(1, 1, 2, 2)),
        attr("coordinate_transformation_mode", "asymmetric"), attr("nearest_mode", "floor"));
    assertTrue(check(0, g), "nearest Resize compiled");
    Graph g2 = new Graph(new Random(10));
    g2.node("Resize", List.of(g2.input(new long[] {2, 2, 4, 3}, -1, 1), "", g2.floatConstant(1, 1, 2, 2)),
        attr("mode", "linear"));
    assertTrue(check(1, g2), "bilinear Resize compiled");
    Graph g3 = new Graph(new Random(11));
    g3.node("Resize", List.of(g3.input(new long[] {1, 4, 6, 6}, -1, 1), "", g3.floatConstant(1, 1, 1.5f, 1.5f)),
        attr("mode", "cubic"), attr("coordinate_transformation_mode", "pytorch_half_pixel"));
    assertTrue(check(2, g3), "bicubic Resize compiled");
  }

  /**
   * GatherND as a sequence classifier takes its last tokens' logits (GPT-2's, Llama's): index
   * pairs given at run time, one negative, their positions computed in f32 on the chip; and
   * with batch_dims 1, each sequence's own token.
   */
  @Test
  void gatherNdCompilesToTheInterpretersNumbers() throws Exception {
    Graph g = new Graph(new Random(8));
    g.node("GatherND", List.of(g.input(new long[] {3, 7, 5}, -1, 1),
        g.longInput(new long[] {3, 2}, 0, 6, 1, 2, 2, -1)));
    assertTrue(check(0, g), "GatherND compiled");
    Graph batched = new Graph(new Random(9));
    batched.node("GatherND", List.of(batched.input(new long[] {3, 7, 5}, -1, 1),
        batched.longInput(new long[] {3, 1}, 6, 2, -1)), attr("batch_dims", 1));
    assertTrue(check(1, batched), "GatherND batch_dims 1 compiled");
  }

  /** A super-resolution head's pixel shuffle (DepthToSpace) and its inverse, on the chip. */
  @Test
  void pixelShufflesCompileToTheInterpretersNumbers() throws Exception {
    Graph g = new Graph(new Random(11));
    g.node("DepthToSpace", List.of(g.input(new long[] {1, 12, 5, 6}, -1, 1)), attr("blocksize", 2),
        attr("mode", "CRD"));
    assertTrue(check(0, g), "DepthToSpace compiled");
    Graph s = new Graph(new Random(12));
    s.node("SpaceToDepth", List.of(s.input(new long[] {2, 3, 8, 6}, -1, 1)), attr("blocksize", 2));
    assertTrue(check(1, s), "SpaceToDepth compiled");
  }

  private static float[] randomFloats(Random r, int count, float scale) {
    float[] v = new float[count];
    for (int i = 0; i < count; i++) {
      v[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
    }
    return v;
  }

  @Test
  void randomOpsCompileToTheInterpretersNumbers() throws Exception {
    int emulated = compiled(99, 800, this::build);
    // the ops above are the backend's: nearly every graph reaches the chip (measured 800 of 800)
    assertTrue(emulated >= 780, emulated + " of 800 graphs compiled");
  }

  /** Checks {@code cases} graphs of {@code generator} from {@code seed}; returns how many compiled. */
  private int compiled(long seed, int cases, java.util.function.BiConsumer<Graph, Random> generator)
      throws Exception {
    Random r = new Random(seed);
    int emulated = 0;
    for (int i = 0; i < cases; i++) {
      Graph g = new Graph(r);
      generator.accept(g, r);
      emulated += check(i, g) ? 1 : 0;
    }
    return emulated;
  }

  /** Whether the graph compiled and ran (and so was compared). */
  private boolean check(int i, Graph graph) throws Exception {
    ModelProto m = ModelProto.newBuilder().setIrVersion(8)
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17)).setGraph(graph.g).build();
    Path file = dir.resolve("case.onnx");
    Files.write(file, m.toByteArray());
    String form = "case " + i + ": " + graph.g.getNode(graph.g.getNodeCount() - 1).toString().replace('\n', ' ')
        + " inputs " + graph.values.stream().map(t -> Arrays.toString(t.shape())).toList();
    Module module;
    try {
      module = OnnxImporter.importModel(file, ImportOptions.defaults());
    } catch (IrException e) {
      Models.assertOneLine(form, e.getMessage());
      return false;
    } catch (RuntimeException e) {
      throw new AssertionError(form + " (import): " + e, e);
    }
    matchOrt(form, m.toByteArray(), module, graph);
    return Models.chipMatchesInterpreter(form, module, graph.values);
  }
}
