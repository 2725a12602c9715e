package dev.sohuc.backend;

import dev.sohuc.isa.asm.Disassembler;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuWriter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * The result of {@link SohuBackend#compile}: the container model plus what the compiler learned
 * about it (for {@code --report}).
 *
 * @param program the .sohu program (code, constants, symbols, debug, metadata, argument block)
 * @param hbmBytes HBM the program uses at the symbols' upper bounds (constants, inputs,
 *     outputs and the activation arena)
 * @param arenaBytes the activation arena after liveness-based reuse
 * @param arenaBytesWithoutReuse what the arena would take if no buffer were reused
 * @param maxSramBytes the largest SRAM footprint of any op
 * @param notes what the compiler decided that the user did not ask for (e.g. a symbol's bound
 *     lowered so that the program fits HBM)
 */
public record CompiledProgram(SohuProgram program, long hbmBytes, long arenaBytes,
    long arenaBytesWithoutReuse, long maxSramBytes, List<String> notes) {

  public CompiledProgram {
    notes = List.copyOf(notes);
  }

  /** The program as assembly that {@code sohuc asm} re-assembles. */
  public String assembly() {
    return Disassembler.format(program, "<compiled>");
  }

  public byte[] bytes() {
    return SohuWriter.write(program);
  }

  public void write(Path file) throws IOException {
    SohuWriter.write(program, file);
  }

  public int instructionCount() {
    return program.code().size();
  }

  /** A few lines for {@code sohuc compile --report}. */
  public String report() {
    return String.format("code: %d instructions (%d bytes)%n"
        + "constants: %d bytes%n"
        + "HBM: %d bytes at the symbol bounds (arena %d bytes, %d without reuse)%n"
        + "SRAM: at most %d bytes in one op%n",
        instructionCount(), instructionCount() * 16L,
        program.constants() == null ? 0 : program.constants().size(), hbmBytes, arenaBytes,
        arenaBytesWithoutReuse, maxSramBytes);
  }
}
