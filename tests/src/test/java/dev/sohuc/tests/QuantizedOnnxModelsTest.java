package dev.sohuc.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnx.proto.OnnxMl;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.google.protobuf.ByteString;
import dev.sohuc.backend.BackendOptions;
import dev.sohuc.backend.CompiledProgram;
import dev.sohuc.backend.SohuBackend;
import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.isa.DType;
import dev.sohuc.onnx.OnnxImporter;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Already-quantized ONNX models built here with the OnnxMl protos, imported, folded onto
 * {@code qmatmul} by {@code fold-qdq} (default pipeline), compiled, emulated and compared with
 * ONNX Runtime on the same quantized model. "Within one quantization step": each output element
 * may differ by at most one activation quantization step (sum of both sides' half steps for the
 * dynamic form, whose activation is requantized symmetric per token on the chip) times the
 * column's sum of |dequantized weight|, plus 1e-5 relative for f32 rounding.
 */
class QuantizedOnnxModelsTest {
  static final long SEED = 4242L;
  static final int M = 32;
  static final int K = 64;
  static final int N = 96;
  static final int N2 = 40;

  @TempDir Path tmp;

  /** A minimal ONNX graph builder (opset 17). */
  static final class Graph {
    final OnnxMl.GraphProto.Builder g = OnnxMl.GraphProto.newBuilder().setName("q");
    int counter;

    String input(String name, long... shape) {
      g.addInput(info(name, OnnxMl.TensorProto.DataType.FLOAT, shape));
      return name;
    }

    void output(String name) {
      g.addOutput(OnnxMl.ValueInfoProto.newBuilder().setName(name));
    }

    static OnnxMl.ValueInfoProto info(String name, OnnxMl.TensorProto.DataType t, long... shape) {
      OnnxMl.TensorShapeProto.Builder s = OnnxMl.TensorShapeProto.newBuilder();
      for (long d : shape) {
        s.addDim(OnnxMl.TensorShapeProto.Dimension.newBuilder().setDimValue(d));
      }
      return OnnxMl.ValueInfoProto.newBuilder().setName(name).setType(OnnxMl.TypeProto.newBuilder()
          .setTensorType(OnnxMl.TypeProto.Tensor.newBuilder().setElemType(t.getNumber()).setShape(s))).build();
    }

    String init(OnnxMl.TensorProto.DataType t, byte[] raw, long... shape) {
      String name = "c" + counter++;
      OnnxMl.TensorProto.Builder b = OnnxMl.TensorProto.newBuilder().setName(name).setDataType(t.getNumber())
          .setRawData(ByteString.copyFrom(raw));
      for (long d : shape) {
        b.addDims(d);
      }
      g.addInitializer(b);
      return name;
    }

    String floats(float[] v, long... shape) {
      ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
      b.asFloatBuffer().put(v);
      return init(OnnxMl.TensorProto.DataType.FLOAT, b.array(), shape);
    }

    String int8(byte[] v, long... shape) {
      return init(OnnxMl.TensorProto.DataType.INT8, v, shape);
    }

    String uint8(byte[] v, long... shape) {
      return init(OnnxMl.TensorProto.DataType.UINT8, v, shape);
    }

    List<String> node(String op, List<String> in, int outs, OnnxMl.AttributeProto... attrs) {
      OnnxMl.NodeProto.Builder n = OnnxMl.NodeProto.newBuilder().setOpType(op).setName(op + counter).addAllInput(in);
      List<String> names = new java.util.ArrayList<>();
      for (int i = 0; i < outs; i++) {
        String o = op.toLowerCase() + "_" + counter++;
        n.addOutput(o);
        names.add(o);
      }
      for (OnnxMl.AttributeProto a : attrs) {
        n.addAttribute(a);
      }
      g.addNode(n);
      return names;
    }

    String node(String op, List<String> in, OnnxMl.AttributeProto... attrs) {
      return node(op, in, 1, attrs).get(0);
    }

    /** Renames the last node's output to {@code name} and declares it a graph output. */
    void outputLast(String name) {
      int last = g.getNodeCount() - 1;
      g.setNode(last, g.getNode(last).toBuilder().setOutput(0, name));
      output(name);
    }

    byte[] bytes() {
      return OnnxMl.ModelProto.newBuilder().setIrVersion(8).setProducerName("sohuc-test")
          .addOpsetImport(OnnxMl.OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
          .addOpsetImport(OnnxMl.OperatorSetIdProto.newBuilder().setDomain("com.microsoft")
              .setVersion(1))
          .setGraph(g).build().toByteArray();
    }
  }

  static OnnxMl.AttributeProto intAttr(String name, long v) {
    return OnnxMl.AttributeProto.newBuilder().setName(name).setType(OnnxMl.AttributeProto.AttributeType.INT)
        .setI(v).build();
  }

  /** Seeded i8 weights in [-127, 127] and per-column scales; dequantized values returned in {@code deq}. */
  static byte[] weights(Random r, int k, int n, float[] scales, float[] deq) {
    byte[] w = new byte[k * n];
    for (int i = 0; i < w.length; i++) {
      w[i] = (byte) (r.nextInt(255) - 127);
      deq[i] = w[i] * scales[i % n];
    }
    return w;
  }

  static float[] scales(Random r, int n, float base) {
    float[] s = new float[n];
    for (int j = 0; j < n; j++) {
      s[j] = base * (0.5f + r.nextFloat());
    }
    return s;
  }

  static float[] input(Random r) {
    float[] x = new float[M * K];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) (r.nextGaussian() * 1.5);
    }
    return x;
  }

  record Outcome(float[] chip, float[] ort, Module folded) {}

  Outcome run(byte[] model, float[] x) throws Exception {
    Path p = tmp.resolve("q" + System.nanoTime() + ".onnx");
    Files.write(p, model);
    Module m = OnnxImporter.importModel(p);
    new PassManager(PassPipelines.defaultPipeline()).verifyEach(true).run(m);
    CompiledProgram c = SohuBackend.compile(m, BackendOptions.defaults());
    ByteBuffer b = ByteBuffer.allocate(4 * x.length).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(x);
    Emulator emu = new Emulator(c.program(), MachineDescription.defaultTarget(), Options.defaults());
    float[] chip = emu.runFunctional(Map.of("x", new HostTensor(DType.F32, new long[] {M, K}, b.array())),
        Map.of()).outputs().get("y").toF32();
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    float[] ort;
    try (OrtSession s = env.createSession(model, new OrtSession.SessionOptions());
         OnnxTensor in = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), new long[] {M, K});
         OrtSession.Result r = s.run(Map.of("x", in))) {
      FloatBuffer fb = ((OnnxTensor) r.get(0)).getFloatBuffer();
      ort = new float[fb.remaining()];
      fb.get(ort);
    }
    return new Outcome(chip, ort, m);
  }

  static long count(Module m, Class<?> op) {
    return m.main().body().stream().map(Node::op).filter(op::isInstance).count();
  }

  /** Asserts |chip - ort| <= step[i] * sum_k |w[k][j]| + 1e-5 * max(1, |ort|); prints the worst ratio. */
  static void withinOneStep(String label, Outcome o, float[] stepPerRow, float[] w, int n) {
    double worst = 0;
    double maxErr = 0;
    for (int i = 0; i < o.ort().length; i++) {
      int row = i / n;
      int j = i % n;
      double colAbs = 0;
      for (int k = 0; k < w.length / n; k++) {
        colAbs += Math.abs(w[k * n + j]);
      }
      double bound = stepPerRow[row] * colAbs + 1e-5 * Math.max(1, Math.abs(o.ort()[i]));
      double err = Math.abs(o.chip()[i] - o.ort()[i]);
      maxErr = Math.max(maxErr, err);
      worst = Math.max(worst, err / bound);
      assertTrue(err <= bound, label + ": y[" + i + "] = " + o.chip()[i] + ", ORT " + o.ort()[i] + ", bound " + bound);
    }
    System.out.printf("%s: max |chip - ORT| %.3g, worst error / one-step bound %.3f%n", label, maxErr, worst);
  }

  @Test
  void qdqModelRunsOnTheInt8Mxu() throws Exception {
    Random r = new Random(SEED);
    Graph g = new Graph();
    g.input("x", M, K);
    float sx1 = 0.03f;
    float sx2 = 0.05f;
    float[] ws1 = scales(r, N, 0.01f);
    float[] w1 = new float[K * N];
    byte[] q1 = weights(r, K, N, ws1, w1);
    float[] ws2 = scales(r, N2, 0.004f);
    float[] w2 = new float[N * N2];
    byte[] q2 = weights(r, N, N2, ws2, w2);
    String zx = g.int8(new byte[1]);
    String s1 = g.floats(new float[] {sx1});
    String a = g.node("DequantizeLinear", List.of(g.node("QuantizeLinear", List.of("x", s1, zx)), s1, zx));
    String b = g.node("DequantizeLinear", List.of(g.int8(q1, K, N), g.floats(ws1, N), g.int8(new byte[N], N)),
        intAttr("axis", 1));
    String h = g.node("Relu", List.of(g.node("MatMul", List.of(a, b))));
    String s2 = g.floats(new float[] {sx2});
    String a2 = g.node("DequantizeLinear", List.of(g.node("QuantizeLinear", List.of(h, s2, zx)), s2, zx));
    String b2 = g.node("DequantizeLinear", List.of(g.int8(q2, N, N2), g.floats(ws2, N2), g.int8(new byte[N2], N2)),
        intAttr("axis", 1));
    g.node("MatMul", List.of(a2, b2));
    g.outputLast("y");
    Outcome o = run(g.bytes(), input(new Random(SEED + 1)));
    assertEquals(2, count(o.folded(), QuantOp.QMatMul.class));
    assertEquals(0, count(o.folded(), LinalgOp.MatMul.class));
    assertEquals(0, count(o.folded(), QuantOp.DequantizeLinear.class));
    float[] step = new float[M];
    java.util.Arrays.fill(step, sx2);
    withinOneStep("QDQ int8 model", o, step, w2, N2);
  }

  /**
   * onnxruntime's static QDQ: activations u8 per tensor with a zero point, i8 weights. With zero
   * point 128 (symmetric activations) the pair is the i8 one and folds exactly; with another (100,
   * and 0 after a ReLU) the chip clips x to the range the u8 holds and requantizes it i8 per
   * token, within both sides' half steps of ORT. About one value in fourteen lies outside the
   * centred range and is clipped on both sides.
   */
  @Test
  void qdqModelWithU8ActivationsRunsOnTheInt8Mxu() throws Exception {
    for (int zero : new int[] {128, 100, 0}) {
      boolean relu = zero == 0;
      Random r = new Random(SEED + 4);
      Graph g = new Graph();
      g.input("x", M, K);
      float sx = 3.0f / 127;
      float[] ws = scales(r, N, 0.01f);
      float[] w = new float[K * N];
      byte[] q = weights(r, K, N, ws, w);
      String zx = g.uint8(new byte[] {(byte) zero});
      String s = g.floats(new float[] {sx});
      String x = relu ? g.node("Relu", List.of("x")) : "x";
      String a = g.node("DequantizeLinear", List.of(g.node("QuantizeLinear", List.of(x, s, zx)), s, zx));
      String b = g.node("DequantizeLinear", List.of(g.int8(q, K, N), g.floats(ws, N), g.int8(new byte[N], N)),
          intAttr("axis", 1));
      g.node("MatMul", List.of(a, b));
      g.outputLast("y");
      float[] in = input(new Random(SEED + 5));
      Outcome o = run(g.bytes(), in);
      assertEquals(1, count(o.folded(), QuantOp.QMatMul.class));
      assertEquals(zero == 128 ? 0 : 1, count(o.folded(), QuantOp.DynamicQuantize.class));
      float lo = sx * (0 - zero);
      float hi = sx * (255 - zero);
      float[] step = new float[M];
      for (int i = 0; i < M && zero != 128; i++) {
        float amax = 0;
        for (int k = 0; k < K; k++) {
          float v = relu ? Math.max(0, in[i * K + k]) : in[i * K + k];
          amax = Math.max(amax, Math.abs(Math.min(Math.max(v, lo), hi)));
        }
        step[i] = sx / 2 + amax / 127f / 2;
      }
      withinOneStep("QDQ u8 activations, zero point " + zero, o, step, w, N);
    }
  }

  /**
   * Symmetric activations throughout (zero points 128, as quantize_static puts pairs around more
   * than MatMul): the pair before the MatMul folds into it, the pair after it stands alone
   * before an Add and lowers as an i8 pair. Each output is the MatMul's (exact up to f32 summing
   * order) quantized to a step of the second pair: within that step of ORT, which the summing
   * order may tip at a rounding boundary.
   */
  @Test
  void symmetricU8PairsAroundAnAddLowerAsI8Pairs() throws Exception {
    Random r = new Random(SEED + 6);
    Graph g = new Graph();
    g.input("x", M, K);
    float sx = 3.0f / 127;
    float sy = 0.05f;
    float[] ws = scales(r, K, 0.01f);
    float[] w = new float[K * K];
    byte[] q = weights(r, K, K, ws, w);
    String zp = g.uint8(new byte[] {(byte) 128});
    String s1 = g.floats(new float[] {sx});
    String s2 = g.floats(new float[] {sy});
    String a = g.node("DequantizeLinear", List.of(g.node("QuantizeLinear", List.of("x", s1, zp)), s1, zp));
    String b = g.node("DequantizeLinear", List.of(g.int8(q, K, K), g.floats(ws, K), g.int8(new byte[K], K)),
        intAttr("axis", 1));
    String m = g.node("MatMul", List.of(a, b));
    String y = g.node("DequantizeLinear", List.of(g.node("QuantizeLinear", List.of(m, s2, zp)), s2, zp));
    g.node("Add", List.of(y, "x"));
    g.outputLast("y");
    Outcome o = run(g.bytes(), input(new Random(SEED + 7)));
    assertEquals(1, count(o.folded(), QuantOp.QMatMul.class));
    assertEquals(0, count(o.folded(), QuantOp.DynamicQuantize.class));
    // the qmatmul's x, and the pair before the Add, in i8
    assertEquals(2, count(o.folded(), QuantOp.QuantizeLinear.class));
    assertEquals(1, count(o.folded(), QuantOp.DequantizeLinear.class));
    int tipped = 0;
    for (int i = 0; i < o.ort().length; i++) {
      double err = Math.abs(o.chip()[i] - o.ort()[i]);
      assertTrue(err <= sy * 1.0001 + 1e-5 * Math.max(1, Math.abs(o.ort()[i])),
          "y[" + i + "] = " + o.chip()[i] + ", ORT " + o.ort()[i]);
      tipped += err > 1e-5 * Math.max(1, Math.abs(o.ort()[i])) ? 1 : 0;
    }
    System.out.printf("symmetric u8 pairs: %d of %d outputs a step apart from ORT%n", tipped,
        o.ort().length);
    assertTrue(tipped <= o.ort().length / 100, tipped + " outputs a step apart");
  }

  /** {@code DequantizeLinear(QuantizeLinear(v, s, zp), s, zp)} with u8 scalars. */
  static String u8Pair(Graph g, String v, float s, int zp) {
    String sc = g.floats(new float[] {s});
    String z = g.uint8(new byte[] {(byte) zp});
    return g.node("DequantizeLinear", List.of(g.node("QuantizeLinear", List.of(v, sc, z)), sc, z));
  }

  /**
   * onnxruntime's quantize_static default puts asymmetric u8 pairs, of any zero point, on every
   * activation it quantizes; where one stands alone (before an Add) it lowers as its f32
   * arithmetic (expand-qdq), ONNX Runtime's numbers to the bit.
   */
  @Test
  void asymmetricU8PairsStandingAloneGiveOnnxRuntimesNumbers() throws Exception {
    Graph g = new Graph();
    g.input("x", M, K);
    String a = u8Pair(g, "x", 0.021f, 100);
    u8Pair(g, g.node("Add", List.of(a, "x")), 0.047f, 37);
    g.outputLast("y");
    Outcome o = run(g.bytes(), input(new Random(SEED + 8)));
    assertEquals(0, count(o.folded(), QuantOp.QuantizeLinear.class));
    assertEquals(0, count(o.folded(), QuantOp.DequantizeLinear.class));
    int clipped = 0;
    for (int i = 0; i < o.ort().length; i++) {
      assertEquals(o.ort()[i], o.chip()[i], 0, "y[" + i + "]");
      clipped += o.ort()[i] == 0.047f * (0 - 37) || o.ort()[i] == 0.047f * (255 - 37) ? 1 : 0;
    }
    // the inputs reach past both ends of the second pair's range: its clipping is exercised
    assertTrue(clipped > 0, "no output clipped");
  }

  /**
   * A u8 pair of zero point 0 after a Softmax (quantize_static's probabilities): the Softmax's
   * f32 rounding may differ from ONNX Runtime's in the last bits, which can tip an output by one
   * step of the pair at a rounding boundary, and rarely does.
   */
  @Test
  void u8PairAfterASoftmaxIsWithinAStepOfOnnxRuntime() throws Exception {
    Graph g = new Graph();
    g.input("x", M, K);
    String a = u8Pair(g, "x", 0.021f, 100);
    float step = 1 / 256f;
    u8Pair(g, g.node("Softmax", List.of(a), intAttr("axis", -1)), step, 0);
    g.outputLast("y");
    Outcome o = run(g.bytes(), input(new Random(SEED + 9)));
    assertEquals(0, count(o.folded(), QuantOp.QuantizeLinear.class));
    int tipped = 0;
    for (int i = 0; i < o.ort().length; i++) {
      double err = Math.abs(o.chip()[i] - o.ort()[i]);
      assertTrue(err <= step * 1.0001, "y[" + i + "] = " + o.chip()[i] + ", ORT " + o.ort()[i]);
      tipped += err > 0 ? 1 : 0;
    }
    System.out.printf("u8 pair after a softmax: %d of %d outputs a step apart from ORT%n", tipped,
        o.ort().length);
    assertTrue(tipped <= o.ort().length / 100, tipped + " outputs a step apart");
  }

  /**
   * ONNX Runtime's fused dynamic quantization, com.microsoft DynamicQuantizeMatMul (i8 weights,
   * per-column scales, a bias), folds onto the i8 MXU as the unfused DynamicQuantizeLinear +
   * MatMulInteger does: one qmatmul, within one step of ONNX Runtime's u8 per-tensor numbers.
   */
  @Test
  void dynamicQuantizeMatMulRunsOnTheInt8Mxu() throws Exception {
    Random r = new Random(SEED + 11);
    Graph g = new Graph();
    g.input("x", M, K);
    float[] ws = scales(r, N, 0.01f);
    float[] w = new float[K * N];
    byte[] q = weights(r, K, N, ws, w);
    float[] bias = new float[N];
    java.util.Arrays.fill(bias, 0.25f);
    g.node("DynamicQuantizeMatMul", List.of("x", g.int8(q, K, N), g.floats(ws, N), "",
        g.floats(bias, N)));
    g.g.setNode(0, g.g.getNode(0).toBuilder().setDomain("com.microsoft"));
    g.outputLast("y");
    float[] x = input(new Random(SEED + 12));
    Outcome o = run(g.bytes(), x);
    assertEquals(1, count(o.folded(), QuantOp.QMatMul.class));
    assertEquals(0, count(o.folded(), QuantOp.MatMulInteger.class));
    withinOneStep("DynamicQuantizeMatMul model", o, dynamicSteps(x), w, N);
  }

  /**
   * Each row's step of the two dynamic quantizations, halved and added: ONNX Runtime's u8 per
   * tensor, (max(x, 0) - min(x, 0)) / 255, and the chip's i8 per row, max|x_i| / 127.
   */
  static float[] dynamicSteps(float[] x) {
    float lo = 0;
    float hi = 0;
    for (float v : x) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    float[] step = new float[M];
    for (int i = 0; i < M; i++) {
      float amax = 0;
      for (int k = 0; k < K; k++) {
        amax = Math.max(amax, Math.abs(x[i * K + k]));
      }
      step[i] = (hi - lo) / 255f / 2 + amax / 127f / 2;
    }
    return step;
  }

  @Test
  void dynamicQuantizeLinearAndMatMulIntegerRunOnTheInt8Mxu() throws Exception {
    Random r = new Random(SEED + 2);
    Graph g = new Graph();
    g.input("x", M, K);
    float[] ws = scales(r, N, 0.01f);
    float[] w = new float[K * N];
    byte[] q = weights(r, K, N, ws, w);
    List<String> dq = g.node("DynamicQuantizeLinear", List.of("x"), 3);
    String mi = g.node("MatMulInteger", List.of(dq.get(0), g.int8(q, K, N), dq.get(2), g.int8(new byte[1])));
    String c = g.node("Cast", List.of(mi), intAttr("to", OnnxMl.TensorProto.DataType.FLOAT.getNumber()));
    String s = g.node("Mul", List.of(dq.get(1), g.floats(ws, N)));
    g.node("Mul", List.of(c, s));
    g.outputLast("y");
    float[] x = input(new Random(SEED + 3));
    Outcome o = run(g.bytes(), x);
    assertEquals(1, count(o.folded(), QuantOp.QMatMul.class));
    assertEquals(0, count(o.folded(), QuantOp.MatMulInteger.class));
    withinOneStep("DynamicQuantizeLinear + MatMulInteger model", o, dynamicSteps(x), w, N);
    // both against the unquantized product x @ dequantized(w): the per-token i8 requantization
    // is the finer of the two
    double eChip = 0;
    double eOrt = 0;
    double ref = 0;
    for (int i = 0; i < M; i++) {
      for (int j = 0; j < N; j++) {
        double y = 0;
        for (int k = 0; k < K; k++) {
          y += (double) x[i * K + k] * w[k * N + j];
        }
        eChip += Math.pow(o.chip()[i * N + j] - y, 2);
        eOrt += Math.pow(o.ort()[i * N + j] - y, 2);
        ref += y * y;
      }
    }
    System.out.printf("relative L2 error vs the unquantized product: chip (i8 per token) %.5f, ORT (u8 per tensor) %.5f%n",
        Math.sqrt(eChip / ref), Math.sqrt(eOrt / ref));
    assertTrue(eChip <= eOrt, "per-token i8 should not be coarser than per-tensor u8");
  }
}
