package dev.sohuc.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.asm.Assembler;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Compile-side checks that need no emulator: every op kind lowers, the container round-trips,
 * the assembly re-assembles to the same code, code size is independent of the sequence bound,
 * and unsupported ops are all reported at once.
 */
class SohuBackendTest {
  static final ElementType F32 = ElementType.F32;

  static TensorType seqType(long... tail) {
    List<Dim> d = new java.util.ArrayList<>();
    d.add(Dim.of(1));
    d.add(Dim.symbol("seq"));
    for (long t : tail) {
      d.add(Dim.of(t));
    }
    return new TensorType(d, F32);
  }

  static Value weight(Module m, FunctionBuilder b, String name, long... shape) {
    TensorType t = TensorType.of(F32, shape);
    long n = t.staticElementCount().orElseThrow();
    ByteBuffer bb = ByteBuffer.allocate((int) n * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < n; i++) {
      bb.putFloat((float) Math.sin(i * 0.37 + name.length()));
    }
    m.addWeight(new Weight(name, t, new Weight.Data.Inline(bb.array())));
    return b.add(new SourceOp.WeightRef(name, t), new Location(name), name);
  }

  /** A small encoder layer: layer_norm, matmul + bias, gelu, attention, residual add. */
  /** A second stream's pattern must name some op. */
  @Test
  void aSecondStreamThatNamesNoOpIsAnError() {
    BackendException e = assertThrows(BackendException.class, () -> SohuBackend.compile(
        encoder(64, 1), BackendOptions.defaults().withSecondStream(
            java.util.regex.Pattern.compile("no_such_op"), 0.5)));
    assertTrue(e.getMessage().equals("second stream: no op's result is named to match "
        + "no_such_op"), e.getMessage());
  }

  static Module encoder(long hidden, int layers) {
    Module m = new Module("enc");
    Value x = Value.argument("x", seqType(hidden));
    Function f = new Function("main", List.of(x));
    m.functions().add(f);
    FunctionBuilder b = new FunctionBuilder(f);
    Value h = x;
    for (int l = 0; l < layers; l++) {
      Value g = weight(m, b, "g" + l, hidden);
      Value be = weight(m, b, "b" + l, hidden);
      Value w = weight(m, b, "w" + l, hidden, hidden);
      Value bias = weight(m, b, "bias" + l, hidden);
      Value n = b.add(new TransformerOp.LayerNorm(h, g, be, -1, 1e-5), new Location("ln" + l));
      Value mm = b.add(new LinalgOp.MatMul(n, w), new Location("mm" + l));
      Value ad = b.add(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.ADD, mm, bias),
          new Location("bias" + l));
      Value ge = b.add(new TransformerOp.Gelu(ad, false), new Location("gelu" + l));
      h = b.add(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.ADD, ge, h),
          new Location("res" + l));
    }
    f.setOutputs(List.of(new Function.Output("y", h)));
    return m;
  }

  @Test
  void encoderCompilesAndRoundTrips() throws Exception {
    CompiledProgram c = SohuBackend.compile(encoder(64, 2), BackendOptions.defaults());
    SohuProgram p = c.program();
    assertEquals(List.of(new SohuProgram.ArgSlot("seq", 0)), p.args());
    assertEquals(p.code().size(), p.debug().size());
    assertTrue(p.debug().stream().anyMatch(d -> d.location().equals("mm0")));
    SohuProgram back = SohuReader.read(c.bytes(), "test.sohu");
    assertEquals(p.code(), back.code());
    SohuProgram reassembled = Assembler.assemble(c.assembly(), "test.s");
    assertEquals(p.code(), reassembled.code());
  }

  @Test
  void codeSizeDoesNotDependOnTheSequenceBound() {
    Module m = encoder(64, 1);
    int small = SohuBackend.compile(m, BackendOptions.defaults().withBound("seq", 16))
        .instructionCount();
    int large = SohuBackend.compile(m, BackendOptions.defaults().withBound("seq", 4096))
        .instructionCount();
    assertEquals(small, large);
  }

  @Test
  void attentionWithGqaAndMaskCompiles() {
    Module m = new Module("attn");
    TensorType q = new TensorType(List.of(Dim.of(1), Dim.of(4), Dim.symbol("seq"), Dim.of(16)),
        F32);
    TensorType kv = new TensorType(List.of(Dim.of(1), Dim.of(2), Dim.symbol("seq"), Dim.of(16)),
        F32);
    TensorType mask = new TensorType(List.of(Dim.of(1), Dim.of(1), Dim.of(1), Dim.symbol("seq")),
        F32);
    Value vq = Value.argument("q", q);
    Value vk = Value.argument("k", kv);
    Value vv = Value.argument("v", kv);
    Value vm = Value.argument("mask", mask);
    Function f = new Function("main", List.of(vq, vk, vv, vm));
    m.functions().add(f);
    FunctionBuilder b = new FunctionBuilder(f);
    Value o = b.add(new TransformerOp.Attention(vq, vk, vv, vm, 0.25, true, 0),
        new Location("attn"));
    f.setOutputs(List.of(new Function.Output("o", o)));
    CompiledProgram c = SohuBackend.compile(m, BackendOptions.defaults().withBound("seq", 300));
    assertTrue(c.instructionCount() > 10);
  }

  @Test
  void anOutputNamedLikeAnInputIsRefused() {
    String error = refusal("""
        module @dup {
        func @main(%x: tensor<4 x f32>) -> ("x": tensor<4 x f32>) {
          %y = neg %x : tensor<4 x f32>
          return %y
        }
        }
        """);
    assertEquals("output \"x\" has the name of an input or another output; a .sohu program "
        + "names each input and output once", error);
  }

  /**
   * Gathers of types allgather does not move (the ISA table's list) are refused, naming the
   * type; u8, stored as i8, too. (The IR already keeps reduce_scatter to f32 and bf16.)
   */
  @Test
  void blockCollectivesOfTypesTheLinkDoesNotMoveAreRefused() {
    String error = refusal("""
        module @types {
        func @main(%a: tensor<2 x i64>, %c: tensor<2 x u8>) -> (
            "g": tensor<4 x i64>, "u": tensor<4 x u8>) {
          %g = all_gather %a {chips = 2, rank = 0, axis = 0} : tensor<4 x i64>
          %u = all_gather %c {chips = 2, rank = 0, axis = 0} : tensor<4 x u8>
          return %g, %u
        }
        }
        """);
    for (String why : List.of("all_gather of i64", "all_gather of u8")) {
      assertTrue(error.contains(why), error);
    }
  }

  @Test
  void unsupportedOpsAreAllReported() {
    Module m = new Module("bad");
    Value x = Value.argument("x", seqType(8));
    Function f = new Function("main", List.of(x));
    m.functions().add(f);
    FunctionBuilder b = new FunctionBuilder(f);
    // reduce_prod and a cast from f32 to i8 have no lowering; both must be named in one error
    Value c = b.add(new ReductionOp.Reduce(ReductionOp.ReduceKind.PROD, x, List.of(-1L), true),
        new Location("ReduceProd_0"));
    Value i0 = b.add(new ElementwiseOp.Cast(c, ElementType.I8), new Location("Cast_0"));
    // the same reason again (a model's layers repeat their ops): said once, the others listed
    Value i1 = b.add(new ElementwiseOp.Cast(x, ElementType.I8), new Location("Cast_1"), "i1");
    Value i2 = b.add(new ElementwiseOp.Cast(c, ElementType.I8), new Location("Cast_2"), "i2");
    f.setOutputs(List.of(new Function.Output("a", i0), new Function.Output("b", i1),
        new Function.Output("c", i2)));
    BackendException e = assertThrows(BackendException.class,
        () -> SohuBackend.compile(m, BackendOptions.defaults()));
    assertTrue(e.getMessage().contains("Cast_0") && e.getMessage().contains("ReduceProd_0"),
        e.getMessage());
    assertTrue(e.getMessage().startsWith("unsupported by the sohu backend (4):\n"),
        e.getMessage());
    assertTrue(e.getMessage().contains(": cast from f32 to i8\n    and 2 more the same way: %i1, %i2"),
        e.getMessage());
    assertTrue(!e.getMessage().contains("Cast_1"), e.getMessage());
  }

  /**
   * An empty input (a dim of 0, which no op lowers) is named once, by the op that reads it: the
   * ops after it, empty only because of it, are not listed (a mutated MiniLM input listed 158).
   */
  @Test
  void anEmptyTensorIsNamedOnceWhereItAppears() {
    String error = refusal("""
        module @m {
          func @main(%x: tensor<0 x 8 x f32>, %w: tensor<8 x 4 x f32>) -> ("y": tensor<0 x 4 x f32>) {
            %e = exp %x : tensor<0 x 8 x f32> loc("Exp_0")
            %p = matmul %e, %w : tensor<0 x 4 x f32> loc("MatMul_0")
            %y = relu %p : tensor<0 x 4 x f32> loc("Relu_0")
            return %y
          }
        }
        """);
    assertEquals("unsupported by the sohu backend (1):\n  'exp' (%e, at \"Exp_0\"): %x tensor<0 x 8 x f32> is "
        + "empty (a dim of 0)", error);
  }

  /**
   * Constant positions past a table's rows (GPT-2's position embedding of 64 rows gathered at a
   * 130-token prompt) are refused when compiled: the row gather would read past the table.
   */
  @Test
  void constantIndicesPastATablesRowsAreRefused() {
    String error = refusal("""
        module @m {
          func @main(%t: tensor<64 x 8 x f32>) -> ("y": tensor<130 x 8 x f32>) {
            %pos = range {start = 0, limit = [130], delta = 1, dtype = i64} : tensor<130 x i64> loc("Range_0")
            %y = gather %t, %pos {axis = 0} : tensor<130 x 8 x f32> loc("Gather_0")
            return %y
          }
        }
        """);
    assertEquals("unsupported by the sohu backend (1):\n  'gather' (%y, at \"Gather_0\"): index 64 (element 64 "
        + "of %pos) is outside the 64 rows of %t", error);
  }

  /** The backend's error for the module of IR {@code text}, compiled with the defaults. */
  private static String refusal(String text) {
    Module m = IrParser.parse(text, "m.ir");
    return assertThrows(BackendException.class, () -> SohuBackend.compile(m, BackendOptions.defaults()))
        .getMessage();
  }

  @Test
  void modelTooBigForTheTargetNamesTheBuffer() throws Exception {
    java.nio.file.Path tiny = java.nio.file.Path.of("..", "targets", "tiny.json");
    Module m = encoder(64, 1);
    BackendException e = assertThrows(BackendException.class, () -> SohuBackend.compile(m,
        BackendOptions.defaults().withTarget(tiny).withBound("seq", 1L << 20)));
    // an explicit bound is never lowered: the error itemizes what HBM would hold
    assertTrue(e.getMessage().contains("HBM") && e.getMessage().contains("seq=1048576")
        && e.getMessage().contains("weights and constants") && e.getMessage().contains("intermediates"),
        e.getMessage());
  }

  /** A copy of targets/sohu.json with another HBM capacity. */
  static java.nio.file.Path withHbm(java.nio.file.Path dir, long bytes) throws Exception {
    String json = java.nio.file.Files.readString(java.nio.file.Path.of("..", "targets", "sohu.json"))
        .replaceFirst("(\"hbm\": \\{\\s*\"capacity\": \\{\\s*\"value\": )\\d+", "$1" + bytes);
    java.nio.file.Path t = dir.resolve("small-hbm.json");
    java.nio.file.Files.writeString(t, json);
    assertEquals(bytes, TargetInfo.load(t).hbmBytes());
    return t;
  }

  @Test
  void aTargetFieldOfTheWrongJsonTypeIsNamedWithTheTypeItNeeds(@org.junit.jupiter.api.io.TempDir
      java.nio.file.Path dir) throws Exception {
    java.nio.file.Path t = dir.resolve("bad.json");
    for (var c : java.util.Map.of(
        "{\"name\": 5}", "name: must be a string, not 5",
        "{\"hbm\": {\"capacity\": {\"value\": \"154618822656\"}}}",
        "hbm.capacity.value: must be a number, not \"154618822656\"",
        "{\"sram\": 134217728}", "sram: must be an object, not 134217728",
        "{\"chip\": {\"clock\": {\"unit\": \"Hz\"}}}",
        "chip.clock: must be a number, not {\"unit\":\"Hz\"}",
        "{\"memory\": {\"acc_bytes\": true}}", "memory.acc_bytes: must be a number, not true",
        "[134217728]", "the top level must be a JSON object").entrySet()) {
      java.nio.file.Files.writeString(t, c.getKey());
      assertEquals("target description " + t + ": " + c.getValue(),
          assertThrows(BackendException.class, () -> TargetInfo.load(t)).getMessage(), c.getKey());
    }
  }

  @Test
  void aTargetKeyGivenTwiceIsRefused(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws Exception {
    java.nio.file.Path t = dir.resolve("twice.json");
    java.nio.file.Files.writeString(t, "{\"name\": \"a\", \"sram\": {\"capacity\": 1, "
        + "\"capacity\": 2}}");
    assertEquals("target description " + t + " is not valid JSON: Duplicate field 'capacity'",
        assertThrows(BackendException.class, () -> TargetInfo.load(t)).getMessage());
  }

  @Test
  void aDefaultBoundThatDoesNotFitHbmIsHalvedUntilItFits(@org.junit.jupiter.api.io.TempDir
      java.nio.file.Path dir) throws Exception {
    Module m = encoder(64, 1);
    long at64 = SohuBackend.compile(m, BackendOptions.defaults().withBound("seq", 64)).hbmBytes();
    long at128 = SohuBackend.compile(m, BackendOptions.defaults().withBound("seq", 128)).hbmBytes();
    CompiledProgram c = SohuBackend.compile(m, BackendOptions.defaults()
        .withTarget(withHbm(dir, (at64 + at128) / 2)));
    assertEquals("{seq=64}", c.program().metadata().get("symbol_bounds"));
    assertEquals(at64, c.hbmBytes());
    assertEquals(1, c.notes().size(), c.notes().toString());
    assertTrue(c.notes().get(0).startsWith("?seq is bounded at 64, not the default 512"),
        c.notes().get(0));
  }

  @Test
  void shapeOnlyWeightsFollowTheConstantsWithoutAGap() {
    Module m = new Module("shape-only");
    Value x = Value.argument("x", seqType(64));
    Function f = new Function("main", List.of(x));
    m.functions().add(f);
    FunctionBuilder b = new FunctionBuilder(f);
    TensorType wt = TensorType.of(F32, 64, 64);
    m.addWeight(new Weight("w", wt, new Weight.Data.ShapeOnly()));
    Value w = b.add(new SourceOp.WeightRef("w", wt), new Location("w"), "w");
    Value y = b.add(new LinalgOp.MatMul(x, w), new Location("mm"));
    f.setOutputs(List.of(new Function.Output("y", y)));
    CompiledProgram c = SohuBackend.compile(m, BackendOptions.defaults().withBound("seq", 16));
    // base + 16 KiB of weight + x and y (4 KiB each) + no arena
    assertEquals(SohuBackend.HBM_BASE + 64 * 64 * 4 + 2 * 16 * 64 * 4, c.hbmBytes());
    assertTrue(c.notes().isEmpty());
  }
}

