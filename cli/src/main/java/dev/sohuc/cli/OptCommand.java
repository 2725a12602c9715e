package dev.sohuc.cli;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.text.IrPrinter;
import dev.sohuc.passes.Pass;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code sohuc opt FILE.ir --passes a,b,c}: runs a pass pipeline on IR text and prints the result. */
@Command(name = "opt", mixinStandardHelpOptions = true,
    description = {
      "Parses IR text, runs the given passes (verifying after each) and prints the resulting IR.",
      "Passes: canonicalize, fold-constants, cse, dce, fuse-layer-norm, fuse-rms-norm, fuse-gelu,",
      "fuse-silu, fuse-rope, fuse-attention; 'default' is the default optimization pipeline."})
final class OptCommand implements Callable<Integer> {

  @Parameters(paramLabel = "FILE.ir", description = "IR text to optimize")
  Path file;

  @Option(names = "--passes", paramLabel = "A,B,C", defaultValue = PassPipelines.DEFAULT_NAME,
      description = "comma-separated passes to run in order (default: ${DEFAULT-VALUE})")
  String passes;

  @CommandLine.Mixin PrintIrOptions printIr = new PrintIrOptions();

  @Option(names = "--report", description = "print the fusion report and per-pass time and memory")
  boolean report;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    List<Pass> pipeline;
    try {
      pipeline = PassPipelines.parse(passes);
    } catch (PassPipelines.UnknownPassException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    printIr.checkNames(spec.commandLine());
    Module module = IrParser.parse(file);
    PassManager pm = new PassManager(pipeline);
    printIr.apply(pm, out);
    PassManager.Report r = pm.run(module);
    if (printIr.any()) {
      out.println("// ----- final IR -----");
    }
    out.print(IrPrinter.print(module));
    if (report) {
      out.print(r.fusion().render());
      out.print(r.renderTimings());
    }
    out.flush();
    return 0;
  }
}
