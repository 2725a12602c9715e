package dev.sohuc.ir.interp;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.util.List;

/** Linear quantization as ONNX QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear. */
final class QuantKernels {
  private QuantKernels() {}

  /** The channel of each element: index along {@code axis}, or 0 for per-tensor parameters. */
  private static int[] channels(long[] shape, Tensor scale, long axis) {
    int n = Indexing.size(shape);
    int[] ch = new int[n];
    if (scale.rank() == 0 || scale.size() == 1) {
      return ch;
    }
    int ax = (int) (axis < 0 ? axis + shape.length : axis);
    if (ax < 0 || ax >= shape.length || shape[ax] != scale.size()) {
      throw new IrException("per-channel scale of " + scale.size() + " values does not match axis "
          + axis + " of shape " + java.util.Arrays.toString(shape));
    }
    int inner = (int) Indexing.product(shape, ax + 1, shape.length);
    int len = (int) shape[ax];
    for (int i = 0; i < n; i++) {
      ch[i] = (i / inner) % len;
    }
    return ch;
  }

  static long minOf(ElementType t) {
    return switch (t) {
      case I8 -> Byte.MIN_VALUE;
      case U8, BOOL -> 0;
      case I32 -> Integer.MIN_VALUE;
      default -> Long.MIN_VALUE;
    };
  }

  static long maxOf(ElementType t) {
    return switch (t) {
      case I8 -> Byte.MAX_VALUE;
      case U8 -> 255;
      case BOOL -> 1;
      case I32 -> Integer.MAX_VALUE;
      default -> Long.MAX_VALUE;
    };
  }

  /**
   * {@code saturate(rint(x / scale) + zp)}: x / scale in f32, rounded half to even, then
   * clamped to the zero point's type; NaN quantizes to the zero point. For fp8 results, the
   * zero point is added in f32 and the sum rounded to the format (which saturates).
   */
  static Tensor quantize(Tensor x, Tensor scale, Tensor zp, long axis) {
    long[] shape = x.shape();
    int[] ch = channels(shape, scale, axis);
    float[] xv = x.floats();
    float[] sv = scale.floats();
    ElementType t = zp.elementType();
    if (t.isFloat()) {
      float[] zv = zp.floats();
      float[] o = new float[xv.length];
      for (int i = 0; i < o.length; i++) {
        o[i] = xv[i] / sv[ch[i]] + zv[ch[i]];
      }
      return Tensor.ofFloats(t, shape, o);
    }
    long[] zv = zp.longs();
    long[] o = new long[xv.length];
    for (int i = 0; i < o.length; i++) {
      o[i] = saturate(roundHalfEven(xv[i] / sv[ch[i]]) + zv[ch[i]], t);
    }
    return Tensor.ofLongs(t, shape, o);
  }

  /** Round half to even into a range wide enough for any saturation; NaN is 0. */
  static long roundHalfEven(float v) {
    double r = Math.rint(v);
    return (long) Math.max(-1e12, Math.min(1e12, r));
  }

  static long saturate(long v, ElementType t) {
    return Math.max(minOf(t), Math.min(maxOf(t), v));
  }

  /** {@code (q - zp) * scale} in f32, rounded to the scale's type. */
  static Tensor dequantize(Tensor q, Tensor scale, Tensor zp, long axis) {
    long[] shape = q.shape();
    int[] ch = channels(shape, scale, axis);
    float[] sv = scale.floats();
    float[] o = new float[ch.length];
    for (int i = 0; i < o.length; i++) {
      double qi = q.get(i) - zp.get(ch[i]);
      o[i] = (float) qi * sv[ch[i]];
    }
    return Tensor.ofFloats(scale.elementType(), shape, o);
  }

  /**
   * ONNX DynamicQuantizeLinear: range widened to include 0, {@code scale = (max - min) / 255},
   * {@code zp = saturate(rint(-min / scale))}. An all-zero input (max == min) gets scale 1 and
   * zero point 0, as ONNX Runtime does, rather than dividing by zero.
   */
  static List<Tensor> dynamicQuantize(Tensor x) {
    float[] v = x.floats();
    float min = 0f;
    float max = 0f;
    for (float f : v) {
      min = Math.min(min, f);
      max = Math.max(max, f);
    }
    float scale = max == min ? 1f : (max - min) / 255f;
    long zero = saturate(roundHalfEven(0f - min / scale), ElementType.U8);
    long[] q = new long[v.length];
    for (int i = 0; i < v.length; i++) {
      q[i] = saturate(roundHalfEven(v[i] / scale) + zero, ElementType.U8);
    }
    return List.of(
        Tensor.ofLongs(ElementType.U8, x.shape(), q),
        Tensor.ofFloats(ElementType.F32, new long[0], new float[] {scale}),
        Tensor.ofLongs(ElementType.U8, new long[0], new long[] {zero}));
  }
}
