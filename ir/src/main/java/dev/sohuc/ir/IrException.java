package dev.sohuc.ir;

/**
 * A problem with a model or IR text that the user must fix. The message is complete and
 * one line: it names the file, op or value and what is wrong.
 */
public class IrException extends RuntimeException {
  public IrException(String message) {
    super(message);
  }

  public IrException(String message, Throwable cause) {
    super(message, cause);
  }
}
