package dev.sohuc.cli;

import dev.sohuc.isa.asm.Disassembler;
import dev.sohuc.isa.container.SohuReader;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code sohuc disasm X.sohu}: prints assembly that re-assembles to the same file. */
@Command(name = "disasm", mixinStandardHelpOptions = true,
    description = "Print a .sohu file as assembly; `sohuc asm` of the output gives the same file.")
final class DisasmCommand implements Callable<Integer> {

  @Parameters(index = "0", paramLabel = "X.sohu", description = "The program.")
  Path file;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    String text = Disassembler.format(SohuReader.read(file), file.toString());
    spec.commandLine().getOut().print(text);
    spec.commandLine().getOut().flush();
    return 0;
  }
}
