package dev.sohuc.isa;

import dev.sohuc.isa.num.Numerics;

/**
 * Elementwise unary functions of the VPU (vun, the gate of vglu, the activation of accrd). All
 * but the exact ones are computed in f64 with java.lang.StrictMath and rounded once to f32.
 */
public enum UnaryFn implements AsmEnum {
  NONE("x (identity; vun none is a copy)."),
  EXP("e ** x."),
  LOG("ln x (NaN for x < 0, -inf for 0)."),
  SQRT("sqrt x."),
  RSQRT("1 / sqrt x."),
  RECIP("1 / x."),
  NEG("-x (exact, flips the sign of NaN and zero too)."),
  ABS("|x| (exact)."),
  TANH("tanh x."),
  ERF("erf x, by the Numerical Recipes erfc Chebyshev fit (relative error below 1.2e-7)."),
  SIGMOID("1 / (1 + e ** -x)."),
  RELU("max(x, 0); relu(NaN) = NaN, relu(-0) = +0."),
  GELU_ERF("x / 2 * (1 + erf(x / sqrt 2)) (exact GELU)."),
  GELU_TANH("x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x**3))) (tanh approximation)."),
  SILU("x / (1 + e ** -x) (swish).");

  private final String doc;

  UnaryFn(String doc) {
    this.doc = doc;
  }

  @Override
  public String doc() {
    return doc;
  }

  /** The reference semantics; the emulator calls this (or matches it bit for bit). */
  public float apply(float x) {
    double d = x;
    return switch (this) {
      case NONE -> x;
      case EXP -> (float) StrictMath.exp(d);
      case LOG -> (float) StrictMath.log(d);
      case SQRT -> (float) StrictMath.sqrt(d);
      case RSQRT -> (float) (1.0 / StrictMath.sqrt(d));
      case RECIP -> 1.0f / x;
      case NEG -> -x;
      case ABS -> Math.abs(x);
      case TANH -> (float) StrictMath.tanh(d);
      case ERF -> (float) Numerics.erf(d);
      case SIGMOID -> (float) (1.0 / (1.0 + StrictMath.exp(-d)));
      case RELU -> Float.isNaN(x) ? x : (x > 0 ? x : 0.0f);
      case GELU_ERF -> (float) (0.5 * d * (1.0 + Numerics.erf(d / StrictMath.sqrt(2.0))));
      case GELU_TANH -> (float) (0.5 * d * (1.0 + StrictMath.tanh(
          StrictMath.sqrt(2.0 / StrictMath.PI) * (d + 0.044715 * d * d * d))));
      case SILU -> (float) (d / (1.0 + StrictMath.exp(-d)));
    };
  }
}
