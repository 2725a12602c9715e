package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.OperatorSetIdProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import ai.onnx.proto.OnnxMl.TypeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Imports one ONNX graph into an IR module: checks the opset, turns initializers into weights,
 * inputs into typed arguments, sorts the nodes, and runs each node's handler from
 * {@link OnnxOps}. Values known at import time (constants, shapes) are tracked as {@link Known}
 * and only enter the IR when an op reads them as data.
 */
final class GraphImporter {
  static final int MIN_OPSET = 11;
  static final int MAX_OPSET = 21;
  /** Constants with more elements than this become weights instead of inline attributes. */
  static final int MAX_INLINE_ELEMENTS = 64;

  /** What the importer knows about one ONNX tensor name. */
  private static final class Slot {
    Value value;
    Known known;
    TensorType type;
    /** For initializers: where the data is, decoded lazily. */
    Weight.Data data;
    String weightName;
  }

  final ModelFile file;
  final ImportOptions options;
  final int opset;
  private final Module module;
  private Function function;
  private FunctionBuilder builder;
  private final Map<String, Slot> slots = new HashMap<>();
  /** Symbol name to the argument and axis it can be read from at run time. */
  private final Map<String, Object[]> symbolSources = new LinkedHashMap<>();
  private final Set<String> weightNames = new HashSet<>();
  private int unknownDims;
  /** The location of the node being imported, for the constants and weights it reads. */
  private Location current = Location.UNKNOWN;

  private GraphImporter(ModelFile file, ImportOptions options) {
    this.file = file;
    this.options = options;
    this.opset = defaultOpset(file);
    String name = file.path.getFileName().toString().replaceFirst("\\.onnx$", "");
    this.module = new Module(file.model.getGraph().getName().isEmpty() ? name : file.model.getGraph().getName());
  }

  static Module importModel(Path path, ImportOptions options) {
    ModelFile file = ModelFile.open(path);
    GraphImporter g = new GraphImporter(file, options);
    g.checkSupported();
    return g.run();
  }

  /** The opset of the default ONNX domain, checked to be in the supported range. */
  static int defaultOpset(ModelFile file) {
    Integer version = null;
    for (OperatorSetIdProto o : file.model.getOpsetImportList()) {
      if (o.getDomain().isEmpty() || o.getDomain().equals("ai.onnx")) {
        version = (int) Math.min(Integer.MAX_VALUE, o.getVersion());
      }
    }
    if (version == null) {
      if (file.model.getGraph().getNodeCount() == 0) {
        return MAX_OPSET;
      }
      throw new OnnxImportException(file.path + ": the model imports no opset of the default ONNX domain");
    }
    if (version > MAX_OPSET) {
      throw new OnnxImportException(file.path + ": opset " + version + " of the default ONNX domain is newer than"
          + " sohuc supports (" + MIN_OPSET + " to " + MAX_OPSET + "); re-export with opset " + MAX_OPSET + " or older");
    }
    if (version < MIN_OPSET) {
      throw new OnnxImportException(file.path + ": opset " + version + " of the default ONNX domain is older than"
          + " sohuc supports (" + MIN_OPSET + " to " + MAX_OPSET + "); convert it with onnx.version_converter");
    }
    return version;
  }

  /** Every node whose op sohuc cannot import, by op: one message listing them all. */
  static Map<String, List<String>> unsupported(ModelFile file, int opset) {
    Map<String, List<String>> out = new TreeMap<>();
    List<NodeProto> nodes = file.model.getGraph().getNodeList();
    for (int i = 0; i < nodes.size(); i++) {
      NodeProto n = nodes.get(i);
      if (OnnxOps.lookup(n.getDomain(), n.getOpType(), opsetOf(file, n.getDomain(), opset)).isEmpty()) {
        String key = (OnnxOps.isDefaultDomain(n.getDomain()) ? "" : n.getDomain() + ".") + n.getOpType();
        out.computeIfAbsent(key, k -> new ArrayList<>()).add(nodeName(n, i));
      }
    }
    return out;
  }

  static String describeUnsupported(Map<String, List<String>> unsupported) {
    List<String> parts = new ArrayList<>();
    unsupported.forEach((op, names) -> parts.add(op + " x" + names.size() + " (" + String.join(", ",
        names.subList(0, Math.min(3, names.size()))) + (names.size() > 3 ? ", ..." : "") + ")"));
    String hint = controlFlowHint(unsupported);
    return String.join("; ", parts) + (hint.isEmpty() ? "" : ". " + hint);
  }

  /** The control-flow ops sohuc does not compile: graphs run straight through. */
  private static final List<String> CONTROL_FLOW = List.of("If", "Loop", "Scan");

  /**
   * What to do about control flow among the unsupported ops, or "": a merged decoder's If (its
   * use_cache_branch picks the branch at run time) has a straight-line export beside it.
   */
  static String controlFlowHint(Map<String, List<String>> unsupported) {
    List<String> found = CONTROL_FLOW.stream().filter(unsupported::containsKey).toList();
    if (found.isEmpty()) {
      return "";
    }
    return String.join(", ", found) + " " + (found.size() == 1 ? "is" : "are") + " control "
        + "flow, which sohuc does not compile: export the graph without it (an Optimum merged "
        + "decoder's If picks a branch by use_cache_branch: compile decoder_model.onnx and "
        + "decoder_with_past_model.onnx, its two branches, instead)";
  }

  private void checkSupported() {
    Map<String, List<String>> u = unsupported(file, opset);
    if (!u.isEmpty()) {
      int count = u.values().stream().mapToInt(List::size).sum();
      throw new OnnxImportException(file.path + ": " + count + " node" + (count == 1 ? "" : "s")
          + " with unsupported ops: " + describeUnsupported(u));
    }
  }

  static String nodeName(NodeProto n, int index) {
    return n.getName().isEmpty() ? n.getOpType() + "_" + index : n.getName();
  }

  /**
   * A readable IR name for an ONNX tensor: exporters write {@code /encoder/layer.0/Add_output_0};
   * the location already carries the path, so the value is {@code encoder.layer.0.Add}.
   */
  static String shortName(String onnxName) {
    String s = onnxName;
    if (s.startsWith("/")) {
      s = s.substring(1);
    }
    if (s.endsWith("_output_0")) {
      s = s.substring(0, s.length() - "_output_0".length());
    }
    s = s.replace('/', '.');
    return s.isEmpty() ? onnxName : s;
  }

  String where(OnnxNode n) {
    return file.path + ": node '" + n.loc.text() + "' (" + n.opType() + ")";
  }

  FunctionBuilder builder() {
    return builder;
  }

  // ---- the import

  private Module run() {
    GraphProto g = file.model.getGraph();
    readInitializers(g);
    function = new Function("main", readInputs(g));
    builder = new FunctionBuilder(function);
    module.functions().add(function);
    List<Integer> order = sortNodes(g);
    for (int index : order) {
      NodeProto proto = g.getNode(index);
      int nodeOpset = opsetOf(file, proto.getDomain(), opset);
      OnnxNode node = new OnnxNode(this, proto, new Location(nodeName(proto, index)), nodeOpset);
      OnnxOps.OnnxOp def = OnnxOps.lookup(proto.getDomain(), proto.getOpType(), nodeOpset).orElseThrow();
      current = node.loc;
      node.checkArity();
      try {
        def.handler().apply(node);
      } catch (OnnxImportException e) {
        throw e;
      } catch (IrException e) {
        throw new OnnxImportException(where(node) + ": " + e.getMessage(), e);
      } catch (ArithmeticException e) {
        throw new OnnxImportException(where(node) + ": a dim or index overflows 64 bits", e);
      }
      for (int i = 0; i < proto.getOutputCount(); i++) {
        if (node.wants(i) && !slots.containsKey(proto.getOutput(i))) {
          throw node.error("output " + i + " ('" + proto.getOutput(i) + "') is not supported");
        }
      }
    }
    List<Function.Output> outputs = new ArrayList<>();
    Set<String> seen = new HashSet<>();
    for (ValueInfoProto out : g.getOutputList()) {
      if (!slots.containsKey(out.getName())) {
        throw new OnnxImportException(file.path + ": graph output '" + out.getName() + "' is not defined by any node,"
            + " initializer or input");
      }
      if (!seen.add(out.getName())) {
        throw new OnnxImportException(file.path + ": graph output '" + out.getName() + "' is listed twice");
      }
      checkDeclaredOutput(out, typeOf(out.getName()));
      current = new Location("output " + out.getName());
      outputs.add(new Function.Output(out.getName(), valueOf(out.getName())));
    }
    function.setOutputs(outputs);
    try {
      new Verifier().verify(module);
    } catch (IrException e) {
      throw new OnnxImportException(file.path + ": the imported IR does not verify: " + e.getMessage(), e);
    }
    return module;
  }

  /**
   * ONNX Runtime refuses a model whose graph output is declared other than the graph computes:
   * a non-tensor type, another element type or rank, or another value of a dim that both give
   * statically. An absent type or shape, and a symbolic or unknown dim, match anything.
   */
  private void checkDeclaredOutput(ValueInfoProto out, TensorType computed) {
    TypeProto t = out.getType();
    if (t.getValueCase() == TypeProto.ValueCase.VALUE_NOT_SET
        || (t.hasTensorType() && declaredTensorAgrees(t.getTensorType(), computed))) {
      return;
    }
    throw new OnnxImportException(file.path + ": graph output '" + out.getName() + "' is declared " + describe(t)
        + " but the graph computes " + computed);
  }

  private static boolean declaredTensorAgrees(TypeProto.Tensor declared, TensorType computed) {
    if (declared.getElemType() != TensorProto.DataType.UNDEFINED_VALUE
        && OnnxTensors.elementType(declared.getElemType()).orElse(null) != computed.elementType()) {
      return false;
    }
    if (!declared.hasShape()) {
      return true;
    }
    List<TensorShapeProto.Dimension> dims = declared.getShape().getDimList();
    if (dims.size() != computed.rank()) {
      return false;
    }
    for (int axis = 0; axis < dims.size(); axis++) {
      Dim c = computed.dim(axis);
      if (dims.get(axis).hasDimValue() && c.isStatic() && !c.is(dims.get(axis).getDimValue())) {
        return false;
      }
    }
    return true;
  }

  private static String describe(TypeProto t) {
    return switch (t.getValueCase()) {
      case TENSOR_TYPE -> describe(t.getTensorType());
      case SEQUENCE_TYPE -> "a sequence";
      case MAP_TYPE -> "a map";
      case OPTIONAL_TYPE -> "an optional";
      case SPARSE_TENSOR_TYPE -> "a sparse tensor";
      case OPAQUE_TYPE -> "an opaque type";
      case VALUE_NOT_SET -> "nothing";
    };
  }

  /** A declared tensor type in IR text, {@code tensor<?batch x 5 x i64>}, so it reads beside the computed one. */
  private static String describe(TypeProto.Tensor t) {
    String element = OnnxTensors.elementType(t.getElemType()).map(ElementType::text)
        .orElse(OnnxTensors.typeName(t.getElemType()));
    if (!t.hasShape()) {
      return "a tensor of " + element;
    }
    StringBuilder sb = new StringBuilder("tensor<");
    for (TensorShapeProto.Dimension d : t.getShape().getDimList()) {
      sb.append(d.hasDimValue() ? String.valueOf(d.getDimValue()) : "?" + d.getDimParam()).append(" x ");
    }
    return sb.append(element).append('>').toString();
  }

  /** The opset a node of {@code domain} is read at: the default one, or the model's import of its domain, else 1. */
  private static int opsetOf(ModelFile file, String domain, int defaultOpset) {
    if (OnnxOps.isDefaultDomain(domain)) {
      return defaultOpset;
    }
    for (OperatorSetIdProto o : file.model.getOpsetImportList()) {
      if (o.getDomain().equals(domain)) {
        return (int) Math.min(Integer.MAX_VALUE, o.getVersion());
      }
    }
    return 1;
  }

  private void readInitializers(GraphProto g) {
    for (int i = 0; i < g.getInitializerCount(); i++) {
      TensorProto t = g.getInitializer(i);
      String what = file.path + ": initializer '" + t.getName() + "'";
      if (t.getName().isEmpty()) {
        throw new OnnxImportException(file.path + ": initializer " + i + " has no name");
      }
      if (slots.containsKey(t.getName())) {
        throw new OnnxImportException(what + " is defined twice");
      }
      ElementType type = OnnxTensors.requireElementType(t.getDataType(), what);
      long[] dims = OnnxTensors.dims(t, what);
      Slot s = new Slot();
      s.type = TensorType.of(type, dims);
      s.data = file.weightData(i, t, type, dims);
      s.weightName = t.getName();
      slots.put(t.getName(), s);
    }
  }

  private List<Value> readInputs(GraphProto g) {
    Map<String, Dim> bindings = new HashMap<>();
    options.dimBindings().forEach((k, v) -> bindings.put(k, Dim.of(v)));
    Map<String, List<Dim>> declared = new LinkedHashMap<>();
    Map<String, ElementType> types = new HashMap<>();
    Set<String> usedSymbols = new HashSet<>();
    for (ValueInfoProto in : g.getInputList()) {
      if (slots.containsKey(in.getName())) {
        continue; // an initializer listed as an input (IR version < 4): a constant here
      }
      String what = file.path + ": graph input '" + in.getName() + "'";
      if (declared.containsKey(in.getName())) {
        throw new OnnxImportException(what + " is listed twice");
      }
      TypeProto t = in.getType();
      if (!t.hasTensorType()) {
        throw new OnnxImportException(what + " is not a tensor (sequences, maps and optionals are not supported)");
      }
      types.put(in.getName(), OnnxTensors.requireElementType(t.getTensorType().getElemType(), what));
      List<Long> given = options.inputShapes().get(in.getName());
      List<Dim> dims = new ArrayList<>();
      if (t.getTensorType().hasShape()) {
        Set<String> inThisTensor = new HashSet<>();
        List<TensorShapeProto.Dimension> ds = t.getTensorType().getShape().getDimList();
        for (int axis = 0; axis < ds.size(); axis++) {
          TensorShapeProto.Dimension d = ds.get(axis);
          if (d.hasDimValue()) {
            if (d.getDimValue() < 0) {
              throw new OnnxImportException(what + " has a negative dim " + d.getDimValue() + " at axis " + axis);
            }
            dims.add(Dim.of(d.getDimValue()));
          } else if (d.hasDimParam() && !d.getDimParam().isEmpty()) {
            // A name repeated within one shape is an exporter slip ([batch, batch] for
            // [batch, sequence]): later repeats become name_<axis>, the same in every input.
            String sym = inThisTensor.add(d.getDimParam()) ? d.getDimParam() : d.getDimParam() + "_" + axis;
            dims.add(Dim.symbol(sym));
          } else {
            dims.add(Dim.symbol("unk" + unknownDims++));
          }
        }
        OnnxTensors.elementCount(dims.stream().mapToLong(x -> x.isStatic() ? x.value() : 1).toArray(), what);
      } else if (given == null) {
        throw new OnnxImportException(what + " has no shape in the file; give one with --shape "
            + in.getName() + "=...");
      }
      if (given != null) {
        if (t.getTensorType().hasShape() && given.size() != dims.size()) {
          throw new OnnxImportException(what + " has rank " + dims.size() + " but --shape gives " + given);
        }
        List<Dim> fixed = new ArrayList<>();
        for (int axis = 0; axis < given.size(); axis++) {
          long v = given.get(axis);
          if (v < 0) {
            throw new OnnxImportException(what + ": --shape gives a negative dim " + v);
          }
          if (axis < dims.size() && dims.get(axis).isSymbol()) {
            String sym = dims.get(axis).symbols().get(0);
            Dim prev = bindings.putIfAbsent(sym, Dim.of(v));
            if (prev != null && !prev.is(v)) {
              throw new OnnxImportException(what + ": --shape binds ?" + sym + " to " + v + " but it is already "
                  + prev);
            }
          } else if (axis < dims.size() && dims.get(axis).isStatic() && !dims.get(axis).is(v)) {
            throw new OnnxImportException(what + " has dim " + dims.get(axis) + " at axis " + axis
                + " but --shape gives " + v);
          }
          fixed.add(Dim.of(v));
        }
        dims = fixed;
      }
      declared.put(in.getName(), dims);
      dims.forEach(d -> usedSymbols.addAll(d.symbols()));
    }
    for (String name : options.inputShapes().keySet()) {
      if (!declared.containsKey(name)) {
        throw new OnnxImportException(file.path + ": --shape names '" + name + "', which is not a graph input"
            + " (inputs: " + String.join(", ", declared.keySet()) + ")");
      }
    }
    for (String sym : options.dimBindings().keySet()) {
      if (!usedSymbols.contains(sym)) {
        throw new OnnxImportException(file.path + ": --shape binds '" + sym + "', which no input dim is named"
            + " (symbols: " + String.join(", ", new java.util.TreeSet<>(usedSymbols)) + ")");
      }
    }
    List<Value> args = new ArrayList<>();
    for (var e : declared.entrySet()) {
      List<Dim> dims = e.getValue().stream().map(d -> d.substitute(bindings)).toList();
      Value arg = Value.argument(e.getKey(), new TensorType(dims, types.get(e.getKey())));
      args.add(arg);
      for (int axis = 0; axis < dims.size(); axis++) {
        if (dims.get(axis).isSymbol()) {
          symbolSources.putIfAbsent(dims.get(axis).symbols().get(0), new Object[] {arg, axis});
        }
      }
      Slot s = new Slot();
      s.value = arg;
      s.type = arg.type();
      slots.put(e.getKey(), s);
    }
    return args;
  }

  /**
   * Node indices in an order where each node follows the producers of its inputs. ONNX
   * requires files to be sorted already; exporters and hand edits sometimes are not.
   */
  private List<Integer> sortNodes(GraphProto g) {
    Map<String, Integer> producer = new HashMap<>();
    for (int i = 0; i < g.getNodeCount(); i++) {
      NodeProto n = g.getNode(i);
      for (String out : n.getOutputList()) {
        if (out.isEmpty()) {
          continue;
        }
        if (slots.containsKey(out)) {
          throw new OnnxImportException(file.path + ": node '" + nodeName(n, i) + "' (" + n.getOpType()
              + ") defines '" + out + "', which is already a graph input or initializer");
        }
        Integer prev = producer.put(out, i);
        if (prev != null) {
          throw new OnnxImportException(file.path + ": output name '" + out + "' is defined twice, by node '"
              + nodeName(g.getNode(prev), prev) + "' and node '" + nodeName(n, i) + "'");
        }
      }
    }
    int[] pending = new int[g.getNodeCount()];
    Map<Integer, List<Integer>> consumers = new HashMap<>();
    for (int i = 0; i < g.getNodeCount(); i++) {
      NodeProto n = g.getNode(i);
      for (String in : n.getInputList()) {
        if (in.isEmpty() || slots.containsKey(in)) {
          continue;
        }
        Integer p = producer.get(in);
        if (p == null) {
          throw new OnnxImportException(file.path + ": node '" + nodeName(n, i) + "' (" + n.getOpType()
              + ") reads '" + in + "', which no node, initializer or graph input defines");
        }
        pending[i]++;
        consumers.computeIfAbsent(p, k -> new ArrayList<>()).add(i);
      }
    }
    ArrayDeque<Integer> ready = new ArrayDeque<>();
    for (int i = 0; i < pending.length; i++) {
      if (pending[i] == 0) {
        ready.add(i);
      }
    }
    List<Integer> order = new ArrayList<>();
    while (!ready.isEmpty()) {
      int i = ready.poll();
      order.add(i);
      for (int c : consumers.getOrDefault(i, List.of())) {
        if (--pending[c] == 0) {
          ready.add(c);
        }
      }
    }
    if (order.size() < g.getNodeCount()) {
      // Walk back through unsorted producers until a node repeats: that node is on a cycle.
      int i = 0;
      while (pending[i] == 0) {
        i++;
      }
      Set<Integer> visited = new HashSet<>();
      while (visited.add(i)) {
        for (String in : g.getNode(i).getInputList()) {
          Integer p = producer.get(in);
          if (p != null && pending[p] > 0) {
            i = p;
            break;
          }
        }
      }
      throw new OnnxImportException(file.path + ": the graph has a cycle through node '" + nodeName(g.getNode(i), i)
          + "' (" + g.getNode(i).getOpType() + ")");
    }
    return order;
  }

  // ---- values

  void define(String name, Value value, Known known) {
    Slot s = new Slot();
    s.value = value;
    s.known = known;
    s.type = value != null ? value.type() : known.type();
    slots.put(name, s);
  }

  private Slot slot(String name) {
    Slot s = slots.get(name);
    if (s == null) {
      throw new IllegalStateException("no slot for " + name); // sortNodes checked every input
    }
    return s;
  }

  TensorType typeOf(String name) {
    return slot(name).type;
  }

  Known knownOf(String name) {
    Slot s = slot(name);
    if (s.known == null && s.data != null && s.type.staticElementCount().orElseThrow() <= Fold.MAX_FOLD_ELEMENTS) {
      s.known = new Known.Concrete(ModelFile.decode(s.data, s.type.elementType(),
          s.type.evaluateShape(Map.of()), s.weightName));
    }
    return s.known;
  }

  /**
   * The bytes of a tensor known at import time (an initializer, mapped rather than copied, or a
   * folded value), little-endian; null when it is only known at run time.
   */
  java.nio.ByteBuffer bytesOf(String name) {
    Slot s = slot(name);
    if (s.data != null) {
      return new Weight(s.weightName, s.type, s.data).bytes();
    }
    return s.known instanceof Known.Concrete c ? java.nio.ByteBuffer.wrap(c.tensor().toBytes())
        .order(java.nio.ByteOrder.LITTLE_ENDIAN) : null;
  }

  Value valueOf(String name) {
    Slot s = slot(name);
    if (s.value == null) {
      if (s.data != null && s.type.staticElementCount().orElseThrow() > MAX_INLINE_ELEMENTS) {
        s.value = weight(s.weightName, s.type, s.data, name);
      } else {
        s.value = materialize(knownOf(name), name);
      }
    }
    return s.value;
  }

  /** A new weight {@code weightName} (made unique) holding {@code data}, and its reference. */
  Value weight(String weightName, TensorType type, Weight.Data data, String hint) {
    String unique = weightName;
    for (int i = 1; !weightNames.add(unique); i++) {
      unique = weightName + "_" + i;
    }
    module.addWeight(new Weight(unique, type, data));
    return add(new SourceOp.WeightRef(unique, type), hint == null ? null : shortName(hint));
  }

  private Value add(dev.sohuc.ir.op.Op op, String hint) {
    return builder.addNode(op, current, hint == null ? List.of() : List.of(hint)).result();
  }

  /** Emits a known value into the IR: a constant, a weight for big data, or shape arithmetic. */
  Value materialize(Known k, String hint) {
    String h = hint == null ? null : shortName(hint);
    if (k instanceof Known.Concrete c) {
      Tensor t = c.tensor();
      if (t.size() > MAX_INLINE_ELEMENTS) {
        return weight(hint == null ? "const" : hint, t.type(), new Weight.Data.Inline(t.toBytes()), hint);
      }
      return add(new SourceOp.Constant(t), h);
    }
    Known.Dims d = (Known.Dims) k;
    List<Value> parts = new ArrayList<>();
    for (Dim dim : d.dims()) {
      parts.add(dimValue(dim));
    }
    Value v = parts.size() == 1 ? parts.get(0) : add(new DataOp.Concat(parts, 0), null);
    if (d.scalar()) {
      v = add(new DataOp.Reshape(v, List.of()), null);
    }
    if (d.elementType() != ElementType.I64) {
      v = add(new ElementwiseOp.Cast(v, d.elementType()), null);
    }
    return v;
  }

  /** A 1-element i64 vector holding a dim's value at run time, read from the arguments' shapes. */
  private Value dimValue(Dim dim) {
    if (dim.isStatic()) {
      return add(new SourceOp.Constant(Tensor.ofLongs(ElementType.I64, new long[] {1},
          new long[] {dim.value()})), null);
    }
    Value sum = null;
    for (var term : dim.terms().entrySet()) {
      Value product = add(new SourceOp.Constant(Tensor.ofLongs(ElementType.I64, new long[] {1},
          new long[] {term.getValue()})), null);
      for (String sym : term.getKey().symbols()) {
        Object[] src = symbolSources.get(sym);
        if (src == null) {
          throw new OnnxImportException(file.path + ": cannot compute ?" + sym + " at run time");
        }
        int axis = (Integer) src[1];
        Value s = add(new DataOp.Shape((Value) src[0], axis, axis + 1), null);
        product = add(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.MUL, product, s), null);
      }
      sum = sum == null ? product : add(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.ADD, sum, product), null);
    }
    return sum;
  }
}
