package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.BinOp;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.RedOp;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Every VPU instruction against a plain-Java computation of its documented semantics, including
 * the rounding edge cases: bf16 ties, fp8 saturation and subnormals, int8 saturation and
 * round-half-even.
 */
class VpuInstructionTest {
  private static final DType F32 = DType.F32;
  private static final DType BF16 = DType.BF16;

  /** Registers r20..r23 hold common tile parameters: rows, cols, and two strides. */
  private static String regs(long rows, long cols, long s1, long s2) {
    return "li r20, " + rows + "\nli r21, " + cols + "\nli r22, " + s1 + "\nli r23, " + s2
        + "\nli r10, 1024\nli r11, 4096\nli r12, 8192\nli r13, 12288\nli r14, 16384\n";
  }

  /** Independent bf16 round-to-nearest-even, written out from the definition. */
  private static float roundBf16(float v) {
    int bits = Float.floatToRawIntBits(v);
    int lower = bits & 0xFFFF;
    int upper = bits & 0xFFFF0000;
    if (lower > 0x8000 || (lower == 0x8000 && (upper & 0x10000) != 0)) {
      upper += 0x10000;
    }
    return Float.intBitsToFloat(upper);
  }

  @Test
  void bf16TiesRoundToEven() {
    // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: even is 1.0;
    // 1 + 3 * 2^-8 is halfway between 1.0078125 and 1.015625: even is 1.015625
    FunctionalMachine m = TestSupport.machine(regs(1, 4, 8, 8) + """
        vbin add, r12+0, r22, r10+0, r22, r11+0, r22, r20, r21, bf16
        halt
        """);
    TestSupport.put(m, 1024, BF16, 1f, 1f, -1f, 256f);
    TestSupport.put(m, 4096, BF16, 0x1p-8f, 0x1.8p-7f, -0x1p-8f, 1f);
    m.run();
    float[] got = TestSupport.get(m, 8192, BF16, 4);
    assertEquals(1.0f, got[0]);
    assertEquals(1.015625f, got[1]);
    assertEquals(-1.0f, got[2]);
    assertEquals(256f, got[3], "256 + 1 = 257 ties to even 256");
    for (int i = 0; i < 4; i++) {
      assertEquals(roundBf16(new float[] {1f + 0x1p-8f, 1f + 0x1.8p-7f, -1f - 0x1p-8f, 257f}[i]),
          got[i]);
    }
  }

  @ParameterizedTest
  @EnumSource(BinOp.class)
  void vbinEveryOpAndBroadcast(BinOp op) {
    for (String bcast : new String[] {"none", "row", "col", "scalar"}) {
      int rows = 3;
      int cols = 5;
      FunctionalMachine m = TestSupport.machine(regs(rows, cols, 32, 40) + "vbin "
          + op.asmName() + ", r12+0, r22, r10+0, r22, r11+0, r23, r20, r21, f32, bcast=" + bcast
          + "\nhalt\n");
      Random rnd = new Random(op.ordinal());
      float[][] a = new float[rows][cols];
      float[][] b = new float[rows][cols];
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
          a[i][j] = rnd.nextFloat() * 4 - 1;
          b[i][j] = rnd.nextFloat() * 3 - 1;
          TestSupport.put(m, 1024 + i * 32 + j * 4, F32, a[i][j]);
          TestSupport.put(m, 4096 + i * 40 + j * 4, F32, b[i][j]);
        }
      }
      m.run();
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
          float bv = switch (bcast) {
            case "row" -> b[0][j];
            case "col" -> b[i][0];
            case "scalar" -> b[0][0];
            default -> b[i][j];
          };
          float x = a[i][j];
          float want = switch (op) {
            case ADD -> x + bv;
            case SUB -> x - bv;
            case MUL -> x * bv;
            case DIV -> x / bv;
            case MAX -> Math.max(x, bv);
            case MIN -> Math.min(x, bv);
            case POW -> (float) StrictMath.pow(x, bv);
            case GE -> x >= bv ? 1f : 0f;
          };
          assertEquals(want, TestSupport.get(m, 8192 + i * 32 + j * 4, F32), op + " " + bcast
              + " [" + i + "][" + j + "]");
        }
      }
    }
  }

  /**
   * vsel copies each element from the side its condition byte picks, bit for bit: NaN (with its
   * payload), infinities and -0 on either side, whatever the other side holds; a's and b's
   * broadcasts as vbin's b.
   */
  @Test
  void vselCopiesTheChosenElementWhateverTheOtherHolds() {
    float nan = Float.intBitsToFloat(0x7fc0_1234);
    float[] aRow = {nan, Float.POSITIVE_INFINITY, 1f, -0f, 2f};
    float[] bRow = {Float.POSITIVE_INFINITY, nan, Float.NEGATIVE_INFINITY, 3f, -0f};
    byte[] cond = {1, 0, 0, 7, 0, 0, 1, 1, 0, 1};
    for (String[] bc : new String[][] {{"none", "none"}, {"scalar", "row"}, {"col", "scalar"}}) {
      int rows = 2;
      int cols = 5;
      FunctionalMachine m = TestSupport.machine(regs(rows, cols, 32, 40) + "li r15, 16\nvsel r12+0, r22, "
          + "r14+0, r15, r10+0, r22, r11+0, r23, r20, r21, f32, a_bcast=" + bc[0] + ", b_bcast=" + bc[1]
          + "\nhalt\n");
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
          TestSupport.putBits(m, 1024 + i * 32 + j * 4, F32, Float.floatToRawIntBits(i == 0 ? aRow[j] : -aRow[j]));
          TestSupport.putBits(m, 4096 + i * 40 + j * 4, F32, Float.floatToRawIntBits(i == 0 ? bRow[j] : -bRow[j]));
          m.sram[16384 + i * 16 + j] = cond[i * cols + j];
        }
      }
      m.run();
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
          boolean takeA = cond[i * cols + j] != 0;
          String b = takeA ? bc[0] : bc[1];
          int ri = b.equals("none") || b.equals("col") ? i : 0;
          int rj = b.equals("none") || b.equals("row") ? j : 0;
          float want = takeA ? (ri == 0 ? aRow[rj] : -aRow[rj]) : (ri == 0 ? bRow[rj] : -bRow[rj]);
          assertEquals(Float.floatToRawIntBits(want), Elem.getI32(m.sram, 8192 + i * 32 + j * 4),
              List.of(bc) + " [" + i + "][" + j + "]");
        }
      }
    }
  }

  @Test
  void vbiniWithRevAndDivisionByZero() {
    FunctionalMachine m = TestSupport.machine(regs(1, 4, 16, 16) + """
        vbini sub, r12+0, r22, r10+0, r22, 0.5, r20, r21, f32, rev=1
        vbini div, r13+0, r22, r10+0, r22, 0.0, r20, r21, f32
        halt
        """);
    TestSupport.put(m, 1024, F32, 2f, -1f, 0f, 0.25f);
    m.run();
    float[] rev = TestSupport.get(m, 8192, F32, 4);
    assertEquals(0.5f - 2f, rev[0]);
    assertEquals(0.5f + 1f, rev[1]);
    float[] div = TestSupport.get(m, 12288, F32, 4);
    assertEquals(Float.POSITIVE_INFINITY, div[0]);
    assertEquals(Float.NEGATIVE_INFINITY, div[1]);
    assertEquals(Float.NaN, div[2]);
  }

  @Test
  void vunFunctionsInBf16() {
    String[] fns = {"exp", "tanh", "gelu_erf", "gelu_tanh", "silu", "sigmoid", "relu", "rsqrt"};
    float[] x = {-2.5f, -0.5f, 0f, 0.75f, 3f, 1e-3f};
    for (String fn : fns) {
      FunctionalMachine m = TestSupport.machine(regs(1, x.length, 64, 64) + "vun " + fn
          + ", r12+0, r22, r10+0, r22, r20, r21, bf16\nhalt\n");
      TestSupport.put(m, 1024, BF16, x);
      m.run();
      for (int j = 0; j < x.length; j++) {
        double d = roundBf16(x[j]);
        double want = switch (fn) {
          case "exp" -> StrictMath.exp(d);
          case "tanh" -> StrictMath.tanh(d);
          case "gelu_erf" -> 0.5 * d * (1 + dev.sohuc.isa.num.Numerics.erf(d / StrictMath.sqrt(2)));
          case "gelu_tanh" -> 0.5 * d * (1 + StrictMath.tanh(StrictMath.sqrt(2 / StrictMath.PI)
              * (d + 0.044715 * d * d * d)));
          case "silu" -> d / (1 + StrictMath.exp(-d));
          case "sigmoid" -> 1 / (1 + StrictMath.exp(-d));
          case "relu" -> Math.max(d, 0);
          case "rsqrt" -> 1 / StrictMath.sqrt(d);
          default -> throw new AssertionError(fn);
        };
        assertEquals(roundBf16((float) want), TestSupport.get(m, 8192 + 2 * j, BF16),
            fn + "(" + x[j] + ")");
      }
    }
  }

  @ParameterizedTest
  @EnumSource(RedOp.class)
  void vredRowsInF32(RedOp op) {
    int rows = 4;
    int cols = 7;
    FunctionalMachine m = TestSupport.machine(regs(rows, cols, 28, 8) + "vred " + op.asmName()
        + ", r12+0, r23, r10+0, r22, r20, r21, f32\nvred " + op.asmName()
        + ", r13+0, r23, r10+0, r22, r20, r21, f32, abs=1\nhalt\n");
    Random rnd = new Random(11);
    float[][] x = new float[rows][cols];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        x[i][j] = (float) rnd.nextGaussian() * 1000;
      }
    }
    x[3][2] = Float.NaN;
    for (int i = 0; i < rows; i++) {
      TestSupport.put(m, 1024 + 28 * i, F32, x[i]);
    }
    m.run();
    for (int i = 0; i < rows; i++) {
      for (boolean abs : new boolean[] {false, true}) {
        float s = 0f;
        float mx = Float.NEGATIVE_INFINITY;
        float mn = Float.POSITIVE_INFINITY;
        for (int j = 0; j < cols; j++) {
          float v = abs ? Math.abs(x[i][j]) : x[i][j];
          s += v;
          mx = Float.isNaN(mx) || Float.isNaN(v) ? Float.NaN : Math.max(mx, v);
          mn = Float.isNaN(mn) || Float.isNaN(v) ? Float.NaN : Math.min(mn, v);
        }
        float want = switch (op) {
          case SUM -> s;
          case MEAN -> s / cols;
          case MAX -> mx;
          case MIN -> mn;
        };
        assertEquals(want, TestSupport.get(m, (abs ? 12288 : 8192) + 8 * i, F32),
            op + (abs ? " abs=1" : "") + " row " + i);
      }
    }
  }

  @Test
  void vfillFp8SaturatesAndRoundsSubnormalsToEven() {
    FunctionalMachine m = TestSupport.machine(regs(1, 2, 2, 2) + """
        vfill r10+0, r0, 1000.0, r20, r21, f8e4m3
        vfill r10+2, r0, -1.0e6, r20, r21, f8e5m2
        vfill r10+4, r0, 9.765625E-4, r20, r21, f8e4m3
        vfill r10+6, r0, 0.0029296875, r20, r21, f8e4m3
        vfill r10+8, r0, 464.0, r20, r21, f8e4m3
        vfill r10+10, r0, 1.52587890625E-5, r20, r21, f8e5m2
        vfill r10+12, r0, 300.0, r20, r21, i8
        vfill r10+14, r0, -2.5, r20, r21, i8
        halt
        """);
    m.run();
    DType e4 = DType.F8E4M3;
    DType e5 = DType.F8E5M2;
    assertEquals(0x7E, TestSupport.bits(m, 1024, e4), "1000 saturates to e4m3 max 448");
    assertEquals(448f, TestSupport.get(m, 1024, e4));
    assertEquals(-57344f, TestSupport.get(m, 1026, e5), "-1e6 saturates to e5m2 -57344");
    assertEquals(0x00, TestSupport.bits(m, 1028, e4), "2^-10, half the smallest subnormal, ties to 0");
    assertEquals(0x02, TestSupport.bits(m, 1030, e4), "1.5 * 2^-9 ties to even 2 * 2^-9");
    assertEquals(448f, TestSupport.get(m, 1032, e4), "464 (halfway to 480) ties to even 448");
    assertEquals(0x01, TestSupport.bits(m, 1034, e5), "2^-16 is the smallest e5m2 subnormal");
    assertEquals(127f, TestSupport.get(m, 1036, DType.I8), "i8 saturates");
    assertEquals(-2f, TestSupport.get(m, 1038, DType.I8), "-2.5 rounds half to even");
  }

  /** Plain softmax of one row with the documented masking. */
  private static float[] softmaxRow(float[] x, int i, float scale, boolean causal, long diag,
      long valid) {
    return softmaxRow(x, i, scale, causal, diag, valid, 0);
  }

  private static float[] softmaxRow(float[] x, int i, float scale, boolean causal, long diag,
      long valid, long window) {
    int n = x.length;
    float[] out = new float[n];
    boolean[] masked = new boolean[n];
    float max = Float.NEGATIVE_INFINITY;
    boolean any = false;
    float[] s = new float[n];
    for (int j = 0; j < n; j++) {
      masked[j] = (causal && j > i + diag) || j >= valid || (window > 0 && j <= i + diag - window);
      s[j] = scale * x[j];
      if (!masked[j]) {
        max = Math.max(max, s[j]);
        any = true;
      }
    }
    if (!any) {
      return out;
    }
    float sum = 0f;
    for (int j = 0; j < n; j++) {
      if (!masked[j]) {
        out[j] = (float) StrictMath.exp(s[j] - max);
        sum += out[j];
      }
    }
    for (int j = 0; j < n; j++) {
      out[j] = masked[j] ? 0f : out[j] / sum;
    }
    return out;
  }

  @Test
  void softmaxWithCausalMaskOnAPartialTile() {
    // a 5 x 7 tile of a larger score matrix (row stride 128 bytes): query row i sits at key
    // column i + diag with diag = -1, and only 6 of the 7 columns are valid keys; row 0 is
    // fully masked
    int rows = 5;
    int cols = 7;
    FunctionalMachine m = TestSupport.machine(regs(rows, cols, 128, 64) + """
        li r24, -1
        li r25, 6
        softmax r12+0, r23, r10+0, r22, r20, r21, bf16, scale=0.125, causal=1, diag=r24, valid=r25
        softmax r13+0, r23, r10+0, r22, r20, r21, bf16, scale=0.5
        halt
        """);
    Random rnd = new Random(77);
    float[][] x = new float[rows][cols];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        x[i][j] = roundBf16((float) rnd.nextGaussian() * 8);
      }
      TestSupport.put(m, 1024 + 128 * i, BF16, x[i]);
    }
    m.run();
    for (int i = 0; i < rows; i++) {
      float[] want = softmaxRow(x[i], i, 0.125f, true, -1, 6);
      float[] wantPlain = softmaxRow(x[i], i, 0.5f, false, 0, Long.MAX_VALUE);
      for (int j = 0; j < cols; j++) {
        assertEquals(roundBf16(want[j]), TestSupport.get(m, 8192 + 64 * i + 2 * j, BF16),
            "causal row " + i + " col " + j);
        assertEquals(roundBf16(wantPlain[j]), TestSupport.get(m, 12288 + 64 * i + 2 * j, BF16),
            "plain row " + i + " col " + j);
      }
    }
    assertEquals(0f, TestSupport.get(m, 8192, BF16), "row 0 is fully masked: all zero");
  }

  @Test
  void softmaxWithSlidingWindow() {
    // query row i sits at key column i + 2 (two past keys); a window of 3 keeps columns
    // i + 0 .. i + 2, so row 0 sees keys 0..2 and row 4 sees keys 4..6
    int rows = 5;
    int cols = 7;
    FunctionalMachine m = TestSupport.machine(regs(rows, cols, 128, 128) + """
        li r24, 2
        li r25, 3
        softmax r12+0, r23, r10+0, r22, r20, r21, f32, scale=0.5, causal=1, diag=r24, window=r25
        softmax r13+0, r23, r10+0, r22, r20, r21, f32, scale=0.5, causal=1, diag=r24, window=r25, out_bf16=1
        halt
        """);
    Random rnd = new Random(78);
    float[][] x = new float[rows][cols];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        x[i][j] = (float) rnd.nextGaussian() * 4;
      }
      TestSupport.put(m, 1024 + 128 * i, F32, x[i]);
    }
    m.run();
    for (int i = 0; i < rows; i++) {
      float[] want = softmaxRow(x[i], i, 0.5f, true, 2, Long.MAX_VALUE, 3);
      for (int j = 0; j < cols; j++) {
        assertEquals(want[j], TestSupport.get(m, 8192 + 128 * i + 4 * j, F32),
            "window row " + i + " col " + j);
        assertEquals(roundBf16(want[j]), TestSupport.get(m, 12288 + 128 * i + 2 * j, BF16),
            "out_bf16 row " + i + " col " + j);
      }
    }
    assertEquals(0f, TestSupport.get(m, 8192 + 128 * 4 + 4 * 3, F32), "key 3 is outside row 4's window");
  }

  @Test
  void layernormAndRmsnorm() {
    int rows = 3;
    int cols = 10;
    FunctionalMachine m = TestSupport.machine(regs(rows, cols, 64, 64) + """
        layernorm r12+0, r10+0, r22, r11+0, r11+64, r20, r21, f32, eps=1.0E-5
        rmsnorm r13+0, r22, r10+0, r22, r11+0, r20, r21, f32, eps=1.0E-6
        rmsnorm r14+0, r22, r10+0, r22, r11+0, r20, r21, f32, eps=1.0E-6, out_bf16=1
        halt
        """);
    Random rnd = new Random(5);
    float[][] x = new float[rows][cols];
    float[] gamma = new float[cols];
    float[] beta = new float[cols];
    for (int j = 0; j < cols; j++) {
      gamma[j] = rnd.nextFloat() + 0.5f;
      beta[j] = rnd.nextFloat() - 0.5f;
    }
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        x[i][j] = (float) rnd.nextGaussian() * 3 + i;
      }
      TestSupport.put(m, 1024 + 64 * i, F32, x[i]);
    }
    TestSupport.put(m, 4096, F32, gamma);
    TestSupport.put(m, 4096 + 64, F32, beta);
    m.run();
    for (int i = 0; i < rows; i++) {
      float sum = 0f;
      for (float v : x[i]) {
        sum += v;
      }
      float mean = sum / cols;
      float sq = 0f;
      float ss = 0f;
      for (float v : x[i]) {
        sq += (v - mean) * (v - mean);
        ss += v * v;
      }
      float r = (float) (1.0 / Math.sqrt((double) (sq / cols + 1e-5f)));
      float rr = (float) (1.0 / Math.sqrt((double) (ss / cols + 1e-6f)));
      for (int j = 0; j < cols; j++) {
        assertEquals((x[i][j] - mean) * r * gamma[j] + beta[j],
            TestSupport.get(m, 8192 + 64 * i + 4 * j, F32), "layernorm " + i + "," + j);
        assertEquals(x[i][j] * rr * gamma[j], TestSupport.get(m, 12288 + 64 * i + 4 * j, F32),
            "rmsnorm " + i + "," + j);
        assertEquals(roundBf16(x[i][j] * rr * gamma[j]),
            TestSupport.get(m, 16384 + 64 * i + 2 * j, BF16), "rmsnorm out_bf16 " + i + "," + j);
      }
    }
  }

  /** Half and interleaved pairs; with a group of 2, rows (pos + i) / 2 of the tables. */
  @Test
  void ropeHalfAndInterleaved() {
    int rows = 3;
    int cols = 8;
    int pos = 2;
    FunctionalMachine m = TestSupport.machine(regs(rows, cols, 32, 16) + """
        li r24, 2
        li r25, 2
        rope half, r12+0, r22, r10+0, r22, r11+0, r11+256, r23, r24, r20, r21, f32
        rope interleaved, r13+0, r22, r10+0, r22, r11+0, r11+256, r23, r24, r20, r21, f32
        rope half, r14+0, r22, r10+0, r22, r11+0, r11+256, r23, r24, r20, r21, f32, group=r25
        halt
        """);
    Random rnd = new Random(8);
    float[][] x = new float[rows][cols];
    float[][] cos = new float[pos + rows][4];
    float[][] sin = new float[pos + rows][4];
    for (int t = 0; t < pos + rows; t++) {
      for (int c = 0; c < 4; c++) {
        cos[t][c] = (float) Math.cos(t * (c + 1) * 0.3);
        sin[t][c] = (float) Math.sin(t * (c + 1) * 0.3);
      }
      TestSupport.put(m, 4096 + 16 * t, F32, cos[t]);
      TestSupport.put(m, 4096 + 256 + 16 * t, F32, sin[t]);
    }
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        x[i][j] = (float) rnd.nextGaussian();
      }
      TestSupport.put(m, 1024 + 32 * i, F32, x[i]);
    }
    m.run();
    for (int i = 0; i < rows; i++) {
      float[] half = x[i].clone();
      float[] inter = x[i].clone();
      float[] grouped = x[i].clone();
      for (int c = 0; c < 4; c++) {
        float cs = cos[pos + i][c];
        float sn = sin[pos + i][c];
        half[c] = x[i][c] * cs - x[i][c + 4] * sn;
        half[c + 4] = x[i][c + 4] * cs + x[i][c] * sn;
        inter[2 * c] = x[i][2 * c] * cs - x[i][2 * c + 1] * sn;
        inter[2 * c + 1] = x[i][2 * c + 1] * cs + x[i][2 * c] * sn;
        float gc = cos[(pos + i) / 2][c];
        float gs = sin[(pos + i) / 2][c];
        grouped[c] = x[i][c] * gc - x[i][c + 4] * gs;
        grouped[c + 4] = x[i][c + 4] * gc + x[i][c] * gs;
      }
      for (int j = 0; j < cols; j++) {
        assertEquals(half[j], TestSupport.get(m, 8192 + 32 * i + 4 * j, F32), "half " + i);
        assertEquals(inter[j], TestSupport.get(m, 12288 + 32 * i + 4 * j, F32), "inter " + i);
        assertEquals(grouped[j], TestSupport.get(m, 16384 + 32 * i + 4 * j, F32), "group " + i);
      }
    }
  }

  @Test
  void vgluSwiGlu() {
    FunctionalMachine m = TestSupport.machine(regs(2, 3, 16, 16) + """
        vglu silu, r12+0, r22, r10+0, r22, r11+0, r22, r20, r21, bf16
        halt
        """);
    float[] gate = {-1f, 0.5f, 2f, 3f, -0.25f, 0f};
    float[] up = {2f, -3f, 0.5f, 1f, 4f, 7f};
    for (int i = 0; i < 2; i++) {
      TestSupport.put(m, 1024 + 16 * i, BF16, java.util.Arrays.copyOfRange(gate, 3 * i, 3 * i + 3));
      TestSupport.put(m, 4096 + 16 * i, BF16, java.util.Arrays.copyOfRange(up, 3 * i, 3 * i + 3));
    }
    m.run();
    for (int i = 0; i < 2; i++) {
      for (int j = 0; j < 3; j++) {
        double g = gate[3 * i + j];
        float silu = (float) (g / (1 + StrictMath.exp(-g)));
        assertEquals(roundBf16(silu * up[3 * i + j]), TestSupport.get(m, 8192 + 16 * i + 2 * j,
            BF16));
      }
    }
  }

  @Test
  void cvtQuantizesToInt8AndFp8WithScales() {
    FunctionalMachine m = TestSupport.machine(regs(2, 4, 16, 4) + """
        cvt r12+0, r23, i8, r10+0, r22, f32, r20, r21, scale=0.5, div=1
        cvt r12+16, r23, f8e4m3, r10+0, r22, f32, r20, r21, mode=col, scale_vec=r11+0
        cvt r13+0, r22, f32, r12+0, r23, i8, r20, r21, mode=row, scale_vec=r11+32
        halt
        """);
    float[] x = {1.25f, -100f, 63.75f, 0.74f, 1.26f, 200f, -1.25f, 300f};
    TestSupport.put(m, 1024, F32, java.util.Arrays.copyOfRange(x, 0, 4));
    TestSupport.put(m, 1024 + 16, F32, java.util.Arrays.copyOfRange(x, 4, 8));
    float[] colScale = {1f, 2f, 4f, 0.5f};
    float[] rowScale = {0.5f, 0.25f};
    TestSupport.put(m, 4096, F32, colScale);
    TestSupport.put(m, 4096 + 32, F32, rowScale);
    m.run();
    // i8 = round-half-even(x / 0.5), saturated: 2.5->2, -200->-128, 127.5->128->127, 1.48->1,
    // 2.52->3, 400->127, -2.5->-2, 600->127
    int[] want = {2, -128, 127, 1, 3, 127, -2, 127};
    for (int k = 0; k < 8; k++) {
      assertEquals(want[k], (int) TestSupport.get(m, 8192 + k, DType.I8), "i8 element " + k);
    }
    for (int i = 0; i < 2; i++) {
      for (int j = 0; j < 4; j++) {
        float f8 = TestSupport.get(m, 8192 + 16 + 4 * i + j, DType.F8E4M3);
        float v = Math.min(448f, Math.max(-448f, x[4 * i + j] * colScale[j]));
        assertEquals(dev.sohuc.isa.num.Numerics.roundTo(v, DType.F8E4M3), f8);
        assertEquals(want[4 * i + j] * rowScale[i], TestSupport.get(m, 12288 + 16 * i + 4 * j,
            F32), "dequantized " + i + "," + j);
      }
    }
  }

  @Test
  void accwrThenAccrdWithScaleBiasAndActivation() {
    FunctionalMachine m = TestSupport.machine(regs(2, 3, 12, 8) + """
        li r24, 100
        accwr r24+0, r23, r10+0, r22, r20, r21, f32
        accrd r12+0, r22, r24+0, r23, r20, r21, bf16, scale=2.0, bias_bcast=row, bias=r11+0, act=relu
        accwr r24+32, r23, r13+0, r22, r20, r21, i8
        accrd r14+0, r22, r24+32, r23, r20, r21, i32, acc_i32=1
        accrd r14+64, r22, r24+32, r23, r20, r21, f32, acc_i32=1, scale=0.5, bias_bcast=col, bias=r11+16
        accrd r14+128, r22, r24+32, r23, r20, r21, f32, acc_i32=1, scale=0.5, bias_bcast=col, bias=r11+16, bias_mul=1
        halt
        """);
    TestSupport.put(m, 1024, F32, 1.5f, -3f, 0.1f);
    TestSupport.put(m, 1024 + 12, F32, 2f, 0.75f, -0.5f);
    TestSupport.put(m, 4096, F32, 0.25f, 1f, -1f);
    TestSupport.put(m, 4096 + 16, F32, 10f, 20f);
    m.sram[12288] = -128;
    m.sram[12289] = 127;
    m.sram[12290] = 5;
    m.sram[12300] = -1;
    m.sram[12301] = 0;
    m.sram[12302] = 64;
    m.run();
    float[][] x = {{1.5f, -3f, 0.1f}, {2f, 0.75f, -0.5f}};
    float[] bias = {0.25f, 1f, -1f};
    for (int i = 0; i < 2; i++) {
      for (int j = 0; j < 3; j++) {
        assertEquals(Float.floatToRawIntBits(x[i][j]), m.acc[100 + 8 * i + j]);
        float v = Math.max(0f, x[i][j] * 2f + bias[j]);
        assertEquals(roundBf16(v), TestSupport.get(m, 8192 + 12 * i + 2 * j, BF16));
      }
    }
    int[][] q = {{-128, 127, 5}, {-1, 0, 64}};
    for (int i = 0; i < 2; i++) {
      for (int j = 0; j < 3; j++) {
        assertEquals(q[i][j], m.acc[132 + 8 * i + j], "accwr i8 sign-extends");
        assertEquals(q[i][j], Elem.getI32(m.sram, 16384 + 12 * i + 4 * j), "i32 copy");
        assertEquals(q[i][j] * 0.5f + (i == 0 ? 10f : 20f),
            TestSupport.get(m, 16384 + 64 + 12 * i + 4 * j, F32));
        assertEquals(q[i][j] * 0.5f * (i == 0 ? 10f : 20f),
            TestSupport.get(m, 16384 + 128 + 12 * i + 4 * j, F32), "bias_mul: a per-row scale");
      }
    }
  }

  /**
   * The readout tests' inputs: {@code count} random f32 values at r10's address (1024) and i8
   * codes at r14's (16384), and three row scales at r11's (4096).
   */
  private static void readoutInputs(FunctionalMachine m, long seed, int count) {
    Random rnd = new Random(seed);
    for (int k = 0; k < count; k++) {
      TestSupport.put(m, 1024 + 4 * k, F32, (float) rnd.nextGaussian() * 3f);
      m.sram[16384 + k] = (byte) (rnd.nextInt(256) - 128);
    }
    TestSupport.put(m, 4096, F32, 0.013f, 1.7f, -0.4f);
  }

  /**
   * accdq dequantizes an f32 and an i32 tile by row and column scales in one instruction, bit
   * for bit as accrd bias_mul=1 bias_bcast=col (the row scales, to f32) then cvt mode=col does
   * in two; a row-scale vector past the end of SRAM traps naming it.
   */
  @Test
  void accdqIsAccrdThenCvtByColumnScalesInOnePass() {
    FunctionalMachine m = TestSupport.machine(regs(3, 5, 20, 8) + """
        li r24, 100
        li r15, 5120
        li r16, 12800
        li r17, 8704
        li r18, 13312
        li r19, 13824
        accwr r24+0, r23, r10+0, r22, r20, r21, f32
        accdq r12+0, r22, r24+0, r23, r20, r21, bf16, r11, r15, scale=0.75
        accrd r13+0, r22, r24+0, r23, r20, r21, f32, scale=0.75, bias_bcast=col, bias=r11+0, bias_mul=1
        cvt r16+0, r22, bf16, r13+0, r22, f32, r20, r21, mode=col, scale_vec=r15
        accwr r24+64, r23, r14+0, r22, r20, r21, i8
        accdq r17+0, r22, r24+64, r23, r20, r21, f8e4m3, r11, r15, acc_i32=1
        accrd r18+0, r22, r24+64, r23, r20, r21, f32, acc_i32=1, bias_bcast=col, bias=r11+0, bias_mul=1
        cvt r19+0, r22, f8e4m3, r18+0, r22, f32, r20, r21, mode=col, scale_vec=r15
        halt
        """);
    readoutInputs(m, 7, 60);
    TestSupport.put(m, 5120, F32, 0.3f, 11f, 0.0071f, -2.5f, 1f);
    m.run();
    for (int i = 0; i < 3; i++) {
      for (int j = 0; j < 5; j++) {
        assertEquals(Elem.bits(m.sram, 12800 + 20 * i + 2 * j, DType.BF16),
            Elem.bits(m.sram, 8192 + 20 * i + 2 * j, DType.BF16), "bf16 " + i + "," + j);
        assertEquals(m.sram[13824 + 20 * i + j], m.sram[8704 + 20 * i + j],
            "fp8 from i32 " + i + "," + j);
      }
    }
    assertTrapNaming(regs(3, 5, 20, 8) + """
        li r15, 5120
        li r16, 1099511627776
        accdq r12+0, r22, r0+0, r23, r20, r21, bf16, r16, r15
        halt
        """, "accdq row scales");
  }

  /**
   * vbin b_bf16=1 reads b in bf16 whatever the dtype, exactly as a cvt to f32 before it: full,
   * row- and column-broadcast b, each against the two-instruction form.
   */
  @Test
  void vbinReadsABf16BAsACvtBeforeItWould() {
    FunctionalMachine m = TestSupport.machine(regs(3, 5, 20, 10) + """
        li r15, 5120
        li r16, 6144
        li r17, 7168
        vbin add, r12+0, r22, r10+0, r22, r11+0, r23, r20, r21, f32, b_bf16=1
        cvt r15+0, r22, f32, r11+0, r23, bf16, r20, r21
        vbin add, r13+0, r22, r10+0, r22, r15+0, r22, r20, r21, f32
        vbin mul, r16+0, r22, r10+0, r22, r11+0, r0, r20, r21, f32, bcast=row, b_bf16=1
        vbin mul, r16+64, r22, r10+0, r22, r15+0, r0, r20, r21, f32, bcast=row
        vbin sub, r17+0, r22, r10+0, r22, r11+0, r23, r20, r21, f32, bcast=col, b_bf16=1
        vbin sub, r17+64, r22, r10+0, r22, r15+0, r22, r20, r21, f32, bcast=col
        halt
        """);
    Random rnd = new Random(5);
    for (int k = 0; k < 15; k++) {
      TestSupport.put(m, 1024 + 4 * k, F32, (float) rnd.nextGaussian());
      TestSupport.put(m, 4096 + 2 * k, BF16, (float) rnd.nextGaussian() * 100f);
    }
    m.run();
    for (int k = 0; k < 15; k++) {
      int i = k / 5;
      int j = k % 5;
      assertEquals(Elem.bits(m.sram, 12288 + 4 * k, DType.F32), Elem.bits(m.sram, 8192 + 4 * k,
          DType.F32), "full " + k);
      assertEquals(Elem.bits(m.sram, 6144 + 64 + 20 * i + 4 * j, DType.F32),
          Elem.bits(m.sram, 6144 + 20 * i + 4 * j, DType.F32), "row " + k);
      assertEquals(Elem.bits(m.sram, 7168 + 64 + 20 * i + 4 * j, DType.F32),
          Elem.bits(m.sram, 7168 + 20 * i + 4 * j, DType.F32), "col " + k);
    }
    assertEquals(TestSupport.get(m, 1024, F32) + TestSupport.get(m, 4096, BF16),
        TestSupport.get(m, 8192, F32));
  }

  /**
   * accglu reads a gated pair's two ACC tiles, dequantizes each by its row and column scales
   * and applies the gate's activation times the linear half, bit for bit as accdq of each tile
   * to f32, vglu and a cvt to bf16 do in four instructions; without scales, from i32, as accrd
   * of each and vglu; column scales past the end of SRAM trap naming them.
   */
  @Test
  void accgluIsTheReadoutsThenVgluInOnePass() {
    FunctionalMachine m = TestSupport.machine(regs(3, 5, 20, 8) + """
        li r24, 100
        li r25, 164
        li r26, 1088
        li r15, 5120
        li r19, 5140
        li r16, 12800
        li r17, 8704
        li r18, 13312
        accwr r24+0, r23, r10+0, r22, r20, r21, f32
        accwr r25+0, r23, r26+0, r22, r20, r21, f32
        accglu silu, r12+0, r22, r24+0, r25+0, r23, r20, r21, bf16, row_scales=r11, col_scales=r15
        accdq r16+0, r22, r24+0, r23, r20, r21, f32, r11, r15
        accdq r18+0, r22, r25+0, r23, r20, r21, f32, r11, r19
        vglu silu, r13+0, r22, r16+0, r22, r18+0, r22, r20, r21, f32
        cvt r17+0, r22, bf16, r13+0, r22, f32, r20, r21
        li r24, 232
        li r25, 296
        li r26, 16400
        li r27, 9216
        li r16, 13824
        li r18, 14336
        li r19, 14848
        accwr r24+0, r23, r14+0, r22, r20, r21, i8
        accwr r25+0, r23, r26+0, r22, r20, r21, i8
        accglu gelu_tanh, r27+0, r22, r24+0, r25+0, r23, r20, r21, f32, acc_i32=1
        accrd r16+0, r22, r24+0, r23, r20, r21, f32, acc_i32=1
        accrd r18+0, r22, r25+0, r23, r20, r21, f32, acc_i32=1
        vglu gelu_tanh, r19+0, r22, r16+0, r22, r18+0, r22, r20, r21, f32
        halt
        """);
    readoutInputs(m, 9, 30);
    TestSupport.put(m, 5120, F32, 0.3f, 11f, 0.0071f, -2.5f, 1f, 0.9f, -0.02f, 4f, 0.5f, 7f);
    m.run();
    boolean someNonZero = false;
    for (int i = 0; i < 3; i++) {
      for (int j = 0; j < 5; j++) {
        int want = Elem.bits(m.sram, 8704 + 20 * i + 2 * j, DType.BF16);
        assertEquals(want, Elem.bits(m.sram, 8192 + 20 * i + 2 * j, DType.BF16), "bf16 " + i
            + "," + j);
        assertEquals(Elem.bits(m.sram, 14848 + 20 * i + 4 * j, DType.F32),
            Elem.bits(m.sram, 9216 + 20 * i + 4 * j, DType.F32), "from i32 " + i + "," + j);
        someNonZero |= want != 0;
      }
    }
    assertTrue(someNonZero);
    assertTrapNaming(regs(3, 5, 20, 8) + """
        li r15, 1099511627776
        accglu silu, r12+0, r22, r0+0, r0+64, r23, r20, r21, bf16, col_scales=r15
        halt
        """, "accglu column scales");
  }

  /**
   * softmax src_acc=1 reads the scores where an mma leaves them, f32 words in ACC rows apart by
   * a word stride: the same probabilities as reading them out with accrd first, causal and with
   * bf16 output; scores past the end of ACC trap naming them.
   */
  @Test
  void softmaxReadsScoresStraightFromAcc() {
    FunctionalMachine m = TestSupport.machine(regs(3, 6, 24, 8) + """
        li r24, 200
        li r25, 2
        li r15, 5120
        accwr r24+0, r23, r10+0, r22, r20, r21, f32
        softmax r12+0, r22, r24+0, r23, r20, r21, f32, scale=0.35, causal=1, diag=r25, out_bf16=1, src_acc=1
        accrd r15+0, r22, r24+0, r23, r20, r21, f32
        softmax r13+0, r22, r15+0, r22, r20, r21, f32, scale=0.35, causal=1, diag=r25, out_bf16=1
        halt
        """);
    putScores(m, 11);
    m.run();
    boolean someNonZero = false;
    for (int i = 0; i < 3; i++) {
      for (int j = 0; j < 6; j++) {
        int want = Elem.bits(m.sram, 12288 + 24 * i + 2 * j, DType.BF16);
        assertEquals(want, Elem.bits(m.sram, 8192 + 24 * i + 2 * j, DType.BF16), i + "," + j);
        someNonZero |= want != 0;
      }
    }
    assertTrue(someNonZero);
    assertTrapNaming(regs(3, 6, 24, 8) + """
        li r24, 1099511627776
        softmax r12+0, r22, r24+0, r23, r20, r21, f32, src_acc=1
        halt
        """, "softmax ACC scores");
  }

  /**
   * softmax with a sums register leaves the probabilities unnormalized, exp(s - m), and writes
   * each row's f32 1 / sum: times those, they are the normalized probabilities (within one f32
   * rounding); a fully masked row gets 0 and no probability; a sums vector out of SRAM traps
   * naming it.
   */
  @Test
  void softmaxDefersItsNormalizationToTheSums() {
    // causal with diag -1: row 0 sees no key (fully masked), rows 1 and 2 one and two
    FunctionalMachine m = TestSupport.machine(regs(3, 6, 24, 24) + """
        li r25, -1
        li r26, 20480
        softmax r12+0, r22, r10+0, r23, r20, r21, f32, scale=0.35, causal=1, diag=r25, sums=r26
        softmax r13+0, r22, r10+0, r23, r20, r21, f32, scale=0.35, causal=1, diag=r25
        halt
        """);
    putScores(m, 5);
    m.run();
    assertEquals(0f, TestSupport.get(m, 20480, F32));
    for (int i = 0; i < 3; i++) {
      float inv = TestSupport.get(m, 20480 + 4 * i, F32);
      for (int j = 0; j < 6; j++) {
        float p = TestSupport.get(m, 8192 + 24 * i + 4 * j, F32);
        float want = TestSupport.get(m, 12288 + 24 * i + 4 * j, F32);
        assertEquals(want, p * inv, Math.ulp(want), i + "," + j);
        assertEquals(j >= i, p == 0f, i + "," + j);
      }
    }
    assertTrapNaming(regs(3, 6, 24, 24) + """
        li r26, 1099511627776
        softmax r12+0, r22, r10+0, r23, r20, r21, f32, sums=r26
        halt
        """, "softmax sums");
  }

  /** 18 f32 scores (3 rows of 6) at SRAM 1024, where r10 points: Gaussian, spread 4. */
  private static void putScores(FunctionalMachine m, long seed) {
    Random rnd = new Random(seed);
    for (int k = 0; k < 18; k++) {
      TestSupport.put(m, 1024 + 4 * k, F32, (float) rnd.nextGaussian() * 4f);
    }
  }

  /** {@code program} traps, and its message names {@code what}. */
  private static void assertTrapNaming(String program, String what) {
    FunctionalMachine m = TestSupport.machine(program);
    Trap trap = assertThrows(Trap.class, m::run);
    assertTrue(trap.getMessage().contains(what), trap.getMessage());
  }
}
