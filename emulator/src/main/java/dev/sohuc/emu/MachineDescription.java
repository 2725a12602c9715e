package dev.sohuc.emu;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.sohuc.isa.DType;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A machine description: the numbers of one chip that the emulator sizes its memories and its
 * cost model from, loaded from a JSON file under {@code targets/}. Every number is an object
 * {@code {"value": v, "unit": "...", "source": "public: ..." | "assumed: ..."}}; a missing,
 * negative, unknown or mistyped field is rejected with its dotted name and the file.
 */
public final class MachineDescription {

  /** One number of the schema: its dotted path, the unit it must state, and whether 0 is legal. */
  private record Spec(String path, String unit, boolean integer, boolean zeroOk) {}

  /** The schema; the order is the order of {@link #fields()} and of the docs. */
  private static final List<Spec> SCHEMA = List.of(
      new Spec("chip.clock", "Hz", false, false),
      new Spec("chip.chips_per_server", "chips", true, false),
      new Spec("hbm.capacity", "bytes", true, false),
      new Spec("hbm.bandwidth", "bytes/s", false, false),
      new Spec("hbm.latency", "ns", false, true),
      new Spec("sram.capacity", "bytes", true, false),
      new Spec("sram.bandwidth", "bytes/s", false, false),
      new Spec("sram.latency", "cycles", true, true),
      new Spec("acc.capacity", "words", true, false),
      new Spec("mxu.tile_rows", "elements", true, false),
      new Spec("mxu.tile_cols", "elements", true, false),
      new Spec("mxu.pad_partial_tiles", "flag", true, true),
      new Spec("mxu.peak_f8", "FLOP/s", false, false),
      new Spec("mxu.peak_bf16", "FLOP/s", false, false),
      new Spec("mxu.peak_f16", "FLOP/s", false, false),
      new Spec("mxu.peak_i8", "OP/s", false, false),
      new Spec("mxu.peak_f32", "FLOP/s", false, false),
      new Spec("vpu.simple_rate", "elements/cycle", false, false),
      new Spec("vpu.transcendental_rate", "elements/cycle", false, false),
      new Spec("vpu.row_rate", "elements/cycle", false, false),
      new Spec("control.queue_depth", "instructions", true, false),
      new Spec("interconnect.bandwidth", "bytes/s", false, false),
      new Spec("interconnect.latency", "ns", false, true));

  /** A key given twice is an error: otherwise the last silently wins. */
  private static final ObjectMapper JSON = JsonMapper.builder()
      .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

  /** One loaded number with its unit and the source that justifies it. */
  public record Value(String path, double value, String unit, String source) {}

  private final String name;
  private final String description;
  private final String origin;
  private final String sha256;
  private final Map<String, Value> values;

  private MachineDescription(String name, String description, String origin, String sha256,
      Map<String, Value> values) {
    this.name = name;
    this.description = description;
    this.origin = origin;
    this.sha256 = sha256;
    this.values = values;
  }

  /** Loads a machine description file ({@code --target FILE}). */
  public static MachineDescription load(Path file) {
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(file);
    } catch (NoSuchFileException e) {
      throw new TargetException(file.toString(), "(file)", "no such file");
    } catch (IOException e) {
      throw new TargetException(file.toString(), "(file)", "cannot read: " + e.getMessage());
    }
    return parse(bytes, file.toString());
  }

  /** The default target, {@code targets/sohu.json}, bundled as a classpath resource. */
  public static MachineDescription defaultTarget() {
    return resource("sohu");
  }

  /** A bundled target by name ({@code sohu}, {@code tiny}): the resource {@code targets/NAME.json}. */
  public static MachineDescription resource(String targetName) {
    String path = "targets/" + targetName + ".json";
    try (InputStream in = MachineDescription.class.getClassLoader().getResourceAsStream(path)) {
      if (in == null) {
        throw new TargetException("classpath:" + path, "(file)", "no bundled target named "
            + targetName);
      }
      return parse(in.readAllBytes(), "classpath:" + path);
    } catch (IOException e) {
      throw new TargetException("classpath:" + path, "(file)", "cannot read: " + e.getMessage());
    }
  }

  /** Parses the JSON text of a machine description; {@code origin} names it in messages. */
  public static MachineDescription parse(byte[] json, String origin) {
    JsonNode root;
    try {
      root = JSON.readTree(json);
    } catch (JsonProcessingException e) {
      throw new TargetException(origin, "(file)", "not valid JSON: "
          + e.getOriginalMessage().lines().findFirst().orElse("") + " at line "
          + (e.getLocation() == null ? "?" : e.getLocation().getLineNr()));
    } catch (IOException e) {
      throw new TargetException(origin, "(file)", "cannot read: " + e.getMessage());
    }
    if (root == null || !root.isObject()) {
      throw new TargetException(origin, "(file)", "the top level must be a JSON object");
    }
    String name = text(root, "name", origin);
    String description = text(root, "description", origin);
    Map<String, Value> values = new LinkedHashMap<>();
    Map<String, List<String>> groups = new LinkedHashMap<>();
    for (Spec s : SCHEMA) {
      String[] parts = s.path().split("\\.");
      groups.computeIfAbsent(parts[0], g -> new java.util.ArrayList<>()).add(parts[1]);
    }
    for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
      String key = it.next();
      if (!key.equals("name") && !key.equals("description") && !groups.containsKey(key)) {
        throw new TargetException(origin, key, "unknown field (expected one of name, description, "
            + String.join(", ", groups.keySet()) + ")");
      }
    }
    for (Map.Entry<String, List<String>> g : groups.entrySet()) {
      JsonNode group = root.get(g.getKey());
      if (group == null) {
        throw new TargetException(origin, g.getKey(), "missing");
      }
      if (!group.isObject()) {
        throw new TargetException(origin, g.getKey(), "must be an object");
      }
      for (Iterator<String> it = group.fieldNames(); it.hasNext(); ) {
        String key = it.next();
        if (!g.getValue().contains(key)) {
          throw new TargetException(origin, g.getKey() + "." + key, "unknown field (expected one of "
              + String.join(", ", g.getValue()) + ")");
        }
      }
    }
    for (Spec s : SCHEMA) {
      String[] parts = s.path().split("\\.");
      JsonNode node = root.get(parts[0]).get(parts[1]);
      values.put(s.path(), value(node, s, origin));
    }
    return new MachineDescription(name, description, origin, sha256(json), values);
  }

  private static String text(JsonNode root, String key, String origin) {
    JsonNode n = root.get(key);
    if (n == null) {
      throw new TargetException(origin, key, "missing");
    }
    if (!n.isTextual() || n.asText().isBlank()) {
      throw new TargetException(origin, key, "must be a non-empty string");
    }
    return n.asText();
  }

  private static Value value(JsonNode node, Spec s, String origin) {
    String p = s.path();
    if (node == null) {
      throw new TargetException(origin, p, "missing");
    }
    if (!node.isObject()) {
      throw new TargetException(origin, p, "must be an object {\"value\", \"unit\", \"source\"}");
    }
    for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
      String key = it.next();
      if (!key.equals("value") && !key.equals("unit") && !key.equals("source")) {
        throw new TargetException(origin, p + "." + key, "unknown field (expected value, unit, "
            + "source)");
      }
    }
    JsonNode v = node.get("value");
    JsonNode u = node.get("unit");
    JsonNode src = node.get("source");
    if (v == null) {
      throw new TargetException(origin, p + ".value", "missing");
    }
    if (u == null) {
      throw new TargetException(origin, p + ".unit", "missing");
    }
    if (src == null) {
      throw new TargetException(origin, p + ".source", "missing");
    }
    if (!v.isNumber()) {
      throw new TargetException(origin, p + ".value", "must be a number, not " + v);
    }
    double d = v.asDouble();
    if (!Double.isFinite(d)) {
      throw new TargetException(origin, p + ".value", "must be finite");
    }
    if (d < 0) {
      throw new TargetException(origin, p + ".value", "must not be negative (" + v + ")");
    }
    if (d == 0 && !s.zeroOk()) {
      throw new TargetException(origin, p + ".value", "must be positive");
    }
    if (s.integer() && (d != Math.rint(d) || d > 0x1p62)) {
      throw new TargetException(origin, p + ".value", "must be an integer below 2^62 (" + v + ")");
    }
    if (!u.isTextual() || !u.asText().equals(s.unit())) {
      throw new TargetException(origin, p + ".unit", "must be \"" + s.unit() + "\", not " + u);
    }
    if (!src.isTextual()
        || !(src.asText().startsWith("public: ") || src.asText().startsWith("assumed: "))) {
      throw new TargetException(origin, p + ".source", "must be a string starting with "
          + "\"public: \" or \"assumed: \"");
    }
    return new Value(p, d, s.unit(), src.asText());
  }

  private static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Raw values.

  public String name() {
    return name;
  }

  public String description() {
    return description;
  }

  /** Where it was loaded from: a path or {@code classpath:...}. */
  public String origin() {
    return origin;
  }

  /** SHA-256 of the JSON bytes, as the {@code .sohu} target section records it. */
  public String sha256() {
    return sha256;
  }

  /** Every number, in schema order, with unit and source. */
  public List<Value> fields() {
    return List.copyOf(values.values());
  }

  /** One number by its dotted path, e.g. {@code hbm.bandwidth}. */
  public double get(String path) {
    Value v = values.get(path);
    if (v == null) {
      throw new IllegalArgumentException("no machine-description field " + path);
    }
    return v.value();
  }

  private long getLong(String path) {
    return (long) get(path);
  }

  // ---------------------------------------------------------------------------------------------
  // Derived quantities the emulator uses.

  public double clockHz() {
    return get("chip.clock");
  }

  public long hbmBytes() {
    return getLong("hbm.capacity");
  }

  public long sramBytes() {
    return getLong("sram.capacity");
  }

  public long accWords() {
    return getLong("acc.capacity");
  }

  public int queueDepth() {
    return (int) Math.min(Integer.MAX_VALUE, getLong("control.queue_depth"));
  }

  public int tileRows() {
    return (int) Math.min(1 << 20, getLong("mxu.tile_rows"));
  }

  public int tileCols() {
    return (int) Math.min(1 << 20, getLong("mxu.tile_cols"));
  }

  public boolean padPartialTiles() {
    return get("mxu.pad_partial_tiles") != 0;
  }

  public double hbmBytesPerSecond() {
    return get("hbm.bandwidth");
  }

  public double hbmBytesPerCycle() {
    return get("hbm.bandwidth") / clockHz();
  }

  public double sramBytesPerCycle() {
    return get("sram.bandwidth") / clockHz();
  }

  /** HBM access latency in cycles (added to a DMA's completion, not to its engine occupancy). */
  public long hbmLatencyCycles() {
    return Math.round(get("hbm.latency") * 1e-9 * clockHz());
  }

  /** Chip-to-chip bandwidth per chip, in bytes per cycle (the rate of {@code allreduce}). */
  public double linkBytesPerCycle() {
    return get("interconnect.bandwidth") / clockHz();
  }

  /** One chip-to-chip hop, in cycles. */
  public long linkLatencyCycles() {
    return Math.round(get("interconnect.latency") * 1e-9 * clockHz());
  }

  public long sramLatencyCycles() {
    return getLong("sram.latency");
  }

  /** Peak dense MXU rate for inputs of this type, in FLOP/s (OP/s for i8). */
  public double peakFlops(DType inputs) {
    return switch (inputs) {
      case F8E4M3, F8E5M2 -> get("mxu.peak_f8");
      case BF16 -> get("mxu.peak_bf16");
      case F16 -> get("mxu.peak_f16");
      case I8, I32, I64, BOOL, U8 -> get("mxu.peak_i8");
      case F32 -> get("mxu.peak_f32");
    };
  }

  /** Multiply-accumulates per cycle for inputs of this type. */
  public double macsPerCycle(DType inputs) {
    return peakFlops(inputs) / 2 / clockHz();
  }

  @Override
  public String toString() {
    return name + " (" + origin + ")";
  }
}
