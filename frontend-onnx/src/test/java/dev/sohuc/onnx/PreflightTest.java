package dev.sohuc.onnx;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PreflightTest {
  @Test
  void miniLmIsOkWithMemoryEstimates() throws Exception {
    PreflightReport r = Preflight.check(OrtSupport.miniLm(), ImportOptions.defaults());
    assertTrue(r.ok(), r.render());
    assertEquals(List.of("batch", "batch_1"), r.unboundSymbols());
    assertTrue(r.parameterBytes() > 80_000_000 && r.parameterBytes() < 100_000_000, r.render());
    assertTrue(r.activationBytes() > 0, r.render());
    assertTrue(r.render().contains("unbound symbols taken as 1"), r.render());
  }

  /** Block-quantized weights are counted as the file holds them and as the compiler will. */
  @Test
  void dequantizedWeightsAreCountedBothWays(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws Exception {
    var g = ai.onnx.proto.OnnxMl.GraphProto.newBuilder().setName("g")
        .addInput(Models.input("x", dev.sohuc.ir.type.ElementType.F32, 1, 64)).addOutput(Models.output("y"))
        .addInitializer(Models.initializer("codes", dev.sohuc.ir.tensor.Tensor.zeros(dev.sohuc.ir.type.ElementType.U8,
            32, 2, 16)))
        .addInitializer(Models.initializer("scales", dev.sohuc.ir.tensor.Tensor.zeros(
            dev.sohuc.ir.type.ElementType.F32, 64)))
        .addNode(Models.node("MatMulNBits", List.of("x", "codes", "scales"), List.of("y"), Models.attr("K", 64L),
            Models.attr("N", 32L), Models.attr("bits", 4L), Models.attr("block_size", 32L)).toBuilder()
            .setDomain(OnnxOps.MS_DOMAIN));
    var model = Models.model(17, g.build()).toBuilder().addOpsetImport(ai.onnx.proto.OnnxMl.OperatorSetIdProto
        .newBuilder().setDomain(OnnxOps.MS_DOMAIN).setVersion(1)).build();
    PreflightReport r = Preflight.check(Models.write(dir, "nbits.onnx", model), ImportOptions.defaults());
    assertEquals(1280, r.parameterBytes(), r.render());
    assertEquals(8192, r.importedParameterBytes(), r.render());
    assertTrue(r.render().contains("parameters: 1.3 KiB (1280 bytes) in the file, 8.0 KiB (8192 bytes) as imported "
        + "(block-quantized weights dequantized, large constants made weights)"), r.render());
  }

  @Test
  void bindingsScaleTheActivationEstimate() throws Exception {
    PreflightReport one = Preflight.check(OrtSupport.miniLm(), ImportOptions.defaults());
    PreflightReport big = Preflight.check(OrtSupport.miniLm(), new ImportOptions(Map.of(),
        Map.of("batch", 1L, "batch_1", 128L)));
    assertTrue(big.unboundSymbols().isEmpty(), big.render());
    assertTrue(big.activationBytes() > 100 * one.activationBytes(), big.render());
  }
}
