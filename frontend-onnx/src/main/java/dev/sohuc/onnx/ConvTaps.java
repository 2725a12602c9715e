package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Sliding windows over 1 or 2 spatial axes, tap by tap: each kernel tap is a slice of the padded
 * input, and the taps are stacked next to the channels. A strided tap is a slice with step 1:
 * each padded axis of length S * R is seen as [R, S], and tap t of dilation D starts at row
 * t*D / S, column t*D mod S. ONNX Conv with any kernel, strides, pads, dilations and groups
 * (Whisper's and wav2vec2's 1-D stems and wav2vec2's grouped positional convolution, a CNN's
 * 3 x 3 and depthwise convolutions) is the stacked taps times the flattened kernel (im2col),
 * one matrix product per group; MaxPool and AveragePool reduce over them. A patch
 * embedding (kernel = stride, no padding) goes the cheaper way of {@link PatchConv}.
 */
final class ConvTaps {
  private ConvTaps() {}

  /**
   * The most taps (kernel elements) a window imports: each is a slice and a concat input
   * (wav2vec2's positional convolution has 128).
   */
  static final int MAX_TAPS = 128;
  /** The most positions of one axis's table for MaxPool's Indices (taps times outputs). */
  private static final long MAX_INDEX_TABLE = 1L << 22;
  /** The largest stride, dilation or pad taken, so that the index arithmetic cannot overflow. */
  private static final long MAX_SIZE = 1L << 24;

  /**
   * A window's geometry per spatial axis: kernel, strides, dilations, pads (begins then ends),
   * the output positions and the rows of S positions the padded axis is seen as.
   */
  private record Window(long[] kernel, long[] strides, long[] dilations, long[] pads, long[] out,
      long[] rows) {
    int spatial() {
      return kernel.length;
    }

    long taps() {
      return Arrays.stream(kernel).reduce(1, (a, b) -> a * b);
    }
  }

  static void importConv(OnnxNode n) {
    TensorType x = n.type(0);
    TensorType w = n.type(1);
    int spatial = spatialAxes(n, x);
    if (w.rank() != x.rank()) {
      throw n.error("a rank-" + w.rank() + " kernel for a rank-" + x.rank() + " input");
    }
    long c = staticDim(n, x.dim(1), "input channels");
    long m = staticDim(n, w.dim(0), "output channels");
    long groups = n.attrInt("group", 1);
    if (groups < 1 || c % groups != 0 || m % groups != 0) {
      throw n.error("group " + groups + " must divide the " + c + " input and " + m
          + " output channels");
    }
    long perGroup = c / groups;
    if (!w.dim(1).is(perGroup)) {
      throw n.error("weights of " + w.dim(1) + " input channels for an input of " + c
          + (groups > 1 ? " in " + groups + " groups" : ""));
    }
    long[] k = new long[spatial];
    for (int i = 0; i < spatial; i++) {
      k[i] = staticDim(n, w.dim(2 + i), "kernel size");
    }
    List<Long> kernel = n.attrInts("kernel_shape");
    if (kernel != null && !kernel.equals(Arrays.stream(k).boxed().toList())) {
      throw n.error("kernel_shape " + kernel + " differs from the weights' " + w);
    }
    Window win = window(n, x, k, "dilations", false);
    long taps = win.taps();
    // [N*C, T, positions] -> [N, positions, C*T] @ [C*T, M]; in groups, one product each:
    // [G, N*positions, C/G*T] @ [G, C/G*T, M/G], the groups the batch axis
    Value stacked = taps(n, n.value(0), win, 0);
    Dim batch = x.dim(0);
    long positions = Arrays.stream(win.out()).reduce(1, (a, b) -> a * b);
    long rows = perGroup * taps;
    Value product;
    if (groups == 1) {
      Value columns = n.reshape(stacked, List.of(batch, Dim.of(rows), Dim.of(positions)));
      Value patches = n.temp(new DataOp.Transpose(columns, List.of(0L, 2L, 1L)));
      Value kernelRows = n.reshape(n.value(1), List.of(Dim.of(m), Dim.of(rows)));
      product = n.temp(new LinalgOp.MatMul(patches, n.temp(new DataOp.Transpose(kernelRows,
          List.of(1L, 0L)))));
    } else {
      Dim g = Dim.of(groups);
      Value columns = n.reshape(stacked, List.of(batch, g, Dim.of(rows), Dim.of(positions)));
      Value patches = n.reshape(n.temp(new DataOp.Transpose(columns, List.of(1L, 0L, 3L, 2L))),
          List.of(g, batch.times(Dim.of(positions)), Dim.of(rows)));
      Value kernelRows = n.reshape(n.value(1), List.of(g, Dim.of(m / groups), Dim.of(rows)));
      Value perGroupProduct = n.temp(new LinalgOp.MatMul(patches, n.temp(new DataOp.Transpose(
          kernelRows, List.of(0L, 2L, 1L)))));
      // [G, N, positions, M/G] -> [N, positions, M]
      Value split = n.reshape(perGroupProduct, List.of(g, batch, Dim.of(positions),
          Dim.of(m / groups)));
      product = n.reshape(n.temp(new DataOp.Transpose(split, List.of(1L, 2L, 0L, 3L))),
          List.of(batch, Dim.of(positions), Dim.of(m)));
    }
    if (n.has(2)) {
      product = Composites.op(n, ElementwiseOp.BinaryKind.ADD, product, n.value(2));
    }
    Value channelsFirst = n.temp(new DataOp.Transpose(product, List.of(0L, 2L, 1L)));
    n.emit(new DataOp.Reshape(channelsFirst, outShape(batch, Dim.of(m), win)));
  }

  /**
   * MaxPool (max, the padding -inf) or AveragePool (the mean over the window's positions inside
   * the input, or over all its taps with count_include_pad): the taps reduced, and MaxPool's
   * Indices where wanted. With ceil_mode the last window may reach past the end padding (where
   * MaxPool ignores it and AveragePool counts nothing), never starting there.
   */
  static void importPool(OnnxNode n, boolean max) {
    TensorType x = n.type(0);
    int spatial = spatialAxes(n, x);
    if (!x.elementType().isFloat()) {
      throw n.error("X must be a float tensor, got " + x);
    }
    long ceilMode = n.attrInt("ceil_mode", 0);
    if (ceilMode != 0 && ceilMode != 1) {
      throw n.error("ceil_mode must be 0 or 1, got " + ceilMode);
    }
    List<Long> kernel = n.attrInts("kernel_shape");
    if (kernel == null || kernel.size() != spatial) {
      throw n.error("kernel_shape must hold " + spatial + " values, got " + kernel);
    }
    long[] k = kernel.stream().mapToLong(Long::longValue).toArray();
    // AveragePool takes dilations from opset 19; before, its windows are dense
    Window win = window(n, x, k, max || n.opset >= 19 ? "dilations" : null, ceilMode == 1);
    Value stacked = taps(n, n.value(0), win, max ? Double.NEGATIVE_INFINITY : 0);
    Value reduced = n.temp(new ReductionOp.Reduce(max ? ReductionOp.ReduceKind.MAX
        : ReductionOp.ReduceKind.SUM, stacked, List.of(1L), true));
    if (!max) {
      reduced = Composites.op(n, ElementwiseOp.BinaryKind.DIV, reduced, windowCounts(n, x, win));
    }
    List<Dim> shape = outShape(x.dim(0), x.dim(1), win);
    if (max && n.wants(1)) {
      n.set(1, n.temp(new DataOp.Reshape(maxIndices(n, x, win, stacked, reduced), shape)));
    }
    n.emit(new DataOp.Reshape(reduced, shape));
  }

  /**
   * MaxPool's Indices, [N*C, 1, out...]: each window's maximum's flat position in X (row-major
   * over N, C and the spatial axes; with storage_order 1 the spatial axes column-major), the
   * first in the kernel's row-major order, as ONNX Runtime picks it: of the taps equal to the
   * maximum, the least position, computed in f32 (exact: X holds at most 2^24 elements).
   */
  private static Value maxIndices(OnnxNode n, TensorType x, Window win, Value stacked,
      Value max) {
    long order = n.attrInt("storage_order", 0);
    if (order != 0 && order != 1) {
      throw n.error("storage_order must be 0 or 1, got " + order);
    }
    int spatial = win.spatial();
    long channels = staticDim(n, x.dim(0), "batch (for the Indices output)")
        * staticDim(n, x.dim(1), "channel count (for the Indices output)");
    long plane = 1;
    long[] stride = new long[spatial];
    for (int i = spatial - 1; i >= 0; i--) {
      stride[i] = plane;
      plane *= x.dim(2 + i).value();
    }
    if (order == 1) {
      // column-major: the first spatial axis varies fastest
      long s = 1;
      for (int i = 0; i < spatial; i++) {
        stride[i] = s;
        s *= x.dim(2 + i).value();
      }
    }
    if (channels > (1L << 24) / plane) {
      throw n.error("the Indices output counts positions in " + x + ", more than the 2^24 f32 "
          + "counts exactly");
    }
    long taps = win.taps();
    for (long o : win.out()) {
      if (taps * o > MAX_INDEX_TABLE) {
        throw n.error("the Indices output needs a table of " + taps + " x " + o + " positions, "
            + "more than the " + MAX_INDEX_TABLE + " sohuc builds");
      }
    }
    // per spatial axis, [1, T, 1.., out_i, ..1]: the tap's coordinate there times the axis's
    // stride; summed, each tap's position in its channel's plane
    Value position = null;
    for (int i = 0; i < spatial; i++) {
      long outI = win.out()[i];
      long inner = 1;
      for (int j = i + 1; j < spatial; j++) {
        inner *= win.kernel()[j];
      }
      float[] v = new float[(int) (taps * outI)];
      for (int t = 0; t < taps; t++) {
        long k = t / inner % win.kernel()[i];
        for (int o = 0; o < outI; o++) {
          long at = o * win.strides()[i] - win.pads()[i] + k * win.dilations()[i];
          v[(int) (t * outI + o)] = at * stride[i];
        }
      }
      long[] shape = new long[2 + spatial];
      Arrays.fill(shape, 1);
      shape[1] = taps;
      shape[2 + i] = outI;
      Value term = n.constant(Tensor.ofFloats(ElementType.F32, shape, v));
      position = position == null ? term
          : Composites.op(n, ElementwiseOp.BinaryKind.ADD, position, term);
    }
    float[] bases = new float[(int) channels];
    for (int c = 0; c < channels; c++) {
      bases[c] = c * plane;
    }
    long[] baseShape = new long[2 + spatial];
    Arrays.fill(baseShape, 1);
    baseShape[0] = channels;
    position = Composites.op(n, ElementwiseOp.BinaryKind.ADD, position,
        n.constant(Tensor.ofFloats(ElementType.F32, baseShape, bases)));
    Value candidates = n.temp(new ElementwiseOp.Where(
        Composites.op(n, ElementwiseOp.BinaryKind.EQUAL, stacked, max), position,
        n.constant(Tensor.scalar(ElementType.F32, 0x1p24))));
    Value first = n.temp(new ReductionOp.Reduce(ReductionOp.ReduceKind.MIN, candidates,
        List.of(1L), true));
    return n.temp(new ElementwiseOp.Cast(first, ElementType.I64));
  }

  /**
   * The positions each window of an average divides by: with count_include_pad all of its taps
   * (as ONNX Runtime counts them, also where ceil_mode reaches past the padding), else those
   * inside the input, as the window over a tensor of ones padded with zeros ([1, 1, out...])
   * where some window reaches outside the input.
   */
  private static Value windowCounts(OnnxNode n, TensorType x, Window win) {
    int spatial = win.spatial();
    boolean inside = true;
    for (int i = 0; i < spatial; i++) {
      // no padding before the first window, and the last one's reach ends inside the input
      inside &= win.pads()[i] == 0 && (win.out()[i] - 1) * win.strides()[i]
          + win.dilations()[i] * (win.kernel()[i] - 1) + 1 <= x.dim(2 + i).value();
    }
    if (n.attrInt("count_include_pad", 0) != 0 || inside) {
      return n.constant(Tensor.scalar(x.elementType(), win.taps()));
    }
    List<Dim> shape = new ArrayList<>(java.util.Collections.nCopies(x.rank(), Dim.of(1)));
    for (int i = 0; i < spatial; i++) {
      shape.set(2 + i, x.dim(2 + i));
    }
    Value ones = n.temp(new dev.sohuc.ir.op.SourceOp.Fill(shape, 1, x.elementType()));
    return n.temp(new ReductionOp.Reduce(ReductionOp.ReduceKind.SUM, taps(n, ones, win, 0),
        List.of(1L), true));
  }

  /** The spatial axes of x [N, C, ...]: 1 or 2. */
  private static int spatialAxes(OnnxNode n, TensorType x) {
    int spatial = x.rank() - 2;
    if (spatial < 1 || spatial > 2) {
      throw n.error("a window over " + Math.max(0, spatial) + " spatial axes (sohuc imports 1-D "
          + "and 2-D convolutions and pooling, and 3-D patch embeddings: kernel = stride, no "
          + "padding)");
    }
    return spatial;
  }

  /** [N, M, out...]. */
  private static List<Dim> outShape(Dim batch, Dim channels, Window win) {
    List<Dim> shape = new ArrayList<>(List.of(batch, channels));
    for (long o : win.out()) {
      shape.add(Dim.of(o));
    }
    return shape;
  }

  /**
   * The window of kernel {@code k} over x's spatial axes, from the node's strides, pads or
   * auto_pad, and dilations (the attribute {@code dilationsAttr}, or 1 where it is null), each
   * checked; with {@code ceil} the output positions rounded up, as pooling's ceil_mode does.
   */
  private static Window window(OnnxNode n, TensorType x, long[] k, String dilationsAttr,
      boolean ceil) {
    int spatial = k.length;
    long[] len = new long[spatial];
    // capped past the most taps, so that a huge kernel cannot overflow the product
    long taps = 1;
    for (int i = 0; i < spatial; i++) {
      len[i] = staticDim(n, x.dim(2 + i), "input's spatial size");
      taps = k[i] > MAX_TAPS ? MAX_TAPS + 1 : Math.min(MAX_TAPS + 1, taps * k[i]);
    }
    if (taps < 1 || taps > MAX_TAPS) {
      throw n.error("a kernel of " + Arrays.toString(k) + " (sohuc imports 1 to " + MAX_TAPS
          + " taps, each a slice of the input, or a patch embedding: kernel = stride, "
          + "no padding)");
    }
    long[] s = ints(n, "strides", spatial, 1);
    long[] d = dilationsAttr == null ? filled(spatial, 1) : ints(n, dilationsAttr, spatial, 1);
    for (long v : java.util.stream.LongStream.concat(Arrays.stream(s), Arrays.stream(d)).toArray()) {
      if (v < 1 || v > MAX_SIZE) {
        throw n.error("strides " + Arrays.toString(s) + " and dilations " + Arrays.toString(d)
            + " must be 1 to 2^24");
      }
    }
    long[] pads = pads(n, spatial, len, k, s, d);
    for (long v : pads) {
      if (v < 0 || v > MAX_SIZE) {
        throw n.error("pads " + Arrays.toString(pads) + " must be 0 to 2^24");
      }
    }
    long[] out = new long[spatial];
    long[] rows = new long[spatial];
    for (int i = 0; i < spatial; i++) {
      long reach = d[i] * (k[i] - 1) + 1;
      long padded = len[i] + pads[i] + pads[spatial + i];
      if (padded < reach) {
        throw n.error("a kernel reaching " + reach + " positions (dilations " + Arrays.toString(d)
            + ") and pads " + Arrays.toString(pads) + " leave no output position on a spatial "
            + "axis of " + len[i]);
      }
      out[i] = ceil ? Math.ceilDiv(padded - reach, s[i]) + 1 : (padded - reach) / s[i] + 1;
      // a rounded-up last window that would start in the end padding is dropped (as ONNX
      // Runtime and PyTorch do): each window starts in the input or its begin padding
      if (ceil && out[i] > 1 && (out[i] - 1) * s[i] >= len[i] + pads[i]) {
        out[i]--;
      }
      // rows of S positions: enough for the last tap's last output, and for the input itself
      rows[i] = Math.max(d[i] * (k[i] - 1) / s[i] + out[i], (len[i] + pads[i] + s[i] - 1) / s[i]);
    }
    return new Window(k, s, d, pads, out, rows);
  }

  /**
   * {@code v} [N, C, L...] padded with {@code padValue} (the padding and past it, where no tap
   * reads), as the window's taps stacked: [N*C, T, out...], tap t of the kernel's row-major
   * order at index t.
   */
  private static Value taps(OnnxNode n, Value v, Window win, double padValue) {
    TensorType t = v.type();
    int spatial = win.spatial();
    long[] k = win.kernel();
    long[] s = win.strides();
    long[] d = win.dilations();
    List<Long> padList = new ArrayList<>(java.util.Collections.nCopies(2 * t.rank(), 0L));
    for (int i = 0; i < spatial; i++) {
      long len = t.dim(2 + i).value();
      padList.set(2 + i, win.pads()[i]);
      padList.set(t.rank() + 2 + i, s[i] * win.rows()[i] - len - win.pads()[i]);
    }
    Value padded = n.temp(new DataOp.Pad(v, padList, DataOp.PadMode.CONSTANT, padValue));
    // [N*C, R1, S1 (, R2, S2)]
    Dim lanes = t.dim(0).times(t.dim(1));
    List<Dim> grid = new ArrayList<>(List.of(lanes));
    for (int i = 0; i < spatial; i++) {
      grid.add(Dim.of(win.rows()[i]));
      grid.add(Dim.of(s[i]));
    }
    Value cells = n.reshape(padded, grid);
    List<Dim> tapShape = new ArrayList<>(List.of(lanes, Dim.of(1)));
    for (long o : win.out()) {
      tapShape.add(Dim.of(o));
    }
    List<Value> slices = new ArrayList<>();
    for (long tap = 0; tap < win.taps(); tap++) {
      List<Dim> starts = new ArrayList<>();
      List<Dim> ends = new ArrayList<>();
      List<Long> axes = new ArrayList<>();
      long rest = tap;
      long[] at = new long[spatial];
      for (int i = spatial - 1; i >= 0; i--) {
        at[i] = rest % k[i];
        rest /= k[i];
      }
      for (int i = 0; i < spatial; i++) {
        long offset = at[i] * d[i];
        starts.add(Dim.of(offset / s[i]));
        ends.add(Dim.of(offset / s[i] + win.out()[i]));
        starts.add(Dim.of(offset % s[i]));
        ends.add(Dim.of(offset % s[i] + 1));
        axes.add(1L + 2 * i);
        axes.add(2L + 2 * i);
      }
      Value slice = n.temp(new DataOp.Slice(cells, starts, ends, axes,
          java.util.Collections.nCopies(axes.size(), 1L)));
      slices.add(n.reshape(slice, tapShape));
    }
    return slices.size() == 1 ? slices.get(0) : n.temp(new DataOp.Concat(slices, 1));
  }

  /**
   * Begin pads then end pads per spatial axis: the pads attribute, or auto_pad's (SAME_UPPER puts
   * the odd one at the end, SAME_LOWER at the start; VALID none).
   */
  private static long[] pads(OnnxNode n, int spatial, long[] len, long[] k, long[] s, long[] d) {
    String auto = n.attrString("auto_pad", "NOTSET");
    long[] pads = new long[2 * spatial];
    switch (auto) {
      case "NOTSET" -> {
        long[] given = ints(n, "pads", 2 * spatial, 0);
        System.arraycopy(given, 0, pads, 0, pads.length);
      }
      case "VALID" -> { }
      case "SAME_UPPER", "SAME_LOWER" -> {
        for (int i = 0; i < spatial; i++) {
          long out = (len[i] + s[i] - 1) / s[i];
          long total = Math.max(0, (out - 1) * s[i] + d[i] * (k[i] - 1) + 1 - len[i]);
          long small = total / 2;
          pads[i] = auto.equals("SAME_UPPER") ? small : total - small;
          pads[spatial + i] = total - pads[i];
        }
      }
      default -> throw n.error("auto_pad " + auto + " (NOTSET, VALID, SAME_UPPER or SAME_LOWER)");
    }
    return pads;
  }

  private static long[] filled(int count, long value) {
    long[] all = new long[count];
    Arrays.fill(all, value);
    return all;
  }

  /** An ints attribute of {@code count} values, or {@code fallback} each where it is absent. */
  private static long[] ints(OnnxNode n, String name, int count, long fallback) {
    List<Long> v = n.attrInts(name);
    if (v == null) {
      return filled(count, fallback);
    }
    if (v.size() != count) {
      throw n.error(name + " " + v + " must hold " + count + " values");
    }
    return v.stream().mapToLong(Long::longValue).toArray();
  }

  static long staticDim(OnnxNode n, Dim d, String role) {
    if (!d.isStatic()) {
      throw n.error("the " + role + " must be static, got " + d);
    }
    return d.value();
  }
}
