package dev.sohuc.backend;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/**
 * How to compile.
 *
 * @param target the machine description JSON (targets/*.json); null for the built-in defaults
 * @param symbolBounds upper bound of each symbolic dimension (e.g. {@code seq -> 512}); buffers
 *     are sized for these bounds, and a run may use any value up to them
 * @param defaultSymbolBound bound of a symbol not named in {@code symbolBounds}
 * @param secondStream the name of a value whose dependent ops run in a second control stream
 *     beside the others (a step program's last micro-batch: its input rows), each stream in
 *     half the SRAM and ACC; null for one stream
 */
public record BackendOptions(Path target, Map<String, Long> symbolBounds, long defaultSymbolBound,
    String secondStream) {

  public static final long DEFAULT_SYMBOL_BOUND = 512;

  public BackendOptions {
    symbolBounds = new TreeMap<>(symbolBounds);
    if (defaultSymbolBound < 1) {
      throw new IllegalArgumentException("default symbol bound must be positive");
    }
  }

  public static BackendOptions defaults() {
    return new BackendOptions(null, Map.of(), DEFAULT_SYMBOL_BOUND, null);
  }

  public BackendOptions withTarget(Path t) {
    return new BackendOptions(t, symbolBounds, defaultSymbolBound, secondStream);
  }

  public BackendOptions withBound(String symbol, long bound) {
    Map<String, Long> m = new TreeMap<>(symbolBounds);
    m.put(symbol, bound);
    return new BackendOptions(target, m, defaultSymbolBound, secondStream);
  }

  /** Runs the ops that depend on the value named {@code seed} in a second control stream. */
  public BackendOptions withSecondStream(String seed) {
    return new BackendOptions(target, symbolBounds, defaultSymbolBound, seed);
  }

  public long boundOf(String symbol) {
    return symbolBounds.getOrDefault(symbol, defaultSymbolBound);
  }

  /** One line for the container's metadata. */
  public String describe() {
    return "target=" + (target == null ? "<built-in sohu defaults>" : target.getFileName())
        + " bounds=" + symbolBounds + " default_bound=" + defaultSymbolBound
        + (secondStream == null ? "" : " second_stream=" + secondStream);
  }
}
