package dev.sohuc.emu.kernel;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * The functional MXU kernels: C += A x B on unpacked tiles, with the exact accumulation order of
 * the ISA (for each C element, p ascending, one fused multiply-add per step). The loops run
 * across j innermost so that HotSpot vectorizes them without changing any element's order of
 * operations; k is blocked so that the B panel stays in cache; rows are split across a
 * fork/join pool when the tile is big enough to pay for it.
 *
 * <p>The f32 micro-kernel updates four rows of C by four k steps per pass over j: each element
 * still gets its fma chain in p order, but one pass loads and stores a C row once per four
 * steps and loads each B row once per four C rows. (Measured with C2 on AVX-512: 4 x 4 beats
 * 2 x 4 by about a quarter; 8 x 4 and 4 x 8 exceed C2's default unroll budget and are not
 * vectorized at all.)
 */
public final class MxuKernel {
  private MxuKernel() {}

  /** k steps per block: a 256 x 128 f32 panel of B is 128 KiB, which stays in L2. */
  private static final int K_BLOCK = 256;
  /** Below this many multiply-adds one thread is faster than forking. */
  private static final long PARALLEL_MACS = 1L << 19;
  /** Rows per micro-kernel pass; parallel row ranges start at multiples of it. */
  private static final int ROWS = 4;

  private static volatile ForkJoinPool pool;

  /** The shared pool: one worker per available core (commonPool would leave one core idle). */
  public static ForkJoinPool pool() {
    ForkJoinPool p = pool;
    if (p == null) {
      synchronized (MxuKernel.class) {
        if (pool == null) {
          pool = new ForkJoinPool(Runtime.getRuntime().availableProcessors(), fj -> {
            var t = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(fj);
            t.setDaemon(true);
            t.setName("sohuc-emu-" + t.getPoolIndex());
            return t;
          }, null, false);
        }
        p = pool;
      }
    }
    return p;
  }

  /** The work on rows [i0, i1) of C. */
  @FunctionalInterface
  private interface RowRange {
    void run(int i0, int i1);
  }

  /** Runs {@code body} over rows [0, m), split across the pool when the tile is large. */
  private static void forRows(int m, long macs, boolean parallel, RowRange body) {
    if (parallel && macs >= PARALLEL_MACS && m >= 2 * ROWS) {
      int threads = pool().getParallelism();
      int grain = Math.max(ROWS, (m + 2 * threads - 1) / (2 * threads));
      pool().invoke(new Split(body, 0, m, grain));
    } else {
      body.run(0, m);
    }
  }

  private static final class Split extends RecursiveAction {
    private final RowRange body;
    private final int i0;
    private final int i1;
    private final int grain;

    Split(RowRange body, int i0, int i1, int grain) {
      this.body = body;
      this.i0 = i0;
      this.i1 = i1;
      this.grain = grain;
    }

    @Override
    protected void compute() {
      if (i1 - i0 <= grain) {
        body.run(i0, i1);
        return;
      }
      int mid = i0 + Math.max(ROWS, ((i1 - i0) / 2) / ROWS * ROWS);
      invokeAll(new Split(body, i0, mid, grain), new Split(body, mid, i1, grain));
    }
  }

  /**
   * {@code c[i][j] = fma(a[i*k + p], b[p][j], c[i][j])} for p ascending, all i < m, j < n.
   * {@code a} is m x k row-major and dense; {@code b} (k rows) and {@code c} (m rows) are arrays
   * of rows, so that the inner loop indexes both with the same j and HotSpot can vectorize it
   * even though it cannot prove that the rows are distinct arrays.
   */
  public static void mmaF32(float[] a, float[][] b, float[][] c, int m, int n, int k,
      boolean parallel) {
    forRows(m, (long) m * n * k, parallel, (i0, i1) -> rowsF32(a, b, c, n, k, i0, i1));
  }

  private static void rowsF32(float[] a, float[][] b, float[][] c, int n, int k, int i0,
      int i1) {
    for (int p0 = 0; p0 < k; p0 += K_BLOCK) {
      int p1 = Math.min(k, p0 + K_BLOCK);
      int i = i0;
      for (; i + ROWS <= i1; i += ROWS) {
        int p = p0;
        for (; p + 4 <= p1; p += 4) {
          fourByFour(a, b, c, n, k, i, p);
        }
        for (; p < p1; p++) {
          for (int r = i; r < i + ROWS; r++) {
            axpy(a[r * k + p], b[p], c[r], n);
          }
        }
      }
      for (; i < i1; i++) {
        for (int p = p0; p < p1; p++) {
          axpy(a[i * k + p], b[p], c[i], n);
        }
      }
    }
  }

  /** Rows i..i+3 of C, steps p..p+3: per element four fmas in p order. */
  private static void fourByFour(float[] a, float[][] b, float[][] c, int n, int k, int i,
      int p) {
    float[] c0 = c[i];
    float[] c1 = c[i + 1];
    float[] c2 = c[i + 2];
    float[] c3 = c[i + 3];
    int a0 = i * k + p;
    int a1 = a0 + k;
    int a2 = a1 + k;
    int a3 = a2 + k;
    float x0 = a[a0];
    float x1 = a[a0 + 1];
    float x2 = a[a0 + 2];
    float x3 = a[a0 + 3];
    float y0 = a[a1];
    float y1 = a[a1 + 1];
    float y2 = a[a1 + 2];
    float y3 = a[a1 + 3];
    float z0 = a[a2];
    float z1 = a[a2 + 1];
    float z2 = a[a2 + 2];
    float z3 = a[a2 + 3];
    float w0 = a[a3];
    float w1 = a[a3 + 1];
    float w2 = a[a3 + 2];
    float w3 = a[a3 + 3];
    float[] b0 = b[p];
    float[] b1 = b[p + 1];
    float[] b2 = b[p + 2];
    float[] b3 = b[p + 3];
    for (int j = 0; j < n; j++) {
      float u0 = b0[j];
      float u1 = b1[j];
      float u2 = b2[j];
      float u3 = b3[j];
      c0[j] = Math.fma(x3, u3, Math.fma(x2, u2, Math.fma(x1, u1, Math.fma(x0, u0, c0[j]))));
      c1[j] = Math.fma(y3, u3, Math.fma(y2, u2, Math.fma(y1, u1, Math.fma(y0, u0, c1[j]))));
      c2[j] = Math.fma(z3, u3, Math.fma(z2, u2, Math.fma(z1, u1, Math.fma(z0, u0, c2[j]))));
      c3[j] = Math.fma(w3, u3, Math.fma(w2, u2, Math.fma(w1, u1, Math.fma(w0, u0, c3[j]))));
    }
  }

  /** {@code c[j] = fma(x, b[j], c[j])} for j < n: one k step of one row. */
  private static void axpy(float x, float[] b, float[] c, int n) {
    for (int j = 0; j < n; j++) {
      c[j] = Math.fma(x, b[j], c[j]);
    }
  }

  /** The i8 form: {@code c[i][j] += a[i][p] * b[p][j]} in wrapping 32-bit arithmetic. */
  public static void mmaI32(int[] a, int[][] b, int[][] c, int m, int n, int k, boolean parallel) {
    forRows(m, (long) m * n * k, parallel, (i0, i1) -> rowsI32(a, b, c, n, k, i0, i1));
  }

  private static void rowsI32(int[] a, int[][] b, int[][] c, int n, int k, int i0, int i1) {
    for (int p0 = 0; p0 < k; p0 += K_BLOCK) {
      int p1 = Math.min(k, p0 + K_BLOCK);
      for (int i = i0; i < i1; i++) {
        int[] c0 = c[i];
        int a0 = i * k;
        for (int p = p0; p < p1; p++) {
          int x0 = a[a0 + p];
          int[] bp = b[p];
          for (int j = 0; j < n; j++) {
            c0[j] += x0 * bp[j];
          }
        }
      }
    }
  }

  /** The textbook triple loop (i, j, p with a scalar accumulator), for the benchmark only. */
  public static void naiveF32(float[] a, float[][] b, float[][] c, int m, int n, int k) {
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        float acc = c[i][j];
        for (int p = 0; p < k; p++) {
          acc = Math.fma(a[i * k + p], b[p][j], acc);
        }
        c[i][j] = acc;
      }
    }
  }
}
