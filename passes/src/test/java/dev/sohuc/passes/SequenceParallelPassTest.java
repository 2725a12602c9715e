package dev.sohuc.passes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.passes.quant.QuantMode;
import dev.sohuc.passes.quant.QuantOptions;
import dev.sohuc.passes.quant.Quantizer;
import dev.sohuc.passes.tp.SequenceParallelPass;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * sequence-parallel: the chips' programs with their rows split between the sums, run together
 * by the multi-shard runner (ShardTensorParallelPassTest.runSharded), compute exactly what the
 * all_reduce programs compute: the same sums in the same order, and norms that read one row at
 * a time.
 */
class SequenceParallelPassTest {

  /** tiny-llama (2 layers) sharded over {@code chips}, quantized, rows split when {@code sp}. */
  static List<Module> shards(HfOptions options, int chips, QuantMode mode, boolean sp) {
    List<Module> out = new ArrayList<>();
    for (int r = 0; r < chips; r++) {
      Module m = ShardTensorParallelPassTest.shard(ShardTensorParallelPassTest.TINY, options,
          chips, r);
      if (mode != QuantMode.NONE) {
        Quantizer.quantize(m, QuantOptions.of(mode));
      }
      if (sp) {
        new PassManager(List.of(new SequenceParallelPass(chips, r))).run(m);
      }
      out.add(m);
    }
    return out;
  }

  static long count(Module m, Class<? extends Op> kind) {
    return m.main().body().stream().filter(n -> kind.isInstance(n.op())).count();
  }

  /** Runs both sets of shards on the same inputs and checks every output bit for bit. */
  static void assertSameOutputs(List<Module> allReduce, List<Module> split, long seed,
      Map<String, Long> dims) {
    List<Tensor> inputs = MeaningCheck.randomInputs(allReduce.get(0).main(), seed, dims);
    List<List<Tensor>> each = new ArrayList<>();
    allReduce.forEach(m -> each.add(inputs));
    List<Map<String, Tensor>> want = ShardTensorParallelPassTest.runSharded(allReduce, each);
    List<Map<String, Tensor>> got = ShardTensorParallelPassTest.runSharded(split, each);
    for (int c = 0; c < want.size(); c++) {
      assertEquals(want.get(c).keySet(), got.get(c).keySet());
      for (String name : want.get(c).keySet()) {
        Tensor w = want.get(c).get(name);
        Tensor g = got.get(c).get(name);
        assertEquals(w.type(), g.type(), name);
        for (int i = 0; i < w.size(); i++) {
          assertEquals(w.get(i), g.get(i), 0.0, name + " of chip " + c + " at " + i);
        }
      }
    }
  }

  @Test
  void splitRowsComputeWhatAllReducesComputeInF32AndBf16() {
    HfOptions options = HfOptions.prefill().withDimBindings(Map.of("batch", 1L, "seq", 6L));
    for (QuantMode mode : List.of(QuantMode.NONE, QuantMode.BF16)) {
      List<Module> sp = shards(options, 2, mode, true);
      Module chip1 = sp.get(1);
      // o_proj and down_proj of 2 layers: every sum is scattered, none left whole
      assertEquals(0, count(chip1, TransformerOp.AllReduce.class), mode + ": all_reduce");
      assertEquals(4, count(chip1, TransformerOp.ReduceScatter.class), mode + ": reduce_scatter");
      // the normed rows gathered for each projection group after a sum (3) and for lm_head,
      // and the logits' vocabulary columns
      assertEquals(5, count(chip1, TransformerOp.AllGather.class), mode + ": all_gather");
      for (Node n : chip1.main().body()) {
        if (n.op() instanceof TransformerOp.ReduceScatter r) {
          assertEquals(1, r.rank());
          assertEquals("tensor<1 x 3 x 64 x " + r.x().type().elementType() + ">",
              n.result().type().toString());
        }
      }
      // the first norm reads the embeddings, on every row; the others, 3 rows of 6
      List<String> norms = chip1.main().body().stream()
          .filter(n -> n.op() instanceof TransformerOp.RmsNorm)
          .map(n -> n.result().type().toString()).toList();
      assertEquals(List.of("tensor<1 x 6 x 64 x f32>", "tensor<1 x 3 x 64 x f32>",
          "tensor<1 x 3 x 64 x f32>", "tensor<1 x 3 x 64 x f32>", "tensor<1 x 3 x 64 x f32>"),
          norms, mode.toString());
      assertSameOutputs(shards(options, 2, mode, false), sp, 51, Map.of());
    }
  }

  /**
   * fp8: each row is quantized on the chip that holds it (its own scale), and the fp8 rows and
   * their f32 scales are gathered, a byte an element: the same numbers as quantizing the
   * gathered f32 rows.
   */
  @Test
  void fp8RowsAreQuantizedBeforeTheGather() {
    HfOptions options = HfOptions.prefill().withDimBindings(Map.of("batch", 1L, "seq", 6L));
    List<Module> sp = shards(options, 2, QuantMode.FP8, true);
    List<String> gathered = sp.get(0).main().body().stream()
        .filter(n -> n.op() instanceof TransformerOp.AllGather)
        .map(n -> n.op().operands().get(0).type().elementType().toString()).toList();
    assertTrue(gathered.contains("f8e4m3"), gathered.toString());
    assertEquals(0, count(sp.get(0), TransformerOp.AllReduce.class));
    assertSameOutputs(shards(options, 2, QuantMode.FP8, false), sp, 54, Map.of());
  }

  /** A symbolic prompt split when the frontend says it is a multiple of the chips. */
  @Test
  void symbolicRowsTakenAsMultiplesSplit() {
    HfOptions options = HfOptions.prefill().withDimBindings(Map.of("batch", 1L))
        .withDimMultiples(Map.of("seq", 2L));
    List<Module> sp = shards(options, 2, QuantMode.BF16, true);
    Node scatter = sp.get(0).main().body().stream()
        .filter(n -> n.op() instanceof TransformerOp.ReduceScatter).findFirst().orElseThrow();
    assertEquals("tensor<1 x ?\"seq/2\" x 64 x bf16>", scatter.result().type().toString());
    assertSameOutputs(shards(options, 2, QuantMode.BF16, false), sp, 52, Map.of("seq/2", 4L));
  }

  /**
   * A serving step in two micro-batches: each gather, with the norm that makes its rows, is
   * issued above the other micro-batch's projection before it, the prompt's last row comes from
   * the last chip's block alone, and the outputs stay those of the all_reduce programs.
   */
  @Test
  void gathersIssuedEarlierInAServingStepKeepItsOutputs() {
    HfOptions options = HfOptions.step().withMicroBatches(2)
        .withDimBindings(Map.of("seq", 4L, "batch", 2L, "past", 16L));
    List<Module> sp = new ArrayList<>();
    for (int r = 0; r < 2; r++) {
      Module m = ShardTensorParallelPassTest.shard(ShardTensorParallelPassTest.TINY, options, 2,
          r);
      Quantizer.quantize(m, QuantOptions.of(QuantMode.BF16));
      PassResult result = new SequenceParallelPass(2, r).run(m);
      assertTrue(result.count("all_gather issued a matmul earlier") > 0, result.toString());
      // the prompt's last position: one row from each chip, not the micro-batch's rows
      assertEquals(1, result.count("all_gather of the blocks' last rows"), result.toString());
      Node lastRows = m.main().body().stream()
          .filter(n -> n.result().name().startsWith("prompt_last_hidden.all_gather")).findFirst().orElseThrow();
      assertEquals("tensor<1 x 2 x 64 x f32>", lastRows.result().type().toString());
      // the second micro-batch's q/k/v gather crosses the link beside the first's attention
      List<Node> body = m.main().body();
      boolean besideAttention = false;
      for (int i = 0; i < body.size(); i++) {
        // the rows' gathers (the logits' gather of columns ends the step)
        if (body.get(i).op() instanceof TransformerOp.AllGather a && a.axis() != 2) {
          Node next = body.subList(i + 1, body.size()).stream()
              .filter(n -> n.op() instanceof TransformerOp.Attention
                  || n.op() instanceof QuantOp.QMatMul)
              .findFirst().orElseThrow();
          besideAttention |= next.op() instanceof TransformerOp.Attention;
        }
      }
      assertTrue(besideAttention, "no all_gather issued above an attention");
      sp.add(m);
    }
    assertSameOutputs(shards(options, 2, QuantMode.BF16, false), sp, 55, Map.of());
  }

  /** A decode step's rows are its batch: axis 0, one row a chip here. */
  @Test
  void decodeBatchRowsSplit() {
    HfOptions options = HfOptions.decode().withDimBindings(Map.of("batch", 2L, "seq", 1L));
    List<Module> sp = shards(options, 2, QuantMode.BF16, true);
    assertEquals(4, count(sp.get(0), TransformerOp.ReduceScatter.class));
    assertSameOutputs(shards(options, 2, QuantMode.BF16, false), sp, 53, Map.of("past", 5L));
  }

  @Test
  void rowsThatDoNotSplitKeepTheirAllReduce() {
    HfOptions options = HfOptions.prefill().withDimBindings(Map.of("batch", 1L, "seq", 5L));
    Module m = shards(options, 2, QuantMode.BF16, true).get(0);
    assertEquals(4, count(m, TransformerOp.AllReduce.class));
    assertEquals(0, count(m, TransformerOp.ReduceScatter.class));
    assertEquals(1, count(m, TransformerOp.AllGather.class), "the logits' columns' only");
    // symbolic rows the types do not say divide stay whole too
    Module symbolic = shards(HfOptions.prefill(), 2, QuantMode.BF16, true).get(0);
    assertEquals(4, count(symbolic, TransformerOp.AllReduce.class));
  }
}
