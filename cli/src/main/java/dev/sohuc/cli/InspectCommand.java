package dev.sohuc.cli;

import dev.sohuc.isa.Engine;
import dev.sohuc.isa.IllegalInstructionException;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code sohuc inspect X.sohu}: header, sections, symbols, instruction counts. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
    description = "Summarize a .sohu file: header, sections, symbols, instruction mix.")
final class InspectCommand implements Callable<Integer> {

  @Parameters(index = "0", paramLabel = "X.sohu", description = "The program.")
  Path file;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    SohuProgram p = SohuReader.read(file);
    PrintWriter out = spec.commandLine().getOut();
    out.printf("file:        %s (%d bytes)%n", file, Files.size(file));
    out.printf("format:      sohu %d.%d%n", SohuProgram.VERSION_MAJOR, SohuProgram.VERSION_MINOR);
    out.printf("target:      %s (sha256 %s)%n", p.target().name(), p.target().sha256());
    out.println("sections:");
    out.printf("  %-10s %10d bytes  %d instructions%n", "code", (long) p.code().size() * Word.BYTES,
        p.code().size());
    if (p.constants() instanceof SohuProgram.InlineConstants c) {
      out.printf("  %-10s %10d bytes  at HBM 0x%x%n", "constants", c.size(), c.hbmAddress());
    } else if (p.constants() instanceof SohuProgram.ExternalConstants c) {
      out.printf("  %-10s %10d bytes  at HBM 0x%x, in side file %s%n", "constants", c.size(),
          c.hbmAddress(), c.fileName());
    }
    out.printf("  %-10s %10d entries%n", "symbols", p.symbols().size());
    out.printf("  %-10s %10d entries%n", "debug", p.debug().size());
    out.printf("  %-10s %10d entries%n", "metadata", p.metadata().size());
    out.printf("  %-10s %10d entries%n", "args", p.args().size());
    if (!p.metadata().isEmpty()) {
      out.println("metadata:");
      p.metadata().forEach((k, v) -> out.printf("  %s = %s%n", k, v));
    }
    if (!p.args().isEmpty()) {
      out.println("arguments:");
      for (SohuProgram.ArgSlot a : p.args()) {
        if (a.isArray()) {
          out.printf("  args %d..%d = %s (array: its values, each below %s)%n", a.index(),
              a.index() + a.words() - 1, a.name(), a.values().below());
        } else {
          out.printf("  arg %d = %s%n", a.index(), a.name());
        }
      }
    }
    if (!p.symbols().isEmpty()) {
      out.println("symbols:");
      for (SohuProgram.Symbol s : p.symbols()) {
        out.printf("  %-3s %-20s %-7s [%s]  HBM 0x%x, %d bytes%n",
            s.direction().name().toLowerCase(java.util.Locale.ROOT), s.name(), s.dtype().asmName(),
            s.shape().stream().map(Object::toString).collect(Collectors.joining(" x ")),
            s.hbmAddress(), s.byteSize());
      }
    }
    Map<Engine, Integer> perEngine = new EnumMap<>(Engine.class);
    Map<String, Integer> perMnemonic = new TreeMap<>();
    int illegal = 0;
    for (int pc = 0; pc < p.code().size(); pc++) {
      try {
        Insn insn = p.decode(pc);
        perEngine.merge(insn.engine(), 1, Integer::sum);
        perMnemonic.merge(insn.def().mnemonic(), 1, Integer::sum);
      } catch (IllegalInstructionException e) {
        if (illegal++ == 0) {
          out.printf("warning: pc %d: %s%n", pc, e.getMessage());
        }
      }
    }
    out.println("instructions per engine:");
    for (Engine e : Engine.values()) {
      out.printf("  %-5s %8d%n", e, perEngine.getOrDefault(e, 0));
    }
    if (illegal > 0) {
      out.printf("  %-5s %8d%n", "illegal", illegal);
    }
    out.println("instructions per mnemonic:");
    perMnemonic.forEach((m, n) -> out.printf("  %-10s %8d%n", m, n));
    out.flush();
    return 0;
  }
}
