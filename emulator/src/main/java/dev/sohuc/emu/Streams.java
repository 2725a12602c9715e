package dev.sohuc.emu;

/**
 * The control streams of both machines (docs/isa.md, synchronization rule 8): stream 0 from pc
 * 0, and stream 1 while a {@code fork} runs it. Tokens below {@link #FIRST_SHARED_TOKEN} are
 * each stream's own; the others are shared, so their counters live in stream 0's bank.
 */
final class Streams {
  static final int COUNT = 2;
  static final int TOKENS = 32;
  static final int FIRST_SHARED_TOKEN = 24;

  private Streams() {}

  /** The counter of token {@code tok} as stream {@code stream} sees it, in a bank of both. */
  static int slot(int stream, int tok) {
    return stream == 0 || tok >= FIRST_SHARED_TOKEN ? tok : TOKENS + tok;
  }

  /**
   * Where stream 1's code ends when stream {@code stream}, {@code loopDepth} loops deep, forks
   * at {@code pc} with {@code body} instructions in a program of {@code codeLength}: the pc
   * stream 0 goes on at. A fork from stream 1, inside a loop or past the code is a fault.
   */
  static int forkBodyEnd(int stream, int loopDepth, int pc, int body, int codeLength) {
    if (stream != 0 || loopDepth > 0) {
      throw Fault.bad(stream != 0 ? "stream 1 forks (only stream 0 does)"
          : "fork inside a loop (stream 1 would run once per iteration)");
    }
    if ((long) pc + 1 + body > codeLength) {
      throw Fault.bad("the fork's body (" + body + " instructions) runs past the end of the "
          + "code (" + codeLength + " instructions)");
    }
    return pc + 1 + body;
  }

  /** Stream 1 reached {@code end}, past its code, without its halt. */
  static Trap ranPastItsCode(Image image, int end) {
    return image.trap(end - 1, Trap.Kind.BAD_OPERAND, "stream 1 ran past the end of its code "
        + "(the fork's body) without a halt");
  }

  /** "token 3", or "stream 1's token 3" where the streams' banks differ. */
  static String describe(int stream, int tok) {
    return stream == 0 || tok >= FIRST_SHARED_TOKEN || tok == 0 ? "token " + tok
        : "stream 1's token " + tok;
  }
}
