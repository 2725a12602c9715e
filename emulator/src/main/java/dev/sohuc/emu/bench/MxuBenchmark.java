package dev.sohuc.emu.bench;

import dev.sohuc.emu.kernel.MxuKernel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Prints the functional MXU kernel's GFLOP/s beside a naive triple loop's and beside an estimate
 * of this CPU's fp32 peak. Not a test: run it with
 * {@code mvn -q -pl emulator exec:exec -Dbench=dev.sohuc.emu.bench.MxuBenchmark}.
 */
public final class MxuBenchmark {
  private MxuBenchmark() {}

  public static void main(String[] args) {
    int m = 128;
    int n = 128;
    int k = args.length > 0 ? Integer.parseInt(args[0]) : 2048;
    Random rnd = new Random(1);
    float[] a = new float[m * k];
    float[][] b = new float[k][n];
    for (int i = 0; i < a.length; i++) {
      a[i] = rnd.nextFloat() - 0.5f;
    }
    for (float[] row : b) {
      for (int j = 0; j < n; j++) {
        row[j] = rnd.nextFloat() - 0.5f;
      }
    }
    float[][] c = new float[m][n];
    double flops = 2.0 * m * n * k;

    double naive = measure(() -> MxuKernel.naiveF32(a, b, c, m, n, k), flops, 0.5);
    double single = measure(() -> MxuKernel.mmaF32(a, b, c, m, n, k, false), flops, 1.0);
    double multi = measure(() -> MxuKernel.mmaF32(a, b, c, m, n, k, true), flops, 1.0);

    // check the fast kernel against the naive one: same order of operations, same bits
    float[][] c1 = new float[m][n];
    float[][] c2 = new float[m][n];
    MxuKernel.naiveF32(a, b, c1, m, n, k);
    MxuKernel.mmaF32(a, b, c2, m, n, k, true);
    boolean same = Arrays.deepEquals(c1, c2);

    Peak peak = Peak.estimate();
    System.out.printf("mma f32 %dx%dx%d (bit-identical to naive: %s; best run of each)%n", m, n, k,
        same);
    System.out.printf("  naive triple loop      : %8.1f GFLOP/s%n", naive / 1e9);
    System.out.printf("  kernel, 1 thread       : %8.1f GFLOP/s%n", single / 1e9);
    System.out.printf("  kernel, %d threads      : %8.1f GFLOP/s  (%.0f%% of peak)%n",
        MxuKernel.pool().getParallelism(), multi / 1e9, 100 * multi / peak.flops());
    System.out.printf("  CPU fp32 peak estimate : %8.1f GFLOP/s  = %s%n", peak.flops() / 1e9,
        peak.how());
  }

  /**
   * FLOP/s of the fastest of the runs made in about {@code seconds} (at least five): the best
   * run is the least disturbed by whatever else shares the machine.
   */
  private static double measure(Runnable r, double flops, double seconds) {
    for (int i = 0; i < 3; i++) {
      r.run();
    }
    long best = Long.MAX_VALUE;
    long end = System.nanoTime() + (long) (seconds * 1e9);
    for (int reps = 0; reps < 5 || System.nanoTime() < end; reps++) {
      long t0 = System.nanoTime();
      r.run();
      best = Math.min(best, System.nanoTime() - t0);
    }
    return flops / (best * 1e-9);
  }

  /** fp32 peak = cores x GHz x FLOPs/cycle/core, from /proc/cpuinfo. */
  record Peak(double flops, String how) {
    static Peak estimate() {
      int cores = Runtime.getRuntime().availableProcessors();
      double ghz = 2.0;
      String flags = "";
      try {
        List<String> lines = Files.readAllLines(Path.of("/proc/cpuinfo"));
        for (String l : lines) {
          if (l.startsWith("cpu MHz")) {
            ghz = Double.parseDouble(l.substring(l.indexOf(':') + 1).trim()) / 1000;
          } else if (l.startsWith("flags")) {
            flags = l;
          }
        }
      } catch (IOException | RuntimeException e) {
        // keep the defaults; the printout says which assumption was used
      }
      int lanes;
      String isa;
      if (flags.contains(" avx512f")) {
        lanes = 16;
        isa = "AVX-512";
      } else if (flags.contains(" avx2") || flags.contains(" fma")) {
        lanes = 8;
        isa = "AVX2";
      } else {
        lanes = 4;
        isa = "SSE";
      }
      // assumption: two FMA pipes per core, each lanes x 2 FLOPs per cycle
      int perCycle = 2 * lanes * 2;
      return new Peak(cores * ghz * 1e9 * perCycle, String.format(
          "%d cores x %.2f GHz (cpu MHz) x %d FLOP/cycle (%s: 2 FMA units x %d lanes x 2; "
              + "assumed, the turbo clock may be higher)", cores, ghz, perCycle, isa, lanes));
    }
  }
}
