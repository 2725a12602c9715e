package dev.sohuc.isa;

/** Element data types. The numeric rules of each are in {@link dev.sohuc.isa.num.Numerics}. */
public enum DType implements AsmEnum {
  F32(4, "IEEE-754 binary32."),
  BF16(2, "bfloat16: the upper 16 bits of an f32; from f32 by round-to-nearest-even, NaN stays NaN."),
  F16(2, "IEEE-754 binary16; from f32 by round-to-nearest-even, overflow to infinity."),
  F8E4M3(1, "OCP fp8 E4M3FN: bias 7, max 448, no infinity; from f32 by round-to-nearest-even, saturating to +-448, NaN stays NaN."),
  F8E5M2(1, "OCP fp8 E5M2: bias 15, max 57344; from f32 by round-to-nearest-even, saturating (infinity too) to +-57344, NaN stays NaN."),
  I8(1, "Signed 8-bit integer; from f32 by round-half-to-even, saturating to [-128, 127], NaN to 0."),
  I32(4, "Signed 32-bit integer; from f32 by round-half-to-even, saturating, NaN to 0."),
  I64(8, "Signed 64-bit integer, little-endian. Container symbols only (token ids, masks): no "
      + "instruction's dtype field takes it; programs read the low 32-bit word as i32 or index "
      + "with `gather idx64=1`."),
  BOOL(1, "One byte, 0 false, anything else true. Container symbols only: programs read it as "
      + "i8 (0 or 1)."),
  U8(1, "Unsigned 8-bit integer. Container symbols only: no instruction's dtype field takes it; "
      + "a program copies its bytes (`sohuc run` reads and writes them as ONNX uint8).");

  /** The types instruction dtype fields take (codes 0..6, a 3-bit field). */
  public static final DType[] COMPUTE = {F32, BF16, F16, F8E4M3, F8E5M2, I8, I32};

  private final int bytes;
  private final String doc;

  DType(int bytes, String doc) {
    this.bytes = bytes;
    this.doc = doc;
  }

  public int bytes() {
    return bytes;
  }

  public boolean isFloat() {
    return this != I8 && this != I32 && this != I64 && this != BOOL && this != U8;
  }

  @Override
  public String doc() {
    return doc;
  }
}
