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
 * Blocks as ONNX Runtime's transformer optimizer writes them, with its com.microsoft fused ops,
 * through {@code sohuc compile} and {@code sohuc run}: every output within {@link #TOL} (relative
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
    String ln1 = g.contrib("SkipLayerNormalization", List.of(attn, residual,
        g.normWeight("attention.output.LayerNorm.weight", h), g.weight("attention.output.LayerNorm.bias", h),
        g.weight("attention.output.dense.bias", h)), new int[] {0}, floatAttr("epsilon", 1e-12f)).get(0);
    String up = g.contrib("FastGelu", List.of(g.matmul(ln1, g.weight("intermediate.dense.weight", h, f)),
        g.weight("intermediate.dense.bias", f)), new int[] {0}).get(0);
    String down = g.matmul(up, g.weight("output.dense.weight", f, h));
    String ln2 = g.contrib("SkipLayerNormalization", List.of(down, ln1, g.normWeight("output.LayerNorm.weight", h),
        g.weight("output.LayerNorm.bias", h), g.weight("output.dense.bias", h)), new int[] {0},
        floatAttr("epsilon", 1e-12f)).get(0);
    g.output("last_hidden_state", ln2);
    String report = check("bert-ffn", g.modelBytes("bert_ffn"), List.of(attn, residual), h);
    assertTrue(report.contains("unfused: none"), report);
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

  /** An unsupported contrib op (MultiHeadAttention, of unfused q, k and v) is named, with exit code 1. */
  @Test
  void unsupportedContribOpExitsOneNamingIt() throws Exception {
    long h = 64;
    var g = new DecoderGraphs.Builder(SEED);
    String x = g.input("x", DataType.FLOAT, 1, SEQ, h);
    String attn = g.contrib("MultiHeadAttention", List.of(x, x, x), new int[] {0},
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
        + "com\\.microsoft\\.MultiHeadAttention x1 \\(/MultiHeadAttention_\\d+\\)\n"), err.toString());
  }

  /**
   * Compiles the model, runs it on the emulator with seeded N(0, 1) f32 inputs of
   * {@code [1, SEQ, h]}, and compares every output with ORT; returns the compile report.
   */
  private String check(String name, byte[] model, List<String> inputs, long h) throws Exception {
    Path onnx = tmp.resolve(name + ".onnx");
    Files.write(onnx, model);
    Random r = new Random(SEED);
    Map<String, Tensor> in = new LinkedHashMap<>();
    for (String input : inputs) {
      float[] v = new float[(int) (SEQ * h)];
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) r.nextGaussian();
      }
      in.put(input, Tensor.ofFloats(ElementType.F32, new long[] {1, SEQ, h}, v));
    }
    Path bin = tmp.resolve(name + ".sohu");
    String report = Models.sohuc("compile", onnx.toString(), "--report", "-o", bin.toString());
    Models.assertMatchesOrt(name + " (seed " + SEED + ")", model, in,
        Models.sohucRun(bin, in, tmp.resolve(name)), TOL);
    return report;
  }
}
