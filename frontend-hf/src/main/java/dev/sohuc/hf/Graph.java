package dev.sohuc.hf;

import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;

import java.util.List;

/**
 * The handful of graph idioms the model builders share (a linear layer, head split and merge),
 * each appended through the {@link FunctionBuilder} so that result types are inferred and
 * checked as the graph is built.
 */
final class Graph {
  final FunctionBuilder b;
  final Weights weights;

  Graph(FunctionBuilder b, Weights weights) {
    this.b = b;
    this.weights = weights;
  }

  Value add(Value x, Value y, Location loc, String hint) {
    return b.add(new ElementwiseOp.Binary(BinaryKind.ADD, x, y), loc, hint);
  }

  Value binary(BinaryKind kind, Value x, Value y, Location loc, String hint) {
    return b.add(new ElementwiseOp.Binary(kind, x, y), loc, hint);
  }

  Value scalar(double v, Location loc, String hint) {
    return b.add(new SourceOp.Constant(Tensor.scalar(ElementType.F32, v)), loc, hint);
  }

  Value transpose(Value x, List<Long> perm, Location loc, String hint) {
    return b.add(new DataOp.Transpose(x, perm), loc, hint);
  }

  Value reshape(Value x, List<Dim> shape, Location loc, String hint) {
    return b.add(new DataOp.Reshape(x, shape), loc, hint);
  }

  Value matmul(Value x, Value y, Location loc, String hint) {
    return b.add(new LinalgOp.MatMul(x, y), loc, hint);
  }

  /**
   * {@code x @ W^T + bias} for a PyTorch {@code nn.Linear} weight {@code [out, in]} (the
   * transpose is explicit, for passes to fold into the matmul's layout).
   */
  Value linear(Value x, String weight, String bias, long in, long out, Location loc, String hint) {
    Value w = weights.use(weight, List.of(out, in), loc);
    Value wt = transpose(w, List.of(1L, 0L), loc, hint + ".wT");
    Value y = matmul(x, wt, loc, hint);
    return bias == null ? y : add(y, weights.use(bias, List.of(out), loc), loc, hint);
  }

  /** {@code x @ W + bias} for a GPT-2 {@code Conv1D} weight, stored {@code [in, out]}. */
  Value conv1d(Value x, String weight, String bias, long in, long out, Location loc, String hint) {
    Value y = matmul(x, weights.use(weight, List.of(in, out), loc), loc, hint);
    return add(y, weights.use(bias, List.of(out), loc), loc, hint);
  }

  /** {@code [B, S, H*D] -> [B, H, S, D]}. */
  Value splitHeads(Value x, Dim batch, Dim seq, long heads, long headDim, Location loc, String hint) {
    Value r = reshape(x, List.of(batch, seq, Dim.of(heads), Dim.of(headDim)), loc, hint + ".bshd");
    return transpose(r, List.of(0L, 2L, 1L, 3L), loc, hint + ".bhsd");
  }

  /** {@code [B, H, S, D] -> [B, S, H*D]}. */
  Value mergeHeads(Value x, Dim batch, Dim seq, long heads, long headDim, Location loc, String hint) {
    Value t = transpose(x, List.of(0L, 2L, 1L, 3L), loc, hint + ".bshd");
    return reshape(t, List.of(batch, seq, Dim.of(heads * headDim)), loc, hint + ".merged");
  }

  /** Rows {@code [start, start+length)} of a table along axis 0 (positions of this step). */
  Value rows(Value table, Dim start, Dim length, Location loc, String hint) {
    return b.add(new DataOp.Slice(table, List.of(start), List.of(start.plus(length)), List.of(0L), List.of(1L)),
        loc, hint);
  }
}
