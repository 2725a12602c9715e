package dev.sohuc.isa;

/**
 * Every error the ISA module reports to a user: a malformed or illegal instruction word, an
 * assembler error, a rejected {@code .sohu} file. The message is the complete one-line message
 * meant for the user (it names the file, line and column, or the section and byte offset).
 */
public class IsaException extends RuntimeException {
  public IsaException(String message) {
    super(message);
  }

  public IsaException(String message, Throwable cause) {
    super(message, cause);
  }
}
