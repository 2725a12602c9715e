package dev.sohuc.passes.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.QuantOp;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

/**
 * all-MiniLM-L6-v2, quantized after the default pipeline and run on the interpreter (which
 * models the chip's dtype rules), against ONNX Runtime f32 on 8 evaluation sets different from
 * the 8 calibration sets.
 */
class MiniLmQuantizeTest {
  @TempDir
  static Path tmp;
  static MiniLmQuantFixture fixture;

  @BeforeAll
  static void setUp() {
    fixture = new MiniLmQuantFixture(tmp);
  }

  @Test
  void f32BaselineMatchesOnnxRuntime() {
    Accuracy a = fixture.evaluate(fixture.importFused(), "f32");
    System.out.println(a.row());
    assertTrue(a.meanCosine() >= 0.999999, a::row);
  }

  @Test
  void bf16() {
    Accuracy a = fixture.run(QuantMode.BF16);
    assertTrue(a.meanCosine() >= 0.9999, a::row);
  }

  /**
   * Issue 9's 0.999. All 36 layers in f8e4m3 reach 0.9969 (weights rounded against the
   * calibration inputs; 0.9959 rounded to nearest): e4m3's 3 mantissa bits give every layer the
   * same 3-4% error, and the output's loss is spread over the layers in proportion to their
   * FLOPs. The guard's output check (calibration output cosine 0.9975 < 0.9995) keeps the 18
   * layers that cost the output most in bf16 (the 12 FFN layers and 6 attention projections):
   * 0.99948, worst token 0.9982.
   */
  @Test
  void fp8() {
    Accuracy a = fixture.run(QuantMode.FP8);
    assertTrue(a.meanCosine() >= 0.999, a::row);
  }

  @Test
  void int8() {
    Accuracy a = fixture.run(QuantMode.INT8);
    assertTrue(a.meanCosine() >= 0.99, a::row);
  }

  @Test
  void everyMatmulWithAWeightBecomesAQmatmulAndTheModuleVerifies() {
    Module m = fixture.importFused();
    QuantReport r = Quantizer.quantize(m, fixture.options(QuantMode.INT8));
    new Verifier().verify(m);
    long qmatmuls = m.main().body().stream().filter(n -> n.op() instanceof QuantOp.QMatMul).count();
    long matmuls = m.main().body().stream().filter(n -> n.op() instanceof LinalgOp.MatMul).count();
    assertEquals(36, r.layers().size(), r::render);
    assertEquals(36, qmatmuls);
    assertEquals(0, matmuls);
  }
}
