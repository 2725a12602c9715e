package dev.sohuc.backend;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * What a launch must satisfy that the compiled code cannot check itself, written into the
 * container's metadata so that the runtime refuses a launch the reference interpreter would
 * refuse instead of reading past a table (docs/isa.md, "Launch limits"):
 * <ul>
 *   <li>{@value #DIM_LIMITS}: a slice up to a symbolic end (a rotary table's rows
 *       {@code [past, past+seq)}, an attention mask's first {@code past+seq} keys) reads past the
 *       axis when the end exceeds it, so {@code past+seq<=128} or {@code past+seq<=total};
 *   <li>{@value #INDEX_LIMITS}: an input whose values pick rows of a table (token ids into the
 *       embeddings) must pick rows that exist, so {@code input_ids<32000}.
 * </ul>
 * Entries are separated by commas; a program with none has no such key.
 */
final class LaunchChecks {
  static final String DIM_LIMITS = "dim_limits";
  static final String INDEX_LIMITS = "index_limits";

  private LaunchChecks() {}

  /** Adds fn's limits to {@code meta}; {@code known} holds the constant values. */
  static void addTo(Function fn, Map<Value, Tensor> known, Map<String, String> meta) {
    Set<String> dims = new LinkedHashSet<>();
    // each index input's name to the fewest rows of the tables it picks rows of
    Map<String, Long> rows = new TreeMap<>();
    for (Node n : fn.body()) {
      switch (n.op()) {
        case DataOp.Slice s -> {
          for (int k = 0; k < s.axes().size(); k++) {
            int axis = (int) Math.floorMod(s.axes().get(k), s.x().type().rank());
            Dim size = s.x().type().dim(axis);
            Dim end = s.ends().get(k);
            if (!end.isStatic() && !end.equals(size) && s.steps().get(k) > 0) {
              dims.add(SohuBackend.containerText(end) + "<=" + (size.isStatic() ? Long.toString(size.value())
                  : SohuBackend.containerText(size)));
            }
          }
        }
        case TransformerOp.Embedding m -> indexes(m.ids(), m.table().type().dim(0), fn, rows);
        case DataOp.Gather g when Math.floorMod(g.axis(), g.data().type().rank()) == 0
            && Lowering.constantIndices(g, known) == null ->
            indexes(g.indices(), g.data().type().dim(0), fn, rows);
        default -> { }
      }
    }
    if (!dims.isEmpty()) {
      meta.put(DIM_LIMITS, String.join(",", dims));
    }
    if (!rows.isEmpty()) {
      meta.put(INDEX_LIMITS, String.join(",", rows.entrySet().stream()
          .map(e -> e.getKey() + "<" + e.getValue()).toList()));
    }
  }

  /**
   * Records {@code tableRows} against each argument whose values reach {@code ids} moved but
   * not computed (reshaped, sliced, transposed, concatenated).
   */
  private static void indexes(Value ids, Dim tableRows, Function fn, Map<String, Long> rows) {
    if (!tableRows.isStatic()) {
      return;
    }
    if (fn.arguments().contains(ids)) {
      rows.merge(ids.name(), tableRows.value(), Math::min);
      return;
    }
    Node p = ids.producer();
    if (p == null) {
      return;
    }
    switch (p.op()) {
      case DataOp.Reshape r -> indexes(r.x(), tableRows, fn, rows);
      case DataOp.Slice s -> indexes(s.x(), tableRows, fn, rows);
      case DataOp.Transpose t -> indexes(t.x(), tableRows, fn, rows);
      case DataOp.Concat c -> c.inputs().forEach(v -> indexes(v, tableRows, fn, rows));
      default -> { }
    }
  }
}
