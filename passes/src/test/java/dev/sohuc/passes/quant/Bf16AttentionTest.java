package dev.sohuc.passes.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.text.IrPrinter;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.Test;

class Bf16AttentionTest {

  private static Module apply(String func) {
    Module m = IrParser.parse("module @m {\n" + func + "\n}\n", "m.ir");
    Bf16Attention.apply(m);
    new Verifier().verify(m);
    IrParser.parse(IrPrinter.print(m), "m.ir (after)");
    return m;
  }

  private static ElementType type(Function f, String output) {
    return f.outputs().stream().filter(o -> o.name().equals(output)).findFirst().orElseThrow()
        .value().type().elementType();
  }

  @Test
  void decodeStepStoresTheCacheInBf16() {
    Function f = apply("""
        func @main(%q: tensor<1 x 4 x ?s x 16 x f32>, %pk: tensor<1 x 2 x ?p x 16 x f32>, %pv: tensor<1 x 2 x ?p x 16 x f32>, %k: tensor<1 x 2 x ?s x 16 x f32>, %v: tensor<1 x 2 x ?s x 16 x f32>) -> ("o": tensor<1 x 4 x ?s x 16 x f32>, "present.key": tensor<1 x 2 x ?p+?s x 16 x f32>, "present.value": tensor<1 x 2 x ?p+?s x 16 x f32>) {
          %kc = kv_cache_append %pk, %k : tensor<1 x 2 x ?p+?s x 16 x f32>
          %vc = kv_cache_append %pv, %v : tensor<1 x 2 x ?p+?s x 16 x f32>
          %o = attention %q, %kc, %vc {scale = 0.25, causal = true, window = 0} : tensor<1 x 4 x ?s x 16 x f32>
          return %o, %kc, %vc
        }""").main();
    String ir = IrPrinter.print(f);
    assertTrue(ir.contains("%pk: tensor<1 x 2 x ?p x 16 x bf16>"), ir);
    assertTrue(ir.contains("%pv: tensor<1 x 2 x ?p x 16 x bf16>"), ir);
    assertTrue(ir.contains("%q: tensor<1 x 4 x ?s x 16 x f32>"), ir);
    // only the new rows are cast: two casts, no cast of the whole cache
    assertEquals(2, ir.split("= cast ").length - 1, ir);
    assertEquals(ElementType.BF16, type(f, "present.key"));
    assertEquals(ElementType.BF16, type(f, "present.value"));
    assertEquals(ElementType.F32, type(f, "o"));
  }

  @Test
  void promptCastsKeysAndValuesOnceAndReturnsTheBf16Copies() {
    Function f = apply("""
        func @main(%q: tensor<1 x 4 x ?s x 16 x f32>, %k: tensor<1 x 2 x ?s x 16 x f32>, %v: tensor<1 x 2 x ?s x 16 x f32>) -> ("o": tensor<1 x 4 x ?s x 16 x f32>, "present.key": tensor<1 x 2 x ?s x 16 x f32>) {
          %kr = neg %k : tensor<1 x 2 x ?s x 16 x f32>
          %o = attention %q, %kr, %v {scale = 0.25, causal = true, window = 0} : tensor<1 x 4 x ?s x 16 x f32>
          return %o, %kr
        }""").main();
    String ir = IrPrinter.print(f);
    assertTrue(ir.contains("%k: tensor<1 x 2 x ?s x 16 x f32>"), ir);
    assertEquals(2, ir.split("= cast ").length - 1, ir);
    assertEquals(ElementType.BF16, type(f, "present.key"));
  }

  /**
   * A prompt in two micro-batches: the second appends its K and V to the first's, which the
   * first's attention reads too. Each half is cast once (the first's cast shared by its
   * attention and the append), and the append moves bf16: no cast of the appended whole.
   */
  @Test
  void microBatchedPromptAppendsBf16Halves() {
    Function f = apply("""
        func @main(%q0: tensor<1 x 4 x ?s x 16 x f32>, %q1: tensor<1 x 4 x ?s x 16 x f32>, %k0: tensor<1 x 2 x ?s x 16 x f32>, %v0: tensor<1 x 2 x ?s x 16 x f32>, %k1: tensor<1 x 2 x ?s x 16 x f32>, %v1: tensor<1 x 2 x ?s x 16 x f32>) -> ("o0": tensor<1 x 4 x ?s x 16 x f32>, "o1": tensor<1 x 4 x ?s x 16 x f32>, "present.key": tensor<1 x 2 x 2*?s x 16 x f32>) {
          %kr0 = neg %k0 : tensor<1 x 2 x ?s x 16 x f32>
          %o0 = attention %q0, %kr0, %v0 {scale = 0.25, causal = true, window = 0} : tensor<1 x 4 x ?s x 16 x f32>
          %kr1 = neg %k1 : tensor<1 x 2 x ?s x 16 x f32>
          %kc = kv_cache_append %kr0, %kr1 : tensor<1 x 2 x 2*?s x 16 x f32>
          %vc = kv_cache_append %v0, %v1 : tensor<1 x 2 x 2*?s x 16 x f32>
          %o1 = attention %q1, %kc, %vc {scale = 0.25, causal = true, window = 0} : tensor<1 x 4 x ?s x 16 x f32>
          return %o0, %o1, %kc
        }""").main();
    String ir = IrPrinter.print(f);
    assertEquals(4, ir.split("= cast ").length - 1, ir);
    assertTrue(ir.contains("kv_cache_append %kr0.bf16, %kr1.bf16"), ir);
    assertTrue(ir.contains("kv_cache_append %v0.bf16, %v1.bf16"), ir);
    assertEquals(ElementType.BF16, type(f, "present.key"));
  }

  @Test
  void aCacheReadBeyondAttentionStaysF32AndIsCastBeforeIt() {
    Function f = apply("""
        func @main(%q: tensor<1 x 2 x ?s x 16 x f32>, %pk: tensor<1 x 2 x ?p x 16 x f32>, %k: tensor<1 x 2 x ?s x 16 x f32>) -> ("o": tensor<1 x 2 x ?s x 16 x f32>, "n": tensor<1 x 2 x ?p+?s x 16 x f32>) {
          %kc = kv_cache_append %pk, %k : tensor<1 x 2 x ?p+?s x 16 x f32>
          %n = neg %kc : tensor<1 x 2 x ?p+?s x 16 x f32>
          %o = attention %q, %kc, %kc {scale = 0.25, causal = true, window = 0} : tensor<1 x 2 x ?s x 16 x f32>
          return %o, %n
        }""").main();
    String ir = IrPrinter.print(f);
    assertTrue(ir.contains("%pk: tensor<1 x 2 x ?p x 16 x f32>"), ir);
    assertEquals(1, ir.split("= cast ").length - 1, ir);
    assertEquals(ElementType.F32, type(f, "n"));
  }
}
