package dev.sohuc.cli;

import dev.sohuc.backend.SymbolTypes;
import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.FunctionalResult;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.emu.TimingReport;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import dev.sohuc.onnx.TensorFiles;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code sohuc run X.sohu --inputs DIR --output-dir DIR}: loads ONNX TensorProto inputs
 * ({@code input_N.pb}), binds them to the program's input symbols (by name when the file names
 * one of them, else by position), binds the symbolic dims from their shapes, runs the emulator
 * and writes {@code output_N.pb} with the output symbols' names.
 */
@Command(name = "run", mixinStandardHelpOptions = true,
    description = "Run a .sohu program on the emulator (functional: real numbers; timing: the "
        + "cost model).")
final class RunCommand implements Callable<Integer> {

  @Parameters(index = "0", paramLabel = "PROGRAM", description = "The .sohu file.")
  Path program;

  @Option(names = "--inputs", paramLabel = "DIR",
      description = "Folder with input_0.pb, input_1.pb, ... (ONNX TensorProto files).")
  Path inputs;

  @Option(names = "--output-dir", paramLabel = "DIR",
      description = "Where output_0.pb, output_1.pb, ... are written (functional mode).")
  Path outputDir;

  @Option(names = "--mode", defaultValue = "functional",
      description = "functional (default) or timing.")
  String mode;

  @Option(names = "--trace", paramLabel = "FILE",
      description = "Timing mode: write a Chrome/Perfetto trace.")
  Path trace;

  @Option(names = "--profile", arity = "0..1", fallbackValue = "25", paramLabel = "N",
      description = "Timing mode: print the N ops (default 25) that took the most time, and the "
          + "time of each op kind.")
  Integer profile;

  @Option(names = "--report", description = "Print the run's summary (timing mode: cycles, "
      + "per-engine busy time, MFU, HBM bytes).")
  boolean report;

  @Option(names = "--target", paramLabel = "FILE",
      description = "Machine description JSON (default: the built-in sohu target).")
  Path target;

  @Option(names = "--max-instructions", paramLabel = "N",
      description = "Trap after N instructions (default ${DEFAULT-VALUE}).",
      defaultValue = "" + Options.DEFAULT_MAX_INSTRUCTIONS)
  long maxInstructions;

  @Option(names = "--max-cycles", paramLabel = "N",
      description = "Functional mode: trap once the instructions run add up to N cycles of "
          + "engine time by the cost model (default ${DEFAULT-VALUE}).",
      defaultValue = "" + Options.DEFAULT_MAX_CYCLES)
  long maxCycles;

  @Option(names = "--shape", paramLabel = "SYMBOL=N",
      description = "A symbolic dimension's value (seq=128); for timing mode without inputs.")
  List<String> shapes = new ArrayList<>();

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    if (!mode.equals("functional") && !mode.equals("timing")) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--mode must be functional or timing, got " + mode);
    }
    boolean functional = mode.equals("functional");
    if (profile != null && (functional || profile <= 0)) {
      throw new CommandLine.ParameterException(spec.commandLine(), functional
          ? "--profile needs --mode timing" : "--profile N must be positive");
    }
    if (functional && inputs == null) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "functional mode needs --inputs DIR");
    }
    if (maxInstructions <= 0 || maxCycles <= 0) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          (maxInstructions <= 0 ? "--max-instructions" : "--max-cycles") + " must be positive");
    }
    Map<String, Long> args = new LinkedHashMap<>();
    ShapeBindings bindings = ShapeBindings.parse(shapes, spec.commandLine());
    if (!bindings.inputShapes().isEmpty()) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "run --shape takes SYMBOL=N, not shapes");
    }
    args.putAll(bindings.dimBindings());

    SohuProgram p = SohuReader.read(program);
    MachineDescription md = target == null ? MachineDescription.defaultTarget()
        : MachineDescription.load(target);
    Options options = Options.defaults().withMaxInstructions(maxInstructions)
        .withMaxCycles(maxCycles).withProgramFile(program);
    if (trace != null) {
      options = options.withTrace(trace);
    }
    Emulator emu = new Emulator(p, md, options);
    Map<String, HostTensor> in = inputs == null ? Map.of() : bindInputs(p, inputs);

    if (!functional) {
      if (!in.isEmpty()) {
        // the dims implied by the input files, unless --shape gave them
        for (SohuProgram.Symbol s : p.symbols()) {
          HostTensor t = in.get(s.name());
          if (t == null) {
            continue;
          }
          for (int i = 0; i < s.shape().size(); i++) {
            if (s.shape().get(i) instanceof SohuProgram.Dim.Sym sym) {
              args.putIfAbsent(sym.name(), t.shape()[i]);
            }
          }
        }
      }
      Map<String, long[]> arrays = new LinkedHashMap<>(emu.arrayValues(in));
      for (SohuProgram.ArgSlot a : p.args()) {
        if (a.isArray() && !arrays.containsKey(a.name())) {
          arrays.put(a.name(), uniformArray(p, a, args));
        }
      }
      long t0 = System.nanoTime();
      TimingReport r = emu.runTiming(args, arrays);
      if (report) {
        out.print(r.render());
        out.printf(Locale.ROOT, "emulated in %.3f s%n", (System.nanoTime() - t0) / 1e9);
      } else {
        out.printf(Locale.ROOT, "%,d cycles, MFU %.1f%%, HBM %,d bytes%n", r.cycles(),
            100 * r.mfu(), r.hbmBytes());
      }
      if (profile != null) {
        out.print(r.renderProfile(profile));
      }
      out.flush();
      return 0;
    }

    long t0 = System.nanoTime();
    FunctionalResult result = emu.runFunctional(in, args);
    double seconds = (System.nanoTime() - t0) / 1e9;
    if (outputDir != null) {
      Files.createDirectories(outputDir);
      int i = 0;
      for (Map.Entry<String, HostTensor> o : result.outputs().entrySet()) {
        HostTensor t = o.getValue();
        TensorFiles.writeRaw(outputDir.resolve("output_" + i++ + ".pb"), o.getKey(),
            SymbolTypes.elementType(t.dtype()), t.shape(), t.data());
      }
    }
    if (report) {
      out.printf(Locale.ROOT, "functional run of %s on %s%n", program.getFileName(), md.name());
      out.printf(Locale.ROOT, "dims              %s%n", result.dims());
      out.printf(Locale.ROOT, "instructions      %,d executed%n", result.instructions());
      out.printf(Locale.ROOT, "wall time         %.3f s%n", seconds);
      for (Map.Entry<String, HostTensor> o : result.outputs().entrySet()) {
        out.printf(Locale.ROOT, "output            %s: %s %s%n", o.getKey(),
            o.getValue().dtype().asmName(), Arrays.toString(o.getValue().shape()));
      }
      // the cost model of the same run, at the same dims
      TimingReport r = new Emulator(p, md, Options.defaults().withMaxInstructions(maxInstructions)
          .withProgramFile(program)).runTiming(result.dims(), emu.arrayValues(in));
      out.print(r.render());
    }
    out.flush();
    return 0;
  }

  /**
   * Timing without input files: an argument array's value for every element of its input from
   * {@code --shape NAME=V} (taken out of the dims), the element count from the input's shape.
   */
  private static long[] uniformArray(SohuProgram p, SohuProgram.ArgSlot a, Map<String, Long> args) {
    Long value = args.remove(a.name());
    if (value == null) {
      throw new UserException("argument array " + a.describe() + " holds the values of input " + a.name()
          + ": give them with --inputs DIR, or one value for every element with --shape " + a.name() + "=N");
    }
    SohuProgram.Symbol input = p.symbols().stream().filter(x -> x.name().equals(a.name())).findFirst()
        .orElseThrow();
    long count = 1;
    for (SohuProgram.Dim d : input.shape()) {
      Long n = d instanceof SohuProgram.Dim.Fixed f ? Long.valueOf(f.size())
          : Emulator.polynomial(((SohuProgram.Dim.Sym) d).name(), args);
      if (n == null) {
        throw new UserException("input " + a.name() + ": its dimension " + d + " is not given (--shape "
            + d + "=N), so its element count is unknown");
      }
      if (n < 0) {
        throw new UserException("input " + a.name() + ": its dimension " + d + " is " + n);
      }
      if (n != 0 && count > a.values().capacity() / n) {
        throw new UserException("input " + a.name() + ": " + input.shape() + " holds more "
            + "elements than the " + a.values().capacity() + " of its argument array");
      }
      count *= n;
    }
    long[] values = new long[(int) count];
    java.util.Arrays.fill(values, value);
    return values;
  }

  /**
   * Matches the files to the input symbols: a file whose stored name is an input's name binds
   * that input; the others bind the remaining inputs in order.
   */
  static Map<String, HostTensor> bindInputs(SohuProgram p, Path dir) {
    List<SohuProgram.Symbol> syms = p.symbols().stream()
        .filter(s -> s.direction() == SohuProgram.Direction.IN).toList();
    if (!Files.isDirectory(dir)) {
      throw new UserException(dir + ": no such folder (expected input_0.pb, input_1.pb, ...)");
    }
    List<InputFile> files = new ArrayList<>();
    for (int i = 0; Files.isRegularFile(dir.resolve("input_" + i + ".pb")); i++) {
      Path file = dir.resolve("input_" + i + ".pb");
      files.add(new InputFile(file, TensorFiles.readNamed(file)));
    }
    if (files.size() > syms.size()) {
      throw new UserException(dir + ": " + files.size() + " input files, but the program has "
          + syms.size() + " inputs (" + names(syms) + ")");
    }
    Map<String, InputFile> byName = new LinkedHashMap<>();
    List<InputFile> unnamed = new ArrayList<>();
    for (InputFile f : files) {
      String name = f.named().name();
      boolean known = syms.stream().anyMatch(s -> s.name().equals(name));
      if (known && !byName.containsKey(name)) {
        byName.put(name, f);
      } else {
        unnamed.add(f);
      }
    }
    Map<String, HostTensor> out = new LinkedHashMap<>();
    int next = 0;
    for (int i = 0; i < syms.size(); i++) {
      SohuProgram.Symbol s = syms.get(i);
      InputFile f = byName.get(s.name());
      if (f == null && next < unnamed.size()) {
        f = unnamed.get(next++);
      }
      if (f == null) {
        throw new UserException("input " + s.name() + " (input " + i + "): missing; " + dir
            + " has no file for it (the program expects " + s.dtype().asmName() + " "
            + s.shape() + ")");
      }
      Tensor t = f.named().tensor();
      DType dt = SymbolTypes.of(t.elementType());
      if (dt != s.dtype()) {
        throw new UserException(f.path() + " holds " + dt.asmName() + ", but input " + s.name()
            + " of the program is " + s.dtype().asmName() + " " + s.shape());
      }
      long[] shape = t.shape();
      boolean ok = shape.length == s.shape().size();
      for (int d = 0; ok && d < shape.length; d++) {
        ok = !(s.shape().get(d) instanceof SohuProgram.Dim.Fixed fx) || fx.size() == shape[d];
      }
      if (!ok) {
        throw new UserException(f.path() + " has shape " + Arrays.toString(shape) + ", but input "
            + s.name() + " of the program is " + s.dtype().asmName() + " " + s.shape());
      }
      out.put(s.name(), new HostTensor(dt, shape, t.toBytes()));
    }
    return out;
  }

  /** An input file and what it holds, so that errors about its tensor name the file. */
  private record InputFile(Path path, TensorFiles.Named named) {}

  private static String names(List<SohuProgram.Symbol> syms) {
    return String.join(", ", syms.stream().map(SohuProgram.Symbol::name).toList());
  }
}
