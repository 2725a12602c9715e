package dev.sohuc.hf;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * Feeds arbitrary bytes to the importer as one file of a checkpoint folder whose other files are
 * valid: only {@link HfImportException}, with a one-line message, may escape. The valid
 * companions are the other targets' {@code valid} seeds: a Llama of widths 2 and one layer with
 * F16 weights. Without {@code JAZZER_FUZZ=1} each target replays its seeds in
 * {@code HfImporterFuzzTestInputs/<target>}.
 */
class HfImporterFuzzTest {
  private static final String SEEDS = "HfImporterFuzzTestInputs/";
  private static final String SHARD = "model-00001-of-00001.safetensors";

  @DictionaryEntries({"\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"BF16\"", "\"F64\"",
      "\"I64\"", "\"BOOL\"", "18446744073709551615", "9223372036854775807", "-1", "\\n"})
  @FuzzTest(maxDuration = "60s")
  void safetensorsOnlyThrowsHfImportExceptions(byte[] data) throws IOException {
    importFolder(data, Safetensors.SINGLE_FILE, HfOptions.prefill());
  }

  @FuzzTest(maxDuration = "60s")
  void indexOnlyThrowsHfImportExceptions(byte[] data) throws IOException {
    importFolder(data, Safetensors.INDEX_FILE, HfOptions.prefill());
  }

  /**
   * The config beside the checkpoint, then shape-only as every graph kind: sizes that do not
   * match the checkpoint stop the first import, not the others.
   */
  @DictionaryEntries({"\"model_type\"", "\"gpt2\"", "\"bert\"", "\"phi3\"", "\"gemma\"", "\"mixtral\"",
      "\"qwen2\"", "\"mistral\"", "\"hidden_size\"", "\"n_embd\"", "\"num_attention_heads\"",
      "\"num_key_value_heads\"", "\"head_dim\"", "\"intermediate_size\"", "\"n_inner\"", "\"vocab_size\"",
      "\"type_vocab_size\"", "\"max_position_embeddings\"", "\"original_max_position_embeddings\"",
      "\"num_hidden_layers\"", "\"num_local_experts\"", "\"num_experts_per_tok\"", "\"rope_scaling\"",
      "\"rope_type\"", "\"longrope\"", "\"dynamic\"", "\"llama3\"", "\"linear\"", "\"yarn\"",
      "\"factor\"",
      "\"beta_fast\"", "\"beta_slow\"", "\"mscale\"", "\"mscale_all_dim\"", "\"truncate\"",
      "\"short_factor\"", "\"attention_factor\"", "\"low_freq_factor\"", "\"high_freq_factor\"",
      "\"partial_rotary_factor\"", "\"rope_theta\"", "\"rms_norm_eps\"", "\"layer_norm_epsilon\"",
      "\"layer_norm_eps\"", "\"sliding_window\"", "\"use_sliding_window\"", "\"max_window_layers\"",
      "\"torch_dtype\"", "\"hidden_act\"", "\"tie_word_embeddings\"", "\"attention_bias\"", "1e400",
      "9223372036854775807", "4611686018427387904", "65536", "-1", "0.5", "\\n"})
  @FuzzTest(maxDuration = "60s")
  void configOnlyThrowsHfImportExceptions(byte[] data) throws IOException {
    importFolder(data, "config.json", CONFIG_IMPORTS);
  }

  private static final HfOptions[] CONFIG_IMPORTS = Stream.concat(Stream.of(HfOptions.prefill()),
      Arrays.stream(HfOptions.GraphKind.values()).map(k -> new HfOptions(k, Map.of(), true))).toArray(HfOptions[]::new);

  /** Imports a folder of the valid tiny model with {@code file} replaced by {@code data}, once per option set. */
  private static void importFolder(byte[] data, String file, HfOptions... options) throws IOException {
    Path dir = Files.createTempDirectory("hf-fuzz");
    try {
      Files.write(dir.resolve("config.json"), seed("configOnlyThrowsHfImportExceptions/valid"));
      if (file.equals(Safetensors.INDEX_FILE)) {
        Files.write(dir.resolve(SHARD), seed("safetensorsOnlyThrowsHfImportExceptions/valid"));
      } else {
        Files.write(dir.resolve(Safetensors.SINGLE_FILE), seed("safetensorsOnlyThrowsHfImportExceptions/valid"));
      }
      Files.write(dir.resolve(file), data);
      for (HfOptions o : options) {
        try {
          HfImporter.importModel(dir, o);
        } catch (HfImportException e) {
          assertFalse(e.getMessage().contains("\n") || e.getMessage().contains("\r"), "one line: " + e.getMessage());
        }
      }
    } finally {
      try (Stream<Path> files = Files.walk(dir)) {
        files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  private static byte[] seed(String name) {
    try (InputStream in = HfImporterFuzzTest.class.getResourceAsStream(SEEDS + name)) {
      return in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
