package dev.sohuc.isa;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.asm.Assembler;
import dev.sohuc.isa.asm.Disassembler;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** decode(encode(i)) == i, and asm(disasm(w)) == w, over random legal field values. */
class CodecPropertyTest {
  private static final int CASES_PER_INSTRUCTION = 400;

  static long[] randomFields(InsnDef d, Random rnd) {
    List<Field> fields = d.operandFields();
    long[] raw = new long[fields.size()];
    for (int i = 0; i < raw.length; i++) {
      Field f = fields.get(i);
      raw[i] = switch (f.kind()) {
        case REG -> rnd.nextInt(32);
        case FLAG -> rnd.nextInt(2);
        case F32 -> rnd.nextInt() & 0xFFFF_FFFFL;
        case ENUM -> f.allowed().get(rnd.nextInt(f.allowed().size())).ordinal();
        case UIMM, SIMM -> {
          if (f.width() == 64) {
            yield rnd.nextLong();
          }
          long v = switch (rnd.nextInt(4)) {
            case 0 -> f.min();
            case 1 -> f.max();
            default -> f.min() + Math.floorMod(rnd.nextLong(), f.max() - f.min() + 1);
          };
          yield v;
        }
        case OPCODE, RESERVED -> 0;
      };
    }
    return raw;
  }

  @Test
  void encodeDecodeIsIdentityAndDisassemblyReassembles() {
    long seed = Long.getLong("seed", System.nanoTime());
    System.out.println("CodecPropertyTest seed: " + seed + " (rerun with -Dseed=" + seed + ")");
    Random rnd = new Random(seed);
    int cases = 0;
    for (InsnDef d : InsnTable.all()) {
      for (int c = 0; c < CASES_PER_INSTRUCTION; c++) {
        long[] raw = randomFields(d, rnd);
        Word w = InsnCodec.encode(d, raw);
        Insn insn = InsnCodec.decode(w);
        assertEquals(d, insn.def());
        assertArrayEquals(raw, InsnCodec.rawFields(insn), d.mnemonic() + " seed " + seed);
        assertEquals(w, InsnCodec.encode(insn), d.mnemonic() + " seed " + seed);
        String text = Disassembler.format(insn);
        List<Word> again = Assembler.assembleCode(text, "random.s");
        assertEquals(List.of(w), again, text + " seed " + seed);
        cases++;
      }
    }
    assertTrue(cases > 10_000);
  }

  @Test
  void allZeroAndAllOnesWordsAreIllegal() {
    IllegalInstructionException zero = assertThrows(IllegalInstructionException.class,
        () -> InsnCodec.decode(new Word(0, 0)));
    assertTrue(zero.getMessage().contains("opcode 0x00 is reserved illegal"), zero.getMessage());
    IllegalInstructionException ones = assertThrows(IllegalInstructionException.class,
        () -> InsnCodec.decode(new Word(-1, -1)));
    assertTrue(ones.getMessage().contains("opcode 0xff is reserved illegal"), ones.getMessage());
  }

  @Test
  void reservedBitsAndOutOfRangeFieldsAreRejected() {
    InsnDef halt = InsnTable.byMnemonic("halt");
    Word w = InsnCodec.encode(halt, new long[] {0, 0}).withBits(100, 1, 1);
    assertThrows(IllegalInstructionException.class, () -> InsnCodec.decode(w));
    InsnDef mma = InsnTable.byMnemonic("mma");
    Word zeroM = InsnCodec.encode(new Insn.Mma(1, 0, 2, 3, 0, 4, 5, 0, 6, 16, 16, 0, 64, DType.BF16,
        false, false, false, 0, 0)).withBits(mma.field("m").lo(), 8, 0);
    IllegalInstructionException e = assertThrows(IllegalInstructionException.class,
        () -> InsnCodec.decode(zeroM));
    assertTrue(e.getMessage().contains("field m = 0 is out of range (1..128)"), e.getMessage());
    Word i32 = zeroM.withBits(mma.field("m").lo(), 8, 1)
        .withBits(mma.field("dtype").lo(), 3, DType.I32.ordinal());
    assertThrows(IllegalInstructionException.class, () -> InsnCodec.decode(i32));
  }

  @Test
  void encodeRejectsValuesThatDoNotFit() {
    IsaException e = assertThrows(IsaException.class, () -> InsnCodec.encode(
        new Insn.Shli(1, 2, 64, 0, 0)));
    assertTrue(e.getMessage().contains("shamt"), e.getMessage());
  }

  @Test
  void workFollowsTheCostFormula() {
    Insn mma = new Insn.Mma(1, 0, 2, 3, 0, 4, 5, 0, 6, 128, 64, 7, 100, DType.BF16, false, false,
        true, 0, 0);
    assertEquals(128L * 64 * (1000 + 100), Cost.workOf(mma, r -> r == 7 ? 1000 : 0));
  }
}
