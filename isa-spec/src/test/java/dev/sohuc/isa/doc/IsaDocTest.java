package dev.sohuc.isa.doc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.asm.Assembler;
import dev.sohuc.isa.container.SohuProgram;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** docs/isa.md is what the table generates, and its worked example assembles. */
class IsaDocTest {
  private static final Path DOC = Path.of("..", "docs", "isa.md");

  @Test
  void committedDocMatchesTheTable() throws Exception {
    String expected = IsaDocGenerator.generate();
    if (Boolean.getBoolean("isa.doc.update")) {
      Files.createDirectories(DOC.getParent());
      Files.writeString(DOC, expected, StandardCharsets.UTF_8);
    }
    String actual = Files.exists(DOC) ? Files.readString(DOC, StandardCharsets.UTF_8) : "";
    assertEquals(expected, actual, "docs/isa.md is out of date; regenerate it with\n"
        + "  mvn -pl isa-spec test -Dtest=IsaDocTest -Disa.doc.update=true\nand commit it");
  }

  @Test
  void workedExampleAssembles() {
    SohuProgram p = Assembler.assemble(IsaDocGenerator.WORKED_EXAMPLE, "worked-example.s");
    assertTrue(p.code().size() > 20);
    assertEquals(3, p.symbols().size());
  }
}
