package dev.sohuc.cli;

/** A mistake in what the user asked for or handed in, reported as one line and exit code 1. */
public final class UserException extends RuntimeException {
  public UserException(String message) {
    super(message);
  }

  /** The same, keeping {@code cause} for {@code --verbose}'s stack trace. */
  public UserException(String message, Throwable cause) {
    super(message, cause);
  }
}
