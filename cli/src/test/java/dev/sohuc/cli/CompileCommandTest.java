package dev.sohuc.cli;

import static dev.sohuc.cli.CliResult.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CompileCommandTest {
  @TempDir Path dir;

  private Path ir(String text) throws Exception {
    Path p = dir.resolve("m.ir");
    Files.writeString(p, text);
    return p;
  }

  static final String GELU = """
      module @m {
        func @main(%x: tensor<?seq x 64 x f32>) -> ("y": tensor<?seq x 64 x f32>) {
          %y = gelu %x {approximate = "none"} : tensor<?seq x 64 x f32> loc("Gelu_0")
          return %y
        }
      }
      """;

  @Test
  void compilesIrToSohu() throws Exception {
    Path model = ir(GELU);
    Path out = dir.resolve("m.sohu");
    CliResult r = run("compile", model.toString(), "-o", out.toString(), "--report");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("instructions"), r.out());
    assertTrue(SohuReader.read(Files.readAllBytes(out), "m.sohu").code().size() > 5);
  }

  @Test
  void chipsShardsTheModelAndAddsAllReduces() throws Exception {
    Path tiny = Path.of("..", "examples", "tiny-llama");
    CliResult r = run("compile", tiny.toString(), "--chips", "2", "--emit", "ir");
    assertEquals(0, r.code(), r.err());
    // two layers, each with an all-reduce after the attention output and the MLP down projection
    assertEquals(4, r.out().lines().filter(l -> l.contains("= all_reduce ")).count(), r.out());
    assertTrue(r.out().contains("{chips = 2}"), r.out());
    CliResult bin = run("compile", tiny.toString(), "--chips", "2", "-o", dir.resolve("t.sohu").toString());
    assertEquals(0, bin.code(), bin.err());
    // one shard's program times as the whole group (its peers run the same code); the profile
    // charges each all-reduce its link time
    CliResult timed = run("run", dir.resolve("t.sohu").toString(), "--mode", "timing",
        "--shape", "batch=1", "--shape", "seq=16", "--profile", "40");
    assertEquals(0, timed.code(), timed.err());
    assertTrue(timed.out().contains("all_reduce %model.layers.1.mlp.down.all_reduce")
        && timed.out().contains("by kind:"), timed.out());
    CliResult functional = run("run", dir.resolve("t.sohu").toString(), "--profile");
    assertEquals(2, functional.code());
    assertTrue(functional.err().contains("--profile needs --mode timing"), functional.err());
  }

  /**
   * With static rows that split over the chips, the sums become reduce_scatters and the normed
   * rows all_gathers (sequence parallelism, on by default); the program runs in timing mode,
   * its collectives on the link. --no-sequence-parallel keeps the all_reduces.
   */
  @Test
  void staticRowsAreSplitBetweenTheSums() throws Exception {
    Path tiny = Path.of("..", "examples", "tiny-llama");
    CliResult ir = run("compile", tiny.toString(), "--chips", "2", "--shape", "batch=1",
        "--shape", "seq=16", "--emit", "ir");
    assertEquals(0, ir.code(), ir.err());
    assertEquals(4, ir.out().lines().filter(l -> l.contains("= reduce_scatter ")).count(),
        ir.out());
    assertTrue(ir.out().contains("{chips = 2, rank = 0, axis = 1} : tensor<1 x 8 x 64 x f32>"),
        ir.out());
    assertEquals(0, ir.out().lines().filter(l -> l.contains("= all_reduce ")).count());
    CliResult off = run("compile", tiny.toString(), "--chips", "2", "--shape", "batch=1",
        "--shape", "seq=16", "--no-sequence-parallel", "--emit", "ir");
    assertEquals(4, off.out().lines().filter(l -> l.contains("= all_reduce ")).count(),
        off.out());
    Path out = dir.resolve("sp.sohu");
    assertEquals(0, run("compile", tiny.toString(), "--chips", "2", "--shape", "batch=1",
        "--shape", "seq=16", "-o", out.toString()).code());
    CliResult timed = run("run", out.toString(), "--mode", "timing", "--profile", "60");
    assertEquals(0, timed.code(), timed.err());
    assertTrue(timed.out().contains("reduce_scatter %model.layers.1.mlp.down.all_reduce"
        + ".reduce_scatter") && timed.out().contains("all_gather"), timed.out());
  }

  /** A dim past 2^40 is refused as usage; past + seq of 2^63 - 1 and 1 overflowed a long. */
  @Test
  void aShapeNoChipHoldsIsAUsageError() {
    String[] compile = {"compile", "-o", dir.resolve("x.sohu").toString()};
    for (String[] command : java.util.List.of(new String[] {"ir"}, compile)) {
      java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of(command));
      args.addAll(java.util.List.of("../examples/tiny-llama", "--decode", "--shape",
          "past=9223372036854775807", "--shape", "seq=1"));
      CliResult r = run(args.toArray(String[]::new));
      assertEquals(2, r.code(), r.err());
      assertTrue(r.err().contains("--shape past=9223372036854775807: 9223372036854775807 is more "
          + "than 2^40, larger than any tensor a chip holds"), r.err());
    }
  }

  /**
   * The HF issue's scale command: shape-only Llama-3-70B at seq 2048 on one chip. The bf16
   * checkpoint compiles in bf16 (auto), its weights (141 GB) fill most of the 144 GiB, so the
   * unbound batch gets the largest bound that fits, and a note says so.
   */
  @Test
  void llama3_70bShapeOnlyCompilesOnOneChip() throws Exception {
    Path config = Path.of("..", "examples", "llama-3-70b", "config.json");
    Path out = dir.resolve("70b.sohu");
    CliResult r = run("compile", config.toString(), "--shape", "seq=2048", "-o", out.toString(),
        "--report");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("--quantize auto: bf16"), r.out());
    assertTrue(r.out().contains("561 layers: 0 f8e4m3, 561 bf16"), r.out());
    assertTrue(r.err().contains("note: ?batch is bounded at 4, not the default 512"), r.err());
    var p = SohuReader.read(Files.readAllBytes(out), "70b.sohu");
    assertEquals("{batch=4}", p.metadata().get("symbol_bounds"));
    assertTrue(p.code().size() * 16L < 10_000_000, p.code().size() + " instructions");
    assertTrue(Long.parseLong(p.metadata().get("hbm_bytes")) <= 144L << 30);

    // in f32 the weights alone are twice the chip: the error itemizes HBM
    CliResult f32 = run("compile", config.toString(), "--shape", "seq=2048", "--quantize", "none",
        "-o", out.toString());
    assertEquals(1, f32.code(), f32.err());
    assertTrue(f32.err().contains("model does not fit the target's HBM")
        && f32.err().contains("at the symbol bounds {batch=1} (weights and constants 280."), f32.err());
  }

  /**
   * Real models' common graphs, shape-only: Llama-3-70B's 2048-token prompt on one chip (the o
   * projection reads its 64 heads' blocks, more than a DMA's planes immediate holds), and the
   * decode step on 8 chips at the default bounds of Llama-3-70B and Phi-3-mini (two layers):
   * their vocabulary-parallel logits stream in blocks of rows with a tail panel, where the
   * registers once ran out.
   */
  @Test
  void realModelsPromptAndDecodeGraphsCompile() throws Exception {
    Path llama = Path.of("..", "examples", "llama-3-70b", "config.json");
    Path phi3 = Files.createDirectories(dir.resolve("phi3")).resolve("config.json");
    Files.writeString(phi3, """
        {"model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
         "num_attention_heads": 32, "num_key_value_heads": 32, "num_hidden_layers": 2,
         "vocab_size": 32064, "sliding_window": 2047, "hidden_act": "silu",
         "rope_theta": 10000.0, "rms_norm_eps": 1e-05, "max_position_embeddings": 4096,
         "torch_dtype": "bfloat16"}""");
    for (String[] args : new String[][] {
        {llama.toString(), "--shape", "batch=1", "--shape", "seq=2048"},
        {llama.toString(), "--decode", "--chips", "8"},
        {phi3.toString(), "--decode", "--chips", "8"}}) {
      java.util.List<String> argv = new java.util.ArrayList<>(java.util.List.of("compile", "-o",
          dir.resolve("m.sohu").toString()));
      argv.addAll(java.util.List.of(args));
      CliResult r = run(argv.toArray(String[]::new));
      assertEquals(0, r.code(), String.join(" ", args) + ": " + r.err());
    }
  }

  @Test
  void decodeCompilesTheKvCacheStep() throws Exception {
    Path tiny = Path.of("..", "examples", "tiny-llama");
    Path out = dir.resolve("step.sohu");
    CliResult r = run("compile", tiny.toString(), "--decode", "--shape", "seq=1", "-o", out.toString());
    assertEquals(0, r.code(), r.err());
    var names = symbols(out);
    assertTrue(names.contains("IN past_key_values.1.value") && names.contains("OUT present.1.value")
        && names.contains("OUT logits"), names.toString());
  }

  /** "IN name" / "OUT name" of each symbol of a .sohu file. */
  private static java.util.List<String> symbols(Path sohu) throws Exception {
    var p = SohuReader.read(Files.readAllBytes(sohu), sohu.getFileName().toString());
    return p.symbols().stream().map(s -> s.direction() + " " + s.name()).toList();
  }

  @Test
  void stepCompilesThePromptAndTheDecodesAsOneProgram() throws Exception {
    Path tiny = Path.of("..", "examples", "tiny-llama");
    Path out = dir.resolve("serving.sohu");
    CliResult r = run("compile", tiny.toString(), "--step", "--micro-batches", "2", "-o",
        out.toString());
    assertEquals(0, r.code(), r.err());
    var names = symbols(out);
    assertTrue(names.contains("IN input_ids") && names.contains("IN decode_ids") && names.contains("IN past_lengths")
        && names.contains("IN past_key_values.1.value") && names.contains("OUT present.1.value")
        && names.contains("OUT prompt.present.1.value") && names.contains("OUT logits"),
        names.toString());
    // the decodes' attention in a second control stream
    CliResult two = run("compile", tiny.toString(), "--step", "--micro-batches", "2",
        "--two-streams", "-o", out.toString());
    assertEquals(0, two.code(), two.err());
    assertTrue(SohuReader.read(out).code().stream().anyMatch(w -> dev.sohuc.isa.InsnCodec
        .decode(w) instanceof dev.sohuc.isa.Insn.Fork), "forked");
    // and the second micro-batch's prompt attention too: its rope and attention ops' debug
    // entries lie in the forked stream's code, which starts right after the fork
    CliResult overlapped = run("compile", tiny.toString(), "--step", "--micro-batches", "2",
        "--two-streams", "--overlap-attention", "-o", out.toString());
    assertEquals(0, overlapped.code(), overlapped.err());
    assertTrue(secondStreamOps(SohuReader.read(out)).stream()
        .anyMatch(op -> op.startsWith("attention %") && op.contains("prompt1.attn")),
        secondStreamOps(SohuReader.read(out)).toString());
    // on a target too small for a stream's share (one stream fits), the error says so
    CliResult small = run("compile", tiny.toString(), "--step", "--two-streams", "--chips", "2",
        "--target", "../targets/tiny.json", "-o", out.toString());
    assertEquals(1, small.code(), small.err());
    assertTrue(small.err().endsWith("(in control stream 0, with 75% of the target's SRAM and ACC:"
        + " compile in one stream)\n"), small.err());
    assertEquals(0, run("compile", tiny.toString(), "--step", "--chips", "2", "--target",
        "../targets/tiny.json", "-o", out.toString()).code());
    // quantized, its decode attention's K and V in bf16: the pipelined schedule takes a slot
    // fewer where the 16-wide heads' constants take a register more (it ran out of them)
    for (String mode : new String[] {"bf16", "fp8"}) {
      CliResult q = run("compile", tiny.toString(), "--step", "--quantize", mode, "-o",
          out.toString());
      assertEquals(0, q.code(), mode + ": " + q.err());
    }
  }

  /** The IR ops whose code lies in the forked stream's: the instructions the fork skips. */
  private static List<String> secondStreamOps(SohuProgram p) {
    for (int pc = 0; pc < p.code().size(); pc++) {
      if (dev.sohuc.isa.InsnCodec.decode(p.code().get(pc)) instanceof dev.sohuc.isa.Insn.Fork f) {
        int fork = pc;
        return p.debug().stream().filter(d -> d.pc() > fork && d.pc() <= fork + f.body())
            .map(SohuProgram.DebugEntry::irOp).toList();
      }
    }
    return List.of();
  }

  @Test
  void raggedDecodeTakesEachSequencesLengthInTheArgumentBlock() throws Exception {
    Path tiny = Path.of("..", "examples", "tiny-llama");
    Path out = dir.resolve("ragged.sohu");
    CliResult r = run("compile", tiny.toString(), "--decode", "--ragged", "-o", out.toString());
    assertEquals(0, r.code(), r.err());
    var names = symbols(out);
    assertTrue(names.contains("IN input_ids") && names.contains("IN past_lengths")
        && names.contains("OUT present.1.value") && names.contains("OUT logits"), names.toString());
    SohuProgram p = SohuReader.read(out);
    assertTrue(p.args().stream().anyMatch(a -> a.isArray() && a.name().equals("past_lengths")), p.args().toString());
  }

  @Test
  void graphOptionsThatDoNotGoTogetherAreUsageErrors() throws Exception {
    Path tiny = Path.of("..", "examples", "tiny-llama");
    CliResult both = run("compile", tiny.toString(), "--step", "--decode", "-o",
        dir.resolve("x.sohu").toString());
    assertEquals(2, both.code(), both.err());
    assertTrue(both.err().contains("--decode and --step name different graphs"), both.err());
    CliResult streams = run("compile", tiny.toString(), "--two-streams", "-o",
        dir.resolve("x.sohu").toString());
    assertEquals(2, streams.code(), streams.err());
    assertTrue(streams.err().contains("--two-streams goes with --step"), streams.err());
    CliResult overlap = run("compile", tiny.toString(), "--step", "--overlap-attention", "-o",
        dir.resolve("x.sohu").toString());
    assertEquals(2, overlap.code(), overlap.err());
    assertTrue(overlap.err().contains("--overlap-attention goes with --step and --micro-batches "
        + "2 or more"), overlap.err());
    CliResult ragged = run("compile", tiny.toString(), "--ragged", "-o", dir.resolve("x.sohu").toString());
    assertEquals(2, ragged.code(), ragged.err());
    assertTrue(ragged.err().contains("--ragged goes with --decode"), ragged.err());
    for (String[] bad : new String[][] {{"--micro-batches", "2"}, {"--step", "--micro-batches",
        "0"}, {"--step", "--micro-batches", "65"}}) {
      String[] args = new String[bad.length + 4];
      args[0] = "compile";
      args[1] = tiny.toString();
      System.arraycopy(bad, 0, args, 2, bad.length);
      args[bad.length + 2] = "-o";
      args[bad.length + 3] = dir.resolve("x.sohu").toString();
      CliResult r = run(args);
      assertEquals(2, r.code(), String.join(" ", bad) + ": " + r.err());
      assertTrue(r.err().contains("--micro-batches " + bad[bad.length - 1] + ": 1 to 64, and "
          + "more than 1 only with --step"), r.err());
    }
  }

  @Test
  void chipsBelowOneIsAUsageError() throws Exception {
    CliResult r = run("compile", ir(GELU).toString(), "--chips", "0", "-o", dir.resolve("x.sohu").toString());
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--chips must be 1 or more"), r.err());
  }

  @Test
  void emitsAssembly() throws Exception {
    CliResult r = run("compile", ir(GELU).toString(), "--emit", "asm");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("ldarg"), r.out());
  }

  @Test
  void unsupportedOpExitsOneNamingIt() throws Exception {
    // reduce_prod has no lowering (sin and then log_softmax, used here before, now lower)
    Path model = ir(GELU.replace("gelu %x {approximate = \"none\"}", "reduce_prod %x {axes = [1], keepdims = true}")
        .replace("Gelu_0", "ReduceProd_7").replace("\"y\": tensor<?seq x 64 x f32>", "\"y\": tensor<?seq x 1 x f32>")
        .replace(": tensor<?seq x 64 x f32> loc", ": tensor<?seq x 1 x f32> loc"));
    CliResult r = run("compile", model.toString(), "-o", dir.resolve("x.sohu").toString());
    assertEquals(1, r.code(), r.out() + r.err());
    assertTrue(r.err().contains("'reduce_prod' (%y, at \"ReduceProd_7\"): reduce_prod"), r.err());
  }

  @Test
  void aJsonKeyGivenTwiceExitsOneNamingTheFileAndTheKey() throws Exception {
    Path config = dir.resolve("config.json");
    Files.writeString(config, Files.readString(Path.of("..", "examples", "tiny-llama",
        "config.json")).replaceFirst("\"hidden_size\"", "\"hidden_size\": 8, \"hidden_size\""));
    CliResult r = run("compile", dir.toString(), "-o", dir.resolve("x.sohu").toString());
    assertEquals(1, r.code(), r.err());
    assertEquals("error: " + config + ": not valid JSON: Duplicate field 'hidden_size'\n", r.err());
    Path target = dir.resolve("twice.json");
    Files.writeString(target, "{\"name\": \"a\", \"name\": \"b\"}");
    Path model = ir(GELU);
    CliResult t = run("compile", model.toString(), "-o", dir.resolve("x.sohu").toString(),
        "--target", target.toString());
    assertEquals(1, t.code(), t.err());
    assertEquals("error: " + model + ": target description " + target + " is not valid JSON: "
        + "Duplicate field 'name'\n", t.err());
  }

  @Test
  void unknownPrintIrAfterPassIsAUsageError() throws Exception {
    CliResult r = run("compile", ir(GELU).toString(), "--emit", "ir", "--print-ir-after", "fuse-magic");
    assertEquals(2, r.code(), r.out() + r.err());
    assertTrue(r.err().contains("unknown pass 'fuse-magic'"), r.err());
  }

  /**
   * --shape binds an IR file's dims by name (they were read as symbols whatever it said) and
   * names a dim it lacks; a whole input shape, which only ONNX inputs take, is refused for IR and
   * Hugging Face models instead of being dropped.
   */
  @Test
  void shapesBindIrDimsAndWholeShapesAreOnlyForOnnx() throws Exception {
    Path model = ir(GELU);
    Path out = dir.resolve("g.ir");
    CliResult bound = run("compile", model.toString(), "--shape", "seq=5", "--emit", "ir", "-o", out.toString());
    assertEquals(0, bound.code(), bound.err());
    assertTrue(Files.readString(out).contains("%x: tensor<5 x 64 x f32>"), Files.readString(out));
    CliResult unknown = run("compile", model.toString(), "--shape", "sequence=5", "-o", dir.resolve("u.sohu").toString());
    assertEquals(1, unknown.code(), unknown.err());
    assertEquals("error: " + model + ": --shape sequence=5: the module has no dim named 'sequence' (its dims: seq)"
        + System.lineSeparator(), unknown.err());
    CliResult whole = run("compile", model.toString(), "--shape", "x=5x64", "-o", dir.resolve("w.sohu").toString());
    assertEquals(1, whole.code(), whole.err());
    assertEquals("error: " + model + ": --shape x=5x64: only an ONNX model's inputs take a whole shape; bind this "
        + "model's dims by name (--shape seq=128)" + System.lineSeparator(), whole.err());
    CliResult hf = run("compile", "../examples/tiny-llama", "--shape", "input_ids=1x4", "-o",
        dir.resolve("h.sohu").toString());
    assertEquals(1, hf.code(), hf.err());
    assertTrue(hf.err().contains("--shape input_ids=1x4: only an ONNX model's inputs take a whole shape"), hf.err());
  }

  /** A constant too large to hold (a hostile Range) is named by its node, not a bare shape. */
  @Test
  void aConstantTooLargeToFoldNamesItsNode() throws Exception {
    Path model = ir("""
        module @g {
          func @main() -> ("Y": tensor<1152921504606846976 x i64>) {
            %Y = range {start = 0, limit = [1152921504606846976], delta = 1, dtype = i64} : tensor<1152921504606846976 x i64> loc("Range_Y")
            return %Y
          }
        }
        """);
    CliResult r = run("compile", model.toString(), "-o", dir.resolve("r.sohu").toString());
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("m.ir: 'range' (%Y, at \"Range_Y\"): shape [1152921504606846976] has more "
        + "than 2147483639 elements"), r.err());
  }

  /**
   * A fill of a billion f32 (a ConstantOfShape of a hostile shape: 4 GB from a few bytes) is
   * refused by its node before it is allocated, not by running out of memory.
   */
  @Test
  void aConstantLargerThanTheConstantsImageIsRefusedBeforeAllocating() throws Exception {
    Path model = ir("""
        module @g {
          func @main() -> ("Y": tensor<1000000000 x f32>) {
            %Y = fill {shape = [1000000000], value = 1.0, dtype = f32} : tensor<1000000000 x f32> loc("ConstantOfShape_Y")
            return %Y
          }
        }
        """);
    CliResult r = run("compile", model.toString(), "-o", dir.resolve("f.sohu").toString());
    assertEquals(1, r.code(), r.err());
    assertEquals("error: " + model + ": 'fill' (%Y, at \"ConstantOfShape_Y\"): a constant of f32 [1000000000] is"
        + " 4000000000 bytes, more than a program's constants can hold (2147483639)" + System.lineSeparator(),
        r.err());
  }

  /**
   * A shape-only config whose tensors add up past what a long counts (a vocabulary of 2^62) is
   * refused by the tensor that crosses 2^62 bytes, not an overflow deep in the HBM plan.
   */
  @Test
  void tensorsPastTwoToTheSixtyTwoBytesAreRefused() throws Exception {
    String config = Files.readString(Path.of("..", "examples", "llama-3-8b", "config.json"))
        .replace("\"vocab_size\": 128256", "\"vocab_size\": 4611686018427387904");
    Path hf = Files.createDirectories(dir.resolve("huge-vocab"));
    Files.writeString(hf.resolve("config.json"), config);
    CliResult r = run("compile", hf.toString(), "-o", dir.resolve("v.sohu").toString());
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("(tensor<4611686018427387904 x 4096 x bf16>) takes the program past "
        + "2^62 bytes at the symbol bounds"), r.err());
    assertFalse(r.err().contains("internal error"), r.err());
  }

  /**
   * What the tiny Llama cannot be compiled for is refused by the model and what it lacks: heads
   * that do not split over the chips (and the counts they do split over), a prompt past its
   * positions (by the config, not a shape clash in the rope).
   */
  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', value = {
      "--chips 3 | : shard-tensor-parallel: 4 query heads do not split over 3 chips; the model's "
          + "heads split over 2 or 4 chips",
      "--shape seq=300 | /config.json: past + seq (300) exceeds max_position_embeddings (128)"})
  void whatTheModelCannotServeIsNamed(String option, String message) {
    Path tiny = Path.of("..", "examples", "tiny-llama");
    String[] kv = option.split(" ");
    CliResult r = run("compile", tiny.toString(), kv[0], kv[1], "-o",
        dir.resolve("t.sohu").toString());
    assertEquals(1, r.code(), r.err());
    assertEquals("error: " + tiny + message + "\n", r.err());
  }

  /**
   * A hostile value in the tiny Llama's config exits 1 with one line naming the file and the key:
   * an epsilon of 1e400 (infinity once read: imported before), a model_type with a newline (the
   * message split in two), heads x head_dim past 64 bits (an internal ArithmeticException).
   */
  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', value = {
      "\"rms_norm_eps\": 1e-05 | \"rms_norm_eps\": 1e400 | key \"rms_norm_eps\" must be a finite non-negative "
          + "number, got Infinity",
      "\"model_type\": \"llama\" | \"model_type\": \"lla\\nma\" | model_type \"lla\\nma\" is not supported "
          + "(supported: llama, mistral, qwen2, gemma, phi3, mixtral, gpt2, bert)",
      "\"num_attention_heads\": 4 | \"num_attention_heads\": 1099511627776, \"head_dim\": 16777216 | "
          + "num_attention_heads x head_dim overflows 64 bits: 1099511627776 x 16777216"})
  void aHostileConfigValueExitsOneNamingTheFileAndTheKey(String from, String to, String message) throws Exception {
    Path hf = Files.createDirectories(dir.resolve("hostile"));
    String config = Files.readString(Path.of("..", "examples", "tiny-llama", "config.json"));
    assertTrue(config.contains(from), from);
    Files.writeString(hf.resolve("config.json"), config.replace(from, to));
    CliResult r = run("compile", hf.toString(), "-o", dir.resolve("x.sohu").toString());
    assertEquals(1, r.code(), r.err());
    assertEquals("error: " + hf.resolve("config.json") + ": " + message + "\n", r.err());
  }

  /**
   * A config of 3 x 2^39 query heads over 3 kv heads: the chip counts that would split them are
   * found among the divisors of the head count (counting up to it would not finish).
   */
  @Test
  void theChipCountsThatSplitAHugeHeadCountAreListedAtOnce() throws Exception {
    Path cfg = dir.resolve("heads.json");
    Files.writeString(cfg, "{\"model_type\": \"llama\", \"hidden_size\": 3298534883328, "
        + "\"num_hidden_layers\": 1, \"num_attention_heads\": 1649267441664, "
        + "\"num_key_value_heads\": 3, \"intermediate_size\": 16, \"vocab_size\": 32, "
        + "\"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, \"torch_dtype\": \"bfloat16\"}");
    CliResult r = run("compile", cfg.toString(), "--chips", "8", "-o",
        dir.resolve("h.sohu").toString());
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().startsWith("error: " + cfg + ": shard-tensor-parallel: 3 kv heads neither "
        + "split over nor replicate evenly across 8 chips; the model's heads split over 3, 6, 12,"),
        r.err());
    assertTrue(r.err().endsWith(", 824633720832 or 1649267441664 chips\n"), r.err());
  }
}
