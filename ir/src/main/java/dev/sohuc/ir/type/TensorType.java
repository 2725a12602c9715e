package dev.sohuc.ir.type;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/**
 * A ranked tensor type such as {@code tensor<?batch x ?seq x 384 x f32>}; rank 0 is a scalar,
 * {@code tensor<f32>}.
 */
public record TensorType(List<Dim> dims, ElementType elementType) {

  public TensorType {
    dims = List.copyOf(dims);
  }

  public static TensorType of(ElementType elementType, long... staticDims) {
    List<Dim> d = new ArrayList<>();
    for (long v : staticDims) {
      d.add(Dim.of(v));
    }
    return new TensorType(d, elementType);
  }

  public static TensorType scalar(ElementType elementType) {
    return new TensorType(List.of(), elementType);
  }

  public int rank() {
    return dims.size();
  }

  public Dim dim(int axis) {
    return dims.get(axis);
  }

  public boolean isStatic() {
    return dims.stream().allMatch(Dim::isStatic);
  }

  /** Element count when every dim is static and the product fits a long. */
  public OptionalLong staticElementCount() {
    long n = 1;
    for (Dim d : dims) {
      if (!d.isStatic()) {
        return OptionalLong.empty();
      }
      try {
        n = Math.multiplyExact(n, d.value());
      } catch (ArithmeticException overflow) {
        return OptionalLong.empty();
      }
    }
    return OptionalLong.of(n);
  }

  /** Size in bytes when every dim is static and the size fits a long. */
  public OptionalLong staticSizeBytes() {
    OptionalLong n = staticElementCount();
    int size = elementType.sizeBytes();
    return n.isPresent() && n.getAsLong() <= Long.MAX_VALUE / size
        ? OptionalLong.of(n.getAsLong() * size) : OptionalLong.empty();
  }

  public long[] evaluateShape(Map<String, Long> bindings) {
    long[] shape = new long[dims.size()];
    for (int i = 0; i < shape.length; i++) {
      shape[i] = dims.get(i).evaluate(bindings);
    }
    return shape;
  }

  public TensorType withElementType(ElementType t) {
    return new TensorType(dims, t);
  }

  public TensorType withDims(List<Dim> d) {
    return new TensorType(d, elementType);
  }

  public TensorType substitute(Map<String, Dim> bindings) {
    return new TensorType(dims.stream().map(d -> d.substitute(bindings)).toList(), elementType);
  }

  /** IR text, e.g. {@code tensor<?batch x ?seq x 384 x f32>}. */
  @Override
  public String toString() {
    StringBuilder sb = new StringBuilder("tensor<");
    for (Dim d : dims) {
      sb.append(d).append(" x ");
    }
    return sb.append(elementType.text()).append('>').toString();
  }
}
