package dev.sohuc.backend;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.Shapes;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnTable;
import dev.sohuc.isa.MemSpace;
import java.util.List;

/**
 * {@code all_reduce} to the chip's {@code allreduce} on the LINK engine, in place on the
 * operand's HBM buffer (the planner aliases the result to it): one instruction whose element
 * count comes from the symbolic dims at run time, between barriers; or, when the operand is a
 * matmul's result (QuantLowering.Epilogue), one per finished weight panel inside the matmul's
 * loop ({@link #sumPanel}), and the all_reduce's own code is only the barriers that wait for
 * the link. {@code reduce_scatter} and {@code all_gather} go to {@code reducescatter} and
 * {@code allgather} from the operand's buffer to the result's, on the link while the next ops
 * run ({@link #block}).
 */
final class CollectiveLowering {
  private CollectiveLowering() {}

  static String unsupportedReason(Node n, Function fn) {
    TransformerOp.AllReduce a = (TransformerOp.AllReduce) n.op();
    ElementType t = a.x().type().elementType();
    if (t != ElementType.F32 && t != ElementType.BF16) {
      return "all_reduce of " + t;
    }
    if (a.chips() > 64) {
      return "all_reduce over more than 64 chips";
    }
    List<Node> users = fn.users().getOrDefault(a.x(), List.of());
    java.util.Set<Value> outputs = fn.outputValues();
    boolean output = outputs.contains(a.x()) || outputs.contains(n.result());
    if (users.size() != 1 || output || a.x().producer() == null
        || a.x().producer().op() instanceof dev.sohuc.ir.op.DataOp.Reshape
        || a.x().producer().op() instanceof dev.sohuc.ir.op.SourceOp) {
      return "all_reduce in place needs an operand computed by an op and read only by it";
    }
    return null;
  }

  /**
   * Sums the panel just stored ({@code nt} columns from {@code cPtr}, in every one of
   * {@code rows} rows {@code rowStride} bytes apart) over the group on the LINK engine, inside a
   * matmul's panel loop (QuantLowering.Epilogue): a DMA fence queued after the panel's stores
   * signals LINK once they are in HBM, and the allreduce waits for it; the next panel's work
   * goes on meanwhile. Both are the all_reduce's work in the profile. {@code urgent} (a register,
   * 0 for r0: never) is nonzero for the last panel, whose sum the next op waits for: the link
   * may finish it in one step.
   */
  static void sumPanel(Emitter e, Node sum, int cPtr, int rows, int nt, long rowStride,
      DType dtype, int urgent) {
    int chips = (int) ((TransformerOp.AllReduce) sum.op()).chips();
    e.emitFor(sum, Emitter.hbmFence(0, Emitter.TOK_LINK));
    e.emitFor(sum, new Insn.Allreduce(MemSpace.HBM, cPtr, 0, 0, nt, dtype, chips, rows, 0,
        e.konst(rowStride), urgent, Emitter.TOK_LINK, 0));
  }

  /**
   * Reduce-scatters the panel just stored (as {@link #sumPanel}: {@code nt} columns from
   * {@code cPtr}, {@code rows} rows {@code rowStride} bytes apart) over the group on the LINK
   * engine, inside the matmul's panel loop: chip rank keeps the sums of its block of the panel's
   * rows, at the same columns of the scatter's result ({@code delta} bytes from the matmul's
   * result, with the same row stride), both in HBM or both in SRAM ({@code space}). The rows
   * divide by the chips (the types say so), a power of two ({@link #scattersPanels}).
   */
  static void scatterPanel(Emitter e, Node scatter, int cPtr, int rows, int nt, long rowStride,
      DType dtype, long delta, MemSpace space) {
    TransformerOp.ReduceScatter r = (TransformerOp.ReduceScatter) scatter.op();
    int blockRows = e.alloc();
    e.shri(blockRows, rows, Long.numberOfTrailingZeros(r.chips()));
    int dst = e.alloc();
    e.addImm(dst, cPtr, delta);
    int stride = e.konst(rowStride);
    e.emitFor(scatter, storesDone(space));
    e.emitFor(scatter, new Insn.Reducescatter(space, dst, 0, cPtr, 0, 0, nt, dtype,
        (int) r.chips(), (int) r.rank(), blockRows, 0, stride, stride, Emitter.TOK_LINK, 0));
    e.free(blockRows, dst);
  }

  /**
   * Whether the matmul result {@code x}'s reduce_scatter {@code n} can go panel by panel inside
   * the matmul: a group of a power of two (the block rows are a shift of the rows), split
   * along the rows of a [1, .., rows, cols] result.
   */
  static boolean scattersPanels(Node n) {
    if (!(n.op() instanceof TransformerOp.ReduceScatter r) || blockUnsupportedReason(n) != null
        || Long.bitCount(r.chips()) != 1) {
      return false;
    }
    int rank = r.x().type().rank();
    return rank >= 2 && group(n).axis() == rank - 2;
  }

  /**
   * {@code rd} = 1 while {@code left} (panels still to come after this one) is 0, else 0: the
   * last panel's sum is urgent. {@code one} holds 1.
   */
  static void lastPanel(Emitter e, int rd, int left, int one) {
    e.min(rd, left, one);
    e.sub(rd, one, rd);
  }

  static void allreduce(Emitter e, Lowering low, TransformerOp.AllReduce a, long hbmAddress) {
    Value x = a.x();
    int count = elements(e, low, x.type().dims());
    int base = e.li(hbmAddress);
    DType t = x.type().elementType() == ElementType.BF16 ? DType.BF16 : DType.F32;
    // alone between barriers: its latency always shows
    e.emit(new Insn.Allreduce(MemSpace.HBM, base, 0, count, 0, t, (int) a.chips(), 0, 1, 0,
        e.konst(1), 0, 0));
    e.free(count, base);
  }

  /** A register holding the product of {@code dims} at run time. */
  private static int elements(Emitter e, Lowering low, List<Dim> dims) {
    int count = e.li(1);
    for (Dim d : dims) {
      int r = low.dimReg(d);
      e.mul(count, count, r);
      e.free(r);
    }
    return count;
  }

  /** Why a reduce_scatter or all_gather cannot be lowered, or null. */
  static String blockUnsupportedReason(Node n) {
    Value x = n.op().operands().get(0);
    ElementType t = x.type().elementType();
    // the types the instruction moves are the ISA table's (u8 shares i8's, not its meaning)
    String insn = n.op() instanceof TransformerOp.ReduceScatter ? "reducescatter" : "allgather";
    if (t == ElementType.U8 || !InsnTable.byMnemonic(insn).field("dtype").allowed()
        .contains(SymbolTypes.of(t))) {
      return n.op().mnemonic() + " of " + t;
    }
    Group g = group(n);
    if (g.chips() > 64) {
      return n.op().mnemonic() + " over more than 64 chips";
    }
    // chip c's block is one contiguous run of bytes only when nothing is outside the axis (or
    // one per row, gathered row by row, along the last axis)
    for (int a = 0; a < g.axis() && !gathersColumns(n); a++) {
      if (!x.type().dim(a).is(1)) {
        return n.op().mnemonic() + " along axis " + g.axis() + " of " + x.type()
            + ": the dims before the axis must be 1, so that each chip's block is contiguous";
      }
    }
    return null;
  }

  /** A block collective's group, this chip's place in it, and its axis from the front. */
  private record Group(long chips, long rank, int axis) {}

  private static Group group(Node n) {
    return switch (n.op()) {
      case TransformerOp.ReduceScatter r -> new Group(r.chips(), r.rank(),
          Shapes.axis(r.axis(), r.x().type().rank(), "axis"));
      case TransformerOp.AllGather g -> new Group(g.chips(), g.rank(),
          Shapes.axis(g.axis(), g.x().type().rank(), "axis"));
      default -> throw new IllegalArgumentException(n.describe() + " is no block collective");
    };
  }

  /**
   * A reduce_scatter or all_gather from {@code src} to {@code dst} (HBM addresses), left
   * running on the link: a DMA fence starts it once the operand's stores are in HBM (every DMA
   * queued before has completed), and a LINK fence after it signals {@link Emitter#TOK_SUMMED}
   * in order with the other sums, for the first op that reads the result to wait on.
   */
  static void block(Emitter e, Lowering low, Node n, long src, long dst) {
    if (gathersColumns(n)) {
      gatherColumns(e, low, n, src, dst);
      return;
    }
    int count = blockElements(e, low, n);
    emitBlock(e, n, MemSpace.HBM, count, e.li(src), e.li(dst));
  }

  /** An all_gather along the last axis of a value of more than one row. */
  private static boolean gathersColumns(Node n) {
    if (!(n.op() instanceof TransformerOp.AllGather)) {
      return false;
    }
    TensorType t = n.op().operands().get(0).type();
    return group(n).axis() == t.rank() - 1
        && !t.dims().subList(0, t.rank() - 1).stream().allMatch(d -> d.is(1));
  }

  /**
   * An all_gather of columns ([.., rows, cols] to [.., rows, chips x cols]: the
   * vocabulary-parallel logits) from {@code src} to {@code dst} in HBM. One allgather of one row
   * places chip c's block c block-widths into its destination when the destination's row
   * stride is a block's bytes; one such allgather per row, queued behind a LINK fence that
   * waits for the operand's stores (and takes their token even when there are no rows).
   */
  private static void gatherColumns(Emitter e, Lowering low, Node n, long src, long dst) {
    Group g = group(n);
    List<Dim> dims = n.op().operands().get(0).type().dims();
    DType t = QuantLowering.dtype(n.result().type().elementType());
    int rows = elements(e, low, dims.subList(0, dims.size() - 1));
    int cols = elements(e, low, dims.subList(dims.size() - 1, dims.size()));
    int blockBytes = e.alloc();
    e.mulImm(blockBytes, cols, t.bytes());
    int rowBytes = e.alloc();
    e.mulImm(rowBytes, blockBytes, g.chips());
    int from = e.li(src);
    int to = e.li(dst);
    e.emit(Emitter.hbmFence(0, Emitter.TOK_LINK));
    e.emit(Emitter.linkFence((int) g.chips(), Emitter.TOK_LINK, 0));
    int loop = e.beginLoop(rows, 0);
    e.emit(new Insn.Allgather(MemSpace.HBM, to, 0, from, 0, cols, 0, t, (int) g.chips(),
        (int) g.rank(), 0, 1, 0, blockBytes, 0, 0));
    e.add(from, from, blockBytes);
    e.add(to, to, rowBytes);
    e.endLoop(loop);
    e.emit(Emitter.linkFence((int) g.chips(), Emitter.TOK_SUMMED));
    e.free(rows, cols, blockBytes, rowBytes, from, to);
  }

  /**
   * An all_gather within SRAM (SramCollectives): the norm before it wrote this chip's block in its
   * place in the {@code region}, and the gather fills in the others' around it. The DMA fence
   * that starts it waits for the norm's last store, which follows its last write.
   */
  static void gatherInSram(Emitter e, Lowering low, Node n, long region) {
    int count = blockElements(e, low, n);
    int from = e.alloc();
    e.mulImm(from, count, group(n).rank() * QuantLowering.dtype(
        n.result().type().elementType()).bytes());
    e.addImm(from, from, region);
    emitBlock(e, n, MemSpace.SRAM, count, from, e.li(region));
  }

  /** The elements of one chip's block, in a register: the scatter's result, the gather's operand. */
  private static int blockElements(Emitter e, Lowering low, Node n) {
    Value blockValue = n.op() instanceof TransformerOp.ReduceScatter ? n.result()
        : n.op().operands().get(0);
    return elements(e, low, blockValue.type().dims());
  }

  private static void emitBlock(Emitter e, Node n, MemSpace space, int count, int from, int to) {
    Group g = group(n);
    DType t = QuantLowering.dtype(n.result().type().elementType());
    e.emit(storesDone(space));
    e.emit(n.op() instanceof TransformerOp.ReduceScatter
        ? new Insn.Reducescatter(space, to, 0, from, 0, count, 0, t, (int) g.chips(),
            (int) g.rank(), 0, 1, 0, 0, Emitter.TOK_LINK, 0)
        : new Insn.Allgather(space, to, 0, from, 0, count, 0, t, (int) g.chips(),
            (int) g.rank(), 0, 1, 0, 0, Emitter.TOK_LINK, 0));
    e.emit(Emitter.linkFence((int) g.chips(), Emitter.TOK_SUMMED));
    e.free(count, from, to);
  }

  /**
   * The DMA fence after the stores a collective in {@code space} reads, signalling LINK once
   * they have landed: with HBM's latency, or with SRAM's where they all went to SRAM (a fence
   * completes with its own memory's latency, after every earlier DMA of that memory).
   */
  private static Insn storesDone(MemSpace space) {
    return space == MemSpace.SRAM ? Emitter.fence(dev.sohuc.isa.Engine.DMA, 0, Emitter.TOK_LINK)
        : Emitter.hbmFence(0, Emitter.TOK_LINK);
  }
}
