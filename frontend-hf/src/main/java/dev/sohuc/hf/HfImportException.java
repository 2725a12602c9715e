package dev.sohuc.hf;

import dev.sohuc.ir.IrException;

/**
 * A Hugging Face checkpoint or config that cannot be imported. The message is one line and
 * names the file, and the tensor or config key, that is wrong.
 */
public final class HfImportException extends IrException {
  public HfImportException(String message) {
    super(message);
  }

  public HfImportException(String message, Throwable cause) {
    super(message, cause);
  }
}
