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
    assertTrue(batch.get("prefill_seconds_by_op_kind").has("all_reduce")
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
    assertTrue(batch.get("one_step_program").asBoolean(), batch.toString());
    assertTrue(text.contains("where the time goes, its step program (prefill and decodes): "),
        text);
    String page = Files.readString(html);
    assertTrue(page.contains("<svg") && page.contains("Where the time goes"));
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
      "--decode-batch 0 | --decode-batch must be 1 or more, got 0",
      "--chips 0 | --chips must be 1 or more, got 0",
      "--rate -2 | --rate must be 0 (all requests at once) or a positive number",
      "--rate NaN | --rate must be 0 (all requests at once) or a positive number",
      "--prefill-chunk -1 | --prefill-chunk must be 0 (the whole prompt) or more, got -1"})
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

  @Test
  void chipsTheModelDoesNotSplitOverIsAUserError() {
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(new String[] {"bench", "../examples/tiny-llama/config.json",
        "--chips", "3"}, new PrintWriter(new StringWriter()), new PrintWriter(err));
    assertEquals(1, code, err.toString());
    assertTrue(err.toString().contains(
        "error: shard-tensor-parallel: 4 query heads do not split over 3 chips"), err.toString());
    assertTrue(!err.toString().contains("internal error"), err.toString());
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
        "config.json"), 2, 32, 3, 36, null, dev.sohuc.passes.quant.QuantMode.BF16);
    for (var p : java.util.List.of(model.prefillProgram(), model.decodeProgram(),
        model.stepProgram())) {
      assertTrue(p.program().code().stream()
          .anyMatch(w -> dev.sohuc.isa.InsnCodec.decode(w) instanceof dev.sohuc.isa.Insn.Mma m
              && m.dtype() == dev.sohuc.isa.DType.BF16), "no bf16 mma in a bf16 program");
    }
  }
}
