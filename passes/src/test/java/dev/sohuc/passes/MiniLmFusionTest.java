package dev.sohuc.passes;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.sohuc.ir.Module;
import dev.sohuc.onnx.ImportOptions;
import dev.sohuc.onnx.OnnxImporter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;

/** all-MiniLM-L6-v2 as exported by PyTorch, through the default pipeline. */
class MiniLmFusionTest {
  private static Path model;

  @BeforeAll
  static void extractModel() throws IOException {
    try (InputStream in = MiniLmFusionTest.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
      if (in == null) {
        throw new IOException("all-minilm-l6-v2.onnx is not on the test classpath");
      }
      Path dir = Files.createTempDirectory("minilm");
      model = dir.resolve("all-minilm-l6-v2.onnx");
      Files.copy(in, model, StandardCopyOption.REPLACE_EXISTING);
      model.toFile().deleteOnExit();
      dir.toFile().deleteOnExit();
    }
  }

  @Test
  void defaultPipelineFusesEveryAttentionNormAndGelu() {
    Module m = OnnxImporter.importModel(model, ImportOptions.defaults());
    PassManager.Report report = new PassManager(PassPipelines.defaultPipeline()).run(m);
    System.out.println(report.fusion().render());
    System.out.println(report.renderTimings());
    FusionReport f = report.fusion();
    assertEquals(6, f.fusedCount("attention"), f::render);
    assertEquals(13, f.fusedCount("layer_norm"), f::render);
    assertEquals(6, f.fusedCount("gelu"), f::render);
    for (String op : new String[] {"softmax", "erf", "reduce_mean", "pow", "sqrt", "div"}) {
      assertEquals(0, f.unfusedCount(op), () -> op + " left unfused:\n" + f.render());
    }
  }

  @Test
  void defaultPipelineKeepsTheOutputs() {
    Module m = OnnxImporter.importModel(model, ImportOptions.defaults());
    MeaningCheck.assertPreservesMeaning(m, mod -> new PassManager(PassPipelines.defaultPipeline()).run(mod),
        7L, Map.of("batch", 2L, "batch_1", 11L));
  }
}
