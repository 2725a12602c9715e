package dev.sohuc.backend;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * How to compile.
 *
 * @param target the machine description JSON (targets/*.json); null for the built-in defaults
 * @param symbolBounds upper bound of each symbolic dimension (e.g. {@code seq -> 512}); buffers
 *     are sized for these bounds, and a run may use any value up to them
 * @param defaultSymbolBound bound of a symbol not named in {@code symbolBounds}
 * @param secondStream the ops whose result's name it finds run in a second control stream
 *     beside the others (a serving step's decode attention); null for one stream
 * @param secondStreamShare the second stream's share of the SRAM and the ACC (0 to 1)
 * @param fairDma with a second stream, its fork asks the DMA engine to alternate between the
 *     streams (docs/isa.md, {@code fork fair_dma=1}) rather than start the first's loads first
 */
public record BackendOptions(Path target, Map<String, Long> symbolBounds, long defaultSymbolBound,
    Pattern secondStream, double secondStreamShare, boolean fairDma) {

  public static final long DEFAULT_SYMBOL_BOUND = 512;

  public BackendOptions {
    symbolBounds = new TreeMap<>(symbolBounds);
    if (defaultSymbolBound < 1) {
      throw new IllegalArgumentException("default symbol bound must be positive");
    }
    if (!(secondStreamShare > 0 && secondStreamShare < 1)) {
      throw new IllegalArgumentException("a second stream's share must be between 0 and 1");
    }
  }

  public static BackendOptions defaults() {
    return new BackendOptions(null, Map.of(), DEFAULT_SYMBOL_BOUND, null, 0.5, false);
  }

  public BackendOptions withTarget(Path t) {
    return new BackendOptions(t, symbolBounds, defaultSymbolBound, secondStream,
        secondStreamShare, fairDma);
  }

  public BackendOptions withBound(String symbol, long bound) {
    Map<String, Long> m = new TreeMap<>(symbolBounds);
    m.put(symbol, bound);
    return new BackendOptions(target, m, defaultSymbolBound, secondStream, secondStreamShare,
        fairDma);
  }

  /**
   * Runs the ops whose result's name {@code names} finds in a second control stream, with
   * {@code share} of the SRAM and ACC.
   */
  public BackendOptions withSecondStream(Pattern names, double share) {
    return new BackendOptions(target, symbolBounds, defaultSymbolBound, names, share, fairDma);
  }

  /** With a second stream, its fork asks for fair DMA arbitration ({@code fork fair_dma=1}). */
  public BackendOptions withFairDma(boolean fair) {
    return new BackendOptions(target, symbolBounds, defaultSymbolBound, secondStream,
        secondStreamShare, fair);
  }

  public long boundOf(String symbol) {
    return symbolBounds.getOrDefault(symbol, defaultSymbolBound);
  }

  /** One line for the container's metadata. */
  public String describe() {
    return "target=" + (target == null ? "<built-in sohu defaults>" : target.getFileName())
        + " bounds=" + symbolBounds + " default_bound=" + defaultSymbolBound
        + (secondStream == null ? "" : " second_stream=" + secondStream.pattern() + "@"
            + secondStreamShare + (fairDma ? " fair_dma" : ""));
  }
}
