package dev.sohuc.isa.asm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.InsnDef;
import dev.sohuc.isa.InsnTable;
import dev.sohuc.isa.MemSpace;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import dev.sohuc.isa.container.SohuWriter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/** asm -> .sohu -> disasm -> asm gives identical bytes, on a program using every instruction. */
class AsmRoundTripTest {

  static String resource(String name) throws IOException {
    try (InputStream in = AsmRoundTripTest.class.getResourceAsStream("/" + name)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  @Test
  void everyInstructionRoundTripsByteForByte() throws IOException {
    String source = resource("every-instruction.s");
    SohuProgram p1 = Assembler.assemble(source, "every-instruction.s");
    byte[] bin1 = SohuWriter.write(p1);
    String text1 = Disassembler.format(SohuReader.read(bin1, "a.sohu"), "a.sohu");
    byte[] bin2 = SohuWriter.write(Assembler.assemble(text1, "disasm.s"));
    assertArrayEquals(bin1, bin2);
    String text2 = Disassembler.format(SohuReader.read(bin2, "b.sohu"), "b.sohu");
    assertEquals(text1, text2);

    Set<String> used = new TreeSet<>();
    for (int pc = 0; pc < p1.code().size(); pc++) {
      used.add(p1.decode(pc).def().mnemonic());
    }
    Set<String> all = new TreeSet<>();
    InsnTable.all().forEach(d -> all.add(d.mnemonic()));
    assertEquals(all, used, "every-instruction.s must use every instruction");
    assertEquals(3, p1.symbols().size());
    assertEquals(new SohuProgram.Dim.Sym("past", 64), p1.symbols().get(2).shape().get(2));
    assertEquals(1, p1.debug().size());
  }

  /** ldarg's rs took reserved bits: without it, the word is the one ldarg always had. */
  @Test
  void ldargRegisterIndexIsOptionalAndKeepsTheOldEncoding() {
    Word plain = Assembler.assembleCode("ldarg r3, 5", "a.s").get(0);
    assertEquals(new Word(0x05 | 3L << 18 | 5L << 23, 0), plain);
    assertEquals(plain, Assembler.assembleCode("ldarg r3, 5, r0", "b.s").get(0));
    assertEquals("ldarg    r3, 5", Disassembler.format(plain));
    Word indexed = Assembler.assembleCode("ldarg r3, 5, r7", "c.s").get(0);
    assertEquals(new Word(0x05 | 3L << 18 | 5L << 23 | 7L << 39, 0), indexed);
    assertEquals(new Insn.Ldarg(3, 5, 7, 0, 0), InsnCodec.decode(indexed));
    assertEquals("ldarg    r3, 5, r7", Disassembler.format(indexed));
    assertEquals("ldarg    r3, 5, signal=2",
        Disassembler.format(Assembler.assembleCode("ldarg r3, 5, signal=2", "d.s").get(0)));
  }

  /**
   * reducescatter and allgather take the same operands in the same bits: each assembles to its
   * record, with chips, rank, rows and the strides in the bits the table gives them, and prints
   * back the same, leaving out the keywords at their defaults.
   */
  @Test
  void blockCollectivesAssembleToTheirRecords() {
    String rsText = "reducescatter hbm, r8, r9+4096, r10+65535, bf16, 8, 3, rows=r11+1023, "
        + "sstride=r12, dstride=r13, signal=2";
    Word rs = Assembler.assembleCode(rsText, "a.s").get(0);
    assertEquals(new Insn.Reducescatter(MemSpace.HBM, 8, 0, 9, 4096, 10, 65535, DType.BF16, 8, 3,
        11, 1023, 12, 13, 0, 2), InsnCodec.decode(rs));
    assertEquals(0x29, rs.bits(0, 8));
    assertEquals(10, rs.bits(62, 5), "elems register");
    assertEquals(65535, rs.bits(67, 16), "elems immediate: 16 bits");
    assertEquals(DType.BF16.ordinal(), rs.bits(83, 3));
    assertEquals(8, rs.bits(86, 7));
    assertEquals(3, rs.bits(93, 7));
    assertEquals(11, rs.bits(100, 5), "rows register");
    assertEquals(1023, rs.bits(105, 10), "rows immediate");
    assertEquals(12, rs.bits(115, 5));
    assertEquals(13, rs.bits(120, 5));
    assertEquals(0, rs.bits(125, 3), "reserved");
    assertEquals(rsText, Disassembler.format(rs).replaceAll("\\s+", " "));

    String agText = "allgather sram, r11-8, r12, r13+1024, f32, 64, 63, wait=1";
    Word ag = Assembler.assembleCode(agText, "b.s").get(0);
    Insn.Allgather decoded = (Insn.Allgather) InsnCodec.decode(ag);
    assertEquals(new Insn.Allgather(MemSpace.SRAM, 11, -8, 12, 0, 13, 1024, DType.F32, 64, 63, 0,
        1, 0, 0, 1, 0), decoded, "one packed row by default");
    assertEquals(0x2A, ag.bits(0, 8));
    assertEquals(agText, Disassembler.format(ag).replaceAll("\\s+", " "));
    assertEquals(Assembler.assembleCode(agText.replace(", wait", ", rows=1, sstride=r0, "
        + "dstride=r0, wait"), "c.s").get(0), ag, "the defaults written out");
    assertEquals(false, decoded.isFence());
    assertEquals(6, decoded.linkSteps(), "log2(64) steps of recursive doubling");
    for (String fenceText : new String[] {"reducescatter hbm, 0, 0, 0, f32, 6, 0",
        "reducescatter hbm, 0, 0, r5, f32, 6, 0, rows=0"}) {
      Insn.Reducescatter fence = (Insn.Reducescatter) InsnCodec.decode(
          Assembler.assembleCode(fenceText, "d.s").get(0));
      assertEquals(true, fence.isFence(), fenceText);
      assertEquals(5, fence.linkSteps(), "a ring of 6 chips: 5 steps");
    }
    Insn.Allgather rowsInARegister = (Insn.Allgather) InsnCodec.decode(
        Assembler.assembleCode("allgather hbm, 0, 0, 4, f32, 6, 0, rows=r7", "e.s").get(0));
    assertEquals(false, rowsInARegister.isFence(), "r7 may hold rows: not known to be none");
  }

  @Test
  void argumentArraysRoundTrip() {
    String source = """
        .arg past, 0
        .arg "positions", 1, 128, past
        .arg batch, 129
            halt
        """;
    SohuProgram p = Assembler.assemble(source, "a.s");
    assertEquals(List.of(new SohuProgram.ArgSlot("past", 0), new SohuProgram.ArgSlot("batch",
        129), new SohuProgram.ArgSlot("positions", 1, new SohuProgram.ArgSlot.Values(128,
        "past"))), p.args(), "dims first, then arrays");
    assertEquals(130, p.argWords());
    String text = Disassembler.format(p, "a.sohu");
    assertTrue(text.contains(".arg \"positions\", 1, 128, \"past\"\n"), text);
    SohuProgram again = Assembler.assemble(text, "b.s");
    assertEquals(p, again);
    assertArrayEquals(SohuWriter.write(p), SohuWriter.write(again));
    assertEquals(text, Disassembler.format(SohuReader.read(SohuWriter.write(again), "c.sohu"),
        "a.sohu"));
  }

  @Test
  void everyDocExampleAssemblesAndPrintsBackTheSame() {
    for (InsnDef d : InsnTable.all()) {
      String ex = d.example();
      String source = ex.contains("done") ? ex + "\n nop\ndone: halt\n" : ex;
      var words = Assembler.assembleCode(source, d.mnemonic() + "-example.s");
      String printed = Disassembler.format(words.get(0));
      assertEquals(d.mnemonic(), printed.split(" ")[0]);
      assertTrue(words.size() >= 1);
      if (!ex.contains("done")) {
        assertEquals(normalize(ex), normalize(printed), "example of " + d.mnemonic());
      }
    }
  }

  private static String normalize(String s) {
    return s.replaceAll("\\s+", " ").trim();
  }
}
