package dev.sohuc.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.backend.BackendOptions;
import dev.sohuc.backend.SohuBackend;
import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.FunctionalResult;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.hf.HfImporter;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.hf.OrtReference;
import dev.sohuc.hf.OrtReference.Input;
import dev.sohuc.hf.ReferenceModels;
import dev.sohuc.hf.Safetensors;
import dev.sohuc.hf.TinyModel;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import dev.sohuc.isa.container.SohuWriter;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import dev.sohuc.passes.quant.QuantMode;
import dev.sohuc.passes.quant.QuantOptions;
import dev.sohuc.passes.quant.Quantizer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Each Hugging Face model family, tiny and with seeded random weights (frontend-hf's
 * {@link TinyModel}), imported from config.json + model.safetensors, run through the default
 * pass pipeline and the sohu backend, written to container bytes, read back and run on the
 * emulator; compared with ONNX Runtime running frontend-hf's plain-op reference graph
 * ({@link ReferenceModels}) of the same weights. A prompt, then a decode step fed the
 * emulator's own prompt KV cache (ORT gets its own). One binary per graph kind: batch, seq and
 * past stay symbolic. Tolerance: the largest difference of each output is at most 1e-4 of its
 * largest reference magnitude (the frontend's interpreter tests use the same rule).
 */
class HfCompiledNumericsTest {
  static final long BATCH = 2;
  static final long PROMPT = 6;
  static final long STEP = 2;
  static final double TOLERANCE = 1e-4;

  @TempDir
  Path tmp;

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"llama", "llama31", "mistral", "qwen2", "qwen2-yarn", "gemma",
      "gemma-wide", "phi3", "mixtral", "gpt2"})
  void promptThenDecodeStepCompiledAndEmulatedMatchOnnxRuntime(String variant) throws Exception {
    TinyModel m = TinyModel.of(variant, 42);
    Path dir = m.writeTo(tmp.resolve(variant), Safetensors.Dtype.F32);
    Random random = new Random(7);
    long vocab = m.get("vocab_size");
    long layers = m.config.containsKey("n_layer") ? m.get("n_layer")
        : m.get("num_hidden_layers");

    long[] promptIds = randomIds(random, BATCH * PROMPT, vocab);
    SohuProgram prefill = compile(HfImporter.importModel(dir, HfOptions.prefill()));
    Map<String, HostTensor> emuIn = new LinkedHashMap<>();
    emuIn.put("input_ids", ids(promptIds, BATCH, PROMPT));
    Map<String, HostTensor> emu = emulate(prefill, emuIn);
    Map<String, float[]> ort = OrtReference.run(ReferenceModels.build(m, BATCH, PROMPT, 0).modelBytes(),
        Map.of("input_ids", Input.longs(promptIds, BATCH, PROMPT)));
    assertClose(variant + " prompt", ort, emu);
    assertArrayEquals(new long[] {BATCH, PROMPT, vocab}, emu.get("logits").shape());

    long[] stepIds = randomIds(random, BATCH * STEP, vocab);
    SohuProgram decode = compile(HfImporter.importModel(dir, HfOptions.decode()));
    Map<String, HostTensor> stepIn = new LinkedHashMap<>();
    Map<String, Input> ortIn = new LinkedHashMap<>();
    stepIn.put("input_ids", ids(stepIds, BATCH, STEP));
    ortIn.put("input_ids", Input.longs(stepIds, BATCH, STEP));
    for (int i = 0; i < layers; i++) {
      for (String kv : new String[] {"key", "value"}) {
        HostTensor present = emu.get("present." + i + "." + kv);
        stepIn.put("past_key_values." + i + "." + kv, present);
        ortIn.put("past_key_values." + i + "." + kv,
            Input.floats(ort.get("present." + i + "." + kv), present.shape()));
      }
    }
    Map<String, HostTensor> emuStep = emulate(decode, stepIn);
    Map<String, float[]> ortStep = OrtReference.run(
        ReferenceModels.build(m, BATCH, STEP, PROMPT).modelBytes(), ortIn);
    assertClose(variant + " decode", ortStep, emuStep);
    assertEquals(PROMPT + STEP, emuStep.get("present.0.key").shape()[2]);
  }

  /**
   * A serving step (one prompt, whole or in micro-batches ("llama x2"), and a batch of decodes,
   * each with its own KV length, through the same weights; one binary with seq, batch and past
   * symbolic and the lengths in the argument block) against ORT running the prompt, and each
   * decode alone over its own cache: the step's logits rows are the prompt's last position and
   * each decode's, its caches theirs (each decode's positions past its new one unchanged). "alone":
   * a prompt with no decodes (the bench's step when nothing else runs), the batch 0.
   */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"llama", "qwen2", "phi3", "llama x2", "gemma x2", "mixtral x3",
      "llama x2 alone", "gemma x2 alone"})
  void servingStepCompiledAndEmulatedMatchesOnnxRuntime(String variantAndMicroBatches)
      throws Exception {
    String[] parts = variantAndMicroBatches.split(" ");
    String variant = parts[0];
    int micro = parts.length > 1 ? Integer.parseInt(parts[1].substring(1)) : 1;
    TinyModel m = TinyModel.of(variant, 42);
    Path dir = m.writeTo(tmp.resolve(variant), Safetensors.Dtype.F32);
    Random random = new Random(9);
    long vocab = m.get("vocab_size");
    long layers = m.get("num_hidden_layers");
    long kvHeads = m.get("num_key_value_heads");
    long headDim = m.headDim();
    long[] pastLengths = variantAndMicroBatches.endsWith("alone") ? new long[0] : new long[] {2, 0, 4};
    int decodes = pastLengths.length;
    long capacity = 5;

    long promptLen = micro * PROMPT;
    long[] prompt = randomIds(random, promptLen, vocab);
    long[] decodeIds = randomIds(random, decodes, vocab);
    Map<String, HostTensor> in = new LinkedHashMap<>();
    in.put("input_ids", ids(prompt, micro, PROMPT));
    in.put("decode_ids", ids(decodeIds, decodes, 1));
    in.put("past_lengths", ids(pastLengths, decodes));
    long[] cacheShape = {decodes, kvHeads, capacity, headDim};
    Map<String, float[]> caches = new LinkedHashMap<>();
    for (int i = 0; i < layers; i++) {
      for (String kv : new String[] {"key", "value"}) {
        float[] cache = new float[(int) (decodes * kvHeads * capacity * headDim)];
        for (int j = 0; j < cache.length; j++) {
          cache[j] = (float) random.nextGaussian();
        }
        in.put("past_key_values." + i + "." + kv, HostTensor.ofF32(cacheShape, cache));
        caches.put(i + "." + kv, cache);
      }
    }
    Map<String, HostTensor> step = emulate(compile(HfImporter.importModel(dir,
        HfOptions.step().withMicroBatches(micro))), in);

    Map<String, float[]> ortPrompt = OrtReference.run(
        ReferenceModels.build(m, 1, promptLen, 0).modelBytes(),
        Map.of("input_ids", Input.longs(prompt, 1, promptLen)));
    Map<String, float[]> expected = new LinkedHashMap<>();
    float[] want = new float[(int) ((1 + decodes) * vocab)];
    System.arraycopy(ortPrompt.get("logits"), (int) ((promptLen - 1) * vocab), want, 0, (int) vocab);
    for (var e : ortPrompt.entrySet()) {
      if (e.getKey().startsWith("present.")) {
        expected.put("prompt." + e.getKey(), e.getValue());
      }
    }
    // the step's caches: the inputs, with each decode's ORT cache over its first positions
    caches.forEach((k, v) -> expected.put("present." + k, v.clone()));
    for (int row = 0; row < decodes; row++) {
      int b = row;
      long len = pastLengths[b];
      Map<String, Input> ortDecodeIn = new LinkedHashMap<>();
      ortDecodeIn.put("input_ids", Input.longs(new long[] {decodeIds[b]}, 1, 1));
      long[] ownShape = {1, kvHeads, len, headDim};
      if (len > 0) {
        // (a reference model of no past is a prefill: it takes no caches)
        caches.forEach((k, v) -> ortDecodeIn.put("past_key_values." + k,
            Input.floats(positions(v, b, kvHeads, capacity, headDim, 0, len), ownShape)));
      }
      Map<String, float[]> ortDecode = OrtReference.run(
          ReferenceModels.build(m, 1, 1, len).modelBytes(), ortDecodeIn);
      System.arraycopy(ortDecode.get("logits"), 0, want, (int) ((1 + b) * vocab), (int) vocab);
      for (String k : caches.keySet()) {
        float[] present = ortDecode.get("present." + k);
        float[] full = expected.get("present." + k);
        for (int h = 0; h < kvHeads; h++) {
          System.arraycopy(present, (int) (h * (len + 1) * headDim), full,
              (int) (((b * kvHeads + h) * capacity) * headDim), (int) ((len + 1) * headDim));
        }
      }
    }
    expected.put("logits", want);
    assertClose(variant + " step", expected, step);
    assertArrayEquals(new long[] {1, 1 + decodes, vocab}, step.get("logits").shape());
    assertArrayEquals(cacheShape, step.get("present.0.key").shape());
  }

  /**
   * The serving step the bench times (prompt in two micro-batches, three decodes with their own
   * lengths), quantized as it quantizes it (bf16 or fp8 linear layers, attention's products and
   * the KV caches bf16), against the reference interpreter running the same quantized module.
   * In f32 (none) the outputs agree to 1e-5 (measured 1e-6). Quantized, the chip's attention
   * runs its products in bf16, rounding q and the probabilities to bf16 (the softmax's division
   * after P V), where the interpreter's attention keeps q and P in f32: the first layer's caches
   * agree bit for bit, the second's by one bf16 step in most prompt rows, and the logits by 0.6
   * to 0.8% (bf16) and 4.4% (fp8) of the largest. Tolerances 2^-6 and 2^-3: a wrong row,
   * position or cache slot is off by the values themselves. "streams": compiled as the bench
   * compiles it with --two-streams, the decode attention in a second control stream (in a
   * quarter of the SRAM and ACC, its q, k and v rows handed over and its output handed back by
   * shared tokens), and emulated in an order the race check draws as well. "overlapped": each
   * micro-batch's o projection and MLP after the next one's attention (HfOptions
   * overlapAttention) and the second micro-batch's prompt attention in the second stream too,
   * reading the first stream's projections and the first micro-batch's keys; "every": the
   * first micro-batch's prompt attention there as well (HfOptions EVERY_ATTENTION), its keys
   * then handed from the second stream to itself; "later": the plain order with the second
   * micro-batch's prompt attention in the second stream (the bench's layout at 8 chips).
   */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"llama none", "llama bf16", "llama fp8", "phi3 bf16", "mixtral bf16",
      "llama none streams", "llama bf16 streams", "llama fp8 streams", "mixtral bf16 streams",
      "llama none overlapped", "llama fp8 overlapped", "phi3 bf16 overlapped",
      "llama bf16 every", "mixtral none every", "llama fp8 later", "phi3 none later"})
  void quantizedServingStepMatchesTheInterpreter(String variantAndMode) throws Exception {
    String[] parts = variantAndMode.split(" ");
    String variant = parts[0];
    QuantMode mode = QuantMode.parse(parts[1]);
    boolean streams = parts.length > 2;
    boolean every = streams && parts[2].equals("every");
    boolean overlapped = streams && (every || parts[2].equals("overlapped"));
    boolean later = streams && parts[2].equals("later");
    TinyModel m = TinyModel.of(variant, 42);
    Path dir = m.writeTo(tmp.resolve(variant), Safetensors.Dtype.F32);
    Module module = HfImporter.importModel(dir, HfOptions.step().withMicroBatches(2)
        .withOverlapAttention(overlapped));
    new PassManager(PassPipelines.defaultPipeline()).verifyEach(true).run(module);
    Quantizer.quantize(module, QuantOptions.of(mode));
    Random random = new Random(11);
    long vocab = m.get("vocab_size");
    long[] pastLengths = {2, 0, 4};
    Map<String, Long> dims = Map.of("seq", PROMPT, "batch", (long) pastLengths.length, "past", 5L);
    Inputs in = randomInputs(module, dims, pastLengths, vocab, random);
    Map<String, Tensor> reference = new Interpreter(module).run(in.interpreter());
    BackendOptions options = streams
        ? BackendOptions.defaults().withSecondStream(every ? HfOptions.EVERY_ATTENTION
            : overlapped || later ? HfOptions.OVERLAPPED_ATTENTION : HfOptions.DECODE_ATTENTION, 0.25)
            .withFairDma(every)
        : BackendOptions.defaults();
    SohuProgram program = SohuBackend.compile(module, options).program();
    assertEquals(streams, program.code().stream().anyMatch(w -> InsnCodec.decode(w)
        instanceof Insn.Fork), "forked");
    // as the bench's every-attention layout compiles it (StepModel): its fork asks for fair DMA
    assertEquals(every, program.code().stream().anyMatch(w -> InsnCodec.decode(w)
        instanceof Insn.Fork f && f.fairDma()), "fair_dma");
    Map<String, HostTensor> chip = emulate(program, in.chip(), Options.defaults());
    Map<String, float[]> expected = new LinkedHashMap<>();
    reference.forEach((k, v) -> expected.put(k, v.floats()));
    double tolerance = switch (mode) {
      case NONE -> 1e-5;
      case FP8 -> 0x1p-3;
      default -> 0x1p-6;
    };
    assertClose(variantAndMode + " quantized step", expected, chip, tolerance);
    if (streams) {
      Map<String, HostTensor> raced = emulate(program, in.chip(),
          Options.defaults().withScheduleSeed(5L));
      chip.forEach((k, v) -> assertArrayEquals(v.data(), raced.get(k).data(), k));
    }
  }

  /** A module's inputs, for the reference interpreter and for the chip. */
  record Inputs(List<Tensor> interpreter, Map<String, HostTensor> chip) {}

  /**
   * Seeded inputs for {@code m}'s arguments at {@code dims}, drawn from {@code random} in
   * argument order: token ids below {@code vocab}, {@code past_lengths} taken in turn from
   * {@code pastLengths}, and caches of values a bf16 cache holds exactly, so that both sides
   * read the same numbers.
   */
  static Inputs randomInputs(Module m, Map<String, Long> dims, long[] pastLengths, long vocab,
      Random random) {
    List<Tensor> interpreter = new ArrayList<>();
    Map<String, HostTensor> chip = new LinkedHashMap<>();
    for (Value a : m.main().arguments()) {
      long[] shape = a.type().dims().stream().mapToLong(d -> d.evaluate(dims)).toArray();
      int n = (int) java.util.Arrays.stream(shape).reduce(1, (x, y) -> x * y);
      if (a.type().elementType() == ElementType.I64) {
        long[] v = new long[n];
        for (int i = 0; i < n; i++) {
          v[i] = a.name().equals("past_lengths") ? pastLengths[i % pastLengths.length]
              : random.nextInt((int) vocab);
        }
        interpreter.add(Tensor.ofLongs(ElementType.I64, shape, v));
        chip.put(a.name(), ids(v, shape));
      } else {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
          v[i] = Float.intBitsToFloat(Float.floatToIntBits((float) random.nextGaussian())
              & 0xFFFF0000);
        }
        Tensor t = Tensor.ofFloats(a.type().elementType(), shape, v);
        interpreter.add(t);
        chip.put(a.name(), new HostTensor(DType.valueOf(a.type().elementType().name()), shape,
            t.toBytes()));
      }
    }
    return new Inputs(interpreter, chip);
  }

  /** Positions {@code [from, to)} of batch row {@code b} of a {@code [B, heads, t, d]} cache. */
  private static float[] positions(float[] cache, int b, long heads, long t, long d, long from, long to) {
    float[] out = new float[(int) (heads * (to - from) * d)];
    for (int h = 0; h < heads; h++) {
      System.arraycopy(cache, (int) (((b * heads + h) * t + from) * d), out, (int) (h * (to - from) * d),
          (int) ((to - from) * d));
    }
    return out;
  }

  @Test
  void bertCompiledAndEmulatedMatchesOnnxRuntime() throws Exception {
    TinyModel m = TinyModel.of("bert", 42);
    Path dir = m.writeTo(tmp.resolve("bert"), Safetensors.Dtype.F32);
    long[] idv = randomIds(new Random(7), BATCH * PROMPT, m.get("vocab_size"));
    long[] mask = new long[(int) (BATCH * PROMPT)];
    long[] types = new long[mask.length];
    for (int i = 0; i < mask.length; i++) {
      mask[i] = (i % PROMPT) < PROMPT - (i / PROMPT) ? 1 : 0; // the second row: one padding
      types[i] = (i % PROMPT) >= PROMPT / 2 ? 1 : 0;
    }
    SohuProgram p = compile(HfImporter.importModel(dir, HfOptions.prefill()));
    Map<String, HostTensor> in = new LinkedHashMap<>();
    in.put("input_ids", ids(idv, BATCH, PROMPT));
    in.put("attention_mask", ids(mask, BATCH, PROMPT));
    in.put("token_type_ids", ids(types, BATCH, PROMPT));
    Map<String, float[]> ort = OrtReference.run(ReferenceModels.build(m, BATCH, PROMPT, 0).modelBytes(),
        Map.of("input_ids", Input.longs(idv, BATCH, PROMPT),
            "attention_mask", Input.longs(mask, BATCH, PROMPT),
            "token_type_ids", Input.longs(types, BATCH, PROMPT)));
    assertClose("bert prompt", ort, emulate(p, in));
  }

  // ---- compile and emulate, as `sohuc compile` and `sohuc run` do

  static SohuProgram compile(Module m) {
    new PassManager(PassPipelines.defaultPipeline()).verifyEach(true).run(m);
    SohuProgram p = SohuBackend.compile(m, BackendOptions.defaults()).program();
    return SohuReader.read(SohuWriter.write(p), m.name() + ".sohu");
  }

  static Map<String, HostTensor> emulate(SohuProgram p, Map<String, HostTensor> inputs) {
    return emulate(p, inputs, Options.defaults());
  }

  static Map<String, HostTensor> emulate(SohuProgram p, Map<String, HostTensor> inputs,
      Options options) {
    Emulator emu = new Emulator(p, MachineDescription.defaultTarget(), options);
    FunctionalResult r = emu.runFunctional(inputs, Map.of());
    return r.outputs();
  }

  static HostTensor ids(long[] v, long... shape) {
    ByteBuffer b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    for (long x : v) {
      b.putLong(x);
    }
    return new HostTensor(DType.I64, shape, b.array());
  }

  static long[] randomIds(Random random, long n, long vocab) {
    long[] ids = new long[(int) n];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = random.nextInt((int) vocab);
    }
    return ids;
  }

  /** Per output: max |ort - emulator| <= 1e-4 x max |ort|; prints each figure. */
  static void assertClose(String what, Map<String, float[]> expected,
      Map<String, HostTensor> actual) {
    assertClose(what, expected, actual, TOLERANCE);
  }

  /** Per output: max |reference - emulator| <= tolerance x max |reference|; prints each figure. */
  static void assertClose(String what, Map<String, float[]> expected,
      Map<String, HostTensor> actual, double tolerance) {
    assertEquals(new TreeSet<>(expected.keySet()), new TreeSet<>(actual.keySet()),
        what + ": output names");
    for (var e : expected.entrySet()) {
      float[] want = e.getValue();
      float[] got = actual.get(e.getKey()).toF32();
      assertEquals(want.length, got.length, what + " " + e.getKey() + ": element count");
      if (want.length == 0) {
        continue;  // a step with no decodes has empty caches
      }
      double maxRef = 0;
      double maxDiff = 0;
      for (int i = 0; i < want.length; i++) {
        maxRef = Math.max(maxRef, Math.abs(want[i]));
        double d = Math.abs(want[i] - got[i]);
        maxDiff = Double.isNaN(d) ? Double.POSITIVE_INFINITY : Math.max(maxDiff, d);
      }
      assertTrue(maxRef > 0, what + " " + e.getKey() + " is all zeros");
      double rel = maxDiff / maxRef;
      if (e.getKey().equals("logits") || e.getKey().equals("last_hidden_state")) {
        System.out.printf("%s %s: compiled+emulated vs reference max difference %.3g = %.3g of "
            + "max magnitude %.3g%n", what, e.getKey(), maxDiff, rel, maxRef);
      }
      assertTrue(rel <= tolerance, what + " " + e.getKey() + ": max difference " + maxDiff
          + " exceeds " + tolerance + " x max magnitude " + maxRef);
    }
  }
}
