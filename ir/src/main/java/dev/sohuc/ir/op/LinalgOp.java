package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.List;

/** Matrix products. */
public sealed interface LinalgOp extends Op {

  /**
   * {@code %c = matmul %a, %b : tensor<?b x ?s x 384 x f32>}: numpy matmul; batch dims
   * broadcast, a rank-1 operand is a vector.
   */
  record MatMul(Value a, Value b) implements LinalgOp {
    @Override
    public String mnemonic() {
      return "matmul";
    }

    @Override
    public List<Value> operands() {
      return List.of(a, b);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      ElementType t = Shapes.sameElementType(operands(), "operands");
      if (!t.isFloat()) {
        throw new OpException("matmul takes float operands (use matmul_integer for integers), got " + t);
      }
      return List.of(new TensorType(matmulDims(a.type().dims(), b.type().dims()), t));
    }
  }

  /** Result dims of numpy matmul; shared with {@code matmul_integer}. */
  static List<Dim> matmulDims(List<Dim> a, List<Dim> b) {
    if (a.isEmpty() || b.isEmpty()) {
      throw new OpException("matmul operands must have rank 1 or more");
    }
    List<Dim> aa = a.size() == 1 ? List.of(Dim.of(1), a.get(0)) : a;
    List<Dim> bb = b.size() == 1 ? List.of(b.get(0), Dim.of(1)) : b;
    Dim k1 = aa.get(aa.size() - 1);
    Dim k2 = bb.get(bb.size() - 2);
    Shapes.requireSameDim(k1, k2, "contracted dims");
    List<Dim> batch = Shapes.broadcast(aa.subList(0, aa.size() - 2), bb.subList(0, bb.size() - 2));
    List<Dim> out = new ArrayList<>(batch);
    if (a.size() > 1) {
      out.add(aa.get(aa.size() - 2));
    }
    if (b.size() > 1) {
      out.add(bb.get(bb.size() - 1));
    }
    return out;
  }

  /**
   * {@code %y = gemm %a, %b, %c {alpha = 1.0, beta = 1.0, trans_a = false, trans_b = true}}:
   * {@code alpha * op(a) @ op(b) + beta * c} on matrices, {@code c} optional and broadcast.
   */
  record Gemm(Value a, Value b, Value c, double alpha, double beta, boolean transA, boolean transB)
      implements LinalgOp {
    @Override
    public String mnemonic() {
      return "gemm";
    }

    @Override
    public List<Value> operands() {
      return OpRegistry.present(a, b, c);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(
          new Attr.Named("alpha", new Attr.Float(alpha)),
          new Attr.Named("beta", new Attr.Float(beta)),
          new Attr.Named("trans_a", new Attr.Bool(transA)),
          new Attr.Named("trans_b", new Attr.Bool(transB)));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      ElementType t = Shapes.sameElementType(operands(), "operands");
      Shapes.requireFloat(a, "a");
      Shapes.requireRank(a, "a", 2);
      Shapes.requireRank(b, "b", 2);
      Dim m = a.type().dim(transA ? 1 : 0);
      Dim k1 = a.type().dim(transA ? 0 : 1);
      Dim k2 = b.type().dim(transB ? 1 : 0);
      Dim n = b.type().dim(transB ? 0 : 1);
      Shapes.requireSameDim(k1, k2, "contracted dims");
      List<Dim> out = List.of(m, n);
      if (c != null && !Shapes.broadcast(out, c.type().dims()).equals(out)) {
        throw new OpException("c of shape " + Shapes.dimsText(c.type().dims())
            + " does not broadcast to " + Shapes.dimsText(out));
      }
      return List.of(new TensorType(out, t));
    }
  }

  static void register(OpRegistry.Registrar r) {
    r.op("matmul", 2, "numpy-style batched matrix product", (ops, a) -> new MatMul(ops.get(0), ops.get(1)));
    r.op("gemm", 2, 3, "alpha * op(a) @ op(b) + beta * c", (ops, a) -> new Gemm(
        ops.get(0), ops.get(1), OpRegistry.optional(ops, 2),
        a.getFloat("alpha", 1.0), a.getFloat("beta", 1.0),
        a.getBool("trans_a", false), a.getBool("trans_b", false)));
  }
}
