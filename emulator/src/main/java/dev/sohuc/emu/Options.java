package dev.sohuc.emu;

import java.nio.file.Path;

/**
 * How to run a program. Build with {@link #defaults()} and the {@code with...} methods.
 *
 * @param maxInstructions the instruction cap ({@code --max-instructions}): issuing more
 *     instructions than this traps; every loop iteration counts
 * @param maxCycles functional mode's work cap ({@code --max-cycles}): running engine
 *     instructions whose cycles, by the cost model and one after another, add up past this
 *     traps (see WorkBudget)
 * @param trace where timing mode writes a Chrome/Perfetto trace ({@code --trace}), or null
 * @param traceMaxEvents the trace stops recording after this many slices, and says so in it
 * @param parallel whether functional kernels may use several threads (results are identical)
 * @param hostHbmBudgetBytes functional mode traps when a program touches more HBM than this
 * @param programFile the .sohu file, to find a side file of constants; null if none
 * @param scheduleSeed functional mode: null runs each engine's ready instructions as soon as
 *     the tokens allow, oldest first; a seed runs them later, in a random order the tokens
 *     allow (each engine still in its own order), so that an instruction a missing token
 *     leaves unordered against another engine's can run on either side of it: a race check
 */
public record Options(long maxInstructions, long maxCycles, Path trace, int traceMaxEvents,
    boolean parallel, long hostHbmBudgetBytes, Path programFile, Long scheduleSeed) {

  /** One billion instructions: seconds to minutes of timing mode, never forever. */
  public static final long DEFAULT_MAX_INSTRUCTIONS = 1_000_000_000L;
  /**
   * 100 million cycles, 67 ms of the sohu target's engine time: about four minutes of functional
   * emulation at most (2.2 us a cycle measured), a hundred times what a billion-parameter
   * model's f32 prompt of 128 tokens needs.
   */
  public static final long DEFAULT_MAX_CYCLES = 100_000_000L;
  public static final int DEFAULT_TRACE_MAX_EVENTS = 1_000_000;

  public Options {
    if (maxInstructions < 0) {
      throw new EmulatorException("--max-instructions must not be negative: " + maxInstructions);
    }
    if (maxCycles < 0) {
      throw new EmulatorException("--max-cycles must not be negative: " + maxCycles);
    }
    if (traceMaxEvents < 0) {
      throw new EmulatorException("the trace event cap must not be negative: " + traceMaxEvents);
    }
  }

  public static Options defaults() {
    long budget = Math.max(64L << 20, Runtime.getRuntime().maxMemory() / 2);
    return new Options(DEFAULT_MAX_INSTRUCTIONS, DEFAULT_MAX_CYCLES, null, DEFAULT_TRACE_MAX_EVENTS,
        true, budget, null, null);
  }

  public Options withMaxInstructions(long n) {
    return new Options(n, maxCycles, trace, traceMaxEvents,
        parallel, hostHbmBudgetBytes, programFile, scheduleSeed);
  }

  public Options withMaxCycles(long n) {
    return new Options(maxInstructions, n, trace, traceMaxEvents,
        parallel, hostHbmBudgetBytes, programFile, scheduleSeed);
  }

  public Options withTrace(Path file) {
    return new Options(maxInstructions, maxCycles, file, traceMaxEvents,
        parallel, hostHbmBudgetBytes, programFile, scheduleSeed);
  }

  public Options withTraceMaxEvents(int n) {
    return new Options(maxInstructions, maxCycles, trace, n,
        parallel, hostHbmBudgetBytes, programFile, scheduleSeed);
  }

  public Options withParallel(boolean on) {
    return new Options(maxInstructions, maxCycles, trace, traceMaxEvents,
        on, hostHbmBudgetBytes, programFile, scheduleSeed);
  }

  public Options withHostHbmBudgetBytes(long bytes) {
    return new Options(maxInstructions, maxCycles, trace, traceMaxEvents,
        parallel, bytes, programFile, scheduleSeed);
  }

  public Options withProgramFile(Path file) {
    return new Options(maxInstructions, maxCycles, trace, traceMaxEvents,
        parallel, hostHbmBudgetBytes, file, scheduleSeed);
  }

  public Options withScheduleSeed(Long seed) {
    return new Options(maxInstructions, maxCycles, trace, traceMaxEvents,
        parallel, hostHbmBudgetBytes, programFile, seed);
  }
}
