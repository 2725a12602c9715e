package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.OperatorSetIdProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import ai.onnx.proto.OnnxMl.TypeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import com.google.protobuf.ByteString;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Builds small ONNX models in Java for tests. */
final class Models {
  private Models() {}

  static ModelProto model(int opset, GraphProto graph) {
    return ModelProto.newBuilder().setIrVersion(8).setProducerName("sohuc-test")
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(opset))
        .setGraph(graph).build();
  }

  static ValueInfoProto input(String name, ElementType type, long... dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (long d : dims) {
      shape.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
    }
    return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
        TypeProto.Tensor.newBuilder().setElemType(OnnxTensors.onnxType(type)).setShape(shape))).build();
  }

  static ValueInfoProto symbolicInput(String name, ElementType type, String... dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (String d : dims) {
      shape.addDim(d.matches("-?[0-9]+") ? TensorShapeProto.Dimension.newBuilder().setDimValue(Long.parseLong(d))
          : TensorShapeProto.Dimension.newBuilder().setDimParam(d));
    }
    return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
        TypeProto.Tensor.newBuilder().setElemType(OnnxTensors.onnxType(type)).setShape(shape))).build();
  }

  static ValueInfoProto output(String name) {
    return ValueInfoProto.newBuilder().setName(name).build();
  }

  static NodeProto node(String op, List<String> inputs, List<String> outputs, AttributeProto... attrs) {
    return NodeProto.newBuilder().setOpType(op).setName(op + "_node").addAllInput(inputs).addAllOutput(outputs)
        .addAllAttribute(List.of(attrs)).build();
  }

  static AttributeProto attr(String name, long v) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(v).build();
  }

  static AttributeProto attr(String name, double v) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.FLOAT).setF((float) v).build();
  }

  static AttributeProto attr(String name, String v) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.STRING)
        .setS(ByteString.copyFromUtf8(v)).build();
  }

  static AttributeProto ints(String name, long... v) {
    AttributeProto.Builder b = AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INTS);
    for (long x : v) {
      b.addInts(x);
    }
    return b.build();
  }

  static AttributeProto floats(String name, float... v) {
    AttributeProto.Builder b = AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.FLOATS);
    for (float x : v) {
      b.addFloats(x);
    }
    return b.build();
  }

  static AttributeProto tensor(String name, Tensor t) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.TENSOR)
        .setT(OnnxTensors.toProto(t, "")).build();
  }

  static TensorProto initializer(String name, Tensor t) {
    return OnnxTensors.toProto(t, name);
  }

  static Path write(Path dir, String name, ModelProto m) throws IOException {
    Path p = dir.resolve(name);
    Files.write(p, m.toByteArray());
    return p;
  }
}
