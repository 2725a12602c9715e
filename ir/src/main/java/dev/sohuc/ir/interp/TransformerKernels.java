package dev.sohuc.ir.interp;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.op.TransformerOp.RopeStyle;
import dev.sohuc.ir.tensor.Tensor;

import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;

/** The fused transformer ops, each as the composition its javadoc states. */
final class TransformerKernels {
  private static final double SQRT_HALF = Math.sqrt(0.5);
  private static final double SQRT_2_OVER_PI = Math.sqrt(2.0 / Math.PI);

  private TransformerKernels() {}

  /**
   * {@code softmax(scale * q @ k^T + mask) @ v} per head. Dot products accumulate in f32 in
   * key order, as the unfused matmul would. Masked-out keys (causal, window) score -inf, so a
   * query row with every key masked gives NaN, as ONNX Runtime's softmax over all -inf does.
   * With {@code pastLengths}, batch row b's queries sit after its {@code pastLengths[b]} cached
   * keys and the keys past them are hidden.
   */
  static Tensor attention(Tensor q, Tensor k, Tensor v, Tensor mask, Tensor pastLengths, double scale,
                          boolean causal, long window) {
    long[] qs = q.shape();
    long[] ks = k.shape();
    long[] vs = v.shape();
    int b = (int) qs[0];
    int hq = (int) qs[1];
    int s = (int) qs[2];
    int d = (int) qs[3];
    int hkv = (int) ks[1];
    int t = (int) ks[2];
    int dv = (int) vs[3];
    if (ks[0] != b || vs[0] != b || vs[1] != hkv || vs[2] != t || ks[3] != d || hkv == 0 || hq % hkv != 0) {
      throw new IrException("attention shapes do not fit: q " + Arrays.toString(qs) + ", k "
          + Arrays.toString(ks) + ", v " + Arrays.toString(vs));
    }
    long[] scoreShape = {b, hq, s, t};
    Indexing.size(scoreShape);
    int[] maskIdx = mask == null ? null : Indexing.broadcastOffsets(mask.shape(), scoreShape);
    float[] mv = mask == null ? null : mask.floats();
    long[] outShape = {b, hq, s, dv};
    float[] out = new float[Indexing.size(outShape)];
    float[] qv = q.floats();
    float[] kv = k.floats();
    float[] vv = v.floats();
    int group = hq / hkv;
    // query i of batch row b sits at key position i + offset[b]; keys from limit[b] on are hidden
    long[] offset = new long[b];
    Arrays.fill(offset, (long) t - s);
    if (pastLengths != null) {
      long[] lengths = cacheLengths(pastLengths, b, s, t);
      System.arraycopy(lengths, 0, offset, 0, b);
    }
    float fscale = (float) scale;
    IntStream heads = IntStream.range(0, b * hq);
    ((long) b * hq * s * t * d > (1 << 16) ? heads.parallel() : heads).forEach(bh -> {
      int batch = bh / hq;
      int h = bh % hq;
      int kvHead = batch * hkv + h / group;
      float[] scores = new float[t];
      long at0 = offset[batch];
      long limit = at0 + s;
      for (int i = 0; i < s; i++) {
        int qOff = (bh * s + i) * d;
        for (int j = 0; j < t; j++) {
          boolean visible = j < limit && (!causal || j <= i + at0) && (window <= 0 || j > i + at0 - window);
          if (!visible) {
            scores[j] = Float.NEGATIVE_INFINITY;
            continue;
          }
          int kOff = (kvHead * t + j) * d;
          float dot = 0f;
          for (int e = 0; e < d; e++) {
            dot += qv[qOff + e] * kv[kOff + e];
          }
          float score = fscale * dot;
          if (mv != null) {
            int at = (bh * s + i) * t + j;
            score += mv[maskIdx == null ? at : maskIdx[at]];
          }
          scores[j] = score;
        }
        ReductionKernels.softmaxRow(scores, scores, 0, 1, t, false);
        int oOff = (bh * s + i) * dv;
        for (int j = 0; j < t; j++) {
          float p = scores[j];
          int vOff = (kvHead * t + j) * dv;
          for (int e = 0; e < dv; e++) {
            out[oOff + e] += p * vv[vOff + e];
          }
        }
      }
    });
    return Tensor.ofFloats(q.elementType(), outShape, out);
  }

  static Tensor kvCacheAppend(Tensor past, Tensor current) {
    if (past.rank() != 4 || current.rank() != 4) {
      throw new IrException("kv_cache_append takes rank-4 tensors, got " + Arrays.toString(past.shape())
          + " and " + Arrays.toString(current.shape()));
    }
    return DataKernels.concat(List.of(past, current), 2);
  }

  /** The cache with each batch row's new entries written after its {@code pastLengths[b]} ones. */
  static Tensor kvCacheWrite(Tensor cache, Tensor current, Tensor pastLengths) {
    long[] cs = cache.shape();
    long[] ns = current.shape();
    if (cs.length != 4 || ns.length != 4 || cs[0] != ns[0] || cs[1] != ns[1] || cs[3] != ns[3]) {
      throw new IrException("kv_cache_write shapes do not fit: cache " + Arrays.toString(cs) + ", new "
          + Arrays.toString(ns));
    }
    int b = (int) cs[0];
    int h = (int) cs[1];
    int t = (int) cs[2];
    int s = (int) ns[2];
    int d = (int) cs[3];
    long[] lengths = cacheLengths(pastLengths, b, s, t);
    float[] out = cache.floats().clone();
    float[] nv = current.floats();
    for (int bh = 0; bh < b * h; bh++) {
      int at = (int) lengths[bh / h];
      System.arraycopy(nv, bh * s * d, out, (bh * t + at) * d, s * d);
    }
    return Tensor.ofFloats(cache.elementType(), cs, out);
  }

  /** The past lengths, each checked to leave room for {@code s} new positions of {@code t}. */
  private static long[] cacheLengths(Tensor pastLengths, int b, int s, int t) {
    long[] lengths = pastLengths.longs();
    if (lengths.length != b) {
      throw new IrException(lengths.length + " past lengths for a batch of " + b);
    }
    for (int i = 0; i < b; i++) {
      if (lengths[i] < 0 || lengths[i] + s > t) {
        throw new IrException("past_lengths[" + i + "] = " + lengths[i] + " leaves no room for " + s
            + " new position" + (s == 1 ? "" : "s") + " in a cache of " + t);
      }
    }
    return lengths;
  }

  /** Offsets of a parameter of shape {@code p} broadcast to {@code dims}, or null for identity. */
  private static int[] paramOffsets(Tensor p, long[] dims, String role) {
    if (p.rank() > dims.length) {
      throw new IrException(role + " of shape " + Arrays.toString(p.shape()) + " does not match "
          + Arrays.toString(dims));
    }
    return Indexing.broadcastOffsets(p.shape(), dims);
  }

  /** Biased variance; eps inside the square root; statistics in double. */
  static Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, int axis, double eps) {
    long[] shape = x.shape();
    long[] normDims = Arrays.copyOfRange(shape, axis, shape.length);
    int n = Indexing.size(normDims);
    int rows = n == 0 ? 0 : x.size() / n;
    int[] gi = paramOffsets(gamma, normDims, "gamma");
    int[] bi = beta == null ? null : paramOffsets(beta, normDims, "beta");
    float[] xv = x.floats();
    float[] g = gamma.floats();
    float[] bv = beta == null ? null : beta.floats();
    float[] o = new float[xv.length];
    for (int r = 0; r < rows; r++) {
      int base = r * n;
      double mean = 0;
      for (int i = 0; i < n; i++) {
        mean += xv[base + i];
      }
      mean /= n;
      double var = 0;
      for (int i = 0; i < n; i++) {
        double c = xv[base + i] - mean;
        var += c * c;
      }
      var /= n;
      double inv = 1.0 / Math.sqrt(var + eps);
      for (int i = 0; i < n; i++) {
        double y = (xv[base + i] - mean) * inv * g[gi == null ? i : gi[i]];
        if (bv != null) {
          y += bv[bi == null ? i : bi[i]];
        }
        o[base + i] = (float) y;
      }
    }
    return Tensor.ofFloats(x.elementType(), shape, o);
  }

  static Tensor rmsNorm(Tensor x, Tensor gamma, double eps, double gammaOffset) {
    long[] shape = x.shape();
    int n = (int) shape[shape.length - 1];
    int rows = n == 0 ? 0 : x.size() / n;
    int[] gi = paramOffsets(gamma, new long[] {n}, "gamma");
    float[] xv = x.floats();
    float[] g = gamma.floats();
    float[] o = new float[xv.length];
    for (int r = 0; r < rows; r++) {
      int base = r * n;
      double ss = 0;
      for (int i = 0; i < n; i++) {
        ss += (double) xv[base + i] * xv[base + i];
      }
      double inv = 1.0 / Math.sqrt(ss / n + eps);
      for (int i = 0; i < n; i++) {
        o[base + i] = (float) (xv[base + i] * inv * (g[gi == null ? i : gi[i]] + gammaOffset));
      }
    }
    return Tensor.ofFloats(x.elementType(), shape, o);
  }

  /**
   * {@code x * cos + rotate(x) * sin} on the first R dims of each row (R = last dim of cos);
   * rotate_half pairs dim i with i + R/2, interleaved pairs 2i with 2i+1.
   */
  static Tensor rope(Tensor x, Tensor cos, Tensor sin, RopeStyle style) {
    long[] shape = x.shape();
    int dim = (int) shape[shape.length - 1];
    long[] cs = cos.shape();
    int r = (int) cs[cs.length - 1];
    if (!Arrays.equals(cs, sin.shape()) || r % 2 != 0 || r > dim) {
      throw new IrException("rope tables " + Arrays.toString(cs) + " / " + Arrays.toString(sin.shape())
          + " do not fit rows of " + dim);
    }
    long[] lead = Arrays.copyOf(shape, shape.length - 1);
    long[] tableLead = Arrays.copyOf(cs, cs.length - 1);
    if (tableLead.length > lead.length) {
      throw new IrException("cos of shape " + Arrays.toString(cs) + " does not broadcast over "
          + Arrays.toString(shape));
    }
    int[] tableRow = Indexing.broadcastOffsets(tableLead, lead);
    int rows = Indexing.size(lead);
    float[] xv = x.floats();
    float[] c = cos.floats();
    float[] sn = sin.floats();
    float[] o = xv.clone();
    int half = r / 2;
    for (int row = 0; row < rows; row++) {
      int xb = row * dim;
      int tb = (tableRow == null ? row : tableRow[row]) * r;
      for (int p = 0; p < half; p++) {
        int i1 = style == RopeStyle.ROTATE_HALF ? p : 2 * p;
        int i2 = style == RopeStyle.ROTATE_HALF ? p + half : 2 * p + 1;
        float x1 = xv[xb + i1];
        float x2 = xv[xb + i2];
        o[xb + i1] = (float) ((double) x1 * c[tb + i1] - (double) x2 * sn[tb + i1]);
        o[xb + i2] = (float) ((double) x2 * c[tb + i2] + (double) x1 * sn[tb + i2]);
      }
    }
    return Tensor.ofFloats(x.elementType(), shape, o);
  }

  /** Exact GELU {@code x * Phi(x)}, via erfc on the negative side to keep relative accuracy. */
  static double geluErf(double x) {
    return x >= 0 ? 0.5 * x * (1.0 + Erf.erf(x * SQRT_HALF)) : 0.5 * x * Erf.erfc(-x * SQRT_HALF);
  }

  static double geluTanh(double x) {
    return 0.5 * x * (1.0 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
  }

  static double silu(double x) {
    return x * ElementwiseKernels.sigmoid(x);
  }

  static Tensor gelu(Tensor x, boolean tanh) {
    return ElementwiseKernels.mapFloat(x, x.elementType(),
        tanh ? TransformerKernels::geluTanh : TransformerKernels::geluErf);
  }

  static Tensor silu(Tensor x) {
    return ElementwiseKernels.mapFloat(x, x.elementType(), TransformerKernels::silu);
  }

  static Tensor swiglu(Tensor gate, Tensor up) {
    if (!Arrays.equals(gate.shape(), up.shape())) {
      throw new IrException("gate " + Arrays.toString(gate.shape()) + " and up "
          + Arrays.toString(up.shape()) + " differ in shape");
    }
    return ElementwiseKernels.zipFloat(gate, up, gate.elementType(), (g, u) -> silu(g) * u);
  }

  /** Row {@code ids[i]} of the table; ids outside {@code [0, V)} are errors (no wrap-around). */
  static Tensor embedding(Tensor table, Tensor ids) {
    long vocab = table.dim(0);
    int hidden = (int) table.dim(1);
    long[] ish = ids.shape();
    long[] out = Arrays.copyOf(ish, ish.length + 1);
    out[ish.length] = hidden;
    Object dst = Indexing.newStorage(table.elementType(), Indexing.size(out));
    Object src = Indexing.storage(table);
    long[] idv = ids.longs();
    for (int i = 0; i < idv.length; i++) {
      long id = idv[i];
      if (id < 0 || id >= vocab) {
        throw new IrException("token id " + id + " (position " + i + ") is out of range for a table of "
            + vocab + " rows");
      }
      System.arraycopy(src, (int) id * hidden, dst, i * hidden, hidden);
    }
    return Indexing.wrap(table.elementType(), out, dst);
  }
}
