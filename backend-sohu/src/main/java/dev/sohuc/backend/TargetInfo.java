package dev.sohuc.backend;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Locale;
import java.util.Map;

/**
 * What the backend needs to know of a machine description: its name and hash (recorded in the
 * container) and the memory sizes it plans against. Read from targets/*.json with Jackson; keys
 * are matched loosely ({@code sram_bytes}, {@code sramBytes}, nested {@code {"value": n,
 * "source": ...}} objects) because the description is owned by the emulator.
 */
public record TargetInfo(String name, String sha256, long sramBytes, long accWords, long hbmBytes) {

  /** Used when no description is given: the numbers the sohu target assumes. */
  public static TargetInfo defaults() {
    return new TargetInfo("sohu", "0".repeat(64), 128L << 20, 4L << 20, 144_000_000_000L);
  }

  public static TargetInfo load(Path file) {
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(file);
    } catch (IOException e) {
      throw new BackendException("cannot read target description " + file + ": " + e.getMessage());
    }
    JsonNode root;
    try {
      root = new ObjectMapper().readTree(bytes);
    } catch (IOException e) {
      throw new BackendException("target description " + file + " is not valid JSON: "
          + e.getMessage().lines().findFirst().orElse(""));
    }
    TargetInfo d = defaults();
    String name = text(root, "name");
    if (name == null) {
      String f = file.getFileName().toString();
      name = f.endsWith(".json") ? f.substring(0, f.length() - 5) : f;
    }
    long sram = path(root, "sram", "capacity", number(root, d.sramBytes, "srambytes", "sramsize"));
    long acc = path(root, "acc", "capacity", number(root, -1, "accwords", "accumulatorwords"));
    if (acc < 0) {
      long accBytes = number(root, -1, "accbytes", "accumulatorbytes", "accsize");
      acc = accBytes < 0 ? d.accWords : accBytes / 4;
    }
    long hbm = path(root, "hbm", "capacity", number(root, d.hbmBytes, "hbmbytes", "hbmsize"));
    return new TargetInfo(name, sha256(bytes), sram, acc, hbm);
  }

  private static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** {@code root.a.b} (or {@code root.a.b.value}), as the emulator's descriptions nest them. */
  private static long path(JsonNode root, String a, String b, long fallback) {
    JsonNode n = root.path(a).path(b);
    if (n.isObject()) {
      n = n.path("value");
    }
    return n.isNumber() ? n.asLong() : fallback;
  }

  private static String text(JsonNode root, String key) {
    JsonNode n = find(root, key);
    return n != null && n.isTextual() ? n.asText() : null;
  }

  private static long number(JsonNode root, long fallback, String... keys) {
    for (String k : keys) {
      JsonNode n = find(root, k);
      if (n != null && n.isObject() && n.has("value")) {
        n = n.get("value");
      }
      if (n != null && n.isNumber()) {
        return n.asLong();
      }
    }
    return fallback;
  }

  /** Depth-first search for a key, ignoring case, '_' and '-'. */
  private static JsonNode find(JsonNode node, String key) {
    if (node == null || !node.isObject()) {
      return null;
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (normalize(e.getKey()).equals(key)) {
        return e.getValue();
      }
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      JsonNode found = find(it.next().getValue(), key);
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
