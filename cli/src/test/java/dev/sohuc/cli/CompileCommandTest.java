package dev.sohuc.cli;

import static dev.sohuc.cli.CliResult.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.container.SohuReader;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CompileCommandTest {
  @TempDir Path dir;

  private Path ir(String text) throws Exception {
    Path p = dir.resolve("m.ir");
    Files.writeString(p, text);
    return p;
  }

  static final String GELU = """
      module @m {
        func @main(%x: tensor<?seq x 64 x f32>) -> ("y": tensor<?seq x 64 x f32>) {
          %y = gelu %x {approximate = "none"} : tensor<?seq x 64 x f32> loc("Gelu_0")
          return %y
        }
      }
      """;

  @Test
  void compilesIrToSohu() throws Exception {
    Path model = ir(GELU);
    Path out = dir.resolve("m.sohu");
    CliResult r = run("compile", model.toString(), "-o", out.toString(), "--report");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("instructions"), r.out());
    assertTrue(SohuReader.read(Files.readAllBytes(out), "m.sohu").code().size() > 5);
  }

  @Test
  void chipsShardsTheModelAndAddsAllReduces() throws Exception {
    Path tiny = Path.of("..", "examples", "tiny-llama");
    CliResult r = run("compile", tiny.toString(), "--chips", "2", "--emit", "ir");
    assertEquals(0, r.code(), r.err());
    // two layers, each with an all-reduce after the attention output and the MLP down projection
    assertEquals(4, r.out().lines().filter(l -> l.contains("= all_reduce ")).count(), r.out());
    assertTrue(r.out().contains("{chips = 2}"), r.out());
    CliResult bin = run("compile", tiny.toString(), "--chips", "2", "-o", dir.resolve("t.sohu").toString());
    assertEquals(0, bin.code(), bin.err());
  }

  @Test
  void chipsBelowOneIsAUsageError() throws Exception {
    CliResult r = run("compile", ir(GELU).toString(), "--chips", "0", "-o", dir.resolve("x.sohu").toString());
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--chips must be 1 or more"), r.err());
  }

  @Test
  void emitsAssembly() throws Exception {
    CliResult r = run("compile", ir(GELU).toString(), "--emit", "asm");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("ldarg"), r.out());
  }

  @Test
  void unsupportedOpExitsOneNamingIt() throws Exception {
    // log_softmax has no lowering (sin, used here before, now lowers)
    Path model = ir(GELU.replace("gelu %x {approximate = \"none\"}", "log_softmax %x {axis = 1}")
        .replace("Gelu_0", "LogSoftmax_7"));
    CliResult r = run("compile", model.toString(), "-o", dir.resolve("x.sohu").toString());
    assertEquals(1, r.code(), r.out() + r.err());
    assertTrue(r.err().contains("LogSoftmax_7"), r.err());
  }

  @Test
  void unknownPrintIrAfterPassIsAUsageError() throws Exception {
    CliResult r = run("compile", ir(GELU).toString(), "--emit", "ir", "--print-ir-after", "fuse-magic");
    assertEquals(2, r.code(), r.out() + r.err());
    assertTrue(r.err().contains("unknown pass 'fuse-magic'"), r.err());
  }
}
