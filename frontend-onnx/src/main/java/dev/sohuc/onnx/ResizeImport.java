package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import java.util.ArrayList;
import java.util.List;

/**
 * ONNX Resize, nearest, linear or cubic, one axis after another (all three are separable):
 * each output position of an axis maps back to an input coordinate
 * (coordinate_transformation_mode), which nearest rounds to one input index, linear splits
 * between its two neighbours and cubic spreads over four. The indices and weights are computed
 * here, in f32 as ONNX Runtime computes them, and become constant gathers along the axis, each
 * weighted; a whole-number nearest upscale that repeats each input f times (PyTorch's
 * interpolate, asymmetric and floor) is an expand instead.
 */
final class ResizeImport {
  private ResizeImport() {}

  /** The most output positions an axis takes: each is a gathered slice of the input. */
  static final long MAX_POSITIONS = 1 << 16;

  static void importNode(OnnxNode n) {
    TensorType x = n.type(0);
    if (!x.elementType().isFloat()) {
      throw n.error("X must be a float tensor, got " + x);
    }
    String mode = n.attrString("mode", "nearest");
    if (!List.of("nearest", "linear", "cubic").contains(mode)) {
      throw n.error("mode " + mode + " (nearest, linear or cubic)");
    }
    String transform = n.attrString("coordinate_transformation_mode", "half_pixel");
    if (!List.of("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
        "asymmetric", "tf_half_pixel_for_nn").contains(transform)) {
      throw n.error("coordinate_transformation_mode " + transform + " is not supported");
    }
    String nearest = n.attrString("nearest_mode", "round_prefer_floor");
    if (!List.of("round_prefer_floor", "round_prefer_ceil", "floor", "ceil").contains(nearest)) {
      throw n.error("nearest_mode " + nearest + " is not supported");
    }
    if (!n.attrString("keep_aspect_ratio_policy", "stretch").equals("stretch")) {
      throw n.error("keep_aspect_ratio_policy " + n.attrString("keep_aspect_ratio_policy", "")
          + " (sohuc imports stretch)");
    }
    int rank = x.rank();
    long[] in = new long[rank];
    for (int i = 0; i < rank; i++) {
      in[i] = ConvTaps.staticDim(n, x.dim(i), "input's size");
    }
    int[] axes = axes(n, rank);
    // each axis's scale in f32, as the coordinate transforms take it
    float[] scales = new float[rank];
    long[] out = in.clone();
    java.util.Arrays.fill(scales, 1f);
    double[] givenScales = n.has(2) ? constants(n, 2, "scales") : new double[0];
    double[] givenSizes = n.has(3) ? constants(n, 3, "sizes") : new double[0];
    if ((givenScales.length == 0) == (givenSizes.length == 0)) {
      throw n.error("exactly one of scales and sizes must be given");
    }
    double[] given = givenScales.length > 0 ? givenScales : givenSizes;
    if (given.length != axes.length) {
      throw n.error((givenScales.length > 0 ? "scales" : "sizes") + " must hold " + axes.length
          + " values, got " + given.length);
    }
    for (int j = 0; j < axes.length; j++) {
      int a = axes[j];
      if (givenScales.length > 0) {
        if (!(given[j] > 0) || given[j] > MAX_POSITIONS) {
          throw n.error("scales must be positive and at most " + MAX_POSITIONS + ", got "
              + java.util.Arrays.toString(given));
        }
        scales[a] = (float) given[j];
        out[a] = (long) Math.floor(in[a] * scales[a]);
      } else {
        if (given[j] < 0 || given[j] > MAX_POSITIONS) {
          throw n.error("sizes must be 0 to " + MAX_POSITIONS + ", got "
              + java.util.Arrays.toString(given));
        }
        out[a] = (long) given[j];
        scales[a] = in[a] == 0 ? 1 : (float) out[a] / in[a];
      }
      if (out[a] > MAX_POSITIONS) {
        throw n.error("axis " + a + " resized to " + out[a] + " positions, more than "
            + MAX_POSITIONS);
      }
      if (out[a] > 0 && in[a] == 0) {
        throw n.error("axis " + a + " of no positions resized to " + out[a]);
      }
    }
    for (float s : scales) {
      if (s < 1 && n.attrInt("antialias", 0) != 0) {
        throw n.error("antialias when downscaling (sohuc imports resampling without it)");
      }
    }
    Value y = n.value(0);
    for (int a = 0; a < rank; a++) {
      if (out[a] == in[a] && scales[a] == 1) {
        continue;
      }
      y = switch (mode) {
        case "nearest" -> nearest(n, y, a, in[a], out[a], scales[a], transform, nearest);
        case "linear" -> linear(n, y, a, in[a], out[a], scales[a], transform);
        default -> cubic(n, y, a, in[a], out[a], scales[a], transform,
            (float) n.attrFloat("cubic_coeff_a", -0.75), n.attrInt("exclude_outside", 0) != 0);
      };
    }
    n.set(0, y);
  }

  /** The axes scales or sizes apply to: the axes attribute (18), else every axis. */
  private static int[] axes(OnnxNode n, int rank) {
    List<Long> given = n.attrInts("axes");
    if (given == null) {
      return java.util.stream.IntStream.range(0, rank).toArray();
    }
    int[] axes = new int[given.size()];
    java.util.Set<Integer> seen = new java.util.HashSet<>();
    for (int j = 0; j < axes.length; j++) {
      long a = given.get(j);
      if (a < -rank || a >= rank || !seen.add((int) Math.floorMod(a, rank))) {
        throw n.error("axes " + given + " must be distinct axes of a rank-" + rank + " input");
      }
      axes[j] = (int) Math.floorMod(a, rank);
    }
    return axes;
  }

  /** A constant float or integer input's values (an empty tensor: none). */
  private static double[] constants(OnnxNode n, int i, String role) {
    if (!(n.known(i) instanceof Known.Concrete c)) {
      throw n.dataDependent(i, role);
    }
    double[] v = new double[(int) c.tensor().size()];
    for (int j = 0; j < v.length; j++) {
      v[j] = c.tensor().get(j);
    }
    return v;
  }

  /** Output position {@code o}'s input coordinate, in f32 as ONNX Runtime computes it. */
  private static float original(int o, long in, long out, float scale, String transform) {
    float x = o;
    return switch (transform) {
      case "half_pixel" -> (x + 0.5f) / scale - 0.5f;
      case "half_pixel_symmetric" -> {
        float adjustment = out / (in * scale);
        float center = in / 2f;
        yield center * (1 - adjustment) + (x + 0.5f) / scale - 0.5f;
      }
      case "pytorch_half_pixel" -> out > 1 ? (x + 0.5f) / scale - 0.5f : 0f;
      case "align_corners" -> out == 1 ? 0f : x * (in - 1) / (out - 1);
      case "asymmetric" -> x / scale;
      case "tf_half_pixel_for_nn" -> (x + 0.5f) / scale;
      default -> throw new IllegalArgumentException(transform);
    };
  }

  private static Value nearest(OnnxNode n, Value y, int axis, long in, long out, float scale,
      String transform, String mode) {
    long[] index = new long[(int) out];
    boolean repeats = out > 0 && out % in == 0;
    for (int o = 0; o < out; o++) {
      float x = original(o, in, out, scale, transform);
      long i = switch (mode) {
        case "floor" -> (long) Math.floor(x);
        case "ceil" -> (long) Math.ceil(x);
        case "round_prefer_ceil" -> x == Math.floor(x) + 0.5f ? (long) Math.ceil(x) : Math.round(x);
        default -> x == Math.floor(x) + 0.5f ? (long) Math.floor(x) : Math.round(x);
      };
      index[o] = Math.max(0, Math.min(in - 1, i));
      // out a whole multiple of in (> 0) whenever repeats still holds
      repeats = repeats && index[o] == o / (out / in);
    }
    return repeats ? repeated(n, y, axis, out / in) : gather(n, y, axis, index);
  }

  /** Each position of {@code axis} {@code factor} times in a row: [.., L, 1, ..] expanded. */
  private static Value repeated(OnnxNode n, Value y, int axis, long factor) {
    List<Dim> dims = y.type().dims();
    List<Dim> split = new ArrayList<>(dims);
    split.add(axis + 1, Dim.of(1));
    List<Dim> wide = new ArrayList<>(split);
    wide.set(axis + 1, Dim.of(factor));
    List<Dim> merged = new ArrayList<>(dims);
    merged.set(axis, dims.get(axis).times(Dim.of(factor)));
    return n.reshape(n.temp(new DataOp.Expand(n.reshape(y, split), wide)), merged);
  }

  private static Value gather(OnnxNode n, Value y, int axis, long[] index) {
    Value indices = n.constant(Tensor.ofLongs(ElementType.I64, new long[] {index.length}, index));
    return n.temp(new DataOp.Gather(y, indices, axis));
  }

  /**
   * Linear: each output position between input indices i1 = floor(x) and i2 = i1 + 1 (the
   * coordinate clamped to the axis), weighted by its distance to the other, half each where
   * the two are one index (ONNX Runtime's bilinear weights).
   */
  private static Value linear(OnnxNode n, Value y, int axis, long in, long out, float scale,
      String transform) {
    long[][] index = new long[2][(int) out];
    float[][] weight = new float[2][(int) out];
    for (int o = 0; o < out; o++) {
      float x = Math.max(0f, Math.min(original(o, in, out, scale, transform), in - 1));
      index[0][o] = Math.min((long) x, in - 1);
      index[1][o] = Math.min(index[0][o] + 1, in - 1);
      float toLow = Math.abs(x - index[0][o]);
      float toHigh = Math.abs(x - index[1][o]);
      if (index[0][o] == index[1][o]) {
        toLow = 0.5f;
        toHigh = 0.5f;
      }
      weight[0][o] = toHigh;
      weight[1][o] = toLow;
    }
    return taps(n, y, axis, index, weight);
  }

  /**
   * Cubic (Keys' kernel of coefficient a): each output position from the four input indices
   * around its coordinate, clamped to the axis; with exclude_outside those past the axis weigh
   * nothing and the rest are renormalized.
   */
  private static Value cubic(OnnxNode n, Value y, int axis, long in, long out, float scale,
      String transform, float a, boolean excludeOutside) {
    long[][] index = new long[4][(int) out];
    float[][] weight = new float[4][(int) out];
    for (int o = 0; o < out; o++) {
      float x = original(o, in, out, scale, transform);
      long base = (long) Math.floor(x);
      float s = x - base;
      float[] w = {keys(1 + s, a), keys(s, a), keys(1 - s, a), keys(2 - s, a)};
      float sum = 0;
      for (int t = 0; t < 4; t++) {
        long i = base - 1 + t;
        if (excludeOutside && (i < 0 || i >= in)) {
          w[t] = 0;
        }
        sum += w[t];
        index[t][o] = Math.max(0, Math.min(in - 1, i));
      }
      for (int t = 0; t < 4; t++) {
        weight[t][o] = excludeOutside ? w[t] / sum : w[t];
      }
    }
    return taps(n, y, axis, index, weight);
  }

  /** Keys' cubic convolution kernel at distance {@code d}. */
  private static float keys(float d, float a) {
    float x = Math.abs(d);
    if (x <= 1) {
      return ((a + 2) * x - (a + 3)) * x * x + 1;
    }
    return x < 2 ? ((a * x - 5 * a) * x + 8 * a) * x - 4 * a : 0;
  }

  /** The sum over taps t of y gathered at {@code index[t]} along {@code axis} times {@code weight[t]}. */
  private static Value taps(OnnxNode n, Value y, int axis, long[][] index, float[][] weight) {
    Value sum = null;
    for (int t = 0; t < index.length; t++) {
      Value term = weighted(n, gather(n, y, axis, index[t]), axis, weight[t]);
      sum = sum == null ? term : n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, sum, term));
    }
    return sum;
  }

  /** {@code y} times {@code w}, one weight per position of {@code axis}. */
  private static Value weighted(OnnxNode n, Value y, int axis, float[] w) {
    TensorType t = y.type();
    long[] shape = new long[t.rank() - axis];
    java.util.Arrays.fill(shape, 1);
    shape[0] = w.length;
    Value weights = n.constant(Tensor.ofFloats(t.elementType(), shape, w));
    return n.temp(new ElementwiseOp.Binary(BinaryKind.MUL, y, weights));
  }
}
