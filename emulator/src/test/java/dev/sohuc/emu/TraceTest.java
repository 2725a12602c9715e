package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Chrome/Perfetto trace: valid JSON, one named track per engine, slices with mnemonics. */
class TraceTest {
  private static final String PROGRAM = """
      li r1, 1
      li r2, 16
      loop 3, e
      dma sram, r0+0, r2, hbm, r0+0, r2, 16, 4, signal=1
      mma r0+0, r2, r0+0, r2, r0+0, r2, 4, 4, 4, f32, wait=1, signal=2
      accrd r0+256, r2, r0+0, r2, r1, r2, f32, wait=2
      e:
      halt
      """;

  @Test
  void traceHasOneTrackPerEngineAndASlicePerInstruction(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("t.json");
    TimingReport r = new Emulator(TestSupport.asm(PROGRAM), TestSupport.TINY,
        TestSupport.opts().withTrace(file)).runTiming(Map.of());
    JsonNode root = new ObjectMapper().readTree(file.toFile());
    Map<Integer, String> tracks = new HashMap<>();
    Map<Integer, Set<String>> names = new HashMap<>();
    int slices = 0;
    for (JsonNode e : root.get("traceEvents")) {
      if (e.get("name").asText().equals("thread_name")) {
        tracks.put(e.get("tid").asInt(), e.get("args").get("name").asText());
      }
      if (e.get("ph").asText().equals("X")) {
        slices++;
        assertTrue(e.get("ts").isNumber() && e.get("dur").asDouble() > 0);
        assertEquals(1, e.get("pid").asInt());
        names.computeIfAbsent(e.get("tid").asInt(), k -> new HashSet<>())
            .add(e.get("name").asText());
      }
    }
    assertEquals(Map.of(0, "CTRL", 1, "DMA", 2, "MXU", 3, "VPU", 4, "LINK"), tracks);
    assertEquals(Set.of("dma"), names.get(1));
    assertEquals(Set.of("mma"), names.get(2));
    assertEquals(Set.of("accrd"), names.get(3));
    assertEquals(Set.of("li", "loop", "halt"), names.get(0));
    assertEquals(3 + 3 * 3 + 1, slices);
    assertEquals(slices, r.traceSlices());
    assertTrue(!root.get("otherData").get("truncated").asBoolean());
  }

  @Test
  void traceStopsAtItsCapAndSaysSo(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("t.json");
    TimingReport r = new Emulator(TestSupport.asm(PROGRAM), TestSupport.TINY,
        TestSupport.opts().withTrace(file).withTraceMaxEvents(5)).runTiming(Map.of());
    JsonNode root = new ObjectMapper().readTree(file.toFile());
    assertTrue(root.get("otherData").get("truncated").asBoolean());
    assertTrue(r.traceTruncated());
    boolean said = false;
    for (JsonNode e : root.get("traceEvents")) {
      said |= e.get("name").asText().startsWith("trace truncated after 5 slices");
    }
    assertTrue(said);
  }

  @Test
  void traceOfATrappingProgramIsStillValidJson(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("t.json");
    Emulator emu = new Emulator(TestSupport.asm("nop signal=1\nnop wait=2\nhalt\n"),
        TestSupport.TINY, TestSupport.opts().withTrace(file));
    org.junit.jupiter.api.Assertions.assertThrows(Trap.class, () -> emu.runTiming(Map.of()));
    assertTrue(new ObjectMapper().readTree(file.toFile()).get("traceEvents").isArray());
  }
}
