package dev.sohuc.isa.num;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.DType;
import org.junit.jupiter.api.Test;

/** The numeric rules of docs/isa.md, edge case by edge case. */
class NumericsTest {

  @Test
  void bf16RoundsToNearestEvenAndKeepsNaN() {
    assertEquals(0x3F80, Numerics.toBf16(1.0f));
    assertEquals(0x3F80, Numerics.toBf16(Float.intBitsToFloat(0x3F808000))); // tie -> even
    assertEquals(0x3F82, Numerics.toBf16(Float.intBitsToFloat(0x3F818000))); // tie -> even (up)
    assertEquals(0x3F81, Numerics.toBf16(Float.intBitsToFloat(0x3F808001)));
    assertEquals(0x7F80, Numerics.toBf16(Float.MAX_VALUE)); // overflow to inf
    assertTrue(Float.isNaN(Numerics.toF32(Numerics.toBf16(Float.NaN), DType.BF16)));
  }

  @Test
  void e4m3SaturatesAt448AndHasNoInfinity() {
    assertEquals(448f, Numerics.roundTo(448f, DType.F8E4M3));
    assertEquals(448f, Numerics.roundTo(1e9f, DType.F8E4M3));
    assertEquals(-448f, Numerics.roundTo(Float.NEGATIVE_INFINITY, DType.F8E4M3));
    assertEquals(0x7F, Numerics.fromF32(Float.NaN, DType.F8E4M3));
    assertEquals(0x7E, Numerics.fromF32(448f, DType.F8E4M3));
    assertEquals(Math.scalb(1f, -9), Numerics.roundTo(Math.scalb(1f, -9), DType.F8E4M3));
    assertEquals(0f, Numerics.roundTo(Math.scalb(1f, -11), DType.F8E4M3)); // below half the min
    assertEquals(1.125f, Numerics.roundTo(1.1f, DType.F8E4M3));
    for (int b = 0; b < 256; b++) {
      float v = Numerics.f8e4m3ToF32(b);
      if (!Float.isNaN(v) && !(v == 0 && b == 0x80)) {
        assertEquals(b, Numerics.fromF32(v, DType.F8E4M3), "code " + b);
      }
    }
  }

  @Test
  void e5m2SaturatesAt57344() {
    assertEquals(57344f, Numerics.roundTo(1e9f, DType.F8E5M2));
    assertEquals(57344f, Numerics.roundTo(Float.POSITIVE_INFINITY, DType.F8E5M2));
    assertTrue(Float.isNaN(Numerics.roundTo(Float.NaN, DType.F8E5M2)));
    for (int b = 0; b < 256; b++) {
      float v = Numerics.f8e5m2ToF32(b);
      if (!Float.isNaN(v) && !Float.isInfinite(v) && !(v == 0 && b == 0x80)) {
        assertEquals(b, Numerics.fromF32(v, DType.F8E5M2), "code " + b);
      }
    }
  }

  @Test
  void int8RoundsHalfToEvenAndSaturates() {
    assertEquals(2, (byte) Numerics.fromF32(2.5f, DType.I8));
    assertEquals(-2, (byte) Numerics.fromF32(-2.5f, DType.I8));
    assertEquals(4, (byte) Numerics.fromF32(3.5f, DType.I8));
    assertEquals(127, (byte) Numerics.fromF32(1000f, DType.I8));
    assertEquals(-128, (byte) Numerics.fromF32(-1000f, DType.I8));
    assertEquals(0, Numerics.fromF32(Float.NaN, DType.I8));
  }

  @Test
  void erfIsAccurate() {
    assertEquals(0.8427007929497149, Numerics.erf(1.0), 2e-7);
    assertEquals(-0.9953222650189527, Numerics.erf(-2.0), 2e-7);
    assertEquals(0.0, Numerics.erf(0.0), 2e-7);
  }
}
