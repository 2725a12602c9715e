package dev.sohuc.passes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.hf.HfImporter;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.hf.Safetensors;
import dev.sohuc.hf.TinyModel;
import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.passes.quant.QuantMode;
import dev.sohuc.passes.quant.QuantOptions;
import dev.sohuc.passes.quant.Quantizer;
import dev.sohuc.passes.tp.ShardTensorParallelPass;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * shard-tensor-parallel: the N per-chip programs, run together with every all_reduce summing
 * the chips' partials (the multi-shard reference runner below), give the unsharded logits and
 * KV cache.
 */
class ShardTensorParallelPassTest {
  static final Path TINY = findExample("tiny-llama");
  static final Path LLAMA_70B = findExample("llama-3-70b");

  static Path findExample(String name) {
    Path p = Path.of("").toAbsolutePath();
    while (p != null && !Files.isDirectory(p.resolve("examples").resolve(name))) {
      p = p.getParent();
    }
    return p.resolve("examples").resolve(name);
  }

  static Module fused(Path model, HfOptions options) {
    Module m = HfImporter.importModel(model, options);
    new PassManager(PassPipelines.defaultPipeline()).run(m);
    return m;
  }

  static Module shard(Path model, HfOptions options, int chips, int rank) {
    Module m = fused(model, options);
    new PassManager(List.of(new ShardTensorParallelPass(chips, rank))).run(m);
    return m;
  }

  @Test
  void prefillLogitsMatchOnTwoChipsKvHeadsSplit() {
    checkSharded(HfOptions.prefill(), 2, 11);
  }

  @Test
  void prefillLogitsMatchOnFourChipsKvHeadsReplicated() {
    checkSharded(HfOptions.prefill(), 4, 12);
  }

  @Test
  void decodeLogitsAndCacheMatchOnTwoAndFourChips() {
    checkSharded(HfOptions.decode(), 2, 13);
    checkSharded(HfOptions.decode(), 4, 14);
  }

  /**
   * Quantized to bf16 after sharding, each chip sums its o_proj and down_proj partials in bf16:
   * the two chips' logits match the unsharded bf16 model's within 1% of their magnitude (the
   * partials are rounded to bf16 before the sum, 2^-9 relative each, through 2 layers).
   */
  @Test
  void bf16ShardsSumInBf16AndMatchTheUnshardedBf16Model() {
    HfOptions options = HfOptions.prefill();
    Module full = fused(TINY, options);
    Quantizer.quantize(full, QuantOptions.of(QuantMode.BF16));
    List<Tensor> inputs = MeaningCheck.randomInputs(full.main(), 21, Map.of());
    Tensor expected = new Interpreter(full).run(inputs).get("logits");
    List<Module> shards = new ArrayList<>();
    for (int r = 0; r < 2; r++) {
      Module s = shard(TINY, options, 2, r);
      Quantizer.quantize(s, QuantOptions.of(QuantMode.BF16));
      List<TransformerOp.AllReduce> sums = s.main().body().stream()
          .filter(x -> x.op() instanceof TransformerOp.AllReduce)
          .map(x -> (TransformerOp.AllReduce) x.op()).toList();
      assertEquals(4, sums.size(), "o_proj and down_proj of 2 layers");
      sums.forEach(a -> assertEquals(ElementType.BF16, a.x().type().elementType()));
      shards.add(s);
    }
    List<Map<String, Tensor>> got = runSharded(shards, List.of(inputs, inputs));
    for (int r = 0; r < 2; r++) {
      Tensor logits = got.get(r).get("logits");
      double maxAbs = 0;
      double maxErr = 0;
      for (int i = 0; i < expected.size(); i++) {
        maxAbs = Math.max(maxAbs, Math.abs(expected.get(i)));
        maxErr = Math.max(maxErr, Math.abs(expected.get(i) - logits.get(i)));
      }
      System.out.println("bf16 all_reduce, chip " + r + ": max |logit error| " + maxErr
          + " of max |logit| " + maxAbs);
      assertTrue(maxAbs > 0.1 && maxErr < 0.01 * maxAbs, maxErr + " vs " + maxAbs);
    }
  }

  /** Heads of the tiny model: 4 query heads, 2 kv heads. */
  static long firstKv(int chips, int rank, long q, long kv) {
    return kv >= chips ? rank * (kv / chips) : (rank * (q / chips)) / (q / kv);
  }

  /**
   * Phi-3's fused projections (qkv_proj, gate_up_proj: each part's share of the rows kept, the
   * split after them rescaled) and Mixtral's experts (w1 and w3 column-parallel, w2
   * row-parallel, one sum per layer after the weighted experts are added up), on two chips (kv
   * heads split) and four (kv heads replicated).
   */
  @Test
  void fusedProjectionsAndExpertsShardAndMatch(@TempDir Path tmp) {
    for (String family : List.of("phi3", "mixtral")) {
      Path dir = TinyModel.of(family, 5).writeTo(tmp.resolve(family), Safetensors.Dtype.F32);
      checkSharded(dir, HfOptions.decode(), 2, 31);
      checkSharded(dir, HfOptions.prefill(), 4, 32);
    }
    // one sum per layer after attention and one after the experts (not one per expert)
    Path mixtral = tmp.resolve("mixtral");
    assertEquals(4, shard(mixtral, HfOptions.prefill(), 2, 0).main().body().stream()
        .filter(x -> x.op() instanceof TransformerOp.AllReduce).count());
  }

  /**
   * A row-parallel bias (an o_proj bias, as some checkpoints have) is added once, to the sum: the
   * partial meets the bias add, so the all_reduce comes before it. Two chips' outputs match the
   * unsharded attention block's.
   */
  @Test
  void aRowParallelBiasIsAddedAfterTheSum() {
    Module full = attentionWithOutputBias();
    List<Tensor> inputs = MeaningCheck.randomInputs(full.main(), 41, Map.of());
    Tensor expected = new Interpreter(full).run(inputs).get("y");
    List<Module> shards = new ArrayList<>();
    for (int r = 0; r < 2; r++) {
      Module s = attentionWithOutputBias();
      new PassManager(List.of(new ShardTensorParallelPass(2, r))).run(s);
      Node add = s.main().body().stream().filter(x -> x.op() instanceof ElementwiseOp.Binary).findFirst().orElseThrow();
      assertTrue(add.op().operands().get(0).producer().op() instanceof TransformerOp.AllReduce,
          "the bias is added to the sum");
      shards.add(s);
    }
    List<Map<String, Tensor>> got = runSharded(shards, List.of(inputs, inputs));
    for (int r = 0; r < 2; r++) {
      MeaningCheck.assertClose(expected, got.get(r).get("y"), "y of chip " + r);
    }
  }

  /** x [1, 6, 8] through q/k/v (2 heads of 4), causal attention, o_proj with a bias. */
  static Module attentionWithOutputBias() {
    Random rnd = new Random(3);
    Module m = new Module("attn_bias");
    Value x = Value.argument("x", TensorType.of(ElementType.F32, 1, 6, 8));
    Function f = new Function("main", List.of(x));
    m.functions().add(f);
    FunctionBuilder b = new FunctionBuilder(f);
    java.util.function.Function<String, Value> heads = proj -> {
      Value w = weight(m, b, "l.self_attn." + proj + ".weight", rnd, 8, 8);
      Value wt = b.add(new DataOp.Transpose(w, List.of(1L, 0L)),
          Location.UNKNOWN, proj + ".t");
      Value y = b.add(new LinalgOp.MatMul(x, wt),
          Location.UNKNOWN, proj);
      Value split = b.add(new DataOp.Reshape(y, dims(1, 6, 2, 4)),
          Location.UNKNOWN, proj + ".bshd");
      return b.add(new DataOp.Transpose(split, List.of(0L, 2L, 1L, 3L)),
          Location.UNKNOWN, proj + ".bhsd");
    };
    Value q = heads.apply("q_proj");
    Value k = heads.apply("k_proj");
    Value v = heads.apply("v_proj");
    Value a = b.add(new TransformerOp.Attention(q, k, v, null, 0.5, true, 0),
        Location.UNKNOWN, "attn");
    Value back = b.add(new DataOp.Transpose(a, List.of(0L, 2L, 1L, 3L)),
        Location.UNKNOWN, "attn.bshd");
    Value merged = b.add(new DataOp.Reshape(back, dims(1, 6, 8)),
        Location.UNKNOWN, "attn.merged");
    Value wo = weight(m, b, "l.self_attn.o_proj.weight", rnd, 8, 8);
    Value wot = b.add(new DataOp.Transpose(wo, List.of(1L, 0L)),
        Location.UNKNOWN, "o.t");
    Value o = b.add(new LinalgOp.MatMul(merged, wot),
        Location.UNKNOWN, "o");
    Value bias = weight(m, b, "l.self_attn.o_proj.bias", rnd, 8);
    Value y = b.add(new ElementwiseOp.Binary(
        ElementwiseOp.BinaryKind.ADD, o, bias), Location.UNKNOWN,
        "y");
    f.setOutputs(List.of(new Function.Output("y", y)));
    return m;
  }

  static List<Dim> dims(long... d) {
    return Arrays.stream(d).mapToObj(Dim::of).toList();
  }

  static Value weight(Module m, FunctionBuilder b, String name,
      Random rnd, long... shape) {
    float[] v = new float[(int) Arrays.stream(shape).reduce(1, (p, q) -> p * q)];
    for (int i = 0; i < v.length; i++) {
      v[i] = 0.3f * (float) rnd.nextGaussian();
    }
    Tensor t = Tensor.ofFloats(ElementType.F32, shape, v);
    m.addWeight(new Weight(name, t.type(), new Weight.Data.Inline(
        t.toBytes())));
    return b.add(new SourceOp.WeightRef(name, t.type()),
        Location.UNKNOWN, name);
  }

  @Test
  void modelsWithoutKnownProjectionsAreRejected(@TempDir Path tmp) {
    Path gpt2 = TinyModel.of("gpt2", 5).writeTo(tmp.resolve("gpt2"), Safetensors.Dtype.F32);
    Module m = fused(gpt2, HfOptions.prefill());
    var e = assertThrows(dev.sohuc.passes.tp.ShardException.class,
        () -> new ShardTensorParallelPass(2, 0).run(m));
    assertEquals("shard-tensor-parallel: found none of the projection weights it splits (q_proj, "
        + "k_proj, v_proj, gate_proj, up_proj, qkv_proj, gate_up_proj, w1, w3 as *.NAME.weight); "
        + "this model names its projections otherwise, so it cannot be sharded", e.getMessage());
  }

  void checkSharded(HfOptions options, int chips, long seed) {
    checkSharded(TINY, options, chips, seed);
  }

  /** A tiny model with 4 query heads and 2 kv heads, as every tiny family has. */
  void checkSharded(Path model, HfOptions options, int chips, long seed) {
    Module full = fused(model, options);
    List<Tensor> inputs = MeaningCheck.randomInputs(full.main(), seed, Map.of());
    System.out.println("shard-tensor-parallel meaning check, chips=" + chips + ": seed " + seed);
    Map<String, Tensor> expected = new Interpreter(full).run(inputs);
    List<Module> shards = new ArrayList<>();
    List<List<Tensor>> shardInputs = new ArrayList<>();
    long kvLocal = Math.max(1, 2 / chips);
    for (int r = 0; r < chips; r++) {
      Module s = shard(model, options, chips, r);
      shards.add(s);
      List<Tensor> in = new ArrayList<>();
      for (int i = 0; i < inputs.size(); i++) {
        Value arg = full.main().arguments().get(i);
        in.add(arg.name().startsWith("past_key_values.")
            ? heads(inputs.get(i), firstKv(chips, r, 4, 2), kvLocal) : inputs.get(i));
      }
      shardInputs.add(in);
    }
    List<Map<String, Tensor>> got = runSharded(shards, shardInputs);
    for (int r = 0; r < chips; r++) {
      Map<String, Tensor> out = got.get(r);
      assertEquals(expected.keySet(), out.keySet());
      MeaningCheck.assertClose(expected.get("logits"), out.get("logits"),
          "logits of chip " + r + " of " + chips);
      for (String name : expected.keySet()) {
        if (name.startsWith("present.")) {
          MeaningCheck.assertClose(heads(expected.get(name), firstKv(chips, r, 4, 2), kvLocal),
              out.get(name), name + " of chip " + r);
        }
      }
    }
  }

  /** Heads [first, first+count) of a [B, H, T, D] tensor. */
  static Tensor heads(Tensor t, long first, long count) {
    long[] s = t.shape();
    long[] ns = {s[0], count, s[2], s[3]};
    Tensor out = Tensor.zeros(t.type().elementType(), ns);
    int i = 0;
    for (long b = 0; b < s[0]; b++) {
      for (long h = first; h < first + count; h++) {
        for (long x = 0; x < s[2] * s[3]; x++) {
          out.set(i++, t.get((int) (((b * s[1] + h) * s[2]) * s[3] + x)));
        }
      }
    }
    return out;
  }

  /**
   * The multi-shard reference runner. Each chip's program is opened at its collectives
   * (all_reduce, reduce_scatter, all_gather): their results become extra inputs and their
   * operands extra outputs. Round j runs every chip with the collectives' results from round
   * j-1; the first j are exact after round j, so K collectives need K+1 rounds. Sums add the
   * chips' partials in chip order in f32 and round once, as the ISA does; a reduce_scatter keeps
   * chip c's block of the sum, an all_gather puts the chips' blocks one after another.
   */
  static List<Map<String, Tensor>> runSharded(List<Module> shards, List<List<Tensor>> inputs) {
    int n = shards.size();
    List<Function> open = new ArrayList<>();
    List<Node> collectives = null;
    for (Module m : shards) {
      Function f = m.main();
      List<Node> cs = f.body().stream().filter(x -> isCollective(x.op())).toList();
      assertTrue(collectives == null || collectives.size() == cs.size(),
          "every chip has the same collectives");
      collectives = collectives == null ? cs : collectives;
      List<Value> args = new ArrayList<>(f.arguments());
      List<Value> results = new ArrayList<>();
      for (int i = 0; i < cs.size(); i++) {
        Value v = Value.argument("collective." + i, cs.get(i).result().type());
        args.add(v);
        results.add(v);
      }
      Function g = new Function(f.name(), args);
      for (Node x : f.body()) {
        if (!isCollective(x.op())) {
          g.body().add(x);
        }
      }
      List<Function.Output> outs = new ArrayList<>(f.outputs());
      for (int i = 0; i < cs.size(); i++) {
        outs.add(new Function.Output("operand." + i, cs.get(i).op().operands().get(0)));
      }
      g.setOutputs(outs);
      for (int i = 0; i < cs.size(); i++) {
        g.replaceAllUses(cs.get(i).result(), results.get(i));
      }
      m.functions().set(m.functions().indexOf(f), g);
      open.add(g);
    }
    int k = collectives.size();
    assertTrue(k > 0, "the sharded program has collectives");
    List<List<Tensor>> results = null;  // per chip, per collective
    List<Map<String, Tensor>> last = null;
    for (int round = 0; round <= k; round++) {
      last = new ArrayList<>();
      for (int c = 0; c < n; c++) {
        List<Tensor> in = new ArrayList<>(inputs.get(c));
        for (int i = 0; i < k; i++) {
          in.add(results == null ? zerosOf(open.get(c).arguments().get(inputs.get(c).size() + i)
              .type(), inputs.get(c), open.get(c)) : results.get(c).get(i));
        }
        last.add(new Interpreter(shards.get(c)).run(open.get(c), in));
      }
      results = new ArrayList<>();
      for (int c = 0; c < n; c++) {
        List<Tensor> mine = new ArrayList<>();
        for (int i = 0; i < k; i++) {
          List<Tensor> operands = new ArrayList<>();
          for (Map<String, Tensor> chip : last) {
            operands.add(chip.get("operand." + i));
          }
          mine.add(collect(collectives.get(i).op(), operands, c));
        }
        results.add(mine);
      }
    }
    List<Map<String, Tensor>> out = new ArrayList<>();
    for (Map<String, Tensor> m : last) {
      Map<String, Tensor> o = new LinkedHashMap<>(m);
      o.keySet().removeIf(s -> s.startsWith("operand."));
      out.add(o);
    }
    return out;
  }

  static boolean isCollective(dev.sohuc.ir.op.Op op) {
    return op instanceof TransformerOp.AllReduce || op instanceof TransformerOp.ReduceScatter
        || op instanceof TransformerOp.AllGather;
  }

  /** What chip c receives from a collective of the chips' operands. */
  static Tensor collect(dev.sohuc.ir.op.Op op, List<Tensor> operands, int c) {
    return switch (op) {
      case TransformerOp.AllReduce a -> sum(operands);
      case TransformerOp.ReduceScatter r -> blocks(sum(operands), r.axis(), operands.size()).get(c);
      case TransformerOp.AllGather g -> concat(operands, g.axis());
      default -> throw new IllegalArgumentException(op.mnemonic());
    };
  }

  /** Added in f32 in chip order, rounded once to the partials' type. */
  static Tensor sum(List<Tensor> operands) {
    Tensor first = operands.get(0);
    float[] acc = new float[first.size()];
    for (Tensor p : operands) {
      for (int e = 0; e < p.size(); e++) {
        acc[e] = (float) (acc[e] + p.get(e));
      }
    }
    Tensor sum = Tensor.zeros(first.type().elementType(), first.shape());
    for (int e = 0; e < acc.length; e++) {
      sum.set(e, acc[e]);
    }
    return sum;
  }

  /** t cut into {@code count} equal blocks along {@code axis}. */
  static List<Tensor> blocks(Tensor t, long axis, int count) {
    long[] shape = t.shape();
    int ax = (int) axis;
    long outer = 1;
    for (int a = 0; a < ax; a++) {
      outer *= shape[a];
    }
    long inner = t.size() / outer / shape[ax];
    long rows = shape[ax] / count;
    List<Tensor> out = new ArrayList<>();
    for (int c = 0; c < count; c++) {
      long[] bs = shape.clone();
      bs[ax] = rows;
      Tensor blk = Tensor.zeros(t.type().elementType(), bs);
      int i = 0;
      for (long o = 0; o < outer; o++) {
        for (long e = 0; e < rows * inner; e++) {
          blk.set(i++, t.get((int) ((o * shape[ax] + c * rows) * inner + e)));
        }
      }
      out.add(blk);
    }
    return out;
  }

  /** The chips' blocks one after another along {@code axis}. */
  static Tensor concat(List<Tensor> parts, long axis) {
    long[] shape = parts.get(0).shape();
    int ax = (int) axis;
    long outer = 1;
    for (int a = 0; a < ax; a++) {
      outer *= shape[a];
    }
    long block = parts.get(0).size() / outer;
    long[] whole = shape.clone();
    whole[ax] = shape[ax] * parts.size();
    Tensor out = Tensor.zeros(parts.get(0).type().elementType(), whole);
    int i = 0;
    for (long o = 0; o < outer; o++) {
      for (Tensor p : parts) {
        for (long e = 0; e < block; e++) {
          out.set(i++, p.get((int) (o * block + e)));
        }
      }
    }
    return out;
  }

  static Tensor zerosOf(TensorType t, List<Tensor> inputs, Function f) {
    Map<String, Long> b = Interpreter.bindSymbols(
        new Function("x", f.arguments().subList(0, inputs.size())), inputs);
    return Tensor.zeros(t.elementType(), t.evaluateShape(b));
  }

  @Test
  void llama70bShapeOnlyOnEightChips() {
    Module m = shard(LLAMA_70B, HfOptions.decode().withShapeOnly(true), 8, 3);
    assertEquals("tensor<1024 x 8192 x bf16>",
        m.weights().get("model.layers.0.self_attn.q_proj.weight").type().toString());
    assertEquals("tensor<128 x 8192 x bf16>",
        m.weights().get("model.layers.5.self_attn.k_proj.weight").type().toString());
    assertEquals("tensor<8192 x 1024 x bf16>",
        m.weights().get("model.layers.0.self_attn.o_proj.weight").type().toString());
    assertEquals("tensor<3584 x 8192 x bf16>",
        m.weights().get("model.layers.79.mlp.up_proj.weight").type().toString());
    assertEquals("tensor<8192 x 3584 x bf16>",
        m.weights().get("model.layers.79.mlp.down_proj.weight").type().toString());
    // the vocabulary split: each chip computes 16032 of the logits, gathered along the vocab
    assertEquals("tensor<16032 x 8192 x bf16>", m.weights().get("lm_head.weight").type().toString());
    assertEquals(List.of("tensor<?batch x ?seq x 128256 x f32>"), m.main().body().stream()
        .filter(x -> x.op() instanceof TransformerOp.AllGather g && g.axis() == 2)
        .map(x -> x.result().type().toString()).toList());
    long allReduces = m.main().body().stream()
        .filter(x -> x.op() instanceof TransformerOp.AllReduce a && a.chips() == 8).count();
    assertEquals(160, allReduces);
    assertEquals(1, m.main().arguments().get(1).type().dim(1).value(), "one kv head per chip");
  }

  /**
   * Gemma and Qwen2 tie lm_head to the embedding table: each chip's lm_head.weight is its slice
   * of the table's vocabulary rows (the lookup keeps the whole table), and the gathered logits
   * match the unsharded model's on 2 and 4 chips.
   */
  @Test
  void aTiedHeadSplitsASliceOfTheEmbeddingTable(@TempDir Path tmp) {
    for (String family : List.of("gemma", "qwen2")) {
      Path dir = TinyModel.of(family, 7).writeTo(tmp.resolve(family), Safetensors.Dtype.F32);
      Module full = fused(dir, HfOptions.prefill());
      assertFalse(full.weights().containsKey("lm_head.weight"), family + " is tied");
      Weight table = full.weights().get("model.embed_tokens.weight");
      long vocab = table.type().dim(0).value();
      Module chip1 = shard(dir, HfOptions.prefill(), 2, 1);
      assertEquals(table.type(), chip1.weights().get("model.embed_tokens.weight").type());
      Weight head = chip1.weights().get("lm_head.weight");
      assertEquals(table.type().withDims(List.of(Dim.of(vocab / 2), table.type().dim(1))),
          head.type());
      // chip 1's rows are the table's second half, byte for byte
      ByteBuffer all = table.bytes();
      all.position((int) (head.sizeBytes()));
      ByteBuffer half = all.slice().limit((int) head.sizeBytes());
      assertEquals(half, head.bytes());
      checkSharded(dir, HfOptions.prefill(), 2, 41);
      checkSharded(dir, HfOptions.decode(), 4, 42);
    }
  }

  /** A vocabulary that does not split over the chips leaves lm_head whole, with no gather. */
  @Test
  void aVocabularyThatDoesNotSplitStaysReplicated(@TempDir Path tmp) throws java.io.IOException {
    String config = Files.readString(LLAMA_70B.resolve("config.json"))
        .replace("\"vocab_size\": 128256", "\"vocab_size\": 128257");
    Files.writeString(tmp.resolve("config.json"), config);
    Module m = shard(tmp, HfOptions.decode().withShapeOnly(true), 8, 3);
    assertEquals("tensor<128257 x 8192 x bf16>",
        m.weights().get("lm_head.weight").type().toString());
    assertEquals(0, m.main().body().stream()
        .filter(x -> x.op() instanceof TransformerOp.AllGather).count());
  }

  @Test
  void headsThatDoNotSplitAreRejected() {
    Module m = fused(TINY, HfOptions.prefill());
    var e = assertThrows(dev.sohuc.passes.tp.ShardException.class,
        () -> new ShardTensorParallelPass(3, 0).run(m));
    assertEquals("shard-tensor-parallel: 4 query heads do not split over 3 chips; the model's "
        + "heads split over 2 or 4 chips", e.getMessage());
  }
}
