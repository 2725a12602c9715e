package dev.sohuc.cli;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.text.IrPrinter;
import dev.sohuc.onnx.ImportOptions;
import dev.sohuc.onnx.Preflight;
import dev.sohuc.onnx.PreflightReport;
import dev.sohuc.onnx.TensorFiles;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code sohuc ir MODEL}: import or parse a model, verify it, print its IR or run it. */
@Command(name = "ir", mixinStandardHelpOptions = true,
    description = {
      "Imports a model (.onnx, .ir text, or a Hugging Face config.json / folder), verifies it and prints its IR.",
      "With --run, executes it on the reference interpreter instead.",
      "With --check, reports what an ONNX model needs that sohuc lacks, and its memory."})
final class IrCommand implements Callable<Integer> {

  @Parameters(paramLabel = "MODEL", description = "the model: FILE.onnx, FILE.ir, config.json or its folder")
  Path model;

  @Option(names = "--shape", paramLabel = "NAME=DIMS",
      description = "input_ids=1x128 fixes an input's shape; seq=128 binds a symbolic dim (repeatable)")
  List<String> shapes = new ArrayList<>();

  @CommandLine.Mixin GraphKindOptions graph = new GraphKindOptions();

  @Option(names = "--check", description = "preflight: unsupported ops, unbound dims, memory; exit 1 if unsupported")
  boolean check;

  @Option(names = "--run", description = "run on the reference interpreter")
  boolean run;

  @Option(names = "--inputs", paramLabel = "DIR", description = "with --run: input_0.pb, input_1.pb, ... (ONNX TensorProto)")
  Path inputs;

  @Option(names = "--output-dir", paramLabel = "DIR", description = "with --run: where output_N.pb go")
  Path outputDir;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    ShapeBindings bindings = ShapeBindings.parse(shapes, spec.commandLine());
    if (run && (inputs == null || outputDir == null)) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--run needs --inputs DIR and --output-dir DIR");
    }
    if (!run && (inputs != null || outputDir != null)) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--inputs and --output-dir go with --run");
    }
    if (check) {
      return check(bindings, out);
    }
    Module module = ModelLoader.load(model, bindings,
        graph.options(spec.commandLine()));
    if (run) {
      runInterpreter(module, out);
    } else {
      out.print(IrPrinter.print(module));
    }
    out.flush();
    return 0;
  }

  private int check(ShapeBindings bindings, PrintWriter out) {
    if (ModelLoader.formatOf(model) != ModelLoader.Format.ONNX) {
      Module m = ModelLoader.load(model, bindings,
          graph.options(spec.commandLine()));
      long bytes = m.weights().values().stream().mapToLong(Weight::sizeBytes).sum();
      out.printf("%s: ok, %d ops, %d weights (%,d bytes)%n", model,
          m.functions().stream().mapToInt(f -> f.body().size()).sum(), m.weights().size(), bytes);
      return 0;
    }
    PreflightReport report = Preflight.check(model,
        new ImportOptions(bindings.inputShapes(), bindings.dimBindings()));
    out.print(report.render());
    out.flush();
    return report.ok() ? 0 : Sohuc.EXIT_BAD_INPUT;
  }

  private void runInterpreter(Module module, PrintWriter out) throws IOException {
    Function main = module.main();
    List<Tensor> args = TensorFiles.readInputs(inputs);
    Map<String, Tensor> results = new Interpreter(module).run(main, args);
    Files.createDirectories(outputDir);
    int i = 0;
    for (var e : results.entrySet()) {
      Path file = outputDir.resolve("output_" + i++ + ".pb");
      TensorFiles.write(file, e.getValue(), e.getKey());
      out.printf("%s: %s %s -> %s%n", e.getKey(), e.getValue().elementType(),
          Arrays.toString(e.getValue().shape()), file);
    }
  }
}
