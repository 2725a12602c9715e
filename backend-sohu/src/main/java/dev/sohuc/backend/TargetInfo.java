package dev.sohuc.backend;

import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import dev.sohuc.isa.DType;
import java.util.EnumMap;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Locale;
import java.util.Map;

/**
 * What the backend needs to know of a machine description: its name and hash (recorded in the
 * container), the memory sizes it plans against, and the bytes of HBM reads that must be in
 * flight to cover the HBM latency ({@code hbmLatencyBytes}: bandwidth x latency, which sets how
 * far ahead weight panels are loaded), and per mma type the rows below which a matmul is bound
 * by its weight stream ({@code balanceRows}: the type's bytes times the MXU's peak in that
 * type, over twice the HBM bandwidth), and the HBM bytes a cycle streams. Read from
 * targets/*.json with Jackson; keys are matched loosely ({@code sram_bytes}, {@code sramBytes},
 * nested {@code {"value": n, "source": ...}} objects) because the description is owned by the
 * emulator. A key it reads that holds the wrong JSON type is an error, not a silent default.
 */
public record TargetInfo(String name, String sha256, long sramBytes, long accWords, long hbmBytes,
    long hbmLatencyBytes, Map<DType, Long> balanceRows, double hbmBytesPerCycle) {

  /**
   * This target as one of two control streams sees it (SohuBackend's second stream): a
   * {@code share} of the SRAM and of the ACC (aligned down), the rest shared.
   */
  TargetInfo part(double share) {
    return new TargetInfo(name, sha256, (long) (sramBytes * share) / Lowering.SRAM_ALIGN
        * Lowering.SRAM_ALIGN, (long) (accWords * share), hbmBytes, hbmLatencyBytes, balanceRows,
        hbmBytesPerCycle);
  }

  /** The description's key of each mma type's peak rate ({@code mxu.peak_bf16}, ...). */
  private static final Map<DType, String> PEAK_KEYS = Map.of(DType.F32, "peak_f32", DType.BF16,
      "peak_bf16", DType.F16, "peak_f16", DType.F8E4M3, "peak_f8", DType.F8E5M2, "peak_f8",
      DType.I8, "peak_i8");

  /** A key given twice is an error: otherwise the last silently wins. */
  private static final ObjectMapper JSON = JsonMapper.builder()
      .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

  /** The machine description used when none is given, bundled on the class path by isa-spec. */
  static final String DEFAULT_RESOURCE = "targets/sohu.json";
  private static final TargetInfo DEFAULT = loadDefault();

  /** The bundled {@code targets/sohu.json}: the same name and hash as {@code --target targets/sohu.json}. */
  public static TargetInfo defaults() {
    return DEFAULT;
  }

  private static TargetInfo loadDefault() {
    try (InputStream in = TargetInfo.class.getClassLoader().getResourceAsStream(DEFAULT_RESOURCE)) {
      if (in == null) {
        throw new IllegalStateException(DEFAULT_RESOURCE + " is missing from the class path "
            + "(isa-spec's jar bundles it)");
      }
      TargetInfo t = parse(in.readAllBytes(), DEFAULT_RESOURCE, "sohu", new TargetInfo("sohu", "", -1, -1, -1, 0,
          Map.of(), 0));
      if (t.sramBytes <= 0 || t.accWords <= 0 || t.hbmBytes <= 0) {
        throw new IllegalStateException(DEFAULT_RESOURCE + " lacks an SRAM, ACC or HBM capacity");
      }
      return t;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** A description file; keys it lacks take the built-in target's values. */
  public static TargetInfo load(Path file) {
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(file);
    } catch (IOException e) {
      throw new BackendException("cannot read target description " + file + ": " + e.getMessage());
    }
    String f = file.getFileName().toString();
    return parse(bytes, file.toString(), f.endsWith(".json") ? f.substring(0, f.length() - 5) : f, defaults());
  }

  private static TargetInfo parse(byte[] bytes, String source, String fallbackName, TargetInfo d) {
    JsonNode root;
    try {
      root = JSON.readTree(bytes);
    } catch (IOException e) {
      throw new BackendException("target description " + source + " is not valid JSON: "
          + e.getMessage().lines().findFirst().orElse(""));
    }
    if (root == null || !root.isObject()) {
      throw new BackendException("target description " + source
          + ": the top level must be a JSON object");
    }
    String name = text(root, source, "name");
    long sram = path(root, source, "sram", "capacity",
        number(root, source, d.sramBytes, "srambytes", "sramsize"));
    long acc = path(root, source, "acc", "capacity",
        number(root, source, -1, "accwords", "accumulatorwords"));
    if (acc < 0) {
      long accBytes = number(root, source, -1, "accbytes", "accumulatorbytes", "accsize");
      acc = accBytes < 0 ? d.accWords : accBytes / 4;
    }
    long hbm = path(root, source, "hbm", "capacity",
        number(root, source, d.hbmBytes, "hbmbytes", "hbmsize"));
    long bandwidth = path(root, source, "hbm", "bandwidth", -1);
    long latencyNs = path(root, source, "hbm", "latency", -1);
    long inFlight = bandwidth > 0 && latencyNs > 0 ? (long) (bandwidth * (latencyNs * 1e-9))
        : d.hbmLatencyBytes;
    Map<DType, Long> balance = new EnumMap<>(DType.class);
    PEAK_KEYS.forEach((t, key) -> {
      long peak = path(root, source, "mxu", key, -1);
      if (peak > 0 && bandwidth > 0) {
        balance.put(t, (long) (t.bytes() * (double) peak / (2.0 * bandwidth)));
      } else if (d.balanceRows.containsKey(t)) {
        balance.put(t, d.balanceRows.get(t));
      }
    });
    long clock = path(root, source, "chip", "clock", -1);
    double perCycle = bandwidth > 0 && clock > 0 ? (double) bandwidth / clock
        : d.hbmBytesPerCycle;
    return new TargetInfo(name == null ? fallbackName : name, sha256(bytes), sram, acc, hbm,
        inFlight, Map.copyOf(balance), perCycle);
  }

  /**
   * The MXU time of a matmul of {@code rows} rows whose weights are {@code type}, over the time
   * to stream those weights from HBM: its rows, padded to whole 128-row tiles, over
   * {@link #balanceRows} (each weight element, {@code type.bytes()} bytes read once, is 2 FLOP
   * per row). Below 1 the weight stream bounds the matmul. Infinite when the description gives
   * no peak, bandwidth or clock.
   */
  double mxuOverStream(long rows, DType type) {
    long padded = (Math.max(1, rows) + 127) / 128 * 128;
    long balance = balanceRows.getOrDefault(type, 0L);
    return balance <= 0 || hbmBytesPerCycle <= 0 ? Double.POSITIVE_INFINITY
        : (double) padded / balance;
  }

  private static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** {@code root.a.b} (or {@code root.a.b.value}), as the emulator's descriptions nest them. */
  private static long path(JsonNode root, String source, String a, String b, long fallback) {
    JsonNode group = root.path(a);
    if (!group.isMissingNode() && !group.isObject()) {
      throw wrongType(source, a, "an object", group);
    }
    JsonNode n = group.path(b);
    return n.isMissingNode() ? fallback : number(source, a + "." + b, n);
  }

  private static String text(JsonNode root, String source, String key) {
    Field f = find(root, "", key);
    if (f == null) {
      return null;
    }
    if (!f.value.isTextual()) {
      throw wrongType(source, f.path, "a string", f.value);
    }
    return f.value.asText();
  }

  /** The first of the keys the description has, or the fallback when it has none. */
  private static long number(JsonNode root, String source, long fallback, String... keys) {
    for (String k : keys) {
      Field f = find(root, "", k);
      if (f != null) {
        return number(source, f.path, f.value);
      }
    }
    return fallback;
  }

  /** A number, bare or as the emulator's {@code {"value": n, ...}}. */
  private static long number(String source, String path, JsonNode n) {
    if (n.isObject() && n.has("value")) {
      return number(source, path + ".value", n.get("value"));
    }
    if (!n.isNumber()) {
      throw wrongType(source, path, "a number", n);
    }
    return n.asLong();
  }

  private static BackendException wrongType(String source, String path, String expected,
      JsonNode found) {
    return new BackendException("target description " + source + ": " + path + ": must be "
        + expected + ", not " + found);
  }

  /** A key found by {@link #find}, with its dotted path in the description. */
  private record Field(String path, JsonNode value) {}

  /** Depth-first search for a key, ignoring case, '_' and '-'. */
  private static Field find(JsonNode node, String prefix, String key) {
    if (node == null || !node.isObject()) {
      return null;
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (normalize(e.getKey()).equals(key)) {
        return new Field(prefix + e.getKey(), e.getValue());
      }
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      Field found = find(e.getValue(), prefix + e.getKey() + ".", key);
      if (found != null) {
        return found;
      }
    }
    return null;
  }

  private static String normalize(String k) {
    return k.toLowerCase(Locale.ROOT).replace("_", "").replace("-", "");
  }
}
