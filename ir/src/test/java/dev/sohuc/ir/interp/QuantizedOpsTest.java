package dev.sohuc.ir.interp;

import static dev.sohuc.ir.interp.Harness.assertTensor;
import static dev.sohuc.ir.interp.Harness.f32;
import static dev.sohuc.ir.interp.Harness.ints;
import static dev.sohuc.ir.interp.Harness.run;
import static dev.sohuc.ir.interp.Harness.runAll;
import static dev.sohuc.ir.interp.Harness.shape;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.OpException;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.text.IrPrinter;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.List;

import org.junit.jupiter.api.Test;

/** {@code qmatmul} and {@code dynamic_quantize}: the chip's quantized forms, on numbers worked out by hand. */
class QuantizedOpsTest {

  private static Tensor floats(ElementType t, long[] shape, double... v) {
    float[] f = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      f[i] = (float) v[i];
    }
    return Tensor.ofFloats(t, shape, f);
  }

  @Test
  void int8ProductAccumulatesInI32ThenScalesPerRowAndPerColumn() {
    // acc = [[1+3, 2-3], [-4-6, 5+6]] = [[4, -1], [-10, 11]]
    // y[i][j] = acc * xs[i] * ws[j], xs = [0.5, 2], ws = [0.25, 4]
    Tensor x = ints(ElementType.I8, shape(2, 3), 1, 2, 3, -4, 5, -6);
    Tensor w = ints(ElementType.I8, shape(3, 2), 1, 0, 0, 1, 1, -1);
    Tensor y = run(a -> new QuantOp.QMatMul(a.get(0), a.get(1), a.get(2), a.get(3)),
        x, w, f32(shape(2, 1), 0.5, 2), f32(shape(2), 0.25, 4));
    assertTensor(y, ElementType.F32, shape(2, 2), 0.5, -2, -5, 88);
  }

  @Test
  void int8ExtremesStayExactInI32() {
    // -128 * -128 * 3 = 49152, beyond i16 and exact in i32 and f32
    Tensor x = ints(ElementType.I8, shape(1, 3), -128, -128, -128);
    Tensor w = ints(ElementType.I8, shape(3, 1), -128, -128, -128);
    Tensor y = run(a -> new QuantOp.QMatMul(a.get(0), a.get(1), a.get(2), a.get(3)),
        x, w, Tensor.scalar(ElementType.F32, 1), Tensor.scalar(ElementType.F32, 1));
    assertTensor(y, ElementType.F32, shape(1, 1), 49152);
  }

  @Test
  void fp8ProductWithPerTensorScales() {
    // 1.5 * 3 + (-2) * 0.5 = 3.5; times 2 times 0.5 = 3.5
    Tensor x = floats(ElementType.F8E4M3, shape(1, 2), 1.5, -2);
    Tensor w = floats(ElementType.F8E4M3, shape(2, 1), 3, 0.5);
    Tensor y = run(a -> new QuantOp.QMatMul(a.get(0), a.get(1), a.get(2), a.get(3)),
        x, w, Tensor.scalar(ElementType.F32, 2), Tensor.scalar(ElementType.F32, 0.5));
    assertTensor(y, ElementType.F32, shape(1, 1), 3.5);
  }

  @Test
  void floatAccumulationIsF32WithPAscending() {
    // 2^24 + 1 rounds to 2^24 (tie to even), then - 2^24 gives 0; any other order would give 1
    Tensor x = floats(ElementType.BF16, shape(1, 3), 16777216, 1, -16777216);
    Tensor w = floats(ElementType.BF16, shape(3, 1), 1, 1, 1);
    Tensor y = run(a -> new QuantOp.QMatMul(a.get(0), a.get(1), a.get(2), a.get(3)),
        x, w, Tensor.scalar(ElementType.F32, 1), Tensor.scalar(ElementType.F32, 1));
    assertTensor(y, ElementType.F32, shape(1, 1), 0);
  }

  @Test
  void batchedRowsUsePerTokenScales() {
    // x [2, 1, 2] bf16 @ w [2, 3]: rows [1, 2] and [3, -1]; w = [[1, 0, 2], [0, 1, 1]]
    // acc = [[1, 2, 4], [3, -1, 5]]; xs = [10, 0.5] per token, ws = [1, 2, 0.25]
    Tensor x = floats(ElementType.BF16, shape(2, 1, 2), 1, 2, 3, -1);
    Tensor w = floats(ElementType.BF16, shape(2, 3), 1, 0, 2, 0, 1, 1);
    Tensor y = run(a -> new QuantOp.QMatMul(a.get(0), a.get(1), a.get(2), a.get(3)),
        x, w, f32(shape(2, 1, 1), 10, 0.5), f32(shape(3), 1, 2, 0.25));
    assertTensor(y, ElementType.F32, shape(2, 1, 3), 10, 40, 10, 1.5, -1, 0.625);
  }

  @Test
  void dynamicQuantizeInt8PerRow() {
    // row 0: amax 127, scale 1: [127, -63.5 -> -64 (half to even), 0.5 -> 0]
    // row 1: all zero: scale is the floor 2^-126, q = 0
    // row 2: amax 254, scale 2: [127, 0.5 -> 0, -63.5 -> -64]
    Tensor x = f32(shape(3, 3), 127, -63.5, 0.5, 0, 0, 0, 254, 1, -127);
    List<Tensor> r = runAll(a -> new QuantOp.DynamicQuantize(a.get(0), ElementType.I8, "row"), x);
    assertTensor(r.get(0), ElementType.I8, shape(3, 3), 127, -64, 0, 0, 0, 0, 127, 0, -64);
    assertTensor(r.get(1), ElementType.F32, shape(3, 1), 1, Float.MIN_NORMAL, 2);
  }

  @Test
  void dynamicQuantizeFp8PerTensor() {
    // amax 896, scale 2: [448, -0.5, 0.15 -> 0.15625 (e4m3 spacing 1/64 in [0.125, 0.25)), 3.0]
    Tensor x = f32(shape(4), 896, -1, 0.3, 6);
    List<Tensor> r = runAll(a -> new QuantOp.DynamicQuantize(a.get(0), ElementType.F8E4M3, "tensor"), x);
    assertTensor(r.get(0), ElementType.F8E4M3, shape(4), 448, -0.5, 0.15625, 3);
    assertTensor(r.get(1), ElementType.F32, shape(), 2);
  }

  @Test
  void dynamicQuantizeNanPoisonsItsRow() {
    Tensor x = f32(shape(2, 2), Double.NaN, 1, 63.5, 127);
    List<Tensor> r = runAll(a -> new QuantOp.DynamicQuantize(a.get(0), ElementType.I8, "row"), x);
    assertTensor(r.get(0), ElementType.I8, shape(2, 2), 0, 0, 64, 127);
    assertTrue(Float.isNaN((float) r.get(1).get(0)));
  }

  @Test
  void verifierNamesWhatIsWrong() {
    Value xi8 = Value.argument("x", TensorType.of(ElementType.I8, 2, 3));
    Value wf8 = Value.argument("w", TensorType.of(ElementType.F8E4M3, 3, 4));
    Value wi8 = Value.argument("w", TensorType.of(ElementType.I8, 3, 4));
    Value xf32 = Value.argument("x", TensorType.of(ElementType.F32, 2, 3));
    Value one = Value.argument("s", TensorType.scalar(ElementType.F32));
    Value ws3 = Value.argument("ws", TensorType.of(ElementType.F32, 3));
    Value xsBad = Value.argument("xs", TensorType.of(ElementType.F32, 2, 3));
    assertMessage("x and w of one type", () -> new QuantOp.QMatMul(xi8, wf8, one, one).inferResultTypes());
    assertMessage("qmatmul takes x in one of", () -> new QuantOp.QMatMul(xf32, wi8, one, one).inferResultTypes());
    assertMessage("w scale length", () -> new QuantOp.QMatMul(xi8, wi8, one, ws3).inferResultTypes());
    assertMessage("x scale must be a scalar or one value per row [2, 1]",
        () -> new QuantOp.QMatMul(xi8, wi8, xsBad, one).inferResultTypes());
    assertMessage("dynamic_quantize produces i8, f8e4m3 or f8e5m2",
        () -> new QuantOp.DynamicQuantize(xf32, ElementType.BF16, "row").inferResultTypes());
    assertMessage("granularity must be", () -> new QuantOp.DynamicQuantize(xf32, ElementType.I8, "col").inferResultTypes());
  }

  private static void assertMessage(String part, org.junit.jupiter.api.function.Executable e) {
    OpException ex = assertThrows(OpException.class, e);
    assertTrue(ex.getMessage().contains(part), () -> "'" + ex.getMessage() + "' lacks '" + part + "'");
  }

  @Test
  void textRoundTrips() {
    String text = """
        module @q {
          func @main(%x: tensor<?s x 4 x f32>, %w: tensor<4 x 2 x f8e4m3>, %ws: tensor<2 x f32>) -> ("y": tensor<?s x 2 x f32>) {
            %xq, %xs = dynamic_quantize %x {dtype = f8e4m3, granularity = "row"} : tensor<?s x 4 x f8e4m3>, tensor<?s x 1 x f32>
            %y = qmatmul %xq, %w, %xs, %ws : tensor<?s x 2 x f32>
            return %y
          }
        }
        """;
    Module m = IrParser.parse(text, "q.ir");
    String printed = IrPrinter.print(m);
    assertEquals(printed, IrPrinter.print(IrParser.parse(printed, "q2.ir")));
    assertTrue(printed.contains("qmatmul %xq, %w, %xs, %ws"), printed);
  }
}
