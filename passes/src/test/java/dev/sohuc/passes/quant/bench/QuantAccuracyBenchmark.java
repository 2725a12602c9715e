package dev.sohuc.passes.quant.bench;

import dev.sohuc.ir.Module;
import dev.sohuc.passes.quant.Accuracy;
import dev.sohuc.passes.quant.MiniLmQuantFixture;
import dev.sohuc.passes.quant.QuantFixture;
import dev.sohuc.passes.quant.QuantMode;
import dev.sohuc.passes.quant.QuantReport;
import dev.sohuc.passes.quant.Quantizer;
import dev.sohuc.passes.quant.TinyLlamaQuantFixture;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Prints the quantization accuracy table of all-MiniLM-L6-v2 (8 calibration sets, 8 other
 * evaluation sets, seq 128 with padding) against ONNX Runtime f32, and of examples/tiny-llama (8
 * and 8 sets of 32 tokens) against its f32 IR: mode, mean cosine of the token embeddings (logits),
 * worst token, and how many layers the guard kept in higher precision. Run from the passes module
 * folder (it reads ../examples/tiny-llama).
 *
 * <pre>
 * java ... dev.sohuc.passes.quant.bench.QuantAccuracyBenchmark [bf16 fp8 int8] [--max-layer-error X]
 *     [--min-output-cosine C] [--exclude LAYER]... [--report]
 * </pre>
 */
public final class QuantAccuracyBenchmark {
  private QuantAccuracyBenchmark() {}

  public static void main(String[] args) throws Exception {
    List<QuantMode> modes = new ArrayList<>();
    double maxError = Double.NaN;
    double minCosine = Double.NaN;
    boolean report = false;
    List<String> excluded = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--max-layer-error" -> maxError = Double.parseDouble(args[++i]);
        case "--min-output-cosine" -> minCosine = Double.parseDouble(args[++i]);
        case "--report" -> report = true;
        case "--exclude" -> excluded.add(args[++i]);
        default -> modes.add(QuantMode.parse(args[i]));
      }
    }
    if (modes.isEmpty()) {
      modes = List.of(QuantMode.NONE, QuantMode.BF16, QuantMode.FP8, QuantMode.INT8);
    }
    Path tmp = Files.createTempDirectory("quant-bench");
    List<String> rows = new ArrayList<>();
    QuantFixture miniLm = new MiniLmQuantFixture(tmp);
    QuantFixture tinyLlama = new TinyLlamaQuantFixture(Path.of("../examples/tiny-llama"), tmp.resolve("tiny-llama"));
    for (QuantFixture fixture : List.of(miniLm, tinyLlama)) {
      for (QuantMode mode : modes) {
        Module m = fixture.importFused();
        long t0 = System.nanoTime();
        QuantReport r = Quantizer.quantize(m, fixture.options(mode).withMaxLayerError(maxError).excluding(excluded)
            .withMinOutputCosine(minCosine));
        long quantMs = (System.nanoTime() - t0) / 1_000_000;
        if (report) {
          System.out.print(r.render());
        }
        Accuracy a = fixture.evaluate(m, mode.flag());
        rows.add(String.format("%s  kept in higher precision: %d of %d  (quantize %d ms)", a.row(),
            r.keptInHigherPrecision().size(), r.layers().size(), quantMs));
        System.out.println(rows.get(rows.size() - 1));
      }
    }
    System.out.println("\nall-MiniLM-L6-v2 vs ONNX Runtime f32 (token embeddings, padding skipped); "
        + "tiny-llama vs its f32 IR (logits)");
    rows.forEach(System.out::println);
  }
}
