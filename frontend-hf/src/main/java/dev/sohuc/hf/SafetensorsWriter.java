package dev.sohuc.hf;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sohuc.ir.tensor.FloatFormats;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes safetensors files from f32 data (stored as F32, F16 or BF16), in insertion order and
 * byte-for-byte deterministically: for bundled examples, tests and tools.
 */
public final class SafetensorsWriter {
  private static final ObjectMapper JSON = JsonMapper.builder().build();

  private record Entry(String name, Safetensors.Dtype dtype, long[] shape, byte[] bytes) {}

  private final List<Entry> entries = new ArrayList<>();

  /** Adds a tensor; {@code dtype} is F32, F16 or BF16 (rounded to nearest even). */
  public SafetensorsWriter add(String name, Safetensors.Dtype dtype, long[] shape, float[] data) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    if (n != data.length) {
      throw new IllegalArgumentException(name + ": shape needs " + n + " values, got " + data.length);
    }
    ByteBuffer b = ByteBuffer.allocate(data.length * dtype.sizeBytes).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : data) {
      switch (dtype) {
        case F32 -> b.putFloat(v);
        case F16 -> b.putShort(Float.floatToFloat16(v));
        case BF16 -> b.putShort(FloatFormats.floatToBf16Bits(v));
        default -> throw new IllegalArgumentException("dtype " + dtype + " is not written by this writer");
      }
    }
    entries.add(new Entry(name, dtype, shape.clone(), b.array()));
    return this;
  }

  /** The header JSON (padded with spaces to a multiple of 8 bytes, as the reference writer does). */
  public byte[] header() {
    ObjectNode root = JSON.createObjectNode();
    root.putObject("__metadata__").put("format", "pt");
    long offset = 0;
    for (Entry e : entries) {
      ObjectNode t = root.putObject(e.name);
      t.put("dtype", e.dtype.name());
      ArrayNode shape = t.putArray("shape");
      for (long d : e.shape) {
        shape.add(d);
      }
      ArrayNode off = t.putArray("data_offsets");
      off.add(offset);
      offset += e.bytes.length;
      off.add(offset);
    }
    StringBuilder s = new StringBuilder(root.toString());
    while (s.toString().getBytes(StandardCharsets.UTF_8).length % 8 != 0) {
      s.append(' ');
    }
    return s.toString().getBytes(StandardCharsets.UTF_8);
  }

  public void write(Path file) {
    byte[] header = header();
    try (OutputStream out = Files.newOutputStream(file)) {
      ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length);
      out.write(len.array());
      out.write(header);
      for (Entry e : entries) {
        out.write(e.bytes);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
