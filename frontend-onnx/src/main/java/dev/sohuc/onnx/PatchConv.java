package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;
import java.util.List;

/**
 * ONNX Conv as a 2-D patch embedding (ViT, CLIP's and DeiT's image towers), whose kernel equals
 * its stride, without padding, dilation or groups. Each output pixel is then one patch times the
 * weights: the image is cut into patches (reshape, transpose), the patches multiplied by the
 * flattened kernel (matmul) and the bias added, and the result laid out as [N, O, H/kh, W/kw].
 * Other convolutions go tap by tap ({@link ConvTaps}).
 */
final class PatchConv {
  private PatchConv() {}

  static void importNode(OnnxNode n) {
    TensorType x = n.type(0);
    TensorType w = n.type(1);
    if (x.rank() != 4 || w.rank() != 4 || !w.dim(2).isStatic() || !w.dim(3).isStatic()
        || w.dim(2).value() < 1 || w.dim(3).value() < 1) {
      ConvTaps.importConv(n);
      return;
    }
    long kh = w.dim(2).value();
    long kw = w.dim(3).value();
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
    if (!patches || !x.dim(2).isStatic() || !x.dim(3).isStatic()
        || x.dim(2).value() % kh != 0 || x.dim(3).value() % kw != 0) {
      ConvTaps.importConv(n);
      return;
    }
    long c = ConvTaps.staticDim(n, x.dim(1), "input channels");
    long h = x.dim(2).value();
    long wd = x.dim(3).value();
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
}
