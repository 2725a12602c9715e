package dev.sohuc.hf.bench;

import dev.sohuc.hf.HfImporter;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Weight;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.nio.file.Path;
import java.util.Map;

/**
 * Imports a model shape-only (default: {@code examples/llama-3-70b/config.json}) as a prefill
 * graph with {@code seq=2048} and as a decode graph, several times, and prints the import time,
 * the heap in use after the import, and the size of the result.
 *
 * <pre>java -cp frontend-hf/target/classes:... dev.sohuc.hf.bench.ImportBenchmark [config.json] [runs]</pre>
 */
public final class ImportBenchmark {
  private ImportBenchmark() {}

  public static void main(String[] args) {
    Path config = Path.of(args.length > 0 ? args[0] : "examples/llama-3-70b/config.json");
    int runs = args.length > 1 ? Integer.parseInt(args[1]) : 5;
    MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
    System.out.printf("model %s, parameters %.3e (from the config)%n", config, (double) HfImporter.parameterCount(config));
    for (HfOptions options : new HfOptions[] {
        HfOptions.prefill().withShapeOnly(true).withDimBindings(Map.of("seq", 2048L)),
        HfOptions.decode().withShapeOnly(true)}) {
      for (int run = 1; run <= runs; run++) {
        System.gc();
        long heapBefore = memory.getHeapMemoryUsage().getUsed();
        long start = System.nanoTime();
        Module module = HfImporter.importModel(config, options);
        long nanos = System.nanoTime() - start;
        long heapWithModule = memory.getHeapMemoryUsage().getUsed();
        System.gc();
        long heapRetained = memory.getHeapMemoryUsage().getUsed() - heapBefore;
        long weightBytes = 0;
        long inlineBytes = 0;
        for (Weight w : module.weights().values()) {
          if (w.data() instanceof Weight.Data.Inline) {
            inlineBytes += w.sizeBytes();
          } else {
            weightBytes += w.sizeBytes();
          }
        }
        System.out.printf("%-7s run %d: import %7.1f ms, heap after import %6.1f MB (module retains %6.1f MB), "
                + "%d nodes, %d weights, %.2f GB of checkpoint weights, %.1f MB inline tables%n",
            options.graph(), run, nanos / 1e6, heapWithModule / 1e6, heapRetained / 1e6,
            module.main().body().size(), module.weights().size(), weightBytes / 1e9, inlineBytes / 1e6);
        if (module.main().body().isEmpty()) {
          throw new IllegalStateException("empty module");
        }
      }
    }
  }
}
