package dev.sohuc.passes.tp;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.passes.Pass;
import dev.sohuc.passes.PassResult;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code --shard-tensor-parallel} (options {@code chips=N}, default 1, and {@code rank=R}, default
 * 0): rewrites a fused decoder module (Hugging Face weight names) into the program of chip R of
 * an N-chip tensor-parallel group, Megatron style.
 *
 * <ul>
 *   <li>column-parallel: {@code q_proj, k_proj, v_proj, gate_proj, up_proj} keep 1/N of their
 *       output rows, so each chip holds {@code heads/N} query heads and {@code intermediate/N}
 *       MLP columns. With {@code kv_heads >= N} the kv heads are split too; with fewer, chip R
 *       keeps the one kv head its query heads read (kv heads replicated {@code N/kv_heads}
 *       times);
 *   <li>row-parallel: {@code o_proj, down_proj} keep 1/N of their input columns, and their
 *       matmul is followed by {@code all_reduce {chips = N}} (a partial sum on each chip);
 *   <li>embedding, norms, rotary tables and {@code lm_head} stay replicated: every chip looks up
 *       the full table and computes all logits (no vocab split, so no gather);
 *   <li>the KV-cache arguments and present outputs get {@code kv_heads/N} (or 1) heads.
 * </ul>
 *
 * Weights with data are sliced into inline weights; shape-only weights just get their new type.
 * Reshapes that split or merge the head dim, or regroup rows, are rescaled; every other op is rebuilt on its new
 * operands, so types follow by inference.
 */
public final class ShardTensorParallelPass implements Pass {
  public static final String NAME = "shard-tensor-parallel";

  private static final List<String> COLUMN = List.of("q_proj", "k_proj", "v_proj", "gate_proj",
      "up_proj");
  private static final List<String> ROW = List.of("o_proj", "down_proj");

  private final int chips;
  private final int rank;

  public ShardTensorParallelPass() {
    this(1, 0);
  }

  public ShardTensorParallelPass(int chips, int rank) {
    if (chips < 1 || rank < 0 || rank >= chips) {
      throw new IllegalArgumentException("need chips >= 1 and 0 <= rank < chips, got chips="
          + chips + " rank=" + rank);
    }
    this.chips = chips;
    this.rank = rank;
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String summary() {
    return "shard a decoder across chips=N (column/row-parallel matmuls, all_reduce)";
  }

  @Override
  public boolean shouldApply(Module module) {
    return chips > 1;
  }

  /** Head layout read off the first attention op. */
  private record Heads(long q, long kv, long dim) {
    long localQ(int n) {
      return q / n;
    }

    long localKv(int n) {
      return Math.max(1, kv / n);
    }

    /** The first kv head chip r keeps. */
    long firstKv(int n, int r) {
      return kv >= n ? r * (kv / n) : (r * localQ(n)) / (q / kv);
    }
  }

  @Override
  public PassResult run(Module module) {
    PassResult.Counters counters = new PassResult.Counters();
    if (chips == 1) {
      return counters.result();
    }
    Function f = module.main();
    Heads heads = heads(f);
    // weights first: their new types drive everything downstream
    Map<String, TensorType> newTypes = new java.util.HashMap<>();
    for (Weight w : List.copyOf(module.weights().values())) {
      Weight s = shard(w, heads);
      if (s != w) {
        module.weights().put(w.name(), s);
        newTypes.put(w.name(), s.type());
        counters.add(role(w.name()) == Role.COLUMN ? "column-parallel weights"
            : "row-parallel weights");
      }
    }
    Map<Value, Value> map = new IdentityHashMap<>();
    List<Value> args = new ArrayList<>();
    for (Value a : f.arguments()) {
      Value na = a;
      TensorType t = a.type();
      if (a.name().startsWith("past_key_values.") && t.rank() == 4 && t.dim(1).isStatic()
          && t.dim(1).value() == heads.kv) {
        List<Dim> d = new ArrayList<>(t.dims());
        d.set(1, Dim.of(heads.localKv(chips)));
        na = Value.argument(a.name(), t.withDims(d));
        counters.add("sharded KV-cache arguments");
      }
      args.add(na);
      map.put(a, na);
    }
    Function g = new Function(f.name(), args);
    FunctionBuilder b = new FunctionBuilder(g);
    for (Node n : f.body()) {
      Op op = n.op();
      List<Value> ops = new ArrayList<>();
      for (Value v : op.operands()) {
        ops.add(map.getOrDefault(v, v));
      }
      Op nop;
      if (op instanceof SourceOp.WeightRef w && newTypes.containsKey(w.name())) {
        nop = new SourceOp.WeightRef(w.name(), newTypes.get(w.name()));
      } else if (op instanceof DataOp.Reshape r && !ops.get(0).type().equals(r.x().type())) {
        nop = new DataOp.Reshape(ops.get(0), reshape(n, r, ops.get(0).type()));
      } else {
        nop = ops.isEmpty() ? op : op.withOperands(ops);
      }
      List<String> hints = n.results().stream().map(Value::name).toList();
      Node nn = b.addNode(nop, n.location(), hints);
      for (int i = 0; i < n.results().size(); i++) {
        map.put(n.results().get(i), nn.results().get(i));
      }
      if (op instanceof LinalgOp.MatMul m && role(weightName(m.b())) == Role.ROW) {
        Value sum = b.add(new TransformerOp.AllReduce(nn.result(), chips), n.location(),
            n.result().name() + ".all_reduce");
        map.put(n.result(), sum);
        counters.add("all_reduce inserted");
      }
    }
    List<Function.Output> outs = new ArrayList<>();
    for (Function.Output o : f.outputs()) {
      outs.add(new Function.Output(o.name(), map.getOrDefault(o.value(), o.value())));
    }
    g.setOutputs(outs);
    int at = module.functions().indexOf(f);
    module.functions().set(at, g);
    return counters.result();
  }

  private Heads heads(Function f) {
    for (Node n : f.body()) {
      if (n.op() instanceof TransformerOp.Attention a) {
        TensorType q = a.q().type();
        TensorType k = a.k().type();
        if (!q.dim(1).isStatic() || !k.dim(1).isStatic() || !q.dim(3).isStatic()) {
          throw new ShardException(NAME + ": attention heads must be static");
        }
        Heads h = new Heads(q.dim(1).value(), k.dim(1).value(), q.dim(3).value());
        if (h.q % chips != 0) {
          throw new ShardException(NAME + ": " + h.q + " query heads do not split over " + chips
              + " chips");
        }
        if (h.kv % chips != 0 && chips % h.kv != 0) {
          throw new ShardException(NAME + ": " + h.kv + " kv heads neither split over nor "
              + "replicate evenly across " + chips + " chips");
        }
        return h;
      }
    }
    throw new ShardException(NAME + ": no attention op to split heads by (tensor parallelism "
        + "shards fused transformer decoders)");
  }

  private enum Role { COLUMN, ROW, REPLICATED }

  private static Role role(String weight) {
    if (weight == null) {
      return Role.REPLICATED;
    }
    for (String c : COLUMN) {
      if (weight.endsWith("." + c + ".weight") || weight.endsWith("." + c + ".bias")) {
        return Role.COLUMN;
      }
    }
    for (String r : ROW) {
      if (weight.endsWith("." + r + ".weight")) {
        return Role.ROW;
      }
      if (weight.endsWith("." + r + ".bias")) {
        throw new ShardException(NAME + ": a bias on the row-parallel " + r + " (" + weight
            + ") would be added N times; not supported");
      }
    }
    return Role.REPLICATED;
  }

  /** The weight a matmul operand reads, through transposes and casts; null if none. */
  private static String weightName(Value v) {
    Node p = v.producer();
    while (p != null && (p.op() instanceof DataOp.Transpose
        || p.op() instanceof dev.sohuc.ir.op.ElementwiseOp.Cast)) {
      p = p.op().operands().get(0).producer();
    }
    return p != null && p.op() instanceof SourceOp.WeightRef w ? w.name() : null;
  }

  /** Rows [lo, lo+count) of the output dim (dim 0) or columns of the input dim (dim 1). */
  private Weight shard(Weight w, Heads h) {
    Role role = role(w.name());
    if (role == Role.REPLICATED) {
      return w;
    }
    TensorType t = w.type();
    int axis = role == Role.COLUMN ? 0 : 1;
    if (t.rank() != (w.name().endsWith(".bias") ? 1 : 2)) {
      throw new ShardException(NAME + ": @" + w.name() + " has rank " + t.rank());
    }
    long size = t.dim(axis).value();
    long lo;
    long count;
    boolean kv = w.name().contains(".k_proj.") || w.name().contains(".v_proj.");
    if (kv) {
      count = h.localKv(chips) * h.dim;
      lo = h.firstKv(chips, rank) * h.dim;
    } else {
      if (size % chips != 0) {
        throw new ShardException(NAME + ": @" + w.name() + " dim " + axis + " (" + size
            + ") does not split over " + chips + " chips");
      }
      count = size / chips;
      lo = rank * count;
    }
    List<Dim> d = new ArrayList<>(t.dims());
    d.set(axis, Dim.of(count));
    TensorType nt = t.withDims(d);
    if (w.data() instanceof Weight.Data.ShapeOnly) {
      return new Weight(w.name(), nt, w.data());
    }
    int esize = t.elementType().sizeBytes();
    ByteBuffer src = w.bytes();
    long rows = t.rank() == 1 ? 1 : t.dim(0).value();
    long cols = t.rank() == 1 ? t.dim(0).value() : t.dim(1).value();
    byte[] out = new byte[Math.toIntExact(nt.staticElementCount().orElseThrow() * esize)];
    int o = 0;
    if (axis == 0 && t.rank() == 1) {
      src.position((int) (lo * esize));
      src.get(out, 0, (int) (count * esize));
    } else if (axis == 0) {
      src.position((int) (lo * cols * esize));
      src.get(out, 0, out.length);
    } else {
      for (long r = 0; r < rows; r++) {
        src.position((int) ((r * cols + lo) * esize));
        src.get(out, o, (int) (count * esize));
        o += (int) (count * esize);
      }
    }
    return new Weight(w.name(), nt, new Weight.Data.Inline(out));
  }

  /** Rescales a reshape that splits ([.., X] -> [.., A, B]) or merges the last dims. */
  private static List<Dim> reshape(Node n, DataOp.Reshape r, TensorType newInput) {
    List<Dim> in = r.x().type().dims();
    List<Dim> shape = new ArrayList<>(r.shape());
    Dim newLast = newInput.dim(newInput.rank() - 1);
    if (shape.size() == in.size() + 1 && shape.get(shape.size() - 1).isStatic()
        && newLast.isStatic()) {
      // split the last dim into heads x head_dim: heads follow the new width
      shape.set(shape.size() - 2, Dim.of(newLast.value() / shape.get(shape.size() - 1).value()));
      return shape;
    }
    if (shape.size() == in.size() - 1 && newInput.dim(newInput.rank() - 2).isStatic()
        && newLast.isStatic()) {
      shape.set(shape.size() - 1, Dim.of(newInput.dim(newInput.rank() - 2).value()
          * newLast.value()));
      return shape;
    }
    if (shape.size() == in.size() && newLast.isStatic()
        && shape.get(shape.size() - 1).equals(in.get(in.size() - 1))) {
      // rows regrouped ([1, B, X] -> [B, 1, X]): the width follows the new one
      shape.set(shape.size() - 1, newLast);
      return shape;
    }
    throw new ShardException(NAME + ": cannot shard " + n.describe()
        + " (only reshapes that split or merge the head dim, or regroup rows, are rescaled)");
  }
}
