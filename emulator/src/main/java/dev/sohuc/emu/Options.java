package dev.sohuc.emu;

import java.nio.file.Path;

/**
 * How to run a program. Build with {@link #defaults()} and the {@code with...} methods.
 *
 * @param maxInstructions the instruction cap ({@code --max-instructions}): issuing more
 *     instructions than this traps; every loop iteration counts
 * @param trace where timing mode writes a Chrome/Perfetto trace ({@code --trace}), or null
 * @param traceMaxEvents the trace stops recording after this many slices, and says so in it
 * @param parallel whether functional kernels may use several threads (results are identical)
 * @param hostHbmBudgetBytes functional mode traps when a program touches more HBM than this
 * @param programFile the .sohu file, to find a side file of constants; null if none
 */
public record Options(long maxInstructions, Path trace, int traceMaxEvents, boolean parallel,
    long hostHbmBudgetBytes, Path programFile) {

  /** One billion instructions: seconds to minutes, never forever. */
  public static final long DEFAULT_MAX_INSTRUCTIONS = 1_000_000_000L;
  public static final int DEFAULT_TRACE_MAX_EVENTS = 1_000_000;

  public Options {
    if (maxInstructions < 0) {
      throw new EmulatorException("--max-instructions must not be negative: " + maxInstructions);
    }
    if (traceMaxEvents < 0) {
      throw new EmulatorException("the trace event cap must not be negative: " + traceMaxEvents);
    }
  }

  public static Options defaults() {
    long budget = Math.max(64L << 20, Runtime.getRuntime().maxMemory() / 2);
    return new Options(DEFAULT_MAX_INSTRUCTIONS, null, DEFAULT_TRACE_MAX_EVENTS, true, budget,
        null);
  }

  public Options withMaxInstructions(long n) {
    return new Options(n, trace, traceMaxEvents, parallel, hostHbmBudgetBytes, programFile);
  }

  public Options withTrace(Path file) {
    return new Options(maxInstructions, file, traceMaxEvents, parallel, hostHbmBudgetBytes,
        programFile);
  }

  public Options withTraceMaxEvents(int n) {
    return new Options(maxInstructions, trace, n, parallel, hostHbmBudgetBytes, programFile);
  }

  public Options withParallel(boolean on) {
    return new Options(maxInstructions, trace, traceMaxEvents, on, hostHbmBudgetBytes,
        programFile);
  }

  public Options withHostHbmBudgetBytes(long bytes) {
    return new Options(maxInstructions, trace, traceMaxEvents, parallel, bytes, programFile);
  }

  public Options withProgramFile(Path file) {
    return new Options(maxInstructions, trace, traceMaxEvents, parallel, hostHbmBudgetBytes,
        file);
  }
}
