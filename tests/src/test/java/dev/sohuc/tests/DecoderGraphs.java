package dev.sohuc.tests;

import ai.onnx.proto.OnnxMl;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Decoder graphs written the way {@code torch.onnx.export} (opset 17, static shapes, eager
 * attention) spells Hugging Face's GPT-2 and Llama: LayerNorm and RMSNorm decomposed into
 * ReduceMean/Pow/Sqrt/Div, Linear as MatMul with a pre-transposed initializer, the causal mask
 * from ConstantOfShape + Trilu (GPT-2: a bool tril and Where(mask, scores, finfo.min); Llama: a
 * triu of finfo.min added to the scores), GELU in its tanh form with Pow(x, 3), RoPE as
 * rotate-half with Slice/Neg/Concat and cos/sin computed from Range positions, repeat_kv as
 * Unsqueeze/Expand/Reshape, SwiGLU as x * Sigmoid(x) * up, and the KV cache as
 * Concat(past, new, axis = 2) returned as {@code present.N.key/value}.
 *
 * <p>Inputs: {@code input_ids} i64 [B, S] and, when {@code past > 0},
 * {@code past_key_values.N.key/value} f32 [B, KV, P, D]. Outputs: {@code logits} [B, S, V] and
 * {@code present.N.key/value} [B, KV, P + S, D]. Weights are seeded N(0, 0.1^2) draws.
 */
final class DecoderGraphs {
  private DecoderGraphs() {}

  /** GPT-2 sizes. */
  record Gpt2(long vocab, long hidden, long heads, long layers, long positions) {
    static final Gpt2 TINY = new Gpt2(96, 32, 4, 2, 64);

    long headDim() {
      return hidden / heads;
    }
  }

  /** Llama sizes. */
  record Llama(long vocab, long hidden, long heads, long kvHeads, long intermediate, long layers,
      double ropeTheta) {
    static final Llama TINY = new Llama(96, 32, 4, 2, 64, 2, 10000);

    long headDim() {
      return hidden / heads;
    }
  }

  static final float FINFO_MIN = -Float.MAX_VALUE;

  /** The GPT-2 stack for {@code seq} new tokens after {@code past} cached ones. */
  static byte[] gpt2(Gpt2 c, long batch, long seq, long past, long seed) {
    Builder g = new Builder(seed);
    long h = c.hidden();
    long d = c.headDim();
    long t = past + seq;
    String ids = g.input("input_ids", DataType.INT64, batch, seq);
    String wte = g.weight("transformer.wte.weight", c.vocab(), h);
    String wpe = g.weight("transformer.wpe.weight", c.positions(), h);
    // position_ids = arange(past, past + seq).unsqueeze(0)
    String pos = g.unsqueeze(g.node("Range", g.scalarLong(past), g.scalarLong(past + seq),
        g.scalarLong(1)), 0);
    String x = g.add(g.node("Gather", wte, ids), g.node("Gather", wpe, pos));
    // the bias buffer's idiom: a bool tril over [S, T], broadcast to [1, 1, S, T]
    String keep = g.unsqueeze(g.node("Trilu", List.of(g.constantOfShape(DataType.BOOL, 1, seq, t),
        g.scalarLong(past)), Builder.intAttr("upper", 0)), 0, 1);
    for (int i = 0; i < c.layers(); i++) {
      String p = "transformer.h." + i;
      String n = g.layerNormDecomposed(x, p + ".ln_1", h, 1e-5f);
      List<String> qkv = g.split(g.conv1d(n, p + ".attn.c_attn", h, 3 * h), 2, h, h, h);
      String q = g.splitHeads(qkv.get(0), batch, seq, c.heads(), d);
      String k = g.splitHeads(qkv.get(1), batch, seq, c.heads(), d);
      String v = g.splitHeads(qkv.get(2), batch, seq, c.heads(), d);
      if (past > 0) {
        k = g.concat(-2, g.input("past_key_values." + i + ".key", DataType.FLOAT, batch, c.heads(),
            past, d), k);
        v = g.concat(-2, g.input("past_key_values." + i + ".value", DataType.FLOAT, batch,
            c.heads(), past, d), v);
      }
      g.output("present." + i + ".key", k);
      g.output("present." + i + ".value", v);
      String scores = g.div(g.matmul(q, g.transpose(k, 0, 1, 3, 2)), g.scalar((float) Math.sqrt(d)));
      scores = g.node("Where", keep, scores, g.scalar(FINFO_MIN));
      String probs = g.node("Softmax", List.of(scores), Builder.intAttr("axis", -1));
      String a = g.mergeHeads(g.matmul(probs, v), batch, seq, h);
      x = g.add(x, g.conv1d(a, p + ".attn.c_proj", h, h));
      n = g.layerNormDecomposed(x, p + ".ln_2", h, 1e-5f);
      String f = g.geluTanh(g.conv1d(n, p + ".mlp.c_fc", h, 4 * h));
      x = g.add(x, g.conv1d(f, p + ".mlp.c_proj", 4 * h, h));
    }
    x = g.layerNormDecomposed(x, "transformer.ln_f", h, 1e-5f);
    // tied embeddings: lm_head is wte
    g.output("logits", g.matmul(x, g.transpose(wte, 1, 0)));
    return g.modelBytes("gpt2");
  }

  /** The Llama stack for {@code seq} new tokens after {@code past} cached ones. */
  static byte[] llama(Llama c, long batch, long seq, long past, long seed) {
    Builder g = new Builder(seed);
    long h = c.hidden();
    long d = c.headDim();
    long kv = c.kvHeads();
    long rep = c.heads() / kv;
    long t = past + seq;
    String ids = g.input("input_ids", DataType.INT64, batch, seq);
    String x = g.node("Gather", g.weight("model.embed_tokens.weight", c.vocab(), h), ids);
    // LlamaRotaryEmbedding: freqs = inv_freq[None, :, None] @ position_ids[:, None, :]
    float[] inv = new float[(int) d / 2];
    for (int i = 0; i < inv.length; i++) {
      inv[i] = (float) (1.0 / Math.pow(c.ropeTheta(), 2.0 * i / d));
    }
    String positions = g.node("Cast", List.of(g.unsqueeze(g.unsqueeze(g.node("Range",
        g.scalarLong(past), g.scalarLong(past + seq), g.scalarLong(1)), 0), 1)),
        Builder.intAttr("to", DataType.FLOAT.getNumber()));
    String freqs = g.transpose(g.matmul(g.init("model.rotary_emb.inv_freq", inv, 1, d / 2, 1),
        positions), 0, 2, 1);
    String emb = g.concat(-1, freqs, freqs);
    String cos = g.unsqueeze(g.node("Cos", emb), 1);
    String sin = g.unsqueeze(g.node("Sin", emb), 1);
    // _prepare_4d_causal_attention_mask: triu(full((S, T), finfo.min), past + 1)[None, None]
    String mask = g.node("Expand", g.unsqueeze(g.node("Trilu", g.constantOfShape(DataType.FLOAT,
        FINFO_MIN, seq, t), g.scalarLong(past + 1)), 0, 1), g.longs(batch, 1, seq, t));
    for (int i = 0; i < c.layers(); i++) {
      String p = "model.layers." + i;
      String n = g.rmsNormDecomposed(x, p + ".input_layernorm.weight", h, 1e-5f);
      String q = g.splitHeads(g.linear(n, p + ".self_attn.q_proj", h, c.heads() * d), batch, seq,
          c.heads(), d);
      String k = g.splitHeads(g.linear(n, p + ".self_attn.k_proj", h, kv * d), batch, seq, kv, d);
      String v = g.splitHeads(g.linear(n, p + ".self_attn.v_proj", h, kv * d), batch, seq, kv, d);
      q = g.ropeRotateHalf(q, cos, sin, d);
      k = g.ropeRotateHalf(k, cos, sin, d);
      if (past > 0) {
        k = g.concat(2, g.input("past_key_values." + i + ".key", DataType.FLOAT, batch, kv, past,
            d), k);
        v = g.concat(2, g.input("past_key_values." + i + ".value", DataType.FLOAT, batch, kv,
            past, d), v);
      }
      g.output("present." + i + ".key", k);
      g.output("present." + i + ".value", v);
      k = g.repeatKv(k, batch, kv, rep, t, d);
      v = g.repeatKv(v, batch, kv, rep, t, d);
      String scores = g.mul(g.matmul(q, g.transpose(k, 0, 1, 3, 2)),
          g.scalar((float) (1 / Math.sqrt(d))));
      scores = g.add(scores, mask);
      String probs = g.node("Softmax", List.of(scores), Builder.intAttr("axis", -1));
      String a = g.mergeHeads(g.matmul(probs, v), batch, seq, c.heads() * d);
      x = g.add(x, g.linear(a, p + ".self_attn.o_proj", c.heads() * d, h));
      n = g.rmsNormDecomposed(x, p + ".post_attention_layernorm.weight", h, 1e-5f);
      String gate = g.linear(n, p + ".mlp.gate_proj", h, c.intermediate());
      String up = g.linear(n, p + ".mlp.up_proj", h, c.intermediate());
      String act = g.mul(gate, g.node("Sigmoid", gate));
      x = g.add(x, g.linear(g.mul(act, up), p + ".mlp.down_proj", c.intermediate(), h));
    }
    x = g.rmsNormDecomposed(x, "model.norm.weight", h, 1e-5f);
    g.output("logits", g.linear(x, "lm_head", h, c.vocab()));
    return g.modelBytes("llama");
  }

  /** The names of a decoder's KV-cache inputs, in graph order. */
  static List<String> pastNames(long layers) {
    List<String> names = new ArrayList<>();
    for (int i = 0; i < layers; i++) {
      names.add("past_key_values." + i + ".key");
      names.add("past_key_values." + i + ".value");
    }
    return names;
  }

  /** Appends nodes with fresh names; weights are seeded random draws. */
  static final class Builder {
    private final OnnxMl.GraphProto.Builder graph = OnnxMl.GraphProto.newBuilder();
    private final Random random;
    private int counter;
    private boolean contrib;

    Builder(long seed) {
      this.random = new Random(seed);
    }

    private String fresh(String hint) {
      return "/" + hint + "_" + counter++;
    }

    String input(String name, DataType type, long... shape) {
      graph.addInput(valueInfo(name, type, shape));
      return name;
    }

    /** An input whose dims are numbers or, given as names, symbolic (dim_param). */
    String symbolicInput(String name, DataType type, Object... dims) {
      OnnxMl.TensorShapeProto.Builder s = OnnxMl.TensorShapeProto.newBuilder();
      for (Object d : dims) {
        var dim = OnnxMl.TensorShapeProto.Dimension.newBuilder();
        s.addDim(d instanceof String p ? dim.setDimParam(p) : dim.setDimValue(((Number) d).longValue()));
      }
      graph.addInput(OnnxMl.ValueInfoProto.newBuilder().setName(name).setType(OnnxMl.TypeProto.newBuilder()
          .setTensorType(OnnxMl.TypeProto.Tensor.newBuilder().setElemType(type.getNumber()).setShape(s))));
      return name;
    }

    void output(String name, String value) {
      graph.addNode(OnnxMl.NodeProto.newBuilder().setOpType("Identity").setName(fresh("Identity"))
          .addInput(value).addOutput(name));
      graph.addOutput(OnnxMl.ValueInfoProto.newBuilder().setName(name));
    }

    private static OnnxMl.ValueInfoProto valueInfo(String name, DataType type, long... shape) {
      OnnxMl.TensorShapeProto.Builder s = OnnxMl.TensorShapeProto.newBuilder();
      for (long dim : shape) {
        s.addDim(OnnxMl.TensorShapeProto.Dimension.newBuilder().setDimValue(dim));
      }
      return OnnxMl.ValueInfoProto.newBuilder().setName(name).setType(OnnxMl.TypeProto.newBuilder()
          .setTensorType(OnnxMl.TypeProto.Tensor.newBuilder().setElemType(type.getNumber())
              .setShape(s))).build();
    }

    private static OnnxMl.TensorProto tensor(String name, DataType type, ByteBuffer raw,
        long... shape) {
      OnnxMl.TensorProto.Builder t = OnnxMl.TensorProto.newBuilder().setName(name)
          .setDataType(type.getNumber()).setRawData(ByteString.copyFrom(raw.array()));
      Arrays.stream(shape).forEach(t::addDims);
      return t.build();
    }

    String init(String name, float[] data, long... shape) {
      ByteBuffer b = ByteBuffer.allocate(data.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      b.asFloatBuffer().put(data);
      graph.addInitializer(tensor(name, DataType.FLOAT, b, shape));
      return name;
    }

    /** A seeded N(0, 0.1^2) weight. */
    String weight(String name, long... shape) {
      float[] w = new float[(int) Arrays.stream(shape).reduce(1, (a, b) -> a * b)];
      for (int i = 0; i < w.length; i++) {
        w[i] = (float) (0.1 * random.nextGaussian());
      }
      return init(name, w, shape);
    }

    /** Seeded random bytes (u8), as block-quantized codes and packed zero points are stored. */
    String bytes(String name, long... shape) {
      byte[] b = new byte[(int) Arrays.stream(shape).reduce(1, (x, y) -> x * y)];
      random.nextBytes(b);
      graph.addInitializer(tensor(name, DataType.UINT8, ByteBuffer.wrap(b), shape));
      return name;
    }

    /** A norm's weight near 1, so the test sees the norm and not a zero. */
    String normWeight(String name, long size) {
      float[] w = new float[(int) size];
      for (int i = 0; i < w.length; i++) {
        w[i] = (float) (1 + 0.1 * random.nextGaussian());
      }
      return init(name, w, size);
    }

    /** A Constant node, as the exporter writes scalars and shape vectors. */
    private String constant(OnnxMl.TensorProto value) {
      String out = fresh("Constant");
      graph.addNode(OnnxMl.NodeProto.newBuilder().setOpType("Constant").setName(out)
          .addOutput(out).addAttribute(OnnxMl.AttributeProto.newBuilder().setName("value")
              .setType(OnnxMl.AttributeProto.AttributeType.TENSOR).setT(value)));
      return out;
    }

    String scalar(float v) {
      ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(v);
      return constant(tensor("c", DataType.FLOAT, b));
    }

    String scalarLong(long v) {
      ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v);
      return constant(tensor("c", DataType.INT64, b));
    }

    String longs(long... v) {
      ByteBuffer b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
      b.asLongBuffer().put(v);
      return constant(tensor("c", DataType.INT64, b, v.length));
    }

    /** {@code ConstantOfShape(shape, value)} with a bool or float fill. */
    String constantOfShape(DataType type, float value, long... shape) {
      ByteBuffer b;
      if (type == DataType.BOOL) {
        b = ByteBuffer.allocate(1).put((byte) (value != 0 ? 1 : 0));
      } else {
        b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(value);
      }
      return node("ConstantOfShape", List.of(longs(shape)), OnnxMl.AttributeProto.newBuilder()
          .setName("value").setType(OnnxMl.AttributeProto.AttributeType.TENSOR)
          .setT(tensor("value", type, b, 1)).build());
    }

    String node(String op, String... inputs) {
      return node(op, List.of(inputs));
    }

    String node(String op, List<String> inputs, OnnxMl.AttributeProto... attrs) {
      String out = fresh(op);
      graph.addNode(OnnxMl.NodeProto.newBuilder().setOpType(op).setName(out)
          .addAllInput(inputs).addOutput(out).addAllAttribute(List.of(attrs)));
      return out;
    }

    /**
     * An ONNX Runtime contrib op (com.microsoft, as its transformer optimizer writes them): the
     * outputs at {@code outputs} get fresh names, the others are left out; all are returned.
     */
    List<String> contrib(String op, List<String> inputs, int[] outputs,
        OnnxMl.AttributeProto... attrs) {
      contrib = true;
      List<String> names = new ArrayList<>();
      for (int i = 0; i <= Arrays.stream(outputs).max().orElseThrow(); i++) {
        int index = i;
        names.add(Arrays.stream(outputs).anyMatch(o -> o == index) ? fresh(op) : "");
      }
      graph.addNode(OnnxMl.NodeProto.newBuilder().setOpType(op).setDomain("com.microsoft")
          .setName(fresh(op)).addAllInput(inputs).addAllOutput(names)
          .addAllAttribute(List.of(attrs)));
      return names;
    }

    static OnnxMl.AttributeProto floatAttr(String name, float v) {
      return OnnxMl.AttributeProto.newBuilder().setName(name)
          .setType(OnnxMl.AttributeProto.AttributeType.FLOAT).setF(v).build();
    }

    static OnnxMl.AttributeProto intAttr(String name, long v) {
      return OnnxMl.AttributeProto.newBuilder().setName(name)
          .setType(OnnxMl.AttributeProto.AttributeType.INT).setI(v).build();
    }

    static OnnxMl.AttributeProto intsAttr(String name, long... v) {
      OnnxMl.AttributeProto.Builder a = OnnxMl.AttributeProto.newBuilder().setName(name)
          .setType(OnnxMl.AttributeProto.AttributeType.INTS);
      Arrays.stream(v).forEach(a::addInts);
      return a.build();
    }

    String add(String a, String b) {
      return node("Add", a, b);
    }

    String mul(String a, String b) {
      return node("Mul", a, b);
    }

    String div(String a, String b) {
      return node("Div", a, b);
    }

    String matmul(String a, String b) {
      return node("MatMul", a, b);
    }

    String transpose(String x, long... perm) {
      return node("Transpose", List.of(x), intsAttr("perm", perm));
    }

    String reshape(String x, long... shape) {
      return node("Reshape", x, longs(shape));
    }

    String unsqueeze(String x, long... axes) {
      return node("Unsqueeze", x, longs(axes));
    }

    String concat(long axis, String... xs) {
      return node("Concat", List.of(xs), intAttr("axis", axis));
    }

    /** {@code x[..., from:to]} on the last axis, as torch exports a basic slice. */
    String sliceLast(String x, long from, long to) {
      return node("Slice", x, longs(from), longs(to), longs(-1), longs(1));
    }

    List<String> split(String x, long axis, long... sizes) {
      OnnxMl.NodeProto.Builder n = OnnxMl.NodeProto.newBuilder().setOpType("Split")
          .setName(fresh("Split")).addInput(x).addInput(longs(sizes))
          .addAttribute(intAttr("axis", axis));
      List<String> outs = new ArrayList<>();
      for (int i = 0; i < sizes.length; i++) {
        String o = fresh("Split_out");
        outs.add(o);
        n.addOutput(o);
      }
      graph.addNode(n);
      return outs;
    }

    /** nn.Linear without bias: MatMul by the transposed weight the exporter stores. */
    String linear(String x, String name, long in, long out) {
      return matmul(x, weight(name + ".weight_T", in, out));
    }

    /** GPT-2's Conv1D: {@code x @ W + b}. */
    String conv1d(String x, String name, long in, long out) {
      return add(matmul(x, weight(name + ".weight", in, out)), weight(name + ".bias", out));
    }

    /** {@code (x - mean) / sqrt(var + eps) * w + b}, as exported before opset 17. */
    String layerNormDecomposed(String x, String name, long size, float eps) {
      String mean = node("ReduceMean", List.of(x), intsAttr("axes", -1), intAttr("keepdims", 1));
      String centered = node("Sub", x, mean);
      String var = node("ReduceMean", List.of(node("Pow", centered, scalar(2))),
          intsAttr("axes", -1), intAttr("keepdims", 1));
      String normed = div(centered, node("Sqrt", add(var, scalar(eps))));
      return add(mul(normed, normWeight(name + ".weight", size)), weight(name + ".bias", size));
    }

    /** LlamaRMSNorm: {@code w * (x * rsqrt(mean(x^2) + eps))}, rsqrt as 1 / sqrt. */
    String rmsNormDecomposed(String x, String name, long size, float eps) {
      String var = node("ReduceMean", List.of(node("Pow", x, scalar(2))), intsAttr("axes", -1),
          intAttr("keepdims", 1));
      String rsqrt = div(scalar(1), node("Sqrt", add(var, scalar(eps))));
      return mul(normWeight(name, size), mul(x, rsqrt));
    }

    /** NewGELUActivation: {@code 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))}. */
    String geluTanh(String x) {
      String cube = node("Pow", x, scalar(3));
      String inner = mul(scalar((float) Math.sqrt(2 / Math.PI)), add(x, mul(scalar(0.044715f), cube)));
      return mul(mul(scalar(0.5f), x), add(scalar(1), node("Tanh", inner)));
    }

    /** {@code [B, S, H*D] -> [B, H, S, D]}. */
    String splitHeads(String x, long b, long s, long heads, long d) {
      return transpose(reshape(x, b, s, heads, d), 0, 2, 1, 3);
    }

    /** {@code [B, H, S, D] -> [B, S, H*D]}. */
    String mergeHeads(String x, long b, long s, long hd) {
      return reshape(transpose(x, 0, 2, 1, 3), b, s, hd);
    }

    /** {@code x * cos + rotate_half(x) * sin}, rotate_half = cat(-x2, x1). */
    String ropeRotateHalf(String x, String cos, String sin, long d) {
      String x1 = sliceLast(x, 0, d / 2);
      String x2 = sliceLast(x, d / 2, Long.MAX_VALUE);
      String rotated = concat(-1, node("Neg", x2), x1);
      return add(mul(x, cos), mul(rotated, sin));
    }

    /** repeat_kv: {@code x[:, :, None].expand(B, KV, n, T, D).reshape(B, KV*n, T, D)}. */
    String repeatKv(String x, long b, long kv, long n, long t, long d) {
      if (n == 1) {
        return x;
      }
      String expanded = node("Expand", unsqueeze(x, 2), longs(b, kv, n, t, d));
      return reshape(expanded, b, kv * n, t, d);
    }

    byte[] modelBytes(String name) {
      OnnxMl.ModelProto.Builder m = OnnxMl.ModelProto.newBuilder().setIrVersion(8)
          .setProducerName("pytorch")
          .addOpsetImport(OnnxMl.OperatorSetIdProto.newBuilder().setDomain("").setVersion(17));
      if (contrib) {
        m.addOpsetImport(OnnxMl.OperatorSetIdProto.newBuilder().setDomain("com.microsoft")
            .setVersion(1));
      }
      return m.setGraph(graph.setName(name)).build().toByteArray();
    }
  }
}
