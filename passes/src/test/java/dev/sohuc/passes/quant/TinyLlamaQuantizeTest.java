package dev.sohuc.passes.quant;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

/** examples/tiny-llama (HF frontend), quantized and run on the interpreter, on logits; see {@link TinyLlamaQuantFixture}. */
class TinyLlamaQuantizeTest {
  @TempDir
  static Path tmp;
  static TinyLlamaQuantFixture fixture;

  @BeforeAll
  static void setUp() {
    fixture = new TinyLlamaQuantFixture(Path.of("../examples/tiny-llama"), tmp);
  }

  @Test
  void bf16() {
    Accuracy a = fixture.run(QuantMode.BF16);
    assertTrue(a.meanCosine() >= 0.9999, a::row);
  }

  /**
   * Issue 9's 0.999. All-f8e4m3 reaches 0.988 here: each of these 64-wide random-Gaussian layers
   * alone costs the logits 2e-4 to 1.8e-3 of cosine, so the guard's output check (calibration
   * logits cosine 0.9888 < 0.9995) keeps 13 of the 15 layers in bf16; 0.99964.
   */
  @Test
  void fp8() {
    Accuracy a = fixture.run(QuantMode.FP8);
    assertTrue(a.meanCosine() >= 0.999, a::row);
  }

  @Test
  void int8() {
    Accuracy a = fixture.run(QuantMode.INT8);
    assertTrue(a.meanCosine() >= 0.99, a::row);
  }
}
