package dev.sohuc.emu;

/** A machine description the loader rejects; the message names the file and the field. */
public final class TargetException extends EmulatorException {
  private final String field;

  public TargetException(String source, String field, String why) {
    super(source + ": " + field + ": " + why);
    this.field = field;
  }

  /** The dotted path of the offending field, e.g. {@code hbm.bandwidth}. */
  public String field() {
    return field;
  }
}
