package dev.sohuc.passes;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * {@code dce}: removes ops none of whose results reach a function output. Every op is pure, so
 * an unread result is an op that need not run.
 */
public final class DeadCodeEliminationPass implements Pass {

  @Override
  public String name() {
    return "dce";
  }

  @Override
  public String summary() {
    return "remove ops whose results are never used";
  }

  @Override
  public PassResult run(Module module) {
    PassResult.Counters c = new PassResult.Counters();
    c.add("removed-ops", removeDead(module));
    return c.result();
  }

  /** Removes dead ops from every function; returns how many. */
  public static int removeDead(Module module) {
    int removed = 0;
    for (Function f : module.functions()) {
      removed += removeDead(f);
    }
    return removed;
  }

  /** One backward sweep: an op is live when an output or a live op reads one of its results. */
  public static int removeDead(Function f) {
    Set<Value> live = new HashSet<>();
    f.outputs().forEach(o -> live.add(o.value()));
    List<Node> body = f.body();
    boolean[] keep = new boolean[body.size()];
    for (int i = body.size() - 1; i >= 0; i--) {
      Node n = body.get(i);
      if (n.results().stream().anyMatch(live::contains)) {
        keep[i] = true;
        live.addAll(n.op().operands());
      }
    }
    int removed = 0;
    for (int i = body.size() - 1; i >= 0; i--) {
      if (!keep[i]) {
        body.remove(i);
        removed++;
      }
    }
    return removed;
  }
}
