package dev.sohuc.isa;

import java.util.List;

/**
 * One field of an instruction encoding: bits {@code [lo, lo + width)} of the 128-bit word.
 *
 * @param name snake_case name, as in docs and assembler keywords
 * @param javaName the name of the record component that holds the field
 * @param min smallest legal value (UIMM, SIMM); the decoder rejects others
 * @param max largest legal value (UIMM, SIMM)
 * @param enumType the enum of an ENUM field, else null
 * @param allowed the legal constants of an ENUM field (a subset of the enum)
 */
public record Field(
    String name,
    String javaName,
    FieldKind kind,
    int lo,
    int width,
    long min,
    long max,
    Class<? extends AsmEnum> enumType,
    List<AsmEnum> allowed,
    String doc) {

  public Field {
    allowed = allowed == null ? List.of() : List.copyOf(allowed);
  }

  public int hi() {
    return lo + width - 1;
  }

  /** The Java type of the record component that holds this field. */
  public Class<?> javaType() {
    return switch (kind) {
      case REG -> int.class;
      case UIMM -> width <= 31 ? int.class : long.class;
      case SIMM -> width <= 32 ? int.class : long.class;
      case F32 -> float.class;
      case FLAG -> boolean.class;
      case ENUM -> enumType;
      case OPCODE, RESERVED -> void.class;
    };
  }

  /** True for fields that become record components (all but opcode and reserved bits). */
  public boolean isOperand() {
    return kind != FieldKind.OPCODE && kind != FieldKind.RESERVED;
  }

  /** Sign-extends or keeps the raw bits of the field as its numeric value. */
  public long valueOf(long raw) {
    if (kind == FieldKind.SIMM && width < 64) {
      return (raw << (64 - width)) >> (64 - width);
    }
    return raw;
  }

  /** Whether {@code value} (numeric, after sign extension) is legal for this field. */
  public boolean legal(long value) {
    return switch (kind) {
      case REG -> value >= 0 && value < 32;
      case UIMM -> width == 64 ? true : (value >= min && value <= max);
      case SIMM -> width == 64 || (value >= min && value <= max);
      case F32 -> value >= 0 && value <= 0xFFFF_FFFFL;
      case FLAG -> value == 0 || value == 1;
      case ENUM -> allowed.stream().anyMatch(e -> e.ordinal() == value);
      case OPCODE, RESERVED -> true;
    };
  }

  /** The legal values in words, for error messages and docs. */
  public String range() {
    return switch (kind) {
      case REG -> "a register r0..r31";
      case UIMM, SIMM -> width == 64 ? "any 64-bit value" : min + ".." + max;
      case F32 -> "an f32 value";
      case FLAG -> "0 or 1";
      case ENUM -> "one of " + String.join(", ", allowed.stream().map(AsmEnum::asmName).toList());
      case OPCODE -> "the opcode";
      case RESERVED -> "0";
    };
  }
}
