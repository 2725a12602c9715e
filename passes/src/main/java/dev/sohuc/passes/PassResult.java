package dev.sohuc.passes;

import java.util.Collections;
import java.util.Map;
import java.util.TreeMap;

/**
 * What one run of a pass did: how often each of its rules (or other named events) fired. A pass
 * changed the module exactly when some counter is non-zero.
 */
public record PassResult(Map<String, Long> counters) {

  public PassResult {
    counters = Collections.unmodifiableMap(new TreeMap<>(counters));
  }

  public static PassResult unchanged() {
    return new PassResult(Map.of());
  }

  public boolean changed() {
    return counters.values().stream().anyMatch(c -> c != 0);
  }

  public long count(String counter) {
    return counters.getOrDefault(counter, 0L);
  }

  /** Collects counters while a pass runs. */
  public static final class Counters {
    private final Map<String, Long> counts = new TreeMap<>();

    public void add(String counter) {
      add(counter, 1);
    }

    public void add(String counter, long n) {
      if (n != 0) {
        counts.merge(counter, n, Long::sum);
      }
    }

    public void addAll(PassResult r) {
      r.counters().forEach(this::add);
    }

    public PassResult result() {
      return new PassResult(counts);
    }
  }
}
