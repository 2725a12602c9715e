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
 * ONNX Conv as a patch embedding (ViT's, CLIP's and DeiT's image towers in 2-D, ViViT's and
 * VideoMAE's tubelets in 3-D), whose kernel equals its stride, without padding, dilation or
 * groups. Each output position is then one patch times the weights: the input is cut into
 * patches (reshape, transpose), the patches multiplied by the flattened kernel (matmul) and the
 * bias added, and the result laid out as [N, O, S1/k1, ...]. Other convolutions go tap by tap
 * ({@link ConvTaps}).
 */
final class PatchConv {
  private PatchConv() {}

  static void importNode(OnnxNode n) {
    TensorType x = n.type(0);
    TensorType w = n.type(1);
    int spatial = x.rank() - 2;
    if (spatial < 1 || spatial > 3 || w.rank() != x.rank()
        || !isPatchEmbedding(n, x, w, true)) {
      ConvTaps.importConv(n);
      return;
    }
    long c = ConvTaps.staticDim(n, x.dim(1), "input channels");
    if (!w.dim(1).is(c)) {
      throw n.error("weights of " + w.dim(1) + " input channels for an input of " + c);
    }
    Dim batch = x.dim(0);
    Dim out = w.dim(0);
    List<Dim> grid = new ArrayList<>(List.of(batch));
    Value input = n.value(0);
    Dim cutBatch = batch;
    long channels = c;
    int first = 0;
    if (spatial == 3) {
      // the first axis's cells join the batch and its kernel the channels, so that the cut below
      // is the 2-D one (transposes of rank 5 and 6, not one of rank 8)
      long k = w.dim(2).value();
      long cells = x.dim(2).value() / k;
      Value split = n.reshape(input, List.of(batch, Dim.of(c), Dim.of(cells), Dim.of(k),
          Dim.of(x.dim(3).value() * x.dim(4).value())));
      cutBatch = batch.times(Dim.of(cells));
      channels = c * k;
      input = n.reshape(n.temp(new DataOp.Transpose(split, List.of(0L, 2L, 1L, 3L, 4L))),
          List.of(cutBatch, Dim.of(channels), x.dim(3), x.dim(4)));
      grid.add(Dim.of(cells));
      first = 1;
    }
    // [N, C, S1/k1, k1, ...] -> [N, S1/k1, ..., C, k1, ...] -> [N, patches, C * k1 * ...]
    List<Dim> cutShape = new ArrayList<>(List.of(cutBatch, Dim.of(channels)));
    List<Long> order = new ArrayList<>(List.of(0L));
    long patches = 1;
    long patchSize = channels;
    for (int i = first; i < spatial; i++) {
      long k = w.dim(2 + i).value();
      long cells = x.dim(2 + i).value() / k;
      cutShape.add(Dim.of(cells));
      cutShape.add(Dim.of(k));
      order.add(2L + 2 * (i - first));
      grid.add(Dim.of(cells));
      patches *= cells;
      patchSize *= k;
    }
    order.add(1L);
    for (int i = first; i < spatial; i++) {
      order.add(3L + 2 * (i - first));
    }
    Value cut = n.reshape(input, cutShape);
    Value patchFirst = n.temp(new DataOp.Transpose(cut, order));
    Value flat = n.reshape(patchFirst, List.of(cutBatch, Dim.of(patches), Dim.of(patchSize)));
    Value kernelRows = n.reshape(n.value(1), List.of(out, Dim.of(patchSize)));
    Value kernelColumns = n.temp(new DataOp.Transpose(kernelRows, List.of(1L, 0L)));
    Value product = n.temp(new LinalgOp.MatMul(flat, kernelColumns));
    if (n.has(2)) {
      product = Composites.op(n, ElementwiseOp.BinaryKind.ADD, product, n.value(2));
    }
    grid.add(out);
    List<Long> channelsFirst = new ArrayList<>(List.of(0L, (long) spatial + 1));
    for (int i = 0; i < spatial; i++) {
      channelsFirst.add(1L + i);
    }
    n.emit(new DataOp.Transpose(n.reshape(product, grid), channelsFirst));
  }

  /**
   * ConvTranspose whose kernel equals its strides, without padding, output padding, dilation or
   * groups (an upsampling by the kernel): each input position spreads into one patch of the
   * output, the patch a row of x times the weights [C, O * k1 * ...] (matmul), laid out as
   * [N, O, S1 * k1, ...] by a reshape and a transpose; the bias added per output channel.
   */
  static void importTranspose(OnnxNode n) {
    TensorType x = n.type(0);
    TensorType w = n.type(1);
    int spatial = x.rank() - 2;
    if (spatial < 1 || spatial > 2 || w.rank() != x.rank()) {
      throw n.error("input " + x + " and weights " + w + ": sohuc imports 1-D and 2-D "
          + "ConvTranspose");
    }
    List<Long> outputPadding = n.attrInts("output_padding");
    if (!isPatchEmbedding(n, x, w, false)
        || outputPadding != null && outputPadding.stream().anyMatch(p -> p != 0)
        || n.attrInts("output_shape") != null) {
      throw n.error("a ConvTranspose other than an upsampling by its kernel (sohuc imports kernel "
          + "= strides, no padding, output_padding, output_shape, dilation or groups)");
    }
    long c = ConvTaps.staticDim(n, x.dim(1), "input channels");
    if (!w.dim(0).is(c)) {
      throw n.error("weights of " + w.dim(0) + " input channels for an input of " + c);
    }
    long o = ConvTaps.staticDim(n, w.dim(1), "output channels");
    Dim batch = x.dim(0);
    long positions = 1;
    long patch = o;
    List<Dim> grid = new ArrayList<>(List.of(batch));
    List<Long> toLast = new ArrayList<>(List.of(0L));
    for (int i = 0; i < spatial; i++) {
      positions *= x.dim(2 + i).value();
      patch *= w.dim(2 + i).value();
      grid.add(x.dim(2 + i));
      toLast.add(2L + i);
    }
    toLast.add(1L);
    // [N, C, S...] -> [N, S..., C] -> [N, positions, C] @ [C, O * k...]
    Value rows = n.reshape(n.temp(new DataOp.Transpose(n.value(0), toLast)),
        List.of(batch, Dim.of(positions), Dim.of(c)));
    Value product = n.temp(new LinalgOp.MatMul(rows, n.reshape(n.value(1),
        List.of(Dim.of(c), Dim.of(patch)))));
    // [N, S1, S2, O, k1, k2] -> [N, O, S1, k1, S2, k2] (1-D: [N, S, O, k] -> [N, O, S, k])
    grid.add(Dim.of(o));
    List<Long> order = new ArrayList<>(List.of(0L, (long) spatial + 1));
    List<Dim> out = new ArrayList<>(List.of(batch, Dim.of(o)));
    for (int i = 0; i < spatial; i++) {
      grid.add(w.dim(2 + i));
    }
    for (int i = 0; i < spatial; i++) {
      order.add(1L + i);
      order.add(spatial + 2L + i);
      out.add(Dim.of(x.dim(2 + i).value() * w.dim(2 + i).value()));
    }
    Value spread = n.temp(new DataOp.Transpose(n.reshape(product, grid), order));
    if (!n.has(2)) {
      n.emit(new DataOp.Reshape(spread, out));
      return;
    }
    List<Dim> perChannel = new ArrayList<>(java.util.Collections.nCopies(out.size(), Dim.of(1)));
    perChannel.set(1, Dim.of(o));
    n.emit(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.ADD, n.reshape(spread, out),
        n.reshape(n.value(2), perChannel)));
  }

  /**
   * Whether the node's kernel (static, as the weights give it) equals its strides, with no
   * padding, dilation or groups, over static spatial axes that it tiles where {@code tiled}.
   */
  private static boolean isPatchEmbedding(OnnxNode n, TensorType x, TensorType w,
      boolean tiled) {
    int spatial = x.rank() - 2;
    List<Long> k = new ArrayList<>();
    for (int i = 0; i < spatial; i++) {
      Dim kd = w.dim(2 + i);
      Dim xd = x.dim(2 + i);
      if (!kd.isStatic() || kd.value() < 1 || !xd.isStatic()
          || tiled && xd.value() % kd.value() != 0) {
        return false;
      }
      k.add(kd.value());
    }
    List<Long> kernel = n.attrInts("kernel_shape");
    List<Long> pads = n.attrInts("pads");
    List<Long> dilations = n.attrInts("dilations");
    String autoPad = n.attrString("auto_pad", "NOTSET");
    return (kernel == null || kernel.equals(k)) && k.equals(n.attrInts("strides"))
        && (pads == null || pads.stream().allMatch(p -> p == 0))
        && (dilations == null || dilations.stream().allMatch(d -> d == 1))
        && n.attrInt("group", 1) == 1 && (autoPad.equals("NOTSET") || autoPad.equals("VALID"));
  }
}
