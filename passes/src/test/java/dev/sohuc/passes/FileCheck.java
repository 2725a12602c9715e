package dev.sohuc.passes;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A small FileCheck: a test file holds cases separated by {@code // -----}; each case is input
 * IR with {@code // CHECK: text}, {@code // CHECK-NEXT: text} and {@code // CHECK-NOT: text}
 * lines. CHECK lines must match output lines in order (as substrings, with runs of spaces
 * collapsed, so the printer's column alignment does not matter); CHECK-NEXT must match the line
 * right after the previous match; CHECK-NOT must match no line between the previous and the next
 * match. Constants are compared like everything else: write them in the CHECK line.
 */
final class FileCheck {

  enum Kind { CHECK, NEXT, NOT }

  record Directive(Kind kind, String pattern, int line) {}

  record Case(String file, int firstLine, String text, List<Directive> directives) {
    @Override
    public String toString() {
      return file + ":" + firstLine;
    }
  }

  private FileCheck() {}

  static List<Case> cases(String resource) {
    String text;
    try (InputStream in = FileCheck.class.getResourceAsStream("/" + resource)) {
      if (in == null) {
        throw new IllegalArgumentException("no test resource " + resource);
      }
      text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    List<Case> out = new ArrayList<>();
    String[] lines = text.split("\n", -1);
    StringBuilder cur = new StringBuilder();
    List<Directive> dirs = new ArrayList<>();
    int first = 1;
    for (int i = 0; i < lines.length; i++) {
      String l = lines[i];
      if (l.strip().equals("// -----")) {
        out.add(new Case(resource, first, cur.toString(), dirs));
        cur = new StringBuilder();
        dirs = new ArrayList<>();
        first = i + 2;
        // Keep line numbers of later cases right in parser errors.
        cur.append("\n".repeat(i + 1));
        continue;
      }
      cur.append(l).append('\n');
      String s = l.strip();
      for (var k : new Object[][] {{"// CHECK-NEXT:", Kind.NEXT}, {"// CHECK-NOT:", Kind.NOT}, {"// CHECK:", Kind.CHECK}}) {
        if (s.startsWith((String) k[0])) {
          dirs.add(new Directive((Kind) k[1], normalize(s.substring(((String) k[0]).length())), i + 1));
          break;
        }
      }
    }
    if (!cur.toString().isBlank()) {
      out.add(new Case(resource, first, cur.toString(), dirs));
    }
    return out;
  }

  static String normalize(String s) {
    return s.strip().replaceAll("\\s+", " ");
  }

  /** Throws AssertionError naming the directive that failed and showing the output. */
  static void match(Case c, String output) {
    List<String> lines = output.lines().map(FileCheck::normalize).toList();
    int pos = 0; // next line to search from
    int lastMatch = -1;
    List<Directive> pendingNots = new ArrayList<>();
    for (Directive d : c.directives()) {
      switch (d.kind()) {
        case NOT -> pendingNots.add(d);
        case NEXT -> {
          int at = lastMatch + 1;
          if (at >= lines.size() || !lines.get(at).contains(d.pattern())) {
            fail(c, d, "the line after the previous match does not contain it", output);
          }
          checkNots(c, pendingNots, lines, lastMatch + 1, at, output);
          lastMatch = at;
          pos = at + 1;
        }
        case CHECK -> {
          int at = -1;
          for (int i = pos; i < lines.size(); i++) {
            if (lines.get(i).contains(d.pattern())) {
              at = i;
              break;
            }
          }
          if (at < 0) {
            fail(c, d, "no line (after the previous match) contains it", output);
          }
          checkNots(c, pendingNots, lines, pos, at, output);
          lastMatch = at;
          pos = at + 1;
        }
      }
    }
    checkNots(c, pendingNots, lines, pos, lines.size(), output);
  }

  private static void checkNots(Case c, List<Directive> nots, List<String> lines, int from, int to, String output) {
    for (Directive d : nots) {
      for (int i = from; i < to; i++) {
        if (lines.get(i).contains(d.pattern())) {
          fail(c, d, "line " + (i + 1) + " of the output contains it", output);
        }
      }
    }
    nots.clear();
  }

  private static void fail(Case c, Directive d, String why, String output) {
    throw new AssertionError(c.file() + ":" + d.line() + ": " + d.kind() + " '" + d.pattern() + "': " + why
        + "\n--- output ---\n" + output);
  }
}
