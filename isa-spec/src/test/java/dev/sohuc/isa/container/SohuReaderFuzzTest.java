package dev.sohuc.isa.container;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.asm.Disassembler;

/**
 * Jazzer fuzz target for the loader (and the disassembler behind it). Without JAZZER_FUZZ=1 it
 * replays the inputs under src/test/resources/dev/sohuc/isa/container/SohuReaderFuzzTestInputs.
 */
class SohuReaderFuzzTest {

  @FuzzTest(maxDuration = "30s")
  void load(byte[] data) {
    try {
      SohuProgram p = SohuReader.read(data, "fuzz.sohu");
      SohuWriter.write(p);
      Disassembler.format(p, "fuzz.sohu");
    } catch (IsaException expected) {
      // the only exception the loader may raise
    }
  }
}
