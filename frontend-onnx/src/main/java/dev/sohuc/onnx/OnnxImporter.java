package dev.sohuc.onnx;

import dev.sohuc.ir.Module;

import java.nio.file.Path;

/**
 * Imports an ONNX model ({@code .onnx}, opsets 11 to 21, external data allowed) into a
 * verified IR module with one function, {@code @main}: graph inputs become its arguments (in
 * order), graph outputs its named results, initializers its weights (slices of the model or
 * external-data files, never copied), and every op carries its ONNX node name as location.
 */
public final class OnnxImporter {
  private OnnxImporter() {}

  /**
   * Reads, checks and imports a model.
   *
   * @throws OnnxImportException with a one-line message naming the file and the node or tensor
   *     when the model is malformed or uses something sohuc does not support
   */
  public static Module importModel(Path model, ImportOptions options) {
    return GraphImporter.importModel(model, options);
  }

  /** Imports with every {@code dim_param} left symbolic. */
  public static Module importModel(Path model) {
    return importModel(model, ImportOptions.defaults());
  }
}
