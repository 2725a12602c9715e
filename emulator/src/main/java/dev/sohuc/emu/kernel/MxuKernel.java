package dev.sohuc.emu.kernel;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * The functional MXU kernels: C += A x B on unpacked tiles, with the exact accumulation order of
 * the ISA (for each C element, p ascending, one fused multiply-add per step). The loops run
 * across j innermost so that HotSpot vectorizes them without changing any element's order of
 * operations; k is blocked so that the B panel stays in cache; rows are split across a
 * fork/join pool when the tile is big enough to pay for it.
 */
public final class MxuKernel {
  private MxuKernel() {}

  /** k steps per block: a 256 x 128 f32 panel of B is 128 KiB, which stays in L2. */
  private static final int K_BLOCK = 256;
  /** Below this many multiply-adds one thread is faster than forking. */
  private static final long PARALLEL_MACS = 1L << 19;

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

  /**
   * {@code c[i][j] = fma(a[i*k + p], b[p][j], c[i][j])} for p ascending, all i < m, j < n.
   * {@code a} is m x k row-major and dense; {@code b} (k rows) and {@code c} (m rows) are arrays
   * of rows, so that the inner loop indexes both with the same j and HotSpot can vectorize it
   * even though it cannot prove that the rows are distinct arrays.
   */
  public static void mmaF32(float[] a, float[][] b, float[][] c, int m, int n, int k,
      boolean parallel) {
    if (parallel && (long) m * n * k >= PARALLEL_MACS && m >= 2) {
      pool().invoke(new RowsF32(a, b, c, m, n, k, 0, m));
    } else {
      rowsF32(a, b, c, n, k, 0, m);
    }
  }

  private static void rowsF32(float[] a, float[][] b, float[][] c, int n, int k, int i0,
      int i1) {
    for (int p0 = 0; p0 < k; p0 += K_BLOCK) {
      int p1 = Math.min(k, p0 + K_BLOCK);
      int i = i0;
      // two rows at a time share every load of b, and four k steps per pass over a row of C
      // quarter its loads and stores; each element still sees p ascending, one fma per step
      for (; i + 1 < i1; i += 2) {
        float[] c0 = c[i];
        float[] c1 = c[i + 1];
        int a0 = i * k;
        int a1 = a0 + k;
        int p = p0;
        for (; p + 3 < p1; p += 4) {
          float x0 = a[a0 + p];
          float x1 = a[a0 + p + 1];
          float x2 = a[a0 + p + 2];
          float x3 = a[a0 + p + 3];
          float y0 = a[a1 + p];
          float y1 = a[a1 + p + 1];
          float y2 = a[a1 + p + 2];
          float y3 = a[a1 + p + 3];
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
          }
        }
        for (; p < p1; p++) {
          float x0 = a[a0 + p];
          float x1 = a[a1 + p];
          float[] bp = b[p];
          for (int j = 0; j < n; j++) {
            float bj = bp[j];
            c0[j] = Math.fma(x0, bj, c0[j]);
            c1[j] = Math.fma(x1, bj, c1[j]);
          }
        }
      }
      for (; i < i1; i++) {
        float[] c0 = c[i];
        int a0 = i * k;
        for (int p = p0; p < p1; p++) {
          float x0 = a[a0 + p];
          float[] bp = b[p];
          for (int j = 0; j < n; j++) {
            c0[j] = Math.fma(x0, bp[j], c0[j]);
          }
        }
      }
    }
  }

  private static final class RowsF32 extends RecursiveAction {
    private final float[] a;
    private final float[][] b;
    private final float[][] c;
    private final int m;
    private final int n;
    private final int k;
    private final int i0;
    private final int i1;

    RowsF32(float[] a, float[][] b, float[][] c, int m, int n, int k, int i0, int i1) {
      this.a = a;
      this.b = b;
      this.c = c;
      this.m = m;
      this.n = n;
      this.k = k;
      this.i0 = i0;
      this.i1 = i1;
    }

    @Override
    protected void compute() {
      int threads = pool().getParallelism();
      int grain = Math.max(1, (m + 2 * threads - 1) / (2 * threads));
      if (i1 - i0 <= grain) {
        rowsF32(a, b, c, n, k, i0, i1);
        return;
      }
      int mid = (i0 + i1) >>> 1;
      invokeAll(new RowsF32(a, b, c, m, n, k, i0, mid), new RowsF32(a, b, c, m, n, k, mid, i1));
    }
  }

  /** The i8 form: {@code c[i][j] += a[i][p] * b[p][j]} in wrapping 32-bit arithmetic. */
  public static void mmaI32(int[] a, int[][] b, int[][] c, int m, int n, int k, boolean parallel) {
    if (parallel && (long) m * n * k >= PARALLEL_MACS && m >= 2) {
      pool().invoke(new RowsI32(a, b, c, m, n, k, 0, m));
    } else {
      rowsI32(a, b, c, n, k, 0, m);
    }
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

  private static final class RowsI32 extends RecursiveAction {
    private final int[] a;
    private final int[][] b;
    private final int[][] c;
    private final int m;
    private final int n;
    private final int k;
    private final int i0;
    private final int i1;

    RowsI32(int[] a, int[][] b, int[][] c, int m, int n, int k, int i0, int i1) {
      this.a = a;
      this.b = b;
      this.c = c;
      this.m = m;
      this.n = n;
      this.k = k;
      this.i0 = i0;
      this.i1 = i1;
    }

    @Override
    protected void compute() {
      int threads = pool().getParallelism();
      int grain = Math.max(1, (m + 2 * threads - 1) / (2 * threads));
      if (i1 - i0 <= grain) {
        rowsI32(a, b, c, n, k, i0, i1);
        return;
      }
      int mid = (i0 + i1) >>> 1;
      invokeAll(new RowsI32(a, b, c, m, n, k, i0, mid), new RowsI32(a, b, c, m, n, k, mid, i1));
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
