package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.GraphProto;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static dev.sohuc.onnx.Models.attr;
import static dev.sohuc.onnx.Models.node;
import static dev.sohuc.onnx.Models.output;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

/** Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains fold into one reshape with symbolic dims. */
class SymbolicShapeTest {
  @TempDir
  Path dir;

  private Path model() throws Exception {
    GraphProto g = GraphProto.newBuilder().setName("g")
        .addInput(Models.symbolicInput("x", ElementType.F32, "batch", "seq", "8")).addOutput(output("y"))
        .addInitializer(Models.initializer("i0", Tensor.ofLongs(ElementType.I64, new long[0], new long[] {0})))
        .addInitializer(Models.initializer("i1", Tensor.ofLongs(ElementType.I64, new long[0], new long[] {1})))
        .addInitializer(Models.initializer("ax", Tensor.ofLongs(ElementType.I64, new long[] {1}, new long[] {0})))
        .addInitializer(Models.initializer("tail", Tensor.ofLongs(ElementType.I64, new long[] {2}, new long[] {2, 4})))
        .addNode(node("Shape", List.of("x"), List.of("s")))
        .addNode(node("Gather", List.of("s", "i0"), List.of("b")))
        .addNode(node("Gather", List.of("s", "i1"), List.of("n")))
        .addNode(node("Mul", List.of("b", "n"), List.of("bn")))
        .addNode(node("Unsqueeze", List.of("bn", "ax"), List.of("bn1")))
        .addNode(node("Concat", List.of("bn1", "tail"), List.of("shape"), attr("axis", 0)))
        .addNode(node("Reshape", List.of("x", "shape"), List.of("y"))).build();
    return Models.write(dir, "shapes.onnx", Models.model(14, g));
  }

  @Test
  void shapeChainFoldsToSymbolicReshape() throws Exception {
    Module m = OnnxImporter.importModel(model());
    assertEquals(1, m.main().body().size());
    Node only = m.main().body().get(0);
    DataOp.Reshape r = assertInstanceOf(DataOp.Reshape.class, only.op());
    assertEquals(List.of(Dim.symbol("batch").times(Dim.symbol("seq")), Dim.of(2), Dim.of(4)), r.shape());
    assertEquals("Reshape_node", only.location().text());
    Tensor x = Tensor.zeros(ElementType.F32, 3, 5, 8);
    assertEquals(List.of(15L, 2L, 4L), java.util.Arrays.stream(new Interpreter(m).run(List.of(x)).get("y").shape())
        .boxed().toList());
  }

  @Test
  void bindingsSubstituteSymbols() throws Exception {
    Module m = OnnxImporter.importModel(model(), new ImportOptions(Map.of(), Map.of("seq", 5L)));
    assertEquals("tensor<?batch x 5 x 8 x f32>", m.main().arguments().get(0).type().toString());
    Module s = OnnxImporter.importModel(model(), new ImportOptions(Map.of("x", List.of(2L, 7L, 8L)), Map.of()));
    assertEquals("tensor<14 x 2 x 4 x f32>", s.main().outputs().get(0).value().type().toString());
  }
}
