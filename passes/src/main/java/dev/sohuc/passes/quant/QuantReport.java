package dev.sohuc.passes.quant;

import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * What {@link Quantizer} did to every layer (every matmul with a weight operand): its precision,
 * its measured error against f32, and why it got that precision.
 *
 * <p>The error is the layer's own: the relative L2 error {@code ||y_q - y|| / ||y||} of the
 * quantized layer against the f32 layer, both fed the f32 model's input to that layer on every
 * calibration set. Measuring each layer in isolation (not the error that piles up from earlier
 * layers) is what lets the guard point at the one layer that is hard to quantize.
 *
 * <p>The guard then checks the whole model: {@code outputCosine} is the mean cosine of the
 * quantized model's output vectors (along the last axis) against f32 on the calibration sets, of
 * the output that loses most when there are several (logits and KV caches). Below
 * {@code minOutputCosine} the layers whose quantization alone costs the output most were kept in
 * higher precision, and their rows say so.
 *
 * @param calibrationSets how many sets the scales and errors come from (0: dynamic scales, no guard)
 * @param outputCosine the final model's output cosine on the calibration sets, NaN when not measured
 * @param weightRounding how the narrow weights were rounded
 */
public record QuantReport(QuantMode mode, double maxLayerError, int calibrationSets, List<Layer> layers,
                          double outputCosine, double minOutputCosine, String weightRounding) {

  /** The precision a layer's matmul runs in. */
  public enum Precision {
    F32("f32"), BF16("bf16"), FP8("f8e4m3"), INT8("i8");

    private final String text;

    Precision(String text) {
      this.text = text;
    }

    public String text() {
      return text;
    }
  }

  /**
   * One layer.
   *
   * @param error relative L2 error of the chosen precision, NaN when not measured
   * @param rejectedError the error of the precision the guard refused, NaN when none was refused
   * @param activation how its input is quantized (scale kind and calibrated range)
   * @param smoothing SmoothQuant migration: where the 1/s went, or "none"
   */
  public record Layer(String name, String location, long k, long n, Precision precision, double error,
                      double rejectedError, String activation, String smoothing, String why) {}

  public QuantReport {
    layers = List.copyOf(layers);
  }

  public long count(Precision p) {
    return layers.stream().filter(l -> l.precision() == p).count();
  }

  public Optional<Layer> layer(String name) {
    return layers.stream().filter(l -> l.name().equals(name)).findFirst();
  }

  /** The layers the guard kept in higher precision. */
  public List<Layer> keptInHigherPrecision() {
    return layers.stream().filter(l -> !Double.isNaN(l.rejectedError())).toList();
  }

  /** A table for {@code --report}: one line per layer. */
  public String render() {
    StringBuilder sb = new StringBuilder();
    sb.append(String.format(Locale.ROOT, "quantization: %s, %d calibration set%s, max layer error %.4g%n",
        mode.flag(), calibrationSets, calibrationSets == 1 ? "" : "s", maxLayerError));
    if (mode == QuantMode.NONE) {
      return sb.append("  (nothing quantized)\n").toString();
    }
    if (!Double.isNaN(outputCosine)) {
      sb.append(String.format(Locale.ROOT, "  output cosine against f32 on the calibration sets: %.6f (min %.6g)%n",
          outputCosine, minOutputCosine));
    }
    sb.append("  weights: ").append(weightRounding).append('\n');
    int w = Math.max(5, layers.stream().mapToInt(l -> l.name().length()).max().orElse(5));
    sb.append(String.format(Locale.ROOT, "  %-" + w + "s  %-11s  %-7s  %9s  %s%n", "layer", "k x n", "prec", "error", "why"));
    for (Layer l : layers) {
      sb.append(String.format(Locale.ROOT, "  %-" + w + "s  %-11s  %-7s  %9s  %s%n", l.name(), l.k() + "x" + l.n(),
          l.precision().text(), Double.isNaN(l.error()) ? "-" : String.format(Locale.ROOT, "%.5f", l.error()),
          l.why()));
      sb.append(String.format(Locale.ROOT, "  %-" + w + "s    activation: %s; smoothing: %s%n", "", l.activation(),
          l.smoothing()));
    }
    sb.append(String.format(Locale.ROOT, "  %d layers: %d %s, %d bf16, %d f32%n", layers.size(),
        count(mode == QuantMode.INT8 ? Precision.INT8 : Precision.FP8),
        mode == QuantMode.INT8 ? "i8" : "f8e4m3", count(Precision.BF16), count(Precision.F32)));
    return sb.toString();
  }
}
