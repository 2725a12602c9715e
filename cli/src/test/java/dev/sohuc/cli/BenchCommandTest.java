package dev.sohuc.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BenchCommandTest {
  @TempDir Path tmp;

  @Test
  void smallConfigPrintsTheSummaryAndWritesJsonAndHtml() throws Exception {
    Path cfg = Path.of("..", "examples", "tiny-llama", "config.json");
    Path json = tmp.resolve("bench.json");
    Path html = tmp.resolve("bench.html");
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(new String[] {"bench", cfg.toString(), "--chips", "2",
        "--input-len", "32", "--output-len", "4", "--requests", "6", "--decode-batch", "3",
        "--json", json.toString(), "--report", html.toString()}, new PrintWriter(out),
        new PrintWriter(err));
    assertEquals(0, code, err.toString());
    String text = out.toString();
    assertTrue(text.matches("(?s).*prefill MFU: [0-9.]+%.*"), text);
    assertTrue(text.matches("(?s).*decode MFU: [0-9.]+%.*"), text);
    assertTrue(text.matches("(?s).*throughput: [0-9]+ tokens/s per server.*"), text);
    JsonNode j = new ObjectMapper().readTree(json.toFile());
    assertEquals(2, j.get("chips").asInt());
    assertEquals(6 * 4, j.get("output_tokens").asLong());
    assertTrue(j.get("output_tokens_per_s_server").asDouble() > 0);
    assertTrue(j.get("prefill_mfu").asDouble() > 0 && j.get("prefill_mfu").asDouble() <= 1);
    assertTrue(j.get("decode_mfu").asDouble() > 0 && j.get("decode_mfu").asDouble() <= 1);
    assertTrue(j.get("kv_max_tokens_used").asLong() <= j.get("kv_capacity_tokens").asLong());
    assertTrue(j.get("steps").size() > 0);
    for (JsonNode s : j.get("steps")) {
      assertTrue(s.get("time_over_max_bound").asDouble() >= 1.0, s.toString());
      // the all-reduces alone take at least their link time
      double link = s.get("interconnect_bound_s").asDouble();
      assertTrue(link > 0 && link < s.get("seconds").asDouble(), s.toString());
    }
    // the op kinds' self times add up to the step (less the control unit's last cycles)
    JsonNode batch = j.get("article_batch");
    double prefill = 0;
    for (JsonNode v : batch.get("prefill_seconds_by_op_kind")) {
      prefill += v.asDouble();
    }
    // sequence-parallel by default: the step's sums are reduce-scattered, its rows gathered
    assertTrue(j.get("parallelism").asText().contains("sequence-parallel"), j.toString());
    assertTrue(batch.get("prefill_seconds_by_op_kind").has("reduce_scatter")
        && batch.get("prefill_seconds_by_op_kind").has("all_gather")
        && batch.get("prefill_seconds_by_op_kind").has("matmul"), batch.toString());
    assertTrue(prefill > 0 && prefill <= batch.get("seconds").asDouble() * (1 + 1e-9),
        batch.toString());
    double ceiling = batch.get("prefill_mfu_ceiling").asDouble();
    assertTrue(ceiling > 0 && ceiling <= 1, batch.toString());
    // the ceiling is the lowest of the three bounds'
    double lowest = 1;
    for (String bound : java.util.List.of("HBM bandwidth", "VPU", "interconnect")) {
      double c = batch.get("prefill_mfu_ceilings").get(bound).asDouble();
      assertTrue(c > 0 && c <= 1, bound + ": " + batch);
      lowest = Math.min(lowest, c);
    }
    assertEquals(lowest, ceiling, 1e-12);
    assertTrue(text.contains("prefill MFU ceiling of this compiled code: "), text);
    // two chips of a tiny model: the collectives' fixed costs and latency alone outlast its
    // matmuls, so no link bandwidth gives 90%
    assertTrue(batch.get("prefill_mfu_ceilings").get("interconnect").asDouble() < 0.9, batch.toString());
    assertTrue(batch.get("interconnect_bytes_per_s_for_90pct").isNull(), batch.toString());
    assertTrue(batch.get("interconnect_fixed_seconds").asDouble() > 0, batch.toString());
    assertTrue(text.contains("leave 90% out of reach at any link bandwidth"), text);
    assertTrue(batch.get("one_step_program").asBoolean(), batch.toString());
    assertTrue(text.contains("where the time goes, its step program (prefill and decodes): "),
        text);
    String page = Files.readString(html);
    assertTrue(page.contains("<svg") && page.contains("Where the time goes"));
  }

  /**
   * Two one-chip replicas serve six requests as two servers of one chip serve three each: the
   * same steps side by side, so twice the tokens/s per server at the same MFU and bandwidth use.
   */
  @Test
  void dataParallelReplicasServeTheirShareSideBySide() throws Exception {
    JsonNode one = benchJson("one", "--chips", "1", "--requests", "3");
    JsonNode two = benchJson("two", "--chips", "2", "--tensor-parallel", "1", "--requests", "6");
    assertEquals(1, one.get("replicas").asInt());
    assertEquals(2, two.get("replicas").asInt());
    assertEquals(1, two.get("tensor_parallel").asInt());
    assertTrue(two.get("parallelism").asText().startsWith("2 data-parallel replicas of 1 chip"),
        two.toString());
    assertEquals(2 * one.get("steps").size(), two.get("steps").size());
    assertEquals(one.get("makespan_seconds").asDouble(), two.get("makespan_seconds").asDouble(),
        0);
    for (String twice : java.util.List.of("total_tokens_per_s_server",
        "output_tokens_per_s_server", "kv_capacity_tokens")) {
      assertEquals(2 * one.get(twice).asDouble(), two.get(twice).asDouble(),
          1e-9 * one.get(twice).asDouble(), twice);
    }
    for (String same : java.util.List.of("total_tokens_per_s_chip", "prefill_mfu", "decode_mfu",
        "hbm_bandwidth_use", "kv_max_tokens_used", "ttft_p50_s", "tpot_p99_s")) {
      assertEquals(one.get(same).asDouble(), two.get(same).asDouble(),
          1e-9 * one.get(same).asDouble(), same);
    }
    JsonNode batch1 = one.get("article_batch");
    JsonNode batch2 = two.get("article_batch");
    assertEquals(2 * batch1.get("tokens_per_s_server_at_this_batch").asDouble(),
        batch2.get("tokens_per_s_server_at_this_batch").asDouble(),
        1e-9 * batch1.get("tokens_per_s_server_at_this_batch").asDouble());
    // the batch's FLOPs, weights and KV cache are one replica's, as the article's are one copy's
    for (String same : java.util.List.of("compiled_mxu_flops_server", "weight_bytes_server_fp32",
        "kv_bytes_server")) {
      assertEquals(batch1.get(same).asDouble(), batch2.get(same).asDouble(), 0, same);
    }
    for (JsonNode s : two.get("steps")) {
      assertTrue(s.get("replica").asInt() == 0 || s.get("replica").asInt() == 1, s.toString());
    }
  }

  /**
   * The step program in one control stream serves the same requests, each its output length,
   * in the same steps as in two (the default): only their times differ.
   */
  @Test
  void oneStreamServesTheSameSteps() throws Exception {
    JsonNode one = benchJson("one-stream", "--chips", "2", "--requests", "3",
        "--no-two-streams");
    JsonNode two = benchJson("two-streams", "--chips", "2", "--requests", "3");
    assertTrue(two.get("parallelism").asText().contains(", two control streams in the step "
        + "layout fastest for each step shape (the second runs "), two.toString());
    assertTrue(!one.get("parallelism").asText().contains("streams"), one.toString());
    assertEquals(one.get("steps").size(), two.get("steps").size());
    assertEquals(one.get("output_tokens").asLong(), two.get("output_tokens").asLong());
    assertEquals(one.get("article_batch").get("compiled_mxu_flops_server").asDouble(),
        two.get("article_batch").get("compiled_mxu_flops_server").asDouble(), 0);
    assertTrue(two.get("prefill_mfu").asDouble() > 0);
    // a target whose SRAM quarter cannot hold the decode attention's tiles: one stream
    JsonNode small = benchJson("small-sram", "--chips", "2", "--requests", "3", "--target",
        "../targets/tiny.json");
    assertTrue(!small.get("parallelism").asText().contains("streams"), small.toString());
    assertEquals(one.get("output_tokens").asLong(), small.get("output_tokens").asLong());
  }

  private JsonNode benchJson(String name, String... options) throws Exception {
    Path json = tmp.resolve(name + ".json");
    java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("bench",
        "../examples/tiny-llama/config.json", "--input-len", "32", "--output-len", "4",
        "--decode-batch", "3", "--json", json.toString()));
    args.addAll(java.util.List.of(options));
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(args.toArray(String[]::new), new PrintWriter(new StringWriter()),
        new PrintWriter(err));
    assertEquals(0, code, err.toString());
    return new ObjectMapper().readTree(json.toFile());
  }

  @Test
  void unavailablePrecisionIsAUserError() {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(new String[] {"bench", "../examples/tiny-llama/config.json",
        "--quantize", "int8"}, new PrintWriter(out), new PrintWriter(err));
    assertEquals(1, code);
    assertTrue(err.toString().contains("int8"), err.toString());
  }

  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', value = {
      "--input-len 0 | --input-len must be 1 or more, got 0",
      "--output-len 0 | --output-len must be 1 or more, got 0",
      "--requests -1 | --requests must be 1 or more, got -1",
      "--requests 10000000 | --requests must be at most 100000 (the simulation keeps every "
          + "request and step, for the percentiles and --json), got 10000000",
      "--decode-batch 0 | --decode-batch must be 1 or more, got 0",
      "--chips 0 | --chips must be 1 or more, got 0",
      "--rate -2 | --rate must be 0 (all requests at once) or a positive number",
      "--rate NaN | --rate must be 0 (all requests at once) or a positive number",
      "--rate 1e-300 | --rate 1.0E-300 spreads 256 requests over about 2.56e+302 s, past the "
          + "1e+09 s within which the simulation's clock still tells a step's microseconds; give "
          + "at least 2.56e-07 requests/s",
      "--prefill-chunk -1 | --prefill-chunk must be 0 (the whole prompt) or more, got -1",
      "--tensor-parallel 0 | --tensor-parallel must divide --chips 2 (the server is whole "
          + "replicas), got 0",
      "--tensor-parallel 3 | --tensor-parallel must divide --chips 2 (the server is whole "
          + "replicas), got 3"})
  void outOfRangeOptionsAreUsageErrors(String option, String message) {
    StringWriter err = new StringWriter();
    String[] kv = option.split(" ");
    // tiny-llama's 4 heads split over 2 chips (the default, 8, would not)
    java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("bench",
        "../examples/tiny-llama/config.json", kv[0], kv[1]));
    if (!kv[0].equals("--chips")) {
      args.addAll(java.util.List.of("--chips", "2"));
    }
    int code = Sohuc.execute(args.toArray(String[]::new), new PrintWriter(new StringWriter()),
        new PrintWriter(err));
    assertEquals(2, code, err.toString());
    assertTrue(err.toString().contains(message), err.toString());
  }

  /**
   * Each decoder family at its published dims (two layers), sharded and served: Mistral's
   * sliding window, Qwen2's biases (28 heads: on 4 chips), Gemma's 256-wide heads and norm
   * offset, Phi-3's fused projections and window, Mixtral's experts. Every one compiles and
   * finishes its requests.
   */
  @Test
  void everyDecoderFamilyServesAtItsRealDims() throws Exception {
    String common = "\"num_hidden_layers\": 2, \"rms_norm_eps\": 1e-05, "
        + "\"torch_dtype\": \"bfloat16\", \"max_position_embeddings\": 32768, ";
    java.util.Map<String, String> families = new java.util.LinkedHashMap<>();
    families.put("mistral", "\"model_type\": \"mistral\", \"hidden_size\": 4096, "
        + "\"intermediate_size\": 14336, \"num_attention_heads\": 32, "
        + "\"num_key_value_heads\": 8, \"vocab_size\": 32000, \"sliding_window\": 4096, "
        + "\"rope_theta\": 10000.0");
    families.put("qwen2", "\"model_type\": \"qwen2\", \"hidden_size\": 3584, "
        + "\"intermediate_size\": 18944, \"num_attention_heads\": 28, "
        + "\"num_key_value_heads\": 4, \"vocab_size\": 152064, \"rope_theta\": 1000000.0");
    families.put("gemma", "\"model_type\": \"gemma\", \"hidden_size\": 3072, "
        + "\"intermediate_size\": 24576, \"num_attention_heads\": 16, "
        + "\"num_key_value_heads\": 16, \"head_dim\": 256, \"vocab_size\": 256000, "
        + "\"hidden_activation\": \"gelu_pytorch_tanh\", \"rope_theta\": 10000.0");
    families.put("phi3", "\"model_type\": \"phi3\", \"hidden_size\": 3072, "
        + "\"intermediate_size\": 8192, \"num_attention_heads\": 32, "
        + "\"num_key_value_heads\": 32, \"vocab_size\": 32064, \"sliding_window\": 2047, "
        + "\"hidden_act\": \"silu\", \"rope_theta\": 10000.0");
    families.put("mixtral", "\"model_type\": \"mixtral\", \"hidden_size\": 4096, "
        + "\"intermediate_size\": 14336, \"num_attention_heads\": 32, "
        + "\"num_key_value_heads\": 8, \"vocab_size\": 32000, \"num_local_experts\": 8, "
        + "\"num_experts_per_tok\": 2, \"rope_theta\": 1000000.0");
    for (var f : families.entrySet()) {
      Path cfg = tmp.resolve(f.getKey() + ".json");
      Files.writeString(cfg, "{" + common + f.getValue() + "}");
      Path json = tmp.resolve(f.getKey() + "-bench.json");
      StringWriter err = new StringWriter();
      int code = Sohuc.execute(new String[] {"bench", cfg.toString(), "--chips",
          f.getKey().equals("qwen2") ? "4" : "8", "--input-len", "256", "--output-len", "4",
          "--requests", "3", "--json", json.toString()}, new PrintWriter(new StringWriter()),
          new PrintWriter(err));
      assertEquals(0, code, f.getKey() + ": " + err);
      JsonNode j = new ObjectMapper().readTree(json.toFile());
      assertEquals(3 * 4, j.get("output_tokens").asLong(), f.getKey());
      assertTrue(j.get("prefill_mfu").asDouble() > 0, f.getKey());
      // Mixtral's 2 of 8 experts: 6 of its experts' 3 x 4096 x 14336 matrices a layer idle
      JsonNode batch = j.get("article_batch");
      assertEquals(f.getKey().equals("mixtral") ? 2L * 6 * 3 * 4096 * 14336 : 0,
          batch.get("params").asLong() - batch.get("active_params").asLong(), f.getKey());
    }
  }

  /**
   * The interconnect the summary says 90% needs is what it takes: Mistral-7B's dims on 8 chips,
   * benched again on a target with that link bandwidth, reach an interconnect ceiling of 90%.
   */
  @Test
  void theInterconnectFor90PercentGivesThat() throws Exception {
    Path cfg = tmp.resolve("mistral.json");
    Files.writeString(cfg, "{\"num_hidden_layers\": 2, \"rms_norm_eps\": 1e-05, \"model_type\": \"mistral\", "
        + "\"max_position_embeddings\": 32768, "
        + "\"hidden_size\": 4096, \"intermediate_size\": 14336, \"num_attention_heads\": 32, "
        + "\"num_key_value_heads\": 8, \"vocab_size\": 32000, \"rope_theta\": 10000.0, \"torch_dtype\": \"bfloat16\"}");
    JsonNode before = benchBatch(cfg, null);
    assertTrue(before.get("prefill_mfu_ceilings").get("interconnect").asDouble() < 0.9, before.toString());
    double needed = before.get("interconnect_bytes_per_s_for_90pct").asDouble();
    assertTrue(needed > before.get("interconnect_bytes_per_s").asDouble(), before.toString());
    ObjectMapper json = new ObjectMapper();
    com.fasterxml.jackson.databind.node.ObjectNode target = (com.fasterxml.jackson.databind.node.ObjectNode)
        json.readTree(Path.of("..", "targets", "sohu.json").toFile());
    ((com.fasterxml.jackson.databind.node.ObjectNode) target.get("interconnect").get("bandwidth"))
        .put("value", needed);
    Path faster = tmp.resolve("faster-link.json");
    json.writeValue(faster.toFile(), target);
    JsonNode after = benchBatch(cfg, faster);
    assertEquals(0.9, after.get("prefill_mfu_ceilings").get("interconnect").asDouble(), 0.005, after.toString());
  }

  private JsonNode benchBatch(Path cfg, Path target) throws Exception {
    Path out = tmp.resolve(target == null ? "before.json" : "after.json");
    java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("bench", cfg.toString(), "--chips",
        "8", "--input-len", "256", "--output-len", "4", "--requests", "2", "--json", out.toString()));
    if (target != null) {
      args.addAll(java.util.List.of("--target", target.toString()));
    }
    StringWriter err = new StringWriter();
    assertEquals(0, Sohuc.execute(args.toArray(String[]::new), new PrintWriter(new StringWriter()),
        new PrintWriter(err)), err.toString());
    return new ObjectMapper().readTree(out.toFile()).get("article_batch");
  }

  @Test
  void aConfigThatIsNotJsonIsNamedInTheError() throws Exception {
    Path cfg = tmp.resolve("config.json");
    Files.writeString(cfg, "not json");
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(new String[] {"bench", cfg.toString()},
        new PrintWriter(new StringWriter()), new PrintWriter(err));
    assertEquals(1, code, err.toString());
    assertTrue(err.toString().startsWith("error: " + cfg + ": not valid JSON: "), err.toString());
  }

  @Test
  void chipsTheModelDoesNotSplitOverIsAUserError() {
    Run r = bench("../examples/tiny-llama/config.json", "--chips", "3", "--input-len", "32",
        "--output-len", "4");
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("error: ../examples/tiny-llama/config.json: "
        + "shard-tensor-parallel: 4 query heads do not split over 3 chips; the model's heads "
        + "split over 2 or 4 chips (--tensor-parallel N with such an N that divides --chips "
        + "serves it as --chips / N replicas of N chips)"), r.err());
    assertTrue(!r.err().contains("internal error"), r.err());
    // asked for by name, the split is the user's: no hint
    r = bench("../examples/tiny-llama/config.json", "--chips", "3", "--tensor-parallel", "3",
        "--input-len", "32", "--output-len", "4");
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("split over 2 or 4 chips") && !r.err().contains("replicas"),
        r.err());
  }

  @Test
  void aRequestPastTheModelsPositionsIsAUserError() {
    Run r = bench("../examples/tiny-llama/config.json", "--chips", "2", "--input-len", "120",
        "--output-len", "9");
    assertEquals(1, r.code(), r.err());
    assertEquals("error: ../examples/tiny-llama/config.json: --input-len 120 + --output-len 9 "
        + "= 129 tokens a request, past the 128 positions the model serves", r.err().strip());
    // at the limit it serves
    r = bench("../examples/tiny-llama/config.json", "--chips", "2", "--input-len", "124",
        "--output-len", "4", "--requests", "2", "--decode-batch", "2");
    assertEquals(0, r.code(), r.err());
  }

  /** What {@code sohuc bench} returned and wrote to stderr. */
  private record Run(int code, String err) {}

  private static Run bench(String... args) {
    String[] all = new String[args.length + 1];
    all[0] = "bench";
    System.arraycopy(args, 0, all, 1, args.length);
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(all, new PrintWriter(new StringWriter()), new PrintWriter(err));
    return new Run(code, err.toString());
  }

  @Test
  void autoServesTheCheckpointsPrecision() {
    assertEquals(dev.sohuc.passes.quant.QuantMode.BF16, dev.sohuc.serving.StepModel
        .checkpointPrecision(Path.of("..", "examples", "llama-3-70b", "config.json")));
    assertEquals(dev.sohuc.passes.quant.QuantMode.NONE, dev.sohuc.serving.StepModel
        .checkpointPrecision(Path.of("..", "examples", "tiny-llama", "config.json")));
  }

  /**
   * bf16: the compiled programs run qmatmul in bf16, and MFU is against its peak. (fp8 is wired
   * the same way, but QuantLowering runs out of scalar registers on these qmatmuls for now.)
   */
  @Test
  void bf16BenchTimesCompiledQmatmul() throws Exception {
    for (String q : new String[] {"bf16"}) {
      Path json = tmp.resolve("bench-" + q + ".json");
      StringWriter out = new StringWriter();
      StringWriter err = new StringWriter();
      int code = Sohuc.execute(new String[] {"bench", "../examples/tiny-llama/config.json",
          "--chips", "2", "--input-len", "32", "--output-len", "4", "--requests", "4",
          "--decode-batch", "3", "--quantize", q, "--json", json.toString()},
          new PrintWriter(out), new PrintWriter(err));
      assertEquals(0, code, err.toString());
      String text = out.toString();
      assertTrue(text.contains("MFU of the " + q + " peak"), text);
      JsonNode j = new ObjectMapper().readTree(json.toFile());
      double peak = j.get("peak_flops_program_dtype").asDouble();
      var target = dev.sohuc.emu.MachineDescription.defaultTarget();
      // most MXU work is in the narrow type: the weighted peak is above fp32's
      assertTrue(peak > target.peakFlops(dev.sohuc.isa.DType.F32), text);
      for (JsonNode s : j.get("steps")) {
        assertTrue(s.get("time_over_max_bound").asDouble() >= 1.0, s.toString());
      }
    }
    var model = new dev.sohuc.serving.StepModel(Path.of("..", "examples", "tiny-llama",
        "config.json"), 2, 32, 3, 36, null, dev.sohuc.passes.quant.QuantMode.BF16, true,
        false);
    for (var p : java.util.List.of(model.prefillProgram(), model.decodeProgram(),
        model.stepProgram())) {
      assertTrue(p.program().code().stream()
          .anyMatch(w -> dev.sohuc.isa.InsnCodec.decode(w) instanceof dev.sohuc.isa.Insn.Mma m
              && m.dtype() == dev.sohuc.isa.DType.BF16), "no bf16 mma in a bf16 program");
    }
  }
}
