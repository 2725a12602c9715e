package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** dma, gather and scatter against plain index arithmetic. */
class DmaInstructionTest {

  @Test
  void threeDimensionalStridedCopyHbmToSramAndBack() {
    // HBM source: 3 planes x 4 rows x 24 bytes at 0x1000, row stride 40, plane stride 200;
    // SRAM: dense rows of 24 bytes at 512, planes 96 apart; then back to HBM at 0x8000, rows
    // reversed (negative row stride)
    FunctionalMachine m = TestSupport.machine("""
        li r1, 0x1000
        li r2, 40
        li r3, 200
        li r4, 512
        li r5, 24
        li r6, 96
        li r7, 0x8000
        li r8, -24
        li r9, 3
        dma sram, r4+0, r5, hbm, r1+0, r2, 24, 4, planes=r9, dst_pstride=r6, src_pstride=r3, signal=1
        dma hbm, r7+72, r8, sram, r4+0, r5, 24, 4, planes=3, dst_pstride=r6, src_pstride=r6, wait=1
        halt
        """);
    Random rnd = new Random(5);
    byte[] src = new byte[1000];
    rnd.nextBytes(src);
    m.hbm.write(0x1000, src, 0, src.length);
    m.run();
    for (int p = 0; p < 3; p++) {
      for (int r = 0; r < 4; r++) {
        for (int b = 0; b < 24; b++) {
          byte expected = src[p * 200 + r * 40 + b];
          assertEquals(expected, m.sram[512 + p * 96 + r * 24 + b]);
          byte[] back = new byte[1];
          m.hbm.read(0x8000 + 72 + p * 96 - r * 24 + b, back, 0, 1);
          assertEquals(expected, back[0]);
        }
      }
    }
  }

  @Test
  void overlappingSramCopyReadsEachRowBeforeWritingIt() {
    FunctionalMachine m = TestSupport.machine("""
        li r1, 100
        dma sram, r1+4, r0, sram, r1+0, r0, 16, 1
        halt
        """);
    for (int i = 0; i < 20; i++) {
      m.sram[100 + i] = (byte) i;
    }
    m.run();
    byte[] got = java.util.Arrays.copyOfRange(m.sram, 104, 120);
    byte[] want = new byte[16];
    for (int i = 0; i < 16; i++) {
      want[i] = (byte) i;
    }
    assertArrayEquals(want, got);
  }

  @Test
  void gatherWithI32AndI64Indices() {
    // table: 10 rows of 8 bytes at HBM 0x2000, row stride 16; indices at SRAM 0 (i32) and 64
    // (i64), the first gather bounded by the table's rows (index 9 is its last)
    FunctionalMachine m = TestSupport.machine("""
        li r1, 0x2000
        li r2, 16
        li r3, 256
        li r4, 8
        li r5, 64
        li r6, 512
        li r7, 10
        gather sram, r3+0, r4, hbm, r1+0, r2, 8, 4, r0+0, limit=r7
        gather sram, r6+0, r4, hbm, r1+0, r2, 8, 3, r5+0, idx64=1
        halt
        """);
    byte[] table = new byte[160];
    new Random(3).nextBytes(table);
    m.hbm.write(0x2000, table, 0, table.length);
    int[] idx32 = {7, 0, 9, 7};
    long[] idx64 = {2, 2, 5};
    for (int i = 0; i < idx32.length; i++) {
      Elem.putI32(m.sram, 4 * i, idx32[i]);
    }
    for (int i = 0; i < idx64.length; i++) {
      Elem.putI32(m.sram, 64 + 8 * i, (int) idx64[i]);
      Elem.putI32(m.sram, 64 + 8 * i + 4, 0);
    }
    m.run();
    for (int r = 0; r < 4; r++) {
      for (int b = 0; b < 8; b++) {
        assertEquals(table[idx32[r] * 16 + b], m.sram[256 + r * 8 + b]);
      }
    }
    for (int r = 0; r < 3; r++) {
      for (int b = 0; b < 8; b++) {
        assertEquals(table[(int) idx64[r] * 16 + b], m.sram[512 + r * 8 + b]);
      }
    }
  }

  /**
   * Three rows of 8 bytes from SRAM into an HBM cache of rows 64 bytes apart, row r at its index
   * in 8-byte units (a sequence's length): the rest of the cache is untouched.
   */
  @Test
  void scatterWritesEachRowAtItsIndex() {
    FunctionalMachine m = TestSupport.machine("""
        li r1, 0x2000
        li r2, 64
        li r3, 8
        li r4, 256
        li r5, 64
        scatter hbm, r1+0, r2, r3, sram, r4+0, r3, 8, 3, r5+0, idx64=1
        halt
        """);
    byte[] rows = new byte[24];
    new Random(4).nextBytes(rows);
    System.arraycopy(rows, 0, m.sram, 256, rows.length);
    long[] idx = {5, 0, 7};
    for (int i = 0; i < idx.length; i++) {
      Elem.putI32(m.sram, 64 + 8 * i, (int) idx[i]);
      Elem.putI32(m.sram, 64 + 8 * i + 4, 0);
    }
    m.run();
    byte[] cache = new byte[3 * 64];
    m.hbm.read(0x2000, cache, 0, cache.length);
    byte[] want = new byte[3 * 64];
    for (int r = 0; r < 3; r++) {
      System.arraycopy(rows, 8 * r, want, (int) (64 * r + 8 * idx[r]), 8);
    }
    assertArrayEquals(want, cache);
  }
}
