package dev.sohuc.ir.type;

import java.util.Arrays;
import java.util.Optional;

/** Element types of IR tensors, spelled in IR text as {@link #text()}. */
public enum ElementType {
  F32("f32", 4, Kind.FLOAT),
  F16("f16", 2, Kind.FLOAT),
  BF16("bf16", 2, Kind.FLOAT),
  F8E4M3("f8e4m3", 1, Kind.FLOAT),
  F8E5M2("f8e5m2", 1, Kind.FLOAT),
  I64("i64", 8, Kind.SIGNED),
  I32("i32", 4, Kind.SIGNED),
  I8("i8", 1, Kind.SIGNED),
  U8("u8", 1, Kind.UNSIGNED),
  BOOL("bool", 1, Kind.BOOL);

  /** How values of a type behave in arithmetic. */
  public enum Kind { FLOAT, SIGNED, UNSIGNED, BOOL }

  private final String text;
  private final int sizeBytes;
  private final Kind kind;

  ElementType(String text, int sizeBytes, Kind kind) {
    this.text = text;
    this.sizeBytes = sizeBytes;
    this.kind = kind;
  }

  public String text() {
    return text;
  }

  public int sizeBytes() {
    return sizeBytes;
  }

  public Kind kind() {
    return kind;
  }

  public boolean isFloat() {
    return kind == Kind.FLOAT;
  }

  public boolean isInteger() {
    return kind == Kind.SIGNED || kind == Kind.UNSIGNED;
  }

  public static Optional<ElementType> fromText(String text) {
    return Arrays.stream(values()).filter(t -> t.text.equals(text)).findFirst();
  }

  @Override
  public String toString() {
    return text;
  }
}
