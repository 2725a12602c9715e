package dev.sohuc.isa.asm;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import dev.sohuc.isa.container.SohuWriter;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Timeout;

/**
 * Jazzer fuzz target for the assembler: any text either assembles to a program that writes, reads
 * back and disassembles to text that assembles to the same bytes, or is refused with a one-line
 * {@link IsaException} naming the file.
 * Without JAZZER_FUZZ=1 it replays the inputs under
 * src/test/resources/dev/sohuc/isa/asm/AssemblerFuzzTestInputs.
 */
class AssemblerFuzzTest {

  @Timeout(value = 10, unit = TimeUnit.SECONDS)
  @FuzzTest(maxDuration = "60s")
  void assemble(byte[] data) {
    String text = new String(data, StandardCharsets.UTF_8);
    SohuProgram p;
    try {
      p = Assembler.assemble(text, "fuzz.s");
    } catch (IsaException e) {
      if (e.getMessage() == null || !e.getMessage().startsWith("fuzz.s:")
          || e.getMessage().contains("\n")) {
        throw new AssertionError("not a one-line message naming the file: " + e.getMessage(), e);
      }
      return;
    }
    byte[] bytes = SohuWriter.write(p);
    String listing = Disassembler.format(SohuReader.read(bytes, "fuzz.sohu"), "fuzz.sohu");
    if (!Arrays.equals(bytes, SohuWriter.write(Assembler.assemble(listing, "listing.s")))) {
      throw new AssertionError("the disassembly does not re-assemble to the same bytes:\n" + listing);
    }
  }
}
