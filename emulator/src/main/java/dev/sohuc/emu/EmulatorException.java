package dev.sohuc.emu;

/**
 * Every error the emulator reports: a rejected machine description, bad inputs, or a trap while
 * a program runs. The message is one complete line meant for the user. Nothing else escapes the
 * emulator's public API.
 */
public class EmulatorException extends RuntimeException {
  public EmulatorException(String message) {
    super(message);
  }

  public EmulatorException(String message, Throwable cause) {
    super(message, cause);
  }
}
