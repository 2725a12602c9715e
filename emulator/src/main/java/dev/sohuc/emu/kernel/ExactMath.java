package dev.sohuc.emu.kernel;

import dev.sohuc.isa.UnaryFn;

/**
 * The VPU's exp-based functions, bit for bit equal to their reference ({@link UnaryFn#apply},
 * which evaluates {@code StrictMath.exp} in f64 and rounds once to f32) but mostly computed with
 * the {@code Math.exp} intrinsic, several times faster than the pure-Java fdlibm port.
 *
 * <p>Why the results are identical: both {@code Math.exp} and {@code StrictMath.exp} are within
 * one ulp of the exact value, so the reference's exp value lies in {@code [e(1-d), e(1+d)]} for
 * the intrinsic's {@code e} and {@code d = 2^-40}. Every function here is a chain of IEEE
 * operations, each monotone in the operand that depends on the exp value, so the reference's
 * f64 result lies between the results computed from the two ends of that interval; when both
 * round to the same f32, so does the reference. Otherwise (about one argument in 2^16, and every
 * exp argument outside [-700, 700] or NaN) the reference itself is evaluated.
 */
public final class ExactMath {
  private ExactMath() {}

  private static final double LO = 1 - 0x1p-40;
  private static final double HI = 1 + 0x1p-40;
  private static final double LIMIT = 700;
  private static final double SQRT2 = StrictMath.sqrt(2.0);

  /** {@code (float) StrictMath.exp(x)}. */
  public static float exp(float x) {
    double d = x;
    if (Math.abs(d) <= LIMIT) {
      double e = Math.exp(d);
      float lo = (float) (e * LO);
      if (lo == (float) (e * HI)) {
        return lo;
      }
    }
    return (float) StrictMath.exp(d);
  }

  /** {@code fn.apply(x)}. */
  public static float apply(UnaryFn fn, float x) {
    return switch (fn) {
      case EXP -> exp(x);
      case SIGMOID -> sigmoid(x);
      case SILU -> silu(x);
      case ERF -> erf(x);
      case GELU_ERF -> geluErf(x);
      default -> fn.apply(x);
    };
  }

  private static float sigmoid(float x) {
    double d = x;
    if (Math.abs(d) <= LIMIT) {
      double e = Math.exp(-d);
      float lo = (float) (1.0 / (1.0 + e * LO));
      if (lo == (float) (1.0 / (1.0 + e * HI))) {
        return lo;
      }
    }
    return UnaryFn.SIGMOID.apply(x);
  }

  private static float silu(float x) {
    double d = x;
    if (Math.abs(d) <= LIMIT) {
      double e = Math.exp(-d);
      float lo = (float) (d / (1.0 + e * LO));
      if (lo == (float) (d / (1.0 + e * HI))) {
        return lo;
      }
    }
    return UnaryFn.SILU.apply(x);
  }

  private static float erf(float x) {
    double d = x;
    double t = erfT(d);
    double y = erfExpArg(d, t);
    if (Math.abs(y) <= LIMIT) {
      double e = Math.exp(y);
      float lo = (float) erfFrom(d, t, e * LO);
      if (lo == (float) erfFrom(d, t, e * HI)) {
        return lo;
      }
    }
    return UnaryFn.ERF.apply(x);
  }

  private static float geluErf(float x) {
    double d = x;
    double u = d / SQRT2;
    double t = erfT(u);
    double y = erfExpArg(u, t);
    if (Math.abs(y) <= LIMIT) {
      double e = Math.exp(y);
      float lo = (float) (0.5 * d * (1.0 + erfFrom(u, t, e * LO)));
      if (lo == (float) (0.5 * d * (1.0 + erfFrom(u, t, e * HI)))) {
        return lo;
      }
    }
    return UnaryFn.GELU_ERF.apply(x);
  }

  // Numerics.erf, split around its exp so that the exp value can be bracketed; every operation
  // is the reference's, in the reference's order.

  private static double erfT(double x) {
    return 1.0 / (1.0 + 0.5 * Math.abs(x));
  }

  private static double erfExpArg(double x, double t) {
    double z = Math.abs(x);
    return -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196
        + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398
        + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  }

  private static double erfFrom(double x, double t, double exp) {
    double ans = t * exp;
    double erfc = x >= 0 ? ans : 2.0 - ans;
    return 1.0 - erfc;
  }
}
