package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.DType;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Two control streams (fork): private and shared tokens, queues that do not block each other,
 * barriers and halts per stream, and every misuse trapped the same way by both machines.
 */
class StreamsTest {

  /** Stream 1 doubles what stream 0 fills, told by shared token 24; each waits on its own 3. */
  private static final String HANDOFF = """
          li r2, 1
          li r4, 16
          fork main
          vbini mul, r0+64, r0, r0+0, r0, 2.0, r2, r4, f32, wait=24, signal=3
          nop wait=3
          halt
      main:
          vfill r0+0, r0, 1.5, r2, r4, f32, signal=24
          vfill r0+128, r0, 7.0, r2, r4, f32, signal=3
          nop wait=3
          halt
      """;

  private static FunctionalMachine functional(String src, Options o) {
    FunctionalMachine m = new Emulator(TestSupport.asm(src), TestSupport.TINY, o)
        .prepareFunctional(Map.of(), Map.of(), new HashMap<>());
    m.run();
    return m;
  }

  private static long cycles(String src) {
    return new Emulator(TestSupport.asm(src), TestSupport.TINY, TestSupport.opts())
        .runTiming(Map.of()).cycles();
  }

  private static void trapsInBoth(String src, int pc, String... parts) {
    Emulator emu = new Emulator(TestSupport.asm(src), TestSupport.TINY, TestSupport.opts());
    for (Trap t : new Trap[] {
        assertThrows(Trap.class, () -> emu.runFunctional(Map.of(), Map.of())),
        assertThrows(Trap.class, () -> emu.runTiming(Map.of()))}) {
      assertEquals(pc, t.pc(), t.getMessage());
      for (String p : parts) {
        assertTrue(t.getMessage().contains(p), "message lacks \"" + p + "\": " + t.getMessage());
      }
    }
  }

  @Test
  void streamOneReadsWhatStreamZeroSignalsThroughASharedToken() {
    FunctionalMachine m = functional(HANDOFF, TestSupport.opts());
    assertArrayEquals(new float[] {3, 3, 3, 3}, TestSupport.get(m, 64, DType.F32, 4));
    assertEquals(7.0f, TestSupport.get(m, 128, DType.F32));
    // every order the tokens allow gives the same numbers
    for (long seed = 1; seed <= 20; seed++) {
      FunctionalMachine r = functional(HANDOFF, TestSupport.opts().withScheduleSeed(seed));
      assertArrayEquals(TestSupport.get(m, 64, DType.F32, 16),
          TestSupport.get(r, 64, DType.F32, 16));
    }
    assertTrue(cycles(HANDOFF) > 0);
  }

  @Test
  void streamOnesRegistersStartAsACopy() {
    FunctionalMachine m = functional("""
        li r5, 40
        fork main
        addi r5, r5, 2
        li r6, 1
        vfill r0+0, r0, 9.0, r6, r6, f32, signal=25
        halt
        main:
        nop wait=25
        halt
        """, TestSupport.opts());
    assertEquals(40, m.regs[5], "stream 1 changed its own copy");
    assertEquals(9.0f, TestSupport.get(m, 0, DType.F32));
  }

  /**
   * Stream 0's VPU op waits for a slow DMA; stream 1's VPU work runs meanwhile. Issued by one
   * stream, the same work waits behind the blocked op in the one VPU queue.
   */
  @Test
  void aBlockedHeadDoesNotHoldUpTheOtherStreamsQueue() {
    String load = "li r3, 256\nli r2, 8\nli r4, 256\n"
        + "dma sram, r0+0, r3, hbm, r0+0, r3, 256, 256, signal=1\n"
        + "vfill r0+0, r0, 1.0, r2, r4, f32, wait=1\n";
    String regs = "li r5, 131072\nli r6, 1024\nli r7, 8\nli r8, 256\n";
    String work = "loop 40, w\nvun exp, r5+0, r6, r5+0, r6, r7, r8, f32\nw:\n";
    long serial = cycles(regs + load + work + "halt\n");
    long forked = cycles(regs + "fork main\n" + work + "halt\nmain:\n" + load + "halt\n");
    long dma = 64 + 65536 / 64;
    assertTrue(forked < serial - dma / 2, "forked " + forked + " cycles, serial " + serial);
  }

  /**
   * On the MXU, stream 1's ready mma goes before stream 0's when both can start (docs/isa.md,
   * rule 8): it waits for the one mma running, not for the other 19 of stream 0's loop.
   */
  @Test
  void theMxuStartsStreamOnesMmaFirstOnATie() {
    String regs = "li r2, 128\nli r3, 256\n";
    String mma = "mma r0+0, r2, r3+0, r2, r3+0, r2, 128, 128, 128, bf16";
    // stream 1's mma is issued once stream 0's loop has queued mmas behind the running one
    TimingReport r = new Emulator(TestSupport.asm(regs + "fork main\n"
        + ".debug \"short %s\", \"second\"\n" + "nop\n".repeat(8) + mma + "\nhalt\nmain:\n"
        + ".debug \"long %l\", \"first\"\nloop 20, done\n" + mma + "\ndone:\nhalt\n"),
        TestSupport.TINY, TestSupport.opts()).runTiming(Map.of());
    long oneMma = r.ops().stream().filter(o -> o.op().equals("long %l")).findFirst()
        .orElseThrow().endCycle() / 20;
    long shortEnd = r.ops().stream().filter(o -> o.op().equals("short %s")).findFirst()
        .orElseThrow().endCycle();
    assertTrue(shortEnd <= 3 * oneMma + 16, "stream 1's mma ended at " + shortEnd
        + ", an mma takes about " + oneMma);
  }

  /**
   * With {@code fork fair_dma=1} the DMA engine alternates between the streams on a tie
   * (docs/isa.md, rule 8): stream 1's short loads each wait for the one load running, not for
   * stream 0's whole loop of loads, as they do without it.
   */
  @Test
  void aFairDmaForkAlternatesTheStreamsLoads() {
    long[] fair = shortLoadsEndAndLongLoad(true);
    long[] plain = shortLoadsEndAndLongLoad(false);
    assertTrue(fair[0] <= 6 * fair[1], "stream 1's loads ended at " + fair[0]
        + ", a load of stream 0 takes about " + fair[1]);
    assertTrue(plain[0] >= 15 * plain[1], "without fair_dma stream 1's loads ended at "
        + plain[0] + ", a load of stream 0 takes about " + plain[1]);
  }

  /** When stream 1's three short loads end, and how long one of stream 0's 20 loads takes. */
  private static long[] shortLoadsEndAndLongLoad(boolean fair) {
    String regs = "li r2, 65536\nli r3, 1024\n";
    String load = "dma sram, r0+0, r3, hbm, r0+0, r3, 1024, r3";
    String shortLoad = "dma sram, r2+0, r3, hbm, r0+0, r3, 1024, 4";
    // stream 1's loads are issued once stream 0's loop has queued loads behind the running one
    TimingReport r = new Emulator(TestSupport.asm(regs + "fork main, fair_dma="
        + (fair ? 1 : 0) + "\n.debug \"short %s\", \"second\"\n" + "nop\n".repeat(8)
        + (shortLoad + "\n").repeat(3) + "halt\nmain:\n.debug \"long %l\", \"first\"\n"
        + "loop 20, done\n" + load + "\ndone:\nhalt\n"), TestSupport.TINY, TestSupport.opts())
        .runTiming(Map.of());
    long oneLoad = r.ops().stream().filter(o -> o.op().equals("long %l")).findFirst()
        .orElseThrow().endCycle() / 20;
    long shortEnd = r.ops().stream().filter(o -> o.op().equals("short %s")).findFirst()
        .orElseThrow().endCycle();
    return new long[] {shortEnd, oneLoad};
  }

  /** The profile charges the first stream's ops; the second's run beside them (self 0). */
  @Test
  void theProfileChargesTheFirstStream() {
    TimingReport r = new Emulator(TestSupport.asm("""
        li r3, 256
        fork main
        .debug "load %w", "second"
        dma sram, r0+0, r3, hbm, r0+0, r3, 256, 256, signal=24
        halt
        main:
        .debug "fill %x", "first"
        li r2, 8
        li r4, 65536
        vfill r4+0, r0, 1.0, r2, r2, f32, wait=24
        halt
        """), TestSupport.TINY, TestSupport.opts()).runTiming(Map.of());
    OpTiming load = r.ops().stream().filter(o -> o.op().equals("load %w")).findFirst()
        .orElseThrow();
    OpTiming fill = r.ops().stream().filter(o -> o.op().equals("fill %x")).findFirst()
        .orElseThrow();
    assertEquals(0, load.selfCycles());
    assertTrue(fill.selfCycles() > load.endCycle() - 100, "the fill waited for the load: "
        + fill.selfCycles());
  }

  @Test
  void eachStreamBarrierWaitsForItsOwnInstructions() {
    // stream 1's barrier does not wait for stream 0's VPU op, which waits for stream 1
    String src = """
        li r2, 1
        fork main
        vfill r0+0, r0, 2.0, r2, r2, f32
        barrier
        nop signal=24
        halt
        main:
        vfill r0+16, r0, 5.0, r2, r2, f32, wait=24
        barrier
        halt
        """;
    FunctionalMachine m = functional(src, TestSupport.opts());
    assertEquals(5.0f, TestSupport.get(m, 16, DType.F32));
    assertTrue(cycles(src) > 0);
  }

  @Test
  void aSecondForkWaitsForTheFirstStreamOne() {
    FunctionalMachine m = functional("""
        li r2, 1
        fork one
        vfill r0+0, r0, 1.0, r2, r2, f32
        halt
        one:
        fork two
        vfill r0+16, r0, 2.0, r2, r2, f32
        halt
        two:
        halt
        """, TestSupport.opts());
    assertEquals(1.0f, TestSupport.get(m, 0, DType.F32));
    assertEquals(2.0f, TestSupport.get(m, 16, DType.F32));
  }

  @Test
  void tokensBelow24AreEachStreamsOwn() {
    // stream 0 signals its token 5; stream 1's token 5 stays 0
    trapsInBoth("""
        fork main
        nop wait=5
        halt
        main:
        nop signal=5
        halt
        """, 1, "stream 1", "waits on stream 1's token 5 (count 0)");
  }

  @Test
  void bothStreamsWaitingIsADeadlock() {
    Emulator emu = new Emulator(TestSupport.asm("""
        fork main
        nop wait=24
        halt
        main:
        nop wait=25
        halt
        """), TestSupport.TINY, TestSupport.opts());
    Trap f = assertThrows(Trap.class, () -> emu.runFunctional(Map.of(), Map.of()));
    assertTrue(f.getMessage().contains("both streams wait: stream 0: the control unit waits on "
        + "token 25 (count 0) at pc 3; stream 1: the control unit waits on token 24 (count 0) "
        + "at pc 1"), f.getMessage());
    Trap t = assertThrows(Trap.class, () -> emu.runTiming(Map.of()));
    assertEquals(Trap.Kind.DEADLOCK, t.kind());
    assertTrue(t.getMessage().contains("waits on token 2"), t.getMessage());
  }

  @Test
  void misusesTrapInBothMachines() {
    trapsInBoth("""
        loop 2, e
        fork e
        nop
        e:
        halt
        """, 1, "fork inside a loop");
    trapsInBoth("""
        fork main
        fork one
        nop
        one:
        halt
        main:
        halt
        """, 1, "stream 1 forks (only stream 0 does)");
    trapsInBoth("""
        fork main
        nop
        main:
        halt
        """, 1, "stream 1 ran past the end of its code (the fork's body) without a halt");
    trapsInBoth("""
        li r1, 1
        fork 5
        halt
        """, 1, "the fork's body (5 instructions) runs past the end of the code (3 instructions)");
  }
}
