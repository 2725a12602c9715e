package dev.sohuc.passes.quant;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.onnx.TensorFiles;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * A three-layer MLP with seeded Gaussian weights, {@code x [?s, 64] -> layer_norm -> fc1 -> gelu
 * -> fc2 -> fc3 [?s, 32]}, and calibration folders of random inputs: small enough that the guard
 * tests run in a second.
 */
final class SmallModel {
  static final int D = 64;

  private SmallModel() {}

  /**
   * @param outlierChannel an input channel of fc2 with massive activations (fc1's output column
   *     times 1e5) that fc2's weights barely read (its row times 1e-5), as the "massive
   *     activation" dims of real LLMs: SmoothQuant's clamp (s <= 1e4) cannot absorb it, so fc2's
   *     per-tensor i8 activation scale is ruined; -1 for none
   */
  static Module build(long seed, int outlierChannel) {
    Random rnd = new Random(seed);
    Module m = new Module("mlp");
    Value x = Value.argument("x", new TensorType(List.of(Dim.symbol("s"), Dim.of(D)), ElementType.F32));
    Function f = new Function("main", List.of(x));
    m.functions().add(f);
    FunctionBuilder b = new FunctionBuilder(f);
    Location loc = new Location("mlp");
    Value gamma = weight(m, b, "ln.gamma", gaussian(rnd, new long[] {D}, 0.1f, 1f));
    Value beta = weight(m, b, "ln.beta", gaussian(rnd, new long[] {D}, 0.1f, 0f));
    Value h = b.add(new TransformerOp.LayerNorm(x, gamma, beta, -1, 1e-5), loc, "ln");
    Tensor w1 = gaussian(rnd, new long[] {D, D}, 0.125f, 0f);
    if (outlierChannel >= 0) {
      for (int k = 0; k < D; k++) {
        w1.floats()[k * D + outlierChannel] *= 1e5f;
      }
    }
    Tensor w2 = gaussian(rnd, new long[] {D, D}, 0.125f, 0f);
    if (outlierChannel >= 0) {
      for (int n = 0; n < D; n++) {
        w2.floats()[outlierChannel * D + n] *= 1e-5f;
      }
    }
    h = b.add(new LinalgOp.MatMul(h, weight(m, b, "fc1.w", w1)), loc, "fc1");
    h = b.add(new TransformerOp.Gelu(h, false), loc, "gelu");
    h = b.add(new LinalgOp.MatMul(h, weight(m, b, "fc2.w", w2)), loc, "fc2");
    Value y = b.add(new LinalgOp.MatMul(h, weight(m, b, "fc3.w", gaussian(rnd, new long[] {D, 32}, 0.125f, 0f))), loc, "fc3");
    f.setOutputs(List.of(new Function.Output("y", y)));
    return m;
  }

  private static Value weight(Module m, FunctionBuilder b, String name, Tensor t) {
    m.addWeight(new Weight(name, t.type(), new Weight.Data.Inline(t.toBytes())));
    return b.add(new SourceOp.WeightRef(name, t.type()), Location.UNKNOWN, name);
  }

  static Tensor gaussian(Random rnd, long[] shape, float std, float mean) {
    float[] v = new float[Tensor.checkedSize(shape)];
    for (int i = 0; i < v.length; i++) {
      v[i] = mean + std * (float) rnd.nextGaussian();
    }
    return Tensor.ofFloats(ElementType.F32, shape, v);
  }

  /** {@code count} folders, each with input_0.pb: x [rows, 64] with values N(0, 1). */
  static List<Path> calibration(Path root, int count, int rows, long seed) {
    Random rnd = new Random(seed);
    List<Path> dirs = new ArrayList<>();
    try {
      for (int s = 0; s < count; s++) {
        Path dir = Files.createDirectories(root.resolve("set_" + s));
        TensorFiles.write(dir.resolve("input_0.pb"), gaussian(rnd, new long[] {rows, D}, 1f, 0f), "x");
        dirs.add(dir);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return dirs;
  }
}
