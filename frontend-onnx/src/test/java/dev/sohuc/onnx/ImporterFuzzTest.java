package dev.sohuc.onnx;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.sohuc.ir.IrException;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Feeds arbitrary bytes to the importer as a model file: only {@link IrException} (and so
 * {@link OnnxImportException}) may escape. Without {@code JAZZER_FUZZ=1} it replays the seeds in
 * {@code ImporterFuzzTestInputs/importerOnlyThrowsIrExceptions}.
 */
class ImporterFuzzTest {

  @FuzzTest(maxDuration = "60s")
  void importerOnlyThrowsIrExceptions(byte[] data) throws Exception {
    Path dir = Files.createTempDirectory("fuzz");
    Path model = dir.resolve("model.onnx");
    try {
      Files.write(model, data);
      try {
        OnnxImporter.importModel(model, ImportOptions.defaults());
      } catch (IrException expected) {
        // a clean, one-line user error
      }
      try {
        Preflight.check(model, ImportOptions.defaults()).render();
      } catch (IrException expected) {
        // as above
      }
    } finally {
      Files.deleteIfExists(model);
      Files.deleteIfExists(dir);
    }
  }
}
