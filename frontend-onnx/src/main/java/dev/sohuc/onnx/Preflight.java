package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.TensorProto;
import dev.sohuc.ir.Function;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * {@code sohuc ir model.onnx --check}: lists every unsupported op at once, the dims left
 * symbolic, and the parameter and activation memory, instead of stopping at the first problem.
 */
public final class Preflight {
  private Preflight() {}

  /**
   * Checks a model. Files that are not readable ONNX at all (not protobuf, truncated, opset
   * out of range) still throw {@link OnnxImportException}: there is nothing to report on.
   */
  public static PreflightReport check(Path model, ImportOptions options) {
    ModelFile file = ModelFile.open(model);
    int opset = GraphImporter.defaultOpset(file);
    Map<String, List<String>> unsupported = GraphImporter.unsupported(file, opset);
    long parameterBytes = 0;
    for (TensorProto t : file.model.getGraph().getInitializerList()) {
      long n = 1;
      for (long d : t.getDimsList()) {
        n = d < 0 ? 0 : saturatingMultiply(n, d);
      }
      int size = OnnxTensors.elementType(t.getDataType()).map(e -> e.sizeBytes()).orElse(4);
      parameterBytes = saturatingAdd(parameterBytes, saturatingMultiply(n, size));
    }
    String importError = null;
    List<String> unbound = new ArrayList<>();
    long activations = -1;
    long imported = -1;
    String note;
    if (!unsupported.isEmpty()) {
      note = "the model has unsupported ops";
    } else {
      try {
        Module m = GraphImporter.importModel(model, options);
        Set<String> symbols = new TreeSet<>();
        for (Value arg : m.main().arguments()) {
          arg.type().dims().forEach(d -> symbols.addAll(d.symbols()));
        }
        unbound.addAll(symbols);
        activations = peakLiveBytes(m.main());
        imported = 0;
        for (dev.sohuc.ir.Weight w : m.weights().values()) {
          imported = saturatingAdd(imported, w.sizeBytes());
        }
        note = symbols.isEmpty() ? "all dims static"
            : "unbound symbols taken as 1: " + String.join(", ", symbols.stream().map(s -> "?" + s).toList());
      } catch (IrException e) {
        importError = e.getMessage();
        note = "the import failed";
      }
    }
    return new PreflightReport(model.toString(), opset, file.model.getGraph().getNodeCount(), unsupported,
        importError, unbound, parameterBytes, imported, activations, note);
  }

  /**
   * The largest sum, over program points, of the bytes of intermediate values that are defined
   * and still to be used (arguments, outputs and weights included while live; weights and
   * constants are counted as parameters, not here).
   */
  static long peakLiveBytes(Function f) {
    Map<Value, Integer> lastUse = new HashMap<>();
    List<Node> body = f.body();
    for (int i = 0; i < body.size(); i++) {
      for (Value v : body.get(i).op().operands()) {
        lastUse.put(v, i);
      }
    }
    for (Function.Output o : f.outputs()) {
      lastUse.put(o.value(), body.size());
    }
    Map<String, Long> ones = new HashMap<>();
    long live = 0;
    for (Value a : f.arguments()) {
      live = saturatingAdd(live, bytesOf(a.type(), ones));
    }
    long peak = live;
    Set<Value> counted = new HashSet<>(f.arguments());
    List<List<Value>> dying = new ArrayList<>();
    for (int i = 0; i <= body.size(); i++) {
      dying.add(new ArrayList<>());
    }
    lastUse.forEach((v, i) -> dying.get(i).add(v));
    for (int i = 0; i < body.size(); i++) {
      Node n = body.get(i);
      if (!(n.op() instanceof SourceOp.WeightRef) && !(n.op() instanceof SourceOp.Constant)) {
        for (Value r : n.results()) {
          live = saturatingAdd(live, bytesOf(r.type(), ones));
          counted.add(r);
        }
      }
      peak = Math.max(peak, live);
      for (Value r : n.results()) {
        if (!lastUse.containsKey(r) && counted.remove(r)) {
          live -= bytesOf(r.type(), ones);
        }
      }
      for (Value v : dying.get(i)) {
        if (counted.remove(v)) {
          live -= bytesOf(v.type(), ones);
        }
      }
    }
    return peak;
  }

  private static long bytesOf(TensorType t, Map<String, Long> ones) {
    long n = t.elementType().sizeBytes();
    for (Dim d : t.dims()) {
      for (String s : d.symbols()) {
        ones.putIfAbsent(s, 1L);
      }
      try {
        n = saturatingMultiply(n, Math.max(0, d.evaluate(ones)));
      } catch (ArithmeticException e) {
        return Long.MAX_VALUE;
      }
    }
    return n;
  }

  private static long saturatingMultiply(long a, long b) {
    try {
      return Math.multiplyExact(a, b);
    } catch (ArithmeticException e) {
      return Long.MAX_VALUE;
    }
  }

  private static long saturatingAdd(long a, long b) {
    try {
      return Math.addExact(a, b);
    } catch (ArithmeticException e) {
      return Long.MAX_VALUE;
    }
  }
}
