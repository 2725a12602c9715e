package dev.sohuc.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.sohuc.isa.DType;
import dev.sohuc.passes.quant.QuantMode;
import dev.sohuc.serving.ServingSimulator;
import dev.sohuc.serving.StepModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code sohuc bench}: a continuous-batching serving simulation on the compiled code's timing. */
@Command(name = "bench", mixinStandardHelpOptions = true,
    description = "Serving benchmark: tensor-parallel compile, continuous batching, timing emulator.")
final class BenchCommand implements Callable<Integer> {
  @Parameters(paramLabel = "CONFIG", description = "Hugging Face config.json or its folder.")
  Path config;
  @Option(names = "--chips", description = "Chips per server (default 8).")
  int chips = 8;
  @Option(names = "--tensor-parallel", paramLabel = "N", description = "Chips each copy of the "
      + "model is split over (default: all of --chips). Fewer make --chips / N data-parallel "
      + "replicas, each serving every (chips / N)-th request with its own KV cache.")
  Integer tensorParallel;
  @Option(names = "--input-len", description = "Prompt tokens per request (default 2048).")
  int inputLen = 2048;
  @Option(names = "--output-len", description = "Output tokens per request (default 128).")
  int outputLen = 128;
  @Option(names = "--quantize", description = "auto, none (fp32), bf16 or fp8: each chip's linear "
      + "layers quantized type-only (shape-only weights in bf16 / f8e4m3) and lowered as qmatmul, "
      + "attention's products in bf16 over a bf16 KV cache; norms stay fp32. auto (the default) "
      + "is the checkpoint's torch_dtype: bf16 for bfloat16, none otherwise.")
  String quantize = "auto";
  @Option(names = "--rate", description = "Poisson arrivals, requests/s (default 0: all at t=0).")
  double rate = 0;
  @Option(names = "--requests", description = "Requests (default 256).")
  int requests = 256;
  @Option(names = "--seed", description = "Arrival seed (default 1).")
  long seed = 1;
  @Option(names = "--decode-batch", description = "Most decode sequences per step (default 127, the article's).")
  int decodeBatch = 127;
  @Option(names = "--prefill-chunk", description = "Prefill chunk tokens (default 0: the whole prompt in one step, weights read once).")
  int chunk = 0;
  @Option(names = "--sequence-parallel", negatable = true, defaultValue = "true",
      fallbackValue = "true", description = "Between the tensor-parallel sums each chip keeps "
      + "and normalizes 1/N of the rows of a step (reduce_scatter, all_gather; rows padded to "
      + "whole blocks). On by default; --no-sequence-parallel keeps all rows on every chip "
      + "(all_reduce).")
  boolean sequenceParallel = true;
  @Option(names = "--two-streams", negatable = true, defaultValue = "true",
      fallbackValue = "true", description = "The step program's decode attention in a second "
      + "control stream (fork), beside the prompt's attention, in a quarter of the SRAM and ACC. "
      + "On by default; --no-two-streams runs every op in one stream.")
  boolean twoStreams = true;
  @Option(names = "--target", description = "Machine description JSON (default built-in sohu).")
  Path target;
  @Option(names = "--report", description = "Write a self-contained HTML report.")
  Path html;
  @Option(names = "--json", description = "Write every figure as JSON.")
  Path json;
  @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

  static final int MAX_REQUESTS = 100_000;
  /** Seconds of arrivals past which a double's time no longer resolves a step (1e-7 s at 1e9). */
  static final double MAX_ARRIVAL_SPAN_S = 1e9;

  @Override
  public Integer call() throws Exception {
    for (var n : List.of(Map.entry("--chips", chips), Map.entry("--input-len", inputLen),
        Map.entry("--output-len", outputLen), Map.entry("--requests", requests),
        Map.entry("--decode-batch", decodeBatch))) {
      if (n.getValue() < 1) {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), n.getKey()
            + " must be 1 or more, got " + n.getValue());
      }
    }
    int tp = tensorParallel == null ? chips : tensorParallel;
    if (tp < 1 || chips % tp != 0) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--tensor-parallel "
          + "must divide --chips " + chips + " (the server is whole replicas), got " + tp);
    }
    if (requests > MAX_REQUESTS) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--requests must be at "
          + "most " + MAX_REQUESTS + " (the simulation keeps every request and step, for the "
          + "percentiles and --json), got " + requests);
    }
    if (!(rate >= 0) || Double.isInfinite(rate)) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(),
          "--rate must be 0 (all requests at once) or a positive number of requests/s, got "
          + rate);
    }
    if (rate > 0 && requests / rate > MAX_ARRIVAL_SPAN_S) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(), String.format(
          "--rate %s spreads %d requests over about %.3g s, past the %.0e s within which the "
          + "simulation's clock still tells a step's microseconds; give at least %.3g "
          + "requests/s", rate, requests, requests / rate, MAX_ARRIVAL_SPAN_S,
          requests / MAX_ARRIVAL_SPAN_S));
    }
    if (chunk < 0) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(),
          "--prefill-chunk must be 0 (the whole prompt) or more, got " + chunk);
    }
    QuantMode mode = switch (quantize) {
      case "auto" -> StepModel.checkpointPrecision(config);
      case "none", "fp32" -> QuantMode.NONE;
      case "bf16" -> QuantMode.BF16;
      case "fp8" -> QuantMode.FP8;
      default -> throw new UserException("--quantize " + quantize + " is unavailable: auto, none, "
          + "bf16 or fp8 (int8 needs calibration data, which a shape-only model has not)");
    };
    long positions = dev.sohuc.hf.HfImporter.servedPositions(config);
    if ((long) inputLen + outputLen > positions) {
      // a request's prompt and output share the model's positions; past them the compiled
      // programs would refuse its lengths step by step, or not fit the chip
      throw new UserException(config + ": --input-len " + inputLen + " + --output-len "
          + outputLen + " = " + ((long) inputLen + outputLen) + " tokens a request, past the "
          + positions + " positions the model serves");
    }
    long t0 = System.nanoTime();
    if (chunk <= 0) {
      chunk = inputLen;
    }
    StepModel model;
    try {
      model = new StepModel(config, tp, chunk, decodeBatch, inputLen + outputLen, target, mode,
          sequenceParallel, twoStreams);
    } catch (dev.sohuc.passes.tp.ShardException e) {
      if (tensorParallel != null) {
        throw e;
      }
      throw new UserException(e.getMessage() + " (--tensor-parallel N with such an N that "
          + "divides --chips serves it as --chips / N replicas of N chips)", e);
    }
    var shape = model.shape();
    double hbm = model.target().hbmBytes();
    long kvPerTokenChip = shape.kvBytesPerTokenPerChip(tp);
    long capacity = (long) ((hbm - shape.weightBytesPerChip()) / kvPerTokenChip);
    boolean tty = System.console() != null;
    ServingSimulator.Result res = ServingSimulator.run(model, requests, inputLen, outputLen, rate,
        seed, chips / tp, decodeBatch, capacity, done -> {
          if (tty) {
            int w = 30;
            int f = (int) ((long) done * w / requests);
            System.err.print("\r[" + "#".repeat(f) + " ".repeat(w - f) + "] " + done + "/"
                + requests + " requests");
            if (done == requests) {
              System.err.println();
            }
          }
        });
    Map<String, Object> out = figures(model, res, capacity, kvPerTokenChip);
    out.put("wall_seconds", (System.nanoTime() - t0) / 1e9);
    java.io.PrintWriter pw = spec.commandLine().getOut();
    pw.print(render(out));
    pw.flush();
    if (json != null) {
      new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(json.toFile(), out);
    }
    if (html != null) {
      Files.writeString(html, BenchHtml.render(out, res));
    }
    return 0;
  }

  /** What the second stream runs in each step layout, and for how many step shapes. */
  private static String layouts(Map<StepModel.StepLayout, Integer> shapes) {
    List<String> parts = new ArrayList<>();
    shapes.forEach((layout, n) -> parts.add(layout.secondStreamRuns + " for " + n
        + (n == 1 ? " shape" : " shapes")));
    return String.join("; ", parts);
  }

  Map<String, Object> figures(StepModel model, ServingSimulator.Result res, long capacity,
      long kvPerTokenChip) {
    var shape = model.shape();
    var target = model.target();
    int tp = model.chips();
    int replicas = chips / tp;
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("model", config.toString());
    m.put("chips", chips);
    m.put("tensor_parallel", tp);
    m.put("replicas", replicas);
    String split = (tp == 1 ? "one chip" : model.sequenceParallel()
        ? "tensor-parallel with sequence-parallel norms (reduce_scatter, all_gather)"
        : "tensor-parallel (all_reduce)") + (!model.twoStreams() ? "" : ", two control streams"
            + " in the step layout fastest for each step shape (the second runs "
            + layouts(model.fastestLayouts()) + ")");
    m.put("parallelism", replicas == 1 ? split : tp == 1
        ? replicas + " data-parallel replicas of 1 chip"
        : replicas + " data-parallel replicas of " + tp + " chips, each " + split);
    m.put("precision", switch (model.quantMode()) {
      case BF16 -> "bf16 (linear layers as qmatmul with shape-only bf16 weights, type-only "
          + "quantization; attention's products and the KV cache bf16; norms fp32)";
      case FP8 -> "fp8 (linear layers as qmatmul with shape-only f8e4m3 weights and per-channel "
          + "scales, activations quantized per row; type-only quantization; attention's products "
          + "and the KV cache bf16; norms fp32)";
      default -> "fp32 (weights compiled as fp32)";
    });
    m.put("weights_dtype", switch (model.quantMode()) {
      case BF16 -> "bf16";
      case FP8 -> "fp8";
      default -> "fp32";
    });
    m.put("input_len", inputLen);
    m.put("output_len", outputLen);
    m.put("requests", requests);
    m.put("rate", rate);
    m.put("seed", seed);
    m.put("prefill_chunk", chunk);
    m.put("decode_batch", decodeBatch);
    long outTok = 0;
    long inTok = 0;
    List<Double> ttft = new ArrayList<>();
    List<Double> tpot = new ArrayList<>();
    for (var r : res.requests()) {
      outTok += r.generated;
      inTok += r.inputLen;
      ttft.add(r.firstToken - r.arrival);
      if (r.outputLen > 1) {
        tpot.add((r.finish - r.firstToken) / (r.outputLen - 1));
      }
    }
    double span = res.makespan();
    m.put("makespan_seconds", span);
    m.put("output_tokens", outTok);
    m.put("output_tokens_per_s_server", outTok / span);
    m.put("output_tokens_per_s_chip", outTok / span / chips);
    m.put("total_tokens_per_s_server", (outTok + inTok) / span);
    m.put("total_tokens_per_s_chip", (outTok + inTok) / span / chips);
    m.put("claim_tokens_per_s_server", 500000);
    m.put("ttft_p50_s", pct(ttft, 50));
    m.put("ttft_p99_s", pct(ttft, 99));
    m.put("tpot_p50_s", pct(tpot, 50));
    m.put("tpot_p99_s", pct(tpot, 99));
    double pf = 0, pt = 0, pp = 0, df = 0, dtm = 0, dp = 0, bytes = 0;
    for (var s : res.steps()) {
      if (s.prefill() != null) {
        pf += s.prefill().flopsPerChip();
        pt += s.prefill().seconds();
        pp += s.prefill().flopsPerChip() / s.prefill().peakFlops();
        bytes += s.prefill().hbmBytesPerChip();
      }
      if (s.decode() != null) {
        df += s.decode().flopsPerChip();
        dtm += s.decode().seconds();
        dp += s.decode().flopsPerChip() / s.decode().peakFlops();
        bytes += s.decode().hbmBytesPerChip();
      }
    }
    double peakF32 = target.peakFlops(DType.F32);
    // the peak of the dtypes the compiled code's MXU work runs in, weighted by that work
    m.put("peak_flops_program_dtype", pp + dp > 0 ? (pf + df) / (pp + dp) : peakF32);
    m.put("prefill_mfu", pt > 0 ? pp / pt : 0);
    m.put("decode_mfu", dtm > 0 ? dp / dtm : 0);
    m.put("prefill_mfu_of_fp8_peak", pt > 0 ? pf / pt / target.peakFlops(DType.F8E4M3) : 0);
    m.put("decode_mfu_of_fp8_peak", dtm > 0 ? df / dtm / target.peakFlops(DType.F8E4M3) : 0);
    // the steps' bytes are per chip of their replica, and the replicas run side by side
    m.put("hbm_bandwidth_use", bytes / replicas / span / target.hbmBytesPerSecond());
    // the article's batch: one full prefill plus decode_batch decodes, as one step program when
    // the prompt fits a chunk; in the steady state the decodes are one per generated count
    // 1 .. output_len - 1, each at its own KV length
    boolean oneProgram = inputLen <= model.prefillChunk();
    long[] pastLengths = new long[decodeBatch];
    for (int i = 0; i < decodeBatch; i++) {
      pastLengths[i] = inputLen + i % Math.max(1, outputLen - 1);
    }
    var p = oneProgram ? model.step(inputLen, pastLengths) : model.prefill(inputLen);
    var d = model.decode(pastLengths);
    double batchSeconds = p.seconds() + (oneProgram ? 0 : d.seconds());
    double batchFlops = p.flopsPerChip() + (oneProgram ? 0 : d.flopsPerChip());
    Map<String, Object> batch = new LinkedHashMap<>();
    batch.put("seconds", batchSeconds);
    batch.put("one_step_program", oneProgram);
    // one batch runs on one replica's chips (each replica runs its own batch at once)
    batch.put("compiled_mxu_flops_server", batchFlops * tp);
    batch.put("model_flops_2_x_params_x_tokens", 2.0 * shape.params() * (inputLen + decodeBatch));
    batch.put("active_params", shape.activeParams());
    batch.put("model_flops_2_x_active_params_x_tokens",
        2.0 * shape.activeParams() * (inputLen + decodeBatch));
    batch.put("article_flops", 304e12);
    batch.put("weight_bytes_server_fp32", shape.weightBytesPerChip() * tp);
    batch.put("weight_bytes_bf16_params", 2.0 * shape.params());
    batch.put("article_weight_bytes", 140e9);
    batch.put("kv_bytes_server", (double) kvPerTokenChip * tp * decodeBatch
        * (inputLen + outputLen - 1));
    batch.put("article_kv_bytes", 72e9);
    // the article's 72 GB is 127 x 64 x 8 x 128 x 2175 x 2 x 2: 64 layers where the config has
    // its own count (Llama-3-70B: 80); the same formula with those is this figure
    batch.put("kv_layers", shape.layers());
    batch.put("params", shape.params());
    batch.put("tokens_per_s_server_at_this_batch",
        replicas * (inputLen + decodeBatch) / batchSeconds);
    batch.put("prefill_seconds_by_op_kind", p.secondsByKind());
    // the highest prefill MFU this compiled code could reach on this target, were its engines
    // perfectly overlapped: its MXU work at peak against each of its other bounds
    double pCompute = p.flopsPerChip() / p.peakFlops();
    Map<String, Double> ceilings = new LinkedHashMap<>();
    ceilings.put("HBM bandwidth", pCompute / (p.hbmBytesPerChip() / target.hbmBytesPerSecond()));
    ceilings.put("VPU", pCompute / p.vpuBusySeconds());
    ceilings.put("interconnect", p.linkBoundSeconds() > 0 ? pCompute / p.linkBoundSeconds()
        : Double.POSITIVE_INFINITY);
    ceilings.replaceAll((bound, c) -> Math.min(1, c));
    Map.Entry<String, Double> lowest = ceilings.entrySet().stream()
        .min(Map.Entry.comparingByValue()).orElseThrow();
    batch.put("prefill_mfu_ceiling", lowest.getValue());
    batch.put("prefill_ceiling_bound", lowest.getValue() < 1 ? lowest.getKey() : "compute");
    batch.put("prefill_mfu_ceilings", ceilings);
    // the link bandwidth at which the collectives alone no longer hold the prefill under 90%: of
    // their bound, the bytes scale with it, the fixed costs and latency do not
    if (ceilings.get("interconnect") < 0.9) {
      double linkBandwidth = target.linkBytesPerCycle() * target.clockHz();
      double fixed = Math.max(0, p.linkBoundSeconds() - p.linkBytesPerChip() / linkBandwidth);
      double budget = pCompute / 0.9 - fixed;
      batch.put("interconnect_bytes_per_s", linkBandwidth);
      batch.put("interconnect_fixed_seconds", fixed);
      // null: no link bandwidth reaches it
      batch.put("interconnect_bytes_per_s_for_90pct", budget > 0 ? p.linkBytesPerChip() / budget : null);
    }
    batch.put("decode_seconds_by_op_kind", d.secondsByKind());
    m.put("article_batch", batch);
    long kvHeads = shape.kvHeads();
    m.put("kv_dtype", shape.kvType().text());
    m.put("kv_heads_layout", kvHeads >= tp
        ? kvHeads / tp + " of " + kvHeads + " kv heads per chip, split across chips"
        : kvHeads + " kv heads, each replicated on " + tp / kvHeads + " chips (1 per chip)");
    m.put("kv_capacity_tokens", capacity * replicas);
    m.put("kv_capacity_tokens_replica", capacity);
    m.put("kv_max_tokens_used", res.maxKvTokensUsed());
    m.put("timing_runs", model.timingRuns());
    m.put("emulator_runs", model.emulatorRuns());
    List<Map<String, Object>> steps = new ArrayList<>();
    for (var s : res.steps()) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("replica", s.replica());
      e.put("start", s.start());
      e.put("seconds", s.seconds());
      e.put("prefill_tokens", s.prefillTokens());
      e.put("decode_tokens", s.decodeTokens());
      e.put("decode_past", s.decodePast());
      double f = (s.prefill() == null ? 0 : s.prefill().flopsPerChip())
          + (s.decode() == null ? 0 : s.decode().flopsPerChip());
      double b = (s.prefill() == null ? 0 : s.prefill().hbmBytesPerChip())
          + (s.decode() == null ? 0 : s.decode().hbmBytesPerChip());
      e.put("flops_per_chip", f);
      e.put("hbm_bytes_per_chip", b);
      // compute bound: each program's MXU work at the peak of the dtypes it runs in
      double cb = (s.prefill() == null ? 0 : s.prefill().flopsPerChip() / s.prefill().peakFlops())
          + (s.decode() == null ? 0 : s.decode().flopsPerChip() / s.decode().peakFlops());
      e.put("compute_bound_s", cb);
      e.put("bandwidth_bound_s", b / target.hbmBytesPerSecond());
      double lb = (s.prefill() == null ? 0 : s.prefill().linkBoundSeconds())
          + (s.decode() == null ? 0 : s.decode().linkBoundSeconds());
      e.put("interconnect_bound_s", lb);
      e.put("time_over_max_bound", s.seconds()
          / Math.max(lb, Math.max(cb, b / target.hbmBytesPerSecond())));
      steps.add(e);
    }
    m.put("steps", steps);
    return m;
  }

  static double pct(List<Double> v, double p) {
    if (v.isEmpty()) {
      return 0;
    }
    List<Double> s = new ArrayList<>(v);
    s.sort(null);
    int i = (int) Math.ceil(p / 100 * s.size()) - 1;
    return s.get(Math.max(0, Math.min(s.size() - 1, i)));
  }

  @SuppressWarnings("unchecked")
  static String render(Map<String, Object> m) {
    StringBuilder sb = new StringBuilder();
    java.util.function.BiConsumer<String, Object[]> line = (f, a) ->
        sb.append(String.format(Locale.ROOT, f, a)).append('\n');
    line.accept("model: %s on %d chips, %s, %s", new Object[] {m.get("model"), m.get("chips"),
        m.get("parallelism"), m.get("precision")});
    line.accept("requests: %d x (%d in, %d out), rate %s/s, seed %d", new Object[] {
        m.get("requests"), m.get("input_len"), m.get("output_len"), m.get("rate"), m.get("seed")});
    line.accept("throughput: %.0f tokens/s per server (input + output tokens, as the 500,000 "
        + "claim counts them: %.2f%% of it; %.0f per chip)", new Object[] {
        m.get("total_tokens_per_s_server"),
        100 * (double) m.get("total_tokens_per_s_server") / 500000,
        m.get("total_tokens_per_s_chip")});
    line.accept("output throughput: %.0f output tokens/s per server", new Object[] {
        m.get("output_tokens_per_s_server")});
    line.accept("output tokens/s per chip: %.0f", new Object[] {m.get("output_tokens_per_s_chip")});
    line.accept("TTFT p50 %.3f s, p99 %.3f s; TPOT p50 %.1f ms, p99 %.1f ms", new Object[] {
        m.get("ttft_p50_s"), m.get("ttft_p99_s"), 1e3 * (double) m.get("tpot_p50_s"),
        1e3 * (double) m.get("tpot_p99_s")});
    line.accept("prefill MFU: %.1f%%", new Object[] {100 * (double) m.get("prefill_mfu")});
    line.accept("decode MFU: %.1f%%", new Object[] {100 * (double) m.get("decode_mfu")});
    line.accept("  (MFU of the %s peak %.3g FLOP/s the compiled code runs at (MXU work weighted "
        + "by dtype); of the FP8 peak: prefill %.2f%%, decode %.2f%%)", new Object[] {
        m.get("weights_dtype"), m.get("peak_flops_program_dtype"),
        100 * (double) m.get("prefill_mfu_of_fp8_peak"),
        100 * (double) m.get("decode_mfu_of_fp8_peak")});
    line.accept("HBM bandwidth use: %.1f%%", new Object[] {100 * (double) m.get("hbm_bandwidth_use")});
    Map<String, Object> b = (Map<String, Object>) m.get("article_batch");
    int replicas = (int) m.get("replicas");
    String eachReplica = replicas == 1 ? "" : " on each of " + replicas + " replicas";
    line.accept("article batch (1 x %d prefill + %d decodes%s): %.3f s -> %.0f tokens/s per "
        + "server", new Object[] {m.get("input_len"), m.get("decode_batch"), eachReplica,
        b.get("seconds"), b.get("tokens_per_s_server_at_this_batch")});
    line.accept("  FLOPs: %.1f TFLOP compiled MXU work (attention and padding included), "
        + "%.1f TFLOP = 2 x params x tokens; article 304 TFLOP, the same product at 70e9 params "
        + "(this config: %.1fe9)", new Object[] {
        (double) b.get("compiled_mxu_flops_server") / 1e12,
        (double) b.get("model_flops_2_x_params_x_tokens") / 1e12,
        ((Number) b.get("params")).doubleValue() / 1e9});
    if (((Number) b.get("active_params")).longValue() < ((Number) b.get("params")).longValue()) {
      line.accept("  a mixture of experts: a token's routed experts make %.1fe9 params active, "
          + "%.1f TFLOP for this batch; the compiled code runs every expert on every token "
          + "(dense, the unselected ones weighted by zero), so its MXU work and MFU count them "
          + "all", new Object[] {((Number) b.get("active_params")).doubleValue() / 1e9,
          (double) b.get("model_flops_2_x_active_params_x_tokens") / 1e12});
    }
    line.accept("  weights: %.1f GB as compiled (%s linear layers, and lm_head where the "
        + "vocabulary splits, split across the chips; the embedding table, kept f32, on every "
        + "chip%s); %.1f GB at 2 bytes/param; "
        + "article 140 GB, 70e9 params at 2 bytes", new Object[] {
        (double) (long) b.get("weight_bytes_server_fp32") / 1e9, m.get("weights_dtype"),
        replicas == 1 ? "" : "; one replica's, the server holds " + replicas + " copies",
        (double) b.get("weight_bytes_bf16_params") / 1e9});
    line.accept("  KV cache: %.1f GB (%s, %s); article 72 GB, from 127 x 64 x 8 x 128 x 2175 x "
        + "2 x 2 bytes: 64 layers where this model has %d", new Object[] {
        (double) b.get("kv_bytes_server") / 1e9, m.get("kv_dtype"), m.get("kv_heads_layout"),
        b.get("kv_layers")});
    StringBuilder others = new StringBuilder();
    ((Map<String, Double>) b.get("prefill_mfu_ceilings")).forEach((bound, c) -> {
      if (!bound.equals(b.get("prefill_ceiling_bound"))) {
        others.append(String.format(Locale.ROOT, "; %s %.1f%%", bound, 100 * c));
      }
    });
    line.accept("  prefill MFU ceiling of this compiled code: %.1f%% (its %s bound%s: its MXU "
        + "work at peak over the time each resource alone needs, were the engines perfectly "
        + "overlapped; the article claims over 90%%)", new Object[] {
        100 * (double) b.get("prefill_mfu_ceiling"), b.get("prefill_ceiling_bound"), others});
    if (b.containsKey("interconnect_bytes_per_s_for_90pct")) {
      Double needed = (Double) b.get("interconnect_bytes_per_s_for_90pct");
      line.accept("  its collectives alone take %.0f%% longer than its MXU work at peak: %s, where this "
          + "target has %.2f TB/s", new Object[] {
          100 * (1 / (double) ((Map<String, Double>) b.get("prefill_mfu_ceilings")).get("interconnect") - 1),
          needed == null ? String.format(Locale.ROOT, "their fixed costs and latency alone "
              + "(%.1f us) leave 90%% out of reach at any link bandwidth",
              1e6 * (double) b.get("interconnect_fixed_seconds"))
              : String.format(Locale.ROOT, "90%% needs about %.2f TB/s per chip of interconnect",
              needed / 1e12), (double) b.get("interconnect_bytes_per_s") / 1e12});
      int tp = (int) m.get("tensor_parallel");
      if (tp > 2) {
        line.accept("  fewer chips a copy sum less on the link for the same MXU work (a sum moves "
            + "(N-1)/N of the rows' bytes for 1/N of the FLOPs): --tensor-parallel %d serves %d "
            + "data-parallel copies", new Object[] {tp / 2, 2 * (int) m.get("replicas")});
      }
    }
    line.accept("  where the time goes, %s: %s", new Object[] {
        (boolean) b.get("one_step_program") ? "its step program (prefill and decodes)" : "prefill",
        byKind((Map<String, Double>) b.get("prefill_seconds_by_op_kind"))});
    line.accept("  where the time goes, a decode-only step of %d: %s", new Object[] {
        m.get("decode_batch"), byKind((Map<String, Double>) b.get("decode_seconds_by_op_kind"))});
    line.accept("KV capacity: %d tokens per server%s; most used %d%s", new Object[] {
        m.get("kv_capacity_tokens"), replicas == 1 ? "" : String.format(Locale.ROOT,
        " (%d per replica)", m.get("kv_capacity_tokens_replica")), m.get("kv_max_tokens_used"),
        replicas == 1 ? "" : " (by one replica)"});
    List<Map<String, Object>> steps = (List<Map<String, Object>>) m.get("steps");
    line.accept("steps: %d (%d distinct shapes timed, in %d emulator runs); each step against its "
        + "bounds (compute: MXU work at peak; bandwidth: HBM bytes at HBM bandwidth; interconnect: "
        + "all-reduce bytes at link bandwidth plus one link latency):", new Object[] {
        steps.size(), m.get("timing_runs"), m.get("emulator_runs")});
    int shown = 0;
    for (Map<String, Object> s : steps) {
      if (shown++ >= 5 && shown < steps.size()) {
        continue;
      }
      line.accept("  %st=%.3f s prefill %d + decode %d (past %d): %.4f s = %.2fx max(compute "
          + "%.4f s, bandwidth %.4f s, interconnect %.4f s)", new Object[] {
          replicas == 1 ? "" : "replica " + s.get("replica") + " ", s.get("start"),
          s.get("prefill_tokens"), s.get("decode_tokens"), s.get("decode_past"), s.get("seconds"),
          s.get("time_over_max_bound"), s.get("compute_bound_s"), s.get("bandwidth_bound_s"),
          s.get("interconnect_bound_s")});
    }
    return sb.toString();
  }

  /** The largest op kinds' shares of a step: "qmatmul 54% (32.1 ms), all_reduce 24% ...". */
  static String byKind(Map<String, Double> kinds) {
    double total = kinds.values().stream().mapToDouble(Double::doubleValue).sum();
    StringBuilder sb = new StringBuilder();
    double rest = total;
    int n = 0;
    for (Map.Entry<String, Double> e : kinds.entrySet()) {
      if (n++ == 6) {
        break;
      }
      sb.append(String.format(Locale.ROOT, "%s %.0f%% (%.2f ms), ", e.getKey(),
          100 * e.getValue() / total, 1e3 * e.getValue()));
      rest -= e.getValue();
    }
    sb.append(String.format(Locale.ROOT, "other %.0f%%", total > 0 ? 100 * rest / total : 0));
    return sb.toString();
  }
}
