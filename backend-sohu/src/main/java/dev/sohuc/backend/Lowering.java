package dev.sohuc.backend;

import static dev.sohuc.backend.Emitter.TOK_LOAD;
import static dev.sohuc.backend.Emitter.TOK_MXU;
import static dev.sohuc.backend.Emitter.TOK_RESIDENT;
import static dev.sohuc.backend.Emitter.TOK_STORE;
import static dev.sohuc.backend.Emitter.TOK_VPU;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.Bcast;
import dev.sohuc.isa.BinOp;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Engine;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.MemSpace;
import dev.sohuc.isa.RedOp;
import dev.sohuc.isa.RopeMode;
import dev.sohuc.isa.UnaryFn;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Lowers one IR node to instructions. Every tensor lives in HBM, row-major and dense at its
 * run-time shape; an op streams row tiles through SRAM:
 *
 * <pre>
 *   DMA  load tile i+1 (signal LOAD)        | prefetch overlaps the compute of tile i
 *   VPU/MXU compute tile i (wait LOAD ... signal STORE)
 *   DMA  store tile i (wait STORE)
 * </pre>
 *
 * Tokens are counting semaphores; each engine runs its queue in order, so one token per edge
 * suffices: an instruction that waits for the last of several DMA loads waits only for the last.
 * Every lowering leaves every token count where it found it (zero).
 */
final class Lowering {
  static final long SRAM_ALIGN = 64;

  private final Emitter e;
  private final TargetInfo target;
  private final Map<String, Integer> symbolRegs;
  private final Map<Value, Long> hbm;
  private final Map<Value, Tensor> known;
  private long sramNext;
  /**
   * Where this lowering's SRAM and ACC start: 0, or past the first stream's share for a second
   * control stream's ops (its target is then its own share, so sizes stay relative).
   */
  private long sramBase;
  private long accBase;
  private Node node;

  Lowering(Emitter e, TargetInfo target, Map<String, Integer> symbolRegs, Map<Value, Long> hbm,
      Map<Value, Tensor> known) {
    this.e = e;
    this.target = target;
    this.symbolRegs = symbolRegs;
    this.hbm = hbm;
    this.known = known;
    this.sramTop = target.sramBytes();
  }

  // ------------------------------------------------------------------------------------------
  // Which ops this backend lowers: null when supported, else why not.

  /** The first of {@code n}'s operands and results with a dim of 0 (which no op lowers), or null. */
  static Value emptyValue(Node n) {
    for (Value v : java.util.stream.Stream.concat(n.op().operands().stream(), n.results().stream())
        .toList()) {
      if (v.type().dims().stream().anyMatch(d -> d.is(0))) {
        return v;
      }
    }
    return null;
  }

  static String unsupportedReason(Node n, Map<Value, Tensor> known) {
    Op op = n.op();
    Value empty = emptyValue(n);
    if (empty != null) {
      return "%" + empty.name() + " " + empty.type() + " is empty (a dim of 0)";
    }
    if (QuantLowering.claims(op)) {
      return QuantLowering.unsupportedReason(n, known);
    }
    for (Value v : op.operands()) {
      // the gather DMA copies rows of any element type (a bf16 or i8 table's rows, converted
      // after), reshapes, transposes, slices and kv_cache_append copy bytes of any type, and
      // attention checks its K and V below
      boolean copiedRows = op instanceof TransformerOp.Embedding m && v == m.table()
          || op instanceof ElementwiseOp.Cast c && castSupported(v.type().elementType(), c.to())
          || op instanceof DataOp.Gather g && v == g.data()
          || op instanceof DataOp.Reshape || op instanceof DataOp.Transpose
          || op instanceof DataOp.Slice
          || op instanceof TransformerOp.KvCacheAppend
          || op instanceof TransformerOp.KvCacheWrite
          || op instanceof TransformerOp.Attention a && (v == a.k() || v == a.v() || v == a.pastLengths());
      if (!known.containsKey(v) && !computable(v.type().elementType()) && !copiedRows) {
        return "operand %" + v.name() + " has element type " + v.type().elementType();
      }
    }
    return switch (op) {
      case ElementwiseOp.Unary u when TrigLowering.claims(u.kind()) -> requireF32(n);
      case ElementwiseOp.Unary u when u.kind() == ElementwiseOp.UnaryKind.NOT -> null;
      case ElementwiseOp.Unary u -> unaryFn(u.kind()) == null ? "no VPU function for "
          + u.kind().mnemonic() : requireF32(n);
      case ElementwiseOp.Binary b when b.kind().isComparison() ->
          SelectLowering.compareReason(b, known);
      case ElementwiseOp.Binary b when b.kind().isLogical() -> null;
      case ElementwiseOp.Binary b -> binOp(b.kind()) == null ? "no VPU function for "
          + b.kind().mnemonic() : (binaryPlan(b, known) == null ? "broadcast of "
          + b.lhs().type() + " and " + b.rhs().type() + " is not supported" : requireF32(n));
      case ElementwiseOp.Clip c -> requireF32(n);
      case ElementwiseOp.Cast c -> castSupported(c.x().type().elementType(), c.to()) ? null
          : "cast from " + c.x().type().elementType() + " to " + c.to();
      case ElementwiseOp.Where w -> SelectLowering.whereReason(w, n.result().type(), known);
      case LinalgOp.MatMul m -> matmulReason(m.a().type(), m.b().type(), n);
      case LinalgOp.Gemm g -> g.c() != null && g.beta() != 1.0 ? "gemm with beta != 1"
          : g.transA() ? "gemm with trans_a" : g.c() != null && !isRowVector(g.c().type(),
          g.b().type().dim(g.transB() ? 0 : 1)) ? "gemm bias that is not a row vector"
          : requireF32(n);
      case ReductionOp.Softmax s -> s.log() ? "log_softmax"
          : lastAxis(s.axis(), s.x().type()) ? requireF32(n) : "softmax over a non-last axis";
      case ReductionOp.Reduce r -> r.kind() == ReductionOp.ReduceKind.PROD ? "reduce_prod"
          : r.reducedAxes().size() == 1 && lastAxis(r.reducedAxes().get(0), r.x().type()) ? requireF32(n)
          : "reduction over axes " + r.axes() + " (only the last axis)";
      case TransformerOp.Attention a -> !a.q().type().dim(3).isStatic()
          ? "attention over a symbolic head size"
          : a.pastLengths() != null && !a.pastLengths().isArgument()
          ? "past_lengths computed in the program (the argument block holds an input's)"
          : a.pastLengths() != null && a.mask() != null ? "attention with both a mask and past_lengths"
          : !List.of(ElementType.F32, ElementType.BF16).contains(a.k().type().elementType())
          ? "attention keys and values in " + a.k().type().elementType() + " (f32 or bf16)"
          : requireF32(n);
      case TransformerOp.LayerNorm l -> l.x().type().dims().subList((int) Math.floorMod(l.axis(),
          l.x().type().rank()), l.x().type().rank()).stream().allMatch(Dim::isStatic)
          ? requireF32(n) : "layer_norm over symbolic dims";
      case TransformerOp.RmsNorm r -> !r.x().type().dim(r.x().type().rank() - 1).isStatic()
          ? "rms_norm over a symbolic dim" : requireF32(n);
      case TransformerOp.Rope r -> !r.x().type().dim(r.x().type().rank() - 1).isStatic()
          ? "rope over a symbolic head size" : !leadingOnes(r.cos().type(), 2) && !tablePerSequence(r)
          ? "rope tables with batch or head dims (other than a row per sequence of one position)"
          : requireF32(n);
      case TransformerOp.Gelu g -> requireF32(n);
      case TransformerOp.Silu s -> requireF32(n);
      case TransformerOp.SwiGlu s -> requireF32(n);
      case TransformerOp.Embedding m -> !m.table().type().dim(1).isStatic()
          ? "embedding with a symbolic width" : rowsOutOfRange(m.ids(), m.table(), known);
      case TransformerOp.KvCacheAppend k -> null;
      case TransformerOp.KvCacheWrite w -> !w.pastLengths().isArgument()
          ? "past_lengths computed in the program (the argument block holds an input's)"
          : !w.cache().type().dim(3).isStatic() ? "a cache with a symbolic head size" : null;
      case DataOp.Reshape r -> null;
      case DataOp.Transpose t -> null;
      case DataOp.Expand x -> null;
      case DataOp.Concat c -> null;
      case DataOp.Split s -> null;
      case DataOp.Slice s -> sliceStarts(s) == null ? "slice with a negative start on a symbolic "
          + "dim or a step other than 1" : null;
      case DataOp.Gather g -> Math.floorMod(g.axis(), g.data().type().rank()) != 0
          ? (constantIndices(g, known) != null ? null : "gather on axis " + g.axis()
          + " with computed or out-of-range indices (axis 0, or constant indices)")
          : !g.data().type().dims().subList(1, g.data().type().rank()).stream()
          .allMatch(Dim::isStatic) ? "gather rows of symbolic width"
          : constantIndices(g, known) == null ? rowsOutOfRange(g.indices(), g.data(), known) : null;
      default -> "no lowering for '" + op.mnemonic() + "'";
    };
  }

  /**
   * Why constant row indices cannot be gathered by the DMA's row gather, or null: it reads rows
   * at index x row bytes past the table, so one outside [0, rows) reads what lies around the
   * table (the interpreter refuses it when it runs; a compile refuses it here).
   */
  private static String rowsOutOfRange(Value ids, Value table, Map<Value, Tensor> known) {
    Tensor t = known.get(ids);
    Dim rows = table.type().dim(0);
    if (t == null || !rows.isStatic()) {
      return null;
    }
    for (int i = 0; i < t.size(); i++) {
      long v = t.getLong(i);
      if (v < 0 || v >= rows.value()) {
        return "index " + v + " (element " + i + " of %" + ids.name() + ") is outside the "
            + rows.value() + " rows of %" + table.name();
      }
    }
    return null;
  }

  /** The indices of a gather when they are constants in range, negatives resolved; else null. */
  static long[] constantIndices(DataOp.Gather g, Map<Value, Tensor> known) {
    Tensor t = known.get(g.indices());
    if (t == null || t.size() > 64) {
      return null;
    }
    Dim d = g.data().type().dim((int) Math.floorMod(g.axis(), g.data().type().rank()));
    long[] out = new long[t.size()];
    for (int i = 0; i < out.length; i++) {
      long v = t.getLong(i);
      if (v < 0) {
        if (!d.isStatic()) {
          return null;
        }
        v += d.value();
      }
      if (v < 0 || (d.isStatic() && v >= d.value())) {
        return null;
      }
      out[i] = v;
    }
    return out;
  }

  private static boolean computable(ElementType t) {
    return t == ElementType.F32 || t == ElementType.I64 || t == ElementType.I32
        || t == ElementType.BOOL;
  }

  private static String requireF32(Node n) {
    for (Value v : n.results()) {
      if (v.type().elementType() != ElementType.F32) {
        return "result type " + v.type().elementType() + " (this backend computes in f32)";
      }
    }
    return null;
  }

  private static boolean castSupported(ElementType from, ElementType to) {
    if (from == to) {
      return true;
    }
    // f32 to i32 after Legalization has truncated the values: the conversion of whole numbers;
    // f16 to and from f32 at an f16 model's inputs and outputs (widen-half)
    return to == ElementType.F32 && (from == ElementType.I64 || from == ElementType.I32
        || from == ElementType.BOOL || from == ElementType.F16)
        || (to == ElementType.I32 || to == ElementType.I64 || to == ElementType.F16)
        && from == ElementType.F32;
  }

  static boolean lastAxis(long axis, TensorType t) {
    return Math.floorMod(axis, Math.max(1, t.rank())) == t.rank() - 1;
  }

  /**
   * A rope over one position per sequence ({@code [B, .., 1, D]}) whose tables hold a row per
   * sequence ({@code [B, 1, .., 1, R]}): the sequence's heads share its row.
   */
  private static boolean tablePerSequence(TransformerOp.Rope r) {
    TensorType x = r.x().type();
    TensorType c = r.cos().type();
    if (c.rank() != x.rank() || x.rank() < 3 || !x.dim(x.rank() - 2).is(1) || !c.dim(0).equals(x.dim(0))) {
      return false;
    }
    for (int i = 1; i < c.rank() - 1; i++) {
      if (!c.dim(i).is(1)) {
        return false;
      }
    }
    return true;
  }

  private static boolean leadingOnes(TensorType t, int keep) {
    for (int i = 0; i < t.rank() - keep; i++) {
      if (!t.dim(i).is(1)) {
        return false;
      }
    }
    return true;
  }

  private static boolean isRowVector(TensorType t, Dim n) {
    return t.rank() >= 1 && t.dim(t.rank() - 1).equals(n) && leadingOnes(t, 1);
  }

  private static String matmulReason(TensorType a, TensorType b, Node n) {
    if (a.rank() < 2 || b.rank() < 2) {
      return "matmul with a vector operand";
    }
    if (!b.dim(b.rank() - 1).isStatic()) {
      return "matmul with a symbolic number of columns (" + b.dim(b.rank() - 1) + ")";
    }
    if (!a.dim(a.rank() - 1).isStatic()) {
      return "matmul with a symbolic reduction length (" + a.dim(a.rank() - 1) + ")";
    }
    if (b.rank() > 2) {
      List<Dim> ab = a.dims().subList(0, a.rank() - 2);
      List<Dim> bb = b.dims().subList(0, b.rank() - 2);
      if (!ab.equals(bb) && !bb.stream().allMatch(d -> d.is(1))) {
        return "matmul whose batch dims broadcast";
      }
    }
    return requireF32(n);
  }

  static UnaryFn unaryFn(ElementwiseOp.UnaryKind k) {
    return switch (k) {
      case NEG -> UnaryFn.NEG;
      case ABS -> UnaryFn.ABS;
      case EXP -> UnaryFn.EXP;
      case LOG -> UnaryFn.LOG;
      case SQRT -> UnaryFn.SQRT;
      case RECIPROCAL -> UnaryFn.RECIP;
      case ERF -> UnaryFn.ERF;
      case TANH -> UnaryFn.TANH;
      case SIGMOID -> UnaryFn.SIGMOID;
      case RELU -> UnaryFn.RELU;
      default -> null;
    };
  }

  static BinOp binOp(ElementwiseOp.BinaryKind k) {
    return switch (k) {
      case ADD -> BinOp.ADD;
      case SUB -> BinOp.SUB;
      case MUL -> BinOp.MUL;
      case DIV -> BinOp.DIV;
      case POW -> BinOp.POW;
      case MAX -> BinOp.MAX;
      case MIN -> BinOp.MIN;
      default -> null;
    };
  }

  /** How an elementwise binary op reads its second operand. */
  enum Shape { FULL, ROW, COL, SCALAR, PLANE }

  /**
   * The plan for {@code lhs op rhs}: which operand streams as "a", how "b" broadcasts, and
   * whether a known scalar becomes an immediate. Null when unsupported.
   */
  record BinaryPlan(Value a, Value b, Shape bShape, boolean swapped, Float imm) {}

  static BinaryPlan binaryPlan(ElementwiseOp.Binary bin, Map<Value, Tensor> known) {
    List<Dim> out = dev.sohuc.ir.op.Shapes.broadcast(bin.lhs().type().dims(),
        bin.rhs().type().dims());
    Float lImm = scalarValue(bin.lhs(), known);
    Float rImm = scalarValue(bin.rhs(), known);
    if (rImm != null && squeezeEq(bin.lhs().type().dims(), out)) {
      return new BinaryPlan(bin.lhs(), bin.rhs(), Shape.SCALAR, false, rImm);
    }
    if (lImm != null && squeezeEq(bin.rhs().type().dims(), out)) {
      return new BinaryPlan(bin.rhs(), bin.lhs(), Shape.SCALAR, true, lImm);
    }
    Shape r = shapeOf(bin.rhs().type().dims(), out);
    if (squeezeEq(bin.lhs().type().dims(), out) && r != null) {
      return new BinaryPlan(bin.lhs(), bin.rhs(), r, false, null);
    }
    Shape l = shapeOf(bin.lhs().type().dims(), out);
    if (bin.kind().commutative && squeezeEq(bin.rhs().type().dims(), out) && l != null) {
      return new BinaryPlan(bin.rhs(), bin.lhs(), l, true, null);
    }
    return null;
  }

  private static Float scalarValue(Value v, Map<Value, Tensor> known) {
    Tensor t = known.get(v);
    if (t == null || t.size() != 1 || !t.isFloat()) {
      return null;
    }
    return (float) t.get(0);
  }

  /** Equal after dropping leading 1s (the elementwise patterns ignore them). */
  static boolean squeezeEq(List<Dim> a, List<Dim> b) {
    return strip(a).equals(strip(b));
  }

  private static List<Dim> strip(List<Dim> d) {
    int i = 0;
    while (i < d.size() && d.get(i).is(1)) {
      i++;
    }
    return d.subList(i, d.size());
  }

  private static Shape shapeOf(List<Dim> b, List<Dim> out) {
    if (squeezeEq(b, out)) {
      return Shape.FULL;
    }
    List<Dim> s = strip(b);
    if (s.isEmpty()) {
      return Shape.SCALAR;
    }
    if (out.isEmpty() || !out.get(out.size() - 1).isStatic()) {
      return null;
    }
    if (s.size() == 1 && s.get(0).equals(out.get(out.size() - 1))) {
      return Shape.ROW;
    }
    List<Dim> col = new ArrayList<>(out);
    col.set(col.size() - 1, Dim.of(1));
    if (squeezeEq(b, col)) {
      return Shape.COL;
    }
    // b is the trailing dims of the output (GPT-2/BERT position embeddings [seq, h] against
    // [batch, seq, h]): repeated for every leading plane
    if (s.size() < out.size() && s.equals(out.subList(out.size() - s.size(), out.size()))) {
      return Shape.PLANE;
    }
    return null;
  }

  /**
   * The start of a slice on every axis, negatives resolved; a symbolic start (the decode step's
   * rotary rows from ?past) is non-negative. Null when unsupported.
   */
  private static Dim[] sliceStarts(DataOp.Slice s) {
    int r = s.x().type().rank();
    Dim[] starts = new Dim[r];
    java.util.Arrays.fill(starts, Dim.of(0));
    for (int i = 0; i < s.axes().size(); i++) {
      if (s.steps().get(i) != 1) {
        return null;
      }
      if (!s.starts().get(i).isStatic()) {
        starts[(int) Math.floorMod(s.axes().get(i), r)] = s.starts().get(i);
        continue;
      }
      long st = s.starts().get(i).value();
      int ax = (int) Math.floorMod(s.axes().get(i), r);
      if (st < 0) {
        Dim d = s.x().type().dim(ax);
        if (!d.isStatic()) {
          return null;
        }
        st = Math.max(0, st + d.value());
      }
      starts[ax] = Dim.of(st);
    }
    return starts;
  }

  // ------------------------------------------------------------------------------------------
  // Entry point.

  void lower(Node n) {
    this.node = n;
    sramNext = sramBase;
    sramTop = sramBase + sramCollectives.limit(n, target.sramBytes());
    residentBefore = residentNow;
    residentNow = null;
    if (QuantLowering.claims(n.op())) {
      new QuantLowering(this).lower(n);
      return;
    }
    switch (n.op()) {
      case ElementwiseOp.Unary u when TrigLowering.claims(u.kind()) ->
          new TrigLowering(this).lower(n, u);
      case ElementwiseOp.Unary u when u.kind() == ElementwiseOp.UnaryKind.NOT ->
          new SelectLowering(this).not(n, u.x());
      case ElementwiseOp.Unary u -> unary(n, u.x(), unaryFn(u.kind()));
      case TransformerOp.Gelu g -> unary(n, g.x(), g.tanhApproximation() ? UnaryFn.GELU_TANH
          : UnaryFn.GELU_ERF);
      case TransformerOp.Silu s -> unary(n, s.x(), UnaryFn.SILU);
      case ElementwiseOp.Binary b when b.kind().isComparison() ->
          new SelectLowering(this).compare(n, b);
      case ElementwiseOp.Binary b when b.kind().isLogical() ->
          new SelectLowering(this).logical(n, b);
      case ElementwiseOp.Binary b -> binary(n, b);
      case ElementwiseOp.Where w -> new SelectLowering(this).where(n, w);
      case ElementwiseOp.Clip c -> clip(n, c);
      case ElementwiseOp.Cast c -> cast(n, c);
      case TransformerOp.SwiGlu s -> swiglu(n, s);
      case ReductionOp.Softmax s -> softmax(n, s);
      case ReductionOp.Reduce r -> reduce(n, r);
      case TransformerOp.LayerNorm l -> layerNorm(n, l);
      case TransformerOp.RmsNorm r -> rmsNorm(n, r);
      case TransformerOp.Rope r -> rope(n, r);
      case LinalgOp.MatMul m -> new MatmulLowering(this).matmul(n, m.a(), m.b(), false, null,
          1.0f, UnaryFn.NONE);
      case LinalgOp.Gemm g -> new MatmulLowering(this).matmul(n, g.a(), g.b(), g.transB(),
          g.c(), (float) g.alpha(), UnaryFn.NONE);
      case TransformerOp.Attention a -> new AttentionLowering(this).attention(n, a);
      case TransformerOp.Embedding m -> gather(n, m.table(), m.ids());
      case DataOp.Gather g -> {
        if (Math.floorMod(g.axis(), g.data().type().rank()) == 0
            && constantIndices(g, known) == null) {
          gather(n, g.data(), g.indices());
        } else {
          gatherConstant(n, g);
        }
      }
      case TransformerOp.KvCacheAppend k when kvCapacity.containsKey(n.result()) ->
          appendInPlace(n, k);
      case TransformerOp.KvCacheAppend k -> concat(n, List.of(k.past(), k.current()), KV_AXIS);
      case TransformerOp.KvCacheWrite w -> cacheWrite(n, w);
      case DataOp.Concat c -> concat(n, c.inputs(), (int) Math.floorMod(c.axis(),
          c.inputs().get(0).type().rank()));
      case DataOp.Split s -> split(n, s);
      case DataOp.Transpose t -> transpose(n, t);
      case DataOp.Expand x -> expand(n, x);
      case DataOp.Slice s -> slice(n, s);
      case DataOp.Reshape r -> copyDense(n.result(), r.x());
      default -> throw new BackendException(n.describe() + ": no lowering");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Shared helpers, used by the matmul and attention lowerings too.

  Emitter emitter() {
    return e;
  }

  /** Values known at compile time (constants, folded sources): used by the lowerings. */
  Map<Value, Tensor> known() {
    return known;
  }

  TargetInfo target() {
    return target;
  }

  Node node() {
    return node;
  }

  long addr(Value v) {
    Long a = hbm.get(v);
    if (a == null) {
      throw new IllegalStateException("no HBM address for %" + v.name());
    }
    return a;
  }

  /** A bump allocation of SRAM for this op; fails naming the op when the target has too little. */
  long sram(long bytes, String what) {
    long at = sramNext;
    sramNext = align(at + bytes);
    if (sramNext > sramTop) {
      throw new BackendException(node.describe() + ": needs " + (sramNext - sramBase)
          + " bytes of SRAM (for " + what + "), the target has " + (sramTop - sramBase)
          + (sramTop - sramBase < target.sramBytes() ? " below the collectives' regions in SRAM"
              : ""));
    }
    return at;
  }

  /** The end of the SRAM this op may use (from its window's start): below the collectives'. */
  long sramLimit() {
    return sramTop - sramBase;
  }

  /** The SRAM this op has taken, from its window's start. */
  long sramUsed() {
    return sramNext - sramBase;
  }

  /** The first ACC word this lowering's ops use. */
  long accBase() {
    return accBase;
  }

  /** Places this lowering's ops in SRAM and ACC from these offsets on (a second stream's). */
  void setWindow(long sramBase, long accBase) {
    this.sramBase = sramBase;
    this.accBase = accBase;
  }

  static long align(long v) {
    return (v + SRAM_ALIGN - 1) / SRAM_ALIGN * SRAM_ALIGN;
  }

  /** A fresh register holding the run-time value of {@code d}. */
  int dimReg(Dim d) {
    if (d.isStatic()) {
      return e.li(d.value());
    }
    int acc = e.alloc();
    boolean first = true;
    int t = e.alloc();
    for (var term : d.terms().entrySet()) {
      List<String> syms = term.getKey().symbols();
      long c = term.getValue();
      if (syms.isEmpty()) {
        e.emit(new Insn.Li(t, c, 0, 0));
      } else {
        e.add(t, symbolReg(syms.get(0)), 0);
        for (int i = 1; i < syms.size(); i++) {
          e.mul(t, t, symbolReg(syms.get(i)));
        }
        if (c != 1) {
          e.mulImm(t, t, c);
        }
      }
      if (first) {
        e.add(acc, t, 0);
        first = false;
      } else {
        e.add(acc, acc, t);
      }
    }
    if (first) {
      e.emit(new Insn.Li(acc, 0, 0, 0));
    }
    e.free(t);
    return acc;
  }

  private int symbolReg(String s) {
    Integer r = symbolRegs.get(s);
    if (r == null) {
      throw new BackendException(node.describe() + ": symbolic dim ?" + s
          + " is not bound by any input");
    }
    return r;
  }

  static Dim product(List<Dim> dims) {
    Dim p = Dim.of(1);
    for (Dim d : dims) {
      p = p.times(d);
    }
    return p;
  }

  /** A tensor seen as rows x cols with static cols: the last dim, or 1 if it is symbolic. */
  record View(Dim rows, long cols) {}

  static View view(TensorType t) {
    if (t.rank() == 0) {
      return new View(Dim.of(1), 1);
    }
    Dim last = t.dim(t.rank() - 1);
    if (last.isStatic()) {
      return new View(product(t.dims().subList(0, t.rank() - 1)), last.value());
    }
    return new View(product(t.dims()), 1);
  }

  /**
   * One streamed input: its base register, row stride and row bytes; {@code space} is where it
   * lives (HBM, or SRAM when preloaded whole), a nonzero {@code firstWait} is the token the
   * first tile's copy waits on (the preload's arrival), and a nonzero {@code planeStride} a
   * register holding its own HBM plane stride in a stream of {@link Planes} (else the
   * stream's).
   */
  record In(int hbmBase, long hbmRowStride, long rowBytes, MemSpace space, int firstWait,
      int planeStride, Blocks blocks) {
    In(int hbmBase, long hbmRowStride, long rowBytes) {
      this(hbmBase, hbmRowStride, rowBytes, MemSpace.HBM, 0, 0, null);
    }

    In(int hbmBase, long hbmRowStride, long rowBytes, MemSpace space, int firstWait) {
      this(hbmBase, hbmRowStride, rowBytes, space, firstWait, 0, null);
    }

    In(int hbmBase, long hbmRowStride, long rowBytes, MemSpace space, int firstWait,
        int planeStride) {
      this(hbmBase, hbmRowStride, rowBytes, space, firstWait, planeStride, null);
    }
  }

  /**
   * A streamed input whose rows are each {@code count} blocks of {@code blockBytes}, block b of
   * a row from HBM plane b, {@code planeStride} (a register) bytes apart, the plane's rows
   * {@code hbmRowStride} apart: the rows of [1, S, H * D] read from a [1, H, S, D] tensor (an
   * attention's output through the transpose to [1, S, H, D]), one DMA a tile.
   */
  record Blocks(int count, long blockBytes, int planeStride) {}

  /**
   * A second output of a row stream: the body writes it into each output tile row after the
   * first output's {@code outRowBytes}, and the stream stores it to its own tensor.
   */
  record Out(int hbmBase, long rowBytes, long hbmRowStride) {}

  /** Emits the compute of one tile; registers hold SRAM addresses and the tile's row count. */
  interface Body {
    void emit(int[] inSram, int outSram, int rows, int rowStart);
  }

  /**
   * A row stream's tile aims at this many bytes (inputs and output of one tile): narrow rows
   * (a rope head, 512 bytes) in tiles of 128 left each tile's DMAs short next to the HBM
   * latency, which only double buffering hides, so the stream waited on latency.
   */
  static final long TILE_BYTES = 4L << 20;

  /**
   * Rows per tile: a power of two, at least {@code max} rows or {@link #TILE_BYTES}, that keeps
   * the double-buffered tiles within the SRAM left.
   */
  long tileRows(long bytesPerRow, long max) {
    long left = sramTop - sramNext;
    long t = Long.highestOneBit(Math.max(1, Math.max(max, TILE_BYTES / bytesPerRow)));
    while (t > 1 && 2 * t * bytesPerRow > left) {
      t /= 2;
    }
    return t;
  }

  /**
   * Streams {@code rows} rows through SRAM in double-buffered tiles of {@code tile} rows (a power
   * of two): load tile i+1 while tile i computes, store tile i after it. The output tile has
   * {@code outRowBytes} per row; it is stored with row stride {@code outHbmStride}.
   */
  void rowStream(int rowsReg, long tile, List<In> ins, int outBase, long outRowBytes,
      long outHbmStride, Body body) {
    rowStream(rowsReg, tile, ins, outBase, outRowBytes, outHbmStride, body, false, new int[0],
        null, false, null);
  }

  /**
   * The general form: with {@code rawTokens} the body places the LOAD wait and the STORE signal
   * itself; {@code swapPairs} are register pairs swapped after every tile (more double
   * buffers); {@code afterPrologue} runs right after tile 0's load is queued; a non-null
   * {@code second} output follows the first in each tile row and is stored after it.
   */
  void rowStream(int rowsReg, long tile, List<In> ins, int outBase, long outRowBytes,
      long outHbmStride, Body body, boolean rawTokens, int[] swapPairs, Runnable afterPrologue,
      boolean needRowStart, Out second) {
    rowStream(rowsReg, tile, ins, outBase, outRowBytes, outHbmStride, body, rawTokens,
        swapPairs, afterPrologue, needRowStart, second, null);
  }

  /**
   * Planes of a row stream: each tile holds the same rows of {@code count} planes (a register;
   * at most {@code max}), {@code hbmStride} bytes apart in HBM (a register) for the output and
   * every input without a plane stride of its own, one DMA for all of them. In SRAM, plane p
   * of a tile follows plane p - 1 (tile rows of the tensor's row bytes apart).
   */
  record Planes(int count, long max, int hbmStride) {}

  /**
   * Where a row stream's second output starts in each SRAM tile row: after the first output's
   * bytes, aligned to 4 (an f32 beside an odd count of 1-byte values would be misaligned).
   */
  static long secondOutputOffset(long outRowBytes) {
    return (outRowBytes + 3) / 4 * 4;
  }

  /** The general form with planes (null: one). */
  void rowStream(int rowsReg, long tile, List<In> ins, int outBase, long outRowBytes,
      long outHbmStride, Body body, boolean rawTokens, int[] swapPairs, Runnable afterPrologue,
      boolean needRowStart, Out second, Planes planes) {
    if (planes != null && second != null) {
      throw new IllegalArgumentException("a second output of a stream of planes");
    }
    long planeCount = planes == null ? 1 : planes.max();
    int planesReg = planes == null ? 0 : planes.count();
    int planesImm = planes == null ? 1 : 0;
    int log2 = Long.numberOfTrailingZeros(tile);
    int nIn = ins.size();
    int[] hbmPtr = new int[nIn];
    int[] cur = new int[nIn];
    int[] next = new int[nIn];
    int[] inStride = new int[nIn];
    int[] tileRs = new int[nIn];
    long[] step = new long[nIn];
    for (int i = 0; i < nIn; i++) {
      In in = ins.get(i);
      long bytes = planeCount * tile * in.rowBytes();
      cur[i] = e.li(sram(bytes, "input tile"));
      next[i] = e.li(sram(bytes, "input tile"));
      hbmPtr[i] = e.copy(in.hbmBase());
      inStride[i] = e.konst(in.hbmRowStride());
      tileRs[i] = e.konst(in.rowBytes());
      step[i] = tile * in.hbmRowStride();
    }
    long secondAt = secondOutputOffset(outRowBytes);
    long tileRowBytes = second == null ? outRowBytes : secondAt + second.rowBytes();
    int outCur = e.li(sram(planeCount * tile * tileRowBytes, "output tile"));
    int outNext = e.li(sram(planeCount * tile * tileRowBytes, "output tile"));
    // SRAM plane strides of each input's tiles and of the output's
    int[] inPlane = new int[nIn];
    for (int i = 0; i < nIn; i++) {
      inPlane[i] = planes == null ? 0 : e.konst(tile * ins.get(i).rowBytes());
    }
    int outPlane = planes == null ? 0 : e.konst(tile * tileRowBytes);
    int hbmPlane = planes == null ? 0 : planes.hbmStride();
    int[] inHbmPlane = new int[nIn];
    for (int i = 0; i < nIn; i++) {
      inHbmPlane[i] = ins.get(i).planeStride() != 0 ? ins.get(i).planeStride() : hbmPlane;
    }
    int outPtr = e.copy(outBase);
    int outRs = e.konst(tileRowBytes);
    int secondPtr = second == null ? 0 : e.copy(second.hbmBase());
    int secondStride = second == null ? 0 : e.konst(second.hbmRowStride());
    int secondTile = second == null ? 0 : e.alloc();
    int outStride = e.konst(outHbmStride);
    int tileReg = e.konst(tile);
    int rem = e.copy(rowsReg);
    int count = e.alloc();
    e.addImm(count, rowsReg, tile - 1);
    e.shri(count, count, log2);
    int rowStart = needRowStart ? e.li(0) : 0;
    int curRows = e.alloc();
    // prologue: tile 0
    e.min(curRows, tileReg, rem);
    for (int i = 0; i < nIn; i++) {
      int pc = load(ins.get(i), cur[i], tileRs[i], hbmPtr[i], inStride[i], curRows, planesReg,
          planesImm, inPlane[i], inHbmPlane[i]);
      if (ins.get(i).firstWait() != 0) {
        e.patchTokens(pc, ins.get(i).firstWait(), 0);
      }
      if (i == nIn - 1) {
        e.patchTokens(pc, 0, TOK_LOAD);
      }
      e.addImm(hbmPtr[i], hbmPtr[i], step[i]);
    }
    if (afterPrologue != null) {
      afterPrologue.run();
    }
    // every tile but the last prefetches its successor; the last is peeled after the loop, so
    // no empty tile is loaded (a DMA's fixed cost) and no LOAD token is taken back on the
    // control unit, which could take a real tile's token from a busy engine and delay it
    e.addImm(count, count, -1);
    e.max(count, count, 0);
    int loop = e.beginLoop(count, 0);
    e.free(count);
    e.min(curRows, tileReg, rem);
    int nextRows = e.alloc();
    e.sub(nextRows, rem, tileReg);
    e.min(nextRows, nextRows, tileReg);
    for (int i = 0; i < nIn; i++) {
      int pc = load(ins.get(i), next[i], tileRs[i], hbmPtr[i], inStride[i], nextRows, planesReg,
          planesImm, inPlane[i], inHbmPlane[i]);
      if (i == nIn - 1) {
        e.patchTokens(pc, 0, TOK_LOAD);
      }
    }
    e.free(nextRows);
    Runnable computeAndStore = () -> {
      int from = e.pc();
      body.emit(cur, outCur, curRows, rowStart);
      if (!rawTokens) {
        e.bracket(from, TOK_LOAD, TOK_STORE, Engine.VPU);
      }
      int st = e.dma(MemSpace.HBM, outPtr, outStride, MemSpace.SRAM, outCur, outRs, outRowBytes,
          curRows, 0, planesReg, planesImm, hbmPlane, outPlane);
      e.patchTokens(st, TOK_STORE, 0);
      if (second != null) {
        // after the first store in the DMA queue, so after the same STORE token
        e.addImm(secondTile, outCur, secondAt);
        e.dma(MemSpace.HBM, secondPtr, secondStride, MemSpace.SRAM, secondTile, outRs,
            second.rowBytes(), curRows, 0, 0, 1, 0, 0);
      }
    };
    computeAndStore.run();
    for (int i = 0; i < nIn; i++) {
      e.addImm(hbmPtr[i], hbmPtr[i], step[i]);
      e.swap(cur[i], next[i]);
    }
    e.addImm(outPtr, outPtr, tile * outHbmStride);
    if (second != null) {
      e.addImm(secondPtr, secondPtr, tile * second.hbmRowStride());
    }
    e.swap(outCur, outNext);
    for (int i = 0; i + 1 < swapPairs.length; i += 2) {
      e.swap(swapPairs[i], swapPairs[i + 1]);
    }
    if (needRowStart) {
      e.add(rowStart, rowStart, tileReg);
    }
    e.sub(rem, rem, tileReg);
    e.endLoop(loop);
    // the last tile (no rows when the stream is empty: its empty load's token is consumed here)
    e.min(curRows, tileReg, rem);
    computeAndStore.run();
    e.free(hbmPtr);
    e.free(cur);
    e.free(next);
    e.free(outCur, outNext, outPtr, rem, rowStart, curRows, secondPtr, secondTile);
  }

  /**
   * A row stream's load of one tile of {@code in} (its blocks, when it has them, as the DMA's
   * planes: each a column block of the tile's rows).
   */
  private int load(In in, int dst, int dstRowStride, int src, int srcRowStride, int rows,
      int planesReg, int planesImm, int dstPlane, int srcPlane) {
    Blocks b = in.blocks();
    return b == null
        ? e.dma(MemSpace.SRAM, dst, dstRowStride, in.space(), src, srcRowStride, in.rowBytes(),
            rows, 0, planesReg, planesImm, dstPlane, srcPlane)
        : e.dma(MemSpace.SRAM, dst, dstRowStride, in.space(), src, srcRowStride, b.blockBytes(),
            rows, 0, 0, b.count(), e.konst(b.blockBytes()), b.planeStride());
  }

  /** Copies {@code rows} dense rows of {@code rowBytes} each from HBM to fresh SRAM. */
  long preloadRows(Value v, long rowBytes, long rows, String what) {
    long at = sram(rowBytes * rows, what);
    int dst = e.li(at);
    int src = e.li(addr(v));
    int rs = e.konst(rowBytes);
    int n = e.li(rows);
    e.dma(MemSpace.SRAM, dst, rs, MemSpace.HBM, src, rs, rowBytes, n, 0, 0, 1, 0, 0);
    e.free(dst, src, n);
    return at;
  }

  /** Every other f32 of {@code v} ({@code count} of them), packed into SRAM: one DMA of 4-byte rows. */
  long preloadEveryOther(Value v, long count, String what) {
    long at = sram(count * 4, what);
    int dst = e.li(at);
    int src = e.li(addr(v));
    int n = e.li(count);
    e.dma(MemSpace.SRAM, dst, e.konst(4), MemSpace.HBM, src, e.konst(8), 4, n, 0, 0, 1, 0, 0);
    e.free(dst, src, n);
    return at;
  }

  long preload(Value v, long bytes, String what) {
    long at = sram(bytes, what);
    load(at, v, bytes);
    return at;
  }

  /** Loads the first {@code bytes} of {@code v} from HBM to SRAM at {@code at} (one DMA). */
  void load(long at, Value v, long bytes) {
    int dst = e.li(at);
    int src = e.li(addr(v));
    // a DMA row is at most 128 KB: larger buffers (Llama-3's 2048 x 128 rotary tables) go as
    // rows of the largest power of two that divides them
    long row = bytes;
    while (row > 65536 && row % 2 == 0) {
      row /= 2;
    }
    if (row == bytes) {
      e.dma(MemSpace.SRAM, dst, 0, MemSpace.HBM, src, 0, bytes, 0, 1, 0, 1, 0, 0);
    } else {
      int rows = e.li(bytes / row);
      int stride = e.li(row);
      e.dma(MemSpace.SRAM, dst, stride, MemSpace.HBM, src, stride, row, rows, 0, 0, 1, 0, 0);
      e.free(rows, stride);
    }
    e.free(dst, src);
  }

  static void requireStatic(Value v, String role, Node n) {
    if (!v.type().isStatic()) {
      throw new BackendException(n.describe() + ": " + role + " must have a static shape, got "
          + v.type());
    }
  }

  static long staticBytes(Value v) {
    return v.type().staticElementCount().orElseThrow() * v.type().elementType().sizeBytes();
  }

  // ------------------------------------------------------------------------------------------
  // Elementwise and row ops.

  private void unary(Node n, Value x, UnaryFn fn) {
    View v = view(x.type());
    long rowBytes = v.cols() * 4;
    int rows = dimReg(v.rows());
    int cols = e.konst(v.cols());
    int rs = e.konst(rowBytes);
    int src = e.li(addr(x));
    int dst = e.li(addr(n.result()));
    long tile = tileRows(2 * rowBytes, v.cols() == 1 ? 1024 : 128);
    rowStream(rows, tile, List.of(new In(src, rowBytes, rowBytes)), dst, rowBytes, rowBytes,
        (in, out, r, s) -> e.vun(fn, out, rs, in[0], rs, r, cols));
    e.free(rows, src, dst);
  }

  private void clip(Node n, ElementwiseOp.Clip c) {
    View v = view(c.x().type());
    long rowBytes = v.cols() * 4;
    int rows = dimReg(v.rows());
    int cols = e.konst(v.cols());
    int rs = e.konst(rowBytes);
    int src = e.li(addr(c.x()));
    int dst = e.li(addr(n.result()));
    long tile = tileRows(2 * rowBytes, v.cols() == 1 ? 1024 : 128);
    rowStream(rows, tile, List.of(new In(src, rowBytes, rowBytes)), dst, rowBytes, rowBytes,
        (in, out, r, s) -> {
          e.vbini(BinOp.MAX, out, rs, in[0], rs, (float) c.min(), r, cols, false);
          e.vbini(BinOp.MIN, out, rs, out, rs, (float) c.max(), r, cols, false);
        });
    e.free(rows, src, dst);
  }

  private void binary(Node n, ElementwiseOp.Binary bin) {
    for (Value v : bin.operands()) {
      Node mul = fusedProducer(v);
      // the multiply fused into this add (fusedScaledAdds), not a residual add fused elsewhere
      if (mul != null && fusedProducers.get(mul) == n && mul.op() instanceof ElementwiseOp.Binary m
          && m.kind() == ElementwiseOp.BinaryKind.MUL) {
        scaledAdd(n, bin.operands().get(0) == v ? bin.rhs() : bin.lhs(), m);
        return;
      }
    }
    BinaryPlan p = binaryPlan(bin, known);
    BinOp op = binOp(bin.kind());
    TensorType outType = n.result().type();
    View v = view(outType);
    long rowBytes = v.cols() * 4;
    int rows = dimReg(v.rows());
    int cols = e.konst(v.cols());
    int rs = e.konst(rowBytes);
    int a = e.li(addr(p.a()));
    int dst = e.li(addr(n.result()));
    long tile = tileRows(3 * rowBytes, v.cols() == 1 ? 1024 : 128);
    if (p.imm() != null) {
      float imm = p.imm();
      rowStream(rows, tile, List.of(new In(a, rowBytes, rowBytes)), dst, rowBytes, rowBytes,
          (in, out, r, s) -> e.vbini(op, out, rs, in[0], rs, imm, r, cols, p.swapped()));
    } else if (p.bShape() == Shape.PLANE) {
      // per leading plane, a full-shape stream whose b restarts at the same base
      List<Dim> bDims = strip(p.b().type().dims());
      List<Dim> outDims = outType.dims();
      Dim planeRows = product(bDims.subList(0, bDims.size() - 1));
      int planes = dimReg(product(outDims.subList(0, outDims.size() - bDims.size())));
      int pRows = dimReg(planeRows);
      int planeBytes = e.alloc();
      e.mulImm(planeBytes, pRows, rowBytes);
      int b = e.li(addr(p.b()));
      int loop = e.beginLoop(planes, 0);
      rowStream(pRows, tile, List.of(new In(a, rowBytes, rowBytes), new In(b, rowBytes,
          rowBytes)), dst, rowBytes, rowBytes, (in, out, r, s) -> e.vbin(op, out, rs, in[0], rs,
          in[1], rs, r, cols, Bcast.NONE));
      e.add(a, a, planeBytes);
      e.add(dst, dst, planeBytes);
      e.endLoop(loop);
      e.free(planes, pRows, planeBytes, b);
    } else if (p.bShape() == Shape.FULL && (widening(p.a()) != null
        || widening(p.b()) != null)) {
      widenedBinary(p, op, v, rows, cols, rs, dst);
    } else if (p.bShape() == Shape.FULL || p.bShape() == Shape.COL) {
      long bRow = p.bShape() == Shape.FULL ? rowBytes : 4;
      int b = e.li(addr(p.b()));
      int bRs = e.konst(bRow);
      Bcast bc = p.bShape() == Shape.FULL ? Bcast.NONE : Bcast.COL;
      rowStream(rows, tile, List.of(new In(a, rowBytes, rowBytes), new In(b, bRow, bRow)), dst,
          rowBytes, rowBytes, (in, out, r, s) -> e.vbin(op, out, rs, in[0], rs, in[1], bRs, r,
              cols, bc));
      e.free(b);
    } else {
      long bytes = p.bShape() == Shape.ROW ? rowBytes : 4;
      int b = e.li(preload(p.b(), bytes, "broadcast operand"));
      Bcast bc = p.bShape() == Shape.ROW ? Bcast.ROW : Bcast.SCALAR;
      rowStream(rows, tile, List.of(new In(a, rowBytes, rowBytes)), dst, rowBytes, rowBytes,
          (in, out, r, s) -> e.vbin(op, out, rs, in[0], rs, b, 0, r, cols, bc));
      e.free(b);
    }
    e.free(rows, a, dst);
  }

  /**
   * {@code s + y * w} in one stream ({@link #fusedScaledAdds}): each tile of s and y with w's
   * number a row, the product into the output tile and s added to it.
   */
  private void scaledAdd(Node n, Value sum, ElementwiseOp.Binary mul) {
    BinaryPlan p = binaryPlan(mul, known);
    View v = view(n.result().type());
    long rowBytes = v.cols() * 4;
    int rows = dimReg(v.rows());
    int cols = e.konst(v.cols());
    int rs = e.konst(rowBytes);
    int wRs = e.konst(4);
    int s = e.li(addr(sum));
    int y = e.li(addr(p.a()));
    int w = e.li(addr(p.b()));
    int dst = e.li(addr(n.result()));
    long tile = tileRows(3 * rowBytes + 4, v.cols() == 1 ? 1024 : 128);
    rowStream(rows, tile, List.of(new In(s, rowBytes, rowBytes), new In(y, rowBytes, rowBytes),
        new In(w, 4, 4)), dst, rowBytes, rowBytes, (in, out, r, st) -> {
          e.vbin(BinOp.MUL, out, rs, in[1], rs, in[2], wRs, r, cols, Bcast.COL);
          e.vbin(BinOp.ADD, out, rs, in[0], rs, out, rs, r, cols, Bcast.NONE);
        });
    e.free(rows, s, y, w, dst);
  }

  /**
   * A full-shape binary op one of whose operands is a bf16 tensor widened by a cast fused here
   * (QuantLowering.fusedConversions: the summed partial before the residual add).
   */
  private void widenedBinary(BinaryPlan p, BinOp op, View v, int rows, int cols, int rs,
      int dst) {
    long rowBytes = v.cols() * 4;
    long tile = tileRows(4 * rowBytes, v.cols() == 1 ? 1024 : 128);
    WidenedOperands w = new WidenedOperands(List.of(p.a(), p.b()), op, v.cols(), tile);
    rowStream(rows, tile, w.ins(), dst, rowBytes, rowBytes,
        (in, out, r, s) -> w.binary(op, out, rs, in, r, cols, rs));
    w.free();
  }

  /**
   * The row-stream inputs of f32 operands of {@code cols} columns, in tiles of {@code tile} rows,
   * for {@link #binary} (or one operand, as is). An operand made by a bf16 to f32 cast fused into
   * this op (QuantLowering.fusedConversions) streams in as bf16, half the bytes: the vbin reads
   * it as its b operand in bf16 ({@code b_bf16}, the operands swapped where {@code op}
   * commutes), or a {@code cvt} widens its tile in SRAM first, so the numbers are the unfused
   * ones.
   */
  private final class WidenedOperands {
    private final List<In> ins = new ArrayList<>();
    private final int[] bases;
    /** Per operand: the SRAM tile it is widened into, 0 when it is not widened in SRAM. */
    private final int[] scratch;
    /** The operand the vbin reads in bf16 as its b, or -1. */
    private final int narrowB;
    private final int halfRs;

    WidenedOperands(List<Value> operands, BinOp op, long cols, long tile) {
      bases = new int[operands.size()];
      scratch = new int[operands.size()];
      boolean[] wide = new boolean[operands.size()];
      for (int i = 0; i < bases.length; i++) {
        Node cast = widening(operands.get(i));
        wide[i] = cast != null;
        long row = wide[i] ? cols * 2 : cols * 4;
        Value source = wide[i] ? cast.op().operands().get(0) : operands.get(i);
        // a reduce_scatter's block in SRAM (SramCollectives), else HBM
        Long inSram = sramCollectives.scatteredInSram(source);
        bases[i] = e.li(inSram != null ? inSram : addr(source));
        ins.add(new In(bases[i], row, row, inSram != null ? MemSpace.SRAM : MemSpace.HBM, 0));
      }
      narrowB = operands.size() < 2 ? -1 : wide[1] ? 1
          : wide[0] && (op == BinOp.ADD || op == BinOp.MUL) ? 0 : -1;
      for (int i = 0; i < bases.length; i++) {
        scratch[i] = wide[i] && i != narrowB ? e.li(sram(tile * cols * 4, "widened tile")) : 0;
      }
      halfRs = e.konst(cols * 2);
    }

    List<In> ins() {
      return ins;
    }

    /**
     * {@code op} of this tile's two operands into {@code dst} (f32 rows {@code dstRs} apart),
     * exactly as in f32; returns the vbin.
     */
    int binary(BinOp op, int dst, int dstRs, int[] in, int rows, int colsReg, int rs) {
      int b = narrowB >= 0 ? narrowB : 1;
      int a = 1 - b;
      return e.vbin(op, dst, dstRs, f32(a, in, rows, colsReg, rs), rs,
          narrowB >= 0 ? in[b] : f32(b, in, rows, colsReg, rs), narrowB >= 0 ? halfRs : rs, rows,
          colsReg, Bcast.NONE, narrowB >= 0);
    }

    /** Operand {@code i}'s tile in f32: as it streamed in, or widened into its scratch tile. */
    private int f32(int i, int[] in, int rows, int colsReg, int rs) {
      if (scratch[i] == 0) {
        return in[i];
      }
      e.emit(new Insn.Cvt(scratch[i], 0, rs, DType.F32, in[i], 0, halfRs, DType.BF16, rows,
          colsReg, dev.sohuc.isa.ScaleMode.TENSOR, 1.0f, 0, 0, false, 0, 0));
      return scratch[i];
    }

    void free() {
      freeBases();
      freeScratch();
    }

    /** The HBM base registers, once the row stream has copied them. */
    void freeBases() {
      e.free(bases);
    }

    void freeScratch() {
      e.free(scratch);
    }
  }

  private void swiglu(Node n, TransformerOp.SwiGlu s) {
    View v = view(s.gate().type());
    long rowBytes = v.cols() * 4;
    int rows = dimReg(v.rows());
    int cols = e.konst(v.cols());
    int rs = e.konst(rowBytes);
    int g = e.li(addr(s.gate()));
    int u = e.li(addr(s.up()));
    int dst = e.li(addr(n.result()));
    long tile = tileRows(3 * rowBytes, v.cols() == 1 ? 1024 : 128);
    rowStream(rows, tile, List.of(new In(g, rowBytes, rowBytes), new In(u, rowBytes, rowBytes)),
        dst, rowBytes, rowBytes, (in, out, r, st) -> e.emit(new Insn.Vglu(UnaryFn.SILU, out, 0,
            rs, in[0], 0, rs, in[1], 0, rs, r, cols, DType.F32, 0, 0)));
    e.free(rows, g, u, dst);
  }

  private void cast(Node n, ElementwiseOp.Cast c) {
    ElementType from = c.x().type().elementType();
    if (from == c.to()) {
      copyDense(n.result(), c.x());
      return;
    }
    if (c.to() == ElementType.I64) {
      wholeToI64(n, c.x());
      return;
    }
    int rows = dimReg(product(c.x().type().dims()));
    int src = e.li(addr(c.x()));
    int dst = e.li(addr(n.result()));
    int one = e.konst(1);
    long inStride = from.sizeBytes();
    long inBytes = from == ElementType.I64 ? 4 : from.sizeBytes();  // i64: the low word
    // a bool read as i8, an i64 as its low word
    DType srcType = from == ElementType.BOOL ? DType.I8 : from == ElementType.I64 ? DType.I32
        : SymbolTypes.of(from);
    DType dstType = SymbolTypes.of(c.to());
    long outBytes = c.to().sizeBytes();
    int inRs = e.konst(inBytes);
    int outRs = e.konst(outBytes);
    rowStream(rows, 1024, List.of(new In(src, inStride, inBytes)), dst, outBytes, outBytes,
        (in, out, r, s) -> e.cvt(out, outRs, dstType, in[0], inRs, srcType, r, one));
    e.free(rows, src, dst);
  }

  /**
   * Whole f32 numbers (Legalization truncated them) below 2^31 in size as i64: each element's
   * low word its i32 conversion, its high word -1 below 0 and 0 from 0 up (the sign extension),
   * written side by side in a tile of 8-byte rows.
   */
  private void wholeToI64(Node n, Value x) {
    int rows = dimReg(product(x.type().dims()));
    int src = e.li(addr(x));
    int dst = e.li(addr(n.result()));
    int one = e.konst(1);
    int inRs = e.konst(4);
    int outRs = e.konst(8);
    long tile = 1024;
    int sign = e.li(sram(tile * 4, "i64 high words as f32"));
    int high = e.alloc();
    rowStream(rows, tile, List.of(new In(src, 4, 4)), dst, 8, 8, (in, out, r, s) -> {
      e.cvt(out, outRs, DType.I32, in[0], inRs, DType.F32, r, one);
      // ge(x, 0) - 1: 0 from 0 up, -1 below
      e.vbini(BinOp.GE, sign, inRs, in[0], inRs, 0f, r, one, false);
      e.vbini(BinOp.SUB, sign, inRs, sign, inRs, 1f, r, one, false);
      e.addImm(high, out, 4);
      e.cvt(high, outRs, DType.I32, sign, inRs, DType.F32, r, one);
    });
    e.free(rows, src, dst, sign, high);
  }

  private void softmax(Node n, ReductionOp.Softmax s) {
    View v = view(s.x().type());
    long rowBytes = v.cols() * 4;
    int rows = dimReg(v.rows());
    int cols = e.konst(v.cols());
    int rs = e.konst(rowBytes);
    int src = e.li(addr(s.x()));
    int dst = e.li(addr(n.result()));
    if (v.cols() == 1 && !s.x().type().dim(s.x().type().rank() - 1).is(1)) {
      throw new BackendException(n.describe() + ": softmax over a symbolic last dim");
    }
    long tile = tileRows(2 * rowBytes, 128);
    rowStream(rows, tile, List.of(new In(src, rowBytes, rowBytes)), dst, rowBytes, rowBytes,
        (in, out, r, st) -> e.emit(new Insn.Softmax(out, 0, rs, in[0], 0, rs, r, cols, DType.F32,
            1.0f, false, 0, 0, 0, false, false, 0, 0, 0)));
    e.free(rows, src, dst);
  }

  private void reduce(Node n, ReductionOp.Reduce red) {
    View v = view(red.x().type());
    RedOp op = switch (red.kind()) {
      case SUM -> RedOp.SUM;
      case MEAN -> RedOp.MEAN;
      case MAX -> RedOp.MAX;
      case MIN -> RedOp.MIN;
      case PROD -> throw new BackendException(n.describe() + ": reduce_prod");
    };
    if (v.cols() == 1 && !red.x().type().dim(red.x().type().rank() - 1).is(1)) {
      reduceSymbolicRows(n, red, op);
      return;
    }
    long rowBytes = v.cols() * 4;
    int rows = dimReg(v.rows());
    int cols = e.konst(v.cols());
    int rs = e.konst(rowBytes);
    int four = e.konst(4);
    int src = e.li(addr(red.x()));
    int dst = e.li(addr(n.result()));
    long tile = tileRows(rowBytes + 4, 128);
    rowStream(rows, tile, List.of(new In(src, rowBytes, rowBytes)), dst, 4, 4,
        (in, out, r, st) -> e.vred(op, out, four, in[0], rs, r, cols));
    e.free(rows, src, dst);
  }

  /**
   * A reduction over a symbolic last dim (an attention mask's keys summed): the whole tensor,
   * whose rows have their width only at run time, in SRAM at its bound, loaded as one run of
   * 4-byte DMA rows (a DMA row's bytes are an immediate; its row count a register), reduced by
   * one vred of the run-time width, the results stored.
   */
  private void reduceSymbolicRows(Node n, ReductionOp.Reduce red, RedOp op) {
    TensorType t = red.x().type();
    Dim rowsDim = product(t.dims().subList(0, t.rank() - 1));
    Dim colsDim = t.dim(t.rank() - 1);
    long rowsBound = rowsDim.evaluate(bounds);
    long bytes = Math.multiplyExact(Math.multiplyExact(rowsBound, colsDim.evaluate(bounds)), 4L);
    int in = e.li(sram(bytes, "the rows of a reduction over a symbolic last dim"));
    int out = e.li(sram(rowsBound * 4, "its results"));
    int rows = dimReg(rowsDim);
    int cols = dimReg(colsDim);
    int elements = e.alloc();
    e.mul(elements, rows, cols);
    int rowStride = e.alloc();
    e.mulImm(rowStride, cols, 4);
    int four = e.konst(4);
    int src = e.li(addr(red.x()));
    int dst = e.li(addr(n.result()));
    e.patchTokens(e.dma(MemSpace.SRAM, in, four, MemSpace.HBM, src, four, 4, elements, 0, 0, 1, 0, 0),
        0, Emitter.TOK_LOAD);
    e.patchTokens(e.vred(op, out, four, in, rowStride, rows, cols), Emitter.TOK_LOAD, Emitter.TOK_STORE);
    e.patchTokens(e.dma(MemSpace.HBM, dst, four, MemSpace.SRAM, out, four, 4, rows, 0, 0, 1, 0, 0),
        Emitter.TOK_STORE, 0);
    e.free(in, out, rows, cols, elements, rowStride, src, dst);
  }

  private void layerNorm(Node n, TransformerOp.LayerNorm l) {
    int ax = (int) Math.floorMod(l.axis(), l.x().type().rank());
    long cols = product(l.x().type().dims().subList(ax, l.x().type().rank())).value();
    Dim rowsDim = product(l.x().type().dims().subList(0, ax));
    long rowBytes = cols * 4;
    int rows = dimReg(rowsDim);
    int colsReg = e.konst(cols);
    int rs = e.konst(rowBytes);
    int gamma = e.li(preload(l.gamma(), rowBytes, "gamma"));
    int beta;
    if (l.beta() != null) {
      beta = e.li(preload(l.beta(), rowBytes, "beta"));
    } else {
      beta = e.li(sram(rowBytes, "zero beta"));
      e.emit(new Insn.Vfill(beta, 0, 0, 0f, e.konst(1), colsReg, DType.F32, 0, 0));
    }
    int src = e.li(addr(l.x()));
    int dst = e.li(addr(n.result()));
    float eps = (float) l.eps();
    long tile = tileRows(2 * rowBytes, 128);
    rowStream(rows, tile, List.of(new In(src, rowBytes, rowBytes)), dst, rowBytes, rowBytes,
        (in, out, r, st) -> e.emit(new Insn.Layernorm(out, 0, in[0], 0, rs, gamma, 0, beta, 0, r,
            colsReg, DType.F32, eps, 0, 0)));
    e.free(rows, gamma, beta, src, dst);
  }

  /**
   * rms_norms that write their bf16 rounding themselves (rmsnorm out_bf16) to the cast that is
   * their only reader, right after them: the f32 rows are never stored, nor read back to be
   * cast (a sequence-parallel norm before the all_gather of its bf16 rows). Not those whose
   * cast the next qmatmul converts in SRAM ({@link QuantLowering.Residency#normCasts}).
   */
  static Map<Node, Node> narrowedNorms(dev.sohuc.ir.Function fn,
      QuantLowering.Residency residency) {
    return castsRightAfter(fn, n -> n.op() instanceof TransformerOp.RmsNorm r
        && r.x().type().elementType() == ElementType.F32
        && !residency.normCasts().containsKey(n), SohuBackend::isSource);
  }

  /**
   * Each {@code producer} node to the cast to bf16 that is its result's only reader, with
   * nothing but {@code between} nodes between them, the result not returned.
   */
  private static Map<Node, Node> castsRightAfter(dev.sohuc.ir.Function fn,
      java.util.function.Predicate<Node> producer, java.util.function.Predicate<Node> between) {
    Map<Node, Node> out = new java.util.IdentityHashMap<>();
    Map<Value, List<Node>> users = fn.users();
    java.util.Set<Value> outputs = fn.outputValues();
    Node p = null;
    for (Node n : fn.body()) {
      if (p != null && between.test(n)) {
        continue;
      }
      if (p != null && n.op() instanceof ElementwiseOp.Cast c && c.to() == ElementType.BF16
          && c.x() == p.result() && users.get(p.result()).size() == 1
          && !outputs.contains(p.result())) {
        out.put(p, n);
      }
      p = producer.test(n) ? n : null;
    }
    return out;
  }


  /**
   * Residual adds lowered inside the rms_norm that reads them (add to norm): {@code
   * rms_norm(a + b)} with a and b of the sum's shape, where the norm is the next op after the
   * add. The norm's stream then reads a and b, adds them in SRAM, normalizes the sum and
   * stores both the sum (for the next residual) and the normalized rows: the sum is not read
   * back from HBM, and one op's latency is saved.
   */
  static Map<Node, Node> fusedResidualAdds(dev.sohuc.ir.Function fn, Map<Value, Tensor> known) {
    Map<Node, Node> fused = new java.util.IdentityHashMap<>();
    Node add = null;
    for (Node n : fn.body()) {
      if (SohuBackend.isSource(n)) {
        continue;
      }
      if (add != null && n.op() instanceof TransformerOp.RmsNorm r && r.x() == add.result()
          && r.x().type().elementType() == ElementType.F32
          && r.x().type().dim(r.x().type().rank() - 1).isStatic()) {
        fused.put(add, n);
      }
      add = residualAdd(n, known) ? n : null;
    }
    return fused;
  }

  /**
   * Multiplies lowered inside the add that reads them (multiply to add): {@code s + y * w}, s and
   * y f32 of the sum's shape and w one number a row, the product read by nothing else (a dense
   * mixture of experts weighting each expert's rows and summing them). The add's stream reads s,
   * y and w and multiplies in SRAM: the product is neither stored nor read back, the same
   * roundings in the same order. Not an add that {@code taken} already lowers elsewhere (a
   * residual add inside its norm).
   */
  static Map<Node, Node> fusedScaledAdds(dev.sohuc.ir.Function fn, Map<Value, Tensor> known,
      java.util.Set<Node> taken) {
    Map<Node, Node> fused = new java.util.IdentityHashMap<>();
    Map<Value, List<Node>> users = fn.users();
    java.util.Set<Value> outputs = fn.outputValues();
    for (Node n : fn.body()) {
      if (taken.contains(n) || !residualAdd(n, known)
          || !n.op().operands().stream().allMatch(Lowering::unwidened)) {
        continue;
      }
      for (Value v : n.op().operands()) {
        Node m = v.producer();
        if (m != null && !outputs.contains(v) && users.get(v).size() == 1
            && m.op() instanceof ElementwiseOp.Binary mul
            && mul.kind() == ElementwiseOp.BinaryKind.MUL && unwidened(mul.lhs())
            && unwidened(mul.rhs())) {
          BinaryPlan mp = binaryPlan(mul, known);
          if (mp != null && mp.imm() == null && mp.bShape() == Shape.COL
              && mp.a().type().dims().equals(n.result().type().dims())) {
            fused.put(m, n);
            break;
          }
        }
      }
    }
    return fused;
  }

  /** An f32 value no cast makes (so no fused conversion streams it in narrower). */
  private static boolean unwidened(Value v) {
    return v.type().elementType() == ElementType.F32
        && (v.producer() == null || !(v.producer().op() instanceof ElementwiseOp.Cast));
  }

  /**
   * Ropes that write their bf16 rounding themselves to the cast that is their only reader (the
   * keys a bf16 attention or KV cache takes), with nothing but sources and {@code aliases}
   * between them: the f32 rows are never stored, nor read back to be cast. What the rope reads
   * must live until the cast, where its result is defined (SohuBackend's planner).
   */
  static Map<Node, Node> narrowedRopes(dev.sohuc.ir.Function fn,
      java.util.function.Predicate<Node> aliases) {
    return castsRightAfter(fn, n -> n.op() instanceof TransformerOp.Rope,
        n -> SohuBackend.isSource(n) || aliases.test(n));
  }


  /**
   * [0, 2, 1, 3] transposes of a [1, .., .., ..] tensor lowered inside their only reader, so
   * the transposed copy is neither written nor read back (transpose to reader):
   * <ul>
   *   <li>[1, S, H, D] to [1, H, S, D] into the rope after it, whose stream reads each head's
   *       rows H rows apart from the transpose's operand;
   *   <li>an attention's [1, H, S, D] output back to [1, S, H, D], heads merged by a reshape,
   *       into the qmatmul whose fused conversion ({@code fused}) reads that x: each row's H
   *       blocks come from the heads' rows.
   * </ul>
   */
  static Map<Node, Node> foldedTransposes(dev.sohuc.ir.Function fn, Map<Node, Node> fused) {
    Map<Node, Node> folded = new java.util.IdentityHashMap<>();
    Map<Value, List<Node>> users = fn.users();
    java.util.Set<Value> outputs = fn.outputValues();
    for (Node n : fn.body()) {
      if (n.op() instanceof TransformerOp.Rope r && r.style() == TransformerOp.RopeStyle.ROTATE_HALF
          && swapsHeads(r.x(), users, outputs, n) && r.x().type().dim(1).isStatic()) {
        folded.put(r.x().producer(), n);
      }
      // an attention's output, transposed back and its heads merged, that the qmatmul after
      // it converts itself (the o projection's x): the conversion reads the heads' rows (not
      // when another op fused into the qmatmul, SmoothQuant's multiply, reads them first)
      Node qmatmul = fused.get(n);
      if (qmatmul != null && qmatmul.op() instanceof QuantOp.QMatMul q
          && q.x() == n.results().get(0)) {
        Node heads = mergedHeads(n.op().operands().get(0), n, users, outputs);
        if (heads != null) {
          folded.put(heads, qmatmul);
        }
      }
      // or that a concat copies beside other rows (a step's prompt rows before its decodes'):
      // the copy reads the heads' rows
      if (n.op() instanceof DataOp.Concat c) {
        for (Value in : c.inputs()) {
          Node t = mergedHeads(in, n, users, outputs);
          if (t != null && Math.floorMod(c.axis(), in.type().rank()) < in.type().rank() - 1) {
            folded.put(t, n);
          }
        }
      }
    }
    return folded;
  }

  /**
   * The [0, 2, 1, 3] transpose of a [1, H, S, D] tensor (H and D static) whose heads a reshape
   * merges into {@code v} ([1, S, H * D]), both read only by the next op ({@code reader} reads
   * v), else null.
   */
  private static Node mergedHeads(Value v, Node reader, Map<Value, List<Node>> users,
      java.util.Set<Value> outputs) {
    if (v.producer() == null || !(v.producer().op() instanceof DataOp.Reshape merge)) {
      return null;
    }
    TensorType tt = merge.x().type();
    return tt.rank() == 4 && tt.dim(2).isStatic() && tt.dim(3).isStatic()
        && users.get(v).equals(List.of(reader)) && !outputs.contains(v)
        && v.type().rank() == 3 && v.type().dim(2).is(tt.dim(2).value() * tt.dim(3).value())
        && swapsHeads(merge.x(), users, outputs, v.producer()) ? merge.x().producer() : null;
  }

  /**
   * Whether {@code v} is a [0, 2, 1, 3] transpose's result of a [1, .., .., ..] tensor, read
   * by {@code reader} alone and not returned.
   */
  private static boolean swapsHeads(Value v, Map<Value, List<Node>> users,
      java.util.Set<Value> outputs, Node reader) {
    return v.producer() != null && v.producer().op() instanceof DataOp.Transpose t
        && t.perm().equals(List.of(0L, 2L, 1L, 3L)) && t.x().type().dim(0).is(1)
        && users.get(v).equals(List.of(reader)) && !outputs.contains(v);
  }

  private static boolean residualAdd(Node n, Map<Value, Tensor> known) {
    if (!(n.op() instanceof ElementwiseOp.Binary bin) || bin.kind() != ElementwiseOp.BinaryKind.ADD
        || n.result().type().elementType() != ElementType.F32) {
      return false;
    }
    BinaryPlan p = binaryPlan(bin, known);
    return p != null && p.imm() == null && p.bShape() == Shape.FULL
        && p.a().type().dims().equals(n.result().type().dims());
  }

  /**
   * rms_norm as one row stream; with its residual add fused in ({@link #fusedResidualAdds}) the
   * stream reads both addends and each output tile row is [y | sum]: {@code vbin add} writes the
   * sum, the norm reads it there, and the sum is stored as a second output. When only the cast
   * into the next qmatmul's resident x reads y (QuantLowering.Residency#unstoredNorms), the
   * norm writes its bf16 rounding there itself ({@code out_bf16}) and the stream stores the sum
   * alone; so too for this chip's block of an all_gather landing in SRAM
   * ({@link SramCollectives}), where with a per-row quantization after the norm the stream
   * quantizes each tile's f32 rows itself, into the region's rows and scales.
   */
  private void rmsNorm(Node n, TransformerOp.RmsNorm r) {
    View v = view(r.x().type());
    long rowBytes = v.cols() * 4;
    int rows = dimReg(v.rows());
    int colsReg = e.konst(v.cols());
    int rs = e.konst(rowBytes);
    Node add = fusedProducer(r.x());
    BinaryPlan addends = add == null ? null : binaryPlan((ElementwiseOp.Binary) add.op(), known);
    // this chip's block of the rows an all_gather takes to SRAM (SramCollectives): y goes there
    SramCollectives.Block gathered = sramCollectives.normBlock(n);
    boolean unstored = add != null
        && (residency.unstoredNorms().contains(n) || gathered != null);
    // y as the bf16 cast after the norm wants it, written by the norm itself
    Node narrowTo = narrowedNorms.get(n);
    long yBytes = narrowTo == null ? rowBytes : v.cols() * 2;
    int outRs = unstored ? rs : e.konst(add == null ? yBytes : yBytes + rowBytes);
    // the next qmatmul's converted x, made here tile by tile: claimed first, as the qmatmul
    // claims it (QuantLowering.convertResident), so both find it at the same SRAM address
    Node cast = residency.normCasts().get(n);
    boolean writesInSram = cast != null || gathered != null;
    long residentAt = gathered != null ? gathered.region() : cast == null ? 0
        : sram(sizeAtBound(n.result()) / rowBytes * v.cols() * 2, "x converted (resident)");
    QuantOp.DynamicQuantize quantize = gathered == null || gathered.quantize() == null ? null
        : (QuantOp.DynamicQuantize) gathered.quantize().op();
    DType yType = quantize == null ? DType.BF16 : QuantLowering.dtype(quantize.dtype());
    int residentRs = writesInSram ? e.konst(v.cols() * yType.bytes()) : 0;
    int gamma = e.li(preload(r.gamma(), rowBytes, "gamma"));
    float offset = (float) r.gammaOffset();
    int dst = unstored ? 0 : e.li(addr(narrowTo == null ? n.result() : narrowTo.result()));
    int sum = add == null ? 0 : e.li(addr(add.result()));
    int sumTile = add == null ? 0 : e.alloc();
    float eps = (float) r.eps();
    // tiles of at least 64 rows, not 128: a 70B norm's 8192 f32 columns (with its residual add)
    // then fill 2.5 MB a tile, so a chip's block of 136 rows or a decode batch of 127 goes in
    // 2-3 tiles whose loads, VPU work and stores overlap instead of one after another
    long tile = tileRows(((add == null ? 2 : 5) + (quantize == null ? 0 : 1)) * rowBytes, 64);
    // the normalized f32 rows of a tile, for the quantization
    long yTile = quantize == null ? 0 : sram(tile * rowBytes, "normalized rows");
    int four = quantize == null ? 0 : e.konst(4);
    int oneReg = quantize == null ? 0 : e.konst(1);
    // the addends (one may be the bf16 partial sum a fused cast widens), or x
    WidenedOperands w = new WidenedOperands(add == null ? List.of(r.x())
        : List.of(addends.a(), addends.b()), BinOp.ADD, v.cols(), tile);
    long storedBytes = unstored ? rowBytes : yBytes;
    rowStream(rows, tile, w.ins(), unstored ? sum : dst, storedBytes, storedBytes,
        (in, out, rr, st) -> {
      int x = in[0];
      int xRs = rs;
      if (add != null) {
        e.addImm(sumTile, out, unstored ? 0 : yBytes);
        w.binary(BinOp.ADD, sumTile, outRs, in, rr, colsReg, rs);
        x = sumTile;
        xRs = outRs;
      }
      if (quantize != null) {
        int y = e.li(yTile);
        e.emit(new Insn.Rmsnorm(y, 0, rs, x, 0, xRs, gamma, 0, rr, colsReg, DType.F32, eps,
            false, 0, 0));
        // the tile's q rows' and scales' addresses, from its first row in the gathered rows
        int scales = e.alloc();
        gatheredRow(scales, rows, st, gathered);
        int q = e.alloc();
        e.mulImm(q, scales, v.cols() * yType.bytes());
        e.addImm(q, q, gathered.region());
        e.mulImm(scales, scales, 4);
        e.addImm(scales, scales, gathered.scales());
        new QuantLowering(this).quantizeRows(q, residentRs, yType, scales, four, y, rs, rr,
            colsReg, QuantOp.maxMagnitude(quantize.dtype()), oneReg);
        e.free(q, scales, y);
        return;
      }
      if (unstored) {
        // the cast's own rounding, by the norm into this tile's rows of the resident copy
        int at = e.alloc();
        if (gathered != null) {
          gatheredRow(at, rows, st, gathered);
        }
        e.mulImm(at, gathered != null ? at : st, v.cols() * 2);
        e.addImm(at, at, residentAt);
        e.emit(new Insn.Rmsnorm(at, 0, residentRs, x, 0, xRs, gamma, 0, rr, colsReg, DType.F32,
            eps, true, 0, 0));
        e.free(at);
        return;
      }
      e.emit(new Insn.Rmsnorm(out, 0, outRs, x, 0, xRs, gamma, 0, rr, colsReg, DType.F32, eps,
          narrowTo != null, 0, 0));
      if (cast != null) {
        // the cast's own rounding, into this tile's rows of the resident copy (the address in
        // sumTile's register, free once the norm has read the sum)
        int at = add != null ? sumTile : e.alloc();
        e.mulImm(at, st, v.cols() * 2);
        e.addImm(at, at, residentAt);
        e.emit(new Insn.Cvt(at, 0, residentRs, DType.BF16, out, 0, outRs, DType.F32, rr,
            colsReg, dev.sohuc.isa.ScaleMode.TENSOR, 1.0f, 0, 0, false, 0, 0));
        if (add == null) {
          e.free(at);
        }
      }
    }, false, new int[0], () -> {
      // the stream has copied its base addresses: their registers are free for the loop
      w.freeBases();
      e.free(dst, sum);
      if (offset != 0) {
        // Gemma's gamma_offset: the scale (gamma + offset), made in place once the first
        // tile's load, queued after gamma's, has arrived; it passes that LOAD on to the tile
        int one = e.li(1);
        e.patchTokens(e.vbini(BinOp.ADD, gamma, rs, gamma, rs, offset, one, colsReg, false),
            TOK_LOAD, TOK_LOAD);
        e.free(one);
      }
    }, writesInSram, add == null || unstored ? null : new Out(sum, rowBytes, rowBytes));
    w.freeScratch();
    e.free(rows, gamma, sumTile);
  }

  /**
   * {@code reg = rank x rows + st}: where a norm's tile, its rows from {@code st}, goes in the
   * rows of the gather that takes its block to SRAM ({@link SramCollectives}).
   */
  private void gatheredRow(int reg, int rows, int st, SramCollectives.Block block) {
    e.mulImm(reg, rows, block.rank());
    e.add(reg, reg, st);
  }

  /**
   * Rope over the last two dims (positions, head size) of each plane (batch x heads). A tile
   * holds the same positions of every plane, one DMA each way, and one rope per plane reads
   * the tile's table rows: a stream per plane would drain at every plane (its first load's
   * latency and last store exposed, 64 heads times). A decode step (one position) streams its
   * planes as rows that all read table row 0, or with a table row per sequence, each sequence's
   * heads (rows) its row.
   */
  private void rope(Node n, TransformerOp.Rope r) {
    TensorType xt = r.x().type();
    int rank = xt.rank();
    long d = xt.dim(rank - 1).value();
    long rot = r.cos().type().dim(r.cos().type().rank() - 1).value();
    Dim s = xt.dim(rank - 2);
    Dim planes = product(xt.dims().subList(0, rank - 2));
    boolean oneRow = s.evaluate(bounds) <= 1;
    boolean perSequence = !leadingOnes(r.cos().type(), 2);
    long rowBytes = d * 4;
    // y as the bf16 cast after the rope wants it (narrowedRopes): the rope writes f32 rows into
    // a scratch tile and a cvt narrows them into the tile that is stored
    Node narrowTo = narrowedRopes.get(n);
    long outRowBytes = narrowTo == null ? rowBytes : d * 2;
    long tableBound = sizeAtBound(r.cos());
    // row tiles: the table at its bound can be longer than one DMA row (131071 bytes); an
    // interleaved table's pairs (Legalization proved each value twice in place) as one value,
    // each row half as wide, as its rope mode reads them
    boolean interleaved = r.style() == TransformerOp.RopeStyle.INTERLEAVED;
    long tableRowBytes = interleaved ? rot * 2L : rot * 4L;
    java.util.function.BiFunction<Value, String, Long> table = (v, what) -> interleaved
        ? preloadEveryOther(v, tableBound / 8, what) : preloadRows(v, rot * 4L, tableBound / (rot * 4L), what);
    int cosBuf = e.li(table.apply(r.cos(), "cos table"));
    int sinBuf = e.li(table.apply(r.sin(), "sin table"));
    int tableStride = oneRow && !perSequence ? 0 : e.konst(tableRowBytes);
    // a sequence's rows (its heads) read one table row
    int group = perSequence ? dimReg(product(xt.dims().subList(1, rank - 1))) : 0;
    int colsReg = e.konst(d);
    int rotReg = e.konst(rot);
    int rs = e.konst(rowBytes);
    // planes per stream: all of them, or (a power of two) as many as leave tiles of
    // MIN_ROPE_ROWS positions in half the SRAM (double-buffered input and output rows, and the
    // scratch row when narrowed), the streams then one after another
    long planesBound = oneRow ? 1 : Math.max(1, planes.evaluate(bounds));
    long fit = Math.max(1, (sramTop - sramNext) / 2
        / ((narrowTo == null ? 4 : 5) * rowBytes * MIN_ROPE_ROWS));
    long perStream = planesBound <= fit ? planesBound : Long.highestOneBit(fit);
    int planesLeft = oneRow ? 0 : dimReg(planes);
    int planeCount = oneRow ? 0 : e.alloc();
    int sRows = dimReg(oneRow ? planes.times(s) : s);
    // a [0, 2, 1, 3] transpose lowered here (foldedTransposes): plane h, row s of x is row
    // s * heads + h of its [1, S, heads, D] operand (a decode step's transpose moves nothing)
    Node transposed = fusedProducer(r.x());
    long heads = transposed == null || oneRow ? 1 : xt.dim(1).value();
    // HBM plane strides of x and of y (one register when they are equal)
    boolean samePlanes = heads == 1 && narrowTo == null;
    int inPlaneBytes = oneRow ? 0 : heads > 1 ? rs : dimReg(s.times(Dim.of(rowBytes)));
    int outPlaneBytes = oneRow || samePlanes ? inPlaneBytes
        : dimReg(s.times(Dim.of(outRowBytes)));
    int src = e.li(addr(transposed == null ? r.x() : transposed.op().operands().get(0)));
    int dst = e.li(addr(narrowTo == null ? n.result() : narrowTo.result()));
    long tile = tileRows(2 * rowBytes * perStream, oneRow ? 128 : 1);
    long wide = narrowTo == null ? 0 : sram(perStream * tile * rowBytes, "rope rows in f32");
    int planeStep = oneRow ? 0 : e.konst(tile * rowBytes);
    // streams of planes one after another, when they do not all fit one
    boolean chunked = !oneRow && perStream < planesBound;
    int streams = chunked ? e.alloc() : 0;
    int srcChunk = chunked ? e.alloc() : 0;
    int dstChunk = chunked && !samePlanes ? e.alloc() : srcChunk;
    int chunkLoop = -1;
    if (chunked) {
      e.addImm(streams, planesLeft, perStream - 1);
      e.shri(streams, streams, Long.numberOfTrailingZeros(perStream));
      e.mulImm(srcChunk, inPlaneBytes, perStream);
      if (dstChunk != srcChunk) {
        e.mulImm(dstChunk, outPlaneBytes, perStream);
      }
      chunkLoop = e.beginLoop(streams, 0);
      e.free(streams);
    }
    if (!oneRow) {
      e.min(planeCount, planesLeft, e.konst(perStream));
    }
    rowStream(sRows, tile, List.of(new In(src, heads * rowBytes, rowBytes, MemSpace.HBM, 0,
        inPlaneBytes)), dst, outRowBytes, outRowBytes,
        (in, out, rr, st) -> {
          int x = e.copy(in[0]);
          int y = narrowTo == null ? e.copy(out) : e.li(wide);
          e.emit(Emitter.fence(Engine.VPU, TOK_LOAD, 0));
          int loop = oneRow ? -1 : e.beginLoop(planeCount, 0);
          if (rot < d) {
            e.vun(UnaryFn.NONE, y, rs, x, rs, rr, colsReg);
          }
          e.emit(new Insn.Rope(interleaved ? RopeMode.INTERLEAVED : RopeMode.HALF, y, 0, rs, x, 0, rs,
              cosBuf, 0, sinBuf, 0, tableStride, st, rr, rotReg, DType.F32, group, 0, 0));
          if (!oneRow) {
            e.add(x, x, planeStep);
            e.add(y, y, planeStep);
            e.endLoop(loop);
          }
          if (narrowTo != null) {
            // the tile's planes are whole tiles of rows in both buffers: one cvt for all of
            // them (rows past the tile's own are not stored); x's register counts them
            if (!oneRow) {
              e.mulImm(x, planeCount, tile);
            }
            e.emit(new Insn.Li(y, wide, 0, 0));
            e.cvt(DType.BF16, out, e.konst(outRowBytes), DType.F32, y, rs, oneRow ? rr : x,
                colsReg);
          }
          e.emit(Emitter.fence(Engine.VPU, 0, TOK_STORE));
          e.free(x, y);
        }, true, new int[0], null, !oneRow || perSequence, null,
        oneRow ? null : new Planes(planeCount, perStream, outPlaneBytes));
    if (chunked) {
      // the next planes
      e.add(src, src, srcChunk);
      e.add(dst, dst, dstChunk);
      e.sub(planesLeft, planesLeft, planeCount);
      e.endLoop(chunkLoop);
    }
    e.free(cosBuf, sinBuf, planesLeft, planeCount, sRows, src, dst, srcChunk, group);
    e.free(heads > 1 ? 0 : inPlaneBytes, outPlaneBytes == inPlaneBytes ? 0 : outPlaneBytes,
        dstChunk == srcChunk ? 0 : dstChunk);
  }

  /** Fewest positions a tile of a rope stream holds when its planes do not all fit at once. */
  static final long MIN_ROPE_ROWS = 16;

  private Map<Value, Long> boundSizes;
  private Map<String, Long> bounds;

  void setBounds(Map<String, Long> b) {
    this.bounds = b;
  }

  Map<String, Long> bounds() {
    return bounds;
  }

  void setBoundSizes(Map<Value, Long> sizes) {
    this.boundSizes = sizes;
  }

  /** Ops lowered inside the op that reads them (producer to consumer; see SohuBackend). */
  private Map<Node, Node> fusedProducers = Map.of();

  void setFusedProducers(Map<Node, Node> fused) {
    this.fusedProducers = fused;
  }

  /** Converted x left resident in SRAM for the next qmatmul (QuantLowering.residency). */
  private QuantLowering.Residency residency = new QuantLowering.Residency(java.util.Set.of(),
      Map.of(), java.util.Set.of());

  void setResidency(QuantLowering.Residency residency) {
    this.residency = residency;
  }

  /** rope to the bf16 cast it writes itself ({@link #narrowedRopes}). */
  private Map<Node, Node> narrowedRopes = Map.of();

  void setNarrowedRopes(Map<Node, Node> narrowedRopes) {
    this.narrowedRopes = narrowedRopes;
  }

  /** rms_norm to the bf16 cast it writes itself ({@link #narrowedNorms}). */
  private Map<Node, Node> narrowedNorms = Map.of();

  void setNarrowedNorms(Map<Node, Node> narrowedNorms) {
    this.narrowedNorms = narrowedNorms;
  }

  /** The collectives that run in SRAM, and the SRAM each op keeps clear of their regions. */
  private SramCollectives sramCollectives = SramCollectives.none();
  /** The end of the SRAM the op being lowered may use. */
  private long sramTop;

  void setSramCollectives(SramCollectives sramCollectives) {
    this.sramCollectives = sramCollectives;
  }

  /** The collectives planned in SRAM and their regions. */
  SramCollectives inSram() {
    return sramCollectives;
  }

  /**
   * Whether {@code n} is a qmatmul whose x was gathered in SRAM: its mmas read x there (it
   * takes no other schedule, QuantLowering), and nothing else it reads is on the link.
   */
  boolean readsGatherOnMxu(Node n) {
    return n.op() instanceof QuantOp.QMatMul q && sramCollectives.gatheredInSram(q.x()) != null;
  }

  /** An operand an op left whole in SRAM for the next op: the value and its SRAM address. */
  record ResidentValue(Value value, long sramAddress) {}

  private ResidentValue residentBefore;
  private ResidentValue residentNow;

  /** Whether the op lowered just before left {@code v} whole in SRAM. */
  boolean leftResident(Value v) {
    return residentBefore != null && residentBefore.value() == v;
  }

  /** Whether the op lowered just before left {@code v} whole in SRAM at {@code sramAddress}. */
  boolean leftResident(Value v, long sramAddress) {
    return leftResident(v) && residentBefore.sramAddress() == sramAddress;
  }

  /** This op leaves {@code v} whole in SRAM at {@code sramAddress} when it ends. */
  void leaveResident(Value v, long sramAddress) {
    residentNow = new ResidentValue(v, sramAddress);
  }

  boolean reusesConversion(Node qmatmul) {
    return residency.reused().contains(qmatmul);
  }

  /** The bf16 to f32 cast that makes {@code x}, fused into the op reading it, else null. */
  Node widening(Value x) {
    Node p = fusedProducer(x);
    return p != null && p.op() instanceof ElementwiseOp.Cast ? p : null;
  }

  /**
   * The transpose to [1, S, H, D] lowered inside the reader of {@code merged}, the reshape of
   * its result to [1, S, H * D] (Lowering.foldedTransposes), else null.
   */
  Node foldedHeads(Value merged) {
    Node t = merged.producer() != null && merged.producer().op() instanceof DataOp.Reshape r
        ? fusedProducer(r.x()) : null;
    return t != null && t.op() instanceof DataOp.Transpose ? t : null;
  }

  /** The producer of {@code x} when it is lowered inside its consumer, else null. */
  Node fusedProducer(Value x) {
    Node p = x.producer();
    return p != null && fusedProducers.containsKey(p) ? p : null;
  }

  /** What each matmul may do to its result in its own code (QuantLowering.epilogues). */
  private Map<Node, QuantLowering.Epilogue> epilogues = Map.of();
  /** The ops whose work a matmul did in its own code: they emit none of their own. */
  private final java.util.Set<Node> doneInside = java.util.Collections.newSetFromMap(
      new java.util.IdentityHashMap<>());

  void setEpilogues(Map<Node, QuantLowering.Epilogue> epilogues) {
    this.epilogues = epilogues;
  }

  /**
   * The epilogue the matmul {@code n} may apply, or null. Over {@code rowBlocks} (x resident a
   * block of rows at a time) a reduce_scatter is not done panel by panel, since each chip's rows
   * span the blocks: it lowers alone after the matmul.
   */
  QuantLowering.Epilogue epilogue(Node n, boolean rowBlocks) {
    QuantLowering.Epilogue ep = epilogues.get(n);
    if (ep != null && rowBlocks && ep.sum() != null
        && ep.sum().op() instanceof TransformerOp.ReduceScatter) {
      return ep.narrow() == null ? null : new QuantLowering.Epilogue(ep.narrow(), null);
    }
    return ep;
  }

  /** Whether {@code n}'s epilogue sums its result on the link (an all_reduce after it). */
  boolean summedOnLink(Node n) {
    QuantLowering.Epilogue ep = epilogues.get(n);
    return ep != null && ep.sum() != null;
  }

  /** SwiGLUs whose gate and up lower as one qmatmul, by the gate's node. */
  private Map<Node, QuantLowering.GatedPair> gatedPairs = Map.of();

  void setGatedPairs(Map<Node, QuantLowering.GatedPair> pairs) {
    this.gatedPairs = pairs;
  }

  /** The pair {@code n} is the gate of, or null. */
  QuantLowering.GatedPair gatedPair(Node n) {
    return gatedPairs.get(n);
  }

  /** Records that {@code n}'s work was done inside the op lowered now. */
  void doneInside(Node n) {
    doneInside.add(n);
  }

  /** Whether {@code n}'s work was done inside an op lowered before it. */
  boolean isDoneInside(Node n) {
    return doneInside.contains(n);
  }

  /** The bytes of {@code v} at the symbols' bounds, or {@code or} when it has no HBM size. */
  long sizeAtBoundOr(Value v, long or) {
    Long b = boundSizes == null ? null : boundSizes.get(v);
    return b == null ? or : b;
  }

  long sizeAtBound(Value v) {
    return boundSizes.get(v);
  }

  // ------------------------------------------------------------------------------------------
  // Data movement: DMA block copies, HBM to HBM.

  /** Dense row-major strides in bytes, as dims. */
  static List<Dim> strides(List<Dim> dims, long esize) {
    List<Dim> s = new ArrayList<>();
    Dim acc = Dim.of(esize);
    for (int i = dims.size() - 1; i >= 0; i--) {
      s.add(0, acc);
      acc = acc.times(dims.get(i));
    }
    return s;
  }

  /**
   * Copies the block {@code dims} from {@code srcBase} (byte strides {@code srcStrides}) to
   * {@code dstBase} (byte strides {@code dstStrides}) with DMA: the innermost contiguous run is
   * a row, the next two axes are rows and planes, and outer axes are hardware loops.
   */
  void copyBlock(List<Dim> dims, List<Dim> srcStrides, List<Dim> dstStrides, int srcBase,
      int dstBase, long esize) {
    if (!dims.isEmpty() && dims.getLast().isStatic() && srcStrides.getLast().is(esize)
        && dstStrides.getLast().is(esize)
        && dims.getLast().value() * esize > Emitter.MAX_DMA_ROW_BYTES) {
      // a contiguous run longer than one DMA row: split it into rows of the largest divisor
      long d = dims.getLast().value();
      long row = Emitter.MAX_DMA_ROW_BYTES / esize;
      while (d % row != 0) {
        row--;
      }
      dims = withLast(dims, Dim.of(d / row), Dim.of(row));
      srcStrides = withLast(srcStrides, Dim.of(row * esize), Dim.of(esize));
      dstStrides = withLast(dstStrides, Dim.of(row * esize), Dim.of(esize));
    }
    int r = dims.size();
    long unit = esize;
    int inner = r;   // axes [0, inner) are iterated; the unit covers the rest
    if (r > 0 && dims.get(r - 1).isStatic() && srcStrides.get(r - 1).is(esize)
        && dstStrides.get(r - 1).is(esize)) {
      unit = esize * dims.get(r - 1).value();
      inner = r - 1;
    }
    List<Integer> loopAxes = new ArrayList<>();
    for (int i = 0; i < inner - 2; i++) {
      loopAxes.add(i);
    }
    int rowsReg = inner >= 1 ? dimReg(dims.get(inner - 1)) : 0;
    int rowsImm = inner >= 1 ? 0 : 1;
    int srcRs = inner >= 1 ? dimReg(srcStrides.get(inner - 1)) : 0;
    int dstRs = inner >= 1 ? dimReg(dstStrides.get(inner - 1)) : 0;
    int planesReg = inner >= 2 ? dimReg(dims.get(inner - 2)) : 0;
    int planesImm = inner >= 2 ? 0 : 1;
    int srcPs = inner >= 2 ? dimReg(srcStrides.get(inner - 2)) : 0;
    int dstPs = inner >= 2 ? dimReg(dstStrides.get(inner - 2)) : 0;
    int src = e.copy(srcBase);
    int dst = e.copy(dstBase);
    int nLoops = loopAxes.size();
    int[] counts = new int[nLoops];
    int[] sStep = new int[nLoops];
    int[] dStep = new int[nLoops];
    int[] loops = new int[nLoops];
    for (int k = 0; k < nLoops; k++) {
      int ax = loopAxes.get(k);
      counts[k] = dimReg(dims.get(ax));
      sStep[k] = dimReg(srcStrides.get(ax));
      dStep[k] = dimReg(dstStrides.get(ax));
    }
    for (int k = 0; k < nLoops; k++) {
      loops[k] = e.beginLoop(counts[k], 0);
    }
    e.dma(MemSpace.HBM, dst, dstRs, MemSpace.HBM, src, srcRs, unit, rowsReg, rowsImm, planesReg,
        planesImm, dstPs, srcPs);
    int t = e.alloc();
    for (int k = nLoops - 1; k >= 0; k--) {
      e.add(src, src, sStep[k]);
      e.add(dst, dst, dStep[k]);
      e.endLoop(loops[k]);
      // back to the start of this axis for the next iteration of the enclosing loop
      e.mul(t, sStep[k], counts[k]);
      e.sub(src, src, t);
      e.mul(t, dStep[k], counts[k]);
      e.sub(dst, dst, t);
    }
    e.free(t, rowsReg, srcRs, dstRs, planesReg, srcPs, dstPs, src, dst);
    e.free(counts);
    e.free(sStep);
    e.free(dStep);
  }

  /** {@code dims} with its last entry replaced by {@code a, b}. */
  private static List<Dim> withLast(List<Dim> dims, Dim a, Dim b) {
    List<Dim> out = new ArrayList<>(dims.subList(0, dims.size() - 1));
    out.add(a);
    out.add(b);
    return out;
  }

  /** {@code dst = x} bytewise, both dense (reshape, identity cast): one copy. */
  void copyDense(Value dst, Value x) {
    if (addr(dst) == addr(x)) {
      return;
    }
    long es = x.type().elementType().sizeBytes();
    List<Dim> dims = List.of(product(x.type().dims()));
    int s = e.li(addr(x));
    int d = e.li(addr(dst));
    copyBlock(dims, List.of(Dim.of(es)), List.of(Dim.of(es)), s, d, es);
    e.free(s, d);
  }

  private void transpose(Node n, DataOp.Transpose t) {
    TensorType xt = t.x().type();
    long es = xt.elementType().sizeBytes();
    List<Dim> inStrides = strides(xt.dims(), es);
    List<Dim> outDims = n.result().type().dims();
    List<Dim> srcStrides = new ArrayList<>();
    for (long p : t.perm()) {
      srcStrides.add(inStrides.get((int) p));
    }
    int s = e.li(addr(t.x()));
    int d = e.li(addr(n.result()));
    copyBlock(outDims, srcStrides, strides(outDims, es), s, d, es);
    e.free(s, d);
  }

  private void expand(Node n, DataOp.Expand x) {
    TensorType xt = x.x().type();
    long es = xt.elementType().sizeBytes();
    List<Dim> outDims = n.result().type().dims();
    List<Dim> inStrides = strides(xt.dims(), es);
    List<Dim> srcStrides = new ArrayList<>();
    int off = outDims.size() - xt.rank();
    for (int i = 0; i < outDims.size(); i++) {
      int j = i - off;
      boolean bcast = j < 0 || (xt.dim(j).is(1) && !outDims.get(i).is(1));
      srcStrides.add(bcast ? Dim.of(0) : inStrides.get(j));
    }
    int s = e.li(addr(x.x()));
    int d = e.li(addr(n.result()));
    copyBlock(outDims, srcStrides, strides(outDims, es), s, d, es);
    e.free(s, d);
  }

  private void slice(Node n, DataOp.Slice sl) {
    TensorType xt = sl.x().type();
    long es = xt.elementType().sizeBytes();
    Dim[] starts = sliceStarts(sl);
    List<Dim> inStrides = strides(xt.dims(), es);
    Dim offset = Dim.of(0);
    for (int i = 0; i < starts.length; i++) {
      offset = offset.plus(inStrides.get(i).times(starts[i]));
    }
    int s = e.li(addr(sl.x()));
    int o = dimReg(offset);
    // a symbolic start that is negative at run time (seq - 1 of an empty prompt) starts at the
    // tensor's first element, not before it
    e.max(o, o, 0);
    e.add(s, s, o);
    int d = e.li(addr(n.result()));
    List<Dim> outDims = n.result().type().dims();
    copyBlock(outDims, inStrides, strides(outDims, es), s, d, es);
    e.free(s, o, d);
  }

  /** The position axis of a KV cache ({@code [batch, kv heads, positions, head size]}). */
  static final int KV_AXIS = 2;

  /**
   * KV caches laid out at a capacity (SohuBackend.cacheLayouts): appended to in place, or
   * written by kv_cache_write (in place when the cache argument is too).
   */
  private Map<Value, Long> kvCapacity = Map.of();
  /** The argument-block word of each past_lengths input's first value. */
  private Map<Value, Integer> lengthSlots = Map.of();

  void setLengthSlots(Map<Value, Integer> slots) {
    this.lengthSlots = slots;
  }

  /** {@code rd = lengths[index]} (the register {@code index}), from the argument block. */
  void loadLength(int rd, Value lengths, int index) {
    Integer slot = lengthSlots.get(lengths);
    if (slot == null) {
      throw new BackendException("%" + lengths.name() + " has no argument-block words");
    }
    e.emit(new Insn.Ldarg(rd, slot, index, 0, 0));
  }

  void setKvCapacity(Map<Value, Long> capacity) {
    this.kvCapacity = capacity;
  }

  /** The capacity {@code v}'s position axis is laid out at, or 0 when it is dense. */
  long kvCapacity(Value v) {
    return kvCapacity.getOrDefault(v, 0L);
  }

  /**
   * kv_cache_append into a cache laid out at its capacity: the result is the past's region,
   * so only the new positions move, each (batch, head)'s after its past ones.
   */
  private void appendInPlace(Node n, TransformerOp.KvCacheAppend k) {
    // [batch x heads, new positions, head size]: one DMA, a plane per (batch, head)
    List<Dim> cur = k.current().type().dims();
    List<Dim> dims = List.of(product(cur.subList(0, KV_AXIS)), cur.get(KV_AXIS), cur.get(3));
    long es = n.result().type().elementType().sizeBytes();
    List<Dim> laidStrides = strides(List.of(dims.get(0), Dim.of(kvCapacity(n.result())),
        dims.get(2)), es);
    int s = e.li(addr(k.current()));
    int d = dimReg(k.past().type().dim(KV_AXIS).times(laidStrides.get(1)));
    e.addImm(d, d, addr(n.result()));
    copyBlock(dims, strides(dims, es), laidStrides, s, d, es);
    e.free(s, d);
  }

  /**
   * kv_cache_write into the result laid out at its capacity (the cache's own region when written
   * in place, else a copy of it), each sequence's new entries at its past length from the
   * argument block. One new position a sequence: a scatter of every (sequence, head) row at its
   * sequence's length, the lengths loaded into SRAM once per head; more: one DMA a sequence (a
   * plane per head).
   */
  private void cacheWrite(Node n, TransformerOp.KvCacheWrite w) {
    List<Dim> cache = w.cache().type().dims();
    List<Dim> cur = w.current().type().dims();
    long es = n.result().type().elementType().sizeBytes();
    long capacity = kvCapacity(n.result());
    Dim positions = capacity > 0 ? Dim.of(capacity) : cache.get(KV_AXIS);
    List<Dim> laidStrides = strides(List.of(cache.get(0), cache.get(1), positions, cache.get(3)), es);
    if (!kvCapacity.containsKey(w.cache())) {
      int s = e.li(addr(w.cache()));
      int d = e.li(addr(n.result()));
      copyBlock(cache, strides(cache, es), laidStrides, s, d, es);
      e.free(s, d);
    }
    long rowBytes = cache.get(3).value() * es;
    if (cur.get(KV_AXIS).is(1) && cur.get(1).isStatic()) {
      scatterRows(w, cur, laidStrides.get(1), rowBytes, addr(n.result()));
    } else {
      writePerSequence(w, cur, laidStrides, rowBytes, addr(n.result()));
    }
  }

  /**
   * One new position a sequence: row r = b * heads + h of the new entries goes to the result's
   * row r (a head's positions apart) at position lengths[b]; the index of row r is lengths[b],
   * copied once per head into SRAM from the lengths input.
   */
  private void scatterRows(TransformerOp.KvCacheWrite w, List<Dim> cur, Dim headStride, long rowBytes,
      long result) {
    Value lengths = w.pastLengths();
    long isz = lengths.type().elementType().sizeBytes();
    long heads = cur.get(1).value();
    int idx = e.li(sram(cur.get(0).evaluate(bounds) * heads * isz, "each row's past length"));
    int lens = e.li(addr(lengths));
    int batch = dimReg(cur.get(0));
    int iszReg = e.konst(isz);
    int idxRow = e.konst(heads * isz);
    // lengths[b] to idx[b * heads + h]: rows b, a plane per head (the source plane stride 0)
    e.patchTokens(e.dma(MemSpace.SRAM, idx, idxRow, MemSpace.HBM, lens, iszReg, isz, batch, 0, 0, (int) heads,
        iszReg, 0), 0, TOK_RESIDENT);
    int rows = e.alloc();
    e.mulImm(rows, batch, heads);
    int dst = e.li(result);
    int src = e.li(addr(w.current()));
    int dstRow = dimReg(headStride);
    int rs = e.konst(rowBytes);
    e.emit(new Insn.Scatter(MemSpace.HBM, dst, 0, dstRow, rs, MemSpace.HBM, src, 0, rs, (int) rowBytes, rows, 0,
        idx, 0, isz == 8, TOK_RESIDENT, 0));
    e.free(idx, lens, batch, rows, dst, src, dstRow);
  }

  /** Several new positions a sequence: one DMA a sequence, a plane per head, at its length. */
  private void writePerSequence(TransformerOp.KvCacheWrite w, List<Dim> cur, List<Dim> laidStrides, long rowBytes,
      long result) {
    int src = e.li(addr(w.current()));
    int dstBase = e.li(result);
    int rs = e.konst(rowBytes);
    int sRows = dimReg(cur.get(KV_AXIS));
    int heads = dimReg(cur.get(1));
    int dstPlane = dimReg(laidStrides.get(1));
    int srcPlane = dimReg(cur.get(KV_AXIS).times(Dim.of(rowBytes)));
    int dstRow = dimReg(laidStrides.get(0));
    int srcRow = dimReg(cur.get(1).times(cur.get(KV_AXIS)).times(Dim.of(rowBytes)));
    int b = e.li(0);
    int at = e.alloc();
    int count = dimReg(cur.get(0));
    int loop = e.beginLoop(count, 0);
    e.free(count);
    loadLength(at, w.pastLengths(), b);
    e.mulImm(at, at, rowBytes);
    e.add(at, at, dstBase);
    e.dma(MemSpace.HBM, at, rs, MemSpace.HBM, src, rs, rowBytes, sRows, 0, heads, 0, dstPlane, srcPlane);
    e.add(src, src, srcRow);
    e.add(dstBase, dstBase, dstRow);
    e.addImm(b, b, 1);
    e.endLoop(loop);
    e.free(src, dstBase, sRows, heads, dstPlane, srcPlane, dstRow, srcRow, b, at);
  }

  private void concat(Node n, List<Value> inputs, int axis) {
    List<Dim> outDims = n.result().type().dims();
    long es = n.result().type().elementType().sizeBytes();
    List<Dim> outStrides = strides(outDims, es);
    int d = e.li(addr(n.result()));
    for (Value in : inputs) {
      // merged heads whose transpose is folded here (foldedTransposes): copied from the
      // [1, H, S, D] tensor as [1, S, H, D], each head's block of the output rows in turn
      Node heads = foldedHeads(in);
      int s = e.li(addr(heads == null ? in : heads.op().operands().get(0)));
      if (heads == null) {
        copyBlock(in.type().dims(), strides(in.type().dims(), es), outStrides, s, d, es);
      } else {
        List<Dim> hd = heads.op().operands().get(0).type().dims();
        List<Dim> hs = strides(hd, es);
        copyBlock(List.of(hd.get(0), hd.get(2), hd.get(1), hd.get(3)),
            List.of(hs.get(0), hs.get(2), hs.get(1), hs.get(3)),
            List.of(outStrides.get(0), outStrides.get(1), Dim.of(hd.get(3).value() * es),
                Dim.of(es)), s, d, es);
      }
      int adv = dimReg(in.type().dim(axis).times(outStrides.get(axis)));
      e.add(d, d, adv);
      e.free(s, adv);
    }
    e.free(d);
  }

  private void split(Node n, DataOp.Split sp) {
    TensorType xt = sp.x().type();
    int axis = (int) Math.floorMod(sp.axis(), xt.rank());
    long es = xt.elementType().sizeBytes();
    List<Dim> inStrides = strides(xt.dims(), es);
    int s = e.li(addr(sp.x()));
    for (Value out : n.results()) {
      int d = e.li(addr(out));
      copyBlock(out.type().dims(), inStrides, strides(out.type().dims(), es), s, d, es);
      int adv = dimReg(out.type().dim(axis).times(inStrides.get(axis)));
      e.add(s, s, adv);
      e.free(d, adv);
    }
    e.free(s);
  }

  /**
   * Gather with constant indices on any axis (BERT's pooler takes token 0): one block copy per
   * index, {@code out[outer..., j, inner...] = x[outer..., idx[j], inner...]}.
   */
  private void gatherConstant(Node n, DataOp.Gather g) {
    TensorType xt = g.data().type();
    int axis = (int) Math.floorMod(g.axis(), xt.rank());
    long es = xt.elementType().sizeBytes();
    long[] idx = constantIndices(g, known);
    List<Dim> xStrides = strides(xt.dims(), es);
    List<Dim> outDims = n.result().type().dims();
    List<Dim> outStrides = strides(outDims, es);
    int idxRank = g.indices().type().rank();
    List<Dim> block = new ArrayList<>();
    List<Dim> src = new ArrayList<>();
    List<Dim> dst = new ArrayList<>();
    for (int i = 0; i < xt.rank(); i++) {
      if (i == axis) {
        continue;
      }
      block.add(xt.dim(i));
      src.add(xStrides.get(i));
      dst.add(outStrides.get(i < axis ? i : i - 1 + idxRank));
    }
    Dim innerBytes = product(xt.dims().subList(axis + 1, xt.rank())).times(Dim.of(es));
    for (int j = 0; j < idx.length; j++) {
      int s = e.li(addr(g.data()));
      int o = dimReg(xStrides.get(axis).times(Dim.of(idx[j])));
      e.add(s, s, o);
      int d = e.li(addr(n.result()));
      int od = dimReg(innerBytes.times(Dim.of(j)));
      e.add(d, d, od);
      copyBlock(block, src, dst, s, d, es);
      e.free(s, o, d, od);
    }
  }

  /** Row gather along axis 0: ids go to SRAM in tiles of 512, the gather DMA copies rows. */
  private void gather(Node n, Value table, Value ids) {
    TensorType tt = table.type();
    long rowBytes = product(tt.dims().subList(1, tt.rank())).value() * tt.elementType().sizeBytes();
    boolean idx64 = ids.type().elementType() == ElementType.I64;
    long idBytes = idx64 ? 8 : 4;
    long tile = 512;
    long idBuf = sram(tile * idBytes, "token ids");
    int count = dimReg(product(ids.type().dims()));
    int rem = e.copy(count);
    int tiles = e.alloc();
    e.addImm(tiles, count, tile - 1);
    e.shri(tiles, tiles, 9);
    int idSram = e.li(idBuf);
    int idPtr = e.li(addr(ids));
    int dst = e.li(addr(n.result()));
    int src = e.li(addr(table));
    int rowRs = e.konst(rowBytes);
    int idRs = e.konst(idBytes);
    int tileReg = e.konst(tile);
    // the table's rows bound every index: computed ones (positions from a mask's sum) too
    int tableRows = dimReg(tt.dim(0));
    int cur = e.alloc();
    int loop = e.beginLoop(tiles, 0);
    e.min(cur, tileReg, rem);
    e.dma(MemSpace.SRAM, idSram, idRs, MemSpace.HBM, idPtr, idRs, idBytes, cur, 0, 0, 1, 0, 0);
    e.emit(new Insn.Gather(MemSpace.HBM, dst, 0, rowRs, MemSpace.HBM, src, 0, rowRs,
        (int) rowBytes, cur, 0, idSram, 0, tableRows, idx64, 0, 0));
    e.addImm(idPtr, idPtr, tile * idBytes);
    e.addImm(dst, dst, tile * rowBytes);
    e.sub(rem, rem, tileReg);
    e.endLoop(loop);
    e.free(count, rem, tiles, idSram, idPtr, dst, src, tableRows, cur);
  }
}
