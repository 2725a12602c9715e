package dev.sohuc.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.onnx.TensorFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RunCommandTest {
  // y = relu(x) + cast(ids), with a symbolic seq
  static final String IR = """
      module @m {
        func @main(%x: tensor<1 x ?seq x 4 x f32>, %ids: tensor<1 x ?seq x i64>) -> ("y": tensor<1 x ?seq x 4 x f32>, "c": tensor<1 x ?seq x f32>) {
          %y = relu %x : tensor<1 x ?seq x 4 x f32>
          %c = cast %ids {to = f32} : tensor<1 x ?seq x f32>
          return %y, %c
        }
      }
      """;

  @TempDir Path tmp;
  Path bin;

  @BeforeEach
  void compile() throws Exception {
    Path ir = tmp.resolve("m.ir");
    Files.writeString(ir, IR);
    bin = tmp.resolve("m.sohu");
    CliResult r = CliResult.run("compile", ir.toString(), "-o", bin.toString());
    assertEquals(0, r.code(), r.err());
  }

  Path inputs(String name, Tensor x, Tensor ids) {
    Path d = tmp.resolve(name);
    try {
      Files.createDirectories(d);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    TensorFiles.write(d.resolve("input_0.pb"), x, "x");
    if (ids != null) {
      TensorFiles.write(d.resolve("input_1.pb"), ids, "ids");
    }
    return d;
  }

  static Tensor x(int seq) {
    float[] v = new float[seq * 4];
    for (int i = 0; i < v.length; i++) {
      v[i] = i % 3 - 1.5f;
    }
    return Tensor.ofFloats(ElementType.F32, new long[] {1, seq, 4}, v);
  }

  static Tensor ids(int seq) {
    long[] v = new long[seq];
    for (int i = 0; i < seq; i++) {
      v[i] = 7 * i;
    }
    return Tensor.ofLongs(ElementType.I64, new long[] {1, seq}, v);
  }

  @Test
  void functionalRunWritesNamedOutputsAtTheInputLength() {
    Path out = tmp.resolve("out");
    CliResult r = CliResult.run("run", bin.toString(), "--inputs", inputs("in", x(3), ids(3)).toString(),
        "--output-dir", out.toString(), "--report");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("instructions"), r.out());
    assertTrue(r.out().contains("MFU"), r.out());
    TensorFiles.Named y = TensorFiles.readNamed(out.resolve("output_0.pb"));
    assertEquals("y", y.name());
    assertArrayEquals(new long[] {1, 3, 4}, y.tensor().shape());
    assertEquals(0.5f, y.tensor().floats()[2]);
    assertEquals(0f, y.tensor().floats()[0]);
    TensorFiles.Named c = TensorFiles.readNamed(out.resolve("output_1.pb"));
    assertArrayEquals(new float[] {0, 7, 14}, c.tensor().floats());
  }

  @Test
  void missingInputNamesTheSymbol() {
    CliResult r = CliResult.run("run", bin.toString(), "--inputs", inputs("in", x(3), null).toString(),
        "--output-dir", tmp.resolve("o").toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("input ids") && r.err().contains("missing"), r.err());
  }

  @Test
  void wrongDtypeNamesTheFileAndTheSymbol() {
    Path in = inputs("in", x(3), Tensor.zeros(ElementType.F32, 1, 3));
    CliResult r = CliResult.run("run", bin.toString(), "--inputs", in.toString(),
        "--output-dir", tmp.resolve("o").toString());
    assertEquals(1, r.code());
    assertEquals("error: " + in.resolve("input_1.pb") + " holds f32, but input ids of the program "
        + "is i64 [1, seq]", r.err().strip());
  }

  @Test
  void wrongShapeNamesTheFileAndTheSymbol() {
    Path in = inputs("in", Tensor.zeros(ElementType.F32, 1, 3, 5), ids(3));
    CliResult r = CliResult.run("run", bin.toString(), "--inputs", in.toString(),
        "--output-dir", tmp.resolve("o").toString());
    assertEquals(1, r.code());
    assertEquals("error: " + in.resolve("input_0.pb") + " has shape [1, 3, 5], but input x of the "
        + "program is f32 [1, seq, 4]", r.err().strip());
  }

  @Test
  void inconsistentSymbolIsAnError() {
    CliResult r = CliResult.run("run", bin.toString(), "--inputs", inputs("in", x(3), ids(4)).toString(),
        "--output-dir", tmp.resolve("o").toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("seq"), r.err());
  }

  @Test
  void timingModeTakesDimsFromShape() {
    CliResult r = CliResult.run("run", bin.toString(), "--mode", "timing", "--shape", "seq=100", "--report",
        "--trace", tmp.resolve("t.json").toString());
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("cycles") && r.out().contains("HBM"), r.out());
    assertTrue(Files.isRegularFile(tmp.resolve("t.json")));
  }

  @Test
  void timingModeFillsArgumentArraysFromTheInputs() throws Exception {
    Path src = tmp.resolve("a.s");
    Files.writeString(src, """
        .symbol in, "pos", i64, [1, "seq"], 0x1000, 64
        .arg seq, 0
        .arg "pos", 1, 8, seq
            ldarg r1, 0
            loop r1, done
            ldarg r3, 1, r2
            addi r2, r2, 1
        done:
            halt
        """);
    Path a = tmp.resolve("a.sohu");
    CliResult asm = CliResult.run("asm", src.toString(), "-o", a.toString());
    assertEquals(0, asm.code(), asm.err());
    CliResult dimsOnly = CliResult.run("run", a.toString(), "--mode", "timing", "--shape",
        "seq=2");
    assertEquals(1, dimsOnly.code());
    assertTrue(dimsOnly.err().contains("argument array pos (words 1..8) holds the values of "
        + "input pos: give them with --inputs DIR, or one value for every element with --shape pos=N"),
        dimsOnly.err());
    // one value for every element: seq = 2 of them
    CliResult uniform = CliResult.run("run", a.toString(), "--mode", "timing", "--shape", "seq=2",
        "--shape", "pos=1");
    assertEquals(0, uniform.code(), uniform.err());
    CliResult outside = CliResult.run("run", a.toString(), "--mode", "timing", "--shape", "seq=2",
        "--shape", "pos=2");
    assertEquals(1, outside.code());
    assertTrue(outside.err().contains("input pos: element 0 is 2, outside [0, seq) with seq = 2"),
        outside.err());
    Path in = tmp.resolve("pos");
    Files.createDirectories(in);
    TensorFiles.write(in.resolve("input_0.pb"),
        Tensor.ofLongs(ElementType.I64, new long[] {1, 3}, new long[] {2, 0, 1}), "pos");
    CliResult r = CliResult.run("run", a.toString(), "--mode", "timing", "--inputs",
        in.toString());
    assertEquals(0, r.code(), r.err());
    TensorFiles.write(in.resolve("input_0.pb"),
        Tensor.ofLongs(ElementType.I64, new long[] {1, 3}, new long[] {2, 3, 1}), "pos");
    CliResult bad = CliResult.run("run", a.toString(), "--mode", "timing", "--inputs",
        in.toString());
    assertEquals(1, bad.code());
    assertTrue(bad.err().contains("input pos: element 1 is 3, outside [0, seq) with seq = 3"),
        bad.err());
  }

  @Test
  void timingModeFillsAnArgumentArrayOverAnExpressionDim() throws Exception {
    // a step program's batch split over 8 chips: the input's dim is 8*"batch/8"
    Path src = tmp.resolve("e.s");
    Files.writeString(src, """
        .symbol in, "lengths", i64, ["8*\\"batch/8\\""], 0x1000, 128
        .arg "batch/8", 0
        .arg "lengths", 1, 16, "past"
        .arg past, 17
            halt
        """);
    Path e = tmp.resolve("e.sohu");
    CliResult asm = CliResult.run("asm", src.toString(), "-o", e.toString());
    assertEquals(0, asm.code(), asm.err());
    CliResult r = CliResult.run("run", e.toString(), "--mode", "timing", "--shape", "batch/8=2",
        "--shape", "past=40", "--shape", "lengths=30");
    assertEquals(0, r.code(), r.err());
    CliResult over = CliResult.run("run", e.toString(), "--mode", "timing", "--shape",
        "batch/8=3", "--shape", "past=40", "--shape", "lengths=30");
    assertEquals(1, over.code());
    assertTrue(over.err().contains("input lengths: [8*\"batch/8\"] holds more elements than the 16 "
        + "of its argument array"), over.err());
  }

  @Test
  void instructionCapTraps() {
    CliResult r = CliResult.run("run", bin.toString(), "--inputs", inputs("in", x(3), ids(3)).toString(),
        "--max-instructions", "5");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("error:") && !r.err().contains("internal error"), r.err());
  }

  @Test
  void workCapTraps() {
    CliResult r = CliResult.run("run", bin.toString(), "--inputs", inputs("in", x(3), ids(3)).toString(),
        "--max-cycles", "50");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("the work cap of 50 cycles of sohu engine time was reached (--max-cycles)")
        && !r.err().contains("internal error"), r.err());
  }

  @Test
  void badUsageExits2() {
    assertEquals(2, CliResult.run("run", bin.toString(), "--mode", "fast").code());
    assertEquals(2, CliResult.run("run", bin.toString()).code());
    CliResult zero = CliResult.run("run", bin.toString(), "--mode", "timing", "--max-cycles", "0");
    assertEquals(2, zero.code());
    assertTrue(zero.err().contains("--max-cycles must be positive"), zero.err());
  }

  /**
   * The tiny Llama's token ids pick rows of its 256-row embedding table and its positions rows
   * of its 128-row rotary tables: the binary says so (launch limits in its metadata), and a run
   * past them is refused instead of reading whatever lies beyond the tables.
   */
  @Test
  void runsPastTheModelsTablesAreRefused() {
    Path tiny = tmp.resolve("tiny.sohu");
    CliResult c = CliResult.run("compile", "../examples/tiny-llama", "-o", tiny.toString());
    assertEquals(0, c.code(), c.err());
    CliResult inspect = CliResult.run("inspect", tiny.toString());
    assertTrue(inspect.out().contains("dim_limits = seq<=128"), inspect.out());
    assertTrue(inspect.out().contains("index_limits = input_ids<256"), inspect.out());
    String[][] cases = {
        {"256", "4", "input input_ids: element 3 is 256, outside [0, 256): the rows of the table "
            + "it indexes (metadata index_limits)"},
        {"-1", "4", "input input_ids: element 3 is -1, outside [0, 256)"},
        {"1", "129", "dimensions: seq = 129 exceeds 128: the program slices a table of 128 rows "
            + "up to seq (metadata dim_limits)"}};
    for (String[] k : cases) {
      long[] v = new long[Integer.parseInt(k[1])];
      v[3] = Long.parseLong(k[0]);
      Path d = tmp.resolve("ids" + k[0]);
      try {
        Files.createDirectories(d);
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
      TensorFiles.write(d.resolve("input_0.pb"), Tensor.ofLongs(ElementType.I64, new long[] {1, v.length}, v),
          "input_ids");
      CliResult r = CliResult.run("run", tiny.toString(), "--inputs", d.toString(), "--output-dir",
          tmp.resolve("o").toString());
      assertEquals(1, r.code(), r.err());
      assertTrue(r.err().contains(k[2]), r.err());
    }
  }

  /**
   * A u8 tensor keeps its type through the binary: a u8 input passed on to an output reads back
   * as ONNX uint8 with its values, 200 as 200 (stored as i8 it read back as -56).
   */
  @Test
  void u8InputsAndOutputsKeepTheirValues() throws Exception {
    Path ir = tmp.resolve("u8.ir");
    Files.writeString(ir, """
        module @m {
          func @main(%q: tensor<2 x 3 x u8>) -> ("r": tensor<3 x 2 x u8>) {
            %r = reshape %q {shape = [3, 2]} : tensor<3 x 2 x u8>
            return %r
          }
        }
        """);
    Path u8 = tmp.resolve("u8.sohu");
    CliResult c = CliResult.run("compile", ir.toString(), "-o", u8.toString());
    assertEquals(0, c.code(), c.err());
    assertTrue(CliResult.run("inspect", u8.toString()).out().contains("u8      [2 x 3]"));
    Path in = tmp.resolve("u8in");
    Files.createDirectories(in);
    long[] values = {0, 1, 127, 128, 200, 255};
    TensorFiles.write(in.resolve("input_0.pb"), Tensor.ofLongs(ElementType.U8, new long[] {2, 3},
        values), "q");
    Path out = tmp.resolve("u8out");
    CliResult r = CliResult.run("run", u8.toString(), "--inputs", in.toString(), "--output-dir",
        out.toString());
    assertEquals(0, r.code(), r.err());
    Tensor back = TensorFiles.readNamed(out.resolve("output_0.pb")).tensor();
    assertEquals(ElementType.U8, back.elementType());
    assertArrayEquals(new long[] {3, 2}, back.shape());
    assertArrayEquals(values, back.longs());
  }

  @Test
  void anOutputFolderThatIsAFileIsAnError() throws Exception {
    Path file = tmp.resolve("taken");
    Files.writeString(file, "");
    CliResult r = CliResult.run("run", bin.toString(), "--inputs", inputs("in", x(3), ids(3)).toString(),
        "--output-dir", file.toString());
    assertEquals(1, r.code());
    assertEquals("error: " + file + ": exists and is not a folder", r.err().strip());
  }

  /** Timing mode has no input tensors, so the dims alone must fit what the program reserves. */
  @Test
  void timingDimsAboveTheCompiledBoundAreAnError() {
    CliResult r = CliResult.run("run", bin.toString(), "--mode", "timing", "--shape", "seq=100000");
    assertEquals(1, r.code());
    assertEquals("error: input x: f32 [1, seq, 4] at [1, 100000, 4] needs 1600000 bytes, more than the "
        + "8192 the program reserves for it (a symbolic dimension above its compiled bound)", r.err().strip());
  }
}
