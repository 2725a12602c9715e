package dev.sohuc.backend;

import static dev.sohuc.backend.Emitter.TOK_LOAD;
import static dev.sohuc.backend.Emitter.TOK_MXU;
import static dev.sohuc.backend.Emitter.TOK_STORE;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.Bcast;
import dev.sohuc.isa.BinOp;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.MemSpace;
import dev.sohuc.isa.RedOp;
import dev.sohuc.isa.ScaleMode;
import dev.sohuc.isa.UnaryFn;
import java.util.List;
import java.util.Map;

/**
 * Low-precision ops: {@code qmatmul} (an {@code mma} in bf16, f8e4m3, f8e5m2 or i8, then
 * {@code accrd} and {@code cvt mode=row|col} for the scales), {@code dynamic_quantize}
 * ({@code vred max abs=1}, {@code cvt div=1}), {@code quantize_linear} with zero point 0 and
 * {@code dequantize_linear} ({@code cvt}; i8 with a zero point for the whole tensor: {@code cvt},
 * {@code vbini sub}, {@code cvt}), and casts between float types.
 *
 * <p>Every step is the instruction whose rounding the reference interpreter's
 * {@code QuantizedKernels}/{@code QuantKernels} model (docs/isa.md, "Numbers"), so the emulated
 * results equal the interpreter's bit for bit. Quantized tensors live in HBM in their own type:
 * a quantized weight is stored in the constants image at 1 or 2 bytes per element, and the
 * {@code mma} streams it at that size.
 */
final class QuantLowering {
  static final int TILE = MatmulLowering.TILE;
  /** {@code dynamic_quantize}'s smallest scale, so that an all-zero row divides safely. */
  static final float MIN_SCALE = Float.MIN_NORMAL;

  private final Lowering l;
  private final Emitter e;

  QuantLowering(Lowering l) {
    this.l = l;
    this.e = l.emitter();
  }

  // ------------------------------------------------------------------------------------------
  // What lowers.

  /** Ops this class lowers: every quantized op, and casts between float types or from i8. */
  static boolean claims(Op op) {
    return op instanceof QuantOp || (op instanceof ElementwiseOp.Cast c && isQuantCast(c));
  }

  /** A cast the VPU's {@code cvt} computes exactly as the interpreter does. */
  static boolean isQuantCast(ElementwiseOp.Cast c) {
    ElementType from = c.x().type().elementType();
    ElementType to = c.to();
    if (from == to) {
      return false;
    }
    boolean fromOk = isFloat(from) || from == ElementType.I8;
    return fromOk && isFloat(to) && (from != ElementType.F32 || to != ElementType.F32)
        && !(from == ElementType.I8 && to != ElementType.F32);
  }

  private static boolean isFloat(ElementType t) {
    return t == ElementType.F32 || t == ElementType.BF16 || t == ElementType.F16
        || t == ElementType.F8E4M3 || t == ElementType.F8E5M2;
  }

  /** Null when {@link #lower} handles {@code n}, else why not. */
  static String unsupportedReason(Node n, Map<Value, Tensor> known) {
    return switch (n.op()) {
      case ElementwiseOp.Cast c -> lastDimStatic(c.x()) ? null : "cast over a symbolic last dim";
      case QuantOp.QMatMul q -> qmatmulReason(q, known);
      case QuantOp.DynamicQuantize d -> !d.granularity().equals("row")
          ? "dynamic_quantize with per-tensor scales (only per-row scales lower)"
          : !lastDimStatic(d.x()) ? "dynamic_quantize over a symbolic last dim"
          : d.x().type().elementType() != ElementType.F32 ? "dynamic_quantize of "
          + d.x().type().elementType() + " (only f32 inputs)" : null;
      case QuantOp.QuantizeLinear q -> quantizeLinearReason(q, known);
      case QuantOp.DequantizeLinear d -> d.x().type().elementType() == ElementType.U8
          ? "dequantize_linear of u8 (only i8, i32 and fp8; fold-qdq makes a gathered u8 table i8)"
          : d.scale().type().elementType() != ElementType.F32 ? "dequantize_linear to "
          + d.scale().type().elementType() + " (only f32 results)"
          : linearReason(d.x(), d.scale(), d.zeroPoint(), d.axis(), known, "dequantize_linear",
          d.x().type().elementType() == ElementType.I8);
      case QuantOp.DynamicQuantizeLinear d -> "dynamic_quantize_linear (asymmetric u8) has no "
          + "lowering: the fold-qdq pass turns DynamicQuantizeLinear + MatMulInteger into "
          + "dynamic_quantize + qmatmul";
      case QuantOp.MatMulInteger m -> "matmul_integer has no lowering: the fold-qdq pass turns "
          + "it into qmatmul when its zero points are 0 (asymmetric u8 stays on the interpreter)";
      default -> "no quantized lowering for '" + n.op().mnemonic() + "'";
    };
  }

  private static boolean lastDimStatic(Value v) {
    TensorType t = v.type();
    return t.rank() == 0 || t.dim(t.rank() - 1).isStatic();
  }

  private static String qmatmulReason(QuantOp.QMatMul q, Map<Value, Tensor> known) {
    TensorType xt = q.x().type();
    TensorType wt = q.w().type();
    if (!xt.dim(xt.rank() - 1).isStatic() || !wt.isStatic()) {
      return "qmatmul with a symbolic reduction length or weight shape";
    }
    if (q.xScale().type().rank() == 0 && !known.containsKey(q.xScale())) {
      return "qmatmul with a computed per-tensor x scale (a constant or per-row scales lower)";
    }
    if (q.wScale().type().rank() == 0 && !known.containsKey(q.wScale())) {
      return "qmatmul with a computed per-tensor w scale";
    }
    return null;
  }

  /** Why quantize_linear does not lower: its zero point's type, scale and zero point, x's type. */
  private static String quantizeLinearReason(QuantOp.QuantizeLinear q, Map<Value, Tensor> known) {
    if (q.zeroPoint().type().elementType() == ElementType.U8) {
      return "quantize_linear to u8 (only i8 and fp8 with zero point 0)";
    }
    String linear = linearReason(q.x(), q.scale(), q.zeroPoint(), q.axis(), known,
        "quantize_linear", false);
    if (linear != null) {
      return linear;
    }
    return q.x().type().elementType() != ElementType.F32
        ? "quantize_linear of " + q.x().type().elementType() + " (only f32 inputs)" : null;
  }

  /** {@code offsetOk}: a non-zero zero point for the whole tensor lowers too. */
  private static String linearReason(Value x, Value scale, Value zp, long axis,
      Map<Value, Tensor> known, String what, boolean offsetOk) {
    Tensor z = known.get(zp);
    if (z == null) {
      return what + " with a computed zero point";
    }
    for (int i = 0; i < z.size(); i++) {
      if (z.get(i) != 0 && !(offsetOk && z.size() == 1)) {
        return what + " with a non-zero zero point " + (offsetOk
            ? "per channel (only one for the whole tensor lowers)"
            : "(only symmetric quantization lowers)");
      }
    }
    if (!lastDimStatic(x)) {
      return what + " over a symbolic last dim";
    }
    if (scale.type().rank() == 0 || scale.type().staticElementCount().orElse(0L) == 1) {
      return known.containsKey(scale) ? null : what + " with a computed scale";
    }
    int rank = x.type().rank();
    if (Math.floorMod(axis, rank) != rank - 1) {
      return what + " per channel on axis " + axis + " (only the last axis)";
    }
    return null;
  }

  // ------------------------------------------------------------------------------------------
  // Fusing x's conversion into qmatmul.

  /**
   * Rows per tile of the conversion stream that fills the resident operand, for f32 input rows
   * of {@code inRowBytes} (all its inputs'): a power of two from 128 to 512, about
   * {@link #CONVERT_BYTES} a tile. The stream's two tiles wait out the HBM latency once per two
   * loads, so short tiles leave it waiting: the 70B step's o projection converted its 1024-wide
   * x in 128-row tiles (512 KB, 0.1 us of transfer each) in 3 us; in 512-row ones the 3-layer
   * step took 1.1% less time in bf16 and 1.8% in fp8.
   */
  static long convertTile(long inRowBytes) {
    return Math.min(512, Long.highestOneBit(Math.max(128, CONVERT_BYTES / inRowBytes)));
  }

  /** The input bytes a conversion stream's tile aims at. */
  static final long CONVERT_BYTES = 16L << 20;

  /** {@code -Dsohuc.backend.fuseQuantConversions=false} lowers every conversion on its own. */
  static final String FUSE_PROPERTY = "sohuc.backend.fuseQuantConversions";

  /**
   * The conversions fused into the qmatmul that reads them, producer to consumer: a cast from
   * f32, a per-row {@code dynamic_quantize} of f32 or a {@code quantize_linear} of f32 with a
   * constant scalar scale and zero point 0, whose results only that qmatmul reads (as x, and
   * the row scales as its x scale), and whose converted operand fits in SRAM whole at the
   * symbols' bounds. The qmatmul then reads the f32 rows once, converts each tile in SRAM with
   * the producer's own instructions (so the numbers are the unfused ones) into a resident
   * low-precision copy, and runs every weight panel against it: the quantized tensor never
   * goes to HBM and x is read once instead of once per 128 weight columns. Also a widening
   * cast of bf16 read only by a full-shape binary op, fused into that op (below).
   */
  static Map<Node, Node> fusedConversions(dev.sohuc.ir.Function fn, Map<Value, Long> sizeAtBound,
      Map<Value, Tensor> known, TargetInfo target, Map<Node, GatedPair> pairs) {
    // the gated pairs write their SwiGLU's activation (or its bf16 cast) themselves
    java.util.Set<Node> paired = java.util.Collections.newSetFromMap(
        new java.util.IdentityHashMap<>());
    for (GatedPair pair : pairs.values()) {
      paired.add(pair.glu());
      paired.add(pair.last());
      if (pair.activation() != null) {
        paired.add(pair.activation());
      }
    }
    Map<Value, Integer> uses = new java.util.IdentityHashMap<>();
    for (Node n : fn.body()) {
      for (Value v : n.op().operands()) {
        uses.merge(v, 1, Integer::sum);
      }
    }
    for (dev.sohuc.ir.Function.Output o : fn.outputs()) {
      uses.merge(o.value(), 1000, Integer::sum);
    }
    Map<Node, Node> fused = new java.util.IdentityHashMap<>();
    if (!Boolean.parseBoolean(System.getProperty(FUSE_PROPERTY, "true"))) {
      return fused;
    }
    for (Node n : fn.body()) {
      if (!(n.op() instanceof QuantOp.QMatMul q) || q.x().producer() == null
          || qmatmulReason(q, known) != null) {
        continue;
      }
      Node p = q.x().producer();
      if (fused.containsKey(p) || paired.contains(p)) {
        continue; // a later reader of a conversion fused into the first, or a pair's cast
      }
      List<Node> readers = consecutiveReaders(fn, p);
      boolean dynamic = p.op() instanceof QuantOp.DynamicQuantize;
      boolean ok = switch (p.op()) {
        case ElementwiseOp.Cast c -> isQuantCast(c)
            && c.x().type().elementType() == ElementType.F32 && lastDimStatic(c.x());
        case QuantOp.DynamicQuantize d -> unsupportedReason(p, known) == null
            && uses.getOrDefault(p.results().get(1), 0) == readers.size();
        case QuantOp.QuantizeLinear ql -> unsupportedReason(p, known) == null
            && known.containsKey(ql.scale()) && known.get(ql.scale()).size() == 1;
        default -> false;
      };
      for (Node r : readers) {
        QuantOp.QMatMul rq = (QuantOp.QMatMul) r.op();
        ok &= qmatmulReason(rq, known) == null && rq.x() != rq.xScale() && rq.x() != rq.w()
            && rq.x() != rq.wScale() && (!dynamic || rq.xScale() == p.results().get(1));
      }
      if (!ok || uses.getOrDefault(q.x(), 0) != readers.size()) {
        continue;
      }
      Value xf = p.op().operands().get(0);
      TensorType xt = xf.type();
      long k = xt.dim(xt.rank() - 1).value();
      Long xBytes = sizeAtBound.get(xf);
      if (xBytes == null || k * 4 > (1 << 17) - 1) {
        continue;
      }
      long es = dtype(q.x().type().elementType()).bytes();
      if (k * es < 4) {
        continue; // the conversion stream stores 4 bytes a row into the converted tensor's slot
      }
      long cols = readers.stream()
          .mapToLong(r -> ((QuantOp.QMatMul) r.op()).w().type().dim(1).value()).max().orElse(0);
      long rowsAtBound = xBytes / (k * 4);
      long slack = 16 * Lowering.SRAM_ALIGN;
      Node glu = fusableSwiGlu(xf, uses);
      glu = paired.contains(glu) ? null : glu;
      long inputs = glu == null ? 1 : 2;
      long tile = convertTile(inputs * k * 4);
      long need = rowsAtBound * k * es + rowsAtBound * 4 + cols * 4 // resident A, x and w scales
          + 2L * inputs * tile * k * 4                           // f32 tiles (gate and up)
          + 2L * tile * 4                                        // out
          + 2L * k * TILE * es                                   // weight panels
          + 2L * (TILE * k * es + TILE * TILE * 4) + slack;      // the mma stream's tiles
      if (need + k * 4 <= target.sramBytes()) {
        fused.put(p, n);
        if (glu != null) {
          fused.put(glu, n);
        }
      }
    }
    // a widening cast of bf16 to f32 read only by a full-shape binary op (the summed bf16
    // partial before the residual add) is applied by that op to each tile in SRAM: the f32
    // copy never goes to HBM. One per op: the scratch tile holds one widened operand.
    for (Node n : fn.body()) {
      if (!(n.op() instanceof ElementwiseOp.Binary bin) || bin.lhs() == bin.rhs()
          || n.result().type().elementType() != ElementType.F32) {
        continue;
      }
      Lowering.BinaryPlan p = Lowering.binaryPlan(bin, known);
      if (p == null || p.imm() != null || p.bShape() != Lowering.Shape.FULL) {
        continue;
      }
      for (Value v : List.of(p.a(), p.b())) {
        Node c = v.producer();
        if (c != null && c.op() instanceof ElementwiseOp.Cast cast && cast.to() == ElementType.F32
            && cast.x().type().elementType() == ElementType.BF16 && uses.getOrDefault(v, 0) == 1
            && lastDimStatic(v)) {
          fused.put(c, n);
          break;
        }
      }
    }
    // a per-channel f32 multiply feeding only fused conversions (SmoothQuant's x / s, shared
    // by the layers that read one activation) is applied by each of them to its f32 tile in SRAM
    // with the same vbin mul instead of going through HBM on its own; it maps to the last
    // qmatmul that reads it, so its input stays live until then
    Map<Node, Integer> fusedReaders = new java.util.IdentityHashMap<>();
    Map<Node, Node> lastReader = new java.util.IdentityHashMap<>();
    for (Map.Entry<Node, Node> f : fused.entrySet()) {
      Node pre = f.getKey().op().operands().get(0).producer();
      if (pre != null && preScale(pre, known) != null) {
        fusedReaders.merge(pre, 1, Integer::sum);
        lastReader.merge(pre, f.getValue(),
            (x, y) -> fn.body().indexOf(x) >= fn.body().indexOf(y) ? x : y);
      }
    }
    for (Map.Entry<Node, Integer> r : fusedReaders.entrySet()) {
      if (uses.getOrDefault(r.getKey().result(), 0).equals(r.getValue())) {
        fused.put(r.getKey(), lastReader.get(r.getKey()));
      }
    }
    return fused;
  }

  // ------------------------------------------------------------------------------------------
  // Fusing the result's narrowing and its all_reduce into the matmul.

  /**
   * What a qmatmul or matmul may do with its result in its own code. {@code narrow} (qmatmul
   * only, or null): a cast of the f32 result to bf16, its only reader, placed right after it:
   * each tile is rounded to bf16 as it leaves ACC (the last readout instruction writes bf16:
   * the same roundings as the cast), and the f32 result is never written. {@code sum} (or
   * null): the all_reduce of the result (of the narrowed one if any), its only reader: each
   * finished weight panel's columns are summed over the group on the LINK engine while the MXU
   * computes the next panel, so only the last panel's sum is not hidden behind the matmul
   * (async tensor parallelism). Applied on the resident ring schedules only
   * ({@link Lowering#isDoneInside} tells); otherwise the cast and the all_reduce lower alone.
   */
  record Epilogue(Node narrow, Node sum) {
    /**
     * The last node whose result the matmul writes, or null: a reduce_scatter done panel by
     * panel, else the narrowing cast (an all_reduce sums in place, on the matmul's buffer).
     */
    Node last() {
      return sum != null && sum.op() instanceof TransformerOp.ReduceScatter ? sum : narrow;
    }
  }

  /** The epilogue of every qmatmul and matmul that has one. */
  static Map<Node, Epilogue> epilogues(dev.sohuc.ir.Function fn) {
    Map<Node, Epilogue> out = new java.util.IdentityHashMap<>();
    if (!Boolean.parseBoolean(System.getProperty(FUSE_PROPERTY, "true"))) {
      return out;
    }
    Map<Value, List<Node>> users = fn.users();
    List<Node> body = fn.body();
    for (int i = 0; i < body.size(); i++) {
      Node n = body.get(i);
      if (!(n.op() instanceof QuantOp.QMatMul) && !(n.op() instanceof dev.sohuc.ir.op.LinalgOp.MatMul)) {
        continue;
      }
      Node next = soleReader(fn, users, n.result());
      Node narrow = null;
      // the cast comes next (constants aside): no op in between may take its buffer, which
      // the qmatmul has already written
      if (n.op() instanceof QuantOp.QMatMul && next != null
          && next.op() instanceof ElementwiseOp.Cast c && c.to() == ElementType.BF16
          && lastDimStatic(n.result()) && body.subList(i + 1, body.indexOf(next)).stream()
          .allMatch(x -> x.op() instanceof dev.sohuc.ir.op.SourceOp)) {
        narrow = next;
        next = soleReader(fn, users, narrow.result());
      }
      Node sum = next != null && (next.op() instanceof dev.sohuc.ir.op.TransformerOp.AllReduce
          && CollectiveLowering.unsupportedReason(next, fn) == null
          || CollectiveLowering.scattersPanels(next)) ? next : null;
      if (narrow != null || sum != null) {
        out.put(n, new Epilogue(narrow, sum));
      }
    }
    return out;
  }

  /**
   * A gated unit's gate and up projections lowered as one qmatmul (see {@link #gatedPairs}): the
   * gate's node stands for the pair; {@code up} (or, for one qmatmul of both weights, as Phi-3's
   * gate_up_proj, the {@code split} of its result), {@code glu} (a SwiGLU, or the product of a
   * GeGLU), the GeGLU's {@code activation} of the gate (null for a SwiGLU) and the bf16 cast
   * {@code narrow} of the result (or null) are done inside it, the activation being {@code fn}.
   */
  record GatedPair(Node up, Node split, Node glu, Node narrow, Node activation, UnaryFn fn) {
    /** The last node whose work the pair does: what it writes is defined there. */
    Node last() {
      return narrow != null ? narrow : glu;
    }
  }

  /**
   * The gated units (a SwiGLU, or a GeGLU: a gelu of the gate times the up) whose gate and up
   * are qmatmuls of one x and x scale ({@link #sameX}), read only by the unit, with the same
   * scalar w scale or per-channel ones and the same weight shape of whole 128-column panels,
   * all one after another (constants aside), keyed by the gate's node. One weight-panel loop
   * then loads a gate panel and the up panel of the same columns together (a DMA of two planes)
   * and reads both out of ACC into one output tile, where the unit's own {@code vglu} (and the
   * cast to bf16 after it, when that is its only reader) makes the result's columns before they
   * are stored: gate and up never go to HBM in f32, and the down projection no longer applies
   * the unit in front of its own panels.
   */
  static Map<Node, GatedPair> gatedPairs(dev.sohuc.ir.Function fn, Map<Value, Tensor> known) {
    Map<Node, GatedPair> out = new java.util.IdentityHashMap<>();
    if (!Boolean.parseBoolean(System.getProperty(FUSE_PROPERTY, "true"))) {
      return out;
    }
    Map<Value, List<Node>> users = fn.users();
    List<Node> body = fn.body();
    for (Node glu : body) {
      Unit unit = unit(fn, users, glu);
      if (unit == null || glu.result().type().elementType() != ElementType.F32) {
        continue;
      }
      Node gateReader = unit.activation() != null ? unit.activation() : glu;
      GatedPair split = splitPair(fn, users, unit, glu, gateReader, known);
      if (split != null) {
        out.put(unit.gate().producer().op().operands().get(0).producer(), split);
        continue;
      }
      Node gate = unit.gate().producer();
      Node up = unit.up().producer();
      if (gate == null || up == null || soleReader(fn, users, unit.gate()) != gateReader
          || soleReader(fn, users, unit.up()) != glu
          || !(gate.op() instanceof QuantOp.QMatMul g) || !(up.op() instanceof QuantOp.QMatMul u)
          || qmatmulReason(g, known) != null || qmatmulReason(u, known) != null
          || !sameX(g, u, known) || !g.w().type().equals(u.w().type())
          || g.w().type().dim(1).value() % TILE != 0
          || !sameScalar(g.wScale(), u.wScale(), known)
          && !(perChannel(g.wScale(), g.w()) && perChannel(u.wScale(), u.w()))) {
        continue;
      }
      // between them only the up (and its own conversion of x, when it makes one), the gate's
      // activation and constants
      int at = body.indexOf(gate);
      Node upConversion = u.x() == g.x() ? up : u.x().producer();
      if (body.indexOf(up) < at || !body.subList(at + 1, body.indexOf(glu)).stream()
          .allMatch(x -> x == up || x == upConversion || x == unit.activation()
              || x.op() instanceof dev.sohuc.ir.op.SourceOp)) {
        continue;
      }
      out.put(gate, new GatedPair(up, null, glu, narrowOf(fn, users, glu), unit.activation(),
          unit.fn()));
    }
    return out;
  }

  /**
   * The unit as a pair of one qmatmul whose result a split along its last axis cuts into the
   * gate and the up halves (Phi-3's gate_up_proj), each half whole 128-column panels, the three
   * one after another (constants aside); else null.
   */
  private static GatedPair splitPair(dev.sohuc.ir.Function fn, Map<Value, List<Node>> users,
      Unit unit, Node glu, Node gateReader, Map<Value, Tensor> known) {
    Node split = unit.gate().producer();
    if (split == null || split != unit.up().producer()
        || !(split.op() instanceof dev.sohuc.ir.op.DataOp.Split sp) || split.results().size() != 2
        || split.results().get(0) != unit.gate() || split.results().get(1) != unit.up()
        || soleReader(fn, users, unit.gate()) != gateReader
        || soleReader(fn, users, unit.up()) != glu) {
      return null;
    }
    Node mm = sp.x().producer();
    if (mm == null || !(mm.op() instanceof QuantOp.QMatMul q) || qmatmulReason(q, known) != null
        || soleReader(fn, users, sp.x()) != split) {
      return null;
    }
    int rank = sp.x().type().rank();
    long cols = q.w().type().dim(1).value();
    if ((sp.axis() != -1 && sp.axis() != rank - 1) || cols % (2 * TILE) != 0
        || !sp.sizes().equals(List.of(Dim.of(cols / 2), Dim.of(cols / 2)))
        || !(known.get(q.wScale()) != null && known.get(q.wScale()).size() == 1
            || perChannel(q.wScale(), q.w()))) {
      return null;
    }
    List<Node> body = fn.body();
    if (!body.subList(body.indexOf(mm) + 1, body.indexOf(glu)).stream()
        .allMatch(x -> x == split || x == unit.activation()
            || x.op() instanceof dev.sohuc.ir.op.SourceOp)) {
      return null;
    }
    return new GatedPair(null, split, glu, narrowOf(fn, users, glu), unit.activation(),
        unit.fn());
  }

  /** The cast to bf16 that alone reads the unit's result right after it (constants aside). */
  private static Node narrowOf(dev.sohuc.ir.Function fn, Map<Value, List<Node>> users,
      Node glu) {
    List<Node> body = fn.body();
    Node next = soleReader(fn, users, glu.result());
    return next != null && next.op() instanceof ElementwiseOp.Cast c
        && c.to() == ElementType.BF16 && body.subList(body.indexOf(glu) + 1, body.indexOf(next))
        .stream().allMatch(x -> x.op() instanceof dev.sohuc.ir.op.SourceOp) ? next : null;
  }

  /** A gated unit's gate and up values, the gate's activation node (GeGLU) and function. */
  private record Unit(Value gate, Value up, Node activation, UnaryFn fn) {}

  /**
   * {@code n} as a gated unit: a SwiGLU, or a product one of whose factors is a gelu read only
   * by it (a GeGLU, as Gemma's MLP); else null.
   */
  private static Unit unit(dev.sohuc.ir.Function fn, Map<Value, List<Node>> users, Node n) {
    if (n.op() instanceof TransformerOp.SwiGlu s) {
      return new Unit(s.gate(), s.up(), null, UnaryFn.SILU);
    }
    if (!(n.op() instanceof ElementwiseOp.Binary b) || b.kind() != ElementwiseOp.BinaryKind.MUL
        || !b.lhs().type().equals(b.rhs().type())) {
      return null;
    }
    for (Value v : List.of(b.lhs(), b.rhs())) {
      Node p = v.producer();
      if (p != null && p.op() instanceof TransformerOp.Gelu g && soleReader(fn, users, v) == n
          && g.x().type().equals(v.type())) {
        return new Unit(g.x(), v == b.lhs() ? b.rhs() : b.lhs(), p,
            g.tanhApproximation() ? UnaryFn.GELU_TANH : UnaryFn.GELU_ERF);
      }
    }
    return null;
  }

  /**
   * Whether {@code u} reads the x and x scale {@code g} reads: the same values, or the results
   * of one conversion of the same value made twice (the quantizer converts x for each
   * projection; the pair's loop converts it once, as the gate's).
   */
  private static boolean sameX(QuantOp.QMatMul g, QuantOp.QMatMul u, Map<Value, Tensor> known) {
    if (g.x() != u.x()) {
      Node a = g.x().producer();
      Node b = u.x().producer();
      if (a == null || b == null || !a.op().equals(b.op())
          || a.results().indexOf(g.x()) != b.results().indexOf(u.x())) {
        return false;
      }
      int scale = a.results().indexOf(g.xScale());
      if (scale >= 0) {
        return scale == b.results().indexOf(u.xScale());
      }
    }
    return g.xScale() == u.xScale() || sameScalar(g.xScale(), u.xScale(), known);
  }

  /** Whether {@code scale} holds one f32 per column of {@code w}. */
  private static boolean perChannel(Value scale, Value w) {
    TensorType t = scale.type();
    return t.rank() == 1 && t.dim(0).equals(w.type().dim(1))
        && t.elementType() == ElementType.F32;
  }

  /** Whether {@code a} and {@code b} are one scalar constant value. */
  private static boolean sameScalar(Value a, Value b, Map<Value, Tensor> known) {
    Tensor x = known.get(a);
    Tensor y = known.get(b);
    return x != null && y != null && x.size() == 1 && y.size() == 1 && x.get(0) == y.get(0);
  }

  /** The only op that reads {@code v}, or null (none, several, or an output). */
  private static Node soleReader(dev.sohuc.ir.Function fn, Map<Value, List<Node>> users,
      Value v) {
    List<Node> readers = users.getOrDefault(v, List.of());
    return readers.size() == 1 && !fn.outputValues().contains(v) ? readers.get(0) : null;
  }

  /**
   * The qmatmuls that read {@code conv}'s result as x when they follow one another with only
   * sources between them (q, k and v of one shared cast), in order; empty when something else
   * reads it in between or they are not consecutive.
   */
  private static List<Node> consecutiveReaders(dev.sohuc.ir.Function fn, Node conv) {
    List<Node> readers = new java.util.ArrayList<>();
    boolean open = false;
    for (Node n : fn.body()) {
      boolean reads = n.op().operands().contains(conv.results().get(0));
      if (reads && n.op() instanceof QuantOp.QMatMul q && q.x() == conv.results().get(0)) {
        if (!readers.isEmpty() && !open) {
          return List.of();
        }
        readers.add(n);
        open = true;
      } else if (reads) {
        return List.of();
      } else if (open && !SohuBackend.isSource(n) && n != conv) {
        open = false;
      }
    }
    return readers;
  }

  /**
   * Which fused conversions of x find it already resident in SRAM, left by the op lowered just
   * before (with only sources and fused producers between).
   *
   * @param reused the qmatmuls that convert nothing: the previous qmatmul made the same
   *     conversion (the same node, or the same op on the same input: q, k and v of one
   *     normalized activation, or gate and up), or the previous op is the rms_norm whose result
   *     they cast, which converted each tile it made ({@code normCasts})
   * @param normCasts rms_norms that also cast their result to bf16 into the SRAM where the next
   *     qmatmul claims its converted x, to the cast they do
   * @param unstoredNorms those of them whose f32 result nothing reads from HBM (only casts
   *     like theirs read it, and every reader of those takes the resident copy): not stored
   */
  record Residency(java.util.Set<Node> reused, Map<Node, Node> normCasts,
      java.util.Set<Node> unstoredNorms) {}

  static Residency residency(dev.sohuc.ir.Function fn, Map<Node, Node> fused,
      Map<Value, Long> sizeAtBound, TargetInfo target) {
    Map<Node, Node> conversionOf = new java.util.IdentityHashMap<>();
    for (Node n : fn.body()) {
      if (n.op() instanceof QuantOp.QMatMul q && q.x().producer() != null
          && fused.containsKey(q.x().producer())) {
        conversionOf.put(n, q.x().producer());
      }
    }
    java.util.Set<Node> reused = java.util.Collections.newSetFromMap(
        new java.util.IdentityHashMap<>());
    Map<Node, Node> normCasts = new java.util.IdentityHashMap<>();
    Node previous = null;
    for (Node n : fn.body()) {
      if (SohuBackend.isSource(n) || fused.containsKey(n)) {
        continue;
      }
      Node conv = conversionOf.get(n);
      Node before = previous == null ? null : conversionOf.get(previous);
      if (conv != null && before != null && (conv == before || conv.op().equals(before.op()))) {
        reused.add(n);
      } else if (conv != null && previous != null && castOfNorm(conv, previous, sizeAtBound,
          target)) {
        reused.add(n);
        normCasts.put(previous, conv);
      }
      previous = n;
    }
    Map<Value, List<Node>> users = fn.users();
    java.util.Set<Value> outputs = fn.outputValues();
    java.util.Set<Node> unstored = java.util.Collections.newSetFromMap(
        new java.util.IdentityHashMap<>());
    // read only by casts like the one it does (one per sibling qmatmul, or one for all), each
    // read only by qmatmuls that take the resident copy
    normCasts.forEach((norm, cast) -> {
      if (!outputs.contains(norm.result()) && users.get(norm.result()).stream().allMatch(
          c -> c.op().equals(cast.op()) && !outputs.contains(c.result())
              && users.getOrDefault(c.result(), List.of()).stream().allMatch(reused::contains))) {
        unstored.add(norm);
      }
    });
    return new Residency(reused, normCasts, unstored);
  }

  /**
   * Whether {@code norm} can leave the converted x of {@code conv} resident: a plain cast to
   * bf16 of the f32 rms_norm's result, whose converted rows fit the SRAM at their bound beside
   * the norm's own tiles (a quarter of the SRAM).
   */
  private static boolean castOfNorm(Node conv, Node norm, Map<Value, Long> sizeAtBound,
      TargetInfo target) {
    if (!(conv.op() instanceof ElementwiseOp.Cast c) || c.to() != ElementType.BF16
        || !(norm.op() instanceof dev.sohuc.ir.op.TransformerOp.RmsNorm)
        || c.x() != norm.result() || norm.result().type().elementType() != ElementType.F32) {
      return false;
    }
    Long bytes = sizeAtBound.get(norm.result());
    return bytes != null && bytes / 2 <= target.sramBytes() * 3 / 4;
  }

  /**
   * The plan of {@code n} when it is an f32 multiply of a full operand by a constant vector
   * along the last axis (a {@code vbin mul bcast=row}), else null.
   */
  static Lowering.BinaryPlan preScale(Node n, Map<Value, Tensor> known) {
    if (!(n.op() instanceof ElementwiseOp.Binary bin)
        || bin.kind() != ElementwiseOp.BinaryKind.MUL
        || n.result().type().elementType() != ElementType.F32) {
      return null;
    }
    Lowering.BinaryPlan p = Lowering.binaryPlan(bin, known);
    return p != null && p.imm() == null && p.bShape() == Lowering.Shape.ROW
        && known.containsKey(p.b()) && p.a().type().dims().equals(n.result().type().dims())
        ? p : null;
  }

  /**
   * The SwiGLU that makes {@code xf}, when the conversion of {@code xf} is its only reader (a
   * down projection's x): the conversion stream then reads the gate and up rows and applies
   * the SwiGLU's own {@code vglu} to each tile before converting it, so the activation never
   * goes to HBM and is not read back from there. Else null.
   */
  private static Node fusableSwiGlu(Value xf, Map<Value, Integer> uses) {
    Node p = xf.producer();
    return p != null && p.op() instanceof TransformerOp.SwiGlu s
        && uses.getOrDefault(xf, 0) == 1 && xf.type().elementType() == ElementType.F32
        && s.gate().type().dims().equals(xf.type().dims())
        && s.up().type().dims().equals(xf.type().dims()) ? p : null;
  }

  /** The instruction dtype of {@code t}: the symbol mapping, minus the types no MXU/VPU op takes. */
  static DType dtype(ElementType t) {
    return switch (t) {
      case U8, BOOL, I64 -> throw new BackendException("no instruction dtype for " + t);
      default -> SymbolTypes.of(t);
    };
  }

  /** The zero point for the whole tensor; 0 per channel (where only zeros lower). */
  private float zeroPoint(QuantOp.DequantizeLinear d) {
    Float z = scalar(d.zeroPoint());
    return z == null ? 0 : z;
  }

  private Float scalar(Value v) {
    Tensor t = l.known().get(v);
    return t == null || t.size() != 1 ? null : (float) t.get(0);
  }

  // ------------------------------------------------------------------------------------------
  // Lowering.

  void lower(Node n) {
    switch (n.op()) {
      case ElementwiseOp.Cast c -> convert(n, c.x(), dtype(c.x().type().elementType()),
          dtype(c.to()), null, 0, false, 0);
      case QuantOp.QuantizeLinear q -> convert(n, q.x(), DType.F32,
          dtype(q.zeroPoint().type().elementType()), scalar(q.scale()), q.scale(), true, 0);
      case QuantOp.DequantizeLinear d -> convert(n, d.x(), dtype(d.x().type().elementType()),
          DType.F32, scalar(d.scale()), d.scale(), false, zeroPoint(d));
      case QuantOp.DynamicQuantize d -> dynamicQuantize(n, d);
      case QuantOp.QMatMul q -> qmatmul(n, q);
      default -> throw new BackendException(n.describe() + ": no quantized lowering");
    }
  }

  /**
   * {@code dst = cvt(src * s)} (or {@code / s}): a plain conversion ({@code scaleValue} null and
   * {@code scaleVec} null), a per-tensor scale (an immediate), or a per-channel scale along the
   * last axis ({@code scaleVec}, an f32 vector preloaded to SRAM, {@code cvt mode=col}). A
   * non-zero {@code offset} (a dequantize's zero point for the whole tensor, {@code to} f32) is
   * taken off first: {@code cvt} to f32 and {@code vbini sub} (both exact), then the scale's
   * {@code cvt}, one rounding, as ONNX Runtime's.
   */
  private void convert(Node n, Value x, DType from, DType to, Float scaleValue, Object scaleVec,
      boolean div, float offset) {
    Lowering.View v = Lowering.view(x.type());
    long inRow = v.cols() * from.bytes();
    long outRow = v.cols() * to.bytes();
    boolean perChannel = scaleValue == null && scaleVec instanceof Value;
    int vec = perChannel ? e.li(l.preload((Value) scaleVec, v.cols() * 4, "scale vector")) : 0;
    float s = scaleValue == null ? 1.0f : scaleValue;
    ScaleMode mode = perChannel ? ScaleMode.COL : ScaleMode.TENSOR;
    int rows = l.dimReg(v.rows());
    int cols = e.konst(v.cols());
    int inRs = e.konst(inRow);
    int outRs = e.konst(outRow);
    int src = e.li(l.addr(x));
    int dst = e.li(l.addr(n.result()));
    long tile = l.tileRows(2 * (inRow + outRow), v.cols() == 1 ? 1024 : 128);
    l.rowStream(rows, tile, List.of(new Lowering.In(src, inRow, inRow)), dst, outRow, outRow,
        (in, out, r, st) -> {
          if (offset == 0) {
            e.emit(new Insn.Cvt(out, 0, outRs, to, in[0], 0, inRs, from, r, cols, mode, s, vec,
                0, div, 0, 0));
            return;
          }
          e.emit(new Insn.Cvt(out, 0, outRs, DType.F32, in[0], 0, inRs, from, r, cols,
              ScaleMode.TENSOR, 1.0f, 0, 0, false, 0, 0));
          e.vbini(BinOp.SUB, out, outRs, out, outRs, offset, r, cols, false);
          e.emit(new Insn.Cvt(out, 0, outRs, to, out, 0, outRs, DType.F32, r, cols, mode, s, vec,
              0, div, 0, 0));
        });
    e.free(rows, src, dst, vec);
  }

  /**
   * The symmetric scales of {@code rows} rows of f32 x at {@code x} into the column at
   * {@code out} ({@code four}: its stride): {@code max |x| / qmax}, at least MIN_SCALE.
   * {@code one}: a register holding 1.
   */
  private void rowScales(int out, int four, int x, int xRs, int rows, int cols, float qmax,
      int one) {
    e.vred(RedOp.MAX, true, out, four, x, xRs, rows, cols);
    e.vbini(BinOp.DIV, out, four, out, four, qmax, rows, one, false);
    e.vbini(BinOp.MAX, out, four, out, four, MIN_SCALE, rows, one, false);
  }

  /**
   * Per-row symmetric quantization of {@code rows} rows of f32 x at {@code x} into {@code q}
   * (row stride {@code qRs}, type {@code to}): the scales into the column at {@code scales}
   * ({@link #rowScales}), then {@code q = cvt(x / scale) mode=row div=1} reading them.
   */
  void quantizeRows(int q, int qRs, DType to, int scales, int four, int x, int xRs, int rows,
      int cols, float qmax, int one) {
    rowScales(scales, four, x, xRs, rows, cols, qmax, one);
    e.emit(new Insn.Cvt(q, 0, qRs, to, x, 0, xRs, DType.F32, rows, cols, ScaleMode.ROW, 1.0f,
        scales, 0, true, 0, 0));
  }

  /**
   * Per-row symmetric quantization in one row stream: per tile, the scales ({@code max |x| /
   * qmax}, at least 2^-126: {@code vred max abs=1}, {@code vbini div}, {@code vbini max}) into
   * a scratch vector, {@code q = cvt(x / scale) mode=row div=1} reading them, and a copy of them
   * beside the tile's q rows, stored as the stream's second output.
   */
  private void dynamicQuantize(Node n, QuantOp.DynamicQuantize d) {
    Value x = d.x();
    Lowering.View v = Lowering.view(x.type());
    DType to = dtype(d.dtype());
    float qmax = QuantOp.maxMagnitude(d.dtype());
    long inRow = v.cols() * 4;
    long outRow = v.cols() * to.bytes();
    Value q = n.results().get(0);
    Value scale = n.results().get(1);
    int rows = l.dimReg(v.rows());
    int cols = e.konst(v.cols());
    int inRs = e.konst(inRow);
    // the output tile's rows: q, then the row's scale
    long scaleAt = Lowering.secondOutputOffset(outRow);
    int tileRs = e.konst(scaleAt + 4);
    int four = e.konst(4);
    int one = e.konst(1);
    int src = e.li(l.addr(x));
    int qDst = e.li(l.addr(q));
    int sDst = e.li(l.addr(scale));
    long tile = l.tileRows(2 * (inRow + scaleAt + 4) + 4, 128);
    int scratch = e.li(l.sram(tile * 4, "row scales"));
    l.rowStream(rows, tile, List.of(new Lowering.In(src, inRow, inRow)), qDst, outRow, outRow,
        (in, out, r, st) -> {
          quantizeRows(out, tileRs, to, scratch, four, in[0], inRs, r, cols, qmax, one);
          int scales = e.alloc();
          e.addImm(scales, out, scaleAt);
          e.vbini(BinOp.MUL, scales, tileRs, scratch, four, 1.0f, r, one, false);
          e.free(scales);
        }, false, new int[0], null, false, new Lowering.Out(sDst, 4, 4));
    e.free(rows, src, qDst, sDst, scratch);
  }

  /**
   * {@code y[M, N] = f32(f32(acc * x_scale) * w_scale)} with {@code acc = x[M, K] @ w[K, N]} by
   * one {@code mma} per 128 x 128 output tile in the operands' type. The loop nest is the f32
   * matmul's (panels of 128 weight columns, prefetched; double-buffered row tiles of x and
   * ACC tiles): per tile, {@code mma}, {@code accrd} (times a per-tensor x scale), then
   * {@code cvt mode=row} for per-token x scales (streamed beside x) and {@code cvt mode=col}
   * for per-channel w scales (preloaded), or {@code cvt mode=tensor} for a scalar w scale.
   */
  private void qmatmul(Node n, QuantOp.QMatMul q) {
    Value x = q.x();
    Value w = q.w();
    DType dt = dtype(x.type().elementType());
    int es = dt.bytes();
    TensorType xt = x.type();
    long k = xt.dim(xt.rank() - 1).value();
    long cols = w.type().dim(1).value();
    Dim m = Lowering.product(xt.dims().subList(0, xt.rank() - 1));
    int mTile = m.isStatic() && m.value() < TILE ? (int) Math.max(1, m.value()) : TILE;
    Float sxImm = scalar(q.xScale());
    Float swImm = scalar(q.wScale());
    boolean rowScale = sxImm == null;
    boolean colScale = swImm == null;
    long accWords = 2L * TILE * TILE;
    if (accWords > l.target().accWords()) {
      throw new BackendException(n.describe() + ": needs " + accWords + " ACC words, the target "
          + "has " + l.target().accWords());
    }
    // x's conversion fused here: x converted tile by tile into a resident SRAM copy, or left
    // there by the previous qmatmul (claimed first, so it lies at the same SRAM address)
    Node conv = l.fusedProducer(x);
    Long gathered = l.inSram().gatheredInSram(x);
    long[] resident = gathered != null
        ? new long[] {gathered, sxImm == null ? l.inSram().gatheredInSram(q.xScale()) : 0}
        : conv == null ? null : convertResident(conv, k, dt, l.reusesConversion(n));
    // a gated pair's w scales go interleaved as its loads' columns (gate's 128, up's 128, ..),
    // loaded once the pair is known to apply (else the gate's alone)
    GatedPair candidate = l.gatedPair(n);
    long wScaleBuf = !colScale ? 0 : candidate == null
        ? l.preload(q.wScale(), cols * 4, "w scales")
        : l.sram((candidate.split() != null ? 1 : 2) * cols * 4, "w scales (gate's and up's)");
    // per-token scales: all rows' at once (at the symbols' bounds), read at the tile's first row
    long xScaleBuf = !rowScale ? 0 : resident != null ? resident[1]
        : l.preload(q.xScale(), l.sizeAtBound(q.xScale()), "x scales");
    long panelBytes = k * TILE * es;
    long slotBytes = Lowering.align(panelBytes);
    long need = l.sramUsed() + 2 * slotBytes + 2 * (TILE * k * es + TILE * TILE * 4);
    if (need > l.sramLimit()) {
      throw new BackendException(n.describe() + ": needs " + need + " bytes of SRAM for a "
          + TILE + "-row tile with K=" + k + ", the target has " + l.sramLimit());
    }
    // unfused: x resident in SRAM when it fits at its bound and two or more weight panels
    // read it (as the f32 matmul does), or the op before left it there: one HBM read of x, the
    // panels re-read it from SRAM
    long panels = cols / TILE + (cols % TILE > 0 ? 1 : 0);
    long xBound = resident != null ? 0 : l.sizeAtBoundOr(x, -1);
    boolean residentCase = resident == null && (panels >= 2 || l.leftResident(x))
        && cols / TILE > 0 && xBound > 0
        && k * es <= (1 << 17) - 1;
    boolean preloaded = residentCase
        && need + Lowering.align(xBound) <= l.sramLimit();
    // x larger than the SRAM at its bound (a generous ?batch): resident a block of rows at a time
    // (a power of two of 128 or more, leaving room for the ring and the panels that cover the
    // HBM latency: a block as large as it can be, since each streams the weights once), the
    // weights streamed once per block. Not with per-row x scales: the readout finds a tile's
    // scales by its row in the whole of x.
    long room = l.sramLimit() - (l.sramUsed()
        + (MatmulLowering.panelsToCover(l.target(), slotBytes) + 1L) * slotBytes
        + MatmulLowering.ringBytes(l.target()));
    long blockRows = preloaded || !residentCase || rowScale ? 0
        : MatmulLowering.blockRows(room, k * es);
    boolean blocked = blockRows > 0;
    preloaded |= blocked;
    long xAt = preloaded ? l.sram(blocked ? blockRows * k * es : xBound, "x (resident)") : 0;
    if (preloaded) {
      resident = new long[] {xAt, 0};
    }
    // x resident (converted here or preloaded): the f32 matmul's resident-A schedule, so each
    // tile's mma reads x where it lies (no per-tile SRAM copy of x on the DMA queue, whose
    // fixed cost outweighed a bf16/fp8 mma), into a ring of output tiles, with the weights
    // streamed two panels ahead
    MatmulLowering ml = new MatmulLowering(l);
    boolean ring = resident != null
        && (long) MatmulLowering.ring(l.target()) * TILE * TILE
            <= l.target().accWords()
        && l.sramUsed() + 3 * slotBytes + MatmulLowering.ringBytes(l.target())
            <= l.sramLimit();
    if (gathered != null && !ring) {
      // its mmas alone wait for the gather (SohuBackend): a row stream would copy x by DMA
      throw new BackendException(n.describe() + ": x gathered in SRAM, but no room for the "
          + "schedule whose mmas read it there");
    }
    if (conv != null && !ring) {
      // the row stream's mmas wait LOAD, as the conversion's VPU work did: issued while the
      // conversion still runs, an mma could take a load's token meant for it, which then never
      // comes (the x copies that would signal again queue behind the conversion's stores)
      e.emit(new Insn.Barrier(0, 0));
    }
    // the weight panels' slots, one after another: with the ring, enough panels in flight to
    // cover the HBM latency (small panels: K = 1024 is 256 KB, a quarter of its bytes), walked
    // by two registers whatever their number (this panel's slot and the prefetch's, the one
    // before it); without, two swapped buffers
    // few rows: several panels a load (panelsAhead then fits the loads in flight to the SRAM).
    // A gated pair loads the gate's panel and the up's of the same columns together: its
    // result has half the loads' columns
    GatedPair pair = ring && !blocked ? candidate : null;
    // the result's columns: a split pair's weight holds the gate's and then the up's
    long outCols = pair != null && pair.split() != null ? cols / 2 : cols;
    // where the up's weight and w scales lie from the gate's
    long upWeight = pair == null ? 0 : pair.split() != null ? outCols * es
        : l.addr(((QuantOp.QMatMul) pair.up().op()).w()) - l.addr(w);
    if (colScale && candidate != null) {
      if (pair != null) {
        loadPairedScales(wScaleBuf, l.addr(q.wScale()), pair.split() != null
            ? l.addr(q.wScale()) + outCols * 4
            : l.addr(((QuantOp.QMatMul) pair.up().op()).wScale()), outCols);
      } else {
        l.load(wScaleBuf, q.wScale(), cols * 4);
      }
    }
    long nFull = (pair != null ? 2 : 1) * outCols / TILE;
    int wide = pair != null ? 2 : ring ? ml.panelsPerLoad(panelBytes, nFull,
        m.evaluate(l.bounds()), dt, 3, 0, l.summedOnLink(n)) : 1;
    slotBytes = Lowering.align(wide * panelBytes);
    int ahead = ring ? MatmulLowering.panelsAhead(l, slotBytes) : 1;
    long slots = l.sram((ahead + 1) * slotBytes, "w panels");
    // the epilogue (bf16 rounding, the group's sum per load) rides on the ring schedule
    Epilogue ep = ring && pair == null ? l.epilogue(n, blocked) : null;
    Node narrow = pair != null ? pair.narrow() : ep == null ? null : ep.narrow();
    Node sum = ep == null ? null : ep.sum();
    Value result = pair != null ? pair.last().result()
        : narrow == null ? n.result() : narrow.result();
    DType outType = narrow == null ? DType.F32 : DType.BF16;
    long oes = outType.bytes();
    float accScale = rowScale ? 1.0f : sxImm;
    float tailScale = colScale ? 1.0f : swImm;
    int aBase = e.li(resident != null ? resident[0] : l.addr(x));
    int bPtr = e.li(l.addr(w));
    // partial sums reduce-scattered from SRAM (SramCollectives) go there, else to HBM; the plan
    // holds only when this schedule rounds and scatters them itself
    Value partial = l.inSram().partialSums(n);
    if (partial != null && (partial != result || sum == null)) {
      throw new BackendException(n.describe() + ": its partial sums were planned in SRAM, but "
          + "its schedule does not round and scatter them itself");
    }
    Long resultInSram = partial == null ? null : l.inSram().scatteredInSram(partial);
    MemSpace cSpace = resultInSram != null ? MemSpace.SRAM : MemSpace.HBM;
    int cPtr = e.li(resultInSram != null ? resultInSram : l.addr(result));
    int wsPtr = colScale ? e.li(wScaleBuf) : 0;
    int rows = l.dimReg(m);
    int xHbm = preloaded ? e.li(l.addr(x)) : 0;
    int rowsLeft = blocked ? e.copy(rows) : 0;
    int ldc = e.konst(TILE);
    int lda = e.konst(k * es);
    int ldb = e.konst(wide * TILE * es);
    int bSrcStride = e.konst(cols * es);
    // a pair's load: a plane of 128 columns from each weight, side by side in the slot
    MatmulLowering.PanelPlanes planes = pair == null ? MatmulLowering.PanelPlanes.ONE
        : new MatmulLowering.PanelPlanes(2, e.konst(TILE * es), e.konst(upWeight));
    int kRows = e.konst(k);
    long loads = nFull / wide;
    long tail = outCols % TILE;
    int bCur = e.li(slots);
    // the row stream's two ACC tiles (the ring replaces them)
    int accCur = ring ? 0 : e.li(l.accBase());
    int accNext = ring ? 0 : e.li(l.accBase() + (long) TILE * TILE);
    // made before the loop opens, so the streams inside it find them (a constant first made
    // inside the loop is one of its own, remade each time it is entered): the load's output
    // row bytes, the store's plane strides, the result's row stride and the prefetch's clamp
    e.konst(wide * TILE * 4L);
    if (wide > 1) {
      e.konst(TILE * 4L);
      e.konst(TILE * oes);
    }
    e.konst(outCols * oes);
    e.konst(1);
    if (ring) {
      ml.openRing(n);
    }
    List<Lowering.In> ins = List.of(resident != null
        ? new Lowering.In(aBase, k * es, k * es, MemSpace.SRAM, 0)
        : new Lowering.In(aBase, k * es, k * es));
    Tail t = new Tail(rowScale, xScaleBuf, colScale, wsPtr, accScale, tailScale);
    long panelStep = wide * TILE * es;
    int blockLoop = 0;
    if (blocked) {
      blockLoop = ml.beginRowBlocks(rows, rowsLeft, blockRows);
      // each block walks the weights from the first panel, in the first slot
      e.emit(new Insn.Li(bCur, slots, 0, 0));
    }
    // q, k and v (gate and up) of one gathered x: the one before left it where this one puts it
    boolean xLeft = preloaded && !blocked && ring && l.leftResident(x, xAt);
    if (preloaded && !blocked) {
      l.leaveResident(x, xAt);
    }
    if (preloaded && !xLeft) {
      // x (this block of it) into SRAM; without the ring the first panel's load waits for it
      // (the row stream's SRAM copies of x queue behind that load); with the ring the first
      // panel's PANEL, which the first mma awaits, comes after x's arrival anyway (the DMA queue
      // runs in order and every HBM read has the same latency)
      int dst = e.li(xAt);
      int ld = e.dma(MemSpace.SRAM, dst, lda, MemSpace.HBM, xHbm, lda, k * es, rows, 0, 0, 1, 0,
          0);
      e.patchTokens(ld, 0, ring ? 0 : Emitter.TOK_RESIDENT);
      e.free(dst);
    }
    // the bytes of a load's rows in each plane, and how far the next load's columns lie
    long loadBytes = panelStep / planes.count();
    // one panel's columns of the result per pair's load (the activation's), else the load's
    long outStep = wide * TILE * oes / planes.count();
    if (nFull > 0) {
      // the next load's slot and the loads left, set afresh for each block of rows and free
      // again for the tail panel's stream
      int bNext = e.li(slots + ahead * slotBytes);
      int jrem = e.li(loads - 1);
      int p0 = e.dma(MemSpace.SRAM, bCur, ldb, MemSpace.HBM, bPtr, bSrcStride, loadBytes, kRows,
          0, 0, planes.count(), planes.dstStride(), planes.srcStride());
      // with the ring the panels' loads signal PANEL themselves, awaited by an MXU fence
      e.patchTokens(p0, preloaded && !ring ? Emitter.TOK_RESIDENT : 0,
          ring ? Emitter.TOK_PANEL : 0);
      for (int i = 1; ring && i < Math.min(loads, ahead); i++) {
        int slot = e.li(slots + i * slotBytes);
        e.patchTokens(ml.prefetchPanel(slot, ldb, bPtr, bSrcStride, loadBytes, kRows, jrem, i,
            loadBytes, planes), 0, Emitter.TOK_PANEL);
        e.free(slot);
      }
      int jLoop = e.beginLoop(0, loads);
      Runnable prefetch = () -> e.patchTokens(ml.prefetchPanel(bNext, ldb, bPtr, bSrcStride,
          loadBytes, kRows, jrem, ahead, loadBytes, planes), 0, ring ? Emitter.TOK_PANEL : 0);
      stream(ml, ring, rows, ins, lda, cPtr, cSpace, outCols * oes, outType, TILE,
          new MatmulLowering.Panels(bCur, ldb, false, wide, TILE * es), k, dt, mTile, ldc, accCur,
          accNext, t, prefetch, pair);
      if (sum != null) {
        ml.sumPanel(sum, cPtr, rows, wide * TILE, outCols * oes, outType,
            tail == 0 ? jrem : 0);
      }
      if (ring) {
        ml.nextSlot(bCur, slots, slotBytes, ahead + 1);
        ml.nextSlot(bNext, slots, slotBytes, ahead + 1);
      } else {
        e.swap(bCur, bNext);
      }
      e.addImm(bPtr, bPtr, loadBytes);
      e.addImm(cPtr, cPtr, outStep);
      if (colScale) {
        e.addImm(wsPtr, wsPtr, wide * TILE * 4L);
      }
      e.addImm(jrem, jrem, -1);
      e.endLoop(jLoop);
      if (ring) {
        ml.takeEmptyPrefetches(loads, ahead);
      }
      e.free(bNext, jrem);
    }
    if (tail > 0) {
      int pt = e.dma(MemSpace.SRAM, bCur, ldb, MemSpace.HBM, bPtr, bSrcStride, tail * es, kRows,
          0, 0, 1, 0, 0);
      if (ring) {
        e.patchTokens(pt, 0, Emitter.TOK_PANEL);
      }
      stream(ml, ring, rows, ins, lda, cPtr, cSpace, outCols * oes, outType, (int) tail,
          MatmulLowering.Panels.one(bCur, ldb, false), k, dt, mTile, ldc, accCur, accNext, t,
          null, null);
      if (sum != null) {
        ml.sumPanel(sum, cPtr, rows, (int) tail, outCols * oes, outType, -1);
      }
    }
    if (blocked) {
      // next block of rows: x and the result move by the block, the weights and their scales
      // go back to the first panel
      e.addImm(xHbm, xHbm, blockRows * k * es);
      e.addImm(cPtr, cPtr, blockRows * outCols * oes - nFull * TILE * oes);
      e.addImm(bPtr, bPtr, -loads * panelStep);
      if (colScale) {
        e.addImm(wsPtr, wsPtr, -nFull * TILE * 4L);
      }
      ml.endRowBlocks(blockLoop, rows, rowsLeft);
    }
    if (ring) {
      ml.closeRing();
    }
    e.free(aBase, bPtr, cPtr, wsPtr, rows, bCur, accCur, accNext, xHbm, rowsLeft);
    for (Node done : new Node[] {narrow, sum, pair == null ? null : pair.up(),
        pair == null ? null : pair.split(), pair == null ? null : pair.glu(),
        pair == null ? null : pair.activation()}) {
      if (done != null) {
        l.doneInside(done);
      }
    }
  }

  /**
   * The fused conversion of qmatmul's x: streams the f32 rows of the producer's input through
   * SRAM once and converts each tile with the producer's own instructions (a cast's or
   * quantize_linear's {@code cvt}; dynamic_quantize's {@code vred max abs=1},
   * {@code vbini div}, {@code vbini max} into the row scales, then {@code cvt mode=row div=1}) into
   * a resident copy of x in its low-precision type, so the numbers are the unfused ones. The
   * per-row scales are kept in SRAM too, and also stored to the scale tensor's HBM (4 bytes a
   * row); a cast or quantize_linear stores only a dead 4-byte row per row. Returns the SRAM
   * addresses of the converted x and of the row scales (0 when none). The weight panels'
   * DMAs are queued after this stream's last store, which waits for the last tile's
   * conversion, so the mma stream's copies of x read converted rows. With {@code reuse} the
   * previous op left the same conversion resident (see {@link #residency}): the same SRAM
   * is claimed, in the same order, and nothing is converted.
   */
  private long[] convertResident(Node conv, long k, DType to, boolean reuse) {
    Value xf = conv.op().operands().get(0);
    // SmoothQuant's per-channel multiply or a down projection's SwiGLU, fused too: applied to
    // each f32 tile first
    Node pre = l.fusedProducer(xf);
    Lowering.BinaryPlan scaleBy = pre == null ? null : preScale(pre, l.known());
    TransformerOp.SwiGlu glu = pre != null && pre.op() instanceof TransformerOp.SwiGlu g ? g
        : null;
    Value src0 = scaleBy != null ? scaleBy.a() : glu != null ? glu.gate() : xf;
    long vecAt = scaleBy == null ? 0 : reuse ? l.sram(k * 4, "x channel scales")
        : l.preload(scaleBy.b(), k * 4, "x channel scales");
    boolean dyn = conv.op() instanceof QuantOp.DynamicQuantize;
    int es = to.bytes();
    long inRow = k * 4;
    long rowsAtBound = l.sizeAtBound(xf) / inRow;
    long qAt = l.sram(rowsAtBound * k * es, "x converted (resident)");
    long sAt = dyn ? l.sram(rowsAtBound * 4, "x row scales (resident)") : 0;
    if (reuse) {
      return new long[] {qAt, sAt};
    }
    float tensorScale = 1.0f;
    boolean div = false;
    if (conv.op() instanceof QuantOp.QuantizeLinear ql) {
      tensorScale = scalar(ql.scale());
      div = true;
    }
    float qmax = dyn ? QuantOp.maxMagnitude(((QuantOp.DynamicQuantize) conv.op()).dtype()) : 0;
    Lowering.View v = Lowering.view(xf.type());
    int rows = l.dimReg(v.rows());
    int cols = e.konst(k);
    int inRs = e.konst(inRow);
    int qRs = e.konst(k * es);
    int four = e.konst(4);
    int one = e.konst(1);
    // x as the heads of an attention's output, its transpose folded here (foldedTransposes):
    // each row of x is H blocks of D, block h from head h's rows
    Node heads = pre == null ? l.foldedHeads(xf) : null;
    TensorType ht = heads == null ? null : heads.op().operands().get(0).type();
    int src = e.li(l.addr(heads == null ? src0 : heads.op().operands().get(0)));
    int headStride = heads == null ? 0 : l.dimReg(ht.dim(2).times(Dim.of(ht.dim(3).value() * 4)));
    int up = glu == null ? 0 : e.li(l.addr(glu.up()));
    int vec = scaleBy == null ? 0 : e.li(vecAt);
    int qBase = e.li(qAt);
    int sBase = dyn ? e.li(sAt) : 0;
    int outHbm = e.li(l.addr(dyn ? conv.results().get(1) : conv.result()));
    float s = tensorScale;
    boolean d = div;
    List<Lowering.In> ins = heads != null ? List.of(new Lowering.In(src,
        ht.dim(3).value() * 4, inRow, MemSpace.HBM, 0, 0, new Lowering.Blocks(
            (int) ht.dim(1).value(), ht.dim(3).value() * 4, headStride)))
        : glu == null ? List.of(new Lowering.In(src, inRow, inRow))
        : List.of(new Lowering.In(src, inRow, inRow), new Lowering.In(up, inRow, inRow));
    l.rowStream(rows, convertTile(ins.size() * inRow), ins, outHbm, 4, 4,
        (in, out, r, st) -> {
          int qa = e.alloc();
          e.mulImm(qa, st, k * es);
          e.add(qa, qa, qBase);
          if (scaleBy != null) {
            e.vbin(BinOp.MUL, in[0], inRs, in[0], inRs, vec, 0, r, cols, Bcast.ROW);
          }
          if (glu != null) {
            e.emit(new Insn.Vglu(UnaryFn.SILU, in[0], 0, inRs, in[0], 0, inRs, in[1], 0, inRs,
                r, cols, DType.F32, 0, 0));
          }
          if (dyn) {
            int sa = e.alloc();
            e.mulImm(sa, st, 4);
            e.add(sa, sa, sBase);
            quantizeRows(qa, qRs, to, out, four, in[0], inRs, r, cols, qmax, one);
            // the resident copy of the scales, for the mma stream's cvt mode=row (x * 1 exact)
            e.vbini(BinOp.MUL, sa, four, out, four, 1.0f, r, one, false);
            e.free(sa);
          } else {
            e.emit(new Insn.Cvt(qa, 0, qRs, to, in[0], 0, inRs, DType.F32, r, cols,
                ScaleMode.TENSOR, s, 0, 0, d, 0, 0));
          }
          e.free(qa);
        }, false, new int[0], null, true, null);
    e.free(rows, src, up, vec, qBase, sBase, outHbm, headStride);
    // this stream's shared constants are not used after it: release them for the mma stream
    // (qmatmul calls this before it makes any constant of its own)
    e.endOp();
    return new long[] {qAt, sAt};
  }

  /** How an ACC tile becomes the f32 result: accrd's scale, then the scale conversions. */
  private record Tail(boolean rowScale, long sxBuf, boolean colScale, int wsPtr, float accScale,
      float tailScale) {}

  /**
   * One panel's row tiles: with {@code ring}, {@link MatmulLowering#streamResident} (x resident,
   * read by the mma in place); else a row stream of x's tiles through two ACC tiles.
   */
  private void stream(MatmulLowering ml, boolean ring, int rows, List<Lowering.In> ins, int lda,
      int cPtr, MemSpace cSpace, long outHbmStride, DType outType, int nt,
      MatmulLowering.Panels b, long k, DType dt, int mTile, int ldc, int accCur, int accNext,
      Tail t, Runnable afterPrologue, GatedPair pair) {
    int ntReg = e.konst(nt);
    // the output tiles' row bytes: the load's columns in f32
    int outRowBytes = e.konst(b.count() * nt * 4L);
    // K above the 13-bit immediate goes in a register (qmatmul made that constant before its
    // loops, so this is the same register)
    int kReg = k > 8191 ? e.konst(k) : 0;
    int kImm = k > 8191 ? 0 : (int) k;
    MatmulLowering.Readout readout = pair == null
        ? readout(ml, t, ntReg, outRowBytes, ldc, dt == DType.I8, outType, b.count())
        : t.accScale() == 1.0f && t.tailScale() == 1.0f
        ? accGluReadout(t, ntReg, outRowBytes, nt, ldc, dt == DType.I8, outType, pair.fn())
        : gatedReadout(readout(ml, t, ntReg, outRowBytes, ldc, dt == DType.I8, DType.F32, 2),
            ntReg, outRowBytes, nt, outType, pair.fn());
    if (ring) {
      ml.streamResident(rows, ins.get(0).hbmBase(), lda, k * dt.bytes(), cPtr, cSpace,
          outHbmStride, outType.bytes(), nt, outRowBytes, b, kReg, kImm, dt, mTile, ldc,
          t.rowScale(), readout, afterPrologue);
      return;
    }
    if (outType != DType.F32) {
      throw new IllegalStateException("a narrowed result only on the ring schedule");
    }
    l.rowStream(rows, TILE, ins, cPtr, nt * 4L, outHbmStride, (in, out, r, s) -> {
      int mm = e.emit(new Insn.Mma(accCur, 0, ldc, in[0], 0, lda, b.sram(), 0, b.ldb(), mTile, nt,
          kReg, kImm, dt, false, false, false, 0, 0));
      e.patchTokens(mm, TOK_LOAD, TOK_MXU);
      e.patchTokens(readout.emit(out, accCur, r, s, 0), 0, TOK_STORE);
    }, true, new int[] {accCur, accNext}, afterPrologue, t.rowScale(), null);
  }

  /**
   * The gate's and the up's per-channel w scales ({@code cols} each, at HBM {@code gate} and
   * {@code up}) into SRAM at {@code at} as the pair's loads meet them: 128 of the gate's, the
   * up's same 128, and so on (one DMA, a plane a weight).
   */
  private void loadPairedScales(long at, long gate, long up, long cols) {
    int dst = e.li(at);
    int src = e.li(gate);
    int chunks = e.li(cols / TILE);
    int dstRow = e.li(2 * TILE * 4L);
    int srcRow = e.li(TILE * 4L);
    int srcPlane = e.li(up - gate);
    e.dma(MemSpace.SRAM, dst, dstRow, MemSpace.HBM, src, srcRow, TILE * 4L, chunks, 0, 0, 2,
        srcRow, srcPlane);
    e.free(dst, src, chunks, dstRow, srcRow, srcPlane);
  }

  /**
   * A gated pair's readout in one {@code accglu} from the gate's and the up's ACC tiles, each
   * dequantized by its per-row x scales and per-column w scales where it has them, into the
   * gate's output columns in {@code outType}: the numbers of {@link #gatedReadout} in a quarter
   * of the VPU instructions (no tile read out alone, no cast after). Only the first sub-panel is
   * stored.
   */
  private MatmulLowering.Readout accGluReadout(Tail t, int ntReg, int rowBytes, int nt, int ldc,
      boolean integer, DType outType, UnaryFn fn) {
    return new MatmulLowering.Readout() {
      /** The gate's ACC address, from its sub-panel's turn to the up's. */
      private int gateAcc;

      @Override
      public int emit(int out, int acc, int rows, int rowStart, int sub) {
        if (sub == 0) {
          // nothing to read yet (the caller patches only the last sub-panel's instruction)
          gateAcc = e.copy(acc);
          return -1;
        }
        int rowScales = 0;
        if (t.rowScale()) {
          rowScales = e.alloc();
          e.mulImm(rowScales, rowStart, 4);
          e.addImm(rowScales, rowScales, t.sxBuf());
        }
        // the result goes to the gate's columns, nt before out (streamResident walks out per
        // sub-panel); the pair's w scales are the gate's 128 then the up's (loadPairedScales)
        int last = e.emit(new Insn.Accglu(fn, out, -nt * 4, rowBytes, gateAcc, 0, acc, 0, ldc,
            rows, ntReg, outType, rowScales, t.wsPtr(), integer, 0, 0));
        e.patchTokens(last, TOK_MXU, 0);
        e.free(rowScales, gateAcc);
        return last;
      }

      @Override
      public int storedSubPanels(int count) {
        return 1;
      }
    };
  }

  /**
   * A gated pair's readout where a per-tensor scale remains: the gate's and the up's tiles read
   * out in f32 side by side ({@code both}), then {@code vglu} ({@code fn} of the gate times the
   * up, in f32) into the gate's columns and, for a result in bf16, the cast's {@code cvt} in
   * place: the numbers of the unit (a SwiGLU's vglu; a GeGLU's gelu, then mul) and the cast
   * lowered after the two qmatmuls. Only that first sub-panel is stored.
   */
  private MatmulLowering.Readout gatedReadout(MatmulLowering.Readout both, int ntReg,
      int rowBytes, int nt, DType outType, UnaryFn fn) {
    return new MatmulLowering.Readout() {
      @Override
      public int emit(int out, int acc, int rows, int rowStart, int sub) {
        int last = both.emit(out, acc, rows, rowStart, sub);
        if (sub == 1) {
          // out is at the up's columns now (streamResident walks it per sub-panel)
          int gate = e.alloc();
          e.addImm(gate, out, -nt * 4L);
          last = e.emit(new Insn.Vglu(fn, gate, 0, rowBytes, gate, 0, rowBytes, out, 0,
              rowBytes, rows, ntReg, DType.F32, 0, 0));
          if (outType != DType.F32) {
            last = e.emit(new Insn.Cvt(gate, 0, rowBytes, outType, gate, 0, rowBytes, DType.F32,
                rows, ntReg, ScaleMode.TENSOR, 1.0f, 0, 0, false, 0, 0));
          }
          e.free(gate);
        }
        return last;
      }

      @Override
      public int storedSubPanels(int count) {
        return 1;
      }
    };
  }

  /**
   * An ACC tile to the result: {@code accrd} (waits MXU) times the tile's rows' x scales
   * ({@code bias_mul=1}, the scales a per-row bias), then {@code cvt mode=col} or
   * {@code mode=tensor} by the w scales, each in f32 but the last, which rounds to
   * {@code outType} (f32, or bf16 for a fused narrowing: one more rounding of the f32 value, as
   * the cast does), in place at the tile's f32 row stride. Per-row x scales with per-column w
   * scales (fp8 and int8 with dynamic per-token x) take one {@code accdq} instead, which gives
   * the numbers of that accrd and cvt in half the VPU work.
   */
  private MatmulLowering.Readout readout(MatmulLowering ml, Tail t, int ntReg, int ntBytes,
      int ldc, boolean integer, DType outType, int subs) {
    boolean scaleCols = t.colScale() || t.tailScale() != 1.0f;
    return (out, acc, r, s, sub) -> {
      // per-row x scales multiply in the readout itself (a per-row "bias" that multiplies)
      int sv = 0;
      if (t.rowScale()) {
        sv = e.alloc();
        e.mulImm(sv, s, 4);
        e.addImm(sv, sv, t.sxBuf()); // the scales' SRAM address, an immediate
      }
      boolean both = t.rowScale() && t.colScale();
      if (both) {
        // per-token x scales and per-channel w scales in one pass (the numbers of the two below)
        ml.stepSubPanel(t.wsPtr(), sub, subs, false);
      }
      int last = e.emit(both
          ? new Insn.Accdq(out, 0, ntBytes, acc, 0, ldc, r, ntReg, outType, sv, t.wsPtr(),
              integer, t.accScale(), 0, 0)
          : new Insn.Accrd(out, 0, ntBytes, acc, 0, ldc, r, ntReg,
              scaleCols ? DType.F32 : outType, integer, t.accScale(),
              t.rowScale() ? Bcast.COL : Bcast.NONE, sv, 0, UnaryFn.NONE, t.rowScale(), 0, 0));
      e.free(sv);
      if (sub == 0) {
        e.patchTokens(last, TOK_MXU, 0);
      }
      if (both) {
        ml.stepSubPanel(t.wsPtr(), sub, subs, true);
      } else if (t.colScale()) {
        // the sub-panel's columns of the w scales
        ml.stepSubPanel(t.wsPtr(), sub, subs, false);
        last = e.emit(new Insn.Cvt(out, 0, ntBytes, outType, out, 0, ntBytes, DType.F32, r,
            ntReg, ScaleMode.COL, 1.0f, t.wsPtr(), 0, false, 0, 0));
        ml.stepSubPanel(t.wsPtr(), sub, subs, true);
      } else if (t.tailScale() != 1.0f) {
        last = e.emit(new Insn.Cvt(out, 0, ntBytes, outType, out, 0, ntBytes, DType.F32, r,
            ntReg, ScaleMode.TENSOR, t.tailScale(), 0, 0, false, 0, 0));
      }
      return last;
    };
  }
}
