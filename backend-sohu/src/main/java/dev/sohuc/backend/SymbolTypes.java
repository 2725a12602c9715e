package dev.sohuc.backend;

import dev.sohuc.ir.type.ElementType;
import dev.sohuc.isa.DType;

/**
 * How IR element types are stored in a program's input and output symbols, and back: the one
 * mapping the backend, the CLI and the tests share.
 */
public final class SymbolTypes {
  private SymbolTypes() {}

  public static DType of(ElementType t) {
    return switch (t) {
      case F32 -> DType.F32;
      case BF16 -> DType.BF16;
      case F16 -> DType.F16;
      case F8E4M3 -> DType.F8E4M3;
      case F8E5M2 -> DType.F8E5M2;
      case I8 -> DType.I8;
      case U8 -> DType.U8;
      case BOOL -> DType.BOOL;
      case I32 -> DType.I32;
      case I64 -> DType.I64;
    };
  }

  public static ElementType elementType(DType t) {
    return switch (t) {
      case F32 -> ElementType.F32;
      case BF16 -> ElementType.BF16;
      case F16 -> ElementType.F16;
      case F8E4M3 -> ElementType.F8E4M3;
      case F8E5M2 -> ElementType.F8E5M2;
      case I8 -> ElementType.I8;
      case I32 -> ElementType.I32;
      case I64 -> ElementType.I64;
      case BOOL -> ElementType.BOOL;
      case U8 -> ElementType.U8;
    };
  }
}
