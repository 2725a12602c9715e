package dev.sohuc.passes.quant;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.ElementType;
import java.util.ArrayList;
import java.util.List;

/**
 * Attention in bf16 for a quantized model: every attention's f32 K and V are cast to bf16,
 * which makes the backend run {@code Q K^T} and {@code P V} as bf16 {@code mma}s (f32
 * accumulation, softmax in f32) instead of f32 ones at an eighth of the rate.
 */
final class Bf16Attention {
  private Bf16Attention() {}

  /** Rewrites {@code f} in place; returns the number of attentions now reading bf16 K and V. */
  static int apply(Function f) {
    FunctionBuilder b = new FunctionBuilder(f);
    int count = 0;
    for (Node n : List.copyOf(f.body())) {
      if (!(n.op() instanceof TransformerOp.Attention a)
          || a.k().type().elementType() != ElementType.F32) {
        continue;
      }
      b.insertBefore(n);
      List<Value> ops = new ArrayList<>(a.operands());
      for (int i = 1; i <= 2; i++) {
        Value kv = ops.get(i);
        ops.set(i, b.add(new ElementwiseOp.Cast(kv, ElementType.BF16), n.location(),
            kv.name() + ".bf16"));
      }
      n.setOp(a.withOperands(ops));
      count++;
    }
    b.insertBefore(null);
    return count;
  }
}
