package dev.sohuc.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The GPT-2 and Llama stacks of {@link DecoderGraphs}, for a full prompt and for one decode step
 * with a KV cache, through {@code sohuc compile --report} and {@code sohuc run}: every output
 * (logits and present keys/values) matches ONNX Runtime within 1e-4 relative, and the fusion
 * report shows every attention, norm, activation and rope fused, nothing left over.
 */
class DecoderModelsTest {
  static final double TOL = 1e-4;
  static final long SEED = 11;
  static final long PROMPT = 7;

  @TempDir Path tmp;

  @Test
  void gpt2Prompt() throws Exception {
    var c = DecoderGraphs.Gpt2.TINY;
    String report = check("gpt2-prompt", DecoderGraphs.gpt2(c, 1, PROMPT, 0, SEED), c.vocab(),
        PROMPT, 0, c.layers(), c.heads(), c.headDim());
    assertFused(report, Map.of("attention", 2L, "layer_norm", 5L, "gelu", 2L));
  }

  @Test
  void gpt2DecodeStepWithKvCache() throws Exception {
    var c = DecoderGraphs.Gpt2.TINY;
    String report = check("gpt2-decode", DecoderGraphs.gpt2(c, 1, 1, PROMPT, SEED), c.vocab(),
        1, PROMPT, c.layers(), c.heads(), c.headDim());
    assertFused(report, Map.of("attention", 2L, "layer_norm", 5L, "gelu", 2L,
        "kv_cache_append", 4L));
  }

  @Test
  void llamaPrompt() throws Exception {
    var c = DecoderGraphs.Llama.TINY;
    String report = check("llama-prompt", DecoderGraphs.llama(c, 1, PROMPT, 0, SEED), c.vocab(),
        PROMPT, 0, c.layers(), c.kvHeads(), c.headDim());
    assertFused(report, Map.of("attention", 2L, "rms_norm", 5L, "rope", 4L, "swiglu", 2L));
  }

  @Test
  void llamaDecodeStepWithKvCache() throws Exception {
    var c = DecoderGraphs.Llama.TINY;
    String report = check("llama-decode", DecoderGraphs.llama(c, 1, 1, PROMPT, SEED), c.vocab(),
        1, PROMPT, c.layers(), c.kvHeads(), c.headDim());
    assertFused(report, Map.of("attention", 2L, "rms_norm", 5L, "rope", 4L,
        "swiglu", 2L, "kv_cache_append", 4L));
  }

  /**
   * The same stacks at sizes of several 128-wide tiles (GPT-2 320 wide in 5 heads of 64 and an
   * MLP of 1280; Llama 256 wide, 4 query heads over 2 kv heads of 64, an MLP of 688 = 5 panels and
   * a tail; vocabularies of 1000), a 257-token prompt and a decode step over 200 cached
   * positions: every output within 1e-4 of ONNX Runtime.
   */
  @Test
  void stacksOfSeveralTilesMatchOnnxRuntime() throws Exception {
    var gpt2 = new DecoderGraphs.Gpt2(1000, 320, 5, 2, 512);
    check("gpt2-wide-prompt", DecoderGraphs.gpt2(gpt2, 1, 257, 0, SEED), gpt2.vocab(), 257, 0,
        gpt2.layers(), gpt2.heads(), gpt2.headDim());
    check("gpt2-wide-decode", DecoderGraphs.gpt2(gpt2, 1, 1, 200, SEED), gpt2.vocab(), 1, 200,
        gpt2.layers(), gpt2.heads(), gpt2.headDim());
    var llama = new DecoderGraphs.Llama(1000, 256, 4, 2, 688, 2, 10000);
    check("llama-wide-prompt", DecoderGraphs.llama(llama, 1, 257, 0, SEED), llama.vocab(), 257, 0,
        llama.layers(), llama.kvHeads(), llama.headDim());
    check("llama-wide-decode", DecoderGraphs.llama(llama, 1, 1, 200, SEED), llama.vocab(), 1, 200,
        llama.layers(), llama.kvHeads(), llama.headDim());
  }

  /**
   * GPT-2 and Llama stacks at seeded random sizes (1 to 6 heads of 8 to 96, Llama's kv heads
   * dividing its query heads, MLPs and vocabularies of any size up to 700) for prompts of 1 to
   * 150 tokens and decode steps over 1 to 150 cached positions: every output within 1e-4 of ONNX
   * Runtime, and every attention fused.
   */
  @Test
  void randomSizesMatchOnnxRuntime() throws Exception {
    Random r = new Random(SEED);
    long[] headDims = {8, 16, 32, 64, 96};
    for (int i = 0; i < 12; i++) {
      long heads = 1 + r.nextInt(6);
      long hidden = heads * headDims[r.nextInt(headDims.length)];
      long vocab = 20 + r.nextInt(680);
      boolean decode = r.nextBoolean();
      long seq = decode ? 1 : 1 + r.nextInt(150);
      long past = decode ? 1 + r.nextInt(150) : 0;
      String name = "random-" + i;
      String report;
      if (r.nextBoolean()) {
        var c = new DecoderGraphs.Gpt2(vocab, hidden, heads, 1 + r.nextInt(2), seq + past + r.nextInt(20));
        report = check(name + "-gpt2", DecoderGraphs.gpt2(c, 1, seq, past, SEED + i), vocab, seq, past,
            c.layers(), heads, c.headDim());
      } else {
        long kvHeads = heads % 2 == 0 && r.nextBoolean() ? heads / 2 : heads;
        var c = new DecoderGraphs.Llama(vocab, hidden, heads, kvHeads, 16 + r.nextInt(684), 1 + r.nextInt(2),
            10000);
        report = check(name + "-llama", DecoderGraphs.llama(c, 1, seq, past, SEED + i), vocab, seq, past,
            c.layers(), kvHeads, c.headDim());
      }
      assertFused(report, Map.of("attention", 1L));
    }
  }

  /** Each op kind fused at least as often as given, and the report lists nothing unfused. */
  private static void assertFused(String report, Map<String, Long> atLeast) {
    assertTrue(report.contains("unfused: none"), report);
    atLeast.forEach((op, n) -> {
      var m = java.util.regex.Pattern.compile("(?m)^\\s+" + op + "\\s+(\\d+)$").matcher(report);
      assertTrue(m.find(), op + " not fused:\n" + report);
      assertTrue(Long.parseLong(m.group(1)) >= n, op + " fused " + m.group(1) + " times, want "
          + n + ":\n" + report);
    });
  }

  /** Compiles, emulates, compares every output with ORT; returns the compile report. */
  private String check(String name, byte[] model, long vocab, long seq, long past, long layers,
      long kvHeads, long headDim) throws Exception {
    Path onnx = tmp.resolve(name + ".onnx");
    Files.write(onnx, model);
    Random r = new Random(SEED);
    Map<String, Tensor> in = new LinkedHashMap<>();
    long[] ids = new long[(int) seq];
    for (int i = 0; i < seq; i++) {
      ids[i] = r.nextInt((int) vocab);
    }
    in.put("input_ids", Tensor.ofLongs(ElementType.I64, new long[] {1, seq}, ids));
    if (past > 0) {
      long[] shape = {1, kvHeads, past, headDim};
      for (String p : DecoderGraphs.pastNames(layers)) {
        float[] f = new float[(int) (kvHeads * past * headDim)];
        for (int i = 0; i < f.length; i++) {
          f[i] = (float) r.nextGaussian();
        }
        in.put(p, Tensor.ofFloats(ElementType.F32, shape, f));
      }
    }
    // the causal mask is folded into every attention, never kept as a mask operand (one decode
    // query sees every key, so there an all-zero mask may simply vanish: causal either way)
    String ir = Models.sohuc("compile", onnx.toString(), "--emit", "ir");
    List<String> attention = ir.lines().filter(l -> l.contains("= attention ")).toList();
    assertEquals(layers, attention.size(), ir);
    for (String a : attention) {
      String operands = a.substring(a.indexOf("= attention ") + 12, a.indexOf(" {"));
      assertEquals(3, operands.split(", ").length, "q, k, v and no mask: " + a);
      assertTrue(seq == 1 || a.contains("causal = true"), a);
    }
    Path bin = tmp.resolve(name + ".sohu");
    String report = Models.sohuc("compile", onnx.toString(), "--report", "-o", bin.toString());
    Models.assertMatchesOrt(name + " (seed " + SEED + ")", model, in,
        Models.sohucRun(bin, in, tmp.resolve(name)), TOL);
    return report;
  }
}
