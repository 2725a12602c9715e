package dev.sohuc.passes.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.onnx.TensorFiles;
import dev.sohuc.passes.quant.QuantReport.Precision;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

/** The guard keeps exactly the layer that is hard to quantize in bf16, and says why. */
class AccuracyGuardTest {
  @TempDir
  Path tmp;

  private QuantReport quantize(Module m, QuantMode mode) {
    List<Path> dirs = SmallModel.calibration(tmp, 4, 32, 11);
    QuantReport r = Quantizer.quantize(m, QuantOptions.of(mode).withCalibration(dirs, TensorFiles::read));
    System.out.print(r.render());
    new Verifier().verify(m);
    return r;
  }

  @Test
  void withoutOutliersEveryLayerIsInt8() {
    QuantReport r = quantize(SmallModel.build(5, -1), QuantMode.INT8);
    assertEquals(3, r.count(Precision.INT8), r::render);
    assertTrue(r.keptInHigherPrecision().isEmpty(), r::render);
  }

  @Test
  void anOutlierChannelKeepsExactlyItsLayerInBf16() {
    Module m = SmallModel.build(5, 17);
    QuantReport r = quantize(m, QuantMode.INT8);
    assertEquals(List.of("fc2"), r.keptInHigherPrecision().stream().map(QuantReport.Layer::name).toList(), r::render);
    QuantReport.Layer fc2 = r.layer("fc2").orElseThrow();
    assertEquals(Precision.BF16, fc2.precision());
    assertTrue(fc2.rejectedError() > r.maxLayerError() && fc2.error() <= r.maxLayerError(), r::render);
    assertTrue(fc2.why().startsWith("kept in bf16: i8 error"), fc2.why());
    assertTrue(r.render().contains("kept in bf16: i8 error"), r::render);
    assertEquals(Precision.INT8, r.layer("fc1").orElseThrow().precision());
    assertEquals(Precision.INT8, r.layer("fc3").orElseThrow().precision());
    // the IR says the same: two i8 qmatmuls and one bf16
    List<ElementType> types = m.main().body().stream().filter(n -> n.op() instanceof QuantOp.QMatMul)
        .map(n -> ((QuantOp.QMatMul) n.op()).x().type().elementType()).toList();
    assertEquals(List.of(ElementType.I8, ElementType.BF16, ElementType.I8), types);
  }

  @Test
  void aTighterThresholdKeepsMoreLayers() {
    List<Path> dirs = SmallModel.calibration(tmp, 4, 32, 11);
    Module m = SmallModel.build(5, -1);
    QuantReport r = Quantizer.quantize(m, QuantOptions.of(QuantMode.INT8).withCalibration(dirs, TensorFiles::read)
        .withMaxLayerError(0));
    assertEquals(3, r.count(Precision.BF16), r::render);
  }

  @Test
  void withoutCalibrationFp8UsesDynamicPerTokenScales() {
    Module m = SmallModel.build(5, -1);
    QuantReport r = Quantizer.quantize(m, QuantOptions.of(QuantMode.FP8));
    new Verifier().verify(m);
    assertEquals(3, r.count(Precision.FP8), r::render);
    assertEquals(3, m.main().body().stream().filter(n -> n.op() instanceof QuantOp.DynamicQuantize).count());
    assertTrue(r.render().contains("not measured: no calibration data"), r::render);
  }
}
