package dev.sohuc.ir.interp;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.List;
import java.util.Random;

/**
 * Benchmark, not a test: times the interpreter on a MiniLM-shaped encoder (6 layers, hidden
 * 384, 12 heads, FFN 1536, seq 128) with random weights, built from ONNX-level ops. The
 * interpreter is the reference for every layer-by-layer comparison, so it has to be usable on
 * real models. Run its main from the test classpath, e.g.
 * {@code mvn -q -pl ir test-compile exec:java -Dexec.classpathScope=test
 * -Dexec.mainClass=dev.sohuc.ir.interp.EncoderBenchmark}.
 */
public final class EncoderBenchmark {
  private static final int HIDDEN = 384;
  private static final int HEADS = 12;
  private static final int FFN = 1536;
  private static final long SEED = 7;

  private FunctionBuilder b;
  private final Random random = new Random(SEED);

  private Value add(Op op) {
    return b.add(op, Harness.LOC);
  }

  private Value constant(long... shape) {
    int n = Tensor.checkedSize(shape);
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (random.nextGaussian() * 0.05);
    }
    return add(new SourceOp.Constant(Tensor.ofFloats(ElementType.F32, shape, v)));
  }

  private Value linear(Value x, int in, int out) {
    Value y = add(new LinalgOp.MatMul(x, constant(in, out)));
    return add(new ElementwiseOp.Binary(BinaryKind.ADD, y, constant(out)));
  }

  private Value heads(Value x, Dim seq) {
    Value r = add(new DataOp.Reshape(x, List.of(Dim.of(1), seq, Dim.of(HEADS), Dim.of(HIDDEN / HEADS))));
    return add(new DataOp.Transpose(r, List.of(0L, 2L, 1L, 3L)));
  }

  public static void main(String[] args) {
    new EncoderBenchmark().run();
  }

  private void run() {
    Dim seq = Dim.symbol("seq");
    Value x = Value.argument("x", new TensorType(List.of(Dim.of(1), seq, Dim.of(HIDDEN)), ElementType.F32));
    Function f = new Function("main", List.of(x));
    b = new FunctionBuilder(f);
    Value h = x;
    for (int layer = 0; layer < 6; layer++) {
      Value q = heads(linear(h, HIDDEN, HIDDEN), seq);
      Value k = heads(linear(h, HIDDEN, HIDDEN), seq);
      Value v = heads(linear(h, HIDDEN, HIDDEN), seq);
      Value kt = add(new DataOp.Transpose(k, List.of(0L, 1L, 3L, 2L)));
      Value scores = add(new LinalgOp.MatMul(q, kt));
      Value probs = add(new dev.sohuc.ir.op.ReductionOp.Softmax(scores, -1, false));
      Value ctx = add(new LinalgOp.MatMul(probs, v));
      Value merged = add(new DataOp.Reshape(add(new DataOp.Transpose(ctx, List.of(0L, 2L, 1L, 3L))),
          List.of(Dim.of(1), seq, Dim.of(HIDDEN))));
      Value attn = add(new ElementwiseOp.Binary(BinaryKind.ADD, linear(merged, HIDDEN, HIDDEN), h));
      Value n1 = add(new TransformerOp.LayerNorm(attn, constant(HIDDEN), constant(HIDDEN), -1, 1e-12));
      Value ff = linear(add(new TransformerOp.Gelu(linear(n1, HIDDEN, FFN), false)), FFN, HIDDEN);
      h = add(new TransformerOp.LayerNorm(add(new ElementwiseOp.Binary(BinaryKind.ADD, ff, n1)),
          constant(HIDDEN), constant(HIDDEN), -1, 1e-12));
    }
    f.setOutputs(List.of(new Function.Output("last_hidden_state", h)));

    Interpreter interp = new Interpreter(new Module("encoder"));
    float[] in = new float[128 * HIDDEN];
    for (int i = 0; i < in.length; i++) {
      in[i] = (float) random.nextGaussian();
    }
    Tensor input = Tensor.ofFloats(ElementType.F32, new long[] {1, 128, HIDDEN}, in);
    interp.run(f, List.of(input)); // warm-up: the JIT compiles the kernels
    long start = System.nanoTime();
    Tensor out = interp.run(f, List.of(input)).get("last_hidden_state");
    double seconds = (System.nanoTime() - start) / 1e9;
    System.out.printf("6-layer encoder, seq 128 (seed %d): %.2f s%n", SEED, seconds);
    long nonFinite = 0;
    for (float v : out.floats()) {
      nonFinite += Float.isFinite(v) ? 0 : 1;
    }
    System.out.printf("non-finite outputs: %d%n", nonFinite);
  }
}
