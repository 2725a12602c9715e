package dev.sohuc.onnx;

import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;

import java.util.ArrayList;
import java.util.List;

/**
 * Import-time evaluation of elementwise ops on known values: symbolic integer vectors (shape
 * arithmetic such as {@code ?seq * 12}) and small concrete tensors. Each method returns null
 * when it cannot decide, and the importer then emits the op into the IR instead.
 */
final class Fold {
  /** Concrete results larger than this are computed at run time, not at import. */
  static final int MAX_FOLD_ELEMENTS = 4096;

  private Fold() {}

  static Known binary(BinaryKind kind, Known a, Known b) {
    ElementType ta = Known.elementType(a);
    if (ta != Known.elementType(b)) {
      return null;
    }
    if ((a instanceof Known.Dims || b instanceof Known.Dims)) {
      return dimsBinary(kind, a, b, ta);
    }
    return concreteBinary(kind, ((Known.Concrete) a).tensor(), ((Known.Concrete) b).tensor());
  }

  /** Shape arithmetic on symbolic vectors, broadcasting a single entry. */
  private static Known dimsBinary(BinaryKind kind, Known a, Known b, ElementType type) {
    List<Dim> da = Known.dimsOf(a);
    List<Dim> db = Known.dimsOf(b);
    if (da == null || db == null || type == ElementType.BOOL) {
      return null;
    }
    int n = Math.max(da.size(), db.size());
    if ((da.size() != n && da.size() != 1) || (db.size() != n && db.size() != 1)) {
      return null;
    }
    if (Known.isScalar(a) != Known.isScalar(b) && (da.size() != 1 || db.size() != 1) && n == 1) {
      return null;
    }
    boolean scalar = Known.isScalar(a) && Known.isScalar(b);
    List<Dim> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      Dim x = da.get(da.size() == 1 ? 0 : i);
      Dim y = db.get(db.size() == 1 ? 0 : i);
      Dim r = dimOp(kind, x, y);
      if (r == null) {
        return null;
      }
      out.add(r);
    }
    return Known.ofDims(out, scalar, kind.isComparison() ? ElementType.BOOL : type);
  }

  private static final Dim TRUE = Dim.of(1);
  private static final Dim FALSE = Dim.of(0);

  private static Dim dimOp(BinaryKind kind, Dim x, Dim y) {
    if (x.isStatic() && y.isStatic()) {
      long a = x.value();
      long b = y.value();
      return switch (kind) {
        case ADD -> Dim.of(a + b);
        case SUB -> Dim.of(a - b);
        case MUL -> Dim.of(a * b);
        case DIV -> b == 0 ? null : Dim.of(a / b);
        case MOD -> b == 0 ? null : Dim.of(Math.floorMod(a, b));
        case MAX -> Dim.of(Math.max(a, b));
        case MIN -> Dim.of(Math.min(a, b));
        case EQUAL -> a == b ? TRUE : FALSE;
        case LESS -> a < b ? TRUE : FALSE;
        case LESS_EQUAL -> a <= b ? TRUE : FALSE;
        case GREATER -> a > b ? TRUE : FALSE;
        case GREATER_EQUAL -> a >= b ? TRUE : FALSE;
        default -> null;
      };
    }
    return switch (kind) {
      case ADD -> x.plus(y);
      case SUB -> x.minus(y);
      case MUL -> x.times(y);
      case DIV -> x.dividedBy(y).orElse(null);
      case MAX, MIN -> x.equals(y) ? x : null;
      case EQUAL -> x.equals(y) ? TRUE : provablyDifferent(x, y) ? FALSE : null;
      default -> null;
    };
  }

  /**
   * Dims are sizes, so a polynomial with non-negative coefficients is never negative: exports
   * compare shapes with -1 to pick Expand targets.
   */
  private static boolean provablyDifferent(Dim x, Dim y) {
    Dim diff = x.minus(y);
    if (diff.isStatic()) {
      return diff.value() != 0;
    }
    return (nonNegative(x) && y.isStatic() && y.value() < 0) || (nonNegative(y) && x.isStatic() && x.value() < 0);
  }

  private static boolean nonNegative(Dim d) {
    return d.terms().values().stream().allMatch(c -> c >= 0);
  }

  static Known concreteBinary(BinaryKind kind, Tensor a, Tensor b) {
    long[] shape = broadcastShape(a.shape(), b.shape());
    if (shape == null || Tensor.checkedSize(shape) > MAX_FOLD_ELEMENTS) {
      return null;
    }
    ElementType in = a.elementType();
    ElementType outType = kind.isComparison() ? ElementType.BOOL : in;
    Tensor out = Tensor.zeros(outType, shape);
    for (int i = 0; i < out.size(); i++) {
      int ia = sourceIndex(shape, a.shape(), i);
      int ib = sourceIndex(shape, b.shape(), i);
      Double v = in.isFloat() ? floatOp(kind, a.get(ia), b.get(ib)) : intOp(kind, a.getLong(ia), b.getLong(ib));
      if (v == null) {
        return null;
      }
      out.set(i, v);
    }
    return new Known.Concrete(out);
  }

  private static Double floatOp(BinaryKind kind, double x, double y) {
    float a = (float) x;
    float b = (float) y;
    return switch (kind) {
      case ADD -> (double) (a + b);
      case SUB -> (double) (a - b);
      case MUL -> (double) (a * b);
      case DIV -> (double) (a / b);
      case POW -> (double) (float) Math.pow(a, b);
      case MAX -> (double) Math.max(a, b);
      case MIN -> (double) Math.min(a, b);
      case EQUAL, LESS, LESS_EQUAL, GREATER, GREATER_EQUAL -> compare(kind, a < b, a == b, a > b);
      default -> null;
    };
  }

  private static Double intOp(BinaryKind kind, long a, long b) {
    return switch (kind) {
      case ADD -> (double) (a + b);
      case SUB -> (double) (a - b);
      case MUL -> (double) (a * b);
      case DIV -> b == 0 ? null : (double) (a / b);
      case MAX -> (double) Math.max(a, b);
      case MIN -> (double) Math.min(a, b);
      case EQUAL, LESS, LESS_EQUAL, GREATER, GREATER_EQUAL -> compare(kind, a < b, a == b, a > b);
      case AND -> (a != 0 && b != 0) ? 1.0 : 0.0;
      case OR -> (a != 0 || b != 0) ? 1.0 : 0.0;
      case XOR -> ((a != 0) ^ (b != 0)) ? 1.0 : 0.0;
      default -> null;
    } instanceof Double d && Math.abs(d) < 0x1p52 ? d : null;
  }

  /**
   * A comparison's bool as 1 or 0. The three orderings come separately because a NaN operand
   * makes all three false, so {@code >=} is not {@code !<}.
   */
  private static double compare(BinaryKind kind, boolean lt, boolean eq, boolean gt) {
    boolean r = switch (kind) {
      case EQUAL -> eq;
      case LESS -> lt;
      case LESS_EQUAL -> lt || eq;
      case GREATER -> gt;
      case GREATER_EQUAL -> gt || eq;
      default -> throw new IllegalArgumentException(kind + " is not a comparison");
    };
    return r ? 1.0 : 0.0;
  }

  static Known unary(UnaryKind kind, Known k) {
    if (!(k instanceof Known.Concrete c) || c.tensor().size() > MAX_FOLD_ELEMENTS) {
      if (k instanceof Known.Dims d && kind == UnaryKind.NEG) {
        return Known.ofDims(d.dims().stream().map(x -> Dim.of(0).minus(x)).toList(), d.scalar(), d.elementType());
      }
      return null;
    }
    Tensor t = c.tensor();
    Tensor out = Tensor.zeros(t.elementType(), t.shape());
    for (int i = 0; i < t.size(); i++) {
      double x = t.get(i);
      double r = switch (kind) {
        case NEG -> -x;
        case ABS -> Math.abs(x);
        case EXP -> Math.exp(x);
        case LOG -> Math.log(x);
        case SQRT -> Math.sqrt(x);
        case RECIPROCAL -> 1.0f / (float) x;
        case TANH -> Math.tanh(x);
        case SIGMOID -> 1 / (1 + Math.exp(-x));
        case RELU -> Math.max(0, x);
        case FLOOR -> Math.floor(x);
        case CEIL -> Math.ceil(x);
        case NOT -> x == 0 ? 1 : 0;
        default -> Double.NaN;
      };
      if (kind == UnaryKind.ERF || kind == UnaryKind.SIN || kind == UnaryKind.COS) {
        return null;
      }
      out.set(i, r);
    }
    return new Known.Concrete(out);
  }

  static Known cast(Known k, ElementType to) {
    if (k instanceof Known.Dims d) {
      return to.isInteger() ? Known.ofDims(d.dims(), d.scalar(), to) : null;
    }
    Tensor t = ((Known.Concrete) k).tensor();
    if (t.size() > MAX_FOLD_ELEMENTS) {
      return null;
    }
    Tensor out = Tensor.zeros(to, t.shape());
    for (int i = 0; i < t.size(); i++) {
      double v = t.get(i);
      if (!to.isFloat() && to != ElementType.BOOL && (Double.isNaN(v) || Double.isInfinite(v))) {
        return null;
      }
      out.set(i, v);
    }
    return new Known.Concrete(out);
  }

  static Known where(Known cond, Known a, Known b) {
    if (!(cond instanceof Known.Concrete c)) {
      return null;
    }
    List<Dim> da = Known.dimsOf(a);
    List<Dim> db = Known.dimsOf(b);
    Tensor ct = c.tensor();
    if ((a instanceof Known.Dims || b instanceof Known.Dims) && da != null && db != null && ct.rank() <= 1) {
      int n = Math.max(ct.size(), Math.max(da.size(), db.size()));
      List<Dim> out = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        int ic = ct.size() == 1 ? 0 : i;
        int ia = da.size() == 1 ? 0 : i;
        int ib = db.size() == 1 ? 0 : i;
        if (ic >= ct.size() || ia >= da.size() || ib >= db.size()) {
          return null;
        }
        out.add(ct.getLong(ic) != 0 ? da.get(ia) : db.get(ib));
      }
      boolean scalar = Known.isScalar(cond) && Known.isScalar(a) && Known.isScalar(b);
      return Known.ofDims(out, scalar, Known.elementType(a));
    }
    if (!(a instanceof Known.Concrete ka) || !(b instanceof Known.Concrete kb)) {
      return null;
    }
    long[] shape = broadcastShape(ct.shape(), broadcastShape(ka.tensor().shape(), kb.tensor().shape()));
    if (shape == null || Tensor.checkedSize(shape) > MAX_FOLD_ELEMENTS) {
      return null;
    }
    Tensor out = Tensor.zeros(ka.tensor().elementType(), shape);
    for (int i = 0; i < out.size(); i++) {
      boolean pick = ct.getLong(sourceIndex(shape, ct.shape(), i)) != 0;
      Tensor src = pick ? ka.tensor() : kb.tensor();
      out.set(i, src.get(sourceIndex(shape, src.shape(), i)));
    }
    return new Known.Concrete(out);
  }

  static long[] broadcastShape(long[] a, long[] b) {
    if (a == null || b == null) {
      return null;
    }
    int rank = Math.max(a.length, b.length);
    long[] out = new long[rank];
    for (int i = 0; i < rank; i++) {
      long x = i - rank + a.length >= 0 ? a[i - rank + a.length] : 1;
      long y = i - rank + b.length >= 0 ? b[i - rank + b.length] : 1;
      if (x != y && x != 1 && y != 1) {
        return null;
      }
      out[i] = x == 1 ? y : x;
    }
    return out;
  }

  /** The flat index in a broadcast operand of shape {@code in} of output element {@code flat}. */
  static int sourceIndex(long[] out, long[] in, int flat) {
    int index = 0;
    int stride = 1;
    int rem = flat;
    for (int i = out.length - 1; i >= 0; i--) {
      int coord = (int) (rem % out[i]);
      rem /= (int) out[i];
      int j = i - out.length + in.length;
      if (j >= 0) {
        if (in[j] != 1) {
          index += coord * stride;
        }
        stride *= (int) in[j];
      }
    }
    return index;
  }
}
