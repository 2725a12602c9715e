package dev.sohuc.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.sohuc.onnx.TensorFiles;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real models through the CLI, as a user runs them: {@code sohuc compile} then
 * {@code sohuc run}, outputs compared with ONNX Runtime (MiniLM) or with the ORT-computed
 * expected logits shipped with examples/tiny-llama.
 */
class EndToEndModelsTest {
  static final double TOL = 1e-4;
  static final long SEED = 7;

  @Test
  void miniLmOneBinaryServesSeq128WithPaddingAndSeq37(@TempDir Path tmp) throws Exception {
    Path model = Models.miniLm();
    Path bin = tmp.resolve("minilm.sohu");
    // the export names both input dims "batch" (the importer renames the second batch_1, the
    // sequence); batch is fixed to 1, the sequence stays symbolic: one binary for every length
    Models.sohuc("compile", model.toString(), "--shape", "batch=1", "-o", bin.toString());
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession session = env.createSession(model.toString(), new OrtSession.SessionOptions())) {
      for (int[] c : new int[][] {{128, 16}, {37, 0}}) {
        Map<String, long[][]> in = Models.bertInputs(c[0], c[1], SEED);
        Path inDir = tmp.resolve("in" + c[0]);
        Path outDir = tmp.resolve("out" + c[0]);
        Models.writeInputs(in, inDir);
        Models.sohuc("run", bin.toString(), "--inputs", inDir.toString(), "--output-dir",
            outDir.toString());
        float[] want = Models.ort(session, in);
        float[] got = Models.floats(outDir.resolve("output_0.pb"));
        assertArrayEquals(new long[] {1, c[0], 384},
            TensorFiles.read(outDir.resolve("output_0.pb")).shape());
        double err = Models.maxError(got, want);
        System.out.printf("MiniLM seq %d (%d padding, seed %d): last_hidden_state max error "
            + "%.3g%n", c[0], c[1], SEED, err);
        assertTrue(err <= TOL, "MiniLM seq " + c[0] + ": max error " + err + " > " + TOL);
      }
    }
  }

  @Test
  void tinyLlamaMatchesItsExpectedLogits(@TempDir Path tmp) {
    Path ex = Models.root().resolve("examples/tiny-llama");
    Path bin = tmp.resolve("tiny.sohu");
    Models.sohuc("compile", ex.toString(), "-o", bin.toString());
    Models.sohuc("run", bin.toString(), "--inputs", ex.resolve("inputs").toString(),
        "--output-dir", tmp.resolve("out").toString());
    float[] got = Models.floats(tmp.resolve("out/output_0.pb"));
    float[] want = Models.floats(ex.resolve("expected/output_0.pb"));
    double err = Models.maxError(got, want);
    System.out.printf("tiny-llama logits max error %.3g%n", err);
    assertTrue(err <= TOL, "tiny-llama: max error " + err + " > " + TOL);
  }
}
