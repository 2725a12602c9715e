package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import dev.sohuc.isa.container.SohuWriter;
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
}
