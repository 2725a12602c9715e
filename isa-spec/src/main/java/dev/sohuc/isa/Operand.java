package dev.sohuc.isa;

import java.util.List;

/**
 * One operand as written in assembly. Most operands are one field; two forms join two fields:
 * {@link Form#ADDR} {@code rB+off} (base register plus signed offset) and {@link Form#COUNT}
 * {@code rN+imm} (register plus unsigned immediate; written {@code imm} alone when the register
 * is r0, or {@code rN} alone when the immediate is 0).
 *
 * @param keyword written {@code name=value}, optional, after the positional operands
 * @param defaults the raw value of each field when the operand is omitted; null for a positional
 *     operand that must be written (a positional operand with defaults may be left off the end)
 * @param labelRelative a label used here means "instructions from the next one up to the label"
 */
public record Operand(
    String name, Form form, List<Field> fields, boolean keyword, long[] defaults,
    boolean labelRelative, String doc) {

  /** The syntactic shape of an operand. */
  public enum Form { REG, IMM, F32, ENUM, FLAG, ADDR, COUNT }

  public Operand {
    fields = List.copyOf(fields);
    defaults = defaults == null ? null : defaults.clone();
  }

  @Override
  public long[] defaults() {
    return defaults == null ? null : defaults.clone();
  }

  /** May be omitted: a keyword, or a positional operand with defaults at the end of the list. */
  public boolean optional() {
    return defaults != null;
  }

  public Field first() {
    return fields.get(0);
  }

  /** Assembly syntax summary for docs, e.g. {@code dst=rB+off}. */
  public String syntax() {
    String value = switch (form) {
      case REG -> "rN";
      case IMM -> labelRelative ? "imm|label" : "imm";
      case F32 -> "float";
      case ENUM -> String.join("|", first().allowed().stream().map(AsmEnum::asmName).toList());
      case FLAG -> "0|1";
      case ADDR -> "rB+off";
      case COUNT -> "rN+imm";
    };
    return keyword ? name + "=" + value : value;
  }
}
