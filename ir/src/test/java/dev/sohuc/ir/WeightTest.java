package dev.sohuc.ir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.sohuc.ir.type.ElementType;
import java.nio.file.Files;
import java.nio.file.Path;
import dev.sohuc.ir.type.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WeightTest {

  @Test
  void theSizeOfAWeightWhoseBytesOverflow64BitsIsAnError() {
    Weight w = new Weight("w", TensorType.of(ElementType.F32, 1L << 62), new Weight.Data.ShapeOnly());
    IrException e = assertThrows(IrException.class, w::sizeBytes);
    assertEquals("weight @w of type tensor<4611686018427387904 x f32> has more than 2^63 - 1 bytes",
        e.getMessage());
  }

  @Test
  void aFileSliceWhoseEndPasses2To63IsOutsideTheFile(@TempDir Path dir) throws Exception {
    Path file = Files.write(dir.resolve("w.bin"), new byte[64]);
    Weight w = new Weight("w", TensorType.of(ElementType.F32, 1),
        new Weight.Data.FileSlice(file, Long.MAX_VALUE, 4));
    IrException e = assertThrows(IrException.class, w::bytes);
    assertEquals("weight @w: 4 bytes at offset 9223372036854775807 lie outside " + file
        + " (64 bytes)", e.getMessage());
  }
}
