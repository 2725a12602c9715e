package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * reducescatter and allgather in the functional emulator, which runs one chip: a group of one
 * copies its block bit for bit, row by strided row; a larger group, a rank outside it, or a
 * block outside memory traps.
 */
class LinkInstructionTest {

  private static byte[] random(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  private static byte[] hbm(FunctionalMachine m, long addr, int n) {
    byte[] b = new byte[n];
    m.hbm.read(addr, b, 0, n);
    return b;
  }

  /**
   * Random bits (NaN payloads, negative zeros, subnormals included) come out unchanged: the sum
   * over one chip is its value, not 0 + value, and nothing is rounded.
   */
  @Test
  void aGroupOfOneCopiesItsBlockBitForBit() {
    FunctionalMachine m = TestSupport.machine("""
        li r1, 0x1000
        li r2, 0x9000
        li r3, 300
        li r4, 1024
        reducescatter hbm, r2, r1+0, r3, f32, 1, 0
        allgather hbm, r2+2048, r1, r3, bf16, 1, 0
        reducescatter sram, r4+4096, r4, 77, bf16, 1, 0
        allgather sram, r4+8192, r4, r3+1, f32, 1, 0
        halt
        """);
    byte[] hbmSrc = random(1200, 1);
    byte[] sramSrc = random(1204, 2);
    m.hbm.write(0x1000, hbmSrc, 0, hbmSrc.length);
    System.arraycopy(sramSrc, 0, m.sram, 1024, sramSrc.length);
    byte[] sramAfterBf16 = m.sram.clone();
    m.run();
    assertArrayEquals(hbmSrc, hbm(m, 0x9000, 1200), "reducescatter f32: 300 elements");
    assertArrayEquals(Arrays.copyOf(hbmSrc, 600), hbm(m, 0x9000 + 2048, 600),
        "allgather bf16: 300 elements");
    assertArrayEquals(new byte[4], hbm(m, 0x9000 + 2048 + 600, 4), "nothing past the block");
    assertArrayEquals(Arrays.copyOf(sramSrc, 154),
        Arrays.copyOfRange(m.sram, 1024 + 4096, 1024 + 4096 + 154), "reducescatter bf16");
    assertEquals(sramAfterBf16[1024 + 4096 + 154], m.sram[1024 + 4096 + 154]);
    assertArrayEquals(sramSrc, Arrays.copyOfRange(m.sram, 1024 + 8192, 1024 + 8192 + 1204),
        "allgather f32: 301 elements");
  }

  /**
   * What a group of one leaves in a region of memory, given the region before it: rows rows of
   * n bytes copied from src to dst (offsets in the region) with the two row strides, every row
   * read before any is written.
   */
  private static byte[] rowsCopied(byte[] before, int src, int srcStride, int dst, int dstStride,
      int rows, int n) {
    byte[] after = before.clone();
    for (int r = 0; r < rows; r++) {
      System.arraycopy(before, src + r * srcStride, after, dst + r * dstStride, n);
    }
    return after;
  }

  /**
   * A column block of a row-major matrix, 3 rows of 5 f32 out of rows of 10 (a 40-byte src
   * stride), lands in rows 24 bytes apart: each row bit for bit, the 4 bytes between rows and
   * everything around them untouched. In HBM (rows an immediate) and SRAM (rows a register).
   */
  @Test
  void aGroupOfOneCopiesAColumnBlockRowByRow() {
    FunctionalMachine m = TestSupport.machine("""
        li r1, 0x1000
        li r2, 1024
        li r3, 40
        li r4, 24
        li r5, 3
        reducescatter hbm, r1+256, r1+8, 5, f32, 1, 0, rows=3, sstride=r3, dstride=r4
        allgather sram, r2+256, r2+8, 5, f32, 1, 0, rows=r5, sstride=r3, dstride=r4
        halt
        """);
    byte[] hbmBefore = random(512, 5);
    byte[] sramBefore = random(512, 6);
    m.hbm.write(0x1000, hbmBefore, 0, 512);
    System.arraycopy(sramBefore, 0, m.sram, 1024, 512);
    m.run();
    assertArrayEquals(rowsCopied(hbmBefore, 8, 40, 256, 24, 3, 20), hbm(m, 0x1000, 512),
        "reducescatter: rows at 0x1100, 0x1118, 0x1130, the bytes between them kept");
    assertArrayEquals(rowsCopied(sramBefore, 8, 40, 256, 24, 3, 20),
        Arrays.copyOfRange(m.sram, 1024, 1024 + 512), "allgather");
  }

  /**
   * Strided rows that overlap the rows they overwrite (dst 4 bytes above src, a 24-byte dst
   * stride against packed 20-byte src rows) read every source row first: copying row by row
   * would read row 1 after row 0's write has clobbered its first 4 bytes.
   */
  @Test
  void overlappingStridedRowsAreReadBeforeWritten() {
    FunctionalMachine m = TestSupport.machine("""
        li r1, 2048
        li r2, 24
        reducescatter sram, r1+4, r1, 5, f32, 1, 0, rows=3, dstride=r2
        halt
        """);
    byte[] before = random(128, 7);
    System.arraycopy(before, 0, m.sram, 2048, before.length);
    m.run();
    byte[] rowByRow = before.clone();
    for (int r = 0; r < 3; r++) {
      System.arraycopy(rowByRow, r * 20, rowByRow, 4 + r * 24, 20);
    }
    byte[] want = rowsCopied(before, 0, 20, 4, 24, 3, 20);
    assertFalse(Arrays.equals(want, rowByRow), "the overlap matters");
    assertArrayEquals(want, Arrays.copyOfRange(m.sram, 2048, 2048 + 128));
  }

  /**
   * rows=1 or r0 strides (packed rows, elems x esize apart) are the 1-D block: 3 rows of 5 are
   * the 15 contiguous elements, as a 20-byte stride register gives; a register holding 0 is a
   * stride of 0, every row the same source row.
   */
  @Test
  void packedRowsAreTheContiguousBlock() {
    FunctionalMachine m = TestSupport.machine("""
        li r1, 0x1000
        li r2, 0x4000
        li r3, 20
        li r4, 0
        allgather hbm, r2, r1, 15, f32, 1, 0
        allgather hbm, r2+256, r1, 5, f32, 1, 0, rows=3
        reducescatter hbm, r2+512, r1, 5, f32, 1, 0, rows=3, sstride=r3, dstride=r3
        allgather hbm, r2+768, r1, 5, f32, 1, 0, rows=3, sstride=r4
        halt
        """);
    byte[] src = random(60, 8);
    m.hbm.write(0x1000, src, 0, src.length);
    m.run();
    assertArrayEquals(src, hbm(m, 0x4000, 60), "1-D: 15 elements");
    assertArrayEquals(src, hbm(m, 0x4000 + 256, 60), "3 packed rows of 5");
    assertArrayEquals(src, hbm(m, 0x4000 + 512, 60), "3 rows of 5, 20 bytes apart");
    byte[] row0 = Arrays.copyOf(src, 20);
    byte[] thrice = new byte[60];
    for (int r = 0; r < 3; r++) {
      System.arraycopy(row0, 0, thrice, r * 20, 20);
    }
    assertArrayEquals(thrice, hbm(m, 0x4000 + 768, 60), "source stride 0: row 0 three times");
  }

  /** allgather is a copy of any type an instruction moves: fp8 activations, i8, f16. */
  @Test
  void anAllgatherCopiesNarrowTypesByTheirSize() {
    FunctionalMachine m = TestSupport.machine("""
        li r1, 0x1000
        li r2, 0x9000
        allgather hbm, r2, r1, 301, f8e4m3, 1, 0
        allgather hbm, r2+1024, r1, 301, i8, 1, 0
        allgather hbm, r2+2048, r1, 301, f16, 1, 0
        halt
        """);
    byte[] src = random(602, 4);
    m.hbm.write(0x1000, src, 0, src.length);
    m.run();
    assertArrayEquals(Arrays.copyOf(src, 301), hbm(m, 0x9000, 301), "f8e4m3: 301 bytes");
    assertArrayEquals(new byte[3], hbm(m, 0x9000 + 301, 3), "nothing past the block");
    assertArrayEquals(Arrays.copyOf(src, 301), hbm(m, 0x9000 + 1024, 301), "i8: 301 bytes");
    assertArrayEquals(src, hbm(m, 0x9000 + 2048, 602), "f16: 602 bytes");
  }

  /**
   * An in-place collective overlaps dst and src: every element is read before any is written,
   * across more HBM than the emulator copies at once, in either direction.
   */
  @Test
  void overlappingBlocksAreReadBeforeWritten() {
    int elems = (3 << 20) / 4 + 3;
    int bytes = elems * 4;
    byte[] src = random(bytes, 3);
    for (int shift : new int[] {4, -4, 1 << 20}) {
      FunctionalMachine m = TestSupport.machine("li r1, " + (0x200000 + shift)
          + "\nli r2, 0x200000\nli r3, " + elems
          + "\nallgather hbm, r1, r2, r3, f32, 1, 0\nhalt\n");
      m.hbm.write(0x200000, src, 0, bytes);
      m.run();
      assertArrayEquals(src, hbm(m, 0x200000 + shift, bytes), "shift " + shift);
    }
  }

  @Test
  void aGroupOfSeveralChipsTraps() {
    for (String insn : new String[] {"reducescatter sram, r1, r2, 16, f32, 2, 1",
        "allgather hbm, r1, r2, 16, bf16, 8, 0"}) {
      String mnemonic = insn.split(" ")[0];
      Trap t = assertThrows(Trap.class, () -> TestSupport.machine(insn + "\nhalt\n").run());
      assertEquals(Trap.Kind.BAD_OPERAND, t.kind());
      assertTrue(t.getMessage().contains(mnemonic + " over " + insn.split(", ")[5]
          + " chips in a single-chip functional run (the functional emulator runs one chip; "
          + "its group must be chips=1)"), t.getMessage());
    }
  }

  /**
   * No elements or no rows (the immediate 0 with r0) is a LINK fence: it meets no chip, in any
   * group.
   */
  @Test
  void aFenceMovesNothingInAnyGroup() {
    FunctionalMachine m = TestSupport.machine("""
        li r1, 64
        reducescatter sram, r1, r0, 0, f32, 8, 3, signal=1
        allgather sram, r1, r0, 0, bf16, 64, 63, wait=1
        reducescatter sram, r1, r0, 16, f32, 8, 3, rows=0, signal=2
        allgather sram, r1, r0, r1, bf16, 64, 63, rows=0, wait=2
        halt
        """);
    byte[] before = random(256, 4);
    System.arraycopy(before, 0, m.sram, 0, before.length);
    m.run();
    assertArrayEquals(before, Arrays.copyOf(m.sram, 256));
  }

  /** The table checks rank and chips each alone; a rank past the group traps in both modes. */
  @Test
  void aRankOutsideTheGroupTrapsInBothModes() {
    String src = "reducescatter sram, r1, r2, 4, f32, 1, 1\nhalt\n";
    Trap f = assertThrows(Trap.class, () -> TestSupport.machine(src).run());
    Trap t = assertThrows(Trap.class, () -> new Emulator(TestSupport.asm(src), TestSupport.TINY,
        TestSupport.opts()).runTiming(Map.of()));
    for (Trap trap : new Trap[] {f, t}) {
      assertEquals(Trap.Kind.BAD_OPERAND, trap.kind());
      assertEquals(0, trap.pc());
      assertTrue(trap.getMessage().contains("rank 1 is not below chips=1 (the rank is this "
          + "chip's index in its group)"), trap.getMessage());
    }
  }

  @Test
  void aBlockOutsideMemoryTraps() {
    Trap dst = assertThrows(Trap.class, () -> TestSupport.machine(
        "li r1, 262136\nallgather sram, r1, r0, 4, f32, 1, 0\nhalt\n").run());
    assertEquals(Trap.Kind.OUT_OF_BOUNDS, dst.kind());
    assertTrue(dst.getMessage().contains("allgather destination: SRAM 1 rows x 16 bytes at "
        + "0x3fff8 (row stride 16) spans [0x3fff8, 0x40008), outside SRAM (262144 bytes)"),
        dst.getMessage());
    Trap src = assertThrows(Trap.class, () -> TestSupport.machine(
        "li r1, 16777214\nreducescatter hbm, r0, r1, 2, bf16, 1, 0\nhalt\n").run());
    assertEquals(Trap.Kind.OUT_OF_BOUNDS, src.kind());
    assertTrue(src.getMessage().contains("reducescatter source: HBM"), src.getMessage());
  }

  /** Strided rows are checked over their whole range: here the third row passes the end. */
  @Test
  void aStridedRowOutsideMemoryTraps() {
    Trap t = assertThrows(Trap.class, () -> TestSupport.machine(
        "li r1, 0x3fe00\nli r2, 256\nallgather sram, r1, r0, 4, f32, 1, 0, rows=3, dstride=r2\n"
            + "halt\n").run());
    assertEquals(Trap.Kind.OUT_OF_BOUNDS, t.kind());
    assertTrue(t.getMessage().contains("allgather destination: SRAM 3 rows x 16 bytes at 0x3fe00 "
        + "(row stride 256) spans [0x3fe00, 0x40010), outside SRAM (262144 bytes)"),
        t.getMessage());
  }
}
