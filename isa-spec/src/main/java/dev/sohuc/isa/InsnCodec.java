package dev.sohuc.isa;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.RecordComponent;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Encoder and decoder, derived from {@link InsnTable}: each record's canonical constructor and
 * accessors are bound to the table's fields once, so encoding and decoding cannot drift from the
 * table.
 */
public final class InsnCodec {
  private InsnCodec() {}

  private record Binding(InsnDef def, List<Field> fields, MethodHandle ctor,
      MethodHandle[] getters) {}

  private static final Map<Class<?>, Binding> BY_CLASS = new HashMap<>();
  private static final Binding[] BY_OPCODE = new Binding[256];

  static {
    Map<String, Class<?>> records = new HashMap<>();
    for (Class<?> c : Insn.class.getPermittedSubclasses()) {
      records.put(c.getSimpleName(), c);
    }
    MethodHandles.Lookup lookup = MethodHandles.lookup();
    for (InsnDef d : InsnTable.all()) {
      Class<?> c = records.get(d.recordName());
      if (c == null) {
        throw new IllegalStateException("no record Insn." + d.recordName() + " for " + d.mnemonic());
      }
      List<Field> fields = d.operandFields();
      RecordComponent[] rc = c.getRecordComponents();
      if (rc.length != fields.size()) {
        throw new IllegalStateException("Insn." + c.getSimpleName() + " has " + rc.length
            + " components, the table has " + fields.size() + " fields");
      }
      Class<?>[] types = new Class<?>[rc.length];
      MethodHandle[] getters = new MethodHandle[rc.length];
      try {
        for (int i = 0; i < rc.length; i++) {
          Field f = fields.get(i);
          if (!rc[i].getName().equals(f.javaName()) || rc[i].getType() != f.javaType()) {
            throw new IllegalStateException("Insn." + c.getSimpleName() + " component " + i + " is "
                + rc[i].getType().getSimpleName() + " " + rc[i].getName() + ", the table says "
                + f.javaType().getSimpleName() + " " + f.javaName());
          }
          types[i] = rc[i].getType();
          getters[i] = lookup.unreflect(rc[i].getAccessor()).asType(MethodType.methodType(
              Object.class, Insn.class));
        }
        MethodHandle ctor = lookup.findConstructor(c, MethodType.methodType(void.class, types))
            .asSpreader(Object[].class, types.length)
            .asType(MethodType.methodType(Insn.class, Object[].class));
        Binding b = new Binding(d, fields, ctor, getters);
        BY_CLASS.put(c, b);
        BY_OPCODE[d.opcode()] = b;
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException(e);
      }
    }
    if (BY_CLASS.size() != records.size()) {
      throw new IllegalStateException("Insn has records without a table entry");
    }
  }

  /** The table entry of a record class. */
  public static InsnDef defOf(Class<?> recordClass) {
    return BY_CLASS.get(recordClass).def();
  }

  /** The record class of a table entry. */
  public static Class<? extends Insn> recordOf(InsnDef def) {
    for (Map.Entry<Class<?>, Binding> e : BY_CLASS.entrySet()) {
      if (e.getValue().def() == def) {
        return e.getKey().asSubclass(Insn.class);
      }
    }
    throw new IllegalArgumentException(def.mnemonic());
  }

  /** Encodes an instruction. Throws IsaException if a value does not fit its field. */
  public static Word encode(Insn insn) {
    Binding b = BY_CLASS.get(insn.getClass());
    long[] raw = new long[b.fields().size()];
    for (int i = 0; i < raw.length; i++) {
      raw[i] = rawOf(b.fields().get(i), get(b.getters()[i], insn));
    }
    return encode(b.def(), raw);
  }

  /**
   * Encodes raw field values (in {@link InsnDef#operandFields()} order; signed values as
   * two's complement, enums as ordinals). Throws IsaException naming the field out of range.
   */
  public static Word encode(InsnDef def, long[] raw) {
    List<Field> fields = def.operandFields();
    Word w = new Word(0, 0).withBits(0, InsnDef.OPCODE_BITS, def.opcode());
    for (int i = 0; i < raw.length; i++) {
      Field f = fields.get(i);
      long value = f.valueOf(f.width() == 64 ? raw[i] : raw[i] & ((1L << f.width()) - 1));
      if (value != rawToCheck(f, raw[i]) || !f.legal(value)) {
        throw new IsaException(def.mnemonic() + ": field " + f.name() + " = " + raw[i]
            + " is out of range (" + f.range() + ")");
      }
      w = w.withBits(f.lo(), f.width(), raw[i]);
    }
    return w;
  }

  private static long rawToCheck(Field f, long raw) {
    return f.kind() == FieldKind.F32 ? raw & 0xFFFF_FFFFL : raw;
  }

  /** Decodes a word; throws IllegalInstructionException with the reason if it is not legal. */
  public static Insn decode(Word w) {
    Binding b = BY_OPCODE[(int) w.bits(0, InsnDef.OPCODE_BITS)];
    if (b == null) {
      int op = (int) w.bits(0, 8);
      throw new IllegalInstructionException(w, String.format("opcode 0x%02x is %s", op,
          op == 0 || op == 0xFF ? "reserved illegal" : "not defined"));
    }
    InsnDef d = b.def();
    for (Field f : d.fields()) {
      if (f.kind() == FieldKind.RESERVED && !isZero(w, f)) {
        throw new IllegalInstructionException(w, d.mnemonic() + ": reserved bits " + f.lo() + ".."
            + f.hi() + " are not zero");
      }
    }
    Object[] args = new Object[b.fields().size()];
    for (int i = 0; i < args.length; i++) {
      Field f = b.fields().get(i);
      long value = f.valueOf(w.bits(f.lo(), f.width()));
      if (!f.legal(value)) {
        throw new IllegalInstructionException(w, d.mnemonic() + ": field " + f.name() + " = "
            + value + " is out of range (" + f.range() + ")");
      }
      args[i] = box(f, value);
    }
    try {
      return (Insn) b.ctor().invokeExact(args);
    } catch (Throwable t) {
      throw new IllegalStateException(t);
    }
  }

  /** The raw field values of a decoded instruction, in operand-field order. */
  public static long[] rawFields(Insn insn) {
    Binding b = BY_CLASS.get(insn.getClass());
    long[] raw = new long[b.fields().size()];
    for (int i = 0; i < raw.length; i++) {
      raw[i] = rawOf(b.fields().get(i), get(b.getters()[i], insn));
    }
    return raw;
  }

  /** Builds a record from raw field values (operand-field order). */
  public static Insn fromRaw(InsnDef def, long[] raw) {
    return decode(encode(def, raw));
  }

  private static boolean isZero(Word w, Field f) {
    for (int at = f.lo(); at <= f.hi(); at += 64) {
      int width = Math.min(64, f.hi() - at + 1);
      if (w.bits(at, width) != 0) {
        return false;
      }
    }
    return true;
  }

  private static Object get(MethodHandle getter, Insn insn) {
    try {
      return (Object) getter.invokeExact(insn);
    } catch (Throwable t) {
      throw new IllegalStateException(t);
    }
  }

  private static Object box(Field f, long value) {
    return switch (f.kind()) {
      case REG -> (int) value;
      case UIMM, SIMM -> f.javaType() == int.class ? (Object) (int) value : (Object) value;
      case F32 -> Float.intBitsToFloat((int) value);
      case FLAG -> value != 0;
      case ENUM -> f.enumType().getEnumConstants()[(int) value];
      case OPCODE, RESERVED -> throw new IllegalArgumentException(f.name());
    };
  }

  private static long rawOf(Field f, Object v) {
    return switch (f.kind()) {
      case REG -> (Integer) v;
      case UIMM -> v instanceof Integer i ? i : (Long) v;
      case SIMM -> v instanceof Integer i ? (long) i : (Long) v;
      case F32 -> Float.floatToRawIntBits((Float) v) & 0xFFFF_FFFFL;
      case FLAG -> ((Boolean) v) ? 1 : 0;
      case ENUM -> ((AsmEnum) v).ordinal();
      case OPCODE, RESERVED -> 0;
    };
  }
}
