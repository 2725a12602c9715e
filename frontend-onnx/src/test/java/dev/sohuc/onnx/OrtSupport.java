package dev.sohuc.onnx;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.OnnxJavaType;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** ONNX Runtime as the oracle, and comparisons of its outputs with the interpreter's. */
final class OrtSupport {
  private OrtSupport() {}

  static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  private static Path miniLm;

  /** all-MiniLM-L6-v2 from the langchain4j jar, copied once to a temp file. */
  static synchronized Path miniLm() throws IOException {
    if (miniLm == null) {
      try (InputStream in = OrtSupport.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
        if (in == null) {
          throw new IOException("all-minilm-l6-v2.onnx is not on the test classpath");
        }
        Path dir = Files.createTempDirectory("minilm");
        miniLm = dir.resolve("all-minilm-l6-v2.onnx");
        Files.copy(in, miniLm, StandardCopyOption.REPLACE_EXISTING);
        miniLm.toFile().deleteOnExit();
        dir.toFile().deleteOnExit();
      }
    }
    return miniLm;
  }

  /** Runs a model on ONNX Runtime with inputs in graph order; outputs by name. */
  static Map<String, Tensor> run(Path model, List<String> inputNames, List<Tensor> inputs) throws OrtException {
    try (OrtSession.SessionOptions opts = new OrtSession.SessionOptions()) {
      opts.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
      opts.setIntraOpNumThreads(1);
      try (OrtSession session = ENV.createSession(model.toString(), opts)) {
        return run(session, inputNames, inputs);
      }
    }
  }

  static Map<String, Tensor> run(OrtSession session, List<String> inputNames, List<Tensor> inputs)
      throws OrtException {
    Map<String, OnnxTensor> feed = new LinkedHashMap<>();
    try {
      for (int i = 0; i < inputs.size(); i++) {
        feed.put(inputNames.get(i), toOrt(inputs.get(i)));
      }
      Map<String, Tensor> out = new LinkedHashMap<>();
      try (OrtSession.Result r = session.run(feed)) {
        for (var e : r) {
          out.put(e.getKey(), fromOrt((OnnxTensor) e.getValue()));
        }
      }
      return out;
    } finally {
      feed.values().forEach(OnnxTensor::close);
    }
  }

  static OnnxTensor toOrt(Tensor t) throws OrtException {
    ByteBuffer b = ByteBuffer.allocateDirect(t.size() * t.elementType().sizeBytes()).order(ByteOrder.nativeOrder());
    b.put(t.toBytes()).flip();
    return OnnxTensor.createTensor(ENV, b, t.shape(), switch (t.elementType()) {
      case F32 -> OnnxJavaType.FLOAT;
      case F16 -> OnnxJavaType.FLOAT16;
      case BF16 -> OnnxJavaType.BFLOAT16;
      case I64 -> OnnxJavaType.INT64;
      case I32 -> OnnxJavaType.INT32;
      case I8 -> OnnxJavaType.INT8;
      case U8 -> OnnxJavaType.UINT8;
      case BOOL -> OnnxJavaType.BOOL;
      default -> throw new IllegalArgumentException("ORT input of type " + t.elementType());
    });
  }

  static Tensor fromOrt(OnnxTensor t) {
    ElementType type = switch (t.getInfo().type) {
      case FLOAT -> ElementType.F32;
      case FLOAT16 -> ElementType.F16;
      case BFLOAT16 -> ElementType.BF16;
      case INT64 -> ElementType.I64;
      case INT32 -> ElementType.I32;
      case INT8 -> ElementType.I8;
      case UINT8 -> ElementType.U8;
      case BOOL -> ElementType.BOOL;
      default -> throw new IllegalArgumentException("ORT output of type " + t.getInfo().type);
    };
    ByteBuffer b = t.getByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    return Tensor.fromBytes(type, t.getInfo().getShape(), b);
  }

  /**
   * Asserts {@code |actual - expected| <= tol * max(1, |expected|)} element by element (so
   * {@code tol} is relative for large values and absolute below 1), with equal shapes and
   * types; integers and bools must match exactly. NaNs must match NaNs.
   */
  static void assertClose(String what, Tensor expected, Tensor actual, double tol) {
    if (!java.util.Arrays.equals(expected.shape(), actual.shape()) || expected.elementType() != actual.elementType()) {
      throw new AssertionError(what + ": expected " + expected.type() + ", got " + actual.type());
    }
    for (int i = 0; i < expected.size(); i++) {
      double e = expected.get(i);
      double a = actual.get(i);
      boolean ok = expected.isFloat()
          ? (Double.isNaN(e) ? Double.isNaN(a) : e == a || Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)))
          : e == a;
      if (!ok) {
        throw new AssertionError(what + ": element " + i + " is " + a + ", ONNX Runtime gives " + e
            + " (tolerance " + tol + " relative)");
      }
    }
  }
}
