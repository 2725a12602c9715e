package dev.sohuc.passes.quant;

import dev.sohuc.hf.HfImporter;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.onnx.TensorFiles;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * examples/tiny-llama (HF frontend, prefill) with 8 calibration sets and 8 different evaluation
 * sets of 32 seeded random token ids, and the f32 interpreter's logits for the evaluation sets.
 * The reference is the f32 IR rather than ONNX Runtime: there is no ONNX file of this model, and
 * frontend-hf's TinyLlamaExampleTest pins the f32 interpreter to the ORT logits in
 * examples/tiny-llama/expected.
 */
public final class TinyLlamaQuantFixture implements QuantFixture {
  static final int SEQ = 32;
  static final int VOCAB = 256;

  private final Path example;
  final List<Path> calibrationDirs = new ArrayList<>();
  final List<Tensor> eval = new ArrayList<>();
  final List<float[]> reference = new ArrayList<>();

  /** {@code example}: the examples/tiny-llama folder; the calibration sets are written under {@code workDir}. */
  public TinyLlamaQuantFixture(Path example, Path workDir) {
    this.example = example;
    Random rnd = new Random(99);
    try {
      for (int s = 0; s < 8; s++) {
        Path dir = Files.createDirectories(workDir.resolve("calib_" + s));
        TensorFiles.write(dir.resolve("input_0.pb"), ids(rnd), "input_ids");
        calibrationDirs.add(dir);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    Interpreter interp = new Interpreter(importFused());
    for (int s = 0; s < 8; s++) {
      eval.add(ids(rnd));
      reference.add(interp.run(List.of(eval.get(s))).get("logits").floats());
    }
  }

  private static Tensor ids(Random rnd) {
    long[] v = new long[SEQ];
    for (int i = 0; i < SEQ; i++) {
      v[i] = rnd.nextInt(VOCAB);
    }
    return Tensor.ofLongs(ElementType.I64, new long[] {1, SEQ}, v);
  }

  @Override
  public Module importFused() {
    Module m = HfImporter.importModel(example, HfOptions.prefill());
    new PassManager(PassPipelines.defaultPipeline()).run(m);
    return m;
  }

  @Override
  public QuantOptions options(QuantMode mode) {
    return QuantOptions.of(mode).withCalibration(calibrationDirs, TensorFiles::read);
  }

  /** Every position's logits against f32. */
  @Override
  public Accuracy evaluate(Module m, String mode) {
    Interpreter interp = new Interpreter(m);
    Accuracy.Builder acc = new Accuracy.Builder();
    for (int s = 0; s < eval.size(); s++) {
      float[] got = interp.run(List.of(eval.get(s))).get("logits").floats();
      for (int t = 0; t < SEQ; t++) {
        acc.add(got, t * VOCAB, reference.get(s), t * VOCAB, VOCAB, "eval set " + s + " position " + t);
      }
    }
    return acc.build("tiny-llama", mode);
  }
}
