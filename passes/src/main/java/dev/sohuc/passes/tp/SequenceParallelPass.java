package dev.sohuc.passes.tp;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.passes.Pass;
import dev.sohuc.passes.PassResult;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * {@code --sequence-parallel} (options {@code chips=N}, {@code rank=R}): Megatron-style sequence
 * parallelism on chip R's tensor-parallel program. Between a row-parallel projection and the
 * next column-parallel one every chip used to hold all rows of the residual stream and
 * normalize all of them, the same work N times. Here each {@code all_reduce} becomes a
 * {@code reduce_scatter} (chip R keeps block R of the rows), the row-local ops after it (the
 * residual add, casts, rms_norm and layer_norm over the hidden axis, per-row dynamic
 * quantization, any element-wise op) run on that block, and an {@code all_gather} brings the
 * rows back where a row-mixing op reads them (a matmul, attention, a slice, an output; a slice of
 * the last row gathers only each block's last row, the last chip's being it). The link
 * moves the same bytes (a ring all-reduce is a reduce-scatter then an all-gather) or fewer (the
 * gather after a narrowing cast moves bf16, after fp8 quantization one byte an element and a
 * scale a row), the sums are the same sums, and the norms cost 1/N.
 *
 * <p>The rows are the first axis of extent other than 1, which must not be the last (hidden)
 * axis and must split into N equal blocks; an all_reduce whose rows do not, or whose sum only a
 * row-mixing op reads, stays as it is. A full value meeting a block (the embeddings added to the
 * first sum) is sliced to the block.
 */
public final class SequenceParallelPass implements Pass {
  public static final String NAME = "sequence-parallel";

  private final int chips;
  private final int rank;

  /** The registry's form: one chip, so the module is its own shard and nothing changes. */
  public SequenceParallelPass() {
    this(1, 0);
  }

  public SequenceParallelPass(int chips, int rank) {
    ShardTensorParallelPass.checkGroup(chips, rank);
    this.chips = chips;
    this.rank = rank;
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String summary() {
    return "shard the rows between tensor-parallel sums (reduce_scatter, all_gather)";
  }

  @Override
  public boolean shouldApply(Module module) {
    return chips > 1;
  }

  /** A value held as this chip's block of its rows: the axis, and the rows of the whole. */
  private record Rows(int axis, Dim whole) {}

  /**
   * The rows of a value of type t: its first axis of extent other than 1, when that is not the
   * last axis and splits into equal blocks over the chips.
   */
  private Optional<Rows> rowsOf(TensorType t) {
    int axis = 0;
    while (axis < t.rank() - 1 && t.dim(axis).is(1)) {
      axis++;
    }
    if (axis >= t.rank() - 1 || t.dim(axis).dividedBy(chips).isEmpty()) {
      return Optional.empty();
    }
    return Optional.of(new Rows(axis, t.dim(axis)));
  }

  @Override
  public PassResult run(Module module) {
    PassResult.Counters counters = new PassResult.Counters();
    Function f = module.main();
    Function g = new Function(f.name(), f.arguments());
    Rewriter w = new Rewriter(f.users(), new FunctionBuilder(g), counters);
    f.arguments().forEach(a -> w.full.put(a, a));
    for (Node n : f.body()) {
      w.rewrite(n);
    }
    List<Function.Output> outs = new ArrayList<>();
    for (Function.Output o : f.outputs()) {
      outs.add(new Function.Output(o.name(), w.whole(o.value(), Location.UNKNOWN)));
    }
    g.setOutputs(outs);
    counters.add("all_gather issued a matmul earlier", issueGathersEarlier(g));
    module.functions().set(module.functions().indexOf(f), g);
    return counters.result();
  }

  /**
   * Moves each all_gather, with the ops that make its rows (the residual add, the norm, the
   * cast), above the matmul before them when they do not read it, and further above the
   * attention before that matmul when no other matmul lies between: the gather then crosses the
   * link while that attention (VPU-bound) or matmul (another micro-batch's) computes, instead
   * of in front of the projections that read it, and the matmul's own sums find the link free.
   * The sum the norm reads was started before the other micro-batch's attention, so it is done
   * by then. Returns how many moved.
   */
  private static int issueGathersEarlier(Function g) {
    List<Node> body = g.body();
    int moved = 0;
    for (int i = 0; i < body.size(); i++) {
      // the rows' gathers, not a gather of columns (the vocabulary-parallel logits)
      if (!(body.get(i).op() instanceof TransformerOp.AllGather a)
          || Math.floorMod(a.axis(), a.x().type().rank()) == a.x().type().rank() - 1) {
        continue;
      }
      // the gather's chain: the nodes just before it that it reads, transitively
      java.util.Set<Value> needed = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
      needed.addAll(body.get(i).op().operands());
      List<Node> chain = new ArrayList<>(List.of(body.get(i)));
      int start = i;
      while (start > 0) {
        Node p = body.get(start - 1);
        boolean read = p.results().stream().anyMatch(needed::contains);
        if (!read && !(p.op() instanceof SourceOp)) {
          break;
        }
        start--;
        if (read) {
          chain.add(0, p);
          needed.addAll(p.op().operands());
        }
      }
      // the matmul before the chain, with what comes between them and the casts it converts
      int at = above(body, start, SequenceParallelPass::isMatmul);
      if (at < 0) {
        continue;
      }
      while (at > 0 && body.get(at - 1).op() instanceof ElementwiseOp.Cast c
          && body.get(at).op().operands().contains(body.get(at - 1).result())) {
        at--;
      }
      // and above the attention before that matmul (no other matmul between), when the chain
      // reads nothing made there either
      int heavy = above(body, at, n -> isMatmul(n) || n.op() instanceof TransformerOp.Attention);
      if (heavy >= 0 && !isMatmul(body.get(heavy))
          && passable(body.subList(heavy, at), needed) != null) {
        at = heavy;
      }
      List<Node> sources = passable(body.subList(at, start), needed);
      if (sources == null) {
        continue;
      }
      body.removeAll(chain);
      body.removeAll(sources);
      List<Node> block = new ArrayList<>(sources);
      block.addAll(chain);
      body.addAll(at, block);
      moved++;
    }
    return moved;
  }

  /**
   * The weights among {@code passed} that make a value in {@code needed} (they move up with the
   * chain that reads them, as a norm's gamma), or null when another of them makes one.
   */
  private static List<Node> passable(List<Node> passed, java.util.Set<Value> needed) {
    List<Node> sources = new ArrayList<>();
    for (Node p : passed) {
      if (p.results().stream().anyMatch(needed::contains)) {
        if (!(p.op() instanceof SourceOp)) {
          return null;
        }
        sources.add(p);
      }
    }
    return sources;
  }

  /** The index of the last node above {@code index} that {@code test} accepts, or -1. */
  private static int above(List<Node> body, int index, java.util.function.Predicate<Node> test) {
    int i = index - 1;
    while (i >= 0 && !test.test(body.get(i))) {
      i--;
    }
    return i;
  }

  private static boolean isMatmul(Node n) {
    return n.op() instanceof QuantOp.QMatMul || n.op() instanceof LinalgOp.MatMul;
  }

  /** Rebuilds the body node by node, each value as a whole, a block, or both. */
  private final class Rewriter {
    private final Map<Value, List<Node>> users;
    private final FunctionBuilder b;
    private final PassResult.Counters counters;
    /** Old value to its whole rows, in the new body. */
    private final Map<Value, Value> full = new IdentityHashMap<>();
    /** Old value to this chip's block of its rows, in the new body. */
    private final Map<Value, Value> block = new IdentityHashMap<>();
    /** New block value to its rows. */
    private final Map<Value, Rows> rows = new IdentityHashMap<>();
    /** New whole value to its slice of this chip's rows. */
    private final Map<Value, Value> sliced = new IdentityHashMap<>();
    /** The row-local ops built so far, by op (operands by identity): a repeat is not rebuilt. */
    private final Map<Op, Node> blockOps = new java.util.HashMap<>();
    /** Each block's gather, once. */
    private final Map<Value, Value> gathers = new IdentityHashMap<>();

    Rewriter(Map<Value, List<Node>> users, FunctionBuilder b, PassResult.Counters counters) {
      this.users = users;
      this.b = b;
      this.counters = counters;
    }

    void rewrite(Node n) {
      Op op = n.op();
      if (op instanceof TransformerOp.AllReduce a && a.chips() == chips) {
        Optional<Rows> r = rowsOf(a.x().type());
        if (r.isPresent() && readByRowLocalOp(n)) {
          Value x = whole(a.x(), n.location());
          Value s = b.add(new TransformerOp.ReduceScatter(x, chips, rank, r.get().axis()),
              n.location(), n.result().name() + ".reduce_scatter");
          rows.put(s, r.get());
          block.put(n.result(), s);
          counters.add("all_reduce to reduce_scatter");
          return;
        }
      }
      if (op instanceof DataOp.Slice sl && lastRowOfBlock(sl)) {
        full.put(n.result(), lastRow(sl, n.location(), n.result().name()));
        return;
      }
      Rows r = rowLocal(n);
      List<Value> operands = new ArrayList<>();
      for (Value v : op.operands()) {
        operands.add(r == null ? whole(v, n.location())
            : blockOf(v, r, n.results().get(0).type().rank(), n.location()));
      }
      Op rebuilt = operands.isEmpty() ? op : op.withOperands(operands);
      // the projections after a norm each cast (or quantize) it: one of the block, one gather
      Node nn = r == null ? null : blockOps.get(rebuilt);
      if (nn == null) {
        nn = b.addNode(rebuilt, n.location(), n.results().stream().map(Value::name).toList());
        if (r != null) {
          blockOps.put(rebuilt, nn);
        }
      }
      for (int i = 0; i < n.results().size(); i++) {
        Value v = nn.results().get(i);
        if (r == null) {
          full.put(n.results().get(i), v);
        } else {
          block.put(n.results().get(i), v);
          rows.put(v, r);
        }
      }
    }

    /**
     * The rows n would run on when it reads a block: some operand is one, n works row by row
     * (element-wise, or normalizes the last axis), and every other operand either covers all
     * the rows (it is sliced) or is broadcast over them. Null: n runs on whole values.
     */
    private Rows rowLocal(Node n) {
      Rows r = null;
      for (Value v : n.op().operands()) {
        Value nb = block.get(v);
        if (nb != null) {
          r = rows.get(nb);
          break;
        }
      }
      if (r == null || !worksRowByRow(n.op())) {
        return null;
      }
      int rank = n.results().get(0).type().rank();
      for (Value v : n.op().operands()) {
        if (block.containsKey(v)) {
          if (v.type().rank() != rank || !rows.get(block.get(v)).equals(r)) {
            return null;
          }
          continue;
        }
        int axis = rowsAxisOf(v, r, rank);
        if (axis >= 0 && !v.type().dim(axis).equals(r.whole())) {
          return null;
        }
      }
      return r;
    }

    /**
     * Whether sl takes the last row of a block value (the prompt's last position, what serving
     * samples from): the last chip's block holds it.
     */
    private boolean lastRowOfBlock(DataOp.Slice sl) {
      Value nb = block.get(sl.x());
      if (nb == null || sl.axes().size() != 1 || sl.steps().get(0) != 1) {
        return false;
      }
      Rows r = rows.get(nb);
      return Math.floorMod(sl.axes().get(0), sl.x().type().rank()) == r.axis()
          && sl.ends().get(0).equals(r.whole()) && sl.starts().get(0).equals(r.whole().minus(Dim.of(1)));
    }

    /**
     * The last row of sl's whole without gathering all its rows: each chip's block's last row
     * gathered, N rows, of which the last chip's is it.
     */
    private Value lastRow(DataOp.Slice sl, Location at, String name) {
      Value nb = block.get(sl.x());
      int axis = rows.get(nb).axis();
      Dim size = nb.type().dim(axis);
      List<Long> axes = List.of((long) axis);
      Value mine = b.add(new DataOp.Slice(nb, List.of(size.minus(Dim.of(1))), List.of(size), axes, List.of(1L)),
          at, name + ".block_row");
      Value each = b.add(new TransformerOp.AllGather(mine, chips, rank, axis), at, name + ".all_gather");
      counters.add("all_gather of the blocks' last rows");
      return b.add(new DataOp.Slice(each, List.of(Dim.of(chips - 1)), List.of(Dim.of(chips)), axes, List.of(1L)),
          at, name);
    }

    private static boolean worksRowByRow(Op op) {
      return op instanceof Op.Elementwise
          || op instanceof TransformerOp.RmsNorm
          // its values and its [.., rows, 1] scales: each row by its own largest magnitude
          || (op instanceof QuantOp.DynamicQuantize d && d.granularity().equals("row"))
          || (op instanceof TransformerOp.LayerNorm ln
              && (ln.axis() == -1 || ln.axis() == ln.x().type().rank() - 1));
    }

    /** Whether some reader of n's result would run on a block (else the scatter gains nothing). */
    private boolean readByRowLocalOp(Node n) {
      for (Node u : users.getOrDefault(n.result(), List.of())) {
        if (worksRowByRow(u.op())) {
          return true;
        }
      }
      return false;
    }

    /** v as a whole: its block gathered the first time a whole of it is needed. */
    Value whole(Value v, Location at) {
      Value w = full.get(v);
      if (w != null) {
        return w;
      }
      Value nb = block.get(v);
      if (nb == null) {
        throw new IllegalStateException(v + " is read before it is defined");
      }
      Value gathered = gathers.get(nb);
      if (gathered == null) {
        gathered = b.add(new TransformerOp.AllGather(nb, chips, rank, rows.get(nb).axis()), at,
            v.name() + ".all_gather");
        gathers.put(nb, gathered);
        counters.add("all_gather inserted");
      }
      full.put(v, gathered);
      return gathered;
    }

    /**
     * The axis of v that an op of rank {@code resultRank} reads as rows r (operands broadcast
     * from the right), or -1 when v is broadcast over them (it lacks the axis, or it is 1).
     */
    private static int rowsAxisOf(Value v, Rows r, int resultRank) {
      int axis = r.axis() - (resultRank - v.type().rank());
      return axis < 0 || v.type().dim(axis).is(1) ? -1 : axis;
    }

    /** v as this chip's block of rows r, or whole when it is broadcast over them. */
    private Value blockOf(Value v, Rows r, int resultRank, Location at) {
      Value nb = block.get(v);
      if (nb != null) {
        return nb;
      }
      Value w = whole(v, at);
      int axis = rowsAxisOf(w, r, resultRank);
      if (axis < 0) {
        return w;
      }
      Value s = sliced.get(w);
      if (s == null) {
        Dim size = r.whole().dividedBy(chips).orElseThrow();
        Dim start = size.times(Dim.of(rank));
        s = b.add(new DataOp.Slice(w, List.of(start), List.of(start.plus(size)),
            List.of((long) axis), List.of(1L)), at, w.name() + ".rows");
        rows.put(s, r);
        sliced.put(w, s);
        counters.add("rows sliced");
      }
      return s;
    }
  }
}
