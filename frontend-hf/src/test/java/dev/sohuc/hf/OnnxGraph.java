package dev.sohuc.hf;

import ai.onnx.proto.OnnxMl;
import ai.onnxruntime.OrtEnvironment;
import com.google.protobuf.ByteString;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * A small builder of static-shape ONNX graphs (opset 17) for the ONNX Runtime oracle: the
 * reference models are written with it from plain ONNX ops, independently of the IR's fused
 * transformer ops, so a test compares two different formulations of one model.
 */
public final class OnnxGraph {
  private final OnnxMl.GraphProto.Builder graph = OnnxMl.GraphProto.newBuilder().setName("reference");
  private int counter;

  private String fresh(String hint) {
    return hint + "_" + counter++;
  }

  String input(String name, OnnxMl.TensorProto.DataType type, long... shape) {
    graph.addInput(valueInfo(name, type, shape));
    return name;
  }

  void output(String name, String value) {
    node("Identity", List.of(value), name);
    graph.addOutput(OnnxMl.ValueInfoProto.newBuilder().setName(name));
  }

  private static OnnxMl.ValueInfoProto valueInfo(String name, OnnxMl.TensorProto.DataType type, long... shape) {
    OnnxMl.TensorShapeProto.Builder s = OnnxMl.TensorShapeProto.newBuilder();
    for (long d : shape) {
      s.addDim(OnnxMl.TensorShapeProto.Dimension.newBuilder().setDimValue(d));
    }
    return OnnxMl.ValueInfoProto.newBuilder().setName(name).setType(OnnxMl.TypeProto.newBuilder()
        .setTensorType(OnnxMl.TypeProto.Tensor.newBuilder().setElemType(type.getNumber()).setShape(s))).build();
  }

  String init(String hint, float[] data, long... shape) {
    ByteBuffer b = ByteBuffer.allocate(data.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(data);
    return initializer(hint, OnnxMl.TensorProto.DataType.FLOAT, b.array(), shape);
  }

  String initLongs(String hint, long[] data, long... shape) {
    ByteBuffer b = ByteBuffer.allocate(data.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    b.asLongBuffer().put(data);
    return initializer(hint, OnnxMl.TensorProto.DataType.INT64, b.array(), shape);
  }

  /** Adds an initializer from little-endian raw bytes; returns its fresh name. */
  private String initializer(String hint, OnnxMl.TensorProto.DataType type, byte[] raw, long... shape) {
    String name = fresh(hint);
    OnnxMl.TensorProto.Builder t = OnnxMl.TensorProto.newBuilder().setName(name)
        .setDataType(type.getNumber()).setRawData(ByteString.copyFrom(raw));
    for (long d : shape) {
      t.addDims(d);
    }
    graph.addInitializer(t);
    return name;
  }

  String scalar(float v) {
    return init("c", new float[] {v});
  }

  /** Appends a node with one output and returns that output's name. */
  String node(String op, List<String> inputs, OnnxMl.AttributeProto... attrs) {
    return node(op, inputs, fresh(op.toLowerCase()), attrs);
  }

  private String node(String op, List<String> inputs, String output, OnnxMl.AttributeProto... attrs) {
    OnnxMl.NodeProto.Builder n = OnnxMl.NodeProto.newBuilder().setOpType(op).setName(output)
        .addAllInput(inputs).addOutput(output);
    for (OnnxMl.AttributeProto a : attrs) {
      n.addAttribute(a);
    }
    graph.addNode(n);
    return output;
  }

  List<String> split(String x, long axis, long... sizes) {
    String s = initLongs("split", sizes, sizes.length);
    OnnxMl.NodeProto.Builder n = OnnxMl.NodeProto.newBuilder().setOpType("Split").setName(fresh("split"))
        .addInput(x).addInput(s).addAttribute(intAttr("axis", axis));
    List<String> outs = new ArrayList<>();
    for (int i = 0; i < sizes.length; i++) {
      String o = fresh("part");
      outs.add(o);
      n.addOutput(o);
    }
    graph.addNode(n);
    return outs;
  }

  /** A node with several outputs. */
  List<String> multi(String op, List<String> inputs, int outputs, OnnxMl.AttributeProto... attrs) {
    OnnxMl.NodeProto.Builder n = OnnxMl.NodeProto.newBuilder().setOpType(op).setName(fresh(op)).addAllInput(inputs);
    for (OnnxMl.AttributeProto a : attrs) {
      n.addAttribute(a);
    }
    List<String> outs = new ArrayList<>();
    for (int i = 0; i < outputs; i++) {
      String o = fresh(op.toLowerCase() + "_out");
      outs.add(o);
      n.addOutput(o);
    }
    graph.addNode(n);
    return outs;
  }

  static OnnxMl.AttributeProto intAttr(String name, long v) {
    return OnnxMl.AttributeProto.newBuilder().setName(name).setType(OnnxMl.AttributeProto.AttributeType.INT)
        .setI(v).build();
  }

  static OnnxMl.AttributeProto floatAttr(String name, float v) {
    return OnnxMl.AttributeProto.newBuilder().setName(name).setType(OnnxMl.AttributeProto.AttributeType.FLOAT)
        .setF(v).build();
  }

  static OnnxMl.AttributeProto intsAttr(String name, long... v) {
    OnnxMl.AttributeProto.Builder a = OnnxMl.AttributeProto.newBuilder().setName(name)
        .setType(OnnxMl.AttributeProto.AttributeType.INTS);
    for (long x : v) {
      a.addInts(x);
    }
    return a.build();
  }

  // ---- arithmetic and layers, in plain ONNX ops

  String add(String a, String b) {
    return node("Add", List.of(a, b));
  }

  String sub(String a, String b) {
    return node("Sub", List.of(a, b));
  }

  String mul(String a, String b) {
    return node("Mul", List.of(a, b));
  }

  String matmul(String a, String b) {
    return node("MatMul", List.of(a, b));
  }

  String transpose(String x, long... perm) {
    return node("Transpose", List.of(x), intsAttr("perm", perm));
  }

  String reshape(String x, long... shape) {
    return node("Reshape", List.of(x, initLongs("shape", shape, shape.length)));
  }

  String slice(String x, long axis, long start, long end) {
    return node("Slice", List.of(x, initLongs("starts", new long[] {start}, 1), initLongs("ends", new long[] {end}, 1),
        initLongs("axes", new long[] {axis}, 1)));
  }

  String concat(long axis, String... xs) {
    return node("Concat", List.of(xs), intAttr("axis", axis));
  }

  String gather(String data, String indices, long axis) {
    return node("Gather", List.of(data, indices), intAttr("axis", axis));
  }

  /** {@code x @ W^T + b} with W stored {@code [out, in]} as PyTorch's nn.Linear keeps it. */
  String linear(String x, float[] w, float[] bias, long in, long out) {
    String y = matmul(x, transpose(init("w", w, out, in), 1, 0));
    return bias == null ? y : add(y, init("b", bias, out));
  }

  /** {@code x @ W + b} with W stored {@code [in, out]} (GPT-2's Conv1D). */
  String conv1d(String x, float[] w, float[] bias, long in, long out) {
    return add(matmul(x, init("w", w, in, out)), init("b", bias, out));
  }

  /** {@code x / sqrt(mean(x^2) + eps) * (w + offset)}, spelt out. */
  String rmsNorm(String x, float[] w, float eps, float offset) {
    String ms = node("ReduceMean", List.of(mul(x, x)), intsAttr("axes", -1), intAttr("keepdims", 1));
    String inv = node("Reciprocal", List.of(node("Sqrt", List.of(add(ms, scalar(eps))))));
    String scale = offset == 0 ? init("gamma", w, w.length) : add(init("gamma", w, w.length), scalar(offset));
    return mul(mul(x, inv), scale);
  }

  String layerNorm(String x, float[] w, float[] b, float eps) {
    return node("LayerNormalization", List.of(x, init("gamma", w, w.length), init("beta", b, b.length)),
        intAttr("axis", -1), floatAttr("epsilon", eps));
  }

  String gelu(String x, boolean tanh) {
    String inner;
    if (tanh) {
      String cube = mul(mul(x, x), x);
      String poly = add(x, mul(cube, scalar(0.044715f)));
      inner = node("Tanh", List.of(mul(poly, scalar((float) Math.sqrt(2 / Math.PI)))));
    } else {
      inner = node("Erf", List.of(mul(x, scalar((float) (1 / Math.sqrt(2))))));
    }
    return mul(mul(x, scalar(0.5f)), add(inner, scalar(1f)));
  }

  String silu(String x) {
    return mul(x, node("Sigmoid", List.of(x)));
  }

  /** {@code [B, S, H*D] -> [B, H, S, D]}. */
  String splitHeads(String x, long b, long s, long h, long d) {
    return transpose(reshape(x, b, s, h, d), 0, 2, 1, 3);
  }

  String mergeHeads(String x, long b, long s, long h, long d) {
    return reshape(transpose(x, 0, 2, 1, 3), b, s, h * d);
  }

  /**
   * Rotate-half rotary embedding on the first {@code cos.length / S} dims of {@code [B, H, S, D]},
   * with the tables given as {@code [S, R]} data.
   */
  String rope(String x, float[] cos, float[] sin, long s, long r, long d) {
    String c = init("cos", cos, s, r);
    String sn = init("sin", sin, s, r);
    String rot = r == d ? x : slice(x, 3, 0, r);
    String x1 = slice(rot, 3, 0, r / 2);
    String x2 = slice(rot, 3, r / 2, r);
    String rotated = concat(-1, node("Neg", List.of(x2)), x1);
    String y = add(mul(rot, c), mul(rotated, sn));
    return r == d ? y : concat(-1, y, slice(x, 3, r, d));
  }

  /**
   * {@code softmax(q k^T * scale + mask) v} with kv heads repeated for grouped-query attention;
   * {@code mask} is an additive {@code [S, T]} (or broadcastable) tensor name, or null.
   */
  String attention(String q, String k, String v, long heads, long kvHeads, float scale, String mask) {
    if (heads != kvHeads) {
      long[] idx = new long[(int) heads];
      for (int h = 0; h < heads; h++) {
        idx[h] = h / (heads / kvHeads);
      }
      String indices = initLongs("kv_heads", idx, heads);
      k = gather(k, indices, 1);
      v = gather(v, indices, 1);
    }
    String scores = mul(matmul(q, transpose(k, 0, 1, 3, 2)), scalar(scale));
    if (mask != null) {
      scores = add(scores, mask);
    }
    return matmul(node("Softmax", List.of(scores), intAttr("axis", -1)), v);
  }

  /** An additive causal mask {@code [S, T]} for queries at positions {@code T-S .. T-1}, with an optional window. */
  String causalMask(long s, long t, long window) {
    float[] m = new float[(int) (s * t)];
    for (int i = 0; i < s; i++) {
      long qpos = t - s + i;
      for (int j = 0; j < t; j++) {
        boolean visible = j <= qpos && (window == 0 || qpos - j < window);
        m[(int) (i * t + j)] = visible ? 0f : Float.NEGATIVE_INFINITY;
      }
    }
    return init("causal_mask", m, s, t);
  }

  public byte[] modelBytes() {
    return OnnxMl.ModelProto.newBuilder().setIrVersion(8).setProducerName("sohuc-test")
        .addOpsetImport(OnnxMl.OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
        .setGraph(graph).build().toByteArray();
  }

  static OrtEnvironment env() {
    return OrtEnvironment.getEnvironment();
  }
}
