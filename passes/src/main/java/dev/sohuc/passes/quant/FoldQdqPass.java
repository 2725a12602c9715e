package dev.sohuc.passes.quant;

import static dev.sohuc.passes.rewrite.Patterns.def;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.passes.RewritePass;
import dev.sohuc.passes.rewrite.Patterns;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.RewriteContext;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * {@code fold-qdq}: already-quantized ONNX models onto the chip's quantized matmul.
 *
 * <ul>
 *   <li>QDQ (static) form: {@code matmul(dequantize_linear(quantize_linear(x, sx, 0), sx, 0),
 *       dequantize_linear(wq, sw, 0))} with wq a constant of type i8 or fp8 {@code [K, N]}, sw
 *       a scalar or one value per column (axis 1) and every zero point 0 becomes
 *       {@code qmatmul(quantize_linear(x, sx, 0), wq, sx, sw)}: the products are summed in the
 *       quantized type and scaled once, instead of dequantized and summed in f32.
 *   <li>Dynamic form (onnxruntime's {@code quantize_dynamic}): {@code mul(cast(matmul_integer(
 *       aq, wq, azp, 0) to f32), mul(as, sw))} with {@code aq, as, azp =
 *       dynamic_quantize_linear(x)} and wq an i8 constant becomes {@code qmatmul(xq, wq, xs, sw)}
 *       with {@code xq, xs = dynamic_quantize(x) {dtype = i8, granularity = "row"}}: ONNX's
 *       activation quantization is asymmetric u8 per tensor, which the i8 MXU cannot multiply
 *       directly, so the activation is requantized symmetrically per token (at least as fine
 *       a step as the original; the result differs from ONNX Runtime by less than one
 *       activation quantization step times the column's weight magnitude).
 *   <li>Static QDQ with u8 activations (onnxruntime's {@code quantize_static} default: u8 per
 *       tensor with a zero point, i8 weights): {@code matmul(dequantize_linear(quantize_linear(
 *       x, sx, zx), sx, zx), dequantize_linear(wq, sw, 0))} becomes the dynamic form's qmatmul
 *       over x clipped to the range the u8 holds, {@code [sx * (0 - zx), sx * (255 - zx)]}: the
 *       model's clipping kept, its per-tensor u8 step replaced by the per-token i8 one (finer
 *       for rows of smaller magnitude than the range, up to twice as coarse for a range on one
 *       side of 0, as after a ReLU): the result differs from ONNX Runtime by less than half of
 *       each step times the column's weight magnitude.
 *   <li>Symmetric u8 pairs ({@code quantize_static} with symmetric activations): a
 *       {@code dequantize_linear(quantize_linear(x, s, 128), s, 128)} of u8 becomes the same pair
 *       in i8 with zero point 0, the same numbers; the rules above then fold it into a matmul
 *       exactly, and the backend lowers the pair where it stands alone (before an Add, a Softmax).
 *   <li>Quantized tables (onnxruntime's quantized Gather, as in its quantized BERT embeddings):
 *       {@code dequantize_linear(gather(t, ids), s, zp)} with a u8 table {@code t} becomes the
 *       same over an i8 table {@code t - 128} and zero point {@code zp - 128}: the same
 *       numbers, in a type the chip has (the backend subtracts a non-zero zero point).
 * </ul>
 *
 * Other asymmetric forms (u8 weights, non-zero weight zero points, i8 activations with a
 * non-zero zero point) are left as they are: {@link ExpandQdqPass} then turns their activation
 * pairs into f32 arithmetic; a weight's dequantize_linear stays for fold-constants (small
 * weights) or the backend.
 */
public final class FoldQdqPass extends RewritePass {

  /** A constant of the given element types whose every element is 0. */
  private static boolean zero(RewriteContext cx, Value v) {
    Optional<Tensor> t = cx.constant(v);
    if (t.isEmpty()) {
      return false;
    }
    for (int i = 0; i < t.get().size(); i++) {
      if (t.get().get(i) != 0) {
        return false;
      }
    }
    return true;
  }

  private static boolean isConstant(Value v) {
    Node p = v.producer();
    return p != null && (p.op() instanceof SourceOp.WeightRef || p.op() instanceof SourceOp.Constant);
  }

  /** A per-tensor scale or one per column of a [K, N] weight (axis 1), all constant. */
  private static boolean weightScale(RewriteContext cx, Value scale, Value w, long axis) {
    if (scale.type().elementType() != ElementType.F32 || cx.constant(scale).isEmpty()) {
      return false;
    }
    return scale.type().rank() == 0 || (scale.type().rank() == 1 && Math.floorMod(axis, 2) == 1
        && scale.type().dim(0).equals(w.type().dim(1)));
  }

  /** Two scalar constants with one value. */
  static boolean sameScalar(RewriteContext cx, Value a, Value b) {
    if (a == b) {
      return true;
    }
    Optional<Tensor> ta = cx.constant(a);
    Optional<Tensor> tb = cx.constant(b);
    return ta.isPresent() && tb.isPresent() && ta.get().size() == 1 && tb.get().size() == 1
        && ta.get().get(0) == tb.get().get(0);
  }

  // matmul(dq(q(x, sx, 0), sx, 0), dq(wq, sw, 0)) -> qmatmul(q(x, sx, 0), wq, sx, sw)
  public static final RewriteRule QDQ_MATMUL = RewriteRule.of("qdq-matmul", Set.of("matmul"), (n, cx) -> {
    LinalgOp.MatMul mm = (LinalgOp.MatMul) n.op();
    Optional<QuantOp.DequantizeLinear> dx = def(mm.a(), QuantOp.DequantizeLinear.class);
    Optional<QuantOp.DequantizeLinear> dw = def(mm.b(), QuantOp.DequantizeLinear.class);
    if (dx.isEmpty() || dw.isEmpty() || mm.b().type().rank() != 2 || mm.a().type().rank() < 2) {
      return Optional.empty();
    }
    Value xq = dx.get().x();
    Optional<QuantOp.QuantizeLinear> qx = def(xq, QuantOp.QuantizeLinear.class);
    Value wq = dw.get().x();
    ElementType t = xq.type().elementType();
    if (qx.isEmpty() || !QuantOp.MXU_TYPES.contains(t) || wq.type().elementType() != t
        || !isConstant(wq) || dx.get().scale().type().elementType() != ElementType.F32
        || qx.get().scale().type().rank() != 0 || !sameScalar(cx, qx.get().scale(), dx.get().scale())
        || !zero(cx, qx.get().zeroPoint()) || !zero(cx, dx.get().zeroPoint()) || !zero(cx, dw.get().zeroPoint())
        || !weightScale(cx, dw.get().scale(), wq, dw.get().axis())) {
      return Optional.empty();
    }
    return Replacement.op(new QuantOp.QMatMul(xq, wq, dx.get().scale(), dw.get().scale()));
  });

  // matmul(dq(q(x, sx, zx), sx, zx), dq(wq, sw, 0)) with x quantized to u8 per tensor and wq i8
  //   -> qmatmul(dynamic_quantize(min(max(x, lo), hi)){i8, row}, wq, its scales, sw)
  public static final RewriteRule U8_QDQ_MATMUL = RewriteRule.of("u8-qdq-matmul", Set.of("matmul"),
      (n, cx) -> {
        LinalgOp.MatMul mm = (LinalgOp.MatMul) n.op();
        Optional<QuantOp.DequantizeLinear> dx = def(mm.a(), QuantOp.DequantizeLinear.class);
        Optional<QuantOp.DequantizeLinear> dw = def(mm.b(), QuantOp.DequantizeLinear.class);
        if (dx.isEmpty() || dw.isEmpty() || mm.b().type().rank() != 2 || mm.a().type().rank() < 2) {
          return Optional.empty();
        }
        Optional<QuantOp.QuantizeLinear> qx = def(dx.get().x(), QuantOp.QuantizeLinear.class);
        Value wq = dw.get().x();
        if (qx.isEmpty() || dx.get().x().type().elementType() != ElementType.U8
            || wq.type().elementType() != ElementType.I8 || !isConstant(wq)
            || qx.get().x().type().elementType() != ElementType.F32
            || qx.get().scale().type().rank() != 0 || !sameScalar(cx, qx.get().scale(), dx.get().scale())
            || !sameScalar(cx, qx.get().zeroPoint(), dx.get().zeroPoint())
            || !zero(cx, dw.get().zeroPoint()) || !weightScale(cx, dw.get().scale(), wq, dw.get().axis())) {
          return Optional.empty();
        }
        double scale = cx.constant(qx.get().scale()).orElseThrow().get(0);
        double zeroPoint = cx.constant(qx.get().zeroPoint()).orElseThrow().get(0);
        if (!(scale > 0) || Double.isInfinite(scale)) {
          return Optional.empty();
        }
        // the range the u8 holds, which the model clips x to; the per-token i8 step then
        // stands for the u8 one
        Value x = qx.get().x();
        Value lo = cx.scalar(RewriteContext.shortestF32(scale * (0 - zeroPoint)), ElementType.F32);
        Value hi = cx.scalar(RewriteContext.shortestF32(scale * (255 - zeroPoint)), ElementType.F32);
        Value clipped = cx.add(new Binary(BinaryKind.MIN, cx.add(new Binary(BinaryKind.MAX, x, lo)), hi));
        Value[] qs = addTwo(cx, new QuantOp.DynamicQuantize(clipped, ElementType.I8, "row"));
        return Replacement.op(new QuantOp.QMatMul(qs[0], wq, qs[1], dw.get().scale()));
      });

  // dq(q(x, s, 128), s, 128) with u8 zero points 128 -> dq(q(x, s, 0), s, 0) in i8, 128 lower:
  //   both clamp round(x / s) to [-128, 127], so the numbers are the same (quantize_static's
  //   symmetric activations), and the chip has i8 (the i8 quantize_linear lowers with zero
  //   point 0 only, hence 128)
  public static final RewriteRule U8_SYMMETRIC_PAIR = RewriteRule.of("u8-symmetric-pair",
      Set.of("dequantize_linear"), (n, cx) -> {
        QuantOp.DequantizeLinear dq = (QuantOp.DequantizeLinear) n.op();
        Optional<QuantOp.QuantizeLinear> q = def(dq.x(), QuantOp.QuantizeLinear.class);
        Optional<Tensor> zp = cx.constant(dq.zeroPoint());
        if (q.isEmpty() || dq.x().type().elementType() != ElementType.U8 || zp.isEmpty()
            || zp.get().size() != 1 || zp.get().get(0) != 128
            || !sameScalar(cx, q.get().zeroPoint(), dq.zeroPoint())
            || !sameScalar(cx, q.get().scale(), dq.scale())) {
          return Optional.empty();
        }
        Value zero = cx.add(new SourceOp.Constant(signed(zp.get())));
        Value qi = cx.add(new QuantOp.QuantizeLinear(q.get().x(), q.get().scale(), zero,
            q.get().axis()));
        return Replacement.op(new QuantOp.DequantizeLinear(qi, dq.scale(), zero, dq.axis()));
      });

  // mul(cast(matmul_integer(aq, wq, azp, 0), f32), mul(as, sw)) with aq, as, azp = dynamic_quantize_linear(x)
  //   -> qmatmul(dynamic_quantize(x){i8, row}, wq, its scales, sw)
  public static final RewriteRule DYNAMIC_MATMUL_INTEGER = RewriteRule.of("dynamic-matmul-integer", Set.of("mul"),
      (n, cx) -> {
        Binary mul = (Binary) n.op();
        for (Value[] o : Patterns.orders(mul)) {
          Optional<ElementwiseOp.Cast> cast = def(o[0], ElementwiseOp.Cast.class);
          Optional<Binary> scales = Patterns.binary(o[1], BinaryKind.MUL);
          if (cast.isEmpty() || cast.get().to() != ElementType.F32 || scales.isEmpty()) {
            continue;
          }
          Optional<QuantOp.MatMulInteger> mi = def(cast.get().x(), QuantOp.MatMulInteger.class);
          if (mi.isEmpty() || mi.get().a().producer() == null
              || !(mi.get().a().producer().op() instanceof QuantOp.DynamicQuantizeLinear dql)) {
            continue;
          }
          Node dq = mi.get().a().producer();
          Value aScale = dq.results().get(1);
          Value wq = mi.get().b();
          if (mi.get().a() != dq.results().get(0) || mi.get().aZeroPoint() != dq.results().get(2)
              || wq.type().elementType() != ElementType.I8 || wq.type().rank() != 2 || !isConstant(wq)
              || !zero(cx, mi.get().bZeroPoint()) || mi.get().a().type().rank() < 2) {
            continue;
          }
          for (Value[] s : Patterns.orders(scales.get())) {
            if (s[0] == aScale && weightScale(cx, s[1], wq, 1)) {
              Value x = dql.x();
              QuantOp.DynamicQuantize dyn = new QuantOp.DynamicQuantize(x, ElementType.I8, "row");
              Value[] qs = addTwo(cx, dyn);
              return Replacement.op(new QuantOp.QMatMul(qs[0], wq, qs[1], s[1]));
            }
          }
        }
        return Optional.empty();
      });

  // dequantize_linear(gather(t, ids), s, zp) with t and zp u8 constants
  //   -> dequantize_linear(gather(t - 128, ids), s, zp - 128), both i8: the same q - zp, in a
  //   type the chip has, and the table still one byte a value
  public static final RewriteRule U8_TABLE = RewriteRule.of("u8-table", Set.of("dequantize_linear"),
      (n, cx) -> {
        QuantOp.DequantizeLinear dq = (QuantOp.DequantizeLinear) n.op();
        Optional<DataOp.Gather> g = def(dq.x(), DataOp.Gather.class);
        Optional<Tensor> zp = cx.constant(dq.zeroPoint());
        if (g.isEmpty() || zp.isEmpty() || dq.x().type().elementType() != ElementType.U8
            || !isConstant(g.get().data())) {
          return Optional.empty();
        }
        Value rows = cx.add(new DataOp.Gather(signed(cx, g.get().data()), g.get().indices(),
            g.get().axis()));
        return Replacement.op(new QuantOp.DequantizeLinear(rows, dq.scale(),
            cx.add(new SourceOp.Constant(signed(zp.get()))), dq.axis()));
      });

  /** A u8 constant or weight as i8 values 128 lower: one weight for every gather of it. */
  private static Value signed(RewriteContext cx, Value u8) {
    if (u8.producer().op() instanceof SourceOp.Constant c) {
      return cx.add(new SourceOp.Constant(signed(c.value())));
    }
    Weight w = cx.module().weights().get(((SourceOp.WeightRef) u8.producer().op()).name());
    String name = w.name() + ".i8";
    TensorType type = w.type().withElementType(ElementType.I8);
    if (!cx.module().weights().containsKey(name)) {
      Weight.Data data = w.data();
      if (!(data instanceof Weight.Data.ShapeOnly)) {
        ByteBuffer src = w.bytes();
        byte[] bytes = new byte[src.remaining()];
        src.get(bytes);
        for (int i = 0; i < bytes.length; i++) {
          // v - 128 in two's complement is v with its top bit flipped
          bytes[i] ^= (byte) 0x80;
        }
        data = new Weight.Data.Inline(bytes);
      }
      cx.module().addWeight(new Weight(name, type, data));
    }
    return cx.add(new SourceOp.WeightRef(name, type));
  }

  private static Tensor signed(Tensor u8) {
    long[] v = new long[u8.size()];
    for (int i = 0; i < v.length; i++) {
      v[i] = u8.getLong(i) - 128;
    }
    return Tensor.ofLongs(ElementType.I8, u8.shape(), v);
  }

  /** Adds a two-result op before the root; returns both results. */
  private static Value[] addTwo(RewriteContext cx, QuantOp.DynamicQuantize op) {
    Node p = cx.addNode(op);
    return new Value[] {p.results().get(0), p.results().get(1)};
  }

  private static final List<RewriteRule> RULES =
      List.of(QDQ_MATMUL, U8_SYMMETRIC_PAIR, U8_QDQ_MATMUL, DYNAMIC_MATMUL_INTEGER, U8_TABLE);

  @Override
  public String name() {
    return "fold-qdq";
  }

  @Override
  public String summary() {
    return "imported QDQ matmuls (i8, fp8, u8 activations) and DynamicQuantizeLinear + MatMulInteger onto "
        + "qmatmul (i8 weights of zero point 0), symmetric u8 pairs and gathered u8 tables to i8";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
