package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.Engine;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The timing model against its own bounds on the tiny target (1 GHz, HBM 64 B/cycle with 100
 * cycles latency, bf16 MXU 8192 MACs/cycle, tables' fixed costs: dma 64, mma 128 cycles).
 */
class TimingTest {
  private static final int N = 50;
  /** 256 rows x 256 bytes from HBM: 64 + 65536 / 64 cycles. */
  private static final long DMA_CYCLES = 64 + 65536 / 64;
  /** 128 x 128 x 256 bf16 occupies the MXU for 128 * 128 * 256 / 8192 cycles. */
  private static final long MMA_CYCLES = 128 * 128 * 256 / 8192;
  /** ...and its result follows 128 cycles later (pipeline latency, not occupancy). */
  private static final long MMA_LATENCY = 128;

  private static TimingReport timing(String src) {
    return new Emulator(TestSupport.asm(src), TestSupport.TINY, TestSupport.opts())
        .runTiming(Map.of());
  }

  private static void within5Percent(double expected, double actual, String what) {
    assertTrue(Math.abs(actual - expected) <= 0.05 * expected, what + ": expected about "
        + expected + ", got " + actual);
  }

  @Test
  void dmaBoundProgramTakesItsDmaTime() {
    TimingReport r = timing("""
        li r3, 256
        loop 50, e
        dma sram, r0+0, r3, hbm, r0+0, r3, 256, 256
        e:
        halt
        """);
    within5Percent(N * DMA_CYCLES, r.cycles(), "cycles");
    assertEquals(N * DMA_CYCLES, r.engines().get(Engine.DMA).busyCycles());
    assertEquals(N * 65536L, r.hbmBytes());
    assertFalse(r.computeBound());
    // the fixed 64 cycles per DMA are overhead: 1024 of every 1088 cycles move data
    within5Percent(1024.0 / 1088, r.fractionOfBound(), "share of HBM bandwidth");
    assertEquals(N + 3, r.instructions());
  }

  @Test
  void computeBoundProgramTakesItsMxuTime() {
    TimingReport r = timing("""
        li r2, 128
        loop 50, e
        mma r0+0, r2, r0+0, r2, r0+0, r2, 128, 128, 256, bf16, accumulate=1
        e:
        halt
        """);
    // back-to-back tiles pipeline: the latency shows once, at the end
    within5Percent(N * MMA_CYCLES + MMA_LATENCY, r.cycles(), "cycles");
    assertEquals(N * MMA_CYCLES, r.engines().get(Engine.MXU).busyCycles());
    double flops = 2.0 * 128 * 128 * 256 * N;
    assertEquals(flops, r.flops());
    assertEquals(128L * 128 * 256 * N, r.macsByType().get(DType.BF16));
    assertTrue(r.computeBound());
    // the 128-cycle latency is not occupancy: back-to-back tiles run at the bf16 peak
    within5Percent(1.0, r.mfu(), "MFU");
    within5Percent(0.5, r.mfuFp8(), "MFU against the FP8 peak");
  }

  private static String doubleBuffered(boolean twoBuffers) {
    // DMA fills buffer r10 (token 1: full), mma consumes it (token 2: free); with two buffers
    // the DMA of tile i+1 overlaps the mma of tile i
    return """
        li r2, 128
        li r3, 256
        li r10, 65536
        li r11, %s
        li r12, 196608
        nop signal=2
        %s
        loop 50, e
        dma sram, r10+0, r3, hbm, r4+0, r3, 256, 256, wait=2, signal=1
        mma r0+0, r2, r12+0, r3, r10+0, r3, 128, 128, 256, bf16, accumulate=1, wait=1, signal=2
        sub r10, r11, r10
        addi r4, r4, 65536
        e:
        halt
        """.formatted(twoBuffers ? "65536 + 131072" : "131072",
        twoBuffers ? "nop signal=2" : "");
  }

  @Test
  void doubleBufferedDmaHidesBehindCompute() {
    TimingReport overlapped = timing(doubleBuffered(true));
    TimingReport serial = timing(doubleBuffered(false));
    long bound = Math.max(N * DMA_CYCLES, N * MMA_CYCLES);
    within5Percent(bound, overlapped.cycles(), "double-buffered cycles");
    // single-buffered, each tile waits for the previous mma's result: the latency is exposed
    long serialExpected = N * (DMA_CYCLES + 100 + MMA_CYCLES + MMA_LATENCY);
    within5Percent(serialExpected, serial.cycles(), "single-buffered cycles");
    // the MXU is busy for all of its work either way, but only the overlapped run hides it
    assertEquals(N * MMA_CYCLES, overlapped.engines().get(Engine.MXU).busyCycles());
    assertTrue(overlapped.engines().get(Engine.DMA).busyShare() > 0.95);
  }

  @Test
  void computeBoundDoubleBufferingHidesTheDma() {
    // the mma is 4x longer (k = 1024) than the DMA of its B tile (the same 64 KiB)
    String src = doubleBuffered(true).replace("128, 128, 256, bf16", "128, 128, 1024, bf16");
    TimingReport r = timing(src);
    long mma = 128L * 128 * 1024 / 8192;
    within5Percent(N * mma + DMA_CYCLES + MMA_LATENCY, r.cycles(), "cycles");
  }

  @Test
  void functionalResultOfTheDoubleBufferedProgramIsDeterministic() {
    Emulator emu = new Emulator(TestSupport.asm(doubleBuffered(true).replace("loop 50", "loop 3")),
        TestSupport.TINY, TestSupport.opts());
    FunctionalResult a = emu.runFunctional(Map.of(), Map.of());
    assertEquals(3 * 4 + 7 + 1 + 1, a.instructions());
  }

  @Test
  void argumentsFeedCostsThroughRegisters() {
    String src = """
        .arg k, 0
        ldarg r5, 0
        li r2, 128
        mma r0+0, r2, r0+0, r2, r0+0, r2, 128, 128, r5, bf16
        halt
        """;
    Emulator emu = new Emulator(TestSupport.asm(src), TestSupport.TINY, TestSupport.opts());
    long small = emu.runTiming(Map.of("k", 256L)).engines().get(Engine.MXU).busyCycles();
    long big = emu.runTiming(Map.of("k", 2048L)).engines().get(Engine.MXU).busyCycles();
    assertEquals(512, small);
    assertEquals(4096, big);
  }

  @Test
  void ldargWithARegisterIndexFeedsCostsToo() {
    // k is word 1 + r1 of the block: the register picks which argument drives the mma
    String src = """
        .arg k0, 0
        .arg k1, 1
        .arg pick, 2
        ldarg r1, 2
        ldarg r5, 0, r1
        li r2, 128
        mma r0+0, r2, r0+0, r2, r0+0, r2, 128, 128, r5, bf16
        halt
        """;
    Emulator emu = new Emulator(TestSupport.asm(src), TestSupport.TINY, TestSupport.opts());
    Map<String, Long> dims = new java.util.HashMap<>(Map.of("k0", 256L, "k1", 2048L));
    dims.put("pick", 0L);
    assertEquals(512, emu.runTiming(dims).engines().get(Engine.MXU).busyCycles());
    dims.put("pick", 1L);
    assertEquals(4096, emu.runTiming(dims).engines().get(Engine.MXU).busyCycles());
  }

  @Test
  void reportRenders() {
    TimingReport r = timing(doubleBuffered(true));
    String text = r.render();
    for (String s : new String[] {"cycles", "MXU", "DMA", "MFU", "HBM traffic", "roofline",
        "memory-bound"}) {
      assertTrue(text.contains(s), "report lacks " + s + ":\n" + text);
    }
  }

  @Test
  void partialTilesArePaddedWhenTheTargetSaysSo() {
    String src = """
        li r2, 128
        mma r0+0, r2, r0+0, r2, r0+0, r2, 64, 32, 1024, bf16
        halt
        """;
    TimingReport tiny = timing(src);
    assertEquals(64 * 32 * 1024 / 8192, tiny.engines().get(Engine.MXU).busyCycles());
    TimingReport sohu = new Emulator(TestSupport.asm(src), MachineDescription.defaultTarget(),
        TestSupport.opts()).runTiming(Map.of());
    double macsPerCycle = 4.85e15 / 2 / 1.5e9;
    assertEquals((long) Math.ceil(128 * 128 * 1024 / macsPerCycle),
        sohu.engines().get(Engine.MXU).busyCycles());
    assertEquals(64L * 32 * 1024, sohu.macsByType().get(DType.BF16));
  }

  @Test
  void profileChargesEachOpItsOwnTime() {
    // a DMA-bound op, then (after a barrier) an MXU-bound op
    TimingReport r = timing("""
        .debug "load %w", "model.w"
        li r3, 256
        li r2, 128
        loop 50, e
        dma sram, r0+0, r3, hbm, r0+0, r3, 256, 256
        e:
        barrier
        .debug "matmul %y", "model.y"
        mma r0+0, r2, r0+0, r2, r0+0, r2, 128, 128, 256, bf16
        halt
        """);
    List<OpTiming> ops = r.ops();
    assertEquals(List.of("load %w", "matmul %y"), ops.stream().map(OpTiming::op).toList());
    OpTiming load = ops.get(0);
    OpTiming mm = ops.get(1);
    assertEquals("model.w", load.location());
    assertEquals(N * DMA_CYCLES, load.busy(Engine.DMA));
    assertEquals(N * 65536L, load.hbmBytes());
    assertEquals(MMA_CYCLES, mm.busy(Engine.MXU));
    assertEquals(2.0 * 128 * 128 * 256, mm.flops());
    assertTrue(mm.startCycle() >= load.endCycle(), "the mma waits for the loads");
    // self times tile the run: the loads' end, then the mma's occupancy and latency
    assertEquals(r.cycles(), load.selfCycles() + mm.selfCycles());
    assertEquals(MMA_CYCLES + MMA_LATENCY, mm.selfCycles(), 4);
    String table = r.renderProfile(5);
    assertTrue(table.contains("load %w") && table.contains("by kind:")
        && table.indexOf("load %w") < table.indexOf("matmul %y"), table);
  }
}
