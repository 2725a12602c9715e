package dev.sohuc.hf;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * ONNX Runtime as the reference for the Hugging Face numerics tests (here and, through the
 * test-jar, in the tests module). Graph optimizations are off so that ORT computes the plain-op
 * graph {@link ReferenceModels} builds rather than its own fused kernels.
 */
public final class OrtReference {
  private OrtReference() {}

  /** One input: i64 ids ({@code longs}) or f32 values ({@code floats}), and its shape. */
  public record Input(long[] longs, float[] floats, long[] shape) {
    public static Input longs(long[] data, long... shape) {
      return new Input(data, null, shape);
    }

    public static Input floats(float[] data, long... shape) {
      return new Input(null, data, shape);
    }
  }

  /** Runs an ONNX model; every output, read as f32, by name. */
  public static Map<String, float[]> run(byte[] model, Map<String, Input> inputs) throws OrtException {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession.SessionOptions opts = new OrtSession.SessionOptions()) {
      opts.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
      try (OrtSession session = env.createSession(model, opts)) {
        Map<String, OnnxTensor> feed = new LinkedHashMap<>();
        try {
          for (var e : inputs.entrySet()) {
            Input in = e.getValue();
            feed.put(e.getKey(), in.longs() != null
                ? OnnxTensor.createTensor(env, LongBuffer.wrap(in.longs()), in.shape())
                : OnnxTensor.createTensor(env, FloatBuffer.wrap(in.floats()), in.shape()));
          }
          Map<String, float[]> out = new LinkedHashMap<>();
          try (OrtSession.Result result = session.run(feed)) {
            for (Map.Entry<String, OnnxValue> e : result) {
              FloatBuffer fb = ((OnnxTensor) e.getValue()).getFloatBuffer();
              float[] data = new float[fb.remaining()];
              fb.get(data);
              out.put(e.getKey(), data);
            }
          }
          return out;
        } finally {
          feed.values().forEach(OnnxTensor::close);
        }
      }
    }
  }
}
