package dev.sohuc.cli;

import static dev.sohuc.cli.CliResult.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** sohuc opt: runs passes on IR text; bad pass names are usage errors, bad IR is exit 1. */
class OptCommandTest {
  @TempDir Path dir;

  private static final String SILU = """
      module @m {
        func @main(%x: tensor<?s x 4 x f32>) -> ("y": tensor<?s x 4 x f32>) {
          %zero = constant {value = dense<0.0> : tensor<f32>} : tensor<f32>
          %a    = add %x, %zero : tensor<?s x 4 x f32>
          %s    = sigmoid %a : tensor<?s x 4 x f32>
          %y    = mul %a, %s : tensor<?s x 4 x f32> loc("/act/Mul")
          return %y
        }
      }
      """;

  private Path file() throws Exception {
    Path p = dir.resolve("silu.ir");
    Files.writeString(p, SILU);
    return p;
  }

  @Test
  void runsThePipelineAndPrintsTheResult() throws Exception {
    CliResult r = run("opt", file().toString(), "--passes", "canonicalize,fuse-silu,dce");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("%y = silu %x"), r.out());
    assertFalse(r.out().contains("sigmoid"), r.out());
  }

  @Test
  void printsIrAfterNamedPassAndTheReport() throws Exception {
    CliResult r = run("opt", file().toString(), "--passes", "canonicalize,fuse-silu", "--print-ir-after=canonicalize",
        "--report");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("// ----- IR after canonicalize -----"), r.out());
    assertFalse(r.out().contains("IR after fuse-silu"), r.out());
    assertTrue(r.out().contains("fusion report"), r.out());
    assertTrue(r.out().contains("silu             1"), r.out());
  }

  @Test
  void printIrAfterAllPrintsEveryPass() throws Exception {
    CliResult r = run("opt", file().toString(), "--passes", "default", "--print-ir-after-all");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("IR after fuse-attention"), r.out());
    assertTrue(r.out().contains("IR after dce"), r.out());
  }

  @Test
  void unknownPassIsAUsageErrorListingTheKnownOnes() throws Exception {
    CliResult r = run("opt", file().toString(), "--passes", "canonicalize,fuse-magic");
    assertEquals(2, r.code());
    assertTrue(r.err().contains("unknown pass 'fuse-magic'"), r.err());
    assertTrue(r.err().contains("fuse-attention"), r.err());
  }

  @Test
  void badIrExitsOneWithFileAndLine() throws Exception {
    Path p = dir.resolve("bad.ir");
    Files.writeString(p, "module @m {\n  func @main() -> () {\n    %y = frobnicate : tensor<f32>\n    return\n  }\n}\n");
    CliResult r = run("opt", p.toString(), "--passes", "dce");
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("bad.ir:3"), r.err());
  }
}
