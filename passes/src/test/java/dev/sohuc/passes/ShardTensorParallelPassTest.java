package dev.sohuc.passes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.hf.HfImporter;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.passes.tp.ShardTensorParallelPass;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

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

  /** Heads of the tiny model: 4 query heads, 2 kv heads. */
  static long firstKv(int chips, int rank, long q, long kv) {
    return kv >= chips ? rank * (kv / chips) : (rank * (q / chips)) / (q / kv);
  }

  void checkSharded(HfOptions options, int chips, long seed) {
    Module full = fused(TINY, options);
    List<Tensor> inputs = MeaningCheck.randomInputs(full.main(), seed, Map.of());
    System.out.println("shard-tensor-parallel meaning check, chips=" + chips + ": seed " + seed);
    Map<String, Tensor> expected = new Interpreter(full).run(inputs);
    List<Module> shards = new ArrayList<>();
    List<List<Tensor>> shardInputs = new ArrayList<>();
    long kvLocal = Math.max(1, 2 / chips);
    for (int r = 0; r < chips; r++) {
      Module s = shard(TINY, options, chips, r);
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
   * The multi-shard reference runner. Each chip's program is opened at its all_reduces: their
   * results become extra inputs and their operands extra outputs (the partial sums). Round j
   * runs every chip with the sums from round j-1; the first j sums are exact after round j, so
   * K all_reduces need K+1 rounds. Sums add the chips' partials in chip order, as the ISA does.
   */
  static List<Map<String, Tensor>> runSharded(List<Module> shards, List<List<Tensor>> inputs) {
    int n = shards.size();
    List<Function> open = new ArrayList<>();
    int k = -1;
    for (Module m : shards) {
      Function f = m.main();
      List<Node> ars = f.body().stream()
          .filter(x -> x.op() instanceof TransformerOp.AllReduce).toList();
      assertTrue(k < 0 || k == ars.size(), "every chip has the same all_reduces");
      k = ars.size();
      List<Value> args = new ArrayList<>(f.arguments());
      List<Value> sums = new ArrayList<>();
      for (int i = 0; i < ars.size(); i++) {
        Value v = Value.argument("all_reduce." + i, ars.get(i).result().type());
        args.add(v);
        sums.add(v);
      }
      Function g = new Function(f.name(), args);
      for (Node x : f.body()) {
        if (!(x.op() instanceof TransformerOp.AllReduce)) {
          g.body().add(x);
        }
      }
      List<Function.Output> outs = new ArrayList<>(f.outputs());
      for (int i = 0; i < ars.size(); i++) {
        outs.add(new Function.Output("partial." + i, ars.get(i).op().operands().get(0)));
      }
      g.setOutputs(outs);
      for (int i = 0; i < ars.size(); i++) {
        g.replaceAllUses(ars.get(i).result(), sums.get(i));
      }
      m.functions().set(m.functions().indexOf(f), g);
      open.add(g);
    }
    assertTrue(k > 0, "the sharded program has all_reduces");
    List<Tensor> sums = null;
    List<Map<String, Tensor>> last = null;
    for (int round = 0; round <= k; round++) {
      last = new ArrayList<>();
      for (int c = 0; c < n; c++) {
        List<Tensor> in = new ArrayList<>(inputs.get(c));
        for (int i = 0; i < k; i++) {
          in.add(sums == null ? zerosOf(open.get(c).arguments().get(inputs.get(c).size() + i)
              .type(), inputs.get(c), open.get(c)) : sums.get(i));
        }
        last.add(new Interpreter(shards.get(c)).run(open.get(c), in));
      }
      sums = new ArrayList<>();
      for (int i = 0; i < k; i++) {
        Tensor acc = null;
        for (int c = 0; c < n; c++) {
          Tensor p = last.get(c).get("partial." + i);
          if (acc == null) {
            acc = Tensor.zeros(p.type().elementType(), p.shape());
          }
          for (int e = 0; e < p.size(); e++) {
            acc.set(e, (float) (acc.get(e) + p.get(e)));
          }
        }
        sums.add(acc);
      }
    }
    List<Map<String, Tensor>> out = new ArrayList<>();
    for (Map<String, Tensor> m : last) {
      Map<String, Tensor> o = new LinkedHashMap<>(m);
      o.keySet().removeIf(s -> s.startsWith("partial."));
      out.add(o);
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
    assertEquals("tensor<128256 x 8192 x bf16>", m.weights().get("lm_head.weight").type().toString());
    long allReduces = m.main().body().stream()
        .filter(x -> x.op() instanceof TransformerOp.AllReduce a && a.chips() == 8).count();
    assertEquals(160, allReduces);
    assertEquals(1, m.main().arguments().get(1).type().dim(1).value(), "one kv head per chip");
  }

  @Test
  void headsThatDoNotSplitAreRejected() {
    Module m = fused(TINY, HfOptions.prefill());
    assertThrows(PassException.class,
        () -> new ShardTensorParallelPass(3, 0).run(m));
  }
}
