package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.num.Numerics;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** mma against a plain fused-multiply-add loop over decoded elements. */
class MmaInstructionTest {

  /** A = m x k at SRAM 0 (row stride lda bytes), B = k x n at 0x10000, C at ACC word 64. */
  private static String program(int m, int n, int k, DType t, boolean ta, boolean tb,
      boolean accumulate, int lda, int ldb, int ldc) {
    return String.format("""
        li r1, %d
        li r2, %d
        li r3, 0x10000
        li r4, %d
        li r5, 64
        li r6, %d
        mma r5+0, r4, r0+0, r1, r3+0, r2, %d, %d, r6, %s, ta=%d, tb=%d, accumulate=%d
        halt
        """, lda, ldb, ldc, k, m, n, t.asmName(), ta ? 1 : 0, tb ? 1 : 0, accumulate ? 1 : 0);
  }

  @ParameterizedTest(name = "{0} {1}x{2}x{3} ta={4} tb={5} accumulate={6}")
  @CsvSource({
      "BF16, 16, 24, 40, false, false, false",
      "BF16, 128, 128, 64, false, false, true",
      "BF16, 7, 5, 3, true, false, false",
      "BF16, 9, 11, 13, false, true, true",
      "F32, 33, 17, 21, true, true, false",
      "F16, 8, 8, 8, false, false, false",
      "F8E4M3, 64, 32, 48, false, true, true",
      "F8E5M2, 12, 20, 30, true, false, false",
      "I8, 32, 16, 77, false, false, true",
      "I8, 5, 6, 7, true, true, false"})
  void matchesAPlainLoop(DType t, int m, int n, int k, boolean ta, boolean tb,
      boolean accumulate) {
    long seed = 42L + m * 31 + n * 7 + k;
    Random rnd = new Random(seed);
    int e = t.bytes();
    int aRows = ta ? k : m;
    int aCols = ta ? m : k;
    int bRows = tb ? n : k;
    int bCols = tb ? k : n;
    int lda = aCols * e + 2 * e; // padded rows: strides are honoured
    int ldb = bCols * e + e;
    int ldc = n + 3;
    FunctionalMachine mach = TestSupport.machine(program(m, n, k, t, ta, tb, accumulate, lda,
        ldb, ldc));
    int[][] aBits = new int[aRows][aCols];
    int[][] bBits = new int[bRows][bCols];
    for (int i = 0; i < aRows; i++) {
      for (int j = 0; j < aCols; j++) {
        aBits[i][j] = randomBits(rnd, t);
        Elem.putBits(mach.sram, i * lda + j * e, t, aBits[i][j]);
      }
    }
    for (int i = 0; i < bRows; i++) {
      for (int j = 0; j < bCols; j++) {
        bBits[i][j] = randomBits(rnd, t);
        Elem.putBits(mach.sram, 0x10000 + i * ldb + j * e, t, bBits[i][j]);
      }
    }
    int[][] c0 = new int[m][n];
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        c0[i][j] = t == DType.I8 ? rnd.nextInt() : Float.floatToRawIntBits(rnd.nextFloat() * 4 - 2);
        mach.acc[64 + i * ldc + j] = c0[i][j];
      }
    }
    mach.run();
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        int got = mach.acc[64 + i * ldc + j];
        if (t == DType.I8) {
          int c = accumulate ? c0[i][j] : 0;
          for (int p = 0; p < k; p++) {
            int a = (byte) (ta ? aBits[p][i] : aBits[i][p]);
            int b = (byte) (tb ? bBits[j][p] : bBits[p][j]);
            c += a * b;
          }
          assertEquals(c, got, "seed " + seed + " C[" + i + "][" + j + "]");
        } else {
          float c = accumulate ? Float.intBitsToFloat(c0[i][j]) : 0f;
          for (int p = 0; p < k; p++) {
            float a = Numerics.toF32(ta ? aBits[p][i] : aBits[i][p], t);
            float b = Numerics.toF32(tb ? bBits[j][p] : bBits[p][j], t);
            c = Math.fma(a, b, c);
          }
          assertEquals(Float.floatToRawIntBits(c), got, "seed " + seed + " C[" + i + "][" + j
              + "] = " + Float.intBitsToFloat(got) + ", want " + c);
        }
      }
    }
  }

  /** Random finite elements (NaN bit patterns excluded so that bit equality is meaningful). */
  private static int randomBits(Random rnd, DType t) {
    while (true) {
      int bits = switch (t) {
        case I8 -> rnd.nextInt(256);
        case F8E4M3, F8E5M2 -> rnd.nextInt(256);
        default -> Numerics.fromF32((float) rnd.nextGaussian(), t);
      };
      if (t == DType.I8 || Float.isFinite(Numerics.toF32(bits, t))) {
        return bits;
      }
    }
  }

  @Test
  void int8ExtremesAccumulateExactlyInInt32() {
    // 127 * 127 * k and -128 * -128 * k, and the mixed product, for k = 1000
    int k = 1000;
    FunctionalMachine m = TestSupport.machine(program(2, 2, k, DType.I8, false, false, false, k,
        2, 2));
    for (int p = 0; p < k; p++) {
      m.sram[p] = 127;
      m.sram[k + p] = -128;
      m.sram[0x10000 + 2 * p] = 127;
      m.sram[0x10000 + 2 * p + 1] = -128;
    }
    m.run();
    assertEquals(127 * 127 * k, m.acc[64]);
    assertEquals(-127 * 128 * k, m.acc[65]);
    assertEquals(-128 * 127 * k, m.acc[66]);
    assertEquals(128 * 128 * k, m.acc[67]);
  }

  @Test
  void int32AccumulationWraps() {
    FunctionalMachine m = TestSupport.machine(program(1, 1, 1, DType.I8, false, false, true, 1,
        1, 1));
    m.sram[0] = -128;
    m.sram[0x10000] = -128;
    m.acc[64] = Integer.MAX_VALUE;
    m.run();
    assertEquals(Integer.MAX_VALUE + 16384, m.acc[64]);
  }

  @Test
  void largeTileUsesThreadsAndMatchesTheSingleThreadedResult() {
    String src = program(128, 128, 512, DType.BF16, false, false, false, 1024, 256, 128);
    FunctionalMachine par = TestSupport.machine(src);
    Emulator emu = new Emulator(TestSupport.asm(src), TestSupport.TINY,
        TestSupport.opts().withParallel(false));
    FunctionalMachine seq = emu.prepareFunctional(java.util.Map.of(), java.util.Map.of(),
        new java.util.HashMap<>());
    Random rnd = new Random(9);
    for (int i = 0; i < 0x10000 + 512 * 256; i += 2) {
      int bits = Numerics.toBf16((float) rnd.nextGaussian());
      Elem.putBits(par.sram, i, DType.BF16, bits);
      Elem.putBits(seq.sram, i, DType.BF16, bits);
    }
    par.run();
    seq.run();
    org.junit.jupiter.api.Assertions.assertArrayEquals(seq.acc, par.acc);
  }
}
