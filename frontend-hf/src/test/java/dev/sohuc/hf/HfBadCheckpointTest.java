package dev.sohuc.hf;

import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Broken checkpoints and configs, each rejected with a one-line message naming the file and what is wrong. */
class HfBadCheckpointTest {
  @TempDir
  Path tmp;

  /** A safetensors file with a hand-written header and {@code dataBytes} zero bytes after it. */
  private Path raw(String name, String header, long declaredHeaderLength, int dataBytes) throws IOException {
    Path f = tmp.resolve(name);
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(declaredHeaderLength < 0 ? h.length : declaredHeaderLength).put(h);
    Files.write(f, b.array());
    return f;
  }

  private Path raw(String name, String header, int dataBytes) throws IOException {
    return raw(name, header, -1, dataBytes);
  }

  private static String message(Runnable r) {
    HfImportException e = assertThrows(HfImportException.class, r::run);
    assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
    return e.getMessage();
  }

  private static void assertContains(String message, String... parts) {
    for (String p : parts) {
      assertTrue(message.contains(p), "expected '" + p + "' in: " + message);
    }
  }

  @Test
  void truncatedBeforeTheHeaderLength() throws IOException {
    Path f = tmp.resolve("short.safetensors");
    Files.write(f, new byte[] {1, 2, 3});
    assertContains(message(() -> Safetensors.open(f)), "short.safetensors", "truncated", "3 bytes");
  }

  /** A folder where the checkpoint should be was taken for no checkpoint: a shape-only import. */
  @Test
  void aCheckpointNameHeldByAFolder() throws IOException {
    for (String name : List.of("model.safetensors", "model.safetensors.index.json")) {
      Path dir = TinyModel.of("llama", 1).writeTo(tmp.resolve("d" + name.length()),
          Safetensors.Dtype.F32);
      Files.delete(dir.resolve("model.safetensors"));
      Files.createDirectory(dir.resolve(name));
      assertEquals(dir.resolve(name) + ": not a file (a checkpoint's " + name + " must be one)",
          message(() -> HfImporter.importModel(dir, HfOptions.prefill())));
    }
  }

  @Test
  void truncatedData() throws IOException {
    Path dir = TinyModel.of("llama", 1).writeTo(tmp.resolve("m"), Safetensors.Dtype.F32);
    Path f = dir.resolve("model.safetensors");
    try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
      raf.setLength(raf.length() - 100);
    }
    assertContains(message(() -> HfImporter.importModel(dir, HfOptions.prefill())),
        "model.safetensors", "tensor 'lm_head.weight'", "outside");
  }

  @Test
  void headerLengthLargerThanTheFile() throws IOException {
    Path f = raw("big.safetensors", "{}", 1000, 0);
    assertContains(message(() -> Safetensors.open(f)), "big.safetensors", "header length 1000", "larger than the file");
  }

  @Test
  void headerLengthOverTheCap() throws IOException {
    Path f = raw("cap.safetensors", "{}", 1L << 40, 0);
    assertContains(message(() -> Safetensors.open(f)), "cap.safetensors", "exceeds the limit");
  }

  @Test
  void headerLengthPastTwoToThe63() throws IOException {
    // the length is an unsigned 64-bit number: 2^63 must read as too large, not as negative
    Path f = tmp.resolve("sign.safetensors");
    Files.write(f, ByteBuffer.allocate(10).order(ByteOrder.LITTLE_ENDIAN).putLong(Long.MIN_VALUE)
        .put((byte) '{').put((byte) '}').array());
    assertContains(message(() -> Safetensors.open(f)), "sign.safetensors", "header length 9223372036854775808",
        "exceeds the limit");
  }

  /**
   * A header within the byte limit whose tree would take gigabytes (a shape of 50 million dims
   * ran a 1 GB heap out) is refused by its token count while it is read.
   */
  @Test
  void headerOfTooManyTokens() throws IOException {
    String dims = "1,".repeat((int) Safetensors.MAX_HEADER_TOKENS) + "1";
    Path f = raw("tokens.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[" + dims + "],\"data_offsets\":[0,4]}}", 4);
    assertEquals(f + ": header cannot be read: Token count (" + (Safetensors.MAX_HEADER_TOKENS + 1) + ") exceeds the "
        + "maximum allowed (" + Safetensors.MAX_HEADER_TOKENS + ", from `StreamReadConstraints.getMaxTokenCount()`)",
        message(() -> Safetensors.open(f)));
  }

  @Test
  void overlappingOffsets() throws IOException {
    Path f = raw("overlap.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        + "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24);
    assertContains(message(() -> Safetensors.open(f)), "overlap.safetensors", "tensor 'b'", "overlaps tensor 'a'");
  }

  @Test
  void offsetsOutsideTheFile() throws IOException {
    Path f = raw("out.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[250],\"data_offsets\":[0,1000]}}", 16);
    assertContains(message(() -> Safetensors.open(f)), "out.safetensors", "tensor 'a'", "[0, 1000]", "outside the 16 data bytes");
  }

  @Test
  void gapsAndTrailingBytes() throws IOException {
    Path gap = raw("gap.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
    assertContains(message(() -> Safetensors.open(gap)), "tensor 'a'", "gap");
    Path trailing = raw("trail.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8);
    assertContains(message(() -> Safetensors.open(trailing)), "trail.safetensors", "trailing");
  }

  @Test
  void unknownDtype() throws IOException {
    Path f = raw("dtype.safetensors", "{\"a\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    assertContains(message(() -> Safetensors.open(f)), "dtype.safetensors", "tensor 'a'", "unknown dtype \"F7\"");
  }

  private static final String KNOWN_DTYPES = "(known: [F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, "
      + "U32, U16, U8, BOOL])";

  /** A newline in a name from the file is escaped: the message stays one line. */
  @Test
  void controlCharactersInNamesAreEscaped() throws IOException {
    Path f = raw("nl.safetensors", "{\"a\\nb\\u0000\":{\"dtype\":\"F\\r7\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    assertEquals(f + ": tensor 'a\\nb\\u0000' has an unknown dtype \"F\\r7\" " + KNOWN_DTYPES,
        message(() -> Safetensors.open(f)));
  }

  /** A dtype of a million characters is cut from the middle of the message, which keeps its head and tail. */
  @Test
  void overlongMessagesAreCutInTheMiddle() throws IOException {
    String dtype = "x".repeat(1_000_000);
    Path f = raw("long.safetensors", "{\"a\":{\"dtype\":\"" + dtype + "\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    String head = f + ": tensor 'a' has an unknown dtype \"";
    String tail = "\" " + KNOWN_DTYPES;
    int keep = HfImportException.MAX_MESSAGE_CHARS / 2;
    assertEquals(head + "x".repeat(keep - head.length()) + " [... " + (head.length() + dtype.length() + tail.length()
        - 2 * keep) + " characters cut ...] " + "x".repeat(keep - tail.length()) + tail,
        message(() -> Safetensors.open(f)));
  }

  @Test
  void shapeProductOverflowAndByteLengthMismatch() throws IOException {
    Path f = raw("ovf.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
        + "\"data_offsets\":[0,4]}}", 4);
    assertContains(message(() -> Safetensors.open(f)), "tensor 'a'", "overflows");
    Path g = raw("len.safetensors", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4);
    assertContains(message(() -> Safetensors.open(g)), "tensor 'a'", "needs 6 bytes", "hold 4");
  }

  @Test
  void malformedJsonShapes() throws IOException {
    Path j1 = raw("j1.safetensors", "[1,2]", 0);
    assertContains(message(() -> Safetensors.open(j1)), "not a JSON object");
    Path j2 = raw("j2.safetensors", "{\"a\":", 0);
    assertContains(message(() -> Safetensors.open(j2)), "not valid JSON");
    Path j3 = raw("j3.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0);
    assertContains(message(() -> Safetensors.open(j3)), "tensor 'a'", "shape entry -1");
    Path j4 = raw("j4.safetensors", "{\"__metadata__\":{\"k\":1}}", 0);
    assertContains(message(() -> Safetensors.open(j4)), "__metadata__ entry 'k'");
  }

  /** Without the check, a key given twice would silently take its last value. */
  @Test
  void duplicateKeysAreRefusedNamingTheFileAndTheKey() throws IOException {
    Path dir = tmp.resolve("dup");
    Files.createDirectories(dir);
    Path config = dir.resolve("config.json");
    Files.writeString(config, "{\"model_type\": \"llama\", \"hidden_size\": 32, \"hidden_size\": 64}");
    assertEquals(config + ": not valid JSON: Duplicate field 'hidden_size'",
        message(() -> HfImporter.importModel(dir, HfOptions.prefill())));
    Path header = raw("dup.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
    assertEquals(header + ": header is not valid JSON: Duplicate field 'a'",
        message(() -> Safetensors.open(header)));
    Path index = dir.resolve(Safetensors.INDEX_FILE);
    Files.writeString(index, "{\"weight_map\": {\"w\": \"model-1.safetensors\", "
        + "\"w\": \"model-2.safetensors\"}}");
    assertEquals(index + ": not a valid safetensors index: Duplicate field 'w'",
        message(() -> Safetensors.openIndex(index)));
  }

  /** A shard name no path can hold was an internal InvalidPathException. */
  @Test
  void shardNamesThatAreNoPathAreRefused() throws IOException {
    Path index = tmp.resolve(Safetensors.INDEX_FILE);
    Files.writeString(index, "{\"weight_map\": {\"w\": \"model\\u0000.safetensors\"}}");
    assertEquals(index + ": shard 'model\\u0000.safetensors' is not a file name: Nul character not allowed",
        message(() -> Safetensors.openIndex(index)));
  }

  @Test
  void shardMissingFromTheIndex() throws IOException {
    Path dir = tmp.resolve("sharded");
    TinyModel m = TinyModel.of("llama", 3);
    m.writeTo(dir, Safetensors.Dtype.F32);
    Files.delete(dir.resolve("model.safetensors"));
    Map<String, String> map = new LinkedHashMap<>();
    m.weights.keySet().forEach(n -> map.put(n, n.startsWith("model.layers.1") ? "model-00002-of-00002.safetensors"
        : "model-00001-of-00002.safetensors"));
    SafetensorsWriter first = new SafetensorsWriter();
    m.weights.forEach((n, d) -> {
      if (!n.startsWith("model.layers.1")) {
        first.add(n, Safetensors.Dtype.F32, m.shapes.get(n), d);
      }
    });
    first.write(dir.resolve("model-00001-of-00002.safetensors"));
    JsonMapper.builder().build().writeValue(dir.resolve("model.safetensors.index.json").toFile(),
        Map.of("metadata", Map.of("total_size", 0), "weight_map", map));
    assertContains(message(() -> HfImporter.importModel(dir, HfOptions.prefill())),
        "model.safetensors.index.json", "shard model-00002-of-00002.safetensors is missing", "model.layers.1");
  }

  @Test
  void shardedCheckpointImportsLikeOneFile() throws IOException {
    TinyModel m = TinyModel.of("llama", 3);
    Path single = m.writeTo(tmp.resolve("single"), Safetensors.Dtype.F32);
    Path dir = tmp.resolve("sharded");
    m.writeTo(dir, Safetensors.Dtype.F32);
    Files.delete(dir.resolve("model.safetensors"));
    Map<String, String> map = new LinkedHashMap<>();
    SafetensorsWriter[] shards = {new SafetensorsWriter(), new SafetensorsWriter()};
    m.weights.forEach((n, d) -> {
      int s = n.startsWith("model.layers.1") ? 1 : 0;
      shards[s].add(n, Safetensors.Dtype.F32, m.shapes.get(n), d);
      map.put(n, "model-0000" + (s + 1) + "-of-00002.safetensors");
    });
    shards[0].write(dir.resolve("model-00001-of-00002.safetensors"));
    shards[1].write(dir.resolve("model-00002-of-00002.safetensors"));
    JsonMapper.builder().build().writeValue(dir.resolve("model.safetensors.index.json").toFile(),
        Map.of("metadata", Map.of("total_size", 0), "weight_map", map));
    Module a = HfImporter.importModel(single, HfOptions.prefill());
    Module b = HfImporter.importModel(dir, HfOptions.prefill());
    Weight w = b.weights().get("model.layers.1.mlp.up_proj.weight");
    Weight.Data.FileSlice slice = assertInstanceOf(Weight.Data.FileSlice.class, w.data());
    assertTrue(slice.file().endsWith("model-00002-of-00002.safetensors"));
    Tensor ids = Tensor.ofLongs(dev.sohuc.ir.type.ElementType.I64, new long[] {1, 5}, new long[] {1, 2, 3, 4, 5});
    assertArrayEquals(new Interpreter(a).run(List.of(ids)).get("logits").floats(),
        new Interpreter(b).run(List.of(ids)).get("logits").floats());
  }

  @Test
  void tensorOfTheWrongShapeForTheConfig() throws IOException {
    TinyModel m = TinyModel.of("llama", 4);
    m.weights.put("model.layers.0.self_attn.k_proj.weight", new float[32 * 32]);
    m.shapes.put("model.layers.0.self_attn.k_proj.weight", new long[] {32, 32});
    Path dir = m.writeTo(tmp.resolve("shape"), Safetensors.Dtype.F32);
    assertContains(message(() -> HfImporter.importModel(dir, HfOptions.prefill())), "model.safetensors",
        "tensor 'model.layers.0.self_attn.k_proj.weight'", "shape [32, 32]", "config needs [16, 32]");
  }

  @Test
  void missingAndUnexpectedTensorsInOneError() throws IOException {
    TinyModel m = TinyModel.of("llama", 5);
    m.weights.remove("model.layers.1.mlp.up_proj.weight");
    m.weights.remove("model.norm.weight");
    m.weight("model.layers.0.self_attn.rotary_emb.inv_freq", 1, 0, 4); // a buffer: ignored
    m.weight("model.layers.0.extra.weight", 1, 0, 4);
    Path dir = m.writeTo(tmp.resolve("names"), Safetensors.Dtype.F32);
    assertContains(message(() -> HfImporter.importModel(dir, HfOptions.prefill())), "model.safetensors",
        "missing tensors [model.layers.1.mlp.up_proj.weight, model.norm.weight] (2)",
        "unexpected tensors [model.layers.0.extra.weight] (1)");
  }

  @Test
  void nonFloatWeightDtype() throws IOException {
    TinyModel m = TinyModel.of("llama", 6);
    Path dir = m.writeTo(tmp.resolve("int"), Safetensors.Dtype.F32);
    // Rewrite the norm weight's dtype: 4 bytes per element either way.
    Path f = dir.resolve("model.safetensors");
    byte[] bytes = Files.readAllBytes(f);
    String s = new String(bytes, StandardCharsets.ISO_8859_1)
        .replace("\"model.norm.weight\":{\"dtype\":\"F32\"", "\"model.norm.weight\":{\"dtype\":\"I32\"");
    Files.write(f, s.getBytes(StandardCharsets.ISO_8859_1));
    assertContains(message(() -> HfImporter.importModel(dir, HfOptions.prefill())),
        "tensor 'model.norm.weight'", "dtype I32", "F32, F16 or BF16");
  }

  /** A config.json of gigabytes would run the heap out as a tree: past 16 MiB it is refused before it is read. */
  @Test
  void configPastItsSizeLimit() throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("huge-config"));
    Path config = dir.resolve("config.json");
    Files.writeString(config, "{" + " ".repeat((int) HfConfig.MAX_CONFIG_BYTES - 1) + "}");
    assertEquals(config + ": 16777217 bytes, more than the 16777216 a config.json may have",
        message(() -> HfImporter.importModel(dir, HfOptions.prefill())));
  }

  @Test
  void unknownModelTypeListsTheSupportedOnes() throws IOException {
    Path dir = tmp.resolve("t5");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"t5\"}");
    assertContains(message(() -> HfImporter.importModel(dir, HfOptions.prefill())), "config.json",
        "model_type \"t5\" is not supported", "llama, mistral, qwen2, gemma, phi3, mixtral, gpt2, bert");
  }

  @Test
  void contradictoryAndMissingConfigKeys() {
    assertContains(importError("llama", "hidden_size", 30), "config.json",
        "hidden_size (30) is not divisible by num_attention_heads (4)");
    assertContains(importError("llama", "num_key_value_heads", 3),
        "num_attention_heads (4) is not a multiple of num_key_value_heads (3)");
    assertContains(importError("llama", "vocab_size", null), "missing key \"vocab_size\"");
    assertContains(importError("llama", "rope_scaling", Map.of("rope_type", "mrope", "factor",
        4.0)), "rope_scaling type \"mrope\" is not supported (supported: default, linear, "
        + "dynamic, llama3, longrope, yarn)");
  }

  /** yarn: a factor, and positive betas, lengths and mscales where given. */
  @Test
  void yarnNeedsItsFactorAndPositiveParameters() throws IOException {
    assertContains(importError("llama-yarn", "rope_scaling", Map.of("type", "yarn")),
        "config.json", "rope_scaling needs a number \"factor\"");
    assertContains(importError("llama-yarn", "rope_scaling", Map.of("type", "yarn", "factor", 4.0,
        "beta_fast", -1)), "rope_scaling \"beta_fast\" must be a positive number, got -1");
    assertContains(importError("qwen2-yarn", "rope_scaling", Map.of("type", "yarn", "factor", 4.0,
        "original_max_position_embeddings", "long")),
        "rope_scaling needs a number \"original_max_position_embeddings\"");
    assertContains(importError("llama-yarn", "rope_scaling", Map.of("type", "yarn", "factor", 4.0,
        "mscale", -0.5, "mscale_all_dim", 1.0)),
        "rope_scaling \"mscale\" must be a positive number, got -0.5");
  }

  /**
   * longrope: its short factors, one per rotary pair, a whole original_max_position_embeddings
   * (0.5 was imported as tables of no rows) and no position past it (HF's long factors there are
   * not supported).
   */
  @Test
  void longropeNeedsItsShortFactorsAndStaysBelowItsOriginalPositions() throws IOException {
    assertContains(importError("phi3-longrope", "rope_scaling", Map.of("type", "longrope",
        "short_factor", List.of(1.0, 2.0))), "config.json",
        "rope_scaling \"short_factor\" must be an array of 4 numbers (one per rotary pair)");
    assertContains(importError("phi3-longrope", "rope_scaling", Map.of("type", "longrope",
        "short_factor", List.of(1.0, 2.0, 0.0, 1.0))),
        "rope_scaling \"short_factor\" must hold positive numbers, got 0.0");
    Path config = nextConfig();
    assertEquals(config + ": rope_scaling \"original_max_position_embeddings\" must be a positive integer, got 0.5",
        importError("phi3-longrope", "rope_scaling", Map.of("type", "longrope", "short_factor",
        List.of(1.0, 1.0, 1.0, 1.0), "original_max_position_embeddings", 0.5)));
    assertContains(importError("phi3-longrope", "original_max_position_embeddings", 1),
        "original_max_position_embeddings 1 makes longrope's attention factor "
        + "sqrt(1 + ln(s) / ln(original)) infinite");
    Path dir = TinyModel.of("phi3-longrope", 7).writeTo(tmp.resolve("longrope"),
        Safetensors.Dtype.F32);
    assertContains(message(() -> HfImporter.importModel(dir, HfOptions.prefill()
        .withDimBindings(Map.of("seq", 17L)))), "past + seq (17) exceeds "
        + "original_max_position_embeddings (16): longrope's long factors, which HF takes past "
        + "it, are not supported");
  }

  /** Values that would make every rotary angle or norm NaN are refused, not imported. */
  @Test
  void ropeAndNormConstantsThatMakeNaNsAreRefused() {
    assertContains(importError("llama", "rope_theta", 0), "config.json",
        "key \"rope_theta\" must be a positive number, got 0.0");
    assertContains(importError("llama", "rope_theta", -10000.0), "key \"rope_theta\" must be a positive number");
    assertContains(importError("llama", "rope_scaling", Map.of("type", "linear", "factor", 0)), "config.json",
        "rope_scaling \"factor\" must be a positive number, got 0");
  }

  /**
   * A norm's epsilon must be finite and non-negative: a negative one makes the norm NaN (GPT-2's
   * and BERT's were refused only by the op, without the file and the key), and 1e400, infinity
   * once read, makes it zero.
   */
  @Test
  void normEpsilonsMustBeFiniteAndNonNegative() {
    Path config = nextConfig();
    assertEquals(config + ": key \"rms_norm_eps\" must be a finite non-negative number, got -1.0",
        importError("llama", "rms_norm_eps", -1.0));
    config = nextConfig();
    assertEquals(config + ": key \"rms_norm_eps\" must be a finite non-negative number, got Infinity",
        importError("llama", "rms_norm_eps", new BigDecimal("1e400")));
    config = nextConfig();
    assertEquals(config + ": key \"layer_norm_epsilon\" (or \"layer_norm_eps\") must be a finite non-negative "
        + "number, got -1.0", importError("gpt2", "layer_norm_epsilon", -1.0));
    config = nextConfig();
    assertEquals(config + ": key \"layer_norm_eps\" (or \"layer_norm_epsilon\") must be a finite non-negative "
        + "number, got Infinity", importError("bert", "layer_norm_eps", new BigDecimal("1e400")));
  }

  /** max_position_embeddings x rotary dims past 2^63 must not wrap to a small inline table. */
  @Test
  void hugeMaxPositionsComputeTheRotaryTablesFromPositions() throws IOException {
    TinyModel m = TinyModel.of("llama", 7);
    m.config.put("max_position_embeddings", 1L << 60);
    Path dir = m.writeTo(tmp.resolve("maxpos"), Safetensors.Dtype.F32);
    Module module = HfImporter.importModel(dir, HfOptions.prefill());
    assertFalse(module.weights().containsKey("rotary_emb.cos"), "no inline table of 2^60 rows");
    assertTrue(module.weights().containsKey("rotary_emb.inv_freq"));
  }

  /** A layer or expert count no model has would build a graph too large to hold: refused. */
  @Test
  void layerAndExpertCountsPastAnyModelsAreRefused() {
    assertContains(importError("llama", "num_hidden_layers", 1_000_000_000), "config.json",
        "key \"num_hidden_layers\" is 1000000000, more than the 1024 this importer builds");
    assertContains(importError("mixtral", "num_local_experts", 100_000),
        "key \"num_local_experts\" is 100000, more than the 1024 this importer builds");
    // each within its limit, together a graph of a million experts that did not finish building
    Path config = nextConfig();
    assertEquals(config + ": num_hidden_layers (1024) x num_local_experts (1024) is 1048576 experts, more than the "
        + "16384 this importer builds", importError("mixtral", Map.of("num_hidden_layers", 1024,
        "num_local_experts", 1024)));
  }

  /**
   * A width the graph derives from config sizes is refused when it overflows a long (GPT-2's
   * 3 x n_embd of 2^62 was an internal ArithmeticException; a decoder's q width wrapped).
   */
  @Test
  void derivedWidthsPastSixtyFourBitsAreRefused() {
    Path config = nextConfig();
    assertEquals(config + ": c_attn's width, 3 x n_embd, overflows 64 bits: 3 x 4611686018427387904",
        importError("gpt2", "n_embd", 1L << 62));
    config = nextConfig();
    assertEquals(config + ": num_attention_heads x head_dim overflows 64 bits: 1099511627776 x 16777216",
        importError("llama", Map.of("num_attention_heads", 1L << 40, "head_dim", 1L << 24)));
    config = nextConfig();
    assertEquals(config + ": qkv_proj's width, 3 x num_attention_heads x head_dim, overflows 64 bits: "
        + "3 x 4611686018427387904", importError("phi3", Map.of("num_attention_heads", 1L << 31, "head_dim", 1L << 31)));
    config = nextConfig();
    assertEquals(config + ": gate_up_proj's width, 2 x intermediate_size, overflows 64 bits: "
        + "2 x 4611686018427387904", importError("phi3", "intermediate_size", 1L << 62));
  }

  /** A BERT of no token types (or -3) would have an embedding table of no (or negative) rows: refused. */
  @Test
  void bertTypeVocabularyMustBePositive() {
    Path config = nextConfig();
    assertEquals(config + ": key \"type_vocab_size\" must be positive, got -3", importError("bert", "type_vocab_size", -3));
  }

  /**
   * Dynamic rope's inline tables of 65536 positions x a head_dim of 32768 would be 2^31 values
   * each (a NegativeArraySizeException before; 8192 dims ran a 1 GB heap out): refused by size.
   */
  @Test
  void inlineRotaryTablesPastTheirValueLimitAreRefused() {
    Path config = nextConfig();
    assertEquals(config + ": rope_scaling serves 65536 positions of 32768 rotary dims from inline tables, more than "
        + "the 16777216 values this importer tabulates", importError("llama", Map.of("head_dim", 32768,
        "max_position_embeddings", 65536, "rope_scaling", Map.of("type", "dynamic", "factor", 2.0))));
  }

  private int configs;

  /** The config.json the next {@link #importError} writes. */
  private Path nextConfig() {
    return tmp.resolve("config" + configs).resolve("config.json");
  }

  /**
   * The import error of a tiny {@code family} model whose config has {@code key} set to
   * {@code value} (removed when null).
   */
  private String importError(String family, String key, Object value) {
    Map<String, Object> change = new HashMap<>();
    change.put(key, value);
    return importError(family, change);
  }

  /** As {@link #importError(String, String, Object)}, with several keys set (or removed). */
  private String importError(String family, Map<String, Object> changes) {
    TinyModel m = TinyModel.of(family, 7);
    changes.forEach((key, value) -> {
      if (value == null) {
        m.config.remove(key);
      } else {
        m.config.put(key, value);
      }
    });
    Path dir = m.writeTo(tmp.resolve("config" + configs++), Safetensors.Dtype.F32);
    return message(() -> HfImporter.importModel(dir, HfOptions.prefill()));
  }

  @Test
  void shapeOnlyWhenThereAreNoWeights() throws IOException {
    TinyModel m = TinyModel.of("mixtral", 8);
    Path dir = m.writeTo(tmp.resolve("so"), Safetensors.Dtype.F32);
    Files.delete(dir.resolve("model.safetensors"));
    Module module = HfImporter.importModel(dir.resolve("config.json"), HfOptions.decode());
    Weight w = module.weights().get("model.layers.0.block_sparse_moe.experts.3.w2.weight");
    assertInstanceOf(Weight.Data.ShapeOnly.class, w.data());
    assertEquals(dev.sohuc.ir.type.ElementType.F32, w.type().elementType()); // torch_dtype float32

    Path withWeights = m.writeTo(tmp.resolve("forced"), Safetensors.Dtype.F32);
    Module forced = HfImporter.importModel(withWeights, HfOptions.prefill().withShapeOnly(true));
    assertInstanceOf(Weight.Data.ShapeOnly.class, forced.weights().get("model.norm.weight").data());
  }

  @Test
  void shapeBindingsFixDimsByName() throws IOException {
    Path dir = TinyModel.of("llama", 9).writeTo(tmp.resolve("bind"), Safetensors.Dtype.F32);
    Module module = HfImporter.importModel(dir, HfOptions.decode().withDimBindings(Map.of("seq", 1L, "past", 7L)));
    var fn = module.main();
    assertEquals(List.of(Dim.symbol("batch"), Dim.of(1)), fn.arguments().get(0).type().dims());
    assertEquals(Dim.of(8), fn.outputs().get(1).value().type().dim(2));
    assertContains(message(() -> HfImporter.importModel(dir, HfOptions.prefill().withDimBindings(Map.of("past", 3L)))),
        "--shape past=3", "no dim named 'past'", "batch, seq");
    assertContains(message(() -> HfImporter.importModel(dir, HfOptions.decode().withDimBindings(
        Map.of("seq", 60L, "past", 10L)))), "past + seq (70) exceeds max_position_embeddings (64)");
  }
}
