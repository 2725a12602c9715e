package dev.sohuc.ir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import org.junit.jupiter.api.Test;

class WeightTest {

  @Test
  void theSizeOfAWeightWhoseBytesOverflow64BitsIsAnError() {
    Weight w = new Weight("w", TensorType.of(ElementType.F32, 1L << 62), new Weight.Data.ShapeOnly());
    IrException e = assertThrows(IrException.class, w::sizeBytes);
    assertEquals("weight @w of type tensor<4611686018427387904 x f32> has more than 2^63 - 1 bytes",
        e.getMessage());
  }

}
