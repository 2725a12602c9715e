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
 */
public record QuantOptions(QuantMode mode, List<Path> calibrationDirs, double maxLayerError,
                           TensorReader reader, double smoothAlpha, List<String> excludedLayers) {

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
  }

  /** A mode without calibration and with the default guard threshold. */
  public static QuantOptions of(QuantMode mode) {
    return new QuantOptions(mode, List.of(), Double.NaN, null, 0.5, List.of());
  }

  public QuantOptions withCalibration(List<Path> dirs, TensorReader tensorReader) {
    return new QuantOptions(mode, dirs, maxLayerError, tensorReader, smoothAlpha, excludedLayers);
  }

  public QuantOptions withMaxLayerError(double x) {
    return new QuantOptions(mode, calibrationDirs, x, reader, smoothAlpha, excludedLayers);
  }

  public QuantOptions excluding(List<String> layers) {
    return new QuantOptions(mode, calibrationDirs, maxLayerError, reader, smoothAlpha, layers);
  }

  /** The guard threshold in effect. */
  public double effectiveMaxLayerError() {
    return Double.isNaN(maxLayerError) ? defaultMaxLayerError(mode) : maxLayerError;
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
