package dev.sohuc.onnx;

import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.List;

/**
 * What the importer knows about an ONNX tensor's value while importing: concrete data (from
 * initializers, Constant nodes and folding), or an integer vector whose entries are symbolic
 * dims (the output of Shape on {@code [?batch, ?seq, 384]} is {@code [?batch, ?seq, 384]}).
 * Shape subgraphs are evaluated on these and never reach the IR.
 */
sealed interface Known {

  TensorType type();

  /** Concrete data. */
  record Concrete(Tensor tensor) implements Known {
    @Override
    public TensorType type() {
      return tensor.type();
    }
  }

  /** An integer scalar or vector with at least one symbolic entry. */
  record Dims(List<Dim> dims, boolean scalar, ElementType elementType) implements Known {
    public Dims {
      dims = List.copyOf(dims);
    }

    @Override
    public TensorType type() {
      return scalar ? TensorType.scalar(elementType) : TensorType.of(elementType, dims.size());
    }
  }

  /** A vector (or scalar) of dims of an integer type, concrete when every entry is static. */
  static Known ofDims(List<Dim> dims, boolean scalar, ElementType type) {
    if (dims.stream().allMatch(Dim::isStatic)) {
      long[] v = dims.stream().mapToLong(Dim::value).toArray();
      return new Concrete(Tensor.ofLongs(type, scalar ? new long[0] : new long[] {v.length}, v));
    }
    return new Dims(dims, scalar, type);
  }

  /** The entries of an integer scalar or vector, or null when this is not one. */
  static List<Dim> dimsOf(Known k) {
    if (k instanceof Dims d) {
      return d.dims();
    }
    Tensor t = ((Concrete) k).tensor();
    if (t.isFloat() || t.rank() > 1) {
      return null;
    }
    List<Dim> out = new ArrayList<>(t.size());
    for (int i = 0; i < t.size(); i++) {
      out.add(Dim.of(t.getLong(i)));
    }
    return out;
  }

  static boolean isScalar(Known k) {
    return k.type().rank() == 0;
  }

  static ElementType elementType(Known k) {
    return k.type().elementType();
  }
}
