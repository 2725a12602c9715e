package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.TensorProto;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TensorFilesTest {
  @TempDir
  Path dir;

  @ParameterizedTest
  @EnumSource(ElementType.class)
  void roundTripsByteForByte(ElementType type) throws Exception {
    Random r = new Random(type.ordinal());
    byte[] raw = new byte[2 * 3 * 5 * type.sizeBytes()];
    r.nextBytes(raw);
    Tensor t = Tensor.fromBytes(type, new long[] {2, 3, 5}, java.nio.ByteBuffer.wrap(raw));
    Path f = dir.resolve("t.pb");
    TensorFiles.write(f, t, "tensor_" + type);
    Tensor back = TensorFiles.read(f);
    assertArrayEquals(t.toBytes(), back.toBytes());
    assertEquals(t.type(), back.type());
    assertEquals("tensor_" + type, TensorFiles.nameOf(f));
    TensorFiles.write(dir.resolve("again.pb"), back, "tensor_" + type);
    assertArrayEquals(Files.readAllBytes(f), Files.readAllBytes(dir.resolve("again.pb")));
  }

  @Test
  void readsTypedFields() throws Exception {
    Path f = dir.resolve("typed.pb");
    Files.write(f, TensorProto.newBuilder().setDataType(1).addDims(3).addFloatData(1).addFloatData(2)
        .addFloatData(3).build().toByteArray());
    assertArrayEquals(new float[] {1, 2, 3}, TensorFiles.read(f).floats());
    Files.write(f, TensorProto.newBuilder().setDataType(10).addDims(2).addInt32Data(0x3c00).addInt32Data(0xc000)
        .build().toByteArray());
    assertArrayEquals(new float[] {1, -2}, TensorFiles.read(f).floats());
    Files.write(f, TensorProto.newBuilder().setDataType(7).addDims(2).addInt64Data(-5).addInt64Data(1L << 40)
        .build().toByteArray());
    assertArrayEquals(new long[] {-5, 1L << 40}, TensorFiles.read(f).longs());
  }

  @Test
  void rejectsSizeMismatchBeforeAllocating() throws Exception {
    Path f = dir.resolve("huge.pb");
    Files.write(f, TensorProto.newBuilder().setDataType(1).addDims(1_000_000).addDims(1_000_000).addFloatData(1)
        .build().toByteArray());
    OnnxImportException e = assertThrows(OnnxImportException.class, () -> TensorFiles.read(f));
    assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
  }

  @Test
  void rejectsDimsWhoseBytesOverflow() throws Exception {
    // 2^62 elements count in 64 bits, their 8-byte elements do not
    Path f = dir.resolve("overflow.pb");
    Files.write(f, TensorProto.newBuilder().setDataType(7).addDims(1L << 31).addDims(1L << 31)
        .setRawData(com.google.protobuf.ByteString.EMPTY).build().toByteArray());
    OnnxImportException e = assertThrows(OnnxImportException.class, () -> TensorFiles.read(f));
    assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
    assertTrue(e.getMessage().contains("bytes overflow 64 bits"), e.getMessage());
  }

  @Test
  void rawBytesWriteATensorProtoThatReadsBackByteForByte() throws Exception {
    // an f32 and a bf16 tensor, the bytes as an emulator's output holds them: the file is a
    // TensorProto of that name, type and shape whose raw_data are those bytes, and reads back
    Tensor f32 = Tensor.ofFloats(ElementType.F32, new long[] {2, 3}, new float[] {1, -2.5f, 0, 3e-8f, 7, -0f});
    Tensor bf16 = Tensor.ofFloats(ElementType.BF16, new long[] {3}, new float[] {1, -2.5f, 65280});
    for (Tensor t : List.of(f32, bf16)) {
      Path file = dir.resolve("raw.pb");
      TensorFiles.writeRaw(file, "y", t.elementType(), t.shape(), t.toBytes());
      TensorProto p = TensorProto.parseFrom(Files.readAllBytes(file));
      assertEquals("y", p.getName());
      assertEquals(t.elementType() == ElementType.F32 ? 1 : 16, p.getDataType());
      assertEquals(java.util.Arrays.stream(t.shape()).boxed().toList(), p.getDimsList());
      assertArrayEquals(t.toBytes(), p.getRawData().toByteArray(), t.elementType().toString());
      TensorFiles.Named back = TensorFiles.readNamed(file);
      assertEquals("y", back.name());
      assertArrayEquals(t.toBytes(), back.tensor().toBytes(), t.elementType().toString());
    }
  }

  @Test
  void readsInputsInOrder() throws Exception {
    for (int i = 0; i < 3; i++) {
      TensorFiles.write(dir.resolve("input_" + i + ".pb"), Tensor.scalar(ElementType.I64, i), "in" + i);
    }
    TensorFiles.write(dir.resolve("input_4.pb"), Tensor.scalar(ElementType.I64, 4), "gap");
    List<Tensor> in = TensorFiles.readInputs(dir);
    assertEquals(3, in.size());
    assertEquals(2, in.get(2).getLong(0));
  }

  @Test
  void emptyOrMissingFolderIsAnError() {
    OnnxImportException e = assertThrows(OnnxImportException.class, () -> TensorFiles.readInputs(dir));
    assertTrue(e.getMessage().contains("no input_0.pb"), e.getMessage());
    e = assertThrows(OnnxImportException.class, () -> TensorFiles.readInputs(dir.resolve("missing")));
    assertTrue(e.getMessage().contains("no such folder"), e.getMessage());
  }
}
