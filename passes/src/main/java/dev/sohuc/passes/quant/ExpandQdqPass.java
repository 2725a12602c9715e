package dev.sohuc.passes.quant;

import static dev.sohuc.passes.rewrite.Patterns.def;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp.Binary;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.passes.RewritePass;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.RewriteContext;
import dev.sohuc.passes.rewrite.RewriteRule;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * {@code expand-qdq}: the quantize-dequantize pairs that {@code fold-qdq} leaves standing and
 * the chip's quantize_linear cannot take, those with a zero point (onnxruntime's
 * {@code quantize_static} puts u8 pairs of any zero point on every activation it quantizes:
 * before an Add, a Softmax, a Gather), become the f32 arithmetic that gives the same numbers:
 *
 * <pre>dq(q(x, s, zp), s, zp) = s * round(clip(x / s, qmin - zp, qmax - zp))</pre>
 *
 * with {@code round} half to even done as {@code (v + 1.5 * 2^23) - 1.5 * 2^23} (f32 adds round
 * to nearest even, and at that magnitude the spacing of f32 is 1; exact for the clipped range).
 * Clipping before rounding equals rounding before it (the bounds are integers), so this is
 * ONNX Runtime's division, clamp and conversion, step for step. Per-tensor pairs of u8 or i8
 * with one f32 scale; i8 pairs of zero point 0 stay pairs (the chip quantizes those itself), as
 * do per-channel ones. A NaN stays NaN here where the pair would give 0.
 */
public final class ExpandQdqPass extends RewritePass {
  /** 1.5 * 2^23: adding it leaves a float of magnitude below 2^22 rounded to an integer. */
  private static final double ROUNDING_BIAS = 12582912.0;

  public static final RewriteRule QDQ_PAIR = RewriteRule.of("qdq-pair",
      Set.of("dequantize_linear"), (n, cx) -> {
        QuantOp.DequantizeLinear dq = (QuantOp.DequantizeLinear) n.op();
        Optional<QuantOp.QuantizeLinear> q = def(dq.x(), QuantOp.QuantizeLinear.class);
        ElementType type = dq.x().type().elementType();
        Optional<Tensor> zp = cx.constant(dq.zeroPoint());
        Optional<Tensor> scale = cx.constant(dq.scale());
        if (q.isEmpty() || (type != ElementType.U8 && type != ElementType.I8)
            || q.get().x().type().elementType() != ElementType.F32
            || dq.scale().type().elementType() != ElementType.F32
            || zp.isEmpty() || zp.get().size() != 1 || scale.isEmpty() || scale.get().size() != 1
            || (type == ElementType.I8 && zp.get().get(0) == 0)
            || !FoldQdqPass.sameScalar(cx, q.get().zeroPoint(), dq.zeroPoint())
            || !FoldQdqPass.sameScalar(cx, q.get().scale(), dq.scale())) {
          return Optional.empty();
        }
        double s = scale.get().get(0);
        if (!(s > 0) || Double.isInfinite(s)) {
          return Optional.empty();
        }
        long z = zp.get().getLong(0);
        long qmin = type == ElementType.U8 ? 0 : -128;
        long qmax = type == ElementType.U8 ? 255 : 127;
        Value sv = cx.scalar(s, ElementType.F32);
        Value v = cx.add(new Binary(BinaryKind.DIV, q.get().x(), sv));
        v = cx.add(new Binary(BinaryKind.MAX, v, cx.scalar(qmin - z, ElementType.F32)));
        v = cx.add(new Binary(BinaryKind.MIN, v, cx.scalar(qmax - z, ElementType.F32)));
        Value bias = cx.scalar(ROUNDING_BIAS, ElementType.F32);
        v = cx.add(new Binary(BinaryKind.SUB, cx.add(new Binary(BinaryKind.ADD, v, bias)), bias));
        return Replacement.op(new Binary(BinaryKind.MUL, v, sv));
      });

  private static final List<RewriteRule> RULES = List.of(QDQ_PAIR);

  @Override
  public String name() {
    return "expand-qdq";
  }

  @Override
  public String summary() {
    return "quantize-dequantize pairs with a zero point (u8 activations) as their exact f32 "
        + "arithmetic";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
