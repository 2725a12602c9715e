package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import dev.sohuc.isa.container.SohuWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The public API end to end: symbols bound by name, symbolic dims, input errors. */
class EmulatorApiTest {
  static final String DOUBLER = """
      .symbol in, "x", f32, ["seq", 4], 0x1000, 1024
      .symbol out, "y", f32, ["seq", 4], 0x2000, 1024
      .arg seq, 0
          ldarg r1, 0
          li r2, 16
          li r3, 4
          li r4, 0x1000
          li r5, 0x2000
          dma sram, r0+0, r2, hbm, r4+0, r2, 16, r1, signal=1
          vbini mul, r0+0, r2, r0+0, r2, 2.0, r1, r3, f32, wait=1, signal=2
          dma hbm, r5+0, r2, sram, r0+0, r2, 16, r1, wait=2
          halt
      """;

  private static Emulator emulator() {
    // through the container writer and reader, as the CLI will get it
    SohuProgram p = SohuReader.read(SohuWriter.write(TestSupport.asm(DOUBLER)), "doubler.sohu");
    return new Emulator(p, TestSupport.TINY, Options.defaults());
  }

  @Test
  void bindsInputsAndOutputsByNameWithSymbolicDims() {
    float[] x = {1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4};
    FunctionalResult r = emulator().runFunctional(Map.of("x", HostTensor.ofF32(new long[] {3,
        4}, x)), Map.of());
    HostTensor y = r.outputs().get("y");
    assertArrayEquals(new long[] {3, 4}, y.shape());
    float[] want = new float[x.length];
    for (int i = 0; i < x.length; i++) {
      want[i] = 2 * x[i];
    }
    assertArrayEquals(want, y.toF32());
    assertEquals(Map.of("seq", 3L), r.dims());
  }

  @Test
  void timingTakesTheDimsAsArguments() {
    TimingReport small = emulator().runTiming(Map.of("seq", 2L));
    TimingReport big = emulator().runTiming(Map.of("seq", 16L));
    assertTrue(big.cycles() > small.cycles());
    EmulatorException e = assertThrows(EmulatorException.class,
        () -> emulator().runTiming(Map.of()));
    assertEquals("argument seq (argument-block word 0): not given, and no input shape implies "
        + "it", e.getMessage());
  }

  @Test
  void oneEmulatorRunsAgainAsAFreshOneWould() {
    // the emulator keeps its decoded program between runs (the serving benchmark times one
    // program at many shapes): each run still starts from nothing
    Emulator kept = emulator();
    for (long seq : new long[] {16, 2, 16}) {
      TimingReport again = kept.runTiming(Map.of("seq", seq));
      TimingReport fresh = emulator().runTiming(Map.of("seq", seq));
      assertEquals(fresh.cycles(), again.cycles());
      assertEquals(fresh.hbmBytes(), again.hbmBytes());
    }
    float[] x = {1, 2, 3, 4};
    assertArrayEquals(new float[] {2, 4, 6, 8}, kept.runFunctional(Map.of("x",
        HostTensor.ofF32(new long[] {1, 4}, x)), Map.of()).outputs().get("y").toF32());
    MultiChipTiming.Report sym = MultiChipTiming.runSymmetric(kept, 8, Map.of("seq", 4L),
        Map.of());
    assertEquals(emulator().runTiming(Map.of("seq", 4L)).cycles(), sym.cycles());
  }

  @Test
  void inputErrorsNameTheSymbol() {
    Emulator emu = emulator();
    HostTensor ok = HostTensor.ofF32(new long[] {2, 4}, new float[8]);
    assertEquals("input x: missing (the program expects f32 [seq, 4])",
        assertThrows(EmulatorException.class, () -> emu.runFunctional(Map.of(), Map.of()))
            .getMessage());
    HostTensor bf = new HostTensor(DType.BF16, new long[] {2, 4}, new byte[16]);
    assertEquals("input x: dtype bf16, but the program expects f32 [seq, 4]",
        assertThrows(EmulatorException.class,
            () -> emu.runFunctional(Map.of("x", bf), Map.of())).getMessage());
    HostTensor wrong = HostTensor.ofF32(new long[] {2, 5}, new float[10]);
    assertEquals("input x: dimension 1 is 5, but the program expects f32 [seq, 4]",
        assertThrows(EmulatorException.class,
            () -> emu.runFunctional(Map.of("x", wrong), Map.of())).getMessage());
    assertEquals("input x: dimension 0 (seq) is 2, but seq = 3",
        assertThrows(EmulatorException.class,
            () -> emu.runFunctional(Map.of("x", ok), Map.of("seq", 3L))).getMessage());
    assertTrue(assertThrows(EmulatorException.class,
        () -> emu.runFunctional(Map.of("x", ok, "z", ok), Map.of())).getMessage()
        .startsWith("input z: the program has no input of that name"));
    HostTensor huge = HostTensor.ofF32(new long[] {100, 4}, new float[400]);
    assertTrue(assertThrows(EmulatorException.class,
        () -> emu.runFunctional(Map.of("x", huge), Map.of())).getMessage()
        .contains("more than the 1024 bytes the program reserves"));
    assertTrue(assertThrows(EmulatorException.class,
        () -> emu.runFunctional(Map.of("x", ok), Map.of("batch", 1L))).getMessage()
        .startsWith("argument batch: the program has no symbolic dimension of that name"));
  }

  /**
   * The race check: with a schedule seed the engines' instructions run in random orders the
   * tokens allow. The doubler's store waits for the doubling, so every order gives the same
   * output; without that wait, some order stores the loaded rows before they are doubled.
   */
  @Test
  void aScheduleSeedRunsTheEnginesInOtherOrdersTheTokensAllow() {
    HostTensor x = HostTensor.ofF32(new long[] {3, 4}, new float[] {1, 2, 3, 4, 5, 6, 7, 8, 9,
        10, 11, 12});
    String racy = DOUBLER.replace("dma hbm, r5+0, r2, sram, r0+0, r2, 16, r1, wait=2",
        "dma hbm, r5+0, r2, sram, r0+0, r2, 16, r1");
    boolean raced = false;
    for (long seed = 0; seed < 20; seed++) {
      for (String asm : new String[] {DOUBLER, racy}) {
        SohuProgram p = TestSupport.asm(asm);
        float[] inOrder = new Emulator(p, TestSupport.TINY, Options.defaults())
            .runFunctional(Map.of("x", x), Map.of()).outputs().get("y").toF32();
        float[] shuffled = new Emulator(p, TestSupport.TINY,
            Options.defaults().withScheduleSeed(seed)).runFunctional(Map.of("x", x), Map.of())
            .outputs().get("y").toF32();
        if (asm.equals(DOUBLER)) {
          assertArrayEquals(inOrder, shuffled, "seed " + seed);
        } else {
          raced |= !java.util.Arrays.equals(inOrder, shuffled);
        }
      }
    }
    assertTrue(raced, "no order ran the racy store before the doubling");
  }

  /** A cache laid out at capacity 4 and appended to in place: the output shares its address. */
  static final String APPEND = """
      .symbol in, "cache", f32, [2, "past"@4, 2], 0x1000, 64
      .symbol in, "new", f32, [2, 1, 2], 0x2000, 16
      .symbol out, "out", f32, [2, "past+1"@4, 2], 0x1000, 64
      .arg past, 0
          ldarg r1, 0
          li r2, 8
          muli r3, r1, 8
          addi r3, r3, 0x1000
          li r4, 0x2000
          li r5, 32
          dma hbm, r3+0, r2, hbm, r4+0, r2, 8, 1, planes=2, dst_pstride=r5, src_pstride=r2
          halt
      """;

  @Test
  void capacityDimsLayOutTheirAxisAtTheCapacity() {
    SohuProgram p = SohuReader.read(SohuWriter.write(TestSupport.asm(APPEND)), "append.sohu");
    Emulator emu = new Emulator(p, TestSupport.TINY, Options.defaults());
    HostTensor cache = HostTensor.ofF32(new long[] {2, 3, 2}, new float[] {1, 2, 3, 4, 5, 6,
        7, 8, 9, 10, 11, 12});
    HostTensor add = HostTensor.ofF32(new long[] {2, 1, 2}, new float[] {-1, -2, -3, -4});
    HostTensor out = emu.runFunctional(Map.of("cache", cache, "new", add), Map.of())
        .outputs().get("out");
    assertArrayEquals(new long[] {2, 4, 2}, out.shape());
    assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6, -1, -2, 7, 8, 9, 10, 11, 12, -3, -4},
        out.toF32());
    HostTensor full = HostTensor.ofF32(new long[] {2, 5, 2}, new float[20]);
    assertEquals("input cache: dimension 1 is 5, above the capacity 4 the program lays it out "
        + "at", assertThrows(EmulatorException.class,
            () -> emu.runFunctional(Map.of("cache", full, "new", add), Map.of())).getMessage());
  }

  @Test
  void argumentBlockSitsAboveEverySymbol() {
    assertEquals(0x3000, emulator().argBase());
  }

  /** An array's bound names dims only through the symbols in it, never a number. */
  @Test
  void unknownDimsListTheSymbolsOfAnArraysBound() {
    for (String[] bound : new String[][] {{"8", "none"}, {"p-s+1", "p, s"}}) {
      SohuProgram p = TestSupport.asm("""
          .symbol in, "pos", i64, [4], 0x1000, 64
          .arg "pos", 0, 4, "%s"
              halt
          """.formatted(bound[0]));
      Emulator emu = new Emulator(p, TestSupport.TINY, Options.defaults());
      assertEquals("argument seq: the program has no symbolic dimension of that name (it has: " + bound[1] + ")",
          assertThrows(EmulatorException.class, () -> emu.runTiming(Map.of("seq", 1L),
              Map.of("pos", new long[] {1, 2, 3, 4}))).getMessage());
    }
    // a number bound is stated as it is
    SohuProgram p = TestSupport.asm("""
        .symbol in, "pos", i64, [4], 0x1000, 64
        .arg "pos", 0, 4, "8"
            halt
        """);
    Emulator emu = new Emulator(p, TestSupport.TINY, Options.defaults());
    assertEquals("input pos: element 2 is 8, outside [0, 8)", assertThrows(EmulatorException.class,
        () -> emu.runTiming(Map.of(), Map.of("pos", new long[] {1, 2, 8, 4}))).getMessage());
  }

  /** And above the working memory the program declares (its intermediates), which it writes. */
  @Test
  void argumentBlockSitsAboveTheWorkingMemory() {
    SohuProgram p = TestSupport.asm(DOUBLER);
    java.util.TreeMap<String, String> meta = new java.util.TreeMap<>(p.metadata());
    meta.put("hbm_bytes", Long.toString(0x5432));
    SohuProgram withMemory = new SohuProgram(p.target(), p.code(), p.constants(), p.symbols(), p.debug(), meta,
        p.args());
    assertEquals(0x6000, new Emulator(withMemory, TestSupport.TINY, Options.defaults()).argBase());
    meta.put("hbm_bytes", "lots");
    SohuProgram bad = new SohuProgram(p.target(), p.code(), p.constants(), p.symbols(), p.debug(), meta, p.args());
    assertEquals("metadata hbm_bytes \"lots\" is not a byte count", assertThrows(EmulatorException.class,
        () -> new Emulator(bad, TestSupport.TINY, Options.defaults())).getMessage());
  }

  /**
   * A working memory or a symbol whose end passes 2^63 must not wrap to a small or negative
   * address and so slip under the check against the target's HBM.
   */
  @Test
  void regionsPastTheTargetsHbmAreRefusedBeforeTheirEndsWrap() {
    SohuProgram p = TestSupport.asm(DOUBLER);
    java.util.TreeMap<String, String> meta = new java.util.TreeMap<>(p.metadata());
    meta.put("hbm_bytes", Long.toString(Long.MAX_VALUE - 100));
    SohuProgram huge = new SohuProgram(p.target(), p.code(), p.constants(), p.symbols(), p.debug(), meta, p.args());
    String m = assertThrows(EmulatorException.class,
        () -> new Emulator(huge, TestSupport.TINY, Options.defaults())).getMessage();
    assertTrue(m.startsWith("metadata hbm_bytes: HBM [0, +9223372036854775707) lies outside target"), m);

    SohuProgram wraps = TestSupport.asm("""
        .symbol in, "x", f32, [4], 0x7ffffffffffffff0, 16
            halt
        """);
    m = assertThrows(EmulatorException.class,
        () -> new Emulator(wraps, TestSupport.TINY, Options.defaults())).getMessage();
    assertTrue(m.startsWith("symbol x: HBM [9223372036854775792, +16) lies outside target"), m);
  }

  /** y[i] = table[pos[i]]: the positions reach the control unit as an argument array. */
  static final String GATHER_ROWS = """
      .symbol in, "table", f32, [8, 4], 0x1000, 128
      .symbol in, "pos", i64, ["batch"], 0x2000, 128
      .symbol out, "y", f32, ["batch", 4], 0x3000, 128
      .arg batch, 0
      .arg past, 1
      .arg "pos", 2, 8, past
          ldarg r1, 0
          li r5, 0x3000
          loop r1, done
          ldarg r3, 2, r2
          shli r4, r3, 4
          addi r4, r4, 0x1000
          dma hbm, r5+0, r0, hbm, r4+0, r0, 16, 1, signal=1
          nop wait=1
          addi r5, r5, 16
          addi r2, r2, 1
      done:
          halt
      """;

  private static final HostTensor TABLE = HostTensor.ofF32(new long[] {8, 4}, new float[] {
      0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33, 40, 41, 42, 43, 50, 51, 52, 53,
      60, 61, 62, 63, 70, 71, 72, 73});

  private static HostTensor ints(DType dtype, long... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * dtype.bytes())
        .order(ByteOrder.LITTLE_ENDIAN);
    for (long v : values) {
      if (dtype == DType.I64) {
        b.putLong(v);
      } else {
        b.putInt((int) v);
      }
    }
    return new HostTensor(dtype, new long[] {values.length}, b.array());
  }

  private static Emulator gather(String source) {
    SohuProgram p = SohuReader.read(SohuWriter.write(TestSupport.asm(source)), "gather.sohu");
    return new Emulator(p, TestSupport.TINY, TestSupport.opts());
  }

  private static String functionalError(Emulator emu, HostTensor pos) {
    return assertThrows(EmulatorException.class, () -> emu.runFunctional(Map.of("table", TABLE,
        "pos", pos), Map.of("past", 8L))).getMessage();
  }

  @Test
  void anArgumentArrayHoldsAnIntegerInputsValues() {
    Emulator emu = gather(GATHER_ROWS);
    float[] want = {30, 31, 32, 33, 0, 1, 2, 3, 70, 71, 72, 73};
    FunctionalResult r = emu.runFunctional(Map.of("table", TABLE, "pos",
        ints(DType.I64, 3, 0, 7)), Map.of("past", 8L));
    assertArrayEquals(want, r.outputs().get("y").toF32());
    assertArrayEquals(want, gather(GATHER_ROWS.replace("\"pos\", i64", "\"pos\", i32"))
        .runFunctional(Map.of("table", TABLE, "pos", ints(DType.I32, 3, 0, 7)), Map.of("past", 8L))
        .outputs().get("y").toF32());

    FunctionalMachine m = emu.prepareFunctional(Map.of("table", TABLE, "pos",
        ints(DType.I64, 3, 0, 7)), Map.of("past", 8L), new java.util.HashMap<>());
    assertEquals(7, m.hbm.readLong(0x2000 + 16), "the input lies at its own address too");
    assertEquals(3, m.hbm.readLong(emu.argBase()));
    assertEquals(8, m.hbm.readLong(emu.argBase() + 8));
    assertEquals(7, m.hbm.readLong(emu.argBase() + 8 * 4));
    assertEquals(0, m.hbm.readLong(emu.argBase() + 8 * 5), "words past the values are 0");
  }

  @Test
  void argumentArrayValuesAreChecked() {
    Emulator emu = gather(GATHER_ROWS);
    assertEquals("input pos: element 1 is 8, outside [0, past) with past = 8",
        functionalError(emu, ints(DType.I64, 3, 8)));
    assertEquals("input pos: element 0 is -1, outside [0, past) with past = 8",
        functionalError(emu, ints(DType.I64, -1, 2)));
    assertEquals("input pos: 9 elements, more than the 8 words of its argument array pos "
        + "(words 2..9)", functionalError(emu, ints(DType.I64, 0, 0, 0, 0, 0, 0, 0, 0, 0)));
    Emulator floats = gather(GATHER_ROWS.replace("\"pos\", i64", "\"pos\", f32"));
    assertEquals("input pos fills argument array pos (words 2..9): dtype f32, but only an i64 or "
        + "i32 tensor holds integers", functionalError(floats, HostTensor.ofF32(new long[] {2},
        1, 2)));
    assertEquals("argument array nope (words 0..3): the program has no input of that name to "
        + "take its values from", assertThrows(EmulatorException.class,
            () -> gather(".arg past, 4\n.arg nope, 0, 4, past\nhalt\n")).getMessage());
  }

  @Test
  void timingModeTakesArgumentArraysByName() {
    Emulator emu = gather(GATHER_ROWS);
    Map<String, Long> dims = Map.of("batch", 3L, "past", 8L);
    Map<String, long[]> arrays = Map.of("pos", new long[] {3, 0, 7});
    TimingReport r = emu.runTiming(dims, arrays);
    assertEquals(emu.runFunctional(Map.of("table", TABLE, "pos", ints(DType.I64, 3, 0, 7)),
        Map.of("past", 8L)).instructions(), r.instructions());
    assertEquals("argument array pos (words 2..9): not given (the values of input pos)",
        assertThrows(EmulatorException.class, () -> emu.runTiming(dims)).getMessage());
    assertEquals("input pos: element 1 is 9, outside [0, past) with past = 8",
        assertThrows(EmulatorException.class, () -> emu.runTiming(dims,
            Map.of("pos", new long[] {3, 9}))).getMessage());
    assertEquals("argument array lens: the program has no argument array of that name (it has: "
        + "pos)", assertThrows(EmulatorException.class, () -> emu.runTiming(dims,
            Map.of("pos", new long[] {1}, "lens", new long[] {1}))).getMessage());

    SohuProgram p = TestSupport.asm(GATHER_ROWS);
    assertEquals(r.cycles(), MultiChipTiming.runSymmetric(p, 2, TestSupport.TINY,
        TestSupport.opts(), dims, arrays).cycles());
    assertEquals(r.cycles(), MultiChipTiming.run(List.of(p, p), TestSupport.TINY,
        TestSupport.opts(), List.of(dims, dims), List.of(arrays, arrays)).cycles());
    assertThrows(EmulatorException.class, () -> MultiChipTiming.runSymmetric(p, 2,
        TestSupport.TINY, TestSupport.opts(), dims));
  }

  /**
   * The compiler's launch limits (metadata dim_limits and index_limits): a launch whose dims
   * exceed a sliced table's rows, or whose index input picks a row past its table, is refused
   * in both modes (the index values only where there are values, functional mode).
   */
  @Test
  void launchLimitsInTheMetadataAreChecked() {
    String limited = GATHER_ROWS.replace(".arg batch, 0", """
        .meta "dim_limits", "batch+past<=10"
        .meta "index_limits", "pos<5"
        .arg batch, 0""");
    Emulator emu = gather(limited);
    assertArrayEquals(new float[] {30, 31, 32, 33, 0, 1, 2, 3}, emu.runFunctional(Map.of("table",
        TABLE, "pos", ints(DType.I64, 3, 0)), Map.of("past", 8L)).outputs().get("y").toF32());
    assertEquals("input pos: element 2 is 7, outside [0, 5): the rows of the table it indexes "
        + "(metadata index_limits)", assertThrows(EmulatorException.class, () -> emu.runFunctional(
            Map.of("table", TABLE, "pos", ints(DType.I64, 3, 0, 7)), Map.of("past", 7L))).getMessage());
    String tooLong = "dimensions: batch+past = 11 exceeds 10: the program slices a table of 10 rows "
        + "up to batch+past (metadata dim_limits)";
    assertEquals(tooLong, functionalError(emu, ints(DType.I64, 3, 0, 1)));
    assertEquals(tooLong, assertThrows(EmulatorException.class,
        () -> emu.runTiming(Map.of("batch", 3L, "past", 8L))).getMessage());
    Emulator onFloats = gather(limited.replace("\"pos<5\"", "\"table<5\""));
    assertEquals("input table: dtype f32, but metadata index_limits takes its values as row indices",
        assertThrows(EmulatorException.class, () -> onFloats.runFunctional(Map.of("table", TABLE,
            "pos", ints(DType.I64, 3, 0)), Map.of("past", 8L))).getMessage());
    Emulator malformed = gather(GATHER_ROWS.replace(".arg batch, 0", """
        .meta "dim_limits", "past"
        .arg batch, 0"""));
    assertEquals("metadata dim_limits: entry 'past' is not of the form NAME<=DIMS",
        assertThrows(EmulatorException.class, () -> malformed.runTiming(Map.of("batch", 1L,
            "past", 8L))).getMessage());
    // a slice of a symbolic axis up to another symbolic end: both sides dims
    Emulator symbolic = gather(GATHER_ROWS.replace(".arg batch, 0", """
        .meta "dim_limits", "batch+1<=past"
        .arg batch, 0"""));
    assertEquals("dimensions: batch+1 = 9 exceeds past = 8: the program slices its 8 rows up to "
        + "batch+1 (metadata dim_limits)", assertThrows(EmulatorException.class,
            () -> symbolic.runTiming(Map.of("batch", 8L, "past", 8L))).getMessage());
    assertArrayEquals(new float[] {30, 31, 32, 33, 0, 1, 2, 3}, symbolic.runFunctional(Map.of("table",
        TABLE, "pos", ints(DType.I64, 3, 0)), Map.of("past", 8L)).outputs().get("y").toF32());
  }

  /** Loading one input must not overwrite another or the constants (an output may alias one). */
  @Test
  void inputsOverTheConstantsOrEachOtherAreRefused() {
    SohuProgram two = TestSupport.asm("""
        .symbol in, "a", f32, [4], 0x1000, 16
        .symbol in, "b", f32, [4], 0x1008, 16
        .symbol out, "c", f32, [4], 0x1000, 16
            halt
        """);
    assertEquals("inputs a and b overlap in HBM ([4096, +16) and [4104, +16))",
        assertThrows(EmulatorException.class,
            () -> new Emulator(two, TestSupport.TINY, Options.defaults())).getMessage());
    SohuProgram p = TestSupport.asm(DOUBLER);
    SohuProgram overConstants = new SohuProgram(p.target(), p.code(),
        new SohuProgram.InlineConstants(0x1100, new byte[64]), p.symbols(), p.debug(), p.metadata(), p.args());
    assertEquals("symbol x: HBM [4096, +1024) overlaps the constants [4352, +64)",
        assertThrows(EmulatorException.class,
            () -> new Emulator(overConstants, TestSupport.TINY, Options.defaults())).getMessage());
    // an output over an input (a cache appended in place) is fine
    new Emulator(TestSupport.asm(DOUBLER.replace("0x2000, 1024", "0x1000, 1024")), TestSupport.TINY,
        Options.defaults());
  }
}
