package dev.sohuc.passes.quant;

/** Calibration data the model cannot use; the message names the folder or file. A user error. */
public final class CalibrationException extends RuntimeException {
  public CalibrationException(String message) {
    super(message);
  }

  public CalibrationException(String message, Throwable cause) {
    super(message, cause);
  }
}
