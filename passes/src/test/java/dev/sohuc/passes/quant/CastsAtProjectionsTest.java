package dev.sohuc.passes.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.text.IrPrinter;
import dev.sohuc.ir.type.ElementType;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class CastsAtProjectionsTest {

  /**
   * A V projection split into a prompt's rows and a decode's, each reshaped, transposed and cast
   * for a bf16 cache: one cast right after the qmatmul, the rest moves bf16, and the outputs are
   * bit for bit what they were.
   */
  private static final String SPLIT_V = """
      func @main(%x: tensor<1 x 6 x 8 x bf16>, %w: tensor<8 x 4 x bf16>, %xs: tensor<f32>, %ws: tensor<f32>) -> ("prompt": tensor<1 x 2 x 4 x 2 x bf16>, "decode": tensor<2 x 2 x 1 x 2 x bf16>) {
        %v = qmatmul %x, %w, %xs, %ws : tensor<1 x 6 x 4 x f32>
        %p = slice %v {starts = [0], ends = [4], axes = [1], steps = [1]} : tensor<1 x 4 x 4 x f32>
        %pr = reshape %p {shape = [1, 4, 2, 2]} : tensor<1 x 4 x 2 x 2 x f32>
        %pt = transpose %pr {perm = [0, 2, 1, 3]} : tensor<1 x 2 x 4 x 2 x f32>
        %prompt = cast %pt {to = bf16} : tensor<1 x 2 x 4 x 2 x bf16>
        %d = slice %v {starts = [4], ends = [6], axes = [1], steps = [1]} : tensor<1 x 2 x 4 x f32>
        %dr = reshape %d {shape = [2, 1, 2, 2]} : tensor<2 x 1 x 2 x 2 x f32>
        %dt = transpose %dr {perm = [0, 2, 1, 3]} : tensor<2 x 2 x 1 x 2 x f32>
        %decode = cast %dt {to = bf16} : tensor<2 x 2 x 1 x 2 x bf16>
        return %prompt, %decode
      }""";

  private static Module parse(String func) {
    return IrParser.parse("module @m {\n" + func + "\n}\n", "m.ir");
  }

  @Test
  void aProjectionOnlyCastToBf16WritesBf16() {
    Module before = parse(SPLIT_V);
    Module m = parse(SPLIT_V);
    CastsAtProjections.apply(m);
    new Verifier().verify(m);
    List<Node> body = m.main().body();
    List<Node> casts = body.stream().filter(n -> n.op() instanceof ElementwiseOp.Cast).toList();
    String ir = IrPrinter.print(m);
    assertEquals(1, casts.size(), ir);
    int q = body.indexOf(body.stream().filter(n -> n.op() instanceof QuantOp.QMatMul)
        .findFirst().orElseThrow());
    assertEquals(q + 1, body.indexOf(casts.get(0)), ir);
    assertTrue(ir.contains("slice %v.bf16"), ir);
    Random r = new Random(7);
    List<Tensor> in = List.of(random(r, 1, 6, 8), random(r, 8, 4),
        Tensor.scalar(ElementType.F32, 0.5), Tensor.scalar(ElementType.F32, 0.25));
    Map<String, Tensor> want = new Interpreter(before).run(in);
    Map<String, Tensor> got = new Interpreter(m).run(in);
    for (String out : List.of("prompt", "decode")) {
      assertEquals(want.get(out), got.get(out), out);
    }
  }

  private static Tensor random(Random r, long... shape) {
    float[] data = new float[(int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b)];
    for (int i = 0; i < data.length; i++) {
      data[i] = (float) r.nextGaussian();
    }
    return Tensor.ofFloats(ElementType.BF16, shape, data);
  }

  @Test
  void aProjectionWithAnotherReaderStaysF32() {
    String func = SPLIT_V
        .replace("-> (\"prompt\"", "-> (\"v\": tensor<1 x 6 x 4 x f32>, \"prompt\"")
        .replace("return %prompt", "return %v, %prompt");
    Module m = parse(func);
    CastsAtProjections.apply(m);
    String ir = IrPrinter.print(m);
    assertEquals(2, m.main().body().stream().filter(n -> n.op() instanceof ElementwiseOp.Cast)
        .count(), ir);
    assertTrue(ir.contains("slice %v {"), ir);
  }
}
