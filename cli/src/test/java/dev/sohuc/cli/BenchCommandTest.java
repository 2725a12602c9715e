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
    }
    assertTrue(Files.readString(html).contains("<svg"));
  }

  @Test
  void unavailablePrecisionIsAUserError() {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(new String[] {"bench", "../examples/tiny-llama/config.json",
        "--quantize", "fp8"}, new PrintWriter(out), new PrintWriter(err));
    assertEquals(1, code);
    assertTrue(err.toString().contains("fp8"), err.toString());
  }
}
