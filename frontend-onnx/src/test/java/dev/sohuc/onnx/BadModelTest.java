package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.StringStringEntryProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import ai.onnx.proto.OnnxMl.TypeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import com.google.protobuf.ByteString;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.sohuc.onnx.Models.input;
import static dev.sohuc.onnx.Models.node;
import static dev.sohuc.onnx.Models.output;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Malformed and hostile models: each is rejected with a one-line message naming the file and what is wrong. */
class BadModelTest {
  @TempDir
  Path dir;

  private Path file(String name, ModelProto m) throws Exception {
    return Models.write(dir, name, m);
  }

  /** The import error of {@code model}, checked to be one line that names the file. */
  private static String rejection(Path model) {
    OnnxImportException e = assertThrows(OnnxImportException.class,
        () -> OnnxImporter.importModel(model, ImportOptions.defaults()));
    String m = e.getMessage();
    assertFalse(m.contains("\n"), () -> "message is not one line: " + m);
    assertTrue(m.startsWith(model.toString()), () -> "message does not name the file: " + m);
    return m;
  }

  private static void assertRejected(Path model, String... expected) {
    String m = rejection(model);
    for (String s : expected) {
      assertTrue(m.contains(s), () -> "message lacks '" + s + "': " + m);
    }
  }

  /** x (f32[4]) -> Relu -> y: a valid base to break. */
  private static GraphProto.Builder relu() {
    return GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 4))
        .addOutput(output("y")).addNode(node("Relu", List.of("x"), List.of("y")));
  }

  private static GraphProto.Builder withInitializer(TensorProto t) {
    return GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 4)).addInitializer(t)
        .addOutput(output("y")).addNode(node("Add", List.of("x", t.getName()), List.of("y")));
  }

  @Test
  void notProtobuf() throws Exception {
    Path p = dir.resolve("text.onnx");
    Files.write(p, new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0x0a, (byte) 0xff});
    assertRejected(p, "not an ONNX protobuf file");
    Path t = dir.resolve("readme.onnx");
    Files.writeString(t, "hello, I am a text file\n");
    OnnxImportException e = assertThrows(OnnxImportException.class, () -> OnnxImporter.importModel(t));
    assertTrue(e.getMessage().contains("not an ONNX"), e.getMessage());
  }

  @Test
  void truncated() throws Exception {
    byte[] whole = Models.model(17, relu().build()).toByteArray();
    Path p = dir.resolve("cut.onnx");
    Files.write(p, Arrays.copyOf(whole, whole.length - 5));
    assertRejected(p, "truncated");
  }

  @Test
  void cycle() throws Exception {
    GraphProto g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 4))
        .addOutput(output("b"))
        .addNode(node("Add", List.of("x", "b"), List.of("a")).toBuilder().setName("first"))
        .addNode(node("Relu", List.of("a"), List.of("b")).toBuilder().setName("second")).build();
    assertRejected(file("cycle.onnx", Models.model(17, g)), "cycle through node");
  }

  @Test
  void unsortedGraphIsSorted() throws Exception {
    GraphProto g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 4))
        .addOutput(output("b"))
        .addNode(node("Relu", List.of("a"), List.of("b")))
        .addNode(node("Neg", List.of("x"), List.of("a"))).build();
    Module m = OnnxImporter.importModel(file("unsorted.onnx", Models.model(17, g)));
    assertEquals(2, m.main().body().size());
  }

  @Test
  void undefinedInput() throws Exception {
    GraphProto g = relu().clearNode().addNode(node("Relu", List.of("nope"), List.of("y"))).build();
    assertRejected(file("undef.onnx", Models.model(17, g)), "reads 'nope'", "Relu_node");
  }

  @Test
  void duplicateOutput() throws Exception {
    GraphProto g = relu().addNode(node("Neg", List.of("x"), List.of("y"))).build();
    assertRejected(file("dup.onnx", Models.model(17, g)), "'y' is defined twice");
  }

  @Test
  void negativeDims() throws Exception {
    TensorProto t = TensorProto.newBuilder().setName("w").setDataType(1).addDims(-4).build();
    assertRejected(file("neg.onnx", Models.model(17, withInitializer(t).build())), "initializer 'w'", "negative dim");
    GraphProto g = relu().clearInput().addInput(input("x", ElementType.F32, -3)).build();
    assertRejected(file("neginput.onnx", Models.model(17, g)), "graph input 'x'", "negative dim");
  }

  @Test
  void overflowingDims() throws Exception {
    TensorProto t = TensorProto.newBuilder().setName("w").setDataType(1).addDims(1L << 40).addDims(1L << 40)
        .build();
    assertRejected(file("overflow.onnx", Models.model(17, withInitializer(t).build())), "initializer 'w'",
        "overflows 64 bits");
  }

  @Test
  void rawDataTooShort() throws Exception {
    TensorProto t = TensorProto.newBuilder().setName("w").setDataType(1).addDims(4)
        .setRawData(ByteString.copyFrom(new byte[8])).build();
    assertRejected(file("short.onnx", Models.model(17, withInitializer(t).build())), "initializer 'w'",
        "raw_data holds 8 bytes", "needs 16");
  }

  @Test
  void trillionElementInitializer() throws Exception {
    TensorProto typed = TensorProto.newBuilder().setName("w").setDataType(1).addDims(1_000_000).addDims(1_000_000)
        .addFloatData(1).build();
    assertRejected(file("huge.onnx", Models.model(17, withInitializer(typed).build())), "initializer 'w'",
        "needs 1000000000000");
    TensorProto raw = typed.toBuilder().clearFloatData().setRawData(ByteString.copyFrom(new byte[16])).build();
    assertRejected(file("hugeraw.onnx", Models.model(17, withInitializer(raw).build())), "initializer 'w'",
        "needs 4000000000000");
  }

  @Test
  void opsetTooNew() throws Exception {
    assertRejected(file("new.onnx", Models.model(22, relu().build())), "opset 22", "newer");
  }

  @Test
  void opsetTooOld() throws Exception {
    assertRejected(file("old.onnx", Models.model(9, relu().build())), "opset 9", "older");
  }

  private static TensorProto external(String location, long offset) {
    return TensorProto.newBuilder().setName("w").setDataType(1).addDims(4)
        .setDataLocation(TensorProto.DataLocation.EXTERNAL)
        .addExternalData(StringStringEntryProto.newBuilder().setKey("location").setValue(location))
        .addExternalData(StringStringEntryProto.newBuilder().setKey("offset").setValue(String.valueOf(offset)))
        .addExternalData(StringStringEntryProto.newBuilder().setKey("length").setValue("16")).build();
  }

  @Test
  void externalDataEscapingWithDotDot() throws Exception {
    Path sub = Files.createDirectories(dir.resolve("model"));
    Files.write(dir.resolve("x"), new byte[16]);
    Path p = Models.write(sub, "m.onnx", Models.model(17, withInitializer(external("../x", 0)).build()));
    assertRejected(p, "initializer 'w'", "'../x'", "escapes the model's folder");
  }

  @Test
  void externalDataAbsolutePath() throws Exception {
    Path target = dir.resolve("abs.bin");
    Files.write(target, new byte[16]);
    Path p = file("m.onnx", Models.model(17, withInitializer(external(target.toString(), 0)).build()));
    assertRejected(p, "initializer 'w'", "absolute path");
  }

  @Test
  void externalDataSymlinkEscaping() throws Exception {
    Path sub = Files.createDirectories(dir.resolve("model"));
    Path outside = dir.resolve("secret.bin");
    Files.write(outside, new byte[16]);
    Files.createSymbolicLink(sub.resolve("link.bin"), outside);
    Path p = Models.write(sub, "m.onnx", Models.model(17, withInitializer(external("link.bin", 0)).build()));
    assertRejected(p, "initializer 'w'", "symbolic link", "outside the model's folder");
  }

  @Test
  void externalDataTooShort() throws Exception {
    Files.write(dir.resolve("w.bin"), new byte[20]);
    Path p = file("m.onnx", Models.model(17, withInitializer(external("w.bin", 8)).build()));
    assertRejected(p, "initializer 'w'", "too few");
  }

  @Test
  void externalDataWithANegativeLength() throws Exception {
    Files.write(dir.resolve("w.bin"), new byte[16]);
    for (String length : new String[] {"-1", "-16"}) {
      TensorProto t = external("w.bin", 0).toBuilder()
          .setExternalData(2, StringStringEntryProto.newBuilder().setKey("length").setValue(length)).build();
      Path p = file("m" + length + ".onnx", Models.model(17, withInitializer(t).build()));
      assertEquals(p + ": initializer 'w': external data length " + length + " is negative", rejection(p));
    }
  }

  @Test
  void externalDataWithInlineDataToo() throws Exception {
    Files.write(dir.resolve("w.bin"), new byte[16]);
    TensorProto raw = external("w.bin", 0).toBuilder().setRawData(ByteString.copyFrom(new byte[16])).build();
    TensorProto typed = external("w.bin", 0).toBuilder().addAllFloatData(List.of(1f, 2f, 3f, 4f)).build();
    Path p = file("raw.onnx", Models.model(17, withInitializer(raw).build()));
    assertEquals(p + ": initializer 'w' keeps its data in an external file but also sets raw_data", rejection(p));
    Path q = file("typed.onnx", Models.model(17, withInitializer(typed).build()));
    assertEquals(q + ": initializer 'w' keeps its data in an external file but also sets float_data", rejection(q));
  }

  @Test
  void externalDataIsMappedNotCopied() throws Exception {
    ByteBuffer b = ByteBuffer.allocate(8 + 16).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(0).putFloat(1).putFloat(2).putFloat(3).putFloat(4);
    Files.write(dir.resolve("w.bin"), b.array());
    Path p = file("m.onnx", Models.model(17, withInitializer(external("w.bin", 8)).build()));
    Module m = OnnxImporter.importModel(p);
    Weight w = m.weights().get("w");
    // 4 elements stay inline constants; the data source is still checked and read.
    Tensor y = new Interpreter(m).run(List.of(Tensor.ofFloats(ElementType.F32, new long[] {4}, new float[4])))
        .get("y");
    assertEquals(List.of(1f, 2f, 3f, 4f), List.of(y.floats()[0], y.floats()[1], y.floats()[2], y.floats()[3]));
    assertTrue(w == null, "small initializers become constants");
  }

  @Test
  void largeRawDataBecomesAFileSliceOfTheModel() throws Exception {
    float[] v = new float[100];
    for (int i = 0; i < v.length; i++) {
      v[i] = i * 0.5f;
    }
    Tensor t = Tensor.ofFloats(ElementType.F32, new long[] {100}, v);
    GraphProto g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 100))
        .addInitializer(Models.initializer("w", t)).addOutput(output("y"))
        .addNode(node("Add", List.of("x", "w"), List.of("y"))).build();
    Path p = file("big.onnx", Models.model(17, g));
    Module m = OnnxImporter.importModel(p);
    Weight w = m.weights().get("w");
    Weight.Data.FileSlice slice = assertInstanceOf(Weight.Data.FileSlice.class, w.data());
    assertEquals(p, slice.file());
    assertEquals(400, slice.length());
    ByteBuffer bytes = w.bytes();
    assertEquals(49.5f, bytes.getFloat(99 * 4));
  }

  @Test
  void nestedPastTheRecursionLimit() throws Exception {
    GraphProto g = GraphProto.newBuilder().setName("leaf").build();
    for (int i = 0; i < 60; i++) {
      g = GraphProto.newBuilder().setName("g" + i).addNode(NodeProto.newBuilder().setOpType("If")
          .addAttribute(AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH)
              .setG(g))).build();
    }
    assertRejected(file("deep.onnx", Models.model(17, g)), "nested more than 100 levels");
  }

  @Test
  void unsupportedOpsAreAllListed() throws Exception {
    GraphProto g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 4))
        .addOutput(output("d"))
        .addNode(node("FooBar", List.of("x"), List.of("a")).toBuilder().setName("foo1"))
        .addNode(node("FooBar", List.of("a"), List.of("b")).toBuilder().setName("foo2"))
        .addNode(node("DecoderMaskedMultiHeadAttention", List.of("b"), List.of("c")).toBuilder().setName("attn")
            .setDomain("com.microsoft"))
        .addNode(node("NonZero", List.of("c"), List.of("d")).toBuilder().setName("nz")).build();
    Path p = file("unsupported.onnx", Models.model(17, g));
    assertRejected(p, "4 nodes with unsupported ops", "FooBar x2 (foo1, foo2)", "com.microsoft.DecoderMaskedMultiHeadAttention x1 (attn)",
        "NonZero x1 (nz)");
    PreflightReport r = Preflight.check(p, ImportOptions.defaults());
    assertFalse(r.ok());
    assertEquals(3, r.unsupportedOps().size());
    assertTrue(r.render().contains("FooBar x2: foo1, foo2"), r.render());
  }

  /** A merged decoder's If: named with the straight-line exports to compile instead. */
  @Test
  void controlFlowIsNamedWithWhatToExportInstead() throws Exception {
    GraphProto branch = GraphProto.newBuilder().setName("branch").addOutput(output("y"))
        .addNode(node("Identity", List.of("x"), List.of("y"))).build();
    GraphProto g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 4))
        .addInput(input("use_cache_branch", ElementType.BOOL, 1)).addOutput(output("out"))
        .addNode(node("If", List.of("use_cache_branch"), List.of("out")).toBuilder()
            .setName("optimum::if")
            .addAttribute(AttributeProto.newBuilder().setName("then_branch")
                .setType(AttributeProto.AttributeType.GRAPH).setG(branch))
            .addAttribute(AttributeProto.newBuilder().setName("else_branch")
                .setType(AttributeProto.AttributeType.GRAPH).setG(branch))).build();
    Path p = file("merged.onnx", Models.model(17, g));
    assertRejected(p, "1 node with unsupported ops: If x1 (optimum::if). If is control flow, "
        + "which sohuc does not compile: export the graph without it (an Optimum merged "
        + "decoder's If picks a branch by use_cache_branch: compile decoder_model.onnx and "
        + "decoder_with_past_model.onnx, its two branches, instead)");
    String report = Preflight.check(p, ImportOptions.defaults()).render();
    assertTrue(report.contains("  If x1: optimum::if\n  (If is control flow, which sohuc does "
        + "not compile"), report);
  }

  @Test
  void convTransposesBeyondUpsamplingAreNamed() throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g")
        .addInput(input("x", ElementType.F32, 1, 3, 4, 5)).addInput(input("w", ElementType.F32, 3, 2, 2, 2))
        .addInput(input("w5", ElementType.F32, 2, 3, 2, 2)).addInput(input("x5", ElementType.F32, 1, 3, 2, 2, 2))
        .addInput(input("w3", ElementType.F32, 3, 2, 2, 2, 2)).addOutput(output("y"));
    String other = "a ConvTranspose other than an upsampling by its kernel";
    assertEachRefused(g, 13, List.of(
        new Refused("ConvTranspose", List.of("x", "w"), List.of("y"), List.of(), other),
        new Refused("ConvTranspose", List.of("x", "w"), List.of("y"), List.of(Models.ints("strides", 2, 2),
            Models.ints("pads", 1, 0, 1, 0)), other),
        new Refused("ConvTranspose", List.of("x", "w"), List.of("y"), List.of(Models.ints("strides", 2, 2),
            Models.ints("output_padding", 1, 1)), other),
        new Refused("ConvTranspose", List.of("x", "w5"), List.of("y"), List.of(Models.ints("strides", 2, 2)),
            "weights of 2 input channels for an input of 3"),
        new Refused("ConvTranspose", List.of("x5", "w3"), List.of("y"), List.of(Models.ints("strides", 2, 2, 2)),
            "sohuc imports 1-D and 2-D ConvTranspose")));
  }

  @Test
  void blockRearrangementsBeyondWhatImportsAreNamed() throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g")
        .addInput(input("x", ElementType.F32, 1, 6, 4, 5)).addInput(input("x3", ElementType.F32, 6, 4, 5))
        .addOutput(output("y"));
    assertEachRefused(g, 13, List.of(
        new Refused("DepthToSpace", List.of("x"), List.of("y"), List.of(Models.attr("blocksize", 2)),
            "6 channels do not split into blocks of 2 x 2"),
        new Refused("DepthToSpace", List.of("x"), List.of("y"), List.of(Models.attr("blocksize", 1),
            Models.attr("mode", "RCD")), "mode RCD (DCR or CRD)"),
        new Refused("SpaceToDepth", List.of("x"), List.of("y"), List.of(Models.attr("blocksize", 2)),
            "a 4 x 5 image does not split into blocks of 2 x 2"),
        new Refused("SpaceToDepth", List.of("x"), List.of("y"), List.of(Models.attr("blocksize", 0)),
            "blocksize 0 must be 1 to 4096"),
        new Refused("SpaceToDepth", List.of("x3"), List.of("y"), List.of(Models.attr("blocksize", 1)),
            "must be [N, C, H, W]")));
  }

  @Test
  void integerMatMulsBeyondWhatImportsAreNamed() throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g")
        .addInput(input("a", ElementType.U8, 3, 4)).addInput(input("b", ElementType.U8, 4, 5))
        .addInput(input("b3", ElementType.U8, 2, 4, 5)).addInput(input("s", ElementType.F32))
        .addInput(input("s3", ElementType.F32, 3)).addInput(input("z", ElementType.U8))
        .addInput(input("z32", ElementType.I32)).addOutput(output("y"));
    assertEachRefused(g, 17, List.of(
        new Refused("QLinearMatMul", List.of("a", "s3", "z", "b", "s", "z", "s", "z"), List.of("y"), List.of(),
            "a_scale tensor<3 x f32> must be a scalar (sohuc imports per-tensor quantization of this input)"),
        new Refused("QLinearMatMul", List.of("a", "s", "z", "b3", "s", "z", "s", "z"), List.of("y"), List.of(),
            "B of rank 3 (sohuc imports a [K, N] B)"),
        new Refused("QLinearMatMul", List.of("a", "s", "z", "b", "s", "z", "s", "z32"), List.of("y"), List.of(),
            "y_zero_point of type i32 (u8 or i8)")));
  }

  @Test
  void poolingAndNormalizationsBeyondWhatImportsAreNamed() throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 1, 3, 8, 8))
        .addInput(input("c", ElementType.F32, 3)).addInput(input("c4", ElementType.F32, 4))
        .addOutput(output("y"));
    assertEachRefused(g, 18, List.of(
        new Refused("MaxPool", List.of("x"), List.of("y"), List.of(Models.ints("kernel_shape", 2, 2),
            Models.attr("ceil_mode", 2)), "ceil_mode must be 0 or 1, got 2"),
        new Refused("MaxPool", List.of("x"), List.of("y", "idx"), List.of(Models.ints("kernel_shape", 2, 2),
            Models.attr("storage_order", 2)), "storage_order must be 0 or 1, got 2"),
        new Refused("AveragePool", List.of("x"), List.of("y"), List.of(Models.ints("kernel_shape", 2)),
            "kernel_shape must hold 2 values, got [2]"),
        new Refused("AveragePool", List.of("x"), List.of("y"), List.of(Models.ints("kernel_shape", 12, 12)),
            "a kernel of [12, 12] (sohuc imports 1 to 128 taps"),
        new Refused("BatchNormalization", List.of("x", "c", "c", "c4", "c"), List.of("y"), List.of(),
            "input_mean must hold one value a channel (3), got tensor<4 x f32>"),
        new Refused("BatchNormalization", List.of("x", "c", "c", "c", "c"), List.of("y"),
            List.of(Models.attr("training_mode", 1)), "training mode (running mean and variance outputs) is not "
            + "supported"),
        new Refused("GroupNormalization", List.of("x", "c", "c"), List.of("y"), List.of(Models.attr("num_groups", 2)),
            "num_groups 2 must divide the 3 channels"),
        new Refused("InstanceNormalization", List.of("x", "c4", "c"), List.of("y"), List.of(),
            "scale must hold one value a channel (3), got tensor<4 x f32>")));
  }

  /** A node of {@code op} that the importer must refuse with {@code message}. */
  private record Refused(String op, List<String> inputs, List<String> outputs, List<AttributeProto> attrs,
      String message) {}

  /**
   * Each case as the one node of {@code g} (its outputs past the first added to g's), in a model
   * of {@code opset}, refused with its message naming the node.
   */
  private void assertEachRefused(GraphProto.Builder g, int opset, List<Refused> cases) throws Exception {
    for (Refused c : cases) {
      GraphProto.Builder one = g.clone();
      c.outputs().stream().skip(1).forEach(o -> one.addOutput(output(o)));
      Path p = file(c.op() + ".onnx", Models.model(opset, one.addNode(node(c.op(), c.inputs(), c.outputs(),
          c.attrs().toArray(AttributeProto[]::new))).build()));
      assertRejected(p, "node '" + c.op() + "_node' (" + c.op() + ")", c.message());
    }
  }

  /** TopK of x (f32 [2, 5], or i64 with {@code ints}) with K from an initializer, or computed. */
  private Path topK(String name, long[] k, boolean ints, boolean kComputed) throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g")
        .addInput(input("x", ints ? ElementType.I64 : ElementType.F32, 2, 5))
        .addOutput(output("v")).addOutput(output("i"));
    if (kComputed) {
      g.addInput(input("k", ElementType.I64, 1));
    } else {
      g.addInitializer(Models.initializer("k", Tensor.ofLongs(ElementType.I64,
          new long[] {k.length}, k)));
    }
    g.addNode(node("TopK", List.of("x", "k"), List.of("v", "i")).toBuilder().setName("top"));
    return file(name + ".onnx", Models.model(17, g.build()));
  }

  @Test
  void topKBeyondWhatItUnrollsIsNamed() throws Exception {
    String node = "node 'top' (TopK)";
    assertRejected(topK("six", new long[] {6}, false, false), node,
        "K = 6: 1 to 5 are supported (the axis has 5 elements; each of the K unrolls");
    assertRejected(topK("zero", new long[] {0}, false, false), node, "K = 0: 1 to 5 are supported");
    assertRejected(topK("two", new long[] {1, 2}, false, false), node, "K must hold one value, got 2");
    assertRejected(topK("ints", new long[] {2}, true, false), node,
        "X must be a float tensor of rank 1 or more, got tensor<2 x 5 x i64>");
    assertRejected(topK("computed", null, false, true), node,
        "K (input 'k') is computed from run-time data; sohuc needs it at compile time");
  }

  /** One com.microsoft node reading some of x [2, 3, 8], x4 [1, 2, 3, 8], v [8], m [3, 8], s [2, 4, 8]. */
  private Path contrib(String op, List<String> inputs, List<String> outputs) throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 2, 3, 8))
        .addInput(input("x4", ElementType.F32, 1, 2, 3, 8)).addInput(input("v", ElementType.F32, 8))
        .addInput(input("m", ElementType.F32, 3, 8)).addInput(input("s", ElementType.F32, 2, 4, 8))
        .addNode(node(op, inputs, outputs).toBuilder().setDomain("com.microsoft"));
    return contribFile(op, g, outputs);
  }

  /** {@code g} with its node's named outputs, as op.onnx of opset 17 and com.microsoft 1. */
  private Path contribFile(String op, GraphProto.Builder g, List<String> outputs) throws Exception {
    outputs.stream().filter(o -> !o.isEmpty()).forEach(o -> g.addOutput(output(o)));
    return file(op + ".onnx", Models.model(17, g.build()).toBuilder()
        .addOpsetImport(ai.onnx.proto.OnnxMl.OperatorSetIdProto.newBuilder().setDomain("com.microsoft").setVersion(1))
        .build());
  }

  @Test
  void contribOpsBreakingOnnxRuntimesRulesAreNamed() throws Exception {
    String sln = "node 'SkipLayerNormalization_node' (SkipLayerNormalization)";
    assertRejected(contrib("SkipLayerNormalization", List.of("x4", "x4", "v"), List.of("y")), sln,
        "input must have rank 2 or 3, got tensor<1 x 2 x 3 x 8 x f32>");
    assertRejected(contrib("SkipLayerNormalization", List.of("x", "s", "v"), List.of("y")), sln,
        "skip tensor<2 x 4 x 8 x f32> does not fit the input tensor<2 x 3 x 8 x f32>");
    assertRejected(contrib("SkipLayerNormalization", List.of("x", "x", "m"), List.of("y")), sln,
        "gamma (input 2) must be a vector as long as the last dim of the input");
    // training outputs, which ONNX Runtime does not compute either
    assertRejected(contrib("SkipLayerNormalization", List.of("x", "x", "v"), List.of("y", "mean")), sln,
        "output 1 ('mean') is not supported");
    assertRejected(contrib("SkipSimplifiedLayerNormalization", List.of("x", "x", "v"), List.of("y", "", "inv")),
        "output 2 ('inv') is not supported");
    assertRejected(contrib("FastGelu", List.of("x", "m"), List.of("y")), "node 'FastGelu_node' (FastGelu)",
        "bias (input 1) must be a vector as long as the last dim of the input tensor<2 x 3 x 8 x f32>, "
            + "got tensor<3 x 8 x f32>");
    assertRejected(contrib("BiasGelu", List.of("x"), List.of("y")), "node 'BiasGelu_node' (BiasGelu)",
        "has no input 1, but BiasGelu requires inputs 0 to 1 at opset 1");
    assertRejected(contrib("SkipLayerNormalization", List.of("x", "x", "v", "v", "v", "v"), List.of("y")),
        "has 6 inputs, but SkipLayerNormalization takes at most 5");
  }

  /**
   * One com.microsoft node reading some of x [2, 3, 8], w [8, 24], bias [24], ids [2, 3] (int32),
   * ids64 [2, 3] (int64), emb [10, 8], v [8], mask [2, 3] (int32), mask3 [2, 3, 3] (int32), x2 [2, 2, 8],
   * cache4 [10, 4].
   */
  private Path bert(String op, List<String> inputs, List<String> outputs, AttributeProto... attrs) throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 2, 3, 8))
        .addInput(input("w", ElementType.F32, 8, 24)).addInput(input("bias", ElementType.F32, 24))
        .addInput(input("ids", ElementType.I32, 2, 3)).addInput(input("ids64", ElementType.I64, 2, 3))
        .addInput(input("emb", ElementType.F32, 10, 8)).addInput(input("v", ElementType.F32, 8))
        .addInput(input("mask", ElementType.I32, 2, 3)).addInput(input("mask3", ElementType.I32, 2, 3, 3))
        .addInput(input("x2", ElementType.F32, 2, 2, 8)).addInput(input("cache4", ElementType.F32, 10, 4))
        .addNode(node(op, inputs, outputs, attrs).toBuilder().setName(op).setDomain("com.microsoft"));
    return contribFile(op, g, outputs);
  }

  @Test
  void attentionFormsOutsideBertsAreNamed() throws Exception {
    AttributeProto heads = Models.attr("num_heads", 2L);
    String at = dir.resolve("Attention.onnx") + ": node 'Attention' (Attention): ";
    assertEquals(at + "past must be [2, 2, 2, past, 4] (and v's head size q's), got tensor<2 x 3 x 8 x f32>",
        rejection(bert("Attention", List.of("x", "w", "bias", "", "x"), List.of("y"), heads)));
    assertEquals(at + "input 5 (attention_bias) is not supported",
        rejection(bert("Attention", List.of("x", "w", "bias", "mask", "", "x"), List.of("y"), heads)));
    assertEquals(at + "output 1 (present) needs input 4 (past)",
        rejection(bert("Attention", List.of("x", "w", "bias"), List.of("y", "present"), heads)));
    assertEquals(at + "do_rotary is not supported", rejection(bert("Attention", List.of("x", "w", "bias"),
        List.of("y"), heads, Models.attr("do_rotary", 1L))));
    assertEquals(at + "num_heads must be given and positive",
        rejection(bert("Attention", List.of("x", "w", "bias"), List.of("y"))));
    assertEquals(at + "needs input 2 (bias), which ONNX Runtime's CPU kernel requires",
        rejection(bert("Attention", List.of("x", "w"), List.of("y"), heads)));
    assertEquals(at + "hidden sizes 8 (q, k) and 8 (v) must be multiples of num_heads 3",
        rejection(bert("Attention", List.of("x", "w", "bias"), List.of("y"), Models.attr("num_heads", 3L))));
    assertEquals(at + "qkv_hidden_sizes [10, 6, 8] must be three positive sizes, q's equal to k's, summing to "
        + "the 24 columns of the weights", rejection(bert("Attention", List.of("x", "w", "bias"), List.of("y"),
        heads, Models.ints("qkv_hidden_sizes", 10, 6, 8))));
    assertEquals(at + "weights must be [8, q + k + v hidden sizes] for the input tensor<2 x 3 x 8 x f32>, "
        + "got tensor<10 x 8 x f32>", rejection(bert("Attention", List.of("x", "emb", "bias"), List.of("y"), heads)));
    assertEquals(at + "bias must be a vector of the weights' 24 columns, got tensor<8 x f32>",
        rejection(bert("Attention", List.of("x", "w", "v"), List.of("y"), heads)));
    assertEquals(at + "mask_index tensor<2 x 3 x 3 x i32> is not supported: it must be [2, 3] (0/1 per key) "
        + "or [2] (key counts)", rejection(bert("Attention", List.of("x", "w", "bias", "mask3"), List.of("y"),
        heads)));
    assertEquals(at + "mask_index must be int32, got tensor<2 x 3 x i64>",
        rejection(bert("Attention", List.of("x", "w", "bias", "ids64"), List.of("y"), heads)));
  }

  @Test
  void multiHeadAttentionFormsNotImportedAreNamed() throws Exception {
    AttributeProto heads = Models.attr("num_heads", 2L);
    String at = dir.resolve("MultiHeadAttention.onnx") + ": node 'MultiHeadAttention' (MultiHeadAttention): ";
    String[][] cases = {
        {"query must be [batch, sequence, hidden], got tensor<8 x 24 x f32> (packed QKV is not supported)", "w"},
        {"needs key (input 1) and value (input 2): packed QKV is not supported", "x"},
        {"key and value must be [batch, kv_sequence, hidden], got tensor<8 x 24 x f32> and tensor<2 x 3 x 8 x f32> "
            + "(packed KV and [batch, heads, kv_sequence, head size] forms are not supported)", "x", "w", "x"},
        {"key tensor<2 x 3 x 3 x i32> and value tensor<2 x 3 x 8 x f32> do not fit the query tensor<2 x 3 x 8 x f32>: "
            + "key must be [2, L, 8], value [2, L, Dv], hidden sizes static", "x", "mask3", "x"},
        {"bias must be a vector of 24 (q, k and v hidden sizes), got tensor<8 x f32>", "x", "x", "x", "v"},
        {"key_padding_mask must be int32, got tensor<2 x 3 x i64>", "x", "x", "x", "", "ids64"},
        {"key_padding_mask tensor<2 x 3 x 3 x i32> is not supported: it must be [2, 3] (0/1 per key) or [2] "
            + "(key counts)", "x", "x", "x", "", "mask3"},
        {"attention_bias must be [2 or 1, 2 or 1, 3, 3], got tensor<2 x 3 x 8 x f32>", "x", "x", "x", "", "", "x"},
        {"past_key must be [2, 2, past, 4], got tensor<2 x 3 x 8 x f32>", "x", "x", "x", "", "", "", "x", "x"},
        {"input 8 (past_sequence_length) is not supported", "x", "x", "x", "", "", "", "", "", "ids"},
        {"input 9 (cache_indirection) is not supported", "x", "x", "x", "", "", "", "", "", "", "ids"}};
    for (String[] c : cases) {
      assertEquals(at + c[0], rejection(bert("MultiHeadAttention", List.of(c).subList(1, c.length), List.of("y"),
          heads)));
    }
    assertEquals(at + "num_heads must be given, positive and divide the hidden sizes 8 and 8",
        rejection(bert("MultiHeadAttention", List.of("x", "x", "x"), List.of("y"), Models.attr("num_heads", 3L))));
    assertEquals(at + "output 3 (qk) is not supported",
        rejection(bert("MultiHeadAttention", List.of("x", "x", "x"), List.of("y", "", "", "qk"), heads)));
    assertEquals(at + "unidirectional needs a known number of keys before the queries; 2 keys for 3 queries is -1",
        rejection(bert("MultiHeadAttention", List.of("x", "x2", "x2"), List.of("y"), heads,
            Models.attr("unidirectional", 1L))));
  }

  /**
   * MatMulNBits over x f32 [2, 3, 32]: 4-bit codes u8 [4, 2, 8] (N 4, blocks of 16), scales f32
   * [8], packed zero points u8 [4]; "dyn" u8 [4, 2, 8] a graph input, "half" u8 [4, 1, 8].
   */
  private Path nbits(List<String> inputs, AttributeProto... attrs) throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 2, 3, 32))
        .addInput(input("dyn", ElementType.U8, 4, 2, 8))
        .addInitializer(Models.initializer("codes", Tensor.zeros(ElementType.U8, 4, 2, 8)))
        .addInitializer(Models.initializer("half", Tensor.zeros(ElementType.U8, 4, 1, 8)))
        .addInitializer(Models.initializer("scales", Tensor.zeros(ElementType.F32, 8)))
        .addInitializer(Models.initializer("zeros", Tensor.zeros(ElementType.U8, 4)))
        .addInitializer(Models.initializer("bias", Tensor.zeros(ElementType.F32, 3)))
        .addInitializer(Models.initializer("gidx", Tensor.zeros(ElementType.I32, 32)))
        .addNode(node("MatMulNBits", inputs, List.of("y"), attrs).toBuilder().setName("MatMulNBits")
            .setDomain("com.microsoft"));
    return contribFile("MatMulNBits", g, List.of("y"));
  }

  @Test
  void matMulNBitsFormsNotImportedAreNamed() throws Exception {
    String at = dir.resolve("MatMulNBits.onnx") + ": node 'MatMulNBits' (MatMulNBits): ";
    List<String> ok = List.of("x", "codes", "scales");
    AttributeProto k = Models.attr("K", 32L);
    AttributeProto n = Models.attr("N", 4L);
    AttributeProto bits = Models.attr("bits", 4L);
    AttributeProto block = Models.attr("block_size", 16L);
    assertEquals(at + "attributes K and N must be given, from 1 to 2^31 - 1, got K -1, N 4",
        rejection(nbits(ok, n, bits, block)));
    assertEquals(at + "attribute bits must be given (4 or 8)", rejection(nbits(ok, k, n, block)));
    assertEquals(at + "bits 2 is not supported (4 or 8)",
        rejection(nbits(ok, k, n, Models.attr("bits", 2L), block)));
    assertEquals(at + "block_size 24 must be a power of two from 16 to 65536",
        rejection(nbits(ok, k, n, bits, Models.attr("block_size", 24L))));
    assertEquals(at + "g_idx (act-order quantization) is not supported",
        rejection(nbits(List.of("x", "codes", "scales", "", "gidx"), k, n, bits, block)));
    assertEquals(at + "A tensor<2 x 3 x 32 x f32> does not end in K = 48",
        rejection(nbits(ok, Models.attr("K", 48L), n, bits, block)));
    assertEquals(at + "B tensor<4 x 1 x 8 x u8> holds 32 elements; K, N, bits and block_size need 64",
        rejection(nbits(List.of("x", "half", "scales"), k, n, bits, block)));
    assertEquals(at + "B (input 'dyn') is computed from run-time data; sohuc needs it at compile time "
        + "(unsupported)", rejection(nbits(List.of("x", "dyn", "scales"), k, n, bits, block)));
    assertEquals(at + "zero_points of type i32 (u8, or the scales' type f32)",
        rejection(nbits(List.of("x", "codes", "scales", "gidx"), k, n, bits, block)));
    assertEquals(at + "bias tensor<3 x f32> is not a vector of N = 4",
        rejection(nbits(List.of("x", "codes", "scales", "zeros", "", "bias"), k, n, bits, block)));
    assertEquals(at + "the dequantized weight, 2147483647 x 32 f32, is 274877906816 bytes, more than the "
        + "2 GiB one weight may hold", rejection(nbits(ok, k, Models.attr("N", (long) Integer.MAX_VALUE), bits,
        block)));
  }

  /**
   * GroupQueryAttention over q f32 [2, 1, 16] (2 heads of 8 on 1 kv head: kv f32 [2, 1, 8]),
   * past f32 [2, 1, 4, 8], lens i32 [2], lens64 i64 [2], total i32 [], cache f32 [16, 8].
   */
  private Path gqa(List<String> inputs, List<String> outputs, AttributeProto... attrs) throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("q", ElementType.F32, 2, 1, 16))
        .addInput(input("kv", ElementType.F32, 2, 1, 8)).addInput(input("past", ElementType.F32, 2, 1, 4, 8))
        .addInput(input("lens", ElementType.I32, 2)).addInput(input("lens64", ElementType.I64, 2))
        .addInput(input("total", ElementType.I32)).addInput(input("cache", ElementType.F32, 16, 8))
        .addNode(node("GroupQueryAttention", inputs, outputs, attrs).toBuilder().setName("GroupQueryAttention")
            .setDomain("com.microsoft"));
    return contribFile("GroupQueryAttention", g, outputs);
  }

  @Test
  void groupQueryAttentionFormsNotImportedAreNamed() throws Exception {
    String at = dir.resolve("GroupQueryAttention.onnx") + ": node 'GroupQueryAttention' (GroupQueryAttention): ";
    AttributeProto heads = Models.attr("num_heads", 2L);
    AttributeProto kv = Models.attr("kv_num_heads", 1L);
    List<String> ok = List.of("q", "kv", "kv", "past", "past", "lens", "total");
    List<String> y = List.of("y");
    assertEquals(at + "softcap is not supported", rejection(gqa(ok, y, heads, kv, Models.attr("softcap", 30.0))));
    assertEquals(at + "smooth_softmax is not supported",
        rejection(gqa(ok, y, heads, kv, Models.attr("smooth_softmax", 1L))));
    assertEquals(at + "output 3 (output_qk) is not supported", rejection(gqa(ok, List.of("y", "", "", "qk"), heads,
        kv)));
    assertEquals(at + "input 9 (position_ids) is not supported", rejection(gqa(List.of("q", "kv", "kv", "past",
        "past", "lens", "total", "", "", "lens64"), y, heads, kv)));
    assertEquals(at + "num_heads (2) and kv_num_heads (3) must be positive, the first a multiple of the second",
        rejection(gqa(ok, y, heads, Models.attr("kv_num_heads", 3L))));
    assertEquals(at + "key and value must both be given, or neither (packed QKV in the query)",
        rejection(gqa(List.of("q", "kv", "", "past", "past", "lens", "total"), y, heads, kv)));
    assertEquals(at + "key tensor<2 x 1 x 16 x f32> and value tensor<2 x 1 x 8 x f32> must be [2, 1, 8] "
        + "(kv_num_heads x the query's head size)", rejection(gqa(List.of("q", "q", "kv", "past", "past", "lens",
        "total"), y, heads, kv)));
    assertEquals(at + "past_key and past_value must both be given, or neither",
        rejection(gqa(List.of("q", "kv", "kv", "past", "", "lens", "total"), y, heads, kv)));
    assertEquals(at + "seqlens_k must be given, int32 [2], got tensor<2 x i64>",
        rejection(gqa(List.of("q", "kv", "kv", "past", "past", "lens64", "total"), y, heads, kv)));
    assertEquals(at + "cos_cache and sin_cache must be [positions, rotary dims / 2] of the query's type, at most "
        + "half the head size 8, got tensor<16 x 8 x f32> and tensor<16 x 8 x f32>", rejection(gqa(List.of("q",
        "kv", "kv", "past", "past", "lens", "total", "cache", "cache"), y, heads, kv, Models.attr("do_rotary", 1L))));
  }

  @Test
  void rotaryEmbeddingFormsNotImportedAreNamed() throws Exception {
    String at = dir.resolve("RotaryEmbedding.onnx") + ": node 'RotaryEmbedding' (RotaryEmbedding): ";
    List<String> ok = List.of("x", "ids64", "cache4", "cache4");
    assertEquals(at + "is_packed_batching is not supported", rejection(bert("RotaryEmbedding", ok, List.of("y"),
        Models.attr("is_packed_batching", 1L))));
    assertEquals(at + "scale 2.0 is not supported (only 1)", rejection(bert("RotaryEmbedding", ok, List.of("y"),
        Models.attr("scale", 2.0))));
    String[][] cases = {
        {"cos_cache and sin_cache must be [positions, rotary dims / 2] of the input's type, got tensor<8 x 24 x f32> "
            + "and tensor<10 x 4 x f32>", "x", "ids64", "w", "cache4"},
        {"input must be [batch, sequence, hidden] or [batch, heads, sequence, head size], got tensor<8 x 24 x f32>",
            "w", "ids64", "cache4", "cache4"},
        {"the caches' 8 columns (half the rotary dims) do not fit the heads of the input tensor<2 x 3 x 8 x f32> "
            + "(num_heads 0)", "x", "ids64", "emb", "emb"},
        {"position_ids must be int64, got tensor<2 x 3 x i32>", "x", "ids", "cache4", "cache4"},
        {"position_ids must be [2, 2] or [1] (the first position), got tensor<2 x 3 x i64>", "x2", "ids64", "cache4",
            "cache4"}};
    for (String[] c : cases) {
      assertEquals(at + c[0], rejection(bert("RotaryEmbedding", List.of(c).subList(1, c.length), List.of("y"))));
    }
    assertEquals(at + "rotary_embedding_dim 6 must be twice the caches' 4 columns", rejection(bert("RotaryEmbedding",
        ok, List.of("y"), Models.attr("rotary_embedding_dim", 6L))));
    assertEquals(at + "the caches' 4 columns (half the rotary dims) do not fit the heads of the input "
        + "tensor<2 x 3 x 8 x f32> (num_heads 3)", rejection(bert("RotaryEmbedding", ok, List.of("y"),
        Models.attr("num_heads", 3L))));
  }

  @Test
  void embedLayerNormalizationBreakingOnnxRuntimesRulesIsNamed() throws Exception {
    String el = dir.resolve("EmbedLayerNormalization.onnx")
        + ": node 'EmbedLayerNormalization' (EmbedLayerNormalization): ";
    assertEquals(el + "input_ids must be int32 [batch, sequence], got tensor<2 x 3 x i64>",
        rejection(bert("EmbedLayerNormalization", List.of("ids64", "", "emb", "emb", "", "v", "v"),
            List.of("y", "mi"))));
    assertEquals(el + "position_embedding must be [positions, 8], got tensor<8 x 24 x f32>",
        rejection(bert("EmbedLayerNormalization", List.of("ids", "", "emb", "w", "", "v", "v"),
            List.of("y", "mi"))));
    assertEquals(el + "segment_ids (input 1) and segment_embedding (input 4) must be given together",
        rejection(bert("EmbedLayerNormalization", List.of("ids", "ids", "emb", "emb", "", "v", "v"),
            List.of("y", "mi"))));
    assertEquals(el + "gamma (input 5) must be a vector as long as the last dim of the input "
        + "tensor<2 x 3 x 8 x f32>, got tensor<24 x f32>",
        rejection(bert("EmbedLayerNormalization", List.of("ids", "", "emb", "emb", "", "bias", "v"),
            List.of("y", "mi"))));
    assertEquals(el + "mask must have the type of input_ids tensor<2 x 3 x i32>, got tensor<2 x 3 x 3 x i32>",
        rejection(bert("EmbedLayerNormalization", List.of("ids", "", "emb", "emb", "", "v", "v", "mask3"),
            List.of("y", "mi"))));
    assertEquals(el + "position_ids must be int32 [2, 3] or [1, 3], got tensor<2 x 3 x 3 x i32>",
        rejection(bert("EmbedLayerNormalization", List.of("ids", "", "emb", "emb", "", "v", "v", "", "mask3"),
            List.of("y", "mi"))));
  }

  /** Reflect and edge pads need values to mirror or repeat (ONNX Runtime writes garbage there). */
  @Test
  void padsWiderThanTheirAxisAreNamed() throws Exception {
    String[][] cases = {{"reflect", "2", "reflect pad of 2 on axis 0 of 2 (reflect needs pads below the axis size)"},
        {"reflect", "1", "reflect pad of 3 on axis 0 of 2 (reflect needs pads below the axis size)"},
        {"edge", "0", "edge pad of 1 on axis 1 of 0 (edge needs a value to repeat)"}};
    for (String[] c : cases) {
      long[] pads = switch (c[1]) {
        case "2" -> new long[] {2, 0, 0, 0};
        case "1" -> new long[] {0, 0, 3, 0};
        default -> new long[] {0, -4, 0, 1};
      };
      GraphProto g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 2, 4))
          .addInitializer(Models.initializer("pads", Tensor.ofLongs(ElementType.I64, new long[] {4}, pads)))
          .addOutput(output("y")).addNode(node("Pad", List.of("x", "pads"), List.of("y"), Models.attr("mode", c[0]))
              .toBuilder().setName("pad")).build();
      String m = rejection(file("pad-" + c[0] + c[1] + ".onnx", Models.model(18, g)));
      assertTrue(m.contains("node 'pad' (Pad)") && m.endsWith(c[2]), m);
    }
  }

  @Test
  void dataDependentShapeIsNamed() throws Exception {
    GraphProto g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 4))
        .addInput(input("s", ElementType.I64, 2)).addOutput(output("y"))
        .addNode(node("Reshape", List.of("x", "s"), List.of("y"))).build();
    assertRejected(file("dyn.onnx", Models.model(17, g)), "node 'Reshape_node' (Reshape)", "run-time data");
  }

  @Test
  void unknownShapeBindingIsRejected() throws Exception {
    Path p = file("ok.onnx", Models.model(17, relu().build()));
    OnnxImportException e = assertThrows(OnnxImportException.class,
        () -> OnnxImporter.importModel(p, new ImportOptions(Map.of("nope", List.of(1L)), Map.of())));
    assertTrue(e.getMessage().contains("'nope', which is not a graph input"), e.getMessage());
  }

  @Test
  void attributeOfTheWrongTypeIsRejected() throws Exception {
    // an INT alpha would read as 0.0 from the float field, a FLOAT axis as 0
    GraphProto gemm = GraphProto.newBuilder().setName("g").addInput(input("a", ElementType.F32, 2, 2))
        .addInput(input("b", ElementType.F32, 2, 2)).addOutput(output("y"))
        .addNode(node("Gemm", List.of("a", "b"), List.of("y"), Models.attr("alpha", 2L))).build();
    assertRejected(file("gemm.onnx", Models.model(17, gemm)), "node 'Gemm_node' (Gemm)",
        "attribute 'alpha' must be FLOAT, got INT");
    GraphProto softmax = relu().clearNode()
        .addNode(node("Softmax", List.of("x"), List.of("y"), Models.attr("axis", 1.5))).build();
    assertRejected(file("softmax.onnx", Models.model(17, softmax)), "attribute 'axis' must be INT, got FLOAT");
  }

  @Test
  void constantGatherIndexOutOfRange() throws Exception {
    Tensor table = Tensor.zeros(ElementType.F32, 4, 2);
    for (long index : new long[] {4, -5}) {
      GraphProto g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 1))
          .addInitializer(Models.initializer("w", table))
          .addInitializer(Models.initializer("i", Tensor.ofLongs(ElementType.I64, new long[] {1}, new long[] {index})))
          .addOutput(output("y")).addNode(node("Gather", List.of("w", "i"), List.of("y"))).build();
      assertRejected(file("gather" + index + ".onnx", Models.model(17, g)), "node 'Gather_node' (Gather)",
          "index " + index + " (element 0 of input 'i') is out of range for axis 0 of size 4");
    }
  }

  @Test
  void rangeWhoseLengthOverflows() throws Exception {
    GraphProto g = GraphProto.newBuilder().setName("g").addOutput(output("y"))
        .addInitializer(Models.initializer("a", Tensor.ofLongs(ElementType.I64, new long[0], new long[] {Long.MIN_VALUE})))
        .addInitializer(Models.initializer("b", Tensor.ofLongs(ElementType.I64, new long[0], new long[] {Long.MAX_VALUE})))
        .addInitializer(Models.initializer("c", Tensor.ofLongs(ElementType.I64, new long[0], new long[] {1})))
        .addNode(node("Range", List.of("a", "b", "c"), List.of("y"))).build();
    assertRejected(file("range.onnx", Models.model(17, g)), "node 'Range_node' (Range)", "more elements than 64 bits count");
  }

  @Test
  void nodeWithAnEmptyOutputName() throws Exception {
    GraphProto g = relu().clearNode().addNode(node("Relu", List.of("x"), List.of(""))).build();
    assertRejected(file("unnamed.onnx", Models.model(17, g)), "graph output 'y' is not defined");
  }

  /** relu() (x f32[4] -> y) with y declared as {@code declared}. */
  private Path reluDeclaring(String name, ValueInfoProto declared) throws Exception {
    return file(name, Models.model(17, relu().setOutput(0, declared).build()));
  }

  @Test
  void declaredOutputTypeThatDisagrees() throws Exception {
    Path type = reluDeclaring("type.onnx", input("y", ElementType.I64, 4));
    assertEquals(type + ": graph output 'y' is declared tensor<4 x i64> but the graph computes tensor<4 x f32>",
        rejection(type));
    Path rank = reluDeclaring("rank.onnx", Models.symbolicInput("y", ElementType.F32, "n", "1"));
    assertEquals(rank + ": graph output 'y' is declared tensor<?n x 1 x f32> but the graph computes tensor<4 x f32>",
        rejection(rank));
    Path dim = reluDeclaring("dim.onnx", input("y", ElementType.F32, 5));
    assertEquals(dim + ": graph output 'y' is declared tensor<5 x f32> but the graph computes tensor<4 x f32>",
        rejection(dim));
    Path unshaped = reluDeclaring("unshaped.onnx", ValueInfoProto.newBuilder().setName("y").setType(
        TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(11))).build());
    assertEquals(unshaped + ": graph output 'y' is declared a tensor of double but the graph computes"
        + " tensor<4 x f32>", rejection(unshaped));
    Path map = reluDeclaring("map.onnx", ValueInfoProto.newBuilder().setName("y").setType(TypeProto.newBuilder()
        .setMapType(TypeProto.Map.newBuilder().setKeyType(7).setValueType(input("v", ElementType.F32).getType())))
        .build());
    assertEquals(map + ": graph output 'y' is declared a map but the graph computes tensor<4 x f32>", rejection(map));
    Path optional = reluDeclaring("optional.onnx", ValueInfoProto.newBuilder().setName("y").setType(
        TypeProto.newBuilder().setOptionalType(TypeProto.Optional.newBuilder())).build());
    assertEquals(optional + ": graph output 'y' is declared an optional but the graph computes tensor<4 x f32>",
        rejection(optional));
  }

  @Test
  void declaredOutputTypesThatAgreeImport() throws Exception {
    // exporters name dynamic dims, leave them unknown, or leave out the shape or the whole type
    TypeProto.Tensor.Builder unknownDim = input("y", ElementType.F32, 4).getType().getTensorType().toBuilder();
    unknownDim.getShapeBuilder().setDim(0, TensorShapeProto.Dimension.newBuilder());
    for (ValueInfoProto declared : List.of(input("y", ElementType.F32, 4),
        Models.symbolicInput("y", ElementType.F32, "batch"),
        ValueInfoProto.newBuilder().setName("y").setType(TypeProto.newBuilder().setTensorType(unknownDim)).build(),
        ValueInfoProto.newBuilder().setName("y").setType(TypeProto.newBuilder().setTensorType(
            TypeProto.Tensor.newBuilder().setElemType(1))).build(),
        output("y"))) {
      Module m = OnnxImporter.importModel(reluDeclaring("ok.onnx", declared));
      assertEquals("tensor<4 x f32>", m.main().outputs().get(0).value().type().toString());
    }
  }

  @Test
  void nodeWithMoreInputsOrOutputsThanItsOpTakes() throws Exception {
    Path add = file("add.onnx", Models.model(17, relu().clearNode()
        .addNode(node("Add", List.of("x", "x", "x"), List.of("y"))).build()));
    assertEquals(add + ": node 'Add_node' (Add): has 3 inputs, but Add takes at most 2 at opset 17", rejection(add));
    Path relu = file("relu.onnx", Models.model(17, relu().clearNode()
        .addNode(node("Relu", List.of("x"), List.of("y", "z"))).build()));
    assertEquals(relu + ": node 'Relu_node' (Relu): has 2 outputs, but Relu takes at most 1 at opset 17",
        rejection(relu));
    // Squeeze took its axes as an input only from opset 13
    GraphProto squeeze = relu().clearNode().addInitializer(Models.initializer("axes", Tensor.ofLongs(ElementType.I64,
        new long[] {1}, new long[] {0}))).addNode(node("Squeeze", List.of("x", "axes"), List.of("y"))).build();
    Path old = file("squeeze11.onnx", Models.model(11, squeeze));
    assertEquals(old + ": node 'Squeeze_node' (Squeeze): has 2 inputs, but Squeeze takes at most 1 at opset 11",
        rejection(old));
  }

  @Test
  void nodeWithoutTheInputsItsOpRequires() throws Exception {
    // found by mutating real graphs: a Constant turned Mul, a ReduceMean turned Slice, an empty
    // name for a required input; each crashed the handler that read the input
    Path mul = file("mul.onnx", Models.model(17, relu().clearNode()
        .addNode(node("Mul", List.of(), List.of("y"))).build()));
    assertEquals(mul + ": node 'Mul_node' (Mul): has no input 0, but Mul requires inputs 0 to 1 at opset 17",
        rejection(mul));
    Path slice = file("slice.onnx", Models.model(17, relu().clearNode()
        .addNode(node("Slice", List.of("x"), List.of("y"))).build()));
    assertEquals(slice + ": node 'Slice_node' (Slice): has no input 1, but Slice requires inputs 0 to 2 at opset 17",
        rejection(slice));
    Path where = file("where.onnx", Models.model(17, relu().clearNode()
        .addNode(node("Where", List.of("x", "", "x"), List.of("y"))).build()));
    assertEquals(where + ": node 'Where_node' (Where): has no input 1, but Where requires inputs 0 to 2 at opset 17",
        rejection(where));
    Path fill = file("fill.onnx", Models.model(17, relu().clearNode()
        .addNode(node("ConstantOfShape", List.of(), List.of("y"))).build()));
    assertEquals(fill + ": node 'ConstantOfShape_node' (ConstantOfShape): has no input 0, but ConstantOfShape requires "
        + "input 0 at opset 17", rejection(fill));
  }

  @Test
  void einsumFormsNotImportedAreNamed() throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("a", ElementType.F32, 4, 4))
        .addInput(input("b", ElementType.F32, 3, 4)).addInput(input("n", ElementType.I64, 4, 4))
        .addOutput(output("y"));
    String[][] cases = {
        {"ii->i", "a", "label 'i' repeats in 'ii' (a diagonal, which sohuc does not import)"},
        {"ij,ij->ij", "a,b", "label 'i' is 4 in one operand and 3 in another (broadcast labels are not imported)"},
        {"ij,jk,kl->il", "a,a,a", "an einsum of 3 operands (sohuc imports one or two)"},
        {"ij,jk->ik", "a", "equation 'ij,jk->ik' has 2 input terms for 1 inputs"},
        {"ijk->i", "a", "term 'ijk' has 3 labels for a rank-2 operand"},
        {"i.j->i", "a", "a misplaced '.' in 'i.j'"},
        {"i1->i", "a", "'1' is not a label (a-z, A-Z)"},
        {"ij->iz", "a", "output label 'z' is in no input"},
        {"ij,jk->ik", "n,n", "matmul takes float operands"}};
    for (String[] c : cases) {
      Path p = file("einsum.onnx", Models.model(17, g.clone().addNode(node("Einsum", List.of(c[1].split(",")),
          List.of("y"), Models.attr("equation", c[0]))).build()));
      assertRejected(p, "node 'Einsum_node' (Einsum)", c[2]);
    }
  }

  @Test
  void gatherNdAndModBeyondWhatImportsAreNamed() throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 3, 4))
        .addInput(input("i", ElementType.I64, 2, 2)).addInput(input("i3", ElementType.I64, 2, 3))
        .addInput(input("i1", ElementType.I64, 2, 1))
        .addInput(input("i32", ElementType.I32, 2, 2)).addInput(input("y4", ElementType.F32, 4))
        .addOutput(output("y"));
    assertEachRefused(g, 13, List.of(
        new Refused("GatherND", List.of("x", "i"), List.of("y"), List.of(Models.attr("batch_dims", 1)),
            "the index tuples' length 2 must be static, 1 to the data's rank 2 less batch_dims 1"),
        new Refused("GatherND", List.of("x", "i1"), List.of("y"), List.of(Models.attr("batch_dims", 1)),
            "indices axis 0 is 2, data's 3: the first batch_dims axes must match"),
        new Refused("GatherND", List.of("x", "i"), List.of("y"), List.of(Models.attr("batch_dims", 2)),
            "batch_dims 2 must be 0 to 1 (less than both ranks"),
        new Refused("GatherND", List.of("x", "i3"), List.of("y"), List.of(),
            "the index tuples' length 3 must be static, 1 to the data's rank 2"),
        new Refused("GatherND", List.of("x", "i32"), List.of("y"), List.of(),
            "indices must be an int64 tensor of rank 1 or more"),
        new Refused("Mod", List.of("x", "y4"), List.of("y"), List.of(),
            "fmod 0 on f32 (ONNX requires fmod 1 for floats)")));
  }

  @Test
  void resizesBeyondWhatImportsAreNamed() throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 1, 2, 4, 4))
        .addInput(input("rs", ElementType.F32, 4))
        .addInitializer(Models.initializer("up", Tensor.ofFloats(ElementType.F32, new long[] {4},
            new float[] {1, 1, 2, 2})))
        .addInitializer(Models.initializer("down", Tensor.ofFloats(ElementType.F32, new long[] {4},
            new float[] {1, 1, 0.5f, 0.5f})))
        .addInitializer(Models.initializer("two", Tensor.ofFloats(ElementType.F32, new long[] {2},
            new float[] {2, 2})))
        .addInitializer(Models.initializer("zero", Tensor.ofFloats(ElementType.F32, new long[] {4},
            new float[] {1, 1, 0, 2})))
        .addInitializer(Models.initializer("sz", Tensor.ofLongs(ElementType.I64, new long[] {4},
            new long[] {1, 2, 8, 8})))
        .addInitializer(Models.initializer("huge", Tensor.ofLongs(ElementType.I64, new long[] {4},
            new long[] {1, 2, 8, 1L << 40})))
        .addOutput(output("y"));
    List<String> up = List.of("x", "", "up");
    assertEachRefused(g, 19, List.of(
        new Refused("Resize", up, List.of("y"), List.of(Models.attr("mode", "bicubic")),
            "mode bicubic (nearest, linear or cubic)"),
        new Refused("Resize", up, List.of("y"), List.of(Models.attr("coordinate_transformation_mode",
            "tf_crop_and_resize")), "coordinate_transformation_mode tf_crop_and_resize is not supported"),
        new Refused("Resize", List.of("x", "", "up", "sz"), List.of("y"), List.of(),
            "exactly one of scales and sizes must be given"),
        new Refused("Resize", List.of("x"), List.of("y"), List.of(),
            "exactly one of scales and sizes must be given"),
        new Refused("Resize", List.of("x", "", "two"), List.of("y"), List.of(),
            "scales must hold 4 values, got 2"),
        new Refused("Resize", List.of("x", "", "zero"), List.of("y"), List.of(),
            "scales must be positive and at most 65536"),
        new Refused("Resize", List.of("x", "", "", "huge"), List.of("y"), List.of(),
            "sizes must be 0 to 65536"),
        new Refused("Resize", List.of("x", "", "down"), List.of("y"), List.of(Models.attr("antialias", 1)),
            "antialias when downscaling"),
        new Refused("Resize", up, List.of("y"), List.of(Models.attr("keep_aspect_ratio_policy", "not_larger")),
            "keep_aspect_ratio_policy not_larger (sohuc imports stretch)"),
        new Refused("Resize", List.of("x", "", "rs"), List.of("y"), List.of(),
            "scales (input 'rs') is computed from run-time data")));
  }

  /** A tuple's entry outside its axis's range is an error at run time, not another row read. */
  @Test
  void gatherNdRefusesAnEntryOutOfItsAxisRange() throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 3, 4))
        .addInput(input("i", ElementType.I64, 2)).addOutput(output("y"))
        .addNode(node("GatherND", List.of("x", "i"), List.of("y")));
    Module m = OnnxImporter.importModel(file("nd.onnx", Models.model(13, g.build())), ImportOptions.defaults());
    Tensor x = Tensor.ofFloats(ElementType.F32, new long[] {3, 4}, new float[12]);
    // (0, 5) would be row 5 of the 12 flattened ones; (0, 4) row 4: both out of axis 1's range
    for (long[] tuple : new long[][] {{0, 5}, {0, 4}, {3, 0}, {-4, 0}}) {
      Tensor i = Tensor.ofLongs(ElementType.I64, new long[] {2}, tuple);
      IrException e = assertThrows(IrException.class, () -> new Interpreter(m).run(List.of(x, i)));
      assertTrue(e.getMessage().contains("out of range"), e.getMessage());
    }
    Tensor ok = Tensor.ofLongs(ElementType.I64, new long[] {2}, new long[] {-1, 3});
    assertEquals(0f, new Interpreter(m).run(List.of(x, ok)).values().iterator().next().floats()[0]);
  }

  @Test
  void convolutionsBeyondWhatImportsAreNamed() throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("g").addInput(input("x", ElementType.F32, 1, 3, 8, 8))
        .addInput(input("w", ElementType.F32, 4, 3, 2, 2)).addInput(input("x1", ElementType.F32, 1, 3, 8))
        .addInput(input("w1", ElementType.F32, 4, 3, 2)).addInput(input("wg", ElementType.F32, 4, 1, 2))
        .addInput(input("w12", ElementType.F32, 4, 3, 12, 12))
        .addInput(input("w6", ElementType.F32, 6, 3, 2)).addInput(input("x3", ElementType.F32, 1, 3, 4, 4, 4))
        .addInput(input("w3", ElementType.F32, 4, 3, 2, 2, 2)).addInput(input("w0", ElementType.F32, 4, 3, 0))
        .addInput(input("w00", ElementType.F32, 4, 3, 0, 0))
        .addOutput(output("y"));
    assertEachRefused(g, 17, List.of(
        conv(List.of("x1", "wg"), List.of(Models.attr("group", 2)),
            "group 2 must divide the 3 input and 4 output channels"),
        conv(List.of("x1", "wg"), List.of(Models.attr("group", -3)),
            "group -3 must divide the 3 input and 4 output channels"),
        conv(List.of("x1", "w6"), List.of(Models.attr("group", 3)),
            "weights of 3 input channels for an input of 3 in 3 groups"),
        conv(List.of("x", "w12"), List.of(),
            "a kernel of [12, 12] (sohuc imports 1 to 128 taps"),
        conv(List.of("x1", "w0"), List.of(),
            "a kernel of [0] (sohuc imports 1 to 128 taps"),
        conv(List.of("x", "w00"), List.of(Models.ints("strides", 0, 0)),
            "a kernel of [0, 0] (sohuc imports 1 to 128 taps"),
        conv(List.of("x3", "w3"), List.of(),
            "a window over 3 spatial axes (sohuc imports 1-D and 2-D convolutions and pooling, and "
                + "3-D patch embeddings: kernel = stride, no padding)"),
        conv(List.of("x1", "w"), List.of(),
            "a rank-4 kernel for a rank-3 input"),
        conv(List.of("x1", "w1"), List.of(Models.ints("dilations", 9)),
            "a kernel reaching 10 positions (dilations [9]) and pads [0, 0] leave no output position on a "
            + "spatial axis of 8"),
        conv(List.of("x1", "w1"), List.of(Models.ints("kernel_shape", 3)),
            "kernel_shape [3] differs from the weights'"),
        conv(List.of("x1", "w1"), List.of(Models.ints("pads", 1)),
            "pads [1] must hold 2 values"),
        conv(List.of("x1", "w1"), List.of(Models.attr("auto_pad", "SAME")),
            "auto_pad SAME (NOTSET, VALID, SAME_UPPER or SAME_LOWER)"),
        conv(List.of("x1", "w1"), List.of(Models.ints("pads", 0, Long.MAX_VALUE)),
            "pads [0, " + Long.MAX_VALUE + "] must be 0 to 2^24"),
        conv(List.of("x1", "w1"), List.of(Models.ints("strides", 0), Models.attr("auto_pad", "SAME_UPPER")),
            "strides [0] and dilations [1] must be 1 to 2^24")));
  }

  private static Refused conv(List<String> inputs, List<AttributeProto> attrs, String message) {
    return new Refused("Conv", inputs, List.of("y"), attrs, message);
  }

  @Test
  void optionalAndVariadicInputsAreNotTooMany() throws Exception {
    // trailing empty names leave optional inputs and outputs out; Max and Concat take any number
    for (NodeProto n : List.of(node("Clip", List.of("x", "", ""), List.of("y")),
        node("Dropout", List.of("x"), List.of("y", "")),
        node("Max", List.of("x", "x", "x", "x"), List.of("y")),
        node("Concat", List.of("x", "x", "x"), List.of("y"), Models.attr("axis", 0L)))) {
      OnnxImporter.importModel(file(n.getOpType() + ".onnx", Models.model(17, relu().clearNode().addNode(n).build())));
    }
  }

  @Test
  void everyOpHasAnArityAtEverySupportedOpset() {
    for (OnnxOps.OnnxOp op : OnnxOps.TABLE) {
      // com.microsoft has one opset
      int last = OnnxOps.isDefaultDomain(op.domain()) ? GraphImporter.MAX_OPSET : op.sinceOpset();
      for (int opset = op.sinceOpset(); opset <= last; opset++) {
        assertTrue(OnnxOps.arity(op.domain(), op.opType(), opset).outputs() >= 1, op.opType());
      }
    }
  }
}
