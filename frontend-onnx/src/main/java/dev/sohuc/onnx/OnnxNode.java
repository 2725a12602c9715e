package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.List;

/**
 * One ONNX node as its handler sees it: inputs as IR values or known values, typed attribute
 * getters with ONNX defaults, and ways to define the outputs. Errors name the file and node.
 */
final class OnnxNode {
  final GraphImporter graph;
  final NodeProto proto;
  final Location loc;
  /** The model's opset for the node's domain, which selects attribute semantics. */
  final int opset;

  OnnxNode(GraphImporter graph, NodeProto proto, Location loc, int opset) {
    this.graph = graph;
    this.proto = proto;
    this.loc = loc;
    this.opset = opset;
  }

  String opType() {
    return proto.getOpType();
  }

  /**
   * Refuses a node without the inputs its op requires, and more inputs or outputs than the op's
   * schema allows, which its handler would silently drop (Add(x, x, x) would add two). Trailing
   * empty names leave optional ones out.
   */
  void checkArity() {
    OnnxOps.Arity arity = OnnxOps.arity(proto.getDomain(), opType(), opset);
    for (int i = 0; i < arity.required(); i++) {
      if (!has(i)) {
        String inputs = arity.required() == 1 ? "input 0" : "inputs 0 to " + (arity.required() - 1);
        throw error("has no input " + i + ", but " + opType() + " requires " + inputs + " at opset "
            + opset);
      }
    }
    checkCount(givenCount(proto.getInputList()), arity.inputs(), "inputs");
    checkCount(givenCount(proto.getOutputList()), arity.outputs(), "outputs");
  }

  private void checkCount(int given, int allowed, String what) {
    if (given > allowed) {
      throw error("has " + given + " " + what + ", but " + opType() + " takes at most " + allowed + " at opset "
          + opset);
    }
  }

  private static int givenCount(List<String> names) {
    int n = names.size();
    while (n > 0 && names.get(n - 1).isEmpty()) {
      n--;
    }
    return n;
  }

  // ---- inputs

  int inputCount() {
    return proto.getInputCount();
  }

  /** Whether optional input {@code i} is given (present and not the empty name). */
  boolean has(int i) {
    return i < proto.getInputCount() && !proto.getInput(i).isEmpty();
  }

  private String inputName(int i, String role) {
    if (!has(i)) {
      throw error("needs input " + i + " (" + role + ")");
    }
    return proto.getInput(i);
  }

  TensorType type(int i) {
    return graph.typeOf(inputName(i, "input"));
  }

  /** Input {@code i} as an IR value, materializing known values as constants or weights. */
  Value value(int i) {
    return value(i, "input");
  }

  /** As {@link #value(int)}; {@code role} names the input when the node lacks it. */
  Value value(int i, String role) {
    return graph.valueOf(inputName(i, role));
  }

  /** The import-time value of input {@code i}, or null when it is only known at run time. */
  Known known(int i) {
    return has(i) ? graph.knownOf(proto.getInput(i)) : null;
  }

  /** Input {@code i}'s bytes, which must be known at import time (a weight, a constant). */
  java.nio.ByteBuffer bytes(int i, String role) {
    java.nio.ByteBuffer b = has(i) ? graph.bytesOf(proto.getInput(i)) : null;
    if (b == null) {
      throw dataDependent(i, role);
    }
    return b;
  }

  /** Whether every given input is known at import time, so the node can be folded. */
  boolean allKnown() {
    for (int i = 0; i < proto.getInputCount(); i++) {
      if (has(i) && known(i) == null) {
        return false;
      }
    }
    return true;
  }

  /** A shape-like input (a vector of dims, possibly symbolic); it must be known at import. */
  List<Dim> dims(int i, String role) {
    Known k = known(i);
    List<Dim> d = k == null ? null : Known.dimsOf(k);
    if (d == null) {
      throw dataDependent(i, role);
    }
    return d;
  }

  /** An input that must be a static integer vector (or scalar). */
  long[] longs(int i, String role) {
    List<Dim> d = dims(i, role);
    if (!d.stream().allMatch(Dim::isStatic)) {
      throw error(role + " (input '" + proto.getInput(i) + "') must be static, got " + d);
    }
    return d.stream().mapToLong(Dim::value).toArray();
  }

  /** A static scalar input (one element), as a double. */
  double scalar(int i, String role) {
    Known k = known(i);
    if (!(k instanceof Known.Concrete c)) {
      throw dataDependent(i, role);
    }
    if (c.tensor().size() != 1) {
      throw error(role + " must have one element, got " + c.tensor().type());
    }
    return c.tensor().get(0);
  }

  OnnxImportException dataDependent(int i, String role) {
    return error(role + " (input '" + proto.getInput(i)
        + "') is computed from run-time data; sohuc needs it at compile time (unsupported)");
  }

  // ---- attributes

  AttributeProto attr(String name) {
    for (AttributeProto a : proto.getAttributeList()) {
      if (a.getName().equals(name)) {
        return a;
      }
    }
    return null;
  }

  boolean hasAttr(String name) {
    return attr(name) != null;
  }

  /**
   * The attribute {@code name}, or null when absent; an attribute whose declared type is not
   * {@code type} is an error rather than read from the wrong field (an INT {@code alpha} would
   * read as 0.0). An attribute without a declared type (old exporters) is taken as it is.
   */
  private AttributeProto typed(String name, AttributeProto.AttributeType type) {
    AttributeProto a = attr(name);
    if (a != null && a.getType() != AttributeProto.AttributeType.UNDEFINED && a.getType() != type) {
      throw error("attribute '" + name + "' must be " + type + ", got " + a.getType());
    }
    return a;
  }

  long attrInt(String name, long fallback) {
    AttributeProto a = typed(name, AttributeProto.AttributeType.INT);
    return a == null ? fallback : a.getI();
  }

  double attrFloat(String name, double fallback) {
    AttributeProto a = typed(name, AttributeProto.AttributeType.FLOAT);
    return a == null ? fallback : a.getF();
  }

  String attrString(String name, String fallback) {
    AttributeProto a = typed(name, AttributeProto.AttributeType.STRING);
    return a == null ? fallback : a.getS().toStringUtf8();
  }

  /** An ints attribute, or null when absent. */
  List<Long> attrInts(String name) {
    AttributeProto a = typed(name, AttributeProto.AttributeType.INTS);
    return a == null ? null : a.getIntsList();
  }

  TensorProto attrTensor(String name) {
    AttributeProto a = typed(name, AttributeProto.AttributeType.TENSOR);
    return a == null ? null : a.getT();
  }

  ElementType attrType(String name) {
    AttributeProto a = typed(name, AttributeProto.AttributeType.INT);
    if (a == null) {
      throw error("missing attribute '" + name + "'");
    }
    return OnnxTensors.elementType((int) a.getI()).orElseThrow(() -> error("attribute '" + name + "' is "
        + OnnxTensors.typeName((int) a.getI()) + ", which sohuc does not support"));
  }

  // ---- outputs

  int outputCount() {
    return proto.getOutputCount();
  }

  /** Whether output {@code i} exists and is used by name. */
  boolean wants(int i) {
    return i < proto.getOutputCount() && !proto.getOutput(i).isEmpty();
  }

  void set(int i, Value v) {
    if (wants(i)) {
      graph.define(proto.getOutput(i), v, null);
    }
  }

  void set(int i, Known k) {
    if (wants(i)) {
      graph.define(proto.getOutput(i), null, k);
    }
  }

  /** Appends an op defining output 0, named after it. */
  Value emit(Op op) {
    Value v = graph.builder().add(op, loc, hint(0));
    set(0, v);
    return v;
  }

  /** Appends an intermediate op (not an ONNX output). */
  Value temp(Op op) {
    return graph.builder().addNode(op, loc, List.of()).result();
  }

  /** Appends an intermediate op of several results (not ONNX outputs). */
  List<Value> tempAll(Op op) {
    return graph.builder().addNode(op, loc, List.of()).results();
  }

  /** Appends an op with several results and defines the outputs from them. */
  List<Value> emitAll(Op op) {
    List<String> hints = new ArrayList<>();
    for (int i = 0; i < proto.getOutputCount(); i++) {
      hints.add(hint(i));
    }
    List<Value> results = graph.builder().addNode(op, loc, hints).results();
    for (int i = 0; i < results.size(); i++) {
      set(i, results.get(i));
    }
    return results;
  }

  private String hint(int i) {
    return wants(i) ? GraphImporter.shortName(proto.getOutput(i)) : null;
  }

  Value constant(Tensor t) {
    return graph.materialize(new Known.Concrete(t), null);
  }

  /** A new weight this node makes from input {@code i} (and named after it), as a weight reference. */
  Value weightFrom(int i, String suffix, TensorType type, dev.sohuc.ir.Weight.Data data) {
    String name = proto.getInput(i) + suffix;
    return graph.weight(name, type, data, name);
  }

  Value reshape(Value v, List<Dim> shape) {
    return temp(new DataOp.Reshape(v, shape));
  }

  Value zeroScalar(ElementType type) {
    return temp(new SourceOp.Constant(Tensor.zeros(type)));
  }

  OnnxImportException error(String message) {
    return new OnnxImportException(graph.where(this) + ": " + message);
  }
}
