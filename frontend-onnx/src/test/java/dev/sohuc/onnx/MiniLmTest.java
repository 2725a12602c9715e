package dev.sohuc.onnx;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** all-MiniLM-L6-v2 (6-layer BERT, opset 14) against ONNX Runtime. */
class MiniLmTest {

  @Test
  void importsSymbolicAndVerifies() throws Exception {
    Module m = OnnxImporter.importModel(OrtSupport.miniLm(), ImportOptions.defaults());
    new Verifier().verify(m);
    assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"),
        m.main().arguments().stream().map(a -> a.name()).toList());
    assertEquals("tensor<?batch x ?batch_1 x i64>", m.main().arguments().get(0).type().toString());
    assertEquals("tensor<?batch x ?batch_1 x 384 x f32>", m.main().outputs().get(0).value().type().toString());
    for (Node n : m.main().body()) {
      assertTrue(n.location().isKnown(), () -> "no location on " + n.describe());
      assertFalse(n.op() instanceof DataOp.Shape, () -> "shape subgraph left in the IR: " + n.describe());
    }
    assertTrue(m.weights().size() > 90, "initializers become weights");
  }

  @ParameterizedTest
  @ValueSource(ints = {128, 37})
  void matchesOnnxRuntimeWithPadding(int seq) throws Exception {
    Module m = OnnxImporter.importModel(OrtSupport.miniLm(), new ImportOptions(
        Map.of("input_ids", List.of(1L, (long) seq)), Map.of()));
    Random rnd = new Random(seq);
    long[] ids = new long[seq];
    long[] mask = new long[seq];
    int padded = seq / 4;
    for (int i = 0; i < seq; i++) {
      ids[i] = i == 0 ? 101 : i < seq - padded ? 1000 + rnd.nextInt(20000) : 0;
      mask[i] = i < seq - padded ? 1 : 0;
    }
    long[] shape = {1, seq};
    List<Tensor> inputs = List.of(Tensor.ofLongs(ElementType.I64, shape, ids),
        Tensor.ofLongs(ElementType.I64, shape, mask), Tensor.zeros(ElementType.I64, shape));
    Map<String, Tensor> ours = new Interpreter(m).run(inputs);
    Map<String, Tensor> ort = OrtSupport.run(OrtSupport.miniLm(),
        List.of("input_ids", "attention_mask", "token_type_ids"), inputs);
    String last = m.main().outputs().get(0).name();
    OrtSupport.assertClose("last_hidden_state (" + last + ") at seq " + seq, ort.get(last), ours.get(last), 1e-4);
  }
}
