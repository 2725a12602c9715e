package dev.sohuc.passes;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.OpRegistry;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.passes.rewrite.Replacement;
import dev.sohuc.passes.rewrite.RewriteRule;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * {@code fold-constants}: evaluates, with the reference interpreter, every op whose operands are
 * all known at compile time (constants, and fills and ranges of static shape) when its result
 * is small, and folds {@code shape} and {@code size} of tensors whose dims are static. The
 * results become {@code constant} ops. Weights are never folded: they stay where they are.
 */
public final class FoldConstantsPass extends RewritePass {
  /** Results with more elements than this stay as ops, so dumps and binaries stay small. */
  public static final int MAX_FOLDED_ELEMENTS = 4096;

  private static final Set<String> NON_SOURCE_OPS = OpRegistry.all().stream()
      .filter(d -> !d.category().equals("source"))
      .map(OpRegistry.OpDef::mnemonic)
      .collect(Collectors.toUnmodifiableSet());

  private static Optional<Replacement> constant(Tensor t) {
    return Replacement.op(new SourceOp.Constant(t));
  }

  // shape(x) -> constant [d_start, .., d_end-1]   when those dims of x are static
  public static final RewriteRule FOLD_SHAPE = RewriteRule.of("fold-shape", Set.of("shape"), (n, cx) -> {
    if (!(n.op() instanceof DataOp.Shape s)) {
      return Optional.empty();
    }
    List<Dim> dims = s.x().type().dims();
    int rank = dims.size();
    long start = Math.max(0, Math.min(s.start() < 0 ? s.start() + rank : s.start(), rank));
    long end = Math.max(start, Math.min(s.end() < 0 ? s.end() + rank : s.end(), rank));
    List<Dim> picked = dims.subList((int) start, (int) end);
    if (!picked.stream().allMatch(Dim::isStatic)) {
      return Optional.empty();
    }
    long[] values = picked.stream().mapToLong(Dim::value).toArray();
    return constant(Tensor.ofLongs(ElementType.I64, new long[] {values.length}, values));
  });

  // size(x) -> constant (product of x's dims)   when they are static
  public static final RewriteRule FOLD_SIZE = RewriteRule.of("fold-size", Set.of("size"), (n, cx) -> {
    if (!(n.op() instanceof DataOp.Size s)) {
      return Optional.empty();
    }
    var count = s.x().type().staticElementCount();
    return count.isPresent()
        ? constant(Tensor.ofLongs(ElementType.I64, new long[0], new long[] {count.getAsLong()}))
        : Optional.empty();
  });

  // gather(shape(x), c) -> constant [d_c0, ..]   when the picked dims of x are static
  public static final RewriteRule FOLD_SHAPE_ELEMENT = RewriteRule.of("fold-shape-element", Set.of("gather"),
      (n, cx) -> {
        if (!(n.op() instanceof DataOp.Gather g) || g.axis() != 0) {
          return Optional.empty();
        }
        Optional<DataOp.Shape> shape = dev.sohuc.passes.rewrite.Patterns.def(g.data(), DataOp.Shape.class);
        Optional<Tensor> idx = cx.constant(g.indices());
        if (shape.isEmpty() || idx.isEmpty()) {
          return Optional.empty();
        }
        List<Dim> dims = shape.get().x().type().dims();
        int rank = dims.size();
        int start = (int) Math.max(0, Math.min(shape.get().start() < 0 ? shape.get().start() + rank
            : shape.get().start(), rank));
        int end = (int) Math.max(start, Math.min(shape.get().end() < 0 ? shape.get().end() + rank
            : shape.get().end(), rank));
        List<Dim> seen = dims.subList(start, end);
        Tensor ix = idx.get();
        long[] out = new long[ix.size()];
        for (int i = 0; i < out.length; i++) {
          long k = ix.getLong(i);
          k = k < 0 ? k + seen.size() : k;
          if (k < 0 || k >= seen.size() || !seen.get((int) k).isStatic()) {
            return Optional.empty();
          }
          out[i] = seen.get((int) k).value();
        }
        return constant(Tensor.ofLongs(ElementType.I64, ix.shape(), out));
      });

  // op(c1, .., cn) -> constant (op evaluated by the interpreter)   when the result is small
  public static final RewriteRule EVALUATE = RewriteRule.of("evaluate", NON_SOURCE_OPS, (n, cx) -> {
    if (n.results().size() != 1) {
      return Optional.empty();
    }
    TensorType type = n.result().type();
    var count = type.staticElementCount();
    if (count.isEmpty() || count.getAsLong() > MAX_FOLDED_ELEMENTS || n.op().operands().isEmpty()) {
      return Optional.empty();
    }
    for (Value v : n.op().operands()) {
      if (!isCompileTimeSource(v)) {
        return Optional.empty();
      }
    }
    return constant(evaluate(n.op()));
  });

  /** A source op other than a weight, of static type: its data is known without the model file. */
  static boolean isCompileTimeSource(Value v) {
    Node p = v.producer();
    return p != null && p.op() instanceof SourceOp && !(p.op() instanceof SourceOp.WeightRef)
        && v.type().isStatic()
        && v.type().staticElementCount().orElse(Long.MAX_VALUE) <= MAX_FOLDED_ELEMENTS;
  }

  /** Runs one op whose operands are all source ops, in a scratch module of its own. */
  static Tensor evaluate(Op op) {
    Module scratch = new Module("fold");
    Function f = new Function("main", List.of());
    List<Value> operands = new ArrayList<>();
    for (Value v : op.operands()) {
      Node copy = new Node(v.producer().op(), List.of("c" + operands.size()), List.of(v.type()), Location.UNKNOWN);
      f.body().add(copy);
      operands.add(copy.result());
    }
    Op rebuilt = op.withOperands(operands);
    Node node = new Node(rebuilt, List.of("r"), rebuilt.inferResultTypes(), Location.UNKNOWN);
    f.body().add(node);
    f.setOutputs(List.of(new Function.Output("r", node.result())));
    scratch.functions().add(f);
    return new Interpreter(scratch).run(List.of()).get("r");
  }

  private static final List<RewriteRule> RULES = List.of(FOLD_SHAPE, FOLD_SIZE, FOLD_SHAPE_ELEMENT, EVALUATE);

  @Override
  public String name() {
    return "fold-constants";
  }

  @Override
  public String summary() {
    return "evaluate small ops on constants and shapes of static dims at compile time";
  }

  @Override
  public List<RewriteRule> rules() {
    return RULES;
  }
}
