package dev.sohuc.isa;

/** Elementwise binary functions of the VPU, computed in f32. */
public enum BinOp implements AsmEnum {
  ADD("a + b, one f32 rounding."),
  SUB("a - b, one f32 rounding."),
  MUL("a * b, one f32 rounding."),
  DIV("a / b, one f32 rounding (IEEE: x/0 is +-inf, 0/0 is NaN)."),
  MAX("max(a, b); NaN if either is NaN; max(-0, +0) = +0."),
  MIN("min(a, b); NaN if either is NaN; min(-0, +0) = -0."),
  POW("a ** b, computed in f64 (java.lang.StrictMath.pow) and rounded to f32."),
  GE("1.0 if a >= b, else 0.0 (0.0 when either is NaN): comparisons as f32 masks.");

  private final String doc;

  BinOp(String doc) {
    this.doc = doc;
  }

  @Override
  public String doc() {
    return doc;
  }

  /** The reference semantics; the emulator calls this (or matches it bit for bit). */
  public float apply(float a, float b) {
    return switch (this) {
      case ADD -> a + b;
      case SUB -> a - b;
      case MUL -> a * b;
      case DIV -> a / b;
      case MAX -> Math.max(a, b);
      case MIN -> Math.min(a, b);
      case POW -> (float) StrictMath.pow(a, b);
      case GE -> a >= b ? 1f : 0f;
    };
  }
}
