package dev.sohuc.passes;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.text.IrPrinter;

import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Runs a pipeline of passes over a module: skips passes whose {@link Pass#shouldApply} says no,
 * verifies the module after every pass (on by default), prints the IR after all or some passes,
 * and measures each pass's wall time and allocated bytes.
 *
 * <pre>{@code
 * PassManager pm = new PassManager(PassPipelines.parse("canonicalize,cse,dce"))
 *     .printIrAfter(Set.of("cse"), out);
 * PassManager.Report report = pm.run(module);
 * out.print(report.fusion().render());
 * }</pre>
 */
public final class PassManager {

  /** One pass's run: what it did and what it cost. {@code skipped} when shouldApply said no. */
  public record PassRun(String pass, boolean skipped, long wallNanos, long allocatedBytes, PassResult result) {}

  /** All the runs of a pipeline and the fusion report of the whole pipeline. */
  public record Report(List<PassRun> runs, FusionReport fusion) {
    /** A table: pass, time, allocation, and the counters of each run. */
    public String renderTimings() {
      StringBuilder sb = new StringBuilder("pass timings\n");
      long total = 0;
      for (PassRun r : runs) {
        total += r.wallNanos();
        sb.append(String.format(Locale.ROOT, "  %-16s %9.3f ms %10s  %s%n", r.pass(), r.wallNanos() / 1e6,
            r.allocatedBytes() < 0 ? "?" : formatBytes(r.allocatedBytes()),
            r.skipped() ? "(skipped)" : r.result().counters().isEmpty() ? "(no change)" : r.result().counters()));
      }
      sb.append(String.format(Locale.ROOT, "  %-16s %9.3f ms%n", "total", total / 1e6));
      return sb.toString();
    }

    private static String formatBytes(long b) {
      return b < 1024 ? b + " B" : b < 1 << 20 ? (b >> 10) + " KiB" : (b >> 20) + " MiB";
    }
  }

  private final List<Pass> pipeline;
  private boolean verifyEach = true;
  private boolean printAll;
  private Set<String> printAfter = Set.of();
  private PrintWriter printOut;

  public PassManager(List<Pass> pipeline) {
    this.pipeline = List.copyOf(pipeline);
  }

  public List<Pass> pipeline() {
    return pipeline;
  }

  /** Verify after every pass (default true); a failure is a {@link PassException}. */
  public PassManager verifyEach(boolean on) {
    this.verifyEach = on;
    return this;
  }

  /** Prints the module to {@code out} after every pass, under a header naming the pass. */
  public PassManager printIrAfterAll(PrintWriter out) {
    this.printAll = true;
    this.printOut = out;
    return this;
  }

  /** Prints the module to {@code out} after each run of the named passes. */
  public PassManager printIrAfter(Set<String> passNames, PrintWriter out) {
    this.printAfter = Set.copyOf(passNames);
    this.printOut = out;
    return this;
  }

  public Report run(Module module) {
    var counts = FusionReport.countTransformerOps(module);
    List<PassRun> runs = new ArrayList<>();
    if (verifyEach) {
      new Verifier().verify(module); // the input's own errors are the user's, not a pass's
    }
    for (Pass pass : pipeline) {
      long alloc0 = allocatedBytes();
      long t0 = System.nanoTime();
      boolean apply = pass.shouldApply(module);
      PassResult result = apply ? pass.run(module) : PassResult.unchanged();
      long t1 = System.nanoTime();
      long alloc1 = allocatedBytes();
      runs.add(new PassRun(pass.name(), !apply, t1 - t0, alloc0 < 0 ? -1 : alloc1 - alloc0, result));
      if (verifyEach && result.changed()) {
        verify(module, "after pass " + pass.name());
      }
      if (printOut != null && (printAll || printAfter.contains(pass.name()))) {
        printOut.println("// ----- IR after " + pass.name() + (apply ? "" : " (skipped)") + " -----");
        printOut.print(IrPrinter.print(module));
        printOut.flush();
      }
    }
    return new Report(runs, FusionReport.of(counts, module, runs));
  }

  private static void verify(Module module, String when) {
    try {
      new Verifier().verify(module);
    } catch (IrException e) {
      throw new PassException("invalid IR " + when + ": " + e.getMessage(), e);
    }
  }

  private static long allocatedBytes() {
    if (ManagementFactory.getThreadMXBean() instanceof com.sun.management.ThreadMXBean mx
        && mx.isThreadAllocatedMemorySupported() && mx.isThreadAllocatedMemoryEnabled()) {
      return mx.getThreadAllocatedBytes(Thread.currentThread().threadId());
    }
    return -1;
  }
}
