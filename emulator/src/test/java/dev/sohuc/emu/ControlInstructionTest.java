package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.sohuc.isa.container.SohuProgram;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The control unit: scalar arithmetic, ldarg, loops, nop/barrier/halt with tokens. */
class ControlInstructionTest {

  private static FunctionalMachine run(String src) {
    FunctionalMachine m = TestSupport.machine(src);
    m.run();
    return m;
  }

  @Test
  void scalarArithmetic() {
    FunctionalMachine m = run("""
        li r1, 0x100000000
        li r2, -7
        add r3, r1, r2
        sub r4, r2, r1
        mul r5, r1, r1
        min r6, r1, r2
        max r7, r1, r2
        addi r8, r2, -2147483648
        muli r9, r2, 3
        shli r10, r2, 60
        shri r11, r2, 60
        li r0, 99
        add r12, r0, r0
        li r13, 0x7fffffffffffffff
        addi r13, r13, 1
        halt
        """);
    long a = 0x1_0000_0000L;
    long b = -7;
    assertEquals(a + b, m.regs[3]);
    assertEquals(b - a, m.regs[4]);
    assertEquals(a * a, m.regs[5]); // low 64 bits: 2^64 wraps to 0
    assertEquals(b, m.regs[6]);
    assertEquals(a, m.regs[7]);
    assertEquals(b - 2147483648L, m.regs[8]);
    assertEquals(-21, m.regs[9]);
    assertEquals(b << 60, m.regs[10]);
    assertEquals(b >>> 60, m.regs[11]);
    assertEquals(0, m.regs[0], "r0 reads as zero, writes are dropped");
    assertEquals(0, m.regs[12]);
    assertEquals(Long.MIN_VALUE, m.regs[13], "add wraps");
  }

  @Test
  void ldargReadsTheArgumentBlockInHbm() {
    SohuProgram p = TestSupport.asm("""
        .arg seq, 0
        .arg batch, 3
        ldarg r1, 0
        ldarg r2, 3
        ldarg r3, 1
        halt
        """);
    Emulator emu = new Emulator(p, TestSupport.TINY, TestSupport.opts());
    FunctionalMachine m = emu.prepareFunctional(Map.of(), Map.of("seq", 77L, "batch", 5L),
        new HashMap<>());
    m.run();
    assertEquals(77, m.regs[1]);
    assertEquals(5, m.regs[2]);
    assertEquals(0, m.regs[3], "an unused word of the block reads as zero");
    assertEquals(77, m.hbm.readLong(emu.argBase()));
  }

  @Test
  void ldargAddsItsRegisterToTheIndex() {
    SohuProgram p = TestSupport.asm("""
        .arg a, 0
        .arg b, 1
        .arg c, 2
        li r7, 2
        ldarg r1, 0, r7
        li r7, -1
        ldarg r2, 2, r7
        ldarg r3, 1, r0
        halt
        """);
    FunctionalMachine m = new Emulator(p, TestSupport.TINY, TestSupport.opts())
        .prepareFunctional(Map.of(), Map.of("a", 10L, "b", 11L, "c", 12L), new HashMap<>());
    m.run();
    assertEquals(12, m.regs[1]);
    assertEquals(11, m.regs[2], "a negative register steps back");
    assertEquals(11, m.regs[3]);
  }

  @Test
  void nestedLoopsCountEveryIteration() {
    // outer 3 x (inner 4 x r1 += 1; r2 += 1), then a zero-count loop that must be skipped
    FunctionalMachine m = run("""
        li r5, 3
        li r6, 4
        loop r5, outer_end
        loop r6, inner_end
        addi r1, r1, 1
        inner_end:
        addi r2, r2, 1
        outer_end:
        loop r0, skip_end
        addi r3, r3, 1000
        skip_end:
        loop 2, a_end
        loop 5, a_end
        addi r4, r4, 1
        a_end:
        halt
        """);
    assertEquals(12, m.regs[1]);
    assertEquals(3, m.regs[2]);
    assertEquals(0, m.regs[3], "count 0 skips the body");
    assertEquals(10, m.regs[4], "two bodies ending at the same pc both loop");
    // 2 li + outer loop + 3 x (inner loop + 4 addi + addi) + skipped loop + loop 2
    // + 2 x (loop 5 + 5 addi) + halt
    assertEquals(2 + 1 + 3 * 6 + 1 + 1 + 2 * 6 + 1, m.issued());
  }

  @Test
  void zeroCountInnerLoopAtTheEndOfAnOuterBody() {
    FunctionalMachine m = run("""
        loop 3, outer_end
        addi r1, r1, 1
        loop r0, outer_end
        addi r2, r2, 1
        outer_end:
        halt
        """);
    assertEquals(3, m.regs[1], "skipping the inner body still closes the outer iteration");
    assertEquals(0, m.regs[2]);
  }

  @Test
  void nopWaitsAndSignalsTokens() {
    FunctionalMachine m = run("""
        nop signal=4
        nop signal=4
        nop wait=4, signal=5
        barrier
        halt signal=6
        """);
    assertEquals(1, m.tokens[4]);
    assertEquals(1, m.tokens[5]);
    assertEquals(1, m.tokens[6]);
  }

  @Test
  void forwardDependencyAcrossEnginesWaitsInTheQueue() {
    // the VPU fill waits on token 1, which the later DMA signals: legal, the fill is queued
    FunctionalMachine m = run("""
        li r1, 64
        li r2, 1
        li r3, 4
        li r4, 1000
        vfill r1, r0, 2.0, r2, r3, f32, wait=1
        dma sram, r4+0, r0, sram, r1+0, r0, 16, 1, signal=1
        halt
        """);
    float[] copied = TestSupport.get(m, 1000, dev.sohuc.isa.DType.F32, 4);
    assertEquals(0f, copied[0], "the DMA ran first and copied the zeros");
    assertEquals(2f, TestSupport.get(m, 64, dev.sohuc.isa.DType.F32));
  }
}
