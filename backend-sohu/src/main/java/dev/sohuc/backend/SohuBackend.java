package dev.sohuc.backend;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.Engine;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.container.SohuProgram;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The backend driver: fused IR in, a {@code .sohu} program out.
 *
 * <ol>
 *   <li>folds source ops (weights, constants, static fills and ranges) into the constants image;
 *   <li>rewrites the ops the chip runs only in another form ({@link Legalization}: reductions
 *       over a middle axis, log-softmax, broadcasts outside the vector unit's row patterns);
 *   <li>checks every op and reports all unsupported ones at once;
 *   <li>plans HBM: constants, inputs and outputs (sized at the symbols' bounds), then an arena
 *       for intermediates with liveness-based first-fit reuse; reshapes alias their operand;
 *   <li>emits code: {@code ldarg} of every symbolic dim, then each op's loop nest, ops joined by
 *       token handoffs between the engines (a {@code barrier} around collectives and before the
 *       output copies; an all_reduce summed inside its matmul instead runs on the link past it,
 *       and the first op that reads the sum waits for its LINK fence), then {@code halt};
 *   <li>links the container: code, constants, symbols, per-instruction debug, metadata, args.
 * </ol>
 */
public final class SohuBackend {
  public static final String VERSION = "0.1.0";
  /** HBM below this address is left unused, so that a null address traps. */
  static final long HBM_BASE = 0x10000;
  static final long HBM_ALIGN = 256;
  /** The most bytes an HBM plan adds up (sums below it cannot overflow a long). */
  static final long MAX_PLANNED_BYTES = 1L << 62;
  /** The constants image is one byte array, so no folded constant can be larger. */
  static final long MAX_FOLDED_BYTES = Integer.MAX_VALUE - 8;

  private SohuBackend() {}

  public static CompiledProgram compile(Module module, BackendOptions options) {
    TargetInfo target = options.target() == null ? TargetInfo.defaults()
        : TargetInfo.load(options.target());
    return new SohuBackend.Run(module, options, target).run();
  }

  /** Ops that make no code: weights, constants, arguments and shape queries. */
  static boolean isSource(Node n) {
    return n.op() instanceof SourceOp || n.op() instanceof DataOp.Shape
        || n.op() instanceof DataOp.Size;
  }

  private static final class Run {
    final Module module;
    final BackendOptions options;
    /**
     * The target, or stream 0's part of it when the program forks (StreamPlan); stream 1's
     * part then.
     */
    TargetInfo target;
    TargetInfo secondTarget;
    final Function fn;
    /** The ops the second stream runs (StreamPlan.named). */
    Set<Node> secondStream = Set.of();
    StreamPlan plan = StreamPlan.single();
    final Map<Value, Tensor> known = new IdentityHashMap<>();
    /** Ranges of symbolic length, laid out at their bound (not known: their length varies). */
    final Map<Value, Tensor> rangePrefixes = new IdentityHashMap<>();
    final Map<Value, Long> addr = new IdentityHashMap<>();
    final Map<Value, Long> size = new IdentityHashMap<>();
    final Map<String, Long> bounds = new LinkedHashMap<>();
    /** Shape-only weight values: their offset in the shape-only region after the constants image. */
    final Map<Value, Long> shapeOnlyOffset = new IdentityHashMap<>();
    long shapeOnlyBytes;
    // the HBM plan at the current bounds (see planHbm)
    final List<SohuProgram.Symbol> symbols = new ArrayList<>();
    final Map<Value, Long> outputRegion = new IdentityHashMap<>();
    final List<Long> outputAddr = new ArrayList<>();
    long[] arena;
    long hbmEnd;
    final List<String> notes = new ArrayList<>();
    /**
     * Ops lowered inside the op that reads them, producer to consumer: conversions inside their
     * reader (QuantLowering.fusedConversions: a qmatmul, or the binary op a widening cast feeds),
     * residual adds inside the rms_norm after them (Lowering.fusedResidualAdds), transposes
     * inside the rope after them or the qmatmul converting their merged heads
     * (Lowering.foldedTransposes).
     */
    Map<Node, Node> fusedProducers = Map.of();
    /** Ropes to the bf16 cast each writes itself (Lowering.narrowedRopes). */
    Map<Node, Node> narrowedRopes = Map.of();
    /** The qmatmuls' x conversions, resident in SRAM or written by the norm before them. */
    QuantLowering.Residency residency;
    /** Norms to the bf16 cast each writes itself (Lowering.narrowedNorms). */
    Map<Node, Node> narrowedNorms = Map.of();
    /** What each matmul may do to its result in its own code (QuantLowering.epilogues). */
    Map<Node, QuantLowering.Epilogue> epilogues = Map.of();
    /** SwiGLUs whose gate and up are one qmatmul, by the gate (QuantLowering.gatedPairs). */
    Map<Node, QuantLowering.GatedPair> gatedPairs = Map.of();
    /** The KV caches appended to in place, input and result, to their capacity (planHbm). */
    Map<Value, Long> kvCapacity = Map.of();

    Run(Module module, BackendOptions options, TargetInfo target) {
      this.module = module;
      this.options = options;
      this.target = target;
      this.fn = module.main();
    }

    CompiledProgram run() {
      // symbols, in order of first appearance among the inputs
      for (Value a : fn.arguments()) {
        for (Dim d : a.type().dims()) {
          for (String s : d.symbols()) {
            bounds.putIfAbsent(s, options.boundOf(s));
          }
        }
      }
      List<Problem> problems = new ArrayList<>();
      Set<Value> emptyNamed = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
      for (Node n : fn.body()) {
        for (Value r : n.results()) {
          for (Dim d : r.type().dims()) {
            for (String s : d.symbols()) {
              if (!bounds.containsKey(s)) {
                problems.add(new Problem(n, "unbound dim ?" + s + " (not a dim of any input)"));
                bounds.put(s, 1L);
              }
            }
          }
        }
      }
      fold();
      for (Value c : Legalization.run(fn, known, module.weights())) {
        foldNode(c.producer());
      }
      secondStream = StreamPlan.named(fn, options.secondStream());
      if (StreamPlan.forks(fn, secondStream, SohuBackend::isSource)) {
        secondTarget = target.part(options.secondStreamShare());
        target = target.part(1 - options.secondStreamShare());
      }
      for (Node n : fn.body()) {
        if (isSource(n)) {
          if (!(n.op() instanceof SourceOp.WeightRef) && !known.containsKey(n.result())
              && !rangePrefixes.containsKey(n.result())) {
            problems.add(new Problem(n, "'" + n.op().mnemonic() + "' with a symbolic shape"));
          }
          continue;
        }
        // an empty tensor is named once, by the first op that reads or makes it: the ops that
        // only pass it on would repeat it for every op of the model
        Value empty = Lowering.emptyValue(n);
        if (empty != null) {
          boolean first = emptyNamed.add(empty);
          emptyNamed.addAll(n.results());
          if (!first) {
            continue;
          }
        }
        String why = n.op() instanceof dev.sohuc.ir.op.TransformerOp.AllReduce
            ? CollectiveLowering.unsupportedReason(n, fn)
            : isBlockCollective(n) ? CollectiveLowering.blockUnsupportedReason(n)
            : Lowering.unsupportedReason(n, known);
        if (why != null) {
          problems.add(new Problem(n, why));
        }
      }
      if (!problems.isEmpty()) {
        throw new BackendException("unsupported by the sohu backend (" + problems.size() + "):\n  "
            + String.join("\n  ", grouped(problems)));
      }
      resize();
      epilogues = QuantLowering.epilogues(fn);
      gatedPairs = QuantLowering.gatedPairs(fn, known);
      byte[] constImage = layoutConstants();
      long constEnd = align(HBM_BASE + constImage.length);
      for (Map.Entry<Value, Long> w : shapeOnlyOffset.entrySet()) {
        addr.put(w.getKey(), constEnd + w.getValue());
      }
      long dataStart = align(constEnd + shapeOnlyBytes);
      planHbm(dataStart);
      fitDefaultBounds(dataStart);
      try {
        return emit(constImage, true);
      } catch (BackendException tooLittleSram) {
        // an op found too little SRAM (or registers) beside a collective's region: every
        // gather and scatter through HBM (an error unrelated to the regions comes again)
        notes.add("collectives through HBM, not SRAM: " + tooLittleSram.getMessage());
        return emit(constImage, false);
      }
    }

    /** The code, and the program; with {@code collectivesInSram} planned by SramCollectives. */
    private CompiledProgram emit(byte[] constImage, boolean collectivesInSram) {
      Emitter e = new Emitter();
      Map<String, Integer> symRegs = new LinkedHashMap<>();
      List<SohuProgram.ArgSlot> args = new ArrayList<>();
      int index = 0;
      for (String s : bounds.keySet()) {
        int r = e.alloc();
        e.reserve(r);
        e.emit(new Insn.Ldarg(r, index, 0, 0, 0));
        symRegs.put(s, r);
        args.add(new SohuProgram.ArgSlot(s, index++));
      }
      Map<Value, Integer> lengthSlots = new IdentityHashMap<>();
      for (Map.Entry<Value, Dim> lengths : pastLengths().entrySet()) {
        Value v = lengths.getKey();
        int capacity = (int) v.type().dim(0).evaluate(bounds);
        args.add(new SohuProgram.ArgSlot(v.name(), index, new SohuProgram.ArgSlot.Values(capacity,
            lengths.getValue().toString().replace("?", ""))));
        lengthSlots.put(v, index);
        index += capacity;
      }
      Lane[] lanes = plan.forked()
          ? new Lane[] {new Lane(0, e.continuing()), new Lane(1, e.continuing())}
          : new Lane[] {new Lane(0, e)};
      for (Lane lane : lanes) {
        // each stream's collectives in its own SRAM, planned over its own ops; stream 1's
        // SRAM and ACC after stream 0's
        TargetInfo part = lane.id == 0 ? target : secondTarget;
        long sramBase = lane.id * target.sramBytes();
        lane.inSram = collectivesInSram ? SramCollectives.plan(fn, fn.body().stream()
            .filter(n -> plan.of(n) == lane.id).toList(), narrowedNorms, fusedProducers, known,
            size, part.sramBytes(), sramBase) : SramCollectives.none();
        lane.low = lowering(lane.e, part, symRegs, lengthSlots, lane.inSram);
        lane.low.setWindow(sramBase, lane.id * target.accWords());
      }
      // casts written by the norm or rope before them
      Set<Node> castInside = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
      castInside.addAll(narrowedNorms.values());
      castInside.addAll(narrowedRopes.values());
      long maxSram = 0;
      for (Node n : fn.body()) {
        Lane lane = lanes[plan.of(n)];
        Emitter le = lane.e;
        Lowering low = lane.low;
        if (isSource(n) || (isAlias(n) && !outputRegion.containsKey(n.result())
            && !(n.op() instanceof dev.sohuc.ir.op.TransformerOp.AllReduce))
            || fusedProducers.containsKey(n) || castInside.contains(n)
            || lane.inSram.quantizedInNorm(n)
            || (low.isDoneInside(n) && !(n.op() instanceof dev.sohuc.ir.op.TransformerOp.AllReduce)
                && !isBlockCollective(n))) {
          lane.visited(n);
          continue;
        }
        lane.beforeOp(n, lanes);
        le.setOp(Emitter.opName(n), n.location().text());
        if (isBlockCollective(n)) {
          // on the link while the next ops run; the first that reads the result waits for it
          if (low.isDoneInside(n)) {
            // scattered panel by panel inside its matmul: a LINK fence after the last panel
            // tells the first op that reads the result
            le.emit(Emitter.linkFence((int) ((dev.sohuc.ir.op.TransformerOp.ReduceScatter) n.op())
                .chips(), Emitter.TOK_SUMMED));
          } else {
            awaitSums(le, lane.summing, sumsRead(n, lane.summing), lane.sumsWaiter);
            Long region = lane.inSram.gatherRegion(n);
            if (region == null) {
              CollectiveLowering.block(le, low, n, addr.get(n.op().operands().get(0)),
                  addr.get(n.result()));
            } else {
              CollectiveLowering.gatherInSram(le, low, n, region);
            }
          }
          le.endOp();
          lane.summing.add(n.result());
          lane.visited(n);
          continue;
        }
        boolean collective = n.op() instanceof dev.sohuc.ir.op.TransformerOp.AllReduce;
        if (collective && low.isDoneInside(n)) {
          // summed panel by panel inside its matmul (the op before): the other engines go on
          // with the next ops, and a LINK fence tells the first op that reads the sum
          le.emit(Emitter.linkFence((int) ((dev.sohuc.ir.op.TransformerOp.AllReduce) n.op())
              .chips(), Emitter.TOK_SUMMED));
          le.endOp();
          lane.summing.add(aliasRoot(n.result()));
          lane.visited(n);
          continue;
        }
        if (lane.prev != null) {
          // the tokens of the previous op's handoffEnd are consumed before a barrier too:
          // left over, they let a later op's engines start before the op before it finished
          handoffStart(le, collective);
        }
        lane.sumsWaiter = Engine.DMA;
        if (collective) {
          if (lane.prev != null || !lane.summing.isEmpty()) {
            awaitSums(le, lane.summing, lane.summing.size());
            le.emit(new Insn.Barrier(0, 0));
          }
        } else {
          // a qmatmul's mmas read x where its gather left it in SRAM: they wait, while the
          // weights' loads go ahead
          lane.sumsWaiter = low.readsGatherOnMxu(n) ? Engine.MXU : Engine.DMA;
          awaitSums(le, lane.summing, sumsRead(n, lane.summing), lane.sumsWaiter);
        }
        if (n.op() instanceof dev.sohuc.ir.op.TransformerOp.AllReduce a) {
          CollectiveLowering.allreduce(le, low, a, addr.get(n.result()));
        } else if (!plan.forked()) {
          low.lower(n);
        } else {
          try {
            low.lower(n);
          } catch (BackendException tooSmall) {
            // what it lacks is its stream's share, not the target's
            double share = lane.id == 0 ? 1 - options.secondStreamShare() : options.secondStreamShare();
            throw new BackendException(tooSmall.getMessage() + " (in control stream " + lane.id
                + ", with " + Math.round(100 * share) + "% of the target's SRAM and ACC: compile in one"
                + " stream)");
          }
        }
        // with the collectives' regions in SRAM above the op's own
        maxSram = Math.max(maxSram, lane.id * target.sramBytes() + low.sramUsed()
            + low.target().sramBytes() - low.sramLimit());
        le.endOp();
        if (collective) {
          le.emit(new Insn.Barrier(0, 0));
          lane.prev = null;
        } else {
          lane.prev = n;
          handoffEnd(le);
        }
        lane.visited(n);
      }
      for (Lane lane : lanes) {
        lane.finish();
      }
      if (plan.forked()) {
        lanes[1].join(lanes[0]);
        lanes[0].join(lanes[1]);
      }
      Emitter main = lanes[0].e;
      for (int i = 0; i < fn.outputs().size(); i++) {
        Function.Output o = fn.outputs().get(i);
        if (!outputAddr.get(i).equals(addr.get(o.value()))) {
          main.setOp("output %" + o.name(), "");
          Value dst = Value.argument(o.name(), o.value().type());
          addr.put(dst, outputAddr.get(i));
          lanes[0].low.copyDense(dst, o.value());
          main.endOp();
        }
      }
      main.setOp("end", "");
      main.emit(new Insn.Barrier(0, 0));
      main.emit(new Insn.Halt(0, 0));
      if (plan.forked()) {
        // stream 1's code right after the fork, stream 0 past it
        e.setOp("fork", "");
        e.emit(new Insn.Fork(lanes[1].e.pc(), options.fairDma(), 0, 0));
        e.append(lanes[1].e);
        e.append(main);
      }
      List<Word> words = new ArrayList<>();
      List<SohuProgram.DebugEntry> debug = new ArrayList<>();
      for (int pc = 0; pc < e.code().size(); pc++) {
        words.add(InsnCodec.encode(e.code().get(pc)));
        debug.add(new SohuProgram.DebugEntry(pc, e.debugOps().get(pc),
            e.debugLocations().get(pc)));
      }
      TreeMap<String, String> meta = new TreeMap<>();
      meta.put("compiler", "sohuc " + VERSION);
      meta.put("module", module.name());
      meta.put("options", options.describe());
      meta.put("symbol_bounds", bounds.toString());
      meta.put("hbm_bytes", Long.toString(hbmEnd));
      LaunchChecks.addTo(fn, known, meta);
      SohuProgram.Constants consts = constImage.length == 0 ? null
          : new SohuProgram.InlineConstants(HBM_BASE, constImage);
      SohuProgram p = new SohuProgram(new SohuProgram.Target(target.name(), target.sha256()),
          words, consts, symbols, debug, meta, args);
      return new CompiledProgram(p, hbmEnd, arena[0], arena[1], maxSram, notes);
    }

    /** A lowering for {@code e}'s ops on {@code part}, with the plans every op consults. */
    private Lowering lowering(Emitter e, TargetInfo part, Map<String, Integer> symRegs,
        Map<Value, Integer> lengthSlots, SramCollectives inSram) {
      Lowering low = new Lowering(e, part, symRegs, addr, known);
      low.setLengthSlots(lengthSlots);
      low.setBoundSizes(size);
      low.setBounds(bounds);
      low.setFusedProducers(fusedProducers);
      low.setResidency(residency);
      low.setNarrowedNorms(narrowedNorms);
      low.setSramCollectives(inSram);
      low.setNarrowedRopes(narrowedRopes);
      low.setEpilogues(epilogues);
      low.setGatedPairs(gatedPairs);
      low.setKvCapacity(kvCapacity);
      return low;
    }

    /**
     * One control stream's code as the body is walked: its emitter and lowering, the op lowered
     * last (joined to the next by an engine handoff), the sums still on its link, and what it
     * signals to and takes from the other stream. Shared tokens: {@link #SIGNALS} + id counts
     * this stream's ops whose results the other stream reads (an HBM fence after each such
     * op); {@link #DONE} says stream 1 has finished.
     */
    private final class Lane {
      static final int SIGNALS = 24;
      static final int DONE = 26;
      final int id;
      final Emitter e;
      Lowering low;
      /** This stream's collectives planned in its SRAM (or none: all through HBM). */
      SramCollectives inSram;
      Node prev;
      /** All_reduces summed inside their matmul whose link work runs on past it, oldest first. */
      final List<Value> summing = new ArrayList<>();
      /**
       * The engine that waits for sums: the DMA, or the MXU from a qmatmul that read its x where
       * a gather left it in SRAM until the next handoff (a DMA waiting too before that could
       * take a sum's token meant for the MXU; a collective reads its operand in the link's
       * order anyway).
       */
      Engine sumsWaiter = Engine.DMA;
      /** This stream's signals so far, and whether its last op's results are owed one. */
      int signals;
      boolean owesSignal;
      /** The other stream's signals taken. */
      int taken;
      /** Per shared value this stream wrote: the signal that says it is in HBM. */
      final Map<Value, Integer> signalOf = new IdentityHashMap<>();

      Lane(int id, Emitter e) {
        this.id = id;
        this.e = e;
      }

      /**
       * Before this stream's op {@code n}: the signal its last op owes, and the other stream's
       * signals up to the last value {@code n} reads from it (its operands and the inputs of
       * the ops fused into it: a view or a fused op reads nothing itself).
       */
      void beforeOp(Node n, Lane[] lanes) {
        if (!plan.forked()) {
          return;
        }
        settle();
        int needed = taken;
        for (Value v : reads(n)) {
          Value root = aliasRoot(v);
          Integer signal = lanes[1 - id].signalOf.get(root);
          if (plan.shared(root) && signal != null) {
            needed = Math.max(needed, signal);
          }
        }
        take(lanes[1 - id], needed);
      }

      /**
       * {@code n} is done (its op emitted, or lowered by another): a shared value it made is in
       * HBM once the op this stream emitted last is, so that op owes a signal.
       */
      void visited(Node n) {
        for (Value r : n.results()) {
          if (plan.shared(r)) {
            if (n.op() instanceof dev.sohuc.ir.op.TransformerOp.AllReduce || isBlockCollective(n)) {
              throw new BackendException(n.describe() + ": a collective's result, read by the "
                  + "other control stream (its sum is on the link past the op)");
            }
            owesSignal = true;
            signalOf.put(r, signals + 1);
          }
        }
      }

      /** The signal the last op owes, after its stores (handoffEnd): its HBM writes visible. */
      void settle() {
        if (owesSignal) {
          e.emit(Emitter.hbmFence(0, SIGNALS + id));
          signals++;
          owesSignal = false;
        }
      }

      /** Waits until the other stream has signalled {@code count} times in all. */
      void take(Lane other, int count) {
        for (; taken < count; taken++) {
          e.emit(new Insn.Nop(SIGNALS + other.id, 0));
        }
      }

      /** The end of this stream's ops: the last handoff, every sum, a barrier. */
      void finish() {
        settle();
        if (prev == null && summing.isEmpty()) {
          return;
        }
        e.setOp("handoff", "");
        if (prev != null) {
          handoffStart(e, true);
        }
        awaitSums(e, summing, summing.size());
        e.emit(new Insn.Barrier(0, 0));
      }

      /**
       * The streams meet at the end: stream 1 takes stream 0's signals left and says it is
       * done, then halts; stream 0 waits for that, then takes the rest of stream 1's signals.
       */
      void join(Lane other) {
        e.setOp("join", "");
        if (id == 1) {
          take(other, other.signals);
          e.emit(new Insn.Barrier(0, 0));
          e.emit(new Insn.Nop(0, DONE));
          e.emit(new Insn.Halt(0, 0));
        } else {
          e.emit(new Insn.Nop(DONE, 0));
          take(other, other.signals);
        }
      }
    }

    /**
     * The KV caches laid out at a capacity, mapped to it:
     * <ul>
     *   <li>appended to in place: a kv_cache_append whose past is an input that nothing else
     *       reads, whose position axis is symbolic, and whose result is an output that
     *       otherwise only attentions read, as both their K and V (an attention whose K is
     *       appended in place needs its V too, at the same capacity). The input is laid out at
     *       the bound of the result's position axis and the output shares its address, so the
     *       append writes only the new positions instead of copying the cache;
     *   <li>written: a kv_cache_write's result with a symbolic position axis that only
     *       attentions read as K or V, at its bound (they then step heads by a constant), and
     *       its cache too when that is an input nothing else reads and the result an output
     *       (written in place, the output sharing its address).
     * </ul>
     */
    private Map<Value, Long> cacheLayouts() {
      Set<Value> outputs = fn.outputValues();
      Map<Value, List<Node>> users = fn.users();
      Map<Value, Long> cap = new IdentityHashMap<>();
      for (Node n : fn.body()) {
        if (!(n.op() instanceof dev.sohuc.ir.op.TransformerOp.KvCacheAppend
            || n.op() instanceof dev.sohuc.ir.op.TransformerOp.KvCacheWrite)) {
          continue;
        }
        // read only as attentions' K or V, which step its heads by the capacity
        boolean keysOnly = users.getOrDefault(n.result(), List.of()).stream().allMatch(u -> u.op()
            instanceof dev.sohuc.ir.op.TransformerOp.Attention a
            && (n.result().equals(a.k()) || n.result().equals(a.v())) && !a.q().equals(n.result())
            && !n.result().equals(a.mask()));
        if (n.op() instanceof dev.sohuc.ir.op.TransformerOp.KvCacheAppend k
            && k.past().isArgument() && users.get(k.past()).size() == 1
            && !outputs.contains(k.past())
            && !k.past().type().dim(Lowering.KV_AXIS).isStatic() && outputs.contains(n.result())
            && keysOnly) {
          long c = n.result().type().dim(Lowering.KV_AXIS).evaluate(bounds);
          cap.put(k.past(), c);
          cap.put(n.result(), c);
        }
        if (n.op() instanceof dev.sohuc.ir.op.TransformerOp.KvCacheWrite w
            && !w.cache().type().dim(Lowering.KV_AXIS).isStatic() && keysOnly) {
          long c = w.cache().type().dim(Lowering.KV_AXIS).evaluate(bounds);
          cap.put(n.result(), c);
          if (w.cache().isArgument() && users.get(w.cache()).size() == 1
              && !outputs.contains(w.cache()) && outputs.contains(n.result())) {
            cap.put(w.cache(), c);
          }
        }
      }
      // both of an attention's K and V appended in place, or neither
      for (Node n : fn.body()) {
        if (n.op() instanceof dev.sohuc.ir.op.TransformerOp.Attention a
            && !java.util.Objects.equals(cap.get(a.k()), cap.get(a.v()))) {
          for (Value v : List.of(a.k(), a.v())) {
            if (v.producer() != null
                && v.producer().op() instanceof dev.sohuc.ir.op.TransformerOp.KvCacheAppend
                && cap.remove(v) != null) {
              cap.remove(((dev.sohuc.ir.op.TransformerOp.KvCacheAppend) v.producer().op())
                  .past());
            }
          }
        }
      }
      return cap;
    }

    /**
     * The past_lengths inputs (of kv_cache_write and attention), which the argument block holds
     * too, each with the bound its values stay below: T - S + 1 of the first op that reads it,
     * so that every sequence's S new positions fit its T.
     */
    private Map<Value, Dim> pastLengths() {
      Map<Value, Dim> out = new java.util.LinkedHashMap<>();
      for (Node n : fn.body()) {
        Value lengths = null;
        Dim keys = null;
        Dim news = null;
        if (n.op() instanceof dev.sohuc.ir.op.TransformerOp.KvCacheWrite w) {
          lengths = w.pastLengths();
          keys = w.cache().type().dim(Lowering.KV_AXIS);
          news = w.current().type().dim(Lowering.KV_AXIS);
        } else if (n.op() instanceof dev.sohuc.ir.op.TransformerOp.Attention a && a.pastLengths() != null) {
          lengths = a.pastLengths();
          keys = a.k().type().dim(Lowering.KV_AXIS);
          news = a.q().type().dim(Lowering.KV_AXIS);
        }
        if (lengths != null) {
          out.putIfAbsent(lengths, keys.minus(news).plus(Dim.of(1)));
        }
      }
      return out;
    }

    /**
     * Every value's HBM size at the current bounds. Their total stays within 2^62 bytes, so no
     * sum of them in the HBM plan overflows (a shape-only config's vocabulary can be anything).
     */
    private void resize() {
      long total = 0;
      for (Value v : allValues()) {
        long bytes = bytesAtBound(v.type());
        total += Math.min(bytes, MAX_PLANNED_BYTES) + HBM_ALIGN;
        if (total > MAX_PLANNED_BYTES) {
          throw new BackendException("%" + v.name() + " (" + v.type() + ") takes the program "
              + "past 2^62 bytes at the symbol bounds " + bounds + ": no HBM holds it");
        }
        size.put(v, align(Math.max(1, bytes)));
      }
    }

    /**
     * Inputs, outputs and the arena from {@code start} at the current bounds: sets the symbols'
     * addresses, the output regions, the arena plan and {@link #hbmEnd}.
     */
    private void planHbm(long start) {
      symbols.clear();
      outputRegion.clear();
      outputAddr.clear();
      kvCapacity = cacheLayouts();
      Map<Value, List<Node>> users = fn.users();
      Map<Value, Value> cacheOf = new IdentityHashMap<>();
      long next = start;
      for (Value a : fn.arguments()) {
        Long capacity = kvCapacity.get(a);
        if (capacity != null) {
          // laid out at the appended cache's bound, which its output shares
          Value result = users.get(a).get(0).result();
          size.put(a, size.get(result));
          cacheOf.put(result, a);
        }
        addr.put(a, next);
        symbols.add(symbol(a.name(), SohuProgram.Direction.IN, a.type(), next, size.get(a),
            capacity == null ? 0 : capacity));
        next = align(next + size.get(a));
      }
      Set<String> names = new HashSet<>(fn.arguments().stream().map(Value::name).toList());
      for (Function.Output o : fn.outputs()) {
        if (!names.add(o.name())) {
          throw new BackendException("output \"" + o.name() + "\" has the name of an input or "
              + "another output; a .sohu program names each input and output once");
        }
        long sz = size.get(o.value());
        Value cache = cacheOf.get(o.value());
        if (cache != null) {
          // appended in place: the output is its input's region
          outputAddr.add(addr.get(cache));
          symbols.add(symbol(o.name(), SohuProgram.Direction.OUT, o.value().type(),
              addr.get(cache), sz, kvCapacity.get(cache)));
          outputRegion.putIfAbsent(o.value(), addr.get(cache));
          continue;
        }
        outputAddr.add(next);
        symbols.add(symbol(o.name(), SohuProgram.Direction.OUT, o.value().type(), next, sz,
            kvCapacity.getOrDefault(o.value(), 0L)));
        if (o.value().producer() != null && !isSource(o.value().producer())
            && !isAlias(o.value().producer()) && !outputRegion.containsKey(o.value())) {
          outputRegion.put(o.value(), next);
        }
        next = align(next + sz);
      }
      fusedProducers = new IdentityHashMap<>(QuantLowering.fusedConversions(fn, size, known,
          target, gatedPairs));
      fusedProducers.putAll(Lowering.fusedResidualAdds(fn, known));
      fusedProducers.putAll(Lowering.fusedScaledAdds(fn, known, fusedProducers.keySet()));
      fusedProducers.putAll(Lowering.foldedTransposes(fn, fusedProducers));
      narrowedRopes = Lowering.narrowedRopes(fn, this::isAlias);
      residency = QuantLowering.residency(fn, fusedProducers, size, target);
      narrowedNorms = Lowering.narrowedNorms(fn, residency);
      Map<Node, Node> doneInside = new IdentityHashMap<>(fusedProducers);
      narrowedNorms.forEach((norm, cast) -> doneInside.put(cast, norm));
      narrowedRopes.forEach((rope, cast) -> doneInside.put(cast, rope));
      plan = StreamPlan.of(fn, secondStream, doneInside, this::aliasRoot, SohuBackend::isSource);
      arena = planArena(next);
      hbmEnd = next + arena[0];
    }

    /**
     * When the program does not fit HBM at the bounds, the symbols that took the default bound
     * (no {@code --shape} named them) are halved together until it fits, as a server sizes its
     * batch to the memory left after the weights; a note says so. Bounds given explicitly are
     * never changed: if even bound 1 does not fit, the error itemizes what HBM holds.
     */
    private void fitDefaultBounds(long dataStart) {
      Map<String, Long> defaults = new LinkedHashMap<>(bounds);
      defaults.keySet().removeAll(options.symbolBounds().keySet());
      Map<String, Long> first = new LinkedHashMap<>(bounds);
      long firstEnd = hbmEnd;
      while (hbmEnd > target.hbmBytes() && defaults.values().stream().anyMatch(b -> b > 1)) {
        defaults.replaceAll((k, b) -> Math.max(1, b / 2));
        bounds.putAll(defaults);
        resize();
        planHbm(dataStart);
      }
      if (hbmEnd > target.hbmBytes()) {
        throw new BackendException(String.format(Locale.ROOT, "model does not fit the target's "
            + "HBM: needs %s at the symbol bounds %s (weights and constants %s, inputs and outputs "
            + "%s, intermediates %s), %s has %s", gb(hbmEnd), bounds, gb(dataStart - HBM_BASE),
            gb(hbmEnd - arena[0] - dataStart), gb(arena[0]), target.name(), gb(target.hbmBytes()))
            + (defaults.isEmpty() ? "" : "; bind the symbols with --shape to trade batch for length"));
      }
      for (String sym : defaults.keySet()) {
        if (!bounds.get(sym).equals(first.get(sym))) {
          notes.add(String.format(Locale.ROOT, "?%s is bounded at %d, not the default %d: at %d the "
              + "program needs %s of %s's %s HBM (bind it with --shape %s=N)", sym, bounds.get(sym),
              first.get(sym), first.get(sym), gb(firstEnd), target.name(), gb(target.hbmBytes()), sym));
        }
      }
    }

    private static String gb(long bytes) {
      return String.format(Locale.ROOT, "%.2f GB", bytes / 1e9);
    }

    /**
     * The end of an op's code, in place of a barrier: the MXU hands its end to the VPU, whose end
     * then means both are done; the DMA waits for that, so that nothing queued after it (the
     * next op's loads) overwrites SRAM the op still reads, and signals the next op's VPU once
     * its own last store has read SRAM. Each DMA fence occupies the DMA queue (a DMA's fixed
     * cost) in front of the next op's first load, hence one. With {@link #handoffStart}, which
     * consumes the rest, every token signalled here is waited on exactly once.
     */
    private static void handoffEnd(Emitter e) {
      e.emit(Emitter.fence(Engine.MXU, 0, Emitter.TOK_MXU_TO_VPU));
      e.emit(Emitter.fence(Engine.VPU, Emitter.TOK_MXU_TO_VPU, Emitter.TOK_VPU_TO_DMA));
      e.emit(Emitter.fence(Engine.VPU, 0, Emitter.TOK_VPU_TO_MXU));
      e.emit(Emitter.fence(Engine.DMA, Emitter.TOK_VPU_TO_DMA, Emitter.TOK_DMA_TO_VPU));
    }

    /**
     * The start of the next op's code: the control unit does not stall (it goes on issuing this
     * op's instructions into the queues), but the engines' first instructions of this op wait
     * for the previous op's: SRAM and ACC are reused from offset 0 by every op. The DMA has
     * waited (handoffEnd) until the compute engines are done (their last SRAM reads and writes,
     * before its loads overwrite SRAM); the VPU waits until the DMA's last store has read SRAM
     * (before it writes SRAM), the MXU until the VPU has read ACC out (before it writes ACC).
     * The MXU need not wait for the DMA: it only reads SRAM this op's own loads or the VPU
     * wrote, and those come after. The op's first DMA starts as soon as the previous op's
     * compute is done, overlapping the latency of its last stores: HBM is read and written by
     * one in-order DMA queue whose accesses all take the same latency, so a read queued after a
     * write of the same bytes reaches the memory after it. Only before a collective
     * ({@code hazard}), whose LINK engine reads HBM beside that queue, does the DMA also wait
     * for the previous op's last DMA to complete, memory latency included.
     */
    private static void handoffStart(Emitter e, boolean hazard) {
      if (hazard) {
        e.emit(Emitter.hbmFence(0, Emitter.TOK_DMA_TO_DMA));
        e.emit(Emitter.fence(Engine.DMA, Emitter.TOK_DMA_TO_DMA, 0));
      }
      e.emit(Emitter.fence(Engine.VPU, Emitter.TOK_DMA_TO_VPU, 0));
      e.emit(Emitter.fence(Engine.MXU, Emitter.TOK_VPU_TO_MXU, 0));
    }

    /**
     * How many of the sums still on the link {@code n} must wait for: up to the last one it
     * reads (the LINK queue completes them in order), or 0.
     */
    private int sumsRead(Node n, List<Value> summing) {
      int upTo = 0;
      for (Value v : reads(n)) {
        upTo = Math.max(upTo, summing.indexOf(aliasRoot(v)) + 1);
      }
      return upTo;
    }

    /**
     * The DMA queue waits for the first {@code count} sums still on the link (one TOK_SUMMED
     * each, signalled in order by their LINK fences), and they leave the list.
     */
    private static void awaitSums(Emitter e, List<Value> summing, int count) {
      awaitSums(e, summing, count, Engine.DMA);
    }

    /** The same, waited for by {@code engine}: the one engine of the op that reads them. */
    private static void awaitSums(Emitter e, List<Value> summing, int count, Engine engine) {
      for (int i = 0; i < count; i++) {
        e.emit(Emitter.fence(engine, Emitter.TOK_SUMMED, 0));
      }
      summing.subList(0, count).clear();
    }

    /**
     * An op's HBM operands, with the inputs of the conversions fused into it (read when it runs),
     * transitively: a fused conversion may read another fused op's result (a SmoothQuant mul
     * feeding a cast), which is never written, so its input is what is read.
     */
    private List<Value> reads(Node n) {
      List<Value> vs = new ArrayList<>(n.op().operands());
      for (Map.Entry<Node, Node> f : fusedProducers.entrySet()) {
        if (f.getValue() == n) {
          vs.addAll(f.getKey().op().operands());
        }
      }
      for (int i = 0; i < vs.size(); i++) {
        Node p = vs.get(i).producer();
        if (p != null && fusedProducers.containsKey(p)) {
          vs.addAll(p.op().operands());
        }
      }
      return vs;
    }

    private List<Value> allValues() {
      List<Value> vs = new ArrayList<>(fn.arguments());
      for (Node n : fn.body()) {
        vs.addAll(n.results());
      }
      return vs;
    }

    /** A tensor's bytes at the bounds, or Long.MAX_VALUE when they overflow a long. */
    private long bytesAtBound(TensorType t) {
      long n = t.elementType().sizeBytes();
      try {
        for (Dim d : t.dims()) {
          n = Math.multiplyExact(n, Math.max(0, d.evaluate(bounds)));
        }
      } catch (ArithmeticException overflow) {
        return Long.MAX_VALUE;
      }
      return n;
    }

    /** Ops that reinterpret their operand's bytes: no code, the same HBM address. */
    boolean isAlias(Node n) {
      return n.op() instanceof DataOp.Reshape
          // in place: the sum overwrites its operand, which has no other reader
          || n.op() instanceof dev.sohuc.ir.op.TransformerOp.AllReduce
          || (n.op() instanceof ElementwiseOp.Cast c
              && c.x().type().elementType() == c.to())
          || (n.op() instanceof DataOp.Transpose t && keepsLayout(t))
          || (n.op() instanceof DataOp.Slice s && isPrefix(s, n.result().type()));
    }

    /**
     * Whether a slice's result is the first bytes of its operand: every start 0 and step 1, the
     * axes outside the one it cuts of extent 1 and those inside it whole (a step's prompt rows,
     * the first of its rows). Not over a KV cache laid out at a capacity, whose bytes are not
     * in its type's order.
     */
    private boolean isPrefix(DataOp.Slice s, TensorType result) {
      for (int i = 0; i < s.axes().size(); i++) {
        if (s.steps().get(i) != 1 || !s.starts().get(i).is(0)) {
          return false;
        }
      }
      List<Dim> in = s.x().type().dims();
      List<Dim> out = result.dims();
      int cut = 0;
      while (cut < in.size() && in.get(cut).equals(out.get(cut))) {
        cut++;
      }
      for (int i = 0; cut < in.size() && i < in.size(); i++) {
        if (i < cut ? !in.get(i).is(1) : i > cut && !in.get(i).equals(out.get(i))) {
          return false;
        }
      }
      return !kvCapacity.containsKey(aliasRoot(s.x()));
    }

    /**
     * Whether a transpose only moves axes of extent at most 1 at the bounds (a decode step's
     * [batch, 1, heads, dim] to [batch, heads, 1, dim]): the bytes stay in the same order.
     */
    private boolean keepsLayout(DataOp.Transpose t) {
      List<Dim> dims = t.x().type().dims();
      long last = -1;
      for (long p : t.perm()) {
        if (dims.get((int) p).evaluate(bounds) > 1) {
          if (p < last) {
            return false;
          }
          last = p;
        }
      }
      return true;
    }

    private static boolean isBlockCollective(Node n) {
      return n.op() instanceof dev.sohuc.ir.op.TransformerOp.ReduceScatter
          || n.op() instanceof dev.sohuc.ir.op.TransformerOp.AllGather;
    }

    private Value aliasRoot(Value v) {
      while (v.producer() != null && isAlias(v.producer())) {
        v = v.producer().op().operands().get(0);
      }
      return v;
    }

    /** An op the backend cannot lower, and why. */
    private record Problem(Node node, String reason) {}

    /**
     * The problems, each reason once per op kind: a model's layers repeat the same unsupported
     * op, so the first is named in full and a few of the others after it.
     */
    private static List<String> grouped(List<Problem> problems) {
      Map<String, List<Problem>> byReason = new java.util.LinkedHashMap<>();
      for (Problem p : problems) {
        byReason.computeIfAbsent(p.node().op().mnemonic() + ": " + p.reason(),
            r -> new ArrayList<>()).add(p);
      }
      List<String> out = new ArrayList<>();
      for (List<Problem> g : byReason.values()) {
        List<String> others = g.subList(1, g.size()).stream()
            .map(p -> p.node().results().isEmpty() ? p.node().op().mnemonic()
                : "%" + p.node().results().get(0).name()).toList();
        out.add(g.get(0).node().describe() + ": " + g.get(0).reason() + (others.isEmpty() ? ""
            : "\n    and " + others.size() + " more the same way: "
            + String.join(", ", others.subList(0, Math.min(4, others.size())))
            + (others.size() > 4 ? ", ..." : "")));
      }
      return out;
    }

    /** Evaluates source ops at compile time. */
    private void fold() {
      for (Node n : fn.body()) {
        try {
          foldNode(n);
        } catch (dev.sohuc.ir.IrException e) {
          // a constant too large to hold (a hostile Range or Fill): named by its node
          throw new BackendException(n.describe() + ": " + e.getMessage());
        }
      }
    }

    private void foldNode(Node n) {
      Value r = n.results().isEmpty() ? null : n.results().get(0);
      switch (n.op()) {
        case SourceOp.Constant c -> known.put(r, c.value());
        case SourceOp.WeightRef w -> {
          Weight wt = module.weights().get(w.name());
          if (wt == null) {
            throw new BackendException(n.describe() + ": no weight @" + w.name());
          }
          if (wt.type().staticElementCount().orElse(2) == 1
              && !(wt.data() instanceof Weight.Data.ShapeOnly)) {
            known.put(r, Tensor.fromBytes(wt.type().elementType(), shape(wt.type()),
                wt.bytes()));
          }
        }
        case SourceOp.Fill f -> {
          if (r.type().isStatic()) {
            checkFoldable(n, f.dtype(), shape(r.type()));
            Tensor t = Tensor.zeros(f.dtype(), shape(r.type()));
            for (int i = 0; i < t.size(); i++) {
              t.set(i, f.value());
            }
            known.put(r, t);
          }
        }
        case SourceOp.Range g -> {
          // a symbolic length: the range at the bound, whose prefix is the range at any
          // length up to it (decode positions 0 .. past+seq)
          long[] at = r.type().isStatic() ? shape(r.type())
              : new long[] {Math.max(1, r.type().dim(0).evaluate(bounds))};
          checkFoldable(n, g.dtype(), at);
          Tensor t = Tensor.zeros(g.dtype(), at);
          for (int i = 0; i < t.size(); i++) {
            t.set(i, g.start() + (double) i * g.delta());
          }
          (r.type().isStatic() ? known : rangePrefixes).put(r, t);
        }
        case DataOp.Shape s -> {
          TensorType xt = s.x().type();
          long[] dims = new long[(int) (s.end() - s.start())];
          boolean ok = true;
          for (int i = 0; i < dims.length; i++) {
            Dim d = xt.dim((int) s.start() + i);
            ok &= d.isStatic();
            dims[i] = d.isStatic() ? d.value() : 0;
          }
          if (ok) {
            known.put(r, Tensor.ofLongs(ElementType.I64, new long[] {dims.length}, dims));
          }
        }
        case DataOp.Size s -> s.x().type().staticElementCount().ifPresent(c ->
            known.put(r, Tensor.ofLongs(ElementType.I64, new long[0], new long[] {c})));
        default -> { }
      }
    }

    /**
     * Refuses a fill or range whose bytes cannot be part of the constants image, before they are
     * allocated: a few bytes of a model (a ConstantOfShape's shape) can ask for gigabytes.
     */
    private static void checkFoldable(Node n, ElementType type, long[] shape) {
      long bytes = Tensor.checkedSize(shape) * (long) type.sizeBytes();
      if (bytes > MAX_FOLDED_BYTES) {
        throw new BackendException(n.describe() + ": a constant of " + type + " " + Arrays.toString(shape)
            + " is " + bytes + " bytes, more than a program's constants can hold (" + MAX_FOLDED_BYTES + ")");
      }
    }

    private static long[] shape(TensorType t) {
      long[] s = new long[t.rank()];
      for (int i = 0; i < s.length; i++) {
        s[i] = t.dim(i).value();
      }
      return s;
    }

    /**
     * The constants image: weights with data and folded constants, in body order. Shape-only
     * weights get an offset in {@link #shapeOnlyOffset} instead: a region after the image (zeros
     * when read), so shape-only models of any size compile without materializing their bytes.
     */
    private byte[] layoutConstants() {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      Map<String, Long> weightAddr = new HashMap<>();
      Map<String, Long> shapeOnlyAt = new HashMap<>();
      for (Node n : fn.body()) {
        if (!isSource(n)) {
          continue;
        }
        Value r = n.result();
        if (n.op() instanceof SourceOp.WeightRef w) {
          Weight wt = module.weights().get(w.name());
          if (wt.data() instanceof Weight.Data.ShapeOnly) {
            shapeOnlyOffset.put(r, shapeOnlyAt.computeIfAbsent(w.name(), k -> {
              long at = shapeOnlyBytes;
              shapeOnlyBytes = align(shapeOnlyBytes + wt.sizeBytes());
              return at;
            }));
            continue;
          }
          Long at = weightAddr.get(w.name());
          if (at == null) {
            pad(out);
            at = HBM_BASE + out.size();
            weightAddr.put(w.name(), at);
            ByteBuffer b = wt.bytes();
            byte[] bytes = new byte[b.remaining()];
            b.get(bytes);
            out.writeBytes(bytes);
          }
          addr.put(r, at);
        } else {
          pad(out);
          addr.put(r, HBM_BASE + out.size());
          out.writeBytes(known.getOrDefault(r, rangePrefixes.get(r)).toBytes());
        }
      }
      pad(out);
      return out.toByteArray();
    }

    private static void pad(ByteArrayOutputStream out) {
      while (out.size() % HBM_ALIGN != 0) {
        out.write(0);
      }
    }

    /** An arena buffer: its offset, its bytes and the last node that reads it. */
    private record Block(long off, long size, int end) {}

    /**
     * First-fit over live intervals. A value lives from its defining node to the last node
     * that reads it (or reads an alias of it). Returns {arena bytes, bytes without reuse}.
     */
    private long[] planArena(long base) {
      List<Node> body = fn.body();
      Map<Value, Integer> lastUse = new IdentityHashMap<>();
      for (int i = 0; i < body.size(); i++) {
        for (Value v : body.get(i).op().operands()) {
          lastUse.put(aliasRoot(v), i);
        }
      }
      for (Function.Output o : fn.outputs()) {
        lastUse.put(aliasRoot(o.value()), body.size());
      }
      // values read by work done later than their reader's place in the body live until then
      java.util.function.BiConsumer<List<Value>, Integer> liveUntil = (values, at) -> {
        for (Value v : values) {
          lastUse.merge(aliasRoot(v), at, Math::max);
        }
      };
      // a producer fused into its consumer reads its inputs when the consumer runs, and that
      // consumer may itself be fused further (a widening cast into the residual add, the add
      // into the rms_norm after it)
      for (Map.Entry<Node, Node> f : fusedProducers.entrySet()) {
        Node consumer = f.getValue();
        while (fusedProducers.containsKey(consumer)) {
          consumer = fusedProducers.get(consumer);
        }
        liveUntil.accept(f.getKey().op().operands(), body.indexOf(consumer));
      }
      // a qmatmul that narrows its result writes the narrowed value, defined one node later,
      // and a reduce_scatter done panel by panel its result, later still: what the matmul reads
      // lives until then, so that those values' blocks cannot take theirs
      for (Map.Entry<Node, QuantLowering.Epilogue> ep : epilogues.entrySet()) {
        if (ep.getValue().last() != null) {
          liveUntil.accept(reads(ep.getKey()), body.indexOf(ep.getValue().last()));
        }
      }
      // a gated pair writes its activation from the gate's place: what either projection reads
      // lives until the activation is defined
      for (Map.Entry<Node, QuantLowering.GatedPair> pair : gatedPairs.entrySet()) {
        int at = body.indexOf(pair.getValue().last());
        liveUntil.accept(reads(pair.getKey()), at);
        if (pair.getValue().up() != null) {
          liveUntil.accept(reads(pair.getValue().up()), at);
        }
      }
      // a rope that writes the cast after it: what it reads lives until the cast is defined
      for (Map.Entry<Node, Node> narrowed : narrowedRopes.entrySet()) {
        liveUntil.accept(reads(narrowed.getKey()), body.indexOf(narrowed.getValue()));
      }
      // a norm that writes the cast after it stores the sum of the residual add fused into it
      // as it goes: the sum lives until the cast is defined, so that the two cannot share a
      // block where the norm is the sum's only reader (the final norm). Its addends may: the
      // cast's narrower rows start no later and trail the rows the norm reads
      for (Map.Entry<Node, Node> narrowed : narrowedNorms.entrySet()) {
        for (Value v : narrowed.getKey().op().operands()) {
          if (v.producer() != null && fusedProducers.get(v.producer()) == narrowed.getKey()) {
            liveUntil.accept(List.of(v), body.indexOf(narrowed.getValue()));
          }
        }
      }
      // a reduce_scatter or all_gather reads its operand on the link until a reader of its
      // result waits for it: the operand lives as long as the result
      for (Node n : body) {
        if (isBlockCollective(n)) {
          lastUse.merge(aliasRoot(n.op().operands().get(0)),
              lastUse.getOrDefault(n.result(), body.size()), Math::max);
        }
      }
      // one region per stream, and one for the values both streams read, which live to the
      // end: a stream's op runs whenever the other stream is, so only its own stream's later
      // ops may reuse a block. Planned at far-apart provisional bases, placed one after another
      List<List<Block>> live = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
      long[] top = new long[3];
      long total = 0;
      for (int i = 0; i < body.size(); i++) {
        Node n = body.get(i);
        if (isSource(n)) {
          continue;
        }
        if (isAlias(n) && !outputRegion.containsKey(n.result())) {
          addr.put(n.result(), addr.get(n.op().operands().get(0)));
          continue;
        }
        final int now = i;
        for (List<Block> region : live) {
          region.removeIf(b -> b.end() < now);
        }
        for (Value r : n.results()) {
          Long out = outputRegion.get(r);
          if (out != null) {
            addr.put(r, out);
            continue;
          }
          int region = plan.shared(r) ? 2 : plan.of(n);
          long regionBase = provisionalBase(base, region);
          List<Block> regionLive = live.get(region);
          long sz = size.get(r);
          int end = plan.shared(r) ? body.size() : lastUse.getOrDefault(r, i);
          Block addend = inPlaceAddend(n, regionLive, lastUse, regionBase, now);
          if (addend != null) {
            // the addend's last reader writes its result over it, row for row
            regionLive.remove(addend);
            regionLive.add(new Block(addend.off(), sz, end));
            addr.put(r, regionBase + addend.off());
            total += sz;
            continue;
          }
          total += sz;
          regionLive.sort((x, y) -> Long.compare(x.off(), y.off()));
          long at = 0;
          for (Block b : regionLive) {
            if (b.off() - at >= sz) {
              break;
            }
            at = Math.max(at, align(b.off() + b.size()));
          }
          regionLive.add(new Block(at, sz, end));
          top[region] = Math.max(top[region], at + sz);
          addr.put(r, regionBase + at);
        }
      }
      if (plan.forked()) {
        long[] start = {0, align(top[0]), align(top[0]) + align(top[1])};
        for (Map.Entry<Value, Long> a : addr.entrySet()) {
          if (a.getValue() >= PROVISIONAL) {
            int region = (int) (a.getValue() / PROVISIONAL) - 1;
            a.setValue(base + start[region] + a.getValue() % PROVISIONAL);
          }
        }
        return new long[] {start[2] + align(top[2]), total};
      }
      return new long[] {align(top[0]), total};
    }

    /** Arena regions are planned this far apart, then placed (planArena). */
    private static final long PROVISIONAL = 1L << 56;

    /** Where a region's blocks are planned: the arena's base for one stream's only region. */
    private long provisionalBase(long base, int region) {
      return plan.forked() ? (region + 1) * PROVISIONAL : base;
    }

    /**
     * The arena block of an addend of the residual add fused into rms_norm {@code n} that the
     * norm reads last and whose size is the norm's result's, else null. The fused stream reads
     * a tile's rows of both addends before it stores that tile's rows, so the norm's result may
     * take the addend's place exactly (not overlap it partly): without that, the addends, the
     * sum and the result would all be live at once, one buffer more than unfused.
     */
    private Block inPlaceAddend(Node n, List<Block> live, Map<Value, Integer> lastUse, long base,
        int now) {
      Node add = null;
      for (Map.Entry<Node, Node> f : fusedProducers.entrySet()) {
        if (f.getValue() == n && n.op() instanceof dev.sohuc.ir.op.TransformerOp.RmsNorm) {
          add = f.getKey();
        }
      }
      if (add == null) {
        return null;
      }
      for (Value v : add.op().operands()) {
        Value root = aliasRoot(v);
        Long at = addr.get(root);
        if (at == null || lastUse.getOrDefault(root, -1) != now
            || !size.get(root).equals(size.get(n.result()))) {
          continue;
        }
        for (Block b : live) {
          if (b.off() == at - base) {
            return b;
          }
        }
      }
      return null;
    }

    /** A symbol; with {@code capacity} above 0, its KV position axis is laid out at it. */
    private SohuProgram.Symbol symbol(String name, SohuProgram.Direction dir, TensorType t,
        long at, long bytes, long capacity) {
      List<SohuProgram.Dim> dims = new ArrayList<>();
      for (int i = 0; i < t.rank(); i++) {
        Dim d = t.dim(i);
        long cap = i == Lowering.KV_AXIS ? capacity : 0;
        if (d.isStatic()) {
          dims.add(new SohuProgram.Dim.Fixed(d.value()));
        } else {
          dims.add(new SohuProgram.Dim.Sym(containerText(d), cap));
        }
      }
      return new SohuProgram.Symbol(name, dir, SymbolTypes.of(t.elementType()), dims, at, bytes);
    }
  }

  /**
   * A symbolic dim as the container writes it: a symbol's name, or a polynomial such as
   * past+seq as its IR text without the '?' marks.
   */
  static String containerText(Dim d) {
    return d.isSymbol() ? d.symbols().get(0) : d.toString().replace("?", "");
  }

  static long align(long v) {
    return (v + HBM_ALIGN - 1) / HBM_ALIGN * HBM_ALIGN;
  }
}
