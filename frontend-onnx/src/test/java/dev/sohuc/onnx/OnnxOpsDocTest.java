package dev.sohuc.onnx;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

class OnnxOpsDocTest {
  @Test
  void committedDocIsUpToDate() throws Exception {
    Path doc = Path.of("..", "docs", "onnx-ops.md");
    assertEquals(OnnxOpsDoc.render(), Files.readString(doc),
        "docs/onnx-ops.md is stale: run dev.sohuc.onnx.OnnxOpsDoc (see its javadoc) and commit the result");
  }
}
