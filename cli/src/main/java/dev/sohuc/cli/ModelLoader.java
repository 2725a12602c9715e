package dev.sohuc.cli;

import dev.sohuc.hf.HfImporter;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.onnx.ImportOptions;
import dev.sohuc.onnx.OnnxImporter;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Loads a model by its kind: {@code .onnx} through the ONNX importer, {@code .ir} through the IR
 * parser, a Hugging Face {@code config.json} (or the directory holding one) through the HF
 * importer. The one place the CLI dispatches on model kind.
 */
final class ModelLoader {
  private ModelLoader() {}

  /** The model kinds the CLI reads. */
  enum Format { ONNX, IR, HF }

  static Format formatOf(Path model) {
    String name = model.getFileName() == null ? "" : model.getFileName().toString();
    if (name.endsWith(".onnx")) {
      return Format.ONNX;
    }
    if (name.endsWith(".ir")) {
      return Format.IR;
    }
    if (Files.isDirectory(model) || name.endsWith(".json")) {
      return Format.HF;
    }
    throw new UserException(model + ": unknown model kind (expected .onnx, .ir, config.json or "
        + "a checkpoint directory)");
  }

  /** The model at {@code model}; a Hugging Face one imported as {@code hf} says, with the shapes. */
  static Module load(Path model, ShapeBindings shapes, HfOptions hf) {
    if (!Files.exists(model)) {
      throw new UserException(model + ": no such file");
    }
    Format format = formatOf(model);
    if (format != Format.ONNX && !shapes.inputShapes().isEmpty()) {
      // their inputs' dims are named where the model is defined: bind those instead
      var input = shapes.inputShapes().entrySet().iterator().next();
      String shape = input.getValue().stream().map(String::valueOf)
          .collect(java.util.stream.Collectors.joining("x"));
      throw new UserException(model + ": --shape " + input.getKey() + "=" + shape + ": only an ONNX "
          + "model's inputs take a whole shape; bind this model's dims by name (--shape seq=128)");
    }
    return switch (format) {
      case ONNX -> OnnxImporter.importModel(model,
          new ImportOptions(shapes.inputShapes(), shapes.dimBindings()));
      case IR -> IrParser.parse(model, shapes.dimBindings());
      case HF -> HfImporter.importModel(model, hf.withDimBindings(shapes.dimBindings()));
    };
  }
}
