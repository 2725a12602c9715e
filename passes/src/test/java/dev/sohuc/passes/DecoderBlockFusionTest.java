package dev.sohuc.passes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.text.IrParser;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;

import org.junit.jupiter.api.Test;

/**
 * GPT-2 and Llama blocks written the way PyTorch exports them (resources under blocks/): the
 * default pipeline must fuse every attention, norm, activation and rope, and keep the outputs.
 */
class DecoderBlockFusionTest {

  private static Module load(String name) throws IOException {
    try (InputStream in = DecoderBlockFusionTest.class.getResourceAsStream("/blocks/" + name)) {
      return IrParser.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), name);
    }
  }

  private static FusionReport fuse(Module m) {
    FusionReport f = new PassManager(PassPipelines.defaultPipeline()).run(m).fusion();
    System.out.println(m.name() + ":\n" + f.render());
    assertTrue(f.unfused().isEmpty(), f::render);
    return f;
  }

  @Test
  void gpt2BlockFusesCausalAttentionLayerNormsAndTanhGelu() throws IOException {
    Module m = load("gpt2-block.ir");
    FusionReport f = fuse(m);
    assertEquals(1, f.fusedCount("attention"), f::render);
    assertEquals(2, f.fusedCount("layer_norm"), f::render);
    assertEquals(1, f.fusedCount("gelu"), f::render);
    Node attention = m.main().body().stream().filter(n -> n.op() instanceof TransformerOp.Attention).findFirst().orElseThrow();
    assertTrue(((TransformerOp.Attention) attention.op()).causal(), attention::describe);
    assertTrue(((TransformerOp.Gelu) m.main().body().stream().filter(n -> n.op() instanceof TransformerOp.Gelu)
        .findFirst().orElseThrow().op()).tanhApproximation());
  }

  @Test
  void llamaPromptBlockFusesEverything() throws IOException {
    Module m = load("llama-block.ir");
    FusionReport f = fuse(m);
    assertEquals(Map.of("attention", 1L, "rms_norm", 2L, "rope", 2L, "swiglu", 1L), f.fused(), f::render);
    TransformerOp.Attention a = (TransformerOp.Attention) m.main().body().stream()
        .filter(n -> n.op() instanceof TransformerOp.Attention).findFirst().orElseThrow().op();
    assertTrue(a.causal());
    assertEquals("tensor<1 x 1 x ?s x 4 x f32>", a.k().type().toString(), "GQA reads the unrepeated kv heads");
  }

  @Test
  void llamaDecodeBlockFusesEverythingAndTheKvCache() throws IOException {
    Module m = load("llama-decode-block.ir");
    FusionReport f = fuse(m);
    assertEquals(Map.of("attention", 1L, "rms_norm", 2L, "rope", 2L, "swiglu", 1L, "kv_cache_append", 2L),
        f.fused(), f::render);
    TransformerOp.Attention a = (TransformerOp.Attention) m.main().body().stream()
        .filter(n -> n.op() instanceof TransformerOp.Attention).findFirst().orElseThrow().op();
    assertTrue(a.causal());
    assertEquals(null, a.mask());
  }

  @Test
  void blocksKeepTheirMeaning() throws IOException {
    long seed = 99;
    for (String name : new String[] {"gpt2-block.ir", "llama-block.ir", "llama-decode-block.ir"}) {
      MeaningCheck.assertPreservesMeaning(load(name),
          mod -> new PassManager(PassPipelines.defaultPipeline()).run(mod), seed++);
    }
  }
}
