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

  /** "token 3", or "stream 1's token 3" where the streams' banks differ. */
  static String describe(int stream, int tok) {
    return stream == 0 || tok >= FIRST_SHARED_TOKEN || tok == 0 ? "token " + tok
        : "stream 1's token " + tok;
  }
}
