package dev.sohuc.ir.doc;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;

/** The committed docs/ir.md is what the generator writes from the current op registry. */
class IrDocTest {
  private static final Path DOC = Path.of("..", "docs", "ir.md");

  @Test
  void committedDocIsUpToDate() throws IOException {
    String generated = IrDocGenerator.render();
    if (Boolean.getBoolean("ir.doc.update")) {
      Files.writeString(DOC, generated, StandardCharsets.UTF_8);
    }
    assertEquals(generated, Files.readString(DOC, StandardCharsets.UTF_8),
        "docs/ir.md is stale: run mvn -q -pl ir test -Dtest=IrDocTest -Dir.doc.update=true");
  }
}
