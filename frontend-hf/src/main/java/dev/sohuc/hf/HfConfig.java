package dev.sohuc.hf;

import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A model's {@code config.json}, with typed getters whose errors name the file and the key.
 * Several keys have aliases across model families (GPT-2's {@code n_embd} is everyone else's
 * {@code hidden_size}); getters take the names to try in order.
 */
public final class HfConfig {
  /** The most layers a config may have (published models have under 200). */
  public static final long MAX_LAYERS = 1024;
  /** The most experts a mixture-of-experts layer may have (published ones have up to 256). */
  public static final long MAX_EXPERTS = 1024;
  /**
   * The most experts a model may have over all its layers (Mixtral-8x22B has 448): each is a
   * copy of the MLP's ops, and the two counts at their limits would build a graph of millions.
   */
  public static final long MAX_EXPERTS_IN_ALL_LAYERS = 1L << 14;

  /**
   * The largest config.json read (published ones are a few kilobytes): a tree of gigabytes of
   * JSON would run the heap out before a key could be checked.
   */
  static final long MAX_CONFIG_BYTES = 16L << 20;

  /** A key given twice is an error: otherwise the last silently wins. */
  private static final ObjectMapper JSON = JsonMapper.builder()
      .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

  private final Path file;
  private final JsonNode root;

  HfConfig(Path file, JsonNode root) {
    this.file = file;
    this.root = root;
  }

  /** config.json, given it or the model's folder. */
  public static Path locate(Path configJsonOrDir) {
    return Files.isDirectory(configJsonOrDir)
        ? configJsonOrDir.resolve("config.json") : configJsonOrDir;
  }

  public static HfConfig read(Path file) {
    JsonNode root;
    try {
      long size = Files.size(file);
      if (size > MAX_CONFIG_BYTES) {
        throw new HfImportException(file + ": " + size + " bytes, more than the " + MAX_CONFIG_BYTES
            + " a config.json may have");
      }
      root = JSON.readTree(file.toFile());
    } catch (IOException e) {
      throw new HfImportException(file + ": not valid JSON: " + Safetensors.oneLine(e), e);
    }
    if (root == null || !root.isObject()) {
      throw new HfImportException(file + ": not a JSON object");
    }
    return new HfConfig(file, root);
  }

  public Path file() {
    return file;
  }

  public JsonNode root() {
    return root;
  }

  private Optional<JsonNode> node(String... keys) {
    for (String k : keys) {
      JsonNode n = root.get(k);
      if (n != null && !n.isNull()) {
        return Optional.of(n);
      }
    }
    return Optional.empty();
  }

  public boolean has(String... keys) {
    return node(keys).isPresent();
  }

  public HfImportException error(String what) {
    return new HfImportException(file + ": " + what);
  }

  private static String keysText(String... keys) {
    return keys.length == 1 ? "\"" + keys[0] + "\"" : "\"" + String.join("\" (or \"", keys) + "\")";
  }

  public long getLong(String... keys) {
    JsonNode n = node(keys).orElseThrow(() -> error("missing key " + keysText(keys)));
    if (!n.isIntegralNumber() || !n.canConvertToLong()) {
      throw error("key " + keysText(keys) + " must be an integer, got " + n);
    }
    return n.asLong();
  }

  public long getLong(long fallback, String... keys) {
    return has(keys) ? getLong(keys) : fallback;
  }

  /** A positive integer (a size or a count). */
  public long getPositive(String... keys) {
    long v = getLong(keys);
    if (v <= 0) {
      throw error("key " + keysText(keys) + " must be positive, got " + v);
    }
    return v;
  }

  /**
   * A positive count at most {@code max}: a layer or expert count past any real model's, which
   * would make a graph too large to build, is refused here.
   */
  public long getCount(long max, String... keys) {
    long v = getPositive(keys);
    if (v > max) {
      throw error("key " + keysText(keys) + " is " + v + ", more than the " + max
          + " this importer builds");
    }
    return v;
  }

  public double getDouble(double fallback, String... keys) {
    Optional<JsonNode> n = node(keys);
    if (n.isEmpty()) {
      return fallback;
    }
    if (!n.get().isNumber()) {
      throw error("key " + keysText(keys) + " must be a number, got " + n.get());
    }
    return n.get().asDouble();
  }

  /**
   * A finite, non-negative number (a norm's epsilon): a negative one makes the norm NaN, an
   * infinite one (1e400 reads as infinity) zero.
   */
  public double getNonNegative(double fallback, String... keys) {
    double v = getDouble(fallback, keys);
    if (!(v >= 0) || Double.isInfinite(v)) {
      throw error("key " + keysText(keys) + " must be a finite non-negative number, got " + v);
    }
    return v;
  }

  /**
   * {@code a * b}, a width the graph derives from config sizes ({@code what}), refused when it
   * overflows a long rather than wrapping to a negative or small width.
   */
  public long times(long a, long b, String what) {
    try {
      return Math.multiplyExact(a, b);
    } catch (ArithmeticException overflow) {
      throw error(what + " overflows 64 bits: " + a + " x " + b);
    }
  }

  public boolean getBool(boolean fallback, String... keys) {
    Optional<JsonNode> n = node(keys);
    if (n.isEmpty()) {
      return fallback;
    }
    if (!n.get().isBoolean()) {
      throw error("key " + keysText(keys) + " must be true or false, got " + n.get());
    }
    return n.get().asBoolean();
  }

  public Optional<String> getString(String... keys) {
    Optional<JsonNode> n = node(keys);
    if (n.isPresent() && !n.get().isTextual()) {
      throw error("key " + keysText(keys) + " must be a string, got " + n.get());
    }
    return n.map(JsonNode::asText);
  }

  public Optional<JsonNode> getObject(String key) {
    Optional<JsonNode> n = node(key);
    if (n.isPresent() && !n.get().isObject()) {
      throw error("key \"" + key + "\" must be an object, got " + n.get());
    }
    return n;
  }
}
