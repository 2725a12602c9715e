package dev.sohuc.ir.op;

import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;

import java.util.List;

/** An op attribute value, as written between braces in IR text: {@code {axis = -1}}. */
public sealed interface Attr {
  /** {@code 42}, {@code -1}. */
  record Int(long value) implements Attr {}

  /** {@code 1.0e-12}, {@code -inf}, {@code nan}; printed so that parsing gives the same bits. */
  record Float(double value) implements Attr {
    @Override
    public boolean equals(Object o) {
      return o instanceof Float f && Double.doubleToLongBits(f.value) == Double.doubleToLongBits(value);
    }

    @Override
    public int hashCode() {
      return Double.hashCode(value);
    }
  }

  /** {@code true}, {@code false}. */
  record Bool(boolean value) implements Attr {}

  /** {@code "erf"}. */
  record Str(String value) implements Attr {}

  /** {@code [0, 2, 1, 3]}. */
  record Ints(List<Long> values) implements Attr {
    public Ints {
      values = List.copyOf(values);
    }

    public int[] toIntArray() {
      return values.stream().mapToInt(Long::intValue).toArray();
    }
  }

  /** A shape with symbols: {@code [?batch, ?seq, 12, 32]}. */
  record Dims(List<Dim> values) implements Attr {
    public Dims {
      values = List.copyOf(values);
    }
  }

  /** An element type: {@code f32}. */
  record Type(ElementType value) implements Attr {}

  /** Constant data: {@code dense<[1, 2, 3]> : tensor<3 x i64>}. */
  record Dense(Tensor value) implements Attr {}

  /** A reference to a module-level symbol such as a weight: {@code @encoder.w}. */
  record SymbolRef(String name) implements Attr {}

  /** An attribute with its name, in the order an op prints it. */
  record Named(String name, Attr value) {
    public static Named of(String name, long v) {
      return new Named(name, new Int(v));
    }

    public static Named of(String name, double v) {
      return new Named(name, new Float(v));
    }

    public static Named of(String name, boolean v) {
      return new Named(name, new Bool(v));
    }

    public static Named of(String name, String v) {
      return new Named(name, new Str(v));
    }

    public static Named of(String name, ElementType v) {
      return new Named(name, new Type(v));
    }

    public static Named ints(String name, List<Long> v) {
      return new Named(name, new Ints(v));
    }

    public static Named dims(String name, List<Dim> v) {
      return new Named(name, new Dims(v));
    }
  }
}
