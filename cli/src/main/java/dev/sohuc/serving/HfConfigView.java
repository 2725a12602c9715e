package dev.sohuc.serving;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The few config.json numbers the serving model needs (KV bytes, the article's arithmetic). */
record HfConfigView(JsonNode root) {
  static HfConfigView read(Path configOrDir) {
    Path p = Files.isDirectory(configOrDir) ? configOrDir.resolve("config.json") : configOrDir;
    try {
      return new HfConfigView(new ObjectMapper().readTree(p.toFile()));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  long get(String key) {
    JsonNode n = root.get(key);
    if (n == null || !n.canConvertToLong()) {
      throw new IllegalArgumentException("config.json has no integer " + key);
    }
    return n.asLong();
  }

  /** A string key, or {@code fallback} when absent or not text. */
  String textOr(String key, String fallback) {
    JsonNode n = root.get(key);
    return n != null && n.isTextual() ? n.asText() : fallback;
  }

  long getOr(String key, long fallback) {
    JsonNode n = root.get(key);
    return n == null || n.isNull() ? fallback : n.asLong();
  }
}
