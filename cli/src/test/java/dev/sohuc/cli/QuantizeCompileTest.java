package dev.sohuc.cli;

import static dev.sohuc.cli.CliResult.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import dev.sohuc.onnx.TensorFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code sohuc compile --quantize MODE [--calibrate DIR]... [--max-layer-error X] --report}. */
class QuantizeCompileTest {
  @TempDir Path dir;

  /** x [?s, 64] @ w1 [64, 256] -> gelu -> @ w2 [256, 64], seeded weights. */
  private Path model() throws Exception {
    Random rnd = new Random(11);
    String text = """
        module @mlp {
          weight @w1 : tensor<64 x 256 x f32> = inline 0xW1
          weight @w2 : tensor<256 x 64 x f32> = inline 0xW2
          func @main(%x: tensor<?s x 64 x f32>) -> ("y": tensor<?s x 64 x f32>) {
            %w1 = weight {name = @w1} : tensor<64 x 256 x f32>
            %w2 = weight {name = @w2} : tensor<256 x 64 x f32>
            %h = matmul %x, %w1 : tensor<?s x 256 x f32> loc("fc1")
            %g = gelu %h {approximate = "none"} : tensor<?s x 256 x f32>
            %y = matmul %g, %w2 : tensor<?s x 64 x f32> loc("fc2")
            return %y
          }
        }
        """.replace("W1", hex(rnd, 64 * 256, 0.12)).replace("W2", hex(rnd, 256 * 64, 0.06));
    Path p = dir.resolve("mlp.ir");
    Files.writeString(p, text);
    return p;
  }

  private static String hex(Random rnd, int n, double sd) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (rnd.nextGaussian() * sd);
    }
    return HexFormat.of().formatHex(Tensor.ofFloats(ElementType.F32, new long[] {n}, v).toBytes());
  }

  private Path calibration(String name, long rows, ElementType type) throws Exception {
    Path d = dir.resolve(name);
    Files.createDirectories(d);
    Random rnd = new Random(name.hashCode());
    float[] v = new float[(int) rows * 64];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) rnd.nextGaussian();
    }
    Tensor t = Tensor.ofFloats(ElementType.F32, new long[] {rows, 64}, v);
    if (type != ElementType.F32) {
      t = Tensor.ofLongs(type, new long[] {rows, 64}, new long[v.length]);
    }
    TensorFiles.write(d.resolve("input_0.pb"), t, "x");
    return d;
  }

  private static long constantsBytes(Path sohu) throws Exception {
    SohuProgram p = SohuReader.read(Files.readAllBytes(sohu), sohu.getFileName().toString());
    return p.constants() == null ? 0 : p.constants().size();
  }

  @Test
  void int8WithCalibrationReportsEveryLayerAndQuartersTheWeights() throws Exception {
    Path m = model();
    Path f32 = dir.resolve("f32.sohu");
    Path q = dir.resolve("int8.sohu");
    CliResult base = run("compile", m.toString(), "-o", f32.toString());
    assertEquals(0, base.code(), base.err());
    CliResult r = run("compile", m.toString(), "-o", q.toString(), "--quantize", "int8",
        "--calibrate", calibration("c0", 9, ElementType.F32).toString(),
        "--calibrate", calibration("c1", 13, ElementType.F32).toString(),
        "--max-layer-error", "0.2", "--report");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("quantization: int8, 2 calibration sets, max layer error 0.2000"), r.out());
    assertTrue(r.out().contains("2 layers: 2 i8"), r.out());
    long weights = 4L * 2 * 64 * 256;
    System.out.printf("constants: f32 %d bytes, int8 %d bytes%n", constantsBytes(f32), constantsBytes(q));
    assertTrue(constantsBytes(q) <= constantsBytes(f32) - weights * 3 / 4 + 4096, r.out());
  }

  @Test
  void bf16AndFp8WithoutCalibration() throws Exception {
    for (String mode : new String[] {"bf16", "fp8"}) {
      CliResult r = run("compile", model().toString(), "-o", dir.resolve(mode + ".sohu").toString(),
          "--quantize", mode, "--report");
      assertEquals(0, r.code(), r.err());
      assertTrue(r.out().contains("quantization: " + mode + ", 0 calibration sets"), r.out());
      assertTrue(r.out().contains("not measured: no calibration data"), r.out());
    }
  }

  @Test
  void emitIrShowsQmatmul() throws Exception {
    CliResult r = run("compile", model().toString(), "--emit", "ir", "--quantize", "fp8");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("qmatmul"), r.out());
    assertTrue(r.out().contains("dynamic_quantize"), r.out());
  }

  @Test
  void emptyCalibrationFolderIsAUserErrorNamingIt() throws Exception {
    Path empty = dir.resolve("empty");
    Files.createDirectories(empty);
    CliResult r = run("compile", model().toString(), "-o", dir.resolve("x.sohu").toString(),
        "--quantize", "int8", "--calibrate", empty.toString());
    assertEquals(1, r.code(), r.out());
    assertTrue(r.err().startsWith("error: ") && r.err().contains("empty"), r.err());
    assertTrue(!r.err().contains("internal error"), r.err());
  }

  @Test
  void calibrationOfTheWrongDtypeIsAUserError() throws Exception {
    CliResult r = run("compile", model().toString(), "-o", dir.resolve("x.sohu").toString(),
        "--quantize", "fp8", "--calibrate", calibration("bad", 4, ElementType.I64).toString());
    assertEquals(1, r.code(), r.out());
    assertTrue(r.err().contains("input_0.pb"), r.err());
  }

  @Test
  void badModeAndOrphanCalibrationAreUsageErrors() throws Exception {
    CliResult r = run("compile", model().toString(), "--emit", "ir", "--quantize", "int4");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("unknown quantization mode 'int4'"), r.err());
    r = run("compile", model().toString(), "--emit", "ir", "--calibrate", dir.toString());
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("need --quantize"), r.err());
    r = run("compile", model().toString(), "--emit", "ir", "--quantize", "int8",
        "--max-layer-error", "-1");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--max-layer-error"), r.err());
    r = run("compile", model().toString(), "--emit", "ir", "--quantize", "fp8",
        "--min-output-cosine", "1.5");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("the minimum output cosine must be in [-1, 1], got 1.5"), r.err());
    r = run("compile", model().toString(), "--emit", "ir", "--quantize", "none",
        "--min-output-cosine", "0.999");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--min-output-cosine need --quantize"), r.err());
  }
}
