package dev.sohuc.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.container.SohuReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CompileCommandTest {
  @TempDir Path dir;

  private record Result(int code, String out, String err) {}

  private static Result run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(args, new PrintWriter(out, true), new PrintWriter(err, true));
    return new Result(code, out.toString(), err.toString());
  }

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
    Result r = run("compile", model.toString(), "-o", out.toString(), "--report");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("instructions"), r.out());
    assertTrue(SohuReader.read(Files.readAllBytes(out), "m.sohu").code().size() > 5);
  }

  @Test
  void emitsAssembly() throws Exception {
    Result r = run("compile", ir(GELU).toString(), "--emit", "asm");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("ldarg"), r.out());
  }

  @Test
  void unsupportedOpExitsOneNamingIt() throws Exception {
    Path model = ir(GELU.replace("gelu %x {approximate = \"none\"}", "sin %x")
        .replace("Gelu_0", "Sin_7"));
    Result r = run("compile", model.toString(), "-o", dir.resolve("x.sohu").toString());
    assertEquals(1, r.code(), r.out() + r.err());
    assertTrue(r.err().contains("Sin_7"), r.err());
  }
}
