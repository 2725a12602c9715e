package dev.sohuc.passes;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.passes.rewrite.RewriteDriver;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A pass that is a flat list of rewrite rules applied greedily to a fixpoint, followed by
 * removal of the ops the rewrites left dead. Other passes may reuse its {@link #rules()}.
 */
public abstract class RewritePass implements Pass {

  /** The rules, in the order the driver tries them on each node. */
  public abstract List<RewriteRule> rules();

  /** Applies when some node is a root of some rule. */
  @Override
  public boolean shouldApply(Module module) {
    Set<String> roots = new HashSet<>();
    rules().forEach(r -> roots.addAll(r.roots()));
    for (Function f : module.functions()) {
      for (Node n : f.body()) {
        if (roots.contains(n.op().mnemonic())) {
          return true;
        }
      }
    }
    return false;
  }

  @Override
  public PassResult run(Module module) {
    PassResult.Counters counters = new PassResult.Counters();
    counters.addAll(RewriteDriver.apply(module, rules()));
    if (!counters.result().counters().isEmpty()) {
      DeadCodeEliminationPass.removeDead(module);
    }
    return counters.result();
  }
}
