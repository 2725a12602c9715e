package dev.sohuc.hf;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A serving-step graph (one prompt, whole or in micro-batches, and a batch of decodes through the
 * same weights, each decode with its own KV length) computes what the prefill graph computes for
 * the prompt and the decode graph for each decode alone over its own cache: on the reference
 * interpreter, with seeded weights and random KV caches, its logits rows and caches match theirs
 * within 1e-5 of the largest magnitude (the rows share matmuls, so only summation order may
 * differ), and the cache positions past each decode's new one are left as they were.
 */
class StepGraphTest {
  static final long PROMPT = 5;
  /** The decodes' past lengths: one empty cache, one full to the capacity less one. */
  static final long[] PAST_LENGTHS = {2, 0, 5};
  static final long DECODES = PAST_LENGTHS.length;
  static final long CAPACITY = 6;
  static final double TOLERANCE = 1e-5;

  @TempDir
  Path tmp;

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"llama", "llama-longrope", "mistral", "qwen2", "gemma", "phi3", "mixtral"})
  void stepMatchesPrefillAndDecodeGraphs(String variant) {
    check(variant, 1);
  }

  /** The prompt in micro-batches: input_ids [micro, seq], the rows one prompt. */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"llama", "llama-longrope", "gemma", "phi3", "mixtral"})
  void promptInMicroBatchesMatchesThePrefillGraph(String variant) {
    check(variant, 2);
    check(variant, 3);
  }

  /**
   * Overlapped attention (HfOptions overlapAttention) only moves each micro-batch's o projection
   * and MLP after the next micro-batch's attention: the same numbers, and layer 0's o and down
   * projections and layer 1's q projections in the order "o down o q1 down q1" (the last
   * micro-batch's MLP after the first's attention of the next layer) where the plain step has
   * "o o down down q1 q1".
   */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"llama", "phi3"})
  void overlappedAttentionMovesOnlyTheOutputProjections(String variant) {
    check(variant, 2, true);
    check(variant, 3, true);
    Path dir = tmp.resolve(variant);
    assertEquals(List.of("o", "o", "down", "down", "q1", "q1"), projectionOrder(
        HfImporter.importModel(dir, HfOptions.step().withMicroBatches(2))));
    assertEquals(List.of("o", "down", "o", "q1", "down", "q1"), projectionOrder(
        HfImporter.importModel(dir, HfOptions.step().withMicroBatches(2)
            .withOverlapAttention(true))));
    HfImportException one = assertThrows(HfImportException.class,
        () -> HfOptions.step().withOverlapAttention(true));
    assertEquals("overlapped attention needs a serving step of 2 or more micro-batches; got 1",
        one.getMessage());
  }

  /**
   * Layer 0's o and down projections and layer 1's q projections (by the weight each matmul
   * reads), in body order.
   */
  private static List<String> projectionOrder(Module m) {
    List<String> order = new ArrayList<>();
    for (dev.sohuc.ir.Node n : m.main().body()) {
      if (!(n.op() instanceof dev.sohuc.ir.op.LinalgOp.MatMul mm)) {
        continue;
      }
      String w = weightRead(mm.b());
      if ("model.layers.0.self_attn.o_proj.weight".equals(w)) {
        order.add("o");
      } else if ("model.layers.0.mlp.down_proj.weight".equals(w)) {
        order.add("down");
      } else if ("model.layers.1.self_attn.q_proj.weight".equals(w)
          || "model.layers.1.self_attn.qkv_proj.weight".equals(w)) {
        order.add("q1");
      }
    }
    return order;
  }

  /** The weight {@code v} is, through ops of one operand (a transpose), or null. */
  private static String weightRead(dev.sohuc.ir.Value v) {
    while (v.producer() != null) {
      if (v.producer().op() instanceof dev.sohuc.ir.op.SourceOp.WeightRef w) {
        return w.name();
      }
      if (v.producer().op().operands().size() != 1) {
        return null;
      }
      v = v.producer().op().operands().get(0);
    }
    return null;
  }

  private void check(String variant, int micro) {
    check(variant, micro, false);
  }

  private void check(String variant, int micro, boolean overlap) {
    TinyModel m = TinyModel.of(variant, 11);
    Path dir = m.writeTo(tmp.resolve(variant), Safetensors.Dtype.F32);
    Random random = new Random(3);
    long vocab = m.get("vocab_size");
    long layers = m.get("num_hidden_layers");
    long kvHeads = m.get("num_key_value_heads");
    long headDim = m.headDim();

    long promptLen = micro * PROMPT;
    long[] prompt = HfNumericsTest.randomIds(random, promptLen, vocab);
    long[] decodeIds = HfNumericsTest.randomIds(random, DECODES, vocab);
    long[] cacheShape = {DECODES, kvHeads, CAPACITY, headDim};
    List<Tensor> caches = new ArrayList<>();
    for (int i = 0; i < 2 * layers; i++) {
      caches.add(randomCache(random, cacheShape));
    }

    Map<String, Tensor> pre = new Interpreter(HfImporter.importModel(dir, HfOptions.prefill()))
        .run(List.of(HfNumericsTest.ids(prompt, promptLen)));
    List<Tensor> stepInputs = new ArrayList<>(List.of(HfNumericsTest.ids(prompt, PROMPT),
        HfNumericsTest.ids(decodeIds, 1), Tensor.ofLongs(ElementType.I64, new long[] {DECODES}, PAST_LENGTHS)));
    stepInputs.addAll(caches);
    Module stepGraph = HfImporter.importModel(dir, HfOptions.step().withMicroBatches(micro)
        .withOverlapAttention(overlap));
    Map<String, Tensor> step = new Interpreter(stepGraph).run(stepInputs);

    Tensor logits = step.get("logits");
    assertArrayEquals(new long[] {1, 1 + DECODES, vocab}, logits.shape());
    float[] got = logits.floats();
    float[] promptLast = Arrays.copyOfRange(pre.get("logits").floats(),
        (int) ((promptLen - 1) * vocab), (int) (promptLen * vocab));
    assertClose(variant + " prompt logits", promptLast, Arrays.copyOfRange(got, 0, (int) vocab));
    for (int i = 0; i < layers; i++) {
      for (String kv : List.of("key", "value")) {
        String name = "present." + i + "." + kv;
        assertArrayEquals(cacheShape, step.get(name).shape(), name);
        assertClose(variant + " prompt." + name, pre.get(name).floats(),
            step.get("prompt." + name).floats());
      }
    }
    assertDecodesMatchAlone(variant, dir, decodeIds, caches, got, 1, vocab, step);
  }

  /** The ragged decode graph: the step's decodes without a prompt. */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"llama", "llama-longrope", "gemma", "phi3", "mixtral"})
  void raggedDecodeMatchesEachSequenceAlone(String variant) {
    TinyModel m = TinyModel.of(variant, 13);
    Path dir = m.writeTo(tmp.resolve(variant), Safetensors.Dtype.F32);
    Random random = new Random(5);
    long vocab = m.get("vocab_size");
    long layers = m.get("num_hidden_layers");
    long headDim = m.headDim();
    long[] decodeIds = HfNumericsTest.randomIds(random, DECODES, vocab);
    List<Tensor> caches = new ArrayList<>();
    for (int i = 0; i < 2 * layers; i++) {
      caches.add(randomCache(random, new long[] {DECODES, m.get("num_key_value_heads"), CAPACITY, headDim}));
    }
    List<Tensor> inputs = new ArrayList<>(List.of(HfNumericsTest.ids(decodeIds, 1),
        Tensor.ofLongs(ElementType.I64, new long[] {DECODES}, PAST_LENGTHS)));
    inputs.addAll(caches);
    Map<String, Tensor> out = new Interpreter(HfImporter.importModel(dir, HfOptions.raggedDecode())).run(inputs);
    assertArrayEquals(new long[] {DECODES, 1, vocab}, out.get("logits").shape());
    assertDecodesMatchAlone(variant + " ragged decode", dir, decodeIds, caches, out.get("logits").floats(), 0,
        vocab, out);
  }

  /**
   * Decode b ({@code logits} row {@code firstRow + b}, and {@code step}'s present.*) against the
   * decode graph run on it alone over the first past_lengths[b] positions of its cache; the
   * positions after its new one are the cache's own.
   */
  private static void assertDecodesMatchAlone(String variant, Path dir, long[] decodeIds, List<Tensor> caches,
      float[] logits, int firstRow, long vocab, Map<String, Tensor> step) {
    int layers = caches.size() / 2;
    Module decodeGraph = HfImporter.importModel(dir, HfOptions.decode());
    for (int b = 0; b < DECODES; b++) {
      // decode b alone over the first past_lengths[b] positions of its cache
      long len = PAST_LENGTHS[b];
      List<Tensor> decodeInputs = new ArrayList<>(List.of(HfNumericsTest.ids(new long[] {decodeIds[b]}, 1)));
      for (Tensor cache : caches) {
        decodeInputs.add(positions(cache, b, 0, len));
      }
      Map<String, Tensor> dec = new Interpreter(decodeGraph).run(decodeInputs);
      String what = variant + " decode " + b;
      assertClose(what + " logits", dec.get("logits").floats(),
          Arrays.copyOfRange(logits, (int) ((firstRow + b) * vocab), (int) ((firstRow + b + 1) * vocab)));
      for (int i = 0; i < layers; i++) {
        for (String kv : List.of("key", "value")) {
          String name = "present." + i + "." + kv;
          Tensor present = step.get(name);
          assertClose(what + " " + name, dec.get(name).floats(), positions(present, b, 0, len + 1).floats());
          // the positions after the new one are the cache's own
          Tensor past = caches.get(2 * i + (kv.equals("key") ? 0 : 1));
          assertArrayEquals(positions(past, b, len + 1, CAPACITY).floats(),
              positions(present, b, len + 1, CAPACITY).floats(), what + " " + name + " past its length");
        }
      }
    }
  }

  /** Positions {@code [from, to)} of batch row {@code b} of a cache, as a batch of one. */
  private static Tensor positions(Tensor cache, int b, long from, long to) {
    long[] s = cache.shape();
    int heads = (int) s[1];
    int d = (int) s[3];
    float[] all = cache.floats();
    float[] out = new float[(int) (heads * (to - from) * d)];
    for (int h = 0; h < heads; h++) {
      System.arraycopy(all, (int) (((b * s[1] + h) * s[2] + from) * d), out, (int) (h * (to - from) * d),
          (int) ((to - from) * d));
    }
    return Tensor.ofFloats(ElementType.F32, new long[] {1, heads, to - from, d}, out);
  }

  @Test
  void stepGraphsAreForDecodersOnly() {
    Path dir = TinyModel.of("gpt2", 1).writeTo(tmp.resolve("gpt2"), Safetensors.Dtype.F32);
    HfImportException e = assertThrows(HfImportException.class,
        () -> HfImporter.importModel(dir, HfOptions.step()));
    assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("no serving-step graph"),
        e.getMessage());
    HfImportException ragged = assertThrows(HfImportException.class,
        () -> HfImporter.importModel(dir, HfOptions.raggedDecode()));
    assertTrue(ragged.getMessage().contains("no ragged decode graph"), ragged.getMessage());
  }

  private static Tensor randomCache(Random random, long[] shape) {
    float[] data = new float[(int) Arrays.stream(shape).reduce(1, Math::multiplyExact)];
    for (int i = 0; i < data.length; i++) {
      data[i] = (float) random.nextGaussian();
    }
    return Tensor.ofFloats(ElementType.F32, shape, data);
  }

  private static void assertClose(String what, float[] want, float[] got) {
    assertEquals(want.length, got.length, what + ": element count");
    double maxRef = 0;
    double maxDiff = 0;
    for (int i = 0; i < want.length; i++) {
      maxRef = Math.max(maxRef, Math.abs(want[i]));
      maxDiff = Math.max(maxDiff, Math.abs(want[i] - got[i]));
    }
    assertTrue(maxRef > 0, what + " is all zeros");
    assertTrue(maxDiff <= TOLERANCE * maxRef, what + ": max difference " + maxDiff + " exceeds "
        + TOLERANCE + " x max magnitude " + maxRef);
  }
}
