package dev.sohuc.ir.interp;

import static dev.sohuc.ir.interp.Harness.assertTensor;
import static dev.sohuc.ir.interp.Harness.f32;
import static dev.sohuc.ir.interp.Harness.i64;
import static dev.sohuc.ir.interp.Harness.run;
import static dev.sohuc.ir.interp.Harness.shape;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.ReductionOp.ReduceKind;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;

/** Symbol binding, result checking, observers and every error path with its message. */
class InterpreterRunTest {
  private static final Dim SEQ = Dim.symbol("seq");

  /** {@code @main(%x: tensor<?seq x 2 x f32>)}: row sums plus positions 0..?seq-1. */
  private static Function rowSumsPlusPositions() {
    Value x = Value.argument("x", new TensorType(List.of(SEQ, Dim.of(2)), ElementType.F32));
    Function f = new Function("main", List.of(x));
    FunctionBuilder b = new FunctionBuilder(f);
    Value sums = b.add(new ReductionOp.Reduce(ReduceKind.SUM, x, List.of(1L), false), Harness.LOC, "sums");
    Value pos = b.add(new SourceOp.Range(0, SEQ, 1, ElementType.F32), Harness.LOC, "pos");
    Value out = b.add(new ElementwiseOp.Binary(BinaryKind.ADD, sums, pos), Harness.LOC, "out");
    f.setOutputs(List.of(new Function.Output("out", out)));
    return f;
  }

  @Test
  void oneFunctionServesSeveralSequenceLengths() {
    Interpreter interp = new Interpreter(new Module("m"));
    Function f = rowSumsPlusPositions();
    Map<String, Tensor> three = interp.run(f, List.of(f32(shape(3, 2), 1, 1, 2, 2, 3, 3)));
    assertTensor(three.get("out"), ElementType.F32, shape(3), 2, 5, 8);
    Map<String, Tensor> five = interp.run(f, List.of(f32(shape(5, 2), 0, 0, 0, 0, 0, 0, 0, 0, 1, 0)));
    assertTensor(five.get("out"), ElementType.F32, shape(5), 0, 1, 2, 3, 5);
    assertEquals(Map.of("seq", 5L), Interpreter.bindSymbols(f, List.of(Tensor.zeros(ElementType.F32, 5, 2))));
  }

  @Test
  void observerSeesEveryValueInOrder() {
    Function f = rowSumsPlusPositions();
    List<String> seen = new ArrayList<>();
    new Interpreter(new Module("m")).run(f, List.of(Tensor.zeros(ElementType.F32, 2, 2)),
        (v, t) -> seen.add(v.name() + java.util.Arrays.toString(t.shape())));
    assertEquals(List.of("x[2, 2]", "sums[2]", "pos[2]", "out[2]"), seen);
    Map<Value, Tensor> all = new Interpreter(new Module("m")).runAll(f, List.of(Tensor.zeros(ElementType.F32, 2, 2)));
    assertEquals(4, all.size());
  }

  private static IrException fails(Runnable r) {
    return assertThrows(IrException.class, r::run);
  }

  @Test
  void wrongInputCount() {
    Function f = rowSumsPlusPositions();
    IrException e = fails(() -> new Interpreter(new Module("m")).run(f, List.of()));
    assertEquals("@main takes 1 inputs ['x'], got 0", e.getMessage());
  }

  @Test
  void wrongInputTypeAndRank() {
    Function f = rowSumsPlusPositions();
    Interpreter interp = new Interpreter(new Module("m"));
    assertEquals("input 'x' must be f32 (tensor<?seq x 2 x f32>), got i64",
        fails(() -> interp.run(f, List.of(Tensor.zeros(ElementType.I64, 3, 2)))).getMessage());
    assertEquals("input 'x' must have rank 2 (tensor<?seq x 2 x f32>), got shape [6]",
        fails(() -> interp.run(f, List.of(Tensor.zeros(ElementType.F32, 6)))).getMessage());
    assertEquals("input 'x' dim 1 is 3 but its type tensor<?seq x 2 x f32> says 2",
        fails(() -> interp.run(f, List.of(Tensor.zeros(ElementType.F32, 2, 3)))).getMessage());
  }

  @Test
  void contradictoryBindingsNameBothInputs() {
    TensorType t = new TensorType(List.of(Dim.of(1), SEQ), ElementType.I64);
    Value ids = Value.argument("input_ids", t);
    Value mask = Value.argument("attention_mask", t);
    Function f = new Function("main", List.of(ids, mask));
    Value sum = new FunctionBuilder(f).add(new ElementwiseOp.Binary(BinaryKind.ADD, ids, mask), Harness.LOC);
    f.setOutputs(List.of(new Function.Output("sum", sum)));
    IrException e = fails(() -> new Interpreter(new Module("m")).run(f,
        List.of(Tensor.zeros(ElementType.I64, 1, 128), Tensor.zeros(ElementType.I64, 1, 37))));
    assertEquals("input 'attention_mask' dim 1 is 37 but ?seq is already 128 (from input 'input_ids' dim 1)",
        e.getMessage());
  }

  @Test
  void compoundDimsAreCheckedAfterBinding() {
    Dim past = Dim.symbol("past");
    Value cache = Value.argument("cache", new TensorType(List.of(past), ElementType.F32));
    Value cur = Value.argument("cur", new TensorType(List.of(SEQ), ElementType.F32));
    Value all = Value.argument("all", new TensorType(List.of(past.plus(SEQ)), ElementType.F32));
    Function f = new Function("main", List.of(cache, cur, all));
    f.setOutputs(List.of(new Function.Output("all", all)));
    Interpreter interp = new Interpreter(new Module("m"));
    interp.run(f, List.of(Tensor.zeros(ElementType.F32, 2), Tensor.zeros(ElementType.F32, 1), Tensor.zeros(ElementType.F32, 3)));
    assertEquals("input 'all' dim 0 is 4 but ?past+?seq is 3",
        fails(() -> interp.run(f, List.of(Tensor.zeros(ElementType.F32, 2), Tensor.zeros(ElementType.F32, 1),
            Tensor.zeros(ElementType.F32, 4)))).getMessage());
    Value lone = Value.argument("lone", new TensorType(List.of(Dim.symbol("a").plus(Dim.symbol("b"))), ElementType.F32));
    Function g = new Function("g", List.of(lone));
    g.setOutputs(List.of(new Function.Output("lone", lone)));
    assertEquals("input 'lone' dim 0 is ?a+?b, whose symbols no input binds on its own",
        fails(() -> interp.run(g, List.of(Tensor.zeros(ElementType.F32, 3)))).getMessage());
  }

  @Test
  void wrongStaticShapeAnalysisIsCaught() {
    Value x = Value.argument("x", TensorType.of(ElementType.F32, 2, 3));
    Function f = new Function("main", List.of(x));
    // a transpose whose declared result type wrongly keeps the input shape
    Node bad = new Node(new DataOp.Transpose(x, List.of(1L, 0L)), List.of("t"),
        List.of(TensorType.of(ElementType.F32, 2, 3)), Harness.LOC);
    f.body().add(bad);
    f.setOutputs(List.of(new Function.Output("t", bad.result())));
    IrException e = fails(() -> new Interpreter(new Module("m")).run(f, List.of(Tensor.zeros(ElementType.F32, 2, 3))));
    assertEquals("'transpose' (%t, at \"test\"): computed f32 [3, 2] for %t, but its type tensor<2 x 3 x f32>"
        + " gives f32 [2, 3] under {}", e.getMessage());
  }

  @Test
  void gatherIndexOutOfRangeNamesTheNode() {
    IrException e = fails(() -> run(v -> new DataOp.Gather(v.get(0), v.get(1), 0),
        f32(shape(3), 1, 2, 3), i64(shape(2), 0, 3)));
    assertEquals("'gather' (%r, at \"test\"): index 3 is out of range for a dim of size 3", e.getMessage());
    IrException neg = fails(() -> run(v -> new DataOp.Gather(v.get(0), v.get(1), 0),
        f32(shape(3), 1, 2, 3), i64(shape(1), -4)));
    assertEquals("'gather' (%r, at \"test\"): index -4 is out of range for a dim of size 3", neg.getMessage());
    IrException ge = fails(() -> run(v -> new DataOp.GatherElements(v.get(0), v.get(1), 0),
        f32(shape(2), 1, 2), i64(shape(1), 2)));
    assertEquals("'gather_elements' (%r, at \"test\"): index 2 is out of range for a dim of size 2", ge.getMessage());
    IrException sc = fails(() -> run(v -> new DataOp.ScatterNd(v.get(0), v.get(1), v.get(2), DataOp.ScatterReduction.NONE),
        f32(shape(2), 1, 2), i64(shape(1, 1), 5), f32(shape(1), 0)));
    assertEquals("'scatter_nd' (%r, at \"test\"): index 5 is out of range for a dim of size 2", sc.getMessage());
  }

  @Test
  void embeddingIdOutOfRange() {
    Tensor table = f32(shape(3, 1), 0, 1, 2);
    IrException e = fails(() -> run(v -> new TransformerOp.Embedding(v.get(0), v.get(1)), table, i64(shape(2), 1, 3)));
    assertEquals("'embedding' (%r, at \"test\"): token id 3 (position 1) is out of range for a table of 3 rows",
        e.getMessage());
    IrException neg = fails(() -> run(v -> new TransformerOp.Embedding(v.get(0), v.get(1)), table, i64(shape(1), -1)));
    assertEquals("'embedding' (%r, at \"test\"): token id -1 (position 0) is out of range for a table of 3 rows",
        neg.getMessage());
  }

  @Test
  void tooLargeShapeIsAnErrorNotOutOfMemory() {
    IrException e = fails(() -> run(v -> new SourceOp.Fill(List.of(Dim.of(100_000), Dim.of(100_000)), 1, ElementType.F32)));
    assertEquals("'fill' (%r, at \"test\"): shape [100000, 100000] has more than 2147483639 elements", e.getMessage());
    IrException x = fails(() -> run(v -> new DataOp.Expand(v.get(0), List.of(Dim.of(1 << 20), Dim.of(1 << 12))),
        f32(shape(1), 1)));
    assertEquals("'expand' (%r, at \"test\"): shape [1048576, 4096] has more than 2147483639 elements", x.getMessage());
  }

  @Test
  void integerDivisionByZero() {
    IrException e = fails(() -> run(v -> new ElementwiseOp.Binary(BinaryKind.DIV, v.get(0), v.get(1)),
        i64(shape(1), 1), i64(shape(1), 0)));
    assertEquals("'div' (%r, at \"test\"): integer division by zero", e.getMessage());
  }

  @Test
  void missingWeight() {
    TensorType type = TensorType.of(ElementType.F32, 2);
    IrException e = fails(() -> Harness.runAll(new Module("m"), v -> new SourceOp.WeightRef("w", type)));
    assertEquals("'weight' (%r, at \"test\"): no weight @w in module @m", e.getMessage());
  }
}
