package dev.sohuc.cli;

import dev.sohuc.isa.asm.Assembler;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuWriter;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code sohuc asm FILE.s -o X.sohu}: assembles sohu assembly into a .sohu container. */
@Command(name = "asm", mixinStandardHelpOptions = true,
    description = "Assemble sohu assembly (docs/isa.md) into a .sohu file.")
final class AsmCommand implements Callable<Integer> {
  /** The largest string the JVM makes, so the largest assembly file. */
  private static final long MAX_SOURCE_BYTES = Integer.MAX_VALUE - 8;

  @Parameters(index = "0", paramLabel = "FILE.s", description = "Assembly source.")
  Path source;

  @Option(names = {"-o", "--output"}, required = true, paramLabel = "X.sohu",
      description = "Output .sohu file.")
  Path output;

  @Override
  public Integer call() throws Exception {
    String text;
    try {
      // a Java string holds at most 2^31 - 1 characters: refuse before reading, not by running
      // out of memory
      long size = Files.size(source);
      if (size > MAX_SOURCE_BYTES) {
        throw new UserException(source + ": " + size + " bytes, more than the "
            + MAX_SOURCE_BYTES + " an assembly file may have");
      }
      text = Files.readString(source, StandardCharsets.UTF_8);
    } catch (CharacterCodingException e) {
      throw new UserException(source + ": not UTF-8 text");  // as the IR parser says it
    }
    SohuProgram program = Assembler.assemble(text, source.toString());
    SohuWriter.write(program, output);
    return 0;
  }
}
