package dev.sohuc.passes.quant;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.onnx.ImportOptions;
import dev.sohuc.onnx.OnnxImporter;
import dev.sohuc.onnx.TensorFiles;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * all-MiniLM-L6-v2 with 8 calibration sets and 8 different evaluation sets (seq 128: [CLS],
 * seeded random token ids, [SEP], then padding with attention_mask 0), and ONNX Runtime's f32
 * last_hidden_state for the evaluation sets.
 */
public final class MiniLmQuantFixture implements QuantFixture {
  public static final int SEQ = 128;
  public static final int HIDDEN = 384;
  static final int VOCAB = 30522;

  public final Path model;
  public final List<Path> calibrationDirs = new ArrayList<>();
  final List<List<Tensor>> evalInputs = new ArrayList<>();
  final List<long[]> evalMasks = new ArrayList<>();
  final List<float[]> reference = new ArrayList<>();

  public MiniLmQuantFixture(Path workDir) {
    try {
      model = workDir.resolve("all-minilm-l6-v2.onnx");
      try (InputStream in = MiniLmQuantFixture.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
        if (in == null) {
          throw new IOException("all-minilm-l6-v2.onnx is not on the test classpath");
        }
        Files.copy(in, model, StandardCopyOption.REPLACE_EXISTING);
      }
      Random rnd = new Random(2024);
      for (int s = 0; s < 8; s++) {
        Path dir = workDir.resolve("calib_" + s);
        Files.createDirectories(dir);
        List<Tensor> set = randomSet(rnd);
        for (int i = 0; i < set.size(); i++) {
          TensorFiles.write(dir.resolve("input_" + i + ".pb"), set.get(i), null);
        }
        calibrationDirs.add(dir);
      }
      Random evalRnd = new Random(7777);
      for (int s = 0; s < 8; s++) {
        List<Tensor> set = randomSet(evalRnd);
        evalInputs.add(set);
        evalMasks.add(set.get(1).longs());
      }
      runOrt();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (OrtException e) {
      throw new IllegalStateException(e);
    }
  }

  /** input_ids, attention_mask, token_type_ids, each [1, 128] i64. */
  static List<Tensor> randomSet(Random rnd) {
    int len = 16 + rnd.nextInt(SEQ - 16 + 1);
    long[] ids = new long[SEQ];
    long[] mask = new long[SEQ];
    for (int i = 0; i < len; i++) {
      ids[i] = i == 0 ? 101 : i == len - 1 ? 102 : 1000 + rnd.nextInt(VOCAB - 1000);
      mask[i] = 1;
    }
    long[] shape = {1, SEQ};
    return List.of(Tensor.ofLongs(ElementType.I64, shape, ids), Tensor.ofLongs(ElementType.I64, shape, mask),
        Tensor.ofLongs(ElementType.I64, shape, new long[SEQ]));
  }

  private void runOrt() throws OrtException {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    String[] names = {"input_ids", "attention_mask", "token_type_ids"};
    try (OrtSession session = env.createSession(model.toString(), new OrtSession.SessionOptions())) {
      for (List<Tensor> set : evalInputs) {
        Map<String, OnnxTensor> feed = new HashMap<>();
        try {
          for (int i = 0; i < 3; i++) {
            feed.put(names[i], OnnxTensor.createTensor(env, LongBuffer.wrap(set.get(i).longs()), new long[] {1, SEQ}));
          }
          try (OrtSession.Result r = session.run(feed)) {
            OnnxTensor out = (OnnxTensor) r.get(0);
            float[] v = new float[SEQ * HIDDEN];
            out.getFloatBuffer().get(v);
            reference.add(v);
          }
        } finally {
          feed.values().forEach(OnnxTensor::close);
        }
      }
    }
  }

  @Override
  public Module importFused() {
    Module m = OnnxImporter.importModel(model, ImportOptions.defaults());
    new PassManager(PassPipelines.defaultPipeline()).run(m);
    return m;
  }

  @Override
  public QuantOptions options(QuantMode mode) {
    return QuantOptions.of(mode).withCalibration(calibrationDirs, TensorFiles::read);
  }

  /** The real (unpadded) tokens' embeddings against ONNX Runtime f32. */
  @Override
  public Accuracy evaluate(Module m, String mode) {
    Interpreter interp = new Interpreter(m);
    Accuracy.Builder acc = new Accuracy.Builder();
    String out = m.main().outputs().get(0).name();
    for (int s = 0; s < evalInputs.size(); s++) {
      float[] got = interp.run(evalInputs.get(s)).get(out).floats();
      float[] want = reference.get(s);
      long[] mask = evalMasks.get(s);
      for (int t = 0; t < SEQ; t++) {
        if (mask[t] != 0) {
          acc.add(got, t * HIDDEN, want, t * HIDDEN, HIDDEN, "eval set " + s + " token " + t);
        }
      }
    }
    return acc.build("MiniLM-L6", mode);
  }

  static List<Value> arguments(Module m) {
    return m.main().arguments();
  }
}
