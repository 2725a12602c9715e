package dev.sohuc.hf;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The headline workload, shape-only: Llama-3-70B and 8B from their published configs. */
class HfScaleTest {
  static final Path LLAMA_70B = Path.of("../examples/llama-3-70b/config.json");
  static final Path LLAMA_8B = Path.of("../examples/llama-3-8b/config.json");

  /** Sums the checkpoint weights (the inline rotary tables are computed, not parameters). */
  private static long[] paramsAndBytes(Module m) {
    long params = 0;
    long bytes = 0;
    for (Weight w : m.weights().values()) {
      if (!(w.data() instanceof Weight.Data.Inline)) {
        assertInstanceOf(Weight.Data.ShapeOnly.class, w.data(), w.name());
        params += w.type().staticElementCount().orElseThrow();
        bytes += w.sizeBytes();
      }
    }
    return new long[] {params, bytes};
  }

  @Test
  void llama3_70bShapeOnlyImportsEveryLayer() {
    HfOptions options = HfOptions.prefill().withDimBindings(Map.of("seq", 2048L));
    long coldStart = System.nanoTime();
    HfImporter.importModel(LLAMA_70B, options);
    long coldMillis = (System.nanoTime() - coldStart) / 1_000_000;
    long start = System.nanoTime();
    Module m = HfImporter.importModel(LLAMA_70B, options);
    long warmMillis = (System.nanoTime() - start) / 1_000_000;
    System.out.printf("llama-3-70b shape-only import: cold %d ms, warm %d ms, %d nodes%n", coldMillis, warmMillis,
        m.main().body().size());

    long[] pb = paramsAndBytes(m);
    assertEquals(70_553_706_496L, pb[0], "parameters");
    assertEquals(HfImporter.parameterCount(LLAMA_70B), pb[0]);
    assertEquals(2 * pb[0], pb[1], "bf16 bytes");
    assertEquals(80 * 9 + 2 + 1, m.weights().values().stream().filter(w -> !(w.data() instanceof Weight.Data.Inline))
        .count(), "weights: 9 per layer, embeddings, final norm, lm_head");
    assertEquals(1 + 2 * 80, m.main().outputs().size(), "logits and 80 layers of KV cache");
    assertEquals(ElementType.BF16, m.weights().get("model.layers.79.mlp.down_proj.weight").type().elementType());
    var logits = m.main().outputs().get(0).value().type();
    assertEquals(java.util.List.of(Dim.symbol("batch"), Dim.of(2048), Dim.of(128256)), logits.dims());
    // per layer: 9 weights, 9 bf16-to-f32 casts, 7 transposes and 7 matmuls, 2 norms, 2 ropes, head split/merge
    // (8), attention, swiglu, 2 residual adds
    assertTrue(m.main().body().size() < 80 * 50, "nodes: " + m.main().body().size());
  }

  @Test
  void llama3_8bDecodeGraph() {
    Module m = HfImporter.importModel(LLAMA_8B, HfOptions.decode());
    assertEquals(8_030_261_248L, paramsAndBytes(m)[0]);
    var past = m.main().arguments().get(1);
    assertEquals("past_key_values.0.key", past.name());
    assertEquals(java.util.List.of(Dim.symbol("batch"), Dim.of(8), Dim.symbol("past"), Dim.of(128)),
        past.type().dims());
    var present = m.main().outputs().get(1).value();
    assertEquals(Dim.symbol("past").plus(Dim.symbol("seq")), present.type().dim(2));
  }
}
