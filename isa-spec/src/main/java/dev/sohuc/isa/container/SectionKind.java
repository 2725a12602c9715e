package dev.sohuc.isa.container;

/** The section kinds of format version 1, with their numbers in the section table. */
public enum SectionKind {
  TARGET(1), CODE(2), CONST_INLINE(3), CONST_EXTERNAL(4), SYMBOLS(5), DEBUG(6), METADATA(7),
  ARGS(8), ARG_ARRAYS(9);

  private final int id;

  SectionKind(int id) {
    this.id = id;
  }

  public int id() {
    return id;
  }

  public String label() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }

  public static SectionKind of(int id) {
    for (SectionKind k : values()) {
      if (k.id == id) {
        return k;
      }
    }
    return null;
  }
}
