package dev.sohuc.ir.tensor;

/**
 * Rounding of f32 values to the narrow float formats, as the reference semantics of casts:
 * round to nearest, ties to even. bf16 and f16 overflow to infinity like IEEE; the fp8 formats
 * saturate to their largest finite value (the OCP FP8 "saturating" conversion), and e4m3 has no
 * infinity at all.
 */
public final class FloatFormats {
  private FloatFormats() {}

  public static float roundToBf16(float x) {
    return bf16ToFloat(floatToBf16Bits(x));
  }

  public static short floatToBf16Bits(float x) {
    int bits = Float.floatToRawIntBits(x);
    if (Float.isNaN(x)) {
      return (short) ((bits >>> 16) | 0x40); // keep sign, force a quiet NaN
    }
    int roundingBias = 0x7fff + ((bits >>> 16) & 1);
    return (short) ((bits + roundingBias) >>> 16);
  }

  public static float bf16ToFloat(short bits) {
    return Float.intBitsToFloat((bits & 0xffff) << 16);
  }

  public static float roundToF16(float x) {
    return Float.float16ToFloat(Float.floatToFloat16(x));
  }

  /** An fp8 format: exponent and mantissa widths, bias, and largest finite value. */
  public enum Fp8 {
    E4M3(4, 3, 7, 448f),
    E5M2(5, 2, 15, 57344f);

    final int exponentBits;
    final int mantissaBits;
    final int bias;
    final float maxFinite;

    Fp8(int exponentBits, int mantissaBits, int bias, float maxFinite) {
      this.exponentBits = exponentBits;
      this.mantissaBits = mantissaBits;
      this.bias = bias;
      this.maxFinite = maxFinite;
    }

    /** Rounds to the nearest representable value, ties to even, saturating; NaN stays NaN. */
    public float round(float x) {
      if (Float.isNaN(x)) {
        return Float.NaN;
      }
      float a = Math.abs(x);
      if (a >= maxFinite) {
        return Math.copySign(maxFinite, x);
      }
      // Spacing of representable values around a: 2^(e - mantissaBits), with the subnormal
      // range sharing the spacing of the smallest normal binade.
      int minNormalExponent = 1 - bias;
      int e = a == 0f ? minNormalExponent : Math.max(Math.getExponent(a), minNormalExponent);
      float ulp = Math.scalb(1f, e - mantissaBits);
      float q = (float) Math.rint(a / ulp) * ulp; // rint: ties to even
      return Math.copySign(Math.min(q, maxFinite), x);
    }

    public byte encode(float x) {
      float r = round(x);
      int sign = (Float.floatToRawIntBits(r) >>> 31) << 7;
      if (Float.isNaN(r)) {
        return (byte) (this == E4M3 ? 0x7f : 0x7e);
      }
      float a = Math.abs(r);
      if (a == 0f) {
        return (byte) sign;
      }
      int minNormalExponent = 1 - bias;
      int e = Math.getExponent(a);
      if (e < minNormalExponent) {
        int mantissa = Math.round(a / Math.scalb(1f, minNormalExponent - mantissaBits));
        return (byte) (sign | mantissa);
      }
      int mantissa = Math.round((a / Math.scalb(1f, e) - 1f) * (1 << mantissaBits));
      return (byte) (sign | ((e + bias) << mantissaBits) | mantissa);
    }

    public float decode(byte b) {
      int v = b & 0xff;
      boolean negative = (v & 0x80) != 0;
      int exponent = (v >>> mantissaBits) & ((1 << exponentBits) - 1);
      int mantissa = v & ((1 << mantissaBits) - 1);
      float magnitude;
      if (this == E4M3 && exponent == 15 && mantissa == 7) {
        magnitude = Float.NaN;
      } else if (this == E5M2 && exponent == 31) {
        magnitude = mantissa == 0 ? Float.POSITIVE_INFINITY : Float.NaN;
      } else if (exponent == 0) {
        magnitude = Math.scalb((float) mantissa, 1 - bias - mantissaBits);
      } else {
        magnitude = Math.scalb(1f + mantissa / (float) (1 << mantissaBits), exponent - bias);
      }
      return negative ? -magnitude : magnitude;
    }
  }
}
