package dev.sohuc.emu;

/**
 * A program fault: the machine stops at instruction {@code pc}. The message names the pc, the
 * disassembled instruction, the IR op and source location from the debug section when the
 * binary has them, and what went wrong.
 */
public final class Trap extends EmulatorException {

  /** What kind of fault stopped the machine. */
  public enum Kind {
    /** A word that does not decode, or a pc outside the code. */
    ILLEGAL_INSTRUCTION,
    /** A memory access outside its memory. */
    OUT_OF_BOUNDS,
    /** A memory access not aligned to its element size. */
    MISALIGNED,
    /** A wait on a token that nothing left in the machine will signal. */
    DEADLOCK,
    /** A token counter would exceed 65535. */
    TOKEN_OVERFLOW,
    /** The instruction cap was reached. */
    INSTRUCTION_LIMIT,
    /** Functional mode's work cap was reached. */
    WORK_LIMIT,
    /** A hardware loop nested too deep or not contained in its outer loop. */
    LOOP_NESTING,
    /** An operand value the hardware cannot execute (e.g. a negative count). */
    BAD_OPERAND,
    /** The emulator's host resources ran out (e.g. too many HBM pages touched). */
    HOST_LIMIT
  }

  private final Kind kind;
  private final long pc;
  private final String instruction;
  private final String irOp;
  private final String location;
  private final String detail;

  public Trap(Kind kind, long pc, String instruction, String irOp, String location,
      String detail) {
    super(format(kind, pc, instruction, irOp, location, detail));
    this.kind = kind;
    this.pc = pc;
    this.instruction = instruction;
    this.irOp = irOp;
    this.location = location;
    this.detail = detail;
  }

  private static String format(Kind kind, long pc, String instruction, String irOp,
      String location, String detail) {
    StringBuilder sb = new StringBuilder("trap at pc ").append(pc);
    if (instruction != null) {
      sb.append(" `").append(instruction).append('`');
    }
    if (irOp != null) {
      sb.append(" (IR op ").append(irOp);
      if (location != null && !location.isEmpty()) {
        sb.append(" at ").append(location);
      }
      sb.append(')');
    }
    sb.append(": ").append(kind.name().toLowerCase(java.util.Locale.ROOT).replace('_', ' '))
        .append(": ").append(detail);
    return sb.toString();
  }

  public Kind kind() {
    return kind;
  }

  public long pc() {
    return pc;
  }

  /** The disassembled instruction, or null when the word does not decode. */
  public String instruction() {
    return instruction;
  }

  /** The IR op from the debug section, or null. */
  public String irOp() {
    return irOp;
  }

  /** The source location from the debug section, or null. */
  public String location() {
    return location;
  }

  /** What went wrong, without the pc and instruction. */
  public String detail() {
    return detail;
  }
}
