package dev.sohuc.passes.quant;

import dev.sohuc.ir.tensor.Tensor;

import java.nio.file.Path;
import java.util.List;

/**
 * Options of {@link Quantizer} and the {@code quantize} pass, as the CLI spells them:
 * {@code --quantize MODE --calibrate DIR... --max-layer-error X}.
 *
 * @param calibrationDirs folders of {@code input_0.pb, input_1.pb, ...} (one set each); empty
 *     means no calibration: fp8 and int8 then use dynamic per-token activation scales and the
 *     accuracy guard has nothing to measure
 * @param maxLayerError the largest relative L2 error a quantized layer may have against f32
 *     before the guard keeps it in higher precision; NaN means the mode's default
 *     ({@link #defaultMaxLayerError})
 * @param reader reads one {@code TensorProto} file; the CLI passes the ONNX frontend's reader
 *     (this module depends on {@code ir} only)
 * @param smoothAlpha SmoothQuant's migration strength (int8 only): {@code s_j = max|X_j|^a / max|W_j|^(1-a)}
 * @param excludedLayers layers kept in the guard's fallback precision whatever they measure: a
 *     layer is excluded when its name (its matmul's result name) contains one of these strings
 * @param minOutputCosine the guard's bound on the whole model: the mean cosine of the quantized
 *     model's outputs against f32 on the calibration sets; below it the layers that cost the most
 *     are kept in higher precision. NaN means the mode's default ({@link #defaultMinOutputCosine})
 */
public record QuantOptions(QuantMode mode, List<Path> calibrationDirs, double maxLayerError,
                           TensorReader reader, double smoothAlpha, List<String> excludedLayers,
                           double minOutputCosine) {

  /** Reads one tensor file; errors should name the file. */
  @FunctionalInterface
  public interface TensorReader {
    Tensor read(Path file);
  }

  public QuantOptions {
    calibrationDirs = List.copyOf(calibrationDirs);
    excludedLayers = List.copyOf(excludedLayers);
    if (!calibrationDirs.isEmpty() && reader == null) {
      throw new IllegalArgumentException("calibration folders need a tensor reader");
    }
    if (!Double.isNaN(maxLayerError) && !(maxLayerError >= 0)) {
      throw new IllegalArgumentException("--max-layer-error must be 0 or more, got " + maxLayerError);
    }
    if (!Double.isNaN(minOutputCosine) && !(minOutputCosine >= -1 && minOutputCosine <= 1)) {
      throw new IllegalArgumentException("the minimum output cosine must be in [-1, 1], got " + minOutputCosine);
    }
  }

  /** A mode without calibration and with the default guard threshold. */
  public static QuantOptions of(QuantMode mode) {
    return new QuantOptions(mode, List.of(), Double.NaN, null, 0.5, List.of(), Double.NaN);
  }

  public QuantOptions withCalibration(List<Path> dirs, TensorReader tensorReader) {
    return new QuantOptions(mode, dirs, maxLayerError, tensorReader, smoothAlpha, excludedLayers, minOutputCosine);
  }

  public QuantOptions withMaxLayerError(double x) {
    return new QuantOptions(mode, calibrationDirs, x, reader, smoothAlpha, excludedLayers, minOutputCosine);
  }

  public QuantOptions excluding(List<String> layers) {
    return new QuantOptions(mode, calibrationDirs, maxLayerError, reader, smoothAlpha, layers, minOutputCosine);
  }

  public QuantOptions withMinOutputCosine(double c) {
    return new QuantOptions(mode, calibrationDirs, maxLayerError, reader, smoothAlpha, excludedLayers, c);
  }

  /** The guard threshold in effect. */
  public double effectiveMaxLayerError() {
    return Double.isNaN(maxLayerError) ? defaultMaxLayerError(mode) : maxLayerError;
  }

  /** The output bound in effect. */
  public double effectiveMinOutputCosine() {
    return Double.isNaN(minOutputCosine) ? defaultMinOutputCosine(mode) : minOutputCosine;
  }

  /**
   * The mean output cosine each mode keeps on the calibration sets by default: the bounds issue 9
   * sets on held-out data (bf16 0.9999, fp8 0.999, int8 0.99) with half the distance to 1 as a
   * margin, since the calibration sets are not the data the model will see. fp8 needs this bound:
   * e4m3 gives every layer the same 3-4% error, so the per-layer threshold cannot tell which
   * layers the output is sensitive to.
   */
  public static double defaultMinOutputCosine(QuantMode mode) {
    return switch (mode) {
      case NONE -> -1;
      case BF16 -> 0.99995;
      case FP8 -> 0.9995;
      case INT8 -> 0.995;
    };
  }

  /**
   * Relative L2 error per layer that each mode accepts by default: about four times what a
   * well-behaved layer of MiniLM or Llama measures (bf16 ~0.3%, fp8 ~3.5%, int8 ~1-2%), so that
   * only layers with a real problem fall back.
   */
  public static double defaultMaxLayerError(QuantMode mode) {
    return switch (mode) {
      case NONE -> 0;
      case BF16 -> 0.02;
      case FP8 -> 0.1;
      case INT8 -> 0.05;
    };
  }
}
