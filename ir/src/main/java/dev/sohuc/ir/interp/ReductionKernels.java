package dev.sohuc.ir.interp;

import dev.sohuc.ir.op.ReductionOp.ReduceKind;
import dev.sohuc.ir.tensor.Tensor;

import java.util.List;

/** Reductions, softmax and cumulative sums; float accumulation is in double. */
final class ReductionKernels {
  private ReductionKernels() {}

  /**
   * Reduces over {@code axes} (normalized, all axes when empty). An empty reduction gives the
   * identity: 0 for sum, 1 for prod, -inf/+inf (or the i64 extremes) for max/min, NaN for mean.
   */
  static Tensor reduce(ReduceKind kind, Tensor x, List<Integer> axes, boolean keepdims) {
    long[] in = x.shape();
    int rank = in.length;
    boolean[] reduced = new boolean[rank];
    for (int a : axes) {
      reduced[a] = true;
    }
    if (axes.isEmpty()) {
      java.util.Arrays.fill(reduced, true);
    }
    long[] kept = in.clone();
    int outRank = 0;
    for (int a = 0; a < rank; a++) {
      if (reduced[a]) {
        kept[a] = 1;
      } else {
        outRank++;
      }
    }
    long[] out = keepdims ? kept : new long[outRank];
    if (!keepdims) {
      int at = 0;
      for (int a = 0; a < rank; a++) {
        if (!reduced[a]) {
          out[at++] = in[a];
        }
      }
    }
    int n = Indexing.size(out);
    int[] outStrides = Indexing.strides(kept);
    int[][] contrib = new int[rank][];
    for (int a = 0; a < rank; a++) {
      contrib[a] = reduced[a] ? new int[(int) in[a]] : Indexing.affine(in[a], 0, 1, outStrides[a]);
    }
    int[] target = Indexing.offsets(in, contrib);
    long count = n == 0 ? 0 : x.size() / n;
    if (x.isFloat()) {
      double[] acc = new double[n];
      java.util.Arrays.fill(acc, switch (kind) {
        case SUM, MEAN -> 0.0;
        case PROD -> 1.0;
        case MAX -> Double.NEGATIVE_INFINITY;
        case MIN -> Double.POSITIVE_INFINITY;
      });
      float[] v = x.floats();
      for (int i = 0; i < v.length; i++) {
        int t = target[i];
        acc[t] = switch (kind) {
          case SUM, MEAN -> acc[t] + v[i];
          case PROD -> acc[t] * v[i];
          case MAX -> Math.max(acc[t], v[i]);
          case MIN -> Math.min(acc[t], v[i]);
        };
      }
      float[] o = new float[n];
      for (int i = 0; i < n; i++) {
        o[i] = (float) (kind == ReduceKind.MEAN ? acc[i] / count : acc[i]);
      }
      return Tensor.ofFloats(x.elementType(), out, o);
    }
    long[] acc = new long[n];
    java.util.Arrays.fill(acc, switch (kind) {
      case SUM, MEAN -> 0L;
      case PROD -> 1L;
      case MAX -> Long.MIN_VALUE;
      case MIN -> Long.MAX_VALUE;
    });
    long[] v = x.longs();
    for (int i = 0; i < v.length; i++) {
      int t = target[i];
      acc[t] = switch (kind) {
        case SUM, MEAN -> acc[t] + v[i];
        case PROD -> acc[t] * v[i];
        case MAX -> Math.max(acc[t], v[i]);
        case MIN -> Math.min(acc[t], v[i]);
      };
    }
    if (kind == ReduceKind.MEAN) {
      for (int i = 0; i < n; i++) {
        acc[i] /= count;
      }
    }
    return Tensor.ofLongs(x.elementType(), out, acc);
  }

  /**
   * Softmax along an axis, max-subtracted. A row that is all -inf gives NaN (as ONNX Runtime's
   * softmax does: -inf - -inf is NaN), and a NaN anywhere in a row makes the row NaN.
   */
  static Tensor softmax(Tensor x, int axis, boolean log) {
    long[] s = x.shape();
    int outer = (int) Indexing.product(s, 0, axis);
    int len = (int) s[axis];
    int inner = (int) Indexing.product(s, axis + 1, s.length);
    float[] v = x.floats();
    float[] o = new float[v.length];
    for (int a = 0; a < outer; a++) {
      for (int b = 0; b < inner; b++) {
        int base = a * len * inner + b;
        softmaxRow(v, o, base, inner, len, log);
      }
    }
    return Tensor.ofFloats(x.elementType(), s, o);
  }

  /** Softmax of {@code len} elements at {@code base + i * stride}, shared with attention. */
  static void softmaxRow(float[] v, float[] o, int base, int stride, int len, boolean log) {
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < len; i++) {
      max = Math.max(max, v[base + i * stride]);
    }
    double sum = 0;
    for (int i = 0; i < len; i++) {
      sum += Math.exp(v[base + i * stride] - max);
    }
    if (log) {
      double logSum = Math.log(sum);
      for (int i = 0; i < len; i++) {
        o[base + i * stride] = (float) (v[base + i * stride] - max - logSum);
      }
    } else {
      for (int i = 0; i < len; i++) {
        o[base + i * stride] = (float) (Math.exp(v[base + i * stride] - max) / sum);
      }
    }
  }

  static Tensor cumsum(Tensor x, int axis, boolean exclusive, boolean reverse) {
    long[] s = x.shape();
    int outer = (int) Indexing.product(s, 0, axis);
    int len = (int) s[axis];
    int inner = (int) Indexing.product(s, axis + 1, s.length);
    boolean f = x.isFloat();
    float[] fv = f ? x.floats() : null;
    long[] lv = f ? null : x.longs();
    float[] fo = f ? new float[fv.length] : null;
    long[] lo = f ? null : new long[lv.length];
    for (int a = 0; a < outer; a++) {
      for (int b = 0; b < inner; b++) {
        double dacc = 0;
        long lacc = 0;
        for (int step = 0; step < len; step++) {
          int i = reverse ? len - 1 - step : step;
          int at = (a * len + i) * inner + b;
          if (f) {
            if (exclusive) {
              fo[at] = (float) dacc;
              dacc += fv[at];
            } else {
              dacc += fv[at];
              fo[at] = (float) dacc;
            }
          } else {
            if (exclusive) {
              lo[at] = lacc;
              lacc += lv[at];
            } else {
              lacc += lv[at];
              lo[at] = lacc;
            }
          }
        }
      }
    }
    return f ? Tensor.ofFloats(x.elementType(), s, fo) : Tensor.ofLongs(x.elementType(), s, lo);
  }
}
