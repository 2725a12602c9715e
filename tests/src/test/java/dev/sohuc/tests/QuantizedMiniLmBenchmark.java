package dev.sohuc.tests;

import dev.sohuc.passes.quant.QuantMode;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Not a test: prints, for all-MiniLM-L6-v2 compiled and emulated in f32, bf16, fp8 and int8,
 * the cosine of the token embeddings against ONNX Runtime f32 (emulator and interpreter), the
 * timing mode's cycles, MFU and HBM traffic at seq 128, and the constants and matmul-weight
 * bytes. Run from the tests module's test classpath (see README); pass {@code --report} to print
 * every mode's per-layer quantization report too.
 */
public final class QuantizedMiniLmBenchmark {
  public static void main(String[] args) throws Exception {
    boolean reports = args.length > 0 && args[0].equals("--report");
    Path work = Files.createTempDirectory("sohuc-qminilm");
    QuantizedMiniLm f = new QuantizedMiniLm(work);
    StringBuilder table = new StringBuilder(QuantizedMiniLm.Row.header());
    for (QuantMode mode : QuantMode.values()) {
      QuantizedMiniLm.Row r = f.measure(mode);
      if (reports) {
        System.out.print(r.report().render());
      }
      System.out.print(r.line());
      System.out.println("   worst token (emulated): " + r.emuWorstAt());
      table.append(r.line());
    }
    System.out.println();
    System.out.println("all-MiniLM-L6-v2, seq 128, batch 1, default target; 8 calibration + 8 evaluation sets");
    System.out.print(table);
  }
}
