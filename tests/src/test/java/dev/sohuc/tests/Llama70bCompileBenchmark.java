package dev.sohuc.tests;

import dev.sohuc.cli.Sohuc;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Not a test: the scale check. Runs {@code sohuc compile examples/llama-3-70b/config.json
 * --shape seq=2048 -o 70b.sohu} in this JVM (shape-only: the directory holds only config.json)
 * and prints the compile wall time, the peak Java heap (sum of the heap pools' peak usage,
 * reset before the compile), the code section's bytes and instruction count, the container's
 * size and the compiler's notes (the batch bound it chose so that 141 GB of bf16 weights and the
 * activations fit one chip's 144 GiB). Extra arguments are passed to {@code sohuc compile}
 * (e.g. {@code --chips 8} for one chip's shard of a server). Run with {@code -Xmx2g} to show
 * that 2 GB suffice; the goals are under 10 s, 2 GB and 10 MB of code.
 */
public final class Llama70bCompileBenchmark {
  public static void main(String[] args) throws Exception {
    Path config = Models.root().resolve("examples/llama-3-70b/config.json");
    Path out = Files.createTempFile("70b", ".sohu");
    List<String> cmd = new ArrayList<>(List.of("compile", config.toString(), "--shape",
        "seq=2048", "-o", out.toString()));
    cmd.addAll(List.of(args));
    // warm-up compile at a small sequence is not done: the figure is a user's first compile
    System.gc();
    List<MemoryPoolMXBean> heap = ManagementFactory.getMemoryPoolMXBeans().stream()
        .filter(p -> p.getType() == MemoryType.HEAP).toList();
    heap.forEach(MemoryPoolMXBean::resetPeakUsage);
    long t0 = System.nanoTime();
    StringWriter o = new StringWriter();
    StringWriter e = new StringWriter();
    int code = Sohuc.execute(cmd.toArray(String[]::new), new PrintWriter(o), new PrintWriter(e));
    double seconds = (System.nanoTime() - t0) / 1e9;
    long peakHeap = heap.stream().mapToLong(p -> p.getPeakUsage().getUsed()).sum();
    if (code != 0) {
      System.out.println("sohuc " + String.join(" ", cmd) + " exited " + code + ":\n" + o + e);
      System.exit(1);
    }
    SohuProgram p = SohuReader.read(Files.readAllBytes(out), out.toString());
    long insns = p.code().size();
    long codeBytes = insns * 16;
    System.out.printf(Locale.ROOT, "llama-3-70b shape-only, seq 2048: sohuc %s%n",
        String.join(" ", cmd.subList(1, cmd.size())));
    System.out.printf(Locale.ROOT, "  compile wall time   %.2f s   (goal < 10 s)%n", seconds);
    System.out.printf(Locale.ROOT, "  peak Java heap      %.0f MB  (goal < 2048 MB; -Xmx %d MB)%n",
        peakHeap / 1e6, Runtime.getRuntime().maxMemory() >> 20);
    System.out.printf(Locale.ROOT, "  code section        %d bytes = %.2f MB (goal < 10 MB), %d "
        + "instructions%n", codeBytes, codeBytes / 1e6, insns);
    System.out.printf(Locale.ROOT, "  container file      %d bytes%n", Files.size(out));
    System.out.print(o);
    System.out.print(e);
    Files.deleteIfExists(out);
  }
}
