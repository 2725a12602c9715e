package dev.sohuc.ir.op;

/**
 * An op whose operands or attributes break its rules. The message says what is wrong; the
 * verifier or parser adds which op and where.
 */
public final class OpException extends RuntimeException {
  public OpException(String message) {
    super(message);
  }
}
