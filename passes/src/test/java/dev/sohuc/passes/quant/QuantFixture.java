package dev.sohuc.passes.quant;

import dev.sohuc.ir.Module;

/** A model with calibration and evaluation sets, for the accuracy tests and the benchmark. */
public interface QuantFixture {
  /** The f32 model after the default pipeline (what {@code sohuc compile} quantizes). */
  Module importFused();

  QuantOptions options(QuantMode mode);

  /** Mean and worst cosine of the model's output vectors against the f32 reference. */
  Accuracy evaluate(Module m, String mode);

  /** Quantizes a fresh import in {@code mode} and measures it; prints the report and the row. */
  default Accuracy run(QuantMode mode) {
    Module m = importFused();
    QuantReport report = Quantizer.quantize(m, options(mode));
    System.out.print(report.render());
    Accuracy a = evaluate(m, mode.flag());
    System.out.println(a.row());
    return a;
  }
}
