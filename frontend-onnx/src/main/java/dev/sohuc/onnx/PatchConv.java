package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;
import java.util.List;

/**
 * ONNX Conv in the one form transformers use it: a 2-D patch embedding (ViT, CLIP's and
 * DeiT's image towers), whose kernel equals its stride, without padding, dilation or groups.
 * Each output pixel is then one patch times the weights: the image is cut into patches
 * (reshape, transpose), the patches multiplied by the flattened kernel (matmul) and the bias
 * added, and the result laid out as [N, O, H/kh, W/kw]. Any other convolution is refused by
 * name.
 */
final class PatchConv {
  private PatchConv() {}

  static void importNode(OnnxNode n) {
    TensorType x = n.type(0);
    TensorType w = n.type(1);
    if (x.rank() != 4 || w.rank() != 4) {
      throw n.error("a convolution of a rank-" + x.rank() + " input (sohuc imports 2-D patch "
          + "embeddings: kernel = stride, no padding, one group)");
    }
    long kh = staticDim(n, w.dim(2), "kernel height");
    long kw = staticDim(n, w.dim(3), "kernel width");
    List<Long> kernel = n.attrInts("kernel_shape");
    List<Long> strides = n.attrInts("strides");
    List<Long> pads = n.attrInts("pads");
    List<Long> dilations = n.attrInts("dilations");
    String autoPad = n.attrString("auto_pad", "NOTSET");
    boolean patches = (kernel == null || kernel.equals(List.of(kh, kw)))
        && List.of(kh, kw).equals(strides)
        && (pads == null || pads.stream().allMatch(p -> p == 0))
        && (dilations == null || dilations.stream().allMatch(d -> d == 1))
        && n.attrInt("group", 1) == 1 && (autoPad.equals("NOTSET") || autoPad.equals("VALID"));
    if (!patches) {
      throw n.error("a convolution other than a patch embedding (sohuc imports kernel = stride "
          + List.of(kh, kw) + ", no padding or dilation, one group; got strides " + strides
          + ", pads " + pads + ", dilations " + dilations + ", group " + n.attrInt("group", 1) + ")");
    }
    long c = staticDim(n, x.dim(1), "input channels");
    long h = staticDim(n, x.dim(2), "input height");
    long wd = staticDim(n, x.dim(3), "input width");
    if (h % kh != 0 || wd % kw != 0) {
      throw n.error("a " + h + " x " + wd + " image does not cut into " + kh + " x " + kw
          + " patches");
    }
    if (!w.dim(1).is(c)) {
      throw n.error("weights of " + w.dim(1) + " input channels for an input of " + c);
    }
    Dim batch = x.dim(0);
    Dim out = w.dim(0);
    long rows = h / kh;
    long cols = wd / kw;
    Value cut = n.reshape(n.value(0),
        List.of(batch, Dim.of(c), Dim.of(rows), Dim.of(kh), Dim.of(cols), Dim.of(kw)));
    Value patchFirst = n.temp(new DataOp.Transpose(cut, List.of(0L, 2L, 4L, 1L, 3L, 5L)));
    Value flat = n.reshape(patchFirst, List.of(batch, Dim.of(rows * cols), Dim.of(c * kh * kw)));
    Value kernelRows = n.reshape(n.value(1), List.of(out, Dim.of(c * kh * kw)));
    Value kernelColumns = n.temp(new DataOp.Transpose(kernelRows, List.of(1L, 0L)));
    Value product = n.temp(new LinalgOp.MatMul(flat, kernelColumns));
    if (n.has(2)) {
      product = n.temp(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.ADD, product, n.value(2)));
    }
    Value grid = n.reshape(product, List.of(batch, Dim.of(rows), Dim.of(cols), out));
    n.emit(new DataOp.Transpose(grid, List.of(0L, 3L, 1L, 2L)));
  }

  private static long staticDim(OnnxNode n, Dim d, String role) {
    if (!d.isStatic()) {
      throw n.error("the " + role + " must be static, got " + d);
    }
    return d.value();
  }
}
