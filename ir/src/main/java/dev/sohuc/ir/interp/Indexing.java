package dev.sohuc.ir.interp;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.util.Arrays;

/**
 * The one loop nest that every data-movement and broadcasting kernel shares. An output element
 * at coordinates {@code (c0, c1, ...)} reads the input element at flat offset
 * {@code contrib[0][c0] + contrib[1][c1] + ...}; each kernel only says what one output axis
 * contributes at each coordinate (a transpose permutes strides, a slice scales and shifts them,
 * a broadcast zeroes them, a tile wraps them, a pad marks some coordinates as {@link #PAD}).
 */
final class Indexing {
  /** A contribution meaning "no input element here": the element is padding. */
  static final int PAD = -1;

  private Indexing() {}

  /** Row-major strides of a shape, in elements. */
  static int[] strides(long[] shape) {
    int[] s = new int[shape.length];
    long acc = 1;
    for (int i = shape.length - 1; i >= 0; i--) {
      s[i] = (int) acc;
      acc *= Math.max(1, shape[i]);
    }
    return s;
  }

  /** Element count, checked before anything of that size is allocated. */
  static int size(long[] shape) {
    return Tensor.checkedSize(shape);
  }

  /**
   * For each element of {@code outShape} in row-major order, the sum of its axes'
   * contributions, or {@link #PAD} when any axis contributes {@link #PAD}.
   */
  static int[] offsets(long[] outShape, int[][] contrib) {
    int n = size(outShape);
    int[] out = new int[n];
    int rank = outShape.length;
    if (n == 0) {
      return out;
    }
    if (rank == 0) {
      return out; // one element at offset 0
    }
    int[] coord = new int[rank];
    long sum = 0; // over axes 0..rank-2
    int padAxes = 0;
    for (int a = 0; a < rank - 1; a++) {
      int c = contrib[a][0];
      if (c == PAD) {
        padAxes++;
      } else {
        sum += c;
      }
    }
    int[] last = contrib[rank - 1];
    int lastLen = (int) outShape[rank - 1];
    int k = 0;
    while (true) {
      if (padAxes > 0) {
        Arrays.fill(out, k, k + lastLen, PAD);
      } else {
        for (int c = 0; c < lastLen; c++) {
          int v = last[c];
          out[k + c] = v == PAD ? PAD : (int) (sum + v);
        }
      }
      k += lastLen;
      // Advance the odometer over the leading axes.
      int a = rank - 2;
      while (a >= 0) {
        int old = contrib[a][coord[a]];
        if (old == PAD) {
          padAxes--;
        } else {
          sum -= old;
        }
        coord[a]++;
        if (coord[a] < outShape[a]) {
          int now = contrib[a][coord[a]];
          if (now == PAD) {
            padAxes++;
          } else {
            sum += now;
          }
          break;
        }
        coord[a] = 0;
        int first = contrib[a][0];
        if (first == PAD) {
          padAxes++;
        } else {
          sum += first;
        }
        a--;
      }
      if (a < 0) {
        return out;
      }
    }
  }

  /** Contributions of an affine axis: coordinate c reads input coordinate {@code start + c * step}. */
  static int[] affine(long length, long start, long step, int stride) {
    int[] c = new int[(int) length];
    for (int i = 0; i < c.length; i++) {
      c[i] = (int) ((start + i * step) * stride);
    }
    return c;
  }

  /**
   * Numpy broadcast of two concrete shapes; throws naming both shapes when they do not
   * broadcast.
   */
  static long[] broadcastShapes(long[] a, long[] b) {
    int rank = Math.max(a.length, b.length);
    long[] out = new long[rank];
    for (int i = 0; i < rank; i++) {
      int ia = a.length - rank + i;
      int ib = b.length - rank + i;
      long da = ia >= 0 ? a[ia] : 1;
      long db = ib >= 0 ? b[ib] : 1;
      if (da == db || db == 1) {
        out[i] = da;
      } else if (da == 1) {
        out[i] = db;
      } else {
        throw new IrException("shapes " + Arrays.toString(a) + " and " + Arrays.toString(b)
            + " do not broadcast");
      }
    }
    return out;
  }

  /**
   * Offsets into a tensor of shape {@code in} broadcast to {@code out}, or null when the shapes
   * are equal and offsets are the identity.
   */
  static int[] broadcastOffsets(long[] in, long[] out) {
    if (Arrays.equals(in, out)) {
      return null;
    }
    if (in.length > out.length) {
      throw new IrException("shape " + Arrays.toString(in) + " does not broadcast to "
          + Arrays.toString(out));
    }
    int[] strides = strides(in);
    int[][] contrib = new int[out.length][];
    int lead = out.length - in.length;
    for (int a = 0; a < out.length; a++) {
      long dIn = a >= lead ? in[a - lead] : 1;
      if (dIn != 1 && dIn != out[a]) {
        throw new IrException("shape " + Arrays.toString(in) + " does not broadcast to "
            + Arrays.toString(out));
      }
      contrib[a] = dIn == 1 ? new int[(int) out[a]] : affine(out[a], 0, 1, strides[a - lead]);
    }
    return offsets(out, contrib);
  }

  /** The raw storage of a tensor: its float[] or long[]. */
  static Object storage(Tensor t) {
    return t.isFloat() ? t.floats() : t.longs();
  }

  /** A new array of the storage kind of {@code type}. */
  static Object newStorage(ElementType type, int n) {
    return type.isFloat() ? new float[n] : new long[n];
  }

  /** Wraps storage as a tensor of {@code type}. */
  static Tensor wrap(ElementType type, long[] shape, Object data) {
    return type.isFloat()
        ? Tensor.ofFloats(type, shape, (float[]) data)
        : Tensor.ofLongs(type, shape, (long[]) data);
  }

  /**
   * A tensor of {@code outShape} whose element i is {@code src}'s element {@code idx[i]}, or
   * {@code padValue} where {@code idx[i]} is {@link #PAD}.
   */
  static Tensor take(Tensor src, long[] outShape, int[] idx, double padValue) {
    int n = idx.length;
    if (src.isFloat()) {
      float[] s = src.floats();
      float[] o = new float[n];
      float pad = (float) padValue;
      for (int i = 0; i < n; i++) {
        int j = idx[i];
        o[i] = j == PAD ? pad : s[j];
      }
      return Tensor.ofFloats(src.elementType(), outShape, o);
    }
    long[] s = src.longs();
    long[] o = new long[n];
    long pad = src.elementType() == ElementType.BOOL ? (padValue != 0 ? 1 : 0) : (long) padValue;
    for (int i = 0; i < n; i++) {
      int j = idx[i];
      o[i] = j == PAD ? pad : s[j];
    }
    return Tensor.ofLongs(src.elementType(), outShape, o);
  }

  static long product(long[] shape, int from, int to) {
    long p = 1;
    for (int i = from; i < to; i++) {
      p *= shape[i];
    }
    return p;
  }
}
