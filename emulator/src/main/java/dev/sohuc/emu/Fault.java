package dev.sohuc.emu;

/**
 * A fault raised inside an instruction's execution, before the machine knows how to name the
 * instruction; the machine turns it into a {@link Trap} with the pc, the instruction text and the
 * debug info. Carries no stack trace: faults are part of normal operation for a bad program.
 */
final class Fault extends RuntimeException {
  final Trap.Kind kind;

  Fault(Trap.Kind kind, String detail) {
    super(detail, null, false, false);
    this.kind = kind;
  }

  static Fault oob(String detail) {
    return new Fault(Trap.Kind.OUT_OF_BOUNDS, detail);
  }

  static Fault bad(String detail) {
    return new Fault(Trap.Kind.BAD_OPERAND, detail);
  }
}
