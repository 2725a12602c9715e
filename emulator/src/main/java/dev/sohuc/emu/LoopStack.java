package dev.sohuc.emu;

/**
 * The control unit's hardware loops, shared by the functional and the timing machine: up to
 * {@link #MAX_DEPTH} nested bodies, each a range of pcs run a number of times; the jump back is
 * free. Counts are unsigned 64-bit values (the instruction cap bounds how long they run).
 */
final class LoopStack {
  static final int MAX_DEPTH = 4;

  private final int[] start = new int[MAX_DEPTH];
  private final int[] end = new int[MAX_DEPTH];
  private final long[] remaining = new long[MAX_DEPTH];
  private int depth;

  int depth() {
    return depth;
  }

  void clear() {
    depth = 0;
  }

  /**
   * Executes {@code loop} at pc: returns the next pc (the body, or the instruction after the body
   * when count is 0).
   */
  int enter(int pc, long count, int body, int codeLength) {
    int bodyStart = pc + 1;
    long bodyEnd = (long) bodyStart + body;
    if (bodyEnd > codeLength) {
      throw Fault.bad("the loop body (" + body + " instructions) runs past the end of the code ("
          + codeLength + " instructions)");
    }
    if (depth > 0 && bodyEnd > end[depth - 1]) {
      throw new Fault(Trap.Kind.LOOP_NESTING, "the loop body ends at pc " + (bodyEnd - 1)
          + ", after the end of its enclosing loop body at pc " + (end[depth - 1] - 1));
    }
    if (count == 0) {
      // skipping the body may still close an enclosing body
      return next((int) bodyEnd - 1);
    }
    if (depth == MAX_DEPTH) {
      throw new Fault(Trap.Kind.LOOP_NESTING, "a fifth nested loop (hardware loops nest "
          + MAX_DEPTH + " deep)");
    }
    start[depth] = bodyStart;
    end[depth] = (int) bodyEnd;
    remaining[depth] = count;
    depth++;
    return bodyStart;
  }

  /** The pc after the instruction at {@code pc}: the next one, or a loop's start. */
  int next(int pc) {
    int next = pc + 1;
    while (depth > 0 && next == end[depth - 1]) {
      if (--remaining[depth - 1] != 0) {
        return start[depth - 1];
      }
      depth--;
    }
    return next;
  }
}
