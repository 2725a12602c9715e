package dev.sohuc.cli;

import dev.sohuc.backend.CompiledProgram;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.text.IrPrinter;
import dev.sohuc.onnx.TensorFiles;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.quant.CalibrationException;
import dev.sohuc.passes.quant.QuantMode;
import dev.sohuc.passes.quant.QuantOptions;
import dev.sohuc.passes.quant.QuantReport;
import dev.sohuc.passes.quant.Quantizer;
import dev.sohuc.passes.tp.SequenceParallelPass;
import dev.sohuc.passes.tp.ShardTensorParallelPass;
import dev.sohuc.serving.StepModel;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code sohuc compile MODEL -o X.sohu}: import, run the default pass pipeline, lower, link. */
@Command(name = "compile", mixinStandardHelpOptions = true,
    description = "Compile a model (.onnx, .ir, or a Hugging Face config.json / folder) to a .sohu program.")
final class CompileCommand implements Callable<Integer> {

  @Parameters(index = "0", paramLabel = "MODEL",
      description = "The model: FILE.onnx, FILE.ir, or a Hugging Face config.json or its folder.")
  Path model;

  @Option(names = "-o", paramLabel = "FILE", description = "Output file (.sohu, or text for --emit ir|asm).")
  Path output;

  @Option(names = "--shape", paramLabel = "NAME=DIMS",
      description = "An input's shape (input_ids=1x128) or a symbol's value or bound (seq=128).")
  List<String> shapes = new ArrayList<>();

  @CommandLine.Mixin GraphKindOptions graph = new GraphKindOptions();

  @Option(names = "--target", paramLabel = "FILE", description = "Machine description JSON (default: built-in sohu).")
  Path target;

  @Option(names = "--emit", paramLabel = "KIND", description = "ir, asm or bin (default bin).")
  String emit = "bin";

  @CommandLine.Mixin PrintIrOptions printIr = new PrintIrOptions();

  @Option(names = "--report", description = "Print fusions, quantization, code size and memory use.")
  boolean report;

  @Option(names = "--quantize", paramLabel = "MODE",
      description = "auto, none, bf16, fp8 or int8: matmuls with weights become qmatmul (bf16 "
          + "and fp8: attention's products in bf16, the KV cache bf16); auto (the default) is "
          + "bf16 for a bf16 checkpoint and none (f32) otherwise.")
  String quantize = "auto";

  @Option(names = "--calibrate", paramLabel = "DIR",
      description = "A folder of input_N.pb files (one calibration set); repeat for more sets.")
  List<Path> calibrate = new ArrayList<>();

  @Option(names = "--max-layer-error", paramLabel = "X",
      description = "Relative L2 error above which a layer stays in higher precision (default per mode).")
  Double maxLayerError;

  @Option(names = "--min-output-cosine", paramLabel = "C",
      description = "The accuracy guard's bound on the whole model: the mean cosine of its outputs "
          + "against f32 on the calibration sets; below it the costliest layers stay in higher "
          + "precision (default per mode: bf16 0.99995, fp8 0.9995, int8 0.995; -1 turns it off).")
  Double minOutputCosine;

  @Option(names = "--chips", paramLabel = "N",
      description = "Tensor-parallel shard for N chips: the program of one chip, with all-reduces (default 1).")
  int chips = 1;

  @Option(names = "--sequence-parallel", negatable = true, defaultValue = "true",
      fallbackValue = "true", description = "With --chips N: between the tensor-parallel sums "
      + "each chip keeps and normalizes 1/N of the rows (reduce_scatter, all_gather) where the "
      + "rows split into N equal blocks (static shapes); on by default.")
  boolean sequenceParallel = true;

  @Option(names = "--two-streams", description = "With --step: the decodes' attention (and with "
      + "--overlap-attention the later micro-batches' prompt attention) in a second control stream "
      + "(fork), beside the prompt's, in a quarter of the SRAM and ACC (as sohuc bench runs it).")
  boolean twoStreams;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    ShapeBindings bindings = ShapeBindings.parse(shapes, spec.commandLine());
    if (chips < 1) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--chips must be 1 or more, got " + chips);
    }
    if (!List.of("ir", "asm", "bin").contains(emit)) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--emit must be ir, asm or bin, got " + emit);
    }
    printIr.checkNames(spec.commandLine());
    if (twoStreams && !graph.step) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--two-streams goes with "
          + "--step (a second stream runs a step's decode attention)");
    }
    Module m = ModelLoader.load(model, bindings,
        graph.options(spec.commandLine()));
    PassManager.Report passReport = Toolchain.optimize(m, pm -> printIr.apply(pm, out));
    if (report) {
      out.print(passReport.fusion().render());
    }
    if (chips > 1) {
      // Every chip runs the same program on its own weight shard; rank 0's is the one written.
      try {
        new PassManager(List.of(new ShardTensorParallelPass(chips, 0))).run(m);
      } catch (dev.sohuc.passes.tp.ShardException e) {
        throw new UserException(model + ": " + e.getMessage(), e);
      }
    }
    QuantReport quantReport = quantize(m);
    if (chips > 1 && sequenceParallel) {
      new PassManager(List.of(new SequenceParallelPass(chips, 0))).run(m);
    }
    if (report && quantReport != null) {
      if (autoQuantize()) {
        out.println("--quantize auto: " + quantReport.mode().flag() + " (the checkpoint's linear "
            + "weights are " + quantReport.mode().flag() + ")");
      }
      out.print(quantReport.render());
    }
    Toolchain.layoutWeights(m);
    if (emit.equals("ir")) {
      write(IrPrinter.print(m), out);
      return 0;
    }
    CompiledProgram p = Toolchain.lower(m, model, twoStreams
        ? Toolchain.backendOptions(target).withSecondStream(graph.overlapAttention
            ? HfOptions.OVERLAPPED_ATTENTION : HfOptions.DECODE_ATTENTION,
            StepModel.DECODE_STREAM_SHARE)
        : Toolchain.backendOptions(target));
    p.notes().forEach(note -> spec.commandLine().getErr().println("note: " + note));
    if (report) {
      out.print(p.report());
    }
    if (emit.equals("asm")) {
      write(p.assembly(), out);
      return 0;
    }
    if (output == null) {
      throw new CommandLine.ParameterException(spec.commandLine(), "-o FILE is required for --emit bin");
    }
    p.write(output);
    return 0;
  }

  private boolean autoQuantize() {
    return quantize.strip().equalsIgnoreCase("auto");
  }

  /** Applies --quantize (after the default pipeline and sharding); null for none. */
  private QuantReport quantize(Module m) {
    QuantOptions options;
    try {
      boolean auto = autoQuantize();
      QuantMode mode = auto ? Quantizer.autoMode(m) : QuantMode.parse(quantize);
      if (mode == QuantMode.NONE) {
        if (!calibrate.isEmpty() || maxLayerError != null || minOutputCosine != null) {
          throw new IllegalArgumentException("--calibrate, --max-layer-error and --min-output-cosine need --quantize "
              + "bf16, fp8 or int8" + (auto ? " (auto means none here: the weights are not bf16)" : ""));
        }
        return null;
      }
      options = QuantOptions.of(mode).withCalibration(calibrate, TensorFiles::read);
      if (maxLayerError != null) {
        options = options.withMaxLayerError(maxLayerError);
      }
      if (minOutputCosine != null) {
        options = options.withMinOutputCosine(minOutputCosine);
      }
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    try {
      return Quantizer.quantize(m, options);
    } catch (CalibrationException e) {
      throw new UserException(e.getMessage(), e);
    } catch (IllegalArgumentException e) {
      throw new UserException(model + ": " + e.getMessage(), e);
    }
  }

  private void write(String text, PrintWriter out) throws java.io.IOException {
    if (output == null) {
      out.print(text);
      out.flush();
    } else {
      Files.writeString(output, text);
    }
  }
}
