package dev.sohuc.ir.interp;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.util.function.DoubleBinaryOperator;
import java.util.function.DoubleUnaryOperator;
import java.util.function.LongBinaryOperator;
import java.util.function.LongUnaryOperator;

/**
 * Elementwise semantics. Float math is evaluated in double and rounded once to the result
 * type, which for +, -, *, / and sqrt equals the correctly rounded f32 operation; integer math
 * is evaluated in i64 and wrapped to the result type.
 */
final class ElementwiseKernels {
  private ElementwiseKernels() {}

  /** Float comparisons; NaN compares unequal and unordered, as IEEE. */
  @FunctionalInterface
  interface FloatPredicate {
    boolean test(double a, double b);
  }

  // ---- the shared loops: one per storage kind, each taking the scalar function ----

  static Tensor mapFloat(Tensor x, ElementType outType, DoubleUnaryOperator f) {
    float[] a = x.floats();
    float[] o = new float[a.length];
    for (int i = 0; i < a.length; i++) {
      o[i] = (float) f.applyAsDouble(a[i]);
    }
    return Tensor.ofFloats(outType, x.shape(), o);
  }

  static Tensor mapLong(Tensor x, ElementType outType, LongUnaryOperator f) {
    long[] a = x.longs();
    long[] o = new long[a.length];
    for (int i = 0; i < a.length; i++) {
      o[i] = f.applyAsLong(a[i]);
    }
    return Tensor.ofLongs(outType, x.shape(), o);
  }

  /**
   * Two operands broadcast against each other: the result shape, and where each operand's
   * element for result element i lies.
   */
  private static final class Broadcast {
    final long[] shape;
    final int size;
    // null where the operand already has the result shape, so element i is at i
    private final int[] ix;
    private final int[] iy;

    Broadcast(Tensor x, Tensor y) {
      shape = Indexing.broadcastShapes(x.shape(), y.shape());
      size = Indexing.size(shape);
      ix = Indexing.broadcastOffsets(x.shape(), shape);
      iy = Indexing.broadcastOffsets(y.shape(), shape);
    }

    int x(int i) {
      return ix == null ? i : ix[i];
    }

    int y(int i) {
      return iy == null ? i : iy[i];
    }
  }

  static Tensor zipFloat(Tensor x, Tensor y, ElementType outType, DoubleBinaryOperator f) {
    Broadcast bc = new Broadcast(x, y);
    float[] a = x.floats();
    float[] b = y.floats();
    float[] o = new float[bc.size];
    for (int i = 0; i < o.length; i++) {
      o[i] = (float) f.applyAsDouble(a[bc.x(i)], b[bc.y(i)]);
    }
    return Tensor.ofFloats(outType, bc.shape, o);
  }

  static Tensor zipLong(Tensor x, Tensor y, ElementType outType, LongBinaryOperator f) {
    Broadcast bc = new Broadcast(x, y);
    long[] a = x.longs();
    long[] b = y.longs();
    long[] o = new long[bc.size];
    for (int i = 0; i < o.length; i++) {
      o[i] = f.applyAsLong(a[bc.x(i)], b[bc.y(i)]);
    }
    return Tensor.ofLongs(outType, bc.shape, o);
  }

  static Tensor compareFloat(Tensor x, Tensor y, FloatPredicate p) {
    Broadcast bc = new Broadcast(x, y);
    float[] a = x.floats();
    float[] b = y.floats();
    long[] o = new long[bc.size];
    for (int i = 0; i < o.length; i++) {
      o[i] = p.test(a[bc.x(i)], b[bc.y(i)]) ? 1 : 0;
    }
    return Tensor.ofLongs(ElementType.BOOL, bc.shape, o);
  }

  // ---- ops ----

  static Tensor unary(UnaryKind kind, Tensor x) {
    ElementType t = x.elementType();
    if (!t.isFloat()) {
      return switch (kind) {
        case NEG -> mapLong(x, t, v -> -v);
        case ABS -> mapLong(x, t, Math::abs);
        case NOT -> mapLong(x, t, v -> v == 0 ? 1 : 0);
        case EXP, LOG, SQRT, RECIPROCAL, ERF, TANH, SIGMOID, RELU, SIN, COS, FLOOR, CEIL ->
            throw new IrException(kind.mnemonic() + " takes a float tensor, got " + t);
      };
    }
    return mapFloat(x, t, switch (kind) {
      case NEG -> v -> -v;
      case ABS -> Math::abs;
      case EXP -> Math::exp;
      case LOG -> Math::log;
      case SQRT -> Math::sqrt;
      case RECIPROCAL -> v -> 1.0 / v;
      case ERF -> Erf::erf;
      case TANH -> Math::tanh;
      case SIGMOID -> ElementwiseKernels::sigmoid;
      case RELU -> v -> v > 0 ? v : (v == v ? 0.0 : v); // NaN passes through
      case SIN -> Math::sin;
      case COS -> Math::cos;
      case FLOOR -> Math::floor;
      case CEIL -> Math::ceil;
      case NOT -> throw new IrException("not takes a bool tensor, got " + t);
    });
  }

  static double sigmoid(double v) {
    if (v >= 0) {
      return 1.0 / (1.0 + Math.exp(-v));
    }
    double e = Math.exp(v);
    return e / (1.0 + e);
  }

  static Tensor binary(BinaryKind kind, Tensor x, Tensor y) {
    ElementType t = x.elementType();
    if (kind.isComparison()) {
      if (t.isFloat()) {
        return compareFloat(x, y, switch (kind) {
          case EQUAL -> (a, b) -> a == b;
          case LESS -> (a, b) -> a < b;
          case LESS_EQUAL -> (a, b) -> a <= b;
          case GREATER -> (a, b) -> a > b;
          case GREATER_EQUAL -> (a, b) -> a >= b;
          case ADD, SUB, MUL, DIV, POW, MAX, MIN, MOD, AND, OR, XOR -> throw new IllegalStateException(kind.name());
        });
      }
      return zipLong(x, y, ElementType.BOOL, switch (kind) {
        case EQUAL -> (a, b) -> a == b ? 1 : 0;
        case LESS -> (a, b) -> a < b ? 1 : 0;
        case LESS_EQUAL -> (a, b) -> a <= b ? 1 : 0;
        case GREATER -> (a, b) -> a > b ? 1 : 0;
        case GREATER_EQUAL -> (a, b) -> a >= b ? 1 : 0;
        case ADD, SUB, MUL, DIV, POW, MAX, MIN, MOD, AND, OR, XOR -> throw new IllegalStateException(kind.name());
      });
    }
    if (t.isFloat()) {
      return zipFloat(x, y, t, switch (kind) {
        case ADD -> Double::sum;
        case SUB -> (a, b) -> a - b;
        case MUL -> (a, b) -> a * b;
        case DIV -> (a, b) -> a / b;
        case POW -> Math::pow;
        case MAX -> Math::max;
        case MIN -> Math::min;
        case MOD -> (a, b) -> a % b; // C fmod: the sign of the dividend
        case AND, OR, XOR -> throw new IrException(kind.mnemonic() + " takes bool operands, got " + t);
        case EQUAL, LESS, LESS_EQUAL, GREATER, GREATER_EQUAL -> throw new IllegalStateException(kind.name());
      });
    }
    return zipLong(x, y, t, switch (kind) {
      case ADD -> Long::sum;
      case SUB -> (a, b) -> a - b;
      case MUL -> (a, b) -> a * b;
      case DIV -> (a, b) -> {
        if (b == 0) {
          throw new IrException("integer division by zero");
        }
        return a / b; // truncates toward zero
      };
      case POW -> ElementwiseKernels::integerPow;
      case MAX -> Math::max;
      case MIN -> Math::min;
      case MOD -> (a, b) -> {
        if (b == 0) {
          throw new IrException("integer modulo by zero");
        }
        return Math.floorMod(a, b); // ONNX Mod with fmod = 0: the sign of the divisor
      };
      case AND -> (a, b) -> a & b;
      case OR -> (a, b) -> a | b;
      case XOR -> (a, b) -> a ^ b;
      case EQUAL, LESS, LESS_EQUAL, GREATER, GREATER_EQUAL -> throw new IllegalStateException(kind.name());
    });
  }

  /** {@code a^b} in wrapping i64; a negative exponent truncates {@code 1 / a^-b} toward zero. */
  static long integerPow(long a, long b) {
    if (b < 0) {
      if (a == 1) {
        return 1;
      }
      if (a == -1) {
        return (b & 1) == 0 ? 1 : -1;
      }
      if (a == 0) {
        throw new IrException("integer 0 raised to a negative power");
      }
      return 0;
    }
    long result = 1;
    long base = a;
    long e = b;
    while (e > 0) {
      if ((e & 1) != 0) {
        result *= base;
      }
      base *= base;
      e >>= 1;
    }
    return result;
  }

  static Tensor where(Tensor c, Tensor x, Tensor y) {
    long[] shape = Indexing.broadcastShapes(Indexing.broadcastShapes(c.shape(), x.shape()), y.shape());
    int n = Indexing.size(shape);
    int[] ic = Indexing.broadcastOffsets(c.shape(), shape);
    int[] ix = Indexing.broadcastOffsets(x.shape(), shape);
    int[] iy = Indexing.broadcastOffsets(y.shape(), shape);
    long[] cond = c.longs();
    int[] idx = new int[n];
    boolean[] fromX = new boolean[n];
    for (int i = 0; i < n; i++) {
      fromX[i] = cond[ic == null ? i : ic[i]] != 0;
      idx[i] = fromX[i] ? (ix == null ? i : ix[i]) : (iy == null ? i : iy[i]);
    }
    Object a = Indexing.storage(x);
    Object b = Indexing.storage(y);
    Object o = Indexing.newStorage(x.elementType(), n);
    if (o instanceof float[] of) {
      for (int i = 0; i < n; i++) {
        of[i] = fromX[i] ? ((float[]) a)[idx[i]] : ((float[]) b)[idx[i]];
      }
    } else {
      long[] ol = (long[]) o;
      for (int i = 0; i < n; i++) {
        ol[i] = fromX[i] ? ((long[]) a)[idx[i]] : ((long[]) b)[idx[i]];
      }
    }
    return Indexing.wrap(x.elementType(), shape, o);
  }

  static Tensor clip(Tensor x, double min, double max) {
    if (x.isFloat()) {
      return mapFloat(x, x.elementType(), v -> v < min ? min : (v > max ? max : v));
    }
    long lo = min == Double.NEGATIVE_INFINITY ? Long.MIN_VALUE : (long) Math.ceil(min);
    long hi = max == Double.POSITIVE_INFINITY ? Long.MAX_VALUE : (long) Math.floor(max);
    return mapLong(x, x.elementType(), v -> Math.max(lo, Math.min(hi, v)));
  }

  /** Cast rules of {@code ElementwiseOp.Cast}; float to int maps NaN to 0 (Java's (long) NaN). */
  static Tensor cast(Tensor x, ElementType to) {
    int n = x.size();
    if (to.isFloat()) {
      float[] o = new float[n];
      if (x.isFloat()) {
        System.arraycopy(x.floats(), 0, o, 0, n);
      } else {
        long[] a = x.longs();
        for (int i = 0; i < n; i++) {
          o[i] = (float) a[i];
        }
      }
      return Tensor.ofFloats(to, x.shape(), o); // rounds to the narrow format
    }
    long[] o = new long[n];
    if (x.isFloat()) {
      float[] a = x.floats();
      for (int i = 0; i < n; i++) {
        // (long) truncates toward zero, saturates at the i64 range and maps NaN to 0;
        // ofLongs then wraps to the narrower type. bool is x != 0, so NaN is true.
        o[i] = to == ElementType.BOOL ? (a[i] != 0 ? 1 : 0) : (long) a[i];
      }
    } else {
      System.arraycopy(x.longs(), 0, o, 0, n);
    }
    return Tensor.ofLongs(to, x.shape(), o); // wraps; bool is != 0
  }
}
