package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.StringStringEntryProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.WireFormat;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An {@code .onnx} file, memory-mapped and parsed without copying its weights.
 *
 * <p>The file is mapped read-only and parsed by a {@link CodedInputStream} with aliasing on, so
 * {@code raw_data} byte strings are views of the mapping, not heap copies. Protobuf does not
 * say where a field lies in the file, so a second, shallow pass over the wire format
 * ({@link #scanRawData}) records the file offset of each initializer's {@code raw_data}; a
 * weight then becomes a {@link Weight.Data.FileSlice} of the model file that later stages map
 * on demand. External data becomes a slice of its own file, checked to stay in the model's
 * folder. Only typed fields ({@code float_data} etc., used for small tensors) are copied.
 */
final class ModelFile {
  /** Protobuf's own limit: one message cannot exceed 2 GB, so neither can an .onnx file. */
  private static final long MAX_PROTO_BYTES = Integer.MAX_VALUE;
  static final int RECURSION_LIMIT = 100;

  private static final int MODEL_GRAPH = 7;
  private static final int GRAPH_INITIALIZER = 5;
  private static final int TENSOR_RAW_DATA = 9;

  final Path path;
  final ModelProto model;
  /** Per initializer (in graph order): {offset, length} of raw_data in the file, or null. */
  private final List<long[]> rawData;

  private ModelFile(Path path, ModelProto model, List<long[]> rawData) {
    this.path = path;
    this.model = model;
    this.rawData = rawData;
  }

  static ModelFile open(Path path) {
    ByteBuffer buffer = map(path);
    ModelProto model;
    try {
      CodedInputStream in = CodedInputStream.newInstance(buffer.duplicate());
      in.enableAliasing(true);
      in.setRecursionLimit(RECURSION_LIMIT);
      in.setSizeLimit(Integer.MAX_VALUE);
      model = ModelProto.parseFrom(in);
    } catch (InvalidProtocolBufferException e) {
      if (!startsLikeModel(buffer)) {
        throw new OnnxImportException(path + ": not an ONNX protobuf file (it does not start with a ModelProto field)", e);
      }
      throw parseError(path, e);
    } catch (IOException e) {
      throw new OnnxImportException(path + ": cannot read: " + e.getMessage(), e);
    }
    if (!model.hasGraph()) {
      throw new OnnxImportException(path + ": not an ONNX model: the protobuf has no graph"
          + (model.getIrVersion() == 0 ? " and no ir_version" : ""));
    }
    List<long[]> raw;
    try {
      raw = scanRawData(buffer.duplicate());
    } catch (IOException e) {
      throw parseError(path, e);
    }
    if (raw.size() != model.getGraph().getInitializerCount()) {
      throw new OnnxImportException(path + ": found " + raw.size() + " initializers in the wire format but "
          + model.getGraph().getInitializerCount() + " after parsing");
    }
    return new ModelFile(path, model, raw);
  }

  /** Whether the first byte is the tag of a ModelProto field that exporters write first. */
  private static boolean startsLikeModel(ByteBuffer b) {
    int first = b.get(0) & 0xff;
    // ir_version (1, varint), producer_name (2), producer_version (3), domain (4),
    // model_version (5, varint), doc_string (6), graph (7), opset_import (8)
    return first == 0x08 || first == 0x12 || first == 0x1a || first == 0x22 || first == 0x28 || first == 0x32
        || first == 0x3a || first == 0x42;
  }

  private static ByteBuffer map(Path path) {
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size > MAX_PROTO_BYTES) {
        throw new OnnxImportException(path + " is " + size + " bytes; an ONNX protobuf cannot exceed 2 GB"
            + " (larger models keep their weights in external data files)");
      }
      if (size == 0) {
        throw new OnnxImportException(path + ": empty file, not an ONNX model");
      }
      MappedByteBuffer m = ch.map(FileChannel.MapMode.READ_ONLY, 0, size);
      return m.order(ByteOrder.LITTLE_ENDIAN);
    } catch (NoSuchFileException e) {
      throw new OnnxImportException(path + ": no such file");
    } catch (IOException e) {
      throw new OnnxImportException(path + ": cannot read: " + e.getMessage(), e);
    }
  }

  static OnnxImportException parseError(Path path, IOException e) {
    String m = String.valueOf(e.getMessage());
    if (m.contains("nesting")) {
      return new OnnxImportException(path + ": protobuf messages are nested more than "
          + RECURSION_LIMIT + " levels deep; refusing a corrupt or hostile file", e);
    }
    if (m.contains("ended unexpectedly") || m.contains("truncated") || m.contains("end-group")) {
      return new OnnxImportException(path + ": truncated: the protobuf ends in the middle of a field", e);
    }
    return new OnnxImportException(path + ": not an ONNX protobuf file (" + m.replace('\n', ' ') + ")", e);
  }

  /**
   * Walks ModelProto.graph.initializer[*].raw_data in the wire format and returns, per
   * initializer in order, the file offset and length of its raw_data (null when absent).
   * Repeated graph fields merge in protobuf, so initializers of all of them are listed in order.
   */
  private static List<long[]> scanRawData(ByteBuffer buffer) throws IOException {
    CodedInputStream in = CodedInputStream.newInstance(buffer);
    in.setSizeLimit(Integer.MAX_VALUE);
    List<long[]> out = new ArrayList<>();
    int tag;
    while ((tag = in.readTag()) != 0) {
      if (tag == lengthDelimitedTag(MODEL_GRAPH)) {
        int limit = in.pushLimit(in.readRawVarint32());
        int gtag;
        while ((gtag = in.readTag()) != 0) {
          if (gtag == lengthDelimitedTag(GRAPH_INITIALIZER)) {
            int tlimit = in.pushLimit(in.readRawVarint32());
            long[] raw = null;
            int ttag;
            while ((ttag = in.readTag()) != 0) {
              if (ttag == lengthDelimitedTag(TENSOR_RAW_DATA)) {
                int len = in.readRawVarint32();
                raw = new long[] {in.getTotalBytesRead(), len};
                in.skipRawBytes(len);
              } else {
                in.skipField(ttag);
              }
            }
            in.popLimit(tlimit);
            out.add(raw);
          } else {
            in.skipField(gtag);
          }
        }
        in.popLimit(limit);
      } else {
        in.skipField(tag);
      }
    }
    return out;
  }

  private static int lengthDelimitedTag(int field) {
    return (field << 3) | WireFormat.WIRETYPE_LENGTH_DELIMITED;
  }

  String opName() {
    return path.toString();
  }

  /**
   * Where initializer {@code index}'s bytes are, validated against its type and dims: a slice
   * of this file (raw_data), of an external file, or inline bytes copied from typed fields.
   */
  Weight.Data weightData(int index, TensorProto t, ElementType type, long[] dims) {
    String what = path + ": initializer '" + t.getName() + "'";
    long count = OnnxTensors.elementCount(dims, what);
    long needed;
    try {
      needed = Math.multiplyExact(count, (long) type.sizeBytes());
    } catch (ArithmeticException e) {
      throw new OnnxImportException(what + " claims more bytes than 64 bits count");
    }
    if (OnnxTensors.isExternal(t)) {
      return externalData(t, needed, what);
    }
    long[] raw = rawData.get(index);
    if (raw != null && t.hasRawData()) {
      if (raw[1] != needed) {
        throw new OnnxImportException(what + ": raw_data holds " + raw[1] + " bytes but " + type + " "
            + Arrays.toString(dims) + " needs " + needed);
      }
      return new Weight.Data.FileSlice(path, raw[0], raw[1]);
    }
    ByteBuffer b = OnnxTensors.bytes(t, type, dims, what);
    byte[] bytes = new byte[b.remaining()];
    b.get(bytes);
    return new Weight.Data.Inline(bytes);
  }

  /** Decodes a weight's data into a tensor, for constant folding of small initializers. */
  static Tensor decode(Weight.Data data, ElementType type, long[] dims, String what) {
    Tensor.checkedSize(dims);
    ByteBuffer bytes = switch (data) {
      case Weight.Data.Inline inline -> ByteBuffer.wrap(inline.bytes());
      case Weight.Data.FileSlice slice -> new dev.sohuc.ir.Weight(what, dev.sohuc.ir.type.TensorType.of(type, dims),
          slice).bytes();
      case Weight.Data.ShapeOnly s -> throw new OnnxImportException(what + " has no data");
    };
    return Tensor.fromBytes(type, dims, bytes);
  }

  private Weight.Data externalData(TensorProto t, long needed, String what) {
    String inline = OnnxTensors.dataField(t);
    if (inline != null) {
      // onnx's checker refuses it too: the file's bytes would silently win over the inline ones
      throw new OnnxImportException(what + " keeps its data in an external file but also sets " + inline);
    }
    String location = null;
    long offset = 0;
    Long length = null; // absent: the bytes the shape needs
    for (StringStringEntryProto e : t.getExternalDataList()) {
      try {
        switch (e.getKey()) {
          case "location" -> location = e.getValue();
          case "offset" -> offset = Long.parseLong(e.getValue());
          case "length" -> length = Long.parseLong(e.getValue());
          default -> { }
        }
      } catch (NumberFormatException nfe) {
        throw new OnnxImportException(what + ": external data " + e.getKey() + " '" + e.getValue()
            + "' is not a number");
      }
    }
    if (location == null || location.isEmpty()) {
      throw new OnnxImportException(what + ": external data without a location");
    }
    Path file = resolveExternal(location, what);
    if (offset < 0) {
      throw new OnnxImportException(what + ": external data offset " + offset + " is negative");
    }
    if (length != null && length < 0) {
      throw new OnnxImportException(what + ": external data length " + length + " is negative");
    }
    if (length != null && length != needed) {
      throw new OnnxImportException(what + ": external data length " + length + " but the shape needs "
          + needed + " bytes");
    }
    long size;
    try {
      size = Files.size(file);
    } catch (IOException e) {
      throw new OnnxImportException(what + ": cannot read external data file " + location + ": " + e.getMessage());
    }
    if (offset > size || needed > size - offset) {
      throw new OnnxImportException(what + ": external data " + location + " has " + size
          + " bytes, too few for " + needed + " bytes at offset " + offset);
    }
    return new Weight.Data.FileSlice(file, offset, needed);
  }

  /** Resolves an external-data location inside the model's folder, or rejects it. */
  private Path resolveExternal(String location, String what) {
    String where = what + ": external data location '" + location + "'";
    Path rel;
    try {
      rel = Path.of(location);
    } catch (InvalidPathException e) {
      throw new OnnxImportException(where + " is not a valid path");
    }
    if (rel.isAbsolute() || location.startsWith("/") || location.startsWith("\\")
        || location.matches("^[A-Za-z]:.*")) {
      throw new OnnxImportException(where + " is an absolute path; it must be relative to the model's folder");
    }
    for (Path part : rel) {
      if (part.toString().equals("..") || location.contains("..\\")) {
        throw new OnnxImportException(where + " escapes the model's folder");
      }
    }
    Path dir = path.toAbsolutePath().getParent();
    Path file = dir.resolve(rel).normalize();
    try {
      Path real = file.toRealPath();
      if (!real.startsWith(dir.toRealPath())) {
        throw new OnnxImportException(where + " resolves (through a symbolic link) to " + real
            + ", outside the model's folder");
      }
      if (!Files.isRegularFile(real)) {
        throw new OnnxImportException(where + " is not a regular file");
      }
      return real;
    } catch (NoSuchFileException e) {
      throw new OnnxImportException(where + ": no such file in " + dir);
    } catch (IOException e) {
      throw new OnnxImportException(where + ": " + e.getMessage());
    }
  }
}
