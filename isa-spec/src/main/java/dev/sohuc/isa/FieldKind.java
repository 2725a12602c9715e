package dev.sohuc.isa;

/** What the bits of an instruction field mean. */
public enum FieldKind {
  /** The 8-bit opcode at bits 0..7. */
  OPCODE,
  /** Must be zero; the decoder rejects a word with a reserved bit set. */
  RESERVED,
  /** A scalar register number r0..r31 (r0 reads as zero). */
  REG,
  /** An unsigned immediate. */
  UIMM,
  /** A two's-complement signed immediate. */
  SIMM,
  /** An f32 immediate, stored as its IEEE-754 bit pattern. */
  F32,
  /** A code of an {@link AsmEnum} (its ordinal). */
  ENUM,
  /** A one-bit boolean. */
  FLAG
}
