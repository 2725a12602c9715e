package dev.sohuc.onnx;

import java.util.List;
import java.util.Map;

/**
 * What {@link Preflight#check} found: everything that stops an import, listed at once, and the
 * memory the model needs.
 *
 * @param unsupportedOps op type to the names of the nodes using it
 * @param importError why the import failed when every op is supported, or null
 * @param unboundSymbols dims still symbolic after the given bindings
 * @param parameterBytes bytes of all initializers
 * @param importedParameterBytes bytes of the imported model's weights (block-quantized ones
 *     dequantized, large constants made weights), or -1 when it did not import
 * @param activationBytes peak bytes of live intermediate tensors, or -1 when not estimated
 * @param activationNote how the estimate was made (which symbols were taken as 1)
 */
public record PreflightReport(String model, int opset, int nodeCount, Map<String, List<String>> unsupportedOps,
                              String importError, List<String> unboundSymbols, long parameterBytes,
                              long importedParameterBytes, long activationBytes, String activationNote) {

  public PreflightReport {
    unsupportedOps = Map.copyOf(unsupportedOps);
    unboundSymbols = List.copyOf(unboundSymbols);
  }

  /** True when the model imports. */
  public boolean ok() {
    return unsupportedOps.isEmpty() && importError == null;
  }

  /** A human-readable report, several lines, ending with the verdict. */
  public String render() {
    StringBuilder sb = new StringBuilder();
    sb.append("model: ").append(model).append('\n');
    if (opset > 0) {
      sb.append("opset: ").append(opset).append(", ").append(nodeCount).append(" nodes\n");
    }
    if (!unsupportedOps.isEmpty()) {
      int count = unsupportedOps.values().stream().mapToInt(List::size).sum();
      sb.append("unsupported ops: ").append(unsupportedOps.size()).append(" types, ").append(count)
          .append(" nodes\n");
      new java.util.TreeMap<>(unsupportedOps).forEach((op, names) -> sb.append("  ").append(op).append(" x")
          .append(names.size()).append(": ").append(String.join(", ", names.subList(0, Math.min(5, names.size()))))
          .append(names.size() > 5 ? ", ..." : "").append('\n'));
      String hint = GraphImporter.controlFlowHint(unsupportedOps);
      if (!hint.isEmpty()) {
        sb.append("  (").append(hint).append(")\n");
      }
    }
    if (importError != null) {
      sb.append("import error: ").append(importError).append('\n');
    }
    sb.append("symbolic dims left unbound: ")
        .append(unboundSymbols.isEmpty() ? "none" : String.join(", ", unboundSymbols.stream().map(s -> "?" + s).toList()))
        .append('\n');
    sb.append("parameters: ").append(bytes(parameterBytes));
    // only a notable growth: any model's large constants add a little
    if (importedParameterBytes > parameterBytes + parameterBytes / 64) {
      sb.append(" in the file, ").append(bytes(importedParameterBytes))
          .append(" as imported (block-quantized weights dequantized, large constants made weights)");
    }
    sb.append('\n');
    if (activationBytes >= 0) {
      sb.append("activations (peak live): ").append(bytes(activationBytes)).append(" (").append(activationNote)
          .append(")\n");
    } else {
      sb.append("activations: not estimated (").append(activationNote).append(")\n");
    }
    sb.append(ok() ? "ok: the model imports" : "not ok: the model does not import").append('\n');
    return sb.toString();
  }

  private static String bytes(long b) {
    if (b < 1024) {
      return b + " B";
    }
    String[] units = {"KiB", "MiB", "GiB", "TiB"};
    double v = b;
    int u = -1;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return String.format(java.util.Locale.ROOT, "%.1f %s (%d bytes)", v, units[u], b);
  }
}
