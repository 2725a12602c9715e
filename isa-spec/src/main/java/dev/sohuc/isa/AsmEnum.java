package dev.sohuc.isa;

/**
 * An enumeration encoded in an instruction field: the code is the constant's ordinal, the
 * assembly spelling is its lower-case name.
 */
public interface AsmEnum {
  int ordinal();

  String name();

  /** One sentence for docs/isa.md. */
  String doc();

  default String asmName() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
