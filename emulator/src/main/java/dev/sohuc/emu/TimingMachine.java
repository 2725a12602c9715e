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

  private final Image image;
  private final MachineDescription target;
  private final Options options;
  private final long[] argBlock;
  private final TraceWriter trace;

  private final long[] regs = new long[32];
  private final LoopStack loops = new LoopStack();
  private final Op[] ops;
  private final int depth;

  // per engine (index = Engine.ordinal(); CTRL unused): in-order queue as a ring buffer
  private final int[][] qPc = new int[ENGINES][];
  private final long[][] qIssue = new long[ENGINES][];
  private final long[][] qCycles = new long[ENGINES][];
  // per queued instruction: its completion latency and its work (an urgent allreduce's
  // algorithm, and so both, depend on its size)
  private final long[][] qLatency = new long[ENGINES][];
  private final long[][] qWork = new long[ENGINES][];
  private final long[][] qSeq = new long[ENGINES][];
  private final int[] qHead = new int[ENGINES];
  private final int[] qSize = new int[ENGINES];
  private final long[] freeAt = new long[ENGINES];
  private final long[] lastDone = new long[ENGINES];
  final long[] busy = new long[ENGINES];
  final long[] count = new long[ENGINES];

  // tokens: a min-heap of pending signal times per token
  private final long[][] sig = new long[32][];
  private final int[] sigSize = new int[32];

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
  final Map<DType, Long> macsByType = new java.util.EnumMap<>(DType.class);
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
    for (int e = 1; e < ENGINES; e++) {
      qPc[e] = new int[depth];
      qIssue[e] = new long[depth];
      qCycles[e] = new long[depth];
      qLatency[e] = new long[depth];
      qWork[e] = new long[depth];
      qSeq[e] = new long[depth];
    }
    for (int t = 0; t < 32; t++) {
      sig[t] = new long[4];
    }
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
      case Insn.Softmax v -> o.kind = 0;
      case Insn.Layernorm v -> o.kind = 0;
      case Insn.Rmsnorm v -> o.kind = 0;
      case Insn.Rope v -> o.kind = 0;
      case Insn.Vglu v -> o.kind = 0;
      case Insn.Cvt v -> o.kind = 0;
      case Insn.Accrd v -> o.kind = 0;
      case Insn.Accdq v -> o.kind = 0;
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

  private Op op(int pc) {
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
      o.values.regs = regs;
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
      case Insn.Rope r -> VpuClass.SIMPLE;
      case Insn.Cvt c -> VpuClass.SIMPLE;
      case Insn.Accdq a -> VpuClass.SIMPLE;
      case Insn.Accwr a -> VpuClass.SIMPLE;
      default -> VpuClass.SIMPLE;
    };
  }

  /** Occupancy of one instruction with the registers as they are now. */
  private long cycles(int pc, Op o) {
    if (o.values == null) {
      return o.fixed;
    }
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

  private void push(int pc, int tok, long time) {
    long[] h = sig[tok];
    int n = sigSize[tok];
    if (n >= FunctionalMachine.MAX_TOKEN_COUNT) {
      throw image.trap(pc, Trap.Kind.TOKEN_OVERFLOW, "token " + tok + " would exceed "
          + FunctionalMachine.MAX_TOKEN_COUNT + " (signalled that often without a wait)");
    }
    if (n == h.length) {
      h = sig[tok] = Arrays.copyOf(h, n * 2);
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
    sigSize[tok] = n + 1;
  }

  private long earliest(int tok) {
    return sigSize[tok] == 0 ? NEVER : sig[tok][0];
  }

  private void pop(int tok) {
    long[] h = sig[tok];
    int n = --sigSize[tok];
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

  /** Runs to halt and drain; returns the total number of cycles. */
  long run() {
    int pc = 0;
    long ctrlTime = 0;
    boolean halted = false;
    long max = options.maxInstructions();
    while (true) {
      // the control unit's next action
      long ctrlAt = NEVER;
      Op c = null;
      if (!halted) {
        c = op(pc);
        if (c.engine != CTRL) {
          ctrlAt = qSize[c.engine] < depth ? ctrlTime : NEVER;
        } else if (c.kind == K_BARRIER) {
          ctrlAt = queued() == 0 ? Math.max(ctrlTime, allDone()) : NEVER;
        } else {
          ctrlAt = ctrlTime;
        }
        if (c.engine == CTRL && c.wait != 0 && ctrlAt != NEVER) {
          long s = earliest(c.wait);
          ctrlAt = s == NEVER ? NEVER : Math.max(ctrlAt, s);
        }
      }
      // the engines' next starts
      int best = -1;
      long bestAt = ctrlAt;
      for (int e = 1; e < ENGINES; e++) {
        if (qSize[e] == 0) {
          continue;
        }
        int h = qHead[e];
        long at = Math.max(freeAt[e], qIssue[e][h]);
        Op head = ops[qPc[e][h]];
        if (head.wait != 0) {
          long s = earliest(head.wait);
          at = s == NEVER ? NEVER : Math.max(at, s);
        }
        if (at <= bestAt && at != NEVER) {
          best = e;
          bestAt = at;
        }
      }
      if (best > 0) {
        start(best, bestAt);
        continue;
      }
      if (ctrlAt == NEVER) {
        if (halted && queued() == 0) {
          return Math.max(ctrlTime, allDone());
        }
        throw deadlock(pc, c, halted);
      }
      // issue at ctrlAt
      if (issued >= max) {
        throw image.trap(pc, Trap.Kind.INSTRUCTION_LIMIT, "the instruction cap of " + max
            + " issued instructions was reached (--max-instructions)");
      }
      issued++;
      count[c.engine]++;
      if (c.engine == CTRL && c.wait != 0) {
        pop(c.wait);
      }
      if (c.engine != CTRL) {
        long cyc = cycles(pc, c);
        long latency = c.latency;
        long work = c.realWork;
        if (c.chips > 1 && c.insn instanceof Insn.Allreduce a && regs[a.urgent()] != 0) {
          // urgent: one step when that finishes first (docs/isa.md, allreduce)
          long oneStep = (c.chips - 1) * dev.sohuc.isa.InsnTable.collectiveBytes(c.values);
          long oneStepCycles = c.fixed + (long) Math.ceil(oneStep / c.rate);
          if (oneStepCycles + target.linkLatencyCycles() < cyc + latency) {
            cyc = oneStepCycles;
            latency = target.linkLatencyCycles();
            work = oneStep;
          }
        }
        int e = c.engine;
        int slot = (qHead[e] + qSize[e]) % depth;
        qPc[e][slot] = pc;
        qIssue[e][slot] = ctrlAt + 1;
        qCycles[e][slot] = cyc;
        qLatency[e][slot] = latency;
        qWork[e][slot] = work;
        qSeq[e][slot] = seq++;
        qSize[e]++;
        if (c.mma) {
          macsByType.merge(c.mmaType, c.realWork, Long::sum);
          pcMacs[pc] += c.realWork;
        }
        hbmBytes += c.hbmSides * work;
        pcHbm[pc] += c.hbmSides * work;
        ctrlTime = ctrlAt + 1;
        pc = loops.next(pc);
        continue;
      }
      long done = ctrlAt + c.fixed;
      busy[CTRL] += c.fixed;
      profile(pc, CTRL, ctrlAt, c.fixed, done);
      if (trace != null) {
        trace.slice(CTRL, c.mnemonic, pc, ctrlAt, c.fixed);
      }
      if (c.signal != 0) {
        push(pc, c.signal, done);
      }
      try {
        pc = ctrl(pc, c);
      } catch (Fault f) {
        throw image.trap(pc, f);
      }
      if (pc < 0) {
        halted = true;
        pc = 0;
      }
      ctrlTime = done;
    }
  }

  /** Instructions waiting in the engines' queues. */
  private int queued() {
    int n = 0;
    for (int e = 1; e < ENGINES; e++) {
      n += qSize[e];
    }
    return n;
  }

  private long allDone() {
    long t = 0;
    for (int e = 1; e < ENGINES; e++) {
      t = Math.max(t, lastDone[e]);
    }
    return t;
  }

  private void start(int e, long at) {
    int h = qHead[e];
    int pc = qPc[e][h];
    long cyc = qCycles[e][h];
    long latency = qLatency[e][h];
    Op o = ops[pc];
    qHead[e] = (h + 1) % depth;
    qSize[e]--;
    if (o.wait != 0) {
      pop(o.wait);
    }
    if (o.chips > 0) {
      at = joinCollective(pc, o, at, qWork[e][h]);
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
    long done = o.fence ? Math.max(end, lastDone[e]) : end + latency;
    lastDone[e] = Math.max(lastDone[e], done);
    busy[e] += cyc;
    profile(pc, e, at, cyc, done);
    if (o.signal != 0) {
      push(pc, o.signal, done);
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

  private Trap deadlock(int pc, Op c, boolean halted) {
    if (!halted && c != null && c.engine == CTRL && c.wait != 0 && earliest(c.wait) == NEVER) {
      return image.trap(pc, Trap.Kind.DEADLOCK, "the control unit waits on token " + c.wait
          + " (count 0) and nothing issued can signal it");
    }
    int oldest = -1;
    for (int e = 1; e < ENGINES; e++) {
      if (qSize[e] > 0 && (oldest < 0 || qSeq[e][qHead[e]] < qSeq[oldest][qHead[oldest]])) {
        oldest = e;
      }
    }
    if (!halted && c != null && c.engine != CTRL && qSize[c.engine] >= depth) {
      oldest = c.engine;
    }
    if (oldest < 0) {
      return image.trap(pc, Trap.Kind.DEADLOCK, "the control unit cannot proceed");
    }
    int hpc = qPc[oldest][qHead[oldest]];
    Op head = ops[hpc];
    String why = halted ? " (the control unit reached halt)"
        : c != null && c.engine == oldest ? ", its queue is full (" + depth
            + " instructions), so the control unit cannot issue pc " + pc : "";
    return image.trap(hpc, Trap.Kind.DEADLOCK, "the " + Engine.values()[oldest] + " waits on token "
        + head.wait + " (count 0) and nothing left to run will signal it" + why);
  }

  /** Executes a control instruction on the scalar registers; returns the next pc, -1 on halt. */
  private int ctrl(int pc, Op o) {
    long[] r = regs;
    switch (o.kind) {
      case K_HALT -> {
        return -1;
      }
      case K_NOP, K_BARRIER -> { }
      case K_LI -> set(o.rd, o.imm);
      case K_LDARG ->
          set(o.rd, argBlock[Emulator.argWord((int) o.imm, r[o.rs1], argBlock.length)]);
      case K_ADD -> set(o.rd, r[o.rs1] + r[o.rs2]);
      case K_SUB -> set(o.rd, r[o.rs1] - r[o.rs2]);
      case K_MUL -> set(o.rd, r[o.rs1] * r[o.rs2]);
      case K_MIN -> set(o.rd, Math.min(r[o.rs1], r[o.rs2]));
      case K_MAX -> set(o.rd, Math.max(r[o.rs1], r[o.rs2]));
      case K_ADDI -> set(o.rd, r[o.rs1] + o.imm);
      case K_MULI -> set(o.rd, r[o.rs1] * o.imm);
      case K_SHLI -> set(o.rd, r[o.rs1] << o.imm);
      case K_SHRI -> set(o.rd, r[o.rs1] >>> o.imm);
      case K_LOOP -> {
        return loops.enter(pc, r[o.rs1] + o.imm, o.rs2, image.length);
      }
      default -> throw new IllegalStateException(o.mnemonic + " is not a control instruction");
    }
    return loops.next(pc);
  }

  private void set(int rd, long v) {
    if (rd != 0) {
      regs[rd] = v;
    }
  }
}
