package dev.sohuc.hf;

import dev.sohuc.ir.IrException;

/**
 * A Hugging Face checkpoint or config that cannot be imported. The message is one line and
 * names the file, and the tensor or config key, that is wrong.
 */
public final class HfImportException extends IrException {
  /** Past this many characters a message is cut in the middle (its head names the file, its tail the fault). */
  static final int MAX_MESSAGE_CHARS = 4000;

  public HfImportException(String message) {
    super(printable(message));
  }

  public HfImportException(String message, Throwable cause) {
    super(printable(message), cause);
  }

  /**
   * The message as one line of readable length, whatever the names and values quoted from the
   * user's files hold: control characters escaped (a newline in a tensor name or config string
   * would split the line) and the middle of an overlong message (a name of a million characters)
   * cut.
   */
  private static String printable(String message) {
    String line = dev.sohuc.ir.type.Names.escapeControls(message);
    if (line.length() <= MAX_MESSAGE_CHARS) {
      return line;
    }
    int keep = MAX_MESSAGE_CHARS / 2;
    int cut = line.length() - 2 * keep;
    return line.substring(0, keep) + " [... " + cut + " characters cut ...] "
        + line.substring(line.length() - keep);
  }
}
