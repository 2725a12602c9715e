package dev.sohuc.cli;

import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.FunctionalResult;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.onnx.TensorFiles;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code sohuc test DIR...}: runs cases in the ONNX backend-test layout ({@code model.onnx},
 * {@code test_data_set_N/input_N.pb}, {@code output_N.pb}). Each case is compiled once, run on
 * the functional emulator for every data set, and compared output by output with
 * {@code |got - want| <= tol * max(1, |want|)}. A DIR is a case, or a folder of cases.
 */
@Command(name = "test", mixinStandardHelpOptions = true,
    description = "Compile, emulate and check ONNX backend-test cases (model.onnx + "
        + "test_data_set_N/); prints PASS/FAIL per case, exits 1 if any failed.")
final class TestCommand implements Callable<Integer> {

  @Parameters(arity = "1..*", paramLabel = "DIR",
      description = "A case folder (with model.onnx) or a folder of case folders.")
  List<Path> dirs;

  @Option(names = "--tolerance", paramLabel = "TOL", defaultValue = "1e-4",
      description = "Relative tolerance: |got - want| <= TOL * max(1, |want|) "
          + "(default ${DEFAULT-VALUE}).")
  double tolerance;

  @Option(names = "--target", paramLabel = "FILE",
      description = "Machine description JSON (default: the built-in sohu target).")
  Path target;

  @Option(names = "--max-instructions", paramLabel = "N",
      description = "Trap after N instructions per run (default ${DEFAULT-VALUE}).",
      defaultValue = "" + Options.DEFAULT_MAX_INSTRUCTIONS)
  long maxInstructions;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** Why a case failed; the message is what follows {@code FAIL name: }. */
  static final class CaseFailure extends Exception {
    CaseFailure(String message) {
      super(message);
    }
  }

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    if (!(tolerance >= 0)) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--tolerance must be a non-negative number, got " + tolerance);
    }
    List<Path> cases = new ArrayList<>();
    for (Path d : dirs) {
      cases.addAll(casesIn(d));
    }
    MachineDescription md = target == null ? MachineDescription.defaultTarget()
        : MachineDescription.load(target);
    int passed = 0;
    int failed = 0;
    for (Path c : cases) {
      String name = c.getFileName().toString();
      try {
        double err = runCase(c, md);
        out.printf(Locale.ROOT, "PASS %s (max error %.3g)%n", name, err);
        passed++;
      } catch (CaseFailure e) {
        out.println("FAIL " + name + ": " + e.getMessage());
        failed++;
      } catch (RuntimeException | StackOverflowError | OutOfMemoryError e) {
        // an unsupported op, a backend gap, a trap: this case fails, the run goes on
        String why = UserErrors.isUserError(e) ? UserErrors.message(e)
            : e.getClass().getSimpleName() + ": " + e.getMessage();
        out.println("FAIL " + name + ": " + why);
        failed++;
      }
      out.flush();
    }
    out.printf("%d passed, %d failed%n", passed, failed);
    out.flush();
    return failed == 0 ? 0 : Sohuc.EXIT_BAD_INPUT;
  }

  /** The case folders named by one argument, sorted by name. */
  static List<Path> casesIn(Path dir) throws IOException {
    if (Files.isRegularFile(dir.resolve("model.onnx"))) {
      return List.of(dir);
    }
    if (!Files.isDirectory(dir)) {
      throw new UserException(dir + ": no such folder");
    }
    List<Path> cases;
    try (Stream<Path> s = Files.list(dir)) {
      cases = s.filter(p -> Files.isRegularFile(p.resolve("model.onnx"))).sorted().toList();
    }
    if (cases.isEmpty()) {
      throw new UserException(dir + ": no model.onnx in it or in its subfolders");
    }
    return cases;
  }

  /** Compiles once, runs every data set; returns the largest relative error over all outputs. */
  private double runCase(Path dir, MachineDescription md) throws IOException, CaseFailure {
    List<Path> sets;
    try (Stream<Path> s = Files.list(dir)) {
      sets = s.filter(p -> p.getFileName().toString().startsWith("test_data_set_")
          && Files.isDirectory(p)).sorted().toList();
    }
    if (sets.isEmpty()) {
      throw new CaseFailure("no test_data_set_N folder");
    }
    Path model = dir.resolve("model.onnx");
    SohuProgram p = Toolchain.compile(model, ShapeBindings.parse(List.of()), target)
        .program().program();
    double worst = 0;
    for (Path set : sets) {
      Map<String, HostTensor> in = RunCommand.bindInputs(p, set);
      FunctionalResult r = new Emulator(p, md, Options.defaults()
          .withMaxInstructions(maxInstructions)).runFunctional(in, Map.of());
      worst = Math.max(worst, compare(set, r.outputs()));
    }
    return worst;
  }

  /** Checks each output_N.pb against the output of its name (else the N-th output). */
  private double compare(Path set, Map<String, HostTensor> outputs)
      throws CaseFailure, IOException {
    List<HostTensor> byPosition = List.copyOf(outputs.values());
    String where = set.getFileName().toString();
    List<String> files = outputFiles(set);
    // a file past the model's outputs expects more than the model gives: read by name it
    // would check an output another file already covers
    Set<String> compared = IntStream.range(0, byPosition.size()).mapToObj(TestCommand::outputFile)
        .collect(Collectors.toSet());
    Optional<String> extra = files.stream().filter(f -> !compared.contains(f)).findFirst();
    if (extra.isPresent()) {
      throw new CaseFailure(where + ": " + extra.get() + " has no output to compare with: the "
          + "model has " + byPosition.size() + (byPosition.size() == 1 ? " output" : " outputs"));
    }
    double worst = 0;
    int n = 0;
    for (; files.contains(outputFile(n)); n++) {
      TensorFiles.Named want = TensorFiles.readNamed(set.resolve(outputFile(n)));
      HostTensor got = outputs.get(want.name());
      String label = want.name() == null || want.name().isEmpty() ? "output " + n : want.name();
      if (got == null) {
        got = byPosition.get(n);
      }
      Tensor g = Toolchain.toTensor(got);
      Tensor w = want.tensor();
      if (!Arrays.equals(g.shape(), w.shape())) {
        throw new CaseFailure(where + ": " + label + " has shape " + Arrays.toString(g.shape())
            + ", expected " + Arrays.toString(w.shape()));
      }
      // values compare as doubles, so an i64 file of zeros would pass for an f32 output of zeros
      if (g.elementType() != w.elementType()) {
        throw new CaseFailure(where + ": " + label + " is " + g.elementType() + ", expected "
            + w.elementType());
      }
      double err = 0;
      int at = -1;
      for (int i = 0; i < w.size(); i++) {
        double a = g.get(i);
        double b = w.get(i);
        // NaN where NaN is expected matches, as numpy's assert_allclose has it for ONNX's tests
        double e = a == b || Double.isNaN(a) && Double.isNaN(b) ? 0
            : Math.abs(a - b) / Math.max(1, Math.abs(b));
        if (Double.isNaN(e)) {
          e = Double.POSITIVE_INFINITY;
        }
        if (e > err) {
          err = e;
          at = i;
        }
      }
      if (err > tolerance) {
        throw new CaseFailure(String.format(Locale.ROOT,
            "%s: %s max error %.3g > %.3g (element %d: got %s, expected %s)", where, label, err,
            tolerance, at, g.get(at), w.get(at)));
      }
      worst = Math.max(worst, err);
    }
    if (n == 0) {
      throw new CaseFailure(where + ": no output_0.pb");
    }
    // the files are read up to the first missing one: a later one would go unchecked
    for (int later = n + 1; later < byPosition.size(); later++) {
      if (files.contains(outputFile(later))) {
        throw new CaseFailure(where + ": " + outputFile(n) + " is missing, but "
            + outputFile(later) + " is there");
      }
    }
    return worst;
  }

  private static String outputFile(int n) {
    return "output_" + n + ".pb";
  }

  /** The set's output_N.pb file names, sorted. */
  private static List<String> outputFiles(Path set) throws IOException {
    try (Stream<Path> s = Files.list(set)) {
      return s.filter(Files::isRegularFile).map(p -> p.getFileName().toString())
          .filter(f -> f.matches("output_\\d+\\.pb")).sorted().toList();
    }
  }
}
