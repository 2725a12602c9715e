package dev.sohuc.isa.container;

import dev.sohuc.isa.IsaException;

/** A {@code .sohu} file the reader rejects; names the section and byte offset. */
public final class ContainerException extends IsaException {
  private final String section;
  private final long offset;

  public ContainerException(String source, String section, long offset, String why) {
    super(source + ": " + section + " at byte " + offset + ": " + why);
    this.section = section;
    this.offset = offset;
  }

  public String section() {
    return section;
  }

  public long offset() {
    return offset;
  }
}
