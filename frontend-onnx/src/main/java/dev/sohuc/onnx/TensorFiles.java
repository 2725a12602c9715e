package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.TensorProto;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.UnsafeByteOperations;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Tensors as ONNX {@code TensorProto} files, the layout of ONNX's backend tests
 * ({@code test_data_set_0/input_0.pb}, {@code output_0.pb}), so any ONNX tool can read what
 * sohuc writes and the reverse. Reading accepts raw_data and typed fields; writing uses
 * little-endian raw_data. Sizes are checked against the file before anything is allocated.
 */
public final class TensorFiles {
  private TensorFiles() {}

  /** A tensor with the name stored in its file. */
  public record Named(String name, Tensor tensor) {}

  /** Reads one tensor file. */
  public static Tensor read(Path file) {
    return readNamed(file).tensor();
  }

  /** The tensor's name as stored in the file (may be empty). */
  public static String nameOf(Path file) {
    return readNamed(file).name();
  }

  public static Named readNamed(Path file) {
    TensorProto t = parse(file);
    String what = file + (t.getName().isEmpty() ? "" : " (tensor '" + t.getName() + "')");
    if (t.getDataType() == 0) {
      throw new OnnxImportException(file + ": not an ONNX TensorProto (no data_type)");
    }
    return new Named(t.getName(), OnnxTensors.toTensor(t, what));
  }

  private static TensorProto parse(Path file) {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size > Integer.MAX_VALUE) {
        throw new OnnxImportException(file + " is " + size + " bytes; a TensorProto file cannot exceed 2 GB");
      }
      MappedByteBuffer m = ch.map(FileChannel.MapMode.READ_ONLY, 0, size);
      CodedInputStream in = CodedInputStream.newInstance(m.order(ByteOrder.LITTLE_ENDIAN));
      in.enableAliasing(true);
      in.setRecursionLimit(ModelFile.RECURSION_LIMIT);
      return TensorProto.parseFrom(in);
    } catch (NoSuchFileException e) {
      throw new OnnxImportException(file + ": no such file");
    } catch (InvalidProtocolBufferException e) {
      throw ModelFile.parseError(file, e);
    } catch (IOException e) {
      throw new OnnxImportException(file + ": cannot read: " + e.getMessage(), e);
    }
  }

  /** Writes a tensor as a TensorProto with little-endian raw_data. */
  public static void write(Path file, Tensor t, String name) {
    writeRaw(file, name == null ? "" : name, t.elementType(), t.shape(), t.toBytes());
  }

  /**
   * Writes a tensor given as its little-endian bytes ({@code raw}, as ONNX's raw_data holds them)
   * without copying them: an emulator's output of a gigabyte or more is written from the one
   * array that holds it.
   */
  public static void writeRaw(Path file, String name, ElementType type, long[] shape, byte[] raw) {
    try (OutputStream out = Files.newOutputStream(file)) {
      OnnxTensors.toProto(name, type, shape, UnsafeByteOperations.unsafeWrap(raw)).writeTo(out);
    } catch (IOException e) {
      throw new OnnxImportException(file + ": cannot write: " + e.getMessage(), e);
    }
  }

  /** Reads {@code input_0.pb}, {@code input_1.pb}, ... from a folder, stopping at the first gap. */
  public static List<Tensor> readInputs(Path dir) {
    return readSeries(dir, "input");
  }

  /** Reads {@code output_0.pb}, {@code output_1.pb}, ... from a folder. */
  public static List<Tensor> readOutputs(Path dir) {
    return readSeries(dir, "output");
  }

  private static List<Tensor> readSeries(Path dir, String prefix) {
    if (!Files.isDirectory(dir)) {
      throw new OnnxImportException(dir + ": no such folder (expected " + prefix + "_0.pb, " + prefix + "_1.pb, ...)");
    }
    List<Tensor> out = new ArrayList<>();
    for (int i = 0; Files.isRegularFile(dir.resolve(prefix + "_" + i + ".pb")); i++) {
      out.add(read(dir.resolve(prefix + "_" + i + ".pb")));
    }
    if (out.isEmpty()) {
      throw new OnnxImportException(dir + ": no " + prefix + "_0.pb in the folder");
    }
    return out;
  }
}
