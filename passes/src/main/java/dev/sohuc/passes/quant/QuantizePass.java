package dev.sohuc.passes.quant;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.passes.Pass;
import dev.sohuc.passes.PassResult;

/**
 * {@code --quantize}: runs {@link Quantizer} as a pass. Options: mode (default bf16 when built by
 * the registry, which needs no calibration), calibration folders (default none), max layer
 * error (default per mode, {@link QuantOptions#defaultMaxLayerError}). Counters: layers per
 * precision and layers the guard kept in higher precision. The full per-layer table is
 * {@link #lastReport()}.
 */
public final class QuantizePass implements Pass {
  private final QuantOptions options;
  private QuantReport lastReport;

  public QuantizePass() {
    this(QuantOptions.of(QuantMode.BF16));
  }

  public QuantizePass(QuantOptions options) {
    this.options = options;
  }

  @Override
  public String name() {
    return "quantize";
  }

  @Override
  public String summary() {
    return "matmuls with weights to bf16, fp8 or int8 qmatmul, with calibration and an accuracy guard";
  }

  @Override
  public boolean shouldApply(Module module) {
    return options.mode() != QuantMode.NONE && module.functions().stream()
        .flatMap(f -> f.body().stream()).map(Node::op).anyMatch(op -> op instanceof LinalgOp.MatMul);
  }

  @Override
  public PassResult run(Module module) {
    lastReport = Quantizer.quantize(module, options);
    PassResult.Counters c = new PassResult.Counters();
    for (QuantReport.Layer l : lastReport.layers()) {
      c.add("layers-" + l.precision().text());
      if (!Double.isNaN(l.rejectedError())) {
        c.add("kept-by-guard");
      }
    }
    return c.result();
  }

  /** The report of the last run, or null before the first. */
  public QuantReport lastReport() {
    return lastReport;
  }
}
