package dev.sohuc.cli;

import static dev.sohuc.cli.CliResult.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.Word;
import dev.sohuc.isa.asm.Assembler;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** sohuc asm, disasm and inspect: good input round-trips, bad input exits 1 naming where. */
class IsaCommandsTest {
  @TempDir Path dir;

  private Path write(String name, String text) throws Exception {
    Path p = dir.resolve(name);
    Files.writeString(p, text);
    return p;
  }

  private static final String PROGRAM = """
      .target "sohu-v1", "0000000000000000000000000000000000000000000000000000000000000001"
      .arg seq, 0
      .symbol in, "x", f32, ["seq", 384], 0x1000, 196608
      .symbol in, "lens", i64, [8], 0x40000, 64
      .arg "lens", 1, 8, seq
          ldarg    r1, 0
          li       r2, 0x1000
          loop     r1, end
          dma      sram, r3, r4, hbm, r2, r4, 1536, 1, signal=1
          vun      gelu_erf, r3, r4, r3, r4, r5, r6, f32, wait=1
      end:
          halt
      """;

  @Test
  void asmDisasmAsmIsByteIdentical() throws Exception {
    Path src = write("p.s", PROGRAM);
    Path bin = dir.resolve("p.sohu");
    CliResult asm = run("asm", src.toString(), "-o", bin.toString());
    assertEquals(0, asm.code(), asm.err());
    CliResult dis = run("disasm", bin.toString());
    assertEquals(0, dis.code(), dis.err());
    assertTrue(dis.out().contains("vun      gelu_erf, r3, r4, r3, r4, r5, r6, f32, wait=1"),
        dis.out());
    Path again = write("again.s", dis.out());
    Path bin2 = dir.resolve("again.sohu");
    assertEquals(0, run("asm", again.toString(), "-o", bin2.toString()).code());
    assertArrayEquals(Files.readAllBytes(bin), Files.readAllBytes(bin2));
  }

  @Test
  void inspectShowsHeaderSectionsSymbolsAndCounts() throws Exception {
    Path bin = dir.resolve("p.sohu");
    assertEquals(0, run("asm", write("p.s", PROGRAM).toString(), "-o", bin.toString()).code());
    CliResult r = run("inspect", bin.toString());
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("target:      sohu-v1"), r.out());
    assertTrue(r.out().contains("code"), r.out());
    assertTrue(r.out().contains("in  x                    f32     [seq x 384]"), r.out());
    assertTrue(r.out().contains("arg 0 = seq"), r.out());
    assertTrue(r.out().contains("args 1..8 = lens (array: its values, each below seq)"), r.out());
    assertTrue(r.out().contains("DMA          1"), r.out());
    assertTrue(r.out().contains("CTRL         4"), r.out());
    assertTrue(r.out().contains("vun               1"), r.out());
  }

  private static void assertUserError(CliResult r, String... fragments) {
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().startsWith("error: "), r.err());
    for (String f : fragments) {
      assertTrue(r.err().contains(f), "expected '" + f + "' in: " + r.err());
    }
    assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    assertFalse(r.err().contains("internal error"), r.err());
  }

  @Test
  void notASohuFile() throws Exception {
    Path f = write("notes.sohu", "this is a text file, not a program at all");
    assertUserError(run("disasm", f.toString()), "notes.sohu: header at byte 0: bad magic number");
    assertUserError(run("inspect", f.toString()), "bad magic number");
  }

  @Test
  void wrongVersion() throws Exception {
    Path bin = dir.resolve("p.sohu");
    assertEquals(0, run("asm", write("p.s", PROGRAM).toString(), "-o", bin.toString()).code());
    byte[] b = Files.readAllBytes(bin);
    b[8] = 7;
    Files.write(bin, b);
    assertUserError(run("inspect", bin.toString()),
        "header at byte 8: unsupported format version 7.1");
  }

  @Test
  void illegalWord() throws Exception {
    // A sound file (its checksums match) whose second word (pc 1) has the reserved opcode 0.
    List<Word> code = Assembler.assembleCode("nop\nhalt\n", "p.s");
    Path bin = dir.resolve("p.sohu");
    SohuWriter.write(SohuProgram.ofCode(new SohuProgram.Target("t", SohuProgram.Target.NO_HASH),
        List.of(code.get(0), code.get(1).withBits(0, 8, 0))), bin);
    assertUserError(run("disasm", bin.toString()),
        "code word 1 (byte 16 of the code section): illegal instruction word",
        "opcode 0x00 is reserved illegal");
  }

  @Test
  void flippedCodeBitIsRefusedAsCorrupt() throws Exception {
    Path bin = dir.resolve("p.sohu");
    assertEquals(0, run("asm", write("p.s", "nop\nhalt\n").toString(), "-o", bin.toString())
        .code());
    byte[] b = Files.readAllBytes(bin);
    // The code is the second section: its table entry starts at byte 56, its checksum at 60.
    int codeOff = (b[56 + 8] & 0xFF) | (b[56 + 9] & 0xFF) << 8;
    long stored = ByteBuffer.wrap(b, 60, 4).order(ByteOrder.LITTLE_ENDIAN).getInt() & 0xFFFFFFFFL;
    b[codeOff + 16 + 9] ^= 0x10;
    Files.write(bin, b);
    CRC32C actual = new CRC32C();
    actual.update(b, codeOff, 2 * Word.BYTES);
    String message = String.format("error: %s: code section at byte 60: checksum 0x%08x does not "
        + "match the section's bytes (0x%08x); the file is corrupt%n", bin, stored,
        actual.getValue());
    for (String command : List.of("disasm", "inspect")) {
      CliResult r = run(command, bin.toString());
      assertEquals(1, r.code(), r.err());
      assertEquals(message, r.err());
    }
  }

  @Test
  void binaryAssemblySource() throws Exception {
    Path src = dir.resolve("junk.s");
    java.nio.file.Files.write(src, new byte[] {0, 1, 2, (byte) 0xff});
    assertUserError(run("asm", src.toString(), "-o", dir.resolve("x.sohu").toString()),
        "junk.s: not UTF-8 text");
  }

  @Test
  void aSourceTooLargeForOneStringIsRefusedBeforeReading() throws Exception {
    Path src = dir.resolve("big.s");
    try (var f = new java.io.RandomAccessFile(src.toFile(), "rw")) {
      f.setLength(3L << 30); // sparse: no disk or heap spent
    }
    CliResult r = run("asm", src.toString(), "-o", dir.resolve("x.sohu").toString());
    assertEquals(1, r.code());
    assertEquals("error: " + src + ": 3221225472 bytes, more than the 2147483639 an assembly file "
        + "may have", r.err().strip());
  }

  @Test
  void unknownMnemonic() throws Exception {
    Path src = write("bad.s", "nop\n  frobnicate r1, r2\n");
    assertUserError(run("asm", src.toString(), "-o", dir.resolve("x.sohu").toString()),
        "bad.s:2:3: unknown mnemonic 'frobnicate'");
  }

  @Test
  void operandOutOfRange() throws Exception {
    Path src = write("bad.s", "shli r1, r2, 64\n");
    assertUserError(run("asm", src.toString(), "-o", dir.resolve("x.sohu").toString()),
        "bad.s:1:14: operand 'shamt' of shli: 64 is out of range 0..63");
  }

  @Test
  void deeplyNestedExpressionIsRefusedNotAStackOverflow() throws Exception {
    Path src = write("deep.s", "li r1, " + "(".repeat(100_000) + "1" + ")".repeat(100_000) + "\nhalt\n");
    CliResult r = run("asm", src.toString(), "-o", dir.resolve("x.sohu").toString());
    assertEquals(1, r.code(), r.err());
    assertEquals("error: " + src + ":1:264: more than 256 operators and parentheses on one line; split the"
        + " expression with .equ (in \"li r1, " + "(".repeat(73) + "...\")" + System.lineSeparator(), r.err());
  }

  @Test
  void missingFileAndUsage() {
    assertUserError(run("disasm", dir.resolve("nope.sohu").toString()), "no such file");
    assertEquals(2, run("asm", "x.s").code());
  }
}
