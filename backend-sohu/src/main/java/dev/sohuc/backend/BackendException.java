package dev.sohuc.backend;

/**
 * A model the backend cannot compile for the target: an unsupported op, an unbound symbolic
 * dimension, or a buffer that does not fit the target's memory. The message is one line per
 * problem and names the op (with its source location), the dim or the buffer.
 */
public final class BackendException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public BackendException(String message) {
    super(message);
  }
}
