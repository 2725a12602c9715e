package dev.sohuc.passes;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.TransformerOp;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * What fusion achieved over a pipeline: how many transformer ops each kind gained, which fusion
 * rules fired how often, and which ops are still there that a fused transformer op would have
 * absorbed (a softmax outside attention, an erf outside gelu, a reduce_mean outside a norm...),
 * each with its value name and source location.
 *
 * @param fused transformer op mnemonic to the number of ops of that kind the pipeline created
 * @param rulesFired "pass: rule" to how often it fired, for fusion passes only
 * @param unfused the leftovers, in body order
 */
public record FusionReport(Map<String, Long> fused, Map<String, Long> rulesFired, List<Unfused> unfused) {

  /** An op that stayed decomposed. */
  public record Unfused(String mnemonic, String value, String location) {}

  /** Ops that, left over after fusion, mean some pattern was not recognized. */
  public static final Set<String> SUSPICIOUS = Set.of(
      "softmax", "reduce_mean", "pow", "erf", "tanh", "sigmoid", "sqrt", "reciprocal", "div");

  public FusionReport {
    fused = java.util.Collections.unmodifiableMap(new TreeMap<>(fused));
    rulesFired = java.util.Collections.unmodifiableMap(new TreeMap<>(rulesFired));
    unfused = List.copyOf(unfused);
  }

  /** How many ops of each transformer kind the module has. */
  public static Map<String, Long> countTransformerOps(Module module) {
    Map<String, Long> counts = new TreeMap<>();
    for (Function f : module.functions()) {
      for (Node n : f.body()) {
        if (n.op() instanceof TransformerOp) {
          counts.merge(n.op().mnemonic(), 1L, Long::sum);
        }
      }
    }
    return counts;
  }

  /** The report of a pipeline that started with {@code before} transformer-op counts. */
  public static FusionReport of(Map<String, Long> before, Module after, List<PassManager.PassRun> runs) {
    Map<String, Long> fused = new TreeMap<>();
    countTransformerOps(after).forEach((op, n) -> {
      long gained = n - before.getOrDefault(op, 0L);
      if (gained > 0) {
        fused.put(op, gained);
      }
    });
    Map<String, Long> rules = new TreeMap<>();
    for (PassManager.PassRun r : runs) {
      if (r.pass().startsWith("fuse-")) {
        r.result().counters().forEach((rule, c) -> rules.merge(r.pass() + ": " + rule, c, Long::sum));
      }
    }
    List<Unfused> left = new ArrayList<>();
    for (Function f : after.functions()) {
      for (Node n : f.body()) {
        if (isSuspicious(n)) {
          left.add(new Unfused(n.op().mnemonic(), n.results().get(0).name(), n.location().text()));
        }
      }
    }
    return new FusionReport(fused, rules, left);
  }

  private static boolean isSuspicious(Node n) {
    if (!SUSPICIOUS.contains(n.op().mnemonic()) || n.results().isEmpty()) {
      return false;
    }
    // Integer division is shape arithmetic, not a decomposed norm or attention.
    boolean floatOp = n.results().get(0).type().elementType().isFloat();
    return floatOp && (n.op() instanceof ElementwiseOp || n.op() instanceof ReductionOp);
  }

  public long fusedCount(String mnemonic) {
    return fused.getOrDefault(mnemonic, 0L);
  }

  /** How many leftovers have this mnemonic. */
  public long unfusedCount(String mnemonic) {
    return unfused.stream().filter(u -> u.mnemonic().equals(mnemonic)).count();
  }

  /** The text {@code sohuc compile --report} prints. */
  public String render() {
    StringBuilder sb = new StringBuilder("fusion report\n");
    if (fused.isEmpty()) {
      sb.append("  fused: nothing\n");
    } else {
      sb.append("  fused:\n");
      fused.forEach((op, n) -> sb.append(String.format("    %-16s %d%n", op, n)));
    }
    if (!rulesFired.isEmpty()) {
      sb.append("  rules fired:\n");
      rulesFired.forEach((rule, n) -> sb.append(String.format("    %-40s %d%n", rule, n)));
    }
    Map<String, Long> byOp = new LinkedHashMap<>();
    unfused.forEach(u -> byOp.merge(u.mnemonic(), 1L, Long::sum));
    if (unfused.isEmpty()) {
      sb.append("  unfused: none\n");
    } else {
      sb.append("  unfused (ops a transformer op would absorb): ").append(byOp).append('\n');
      for (Unfused u : unfused) {
        sb.append(String.format("    %-12s %%%s%s%n", u.mnemonic(), u.value(),
            u.location().isEmpty() ? "" : " at \"" + u.location() + "\""));
      }
    }
    return sb.toString();
  }
}
