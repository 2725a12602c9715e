package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Shape rules shared by several ops: broadcasting, axes, element type checks. */
public final class Shapes {
  private Shapes() {}

  /** Numpy broadcasting of dims, right-aligned; a symbol broadcasts only with itself or 1. */
  public static List<Dim> broadcast(List<Dim> a, List<Dim> b) {
    int rank = Math.max(a.size(), b.size());
    List<Dim> out = new ArrayList<>(rank);
    for (int i = 0; i < rank; i++) {
      int ia = a.size() - rank + i;
      int ib = b.size() - rank + i;
      Dim da = ia >= 0 ? a.get(ia) : Dim.of(1);
      Dim db = ib >= 0 ? b.get(ib) : Dim.of(1);
      if (da.equals(db) || db.is(1)) {
        out.add(da);
      } else if (da.is(1)) {
        out.add(db);
      } else {
        throw new OpException("shapes " + dimsText(a) + " and " + dimsText(b)
            + " do not broadcast: " + da + " vs " + db);
      }
    }
    return out;
  }

  public static List<Dim> broadcast(List<Value> values) {
    List<Dim> out = List.of();
    for (Value v : values) {
      out = broadcast(out, v.type().dims());
    }
    return out;
  }

  /** An axis in {@code [-rank, rank)} made non-negative. */
  public static int axis(long axis, int rank, String what) {
    if (axis < -rank || axis >= rank) {
      throw new OpException(what + " " + axis + " is out of range for rank " + rank);
    }
    return (int) (axis < 0 ? axis + rank : axis);
  }

  /** Normalized, sorted, distinct axes. */
  public static List<Integer> axes(List<Long> axes, int rank, String what) {
    List<Integer> out = new ArrayList<>();
    for (long a : axes) {
      int n = axis(a, rank, what);
      if (out.contains(n)) {
        throw new OpException(what + " " + a + " is repeated");
      }
      out.add(n);
    }
    Collections.sort(out);
    return out;
  }

  public static ElementType sameElementType(List<Value> values, String what) {
    ElementType t = values.get(0).type().elementType();
    for (Value v : values) {
      if (v.type().elementType() != t) {
        throw new OpException(what + " must have one element type, got " + t + " and "
            + v.type().elementType());
      }
    }
    return t;
  }

  public static void requireFloat(Value v, String role) {
    if (!v.type().elementType().isFloat()) {
      throw new OpException(role + " must be a float tensor, got " + v.type());
    }
  }

  public static void requireType(Value v, String role, ElementType... allowed) {
    for (ElementType t : allowed) {
      if (v.type().elementType() == t) {
        return;
      }
    }
    throw new OpException(role + " must have element type " + List.of(allowed) + ", got "
        + v.type().elementType());
  }

  public static void requireRank(Value v, String role, int rank) {
    if (v.type().rank() != rank) {
      throw new OpException(role + " must have rank " + rank + ", got " + v.type());
    }
  }

  public static void requireMinRank(Value v, String role, int rank) {
    if (v.type().rank() < rank) {
      throw new OpException(role + " must have rank " + rank + " or more, got " + v.type());
    }
  }

  public static void requireSameDim(Dim a, Dim b, String what) {
    if (!a.equals(b)) {
      throw new OpException(what + " differ: " + a + " vs " + b);
    }
  }

  public static String dimsText(List<Dim> dims) {
    return dims.stream().map(Dim::toString).toList().toString();
  }

  public static List<TensorType> one(TensorType t) {
    return List.of(t);
  }
}
