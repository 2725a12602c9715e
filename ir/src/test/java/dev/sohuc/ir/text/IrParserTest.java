package dev.sohuc.ir.text;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Weight;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Whole messages (file:line:col included) for the errors users meet first, and file handling. */
class IrParserTest {
  private static final int TEN_MB = 10 << 20;

  private static String error(String text) {
    return assertThrows(IrException.class, () -> IrParser.parse(text, "f.ir")).getMessage();
  }

  @Test
  void emptyFile() {
    assertEquals("f.ir:1:1: empty file, expected 'module'", error(""));
    assertEquals("f.ir:1:1: empty file, expected 'module'", error("\n  // only a comment\n\n"));
  }

  @Test
  void syntaxErrorsSayWhatWasExpected() {
    assertEquals("f.ir:3:17: expected '{', ',' or ':', got '%b'", error("""
        module @m {
          func @f(%a: tensor<f32>) -> () {
            %x = add %a %b : tensor<f32>
            return
          }
        }
        """));
    assertEquals("f.ir:4:1: expected 'weight', 'func' or '}', got end of file", error("""
        module @m {
          func @f() -> () { return }

        """));
    assertEquals("f.ir:2:28: expected 'x', got '2'", error("""
        module @m {
          func @f(%a: tensor<2 x 2 2 x f32>) -> () { return }
        }
        """));
  }

  @Test
  void unknownOpUndefinedValueAndUseBeforeDefinition() {
    String body = """
        module @m {
          func @f(%a: tensor<2 x f32>) -> () {
            %x = %s
            %y = neg %a : tensor<2 x f32>
            return
          }
        }
        """;
    assertEquals("f.ir:3:10: unknown op 'frob'", error(body.replace("%s", "frob %a : tensor<2 x f32>")));
    assertEquals("f.ir:3:18: use of undefined value %q", error(body.replace("%s", "add %a, %q : tensor<2 x f32>")));
    assertEquals("f.ir:3:18: %y is used before it is defined",
        error(body.replace("%s", "add %a, %y : tensor<2 x f32>")));
  }

  @Test
  void typeMismatchPointsAtTheOp() {
    assertEquals("f.ir:3:10: 'matmul': result %x is declared tensor<2 x 2 x f32> but the op gives "
        + "tensor<2 x 4 x f32>", error("""
        module @m {
          func @f(%a: tensor<2 x 3 x f32>, %b: tensor<3 x 4 x f32>) -> () {
            %x = matmul %a, %b : tensor<2 x 2 x f32> loc("/layer/MatMul")
            return
          }
        }
        """));
  }

  @Test
  void tenMegabyteLinesFailFastWithOneShortLine() {
    String prefix = "module @m { func @f() -> () { %x = ";
    for (String huge : new String[] {
        "x".repeat(TEN_MB),
        prefix + "constant {value = dense<" + "[".repeat(TEN_MB),
        prefix + "constant {value = dense<" + "[".repeat(TEN_MB) + "> : tensor<2 x f32>}",
        prefix + "frob {s = \"" + "a".repeat(TEN_MB),
        prefix + "neg %" + "v".repeat(TEN_MB),
        "module @m { " + "%".repeat(TEN_MB),
        "module @m { func @f(%a: tensor<" + "7 x ".repeat(TEN_MB / 4)}) {
      String message = assertTimeoutPreemptively(Duration.ofSeconds(20), () -> error(huge));
      assertTrue(message.length() < 200, message);
      assertFalse(message.contains("\n"), message);
      assertTrue(message.startsWith("f.ir:1:"), message);
    }
  }

  @Test
  void aLineOfTooManyTokensIsRejected() {
    assertEquals("f.ir:1:200014: line 1 has more than 100000 tokens",
        error("module @m { func @f(%a: tensor<" + "7 x ".repeat(TEN_MB / 4)));
  }

  @Test
  void largeDenseDataIsOneToken() {
    int n = 1 << 18;
    String data = String.join(", ", java.util.Collections.nCopies(n, "-1.5e-3"));
    Module m = assertTimeoutPreemptively(Duration.ofSeconds(20), () -> IrParser.parse(
        "module @m { func @f() -> () { %c = constant {value = dense<[" + data + "]> : tensor<" + n
            + " x f32>} : tensor<" + n + " x f32>\n return } }", "f.ir"));
    assertEquals(n, m.main().body().get(0).op().inferResultTypes().get(0).staticElementCount().orElseThrow());
  }

  @Test
  void relativeWeightPathsAreRelativeToTheIrFile(@TempDir Path dir) throws IOException {
    Path models = Files.createDirectories(dir.resolve("models"));
    Files.write(models.resolve("w.bin"), new byte[] {0, 0, 0x20, 0x41, 0, 0, (byte) 0x80, 0x3f});
    Path ir = models.resolve("m.ir");
    Files.writeString(ir, """
        module @m {
          weight @w : tensor<f32> = file "w.bin" offset 4 length 4
        }
        """);
    Weight w = IrParser.parse(ir).weights().get("w");
    assertEquals(models.resolve("w.bin"), ((Weight.Data.FileSlice) w.data()).file());
    assertEquals(1.0f, w.bytes().order(ByteOrder.LITTLE_ENDIAN).getFloat(0));

    Module fromText = IrParser.parse(Files.readString(ir), "m.ir");
    assertEquals(Path.of("w.bin"), ((Weight.Data.FileSlice) fromText.weights().get("w").data()).file());
  }

  @Test
  void missingFile(@TempDir Path dir) {
    Path nope = dir.resolve("nope.ir");
    assertEquals(nope + ": no such file",
        assertThrows(IrException.class, () -> IrParser.parse(nope)).getMessage());
  }

  @Test
  void aFileTooLargeForOneStringIsRefusedBeforeReading(@TempDir Path dir) throws IOException {
    Path big = dir.resolve("big.ir");
    try (var f = new java.io.RandomAccessFile(big.toFile(), "rw")) {
      f.setLength(3L << 30); // sparse: no disk or heap spent
    }
    assertEquals(big + ": 3221225472 bytes, more than the 2147483639 an IR text file may have",
        assertThrows(IrException.class, () -> IrParser.parse(big)).getMessage());
  }

  @Test
  void inlineWeightBytesAreKept() {
    Module m = IrParser.parse("module @m { weight @c : tensor<2 x f32> = inline 0x0000803F00000040 }", "f.ir");
    ByteBuffer b = m.weights().get("c").bytes().order(ByteOrder.LITTLE_ENDIAN);
    assertEquals(1.0f, b.getFloat(0));
    assertEquals(2.0f, b.getFloat(4));
  }
}
