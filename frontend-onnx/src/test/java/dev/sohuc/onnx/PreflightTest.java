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

  @Test
  void bindingsScaleTheActivationEstimate() throws Exception {
    PreflightReport one = Preflight.check(OrtSupport.miniLm(), ImportOptions.defaults());
    PreflightReport big = Preflight.check(OrtSupport.miniLm(), new ImportOptions(Map.of(),
        Map.of("batch", 1L, "batch_1", 128L)));
    assertTrue(big.unboundSymbols().isEmpty(), big.render());
    assertTrue(big.activationBytes() > 100 * one.activationBytes(), big.render());
  }
}
