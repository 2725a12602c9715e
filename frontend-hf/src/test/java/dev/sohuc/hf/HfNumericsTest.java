package dev.sohuc.hf;

import dev.sohuc.hf.OrtReference.Input;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each model family, tiny and with seeded random weights in a safetensors file: imported, run on
 * the IR reference interpreter, and compared with ONNX Runtime running a plain-op ONNX graph
 * built from the same weights ({@link ReferenceModels}), for a prompt and then for a decode step
 * that feeds the prompt's KV cache back in. Tolerance: the largest difference is at most 1e-4 of
 * the largest reference magnitude, per output.
 */
class HfNumericsTest {
  static final long BATCH = 2;
  static final long PROMPT = 6;
  static final long STEP = 2;
  static final double TOLERANCE = 1e-4;

  @TempDir
  Path tmp;

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"llama", "llama31", "llama-longrope", "llama-dynamic", "llama-bf16",
      "llama-yarn", "mistral", "qwen2", "qwen2-yarn", "gemma", "phi3", "phi3-longrope", "mixtral",
      "gpt2"})
  void decoderPromptThenDecodeStepMatchesOnnxRuntime(String variant) throws Exception {
    TinyModel m = TinyModel.of(variant, 42);
    Safetensors.Dtype dtype = Safetensors.Dtype.F32;
    if (variant.equals("llama-bf16")) {
      m.roundToBf16();
      dtype = Safetensors.Dtype.BF16;
    }
    Path dir = m.writeTo(tmp.resolve(variant), dtype);
    Random random = new Random(7);
    long vocab = m.get("vocab_size");

    // Prompt.
    long[] promptIds = randomIds(random, BATCH * PROMPT, vocab);
    Module prefill = HfImporter.importModel(dir, HfOptions.prefill());
    Map<String, Tensor> ir = new Interpreter(prefill).run(List.of(ids(promptIds, PROMPT)));
    Map<String, float[]> ort = OrtReference.run(ReferenceModels.build(m, BATCH, PROMPT, 0).modelBytes(),
        Map.of("input_ids", Input.longs(promptIds, BATCH, PROMPT)));
    assertClose(variant + " prompt", ort, ir);

    // One decode step of STEP tokens, each side fed its own prompt KV cache.
    long[] stepIds = randomIds(random, BATCH * STEP, vocab);
    Module decode = HfImporter.importModel(dir, HfOptions.decode());
    long layers = m.config.containsKey("n_layer") ? m.get("n_layer") : m.get("num_hidden_layers");
    List<Tensor> irInputs = new ArrayList<>(List.of(ids(stepIds, STEP)));
    Map<String, Input> ortInputs = new HashMap<>();
    ortInputs.put("input_ids", Input.longs(stepIds, BATCH, STEP));
    for (int i = 0; i < layers; i++) {
      for (String kv : new String[] {"key", "value"}) {
        Tensor present = ir.get("present." + i + "." + kv);
        irInputs.add(present);
        ortInputs.put("past_key_values." + i + "." + kv,
            Input.floats(ort.get("present." + i + "." + kv), present.shape()));
      }
    }
    Map<String, Tensor> irStep = new Interpreter(decode).run(irInputs);
    Map<String, float[]> ortStep =
        OrtReference.run(ReferenceModels.build(m, BATCH, STEP, PROMPT).modelBytes(), ortInputs);
    assertClose(variant + " decode", ortStep, irStep);
    assertEquals(PROMPT + STEP, irStep.get("present.0.key").shape()[2]);
  }

  @org.junit.jupiter.api.Test
  void bertMatchesOnnxRuntime() throws Exception {
    TinyModel m = TinyModel.of("bert", 42);
    Path dir = m.writeTo(tmp.resolve("bert"), Safetensors.Dtype.F32);
    Random random = new Random(7);
    long[] ids = randomIds(random, BATCH * PROMPT, m.get("vocab_size"));
    long[] mask = new long[(int) (BATCH * PROMPT)];
    long[] types = new long[mask.length];
    for (int i = 0; i < mask.length; i++) {
      mask[i] = (i % PROMPT) < PROMPT - (i / PROMPT) ? 1 : 0; // the second sequence is padded by one
      types[i] = (i % PROMPT) >= PROMPT / 2 ? 1 : 0;
    }
    Module module = HfImporter.importModel(dir, HfOptions.prefill());
    Map<String, Tensor> ir = new Interpreter(module).run(List.of(ids(ids, PROMPT), ids(mask, PROMPT),
        ids(types, PROMPT)));
    Map<String, float[]> ort = OrtReference.run(
        ReferenceModels.build(m, BATCH, PROMPT, 0).modelBytes(), Map.of(
            "input_ids", Input.longs(ids, BATCH, PROMPT),
            "attention_mask", Input.longs(mask, BATCH, PROMPT),
            "token_type_ids", Input.longs(types, BATCH, PROMPT)));
    assertClose("bert", ort, ir);
  }

  // ---- helpers

  static long[] randomIds(Random random, long n, long vocab) {
    long[] ids = new long[(int) n];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = random.nextInt((int) vocab);
    }
    return ids;
  }

  static Tensor ids(long[] data, long seq) {
    return Tensor.ofLongs(ElementType.I64, new long[] {data.length / seq, seq}, data.clone());
  }

  static void assertClose(String what, Map<String, float[]> expected, Map<String, Tensor> actual) {
    assertEquals(new java.util.TreeSet<>(expected.keySet()), new java.util.TreeSet<>(actual.keySet()),
        what + ": output names");
    for (var e : expected.entrySet()) {
      float[] want = e.getValue();
      float[] got = actual.get(e.getKey()).floats();
      assertEquals(want.length, got.length, what + " " + e.getKey() + ": element count");
      double maxRef = 0;
      double maxDiff = 0;
      for (int i = 0; i < want.length; i++) {
        maxRef = Math.max(maxRef, Math.abs(want[i]));
        maxDiff = Math.max(maxDiff, Math.abs(want[i] - got[i]));
      }
      assertTrue(maxRef > 0, what + " " + e.getKey() + " is all zeros");
      assertTrue(maxDiff <= TOLERANCE * maxRef, what + " " + e.getKey() + ": max difference " + maxDiff
          + " exceeds " + TOLERANCE + " x max magnitude " + maxRef);
    }
  }
}
