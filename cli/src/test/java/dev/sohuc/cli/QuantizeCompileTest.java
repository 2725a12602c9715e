package dev.sohuc.cli;

import static dev.sohuc.cli.CliResult.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.hf.HfImporter;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Function;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import dev.sohuc.onnx.TensorFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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

  /**
   * A bf16 decode step of the real tiny-llama checkpoint: the KV cache is bf16 in and out, and
   * the emulated logits stay within 2e-2 of the largest f32 interpreter logit (bf16 linear
   * layers, and attention's query and probabilities rounded to bf16 on the MXU), the caches
   * holding bf16 values for both.
   */
  @Test
  void bf16DecodeStepKeepsABf16CacheAndTracksTheF32Interpreter() throws Exception {
    Path ex = Path.of("..", "examples", "tiny-llama");
    Path bin = dir.resolve("decode.sohu");
    CliResult r = run("compile", ex.toString(), "--decode", "--quantize", "bf16", "-o",
        bin.toString());
    assertEquals(0, r.code(), r.err());
    SohuProgram p = SohuReader.read(Files.readAllBytes(bin), "decode.sohu");
    Function f = HfImporter.importModel(ex, HfOptions.decode()).main();
    Map<String, Long> dims = Map.of("batch", 2L, "seq", 1L, "past", 37L);
    Random rnd = new Random(3);
    List<Tensor> refIn = new ArrayList<>();
    Map<String, HostTensor> emuIn = new LinkedHashMap<>();
    for (Value a : f.arguments()) {
      long[] shape = a.type().dims().stream().mapToLong(d -> d.evaluate(dims)).toArray();
      int n = Tensor.checkedSize(shape);
      if (a.name().startsWith("past_key_values.")) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
          v[i] = (float) rnd.nextGaussian();
        }
        Tensor bf16 = Tensor.ofFloats(ElementType.BF16, shape, v);
        refIn.add(Tensor.ofFloats(ElementType.F32, shape, bf16.floats()));
        emuIn.put(a.name(), new HostTensor(DType.BF16, shape, bf16.toBytes()));
      } else {
        long[] ids = rnd.longs(n, 0, 64).toArray();
        Tensor t = Tensor.ofLongs(a.type().elementType(), shape, ids);
        refIn.add(t);
        emuIn.put(a.name(), new HostTensor(DType.I64, shape, t.toBytes()));
      }
    }
    float[] want = new Interpreter(HfImporter.importModel(ex, HfOptions.decode()))
        .run(refIn).get("logits").floats();
    Map<String, HostTensor> out = new Emulator(p, MachineDescription.defaultTarget(),
        Options.defaults()).runFunctional(emuIn, Map.of()).outputs();
    assertEquals(DType.BF16, out.get("present.0.key").dtype());
    float[] got = out.get("logits").toF32();
    double max = 0;
    double err = 0;
    for (int i = 0; i < want.length; i++) {
      max = Math.max(max, Math.abs(want[i]));
      err = Math.max(err, Math.abs(got[i] - want[i]));
    }
    System.out.printf("tiny-llama bf16 decode: max logit error %.3g of max |logit| %.3g%n", err,
        max);
    assertTrue(err <= 2e-2 * max, err + " > 2e-2 x " + max);
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
