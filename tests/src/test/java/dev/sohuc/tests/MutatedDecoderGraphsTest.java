package dev.sohuc.tests;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import com.google.protobuf.ByteString;
import dev.sohuc.cli.Sohuc;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Seeded structural mutations of the decoder graphs {@link DecoderGraphs} writes (GPT-2, and
 * Llama with a KV cache: a prompt, and a decode step of two sequences), one or two per model: an integer attribute set to 0, a few, 2^31,
 * 2^40 or either end of the longs; an op type swapped for another the importer knows; an input
 * rewired to another node's output; a graph input's dim changed, made symbolic or left unnamed; a constant's
 * dims or integer data changed; an initializer's dims changed; a node deleted. Each model goes
 * through {@code sohuc compile} as a user runs it: exit 0, or exit 1 with a one-line error that
 * names the file. Each that compiles with static inputs runs on the interpreter and on the
 * chip, every output within 1e-2 of the interpreter's largest magnitude: a rewired graph may
 * divide by a norm near zero, which magnifies f32 rounding (7e-4 measured), where a wrong
 * lowering is off by the whole value. This found nodes without their required inputs crashing
 * the importer, a reduction over all axes that the backend could not rewrite, and a layer_norm
 * whose scalar gamma the chip read past its end.
 */
class MutatedDecoderGraphsTest {
  private static final long[] INTS = {0, 1, -1, 2, 3, -2, 7, 64, 1L << 31, (1L << 40) + 3, Long.MAX_VALUE,
      Long.MIN_VALUE};
  private static final String[] OPS = {"Add", "Mul", "Sub", "Div", "Neg", "MatMul", "Gemm", "Softmax", "Reshape",
      "Transpose", "Gather", "Concat", "Slice", "Split", "Unsqueeze", "Squeeze", "Expand", "Where", "ReduceMean",
      "Pow", "Sqrt", "Tanh", "Erf", "Cast", "Shape", "Range", "ConstantOfShape", "LayerNormalization", "Trilu",
      "CumSum", "Pad", "Tile"};
  private static final int CASES = 250;

  @TempDir Path dir;

  @Test
  void mutatedGpt2CompilesAndMatchesOrIsRefusedCleanly() throws Exception {
    run("gpt2", DecoderGraphs.gpt2(DecoderGraphs.Gpt2.TINY, 1, 8, 0, 1), 31);
  }

  @Test
  void mutatedLlamaPromptCompilesAndMatchesOrIsRefusedCleanly() throws Exception {
    run("llama", DecoderGraphs.llama(DecoderGraphs.Llama.TINY, 1, 8, 4, 1), 32);
  }

  @Test
  void mutatedLlamaDecodeStepCompilesAndMatchesOrIsRefusedCleanly() throws Exception {
    run("llama_decode", DecoderGraphs.llama(DecoderGraphs.Llama.TINY, 2, 1, 7, 1), 33);
  }

  private void run(String name, byte[] model, long seed) throws Exception {
    ModelProto base = ModelProto.parseFrom(model);
    Random r = new Random(seed);
    int compiled = 0;
    int emulated = 0;
    for (int i = 0; i < CASES; i++) {
      ModelProto.Builder m = base.toBuilder();
      String form = name + " case " + i + ":" + mutate(m.getGraphBuilder(), r)
          + (r.nextBoolean() ? mutate(m.getGraphBuilder(), r) : "");
      Path file = dir.resolve(name + ".onnx");
      Files.write(file, m.build().toByteArray());
      if (!compiles(form, file)) {
        continue;
      }
      compiled++;
      Module module = Models.importedOrRefused(form, file);
      List<Tensor> inputs = new ArrayList<>();
      for (Value v : module.main().arguments()) {
        TensorType t = v.type();
        if (!t.isStatic()) {
          inputs = null;
          break;
        }
        inputs.add(Models.random(t.elementType(), t.dims().stream().mapToLong(Dim::value).toArray(), r));
      }
      if (inputs != null && Models.chipMatchesInterpreter(form, module, inputs, 1e-2)) {
        emulated++;
      }
    }
    System.out.printf("%s: %d of %d mutated graphs compiled, %d emulated%n", name, compiled, CASES, emulated);
    // most mutations break the graph; the rest must still compile and run
    assertTrue(compiled >= CASES / 10 && emulated >= compiled * 9 / 10, compiled + " compiled, " + emulated
        + " emulated");
  }

  /** Whether {@code sohuc compile} took it; fails unless it exited 0, or 1 with one line naming it. */
  private boolean compiles(String form, Path file) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(new String[] {"compile", file.toString(), "-o", dir.resolve("m.sohu").toString()},
        new PrintWriter(out), new PrintWriter(err));
    String message = err.toString().strip();
    if (code == 1 && message.startsWith("error: " + file) && !message.contains("\n")) {
      return false;
    }
    assertTrue(code == 0, () -> form + ": exit " + code + ": " + out + message);
    return true;
  }

  /** One mutation of {@code g}, described. */
  private static String mutate(GraphProto.Builder g, Random r) {
    NodeProto.Builder n = g.getNodeBuilder(r.nextInt(g.getNodeCount()));
    switch (r.nextInt(7)) {
      case 0 -> {
        if (n.getAttributeCount() == 0) {
          return "";
        }
        AttributeProto.Builder a = n.getAttributeBuilder(r.nextInt(n.getAttributeCount()));
        long v = INTS[r.nextInt(INTS.length)];
        if (a.getIntsCount() > 0) {
          a.setInts(r.nextInt(a.getIntsCount()), v);
        } else {
          a.setI(v);
        }
        return " " + n.getName() + "." + a.getName() + " = " + v;
      }
      case 1 -> {
        n.setOpType(OPS[r.nextInt(OPS.length)]);
        return " " + n.getName() + " made " + n.getOpType();
      }
      case 2 -> {
        NodeProto from = g.getNode(r.nextInt(g.getNodeCount()));
        if (n.getInputCount() == 0 || from.getOutputCount() == 0) {
          return "";
        }
        n.setInput(r.nextInt(n.getInputCount()), from.getOutput(0));
        return " " + n.getName() + " reads " + from.getOutput(0);
      }
      case 3 -> {
        var input = g.getInputBuilder(r.nextInt(g.getInputCount()));
        TensorShapeProto.Builder shape = input.getTypeBuilder().getTensorTypeBuilder().getShapeBuilder();
        if (shape.getDimCount() == 0) {
          return "";
        }
        var d = shape.getDimBuilder(r.nextInt(shape.getDimCount()));
        if (r.nextBoolean()) {
          d.setDimValue(INTS[r.nextInt(INTS.length)]);
        } else {
          d.clearDimValue().setDimParam(r.nextBoolean() ? "seq" : "");
        }
        return " input " + input.getName() + " dims " + shape.getDimList();
      }
      case 4 -> {
        if (!n.getOpType().equals("Constant") || n.getAttributeCount() == 0) {
          return "";
        }
        TensorProto.Builder t = n.getAttributeBuilder(0).getTBuilder();
        if (t.getDataType() == TensorProto.DataType.INT64_VALUE && t.getRawData().size() >= 8) {
          ByteBuffer raw = ByteBuffer.wrap(t.getRawData().toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
          long v = INTS[r.nextInt(INTS.length)];
          raw.putLong(8 * r.nextInt(raw.capacity() / 8), v);
          t.setRawData(ByteString.copyFrom(raw.array()));
          return " " + n.getName() + " holds " + v;
        }
        if (t.getDimsCount() == 0) {
          return "";
        }
        t.setDims(r.nextInt(t.getDimsCount()), INTS[r.nextInt(INTS.length)]);
        return " " + n.getName() + " dims " + t.getDimsList();
      }
      case 5 -> {
        TensorProto.Builder t = g.getInitializerBuilder(r.nextInt(g.getInitializerCount()));
        if (t.getDimsCount() == 0) {
          return "";
        }
        t.setDims(r.nextInt(t.getDimsCount()), INTS[r.nextInt(INTS.length)]);
        return " " + t.getName() + " dims " + t.getDimsList();
      }
      default -> {
        int k = r.nextInt(g.getNodeCount());
        String gone = g.getNode(k).getName();
        g.removeNode(k);
        return " " + gone + " deleted";
      }
    }
  }
}
