package dev.sohuc.tests;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.OperatorSetIdProto;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import ai.onnx.proto.OnnxMl.TypeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
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
 * ONNX Runtime's com.microsoft attention-family ops (GroupQueryAttention and Attention with a
 * past among them) on seeded mutations of forms they take: a dim set to 0, 1, a few or 2^40, an
 * input dropped or retyped, a rank changed, a head count or size from -1 to near 2^63. Each node imports or is refused with a one-line error naming the
 * file. One that imports with small dims runs on the reference interpreter (which may refuse it
 * the same way), and is compiled (the backend may refuse it, naming what) and emulated: the
 * chip's outputs within 1e-4 of the interpreter's largest magnitude. Nothing else (a division by
 * zero, a negative dim, an index out of range, a wrong number) gets through.
 */
class ContribOpsRandomFormsTest {
  private static final long[] DIMS = {0, 1, 2, 3, 4, 5, 7, 8, 16, 1L << 40};
  private static final long[] COUNTS = {-1, 0, 1, 2, 3, 4, 8, 16, 1L << 40, Long.MAX_VALUE / 2};
  private static final ElementType[] TYPES = {ElementType.F32, ElementType.I32, ElementType.I64};
  private static final String MS_DOMAIN = "com.microsoft";

  /** An input of a form: its type and shape, or null for an absent optional input. */
  private record In(ElementType type, long[] shape) {}

  /** A form an op takes, to mutate: its inputs, its integer attributes, its output count. */
  private record Form(String op, List<In> inputs, Map<String, Long> attrs, int outputs) {}

  private static In f(long... shape) {
    return new In(ElementType.F32, shape);
  }

  private static In i32(long... shape) {
    return new In(ElementType.I32, shape);
  }

  private static final List<Form> FORMS = List.of(
      new Form("MultiHeadAttention", List.of(f(2, 5, 16), f(2, 5, 16), f(2, 5, 8), f(40), i32(2, 8), f(2, 4, 5, 8),
          f(2, 4, 3, 4), f(2, 4, 3, 2)), Map.of("num_heads", 4L, "unidirectional", 1L), 3),
      // forms the chip runs: no attention_bias, v heads as wide as q's; one sequence's positions
      new Form("MultiHeadAttention", Arrays.asList(f(2, 5, 16), f(2, 5, 16), f(2, 5, 16), f(48), i32(2, 8),
          null, f(2, 4, 3, 4), f(2, 4, 3, 4)), Map.of("num_heads", 4L, "unidirectional", 1L), 3),
      new Form("RotaryEmbedding", List.of(f(2, 5, 16), new In(ElementType.I64, new long[] {2, 5}), f(12, 4),
          f(12, 4)), Map.of("num_heads", 2L, "rotary_embedding_dim", 8L, "interleaved", 0L), 1),
      new Form("RotaryEmbedding", List.of(f(1, 5, 16), new In(ElementType.I64, new long[] {1, 5}), f(12, 4),
          f(12, 4)), Map.of("num_heads", 2L), 1),
      new Form("Attention", List.of(f(2, 5, 16), f(16, 48), f(48), i32(2, 5)), Map.of("num_heads", 4L,
          "unidirectional", 0L), 1),
      new Form("Attention", List.of(f(2, 1, 16), f(16, 48), f(48), i32(2, 5), f(2, 2, 2, 4, 8)), Map.of("num_heads",
          2L, "unidirectional", 1L), 2),
      new Form("GroupQueryAttention", List.of(f(2, 1, 16), f(2, 1, 8), f(2, 1, 8), f(2, 1, 4, 8), f(2, 1, 4, 8),
          i32(2), i32(), f(16, 4), f(16, 4)), Map.of("num_heads", 2L, "kv_num_heads", 1L, "do_rotary", 1L), 3),
      new Form("SkipLayerNormalization", List.of(f(2, 3, 8), f(2, 3, 8), f(8), f(8), f(8)), Map.of(), 4),
      new Form("SkipSimplifiedLayerNormalization", List.of(f(2, 3, 8), f(3, 8), f(8), f(8)), Map.of(), 4),
      new Form("EmbedLayerNormalization", List.of(i32(2, 5), i32(2, 5), f(30, 16), f(8, 16), f(2, 16), f(16),
          f(16), i32(2, 5), i32(2, 5)), Map.of(), 3),
      new Form("FastGelu", List.of(f(2, 3, 8), f(8)), Map.of(), 1),
      new Form("BiasGelu", List.of(f(2, 3, 8), f(8)), Map.of(), 1));

  @TempDir Path dir;

  @Test
  void mutatedFormsImportCompileAndRunOrAreRefusedCleanly() throws Exception {
    Random r = new Random(2026);
    int emulated = 0;
    for (int i = 0; i < 1500; i++) {
      Form base = FORMS.get(r.nextInt(FORMS.size()));
      List<In> inputs = new ArrayList<>(base.inputs());
      Map<String, Long> attrs = new LinkedHashMap<>(base.attrs());
      for (int k = r.nextInt(4); k > 0; k--) {
        mutate(r, inputs, attrs);
      }
      emulated += check(i, base.op(), inputs, attrs, 1 + r.nextInt(base.outputs()), r) ? 1 : 0;
    }
    // most mutations are refused (a wrong rank or type is the point); the rest reach the chip
    // (measured 448 of 1500)
    assertTrue(emulated >= 360, emulated + " of 1500 forms compiled");
  }

  private static void mutate(Random r, List<In> inputs, Map<String, Long> attrs) {
    int at = r.nextInt(inputs.size());
    In in = inputs.get(at);
    switch (r.nextInt(6)) {
      case 0, 1 -> {
        if (in != null && in.shape().length > 0) {
          long[] s = in.shape().clone();
          s[r.nextInt(s.length)] = DIMS[r.nextInt(DIMS.length)];
          inputs.set(at, new In(in.type(), s));
        }
      }
      case 2 -> inputs.set(at, at == 0 ? in : null);
      case 3 -> inputs.set(at, in == null ? null : new In(TYPES[r.nextInt(TYPES.length)], in.shape()));
      case 4 -> {
        if (in != null) {
          long[] s = in.shape();
          inputs.set(at, new In(in.type(), r.nextBoolean() || s.length == 0
              ? append(s, DIMS[r.nextInt(DIMS.length - 1)]) : Arrays.copyOf(s, s.length - 1)));
        }
      }
      default -> {
        List<String> names = List.of("num_heads", "rotary_embedding_dim", "unidirectional", "interleaved",
            "kv_num_heads", "do_rotary", "local_window_size");
        String name = names.get(r.nextInt(names.size()));
        attrs.put(name, COUNTS[r.nextInt(COUNTS.length)]);
      }
    }
  }

  private static long[] append(long[] s, long d) {
    long[] out = Arrays.copyOf(s, s.length + 1);
    out[s.length] = d;
    return out;
  }

  /** Whether the node compiled and ran (and so was compared). */
  private boolean check(int i, String op, List<In> inputs, Map<String, Long> attrs, int outputs, Random r)
      throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g");
    List<String> names = new ArrayList<>();
    List<Tensor> values = new ArrayList<>();
    boolean small = true;
    for (int k = 0; k < inputs.size(); k++) {
      In in = inputs.get(k);
      if (in == null) {
        names.add("");
        continue;
      }
      g.addInput(input("in" + k, in.type(), in.shape()));
      names.add("in" + k);
      small &= Arrays.stream(in.shape()).allMatch(d -> d <= 64);
      if (small) {
        values.add(Models.random(in.type(), in.shape(), r));
      }
    }
    List<String> outs = new ArrayList<>();
    for (int k = 0; k < outputs; k++) {
      outs.add("y" + k);
      g.addOutput(ValueInfoProto.newBuilder().setName("y" + k));
    }
    List<AttributeProto> a = new ArrayList<>();
    attrs.forEach((name, v) -> a.add(AttributeProto.newBuilder().setName(name)
        .setType(AttributeProto.AttributeType.INT).setI(v).build()));
    g.addNode(NodeProto.newBuilder().setOpType(op).setName(op).setDomain(MS_DOMAIN).addAllInput(names)
        .addAllOutput(outs).addAllAttribute(a));
    ModelProto m = ModelProto.newBuilder().setIrVersion(8)
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(MS_DOMAIN).setVersion(1))
        .setGraph(g).build();
    Path file = dir.resolve("case.onnx");
    Files.write(file, m.toByteArray());
    String form = "case " + i + ": " + op + " " + inputs.stream().map(in -> in == null ? "-"
        : in.type() + Arrays.toString(in.shape())).toList() + " " + attrs + ", " + outputs + " outputs";
    Module module = Models.importedOrRefused(form, file);
    return module != null && small && Models.chipMatchesInterpreter(form, module, values);
  }

  private static ValueInfoProto input(String name, ElementType type, long[] dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (long d : dims) {
      shape.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
    }
    DataType t = switch (type) {
      case F32 -> DataType.FLOAT;
      case I32 -> DataType.INT32;
      default -> DataType.INT64;
    };
    return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
        TypeProto.Tensor.newBuilder().setElemType(t.getNumber()).setShape(shape))).build();
  }
}
