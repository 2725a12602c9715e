package dev.sohuc.passes.tp;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.ElementType;
import java.util.List;

/**
 * Tensor-parallel sums in the activation type, as serving stacks run them: an f32
 * {@code all_reduce} of a {@code qmatmul}'s partial sum becomes {@code cast bf16}, an
 * {@code all_reduce} of bf16 (the chips' partials added in f32, rounded once) and a
 * {@code cast f32} for the residual stream. Half the bytes cross the interconnect; the partial is
 * rounded to bf16 on each chip before the sum (an error of about 2^-9 of each partial, the
 * precision the layer's bf16 or fp8 inputs already have). Sums of layers kept in f32 (a plain
 * {@code matmul}) stay f32.
 */
public final class AllReducePrecision {
  private AllReducePrecision() {}

  /** Rewrites every f32 all_reduce of a qmatmul result in {@code f}; returns how many. */
  public static int reduceInBf16(Function f) {
    int count = 0;
    for (Node n : List.copyOf(f.body())) {
      if (!(n.op() instanceof TransformerOp.AllReduce a)
          || a.x().type().elementType() != ElementType.F32 || a.x().producer() == null
          || !(a.x().producer().op() instanceof QuantOp.QMatMul)) {
        continue;
      }
      // the bf16 sum takes the old sum's name: the old node goes first, so the name is free
      String name = n.result().name();
      int at = f.body().indexOf(n);
      f.body().remove(n);
      FunctionBuilder b = new FunctionBuilder(f);
      b.insertBefore(at < f.body().size() ? f.body().get(at) : null);
      Value narrow = b.add(new ElementwiseOp.Cast(a.x(), ElementType.BF16), n.location(),
          a.x().name() + ".bf16");
      Value sum = b.add(new TransformerOp.AllReduce(narrow, a.chips()), n.location(), name);
      Value wide = b.add(new ElementwiseOp.Cast(sum, ElementType.F32), n.location(),
          name + ".f32");
      f.replaceAllUses(n.result(), wide);
      count++;
    }
    return count;
  }
}
