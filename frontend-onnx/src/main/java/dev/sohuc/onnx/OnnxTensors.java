package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import com.google.protobuf.ByteString;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Optional;

/**
 * ONNX {@code TensorProto} data in IR terms: element types, validated dims, and the bytes of the
 * typed fields ({@code float_data}, {@code int32_data} with its packed narrow types, ...).
 * Every size is checked against what the message holds before anything is allocated.
 */
final class OnnxTensors {
  private OnnxTensors() {}

  /** The IR element type of an ONNX {@code TensorProto.DataType}, if the IR has one. */
  static Optional<ElementType> elementType(int onnxType) {
    return Optional.ofNullable(switch (onnxType) {
      case DataType.FLOAT_VALUE -> ElementType.F32;
      case DataType.FLOAT16_VALUE -> ElementType.F16;
      case DataType.BFLOAT16_VALUE -> ElementType.BF16;
      case DataType.FLOAT8E4M3FN_VALUE -> ElementType.F8E4M3;
      case DataType.FLOAT8E5M2_VALUE -> ElementType.F8E5M2;
      case DataType.INT64_VALUE -> ElementType.I64;
      case DataType.INT32_VALUE -> ElementType.I32;
      case DataType.INT8_VALUE -> ElementType.I8;
      case DataType.UINT8_VALUE -> ElementType.U8;
      case DataType.BOOL_VALUE -> ElementType.BOOL;
      default -> null;
    });
  }

  static int onnxType(ElementType t) {
    return switch (t) {
      case F32 -> DataType.FLOAT_VALUE;
      case F16 -> DataType.FLOAT16_VALUE;
      case BF16 -> DataType.BFLOAT16_VALUE;
      case F8E4M3 -> DataType.FLOAT8E4M3FN_VALUE;
      case F8E5M2 -> DataType.FLOAT8E5M2_VALUE;
      case I64 -> DataType.INT64_VALUE;
      case I32 -> DataType.INT32_VALUE;
      case I8 -> DataType.INT8_VALUE;
      case U8 -> DataType.UINT8_VALUE;
      case BOOL -> DataType.BOOL_VALUE;
    };
  }

  static String typeName(int onnxType) {
    DataType d = DataType.forNumber(onnxType);
    return d == null ? "data type " + onnxType : d.name().toLowerCase();
  }

  /** The IR element type, or an error naming {@code what}. */
  static ElementType requireElementType(int onnxType, String what) {
    return elementType(onnxType).orElseThrow(() -> new OnnxImportException(
        what + " has element type " + typeName(onnxType) + ", which sohuc does not support"));
  }

  /** The dims, checked to be non-negative with an element count that fits a long. */
  static long[] dims(TensorProto t, String what) {
    long[] dims = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    elementCount(dims, what);
    return dims;
  }

  static long elementCount(long[] dims, String what) {
    long n = 1;
    for (long d : dims) {
      if (d < 0) {
        throw new OnnxImportException(what + " has a negative dim in " + Arrays.toString(dims));
      }
    }
    for (long d : dims) {
      try {
        n = Math.multiplyExact(n, d);
      } catch (ArithmeticException e) {
        throw new OnnxImportException(what + " has dims " + Arrays.toString(dims)
            + " whose element count overflows 64 bits");
      }
    }
    return n;
  }

  /** Whether the tensor's data lives in another file. */
  static boolean isExternal(TensorProto t) {
    return t.getDataLocation() == TensorProto.DataLocation.EXTERNAL;
  }

  /** The first field that holds data in the message ({@code raw_data}, {@code float_data}, ...), or null. */
  static String dataField(TensorProto t) {
    return t.hasRawData() ? "raw_data"
        : t.getFloatDataCount() > 0 ? "float_data"
        : t.getInt32DataCount() > 0 ? "int32_data"
        : t.getInt64DataCount() > 0 ? "int64_data"
        : t.getDoubleDataCount() > 0 ? "double_data"
        : t.getUint64DataCount() > 0 ? "uint64_data"
        : t.getStringDataCount() > 0 ? "string_data"
        : null;
  }

  /**
   * The tensor's little-endian bytes from {@code raw_data} or its typed field (not external
   * data), after checking that the message holds exactly the elements the dims claim.
   */
  static ByteBuffer bytes(TensorProto t, ElementType type, long[] dims, String what) {
    long count = elementCount(dims, what);
    long neededBytes;
    try {
      neededBytes = Math.multiplyExact(count, (long) type.sizeBytes());
    } catch (ArithmeticException e) {
      throw new OnnxImportException(what + " has dims " + Arrays.toString(dims) + " whose " + type
          + " bytes overflow 64 bits");
    }
    if (t.hasRawData()) {
      ByteString raw = t.getRawData();
      if (raw.size() != neededBytes) {
        throw new OnnxImportException(what + ": raw_data holds " + raw.size() + " bytes but "
            + type + " " + Arrays.toString(dims) + " needs " + neededBytes);
      }
      return raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }
    int held = typedCount(t, type);
    if (held != count) {
      throw new OnnxImportException(what + ": " + typedFieldName(type) + " holds " + held
          + " values but " + type + " " + Arrays.toString(dims) + " needs " + count);
    }
    if (neededBytes > Tensor.MAX_ELEMENTS) {
      throw new OnnxImportException(what + " is too large for typed fields (" + neededBytes + " bytes)");
    }
    ByteBuffer b = ByteBuffer.allocate((int) neededBytes).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < held; i++) {
      switch (type) {
        case F32 -> b.putFloat(t.getFloatData(i));
        case I64 -> b.putLong(t.getInt64Data(i));
        case I32 -> b.putInt(t.getInt32Data(i));
        case F16, BF16 -> b.putShort((short) t.getInt32Data(i));
        case I8, U8, F8E4M3, F8E5M2 -> b.put((byte) t.getInt32Data(i));
        case BOOL -> b.put((byte) (t.getInt32Data(i) != 0 ? 1 : 0));
      }
    }
    return b.flip();
  }

  private static int typedCount(TensorProto t, ElementType type) {
    return switch (type) {
      case F32 -> t.getFloatDataCount();
      case I64 -> t.getInt64DataCount();
      default -> t.getInt32DataCount();
    };
  }

  private static String typedFieldName(ElementType type) {
    return switch (type) {
      case F32 -> "float_data";
      case I64 -> "int64_data";
      default -> "int32_data";
    };
  }

  /** The whole tensor, decoded (not for external data). */
  static Tensor toTensor(TensorProto t, String what) {
    ElementType type = requireElementType(t.getDataType(), what);
    long[] dims = dims(t, what);
    if (isExternal(t)) {
      throw new OnnxImportException(what + " keeps its data in an external file, which is not allowed here");
    }
    ByteBuffer bytes = bytes(t, type, dims, what);
    return Tensor.fromBytes(type, dims, bytes);
  }

  /** A {@code TensorProto} holding {@code t} as little-endian {@code raw_data}. */
  static TensorProto toProto(Tensor t, String name) {
    return toProto(name, t.elementType(), t.shape(), ByteString.copyFrom(t.toBytes()));
  }

  /** A {@code TensorProto} of {@code raw} as its {@code raw_data}. */
  static TensorProto toProto(String name, ElementType type, long[] shape, ByteString raw) {
    TensorProto.Builder b = TensorProto.newBuilder().setName(name).setDataType(onnxType(type));
    for (long d : shape) {
      b.addDims(d);
    }
    return b.setRawData(raw).build();
  }
}
