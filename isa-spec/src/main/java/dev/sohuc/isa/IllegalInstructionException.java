package dev.sohuc.isa;

/** A 128-bit word that does not decode to an instruction; the emulator traps on it. */
public final class IllegalInstructionException extends IsaException {
  private final Word word;

  public IllegalInstructionException(Word word, String reason) {
    super("illegal instruction word " + word + ": " + reason);
    this.word = word;
  }

  public Word word() {
    return word;
  }
}
