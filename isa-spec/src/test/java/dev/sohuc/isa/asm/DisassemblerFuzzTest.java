package dev.sohuc.isa.asm;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.sohuc.isa.IllegalInstructionException;
import dev.sohuc.isa.Word;
import java.util.List;

/**
 * Jazzer fuzz target for the disassembler: any 16 bytes either decode, print and re-assemble to
 * the same word, or are rejected as an illegal instruction. Replays its corpus without JAZZER_FUZZ.
 */
class DisassemblerFuzzTest {

  @FuzzTest(maxDuration = "30s")
  void disassemble(byte[] data) {
    byte[] w = java.util.Arrays.copyOf(data, Word.BYTES);
    Word word = Word.fromBytes(w, 0);
    String text;
    try {
      text = Disassembler.format(word);
    } catch (IllegalInstructionException expected) {
      return;
    }
    List<Word> again = Assembler.assembleCode(text, "fuzz.s");
    if (!again.equals(List.of(word))) {
      throw new AssertionError(text + " re-assembles to " + again + ", not " + word);
    }
  }
}
