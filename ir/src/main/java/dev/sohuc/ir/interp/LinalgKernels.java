package dev.sohuc.ir.interp;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * Matrix products. The float kernel is an i-k-j loop over float[] rows (which HotSpot
 * vectorizes), run in parallel over (batch, row) pairs when the product is large.
 */
final class LinalgKernels {
  /** Multiply-adds above which a product is split across the common pool. */
  private static final long PARALLEL_WORK = 1L << 18;

  private LinalgKernels() {}

  /**
   * The geometry of a numpy matmul: rank-1 operands promoted, batch dims broadcast.
   *
   * @param aBatch offset of each output batch's matrix in a (in matrices), null for identity
   */
  record Plan(long[] outShape, int batches, int m, int k, int n, int[] aBatch, int[] bBatch) {
    static Plan of(long[] a, long[] b) {
      if (a.length == 0 || b.length == 0) {
        throw new IrException("matmul operands must have rank 1 or more, got "
            + Arrays.toString(a) + " and " + Arrays.toString(b));
      }
      long[] aa = a.length == 1 ? new long[] {1, a[0]} : a;
      long[] bb = b.length == 1 ? new long[] {b[0], 1} : b;
      long m = aa[aa.length - 2];
      long k = aa[aa.length - 1];
      long k2 = bb[bb.length - 2];
      long n = bb[bb.length - 1];
      if (k != k2) {
        throw new IrException("matmul contracted dims differ: " + Arrays.toString(a) + " @ "
            + Arrays.toString(b));
      }
      long[] aBatchShape = Arrays.copyOf(aa, aa.length - 2);
      long[] bBatchShape = Arrays.copyOf(bb, bb.length - 2);
      long[] batch = Indexing.broadcastShapes(aBatchShape, bBatchShape);
      long[] out = Arrays.copyOf(batch, batch.length + (a.length > 1 ? 1 : 0) + (b.length > 1 ? 1 : 0));
      int at = batch.length;
      if (a.length > 1) {
        out[at++] = m;
      }
      if (b.length > 1) {
        out[at] = n;
      }
      Indexing.size(out);
      return new Plan(out, Indexing.size(batch), (int) m, (int) k, (int) n,
          Indexing.broadcastOffsets(aBatchShape, batch), Indexing.broadcastOffsets(bBatchShape, batch));
    }

    int aMatrix(int batch) {
      return aBatch == null ? batch : aBatch[batch];
    }

    int bMatrix(int batch) {
      return bBatch == null ? batch : bBatch[batch];
    }

    boolean parallel() {
      return (long) batches * m * k * n > PARALLEL_WORK && (long) batches * m > 1;
    }

    /** One output row: its index i within its matrix, and where its a row, b matrix and c row start. */
    @FunctionalInterface
    interface Row {
      void compute(int i, int aOff, int bOff, int cOff);
    }

    /** Runs {@code row} for every (batch, i) output row, in parallel when the plan says so. */
    void forEachRow(Row row) {
      IntStream range = IntStream.range(0, batches * m);
      (parallel() ? range.parallel() : range).forEach(r -> {
        int batch = r / m;
        int i = r % m;
        row.compute(i, aMatrix(batch) * m * k + i * k, bMatrix(batch) * k * n, r * n);
      });
    }
  }


  static Tensor matmul(Tensor x, Tensor y) {
    Plan p = Plan.of(x.shape(), y.shape());
    return Tensor.ofFloats(x.elementType(), p.outShape(), matmulFloats(p, x, y));
  }

  /** The product in f32, not yet rounded to a narrow result type. */
  private static float[] matmulFloats(Plan p, Tensor x, Tensor y) {
    float[] a = x.floats();
    float[] b = y.floats();
    int k = p.k();
    int n = p.n();
    float[] c = new float[Indexing.size(p.outShape())];
    p.forEachRow((i, aOff, bOff, cOff) -> {
      for (int kk = 0; kk < k; kk++) {
        float aik = a[aOff + kk];
        int bRow = bOff + kk * n;
        for (int j = 0; j < n; j++) {
          c[cOff + j] += aik * b[bRow + j];
        }
      }
    });
    return c;
  }

  /**
   * {@code (a - aZero) @ (b - bZero)} in i32; aZero is a scalar or one value per row of a,
   * bZero a scalar or one value per column of b.
   */
  static Tensor matmulInteger(Tensor x, Tensor y, Tensor xZero, Tensor yZero) {
    Plan p = Plan.of(x.shape(), y.shape());
    int m = p.m();
    int k = p.k();
    int n = p.n();
    long[] a = x.longs();
    long[] b = y.longs();
    long[] az = zeroPoints(xZero, m, "a");
    long[] bz = zeroPoints(yZero, n, "b");
    long[] c = new long[Indexing.size(p.outShape())];
    p.forEachRow((i, aOff, bOff, cOff) -> {
      long zi = az[az.length == 1 ? 0 : i];
      for (int kk = 0; kk < k; kk++) {
        long aik = a[aOff + kk] - zi;
        int bRow = bOff + kk * n;
        for (int j = 0; j < n; j++) {
          c[cOff + j] += aik * (b[bRow + j] - bz[bz.length == 1 ? 0 : j]);
        }
      }
    });
    return Tensor.ofLongs(ElementType.I32, p.outShape(), c);
  }

  private static long[] zeroPoints(Tensor zp, int expected, String role) {
    long[] z = zp.longs();
    if (z.length != 1 && z.length != expected) {
      throw new IrException(role + " zero point has " + z.length + " values, expected 1 or " + expected);
    }
    return z;
  }

  static Tensor gemm(Tensor a, Tensor b, Tensor c, double alpha, double beta, boolean transA, boolean transB) {
    Tensor ta = transA ? DataKernels.transpose(a, new long[] {1, 0}) : a;
    Tensor tb = transB ? DataKernels.transpose(b, new long[] {1, 0}) : b;
    Plan p = Plan.of(ta.shape(), tb.shape());
    float[] o = matmulFloats(p, ta, tb);
    long[] shape = p.outShape();
    int[] ic = c == null ? null : Indexing.broadcastOffsets(c.shape(), shape);
    float[] cv = c == null ? null : c.floats();
    for (int i = 0; i < o.length; i++) {
      double v = alpha * o[i];
      if (cv != null) {
        v += beta * cv[ic == null ? i : ic[i]];
      }
      o[i] = (float) v;
    }
    return Tensor.ofFloats(a.elementType(), shape, o);
  }
}
