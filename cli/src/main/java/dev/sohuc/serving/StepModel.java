package dev.sohuc.serving;

import dev.sohuc.backend.BackendOptions;
import dev.sohuc.backend.CompiledProgram;
import dev.sohuc.backend.SohuBackend;
import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.MultiChipTiming;
import dev.sohuc.emu.OpTiming;
import dev.sohuc.emu.Options;
import dev.sohuc.emu.TimingReport;
import dev.sohuc.hf.HfConfig;
import dev.sohuc.hf.HfImporter;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.isa.Engine;
import dev.sohuc.passes.LayoutWeightsPass;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import dev.sohuc.passes.quant.QuantMode;
import dev.sohuc.passes.quant.Quantizer;
import dev.sohuc.passes.tp.SequenceParallelPass;
import dev.sohuc.passes.tp.ShardException;
import dev.sohuc.passes.tp.ShardTensorParallelPass;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The timing of serving steps from compiled code. Three per-chip programs are compiled once from
 * the shape-only model, sharded with {@code shard-tensor-parallel}:
 * <ul>
 *   <li>the serving-step program (HF {@code --step} graph: one prompt of up to the chunk, in
 *       {@link #MICRO_BATCHES} micro-batches, plus up to the decode batch of decodes, each with
 *       its own KV length, read from the argument block), for a step that admits a prompt of
 *       up to the chunk while others decode: the prompt's rows and the decodes' rows share
 *       every linear layer, so the weights are read once per micro-batch instead of once more
 *       for the decodes;
 *   <li>a prefill program (batch 1, seq up to the chunk, with a past), for the chunks of a prompt
 *       longer than the chunk; a prompt of up to the chunk alone takes the faster of it and the
 *       step program with no decodes ({@link #promptAlone});
 *   <li>a decode program (HF ragged decode graph: up to the decode batch of decodes, each with
 *       its own KV length), for a step with no prompt.
 * </ul>
 * The step and decode programs' decodes attend over their own KV lengths, in caches of the
 * step's longest length plus one rounded up to a multiple of {@link #KV_BUCKET}; a step
 * program's decode batch is rounded up as {@link #stepRows} says. Such a step is timed once per
 * (prompt, rows, capacity, mean KV length rounded up to {@link #KV_BUCKET}): with the lengths of
 * the first step of that shape, since a decode's attention work grows with its keys, so steps
 * whose lengths have that mean take about its time. Each distinct shape runs once on the timing
 * emulator with the N chips meeting at every allreduce (symmetric group: all chips run the same
 * program on the same dims). With two streams the step program is compiled in each
 * {@link StepLayout}, and each step shape is timed in those that are the fastest at either end
 * of the decodes (see {@link #keepFastestAtTheEnds}), the fastest kept.
 */
public final class StepModel {
  public static final int KV_BUCKET = 128;
  /**
   * Step programs are timed at decode batches rounded up to a power of two below this, and to a
   * multiple of it from there (see {@link #stepRows}): the decodes' rows are few next to the
   * prompt's, and the bench then times tens of step shapes instead of hundreds.
   */
  public static final int BATCH_BUCKET = 16;
  /**
   * A step program's prompt runs in two micro-batches of half its tokens (HfOptions
   * microBatches): each layer's sums on the link for one overlap the other's compute.
   */
  public static final int MICRO_BATCHES = 2;
  /**
   * With two streams, the step program's decode attention runs in the second, in this share of
   * the SRAM and ACC: its slots need little, and the prompt's matmuls tile worse in half.
   */
  public static final double DECODE_STREAM_SHARE = 0.25;

  /**
   * One program run: time and work per chip.
   *
   * @param linkBoundSeconds the interconnect bound: the LINK engine's busy time (each
   *     collective's fixed cost and link bytes over the link bandwidth) plus one interconnect
   *     latency (the last sum's step, an urgent one's only step at the least): the least time
   *     the collectives take with nothing else to do (the link pipelines them: a collective's
   *     latency delays its completion, not the next one's start)
   * @param vpuBusySeconds the VPU's busy time: the vector work the compiled code gives it
   *     (softmax, norms, activations, conversions, accumulator read-out) at the target's vector
   *     rates, which no overlap with the other engines can shorten
   * @param secondsByKind self time per op kind (OpTiming), largest first
   */
  public record StepTiming(double seconds, double flopsPerChip, long hbmBytesPerChip,
      double peakFlops, double mfu, double mfuFp8, long linkBytesPerChip, long collectives,
      double linkBoundSeconds, double vpuBusySeconds, Map<String, Double> secondsByKind) {}

  private final int chips;
  /** Rows sharded between the sums (more than one chip, and asked). */
  private final boolean sequenceParallel;
  /** The dims taken as multiples of the chips (seq and batch when sequence-parallel). */
  private final Map<String, Long> multiples;
  /** The config.json it was built from, named in its errors. */
  private final Path config;
  private final QuantMode quant;
  private final int chunk;
  private final MachineDescription target;
  private final Timed prefill;
  private final Timed decode;
  /** The step program in each layout compiled (one without two streams). */
  private final Map<StepLayout, Timed> steps = new java.util.EnumMap<>(StepLayout.class);
  /** The step shapes each layout was the fastest of. */
  private final Map<StepLayout, Integer> fastestFor = new java.util.EnumMap<>(StepLayout.class);
  private final int maxDecodeBatch;
  private final Map<Long, StepTiming> prefillMemo = new HashMap<>();
  private final Map<List<Long>, StepTiming> decodeMemo = new HashMap<>();
  private final Map<List<Long>, StepTiming> stepMemo = new HashMap<>();
  private final ModelShape shape;
  private int timingRuns;
  /** Timing runs of the serving loop's shapes: a step shape once in each step layout kept. */
  private int emulatorRuns;

  /**
   * What the config says, for capacity and for the article's arithmetic; the KV cache's
   * element type is the compiled program's ({@code past_key_values.*}).
   */
  public record ModelShape(long params, long activeParams, long layers, long heads, long kvHeads,
      long headDim, long hidden, long vocab, long weightBytesPerChip, ElementType kvType) {
    /** KV bytes one token takes on one chip (K and V, every layer, this chip's kv heads). */
    public long kvBytesPerTokenPerChip(int chips) {
      return 2 * layers * Math.max(1, kvHeads / chips) * headDim * kvType.sizeBytes();
    }
  }

  public StepModel(Path config, int chips, int prefillChunk, int maxDecodeBatch, long maxKv,
      Path targetFile) {
    this(config, chips, prefillChunk, maxDecodeBatch, maxKv, targetFile, QuantMode.NONE, true,
        false);
  }

  /**
   * With {@code quant} bf16 or fp8, each chip's shard is quantized type-only after sharding
   * ({@link Quantizer#quantizeShapeOnly}): its linear layers become {@code qmatmul} with
   * shape-only bf16 / f8e4m3 weights, and the backend lowers those (QuantLowering), so the
   * timing is the compiled quantized code's; attention then reads bf16 K and V from a bf16 KV
   * cache. Norms and softmax stay fp32. With {@code sequenceParallel} (more than one chip) the
   * step program shards its rows between the tensor-parallel sums
   * ({@link SequenceParallelPass}); its prompt and decode rows are then taken in multiples of
   * the chips, the rows of a step rounded up to them. The decode-only program keeps all_reduce:
   * its 127 rows make collectives too small to hide, and it measured slower split. With
   * {@code twoStreams} the step program runs its decode attention in a second control stream
   * (BackendOptions.secondStream), beside the prompt's.
   */
  public StepModel(Path config, int chips, int prefillChunk, int maxDecodeBatch, long maxKv,
      Path targetFile, QuantMode quant, boolean sequenceParallel, boolean twoStreams) {
    this.config = config;
    this.quant = quant;
    this.chips = chips;
    this.sequenceParallel = sequenceParallel && chips > 1;
    this.multiples = this.sequenceParallel ? Map.of("seq", (long) chips, "batch", (long) chips)
        : Map.of();
    this.target = targetFile == null ? MachineDescription.defaultTarget()
        : MachineDescription.load(targetFile);
    BackendOptions base = BackendOptions.defaults().withTarget(targetFile);
    this.chunk = prefillChunk;
    this.maxDecodeBatch = maxDecodeBatch;
    // the three programs compile independently, on up to three cores: the step program, the
    // largest, first
    try (ExecutorService pool = Executors.newFixedThreadPool(
        Math.min(3, Runtime.getRuntime().availableProcessors()))) {
      // chunked prefill: the decode graph (it has a past) at batch 1 and seq up to the chunk
      Future<Module> pre = pool.submit(() -> {
        Module m = HfImporter.importModel(config, HfOptions.decode().withShapeOnly(true));
        prepare(m);
        lastTokenLogits(m);
        shardAndQuantize(m);
        return m;
      });
      BackendOptions stepOptions = bounds(base, Map.of("batch", stepRows(maxDecodeBatch), "seq",
          microBatchTokens(prefillChunk), "past", ceilTo(maxKv + 1, KV_BUCKET)));
      Map<StepLayout, Future<CompiledProgram>> stepPrograms =
          new java.util.EnumMap<>(StepLayout.class);
      for (StepLayout layout : StepLayout.values()) {
        if (layout == StepLayout.PLAIN || twoStreams && MICRO_BATCHES > 1) {
          stepPrograms.put(layout, pool.submit(() -> compileStep(stepOptions, twoStreams,
              layout)));
        }
      }
      Future<CompiledProgram> decodeProgram = pool.submit(() -> SohuBackend.compile(
          shard(HfImporter.importModel(config, HfOptions.raggedDecode().withShapeOnly(true)),
              false),
          base.withBound("batch", maxDecodeBatch).withBound("past", ceilTo(maxKv + 1, KV_BUCKET))));
      this.shape = shapeOf(config, await(pre));
      // on this thread, while the pool compiles the other two
      this.prefill = timed(SohuBackend.compile(await(pre), base.withBound("batch", 1)
          .withBound("seq", prefillChunk).withBound("past", ceilTo(maxKv, KV_BUCKET))));
      this.decode = timed(await(decodeProgram));
      stepPrograms.forEach((layout, p) -> steps.put(layout, timed(await(p))));
      keepFastestAtTheEnds(maxKv);
    }
  }

  /**
   * How a step program lays out its micro-batches' ops between two control streams. The bench
   * compiles each layout and times every step shape in each that can win it, keeping the
   * fastest, as a serving runtime picks its kernels per batch shape: which wins depends on the
   * decodes (their attention reads the KV caches while an MLP reads its weights, both from HBM)
   * and on the link (a deferred o projection's sum has no matmul after it to hide behind at 8
   * chips).
   */
  public enum StepLayout {
    /**
     * Each layer's attention for every micro-batch, then its MLPs; the second stream runs the
     * decode attention.
     */
    PLAIN(false, HfOptions.DECODE_ATTENTION, false, "the decode attention"),
    /**
     * The plain order; the second stream runs the decode attention and the later
     * micro-batches' prompt attention.
     */
    PLAIN_LATER_PROMPTS(false, HfOptions.OVERLAPPED_ATTENTION, false,
        "the decode attention and the later micro-batches' prompt attention"),
    /**
     * Overlapped attention (HfOptions overlapAttention: each micro-batch's o projection and MLP
     * after the next one's attention); the second stream runs the decode attention and the
     * later micro-batches' prompt attention, each beside an MLP.
     */
    OVERLAPPED(true, HfOptions.OVERLAPPED_ATTENTION, false, "the decode attention and the "
        + "later micro-batches' prompt attention, overlapped with an MLP"),
    /**
     * Overlapped attention; the second stream runs every attention, each beside an MLP, and its
     * fork asks for fair DMA arbitration: every attention's chain is then the longer, and its
     * loads no longer wait behind each of the MLP's weight panels (70B, 2 chips, ten layers:
     * bf16 5.55 -> 5.46 ms, fp8 4.57 -> 4.42; the other layouts measured slower with it).
     */
    OVERLAPPED_ALL(true, HfOptions.EVERY_ATTENTION, true,
        "every attention, overlapped with an MLP");

    private final boolean overlap;
    private final java.util.regex.Pattern secondStream;
    private final boolean fairDma;
    /** What the second stream runs, for the bench's summary. */
    public final String secondStreamRuns;

    StepLayout(boolean overlap, java.util.regex.Pattern secondStream, boolean fairDma,
        String secondStreamRuns) {
      this.overlap = overlap;
      this.secondStream = secondStream;
      this.fairDma = fairDma;
      this.secondStreamRuns = secondStreamRuns;
    }
  }

  /**
   * The serving-step program in {@code layout}, compiled with {@code options}: with
   * {@code twoStreams} its second stream's ops forked, in one stream where they do not fit
   * their share of the SRAM.
   */
  private CompiledProgram compileStep(BackendOptions options, boolean twoStreams,
      StepLayout layout) {
    Module m = shard(HfImporter.importModel(config, HfOptions.step().withShapeOnly(true)
        .withMicroBatches(MICRO_BATCHES).withDimMultiples(multiples)
        .withOverlapAttention(layout.overlap)), sequenceParallel);
    if (twoStreams) {
      try {
        return SohuBackend.compile(m, options.withSecondStream(layout.secondStream,
            DECODE_STREAM_SHARE).withFairDma(layout.fairDma));
      } catch (dev.sohuc.backend.BackendException tooLittleSram) {
        // the second stream's ops do not fit its share: one stream
      }
    }
    return SohuBackend.compile(m, options);
  }

  /** Whether the step program runs in two control streams (it forks). */
  public boolean twoStreams() {
    return stepProgram().program().code().stream()
        .anyMatch(w -> dev.sohuc.isa.InsnCodec.decode(w) instanceof dev.sohuc.isa.Insn.Fork);
  }

  /** The step shapes timed so far that each layout ran fastest, in layout order. */
  public Map<StepLayout, Integer> fastestLayouts() {
    return java.util.Collections.unmodifiableMap(fastestFor);
  }

  /** A compiled program and the emulator that times it, kept so the program is decoded once. */
  private record Timed(CompiledProgram compiled, Emulator emulator) {}

  private Timed timed(CompiledProgram p) {
    return new Timed(p, new Emulator(p.program(), target,
        Options.defaults().withMaxInstructions(Long.MAX_VALUE)));
  }

  /** A compile job's result, its failure rethrown as it was thrown. */
  private static <T> T await(Future<T> job) {
    try {
      return job.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while compiling", e);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      if (e.getCause() instanceof Error err) {
        throw err;
      }
      throw new IllegalStateException(e.getCause());
    }
  }

  /**
   * What {@code --quantize auto} serves: the checkpoint's stored precision ({@code torch_dtype}),
   * as {@code sohuc compile} does: bf16 for a bfloat16 checkpoint, fp32 otherwise.
   */
  public static QuantMode checkpointPrecision(Path config) {
    return HfConfig.read(HfConfig.locate(config)).getString("torch_dtype", "dtype").orElse("float32")
        .equals("bfloat16") ? QuantMode.BF16 : QuantMode.NONE;
  }


  private ModelShape shapeOf(Path config, Module sharded) {
    long params = HfImporter.parameterCount(config);
    long bytes = 0;
    for (Weight w : sharded.weights().values()) {
      bytes += w.sizeBytes();
    }
    HfConfig cfg = HfConfig.read(HfConfig.locate(config));
    ElementType kvType = sharded.main().arguments().stream()
        .filter(a -> a.name().startsWith("past_key_values.")).findFirst()
        .orElseThrow(() -> new IllegalStateException("a decode graph without past_key_values"))
        .type().elementType();
    // a mixture of experts: a token's work is that of the experts it is routed to (each expert
    // three hidden x intermediate matrices, as Mixtral's)
    long experts = cfg.getLong(1, "num_local_experts");
    long unrouted = Math.max(0, experts - cfg.getLong(experts, "num_experts_per_tok"));
    long layers = cfg.getLong("num_hidden_layers");
    long hidden = cfg.getLong("hidden_size");
    long heads = cfg.getLong("num_attention_heads");
    long activeParams = params - layers * unrouted * 3 * hidden
        * cfg.getLong(0, "intermediate_size");
    return new ModelShape(params, activeParams, layers, heads,
        cfg.getLong(heads, "num_key_value_heads"), cfg.getLong(hidden / heads, "head_dim"),
        hidden, cfg.getLong("vocab_size"), bytes, kvType);
  }

  /**
   * fp32 weights, fused, then chip 0's shard (quantized type-only when asked), its rows sharded
   * between the sums when sequence-parallel.
   */
  private Module shard(Module m, boolean rowsSplit) {
    prepare(m);
    shardAndQuantize(m);
    if (rowsSplit) {
      new PassManager(List.of(new SequenceParallelPass(chips, 0))).run(m);
    }
    return m;
  }

  /**
   * Dims by name as a step or decode program takes them: a dim taken as a multiple of the
   * chips is given as its count of blocks, rounded up (the rows padded to whole blocks).
   */
  private Map<String, Long> programDims(Map<String, Long> dims) {
    Map<String, Long> out = new HashMap<>();
    dims.forEach((name, value) -> {
      Long k = multiples.get(name);
      out.put(k == null ? name : HfOptions.blocksSymbol(name, k),
          k == null ? value : (value + k - 1) / k);
    });
    return out;
  }

  private BackendOptions bounds(BackendOptions base, Map<String, Long> dims) {
    BackendOptions o = base;
    for (Map.Entry<String, Long> d : programDims(dims).entrySet()) {
      o = o.withBound(d.getKey(), d.getValue());
    }
    return o;
  }

  /** Decode rows as a program runs them: whole blocks when the rows are sharded. */
  private long programRows(long rows) {
    return sequenceParallel ? ceilTo(rows, chips) : rows;
  }

  private static void prepare(Module m) {
    toF32(m);
    new PassManager(PassPipelines.defaultPipeline()).run(m);
  }

  private void shardAndQuantize(Module m) {
    try {
      new PassManager(List.of(new ShardTensorParallelPass(chips, 0))).run(m);
    } catch (ShardException e) {
      throw new ShardException(config + ": " + e.getMessage(), e);
    }
    Quantizer.quantizeShapeOnly(m, quant);
    // weights laid out at load time, not transposed in HBM every step
    new PassManager(List.of(new LayoutWeightsPass())).run(m);
  }

  /**
   * Serving samples the next token from the last prompt position only, so the prefill program
   * computes lm_head for that row: a slice [seq-1, seq) of the final hidden state feeds the
   * lm_head matmul (logits [batch, 1, vocab] instead of [batch, seq, vocab]). Returns whether
   * the lm_head was found.
   */
  static boolean lastTokenLogits(Module m) {
    Function f = m.main();
    for (Node n : List.copyOf(f.body())) {
      if (!(n.op() instanceof dev.sohuc.ir.op.LinalgOp.MatMul mm)
          || !n.location().text().contains("lm_head") || mm.a().type().rank() != 3) {
        continue;
      }
      Value x = mm.a();
      dev.sohuc.ir.type.Dim seq = x.type().dim(1);
      FunctionBuilder b = new FunctionBuilder(f);
      b.insertBefore(n);
      Value last = b.add(new dev.sohuc.ir.op.DataOp.Slice(x,
          List.of(seq.minus(dev.sohuc.ir.type.Dim.of(1))), List.of(seq), List.of(1L),
          List.of(1L)), n.location(), "last_hidden");
      Value y = b.add(new dev.sohuc.ir.op.LinalgOp.MatMul(last, mm.b()), n.location(),
          n.result().name() + ".last");
      f.replaceAllUses(n.result(), y);
      f.body().remove(n);
      b.insertBefore(null);
      return true;
    }
    return false;
  }

  /**
   * The backend computes in fp32 only, so a bf16 checkpoint is compiled as fp32 weights (4 bytes
   * each); the frontend's casts become same-type casts, which the backend aliases away.
   */
  static void toF32(Module m) {
    for (Weight w : List.copyOf(m.weights().values())) {
      if (w.type().elementType() != ElementType.F32 && w.type().elementType().isFloat()) {
        if (!(w.data() instanceof Weight.Data.ShapeOnly)) {
          return;
        }
        m.weights().put(w.name(), new Weight(w.name(), w.type().withElementType(ElementType.F32),
            w.data()));
      }
    }
    Function f = m.main();
    Function g = new Function(f.name(), f.arguments());
    FunctionBuilder b = new FunctionBuilder(g);
    Map<Value, Value> map = new IdentityHashMap<>();
    for (Node n : f.body()) {
      Op op = n.op();
      List<Value> ops = new ArrayList<>();
      for (Value v : op.operands()) {
        ops.add(map.getOrDefault(v, v));
      }
      if (op instanceof dev.sohuc.ir.op.ElementwiseOp.Unary u
          && (u.kind() == dev.sohuc.ir.op.ElementwiseOp.UnaryKind.COS
              || u.kind() == dev.sohuc.ir.op.ElementwiseOp.UnaryKind.SIN)) {
        map.put(n.result(), ropeTableRows(m, b, n, u.kind().name().toLowerCase()));
        continue;
      }
      Op nop = op instanceof SourceOp.WeightRef w
          ? new SourceOp.WeightRef(w.name(), m.weights().get(w.name()).type())
          : ops.isEmpty() ? op : op.withOperands(ops);
      Node nn = b.addNode(nop, n.location(), n.results().stream().map(Value::name).toList());
      for (int i = 0; i < n.results().size(); i++) {
        map.put(n.results().get(i), nn.results().get(i));
      }
    }
    List<Function.Output> outs = new ArrayList<>();
    for (Function.Output o : f.outputs()) {
      outs.add(new Function.Output(o.name(), map.getOrDefault(o.value(), o.value())));
    }
    g.setOutputs(outs);
    m.functions().set(m.functions().indexOf(f), g);
  }

  /**
   * Large models compute their rotary cos/sin in the graph, and the backend has no cos or sin:
   * for timing they read rows past..past+seq of a precomputed [max_positions, rotary_dim] table
   * instead, as small models do (the frontend inlines their tables).
   */
  private static Value ropeTableRows(Module m, FunctionBuilder b, Node n, String which) {
    dev.sohuc.ir.type.TensorType t = n.result().type();
    java.util.Optional<Value> range = java.util.Optional.empty();
    dev.sohuc.ir.type.Dim seq = t.dim(t.rank() - 2);
    dev.sohuc.ir.type.Dim past = dev.sohuc.ir.type.Dim.of(0);
    for (Value a : m.main().arguments()) {
      if (a.name().startsWith("past_key_values.")) {
        past = a.type().dim(2);
        break;
      }
    }
    long positions = 8192;
    String name = "rotary_emb." + which + ".table";
    dev.sohuc.ir.type.TensorType tt = dev.sohuc.ir.type.TensorType.of(ElementType.F32, positions,
        t.dim(t.rank() - 1).value());
    if (!m.weights().containsKey(name)) {
      m.weights().put(name, new Weight(name, tt, new Weight.Data.ShapeOnly()));
    }
    Value table = b.add(new SourceOp.WeightRef(name, tt), n.location(), name);
    // rows from 0, not from past: the backend cannot slice at a symbolic start; the same bytes
    // move, so the timing is unchanged (these shape-only programs compute no real numbers)
    return b.add(new dev.sohuc.ir.op.DataOp.Slice(table, List.of(dev.sohuc.ir.type.Dim.of(0)),
        List.of(seq),
        List.of(0L), List.of(1L)), n.location(), which);
  }

  static long ceilTo(long v, long q) {
    return Math.max(q, (v + q - 1) / q * q);
  }

  /** A prompt of {@code tokens}, as consecutive chunks of at most the chunk size. */
  public StepTiming prefill(long tokens) {
    return prefillMemo.computeIfAbsent(tokens, t -> {
      List<StepTiming> parts = new ArrayList<>();
      for (long done = 0; done < t; done += chunk) {
        parts.add(run(prefill, Map.of("batch", 1L, "seq", Math.min(chunk, t - done),
            "past", done), Map.of()));
      }
      return sum(parts);
    });
  }

  private static StepTiming sum(List<StepTiming> parts) {
    double s = 0;
    double f = 0;
    long h = 0;
    long l = 0;
    long c = 0;
    double link = 0;
    double vpu = 0;
    Map<String, Double> kinds = new HashMap<>();
    double peakTime = 0;
    for (StepTiming p : parts) {
      link += p.linkBoundSeconds();
      vpu += p.vpuBusySeconds();
      p.secondsByKind().forEach((k, v) -> kinds.merge(k, v, Double::sum));
      s += p.seconds();
      f += p.flopsPerChip();
      h += p.hbmBytesPerChip();
      l += p.linkBytesPerChip();
      c += p.collectives();
      peakTime += p.peakFlops() > 0 ? p.flopsPerChip() / p.peakFlops() : 0;
    }
    double peak = peakTime > 0 ? f / peakTime : parts.get(0).peakFlops();
    double fp8 = parts.get(0).mfuFp8() > 0 ? parts.get(0).flopsPerChip()
        / parts.get(0).seconds() / parts.get(0).mfuFp8() : 0;
    return new StepTiming(s, f, h, peak, s > 0 ? f / s / peak : 0,
        s > 0 && fp8 > 0 ? f / s / fp8 : 0, l, c, link, vpu, largestFirst(kinds));
  }

  public int prefillChunk() {
    return chunk;
  }

  /**
   * One step program: a prompt of {@code tokens} (at most the chunk) and a decode per entry of
   * {@code pastLengths} (the tokens its cache holds, none for a prompt alone), the weights read
   * once per micro-batch.
   */
  public StepTiming step(long tokens, long[] pastLengths) {
    int batch = pastLengths.length;
    if (tokens < 1 || tokens > chunk || batch > maxDecodeBatch) {
      throw new IllegalArgumentException("a step program takes a prompt of 1 to " + chunk
          + " tokens and up to " + maxDecodeBatch + " decodes; got " + tokens + " and " + batch);
    }
    long rows = batch == 0 ? 0 : programRows(stepRows(batch));
    long capacity = batch == 0 ? KV_BUCKET : capacity(pastLengths);
    long mean = batch == 0 ? 0 : meanLength(pastLengths);
    long seq = microBatchTokens(tokens);
    return stepMemo.computeIfAbsent(List.of(seq, rows, capacity, mean), k -> fastest(
        programDims(Map.of("batch", rows, "seq", seq, "past", capacity)),
        Map.of("past_lengths", padded(pastLengths, rows, Math.min(mean, capacity - 1)))));
  }

  /**
   * Drops the step layouts that are the fastest neither for the largest step (a prompt of the
   * chunk and the whole decode batch, each at the longest KV length) nor for the smallest that
   * has decodes (one, at the shortest): which layout wins moves with the decodes' share of the
   * work, so one that loses at both ends is not timed for every step shape.
   */
  private void keepFastestAtTheEnds(long maxKv) {
    if (steps.size() < 2) {
      return;
    }
    long seq = microBatchTokens(chunk);
    long fullRows = programRows(stepRows(maxDecodeBatch));
    long[] longest = new long[(int) fullRows];
    java.util.Arrays.fill(longest, maxKv);
    long oneRow = programRows(1);
    java.util.Set<StepLayout> winners = java.util.EnumSet.noneOf(StepLayout.class);
    winners.add(fastestOf(timeEach(programDims(Map.of("batch", fullRows, "seq", seq, "past",
        ceilTo(maxKv + 1, KV_BUCKET))), Map.of("past_lengths", longest))));
    winners.add(fastestOf(timeEach(programDims(Map.of("batch", oneRow, "seq", seq, "past",
        (long) KV_BUCKET)), Map.of("past_lengths", new long[(int) oneRow]))));
    steps.keySet().retainAll(winners);
  }

  /** A step shape timed in every layout, on the cores there are. */
  private Map<StepLayout, StepTiming> timeEach(Map<String, Long> dims,
      Map<String, long[]> arrays) {
    Map<StepLayout, StepTiming> timings = new java.util.EnumMap<>(StepLayout.class);
    steps.entrySet().parallelStream().map(e -> Map.entry(e.getKey(), time(e.getValue(), dims,
        arrays))).toList().forEach(e -> timings.put(e.getKey(), e.getValue()));
    return timings;
  }

  private static StepLayout fastestOf(Map<StepLayout, StepTiming> timings) {
    return java.util.Collections.min(timings.keySet(),
        java.util.Comparator.comparingDouble(l -> timings.get(l).seconds()));
  }

  /** A step shape timed in every layout kept, the fastest's timing. */
  private StepTiming fastest(Map<String, Long> dims, Map<String, long[]> arrays) {
    Map<StepLayout, StepTiming> timings = timeEach(dims, arrays);
    timingRuns++;
    emulatorRuns += timings.size();
    StepLayout best = fastestOf(timings);
    fastestFor.merge(best, 1, Integer::sum);
    return timings.get(best);
  }

  /**
   * A prompt of {@code tokens} (at most the chunk) with nothing else to run, as a server would
   * dispatch it: the faster of the step program with no decodes (micro-batches, whose sums on
   * the link overlap each other's compute: a 70B prompt on 8 chips takes 0.58 of the time) and
   * the prefill program (one pass, the weights read once: a short prompt of a small model).
   */
  public StepTiming promptAlone(long tokens) {
    StepTiming microBatches = step(tokens, new long[0]);
    StepTiming onePass = prefill(tokens);
    return microBatches.seconds() <= onePass.seconds() ? microBatches : onePass;
  }

  /** The caches' capacity for these lengths: the longest plus the new position, bucketed. */
  private static long capacity(long[] pastLengths) {
    return ceilTo(java.util.Arrays.stream(pastLengths).max().getAsLong() + 1, KV_BUCKET);
  }

  /** The lengths' mean, rounded up to the bucket. */
  private static long meanLength(long[] pastLengths) {
    long n = pastLengths.length;
    return ceilTo((java.util.Arrays.stream(pastLengths).sum() + n - 1) / n, KV_BUCKET);
  }

  /** The lengths and, up to {@code rows}, rows at {@code fill} (a batch rounded up). */
  private static long[] padded(long[] pastLengths, long rows, long fill) {
    long[] lengths = java.util.Arrays.copyOf(pastLengths, (int) rows);
    java.util.Arrays.fill(lengths, pastLengths.length, (int) rows, fill);
    return lengths;
  }

  /** A micro-batch's tokens for a prompt of {@code tokens}: an odd prompt is padded by one. */
  static long microBatchTokens(long tokens) {
    return (tokens + MICRO_BATCHES - 1) / MICRO_BATCHES;
  }

  /** The decode batch a step program is timed at: 1, 2, 4, 8, then multiples of 16. */
  static long stepRows(long batch) {
    return batch >= BATCH_BUCKET ? ceilTo(batch, BATCH_BUCKET)
        : Long.highestOneBit(batch) == batch ? batch : Long.highestOneBit(batch) << 1;
  }

  /** Decode of a sequence per entry of {@code pastLengths} (the tokens its cache holds). */
  public StepTiming decode(long[] pastLengths) {
    long batch = pastLengths.length;
    if (batch < 1 || batch > maxDecodeBatch) {
      throw new IllegalArgumentException("a decode program takes 1 to " + maxDecodeBatch
          + " decodes; got " + batch);
    }
    long capacity = capacity(pastLengths);
    return decodeMemo.computeIfAbsent(List.of(batch, capacity, meanLength(pastLengths)),
        k -> run(decode, Map.of("batch", batch, "past", capacity),
            Map.of("past_lengths", pastLengths)));
  }

  /** A step shape timed for the serving loop (counted in {@link #timingRuns}). */
  private StepTiming run(Timed p, Map<String, Long> dims, Map<String, long[]> arrays) {
    timingRuns++;
    emulatorRuns++;
    return time(p, dims, arrays);
  }

  private StepTiming time(Timed p, Map<String, Long> dims, Map<String, long[]> arrays) {
    MultiChipTiming.Report r = MultiChipTiming.runSymmetric(p.emulator(), chips, dims, arrays);
    TimingReport c = r.chips().get(0);
    long linkBytes = r.linkBytes() / chips;
    double linkBound = chips < 2 || r.collectives() == 0 ? 0
        : (c.engines().get(Engine.LINK).busyCycles() + (double) target.linkLatencyCycles())
            / target.clockHz();
    Map<String, Double> kinds = new HashMap<>();
    for (OpTiming o : c.ops()) {
      kinds.merge(o.kind(), o.selfCycles() / target.clockHz(), Double::sum);
    }
    return new StepTiming(r.seconds(), c.flops(), c.hbmBytes(), c.peakFlops(), c.mfu(),
        c.mfuFp8(), linkBytes, r.collectives(), linkBound,
        c.engines().get(Engine.VPU).busyCycles() / target.clockHz(), largestFirst(kinds));
  }

  private static Map<String, Double> largestFirst(Map<String, Double> kinds) {
    Map<String, Double> out = new LinkedHashMap<>();
    kinds.entrySet().stream().sorted(Map.Entry.<String, Double>comparingByValue().reversed())
        .forEach(e -> out.put(e.getKey(), e.getValue()));
    return out;
  }

  public QuantMode quantMode() {
    return quant;
  }

  /** Whether the step program splits its rows between the sums. */
  public boolean sequenceParallel() {
    return sequenceParallel;
  }

  /** The distinct step shapes timed for the serving loop. */
  public int timingRuns() {
    return timingRuns;
  }

  /** The timing emulator's runs for them (a step shape once per step layout kept). */
  public int emulatorRuns() {
    return emulatorRuns;
  }

  public int chips() {
    return chips;
  }

  public MachineDescription target() {
    return target;
  }

  public ModelShape shape() {
    return shape;
  }

  public CompiledProgram prefillProgram() {
    return prefill.compiled();
  }

  public CompiledProgram decodeProgram() {
    return decode.compiled();
  }

  public CompiledProgram stepProgram() {
    return steps.values().iterator().next().compiled();
  }
}
