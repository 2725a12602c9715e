package dev.sohuc.ir.text;

import dev.sohuc.ir.IrException;
import org.junit.jupiter.api.DynamicTest;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * MLIR-style error tests: a resource holds cases separated by {@code // -----}; each case marks
 * its offending line with {@code // expected-error {{message}}}, and must fail to parse with
 * exactly that message reported on that line. Line numbers are those of the whole file.
 */
final class ErrorCases {
  private static final String SEPARATOR = "// -----";
  private static final Pattern MARKER = Pattern.compile("// expected-error \\{\\{(.*)}}\\s*$");

  /** One case: its text padded with blank lines so that it sits on its lines of the file. */
  record Case(String text, int expectedLine, String expectedMessage) {}

  private ErrorCases() {}

  static Stream<DynamicTest> tests(String resource) {
    return read(resource).stream().map(c -> DynamicTest.dynamicTest(
        resource + ":" + c.expectedLine() + " " + c.expectedMessage(), () -> check(resource, c)));
  }

  private static void check(String fileName, Case c) {
    IrException e = assertThrows(IrException.class, () -> IrParser.parse(c.text(), fileName));
    Matcher m = Pattern.compile(Pattern.quote(fileName) + ":(\\d+):\\d+: (.*)").matcher(e.getMessage());
    if (!m.matches()) {
      fail("not a file:line:col message: " + e.getMessage());
    }
    assertEquals(c.expectedMessage(), m.group(2), "message");
    assertEquals(c.expectedLine(), Integer.parseInt(m.group(1)), "line of: " + e.getMessage());
  }

  static List<Case> read(String resource) {
    String[] lines = load(resource).split("\n", -1);
    List<Case> cases = new ArrayList<>();
    int start = 0;
    for (int i = 0; i <= lines.length; i++) {
      if (i == lines.length || lines[i].trim().equals(SEPARATOR)) {
        if (i > start) {
          cases.add(toCase(resource, lines, start, i));
        }
        start = i + 1;
      }
    }
    return cases;
  }

  private static Case toCase(String resource, String[] lines, int from, int to) {
    StringBuilder text = new StringBuilder("\n".repeat(from));
    int line = -1;
    String message = null;
    for (int i = from; i < to; i++) {
      text.append(lines[i]).append('\n');
      Matcher m = MARKER.matcher(lines[i]);
      if (m.find()) {
        if (message != null) {
          throw new IllegalStateException(resource + ":" + (i + 1) + ": a second expected-error in one case");
        }
        line = i + 1;
        message = m.group(1);
      }
    }
    if (message == null) {
      throw new IllegalStateException(resource + ":" + (from + 1) + ": case without an expected-error");
    }
    return new Case(text.toString(), line, message);
  }

  static String load(String resource) {
    try (InputStream in = ErrorCases.class.getResourceAsStream("/text/" + resource)) {
      if (in == null) {
        throw new IllegalStateException("no test resource text/" + resource);
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
