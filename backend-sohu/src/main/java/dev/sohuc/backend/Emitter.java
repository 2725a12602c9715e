package dev.sohuc.backend;

import dev.sohuc.isa.Bcast;
import dev.sohuc.isa.BinOp;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.MemSpace;
import dev.sohuc.isa.RedOp;
import dev.sohuc.isa.ScaleMode;
import dev.sohuc.isa.UnaryFn;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The instruction buffer: appends instructions with the IR op they belong to, allocates scalar
 * registers, opens and closes hardware loops, and patches dependency tokens onto instructions
 * already emitted. Register r0 reads as zero and is never allocated.
 */
final class Emitter {
  /** Dependency tokens, each a counting semaphore between two engines (see the lowering notes). */
  static final int TOK_LOAD = 1;   // DMA -> compute: a tile (and everything before it in the DMA queue) is in SRAM
  static final int TOK_STORE = 2;  // compute -> DMA: a result tile is ready to store
  static final int TOK_MXU = 3;    // MXU -> VPU: an ACC tile is complete
  static final int TOK_VPU = 4;    // VPU -> MXU: an SRAM operand tile (softmax probabilities) is ready
  static final int TOK_RESIDENT = 5; // DMA -> DMA: a whole operand preloaded into SRAM has arrived
  // op handoff (SohuBackend): engine X has run every instruction of the previous op (the
  // VPU's token to the DMA and the MXU: the MXU's as well)
  static final int TOK_VPU_TO_DMA = 6;
  static final int TOK_VPU_TO_MXU = 7;
  static final int TOK_MXU_TO_VPU = 9;
  static final int TOK_DMA_TO_VPU = 10;
  static final int TOK_DMA_TO_DMA = 12;
  static final int TOK_FREE = 13;  // DMA -> MXU: a stored tile's ACC and output buffers are free
  static final int TOK_LINK = 14;  // DMA -> LINK: a finished block of a result is in HBM
  // DMA -> MXU: a weight panel of the resident-operand ring is in SRAM. Not LOAD: a conversion
  // fused into the same op streams on LOAD to the VPU, and an MXU waiting LOAD could take a
  // token meant for it (a deadlock: the VPU then waits for a load that is queued behind a store
  // waiting for the VPU)
  static final int TOK_PANEL = 15;
  // LINK -> DMA: the sums on the link of a matmul's result are done (SohuBackend: the all_reduce
  // summed inside its matmul runs on past the matmul; its first reader waits for this)
  static final int TOK_SUMMED = 16;
  // MXU -> DMA: a decode attention slot's K and V have been read (its last P V is done), so the
  // next K and V may load into it (AttentionLowering's pipelined schedule)
  static final int TOK_SLOT = 17;

  static final int MAX_LOOP_DEPTH = 4;

  private final List<Insn> code = new ArrayList<>();
  private final List<String> debugOp = new ArrayList<>();
  private final List<String> debugLoc = new ArrayList<>();
  private final BitSet used = new BitSet(32);
  private final Deque<Integer> openLoops = new ArrayDeque<>();
  private final Map<Long, Integer> constants = new HashMap<>();
  /**
   * Per open loop, innermost first: the constants made in its body so far, whose registers are
   * freed when it closes.
   */
  private final Deque<Map<Long, Integer>> loopConstants = new ArrayDeque<>();
  private String curOp = "prologue";
  private String curLoc = "";

  Emitter() {
    used.set(0);
  }

  /**
   * An empty buffer for code that runs after this one's in another control stream (fork): it
   * starts with this one's registers taken (a stream starts with a copy of them).
   */
  Emitter continuing() {
    Emitter next = new Emitter();
    next.used.or(used);
    return next;
  }

  /** Appends {@code other}'s code and debug entries (loops are relative, so it moves as is). */
  void append(Emitter other) {
    code.addAll(other.code);
    debugOp.addAll(other.debugOp);
    debugLoc.addAll(other.debugLoc);
  }

  List<Insn> code() {
    return code;
  }

  List<String> debugOps() {
    return debugOp;
  }

  List<String> debugLocations() {
    return debugLoc;
  }

  int pc() {
    return code.size();
  }

  void setOp(String irOp, String location) {
    curOp = irOp;
    curLoc = location;
  }

  int emit(Insn insn) {
    // a field out of its range fails here, where the op it was lowering is known
    try {
      InsnCodec.encode(insn);
    } catch (dev.sohuc.isa.IsaException ex) {
      throw new BackendException(ex.getMessage() + " while lowering " + curOp);
    }
    code.add(insn);
    debugOp.add(curOp);
    debugLoc.add(curLoc);
    return code.size() - 1;
  }

  /** The debug name of an IR op: its mnemonic and its first result ({@code qmatmul %y}). */
  static String opName(dev.sohuc.ir.Node n) {
    return n.op().mnemonic() + " %" + (n.results().isEmpty() ? "" : n.results().get(0).name());
  }

  /**
   * Emits {@code insn} as the work of {@code n}, an op whose code lies inside the current op's
   * (a fused all_reduce's collectives in its qmatmul's panel loop), so the profile charges it
   * there.
   */
  int emitFor(dev.sohuc.ir.Node n, Insn insn) {
    String op = curOp;
    String loc = curLoc;
    setOp(opName(n), n.location().text());
    int pc = emit(insn);
    setOp(op, loc);
    return pc;
  }

  // ---- registers

  int alloc() {
    int r = used.nextClearBit(1);
    if (r >= 32) {
      throw new BackendException("out of scalar registers while lowering " + curOp
          + " (the lowering needs fewer live registers)");
    }
    used.set(r);
    return r;
  }

  void free(int... regs) {
    for (int r : regs) {
      if (r > 0) {
        used.clear(r);
      }
    }
  }

  /** Marks a register as permanently taken (symbol values). */
  void reserve(int r) {
    used.set(r);
  }

  /** A register holding {@code value}, shared within the current op; released by {@link #endOp}. */
  int konst(long value) {
    if (value == 0) {
      return 0;
    }
    Integer r = constants.get(value);
    for (Map<Long, Integer> level : loopConstants) {
      if (r == null) {
        r = level.get(value);
      }
    }
    if (r == null && !openLoops.isEmpty()) {
      // made inside a loop: the li runs per iteration, so it is shared only by what follows it
      // in that loop's body (nested loops included) and freed when the loop closes (constants
      // made before the first loop opened are valid everywhere)
      int t = alloc();
      emit(new Insn.Li(t, value, 0, 0));
      loopConstants.peek().put(value, t);
      return t;
    }
    if (r == null) {
      r = alloc();
      emit(new Insn.Li(r, value, 0, 0));
      constants.put(value, r);
    }
    return r;
  }

  /** A fresh register holding {@code value}, owned by the caller. */
  int li(long value) {
    int r = alloc();
    emit(new Insn.Li(r, value, 0, 0));
    return r;
  }

  int copy(int src) {
    int r = alloc();
    emit(new Insn.Add(r, src, 0, 0, 0));
    return r;
  }

  /**
   * Releases the op's shared constants (those made inside a loop were released when it closed:
   * a caller keeps a constant for use after a loop by making it before the loop opens).
   */
  void endOp() {
    for (int r : constants.values()) {
      used.clear(r);
    }
    constants.clear();
  }

  int liveRegisters() {
    return used.cardinality() - 1;
  }

  // ---- loops

  /** Opens {@code loop countReg+countImm}; returns the loop's pc for {@link #endLoop}. */
  int beginLoop(int countReg, long countImm) {
    if (openLoops.size() >= MAX_LOOP_DEPTH) {
      throw new BackendException("loop nest deeper than " + MAX_LOOP_DEPTH + " while lowering "
          + curOp);
    }
    int pc = emit(new Insn.Loop(countReg, countImm, 1, 0, 0));
    openLoops.push(pc);
    loopConstants.push(new HashMap<>());
    return pc;
  }

  void endLoop(int loopPc) {
    int top = openLoops.pop();
    for (int r : loopConstants.pop().values()) {
      used.clear(r);
    }
    if (top != loopPc) {
      throw new IllegalStateException("loops closed out of order");
    }
    int body = pc() - loopPc - 1;
    if (body < 1) {
      emit(new Insn.Nop(0, 0));
      body = 1;
    }
    Insn.Loop l = (Insn.Loop) code.get(loopPc);
    code.set(loopPc, new Insn.Loop(l.countReg(), l.countImm(), body, 0, 0));
  }

  // ---- tokens

  /** Replaces the wait (when {@code wait > 0}) and signal tokens of an emitted instruction. */
  void patchTokens(int pc, int wait, int signal) {
    Insn insn = code.get(pc);
    long[] raw = InsnCodec.rawFields(insn);
    if (wait > 0) {
      if (raw[raw.length - 2] != 0) {
        throw new IllegalStateException("instruction " + pc + " already waits");
      }
      raw[raw.length - 2] = wait;
    }
    if (signal > 0) {
      if (raw[raw.length - 1] != 0) {
        throw new IllegalStateException("instruction " + pc + " already signals");
      }
      raw[raw.length - 1] = signal;
    }
    code.set(pc, InsnCodec.fromRaw(insn.def(), raw));
  }

  /**
   * Makes the instructions {@code [from, pc())} wait on {@code wait} before the first starts and
   * signal {@code signal} when the last completes. They must all run on one engine (in order),
   * outside loops; otherwise fences carry the tokens.
   */
  void bracket(int from, int wait, int signal, dev.sohuc.isa.Engine engine) {
    boolean simple = pc() > from;
    for (int i = from; i < pc() && simple; i++) {
      simple = code.get(i).engine() == engine;
    }
    if (simple && (wait == 0 || code.get(from).waitTok() == 0)
        && (signal == 0 || code.get(pc() - 1).signalTok() == 0)) {
      if (wait > 0) {
        patchTokens(from, wait, 0);
      }
      if (signal > 0) {
        patchTokens(pc() - 1, 0, signal);
      }
      return;
    }
    if (wait > 0) {
      code.add(from, fence(engine, wait, 0));
      debugOp.add(from, curOp);
      debugLoc.add(from, curLoc);
    }
    if (signal > 0) {
      emit(fence(engine, 0, signal));
    }
  }

  /** An instruction of {@code engine} that does nothing but wait and/or signal. */
  static Insn fence(dev.sohuc.isa.Engine engine, int wait, int signal) {
    return switch (engine) {
      case DMA -> new Insn.Dma(MemSpace.SRAM, 0, 0, 0, MemSpace.SRAM, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
          wait, signal);
      case MXU -> new Insn.Mma(0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, DType.F32, false, false, true,
          wait, signal);
      case VPU -> new Insn.Vfill(0, 0, 0, 0f, 0, 0, DType.F32, wait, signal);
      case CTRL -> new Insn.Nop(wait, signal);
      case LINK -> throw new IllegalArgumentException("a LINK fence needs its group: linkFence");
    };
  }

  /**
   * An allreduce of no elements over {@code chips}: it meets no other chip and completes as the
   * group's allreduces do, so its signal means the LINK work queued before it is done.
   */
  static Insn linkFence(int chips, int signal) {
    return linkFence(chips, 0, signal);
  }

  /** {@link #linkFence(int, int)} that first waits for token {@code wait}. */
  static Insn linkFence(int chips, int wait, int signal) {
    return new Insn.Allreduce(MemSpace.HBM, 0, 0, 0, 0, DType.F32, chips, 0, 0, 0, 0, wait,
        signal);
  }

  /**
   * A DMA that moves nothing but completes with HBM latency: started after every earlier DMA of
   * the queue, it completes no earlier than any of them (the timing model's signal time is the
   * instruction's own start + occupancy + its memory's latency), so its signal means every
   * earlier DMA's memory effects are visible.
   */
  static Insn hbmFence(int wait, int signal) {
    return new Insn.Dma(MemSpace.SRAM, 0, 0, 0, MemSpace.HBM, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
        wait, signal);
  }

  // ---- instruction helpers (operands as the ISA table orders them)

  void add(int rd, int rs1, int rs2) {
    emit(new Insn.Add(rd, rs1, rs2, 0, 0));
  }

  void sub(int rd, int rs1, int rs2) {
    emit(new Insn.Sub(rd, rs1, rs2, 0, 0));
  }

  void mul(int rd, int rs1, int rs2) {
    emit(new Insn.Mul(rd, rs1, rs2, 0, 0));
  }

  void min(int rd, int rs1, int rs2) {
    emit(new Insn.Min(rd, rs1, rs2, 0, 0));
  }

  void max(int rd, int rs1, int rs2) {
    emit(new Insn.Max(rd, rs1, rs2, 0, 0));
  }

  /** rd = rs1 + imm for any 64-bit imm. */
  void addImm(int rd, int rs1, long imm) {
    if (imm == 0 && rd == rs1) {
      return;
    }
    if (imm >= Integer.MIN_VALUE && imm <= Integer.MAX_VALUE) {
      emit(new Insn.Addi(rd, rs1, (int) imm, 0, 0));
    } else {
      add(rd, rs1, konst(imm));
    }
  }

  /** rd = rs1 * imm for any 64-bit imm. */
  void mulImm(int rd, int rs1, long imm) {
    if (imm > 0 && Long.bitCount(imm) == 1) {
      int sh = Long.numberOfTrailingZeros(imm);
      if (sh == 0) {
        if (rd != rs1) {
          add(rd, rs1, 0);
        }
      } else {
        emit(new Insn.Shli(rd, rs1, sh, 0, 0));
      }
    } else if (imm >= Integer.MIN_VALUE && imm <= Integer.MAX_VALUE) {
      emit(new Insn.Muli(rd, rs1, (int) imm, 0, 0));
    } else {
      mul(rd, rs1, konst(imm));
    }
  }

  void shri(int rd, int rs1, int sh) {
    emit(new Insn.Shri(rd, rs1, sh, 0, 0));
  }

  void swap(int a, int b) {
    int t = alloc();
    add(t, a, 0);
    add(a, b, 0);
    add(b, t, 0);
    free(t);
  }

  /** The widest row one dma moves (its row field is 17 bits). */
  static final long MAX_DMA_ROW_BYTES = (1 << 17) - 1;
  /** The largest rows and planes a dma's immediate fields hold (10 and 6 bits). */
  private static final int MAX_ROWS_IMM = (1 << 10) - 1;
  private static final int MAX_PLANES_IMM = (1 << 6) - 1;

  /**
   * dma: {@code rows} and {@code planes} are a register plus an immediate (a register 0 reads
   * 0), strides are registers. Returns the pc.
   */
  int dma(MemSpace dstSpace, int dst, int dstRs, MemSpace srcSpace, int src, int srcRs,
      long rowBytes, int rowsReg, int rowsImm, int planesReg, int planesImm, int dstPs, int srcPs) {
    if (rowBytes > MAX_DMA_ROW_BYTES) {
      throw new BackendException("a DMA row of " + rowBytes + " bytes is longer than the DMA "
          + "engine's 131071 while lowering " + curOp);
    }
    // a count past its immediate field (64 heads' planes) goes in a register of its own
    if (planesImm > MAX_PLANES_IMM && planesReg == 0) {
      planesReg = konst(planesImm);
      planesImm = 0;
    }
    if (rowsImm > MAX_ROWS_IMM && rowsReg == 0) {
      rowsReg = konst(rowsImm);
      rowsImm = 0;
    }
    return emit(new Insn.Dma(dstSpace, dst, 0, dstRs, srcSpace, src, 0, srcRs, (int) rowBytes,
        rowsReg, rowsImm, planesReg, planesImm, dstPs, srcPs, 0, 0));
  }

  int mma(int acc, int ldc, int a, int lda, int b, int ldb, int m, int n, int kReg, int kImm,
      boolean ta, boolean tb, boolean accumulate) {
    return mma(DType.F32, acc, ldc, a, lda, b, ldb, m, n, kReg, kImm, ta, tb, accumulate);
  }

  int mma(DType dtype, int acc, int ldc, int a, int lda, int b, int ldb, int m, int n, int kReg,
      int kImm, boolean ta, boolean tb, boolean accumulate) {
    return emit(new Insn.Mma(acc, 0, ldc, a, 0, lda, b, 0, ldb, m, n, kReg, kImm, dtype, ta, tb,
        accumulate, 0, 0));
  }

  /** {@code dst = cvt(src)} of a rows x cols tile, unscaled. */
  int cvt(DType to, int dst, int dstStride, DType from, int src, int srcStride, int rows,
      int cols) {
    return emit(new Insn.Cvt(dst, 0, dstStride, to, src, 0, srcStride, from, rows, cols,
        ScaleMode.TENSOR, 1f, 0, 0, false, 0, 0));
  }

  int accrd(int dst, int dstStride, int acc, int accStride, int rows, int cols, float scale,
      Bcast biasBcast, int bias, UnaryFn act) {
    return emit(new Insn.Accrd(dst, 0, dstStride, acc, 0, accStride, rows, cols, DType.F32, false,
        scale, biasBcast, bias, 0, act, false, 0, 0));
  }

  int vbin(BinOp op, int dst, int dstStride, int a, int aStride, int b, int bStride, int rows,
      int cols, Bcast bcast) {
    return vbin(op, dst, dstStride, a, aStride, b, bStride, rows, cols, bcast, false);
  }

  /** {@code vbin} in f32, b in bf16 where {@code bBf16}. */
  int vbin(BinOp op, int dst, int dstStride, int a, int aStride, int b, int bStride, int rows,
      int cols, Bcast bcast, boolean bBf16) {
    return emit(new Insn.Vbin(op, dst, 0, dstStride, a, 0, aStride, b, 0, bStride, rows, cols,
        DType.F32, bcast, bBf16, 0, 0));
  }

  int vsel(int dst, int dstStride, int cond, int condStride, int a, int aStride, int b,
      int bStride, int rows, int cols, Bcast aBcast, Bcast bBcast) {
    return emit(new Insn.Vsel(dst, 0, dstStride, cond, 0, condStride, a, 0, aStride, b, 0, bStride,
        rows, cols, DType.F32, aBcast, bBcast, 0, 0));
  }

  int vbini(BinOp op, int dst, int dstStride, int a, int aStride, float imm, int rows, int cols,
      boolean rev) {
    return emit(new Insn.Vbini(op, dst, 0, dstStride, a, 0, aStride, imm, rows, cols, DType.F32,
        rev, 0, 0));
  }

  int vun(UnaryFn fn, int dst, int dstStride, int src, int srcStride, int rows, int cols) {
    return emit(new Insn.Vun(fn, dst, 0, dstStride, src, 0, srcStride, rows, cols, DType.F32, 0,
        0));
  }

  int vred(RedOp op, int dst, int dstStride, int src, int srcStride, int rows, int cols) {
    return vred(op, false, dst, dstStride, src, srcStride, rows, cols);
  }

  /** vred over the absolute values with {@code abs} (max: a symmetric quantization's abs-max). */
  int vred(RedOp op, boolean abs, int dst, int dstStride, int src, int srcStride, int rows,
      int cols) {
    return emit(new Insn.Vred(op, dst, 0, dstStride, src, 0, srcStride, rows, cols, DType.F32, abs,
        0, 0));
  }

  int cvt(int dst, int dstStride, DType dstType, int src, int srcStride, DType srcType, int rows,
      int cols) {
    return emit(new Insn.Cvt(dst, 0, dstStride, dstType, src, 0, srcStride, srcType, rows, cols,
        ScaleMode.TENSOR, 1.0f, 0, 0, false, 0, 0));
  }
}
