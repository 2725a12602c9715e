package dev.sohuc.isa.container;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.asm.Assembler;
import dev.sohuc.isa.asm.AsmRoundTripTestAccess;
import java.io.InputStream;
import java.util.List;
import java.util.Random;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

/** The .sohu reader accepts what the writer writes and rejects everything else with IsaException. */
class ContainerTest {

  static byte[] sample() throws Exception {
    SohuProgram p = Assembler.assemble(AsmRoundTripTestAccess.everyInstruction(), "e.s");
    SohuProgram withConsts = new SohuProgram(p.target(), p.code(),
        new SohuProgram.InlineConstants(0x40000, new byte[] {1, 2, 3, 4, 5}), p.symbols(),
        p.debug(), p.metadata(), p.args());
    return SohuWriter.write(withConsts);
  }

  @Test
  void roundTripsByteForByte() throws Exception {
    byte[] bin = sample();
    SohuProgram p = SohuReader.read(bin, "x.sohu");
    assertArrayEquals(bin, SohuWriter.write(p));
    assertEquals(p, SohuReader.read(SohuWriter.write(p), "y.sohu"));
    SohuProgram ext = new SohuProgram(p.target(), p.code(), new SohuProgram.ExternalConstants(
        0x1000, 1L << 40, "ab".repeat(32), "x.sohu.const"), List.of(), List.of(),
        p.metadata(), List.of());
    byte[] extBin = SohuWriter.write(ext);
    assertEquals(ext, SohuReader.read(extBin, "z.sohu"));
    assertArrayEquals(extBin, SohuWriter.write(SohuReader.read(extBin, "z.sohu")));
  }

  @Test
  void everyTruncationIsRejectedWithIsaException() throws Exception {
    byte[] bin = sample();
    for (int n = 0; n < bin.length; n++) {
      byte[] cut = java.util.Arrays.copyOf(bin, n);
      IsaException e = assertThrows(IsaException.class, () -> SohuReader.read(cut, "t.sohu"));
      assertTrue(e.getMessage().startsWith("t.sohu: "), e.getMessage());
    }
  }

  @Test
  void randomByteFlipsOnlyEverRaiseIsaException() throws Exception {
    long seed = Long.getLong("seed", System.nanoTime());
    System.out.println("ContainerTest seed: " + seed);
    Random rnd = new Random(seed);
    byte[] bin = sample();
    int rejected = 0;
    for (int i = 0; i < 5000; i++) {
      byte[] bad = bin.clone();
      int flips = 1 + rnd.nextInt(4);
      for (int f = 0; f < flips; f++) {
        int at = rnd.nextInt(rnd.nextBoolean() ? Math.min(bad.length, 256) : bad.length);
        bad[at] = (byte) (rnd.nextBoolean() ? rnd.nextInt(256) : bad[at] ^ (1 << rnd.nextInt(8)));
      }
      try {
        SohuProgram p = SohuReader.read(bad, "f.sohu");
        SohuWriter.write(p);
      } catch (IsaException expected) {
        rejected++;
      } catch (RuntimeException | Error other) {
        fail("seed " + seed + " case " + i + ": " + other, other);
      }
    }
    assertTrue(rejected > 1000, rejected + " rejected");
  }

  @Test
  void messagesNameSectionAndOffset() throws Exception {
    byte[] bin = sample();
    byte[] v2 = bin.clone();
    v2[8] = 2;
    assertEquals("v.sohu: header at byte 8: unsupported format version 2.1 (this sohuc reads 1.1)",
        assertThrows(IsaException.class, () -> SohuReader.read(v2, "v.sohu")).getMessage());
    assertEquals("n.sohu: header at byte 0: bad magic number; not a .sohu file",
        assertThrows(IsaException.class,
            () -> SohuReader.read("hello, this is not a sohu file!!!".getBytes(), "n.sohu"))
            .getMessage());
    byte[] count = bin.clone();
    // The symbols section's count: make it huge; the reader must refuse before allocating.
    SohuProgram p = SohuReader.read(bin, "x");
    int symOff = sectionOffset(bin, SectionKind.SYMBOLS);
    count[symOff + 3] = 0x7F;
    ContainerException e = assertThrows(ContainerException.class,
        () -> SohuReader.read(count, "c.sohu"));
    assertEquals("symbols section", e.section());
    assertEquals(symOff, e.offset());
    assertTrue(e.getMessage().contains("count 2130706435 needs at least"), e.getMessage());
    assertEquals(3, p.symbols().size());
  }

  @Test
  void everyBitFlippedInTheCodeIsRefusedByItsChecksum() throws Exception {
    byte[] bin = sample();
    int entry = entry(bin, SectionKind.CODE);
    byte[] code = section(bin, SectionKind.CODE);
    long stored = crc32c(code);
    assertEquals(stored, java.nio.ByteBuffer.wrap(bin, entry + 4, 4)
        .order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt() & 0xFFFFFFFFL);
    int codeOff = sectionOffset(bin, SectionKind.CODE);
    // every bit of the first four words and of the last (halt)
    int[] words = {0, 1, 2, 3, code.length / Word.BYTES - 1};
    for (int word : words) {
      for (int bit = 0; bit < 8 * Word.BYTES; bit++) {
        byte[] bad = bin.clone();
        bad[codeOff + Word.BYTES * word + bit / 8] ^= (byte) (1 << (bit % 8));
        byte[] badCode = section(bad, SectionKind.CODE);
        String expected = String.format("b.sohu: code section at byte %d: checksum 0x%08x does not "
            + "match the section's bytes (0x%08x); the file is corrupt", entry + 4, stored,
            crc32c(badCode));
        assertEquals(expected, assertThrows(ContainerException.class,
            () -> SohuReader.read(bad, "b.sohu")).getMessage(), "word " + word + " bit " + bit);
      }
    }
  }

  @Test
  void fuzzSeedsAreFilesOfTheCurrentVersion() throws Exception {
    // a seed the version or checksum check refuses would only ever fuzz the header
    for (String seed : List.of("tiny.sohu", "every-instruction.sohu")) {
      byte[] bin;
      try (InputStream in = ContainerTest.class.getResourceAsStream(
          "SohuReaderFuzzTestInputs/load/" + seed)) {
        bin = in.readAllBytes();
      }
      assertArrayEquals(bin, SohuWriter.write(SohuReader.read(bin, seed)), seed);
    }
  }

  @Test
  void argumentArraysRoundTripBesideAnUnchangedArgsSection() {
    SohuProgram p = withArgs(List.of(new SohuProgram.ArgSlot("seq", 0),
        new SohuProgram.ArgSlot("positions", 4, new SohuProgram.ArgSlot.Values(64, "past")),
        new SohuProgram.ArgSlot("past", 1),
        new SohuProgram.ArgSlot("lens", 68, new SohuProgram.ArgSlot.Values(1, "past"))));
    byte[] bin = SohuWriter.write(p);
    assertEquals(p, SohuReader.read(bin, "a.sohu"));
    assertArrayEquals(bin, SohuWriter.write(SohuReader.read(bin, "a.sohu")));
    assertEquals(69, p.argWords());
    // the dims' section holds what a program without arrays holds
    byte[] dimsOnly = SohuWriter.write(withArgs(List.of(new SohuProgram.ArgSlot("seq", 0),
        new SohuProgram.ArgSlot("past", 1))));
    assertArrayEquals(section(dimsOnly, SectionKind.ARGS), section(bin, SectionKind.ARGS));
  }

  @Test
  void readerRejectsArgumentArraysThatOverlapOrOverflow() {
    SohuProgram.ArgSlot.Values four = new SohuProgram.ArgSlot.Values(4, "past");
    byte[] overlapsDim = SohuWriter.write(withArgs(List.of(new SohuProgram.ArgSlot("past", 2),
        new SohuProgram.ArgSlot("pos", 0, four))));
    int at = sectionOffset(overlapsDim, SectionKind.ARG_ARRAYS) + 4;
    assertEquals("o.sohu: arg_arrays section at byte " + at + ": argument pos (words 0..3) "
        + "overlaps argument past (word 2)", assertThrows(ContainerException.class,
            () -> SohuReader.read(overlapsDim, "o.sohu")).getMessage());
    byte[] overlapsArray = SohuWriter.write(withArgs(List.of(new SohuProgram.ArgSlot("a", 10,
        four), new SohuProgram.ArgSlot("b", 7, four))));
    assertTrue(assertThrows(ContainerException.class, () -> SohuReader.read(overlapsArray,
        "o.sohu")).getMessage().endsWith("argument b (words 7..10) overlaps argument a "
        + "(words 10..13)"));
    byte[] sameName = SohuWriter.write(withArgs(List.of(new SohuProgram.ArgSlot("past", 0),
        new SohuProgram.ArgSlot("past", 1, four))));
    assertTrue(assertThrows(ContainerException.class, () -> SohuReader.read(sameName, "n.sohu"))
        .getMessage().endsWith("second argument named \"past\""));
    // capacity 4 at index 65532 fits exactly; patched to 5 it runs past the block
    byte[] big = SohuWriter.write(withArgs(List.of(new SohuProgram.ArgSlot("pos", 65532, four))));
    int entry = sectionOffset(big, SectionKind.ARG_ARRAYS) + 4;
    big[entry + 4 + 3 + 4] = 5;
    assertEquals("b.sohu: arg_arrays section at byte " + entry + ": argument array \"pos\" of 5 "
        + "words at index 65532 is empty or runs past the 65536-word block",
        assertThrows(ContainerException.class, () -> SohuReader.read(big, "b.sohu"))
            .getMessage());
    big[entry + 4 + 3 + 4] = 0;
    assertTrue(assertThrows(ContainerException.class, () -> SohuReader.read(big, "b.sohu"))
        .getMessage().endsWith("argument array \"pos\" of 0 words at index 65532 is empty or "
        + "runs past the 65536-word block"));
  }

  private static SohuProgram withArgs(List<SohuProgram.ArgSlot> args) {
    SohuProgram p = SohuProgram.ofCode(new SohuProgram.Target("t", SohuProgram.Target.NO_HASH),
        Assembler.assembleCode("halt", "h.s"));
    return new SohuProgram(p.target(), p.code(), null, List.of(), List.of(), p.metadata(), args);
  }

  /** The payload of a section, found through the section table. */
  private static byte[] section(byte[] bin, SectionKind kind) {
    int e = entry(bin, kind);
    int len = (int) java.nio.ByteBuffer.wrap(bin, e + 16, 8)
        .order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
    int off = sectionOffset(bin, kind);
    return java.util.Arrays.copyOfRange(bin, off, off + len);
  }

  static int sectionOffset(byte[] bin, SectionKind kind) {
    int e = entry(bin, kind);
    return (bin[e + 8] & 0xFF) | (bin[e + 9] & 0xFF) << 8 | (bin[e + 10] & 0xFF) << 16;
  }

  private static long crc32c(byte[] b) {
    CRC32C crc = new CRC32C();
    crc.update(b);
    return crc.getValue();
  }

  /** The byte offset of a section's entry in the section table. */
  private static int entry(byte[] bin, SectionKind kind) {
    int n = bin[12] & 0xFF;
    for (int i = 0; i < n; i++) {
      int e = 32 + 24 * i;
      if ((bin[e] & 0xFF) == kind.id()) {
        return e;
      }
    }
    throw new AssertionError(kind);
  }
}
