package dev.sohuc.ir;

import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.OpException;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Checks a module's structural rules (SSA: each value defined once, before use; names unique;
 * weights exist) and every op's own rules and result types. Errors name the op and where it is;
 * {@code where} lets the parser say {@code file:line:col} instead of the op's source location.
 */
public final class Verifier {

  /** How errors point at a node; the default names the op and its source location. */
  @FunctionalInterface
  public interface Where {
    String of(Node node);
  }

  private final Where where;

  public Verifier(Where where) {
    this.where = where;
  }

  public Verifier() {
    this(Node::describe);
  }

  /** Verifies every function of the module; throws {@link IrException} at the first error. */
  public void verify(Module module) {
    for (Function f : module.functions()) {
      verify(module, f);
    }
  }

  public void verify(Module module, Function f) {
    Set<Value> defined = new HashSet<>();
    Set<String> names = new HashSet<>();
    String fn = "function @" + f.name();
    for (Value arg : f.arguments()) {
      checkType(arg.type(), fn + ", argument %" + arg.name());
      if (!names.add(arg.name())) {
        throw new IrException(fn + ": argument %" + arg.name() + " is defined twice");
      }
      defined.add(arg);
    }
    for (Node node : f.body()) {
      Op op = node.op();
      for (Value operand : op.operands()) {
        if (!defined.contains(operand)) {
          throw fail(node, "operand %" + operand.name() + " is used before it is defined");
        }
      }
      List<TensorType> inferred;
      try {
        inferred = op.inferResultTypes();
      } catch (OpException e) {
        throw fail(node, e.getMessage());
      }
      if (op instanceof SourceOp.WeightRef ref) {
        Weight w = module.weights().get(ref.name());
        if (w == null) {
          throw fail(node, "no weight @" + ref.name() + " in the module");
        }
        if (!w.type().equals(ref.type())) {
          throw fail(node, "weight @" + ref.name() + " has type " + w.type() + ", not " + ref.type());
        }
      }
      if (inferred.size() != node.results().size()) {
        throw fail(node, "has " + inferred.size() + " results, but " + node.results().size() + " are named");
      }
      for (int i = 0; i < inferred.size(); i++) {
        Value r = node.results().get(i);
        if (!inferred.get(i).equals(r.type())) {
          throw fail(node, "result %" + r.name() + " is declared " + r.type() + " but the op gives "
              + inferred.get(i));
        }
        if (!names.add(r.name())) {
          throw fail(node, "value %" + r.name() + " is defined twice");
        }
        defined.add(r);
      }
    }
    Set<String> outputNames = new HashSet<>();
    for (Function.Output out : f.outputs()) {
      if (!defined.contains(out.value())) {
        throw new IrException(fn + ": output \"" + out.name() + "\" returns %" + out.value().name()
            + ", which is not defined");
      }
      if (!outputNames.add(out.name())) {
        throw new IrException(fn + ": output name \"" + out.name() + "\" is used twice");
      }
    }
  }

  private static void checkType(TensorType t, String what) {
    for (Dim d : t.dims()) {
      if (d.isStatic() && d.value() < 0) {
        throw new IrException(what + " has a negative dim in " + t);
      }
    }
  }

  private IrException fail(Node node, String message) {
    return new IrException(where.of(node) + ": " + message);
  }
}
