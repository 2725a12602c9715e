package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sohuc.isa.DType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MachineDescriptionTest {

  @Test
  void defaultTargetHasThePublicNumbersAndTheDerivedPeak() {
    MachineDescription s = MachineDescription.defaultTarget();
    assertEquals("sohu", s.name());
    assertEquals(144L << 30, s.hbmBytes());  // 144 GiB
    assertEquals(8, s.get("chip.chips_per_server"));
    assertEquals(9.70e15, s.peakFlops(DType.F8E4M3));
    assertEquals(s.peakFlops(DType.F8E4M3) / 2, s.peakFlops(DType.BF16));
    assertEquals(s.peakFlops(DType.F8E4M3), s.peakFlops(DType.I8));
    // 500k tokens/s x 304 TFLOP per 2176-token batch / 0.9 / 8 chips
    assertEquals(500_000.0 * 304e12 / 2176 / 0.9 / 8, s.peakFlops(DType.F8E4M3), 0.01e15);
    for (MachineDescription.Value v : s.fields()) {
      assertTrue(v.source().startsWith("public: ") || v.source().startsWith("assumed: "));
    }
    assertTrue(s.fields().stream().filter(v -> v.path().equals("hbm.capacity")).findFirst()
        .orElseThrow().source().startsWith("public: "));
    assertEquals(64, s.sha256().length());
  }

  @Test
  void theRepositoryFileIsTheBundledOne() throws Exception {
    Path repo = Path.of("..", "targets", "sohu.json");
    if (Files.exists(repo)) {
      assertEquals(MachineDescription.load(repo).sha256(),
          MachineDescription.defaultTarget().sha256());
    }
  }

  private static ObjectNode tiny() throws Exception {
    try (var in = MachineDescription.class.getClassLoader()
        .getResourceAsStream("targets/tiny.json")) {
      return (ObjectNode) new ObjectMapper().readTree(in);
    }
  }

  private static TargetException reject(ObjectNode json, Path dir) throws Exception {
    Path f = dir.resolve("bad.json");
    Files.writeString(f, json.toPrettyString(), StandardCharsets.UTF_8);
    return assertThrows(TargetException.class, () -> MachineDescription.load(f));
  }

  @Test
  void missingFieldIsNamed(@TempDir Path dir) throws Exception {
    ObjectNode j = tiny();
    ((ObjectNode) j.get("hbm")).remove("bandwidth");
    TargetException e = reject(j, dir);
    assertEquals("hbm.bandwidth", e.field());
    assertTrue(e.getMessage().matches(".*bad\\.json: hbm\\.bandwidth: missing"), e.getMessage());
    assertTrue(!e.getMessage().contains("\n"));
  }

  @Test
  void negativeFieldIsNamed(@TempDir Path dir) throws Exception {
    ObjectNode j = tiny();
    ((ObjectNode) j.get("sram").get("capacity")).put("value", -5);
    TargetException e = reject(j, dir);
    assertEquals("sram.capacity.value", e.field());
    assertTrue(e.getMessage().endsWith("sram.capacity.value: must not be negative (-5)"),
        e.getMessage());
  }

  @Test
  void unknownFieldIsNamed(@TempDir Path dir) throws Exception {
    ObjectNode j = tiny();
    ((ObjectNode) j.get("mxu")).set("peak_f4", j.get("mxu").get("peak_f8"));
    TargetException e = reject(j, dir);
    assertEquals("mxu.peak_f4", e.field());
    assertTrue(e.getMessage().contains("mxu.peak_f4: unknown field"), e.getMessage());
    ObjectNode k = tiny();
    k.put("vendor", "x");
    assertEquals("vendor", reject(k, dir).field());
    ObjectNode l = tiny();
    ((ObjectNode) l.get("chip").get("clock")).put("note", "x");
    assertEquals("chip.clock.note", reject(l, dir).field());
  }

  @Test
  void wrongUnitSourceOrTypeIsNamed(@TempDir Path dir) throws Exception {
    ObjectNode j = tiny();
    ((ObjectNode) j.get("hbm").get("bandwidth")).put("unit", "GB/s");
    assertTrue(reject(j, dir).getMessage().contains("hbm.bandwidth.unit: must be \"bytes/s\""));
    ObjectNode k = tiny();
    ((ObjectNode) k.get("hbm").get("bandwidth")).put("source", "trust me");
    assertTrue(reject(k, dir).getMessage().contains("hbm.bandwidth.source: must be a string "
        + "starting with"));
    ObjectNode l = tiny();
    ((ObjectNode) l.get("acc").get("capacity")).put("value", "lots");
    assertTrue(reject(l, dir).getMessage().contains("acc.capacity.value: must be a number"));
    ObjectNode m = tiny();
    ((ObjectNode) m.get("control").get("queue_depth")).put("value", 2.5);
    assertTrue(reject(m, dir).getMessage().contains("must be an integer"));
  }

  @Test
  void wrongJsonTypesAreNamedWithTheTypeTheyNeed(@TempDir Path dir) throws Exception {
    String file = dir.resolve("bad.json") + ": ";
    ObjectNode j = tiny();
    j.put("name", 5);
    assertEquals(file + "name: must be a non-empty string", reject(j, dir).getMessage());
    ObjectNode k = tiny();
    ((ObjectNode) k.get("sram").get("capacity")).put("value", "134217728");
    assertEquals(file + "sram.capacity.value: must be a number, not \"134217728\"",
        reject(k, dir).getMessage());
    ObjectNode l = tiny();
    ((ObjectNode) l.get("chip").get("clock")).put("unit", 5);
    assertEquals(file + "chip.clock.unit: must be \"Hz\", not 5", reject(l, dir).getMessage());
    ObjectNode m = tiny();
    m.put("sram", 134217728);
    assertEquals(file + "sram: must be an object", reject(m, dir).getMessage());
  }

  @Test
  void aKeyGivenTwiceIsRefused(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("twice.json");
    Files.writeString(f, "{\n  \"name\": \"a\",\n  \"name\": \"b\"\n}");
    assertEquals(f + ": (file): not valid JSON: Duplicate field 'name' at line 3",
        assertThrows(TargetException.class, () -> MachineDescription.load(f)).getMessage());
  }

  @Test
  void notJsonAndMissingFile(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("x.json");
    Files.writeString(f, "{ nope");
    TargetException e = assertThrows(TargetException.class, () -> MachineDescription.load(f));
    assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
    TargetException g = assertThrows(TargetException.class,
        () -> MachineDescription.load(dir.resolve("none.json")));
    assertTrue(g.getMessage().endsWith("no such file"));
  }
}
