package dev.sohuc.emu;

import dev.sohuc.isa.DType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A tensor on the host: an element type, a shape and its row-major little-endian bytes, exactly
 * as it lies in HBM. Inputs and outputs are bound to the program's symbols by name.
 */
public record HostTensor(DType dtype, long[] shape, byte[] data) {

  public HostTensor {
    shape = shape.clone();
    long n = 1;
    for (long d : shape) {
      if (d < 0) {
        throw new EmulatorException("tensor shape " + Arrays.toString(shape)
            + " has a negative dimension");
      }
      n = Math.multiplyHigh(n, d) != 0 ? -1 : n * d;
      if (n < 0) {
        throw new EmulatorException("tensor shape " + Arrays.toString(shape) + " is too large");
      }
    }
    if (n * dtype.bytes() != data.length) {
      throw new EmulatorException("tensor of shape " + Arrays.toString(shape) + " and dtype "
          + dtype.asmName() + " needs " + n * dtype.bytes() + " bytes, got " + data.length);
    }
    data = data.clone();
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  @Override
  public byte[] data() {
    return data.clone();
  }

  public long elements() {
    return data.length / dtype.bytes();
  }

  /** An f32 tensor from values. */
  public static HostTensor ofF32(long[] shape, float... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      b.putFloat(v);
    }
    return new HostTensor(DType.F32, shape, b.array());
  }

  /** The elements of an i64 or i32 tensor, in row-major order; an error for other dtypes. */
  public long[] integers() {
    if (dtype != DType.I64 && dtype != DType.I32) {
      throw new EmulatorException("dtype " + dtype.asmName() + ", but only an i64 or i32 tensor "
          + "holds integers");
    }
    ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    long[] out = new long[(int) elements()];
    for (int i = 0; i < out.length; i++) {
      out[i] = dtype == DType.I64 ? b.getLong() : b.getInt();
    }
    return out;
  }

  /** The elements converted to f32 with the ISA's rules. */
  public float[] toF32() {
    float[] out = new float[(int) elements()];
    Elem.loadRow(data, 0, out.length, dtype, out);
    return out;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof HostTensor t && t.dtype == dtype && Arrays.equals(t.shape, shape)
        && Arrays.equals(t.data, data);
  }

  @Override
  public int hashCode() {
    return (dtype.hashCode() * 31 + Arrays.hashCode(shape)) * 31 + Arrays.hashCode(data);
  }

  @Override
  public String toString() {
    return "HostTensor[" + dtype.asmName() + " " + Arrays.toString(shape) + "]";
  }
}
