package dev.sohuc.isa;

/**
 * One 128-bit instruction word: {@code lo} holds bits 0..63, {@code hi} bits 64..127. In memory
 * and in files a word is 16 bytes, little-endian ({@code lo} first).
 */
public record Word(long lo, long hi) {
  public static final int BYTES = 16;

  /** Bits {@code [at, at+width)} as an unsigned value; width 1..64. */
  public long bits(int at, int width) {
    long v;
    if (at >= 64) {
      v = hi >>> (at - 64);
    } else if (at + width <= 64) {
      v = lo >>> at;
    } else {
      v = (lo >>> at) | (hi << (64 - at));
    }
    return width == 64 ? v : v & ((1L << width) - 1);
  }

  /** This word with bits {@code [at, at+width)} replaced by the low {@code width} bits of value. */
  public Word withBits(int at, int width, long value) {
    long mask = width == 64 ? -1L : (1L << width) - 1;
    value &= mask;
    long newLo = lo;
    long newHi = hi;
    if (at < 64) {
      newLo = (lo & ~(mask << at)) | (value << at);
    }
    if (at + width > 64) {
      int shift = at - 64;
      if (shift >= 0) {
        newHi = (hi & ~(mask << shift)) | (value << shift);
      } else {
        int s = -shift;
        newHi = (hi & ~(mask >>> s)) | (value >>> s);
      }
    }
    return new Word(newLo, newHi);
  }

  public static Word fromBytes(byte[] b, int offset) {
    return new Word(le64(b, offset), le64(b, offset + 8));
  }

  public void toBytes(byte[] b, int offset) {
    for (int i = 0; i < 8; i++) {
      b[offset + i] = (byte) (lo >>> (8 * i));
      b[offset + 8 + i] = (byte) (hi >>> (8 * i));
    }
  }

  private static long le64(byte[] b, int o) {
    long v = 0;
    for (int i = 7; i >= 0; i--) {
      v = (v << 8) | (b[o + i] & 0xFF);
    }
    return v;
  }

  /** The word as 32 hex digits, most significant first. */
  @Override
  public String toString() {
    return String.format("0x%016x%016x", hi, lo);
  }
}
