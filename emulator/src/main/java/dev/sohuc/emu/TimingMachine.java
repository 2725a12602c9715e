package dev.sohuc.emu;

import dev.sohuc.isa.Cost;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Engine;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnDef;
import dev.sohuc.isa.MemSpace;
import dev.sohuc.isa.UnaryFn;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The timing machine: no data, only the cost model. The control unit issues one instruction per
 * cycle in program order (scalar instructions take their table cost on it); DMA, MXU, VPU and
 * LINK each run their in-order queue concurrently. A queued instruction starts when its engine is
 * free, it has been issued, and its wait token has been signalled; it occupies its engine for
 * {@code fixedCycles + ceil(passes * work / rate)} cycles (isa-spec {@link Cost}) and signals
 * when it completes: completion adds the pipeline latency (DMA: the memory's latency; mma: the
 * table's latency), which delays the signal but not the engine's next instruction. Events are
 * committed in time order, so a signal is never consumed before it happens.
 */
final class TimingMachine {
  static final long NEVER = Long.MAX_VALUE;
  private static final int CTRL = 0;
  /** Engines by ordinal; CTRL issues, the others run queues. */
  private static final int ENGINES = Engine.values().length;
  private static final int MXU = Engine.MXU.ordinal();
  private static final int DMA = Engine.DMA.ordinal();

  private final Image image;
  private final MachineDescription target;
  private final Options options;
  private final long[] argBlock;
  private final TraceWriter trace;

  // per control stream (docs/isa.md, synchronization rule 8): registers, loops, where it issues
  private final long[][] regs = {new long[32], new long[32]};
  private final LoopStack[] loops = {new LoopStack(), new LoopStack()};
  private final int[] pc = new int[Streams.COUNT];
  private final long[] ctrlTime = new long[Streams.COUNT];
  /** Stream 0 runs from the start, stream 1 from a fork until it halts. */
  private final boolean[] running = {true, false};
  /** The queues in use: stream 0's until the first fork, both streams' after it. */
  private int queuesInUse = ENGINES;
  /** Where each stream's code ends: stream 1's halt is the last instruction of its fork body. */
  private final int[] end = new int[Streams.COUNT];
  private final Op[] ops;
  private final int depth;

  /** Queues: stream * ENGINES + engine ordinal (CTRL's unused). */
  private static final int QUEUES = Streams.COUNT * ENGINES;

  // per queue: in-order, as a ring buffer
  private final int[][] qPc = new int[QUEUES][];
  private final long[][] qIssue = new long[QUEUES][];
  private final long[][] qCycles = new long[QUEUES][];
  // per queued instruction: its completion latency and its work (an urgent allreduce's
  // algorithm, and so both, depend on its size)
  private final long[][] qLatency = new long[QUEUES][];
  private final long[][] qWork = new long[QUEUES][];
  private final long[][] qSeq = new long[QUEUES][];
  private final int[] qHead = new int[QUEUES];
  private final int[] qSize = new int[QUEUES];
  /** Per queue: when its last instruction completes (a barrier waits for its stream's). */
  private final long[] lastDone = new long[QUEUES];
  /** Per engine: when it is free to start the next instruction of either stream's queue. */
  private final long[] freeAt = new long[ENGINES];
  /** The last fork's fair_dma: the DMA engine alternates between the streams on a tie. */
  private boolean fairDma;
  /** The stream whose instruction the DMA engine started last. */
  private int lastDmaStream;
  final long[] busy = new long[ENGINES];
  final long[] count = new long[ENGINES];

  // tokens: a min-heap of pending signal times per counter (both streams' banks: Streams.slot)
  private final long[][] sig = new long[Streams.COUNT * Streams.TOKENS][];
  private final int[] sigSize = new int[Streams.COUNT * Streams.TOKENS];

  // the chip-to-chip group this machine belongs to; null: a single-chip run
  private Collective group;
  private int chip;
  long linkBytes;
  long collectives;

  // statistics; per pc for the op profile (first start -1 until it runs)
  final long[] pcFirst;
  final long[] pcDone;
  final long[] pcBusy;
  final int[] pcEngine;
  final long[] pcHbm;
  final long[] pcMacs;
  /** MACs issued by dtype ordinal: an array, as a map would box a count per mma. */
  private final long[] macs = new long[DType.values().length];
  long hbmBytes;
  long issued;
  long seq;

  TimingMachine(Image image, MachineDescription target, Options options, long[] argBlock,
      TraceWriter trace) {
    this.image = image;
    this.target = target;
    this.options = options;
    this.argBlock = argBlock;
    this.trace = trace;
    this.ops = new Op[image.length];
    this.depth = Math.max(1, target.queueDepth());
    this.pcFirst = new long[image.length];
    Arrays.fill(pcFirst, -1);
    this.pcDone = new long[image.length];
    this.pcBusy = new long[image.length];
    this.pcEngine = new int[image.length];
    this.pcHbm = new long[image.length];
    this.pcMacs = new long[image.length];
    for (int q = 0; q < QUEUES; q++) {
      qPc[q] = new int[depth];
      qIssue[q] = new long[depth];
      qCycles[q] = new long[depth];
      qLatency[q] = new long[depth];
      qWork[q] = new long[depth];
      qSeq[q] = new long[depth];
    }
    for (int t = 0; t < sig.length; t++) {
      sig[t] = new long[4];
    }
    end[0] = image.length;
  }

  /** Makes this machine chip {@code chip} of a group whose collectives synchronize. */
  void joinGroup(Collective group, int chip) {
    this.group = group;
    this.chip = chip;
  }

  // ---------------------------------------------------------------------------------------------
  // Per-pc precomputation.

  /** What the timing model needs of one instruction, computed once per pc. */
  private static final class Op {
    Insn insn;
    int engine;
    int wait;
    int signal;
    String mnemonic;
    int fixed;
    int passes;
    double rate;
    long latency;
    int hbmSides;
    DType mmaType;
    boolean mma;
    int chips;
    boolean fence;
    // cost: static when regsRead is empty; otherwise cached for the last register values
    int[] regsRead;
    long[] lastKey;
    long cycles = -1;
    long work;
    long realWork;
    FieldValues values;
    // control instructions, pre-decoded: kind and operands
    int kind;
    int rd;
    int rs1;
    int rs2;
    long imm;
  }

  private static final int K_HALT = 1;
  private static final int K_NOP = 2;
  private static final int K_BARRIER = 3;
  private static final int K_LI = 4;
  private static final int K_LDARG = 5;
  private static final int K_ADD = 6;
  private static final int K_SUB = 7;
  private static final int K_MUL = 8;
  private static final int K_MIN = 9;
  private static final int K_MAX = 10;
  private static final int K_ADDI = 11;
  private static final int K_MULI = 12;
  private static final int K_SHLI = 13;
  private static final int K_SHRI = 14;
  private static final int K_LOOP = 15;
  private static final int K_FORK = 16;

  /** Pre-decodes a control instruction into {@code o.kind} and its operands. */
  private static void decodeCtrl(Op o, Insn insn) {
    switch (insn) {
      case Insn.Halt h -> o.kind = K_HALT;
      case Insn.Nop n -> o.kind = K_NOP;
      case Insn.Barrier b -> o.kind = K_BARRIER;
      case Insn.Li i -> ctrl(o, K_LI, i.rd(), 0, 0, i.imm());
      case Insn.Ldarg l -> ctrl(o, K_LDARG, l.rd(), l.rs(), 0, l.index());
      case Insn.Add a -> ctrl(o, K_ADD, a.rd(), a.rs1(), a.rs2(), 0);
      case Insn.Sub a -> ctrl(o, K_SUB, a.rd(), a.rs1(), a.rs2(), 0);
      case Insn.Mul a -> ctrl(o, K_MUL, a.rd(), a.rs1(), a.rs2(), 0);
      case Insn.Min a -> ctrl(o, K_MIN, a.rd(), a.rs1(), a.rs2(), 0);
      case Insn.Max a -> ctrl(o, K_MAX, a.rd(), a.rs1(), a.rs2(), 0);
      case Insn.Addi a -> ctrl(o, K_ADDI, a.rd(), a.rs1(), 0, a.imm());
      case Insn.Muli a -> ctrl(o, K_MULI, a.rd(), a.rs1(), 0, a.imm());
      case Insn.Shli a -> ctrl(o, K_SHLI, a.rd(), a.rs1(), 0, a.shamt());
      case Insn.Shri a -> ctrl(o, K_SHRI, a.rd(), a.rs1(), 0, a.shamt());
      case Insn.Loop l -> ctrl(o, K_LOOP, 0, l.countReg(), l.body(), l.countImm());
      case Insn.Fork f -> ctrl(o, K_FORK, 0, 0, 0, f.body());
      case Insn.Dma d -> o.kind = 0;
      case Insn.Gather g -> o.kind = 0;
      case Insn.Scatter s -> o.kind = 0;
      case Insn.Allreduce a -> o.kind = 0;
      case Insn.Reducescatter rs -> o.kind = 0;
      case Insn.Allgather ag -> o.kind = 0;
      case Insn.Mma m -> o.kind = 0;
      case Insn.Vbin v -> o.kind = 0;
      case Insn.Vbini v -> o.kind = 0;
      case Insn.Vun v -> o.kind = 0;
      case Insn.Vred v -> o.kind = 0;
      case Insn.Vfill v -> o.kind = 0;
      case Insn.Vsel v -> o.kind = 0;
      case Insn.Softmax v -> o.kind = 0;
      case Insn.Layernorm v -> o.kind = 0;
      case Insn.Rmsnorm v -> o.kind = 0;
      case Insn.Rope v -> o.kind = 0;
      case Insn.Vglu v -> o.kind = 0;
      case Insn.Cvt v -> o.kind = 0;
      case Insn.Accrd v -> o.kind = 0;
      case Insn.Accdq v -> o.kind = 0;
      case Insn.Accglu v -> o.kind = 0;
      case Insn.Accwr v -> o.kind = 0;
    }
  }

  private static void ctrl(Op o, int kind, int rd, int rs1, int rs2, long imm) {
    o.kind = kind;
    o.rd = rd;
    o.rs1 = rs1;
    o.rs2 = rs2;
    o.imm = imm;
  }

  /** Field values of one instruction for {@link Cost.Work}, with registers from a live file. */
  private static final class FieldValues implements Cost.Values {
    final Map<String, Integer> index;
    final long[] value;
    long[] regs;
    long padM = -1;
    long padN = -1;
    int[] recorded = new int[0];
    boolean recording;

    FieldValues(Image.Fields fields) {
      index = fields.index();
      value = fields.values();
    }

    @Override
    public long field(String name) {
      if (padM >= 0 && name.equals("m")) {
        return padM;
      }
      if (padN >= 0 && name.equals("n")) {
        return padN;
      }
      Integer i = index.get(name);
      if (i == null) {
        throw new IllegalArgumentException("no field " + name);
      }
      return value[i];
    }

    @Override
    public long reg(String regField) {
      int r = (int) value[index.get(regField)];
      if (recording) {
        recorded = Arrays.copyOf(recorded, recorded.length + 1);
        recorded[recorded.length - 1] = r;
      }
      return regs[r];
    }

    @Override
    public long count(String operand) {
      if (index.containsKey(operand)) {
        return reg(operand);
      }
      return reg(operand + "_reg") + field(operand + "_imm");
    }
  }

  /** The pre-decoded instruction at pc, issued by {@code stream}. */
  private Op op(int pc, int stream) {
    if (pc >= ops.length) {
      image.insn(pc); // traps: the program ran past its end
    }
    Op o = ops[pc];
    if (o != null) {
      return o;
    }
    Insn insn = image.insn(pc);
    InsnDef d = insn.def();
    o = new Op();
    o.insn = insn;
    o.engine = d.engine().ordinal();
    o.wait = insn.waitTok();
    o.signal = insn.signalTok();
    o.mnemonic = d.mnemonic();
    decodeCtrl(o, insn);
    Cost c = d.cost();
    o.fixed = c.fixedCycles();
    o.passes = c.passes();
    if (c.unit() != Cost.Unit.NONE) {
      o.values = new FieldValues(image.fields(pc));
      o.values.regs = regs[stream];
      o.values.recording = true;
      try {
        c.work().of(o.values);
      } catch (RuntimeException e) {
        throw image.trap(pc, Trap.Kind.BAD_OPERAND, "the cost formula of " + d.mnemonic()
            + " failed: " + e);
      }
      o.values.recording = false;
      o.regsRead = o.values.recorded;
      o.lastKey = new long[o.regsRead.length];
    }
    switch (c.unit()) {
      case NONE -> o.rate = 1;
      case BYTES -> {
        MemSpace src = MemSpace.values()[(int) o.values.field("src_space")];
        MemSpace dst = MemSpace.values()[(int) o.values.field("dst_space")];
        o.hbmSides = (src == MemSpace.HBM ? 1 : 0) + (dst == MemSpace.HBM ? 1 : 0);
        // HBM to HBM moves every byte through HBM twice (a read and a write)
        o.rate = o.hbmSides > 0 ? target.hbmBytesPerCycle() / o.hbmSides
            : target.sramBytesPerCycle();
        o.latency = o.hbmSides > 0 ? target.hbmLatencyCycles() : target.sramLatencyCycles();
      }
      case LINK_BYTES -> {
        // the table's LINK_BYTES instructions are the collectives
        Insn.LinkCollective link = (Insn.LinkCollective) insn;
        try {
          Collective.checkRank(link);
        } catch (Fault f) {
          throw image.trap(pc, f);
        }
        // a LINK fence meets no other chip (o.chips 0) and completes with the LINK work before
        // it (start)
        o.fence = link.isFence();
        o.chips = o.fence ? 0 : link.chips();
        o.rate = target.linkBytesPerCycle();
        o.latency = o.fence ? 0 : (long) link.linkSteps() * target.linkLatencyCycles();
        MemSpace space = MemSpace.values()[(int) o.values.field("space")];
        // the ring reads and writes the local buffer once per step
        o.hbmSides = space == MemSpace.HBM ? 2 : 0;
      }
      case MACS -> {
        o.mma = true;
        o.mmaType = DType.values()[(int) o.values.field("dtype")];
        o.rate = target.macsPerCycle(o.mmaType);
        // fill and drain of the array: delays this tile's result, not the next tile's start
        o.latency = c.latencyCycles();
      }
      case ELEMENTS -> o.rate = switch (vpuClass(insn)) {
        case SIMPLE -> target.get("vpu.simple_rate");
        case TRANSCENDENTAL -> target.get("vpu.transcendental_rate");
        case ROW -> target.get("vpu.row_rate");
      };
    }
    ops[pc] = o;
    return o;
  }

  /** The machine description's VPU throughput classes. */
  enum VpuClass { SIMPLE, TRANSCENDENTAL, ROW }

  private static boolean simple(UnaryFn f) {
    return switch (f) {
      case NONE, NEG, ABS, RELU -> true;
      default -> false;
    };
  }

  static VpuClass vpuClass(Insn insn) {
    return switch (insn) {
      case Insn.Vbin v -> v.op() == dev.sohuc.isa.BinOp.POW ? VpuClass.TRANSCENDENTAL
          : VpuClass.SIMPLE;
      case Insn.Vbini v -> v.op() == dev.sohuc.isa.BinOp.POW ? VpuClass.TRANSCENDENTAL
          : VpuClass.SIMPLE;
      case Insn.Vun v -> simple(v.fn()) ? VpuClass.SIMPLE : VpuClass.TRANSCENDENTAL;
      case Insn.Vglu v -> simple(v.fn()) ? VpuClass.SIMPLE : VpuClass.TRANSCENDENTAL;
      case Insn.Accrd a -> simple(a.act()) ? VpuClass.SIMPLE : VpuClass.TRANSCENDENTAL;
      case Insn.Softmax s -> VpuClass.ROW;
      case Insn.Layernorm l -> VpuClass.ROW;
      case Insn.Rmsnorm r -> VpuClass.ROW;
      case Insn.Vred v -> VpuClass.SIMPLE;
      case Insn.Vfill v -> VpuClass.SIMPLE;
      case Insn.Vsel v -> VpuClass.SIMPLE;
      case Insn.Rope r -> VpuClass.SIMPLE;
      case Insn.Cvt c -> VpuClass.SIMPLE;
      case Insn.Accdq a -> VpuClass.SIMPLE;
      case Insn.Accglu a -> simple(a.fn()) ? VpuClass.SIMPLE : VpuClass.TRANSCENDENTAL;
      case Insn.Accwr a -> VpuClass.SIMPLE;
      default -> VpuClass.SIMPLE;
    };
  }

  /** Occupancy of one instruction with the issuing stream's registers as they are now. */
  private long cycles(int pc, Op o, long[] regs) {
    if (o.values == null) {
      return o.fixed;
    }
    o.values.regs = regs;
    int[] rr = o.regsRead;
    boolean same = o.cycles >= 0;
    for (int i = 0; i < rr.length; i++) {
      long v = regs[rr[i]];
      if (o.lastKey[i] != v) {
        same = false;
        o.lastKey[i] = v;
      }
    }
    if (same) {
      return o.cycles;
    }
    Cost c = o.insn.def().cost();
    try {
      long work = c.work().of(o.values);
      o.realWork = work;
      if (o.mma && target.padPartialTiles()) {
        long m = o.values.field("m");
        long n = o.values.field("n");
        o.values.padM = ceilTo(m, target.tileRows());
        o.values.padN = ceilTo(n, target.tileCols());
        work = c.work().of(o.values);
        o.values.padM = -1;
        o.values.padN = -1;
      }
      if (work < 0) {
        throw new Fault(Trap.Kind.BAD_OPERAND, "the work of this instruction (" + c.formula()
            + " = " + work + ") is negative or overflows: a count register holds a negative or "
            + "huge value");
      }
      o.work = work;
      double cyc = Math.ceil((double) o.passes * work / o.rate);
      o.cycles = o.fixed + (long) Math.min(cyc, 1e15);
    } catch (Fault f) {
      o.cycles = -1;
      throw image.trap(pc, f);
    }
    return o.cycles;
  }

  private static long ceilTo(long v, int q) {
    return (v + q - 1) / q * q;
  }

  // ---------------------------------------------------------------------------------------------
  // Tokens.

  /** Stream {@code stream} signals token {@code tok} at {@code time}. */
  private void push(int pc, int stream, int tok, long time) {
    int slot = Streams.slot(stream, tok);
    long[] h = sig[slot];
    int n = sigSize[slot];
    if (n >= FunctionalMachine.MAX_TOKEN_COUNT) {
      throw image.trap(pc, Trap.Kind.TOKEN_OVERFLOW, Streams.describe(stream, tok)
          + " would exceed " + FunctionalMachine.MAX_TOKEN_COUNT
          + " (signalled that often without a wait)");
    }
    if (n == h.length) {
      h = sig[slot] = Arrays.copyOf(h, n * 2);
    }
    int i = n;
    h[i] = time;
    while (i > 0) {
      int p = (i - 1) >>> 1;
      if (h[p] <= h[i]) {
        break;
      }
      long t = h[p];
      h[p] = h[i];
      h[i] = t;
      i = p;
    }
    sigSize[slot] = n + 1;
  }

  /** When stream {@code stream}'s token {@code tok} is first positive, or NEVER. */
  private long earliest(int stream, int tok) {
    int slot = Streams.slot(stream, tok);
    return sigSize[slot] == 0 ? NEVER : sig[slot][0];
  }

  private void pop(int stream, int tok) {
    int slot = Streams.slot(stream, tok);
    long[] h = sig[slot];
    int n = --sigSize[slot];
    h[0] = h[n];
    int i = 0;
    while (true) {
      int l = 2 * i + 1;
      if (l >= n) {
        break;
      }
      int c = l + 1 < n && h[l + 1] < h[l] ? l + 1 : l;
      if (h[i] <= h[c]) {
        break;
      }
      long t = h[c];
      h[c] = h[i];
      h[i] = t;
      i = c;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The event loop.

  /**
   * Runs to halt and drain; returns the total number of cycles. Each step takes the earliest of
   * the control units' next issues and the queue heads' starts (an engine start first on a tie).
   */
  long run() {
    long max = options.maxInstructions();
    while (true) {
      // the control units' next issues
      int issuer = -1;
      long issueAt = NEVER;
      for (int s = 0; s < Streams.COUNT; s++) {
        if (running[s]) {
          long at = ctrlAt(s);
          if (at < issueAt) {
            issuer = s;
            issueAt = at;
          }
        }
      }
      // the engines' next starts: each engine's two queue heads, stream 0's first on a tie
      int best = -1;
      int bestEngine = -1;
      long bestAt = issueAt;
      for (int base = 0; base < queuesInUse; base += ENGINES) {
        int stream = base == 0 ? 0 : 1;
        for (int e = 1; e < ENGINES; e++) {
          int q = base + e;
          if (qSize[q] == 0) {
            continue;
          }
          int h = qHead[q];
          long at = Math.max(freeAt[e], qIssue[q][h]);
          Op head = ops[qPc[q][h]];
          if (head.wait != 0) {
            long t = earliest(stream, head.wait);
            at = t == NEVER ? NEVER : Math.max(at, t);
          }
          // on a tie the later engine; on one engine stream 0's head (scanned first) wins,
          // except on the MXU, where stream 1's does, and on the DMA after a fork with
          // fair_dma, where the stream that did not start the last DMA does (docs/isa.md,
          // synchronization rule 8)
          if (at != NEVER && (at < bestAt || at == bestAt && (bestEngine != e
              || stream == 1 && e == MXU || e == DMA && fairDma && stream != lastDmaStream))) {
            best = q;
            bestEngine = e;
            bestAt = at;
          }
        }
      }
      if (best >= 0) {
        if (bestEngine == DMA) {
          lastDmaStream = best / ENGINES;
        }
        start(best, bestAt);
        continue;
      }
      if (issuer < 0) {
        if (!running[0] && !running[1] && queued(-1) == 0) {
          return Math.max(Math.max(ctrlTime[0], ctrlTime[1]), allDone(-1));
        }
        throw deadlock();
      }
      if (issued >= max) {
        throw image.trap(pc[issuer], Trap.Kind.INSTRUCTION_LIMIT, "the instruction cap of "
            + max + " issued instructions was reached (--max-instructions)");
      }
      issue(issuer, issueAt);
    }
  }

  /**
   * When stream {@code s} can issue its next instruction: NEVER while it waits for a full queue,
   * a token, its barrier's drain or (a fork) the previous stream 1's end.
   */
  private long ctrlAt(int s) {
    if (s == 1 && pc[s] >= end[s]) {
      throw Streams.ranPastItsCode(image, end[s]);
    }
    Op c = op(pc[s], s);
    long at = ctrlTime[s];
    if (c.engine != CTRL) {
      return qSize[s * ENGINES + c.engine] < depth ? at : NEVER;
    }
    if (c.kind == K_BARRIER) {
      at = queued(s) == 0 ? Math.max(at, allDone(s)) : NEVER;
    } else if (c.kind == K_FORK && s == 0) {
      at = running[1] || queued(1) > 0 ? NEVER : Math.max(at, allDone(1));
    }
    if (c.wait != 0 && at != NEVER) {
      long t = earliest(s, c.wait);
      at = t == NEVER ? NEVER : Math.max(at, t);
    }
    return at;
  }

  /** Stream {@code s} issues its next instruction at {@code at}. */
  private void issue(int s, long at) {
    int p = pc[s];
    Op c = ops[p];
    issued++;
    count[c.engine]++;
    if (c.engine == CTRL && c.wait != 0) {
      pop(s, c.wait);
    }
    if (c.engine != CTRL) {
      long cyc = cycles(p, c, regs[s]);
      long latency = c.latency;
      long work = c.realWork;
      if (c.chips > 1 && c.insn instanceof Insn.Allreduce a && regs[s][a.urgent()] != 0) {
        // urgent: one step when that finishes first (docs/isa.md, allreduce)
        long oneStep = (c.chips - 1) * dev.sohuc.isa.InsnTable.collectiveBytes(c.values);
        long oneStepCycles = c.fixed + (long) Math.ceil(oneStep / c.rate);
        if (oneStepCycles + target.linkLatencyCycles() < cyc + latency) {
          cyc = oneStepCycles;
          latency = target.linkLatencyCycles();
          work = oneStep;
        }
      }
      int q = s * ENGINES + c.engine;
      int slot = (qHead[q] + qSize[q]) % depth;
      qPc[q][slot] = p;
      qIssue[q][slot] = at + 1;
      qCycles[q][slot] = cyc;
      qLatency[q][slot] = latency;
      qWork[q][slot] = work;
      qSeq[q][slot] = seq++;
      qSize[q]++;
      if (c.mma) {
        macs[c.mmaType.ordinal()] += c.realWork;
        pcMacs[p] += c.realWork;
      }
      hbmBytes += c.hbmSides * work;
      pcHbm[p] += c.hbmSides * work;
      ctrlTime[s] = at + 1;
      pc[s] = loops[s].next(p);
      return;
    }
    long done = at + c.fixed;
    busy[CTRL] += c.fixed;
    profile(p, CTRL, at, c.fixed, done);
    if (trace != null) {
      trace.slice(CTRL, c.mnemonic, p, at, c.fixed);
    }
    if (c.signal != 0) {
      push(p, s, c.signal, done);
    }
    int next;
    try {
      next = ctrl(s, p, c, done);
    } catch (Fault f) {
      throw image.trap(p, f);
    }
    if (next < 0) {
      running[s] = false;
    } else {
      pc[s] = next;
    }
    ctrlTime[s] = done;
  }

  /** Instructions waiting in stream {@code stream}'s queues (every stream's for -1). */
  private int queued(int stream) {
    int n = 0;
    for (int q = 0; q < queuesInUse; q++) {
      if (stream < 0 || q / ENGINES == stream) {
        n += qSize[q];
      }
    }
    return n;
  }

  /** When stream {@code stream}'s instructions (every stream's for -1) have all completed. */
  private long allDone(int stream) {
    long t = 0;
    for (int q = 0; q < queuesInUse; q++) {
      if (stream < 0 || q / ENGINES == stream) {
        t = Math.max(t, lastDone[q]);
      }
    }
    return t;
  }

  /** Starts the head of queue {@code q} at {@code at} on its engine. */
  private void start(int q, long at) {
    int e = q % ENGINES;
    int stream = q / ENGINES;
    int h = qHead[q];
    int pc = qPc[q][h];
    long cyc = qCycles[q][h];
    long latency = qLatency[q][h];
    Op o = ops[pc];
    qHead[q] = (h + 1) % depth;
    qSize[q]--;
    if (o.wait != 0) {
      pop(stream, o.wait);
    }
    if (o.chips > 0) {
      at = joinCollective(pc, o, at, qWork[q][h]);
    }
    long end;
    try {
      end = Math.addExact(Math.addExact(at, cyc), latency);
    } catch (ArithmeticException x) {
      throw image.trap(pc, Trap.Kind.BAD_OPERAND, "simulated time overflows 64 bits");
    }
    end -= latency;
    freeAt[e] = end;
    // a LINK fence is done once the sums queued before it are (their latencies differ)
    long done = o.fence ? Math.max(end, lastDone[q]) : end + latency;
    lastDone[q] = Math.max(lastDone[q], done);
    busy[e] += cyc;
    profile(pc, e, at, cyc, done);
    if (o.signal != 0) {
      push(pc, stream, o.signal, done);
    }
    if (trace != null) {
      trace.slice(e, o.mnemonic, pc, at, cyc);
    }
  }

  private void profile(int pc, int engine, long at, long cycles, long done) {
    if (pcFirst[pc] < 0) {
      pcFirst[pc] = at;
    }
    pcDone[pc] = Math.max(pcDone[pc], done);
    pcBusy[pc] += cycles;
    pcEngine[pc] = engine;
  }

  /** Where the time went, per IR op. */
  /** The MACs issued to the MXU, by input dtype (those it issued any of). */
  Map<DType, Long> macsByType() {
    Map<DType, Long> m = new java.util.EnumMap<>(DType.class);
    for (DType t : DType.values()) {
      if (macs[t.ordinal()] != 0) {
        m.put(t, macs[t.ordinal()]);
      }
    }
    return m;
  }

  List<OpTiming> opTimings() {
    return OpTiming.of(image, pcFirst, pcDone, pcBusy, pcEngine, pcHbm, pcMacs);
  }

  /**
   * A collective starts when the last chip of its group arrives: returns that cycle (this
   * chip's own arrival when it runs alone or the group is symmetric).
   */
  private long joinCollective(int pc, Op o, long at, long work) {
    collectives++;
    linkBytes += work;
    if (group == null) {
      // one tensor-parallel shard timed alone stands for all N: its peers run the same code
      group = new Collective.Symmetric(o.chips);
    }
    if (o.chips != group.chips()) {
      throw image.trap(pc, Trap.Kind.BAD_OPERAND, o.mnemonic + " over " + o.chips
          + " chips in a group of " + group.chips());
    }
    try {
      return group.arrive(chip, at, o.mnemonic, work);
    } catch (Fault f) {
      throw image.trap(pc, f);
    }
  }

  /** Nothing can issue or start: names what waits, in the words of a single stream's trap. */
  private Trap deadlock() {
    for (int s = 0; s < Streams.COUNT; s++) {
      Op c = running[s] ? ops[pc[s]] : null;
      if (c != null && c.engine == CTRL && c.wait != 0 && earliest(s, c.wait) == NEVER) {
        return image.trap(pc[s], Trap.Kind.DEADLOCK, (s == 0 ? "the control unit" : "stream 1")
            + " waits on " + Streams.describe(s, c.wait) + " (count 0) and nothing issued can "
            + "signal it");
      }
    }
    int oldest = -1;
    for (int q = 0; q < QUEUES; q++) {
      if (qSize[q] > 0 && (oldest < 0 || qSeq[q][qHead[q]] < qSeq[oldest][qHead[oldest]])) {
        oldest = q;
      }
    }
    String why = running[0] || running[1] ? "" : " (the control unit reached halt)";
    for (int s = 0; s < Streams.COUNT; s++) {
      Op c = running[s] ? ops[pc[s]] : null;
      if (c != null && c.engine != CTRL && qSize[s * ENGINES + c.engine] >= depth) {
        oldest = s * ENGINES + c.engine;
        why = ", its queue is full (" + depth + " instructions), so the control unit cannot "
            + "issue pc " + pc[s];
        break;
      }
    }
    if (oldest < 0) {
      return image.trap(pc[0], Trap.Kind.DEADLOCK, "the control unit cannot proceed");
    }
    int hpc = qPc[oldest][qHead[oldest]];
    Op head = ops[hpc];
    return image.trap(hpc, Trap.Kind.DEADLOCK, "the " + (oldest < ENGINES ? "" : "stream 1's ")
        + Engine.values()[oldest % ENGINES] + " waits on "
        + Streams.describe(oldest / ENGINES, head.wait) + " (count 0) and nothing left to run "
        + "will signal it" + why);
  }

  /**
   * Executes stream {@code s}'s control instruction at {@code p}, done at cycle {@code done};
   * returns the next pc, -1 on halt.
   */
  private int ctrl(int s, int p, Op o, long done) {
    long[] r = regs[s];
    switch (o.kind) {
      case K_HALT -> {
        return -1;
      }
      case K_NOP, K_BARRIER -> { }
      case K_LI -> set(r, o.rd, o.imm);
      case K_LDARG ->
          set(r, o.rd, argBlock[Emulator.argWord((int) o.imm, r[o.rs1], argBlock.length)]);
      case K_ADD -> set(r, o.rd, r[o.rs1] + r[o.rs2]);
      case K_SUB -> set(r, o.rd, r[o.rs1] - r[o.rs2]);
      case K_MUL -> set(r, o.rd, r[o.rs1] * r[o.rs2]);
      case K_MIN -> set(r, o.rd, Math.min(r[o.rs1], r[o.rs2]));
      case K_MAX -> set(r, o.rd, Math.max(r[o.rs1], r[o.rs2]));
      case K_ADDI -> set(r, o.rd, r[o.rs1] + o.imm);
      case K_MULI -> set(r, o.rd, r[o.rs1] * o.imm);
      case K_SHLI -> set(r, o.rd, r[o.rs1] << o.imm);
      case K_SHRI -> set(r, o.rd, r[o.rs1] >>> o.imm);
      case K_LOOP -> {
        return loops[s].enter(p, r[o.rs1] + o.imm, o.rs2, end[s]);
      }
      case K_FORK -> {
        end[1] = Streams.forkBodyEnd(s, loops[s].depth(), p, (int) o.imm, image.length);
        fairDma = ((Insn.Fork) o.insn).fairDma();
        System.arraycopy(r, 0, regs[1], 0, r.length);
        loops[1].clear();
        pc[1] = p + 1;
        ctrlTime[1] = done;
        running[1] = true;
        queuesInUse = QUEUES;
        return end[1];
      }
      default -> throw new IllegalStateException(o.mnemonic + " is not a control instruction");
    }
    return loops[s].next(p);
  }

  private static void set(long[] r, int rd, long v) {
    if (rd != 0) {
      r[rd] = v;
    }
  }
}
