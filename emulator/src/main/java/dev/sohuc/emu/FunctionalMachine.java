package dev.sohuc.emu;

import dev.sohuc.emu.kernel.ExactMath;
import dev.sohuc.emu.kernel.MxuKernel;
import dev.sohuc.isa.Bcast;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Engine;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.MemSpace;
import dev.sohuc.isa.RedOp;
import dev.sohuc.isa.RopeMode;
import dev.sohuc.isa.UnaryFn;
import dev.sohuc.isa.num.Numerics;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinTask;

/**
 * The functional machine: executes every instruction on real numbers.
 *
 * <p>Order. The control unit issues in program order; an engine instruction whose engine queue is
 * empty and whose wait token is available runs at once, others wait in their engine's in-order
 * queue (depth from the machine description) with the register values read at issue. Whenever a
 * token is signalled, the oldest ready queue head runs first. So a correctly synchronized program
 * runs in program order wherever its tokens allow, the result never depends on timing, and a
 * wait that nothing issued or queued can satisfy is reported as a deadlock.
 */
final class FunctionalMachine {
  /** A token counter above this traps (docs/isa.md, synchronization rule 7). */
  static final int MAX_TOKEN_COUNT = 65535;
  /** Row-parallel VPU work starts at this many elements. */
  private static final long PARALLEL_ELEMENTS = 1 << 16;
  /** mma unpacks A and B in chunks of this many k steps, bounding host memory. */
  private static final int K_CHUNK = 2048;

  private final Image image;
  private final MachineDescription target;
  private final Options options;
  final Hbm hbm;
  final byte[] sram;
  final int[] acc;
  /** Stream 0's registers (stream 1 gets a copy at its fork). */
  final long[] regs = new long[32];
  /** Token counters: both streams' banks ({@link Streams#slot}). */
  final long[] tokens = new long[Streams.COUNT * Streams.TOKENS];
  private final WorkBudget budget;
  private final int queueDepth;
  /** The race check's random order ({@link Options#scheduleSeed}), or null: oldest first. */
  private final java.util.Random shuffle;
  private long argBase;
  private int argWords;
  private long issued;
  private long seq;
  private final long[] engineInsns = new long[Engine.values().length];

  /**
   * An engine instruction waiting in its stream's queue, with the registers it read at issue.
   */
  private record Pending(int stream, int pc, Insn insn, long seq, long[] regs) {}

  private static final int ENGINES = Engine.values().length;
  /** The engine queues, stream by stream: stream * ENGINES + engine. */
  @SuppressWarnings({"unchecked", "rawtypes"}) // no generic array creation in Java
  private final ArrayDeque<Pending>[] queues = new ArrayDeque[Streams.COUNT * ENGINES];

  FunctionalMachine(Image image, MachineDescription target, Options options) {
    this.image = image;
    this.target = target;
    this.options = options;
    if (target.sramBytes() > Integer.MAX_VALUE - 16) {
      throw new EmulatorException("target " + target.name() + ": an SRAM of "
          + target.sramBytes() + " bytes is too large for the functional emulator (2 GiB max)");
    }
    if (target.accWords() > Integer.MAX_VALUE - 16) {
      throw new EmulatorException("target " + target.name() + ": an ACC of "
          + target.accWords() + " words is too large for the functional emulator");
    }
    this.hbm = new Hbm(target.hbmBytes(), options.hostHbmBudgetBytes());
    this.sram = new byte[(int) target.sramBytes()];
    this.acc = new int[(int) target.accWords()];
    this.queueDepth = Math.max(1, target.queueDepth());
    this.budget = new WorkBudget(target, options.maxCycles());
    this.shuffle = options.scheduleSeed() == null ? null
        : new java.util.Random(options.scheduleSeed());
    for (int e = 0; e < queues.length; e++) {
      queues[e] = new ArrayDeque<>();
    }
  }

  /** Where the argument block lies and how many words it has ({@code ldarg} reads only those). */
  void setArgBlock(long argBase, int argWords) {
    this.argBase = argBase;
    this.argWords = argWords;
  }

  long issued() {
    return issued;
  }

  long engineInstructions(Engine e) {
    return engineInsns[e.ordinal()];
  }

  // ---------------------------------------------------------------------------------------------
  // Control unit.

  /** A control stream: where it issues, its registers and its loops. */
  private static final class Stream {
    final int id;
    final long[] regs;
    final LoopStack loops = new LoopStack();
    int pc;
    /** Its code ends before this pc: stream 1's halt is its code's last instruction. */
    final int end;
    boolean halted;
    /** Why it cannot issue now, for a deadlock's message. */
    String waiting;

    Stream(int id, long[] regs, int pc, int end) {
      this.id = id;
      this.regs = regs;
      this.pc = pc;
      this.end = end;
    }
  }

  /** What issuing an instruction did. */
  private enum Issue { DONE, WAIT, END }

  private final Stream[] streams = new Stream[Streams.COUNT];
  /** The stream issuing now; its registers and loops are the ones control instructions use. */
  private Stream cur;

  /**
   * Runs from pc 0 until every stream has halted and every queue has drained; throws Trap on a
   * fault. After a fork the two streams issue in turn, one instruction each; one that must wait
   * (a token, a full queue, its barrier) lets the other go on, and both waiting with nothing
   * ready to run is a deadlock.
   */
  void run() {
    streams[0] = new Stream(0, regs, 0, image.length);
    while (true) {
      boolean issuedAny = false;
      for (Stream s : streams) {
        if (s == null || s.halted) {
          continue;
        }
        Issue r = issue(s);
        if (r == Issue.END) {
          return;
        }
        issuedAny |= r == Issue.DONE;
      }
      if (!issuedAny && !(shuffle != null && runRandomReady())) {
        throw bothWait();
      }
    }
  }

  /** Issues stream {@code s}'s next instruction. */
  private Issue issue(Stream s) {
    cur = s;
    int pc = s.pc;
    if (s.id == 1 && pc >= s.end) {
      throw Streams.ranPastItsCode(image, s.end);
    }
    Insn insn = image.insn(pc);
    long max = options.maxInstructions();
    if (issued >= max) {
      throw image.trap(pc, Trap.Kind.INSTRUCTION_LIMIT, "the instruction cap of " + max
          + " issued instructions was reached (--max-instructions)");
    }
    try {
      int next = step(pc, insn);
      if (next == WAIT) {
        return Issue.WAIT;
      }
      issued++;
      engineInsns[insn.engine().ordinal()]++;
      if (next == HALT) {
        s.halted = true;
        if (streams[1] == null || streams[1 - s.id].halted) {
          drained(pc, "halt", -1);
          return Issue.END;
        }
        return Issue.DONE;
      }
      s.pc = next;
      return Issue.DONE;
    } catch (Fault f) {
      throw image.trap(pc, f);
    } catch (Trap t) {
      throw t;
    } catch (RuntimeException e) {
      throw image.trap(pc, Trap.Kind.BAD_OPERAND, "internal emulator error: " + e);
    }
  }

  /** Whether the stream that is not {@code s} can still issue (so {@code s} may wait for it). */
  private boolean otherIssues(Stream s) {
    Stream o = streams[1 - s.id];
    return o != null && !o.halted;
  }

  private long r(int reg) {
    return cur.regs[reg];
  }

  private void set(int rd, long v) {
    if (rd != 0) {
      cur.regs[rd] = v;
    }
  }

  private static final int WAIT = -2;
  private static final int HALT = -1;

  /** Issues one instruction; returns the next pc, {@link #HALT}, or {@link #WAIT} to retry. */
  private int step(int pc, Insn insn) {
    if (insn.engine() != Engine.CTRL) {
      return issueEngine(pc, insn) ? cur.loops.next(pc) : WAIT;
    }
    if (!ctrlReady(pc, insn)) {
      return WAIT;
    }
    take(cur.id, insn.waitTok());
    switch (insn) {
      case Insn.Halt h -> {
        signal(pc, cur.id, h.signalTok());
        return HALT;
      }
      case Insn.Nop n -> { }
      case Insn.Barrier b -> { }
      case Insn.Fork f -> {
        streams[1] = new Stream(1, cur.regs.clone(), pc + 1, pc + 1 + f.body());
        signal(pc, cur.id, f.signalTok());
        return pc + 1 + f.body();
      }
      case Insn.Li i -> set(i.rd(), i.imm());
      case Insn.Ldarg l -> set(l.rd(),
          hbm.readLong(argBase + 8L * Emulator.argWord(l.index(), r(l.rs()), argWords)));
      case Insn.Add a -> set(a.rd(), r(a.rs1()) + r(a.rs2()));
      case Insn.Sub s -> set(s.rd(), r(s.rs1()) - r(s.rs2()));
      case Insn.Mul m -> set(m.rd(), r(m.rs1()) * r(m.rs2()));
      case Insn.Min m -> set(m.rd(), Math.min(r(m.rs1()), r(m.rs2())));
      case Insn.Max m -> set(m.rd(), Math.max(r(m.rs1()), r(m.rs2())));
      case Insn.Addi a -> set(a.rd(), r(a.rs1()) + a.imm());
      case Insn.Muli m -> set(m.rd(), r(m.rs1()) * m.imm());
      case Insn.Shli s -> set(s.rd(), r(s.rs1()) << s.shamt());
      case Insn.Shri s -> set(s.rd(), r(s.rs1()) >>> s.shamt());
      case Insn.Loop l -> {
        int next = cur.loops.enter(pc, r(l.countReg()) + l.countImm(), l.body(), cur.end);
        signal(pc, cur.id, l.signalTok());
        return next;
      }
      case Insn.Dma d -> throw new IllegalStateException("not CTRL");
      case Insn.Gather g -> throw new IllegalStateException("not CTRL");
      case Insn.Scatter s -> throw new IllegalStateException("not CTRL");
      case Insn.Allreduce a -> throw new IllegalStateException("not CTRL");
      case Insn.Reducescatter rs -> throw new IllegalStateException("not CTRL");
      case Insn.Allgather ag -> throw new IllegalStateException("not CTRL");
      case Insn.Mma m -> throw new IllegalStateException("not CTRL");
      case Insn.Vbin v -> throw new IllegalStateException("not CTRL");
      case Insn.Vbini v -> throw new IllegalStateException("not CTRL");
      case Insn.Vun v -> throw new IllegalStateException("not CTRL");
      case Insn.Vred v -> throw new IllegalStateException("not CTRL");
      case Insn.Vfill v -> throw new IllegalStateException("not CTRL");
      case Insn.Vsel v -> throw new IllegalStateException("not CTRL");
      case Insn.Softmax s -> throw new IllegalStateException("not CTRL");
      case Insn.Layernorm l -> throw new IllegalStateException("not CTRL");
      case Insn.Rmsnorm rn -> throw new IllegalStateException("not CTRL");
      case Insn.Rope rp -> throw new IllegalStateException("not CTRL");
      case Insn.Vglu v -> throw new IllegalStateException("not CTRL");
      case Insn.Cvt c -> throw new IllegalStateException("not CTRL");
      case Insn.Accrd a -> throw new IllegalStateException("not CTRL");
      case Insn.Accdq a -> throw new IllegalStateException("not CTRL");
      case Insn.Accglu a -> throw new IllegalStateException("not CTRL");
      case Insn.Accwr a -> throw new IllegalStateException("not CTRL");
    }
    signal(pc, cur.id, insn.signalTok());
    return cur.loops.next(pc);
  }

  /**
   * Whether a control instruction can execute now: its wait token is positive, a barrier's
   * stream has drained, a fork's previous stream 1 has finished. Not yet: false while the other
   * stream can still issue (and so change that), a trap otherwise.
   */
  private boolean ctrlReady(int pc, Insn insn) {
    int tok = insn.waitTok();
    int slot = Streams.slot(cur.id, tok);
    if (tok != 0) {
      if (shuffle != null) {
        runRandomWhile(() -> tokens[slot] == 0);
      }
      if (tokens[slot] == 0) {
        String why = "the control unit waits on " + Streams.describe(cur.id, tok) + " (count 0)";
        return waitOrTrap(pc, why, "nothing issued can signal it" + blockedHeads());
      }
    }
    if (insn instanceof Insn.Barrier) {
      return drained(pc, "barrier", cur.id);
    }
    if (insn instanceof Insn.Fork f) {
      Streams.forkBodyEnd(cur.id, cur.loops.depth(), pc, f.body(), image.length);
      Stream one = streams[1];
      if (one != null && !one.halted) {
        return waitOrTrap(pc, "the fork waits for stream 1 to halt", "");
      }
      return one == null || drained(pc, "fork", 1);
    }
    return true;
  }

  /**
   * Halt, barrier and fork: stream {@code stream}'s queues (every queue for -1) must drain;
   * while the other stream issues that may still happen, otherwise any left is a deadlock.
   */
  private boolean drained(int pc, String why, int stream) {
    if (shuffle != null) {
      runRandomWhile(() -> oldestHead(stream) != null);
    }
    Pending oldest = oldestHead(stream);
    if (oldest == null) {
      return true;
    }
    if (stream >= 0 && cur.id == stream && otherIssues(cur)) {
      cur.waiting = "the " + why + " at pc " + pc + " waits for its queues to drain";
      return false;
    }
    throw image.trap(oldest.pc(), Trap.Kind.DEADLOCK, "the " + headName(oldest)
        + " waits on " + Streams.describe(oldest.stream(), oldest.insn().waitTok())
        + " (count 0) and nothing left to run will signal it (the control unit reached " + why
        + " at pc " + pc + ")" + blockedHeads());
  }

  /** The oldest queued instruction of {@code stream} (every stream for -1), or null. */
  private Pending oldestHead(int stream) {
    Pending oldest = null;
    for (ArrayDeque<Pending> q : queues) {
      Pending h = q.peekFirst();
      if (h != null && (stream < 0 || h.stream() == stream)
          && (oldest == null || h.seq() < oldest.seq())) {
        oldest = h;
      }
    }
    return oldest;
  }

  /** False (wait) while the other stream can issue; otherwise a deadlock trap. */
  private boolean waitOrTrap(int pc, String why, String detail) {
    if (otherIssues(cur)) {
      cur.waiting = why + " at pc " + pc;
      return false;
    }
    throw image.trap(pc, Trap.Kind.DEADLOCK, why + " and " + detail);
  }

  /** Both streams wait and nothing queued is ready. */
  private Trap bothWait() {
    return image.trap(streams[0].pc, Trap.Kind.DEADLOCK, "both streams wait: stream 0: "
        + streams[0].waiting + "; stream 1: " + streams[1].waiting
        + "; nothing issued can change that" + blockedHeads());
  }

  // ---------------------------------------------------------------------------------------------
  // Tokens and engine queues.

  private boolean draining;

  private boolean ready(int stream, int tok) {
    return tok == 0 || tokens[Streams.slot(stream, tok)] > 0;
  }

  private void take(int stream, int tok) {
    if (tok != 0) {
      tokens[Streams.slot(stream, tok)]--;
    }
  }

  private void signal(int pc, int stream, int tok) {
    if (tok == 0) {
      return;
    }
    int slot = Streams.slot(stream, tok);
    if (tokens[slot] >= MAX_TOKEN_COUNT) {
      throw image.trap(pc, Trap.Kind.TOKEN_OVERFLOW, Streams.describe(stream, tok)
          + " would exceed " + MAX_TOKEN_COUNT + " (signalled that often without a wait)");
    }
    tokens[slot]++;
    if (shuffle != null) {
      return;  // the queues run when the control unit must wait, or at random (issueEngine)
    }
    if (!draining) {
      draining = true;
      try {
        while (runOldestReady()) {
          // each run may signal and make another head ready
        }
      } finally {
        draining = false;
      }
    }
  }

  /** Race check: runs a random queue head whose token is available; false when none is. */
  private boolean runRandomReady() {
    int[] ready = new int[queues.length];
    int n = 0;
    for (int q = 0; q < queues.length; q++) {
      Pending head = queues[q].peekFirst();
      if (head != null && ready(head.stream(), head.insn().waitTok())) {
        ready[n++] = q;
      }
    }
    if (n == 0) {
      return false;
    }
    run(queues[ready[shuffle.nextInt(n)]].pollFirst());
    return true;
  }

  /** Runs a queue head that is ready: takes its token, executes it, signals. */
  private void run(Pending p) {
    take(p.stream(), p.insn().waitTok());
    execAt(p.pc(), p.insn(), p.regs());
    signal(p.pc(), p.stream(), p.insn().signalTok());
  }

  /** Race check: runs ready queue heads, in a random order, while {@code more} holds. */
  private void runRandomWhile(java.util.function.BooleanSupplier more) {
    while (more.getAsBoolean() && runRandomReady()) {
      // each run may signal and make another head ready
    }
  }

  /** Runs the oldest queue head whose token is available; false when none is. */
  private boolean runOldestReady() {
    Pending best = null;
    int bestQueue = -1;
    for (int q = 0; q < queues.length; q++) {
      Pending head = queues[q].peekFirst();
      if (head != null && ready(head.stream(), head.insn().waitTok())
          && (best == null || head.seq() < best.seq())) {
        best = head;
        bestQueue = q;
      }
    }
    if (best == null) {
      return false;
    }
    run(queues[bestQueue].pollFirst());
    return true;
  }

  /** Queues an engine instruction of the issuing stream; false when it must wait to. */
  private boolean issueEngine(int pc, Insn insn) {
    ArrayDeque<Pending> q = queues[cur.id * ENGINES + insn.engine().ordinal()];
    if (shuffle != null) {
      // queued even when it could run: it runs when the control unit must wait (a full queue,
      // a token, a barrier) or at random here, after or before other engines' instructions
      runRandomWhile(() -> q.size() >= queueDepth);
      if (q.size() < queueDepth) {
        q.addLast(new Pending(cur.id, pc, insn, seq++, cur.regs.clone()));
        runRandomWhile(() -> shuffle.nextInt(4) == 0);
        return true;
      }
    } else if (q.isEmpty() && ready(cur.id, insn.waitTok())) {
      take(cur.id, insn.waitTok());
      execAt(pc, insn, cur.regs);
      signal(pc, cur.id, insn.signalTok());
      return true;
    }
    if (q.size() >= queueDepth) {
      Pending head = q.peekFirst();
      if (otherIssues(cur)) {
        cur.waiting = "its " + insn.engine() + " queue is full at pc " + pc;
        return false;
      }
      throw image.trap(head.pc(), Trap.Kind.DEADLOCK, "the " + insn.engine() + " waits on "
          + Streams.describe(head.stream(), head.insn().waitTok()) + " (count 0), its queue is "
          + "full (" + queueDepth + " instructions), so the control unit cannot issue pc " + pc
          + " and nothing issued can signal the token");
    }
    q.addLast(new Pending(cur.id, pc, insn, seq++, cur.regs.clone()));
    return true;
  }

  private String headName(Pending h) {
    return (h.stream() == 0 ? "" : "stream 1's ") + h.insn().engine();
  }

  private String blockedHeads() {
    StringBuilder sb = new StringBuilder();
    for (ArrayDeque<Pending> q : queues) {
      Pending h = q.peekFirst();
      if (h != null) {
        sb.append(sb.isEmpty() ? "; blocked: " : ", ").append(headName(h))
            .append(" at pc ").append(h.pc()).append(" on token ").append(h.insn().waitTok());
      }
    }
    return sb.toString();
  }

  private void execAt(int pc, Insn insn, long[] r) {
    try {
      budget.charge(insn, r);
      execute(insn, r);
    } catch (Fault f) {
      throw image.trap(pc, f);
    } catch (Trap t) {
      throw t;
    } catch (OutOfMemoryError e) {
      throw image.trap(pc, Trap.Kind.HOST_LIMIT, "the host ran out of memory");
    } catch (RuntimeException e) {
      throw image.trap(pc, Trap.Kind.BAD_OPERAND, "internal emulator error: " + e);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Bounds and operand checks.

  private long count(String what, long v, long max) {
    if (v < 0) {
      throw Fault.bad(what + " = " + v + " is negative");
    }
    if (v > max) {
      throw Fault.bad(what + " = " + v + " is larger than the emulator allows (" + max + ")");
    }
    return v;
  }

  private long countLimit() {
    return Math.max(sram.length, 1 << 16);
  }

  private static long memSize(MemSpace s, Hbm hbm, byte[] sram) {
    return s == MemSpace.HBM ? hbm.size() : sram.length;
  }

  /**
   * Checks a 3-D block (planes x rows x rowBytes) in a memory; the extremes of an affine block
   * are at its corners.
   */
  private void block(MemSpace space, String what, long base, long rows, long rstride, long planes,
      long pstride, long rowBytes, int align) {
    if (rows == 0 || planes == 0 || rowBytes == 0) {
      return;
    }
    if (align > 1) {
      aligned(space.name(), what, base, rows > 1 ? rstride : 0, align);
      aligned(space.name(), what, 0, planes > 1 ? pstride : 0, align);
    }
    long size = memSize(space, hbm, sram);
    try {
      long lo = Long.MAX_VALUE;
      long hi = Long.MIN_VALUE;
      for (int cp = 0; cp < 2; cp++) {
        for (int cr = 0; cr < 2; cr++) {
          long a = Math.addExact(base, Math.addExact(
              Math.multiplyExact(cp == 0 ? 0 : planes - 1, pstride),
              Math.multiplyExact(cr == 0 ? 0 : rows - 1, rstride)));
          lo = Math.min(lo, a);
          hi = Math.max(hi, Math.addExact(a, rowBytes));
        }
      }
      if (lo < 0 || hi > size) {
        throw oob(space.name(), what, base, rows, rstride, planes, rowBytes, lo, hi, size);
      }
    } catch (ArithmeticException e) {
      throw oob(space.name(), what, base, rows, rstride, planes, rowBytes, 0, 0, size);
    }
  }

  private static Fault oob(String mem, String what, long base, long rows, long stride,
      long planes, long rowBytes, long lo, long hi, long size) {
    String shape = (planes > 1 ? planes + " x " : "") + rows + " rows x " + rowBytes + " bytes";
    String span = hi > lo ? String.format(" spans [0x%x, 0x%x)", lo, hi) : " overflows 64 bits";
    return Fault.oob(String.format("%s: %s %s at 0x%x (row stride %d)%s, outside %s (%d bytes)",
        what, mem, shape, base, stride, span, mem, size));
  }

  private static void aligned(String mem, String what, long base, long stride, int align) {
    if (Math.floorMod(base, align) != 0) {
      throw new Fault(Trap.Kind.MISALIGNED, String.format("%s: %s address 0x%x is not a multiple "
          + "of the element size %d", what, mem, base, align));
    }
    if (Math.floorMod(stride, align) != 0) {
      throw new Fault(Trap.Kind.MISALIGNED, String.format("%s: %s stride %d is not a multiple "
          + "of the element size %d", what, mem, stride, align));
    }
  }

  /** Checks a rows x cols tile of dtype t in SRAM and returns its base address. */
  private int tile(String what, long base, long stride, long rows, long cols, DType t) {
    block(MemSpace.SRAM, what, base, rows, stride, 1, 0, cols * t.bytes(), t.bytes());
    return (int) base;
  }

  /** Checks a rows x cols block of ACC words. */
  private int accTile(String what, long base, long stride, long rows, long cols) {
    if (rows == 0 || cols == 0) {
      return 0;
    }
    try {
      long last = Math.addExact(base, Math.multiplyExact(rows - 1, stride));
      long lo = Math.min(base, last);
      long hi = Math.addExact(Math.max(base, last), cols);
      if (lo < 0 || hi > acc.length) {
        throw Fault.oob(String.format("%s: ACC %d rows x %d words at word %d (row stride %d) "
            + "spans words [%d, %d), outside ACC (%d words)", what, rows, cols, base, stride, lo,
            hi, acc.length));
      }
    } catch (ArithmeticException e) {
      throw Fault.oob(String.format("%s: ACC %d rows x %d words at word %d (row stride %d) "
          + "overflows 64 bits", what, rows, cols, base, stride));
    }
    return (int) base;
  }

  // ---------------------------------------------------------------------------------------------
  // Engine instructions.

  /**
   * A functional run is one chip, so a collective's group must be itself: a group of several
   * chips has no data here to add or gather (timing: MultiChipTiming); a LINK fence moves
   * nothing in any group.
   */
  private static <C extends Insn & Insn.LinkCollective> void singleChip(C c) {
    Collective.checkRank(c);
    if (c.chips() != 1 && !c.isFence()) {
      throw Fault.bad(c.def().mnemonic() + " over " + c.chips() + " chips in a single-chip "
          + "functional run (the functional emulator runs one chip; its group must be chips=1)");
    }
  }

  /**
   * reducescatter and allgather in a group of one chip: its block is the whole data, so both
   * copy rows rows of elems elements from src to dst (a sum over one chip is its value
   * unchanged), every source row read before any destination row is written.
   */
  private <C extends Insn & Insn.BlockCollective> void blockCollective(C c, long[] r) {
    singleChip(c);
    String what = c.def().mnemonic();
    int esize = c.dtype().bytes();
    // bounded so that the byte count cannot overflow: the bounds check reports a huge block
    long elems = count("elems", r[c.elemsReg()] + c.elemsImm(), Long.MAX_VALUE / esize);
    long rows = count("rows", r[c.rowsReg()] + c.rowsImm(), Math.max(countLimit(), hbm.size()));
    long rowBytes = elems * esize;
    long src = r[c.src()] + c.srcOff();
    long dst = r[c.dst()] + c.dstOff();
    long srcStride = rowStride(c.sstride(), r, rowBytes);
    long dstStride = rowStride(c.dstride(), r, rowBytes);
    block(c.space(), what + " source", src, rows, srcStride, 1, 0, rowBytes, esize);
    block(c.space(), what + " destination", dst, rows, dstStride, 1, 0, rowBytes, esize);
    if (rows <= 1 || srcStride == rowBytes && dstStride == rowBytes) {
      // both sides contiguous (the checks above bound rows x rowBytes by the memory)
      move(c.space(), src, dst, rows * rowBytes);
    } else {
      moveRows(c.space(), what, src, srcStride, dst, dstStride, rows, rowBytes);
    }
  }

  /** A collective's row stride: the register's value, or packed rows where it is r0. */
  private static long rowStride(int reg, long[] r, long rowBytes) {
    return reg == 0 ? rowBytes : r[reg];
  }

  /**
   * Copies rows strided rows of rowBytes bytes within one memory, every row read before any is
   * written: strided rows may interleave with the rows they overwrite in any order, so all are
   * staged.
   */
  private void moveRows(MemSpace space, String what, long src, long srcStride, long dst,
      long dstStride, long rows, long rowBytes) {
    if (rowBytes == 0) {
      return;
    }
    if (rows > (Integer.MAX_VALUE - 8) / rowBytes) {
      throw Fault.bad(what + " of " + rows + " rows x " + rowBytes + " bytes with row strides is "
          + "larger than the emulator allows");
    }
    int n = (int) rowBytes;
    byte[] staged = new byte[(int) (rows * n)];
    for (int i = 0; i < rows; i++) {
      load(space, src + i * srcStride, staged, i * n, n);
    }
    for (int i = 0; i < rows; i++) {
      store(space, dst + i * dstStride, staged, i * n, n);
    }
  }

  /** Copies bytes within one memory as if all were read before any is written (memmove). */
  private void move(MemSpace space, long src, long dst, long bytes) {
    int chunk = (int) Math.min(bytes, 1 << 20);
    byte[] tmp = new byte[chunk];
    // with dst above src, the end goes first: no chunk overwrites source not yet read
    boolean fromEnd = dst > src;
    for (long done = 0; done < bytes; done += chunk) {
      int n = (int) Math.min(chunk, bytes - done);
      long at = fromEnd ? bytes - done - n : done;
      copyRow(space, src + at, space, dst + at, n, tmp);
    }
  }

  private void execute(Insn insn, long[] r) {
    switch (insn) {
      case Insn.Dma d -> dma(d, r);
      case Insn.Gather g -> gather(g, r);
      case Insn.Scatter s -> scatter(s, r);
      case Insn.Allreduce a -> singleChip(a);
      case Insn.Reducescatter rs -> blockCollective(rs, r);
      case Insn.Allgather ag -> blockCollective(ag, r);
      case Insn.Mma m -> mma(m, r);
      case Insn.Vbin v -> vbin(v, r);
      case Insn.Vbini v -> vbini(v, r);
      case Insn.Vun v -> vun(v, r);
      case Insn.Vred v -> vred(v, r);
      case Insn.Vfill v -> vfill(v, r);
      case Insn.Vsel v -> vsel(v, r);
      case Insn.Softmax s -> softmax(s, r);
      case Insn.Layernorm l -> layernorm(l, r);
      case Insn.Rmsnorm n -> rmsnorm(n, r);
      case Insn.Rope p -> rope(p, r);
      case Insn.Vglu g -> vglu(g, r);
      case Insn.Cvt c -> cvt(c, r);
      case Insn.Accrd a -> accrd(a, r);
      case Insn.Accdq a -> accdq(a, r);
      case Insn.Accglu a -> accglu(a, r);
      case Insn.Accwr a -> accwr(a, r);
      default -> throw new IllegalStateException(insn.def().mnemonic() + " is not an engine "
          + "instruction");
    }
  }

  private void dma(Insn.Dma d, long[] r) {
    long rows = count("rows", r[d.rowsReg()] + d.rowsImm(), Math.max(countLimit(), hbm.size()));
    long planes = count("planes", r[d.planesReg()] + d.planesImm(),
        Math.max(countLimit(), hbm.size()));
    long rb = d.rowBytes();
    long dst = r[d.dst()] + d.dstOff();
    long src = r[d.src()] + d.srcOff();
    long dRs = r[d.dstRstride()];
    long sRs = r[d.srcRstride()];
    long dPs = r[d.dstPstride()];
    long sPs = r[d.srcPstride()];
    if (rows == 0 || planes == 0 || rb == 0) {
      return;
    }
    block(d.srcSpace(), "dma source", src, rows, sRs, planes, sPs, rb, 1);
    block(d.dstSpace(), "dma destination", dst, rows, dRs, planes, dPs, rb, 1);
    // Bounded by what the host may hold, not by the target's HBM: moving more in one
    // instruction rewrites the same bytes (a stride of 0), and would busy the host for hours.
    double total = (double) rows * planes * rb;
    long maxBytes = Math.max(sram.length, options.hostHbmBudgetBytes());
    if (total > maxBytes) {
      throw Fault.bad(String.format(java.util.Locale.ROOT, "dma of %.0f bytes (%d planes x %d rows x %d bytes) is more "
          + "than the emulator moves in one instruction (%d bytes, the larger of the SRAM and the "
          + "host HBM budget)", total, planes, rows, rb, maxBytes));
    }
    // rows dense on both sides of a copy between two memories are one bulk copy (within one
    // memory, row order matters when source and destination overlap)
    boolean dense = d.srcSpace() != d.dstSpace() && sRs == rb && dRs == rb
        && rows * rb <= Integer.MAX_VALUE;
    long n = dense ? rows * rb : rb;
    long perPlane = dense ? 1 : rows;
    byte[] tmp = dense ? null : new byte[(int) rb];
    for (long p = 0; p < planes; p++) {
      for (long i = 0; i < perPlane; i++) {
        long s = src + p * sPs + i * sRs;
        long t = dst + p * dPs + i * dRs;
        copyRow(d.srcSpace(), s, d.dstSpace(), t, (int) n, tmp);
      }
    }
  }

  private void copyRow(MemSpace from, long s, MemSpace to, long t, int n, byte[] tmp) {
    if (to == MemSpace.SRAM) {
      load(from, s, sram, (int) t, n);
    } else if (from == MemSpace.SRAM) {
      store(to, t, sram, (int) s, n);
    } else {
      load(from, s, tmp, 0, n);
      store(to, t, tmp, 0, n);
    }
  }

  /** Reads n bytes of a memory at addr into {@code to} at off. */
  private void load(MemSpace space, long addr, byte[] to, int off, int n) {
    if (space == MemSpace.SRAM) {
      System.arraycopy(sram, (int) addr, to, off, n);
    } else {
      hbm.read(addr, to, off, n);
    }
  }

  /** Writes n bytes of {@code from} at off into a memory at addr. */
  private void store(MemSpace space, long addr, byte[] from, int off, int n) {
    if (space == MemSpace.SRAM) {
      System.arraycopy(from, off, sram, (int) addr, n);
    } else {
      hbm.write(addr, from, off, n);
    }
  }

  private void gather(Insn.Gather g, long[] r) {
    long dst = r[g.dst()] + g.dstOff();
    long src = r[g.src()] + g.srcOff();
    long dRs = r[g.dstRstride()];
    long sRs = r[g.srcRstride()];
    long rows = count("rows", r[g.rowsReg()] + g.rowsImm(), countLimit());
    long idx = r[g.idx()] + g.idxOff();
    if (g.limit() != 0) {
      checkIndices(idx, rows, g.idx64(), r[g.limit()]);
    }
    // the table row is indexed, the destination rows are consecutive
    indexedRows("gather", rows, g.rowBytes(), idx, g.idx64(),
        g.srcSpace(), (i, index) -> Math.addExact(src, Math.multiplyExact(index, sRs)),
        g.dstSpace(), (i, index) -> dst + i * dRs, true, dst, dRs);
  }

  /** Traps unless each of the {@code rows} indices at SRAM {@code idx} lies in [0, limit). */
  private void checkIndices(long idx, long rows, boolean idx64, long limit) {
    int isz = idx64 ? 8 : 4;
    block(MemSpace.SRAM, "gather indices", idx, 1, 0, 1, 0, rows * isz, isz);
    for (long i = 0; i < rows; i++) {
      int at = (int) (idx + i * isz);
      long index = idx64 ? Elem.getI64(sram, at) : Elem.getI32(sram, at);
      if (index < 0 || index >= limit) {
        throw Fault.oob("gather: index " + index + " (row " + i + ") is outside the table's " + limit
            + " rows (its limit register)");
      }
    }
  }

  private void scatter(Insn.Scatter g, long[] r) {
    long dst = r[g.dst()] + g.dstOff();
    long src = r[g.src()] + g.srcOff();
    long dRs = r[g.dstRstride()];
    long dIs = r[g.dstIstride()];
    long sRs = r[g.srcRstride()];
    // the source rows are consecutive, the destination row is indexed
    indexedRows("scatter", r[g.rowsReg()] + g.rowsImm(), g.rowBytes(), r[g.idx()] + g.idxOff(), g.idx64(),
        g.srcSpace(), (i, index) -> src + i * sRs,
        g.dstSpace(), (i, index) -> Math.addExact(Math.addExact(dst, Math.multiplyExact(i, dRs)),
            Math.multiplyExact(index, dIs)), false, src, sRs);
  }

  /** A row's address from its number and its index (ArithmeticException on overflow). */
  private interface RowAddress {
    long at(long row, long index);
  }

  /**
   * Copies {@code rows} rows of {@code rb} bytes, row i with the i32 (i64) index at SRAM
   * {@code idx}, from {@code src.at(i, index)} to {@code dst.at(i, index)}: a gather when the
   * source is the indexed side, a scatter when the destination is. The other side's rows,
   * {@code plainRs} apart from {@code plain}, are checked at once, the indexed side row by row.
   */
  private void indexedRows(String op, long rowsValue, long rb, long idx, boolean idx64, MemSpace srcSpace,
      RowAddress src, MemSpace dstSpace, RowAddress dst, boolean indexedSource, long plain, long plainRs) {
    long rows = count("rows", rowsValue, countLimit());
    int isz = idx64 ? 8 : 4;
    if (rows == 0) {
      return;
    }
    block(MemSpace.SRAM, op + " indices", idx, 1, 0, 1, 0, rows * isz, isz);
    if (rb == 0) {
      return;
    }
    block(indexedSource ? dstSpace : srcSpace, op + (indexedSource ? " destination" : " source"), plain, rows,
        plainRs, 1, 0, rb, 1);
    byte[] tmp = new byte[(int) rb];
    for (long i = 0; i < rows; i++) {
      int at = (int) (idx + i * isz);
      long index = idx64 ? Elem.getI64(sram, at) : Elem.getI32(sram, at);
      long s;
      long d;
      try {
        s = src.at(i, index);
        d = dst.at(i, index);
      } catch (ArithmeticException e) {
        throw Fault.oob(op + ": index " + index + " (row " + i + ") overflows the "
            + (indexedSource ? "table" : "destination") + " address");
      }
      if (indexedSource) {
        block(srcSpace, op + " table row " + index + " (index " + i + ")", s, 1, 0, 1, 0, rb, 1);
      } else {
        block(dstSpace, op + " destination of row " + i + " (index " + index + ")", d, 1, 0, 1, 0, rb, 1);
      }
      copyRow(srcSpace, s, dstSpace, d, (int) rb, tmp);
    }
  }

  private void mma(Insn.Mma mm, long[] r) {
    int m = mm.m();
    int n = mm.n();
    DType t = mm.dtype();
    int e = t.bytes();
    long k = count("k", r[mm.kReg()] + mm.kImm(), countLimit());
    long a = r[mm.a()] + mm.aOff();
    long b = r[mm.b()] + mm.bOff();
    long lda = r[mm.lda()];
    long ldb = r[mm.ldb()];
    long c = r[mm.acc()] + mm.accOff();
    long ldc = r[mm.ldc()];
    if (mm.ta()) {
      block(MemSpace.SRAM, "mma A (transposed, k x m)", a, k, lda, 1, 0, (long) m * e, e);
    } else {
      block(MemSpace.SRAM, "mma A (m x k)", a, m, lda, 1, 0, k * e, e);
    }
    if (mm.tb()) {
      block(MemSpace.SRAM, "mma B (transposed, n x k)", b, n, ldb, 1, 0, k * e, e);
    } else {
      block(MemSpace.SRAM, "mma B (k x n)", b, k, ldb, 1, 0, (long) n * e, e);
    }
    int c0 = accTile("mma C", c, ldc, m, n);
    if (k == 0 && mm.accumulate()) {
      return;  // adds no products: ACC keeps its bits (an MXU fence's, beside the other stream)
    }
    boolean integer = t == DType.I8;
    if (integer) {
      int[][] cc = new int[m][n];
      if (mm.accumulate()) {
        for (int i = 0; i < m; i++) {
          System.arraycopy(acc, (int) (c0 + i * ldc), cc[i], 0, n);
        }
      }
      for (long p0 = 0; p0 < k; p0 += K_CHUNK) {
        int kc = (int) Math.min(K_CHUNK, k - p0);
        int[] aa = new int[m * kc];
        int[][] bb = new int[kc][n];
        for (int i = 0; i < m; i++) {
          for (int p = 0; p < kc; p++) {
            aa[i * kc + p] = sram[(int) aAddr(mm, a, lda, i, p0 + p)];
          }
        }
        for (int p = 0; p < kc; p++) {
          for (int j = 0; j < n; j++) {
            bb[p][j] = sram[(int) bAddr(mm, b, ldb, p0 + p, j)];
          }
        }
        MxuKernel.mmaI32(aa, bb, cc, m, n, kc, options.parallel());
      }
      for (int i = 0; i < m; i++) {
        System.arraycopy(cc[i], 0, acc, (int) (c0 + i * ldc), n);
      }
      return;
    }
    float[][] cc = new float[m][n];
    if (mm.accumulate()) {
      for (int i = 0; i < m; i++) {
        int base = (int) (c0 + i * ldc);
        for (int j = 0; j < n; j++) {
          cc[i][j] = Float.intBitsToFloat(acc[base + j]);
        }
      }
    }
    float[] row = new float[Math.max(m, n)];
    for (long p0 = 0; p0 < k; p0 += K_CHUNK) {
      int kc = (int) Math.min(K_CHUNK, k - p0);
      float[] aa = new float[m * kc];
      float[][] bb = new float[kc][];
      if (!mm.ta()) {
        for (int i = 0; i < m; i++) {
          Elem.loadRow(sram, (int) aAddr(mm, a, lda, i, p0), kc, t, aa, i * kc);
        }
      } else {
        for (int p = 0; p < kc; p++) {
          Elem.loadRow(sram, (int) aAddr(mm, a, lda, 0, p0 + p), m, t, row);
          for (int i = 0; i < m; i++) {
            aa[i * kc + p] = row[i];
          }
        }
      }
      if (!mm.tb()) {
        for (int p = 0; p < kc; p++) {
          bb[p] = new float[n];
          Elem.loadRow(sram, (int) bAddr(mm, b, ldb, p0 + p, 0), n, t, bb[p]);
        }
      } else {
        for (int p = 0; p < kc; p++) {
          bb[p] = new float[n];
        }
        float[] tmp = new float[kc];
        for (int j = 0; j < n; j++) {
          Elem.loadRow(sram, (int) bAddr(mm, b, ldb, p0, j), kc, t, tmp);
          for (int p = 0; p < kc; p++) {
            bb[p][j] = tmp[p];
          }
        }
      }
      MxuKernel.mmaF32(aa, bb, cc, m, n, kc, options.parallel());
    }
    for (int i = 0; i < m; i++) {
      int base = (int) (c0 + i * ldc);
      for (int j = 0; j < n; j++) {
        acc[base + j] = Float.floatToRawIntBits(cc[i][j]);
      }
    }
  }

  private static long aAddr(Insn.Mma mm, long a, long lda, long i, long p) {
    int e = mm.dtype().bytes();
    return mm.ta() ? a + p * lda + i * e : a + i * lda + p * e;
  }

  private static long bAddr(Insn.Mma mm, long b, long ldb, long p, long j) {
    int e = mm.dtype().bytes();
    return mm.tb() ? b + j * ldb + p * e : b + p * ldb + j * e;
  }

  // ---------------------------------------------------------------------------------------------
  // VPU: every operation works row by row (each row read completely before it is written), in
  // parallel across rows when the tile is large and the output overlaps no input.

  /** The work of one row; {@code buf} holds per-thread scratch rows. */
  @FunctionalInterface
  private interface RowOp {
    void row(int i, float[][] buf);
  }

  private void rows(long rows, int cols, int buffers, boolean disjoint, RowOp op) {
    int nrows = (int) rows;
    int width = Math.max(cols, 1);
    if (options.parallel() && disjoint && rows * cols >= PARALLEL_ELEMENTS && nrows >= 2) {
      int threads = MxuKernel.pool().getParallelism();
      int chunks = Math.min(nrows, threads * 4);
      List<ForkJoinTask<?>> tasks = new ArrayList<>();
      for (int c = 0; c < chunks; c++) {
        int i0 = (int) ((long) nrows * c / chunks);
        int i1 = (int) ((long) nrows * (c + 1) / chunks);
        tasks.add(ForkJoinTask.adapt(() -> {
          float[][] buf = new float[buffers][width];
          for (int i = i0; i < i1; i++) {
            op.row(i, buf);
          }
        }));
      }
      MxuKernel.pool().invoke(ForkJoinTask.adapt(() -> ForkJoinTask.invokeAll(tasks)));
      for (ForkJoinTask<?> t : tasks) {
        if (t.getException() instanceof Fault f) {
          throw f;
        }
      }
      return;
    }
    float[][] buf = new float[buffers][width];
    for (int i = 0; i < nrows; i++) {
      op.row(i, buf);
    }
  }

  /** Byte ranges [lo, hi) of tiles, to decide whether rows may run in parallel. */
  private static long[] span(long base, long stride, long rows, long rowBytes) {
    long last = base + (rows - 1) * stride;
    return new long[] {Math.min(base, last), Math.max(base, last) + rowBytes};
  }

  private static boolean disjoint(long[] out, long[]... ins) {
    for (long[] in : ins) {
      if (in != null && out[0] < in[1] && in[0] < out[1]) {
        return false;
      }
    }
    return true;
  }

  /** The work of a one-input instruction on one row: row i of its source, changed in place. */
  @FunctionalInterface
  private interface RowMap {
    void map(int i, float[] x);
  }

  /**
   * The loop nest of vun, softmax and rmsnorm: each row of src is loaded, mapped and stored to
   * the same row of dst, in parallel when dst overlaps no source row.
   */
  private void mapRows(long rows, int cols, DType t, int dst, long ds, int src, long ss, RowMap f) {
    mapRows(rows, cols, t, t, dst, ds, src, ss, f);
  }

  /** Rows of {@code in} mapped in f32 and stored as {@code out} (its rounding after dtype's). */
  private void mapRows(long rows, int cols, DType in, DType out, int dst, long ds, int src,
      long ss, RowMap f) {
    long inRb = (long) cols * in.bytes();
    long outRb = (long) cols * out.bytes();
    rows(rows, cols, 1, disjoint(span(dst, ds, rows, outRb), span(src, ss, rows, inRb)),
        (i, buf) -> {
          float[] x = buf[0];
          Elem.loadRow(sram, (int) (src + i * ss), cols, in, x);
          f.map(i, x);
          if (out != in) {
            for (int j = 0; j < cols; j++) {
              x[j] = dev.sohuc.isa.num.Numerics.roundTo(x[j], in);
            }
          }
          Elem.storeRow(sram, (int) (dst + i * ds), cols, out, x);
        });
  }

  private long rowsOf(long[] r, int reg) {
    return count("rows", r[reg], countLimit());
  }

  private int colsOf(long[] r, int reg) {
    return (int) count("cols", r[reg], countLimit());
  }

  private void vbin(Insn.Vbin v, long[] r) {
    long rows = rowsOf(r, v.rows());
    int cols = colsOf(r, v.cols());
    DType t = v.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ds = r[v.dstStride()];
    long as = r[v.aStride()];
    int dst = tile("vbin dst", r[v.dst()] + v.dstOff(), ds, rows, cols, t);
    int a = tile("vbin a", r[v.a()] + v.aOff(), as, rows, cols, t);
    Bcast bc = v.bcast();
    DType bt = v.bBf16() ? DType.BF16 : t;
    Operand b = operand("vbin b", r[v.b()] + v.bOff(), r[v.bStride()], bc, rows, cols, bt);
    int e = t.bytes();
    int be = bt.bytes();
    float[] rowB = new float[cols];
    if (bc == Bcast.ROW || bc == Bcast.SCALAR) {
      Elem.loadRow(sram, b.base(), b.cols(), bt, rowB);
    }
    boolean par = disjoint(span(dst, ds, rows, (long) cols * e), span(a, as, rows, (long) cols * e),
        span(b.base(), b.stride(), b.rows(), (long) b.cols() * be));
    rows(rows, cols, 3, par, (i, buf) -> {
      float[] x = buf[0];
      float[] y = buf[1];
      float[] o = buf[2];
      Elem.loadRow(sram, (int) (a + i * as), cols, t, x);
      switch (bc) {
        case NONE -> Elem.loadRow(sram, b.at(i, 0, be), cols, bt, y);
        case ROW -> System.arraycopy(rowB, 0, y, 0, cols);
        case COL -> java.util.Arrays.fill(y, 0, cols, Elem.load(sram, b.at(i, 0, be), bt));
        case SCALAR -> java.util.Arrays.fill(y, 0, cols, rowB[0]);
      }
      binop(v.op(), x, y, o, cols);
      Elem.storeRow(sram, (int) (dst + i * ds), cols, t, o);
    });
  }

  private void vsel(Insn.Vsel v, long[] r) {
    long rows = rowsOf(r, v.rows());
    int cols = colsOf(r, v.cols());
    DType t = v.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ds = r[v.dstStride()];
    long cs = r[v.condStride()];
    int dst = tile("vsel dst", r[v.dst()] + v.dstOff(), ds, rows, cols, t);
    int cond = tile("vsel cond", r[v.cond()] + v.condOff(), cs, rows, cols, DType.I8);
    Operand a = operand("vsel a", r[v.a()] + v.aOff(), r[v.aStride()], v.aBcast(), rows, cols, t);
    Operand b = operand("vsel b", r[v.b()] + v.bOff(), r[v.bStride()], v.bBcast(), rows, cols, t);
    int e = t.bytes();
    byte[] out = new byte[cols * e];
    for (long i = 0; i < rows; i++) {
      // each element copied byte for byte from the side its condition picks
      for (int j = 0; j < cols; j++) {
        Operand side = sram[(int) (cond + i * cs + j)] != 0 ? a : b;
        System.arraycopy(sram, side.at(i, j, e), out, j * e, e);
      }
      System.arraycopy(out, 0, sram, (int) (dst + i * ds), out.length);
    }
  }

  /**
   * A tile operand of {@code rows} x {@code cols} elements read through a broadcast: the SRAM
   * byte of element (i, j) of the tile, its one row or column standing for all.
   */
  private record Operand(int base, long stride, long rows, int cols) {
    int at(long i, int j, int e) {
      return (int) (base + Math.min(i, rows - 1) * stride + (long) Math.min(j, cols - 1) * e);
    }
  }

  private Operand operand(String what, long base, long stride, Bcast bc, long rows, int cols, DType t) {
    long r = bc.rows(rows);
    int c = bc.cols(cols);
    return new Operand(tile(what, base, stride, r, c, t), stride, r, c);
  }

  private static void binop(dev.sohuc.isa.BinOp op, float[] x, float[] y, float[] o, int n) {
    switch (op) {
      case ADD -> {
        for (int j = 0; j < n; j++) {
          o[j] = x[j] + y[j];
        }
      }
      case SUB -> {
        for (int j = 0; j < n; j++) {
          o[j] = x[j] - y[j];
        }
      }
      case MUL -> {
        for (int j = 0; j < n; j++) {
          o[j] = x[j] * y[j];
        }
      }
      default -> {
        for (int j = 0; j < n; j++) {
          o[j] = op.apply(x[j], y[j]);
        }
      }
    }
  }

  private void vbini(Insn.Vbini v, long[] r) {
    long rows = rowsOf(r, v.rows());
    int cols = colsOf(r, v.cols());
    DType t = v.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ds = r[v.dstStride()];
    long as = r[v.aStride()];
    int dst = tile("vbini dst", r[v.dst()] + v.dstOff(), ds, rows, cols, t);
    int a = tile("vbini a", r[v.a()] + v.aOff(), as, rows, cols, t);
    long rb = (long) cols * t.bytes();
    float imm = v.imm();
    rows(rows, cols, 2, disjoint(span(dst, ds, rows, rb), span(a, as, rows, rb)), (i, buf) -> {
      float[] x = buf[0];
      float[] o = buf[1];
      Elem.loadRow(sram, (int) (a + i * as), cols, t, x);
      for (int j = 0; j < cols; j++) {
        o[j] = v.rev() ? v.op().apply(imm, x[j]) : v.op().apply(x[j], imm);
      }
      Elem.storeRow(sram, (int) (dst + i * ds), cols, t, o);
    });
  }

  private void vun(Insn.Vun v, long[] r) {
    long rows = rowsOf(r, v.rows());
    int cols = colsOf(r, v.cols());
    DType t = v.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ds = r[v.dstStride()];
    long ss = r[v.srcStride()];
    int dst = tile("vun dst", r[v.dst()] + v.dstOff(), ds, rows, cols, t);
    int src = tile("vun src", r[v.src()] + v.srcOff(), ss, rows, cols, t);
    UnaryFn fn = v.fn();
    mapRows(rows, cols, t, dst, ds, src, ss, (i, x) -> {
      for (int j = 0; j < cols; j++) {
        x[j] = ExactMath.apply(fn, x[j]);
      }
    });
  }

  private void vred(Insn.Vred v, long[] r) {
    long rows = rowsOf(r, v.rows());
    int cols = colsOf(r, v.cols());
    DType t = v.dtype();
    if (rows == 0) {
      return;
    }
    long ds = r[v.dstStride()];
    long ss = r[v.srcStride()];
    int dst = tile("vred dst", r[v.dst()] + v.dstOff(), ds, rows, 1, t);
    int src = tile("vred src", r[v.src()] + v.srcOff(), ss, rows, cols, t);
    float[] x = new float[Math.max(cols, 1)];
    for (long i = 0; i < rows; i++) {
      Elem.loadRow(sram, (int) (src + i * ss), cols, t, x);
      if (v.abs()) {
        for (int j = 0; j < cols; j++) {
          x[j] = Math.abs(x[j]);
        }
      }
      Elem.store(sram, (int) (dst + i * ds), t, reduce(v.op(), x, cols));
    }
  }

  static float reduce(RedOp op, float[] x, int n) {
    switch (op) {
      case SUM, MEAN -> {
        float s = 0f;
        for (int j = 0; j < n; j++) {
          s += x[j];
        }
        return op == RedOp.SUM ? s : s / n;
      }
      case MAX -> {
        float m = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < n; j++) {
          m = Math.max(m, x[j]);
        }
        return m;
      }
      case MIN -> {
        float m = Float.POSITIVE_INFINITY;
        for (int j = 0; j < n; j++) {
          m = Math.min(m, x[j]);
        }
        return m;
      }
      default -> throw new IllegalStateException(op.name());
    }
  }

  private void vfill(Insn.Vfill v, long[] r) {
    long rows = rowsOf(r, v.rows());
    int cols = colsOf(r, v.cols());
    DType t = v.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ds = r[v.dstStride()];
    int dst = tile("vfill dst", r[v.dst()] + v.dstOff(), ds, rows, cols, t);
    float[] o = new float[cols];
    java.util.Arrays.fill(o, v.value());
    for (long i = 0; i < rows; i++) {
      Elem.storeRow(sram, (int) (dst + i * ds), cols, t, o);
    }
  }

  private void softmax(Insn.Softmax s, long[] r) {
    long rows = rowsOf(r, s.rows());
    int cols = colsOf(r, s.cols());
    DType t = s.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ds = r[s.dstStride()];
    long ss = r[s.srcStride()];
    DType out = s.outBf16() ? DType.BF16 : t;
    int dst = tile("softmax dst", r[s.dst()] + s.dstOff(), ds, rows, cols, out);
    long diag = r[s.diag()];
    long valid = s.valid() == 0 ? Long.MAX_VALUE : r[s.valid()];
    long window = s.window() == 0 ? 0 : r[s.window()];
    float scale = s.scale();
    boolean causal = s.causal();
    // deferred normalization: each row's 1 / sum, one f32 a row
    int sums = s.sums() == 0 ? -1 : tile("softmax sums", r[s.sums()], 4, rows, 1, DType.F32);
    RowMap softmaxRow = (i, x) -> {
      // unmasked columns are j < limit: causal masks j > i + diag, valid masks j >= valid
      long limit = Math.min(cols, valid);
      if (causal) {
        long d = Math.min(diag, cols);
        limit = Math.min(limit, Math.max(-1, i + d) + 1);
      }
      int lim = (int) Math.max(0, limit);
      // a positive window masks j <= i + diag - window: unmasked columns start at lo
      int lo = window <= 0 ? 0 : (int) Math.min(lim, Math.max(0, i + diag - window + 1));
      float m = Float.NEGATIVE_INFINITY;
      for (int j = lo; j < lim; j++) {
        x[j] = scale * x[j];
        m = Math.max(m, x[j]);
      }
      float sum = 0f;
      for (int j = lo; j < lim; j++) {
        x[j] = ExactMath.exp(x[j] - m);
        sum += x[j];
      }
      if (sums >= 0) {
        Elem.storeRow(sram, (int) (sums + 4 * i), 1, DType.F32,
            new float[] {lo < lim ? 1f / sum : 0f});
      } else {
        for (int j = lo; j < lim; j++) {
          x[j] = x[j] / sum;
        }
      }
      for (int j = 0; j < lo; j++) {
        x[j] = 0f;
      }
      for (int j = lim; j < cols; j++) {
        x[j] = 0f;
      }
    };
    if (!s.srcAcc()) {
      int src = tile("softmax src", r[s.src()] + s.srcOff(), ss, rows, cols, t);
      mapRows(rows, cols, t, out, dst, ds, src, ss, softmaxRow);
      return;
    }
    // the scores in ACC: f32 words, rows ss words apart
    int src = accTile("softmax ACC scores", r[s.src()] + s.srcOff(), ss, rows, cols);
    float[] x = new float[cols];
    for (int i = 0; i < rows; i++) {
      int base = (int) (src + i * ss);
      for (int j = 0; j < cols; j++) {
        x[j] = Float.intBitsToFloat(acc[base + j]);
      }
      softmaxRow.map(i, x);
      if (out != t) {
        for (int j = 0; j < cols; j++) {
          x[j] = dev.sohuc.isa.num.Numerics.roundTo(x[j], t);
        }
      }
      Elem.storeRow(sram, (int) (dst + i * ds), cols, out, x);
    }
  }

  private void layernorm(Insn.Layernorm l, long[] r) {
    long rows = rowsOf(r, l.rows());
    int cols = colsOf(r, l.cols());
    DType t = l.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long st = r[l.stride()];
    int dst = tile("layernorm dst", r[l.dst()] + l.dstOff(), st, rows, cols, t);
    int src = tile("layernorm src", r[l.src()] + l.srcOff(), st, rows, cols, t);
    int gb = tile("layernorm gamma", r[l.gamma()] + l.gammaOff(), 0, 1, cols, t);
    int bb = tile("layernorm beta", r[l.beta()] + l.betaOff(), 0, 1, cols, t);
    float[] gamma = new float[cols];
    float[] beta = new float[cols];
    Elem.loadRow(sram, gb, cols, t, gamma);
    Elem.loadRow(sram, bb, cols, t, beta);
    float eps = l.eps();
    long rb = (long) cols * t.bytes();
    rows(rows, cols, 1, dst == src || disjoint(span(dst, st, rows, rb), span(src, st, rows, rb)),
        (i, buf) -> {
          float[] x = buf[0];
          Elem.loadRow(sram, (int) (src + i * st), cols, t, x);
          float sum = 0f;
          for (int j = 0; j < cols; j++) {
            sum += x[j];
          }
          float mean = sum / cols;
          float sq = 0f;
          for (int j = 0; j < cols; j++) {
            float d = x[j] - mean;
            sq += d * d;
          }
          float var = sq / cols;
          float rs = (float) (1.0 / StrictMath.sqrt((double) (var + eps)));
          for (int j = 0; j < cols; j++) {
            x[j] = (x[j] - mean) * rs * gamma[j] + beta[j];
          }
          Elem.storeRow(sram, (int) (dst + i * st), cols, t, x);
        });
  }

  private void rmsnorm(Insn.Rmsnorm n, long[] r) {
    long rows = rowsOf(r, n.rows());
    int cols = colsOf(r, n.cols());
    DType t = n.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ds = r[n.dstStride()];
    long ss = r[n.srcStride()];
    DType out = n.outBf16() ? DType.BF16 : t;
    int dst = tile("rmsnorm dst", r[n.dst()] + n.dstOff(), ds, rows, cols, out);
    int src = tile("rmsnorm src", r[n.src()] + n.srcOff(), ss, rows, cols, t);
    int gb = tile("rmsnorm gamma", r[n.gamma()] + n.gammaOff(), 0, 1, cols, t);
    float[] gamma = new float[cols];
    Elem.loadRow(sram, gb, cols, t, gamma);
    float eps = n.eps();
    mapRows(rows, cols, t, out, dst, ds, src, ss, (i, x) -> {
      float sq = 0f;
      for (int j = 0; j < cols; j++) {
        sq += x[j] * x[j];
      }
      float ms = sq / cols;
      float rs = (float) (1.0 / StrictMath.sqrt((double) (ms + eps)));
      for (int j = 0; j < cols; j++) {
        x[j] = x[j] * rs * gamma[j];
      }
    });
  }

  private void rope(Insn.Rope p, long[] r) {
    long rows = rowsOf(r, p.rows());
    int cols = colsOf(r, p.cols());
    DType t = p.dtype();
    if (cols % 2 != 0) {
      throw Fault.bad("rope: cols = " + cols + " is odd (cols must be even)");
    }
    if (rows == 0 || cols == 0) {
      return;
    }
    int h = cols / 2;
    long ds = r[p.dstStride()];
    long ss = r[p.srcStride()];
    long ts = r[p.tableStride()];
    long pos = r[p.pos()];
    int dst = tile("rope dst", r[p.dst()] + p.dstOff(), ds, rows, cols, t);
    int src = tile("rope src", r[p.src()] + p.srcOff(), ss, rows, cols, t);
    // rows pos .. pos+rows-1 read table rows first .. (pos+rows-1)/group
    long group = Math.max(1, r[p.group()]);
    long first = Math.floorDiv(pos, group);
    long cosRow0;
    long sinRow0;
    long tableRows;
    try {
      cosRow0 = Math.addExact(r[p.cos()] + p.cosOff(), Math.multiplyExact(first, ts));
      sinRow0 = Math.addExact(r[p.sin()] + p.sinOff(), Math.multiplyExact(first, ts));
      tableRows = Math.floorDiv(Math.addExact(pos, rows - 1), group) - first + 1;
    } catch (ArithmeticException e) {
      throw Fault.oob("rope: table row pos = " + pos + " overflows the table address");
    }
    int cb = tile("rope cos table (rows (pos..pos+rows-1)/group)", cosRow0, ts, tableRows, h, t);
    int sb = tile("rope sin table (rows (pos..pos+rows-1)/group)", sinRow0, ts, tableRows, h, t);
    boolean half = p.mode() == RopeMode.HALF;
    long rb = (long) cols * t.bytes();
    rows(rows, cols, 3, disjoint(span(dst, ds, rows, rb), span(src, ss, rows, rb)), (i, buf) -> {
      float[] x = buf[0];
      float[] cs = buf[1];
      float[] sn = buf[2];
      Elem.loadRow(sram, (int) (src + i * ss), cols, t, x);
      long row = Math.floorDiv(pos + i, group) - first;
      Elem.loadRow(sram, (int) (cb + row * ts), h, t, cs);
      Elem.loadRow(sram, (int) (sb + row * ts), h, t, sn);
      for (int c = 0; c < h; c++) {
        int i1 = half ? c : 2 * c;
        int i2 = half ? c + h : 2 * c + 1;
        float x1 = x[i1];
        float x2 = x[i2];
        float y1 = x1 * cs[c] - x2 * sn[c];
        float y2 = x2 * cs[c] + x1 * sn[c];
        x[i1] = y1;
        x[i2] = y2;
      }
      Elem.storeRow(sram, (int) (dst + i * ds), cols, t, x);
    });
  }

  private void vglu(Insn.Vglu g, long[] r) {
    long rows = rowsOf(r, g.rows());
    int cols = colsOf(r, g.cols());
    DType t = g.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ds = r[g.dstStride()];
    long gs = r[g.gateStride()];
    long us = r[g.upStride()];
    int dst = tile("vglu dst", r[g.dst()] + g.dstOff(), ds, rows, cols, t);
    int gate = tile("vglu gate", r[g.gate()] + g.gateOff(), gs, rows, cols, t);
    int up = tile("vglu up", r[g.up()] + g.upOff(), us, rows, cols, t);
    long rb = (long) cols * t.bytes();
    UnaryFn fn = g.fn();
    rows(rows, cols, 2, disjoint(span(dst, ds, rows, rb), span(gate, gs, rows, rb),
        span(up, us, rows, rb)), (i, buf) -> {
          float[] x = buf[0];
          float[] y = buf[1];
          Elem.loadRow(sram, (int) (gate + i * gs), cols, t, x);
          Elem.loadRow(sram, (int) (up + i * us), cols, t, y);
          for (int j = 0; j < cols; j++) {
            x[j] = ExactMath.apply(fn, x[j]) * y[j];
          }
          Elem.storeRow(sram, (int) (dst + i * ds), cols, t, x);
        });
  }

  private void cvt(Insn.Cvt c, long[] r) {
    long rows = rowsOf(r, c.rows());
    int cols = colsOf(r, c.cols());
    DType to = c.dstDtype();
    DType from = c.srcDtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ds = r[c.dstStride()];
    long ss = r[c.srcStride()];
    int dst = tile("cvt dst", r[c.dst()] + c.dstOff(), ds, rows, cols, to);
    int src = tile("cvt src", r[c.src()] + c.srcOff(), ss, rows, cols, from);
    float[] vec;
    switch (c.mode()) {
      case TENSOR -> vec = null;
      case ROW -> {
        int at = tile("cvt scale_vec (one f32 per row)", r[c.scaleVec()] + c.scaleVecOff(), 0, 1,
            rows, DType.F32);
        vec = new float[(int) rows];
        Elem.loadRow(sram, at, (int) rows, DType.F32, vec);
      }
      case COL -> {
        int at = tile("cvt scale_vec (one f32 per column)", r[c.scaleVec()] + c.scaleVecOff(), 0,
            1, cols, DType.F32);
        vec = new float[cols];
        Elem.loadRow(sram, at, cols, DType.F32, vec);
      }
      default -> throw new IllegalStateException(c.mode().name());
    }
    boolean div = c.div();
    float scale = c.scale();
    dev.sohuc.isa.ScaleMode mode = c.mode();
    rows(rows, cols, 1, disjoint(span(dst, ds, rows, (long) cols * to.bytes()),
        span(src, ss, rows, (long) cols * from.bytes())), (i, buf) -> {
          float[] x = buf[0];
          Elem.loadRow(sram, (int) (src + i * ss), cols, from, x);
          for (int j = 0; j < cols; j++) {
            float s = switch (mode) {
              case TENSOR -> scale;
              case ROW -> vec[i];
              case COL -> vec[j];
            };
            x[j] = div ? x[j] / s : x[j] * s;
          }
          Elem.storeRow(sram, (int) (dst + i * ds), cols, to, x);
        });
  }

  /**
   * The tiles of a readout from ACC ({@code accrd}, {@code accdq}): rows x cols f32 or i32 words
   * from ACC to dtype in SRAM, both bounds-checked; null when it is empty.
   */
  private record AccReadout(long rows, int cols, int dst, long ds, int src, long as) {
    /** The f32 value of an ACC word: the i32 converted for an i8 matmul's ACC. */
    static float value(int word, boolean i32) {
      return i32 ? (float) word : Float.intBitsToFloat(word);
    }
  }

  private AccReadout accReadout(String name, long[] r, int rowsReg, int colsReg, int dstReg,
      int dstOff, int dstStrideReg, int accReg, int accOff, int accStrideReg, DType t) {
    long rows = rowsOf(r, rowsReg);
    int cols = colsOf(r, colsReg);
    if (rows == 0 || cols == 0) {
      return null;
    }
    long ds = r[dstStrideReg];
    long as = r[accStrideReg];
    int dst = tile(name + " dst", r[dstReg] + dstOff, ds, rows, cols, t);
    int src = accTile(name + " ACC", r[accReg] + accOff, as, rows, cols);
    return new AccReadout(rows, cols, dst, ds, src, as);
  }

  private void accrd(Insn.Accrd a, long[] r) {
    DType t = a.dtype();
    AccReadout o = accReadout("accrd", r, a.rows(), a.cols(), a.dst(), a.dstOff(), a.dstStride(),
        a.acc(), a.accOff(), a.accStride(), t);
    if (o == null) {
      return;
    }
    long rows = o.rows();
    int cols = o.cols();
    Bcast bc = a.biasBcast();
    float[] bias = null;
    if (bc != Bcast.NONE) {
      int n = switch (bc) {
        case ROW -> cols;
        case COL -> (int) rows;
        default -> 1;
      };
      int at = tile("accrd bias (f32)", r[a.bias()] + a.biasOff(), 0, 1, n, DType.F32);
      bias = new float[n];
      Elem.loadRow(sram, at, n, DType.F32, bias);
    }
    boolean copy = a.accI32() && t == DType.I32;
    float scale = a.scale();
    UnaryFn act = a.act();
    float[] b = bias;
    float[] x = new float[cols];
    for (int i = 0; i < rows; i++) {
      int base = (int) (o.src() + i * o.as());
      int out = (int) (o.dst() + i * o.ds());
      if (copy) {
        for (int j = 0; j < cols; j++) {
          Elem.putI32(sram, out + 4 * j, acc[base + j]);
        }
        continue;
      }
      for (int j = 0; j < cols; j++) {
        float v = AccReadout.value(acc[base + j], a.accI32()) * scale;
        if (b != null) {
          float bij = switch (bc) {
            case ROW -> b[j];
            case COL -> b[i];
            default -> b[0];
          };
          v = a.biasMul() ? v * bij : v + bij;
        }
        x[j] = ExactMath.apply(act, v);
      }
      Elem.storeRow(sram, out, cols, t, x);
    }
  }

  private void accdq(Insn.Accdq a, long[] r) {
    AccReadout o = accReadout("accdq", r, a.rows(), a.cols(), a.dst(), a.dstOff(),
        a.dstStride(), a.acc(), a.accOff(), a.accStride(), a.dtype());
    if (o == null) {
      return;
    }
    int rows = (int) o.rows();
    int cols = o.cols();
    float[] rowScales = new float[rows];
    Elem.loadRow(sram, tile("accdq row scales (f32)", r[a.rowScales()], 0, 1, rows, DType.F32),
        rows, DType.F32, rowScales);
    float[] colScales = new float[cols];
    Elem.loadRow(sram, tile("accdq column scales (f32)", r[a.colScales()], 0, 1, cols,
        DType.F32), cols, DType.F32, colScales);
    float scale = a.scale();
    float[] x = new float[cols];
    for (int i = 0; i < rows; i++) {
      int base = (int) (o.src() + i * o.as());
      for (int j = 0; j < cols; j++) {
        // one f32 rounding a product, in this order: the numbers of accrd then cvt mode=col
        x[j] = AccReadout.value(acc[base + j], a.accI32()) * scale * rowScales[i] * colScales[j];
      }
      Elem.storeRow(sram, (int) (o.dst() + i * o.ds()), cols, a.dtype(), x);
    }
  }

  private void accglu(Insn.Accglu a, long[] r) {
    AccReadout o = accReadout("accglu", r, a.rows(), a.cols(), a.dst(), a.dstOff(),
        a.dstStride(), a.gate(), a.gateOff(), a.accStride(), a.dtype());
    if (o == null) {
      return;
    }
    int rows = (int) o.rows();
    int cols = o.cols();
    int up = accTile("accglu ACC (up)", r[a.up()] + a.upOff(), o.as(), rows, cols);
    float[] rowScales = scales("accglu row scales (f32)", r, a.rowScales(), rows);
    // the gate's column scales, then the linear half's
    float[] colScales = scales("accglu column scales (f32)", r, a.colScales(), 2 * cols);
    UnaryFn fn = a.fn();
    float[] x = new float[cols];
    for (int i = 0; i < rows; i++) {
      int g = (int) (o.src() + i * o.as());
      int u = (int) (up + i * o.as());
      for (int j = 0; j < cols; j++) {
        // one f32 rounding a product, in this order: the numbers of accdq (or accrd), then vglu
        float gate = AccReadout.value(acc[g + j], a.accI32()) * rowScales[i] * colScales[j];
        float lin = AccReadout.value(acc[u + j], a.accI32()) * rowScales[i]
            * colScales[cols + j];
        x[j] = ExactMath.apply(fn, gate) * lin;
      }
      Elem.storeRow(sram, (int) (o.dst() + i * o.ds()), cols, a.dtype(), x);
    }
  }

  /** {@code count} f32 scales at the SRAM address in register {@code reg}; ones for r0. */
  private float[] scales(String what, long[] r, int reg, int count) {
    float[] v = new float[count];
    if (reg == 0) {
      java.util.Arrays.fill(v, 1f);
    } else {
      Elem.loadRow(sram, tile(what, r[reg], 0, 1, count, DType.F32), count, DType.F32, v);
    }
    return v;
  }

  private void accwr(Insn.Accwr a, long[] r) {
    long rows = rowsOf(r, a.rows());
    int cols = colsOf(r, a.cols());
    DType t = a.dtype();
    if (rows == 0 || cols == 0) {
      return;
    }
    long ss = r[a.srcStride()];
    long as = r[a.accStride()];
    int src = tile("accwr src", r[a.src()] + a.srcOff(), ss, rows, cols, t);
    int dst = accTile("accwr ACC", r[a.acc()] + a.accOff(), as, rows, cols);
    float[] x = new float[cols];
    for (int i = 0; i < rows; i++) {
      int in = (int) (src + i * ss);
      int base = (int) (dst + i * as);
      if (t.isFloat()) {
        Elem.loadRow(sram, in, cols, t, x);
        for (int j = 0; j < cols; j++) {
          acc[base + j] = Float.floatToRawIntBits(x[j]);
        }
      } else {
        for (int j = 0; j < cols; j++) {
          acc[base + j] = Elem.loadInt(sram, in + t.bytes() * j, t);
        }
      }
    }
  }

  /** For tests: round an f32 to a dtype as a store would. */
  static float round(float v, DType t) {
    return Numerics.roundTo(v, t);
  }
}
