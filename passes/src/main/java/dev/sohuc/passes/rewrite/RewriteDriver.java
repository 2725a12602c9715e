package dev.sohuc.passes.rewrite;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.OpException;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.passes.PassResult;

import java.util.List;
import java.util.Optional;

/**
 * Applies rules greedily: sweeps the body in order, offers each live node to the rules whose
 * roots name its op, and commits the first replacement that keeps the root's type; repeats until
 * a sweep changes nothing. A rule that throws while building ops simply does not match.
 */
public final class RewriteDriver {
  /** Sweeps per function before giving up on reaching a fixpoint (a rule cycle is a bug). */
  public static final int MAX_SWEEPS = 32;

  private RewriteDriver() {}

  public static PassResult apply(Module module, List<RewriteRule> rules) {
    PassResult.Counters counters = new PassResult.Counters();
    for (Function f : module.functions()) {
      apply(module, f, rules, counters);
    }
    return counters.result();
  }

  public static void apply(Module module, Function f, List<RewriteRule> rules, PassResult.Counters counters) {
    RewriteContext cx = new RewriteContext(module, f);
    List<Node> body = f.body();
    for (int sweep = 0; sweep < MAX_SWEEPS; sweep++) {
      boolean changed = false;
      for (int i = 0; i < body.size(); i++) {
        Node n = body.get(i);
        if (cx.isDead(n)) {
          continue;
        }
        for (RewriteRule rule : rules) {
          if (!rule.roots().contains(n.op().mnemonic())) {
            continue;
          }
          if (tryRule(rule, n, cx)) {
            counters.add(rule.name());
            changed = true;
            i = body.indexOf(n);
            break;
          }
        }
      }
      if (!changed) {
        return;
      }
    }
  }

  private static boolean tryRule(RewriteRule rule, Node n, RewriteContext cx) {
    cx.begin(n);
    Optional<Replacement> r;
    try {
      r = rule.match(n, cx);
    } catch (IrException | OpException illTyped) {
      r = Optional.empty();
    }
    if (r.isEmpty() || !commit(n, r.get(), cx)) {
      cx.rollback();
      return false;
    }
    return true;
  }

  private static boolean commit(Node n, Replacement r, RewriteContext cx) {
    List<TensorType> types = n.results().stream().map(Value::type).toList();
    switch (r) {
      case Replacement.WithOp w -> {
        List<TensorType> inferred;
        try {
          inferred = w.op().inferResultTypes();
        } catch (OpException e) {
          return false;
        }
        if (!inferred.equals(types) || w.op().equals(n.op())) {
          return false;
        }
        List<Value> before = n.op().operands();
        n.setOp(w.op());
        cx.operandsChanged(n, before);
      }
      case Replacement.WithValue v -> {
        if (n.results().size() != 1 || !v.value().type().equals(types.get(0)) || v.value() == n.result()) {
          return false;
        }
        cx.replace(n, v.value());
      }
    }
    return true;
  }
}
