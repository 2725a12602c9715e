package dev.sohuc.isa;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * One row of the ISA table: everything about one instruction. Built only by {@link InsnTable}.
 *
 * @param fields every field, in table order: opcode, the operand fields, reserved padding, then
 *     the header's wait and signal fields (record components follow this order, minus opcode and
 *     reserved)
 * @param operands the assembly operands, in the order written
 */
public record InsnDef(
    int opcode,
    String mnemonic,
    Engine engine,
    String semantics,
    List<Field> fields,
    List<Operand> operands,
    Cost cost,
    String example) {

  /** Bits 0..7: the opcode. */
  public static final int OPCODE_BITS = 8;
  /** Bits 8..12: the token this instruction waits on (0 = none). */
  public static final int WAIT_LO = 8;
  /** Bits 13..17: the token this instruction signals on completion (0 = none). */
  public static final int SIGNAL_LO = 13;
  public static final int TOKEN_BITS = 5;
  /** Operand fields start here. */
  public static final int BODY_LO = 18;
  public static final int WORD_BITS = 128;

  public InsnDef {
    fields = List.copyOf(fields);
    operands = List.copyOf(operands);
  }

  /** The fields that are record components, in component order. */
  public List<Field> operandFields() {
    return fields.stream().filter(Field::isOperand).toList();
  }

  public Field field(String name) {
    for (Field f : fields) {
      if (f.name().equals(name)) {
        return f;
      }
    }
    throw new IllegalArgumentException(mnemonic + " has no field " + name);
  }

  /** The simple name of the record class in {@link Insn}: the mnemonic with a capital. */
  public String recordName() {
    return mnemonic.substring(0, 1).toUpperCase(Locale.ROOT) + mnemonic.substring(1);
  }

  static Builder builder(int opcode, String mnemonic, Engine engine) {
    return new Builder(opcode, mnemonic, engine);
  }

  /** Lays out fields from bit 18 upwards in the order they are declared. */
  static final class Builder {
    private final int opcode;
    private final String mnemonic;
    private final Engine engine;
    private final List<Field> body = new ArrayList<>();
    private final List<Operand> operands = new ArrayList<>();
    private int next = BODY_LO;
    private String semantics = "";
    private Cost cost;
    private String example;

    Builder(int opcode, String mnemonic, Engine engine) {
      this.opcode = opcode;
      this.mnemonic = mnemonic;
      this.engine = engine;
    }

    private Field field(String name, FieldKind kind, int width, long min, long max,
        Class<? extends AsmEnum> enumType, List<AsmEnum> allowed, String doc) {
      Field f = new Field(name, camel(name), kind, next, width, min, max, enumType, allowed, doc);
      next += width;
      body.add(f);
      return f;
    }

    private Builder op(String name, Operand.Form form, List<Field> fs, String doc) {
      operands.add(new Operand(name, form, fs, false, null, false, doc));
      return this;
    }

    /** Makes the last operand a keyword operand with these raw default values. */
    Builder kw(long... defaults) {
      Operand o = operands.remove(operands.size() - 1);
      operands.add(new Operand(o.name(), o.form(), o.fields(), true, defaults, false, o.doc()));
      return this;
    }

    /**
     * Makes the last operand an optional positional one with these raw default values: it may
     * be left off when no positional operand after it is written, so a field that takes bits
     * that were reserved keeps the old assembly (and the old encoding, with default 0).
     */
    Builder optional(long... defaults) {
      Operand o = operands.remove(operands.size() - 1);
      operands.add(new Operand(o.name(), o.form(), o.fields(), false, defaults, false, o.doc()));
      return this;
    }

    Builder reg(String name, String doc) {
      Field f = field(name, FieldKind.REG, 5, 0, 31, null, null, doc);
      return op(name, Operand.Form.REG, List.of(f), doc);
    }

    Builder uimm(String name, int width, long min, long max, String doc) {
      Field f = field(name, FieldKind.UIMM, width, min, max, null, null, doc);
      return op(name, Operand.Form.IMM, List.of(f), doc);
    }

    /** An unsigned count of following instructions; a label may stand for it. */
    Builder bodyLen(String name, int width, String doc) {
      uimm(name, width, 1, (1L << width) - 1, doc);
      Operand o = operands.remove(operands.size() - 1);
      operands.add(new Operand(o.name(), o.form(), o.fields(), false, null, true, doc));
      return this;
    }

    Builder simm(String name, int width, String doc) {
      long min = width == 64 ? Long.MIN_VALUE : -(1L << (width - 1));
      long max = width == 64 ? Long.MAX_VALUE : (1L << (width - 1)) - 1;
      Field f = field(name, FieldKind.SIMM, width, min, max, null, null, doc);
      return op(name, Operand.Form.IMM, List.of(f), doc);
    }

    Builder f32(String name, String doc) {
      Field f = field(name, FieldKind.F32, 32, 0, 0xFFFF_FFFFL, null, null, doc);
      return op(name, Operand.Form.F32, List.of(f), doc);
    }

    Builder flag(String name, String doc) {
      Field f = field(name, FieldKind.FLAG, 1, 0, 1, null, null, doc);
      return op(name, Operand.Form.FLAG, List.of(f), doc).kw(0);
    }

    @SafeVarargs
    final <E extends Enum<E> & AsmEnum> Builder enumf(String name, int width, Class<E> type,
        String doc, E... allowed) {
      List<AsmEnum> legal = allowed.length == 0
          ? Arrays.asList((AsmEnum[]) type.getEnumConstants())
          : Arrays.asList((AsmEnum[]) allowed);
      Field f = field(name, FieldKind.ENUM, width, 0, (1L << width) - 1, type, legal, doc);
      return op(name, Operand.Form.ENUM, List.of(f), doc);
    }

    /** A memory operand {@code rB+off}: fields {@code name} (REG) and {@code name_off} (SIMM). */
    Builder addr(String name, int offBits, String doc) {
      Field base = field(name, FieldKind.REG, 5, 0, 31, null, null, doc + " (base register)");
      Field off = field(name + "_off", FieldKind.SIMM, offBits, -(1L << (offBits - 1)),
          (1L << (offBits - 1)) - 1, null, null, doc + " (signed offset)");
      return op(name, Operand.Form.ADDR, List.of(base, off), doc);
    }

    /** A count {@code rN+imm}: fields {@code name_reg} (REG) and {@code name_imm} (UIMM). */
    Builder count(String name, int immBits, String doc) {
      Field r = field(name + "_reg", FieldKind.REG, 5, 0, 31, null, null, doc + " (register part)");
      Field i = field(name + "_imm", FieldKind.UIMM, immBits, 0, (1L << immBits) - 1, null, null,
          doc + " (immediate part)");
      return op(name, Operand.Form.COUNT, List.of(r, i), doc);
    }

    Builder semantics(String text) {
      this.semantics = text;
      return this;
    }

    Builder cost(int fixedCycles, Cost.Unit unit, int passes, String formula, Cost.Work work) {
      this.cost = new Cost(fixedCycles, unit, passes, formula, work);
      return this;
    }

    /** Pipeline latency: cycles from the end of the engine's occupancy to the result. */
    Builder latency(int cycles) {
      this.cost = new Cost(cost.fixedCycles(), cost.unit(), cost.passes(), cost.formula(),
          cost.work(), cycles);
      return this;
    }

    Builder example(String asm) {
      this.example = asm;
      return this;
    }

    InsnDef build() {
      List<Field> all = new ArrayList<>();
      all.add(new Field("opcode", "opcode", FieldKind.OPCODE, 0, OPCODE_BITS, opcode, opcode,
          null, null, "opcode 0x" + Integer.toHexString(opcode)));
      all.addAll(body);
      if (next < WORD_BITS) {
        all.add(new Field("reserved", "reserved", FieldKind.RESERVED, next, WORD_BITS - next, 0,
            0, null, null, "must be zero"));
      }
      Field wait = new Field("wait", "waitTok", FieldKind.UIMM, WAIT_LO, TOKEN_BITS, 0, 31, null,
          null, "token to wait on before starting (0 = none)");
      Field signal = new Field("signal", "signalTok", FieldKind.UIMM, SIGNAL_LO, TOKEN_BITS, 0, 31,
          null, null, "token to signal on completion (0 = none)");
      all.add(wait);
      all.add(signal);
      List<Operand> ops = new ArrayList<>(operands);
      ops.add(new Operand("wait", Operand.Form.IMM, List.of(wait), true, new long[] {0}, false,
          wait.doc()));
      ops.add(new Operand("signal", Operand.Form.IMM, List.of(signal), true, new long[] {0}, false,
          signal.doc()));
      return new InsnDef(opcode, mnemonic, engine, semantics, all, ops, cost, example);
    }
  }

  static String camel(String snake) {
    StringBuilder sb = new StringBuilder();
    boolean up = false;
    for (char c : snake.toCharArray()) {
      if (c == '_') {
        up = true;
      } else {
        sb.append(up ? Character.toUpperCase(c) : c);
        up = false;
      }
    }
    return sb.toString();
  }
}
