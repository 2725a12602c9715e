package dev.sohuc.ir;

import dev.sohuc.ir.type.TensorType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

/**
 * A named parameter tensor of a module. Its bytes stay where they are (a slice of the model
 * file, memory-mapped on demand) so that importing a 140 GB model costs no heap; IR text names
 * the weight and where its bytes live, never the numbers themselves.
 */
public record Weight(String name, TensorType type, Data data) {

  /** Where a weight's little-endian bytes are. */
  public sealed interface Data {
    /** A byte range of a file on disk (ONNX raw_data, external data, safetensors). */
    record FileSlice(Path file, long offset, long length) implements Data {}

    /** Bytes held in memory: small constants and folded results. */
    record Inline(byte[] bytes) implements Data {
      @Override
      public boolean equals(Object o) {
        return o instanceof Inline i && Arrays.equals(bytes, i.bytes);
      }

      @Override
      public int hashCode() {
        return Arrays.hashCode(bytes);
      }

      @Override
      public String toString() {
        return "Inline[" + bytes.length + " bytes]";
      }
    }

    /** A weight known only by its type: shape-only compiles for timing and memory planning. */
    record ShapeOnly() implements Data {}
  }

  public Weight {
    if (!type.isStatic()) {
      throw new IrException("weight @" + name + " has a symbolic type " + type);
    }
  }

  /** Frontends may build a weight too large for any target; its size is refused where asked. */
  public long sizeBytes() {
    return type.staticSizeBytes().orElseThrow(() -> new IrException(
        "weight @" + name + " of type " + type + " has more than 2^63 - 1 bytes"));
  }

  /**
   * The weight's bytes as a read-only little-endian buffer. File slices are memory-mapped;
   * a slice over 2 GB cannot be one buffer and is rejected with the weight's name.
   */
  public ByteBuffer bytes() {
    return switch (data) {
      case Data.Inline inline -> ByteBuffer.wrap(inline.bytes()).asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
      case Data.FileSlice slice -> map(slice);
      case Data.ShapeOnly s -> throw new IrException(
          "weight @" + name + " has no data: the model was loaded shape-only");
    };
  }

  private ByteBuffer map(Data.FileSlice slice) {
    if (slice.length() > Integer.MAX_VALUE) {
      throw new IrException("weight @" + name + " is " + slice.length()
          + " bytes, more than one mapped buffer holds");
    }
    try (FileChannel ch = FileChannel.open(slice.file(), StandardOpenOption.READ)) {
      // offset + length may pass 2^63: compare without adding them
      if (slice.offset() < 0 || slice.length() > ch.size() - slice.offset()) {
        throw new IrException("weight @" + name + ": " + slice.length() + " bytes at offset "
            + slice.offset() + " lie outside " + slice.file() + " (" + ch.size() + " bytes)");
      }
      return ch.map(FileChannel.MapMode.READ_ONLY, slice.offset(), slice.length())
          .order(ByteOrder.LITTLE_ENDIAN);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
