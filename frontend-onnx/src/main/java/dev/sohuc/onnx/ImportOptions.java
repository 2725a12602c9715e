package dev.sohuc.onnx;

import java.util.List;
import java.util.Map;

/**
 * How to import a model.
 *
 * @param inputShapes graph input name to its static shape ({@code --shape input_ids=1x128}); the
 *     symbols the file names at those positions are bound too, so the other inputs agree
 * @param dimBindings symbol ({@code dim_param}) name to its value ({@code --shape seq=128})
 */
public record ImportOptions(Map<String, List<Long>> inputShapes, Map<String, Long> dimBindings) {

  public ImportOptions {
    inputShapes = Map.copyOf(inputShapes);
    dimBindings = Map.copyOf(dimBindings);
  }

  /** No shapes given: every {@code dim_param} stays a symbol. */
  public static ImportOptions defaults() {
    return new ImportOptions(Map.of(), Map.of());
  }
}
