package dev.sohuc.ir.interp;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.op.DataOp.PadMode;
import dev.sohuc.ir.op.DataOp.ScatterReduction;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Data movement with ONNX semantics. Strided movement goes through {@link Indexing#offsets};
 * axis-block movement (gather, concat, split) copies contiguous blocks.
 */
final class DataKernels {
  private DataKernels() {}

  static Tensor reshape(Tensor x, long[] shape) {
    long[] out = shape.clone();
    int inferred = -1;
    long known = 1;
    for (int i = 0; i < out.length; i++) {
      if (out[i] == -1 && inferred < 0) {
        inferred = i;
      } else if (out[i] < 0) {
        throw new IrException("reshape target " + Arrays.toString(shape) + " has a negative dim");
      } else {
        known = Math.multiplyExact(known, out[i]);
      }
    }
    if (inferred >= 0) {
      if (known == 0 || x.size() % known != 0) {
        throw new IrException("cannot infer the -1 in " + Arrays.toString(shape) + " for "
            + x.size() + " elements");
      }
      out[inferred] = x.size() / known;
    } else if (known != x.size()) {
      throw new IrException("cannot reshape " + Arrays.toString(x.shape()) + " to "
          + Arrays.toString(shape));
    }
    return Indexing.wrap(x.elementType(), out, copy(x));
  }

  private static Object copy(Tensor x) {
    return x.isFloat() ? x.floats().clone() : x.longs().clone();
  }

  static Tensor transpose(Tensor x, long[] perm) {
    long[] in = x.shape();
    int[] strides = Indexing.strides(in);
    long[] out = new long[perm.length];
    int[][] contrib = new int[perm.length][];
    for (int a = 0; a < perm.length; a++) {
      int p = (int) perm[a];
      out[a] = in[p];
      contrib[a] = Indexing.affine(out[a], 0, 1, strides[p]);
    }
    return Indexing.take(x, out, Indexing.offsets(out, contrib), 0);
  }

  /** Start, length and step of an ONNX slice along a dim of size {@code dim}. */
  record SliceRange(long start, long length, long step) {
    static SliceRange of(long dim, long start, long end, long step) {
      if (step == 0) {
        throw new IrException("slice step must not be 0");
      }
      if (dim == 0) {
        return new SliceRange(0, 0, step);
      }
      long s = start < 0 ? start + dim : start;
      long e = end < 0 ? end + dim : end;
      long len;
      if (step > 0) {
        s = clamp(s, 0, dim);
        e = clamp(e, 0, dim);
        len = e > s ? (e - s + step - 1) / step : 0;
      } else {
        s = clamp(s, 0, dim - 1);
        e = clamp(e, -1, dim - 1);
        len = s > e ? (s - e - step - 1) / -step : 0;
      }
      return new SliceRange(s, len, step);
    }

    private static long clamp(long v, long lo, long hi) {
      return Math.max(lo, Math.min(v, hi));
    }
  }

  static Tensor slice(Tensor x, long[] starts, long[] ends, long[] axes, long[] steps) {
    long[] in = x.shape();
    int rank = in.length;
    int[] strides = Indexing.strides(in);
    long[] out = in.clone();
    long[] first = new long[rank];
    long[] step = new long[rank];
    Arrays.fill(step, 1);
    for (int i = 0; i < axes.length; i++) {
      int a = (int) (axes[i] < 0 ? axes[i] + rank : axes[i]);
      SliceRange r = SliceRange.of(in[a], starts[i], ends[i], steps[i]);
      out[a] = r.length();
      first[a] = r.start();
      step[a] = r.step();
    }
    int[][] contrib = new int[rank][];
    for (int a = 0; a < rank; a++) {
      contrib[a] = Indexing.affine(out[a], first[a], step[a], strides[a]);
    }
    return Indexing.take(x, out, Indexing.offsets(out, contrib), 0);
  }

  /** An index along an axis of size {@code dim}, negative counting from the end; checked. */
  static int index(long i, long dim, String what) {
    long v = i < 0 ? i + dim : i;
    if (v < 0 || v >= dim) {
      throw new IrException(what + " " + i + " is out of range for a dim of size " + dim);
    }
    return (int) v;
  }

  static Tensor gather(Tensor data, Tensor indices, long axis) {
    long[] d = data.shape();
    int ax = (int) (axis < 0 ? axis + d.length : axis);
    long[] ish = indices.shape();
    long[] out = new long[d.length - 1 + ish.length];
    System.arraycopy(d, 0, out, 0, ax);
    System.arraycopy(ish, 0, out, ax, ish.length);
    System.arraycopy(d, ax + 1, out, ax + ish.length, d.length - ax - 1);
    int n = Indexing.size(out);
    int outer = (int) Indexing.product(d, 0, ax);
    int axisLen = (int) d[ax];
    int inner = (int) Indexing.product(d, ax + 1, d.length);
    long[] idx = indices.longs();
    int[] norm = new int[idx.length];
    for (int j = 0; j < idx.length; j++) {
      norm[j] = index(idx[j], axisLen, "index");
    }
    Object src = Indexing.storage(data);
    Object dst = Indexing.newStorage(data.elementType(), n);
    for (int o = 0; o < outer; o++) {
      for (int j = 0; j < norm.length; j++) {
        System.arraycopy(src, (o * axisLen + norm[j]) * inner, dst, (o * norm.length + j) * inner, inner);
      }
    }
    return Indexing.wrap(data.elementType(), out, dst);
  }

  static Tensor gatherElements(Tensor data, Tensor indices, long axis) {
    long[] d = data.shape();
    long[] out = indices.shape();
    int ax = (int) (axis < 0 ? axis + d.length : axis);
    int[] strides = Indexing.strides(d);
    int[][] contrib = new int[out.length][];
    for (int a = 0; a < out.length; a++) {
      if (a != ax && out[a] > d[a]) {
        throw new IrException("indices shape " + Arrays.toString(out) + " exceeds data shape "
            + Arrays.toString(d) + " on axis " + a);
      }
      contrib[a] = a == ax ? new int[(int) out[a]] : Indexing.affine(out[a], 0, 1, strides[a]);
    }
    int[] offsets = Indexing.offsets(out, contrib);
    long[] idx = indices.longs();
    for (int i = 0; i < offsets.length; i++) {
      offsets[i] += index(idx[i], d[ax], "index") * strides[ax];
    }
    return Indexing.take(data, out, offsets, 0);
  }

  static Tensor concat(List<Tensor> inputs, long axis) {
    Tensor first = inputs.get(0);
    int rank = first.rank();
    int ax = (int) (axis < 0 ? axis + rank : axis);
    long[] out = first.shape();
    out[ax] = 0;
    for (Tensor t : inputs) {
      for (int a = 0; a < rank; a++) {
        if (a != ax && (t.rank() != rank || t.dim(a) != first.dim(a))) {
          throw new IrException("cannot concatenate " + Arrays.toString(first.shape()) + " and "
              + Arrays.toString(t.shape()) + " along axis " + ax);
        }
      }
      out[ax] += t.dim(ax);
    }
    int n = Indexing.size(out);
    int outer = (int) Indexing.product(out, 0, ax);
    int inner = (int) Indexing.product(out, ax + 1, rank);
    Object dst = Indexing.newStorage(first.elementType(), n);
    int at = 0;
    for (int o = 0; o < outer; o++) {
      for (Tensor t : inputs) {
        int block = (int) t.dim(ax) * inner;
        System.arraycopy(Indexing.storage(t), o * block, dst, at, block);
        at += block;
      }
    }
    return Indexing.wrap(first.elementType(), out, dst);
  }

  static List<Tensor> split(Tensor x, long axis, long[] sizes) {
    long[] in = x.shape();
    int ax = (int) (axis < 0 ? axis + in.length : axis);
    long total = 0;
    for (long s : sizes) {
      if (s < 0) {
        throw new IrException("split sizes " + Arrays.toString(sizes) + " has a negative size");
      }
      total += s;
    }
    if (total != in[ax]) {
      throw new IrException("split sizes " + Arrays.toString(sizes) + " do not sum to the dim " + in[ax]);
    }
    int outer = (int) Indexing.product(in, 0, ax);
    int inner = (int) Indexing.product(in, ax + 1, in.length);
    Object src = Indexing.storage(x);
    List<Tensor> results = new ArrayList<>();
    long offset = 0;
    for (long s : sizes) {
      long[] out = in.clone();
      out[ax] = s;
      Object dst = Indexing.newStorage(x.elementType(), Indexing.size(out));
      int block = (int) s * inner;
      for (int o = 0; o < outer; o++) {
        System.arraycopy(src, (int) ((o * in[ax] + offset) * inner), dst, o * block, block);
      }
      offset += s;
      results.add(Indexing.wrap(x.elementType(), out, dst));
    }
    return results;
  }

  static Tensor expand(Tensor x, long[] shape) {
    long[] out = Indexing.broadcastShapes(x.shape(), shape);
    Indexing.size(out);
    int[] idx = Indexing.broadcastOffsets(x.shape(), out);
    return idx == null ? Indexing.wrap(x.elementType(), out, copy(x)) : Indexing.take(x, out, idx, 0);
  }

  static Tensor tile(Tensor x, long[] repeats) {
    long[] in = x.shape();
    long[] out = new long[in.length];
    for (int a = 0; a < in.length; a++) {
      out[a] = Math.multiplyExact(in[a], repeats[a]);
    }
    Indexing.size(out);
    int[] strides = Indexing.strides(in);
    int[][] contrib = new int[in.length][];
    for (int a = 0; a < in.length; a++) {
      contrib[a] = new int[(int) out[a]];
      for (int c = 0; c < out[a]; c++) {
        contrib[a][c] = (int) (c % in[a]) * strides[a];
      }
    }
    return Indexing.take(x, out, Indexing.offsets(out, contrib), 0);
  }

  static Tensor pad(Tensor x, long[] pads, PadMode mode, double value) {
    long[] in = x.shape();
    int rank = in.length;
    long[] out = new long[rank];
    for (int a = 0; a < rank; a++) {
      out[a] = in[a] + pads[a] + pads[a + rank];
      if (out[a] < 0) {
        throw new IrException("pads " + Arrays.toString(pads) + " crop axis " + a + " below zero");
      }
    }
    Indexing.size(out);
    int[] strides = Indexing.strides(in);
    int[][] contrib = new int[rank][];
    for (int a = 0; a < rank; a++) {
      long d = in[a];
      contrib[a] = new int[(int) out[a]];
      for (int c = 0; c < out[a]; c++) {
        long i = c - pads[a];
        if (i < 0 || i >= d) {
          if (mode != PadMode.CONSTANT && d == 0) {
            throw new IrException(mode.name().toLowerCase() + " padding of an empty axis " + a);
          }
          i = switch (mode) {
            case CONSTANT -> -1;
            case EDGE -> i < 0 ? 0 : d - 1;
            case REFLECT -> reflect(i, d);
          };
        }
        contrib[a][c] = i < 0 ? Indexing.PAD : (int) i * strides[a];
      }
    }
    return Indexing.take(x, out, Indexing.offsets(out, contrib), value);
  }

  /** Mirror index without repeating the edge ({@code [1, 2, 3]} extends to {@code 3 2 [1 2 3] 2 1}). */
  private static long reflect(long i, long d) {
    if (d == 1) {
      return 0;
    }
    long period = 2 * (d - 1);
    long m = Math.floorMod(i, period);
    return m < d ? m : period - m;
  }

  static Tensor scatterNd(Tensor data, Tensor indices, Tensor updates, ScatterReduction reduction) {
    long[] d = data.shape();
    long[] ish = indices.shape();
    int k = (int) ish[ish.length - 1];
    if (k < 1 || k > d.length) {
      throw new IrException("the last dim of indices (" + k + ") must be in 1.." + d.length);
    }
    int tuples = (int) Indexing.product(ish, 0, ish.length - 1);
    int slice = (int) Indexing.product(d, k, d.length);
    if ((long) tuples * slice != updates.size()) {
      throw new IrException("updates have " + updates.size() + " elements, expected " + (long) tuples * slice);
    }
    int[] strides = Indexing.strides(d);
    long[] idx = indices.longs();
    Object out = copy(data);
    Object up = Indexing.storage(updates);
    for (int t = 0; t < tuples; t++) {
      int base = 0;
      for (int j = 0; j < k; j++) {
        base += index(idx[t * k + j], d[j], "index") * strides[j];
      }
      for (int e = 0; e < slice; e++) {
        int o = base + e;
        int u = t * slice + e;
        if (out instanceof float[] f) {
          float v = ((float[]) up)[u];
          f[o] = switch (reduction) {
            case NONE -> v;
            case ADD -> f[o] + v;
            case MUL -> f[o] * v;
            case MAX -> Math.max(f[o], v);
            case MIN -> Math.min(f[o], v);
          };
        } else {
          long[] l = (long[]) out;
          long v = ((long[]) up)[u];
          l[o] = switch (reduction) {
            case NONE -> v;
            case ADD -> l[o] + v;
            case MUL -> l[o] * v;
            case MAX -> Math.max(l[o], v);
            case MIN -> Math.min(l[o], v);
          };
        }
      }
    }
    return Indexing.wrap(data.elementType(), d, out);
  }

  static Tensor trilu(Tensor x, boolean upper, long k) {
    long[] s = x.shape();
    int rows = (int) s[s.length - 2];
    int cols = (int) s[s.length - 1];
    Object out = copy(x);
    int matrices = rows * cols == 0 ? 0 : x.size() / (rows * cols);
    for (int m = 0; m < matrices; m++) {
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
          long diag = (long) j - i;
          if (upper ? diag < k : diag > k) {
            int at = (m * rows + i) * cols + j;
            if (out instanceof float[] f) {
              f[at] = 0f;
            } else {
              ((long[]) out)[at] = 0;
            }
          }
        }
      }
    }
    return Indexing.wrap(x.elementType(), s, out);
  }

  static Tensor shape(Tensor x, long start, long end) {
    int rank = x.rank();
    long s = Math.max(0, Math.min(start < 0 ? start + rank : start, rank));
    long e = Math.max(0, Math.min(end < 0 ? end + rank : end, rank));
    long[] dims = e > s ? Arrays.copyOfRange(x.shape(), (int) s, (int) e) : new long[0];
    return Tensor.ofLongs(ElementType.I64, new long[] {dims.length}, dims);
  }

  static Tensor size(Tensor x) {
    return Tensor.ofLongs(ElementType.I64, new long[0], new long[] {x.size()});
  }
}
