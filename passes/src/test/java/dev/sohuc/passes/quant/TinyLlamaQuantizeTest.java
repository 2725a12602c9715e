package dev.sohuc.passes.quant;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.hf.HfImporter;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.onnx.TensorFiles;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * examples/tiny-llama (HF frontend), quantized and run on the interpreter, on logits. The
 * reference is the f32 IR on the interpreter rather than ONNX Runtime: there is no ONNX file of
 * this model, and frontend-hf's TinyLlamaExampleTest already pins the f32 interpreter to the ORT
 * logits in examples/tiny-llama/expected.
 */
class TinyLlamaQuantizeTest {
  static final Path EXAMPLE = Path.of("../examples/tiny-llama");
  static final int SEQ = 32;
  static final int VOCAB = 256;

  @TempDir
  static Path tmp;
  static List<Path> calibration = new ArrayList<>();
  static List<Tensor> eval = new ArrayList<>();
  static List<float[]> reference = new ArrayList<>();

  static Module importFused() {
    Module m = HfImporter.importModel(EXAMPLE, HfOptions.prefill());
    new PassManager(PassPipelines.defaultPipeline()).run(m);
    return m;
  }

  static Tensor ids(Random rnd) {
    long[] v = new long[SEQ];
    for (int i = 0; i < SEQ; i++) {
      v[i] = rnd.nextInt(VOCAB);
    }
    return Tensor.ofLongs(ElementType.I64, new long[] {1, SEQ}, v);
  }

  @BeforeAll
  static void setUp() throws Exception {
    Random rnd = new Random(99);
    for (int s = 0; s < 8; s++) {
      Path dir = Files.createDirectories(tmp.resolve("calib_" + s));
      TensorFiles.write(dir.resolve("input_0.pb"), ids(rnd), "input_ids");
      calibration.add(dir);
    }
    Module f32 = importFused();
    Interpreter interp = new Interpreter(f32);
    for (int s = 0; s < 8; s++) {
      eval.add(ids(rnd));
      reference.add(interp.run(List.of(eval.get(s))).get("logits").floats());
    }
  }

  static Accuracy run(QuantMode mode) {
    Module m = importFused();
    QuantReport r = Quantizer.quantize(m, QuantOptions.of(mode).withCalibration(calibration, TensorFiles::read));
    System.out.print(r.render());
    Interpreter interp = new Interpreter(m);
    Accuracy.Builder acc = new Accuracy.Builder();
    for (int s = 0; s < eval.size(); s++) {
      float[] got = interp.run(List.of(eval.get(s))).get("logits").floats();
      for (int t = 0; t < SEQ; t++) {
        acc.add(got, t * VOCAB, reference.get(s), t * VOCAB, VOCAB, "eval set " + s + " position " + t);
      }
    }
    Accuracy a = acc.build("tiny-llama", mode.flag());
    System.out.println(a.row());
    return a;
  }

  @Test
  void bf16() {
    Accuracy a = run(QuantMode.BF16);
    assertTrue(a.meanCosine() >= 0.9999, a::row);
  }

  /**
   * Issue 9's 0.999. All-f8e4m3 reaches 0.988 here: each of these 64-wide random-Gaussian layers
   * alone costs the logits 2e-4 to 1.8e-3 of cosine, so the guard's output check (calibration
   * logits cosine 0.9888 < 0.9995) keeps 13 of the 15 layers in bf16; 0.99964.
   */
  @Test
  void fp8() {
    Accuracy a = run(QuantMode.FP8);
    assertTrue(a.meanCosine() >= 0.999, a::row);
  }

  @Test
  void int8() {
    Accuracy a = run(QuantMode.INT8);
    assertTrue(a.meanCosine() >= 0.99, a::row);
  }
}
