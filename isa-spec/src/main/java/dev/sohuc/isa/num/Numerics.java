package dev.sohuc.isa.num;

import dev.sohuc.isa.DType;

/**
 * The numeric rules of the ISA, as executable reference code: conversions between f32 and every
 * element type. Every narrow type converts to f32 exactly; conversions from f32 round to nearest,
 * ties to even, with the saturation and NaN rules of each type. The emulator uses these methods,
 * so the spec and the emulator cannot disagree.
 */
public final class Numerics {
  private Numerics() {}

  /** Converts f32 to the bit pattern of {@code t} (in the low bits of the result). */
  public static int fromF32(float f, DType t) {
    return switch (t) {
      case F32 -> Float.floatToRawIntBits(f);
      case BF16 -> toBf16(f);
      case F16 -> Float.floatToFloat16(f) & 0xFFFF;
      case F8E4M3 -> toF8(f, 3, 7, 448f, true);
      case F8E5M2 -> toF8(f, 2, 15, 57344f, false);
      case I8 -> toInt(f, -128, 127) & 0xFF;
      case I32 -> toInt(f, Integer.MIN_VALUE, Integer.MAX_VALUE);
      case I64, BOOL, U8 -> throw new IllegalArgumentException(t.asmName() + " is a container type, "
          + "not an instruction dtype");
    };
  }

  /** Converts the bit pattern {@code bits} of type {@code t} to f32 (exact except i32 above 2^24). */
  public static float toF32(int bits, DType t) {
    return switch (t) {
      case F32 -> Float.intBitsToFloat(bits);
      case BF16 -> Float.intBitsToFloat((bits & 0xFFFF) << 16);
      case F16 -> Float.float16ToFloat((short) bits);
      case F8E4M3 -> f8e4m3ToF32(bits & 0xFF);
      case F8E5M2 -> f8e5m2ToF32(bits & 0xFF);
      case I8 -> (byte) bits;
      case I32 -> bits;
      case I64, BOOL, U8 -> throw new IllegalArgumentException(t.asmName() + " is a container type, "
          + "not an instruction dtype");
    };
  }

  /** bf16 by round-to-nearest-even; NaN becomes a quiet NaN with the same sign. */
  public static int toBf16(float f) {
    int bits = Float.floatToRawIntBits(f);
    if (Float.isNaN(f)) {
      return ((bits >>> 16) | 0x0040) & 0xFFFF;
    }
    return ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16) & 0xFFFF;
  }

  /** Round half to even, saturate to [min, max], NaN to 0. */
  public static int toInt(float f, int min, int max) {
    if (Float.isNaN(f)) {
      return 0;
    }
    double r = Math.rint(f);
    return (int) Math.max(min, Math.min(max, r));
  }

  private static int toF8(float f, int manBits, int bias, float max, boolean e4m3) {
    int sign = Float.floatToRawIntBits(f) < 0 ? 0x80 : 0;
    if (Float.isNaN(f)) {
      return sign | 0x7F;
    }
    double a = Math.abs((double) f);
    if (a == 0) {
      return sign;
    }
    int minExp = 1 - bias;
    int e = Math.max(Math.getExponent(a), minExp);
    double quantum = Math.scalb(1.0, e - manBits);
    double r = Math.rint(a / quantum) * quantum;
    if (r > max || Double.isInfinite(a)) {
      r = max;
    }
    if (r == 0) {
      return sign;
    }
    int re = Math.getExponent(r);
    int expField;
    int man;
    if (re < minExp) {
      expField = 0;
      man = (int) (r / Math.scalb(1.0, minExp - manBits));
    } else {
      expField = re + bias;
      man = (int) (r / Math.scalb(1.0, re - manBits)) - (1 << manBits);
    }
    return sign | (expField << manBits) | man;
  }

  public static float f8e4m3ToF32(int b) {
    float sign = (b & 0x80) != 0 ? -1f : 1f;
    int exp = (b >>> 3) & 0xF;
    int man = b & 7;
    if (exp == 15 && man == 7) {
      return sign * Float.NaN;
    }
    if (exp == 0) {
      return sign * Math.scalb((float) man, -9);
    }
    return sign * Math.scalb(1f + man / 8f, exp - 7);
  }

  public static float f8e5m2ToF32(int b) {
    float sign = (b & 0x80) != 0 ? -1f : 1f;
    int exp = (b >>> 2) & 0x1F;
    int man = b & 3;
    if (exp == 31) {
      return man == 0 ? sign * Float.POSITIVE_INFINITY : Float.NaN;
    }
    if (exp == 0) {
      return sign * Math.scalb((float) man, -16);
    }
    return sign * Math.scalb(1f + man / 4f, exp - 15);
  }

  /** Rounds f32 to {@code t} and back: what storing and reloading an element does. */
  public static float roundTo(float f, DType t) {
    return t == DType.F32 ? f : toF32(fromF32(f, t), t);
  }

  /**
   * erf in f64 via the Numerical Recipes erfc Chebyshev fit (fractional error below 1.2e-7),
   * using StrictMath so every platform gets the same bits.
   */
  public static double erf(double x) {
    if (Double.isNaN(x)) {
      return x;
    }
    double z = Math.abs(x);
    double t = 1.0 / (1.0 + 0.5 * z);
    double ans = t * StrictMath.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196
        + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398
        + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
    double erfc = x >= 0 ? ans : 2.0 - ans;
    return 1.0 - erfc;
  }
}
