package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;
import java.util.ArrayList;
import java.util.List;

/**
 * ONNX Conv of one group over 1 or 2 spatial axes with any kernel, strides, pads and
 * dilations (Whisper's and wav2vec2's 1-D stems, a CNN's 3 x 3 convolutions), as a matmul over
 * the kernel's taps: each tap is a slice of the padded input, the taps are stacked next to the
 * channels (im2col) and multiplied by the flattened kernel. A strided tap is a slice with step
 * 1: each padded axis of length S * R is seen as [R, S], and tap t of dilation D starts at row
 * t*D / S, column t*D mod S. A patch embedding (kernel = stride, no padding) goes the cheaper
 * way of {@link PatchConv}.
 */
final class ConvTaps {
  private ConvTaps() {}

  /** The most taps (kernel elements) a convolution imports: each is a slice and a concat input. */
  static final int MAX_TAPS = 64;
  /** The largest stride, dilation or pad taken, so that the index arithmetic cannot overflow. */
  private static final long MAX_SIZE = 1L << 24;

  static void importNode(OnnxNode n) {
    TensorType x = n.type(0);
    TensorType w = n.type(1);
    int spatial = x.rank() - 2;
    if (spatial < 1 || spatial > 2 || w.rank() != x.rank()) {
      throw n.error("a convolution over " + Math.max(0, spatial) + " spatial axes with a rank-"
          + w.rank() + " kernel (sohuc imports 1-D and 2-D convolutions)");
    }
    if (n.attrInt("group", 1) != 1) {
      throw n.error("group " + n.attrInt("group", 1) + " (sohuc imports convolutions of one group)");
    }
    long c = staticDim(n, x.dim(1), "input channels");
    if (!w.dim(1).is(c)) {
      throw n.error("weights of " + w.dim(1) + " input channels for an input of " + c);
    }
    long[] len = new long[spatial];
    long[] k = new long[spatial];
    long taps = 1;
    for (int i = 0; i < spatial; i++) {
      len[i] = staticDim(n, x.dim(2 + i), "input's spatial size");
      k[i] = staticDim(n, w.dim(2 + i), "kernel size");
      // capped past the most taps, so that a huge kernel cannot overflow the product
      taps = k[i] > MAX_TAPS ? MAX_TAPS + 1 : Math.min(MAX_TAPS + 1, taps * k[i]);
    }
    List<Long> kernel = n.attrInts("kernel_shape");
    if (kernel != null && !kernel.equals(java.util.Arrays.stream(k).boxed().toList())) {
      throw n.error("kernel_shape " + kernel + " differs from the weights' " + w);
    }
    if (taps < 1 || taps > MAX_TAPS) {
      throw n.error("a kernel of " + java.util.Arrays.toString(k) + " (sohuc imports 1 to "
          + MAX_TAPS + " taps, each a slice of the input, or a patch embedding: kernel = stride, "
          + "no padding)");
    }
    long[] s = ints(n, "strides", spatial, 1);
    long[] d = ints(n, "dilations", spatial, 1);
    for (long v : concat(s, d)) {
      if (v < 1 || v > MAX_SIZE) {
        throw n.error("strides " + java.util.Arrays.toString(s) + " and dilations "
            + java.util.Arrays.toString(d) + " must be 1 to 2^24");
      }
    }
    long[] pads = pads(n, spatial, len, k, s, d);
    for (long v : pads) {
      if (v < 0 || v > MAX_SIZE) {
        throw n.error("pads " + java.util.Arrays.toString(pads) + " must be 0 to 2^24");
      }
    }
    long[] out = new long[spatial];
    long[] rows = new long[spatial];
    for (int i = 0; i < spatial; i++) {
      long reach = d[i] * (k[i] - 1) + 1;
      long padded = len[i] + pads[i] + pads[spatial + i];
      if (padded < reach) {
        throw n.error("a kernel reaching " + reach + " positions (dilations "
            + java.util.Arrays.toString(d) + ") and pads " + java.util.Arrays.toString(pads)
            + " leave no output position on a spatial axis of " + len[i]);
      }
      out[i] = (padded - reach) / s[i] + 1;
      // rows of S positions: enough for the last tap's last output, and for the input itself
      rows[i] = Math.max(d[i] * (k[i] - 1) / s[i] + out[i], (len[i] + pads[i] + s[i] - 1) / s[i]);
    }
    Dim batch = x.dim(0);
    // padded to S * rows on each axis (zeros past the last position read are never read)
    List<Long> padList = new ArrayList<>(java.util.Collections.nCopies(2 * x.rank(), 0L));
    for (int i = 0; i < spatial; i++) {
      padList.set(2 + i, pads[i]);
      padList.set(x.rank() + 2 + i, s[i] * rows[i] - len[i] - pads[i]);
    }
    Value padded = n.temp(new DataOp.Pad(n.value(0), padList, DataOp.PadMode.CONSTANT, 0));
    // [N*C, R1, S1 (, R2, S2)]
    List<Dim> grid = new ArrayList<>(List.of(batch.times(Dim.of(c))));
    for (int i = 0; i < spatial; i++) {
      grid.add(Dim.of(rows[i]));
      grid.add(Dim.of(s[i]));
    }
    Value cells = n.reshape(padded, grid);
    List<Dim> tapShape = new ArrayList<>(List.of(batch.times(Dim.of(c)), Dim.of(1)));
    for (int i = 0; i < spatial; i++) {
      tapShape.add(Dim.of(out[i]));
    }
    List<Value> slices = new ArrayList<>();
    for (long t = 0; t < taps; t++) {
      List<Dim> starts = new ArrayList<>();
      List<Dim> ends = new ArrayList<>();
      List<Long> axes = new ArrayList<>();
      long rest = t;
      long[] at = new long[spatial];
      for (int i = spatial - 1; i >= 0; i--) {
        at[i] = rest % k[i];
        rest /= k[i];
      }
      for (int i = 0; i < spatial; i++) {
        long offset = at[i] * d[i];
        starts.add(Dim.of(offset / s[i]));
        ends.add(Dim.of(offset / s[i] + out[i]));
        starts.add(Dim.of(offset % s[i]));
        ends.add(Dim.of(offset % s[i] + 1));
        axes.add(1L + 2 * i);
        axes.add(2L + 2 * i);
      }
      Value tap = n.temp(new DataOp.Slice(cells, starts, ends, axes,
          java.util.Collections.nCopies(axes.size(), 1L)));
      slices.add(n.reshape(tap, tapShape));
    }
    // [N*C, T, positions] -> [N, positions, C*T] @ [C*T, M]
    Value stacked = slices.size() == 1 ? slices.get(0) : n.temp(new DataOp.Concat(slices, 1));
    long positions = 1;
    for (long o : out) {
      positions *= o;
    }
    Value columns = n.reshape(stacked, List.of(batch, Dim.of(c * taps), Dim.of(positions)));
    Value patches = n.temp(new DataOp.Transpose(columns, List.of(0L, 2L, 1L)));
    Dim m = w.dim(0);
    Value kernelRows = n.reshape(n.value(1), List.of(m, Dim.of(c * taps)));
    Value kernelColumns = n.temp(new DataOp.Transpose(kernelRows, List.of(1L, 0L)));
    Value product = n.temp(new LinalgOp.MatMul(patches, kernelColumns));
    if (n.has(2)) {
      product = n.temp(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.ADD, product, n.value(2)));
    }
    Value channelsFirst = n.temp(new DataOp.Transpose(product, List.of(0L, 2L, 1L)));
    List<Dim> shape = new ArrayList<>(List.of(batch, m));
    for (long o : out) {
      shape.add(Dim.of(o));
    }
    n.emit(new DataOp.Reshape(channelsFirst, shape));
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

  private static long[] concat(long[]... parts) {
    return java.util.Arrays.stream(parts).flatMapToLong(java.util.Arrays::stream).toArray();
  }

  /** An ints attribute of {@code count} values, or {@code fallback} each where it is absent. */
  private static long[] ints(OnnxNode n, String name, int count, long fallback) {
    List<Long> v = n.attrInts(name);
    if (v == null) {
      long[] all = new long[count];
      java.util.Arrays.fill(all, fallback);
      return all;
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
