package dev.sohuc.hf;

import ai.onnx.proto.OnnxMl;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The bundled {@code examples/tiny-llama}: reproducible, importable, and its expected output right. */
class TinyLlamaExampleTest {
  static final Path EXAMPLE = Path.of("../examples/tiny-llama");

  @TempDir
  Path tmp;

  @Test
  void committedFilesAreWhatTheGeneratorWrites() throws Exception {
    TinyLlamaExample.write(tmp);
    // expected/output_0.pb comes from ONNX Runtime, whose last bits may vary by CPU: checked by value below.
    for (String f : List.of("config.json", "model.safetensors", "inputs/input_0.pb")) {
      assertArrayEquals(Files.readAllBytes(tmp.resolve(f)), Files.readAllBytes(EXAMPLE.resolve(f)),
          f + " differs from the generator's; regenerate with TinyLlamaExample");
    }
    assertTrue(Files.size(EXAMPLE.resolve("model.safetensors")) < 1_000_000);
    float[] regenerated = floats(tmp.resolve("expected/output_0.pb"));
    float[] committed = floats(EXAMPLE.resolve("expected/output_0.pb"));
    assertEquals(committed.length, regenerated.length);
    for (int i = 0; i < committed.length; i++) {
      assertEquals(committed[i], regenerated[i], 1e-5 * (1 + Math.abs(committed[i])), "logit " + i);
    }
  }

  private static float[] floats(Path pb) throws java.io.IOException {
    OnnxMl.TensorProto t = OnnxMl.TensorProto.parseFrom(Files.readAllBytes(pb));
    float[] data = new float[t.getRawData().size() / 4];
    ByteBuffer.wrap(t.getRawData().toByteArray()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(data);
    return data;
  }

  @Test
  void interpreterMatchesTheExpectedLogits() throws Exception {
    OnnxMl.TensorProto input = OnnxMl.TensorProto.parseFrom(Files.readAllBytes(EXAMPLE.resolve("inputs/input_0.pb")));
    assertEquals("input_ids", input.getName());
    long[] ids = new long[(int) (input.getDims(0) * input.getDims(1))];
    input.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(ids);
    float[] want = floats(EXAMPLE.resolve("expected/output_0.pb"));

    Module m = HfImporter.importModel(EXAMPLE, HfOptions.prefill());
    Tensor logits = new Interpreter(m).run(List.of(Tensor.ofLongs(ElementType.I64,
        new long[] {input.getDims(0), input.getDims(1)}, ids))).get("logits");
    assertArrayEquals(new long[] {1, 8, 256}, logits.shape());
    double maxRef = 0;
    double maxDiff = 0;
    for (int i = 0; i < want.length; i++) {
      maxRef = Math.max(maxRef, Math.abs(want[i]));
      maxDiff = Math.max(maxDiff, Math.abs(want[i] - logits.floats()[i]));
    }
    assertTrue(maxDiff <= 1e-4 * maxRef, "max difference " + maxDiff + " of max " + maxRef);
  }
}
