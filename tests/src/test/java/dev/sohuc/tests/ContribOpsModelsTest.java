package dev.sohuc.tests;

import static dev.sohuc.tests.DecoderGraphs.Builder.floatAttr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import dev.sohuc.cli.Sohuc;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Blocks as ONNX Runtime's transformer optimizer writes them, with its com.microsoft fused ops
 * (and two forms of other exporters: an attention written with Einsum, a ViT patch embedding
 * Conv), through {@code sohuc compile} and
 * {@code sohuc run}: every output within {@link #TOL} (relative
 * above 1, absolute below) of ONNX Runtime on the same file. Sizes span several 128-wide tiles
 * and a sequence that fills none.
 *
 * <p>One op at a time the importer's IR is within 3e-7 of ONNX Runtime (OpConformanceTest); through
 * four matmuls of 256 to 688 terms the f32 summing order alone moves outputs by up to 1.1e-5 (the
 * reference interpreter is as far from ONNX Runtime as the chip), hence 2e-5.
 */
class ContribOpsModelsTest {
  static final double TOL = 2e-5;
  static final long SEED = 13;
  static final long SEQ = 37;

  @TempDir Path tmp;

  /**
   * BERT's feed-forward sublayer: SkipLayerNormalization of the attention output (its dense bias
   * and the residual) -> MatMul -> FastGelu with the intermediate bias -> MatMul ->
   * SkipLayerNormalization with the output bias, over the first norm's output.
   */
  @Test
  void bertFeedForwardBlock() throws Exception {
    long h = 256;
    long f = 1024;
    var g = new DecoderGraphs.Builder(SEED);
    String attn = g.input("attention_output", DataType.FLOAT, 1, SEQ, h);
    String residual = g.input("residual", DataType.FLOAT, 1, SEQ, h);
    g.output("last_hidden_state", outputSublayers(g, attn, residual, h, f));
    String report = check("bert-ffn", g.modelBytes("bert_ffn"), List.of(attn, residual), h);
    assertTrue(report.contains("unfused: none"), report);
  }

  /**
   * BERT's sublayers after attention as the optimizer writes them: SkipLayerNormalization of the
   * attention's projected output (its dense bias and the residual) -> MatMul -> FastGelu with the
   * intermediate bias -> MatMul -> SkipLayerNormalization with the output bias over the first
   * norm; returns the last norm's output.
   */
  private static String outputSublayers(DecoderGraphs.Builder g, String projected, String residual,
      long h, long f) {
    String ln1 = g.contrib("SkipLayerNormalization", List.of(projected, residual,
        g.normWeight("attention.output.LayerNorm.weight", h), g.weight("attention.output.LayerNorm.bias", h),
        g.weight("attention.output.dense.bias", h)), new int[] {0}, floatAttr("epsilon", 1e-12f)).get(0);
    String up = g.contrib("FastGelu", List.of(g.matmul(ln1, g.weight("intermediate.dense.weight", h, f)),
        g.weight("intermediate.dense.bias", f)), new int[] {0}).get(0);
    String down = g.matmul(up, g.weight("output.dense.weight", f, h));
    return g.contrib("SkipLayerNormalization", List.of(down, ln1, g.normWeight("output.LayerNorm.weight", h),
        g.weight("output.LayerNorm.bias", h), g.weight("output.dense.bias", h)), new int[] {0},
        floatAttr("epsilon", 1e-12f)).get(0);
  }

  /**
   * A pre-norm residual stream carried by the skip norms' input_skip_bias_sum outputs, through
   * the other contrib ops: SkipSimplifiedLayerNormalization (no bias, default epsilon) ->
   * MatMul -> BiasGelu -> MatMul -> SkipLayerNormalization (no beta or bias) -> MatMul ->
   * QuickGelu (default alpha) -> MatMul -> Gelu -> SkipSimplifiedLayerNormalization (bias).
   */
  @Test
  void preNormStreamThroughEveryContribOp() throws Exception {
    long h = 256;
    long f = 688;
    var g = new DecoderGraphs.Builder(SEED + 1);
    String x = g.input("hidden_states", DataType.FLOAT, 1, SEQ, h);
    String residual = g.input("residual", DataType.FLOAT, 1, SEQ, h);
    List<String> n1 = g.contrib("SkipSimplifiedLayerNormalization", List.of(x, residual,
        g.normWeight("norm1.weight", h)), new int[] {0, 3});
    String a = g.contrib("BiasGelu", List.of(g.matmul(n1.get(0), g.weight("fc1.weight", h, f)),
        g.weight("fc1.bias", f)), new int[] {0}).get(0);
    List<String> n2 = g.contrib("SkipLayerNormalization", List.of(g.matmul(a, g.weight("fc2.weight", f, h)),
        n1.get(3), g.normWeight("norm2.weight", h)), new int[] {0, 3}, floatAttr("epsilon", 1e-5f));
    String q = g.contrib("QuickGelu", List.of(g.matmul(n2.get(0), g.weight("fc3.weight", h, f))),
        new int[] {0}).get(0);
    String e = g.contrib("Gelu", List.of(g.matmul(q, g.weight("fc4.weight", f, h))), new int[] {0}).get(0);
    List<String> n3 = g.contrib("SkipSimplifiedLayerNormalization", List.of(e, n2.get(3),
        g.normWeight("norm3.weight", h), g.weight("norm3.bias", h)), new int[] {0, 3},
        floatAttr("epsilon", 1e-6f));
    g.output("hidden_out", n3.get(0));
    g.output("residual_out", n3.get(3));
    g.output("norm2_sum", n2.get(3));
    // QuickGelu's sigmoid(1.702 x) has no fused op: the report lists it, and nothing else
    String report = check("pre-norm-stream", g.modelBytes("pre_norm_stream"), List.of(x, residual), h);
    assertTrue(report.contains("unfused (ops a transformer op would absorb): {sigmoid=1}"), report);
  }

  /**
   * A BERT layer as the optimizer writes it with its embedding and attention fusions:
   * EmbedLayerNormalization of int32 input_ids and segment_ids (vocabulary 100, 64 positions,
   * 2 segments) -> Attention (4 heads of 64) with the raw [1, SEQ] int32 attention mask, its last
   * 5 keys padding -> MatMul -> SkipLayerNormalization with the dense bias over the embeddings ->
   * MatMul -> FastGelu -> MatMul -> SkipLayerNormalization. The attention must fuse.
   */
  @Test
  void bertLayerFromEmbeddingsThroughAttention() throws Exception {
    bertLayer("bert-layer", false);
  }

  /**
   * The same layer in the optimizer's older form: Attention reads EmbedLayerNormalization's
   * mask_index (each row's count of ones, int32) instead of the raw mask, so the chip computes
   * the count (equal, a sum) and the int32 round trip between the two ops folds away.
   */
  @Test
  void bertLayerWithTheEmbeddingsMaskIndex() throws Exception {
    bertLayer("bert-layer-mask-index", true);
  }

  private void bertLayer(String name, boolean viaMaskIndex) throws Exception {
    long h = 256;
    long f = 1024;
    var g = new DecoderGraphs.Builder(SEED + 2);
    String ids = g.input("input_ids", DataType.INT32, 1, SEQ);
    String segments = g.input("token_type_ids", DataType.INT32, 1, SEQ);
    String mask = g.input("attention_mask", DataType.INT32, 1, SEQ);
    List<String> emb = g.contrib("EmbedLayerNormalization", List.of(ids, segments,
        g.weight("embeddings.word_embeddings.weight", 100, h),
        g.weight("embeddings.position_embeddings.weight", 64, h),
        g.weight("embeddings.token_type_embeddings.weight", 2, h), g.normWeight("embeddings.LayerNorm.weight", h),
        g.weight("embeddings.LayerNorm.bias", h), mask), new int[] {0, 1}, floatAttr("epsilon", 1e-12f));
    String attn = g.contrib("Attention", List.of(emb.get(0), g.weight("attention.qkv.weight", h, 3 * h),
        g.weight("attention.qkv.bias", 3 * h), viaMaskIndex ? emb.get(1) : mask), new int[] {0},
        DecoderGraphs.Builder.intAttr("num_heads", 4)).get(0);
    String projected = g.matmul(attn, g.weight("attention.output.dense.weight", h, h));
    g.output("last_hidden_state", outputSublayers(g, projected, emb.get(0), h, f));
    Random r = new Random(SEED);
    long[] idv = new long[(int) SEQ];
    long[] segv = new long[(int) SEQ];
    long[] maskv = new long[(int) SEQ];
    for (int i = 0; i < SEQ; i++) {
      idv[i] = r.nextInt(100);
      segv[i] = i < SEQ / 2 ? 0 : 1;
      maskv[i] = i < SEQ - 5 ? 1 : 0;
    }
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put(ids, Tensor.ofLongs(ElementType.I32, new long[] {1, SEQ}, idv));
    in.put(segments, Tensor.ofLongs(ElementType.I32, new long[] {1, SEQ}, segv));
    in.put(mask, Tensor.ofLongs(ElementType.I32, new long[] {1, SEQ}, maskv));
    String report = check(name, g.modelBytes(name.replace('-', '_')), in);
    assertOneFusedAttention(report);
  }

  /**
   * Attention reading key lengths (mask_index [1] int32, the form of the older optimizer's
   * EmbedLayerNormalization output), unidirectional so also causal, after an
   * EmbedLayerNormalization without segments, mask or position_ids whose embedding_sum is an
   * output too. The lengths are a graph input here.
   */
  @Test
  void keyLengthsIntoCausalAttention() throws Exception {
    long h = 128;
    var g = new DecoderGraphs.Builder(SEED + 3);
    String ids = g.input("input_ids", DataType.INT32, 1, SEQ);
    String lengths = g.input("mask_index", DataType.INT32, 1);
    List<String> emb = g.contrib("EmbedLayerNormalization", List.of(ids, "",
        g.weight("word_embeddings.weight", 50, h), g.weight("position_embeddings.weight", SEQ, h), "",
        g.normWeight("LayerNorm.weight", h), g.weight("LayerNorm.bias", h)), new int[] {0, 1, 2});
    String attn = g.contrib("Attention", List.of(emb.get(0), g.weight("qkv.weight", h, 3 * h),
        g.weight("qkv.bias", 3 * h), lengths), new int[] {0}, DecoderGraphs.Builder.intAttr("num_heads", 2),
        DecoderGraphs.Builder.intAttr("unidirectional", 1)).get(0);
    g.output("attention_out", attn);
    g.output("embedding_sum", emb.get(2));
    Random r = new Random(SEED);
    long[] idv = new long[(int) SEQ];
    for (int i = 0; i < SEQ; i++) {
      idv[i] = r.nextInt(50);
    }
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put(ids, Tensor.ofLongs(ElementType.I32, new long[] {1, SEQ}, idv));
    in.put(lengths, Tensor.ofLongs(ElementType.I32, new long[] {1}, new long[] {SEQ - 9}));
    String report = check("key-lengths-causal", g.modelBytes("key_lengths_causal"), in);
    assertOneFusedAttention(report);
  }

  /**
   * An encoder's self-attention as the optimizer writes it with MultiHeadAttention: q, k and v
   * projected by MatMuls, their biases in the op's bias input, the [1, SEQ] int32 padding mask
   * (the last 6 keys padding) as its key_padding_mask -> MatMul of the output projection. The
   * attention must fuse.
   */
  @Test
  void multiHeadAttentionEncoderLayer() throws Exception {
    long h = 256;
    var g = new DecoderGraphs.Builder(SEED + 4);
    String x = g.input("hidden_states", DataType.FLOAT, 1, SEQ, h);
    String mask = g.input("attention_mask", DataType.INT32, 1, SEQ);
    List<String> inputs = new java.util.ArrayList<>(projections(g, x, h));
    inputs.addAll(List.of(g.weight("qkv.bias", 3 * h), mask));
    String attn = g.contrib("MultiHeadAttention", inputs, new int[] {0},
        DecoderGraphs.Builder.intAttr("num_heads", 4)).get(0);
    g.output("attention_out", g.matmul(attn, g.weight("o.weight", h, h)));
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put(x, gaussian(new Random(SEED), 1, SEQ, h));
    in.put(mask, paddingMask(1, 6));
    String report = check("mha-encoder", g.modelBytes("mha_encoder"), in);
    assertOneFusedAttention(report);
  }

  /**
   * MultiHeadAttention over a batch of 2 with both an attention_bias [1, 4, SEQ, SEQ] (a relative
   * position bias per head, shared by the batch) and a key_padding_mask [2, SEQ] (the second
   * sequence's last 9 keys padding): the two masks broadcast on different dims, and their sum
   * reaches the fused attention as one [2, 4, SEQ, SEQ] mask.
   */
  @Test
  void multiHeadAttentionWithABiasAndAPaddingMask() throws Exception {
    long h = 128;
    var g = new DecoderGraphs.Builder(SEED + 7);
    String x = g.input("hidden_states", DataType.FLOAT, 2, SEQ, h);
    String bias = g.input("position_bias", DataType.FLOAT, 1, 4, SEQ, SEQ);
    String mask = g.input("attention_mask", DataType.INT32, 2, SEQ);
    List<String> inputs = new java.util.ArrayList<>(projections(g, x, h));
    inputs.addAll(List.of("", mask, bias));
    String attn = g.contrib("MultiHeadAttention", inputs, new int[] {0},
        DecoderGraphs.Builder.intAttr("num_heads", 4)).get(0);
    g.output("attention_out", attn);
    Random r = new Random(SEED);
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put(x, gaussian(r, 2, SEQ, h));
    in.put(bias, gaussian(r, 1, 4, SEQ, SEQ));
    in.put(mask, paddingMask(2, 9));
    String report = check("mha-bias-mask", g.modelBytes("mha_bias_mask"), in);
    assertOneFusedAttention(report);
  }

  /**
   * A decoder's causal self-attention with a KV cache: MultiHeadAttention (unidirectional, 2
   * heads of 64, no bias) over 11 past keys and values given as inputs, the present keys and
   * values [1, 2, 11 + SEQ, 64] outputs beside the attention's. The attention must fuse, causal.
   */
  @Test
  void multiHeadAttentionWithPastIsCausalOverTheNewKeys() throws Exception {
    long h = 128;
    long past = 11;
    var g = new DecoderGraphs.Builder(SEED + 5);
    String x = g.input("hidden_states", DataType.FLOAT, 1, SEQ, h);
    String pk = g.input("past_key", DataType.FLOAT, 1, 2, past, 64);
    String pv = g.input("past_value", DataType.FLOAT, 1, 2, past, 64);
    List<String> inputs = new java.util.ArrayList<>(projections(g, x, h));
    inputs.addAll(List.of("", "", "", pk, pv));
    List<String> attn = g.contrib("MultiHeadAttention", inputs,
        new int[] {0, 1, 2}, DecoderGraphs.Builder.intAttr("num_heads", 2),
        DecoderGraphs.Builder.intAttr("unidirectional", 1));
    g.output("attention_out", attn.get(0));
    g.output("present_key", attn.get(1));
    g.output("present_value", attn.get(2));
    Random r = new Random(SEED);
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put(x, gaussian(r, 1, SEQ, h));
    in.put(pk, gaussian(r, 1, 2, past, 64));
    in.put(pv, gaussian(r, 1, 2, past, 64));
    String report = check("mha-past", g.modelBytes("mha_past"), in);
    assertTrue(report.matches("(?s).*fused:\\s+attention\\s+1\n.*"), report);
  }

  /**
   * Llama's attention as the optimizer writes it without GroupQueryAttention: q, k and v MatMuls
   * -> RotaryEmbedding of q and k (int64 position_ids [1, SEQ] from 3 on, caches of 64 positions)
   * -> MultiHeadAttention, unidirectional -> MatMul. Rope and attention must fuse into the chip's
   * ops (nothing left unfused).
   */
  @Test
  void llamaAttentionWithRotaryEmbedding() throws Exception {
    llamaRotary("llama-rotary-mha", 1);
  }

  /**
   * The same over two sequences at positions of their own (from 3 and from 10): the ropes rotate
   * heads moved ahead of the batch against one table of both sequences' rows.
   */
  @Test
  void rotaryEmbeddingOfSequencesAtTheirOwnPositions() throws Exception {
    llamaRotary("llama-rotary-batch", 2);
  }

  private void llamaRotary(String name, int batch) throws Exception {
    long h = 256;
    long headDim = 64;
    var g = new DecoderGraphs.Builder(SEED + 6);
    String x = g.input("hidden_states", DataType.FLOAT, batch, SEQ, h);
    String ids = g.input("position_ids", DataType.INT64, batch, SEQ);
    Random r = new Random(SEED);
    float[] cos = new float[(int) (64 * headDim / 2)];
    float[] sin = new float[cos.length];
    for (int p = 0; p < 64; p++) {
      for (int i = 0; i < headDim / 2; i++) {
        double angle = p * Math.pow(10000, -2.0 * i / headDim);
        cos[(int) (p * headDim / 2 + i)] = (float) Math.cos(angle);
        sin[(int) (p * headDim / 2 + i)] = (float) Math.sin(angle);
      }
    }
    String cosCache = g.init("cos_cache", cos, 64, headDim / 2);
    String sinCache = g.init("sin_cache", sin, 64, headDim / 2);
    List<String> qk = new java.util.ArrayList<>();
    for (String q : List.of("q", "k")) {
      qk.add(g.contrib("RotaryEmbedding", List.of(g.matmul(x, g.weight(q + ".weight", h, h)), ids, cosCache,
          sinCache), new int[] {0}, DecoderGraphs.Builder.intAttr("num_heads", 4)).get(0));
    }
    String attn = g.contrib("MultiHeadAttention", List.of(qk.get(0), qk.get(1),
        g.matmul(x, g.weight("v.weight", h, h))), new int[] {0}, DecoderGraphs.Builder.intAttr("num_heads", 4),
        DecoderGraphs.Builder.intAttr("unidirectional", 1)).get(0);
    g.output("attention_out", g.matmul(attn, g.weight("o.weight", h, h)));
    long[] positions = new long[(int) (batch * SEQ)];
    for (int i = 0; i < positions.length; i++) {
      positions[i] = 3 + 7 * (i / SEQ) + i % SEQ;
    }
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put(x, gaussian(r, batch, SEQ, h));
    in.put(ids, Tensor.ofLongs(ElementType.I64, new long[] {batch, SEQ}, positions));
    String report = check(name, g.modelBytes(name.replace('-', '_')), in);
    assertOneFusedAttention(report);
  }

  /** An unsupported contrib op (DecoderMaskedMultiHeadAttention) is named, with exit code 1. */
  @Test
  void unsupportedContribOpExitsOneNamingIt() throws Exception {
    long h = 64;
    var g = new DecoderGraphs.Builder(SEED);
    String x = g.input("x", DataType.FLOAT, 1, SEQ, h);
    String attn = g.contrib("DecoderMaskedMultiHeadAttention", List.of(x, x, x), new int[] {0},
        DecoderGraphs.Builder.intAttr("num_heads", 4)).get(0);
    g.output("y", attn);
    Path onnx = tmp.resolve("attention.onnx");
    Files.write(onnx, g.modelBytes("attention"));
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(new String[] {"compile", onnx.toString(), "-o", tmp.resolve("a.sohu").toString()},
        new PrintWriter(out, true), new PrintWriter(err, true));
    assertEquals(1, code, out + "\n" + err);
    assertTrue(err.toString().matches("error: \\Q" + onnx + "\\E: 1 node with unsupported ops: "
        + "com\\.microsoft\\.DecoderMaskedMultiHeadAttention x1 \\(/DecoderMaskedMultiHeadAttention_\\d+\\)\n"),
        err.toString());
  }

  /**
   * Compiles the model, runs it on the emulator with seeded N(0, 1) f32 inputs of
   * {@code [1, SEQ, h]}, and compares every output with ORT; returns the compile report.
   */
  private String check(String name, byte[] model, List<String> inputs, long h) throws Exception {
    Random r = new Random(SEED);
    Map<String, Tensor> in = new LinkedHashMap<>();
    for (String input : inputs) {
      in.put(input, gaussian(r, 1, SEQ, h));
    }
    return check(name, model, in);
  }

  /**
   * Attention written with Einsum (as models with einsum attention export it): scores
   * {@code bhqd,bhkd->bhqk}, scaled, softmax, then {@code bhqk,bhkd->bhqd} on heads split from
   * [h, h] projections. It imports as the matmuls it stands for, so the attention fuses and runs
   * as ONNX Runtime computes it.
   */
  @Test
  void einsumAttentionFusesAndMatchesOnnxRuntime() throws Exception {
    long h = 32;
    long heads = 4;
    DecoderGraphs.Builder g = new DecoderGraphs.Builder(SEED);
    String x = g.input("x", DataType.FLOAT, 1, SEQ, h);
    List<String> qkv = projections(g, x, h);
    List<String> split = qkv.stream().map(p -> g.splitHeads(p, 1, SEQ, heads, h / heads)).toList();
    String scores = g.node("Einsum", List.of(split.get(0), split.get(1)), attr("equation", "bhqd,bhkd->bhqk"));
    String probs = g.node("Softmax", List.of(g.mul(scores, g.scalar((float) (1 / Math.sqrt(h / heads))))),
        DecoderGraphs.Builder.intAttr("axis", -1));
    String ctx = g.node("Einsum", List.of(probs, split.get(2)), attr("equation", "bhqk,bhkd->bhqd"));
    g.output("y", g.mergeHeads(ctx, 1, SEQ, h));
    assertOneFusedAttention(check("einsum-attention", g.modelBytes("einsum_attention"), List.of(x), h));
  }

  /**
   * A ViT image tower's start: a 4 x 4 patch embedding Conv of a 3 x 16 x 24 image (24 patches of
   * 48 values to 32 channels), flattened to tokens, then its pre-norm and the q projection. The
   * Conv imports as patches times the flattened kernel; the chip's numbers are ONNX Runtime's.
   */
  @Test
  void patchEmbeddingConvMatchesOnnxRuntime() throws Exception {
    long h = 32;
    DecoderGraphs.Builder g = new DecoderGraphs.Builder(SEED);
    String image = g.input("pixel_values", DataType.FLOAT, 1, 3, 16, 24);
    String patches = g.node("Conv", List.of(image, g.weight("patch.weight", h, 3, 4, 4), g.weight("patch.bias", h)),
        DecoderGraphs.Builder.intsAttr("strides", 4, 4), DecoderGraphs.Builder.intsAttr("kernel_shape", 4, 4));
    String tokens = g.transpose(g.reshape(patches, 1, h, 24), 0, 2, 1);
    String normed = g.layerNormDecomposed(tokens, "pre", h, 1e-6f);
    g.output("q", g.matmul(normed, g.weight("q.weight", h, h)));
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put(image, gaussian(new Random(SEED), 1, 3, 16, 24));
    check("patch-embedding", g.modelBytes("vit_start"), in);
  }

  private static ai.onnx.proto.OnnxMl.AttributeProto attr(String name, String value) {
    return ai.onnx.proto.OnnxMl.AttributeProto.newBuilder().setName(name)
        .setType(ai.onnx.proto.OnnxMl.AttributeProto.AttributeType.STRING)
        .setS(com.google.protobuf.ByteString.copyFromUtf8(value)).build();
  }

  /** The compile report shows one attention fused and nothing left unfused. */
  private static void assertOneFusedAttention(String report) {
    assertTrue(report.contains("unfused: none") && report.matches("(?s).*fused:\\s+attention\\s+1\n.*"), report);
  }

  /** The q, k and v projections of {@code x}, [h, h] MatMuls each. */
  private static List<String> projections(DecoderGraphs.Builder g, String x, long h) {
    return List.of(g.matmul(x, g.weight("q.weight", h, h)), g.matmul(x, g.weight("k.weight", h, h)),
        g.matmul(x, g.weight("v.weight", h, h)));
  }

  /** An int32 [batch, SEQ] attention mask of ones, the last sequence's last {@code padded} keys 0. */
  private static Tensor paddingMask(int batch, int padded) {
    long[] mask = new long[(int) (batch * SEQ)];
    for (int i = 0; i < mask.length; i++) {
      mask[i] = i < mask.length - padded ? 1 : 0;
    }
    return Tensor.ofLongs(ElementType.I32, new long[] {batch, SEQ}, mask);
  }

  /** An f32 tensor of seeded N(0, 1) values. */
  private static Tensor gaussian(Random r, long... shape) {
    float[] v = new float[(int) java.util.Arrays.stream(shape).reduce(1, Math::multiplyExact)];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) r.nextGaussian();
    }
    return Tensor.ofFloats(ElementType.F32, shape, v);
  }

  /** As above, on the given inputs. */
  /**
   * A feed-forward block of 4-bit MatMulNBits layers, as ONNX Runtime's weight-only quantizer
   * and transformers.js's q4 exports write them: up (256 -> 688, blocks of 32, packed zero
   * points; 688 not a multiple of the MXU's tile) -> FastGelu -> down (688 -> 256, blocks of 64,
   * the last partial, default zero points, a bias). The weights are dequantized when imported,
   * so the chip runs the f32 matmuls ONNX Runtime's kernel computes.
   */
  @Test
  void blockQuantizedFeedForwardMatchesOnnxRuntime() throws Exception {
    long h = 256;
    long f = 688;
    var g = new DecoderGraphs.Builder(SEED + 9);
    String x = g.input("hidden_states", DataType.FLOAT, 1, SEQ, h);
    String up = nbits(g, "up", x, h, f, 32, true, false);
    String act = g.contrib("FastGelu", List.of(up), new int[] {0}).get(0);
    g.output("mlp_out", nbits(g, "down", act, f, h, 64, false, true));
    String report = check("matmulnbits-ffn", g.modelBytes("matmulnbits_ffn"), List.of(x), h);
    assertTrue(report.contains("unfused: none"), report);
  }

  /**
   * An attention block as onnxruntime-genai exports a decoder (int4 CPU builds): RMS norm
   * (SimplifiedLayerNormalization) -> one packed 4-bit qkv MatMulNBits -> GroupQueryAttention (4
   * query heads of 64 on 2 kv heads, rotated, after 11 past positions, seqlens_k and
   * total_sequence_length computed from the attention mask as the builder does) -> 4-bit output
   * projection, the presents outputs too.
   */
  @Test
  void genAiAttentionBlockMatchesOnnxRuntime() throws Exception {
    genAiAttentionBlock("genai-attention", 11, -1);
  }

  /** The same block as a first prompt (no past inputs), with a sliding window of 8 positions. */
  @Test
  void genAiFirstPromptWithAWindowMatchesOnnxRuntime() throws Exception {
    genAiAttentionBlock("genai-prompt-window", 0, 8);
  }

  /**
   * The block as a decode step is compiled once for every past length: one new token, the past
   * and the attention mask symbolic (past_sequence_length, total_sequence_length, bounded by the
   * compiler), run at a past of 23.
   */
  @Test
  void genAiDecodeStepOverASymbolicPastMatchesOnnxRuntime() throws Exception {
    long h = 256;
    long past = 23;
    var g = new DecoderGraphs.Builder(SEED + 11);
    String x = g.input("hidden_states", DataType.FLOAT, 2, 1, h);
    String mask = g.symbolicInput("attention_mask", DataType.INT64, 2, "total_sequence_length");
    String pk = g.symbolicInput("past_key_values.0.key", DataType.FLOAT, 2, 2, "past_sequence_length", 64);
    String pv = g.symbolicInput("past_key_values.0.value", DataType.FLOAT, 2, 2, "past_sequence_length", 64);
    List<String> attn = genAiAttention(g, "", x, mask, pk, pv, h, -1);
    g.output("attn_out", attn.get(0));
    g.output("present.0.key", attn.get(1));
    g.output("present.0.value", attn.get(2));
    Random r = new Random(SEED);
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put(x, gaussian(r, 2, 1, h));
    in.put(mask, ones(2, past + 1));
    in.put(pk, gaussian(r, 2, 2, past, 64));
    in.put(pv, gaussian(r, 2, 2, past, 64));
    check("genai-decode", g.modelBytes("genai_decode"), in);
  }

  /**
   * A two-layer decoder in onnxruntime-genai's int4 form, as one program for every prompt and
   * past length: embedding, per layer SkipSimplifiedLayerNormalization -> packed 4-bit qkv ->
   * GroupQueryAttention (rotated, over a symbolic past) -> 4-bit output projection ->
   * SkipSimplifiedLayerNormalization -> 4-bit gate and up, SiLU, 4-bit down; the final norm and a
   * 4-bit lm_head. Run on the chip at a 5-token prompt after 19 past tokens.
   */
  @Test
  void genAiTwoLayerDecoderMatchesOnnxRuntime() throws Exception {
    long h = 256;
    long f = 512;
    long vocab = 320;
    long past = 19;
    long seq = 5;
    var g = new DecoderGraphs.Builder(SEED + 12);
    String ids = g.symbolicInput("input_ids", DataType.INT64, 1, "sequence_length");
    String mask = g.symbolicInput("attention_mask", DataType.INT64, 1, "total_sequence_length");
    String x = g.node("Gather", List.of(g.weight("embed_tokens.weight", vocab, h), ids));
    Map<String, Tensor> in = new LinkedHashMap<>();
    Random r = new Random(SEED);
    long[] tokens = new long[(int) seq];
    for (int i = 0; i < seq; i++) {
      tokens[i] = r.nextInt((int) vocab);
    }
    in.put(ids, Tensor.ofLongs(ElementType.I64, new long[] {1, seq}, tokens));
    in.put(mask, ones(1, past + seq));
    for (int layer = 0; layer < 2; layer++) {
      String at = "layer" + layer + ".";
      String pk = g.symbolicInput("past_key_values." + layer + ".key", DataType.FLOAT, 1, 2,
          "past_sequence_length", 64);
      String pv = g.symbolicInput("past_key_values." + layer + ".value", DataType.FLOAT, 1, 2,
          "past_sequence_length", 64);
      in.put(pk, gaussian(r, 1, 2, past, 64));
      in.put(pv, gaussian(r, 1, 2, past, 64));
      List<String> attn = genAiAttention(g, at, x, mask, pk, pv, h, -1);
      g.output("present." + layer + ".key", attn.get(1));
      g.output("present." + layer + ".value", attn.get(2));
      String o = nbits(g, at + "o_proj", attn.get(0), h, h, 32, false, false);
      List<String> normed = g.contrib("SkipSimplifiedLayerNormalization", List.of(o, x,
          g.normWeight(at + "post_attention_layernorm.weight", h)), new int[] {0, 3},
          floatAttr("epsilon", 1e-5f));
      String gate = nbits(g, at + "gate_proj", normed.get(0), h, f, 32, true, false);
      String up = nbits(g, at + "up_proj", normed.get(0), h, f, 32, true, false);
      String act = g.mul(g.mul(gate, g.node("Sigmoid", gate)), up);
      String down = nbits(g, at + "down_proj", act, f, h, 64, false, false);
      x = g.add(down, normed.get(3));
    }
    String last = g.node("SimplifiedLayerNormalization", List.of(x, g.normWeight("norm.weight", h)),
        DecoderGraphs.Builder.intAttr("axis", -1), floatAttr("epsilon", 1e-5f));
    g.output("logits", nbits(g, "lm_head", last, h, vocab, 32, false, false));
    check("genai-decoder", g.modelBytes("genai_decoder"), in);
  }

  /**
   * GPT-2's attention as ONNX Runtime's optimizer fuses it with the KV cache: Attention
   * (unidirectional, 4 heads of 32) with the int32 mask over past and new keys and the stacked
   * past [2, B, N, P, H] (P symbolic), the present output beside the projected attention. Run
   * on the chip at 5 new tokens after 9, the first sequence's first key padding.
   */
  @Test
  void gpt2AttentionWithItsPastMatchesOnnxRuntime() throws Exception {
    long h = 128;
    long past = 9;
    long seq = 5;
    var g = new DecoderGraphs.Builder(SEED + 13);
    String x = g.input("hidden_states", DataType.FLOAT, 2, seq, h);
    String mask = g.symbolicInput("attention_mask", DataType.INT32, 2, "total_sequence_length");
    String pastKv = g.symbolicInput("past_0", DataType.FLOAT, 2, 2, 4, "past_sequence_length", 32);
    List<String> attn = g.contrib("Attention", List.of(x, g.weight("c_attn.weight", h, 3 * h),
        g.weight("c_attn.bias", 3 * h), mask, pastKv), new int[] {0, 1}, DecoderGraphs.Builder.intAttr("num_heads", 4),
        DecoderGraphs.Builder.intAttr("unidirectional", 1));
    g.output("attention_out", g.matmul(attn.get(0), g.weight("c_proj.weight", h, h)));
    g.output("present_0", attn.get(1));
    Random r = new Random(SEED);
    long[] m = new long[(int) (2 * (past + seq))];
    java.util.Arrays.fill(m, 1);
    m[0] = 0;
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put(x, gaussian(r, 2, seq, h));
    in.put(mask, Tensor.ofLongs(ElementType.I32, new long[] {2, past + seq}, m));
    in.put(pastKv, gaussian(r, 2, 2, 4, past, 32));
    check("gpt2-attention-past", g.modelBytes("gpt2_attention_past"), in);
    // a mask of fewer keys than the past and the new tokens hold is refused when launched
    in.put(mask, Tensor.ofLongs(ElementType.I32, new long[] {2, past + seq - 1}, java.util.Arrays.copyOf(m,
        (int) (2 * (past + seq - 1)))));
    String err = runFails(tmp.resolve("gpt2-attention-past.sohu"), in, "short-mask");
    assertEquals("error: dimensions: past_sequence_length+5 = 14 exceeds total_sequence_length = 13: the program "
        + "slices its 13 rows up to past_sequence_length+5 (metadata dim_limits)\n", err);
  }

  private void genAiAttentionBlock(String name, long past, long window) throws Exception {
    Map<String, Tensor> in = new LinkedHashMap<>();
    String report = check(name, genAiAttentionBlock(name, past, window, in), in);
    assertTrue(report.contains("unfused: none"), report);
  }

  /**
   * Rope positions the chip computes (GroupQueryAttention's, from the mask's sum) past the 128
   * rows of the cos/sin cache, 120 past tokens and 37 new: no launch limit can see them, so the
   * row gather's own bound (the table's rows) stops the run at the first one instead of rotating
   * by whatever lies beyond the cache.
   */
  @Test
  void genAiPositionsPastTheRotaryCacheStopTheRun() throws Exception {
    Map<String, Tensor> in = new LinkedHashMap<>();
    byte[] model = genAiAttentionBlock("genai-past-the-cache", 120, -1, in);
    Path onnx = tmp.resolve("genai-past-the-cache.onnx");
    Files.write(onnx, model);
    Path bin = tmp.resolve("genai-past-the-cache.sohu");
    Models.sohuc("compile", onnx.toString(), "-o", bin.toString());
    String err = runFails(bin, in, "past-the-cache");
    assertTrue(err.matches("error: trap at pc \\d+ `gather [^`]*limit=r\\d+[^`]*` \\(IR op gather %\\w+ at "
        + "/GroupQueryAttention_\\d+\\): out of bounds: gather: index 128 \\(row 8\\) is outside the table's "
        + "128 rows \\(its limit register\\)\n"), err);
  }

  /** The block's model, its inputs put in {@code in}: seeded states, a mask of ones. */
  private static byte[] genAiAttentionBlock(String name, long past, long window, Map<String, Tensor> in) {
    long h = 256;
    var g = new DecoderGraphs.Builder(SEED + 10);
    String x = g.input("hidden_states", DataType.FLOAT, 1, SEQ, h);
    String mask = g.input("attention_mask", DataType.INT64, 1, past + SEQ);
    String pk = past == 0 ? "" : g.input("past_key_values.0.key", DataType.FLOAT, 1, 2, past, 64);
    String pv = past == 0 ? "" : g.input("past_key_values.0.value", DataType.FLOAT, 1, 2, past, 64);
    List<String> attn = genAiAttention(g, "", x, mask, pk, pv, h, window);
    g.output("attn_out", nbits(g, "o_proj", attn.get(0), h, h, 32, true, false));
    g.output("present.0.key", attn.get(1));
    g.output("present.0.value", attn.get(2));
    Random r = new Random(SEED);
    in.put(x, gaussian(r, 1, SEQ, h));
    in.put(mask, ones(1, past + SEQ));
    if (past > 0) {
      in.put(pk, gaussian(r, 1, 2, past, 64));
      in.put(pv, gaussian(r, 1, 2, past, 64));
    }
    return g.modelBytes(name.replace('-', '_'));
  }

  /** Runs {@code bin} on {@code in} through the CLI, asserts exit code 1, returns its stderr. */
  private String runFails(Path bin, Map<String, Tensor> in, String dirName) throws Exception {
    Path dir = tmp.resolve(dirName);
    Files.createDirectories(dir);
    int i = 0;
    for (Map.Entry<String, Tensor> e : in.entrySet()) {
      dev.sohuc.onnx.TensorFiles.write(dir.resolve("input_" + i++ + ".pb"), e.getValue(), e.getKey());
    }
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(new String[] {"run", bin.toString(), "--inputs", dir.toString(), "--output-dir",
        dir.resolve("out").toString()}, new PrintWriter(out, true), new PrintWriter(err, true));
    assertEquals(1, code, out + "\n" + err);
    return err.toString();
  }

  /**
   * RMS norm -> packed 4-bit qkv -> GroupQueryAttention (4 rotated query heads of 64 on 2 kv
   * heads, seqlens_k and total_sequence_length from the i64 mask as onnxruntime-genai's builder
   * computes them) over h = 256 columns; its output and presents.
   */
  private static List<String> genAiAttention(DecoderGraphs.Builder g, String prefix, String x, String mask, String pk,
      String pv, long h, long window) {
    String normed = g.node("SimplifiedLayerNormalization", List.of(x, g.normWeight(prefix + "input_layernorm.weight",
        h)),
        DecoderGraphs.Builder.intAttr("axis", -1), floatAttr("epsilon", 1e-5f));
    String qkv = nbits(g, prefix + "qkv_proj", normed, h, 2 * h, 32, false, false);
    String seqlens = g.node("Cast", List.of(g.node("Sub", g.node("ReduceSum", List.of(mask, g.longs(1)),
        DecoderGraphs.Builder.intAttr("keepdims", 0)), g.scalarLong(1))), DecoderGraphs.Builder.intAttr("to", 6));
    String total = g.node("Cast", List.of(g.node("Gather", List.of(g.node("Shape", mask), g.scalarLong(1)))),
        DecoderGraphs.Builder.intAttr("to", 6));
    return g.contrib("GroupQueryAttention", List.of(qkv, "", "", pk, pv, seqlens, total,
        g.weight(prefix + "cos_cache", 128, 32), g.weight(prefix + "sin_cache", 128, 32)), new int[] {0, 1, 2},
        DecoderGraphs.Builder.intAttr("num_heads", 4), DecoderGraphs.Builder.intAttr("kv_num_heads", 2),
        DecoderGraphs.Builder.intAttr("do_rotary", 1), DecoderGraphs.Builder.intAttr("local_window_size", window));
  }

  /** An i64 attention mask of ones. */
  private static Tensor ones(long batch, long keys) {
    long[] v = new long[(int) (batch * keys)];
    java.util.Arrays.fill(v, 1);
    return Tensor.ofLongs(ElementType.I64, new long[] {batch, keys}, v);
  }

  /** A 4-bit MatMulNBits of x [.., k] to n columns: seeded codes, scales in [0.002, 0.02). */
  private static String nbits(DecoderGraphs.Builder g, String name, String x, long k, long n,
      long block, boolean zeroPoints, boolean bias) {
    long blocks = (k + block - 1) / block;
    float[] scales = new float[(int) (n * blocks)];
    Random r = new Random(k * n + block);
    for (int i = 0; i < scales.length; i++) {
      scales[i] = 0.002f + 0.018f * r.nextFloat();
    }
    List<String> inputs = new java.util.ArrayList<>(List.of(x, g.bytes(name + ".qweight", n, blocks, block / 2),
        g.init(name + ".scales", scales, n * blocks)));
    inputs.add(zeroPoints ? g.bytes(name + ".zeros", n * ((blocks + 1) / 2)) : "");
    if (bias) {
      inputs.addAll(List.of("", g.weight(name + ".bias", n)));
    }
    return g.contrib("MatMulNBits", inputs, new int[] {0}, DecoderGraphs.Builder.intAttr("K", k),
        DecoderGraphs.Builder.intAttr("N", n), DecoderGraphs.Builder.intAttr("bits", 4),
        DecoderGraphs.Builder.intAttr("block_size", block)).get(0);
  }

  private String check(String name, byte[] model, Map<String, Tensor> in) throws Exception {
    Path onnx = tmp.resolve(name + ".onnx");
    Files.write(onnx, model);
    Path bin = tmp.resolve(name + ".sohu");
    String report = Models.sohuc("compile", onnx.toString(), "--report", "-o", bin.toString());
    Models.assertMatchesOrt(name + " (seed " + SEED + ")", model, in,
        Models.sohucRun(bin, in, tmp.resolve(name)), TOL);
    return report;
  }
}
