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
import java.util.Set;

/**
 * {@code --shard-tensor-parallel} (options {@code chips=N}, default 1, and {@code rank=R}, default
 * 0): rewrites a fused decoder module (Hugging Face weight names) into the program of chip R of
 * an N-chip tensor-parallel group, Megatron style.
 *
 * <ul>
 *   <li>column-parallel: {@code q_proj, k_proj, v_proj, gate_proj, up_proj} and a mixture of
 *       experts' {@code w1, w3} keep 1/N of their output rows, so each chip holds
 *       {@code heads/N} query heads and {@code intermediate/N} MLP columns. With
 *       {@code kv_heads >= N} the kv heads are split too; with fewer, chip R keeps the one kv
 *       head its query heads read (kv heads replicated {@code N/kv_heads} times). Fused
 *       projections ({@code qkv_proj}: q, k and v rows one after another; {@code gate_up_proj}:
 *       gate then up) keep each part's share, and the split of their output is rescaled to
 *       match;
 *   <li>row-parallel: {@code o_proj, down_proj} and an expert's {@code w2} keep 1/N of their
 *       input columns, so their result is a partial sum on each chip. It stays partial through
 *       ops linear in it (a product with a replicated value, a sum of partials: the experts'
 *       weighted outputs added up) and is summed by {@code all_reduce {chips = N}} right after
 *       the last of them, before anything else reads it: once after o_proj and down_proj, once
 *       per mixture-of-experts layer, and a row-parallel bias is added after the sum;
 *   <li>vocabulary-parallel {@code lm_head}: each chip keeps 1/N of the vocabulary's rows of
 *       {@code lm_head.weight} (of the embedding table when the two are tied: a slice of it
 *       becomes {@code lm_head.weight}) and computes those logits, and an
 *       {@code all_gather} along the vocabulary axis puts the chips' columns side by side, so
 *       each chip reads 1/N of the head's bytes instead of all of them; a vocabulary that does
 *       not split into N equal blocks stays replicated;
 *   <li>embedding, norms and rotary tables stay replicated: every chip looks up the full table;
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
      "up_proj", "qkv_proj", "gate_up_proj", "w1", "w3");
  private static final List<String> ROW = List.of("o_proj", "down_proj", "w2");
  /** The logits' weight, [vocab, hidden], split by vocabulary rows. */
  static final String LM_HEAD = "lm_head.weight";

  private final int chips;
  private final int rank;

  public ShardTensorParallelPass() {
    this(1, 0);
  }

  public ShardTensorParallelPass(int chips, int rank) {
    checkGroup(chips, rank);
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

  /** Rejects a group that is not {@code chips >= 1} with {@code 0 <= rank < chips}. */
  static void checkGroup(int chips, int rank) {
    if (chips < 1 || rank < 0 || rank >= chips) {
      throw new IllegalArgumentException("need chips >= 1 and 0 <= rank < chips, got chips="
          + chips + " rank=" + rank);
    }
  }

  /** Head layout read off the first attention op. */
  private record Heads(long q, long kv, long dim) {
    /** Whether each of n chips takes q / n query heads and its kv heads split or replicated. */
    boolean splitOver(long n) {
      return q % n == 0 && (kv % n == 0 || n % kv == 0);
    }

    /** "; the model's heads split over 1, 2 or 4 chips": the chip counts that would do. */
    String chipCountsThatSplit() {
      // only divisors of q split its query heads: found in pairs up to sqrt(q), so a config's
      // head count of 2^40 lists them without counting to it
      java.util.TreeSet<Long> divisors = new java.util.TreeSet<>();
      for (long i = 1; i <= q / i; i++) {
        if (q % i == 0) {
          divisors.add(i);
          divisors.add(q / i);
        }
      }
      List<String> counts = new ArrayList<>();
      for (long n : divisors) {
        if (n >= 2 && splitOver(n)) {
          counts.add(Long.toString(n));
        }
      }
      String last = counts.isEmpty() ? "" : counts.remove(counts.size() - 1);
      return "; the model's heads split over " + (last.isEmpty() ? "no more than 1 chip"
          : counts.isEmpty() ? last + " chips" : String.join(", ", counts) + " or " + last
          + " chips");
    }

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
    Map<String, List<Long>> fusedParts = new java.util.HashMap<>();
    for (Weight w : List.copyOf(module.weights().values())) {
      Weight s = shard(w, heads, fusedParts);
      if (s != w) {
        module.weights().put(w.name(), s);
        newTypes.put(w.name(), s.type());
        counters.add(role(w.name()) == Role.COLUMN ? "column-parallel weights"
            : "row-parallel weights");
      }
    }
    if (counters.result().count("column-parallel weights") == 0) {
      throw new ShardException(NAME + ": found none of the projection weights it splits ("
          + String.join(", ", COLUMN) + " as *.NAME.weight); this model names its projections "
          + "otherwise, so it cannot be sharded");
    }
    VocabHead head = vocabHead(module, f);
    if (head != null) {
      Weight table = module.weights().get(head.weight());
      long vocab = table.type().dim(0).value();
      Weight s = slice(table, LM_HEAD, 0, List.of(evenBlock(table, 0, vocab)));
      module.weights().put(LM_HEAD, s);
      newTypes.put(LM_HEAD, s.type());
      counters.add("vocabulary-parallel lm_head");
    }
    Set<Node> summedAfter = partialSums(f);
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
      if (head != null && n == head.tiedTranspose()) {
        // the tied table's transpose becomes the transpose of this chip's slice of it
        DataOp.Transpose t = (DataOp.Transpose) op;
        Value slice = b.add(new SourceOp.WeightRef(LM_HEAD, newTypes.get(LM_HEAD)),
            n.location(), LM_HEAD);
        map.put(n.result(), b.add(new DataOp.Transpose(slice, t.perm()), n.location(),
            n.result().name()));
        continue;
      }
      Op nop;
      if (op instanceof SourceOp.WeightRef w && newTypes.containsKey(w.name())) {
        nop = new SourceOp.WeightRef(w.name(), newTypes.get(w.name()));
      } else if (op instanceof DataOp.Reshape r && !ops.get(0).type().equals(r.x().type())) {
        nop = new DataOp.Reshape(ops.get(0), reshape(n, r, ops.get(0).type()));
      } else if (op instanceof DataOp.Split sp && !ops.get(0).type().equals(sp.x().type())) {
        nop = new DataOp.Split(ops.get(0), sp.axis(), split(n, sp, fusedParts));
      } else {
        nop = ops.isEmpty() ? op : op.withOperands(ops);
      }
      Node nn = b.addCopy(n, nop, map);
      if (summedAfter.contains(n)) {
        Value sum = b.add(new TransformerOp.AllReduce(nn.result(), chips), n.location(),
            n.result().name() + ".all_reduce");
        map.put(n.result(), sum);
        counters.add("all_reduce inserted");
      }
      if (head != null && n == head.matmul()) {
        int last = nn.result().type().rank() - 1;
        map.put(n.result(), b.add(new TransformerOp.AllGather(nn.result(), chips, rank, last),
            n.location(), n.result().name() + ".all_gather"));
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
              + " chips" + h.chipCountsThatSplit());
        }
        if (!h.splitOver(chips)) {
          throw new ShardException(NAME + ": " + h.kv + " kv heads neither split over nor "
              + "replicate evenly across " + chips + " chips" + h.chipCountsThatSplit());
        }
        return h;
      }
    }
    throw new ShardException(NAME + ": no attention op to split heads by (tensor parallelism "
        + "shards fused transformer decoders)");
  }

  /**
   * The logits' matmul, the weight it reads ({@code lm_head.weight}, or the embedding table it
   * is tied to) and, when tied, the transpose of the table that only it reads.
   */
  private record VocabHead(Node matmul, String weight, Node tiedTranspose) {}

  /**
   * The logits' matmul, when its vocabulary splits into equal blocks over the chips: the matmul
   * whose weight is {@code lm_head.weight} (through a transpose or cast), or, for a head tied to
   * the embedding table, the matmul at {@code lm_head} that reads the table through a transpose
   * nothing else reads. Null when there is none or the vocabulary does not split.
   */
  private VocabHead vocabHead(Module module, Function f) {
    Map<Value, List<Node>> users = f.users();
    for (Node n : f.body()) {
      if (!(n.op() instanceof LinalgOp.MatMul m)) {
        continue;
      }
      String w = weightName(m.b());
      boolean tied = w != null && !w.equals(LM_HEAD) && n.location().text().equals("lm_head");
      if (w == null || !(w.equals(LM_HEAD) || tied)) {
        continue;
      }
      // [vocab, hidden], the logits' last axis its rows (not a head stored transposed)
      TensorType t = module.weights().get(w).type();
      TensorType logits = n.result().type();
      if (t.rank() != 2 || !t.dim(0).isStatic() || t.dim(0).value() % chips != 0
          || !t.dim(0).equals(logits.dim(logits.rank() - 1))
          || (tied && module.weights().containsKey(LM_HEAD))) {
        return null;
      }
      Node transpose = m.b().producer();
      if (tied && !(transpose.op() instanceof DataOp.Transpose tr
          && tr.x().producer() != null && tr.x().producer().op() instanceof SourceOp.WeightRef
          && users.get(m.b()).size() == 1)) {
        return null;
      }
      return new VocabHead(n, w, tied ? transpose : null);
    }
    return null;
  }

  /**
   * The ops after which a partial sum is summed: of the row-parallel matmuls and the ops linear
   * in their partial results (a product or quotient by a value that is not partial, a sum or
   * difference of two partials), those whose result something else reads (or is an output).
   * An op counts as linear only while every partial it reads is read by linear ops alone: a
   * partial that something else also reads is summed where it is made, every reader then reads
   * the sum, and the op is no longer linear; the set is narrowed until this holds.
   */
  private static Set<Node> partialSums(Function f) {
    Set<Node> linear = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node n : f.body()) {
      if (n.op() instanceof LinalgOp.MatMul m && role(weightName(m.b())) == Role.ROW
          || partialOperands(n, linear) != null) {
        linear.add(n);
      }
    }
    Map<Value, List<Node>> users = f.users();
    Set<Value> outputs = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    f.outputs().forEach(o -> outputs.add(o.value()));
    java.util.function.Predicate<Value> staysPartial = v -> !outputs.contains(v)
        && users.getOrDefault(v, List.of()).stream().allMatch(linear::contains);
    boolean changed = true;
    while (changed) {
      changed = false;
      for (Node n : List.copyOf(linear)) {
        List<Value> partials = n.op() instanceof LinalgOp.MatMul ? List.of()
            : partialOperands(n, linear);
        if (partials == null || !partials.stream().allMatch(staysPartial)) {
          linear.remove(n);
          changed = true;
        }
      }
    }
    Set<Node> summed = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node n : linear) {
      if (!staysPartial.test(n.result())) {
        summed.add(n);
      }
    }
    return summed;
  }

  /**
   * The operands of {@code n} that {@code partial} makes, when {@code n} is linear in them (see
   * {@link #partialSums}); else null.
   */
  private static List<Value> partialOperands(Node n, Set<Node> partial) {
    if (!(n.op() instanceof dev.sohuc.ir.op.ElementwiseOp.Binary bin)) {
      return null;
    }
    boolean a = bin.lhs().producer() != null && partial.contains(bin.lhs().producer());
    boolean b = bin.rhs().producer() != null && partial.contains(bin.rhs().producer());
    return switch (bin.kind()) {
      case MUL -> a != b ? List.of(a ? bin.lhs() : bin.rhs()) : null;
      case DIV -> a && !b ? List.of(bin.lhs()) : null;
      case ADD, SUB -> a && b ? List.of(bin.lhs(), bin.rhs()) : null;
      default -> null;
    };
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
      if (weight.endsWith("." + r + ".weight") || weight.endsWith("." + r + ".bias")) {
        return Role.ROW;
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

  /**
   * The blocks of the output dim (dim 0) a column-parallel weight keeps, in order, or the
   * columns of the input dim (dim 1) a row-parallel one keeps; a fused projection's part sizes
   * on this chip go into {@code fusedParts} under its name, for the split of its output.
   */
  private Weight shard(Weight w, Heads h, Map<String, List<Long>> fusedParts) {
    Role role = role(w.name());
    if (role == Role.REPLICATED) {
      return w;
    }
    TensorType t = w.type();
    int axis = role == Role.COLUMN ? 0 : 1;
    if (t.rank() != (w.name().endsWith(".bias") ? 1 : 2)) {
      throw new ShardException(NAME + ": @" + w.name() + " has rank " + t.rank());
    }
    if (role == Role.ROW && t.rank() == 1) {
      return w; // a row-parallel bias, added once to the sum
    }
    long size = t.dim(axis).value();
    List<long[]> blocks = role == Role.ROW ? List.of(evenBlock(w, 0, size))
        : columnBlocks(w, size, h);
    if (blocks.size() > 1) {
      fusedParts.put(w.name().substring(0, w.name().lastIndexOf('.')),
          blocks.stream().map(b -> b[1]).toList());
    }
    return slice(w, w.name(), axis, blocks);
  }

  /**
   * Weight {@code name}: the {@code (first, count)} blocks of w along {@code axis} (0: rows, or
   * a bias's elements; 1: columns of the one block), in order.
   */
  private static Weight slice(Weight w, String name, int axis, List<long[]> blocks) {
    TensorType t = w.type();
    long count = blocks.stream().mapToLong(b -> b[1]).sum();
    List<Dim> d = new ArrayList<>(t.dims());
    d.set(axis, Dim.of(count));
    TensorType nt = t.withDims(d);
    if (w.data() instanceof Weight.Data.ShapeOnly) {
      return new Weight(name, nt, w.data());
    }
    int esize = t.elementType().sizeBytes();
    ByteBuffer src = w.bytes();
    long rows = t.rank() == 1 ? 1 : t.dim(0).value();
    long cols = t.rank() == 1 ? t.dim(0).value() : t.dim(1).value();
    byte[] out = new byte[Math.toIntExact(nt.staticElementCount().orElseThrow() * esize)];
    int o = 0;
    if (axis == 0) {
      // a block of output rows is contiguous (a bias: a block of elements)
      long rowBytes = (t.rank() == 1 ? 1 : cols) * esize;
      for (long[] b : blocks) {
        src.position((int) (b[0] * rowBytes));
        src.get(out, o, (int) (b[1] * rowBytes));
        o += (int) (b[1] * rowBytes);
      }
    } else {
      long lo = blocks.get(0)[0];
      for (long r = 0; r < rows; r++) {
        src.position((int) ((r * cols + lo) * esize));
        src.get(out, o, (int) (count * esize));
        o += (int) (count * esize);
      }
    }
    return new Weight(name, nt, new Weight.Data.Inline(out));
  }

  /** The (first, count) blocks of a column-parallel weight's output rows this chip keeps. */
  private List<long[]> columnBlocks(Weight w, long size, Heads h) {
    String name = w.name();
    long q = h.q * h.dim;
    long kv = h.kv * h.dim;
    long[] myQ = {rank * h.localQ(chips) * h.dim, h.localQ(chips) * h.dim};
    long[] myKv = {h.firstKv(chips, rank) * h.dim, h.localKv(chips) * h.dim};
    if (name.contains(".k_proj.") || name.contains(".v_proj.")) {
      return List.of(myKv);
    }
    if (name.contains(".qkv_proj.")) {
      if (size != q + 2 * kv) {
        throw new ShardException(NAME + ": @" + name + " has " + size + " output rows, not the "
            + q + " + 2 x " + kv + " of its query, key and value heads");
      }
      return List.of(myQ, new long[] {q + myKv[0], myKv[1]},
          new long[] {q + kv + myKv[0], myKv[1]});
    }
    if (name.contains(".gate_up_proj.")) {
      if (size % 2 != 0) {
        throw new ShardException(NAME + ": @" + name + " has an odd number of output rows ("
            + size + "), not gate and up halves");
      }
      return List.of(evenBlock(w, 0, size / 2), evenBlock(w, size / 2, size / 2));
    }
    return List.of(evenBlock(w, 0, size));
  }

  /** This chip's 1/N of the {@code size} rows or columns from {@code first}. */
  private long[] evenBlock(Weight w, long first, long size) {
    if (size % chips != 0) {
      throw new ShardException(NAME + ": @" + w.name() + " (" + size + " "
          + (role(w.name()) == Role.COLUMN ? "output rows" : "input columns")
          + ") does not split over " + chips + " chips");
    }
    return new long[] {first + rank * (size / chips), size / chips};
  }

  /**
   * The part sizes of a split of a fused projection's output (through a bias add): the parts
   * this chip keeps of each.
   */
  private static List<Dim> split(Node n, DataOp.Split sp, Map<String, List<Long>> fusedParts) {
    Node p = sp.x().producer();
    while (p != null && p.op() instanceof dev.sohuc.ir.op.ElementwiseOp.Binary bin
        && bin.kind() == dev.sohuc.ir.op.ElementwiseOp.BinaryKind.ADD) {
      p = bin.lhs().producer();
    }
    String w = p != null && p.op() instanceof LinalgOp.MatMul m ? weightName(m.b()) : null;
    List<Long> parts = w == null ? null
        : fusedParts.get(w.substring(0, w.lastIndexOf('.')));
    int rank = sp.x().type().rank();
    if (parts == null || parts.size() != sp.sizes().size()
        || Math.floorMod(sp.axis(), rank) != rank - 1) {
      throw new ShardException(NAME + ": cannot shard " + n.describe() + " (only the split of a "
          + "fused projection's output into its parts is rescaled)");
    }
    return parts.stream().map(Dim::of).toList();
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
