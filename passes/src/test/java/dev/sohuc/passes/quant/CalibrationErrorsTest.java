package dev.sohuc.passes.quant;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.onnx.TensorFiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Calibration data the model cannot use: each error names the folder or file and what is wrong. */
class CalibrationErrorsTest {
  @TempDir
  Path tmp;

  private String error(List<Path> dirs) {
    Module m = SmallModel.build(1, -1);
    QuantOptions o = QuantOptions.of(QuantMode.INT8).withCalibration(dirs, TensorFiles::read);
    return assertThrows(CalibrationException.class, () -> Quantizer.quantize(m, o)).getMessage();
  }

  private Path set(String name, Tensor x) throws Exception {
    Path dir = Files.createDirectories(tmp.resolve(name));
    TensorFiles.write(dir.resolve("input_0.pb"), x, "x");
    return dir;
  }

  private static void assertContains(String message, String... parts) {
    for (String p : parts) {
      assertTrue(message.contains(p), () -> "'" + message + "' lacks '" + p + "'");
    }
  }

  @Test
  void wrongShape() throws Exception {
    Path dir = set("bad_shape", Tensor.zeros(ElementType.F32, 8, 63));
    assertContains(error(List.of(dir)), dir.resolve("input_0.pb").toString(), "input 'x'", "[8, 63]", "dim 1 must be 64");
  }

  @Test
  void wrongRank() throws Exception {
    Path dir = set("bad_rank", Tensor.zeros(ElementType.F32, 1, 8, 64));
    assertContains(error(List.of(dir)), dir.resolve("input_0.pb").toString(), "rank 2");
  }

  @Test
  void wrongDtype() throws Exception {
    Path dir = set("bad_dtype", Tensor.zeros(ElementType.I64, 8, 64));
    assertContains(error(List.of(dir)), dir.resolve("input_0.pb").toString(), "has dtype i64, the model takes f32");
  }

  @Test
  void emptyFolder() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("empty"));
    assertContains(error(List.of(dir)), "calibration folder " + dir + " is empty", "input_0.pb", "'x'");
  }

  @Test
  void missingFolder() {
    Path dir = tmp.resolve("nowhere");
    assertContains(error(List.of(dir)), "calibration folder " + dir + " does not exist");
  }

  @Test
  void extraInputFile() throws Exception {
    Path dir = set("extra", Tensor.zeros(ElementType.F32, 8, 64));
    TensorFiles.write(dir.resolve("input_1.pb"), Tensor.zeros(ElementType.F32, 8, 64), "y");
    assertContains(error(List.of(dir)), dir.resolve("input_1.pb").toString(), "takes only 1 inputs");
  }

  @Test
  void nanAndInfinity() throws Exception {
    Tensor nan = Tensor.zeros(ElementType.F32, 8, 64);
    nan.floats()[70] = Float.NaN;
    Path a = set("nan", nan);
    assertContains(error(List.of(a)), a.resolve("input_0.pb").toString(), "element 70 is NaN");
    Tensor inf = Tensor.zeros(ElementType.F32, 8, 64);
    inf.floats()[3] = Float.NEGATIVE_INFINITY;
    Path b = set("inf", inf);
    Path good = set("good", Tensor.zeros(ElementType.F32, 8, 64));
    assertContains(error(List.of(good, b)), b.resolve("input_0.pb").toString(), "element 3 is -Infinity");
  }

  @Test
  void unreadableFile() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("garbage"));
    Files.write(dir.resolve("input_0.pb"), new byte[] {(byte) 0xff, 1, 2});
    assertContains(error(List.of(dir)), dir.resolve("input_0.pb").toString());
  }
}
