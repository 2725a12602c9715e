package dev.sohuc.hf;

import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Predicate;

/**
 * The model's parameters as the graph builders ask for them: each use names the HF tensor and
 * the shape the config implies; this class checks it against the checkpoint (or, shape-only,
 * invents a placeholder), adds the module weight once, and hands back an f32 value (a cast
 * follows the weight when the checkpoint holds bf16 or f16). {@link #checkComplete} then
 * reports missing and unexpected tensors together.
 */
final class Weights {
  private final Module module;
  private final FunctionBuilder b;
  private final Safetensors checkpoint;
  private final ElementType shapeOnlyType;
  private final String prefix;
  private final Map<String, Value> uses = new HashMap<>();
  private final Map<String, List<Long>> expected = new LinkedHashMap<>();
  private final List<String> missing = new ArrayList<>();

  /**
   * @param checkpoint    null for a shape-only import
   * @param shapeOnlyType the dtype placeholders take when shape-only
   * @param prefix        prepended to every name (e.g. {@code "transformer."} for GPT-2 checkpoints
   *                      saved from the LM-head model)
   */
  Weights(Module module, FunctionBuilder b, Safetensors checkpoint, ElementType shapeOnlyType, String prefix) {
    this.module = module;
    this.b = b;
    this.checkpoint = checkpoint;
    this.shapeOnlyType = shapeOnlyType;
    this.prefix = prefix;
  }

  String prefix() {
    return prefix;
  }

  /** The f32 value of a parameter {@code name} (without the prefix) of the given shape. */
  Value use(String name, List<Long> shape, Location loc) {
    String full = prefix + name;
    Value cached = uses.get(full);
    if (cached != null) {
      if (!expected.get(full).equals(shape)) {
        throw new IllegalStateException(full + " used with two shapes");
      }
      return cached;
    }
    expected.put(full, List.copyOf(shape));
    long[] dims = shape.stream().mapToLong(Long::longValue).toArray();
    Weight w;
    if (checkpoint == null) {
      w = new Weight(full, TensorType.of(shapeOnlyType, dims), new Weight.Data.ShapeOnly());
    } else {
      Safetensors.TensorInfo info = checkpoint.tensors().get(full);
      if (info == null) {
        missing.add(full);
        w = new Weight(full, TensorType.of(ElementType.F32, dims), new Weight.Data.ShapeOnly());
      } else {
        if (!info.shape().equals(shape)) {
          throw new HfImportException(info.file() + ": tensor '" + full + "' has shape " + info.shape()
              + " but the config needs " + shape);
        }
        ElementType t = info.dtype().irType().filter(ElementType::isFloat)
            .filter(e -> e == ElementType.F32 || e == ElementType.F16 || e == ElementType.BF16)
            .orElseThrow(() -> new HfImportException(info.file() + ": tensor '" + full + "' has dtype "
                + info.dtype() + "; weights must be F32, F16 or BF16"));
        w = new Weight(full, TensorType.of(t, dims), info.slice());
      }
    }
    module.addWeight(w);
    Value v = b.add(new SourceOp.WeightRef(full, w.type()), loc, full);
    if (w.type().elementType() != ElementType.F32) {
      v = b.add(new ElementwiseOp.Cast(v, ElementType.F32), loc, full + ".f32");
    }
    uses.put(full, v);
    return v;
  }

  /** Adds a weight computed at import time (rotary tables), not part of the checkpoint. */
  Value inline(String name, TensorType type, byte[] bytes, Location loc) {
    Weight w = new Weight(name, type, new Weight.Data.Inline(bytes));
    module.addWeight(w);
    return b.add(new SourceOp.WeightRef(name, type), loc, name);
  }

  /**
   * Throws one error listing every expected tensor the checkpoint lacks and every tensor it has
   * that the model does not use, except those {@code ignorable} (buffers such as rotary
   * {@code inv_freq}, heads the graph does not compute).
   */
  void checkComplete(Path where, Predicate<String> ignorable) {
    if (checkpoint == null) {
      return;
    }
    TreeSet<String> unexpected = new TreeSet<>();
    for (String name : checkpoint.tensors().keySet()) {
      if (!expected.containsKey(name) && !ignorable.test(name)) {
        unexpected.add(name);
      }
    }
    if (missing.isEmpty() && unexpected.isEmpty()) {
      return;
    }
    StringBuilder sb = new StringBuilder(where + ": the checkpoint does not match the config:");
    if (!missing.isEmpty()) {
      sb.append(" missing tensors ").append(listText(missing));
      if (!unexpected.isEmpty()) {
        sb.append(";");
      }
    }
    if (!unexpected.isEmpty()) {
      sb.append(" unexpected tensors ").append(listText(new ArrayList<>(unexpected)));
    }
    throw new HfImportException(sb.toString());
  }

  private static String listText(List<String> names) {
    int shown = Math.min(names.size(), 12);
    String s = String.join(", ", names.subList(0, shown));
    return "[" + s + (names.size() > shown ? ", and " + (names.size() - shown) + " more" : "") + "] ("
        + names.size() + ")";
  }
}
