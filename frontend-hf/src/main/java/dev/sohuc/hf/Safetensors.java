package dev.sohuc.hf;

import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.type.ElementType;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The tensors of a safetensors checkpoint, one file or a sharded set, located but not read:
 * each tensor is a byte range of its file that {@link Weight} maps on demand.
 *
 * <p>A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
 * ({@code {"name": {"dtype": "BF16", "shape": [4096, 4096], "data_offsets": [begin, end]},
 * "__metadata__": {"format": "pt"}}}), then the data; offsets are relative to the data.
 * Every rule of the format is checked on the header before anything else is read or
 * allocated, and an error names the file and the tensor.
 */
public final class Safetensors {
  /** Headers larger than this are rejected, as the reference implementation does. */
  public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;
  /**
   * Headers of more JSON tokens than this are rejected before their tree is built: a tensor takes
   * about 14, so this is some 300,000 tensors a file, while 100 MB of tokens (a shape of 50 million
   * dims) would build a tree of gigabytes.
   */
  static final long MAX_HEADER_TOKENS = 1L << 22;

  public static final String SINGLE_FILE = "model.safetensors";
  public static final String INDEX_FILE = "model.safetensors.index.json";

  private static final ObjectMapper JSON = JsonMapper.builder()
      .enable(com.fasterxml.jackson.core.StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

  static {
    JSON.getFactory().setStreamReadConstraints(StreamReadConstraints.builder()
        .maxStringLength((int) MAX_HEADER_BYTES).maxNestingDepth(8).maxTokenCount(MAX_HEADER_TOKENS).build());
  }

  /** Safetensors dtype names with their sizes, and the IR type where there is one. */
  public enum Dtype {
    F64(8, null), F32(4, ElementType.F32), F16(2, ElementType.F16), BF16(2, ElementType.BF16),
    F8_E4M3(1, ElementType.F8E4M3), F8_E5M2(1, ElementType.F8E5M2),
    I64(8, ElementType.I64), I32(4, ElementType.I32), I16(2, null), I8(1, ElementType.I8),
    U64(8, null), U32(4, null), U16(2, null), U8(1, ElementType.U8), BOOL(1, ElementType.BOOL);

    public final int sizeBytes;
    private final ElementType irType;

    Dtype(int sizeBytes, ElementType irType) {
      this.sizeBytes = sizeBytes;
      this.irType = irType;
    }

    public Optional<ElementType> irType() {
      return Optional.ofNullable(irType);
    }

    static Optional<Dtype> of(String name) {
      for (Dtype d : values()) {
        if (d.name().equals(name)) {
          return Optional.of(d);
        }
      }
      return Optional.empty();
    }
  }

  /**
   * One tensor: where its bytes are ({@code offset} counts from the start of {@code file}) and
   * what they hold.
   */
  public record TensorInfo(String name, Dtype dtype, List<Long> shape, Path file, long offset, long length) {
    public TensorInfo {
      shape = List.copyOf(shape);
    }

    public Weight.Data.FileSlice slice() {
      return new Weight.Data.FileSlice(file, offset, length);
    }
  }

  private final Map<String, TensorInfo> tensors;
  private final Map<String, String> metadata;

  private Safetensors(Map<String, TensorInfo> tensors, Map<String, String> metadata) {
    this.tensors = Collections.unmodifiableMap(tensors);
    this.metadata = Collections.unmodifiableMap(metadata);
  }

  /** Tensors by name, in file order. */
  public Map<String, TensorInfo> tensors() {
    return tensors;
  }

  /** The {@code __metadata__} strings (of the first shard, for a sharded checkpoint). */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** The checkpoint beside a config: {@code model.safetensors} or the sharded index, if either exists. */
  public static Optional<Safetensors> find(Path dir) {
    Path index = dir.resolve(INDEX_FILE);
    if (Files.isRegularFile(index)) {
      return Optional.of(openIndex(index));
    }
    Path single = dir.resolve(SINGLE_FILE);
    if (Files.isRegularFile(single)) {
      return Optional.of(open(single));
    }
    return Optional.empty();
  }

  /**
   * True when {@link #find} would find a checkpoint in {@code dir}. A checkpoint's name held by
   * something that is not a file (a folder) is an error, not a shape-only import.
   */
  public static boolean existsIn(Path dir) {
    for (String name : List.of(INDEX_FILE, SINGLE_FILE)) {
      Path p = dir.resolve(name);
      if (Files.exists(p) && !Files.isRegularFile(p)) {
        throw new HfImportException(p + ": not a file (a checkpoint's " + name + " must be one)");
      }
    }
    return Files.isRegularFile(dir.resolve(INDEX_FILE)) || Files.isRegularFile(dir.resolve(SINGLE_FILE));
  }

  /** One safetensors file. */
  public static Safetensors open(Path file) {
    Map<String, String> meta = new LinkedHashMap<>();
    Map<String, TensorInfo> t = readHeader(file, meta);
    return new Safetensors(t, meta);
  }

  /**
   * A sharded checkpoint from its index ({@code {"metadata": {...}, "weight_map": {tensor:
   * shard file}}}). Every shard must exist and hold the tensors the index puts in it.
   */
  public static Safetensors openIndex(Path indexFile) {
    JsonNode root;
    try {
      root = JSON.readTree(indexFile.toFile());
    } catch (IOException e) {
      throw new HfImportException(indexFile + ": not a valid safetensors index: " + oneLine(e));
    }
    JsonNode map = root == null ? null : root.get("weight_map");
    if (map == null || !map.isObject()) {
      throw new HfImportException(indexFile + ": no \"weight_map\" object");
    }
    Path dir = indexFile.toAbsolutePath().getParent();
    Map<String, List<String>> byShard = new LinkedHashMap<>();
    for (var e : map.properties()) {
      if (!e.getValue().isTextual()) {
        throw new HfImportException(indexFile + ": weight_map entry '" + e.getKey() + "' is not a file name");
      }
      byShard.computeIfAbsent(e.getValue().asText(), k -> new ArrayList<>()).add(e.getKey());
    }
    Map<String, TensorInfo> all = new LinkedHashMap<>();
    Map<String, String> meta = new LinkedHashMap<>();
    for (var e : byShard.entrySet()) {
      Path shard;
      try {
        shard = dir.resolve(e.getKey()).normalize();
      } catch (InvalidPathException notAPath) {  // a NUL in the name, on Linux
        throw new HfImportException(indexFile + ": shard '" + e.getKey() + "' is not a file name: "
            + notAPath.getReason());
      }
      if (!shard.startsWith(dir)) {
        throw new HfImportException(indexFile + ": shard '" + e.getKey() + "' lies outside " + dir);
      }
      if (!Files.isRegularFile(shard)) {
        throw new HfImportException(indexFile + ": shard " + e.getKey() + " is missing (it holds "
            + e.getValue().size() + " tensors, e.g. '" + e.getValue().get(0) + "')");
      }
      Map<String, TensorInfo> inShard = readHeader(shard, meta.isEmpty() ? meta : new LinkedHashMap<>());
      for (String name : e.getValue()) {
        TensorInfo info = inShard.get(name);
        if (info == null) {
          throw new HfImportException(indexFile + ": tensor '" + name + "' is mapped to " + e.getKey()
              + ", which does not hold it");
        }
        all.put(name, info);
      }
    }
    return new Safetensors(all, meta);
  }

  /** Maps one tensor's bytes, read-only and little-endian. */
  public ByteBuffer map(String name) {
    TensorInfo info = tensors.get(name);
    if (info == null) {
      throw new HfImportException("no tensor '" + name + "' in the checkpoint");
    }
    try (FileChannel ch = FileChannel.open(info.file(), StandardOpenOption.READ)) {
      return ch.map(FileChannel.MapMode.READ_ONLY, info.offset(), info.length()).order(ByteOrder.LITTLE_ENDIAN);
    } catch (IOException e) {
      throw new HfImportException(info.file() + ": cannot map tensor '" + name + "': " + oneLine(e), e);
    }
  }

  private static Map<String, TensorInfo> readHeader(Path file, Map<String, String> metadataOut) {
    long fileSize;
    byte[] header;
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      fileSize = ch.size();
      if (fileSize < 8) {
        throw bad(file, "is truncated: " + fileSize + " bytes, less than the 8-byte header length");
      }
      ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
      readFully(ch, lenBuf, 0);
      long headerLen = lenBuf.getLong(0);
      if (headerLen < 0) {  // the 64-bit length is unsigned: past 2^63 it reads negative here
        throw bad(file, "header length " + Long.toUnsignedString(headerLen) + " exceeds the limit of "
            + MAX_HEADER_BYTES + " bytes");
      }
      if (headerLen < 2) {
        throw bad(file, "header length " + Long.toUnsignedString(headerLen) + " is too small for a JSON object");
      }
      if (headerLen > MAX_HEADER_BYTES) {
        throw bad(file, "header length " + Long.toUnsignedString(headerLen) + " exceeds the limit of "
            + MAX_HEADER_BYTES + " bytes");
      }
      if (headerLen > fileSize - 8) {
        throw bad(file, "header length " + headerLen + " is larger than the file (" + fileSize
            + " bytes): the file is truncated or not safetensors");
      }
      ByteBuffer h = ByteBuffer.allocate((int) headerLen);
      readFully(ch, h, 8);
      header = h.array();
    } catch (IOException e) {
      throw new HfImportException(file + ": cannot read: " + oneLine(e), e);
    }
    long dataStart = 8 + header.length;
    return parseHeader(file, header, fileSize - dataStart, dataStart, metadataOut);
  }

  private static void readFully(FileChannel ch, ByteBuffer buf, long position) throws IOException {
    while (buf.hasRemaining()) {
      int n = ch.read(buf, position + buf.position());
      if (n < 0) {
        throw new IOException("unexpected end of file");
      }
    }
  }

  /** Checks the header JSON and the data layout it describes; {@code dataBytes} is what follows it. */
  static Map<String, TensorInfo> parseHeader(Path file, byte[] header, long dataBytes, long dataStart,
                                             Map<String, String> metadataOut) {
    JsonNode root;
    try {
      root = JSON.readTree(new String(header, StandardCharsets.UTF_8));
    } catch (JsonParseException e) {
      throw bad(file, "header is not valid JSON: " + oneLine(e));
    } catch (IOException e) {
      throw bad(file, "header cannot be read: " + oneLine(e));
    }
    if (root == null || !root.isObject()) {
      throw bad(file, "header is not a JSON object");
    }
    record Span(String name, long begin, long end) {}
    List<Span> spans = new ArrayList<>();
    Map<String, TensorInfo> out = new LinkedHashMap<>();
    for (var e : root.properties()) {
      String name = e.getKey();
      JsonNode v = e.getValue();
      if (name.equals("__metadata__")) {
        if (!v.isObject()) {
          throw bad(file, "__metadata__ is not an object of strings");
        }
        for (var kv : v.properties()) {
          if (!kv.getValue().isTextual()) {
            throw bad(file, "__metadata__ entry '" + kv.getKey() + "' is not a string");
          }
          metadataOut.put(kv.getKey(), kv.getValue().asText());
        }
        continue;
      }
      String where = "tensor '" + name + "'";
      if (!v.isObject()) {
        throw bad(file, where + " is not an object with dtype, shape and data_offsets");
      }
      for (Iterator<String> keys = v.fieldNames(); keys.hasNext(); ) {
        String k = keys.next();
        if (!k.equals("dtype") && !k.equals("shape") && !k.equals("data_offsets")) {
          throw bad(file, where + " has an unknown key '" + k + "'");
        }
      }
      JsonNode dt = v.get("dtype");
      if (dt == null || !dt.isTextual()) {
        throw bad(file, where + " has no dtype string");
      }
      Dtype dtype = Dtype.of(dt.asText()).orElseThrow(() -> bad(file, where + " has an unknown dtype \""
          + dt.asText() + "\" (known: " + java.util.Arrays.toString(Dtype.values()) + ")"));
      long[] shape = longArray(file, where, v.get("shape"), "shape", -1);
      long[] off = longArray(file, where, v.get("data_offsets"), "data_offsets", 2);
      if (off[0] > off[1]) {
        throw bad(file, where + " has data_offsets [" + off[0] + ", " + off[1] + "] that end before they begin");
      }
      if (off[1] > dataBytes) {
        throw bad(file, where + " has data_offsets [" + off[0] + ", " + off[1] + "] outside the "
            + dataBytes + " data bytes of the file");
      }
      long elements = 1;
      try {
        for (long d : shape) {
          elements = Math.multiplyExact(elements, d);
        }
        long bytes = Math.multiplyExact(elements, (long) dtype.sizeBytes);
        if (bytes != off[1] - off[0]) {
          throw bad(file, where + " of dtype " + dtype + " and shape " + java.util.Arrays.toString(shape) + " needs "
              + bytes + " bytes, but data_offsets [" + off[0] + ", " + off[1] + "] hold " + (off[1] - off[0]));
        }
      } catch (ArithmeticException overflow) {
        throw bad(file, where + " has shape " + java.util.Arrays.toString(shape) + " whose size overflows 64 bits");
      }
      spans.add(new Span(name, off[0], off[1]));
      List<Long> shapeList = new ArrayList<>();
      for (long d : shape) {
        shapeList.add(d);
      }
      out.put(name, new TensorInfo(name, dtype, shapeList, file, dataStart + off[0], off[1] - off[0]));
    }
    spans.sort(Comparator.comparingLong(Span::begin).thenComparingLong(Span::end));
    long expected = 0;
    String previous = null;
    for (Span s : spans) {
      if (s.begin() < expected) {
        throw bad(file, "tensor '" + s.name() + "' at bytes [" + s.begin() + ", " + s.end() + ") overlaps tensor '"
            + previous + "', which ends at " + expected);
      }
      if (s.begin() > expected) {
        throw bad(file, "tensor '" + s.name() + "' begins at byte " + s.begin() + ", leaving a gap after "
            + (previous == null ? "the header" : "tensor '" + previous + "'") + " (which ends at " + expected + ")");
      }
      expected = s.end();
      previous = s.name();
    }
    if (expected != dataBytes) {
      throw bad(file, "the tensors end at data byte " + expected + " but the file holds " + dataBytes
          + " data bytes" + (expected < dataBytes ? " (trailing bytes)" : ""));
    }
    return out;
  }

  private static long[] longArray(Path file, String where, JsonNode node, String key, int length) {
    if (node == null || !node.isArray() || (length >= 0 && node.size() != length)) {
      throw bad(file, where + " has no " + key + (length >= 0 ? " array of " + length + " integers" : " array"));
    }
    long[] out = new long[node.size()];
    for (int i = 0; i < out.length; i++) {
      JsonNode n = node.get(i);
      if (!n.isIntegralNumber() || !n.canConvertToLong() || n.asLong() < 0) {
        throw bad(file, where + " has " + key + " entry " + n + " that is not a non-negative 64-bit integer");
      }
      out[i] = n.asLong();
    }
    return out;
  }

  private static HfImportException bad(Path file, String what) {
    return new HfImportException(file + ": " + what);
  }

  static String oneLine(Exception e) {
    String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    int nl = m.indexOf('\n');
    return nl < 0 ? m : m.substring(0, nl);
  }
}
