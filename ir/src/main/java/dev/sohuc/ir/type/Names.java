package dev.sohuc.ir.type;

import java.util.regex.Pattern;

/** Spelling of names in IR text: bare when they are identifiers, quoted and escaped otherwise. */
public final class Names {
  private static final Pattern BARE = Pattern.compile("[A-Za-z_][A-Za-z0-9_.$]*|[0-9]+");

  private Names() {}

  public static boolean isBare(String name) {
    return BARE.matcher(name).matches();
  }

  public static String quoteIfNeeded(String name) {
    return isBare(name) ? name : quote(name);
  }

  /** A double-quoted string literal with backslash escapes for quotes, backslashes and controls. */
  public static String quote(String s) {
    return '"' + escapeControls(s.replace("\\", "\\\\").replace("\"", "\\\"")) + '"';
  }

  /**
   * {@code s} with its control characters as backslash escapes ({@code \n}, {@code \t},
   * {@code \r}, else {@code \}{@code uXXXX}): one printable line, as messages quoting a user's
   * names need too.
   */
  public static String escapeControls(String s) {
    StringBuilder sb = new StringBuilder(s.length());
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '\n' -> sb.append("\\n");
        case '\t' -> sb.append("\\t");
        case '\r' -> sb.append("\\r");
        default -> {
          if (c < 0x20 || c == 0x7f) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            sb.append(c);
          }
        }
      }
    }
    return sb.toString();
  }

  /** Inverse of {@link #quote}: takes the literal with its quotes. */
  public static String unquote(String literal) {
    StringBuilder sb = new StringBuilder(literal.length());
    for (int i = 1; i < literal.length() - 1; i++) {
      char c = literal.charAt(i);
      if (c != '\\') {
        sb.append(c);
        continue;
      }
      char e = literal.charAt(++i);
      switch (e) {
        case 'n' -> sb.append('\n');
        case 't' -> sb.append('\t');
        case 'r' -> sb.append('\r');
        case 'u' -> {
          sb.append((char) Integer.parseInt(literal.substring(i + 1, i + 5), 16));
          i += 4;
        }
        default -> sb.append(e);
      }
    }
    return sb.toString();
  }
}
