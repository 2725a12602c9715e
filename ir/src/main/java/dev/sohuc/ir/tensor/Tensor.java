package dev.sohuc.ir.tensor;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A concrete tensor for the reference interpreter and for constants: a static shape and
 * row-major data. Float types keep their values in a {@code float[]} (already rounded to the
 * narrow format, so f32 arithmetic on them is the reference semantics); integer and bool types
 * keep theirs in a {@code long[]}.
 */
public final class Tensor {
  /** The most elements one tensor may hold: Java arrays are int-indexed. */
  public static final long MAX_ELEMENTS = Integer.MAX_VALUE - 8;

  private final ElementType elementType;
  private final long[] shape;
  private final float[] floats;
  private final long[] longs;

  private Tensor(ElementType elementType, long[] shape, float[] floats, long[] longs) {
    this.elementType = elementType;
    this.shape = shape.clone();
    this.floats = floats;
    this.longs = longs;
  }

  /** Number of elements of a shape; throws when negative or too large to hold. */
  public static int checkedSize(long[] shape) {
    long n = 1;
    for (long d : shape) {
      if (d < 0) {
        throw new IrException("negative dimension in shape " + Arrays.toString(shape));
      }
      n = d == 0 ? 0 : (n > MAX_ELEMENTS / d ? MAX_ELEMENTS + 1 : n * d);
    }
    if (n > MAX_ELEMENTS) {
      throw new IrException("shape " + Arrays.toString(shape) + " has more than "
          + MAX_ELEMENTS + " elements");
    }
    return (int) n;
  }

  public static Tensor zeros(ElementType type, long... shape) {
    int n = checkedSize(shape);
    return type.isFloat()
        ? new Tensor(type, shape, new float[n], null)
        : new Tensor(type, shape, null, new long[n]);
  }

  /** Wraps float data (not copied); values are rounded to {@code type} first. */
  public static Tensor ofFloats(ElementType type, long[] shape, float[] data) {
    if (!type.isFloat()) {
      throw new IllegalArgumentException(type + " is not a float type");
    }
    checkLength(shape, data.length);
    if (type != ElementType.F32) {
      for (int i = 0; i < data.length; i++) {
        data[i] = roundTo(type, data[i]);
      }
    }
    return new Tensor(type, shape, data, null);
  }

  /** Wraps integer or bool data (not copied); values are wrapped to {@code type} first. */
  public static Tensor ofLongs(ElementType type, long[] shape, long[] data) {
    if (type.isFloat()) {
      throw new IllegalArgumentException(type + " is a float type");
    }
    checkLength(shape, data.length);
    for (int i = 0; i < data.length; i++) {
      data[i] = wrapTo(type, data[i]);
    }
    return new Tensor(type, shape, null, data);
  }

  public static Tensor scalar(ElementType type, double value) {
    Tensor t = zeros(type);
    t.set(0, value);
    return t;
  }

  private static void checkLength(long[] shape, int length) {
    if (checkedSize(shape) != length) {
      throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " needs "
          + checkedSize(shape) + " elements, got " + length);
    }
  }

  /** Rounds an f32 value to a float element type, as a cast to that type does. */
  public static float roundTo(ElementType type, float v) {
    return switch (type) {
      case F32 -> v;
      case F16 -> FloatFormats.roundToF16(v);
      case BF16 -> FloatFormats.roundToBf16(v);
      case F8E4M3 -> FloatFormats.Fp8.E4M3.round(v);
      case F8E5M2 -> FloatFormats.Fp8.E5M2.round(v);
      default -> throw new IllegalArgumentException(type + " is not a float type");
    };
  }

  /** Two's-complement wrap of an integer to a narrower type, as a cast does; bool is v != 0. */
  public static long wrapTo(ElementType type, long v) {
    return switch (type) {
      case I64 -> v;
      case I32 -> (int) v;
      case I8 -> (byte) v;
      case U8 -> v & 0xff;
      case BOOL -> v != 0 ? 1 : 0;
      default -> throw new IllegalArgumentException(type + " is not an integer type");
    };
  }

  public ElementType elementType() {
    return elementType;
  }

  public long[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  public long dim(int axis) {
    return shape[axis];
  }

  public int size() {
    return floats != null ? floats.length : longs.length;
  }

  public TensorType type() {
    return TensorType.of(elementType, shape);
  }

  public boolean isFloat() {
    return floats != null;
  }

  /** A new rank-2 float tensor: this one's rows as columns. */
  public Tensor transposed() {
    if (rank() != 2) {
      throw new IllegalStateException("transposed() needs rank 2, not " + rank());
    }
    int rows = (int) dim(0);
    int cols = (int) dim(1);
    float[] v = floats();
    float[] o = new float[v.length];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        o[j * rows + i] = v[i * cols + j];
      }
    }
    return ofFloats(elementType, new long[] {cols, rows}, o);
  }

  /** The backing float array (shared, not copied): kernels read and write it directly. */
  public float[] floats() {
    if (floats == null) {
      throw new IllegalStateException(elementType + " tensor has no float data");
    }
    return floats;
  }

  /** The backing long array (shared, not copied). */
  public long[] longs() {
    if (longs == null) {
      throw new IllegalStateException(elementType + " tensor has no integer data");
    }
    return longs;
  }

  /** Element {@code i} in row-major order as a double, whatever the type. */
  public double get(int i) {
    return floats != null ? floats[i] : longs[i];
  }

  public long getLong(int i) {
    return floats != null ? (long) floats[i] : longs[i];
  }

  /** Stores a value with this type's rounding or wrapping. */
  public void set(int i, double v) {
    if (floats != null) {
      floats[i] = roundTo(elementType, (float) v);
    } else {
      longs[i] = wrapTo(elementType, elementType == ElementType.BOOL ? (v != 0 ? 1 : 0) : (long) v);
    }
  }

  /** Decodes little-endian bytes in the storage layout of {@code type}. */
  public static Tensor fromBytes(ElementType type, long[] shape, ByteBuffer bytes) {
    int n = checkedSize(shape);
    long needed = (long) n * type.sizeBytes();
    if (bytes.remaining() != needed) {
      throw new IrException("tensor of type " + type + " and shape " + Arrays.toString(shape)
          + " needs " + needed + " bytes, got " + bytes.remaining());
    }
    ByteBuffer b = bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    Tensor t = zeros(type, shape);
    for (int i = 0; i < n; i++) {
      switch (type) {
        case F32 -> t.floats[i] = b.getFloat();
        case F16 -> t.floats[i] = Float.float16ToFloat(b.getShort());
        case BF16 -> t.floats[i] = FloatFormats.bf16ToFloat(b.getShort());
        case F8E4M3 -> t.floats[i] = FloatFormats.Fp8.E4M3.decode(b.get());
        case F8E5M2 -> t.floats[i] = FloatFormats.Fp8.E5M2.decode(b.get());
        case I64 -> t.longs[i] = b.getLong();
        case I32 -> t.longs[i] = b.getInt();
        case I8 -> t.longs[i] = b.get();
        case U8 -> t.longs[i] = b.get() & 0xff;
        case BOOL -> t.longs[i] = b.get() != 0 ? 1 : 0;
      }
    }
    return t;
  }

  /** Little-endian bytes in the storage layout of this tensor's type. */
  public byte[] toBytes() {
    int n = size();
    ByteBuffer b = ByteBuffer.allocate(n * elementType.sizeBytes()).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < n; i++) {
      switch (elementType) {
        case F32 -> b.putFloat(floats[i]);
        case F16 -> b.putShort(Float.floatToFloat16(floats[i]));
        case BF16 -> b.putShort(FloatFormats.floatToBf16Bits(floats[i]));
        case F8E4M3 -> b.put(FloatFormats.Fp8.E4M3.encode(floats[i]));
        case F8E5M2 -> b.put(FloatFormats.Fp8.E5M2.encode(floats[i]));
        case I64 -> b.putLong(longs[i]);
        case I32 -> b.putInt((int) longs[i]);
        case I8, U8, BOOL -> b.put((byte) longs[i]);
      }
    }
    return b.array();
  }

  /** Bitwise equality of type, shape and data (NaNs with equal bits are equal). */
  @Override
  public boolean equals(Object o) {
    return o instanceof Tensor t
        && elementType == t.elementType
        && Arrays.equals(shape, t.shape)
        && Arrays.equals(floats, t.floats)
        && Arrays.equals(longs, t.longs);
  }

  @Override
  public int hashCode() {
    return 31 * (31 * elementType.hashCode() + Arrays.hashCode(shape))
        + (floats != null ? Arrays.hashCode(floats) : Arrays.hashCode(longs));
  }

  @Override
  public String toString() {
    return "Tensor" + type();
  }
}
