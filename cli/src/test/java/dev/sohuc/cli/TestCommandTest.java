package dev.sohuc.cli;

import static dev.sohuc.cli.CliResult.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnx.proto.OnnxMl;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.onnx.TensorFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code sohuc test} on small generated cases in the ONNX backend-test layout. */
class TestCommandTest {
  @TempDir Path dir;

  private static OnnxMl.ValueInfoProto f32(String name, long... shape) {
    OnnxMl.TensorShapeProto.Builder s = OnnxMl.TensorShapeProto.newBuilder();
    for (long d : shape) {
      s.addDim(OnnxMl.TensorShapeProto.Dimension.newBuilder().setDimValue(d));
    }
    return OnnxMl.ValueInfoProto.newBuilder().setName(name).setType(OnnxMl.TypeProto.newBuilder()
        .setTensorType(OnnxMl.TypeProto.Tensor.newBuilder()
            .setElemType(OnnxMl.TensorProto.DataType.FLOAT.getNumber()).setShape(s))).build();
  }

  /** A case {@code y = OP(x, x)} (or {@code OP(x)}) on f32 [2, 3], with x and y given. */
  private Path writeCase(String name, String op, int arity, float[] x, float[] y) throws Exception {
    Path c = dir.resolve(name);
    Path set = c.resolve("test_data_set_0");
    Files.createDirectories(set);
    OnnxMl.NodeProto.Builder n = OnnxMl.NodeProto.newBuilder().setOpType(op).setName(op + "_0")
        .addOutput("y");
    for (int i = 0; i < arity; i++) {
      n.addInput("x");
    }
    OnnxMl.ModelProto m = OnnxMl.ModelProto.newBuilder().setIrVersion(8)
        .addOpsetImport(OnnxMl.OperatorSetIdProto.newBuilder().setVersion(17))
        .setGraph(OnnxMl.GraphProto.newBuilder().setName(name).addNode(n)
            .addInput(f32("x", 2, 3)).addOutput(f32("y", 2, 3))).build();
    Files.write(c.resolve("model.onnx"), m.toByteArray());
    long[] shape = {2, 3};
    TensorFiles.write(set.resolve("input_0.pb"), Tensor.ofFloats(ElementType.F32, shape, x), "x");
    TensorFiles.write(set.resolve("output_0.pb"), Tensor.ofFloats(ElementType.F32, shape, y), "y");
    return c;
  }

  static final float[] X = {1, -2, 3.5f, 0.25f, -0.5f, 7};

  private static float[] doubled() {
    float[] y = X.clone();
    for (int i = 0; i < y.length; i++) {
      y[i] *= 2;
    }
    return y;
  }

  @Test
  void passingCasePrintsPassAndExitsZero() throws Exception {
    Path c = writeCase("test_add", "Add", 2, X, doubled());
    CliResult r = run("test", c.toString());
    assertEquals(0, r.code(), r.out() + r.err());
    assertTrue(r.out().contains("PASS test_add"), r.out());
    assertTrue(r.out().strip().endsWith("1 passed, 0 failed"), r.out());
  }

  @Test
  void wrongExpectedOutputFailsWithTheErrorFigure() throws Exception {
    float[] y = doubled();
    y[4] = 3;  // want -1: |(-1) - 3| / max(1, 3) = 1.33
    writeCase("test_add_wrong", "Add", 2, X, y);
    CliResult r = run("test", dir.toString());
    assertEquals(1, r.code(), r.out() + r.err());
    assertTrue(r.out().contains("FAIL test_add_wrong: test_data_set_0: y max error 1.33"), r.out());
    assertTrue(r.out().contains("element 4"), r.out());
    assertTrue(r.out().strip().endsWith("0 passed, 1 failed"), r.out());
  }

  @Test
  void expectedOutputOfAnotherElementTypeFailsTheCase() throws Exception {
    // whole numbers, so that the values match and only the element type differs
    float[] x = {1, -2, 3, 4, -5, 7};
    Path c = writeCase("test_add_i64", "Add", 2, x, x);
    TensorFiles.write(c.resolve("test_data_set_0").resolve("output_0.pb"),
        Tensor.ofLongs(ElementType.I64, new long[] {2, 3}, new long[] {2, -4, 6, 8, -10, 14}), "y");
    CliResult r = run("test", c.toString());
    assertEquals(1, r.code(), r.out() + r.err());
    assertEquals("FAIL test_add_i64: test_data_set_0: y is f32, expected i64" + System.lineSeparator()
        + "0 passed, 1 failed" + System.lineSeparator(), r.out());
  }

  @Test
  void nanWhereNanIsExpectedPasses() throws Exception {
    float[] x = X.clone();
    x[2] = Float.NaN;
    float[] y = doubled();
    y[2] = Float.NaN;
    Path c = writeCase("test_add_nan", "Add", 2, x, y);
    CliResult r = run("test", c.toString());
    assertEquals(0, r.code(), r.out() + r.err());
    assertEquals("PASS test_add_nan (max error 0.00)" + System.lineSeparator() + "1 passed, 0 failed"
        + System.lineSeparator(), r.out());
    y[2] = 7;
    writeCase("test_add_nan", "Add", 2, x, y);
    r = run("test", c.toString());
    assertEquals(1, r.code(), r.out() + r.err());
    assertTrue(r.out().contains("element 2: got NaN, expected 7.0"), r.out());
  }

  @Test
  void unsupportedOpFailsThatCaseAndTheRunGoesOn() throws Exception {
    writeCase("test_a_det", "Det", 1, X, X);
    writeCase("test_b_add", "Add", 2, X, doubled());
    writeCase("test_c_mul_wrong", "Mul", 2, X, doubled());
    CliResult r = run("test", dir.toString());
    assertEquals(1, r.code(), r.out() + r.err());
    String[] lines = r.out().strip().split("\n");
    assertEquals(4, lines.length, r.out());
    assertTrue(lines[0].startsWith("FAIL test_a_det: ") && lines[0].contains("Det"), r.out());
    assertTrue(lines[1].startsWith("PASS test_b_add"), r.out());
    assertTrue(lines[2].startsWith("FAIL test_c_mul_wrong: "), r.out());
    assertEquals("1 passed, 2 failed", lines[3]);
  }

  @Test
  void outputFileBeyondTheModelsOutputsFailsTheCase() throws Exception {
    Path c = writeCase("test_add_extra", "Add", 2, X, doubled());
    Path set = c.resolve("test_data_set_0");
    // named like the model's output, so matching by name alone would pass it
    TensorFiles.write(set.resolve("output_1.pb"),
        Tensor.ofFloats(ElementType.F32, new long[] {2, 3}, X), "y");
    CliResult r = run("test", c.toString());
    assertEquals(1, r.code(), r.out() + r.err());
    assertEquals("FAIL test_add_extra: test_data_set_0: output_1.pb has no output to compare "
        + "with: the model has 1 output\n0 passed, 1 failed\n", r.out());
    Files.move(set.resolve("output_1.pb"), set.resolve("output_7.pb"));
    assertTrue(run("test", c.toString()).out().startsWith("FAIL test_add_extra: test_data_set_0: "
        + "output_7.pb has no output to compare with: the model has 1 output\n"));
  }

  /** output_1.pb missing before output_2.pb: the files are read in order, so it is an error. */
  @Test
  void aGapInTheOutputFilesFailsTheCase() throws Exception {
    Path c = dir.resolve("test_three_outputs");
    Path set = c.resolve("test_data_set_0");
    Files.createDirectories(set);
    OnnxMl.GraphProto.Builder g = OnnxMl.GraphProto.newBuilder().setName("three")
        .addInput(f32("x", 2, 3));
    for (String[] op : new String[][] {{"Add", "y"}, {"Mul", "z"}, {"Sub", "w"}}) {
      g.addNode(OnnxMl.NodeProto.newBuilder().setOpType(op[0]).setName(op[0] + "_0")
          .addInput("x").addInput("x").addOutput(op[1]));
      g.addOutput(f32(op[1], 2, 3));
    }
    Files.write(c.resolve("model.onnx"), OnnxMl.ModelProto.newBuilder().setIrVersion(8)
        .addOpsetImport(OnnxMl.OperatorSetIdProto.newBuilder().setVersion(17)).setGraph(g)
        .build().toByteArray());
    long[] shape = {2, 3};
    TensorFiles.write(set.resolve("input_0.pb"), Tensor.ofFloats(ElementType.F32, shape, X), "x");
    TensorFiles.write(set.resolve("output_0.pb"), Tensor.ofFloats(ElementType.F32, shape,
        doubled()), "y");
    // a wrong w, which a run that stopped at the gap would never read
    TensorFiles.write(set.resolve("output_2.pb"), Tensor.ofFloats(ElementType.F32, shape, X), "w");
    CliResult r = run("test", c.toString());
    assertEquals(1, r.code(), r.out() + r.err());
    assertEquals("FAIL test_three_outputs: test_data_set_0: output_1.pb is missing, but "
        + "output_2.pb is there\n0 passed, 1 failed\n", r.out());
  }

  @Test
  void toleranceOptionLoosensTheCheck() throws Exception {
    float[] y = doubled();
    y[0] += 0.01f;  // error 0.01 against |want| = 2.01
    Path c = writeCase("test_loose", "Add", 2, X, y);
    assertEquals(1, run("test", c.toString()).code());
    CliResult r = run("test", "--tolerance", "0.01", c.toString());
    assertEquals(0, r.code(), r.out() + r.err());
  }

  @Test
  void folderWithoutCasesIsAUserError() throws Exception {
    Files.createDirectories(dir.resolve("empty"));
    CliResult r = run("test", dir.resolve("empty").toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("no model.onnx"), r.err());
  }
}
