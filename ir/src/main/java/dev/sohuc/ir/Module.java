package dev.sohuc.ir;

import dev.sohuc.ir.op.SourceOp;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/** The unit of compilation: weights by name, and functions (usually one, {@code @main}). */
public final class Module {
  private final String name;
  private final Map<String, Weight> weights = new LinkedHashMap<>();
  private final List<Function> functions = new ArrayList<>();

  public Module(String name) {
    this.name = name;
  }

  public String name() {
    return name;
  }

  public Map<String, Weight> weights() {
    return weights;
  }

  public void addWeight(Weight w) {
    if (weights.putIfAbsent(w.name(), w) != null) {
      throw new IrException("weight @" + w.name() + " is defined twice");
    }
  }

  /**
   * Removes those of {@code names} that no {@code weight} op of any function reads any more (the
   * originals a pass replaced with rewritten copies).
   */
  public void removeUnreadWeights(Collection<String> names) {
    Set<String> read = new HashSet<>();
    for (Function f : functions) {
      for (Node n : f.body()) {
        if (n.op() instanceof SourceOp.WeightRef r) {
          read.add(r.name());
        }
      }
    }
    for (String w : names) {
      if (!read.contains(w)) {
        weights.remove(w);
      }
    }
  }

  public List<Function> functions() {
    return functions;
  }

  public Optional<Function> function(String fname) {
    return functions.stream().filter(f -> f.name().equals(fname)).findFirst();
  }

  /** The entry point: {@code @main}, or the only function. */
  public Function main() {
    return function("main").orElseGet(() -> {
      if (functions.size() != 1) {
        throw new IrException("module @" + name + " has no function @main");
      }
      return functions.get(0);
    });
  }
}
