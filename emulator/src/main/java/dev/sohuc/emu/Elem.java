package dev.sohuc.emu;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.num.Numerics;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * Element loads and stores on SRAM bytes, by dtype, with the ISA's numeric rules from
 * {@link Numerics}: loads convert exactly to f32 (i32 above 2^24 rounds), stores round from f32
 * to the element type. Row forms have fast paths for f32 and bf16.
 */
final class Elem {
  private Elem() {}

  private static final VarHandle I32 =
      MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
  private static final VarHandle I16 =
      MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
  private static final float[] E4M3 = table(DType.F8E4M3);
  private static final float[] E5M2 = table(DType.F8E5M2);

  private static float[] table(DType t) {
    float[] f = new float[256];
    for (int i = 0; i < 256; i++) {
      f[i] = Numerics.toF32(i, t);
    }
    return f;
  }

  static int getI32(byte[] m, int addr) {
    return (int) I32.get(m, addr);
  }

  static void putI32(byte[] m, int addr, int v) {
    I32.set(m, addr, v);
  }

  static float getF32(byte[] m, int addr) {
    return Float.intBitsToFloat((int) I32.get(m, addr));
  }

  static long getI64(byte[] m, int addr) {
    return (getI32(m, addr) & 0xFFFF_FFFFL) | ((long) getI32(m, addr + 4) << 32);
  }

  /** The raw bit pattern of one element, zero-extended. */
  static int bits(byte[] m, int addr, DType t) {
    return switch (t.bytes()) {
      case 1 -> m[addr] & 0xFF;
      case 2 -> (short) I16.get(m, addr) & 0xFFFF;
      default -> (int) I32.get(m, addr);
    };
  }

  static void putBits(byte[] m, int addr, DType t, int bits) {
    switch (t.bytes()) {
      case 1 -> m[addr] = (byte) bits;
      case 2 -> I16.set(m, addr, (short) bits);
      default -> I32.set(m, addr, bits);
    }
  }

  static float load(byte[] m, int addr, DType t) {
    return switch (t) {
      case F32 -> getF32(m, addr);
      case BF16 -> Float.intBitsToFloat(((short) I16.get(m, addr) & 0xFFFF) << 16);
      case F8E4M3 -> E4M3[m[addr] & 0xFF];
      case F8E5M2 -> E5M2[m[addr] & 0xFF];
      case I8 -> m[addr];
      case I32 -> getI32(m, addr);
      case F16 -> Float.float16ToFloat((short) I16.get(m, addr));
      // container-only types (host-side reads of inputs and outputs; no instruction uses them)
      case I64 -> (float) ((getI32(m, addr) & 0xFFFFFFFFL) | ((long) getI32(m, addr + 4) << 32));
      case BOOL -> m[addr] != 0 ? 1f : 0f;
      case U8 -> m[addr] & 0xFF;
    };
  }

  static void store(byte[] m, int addr, DType t, float v) {
    if (t == DType.F32) {
      I32.set(m, addr, Float.floatToRawIntBits(v));
    } else {
      putBits(m, addr, t, Numerics.fromF32(v, t));
    }
  }

  /** out[j] = element j of the row at addr, for j < n (elements adjacent). */
  static void loadRow(byte[] m, int addr, int n, DType t, float[] out) {
    loadRow(m, addr, n, t, out, 0);
  }

  /** out[off + j] = element j of the row at addr, for j < n; f32 rows are one bulk copy. */
  static void loadRow(byte[] m, int addr, int n, DType t, float[] out, int off) {
    int e = t.bytes();
    switch (t) {
      case F32 -> floats(m, addr, n).get(out, off, n);
      case BF16 -> {
        for (int j = 0; j < n; j++) {
          out[off + j] = Float.intBitsToFloat(((short) I16.get(m, addr + 2 * j) & 0xFFFF) << 16);
        }
      }
      default -> {
        for (int j = 0; j < n; j++) {
          out[off + j] = load(m, addr + e * j, t);
        }
      }
    }
  }

  /** The n f32 elements at addr as a little-endian view (bulk gets and puts are memcpy). */
  private static FloatBuffer floats(byte[] m, int addr, int n) {
    return ByteBuffer.wrap(m, addr, 4 * n).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
  }

  /** Stores in[j] rounded to t at the row at addr, for j < n. */
  static void storeRow(byte[] m, int addr, int n, DType t, float[] in) {
    switch (t) {
      case F32 -> floats(m, addr, n).put(in, 0, n);
      case BF16 -> {
        for (int j = 0; j < n; j++) {
          I16.set(m, addr + 2 * j, (short) Numerics.toBf16(in[j]));
        }
      }
      default -> {
        int e = t.bytes();
        for (int j = 0; j < n; j++) {
          putBits(m, addr + e * j, t, Numerics.fromF32(in[j], t));
        }
      }
    }
  }

  /** Integer load for the i8 MXU path. */
  static int loadInt(byte[] m, int addr, DType t) {
    return t == DType.I8 ? m[addr] : getI32(m, addr);
  }
}
