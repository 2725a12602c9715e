package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.Word;
import dev.sohuc.isa.container.SohuProgram;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Every trap, in both modes where it applies, with its message. */
class TrapTest {

  private static Trap functional(String src) {
    return functional(TestSupport.asm(src), TestSupport.opts());
  }

  private static Trap functional(SohuProgram p, Options o) {
    Emulator emu = new Emulator(p, TestSupport.TINY, o);
    return assertThrows(Trap.class, () -> emu.runFunctional(Map.of(), Map.of()));
  }

  private static Trap timing(String src) {
    Emulator emu = new Emulator(TestSupport.asm(src), TestSupport.TINY, TestSupport.opts());
    return assertThrows(Trap.class, () -> emu.runTiming(Map.of()));
  }

  private static void contains(String message, String... parts) {
    for (String p : parts) {
      assertTrue(message.contains(p), "message lacks \"" + p + "\": " + message);
    }
  }

  @Test
  void illegalWordsTrapWithTheirReason() {
    for (Word w : List.of(new Word(0, 0), new Word(-1, -1), new Word(0xEE, 0))) {
      SohuProgram p = SohuProgram.ofCode(new SohuProgram.Target("tiny", SohuProgram.Target.NO_HASH),
          List.of(TestSupport.asm("li r1, 5").code().get(0), w));
      Trap t = functional(p, TestSupport.opts());
      assertEquals(Trap.Kind.ILLEGAL_INSTRUCTION, t.kind());
      assertEquals(1, t.pc());
      contains(t.getMessage(), "trap at pc 1", "illegal instruction", "opcode 0x");
      Trap tt = assertThrows(Trap.class, () -> new Emulator(p, TestSupport.TINY,
          TestSupport.opts()).runTiming(Map.of()));
      assertEquals(t.getMessage(), tt.getMessage());
    }
  }

  @Test
  void ldargOutsideTheArgumentBlockTrapsInBothModes() {
    String src = """
        .arg a, 0
        .arg b, 1
        li r7, 1
        ldarg r1, 1, r7
        halt
        """;
    Emulator emu = new Emulator(TestSupport.asm(src), TestSupport.TINY, TestSupport.opts());
    Map<String, Long> dims = Map.of("a", 5L, "b", 6L);
    Trap t = assertThrows(Trap.class, () -> emu.runFunctional(Map.of(), dims));
    assertEquals(Trap.Kind.OUT_OF_BOUNDS, t.kind());
    assertEquals("trap at pc 1 `ldarg    r1, 1, r7`: out of bounds: ldarg of argument-block word "
        + "1 + 1 (rs) is outside the block's words 0..1", t.getMessage());
    assertEquals(t.getMessage(), assertThrows(Trap.class, () -> emu.runTiming(dims))
        .getMessage());
    Trap below = assertThrows(Trap.class, () -> new Emulator(TestSupport.asm(
        src.replace("li r7, 1", "li r7, -2")), TestSupport.TINY, TestSupport.opts())
        .runTiming(dims));
    assertTrue(below.getMessage().endsWith("word 1 + -2 (rs) is outside the block's words 0..1"),
        below.getMessage());
    contains(functional("ldarg r1, 0\nhalt\n").getMessage(), "trap at pc 0",
        "ldarg of argument-block word 0 + 0 (rs) is outside the empty argument block");
    contains(timing("ldarg r1, 0\nhalt\n").getMessage(), "the empty argument block");
  }

  @Test
  void runningPastTheEndTraps() {
    Trap t = functional("li r1, 1\n");
    assertEquals(Trap.Kind.ILLEGAL_INSTRUCTION, t.kind());
    contains(t.getMessage(), "trap at pc 1", "outside the code (1 instructions)", "without halt");
  }

  @Test
  void outOfBoundsSramAccessNamesMemoryAddressAndSize() {
    String src = """
        li r1, 262140
        li r2, 1
        li r3, 4
        vfill r1+0, r0, 1.0, r2, r3, f32
        halt
        """;
    Trap t = functional(src);
    assertEquals(Trap.Kind.OUT_OF_BOUNDS, t.kind());
    assertEquals(3, t.pc());
    contains(t.getMessage(), "trap at pc 3 `vfill", "r1, r0, 1.0, r2, r3, f32`", "vfill dst",
        "SRAM", "0x3fffc", "16 bytes", "262144 bytes");
  }

  @Test
  void outOfBoundsHbmAccess() {
    Trap t = functional("""
        li r1, 0x1000000
        dma sram, r0+0, r0, hbm, r1-8, r0, 16, 1
        halt
        """);
    assertEquals(Trap.Kind.OUT_OF_BOUNDS, t.kind());
    contains(t.getMessage(), "dma source", "HBM", "0xfffff8", "16777216 bytes");
  }

  @Test
  void gatherIndexOutsideTheTable() {
    // the index at SRAM 0 is 1e9: far outside the table
    Trap t2 = functional("""
        li r1, 100000
        li r2, 64
        li r3, 1
        vfill r0+0, r0, 1.0E9, r3, r3, i32
        gather sram, r1+0, r2, hbm, r0+0, r2, 64, 1, r0+0
        halt
        """);
    assertEquals(Trap.Kind.OUT_OF_BOUNDS, t2.kind());
    contains(t2.getMessage(), "gather table row 1000000000", "HBM");
  }

  @Test
  void gatherIndexAtOrPastItsLimitTrapsThoughTheRowIsInMemory() {
    // rows 0..3 of a 4-row table at HBM 0; the next rows are ordinary memory, yet the limit
    // register (4) stops index 4, and a negative index, before any row is copied
    for (String index : List.of("4", "-1")) {
      Trap t = functional("""
          li r1, 100000
          li r2, 64
          li r3, 1
          li r4, 4
          vfill r0+0, r0, %s, r3, r3, i32
          gather sram, r1+0, r2, hbm, r0+0, r2, 64, 1, r0+0, limit=r4
          halt
          """.formatted(index));
      assertEquals(Trap.Kind.OUT_OF_BOUNDS, t.kind());
      contains(t.getMessage(), "gather: index " + index + " (row 0) is outside the table's 4 rows");
    }
  }

  @Test
  void misalignedAccessNamesTheElementSize() {
    Trap t = functional("""
        li r1, 1025
        li r2, 1
        vfill r1+0, r0, 1.0, r2, r2, bf16
        halt
        """);
    assertEquals(Trap.Kind.MISALIGNED, t.kind());
    contains(t.getMessage(), "misaligned", "vfill dst", "0x401", "element size 2");
    Trap s = functional("""
        li r1, 1024
        li r2, 2
        li r3, 6
        vfill r1+0, r3, 1.0, r2, r2, f32
        halt
        """);
    contains(s.getMessage(), "stride 6", "element size 4");
  }

  @Test
  void accOutOfBounds() {
    Trap t = functional("""
        li r1, 65535
        li r2, 2
        li r3, 1
        mma r1+0, r2, r0+0, r0, r0+0, r0, 2, 2, 1, bf16
        halt
        """);
    assertEquals(Trap.Kind.OUT_OF_BOUNDS, t.kind());
    contains(t.getMessage(), "mma C", "ACC", "65536 words");
  }

  @Test
  void deadlockOnAnEngineTokenNothingSignals() {
    String src = """
        li r2, 1
        vfill r0+0, r0, 1.0, r2, r2, f32, wait=7
        halt
        """;
    Trap t = functional(src);
    assertEquals(Trap.Kind.DEADLOCK, t.kind());
    assertEquals(1, t.pc());
    contains(t.getMessage(), "deadlock", "the VPU waits on token 7", "halt");
    Trap tt = timing(src);
    assertEquals(Trap.Kind.DEADLOCK, tt.kind());
    assertEquals(1, tt.pc());
    contains(tt.getMessage(), "the VPU waits on token 7");
  }

  @Test
  void deadlockOfTheControlUnit() {
    String src = """
        li r2, 1
        vfill r0+0, r0, 1.0, r2, r2, f32, signal=3
        nop wait=3
        nop wait=3
        halt
        """;
    Trap t = functional(src);
    assertEquals(Trap.Kind.DEADLOCK, t.kind());
    assertEquals(3, t.pc());
    contains(t.getMessage(), "the control unit waits on token 3");
    Trap tt = timing(src);
    assertEquals(3, tt.pc());
    contains(tt.getMessage(), "the control unit waits on token 3");
  }

  @Test
  void deadlockWhenAFullQueueBlocksTheSignallingInstruction() {
    // tiny's queues hold 8: nine MXU instructions wait on token 1, which only the DMA after
    // them signals; the control unit can never issue the DMA
    StringBuilder src = new StringBuilder("li r2, 1\n");
    for (int i = 0; i < 9; i++) {
      src.append("mma r0+0, r0, r0+0, r0, r0+0, r0, 1, 1, 1, bf16, wait=1\n");
    }
    src.append("dma sram, r0+0, r0, sram, r0+0, r0, 4, 1, signal=1\nhalt\n");
    Trap t = functional(src.toString());
    assertEquals(Trap.Kind.DEADLOCK, t.kind());
    contains(t.getMessage(), "the MXU waits on token 1", "queue is full (8 instructions)",
        "cannot issue pc 9");
    Trap tt = timing(src.toString());
    contains(tt.getMessage(), "the MXU waits on token 1", "queue is full (8 instructions)");
  }

  @Test
  void tokenCounterOverflow() {
    String src = """
        li r1, 70000
        loop r1, e
        nop signal=9
        e:
        halt
        """;
    Trap t = functional(src);
    assertEquals(Trap.Kind.TOKEN_OVERFLOW, t.kind());
    assertEquals(2, t.pc());
    contains(t.getMessage(), "token 9 would exceed 65535");
    Trap tt = timing(src);
    assertEquals(Trap.Kind.TOKEN_OVERFLOW, tt.kind());
    assertEquals(2, tt.pc());
  }

  @Test
  void instructionCap() {
    String src = """
        li r1, 0xffffffff
        loop r1, end
        loop r1, end
        addi r2, r2, 1
        end:
        halt
        """;
    SohuProgram p = TestSupport.asm(src);
    Trap t = functional(p, TestSupport.opts().withMaxInstructions(1000));
    assertEquals(Trap.Kind.INSTRUCTION_LIMIT, t.kind());
    contains(t.getMessage(), "instruction cap of 1000", "--max-instructions");
    Trap tt = assertThrows(Trap.class, () -> new Emulator(p, TestSupport.TINY,
        TestSupport.opts().withMaxInstructions(1000)).runTiming(Map.of()));
    assertEquals(Trap.Kind.INSTRUCTION_LIMIT, tt.kind());
  }

  /**
   * Few instructions of much work each (a fill of 4 KiB, 4,000 times) pass no instruction cap:
   * functional mode charges each its cycles by the cost model and traps past the work cap.
   */
  @Test
  void workCap() {
    String src = """
        li r1, 16
        li r2, 64
        li r3, 256
        li r4, 4000
        loop r4, end
        vfill 0, r3, 1.0, r1, r2, f32
        end:
        halt
        """;
    SohuProgram p = TestSupport.asm(src);
    Trap t = functional(p, TestSupport.opts().withMaxCycles(10_000));
    assertEquals(Trap.Kind.WORK_LIMIT, t.kind());
    contains(t.getMessage(), "work cap of 10,000 cycles", "--max-cycles", "vfill");
    assertEquals(5, t.pc());
  }

  @Test
  void loopNestingTooDeepOrCrossingItsParent() {
    Trap t = functional("""
        loop 2, e
        loop 2, e
        loop 2, e
        loop 2, e
        loop 2, e
        nop
        e:
        halt
        """);
    assertEquals(Trap.Kind.LOOP_NESTING, t.kind());
    assertEquals(4, t.pc());
    contains(t.getMessage(), "fifth nested loop");
    Trap c = functional("""
        loop 2, outer
        loop 2, inner
        nop
        outer:
        nop
        inner:
        halt
        """);
    assertEquals(Trap.Kind.LOOP_NESTING, c.kind());
    contains(c.getMessage(), "after the end of its enclosing loop body");
  }

  @Test
  void scatterPastMemoryTraps() {
    Trap t = functional("""
        li r1, 64
        li r2, 8
        li r3, 4611686018427387904
        scatter hbm, r3+0, r0, r2, sram, r0+0, r2, 8, 1, r1+0
        halt
        """);
    assertEquals(Trap.Kind.OUT_OF_BOUNDS, t.kind());
    contains(t.getMessage(), "scatter");
  }

  @Test
  void negativeCountsTrapAsBadOperands() {
    Trap t = functional("""
        li r2, -1
        li r3, 4
        vfill r0+0, r0, 1.0, r2, r3, f32
        halt
        """);
    assertEquals(Trap.Kind.BAD_OPERAND, t.kind());
    contains(t.getMessage(), "rows = -1 is negative");
    Trap o = functional("""
        li r2, 1
        li r3, 3
        rope half, r0+0, r0, r0+0, r0, r0+0, r0+0, r0, r0, r2, r3, f32
        halt
        """);
    contains(o.getMessage(), "cols = 3 is odd");
    // a table position at the end of the range: no wrap-around to a negative row
    Trap far = functional("""
        li r2, 2
        li r3, 4
        li r4, 9223372036854775807
        li r5, 16
        li r6, 3
        rope half, r0+0, r5, r0+0, r5, r0+0, r0+0, r5, r4, r2, r3, f32, group=r6
        halt
        """);
    contains(far.getMessage(), "table row pos = 9223372036854775807 overflows the table address");
  }

  @Test
  void trapNamesTheIrOpAndSourceLocationFromTheDebugSection() {
    Trap t = functional("""
        li r1, 300000
        li r2, 1
        .debug "matmul_7", "model.onnx:/layer.0/MatMul"
        vfill r1+0, r0, 1.0, r2, r2, f32
        halt
        """);
    assertEquals("matmul_7", t.irOp());
    assertEquals("model.onnx:/layer.0/MatMul", t.location());
    contains(t.getMessage(), "(IR op matmul_7 at model.onnx:/layer.0/MatMul)");
  }

  @Test
  void hbmHostBudget() {
    Trap t = functional(TestSupport.asm("""
        li r1, 0x100000
        li r2, 4
        dma hbm, r0+0, r1, sram, r0+0, r0, 1, r2
        halt
        """), TestSupport.opts().withHostHbmBudgetBytes(2 << 20));
    assertEquals(Trap.Kind.HOST_LIMIT, t.kind());
    contains(t.getMessage(), "host budget");
  }

  @Test
  void aDmaRewritingTheSameRowsIsBoundedByTheHostNotByTheTargetHbm() {
    // 2^21 rows of 16 bytes onto one row: was bounded by 4x the target's HBM, which on a real
    // target (144 GB) let one instruction copy for hours
    Trap t = functional(TestSupport.asm("""
        li r1, 0x200000
        .debug "copy_1", "m.ir:4:5"
        dma hbm, r0+0, r0, hbm, r0+0, r0, 16, r1
        halt
        """), TestSupport.opts().withHostHbmBudgetBytes(2 << 20));
    assertEquals(Trap.Kind.BAD_OPERAND, t.kind());
    assertEquals("trap at pc 1 `dma      hbm, 0, r0, hbm, 0, r0, 16, r1` (IR op copy_1 at m.ir:4:5): "
        + "bad operand: dma of 33554432 bytes (1 planes x 2097152 rows x 16 bytes) is more than "
        + "the emulator moves in one instruction (2097152 bytes, the larger of the SRAM and the "
        + "host HBM budget)", t.getMessage());
  }
}
