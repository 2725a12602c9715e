package dev.sohuc.passes;

/** A pass produced invalid IR: a bug in sohuc, not in the model. Names the pass and the problem. */
public final class PassException extends RuntimeException {
  public PassException(String message, Throwable cause) {
    super(message, cause);
  }
}
