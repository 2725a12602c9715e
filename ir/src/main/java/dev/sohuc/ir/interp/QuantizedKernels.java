package dev.sohuc.ir.interp;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;

/**
 * The chip's quantized forms ({@code qmatmul}, {@code dynamic_quantize}) with its exact dtype
 * rules: float products accumulate by f32 fma with p ascending, i8 products in wrapping i32,
 * and each scaling step is one f32 rounding (docs/isa.md, "Numbers").
 */
final class QuantizedKernels {
  private QuantizedKernels() {}

  /** The smallest scale dynamic_quantize hands out, so that an all-zero row divides safely. */
  static final float MIN_SCALE = Float.MIN_NORMAL;

  static Tensor qmatmul(Tensor x, Tensor w, Tensor xScale, Tensor wScale) {
    long[] xs = x.shape();
    int k = (int) xs[xs.length - 1];
    int n = (int) w.dim(1);
    if (w.dim(0) != k) {
      throw new IrException("qmatmul contracted dims differ: " + Arrays.toString(xs) + " @ "
          + Arrays.toString(w.shape()));
    }
    int rows = (int) Indexing.product(xs, 0, xs.length - 1);
    float[] sx = xScale.floats();
    float[] sw = wScale.floats();
    if (sx.length != 1 && sx.length != rows) {
      throw new IrException("x scale has " + sx.length + " values for " + rows + " rows");
    }
    if (sw.length != 1 && sw.length != n) {
      throw new IrException("w scale has " + sw.length + " values for " + n + " columns");
    }
    long[] outShape = xs.clone();
    outShape[outShape.length - 1] = n;
    float[] out = new float[Tensor.checkedSize(outShape)];
    boolean parallel = (long) rows * k * n > (1L << 18) && rows > 1;
    final int fk = k;
    if (x.elementType() == ElementType.I8) {
      int[] a = toInts(x.longs());
      int[] b = toInts(w.longs());
      rows(rows, parallel, r -> {
        int[] acc = new int[n];
        for (int p = 0; p < fk; p++) {
          int ap = a[r * fk + p];
          int bRow = p * n;
          for (int j = 0; j < n; j++) {
            acc[j] += ap * b[bRow + j]; // i32, wrapping
          }
        }
        scaleRow(r, n, out, j -> (float) acc[j], sx, sw);
      });
    } else {
      float[] a = x.floats();
      float[] b = w.floats();
      rows(rows, parallel, r -> {
        float[] acc = new float[n];
        for (int p = 0; p < fk; p++) {
          float ap = a[r * fk + p];
          int bRow = p * n;
          for (int j = 0; j < n; j++) {
            acc[j] = Math.fma(ap, b[bRow + j], acc[j]);
          }
        }
        scaleRow(r, n, out, j -> acc[j], sx, sw);
      });
    }
    return Tensor.ofFloats(ElementType.F32, outShape, out);
  }

  private interface Acc {
    float at(int j);
  }

  /** {@code y = f32(f32(acc * x_scale[r]) * w_scale[j])}: accrd, then cvt mode=col. */
  private static void scaleRow(int r, int n, float[] out, Acc acc, float[] sx, float[] sw) {
    float s = sx[sx.length == 1 ? 0 : r];
    for (int j = 0; j < n; j++) {
      float v = acc.at(j) * s;
      out[r * n + j] = v * sw[sw.length == 1 ? 0 : j];
    }
  }

  private static void rows(int rows, boolean parallel, java.util.function.IntConsumer row) {
    IntStream range = IntStream.range(0, rows);
    (parallel ? range.parallel() : range).forEach(row);
  }

  private static int[] toInts(long[] v) {
    int[] o = new int[v.length];
    for (int i = 0; i < v.length; i++) {
      o[i] = (int) v[i];
    }
    return o;
  }

  /** {@code dynamic_quantize}: see {@link QuantOp.DynamicQuantize} for the rule. */
  static List<Tensor> dynamicQuantize(Tensor x, ElementType dtype, String granularity) {
    long[] shape = x.shape();
    float[] v = x.floats();
    boolean perRow = granularity.equals("row");
    int cols = perRow ? (int) shape[shape.length - 1] : v.length;
    int groups = perRow ? (int) Indexing.product(shape, 0, shape.length - 1) : 1;
    float qmax = QuantOp.maxMagnitude(dtype);
    float[] scales = new float[groups];
    float[] qf = dtype.isFloat() ? new float[v.length] : null;
    long[] qi = dtype.isFloat() ? null : new long[v.length];
    for (int g = 0; g < groups; g++) {
      float amax = 0f;
      for (int c = 0; c < cols; c++) {
        float a = Math.abs(v[g * cols + c]);
        amax = Float.isNaN(a) || Float.isNaN(amax) ? Float.NaN : Math.max(amax, a);
      }
      float scale = Math.max(amax / qmax, MIN_SCALE); // Math.max keeps NaN
      scales[g] = scale;
      for (int c = 0; c < cols; c++) {
        int i = g * cols + c;
        float q = v[i] / scale;
        if (qf != null) {
          qf[i] = q; // rounded (saturating) to the fp8 format by ofFloats
        } else {
          qi[i] = QuantKernels.saturate(QuantKernels.roundHalfEven(q), ElementType.I8);
        }
      }
    }
    long[] scaleShape = new long[0];
    if (perRow) {
      scaleShape = shape.clone();
      scaleShape[scaleShape.length - 1] = 1;
    }
    Tensor q = qf != null ? Tensor.ofFloats(dtype, shape, qf) : Tensor.ofLongs(dtype, shape, qi);
    return List.of(q, Tensor.ofFloats(ElementType.F32, scaleShape, scales));
  }
}
