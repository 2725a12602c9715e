package dev.sohuc.isa;

/**
 * The timing model's parameters for one instruction. An instruction occupies its engine for
 * {@code fixedCycles + ceil(passes * work / rate)} cycles, where work is counted in {@code unit}
 * by {@code formula} (from field values and register values read at issue), and rate is the
 * machine description's throughput of that engine for that unit (and dtype, for the MXU). Its
 * result is visible (its signal token fires) {@code latencyCycles} after that: pipeline latency,
 * which delays the instruction's completion but not the next instruction's start on the engine.
 */
public record Cost(int fixedCycles, Unit unit, int passes, String formula, Work work,
    int latencyCycles) {

  /** A cost without pipeline latency. */
  public Cost(int fixedCycles, Unit unit, int passes, String formula, Work work) {
    this(fixedCycles, unit, passes, formula, work, 0);
  }

  /**
   * The work of one instruction, with {@code reg} giving register values as read at issue:
   * the number the timing model divides by the engine's rate.
   */
  public static long workOf(Insn insn, java.util.function.IntToLongFunction reg) {
    InsnDef d = insn.def();
    long[] raw = InsnCodec.rawFields(insn);
    java.util.List<Field> fs = d.operandFields();
    Values v = new Values() {
      @Override
      public long field(String name) {
        for (int i = 0; i < fs.size(); i++) {
          if (fs.get(i).name().equals(name)) {
            return fs.get(i).valueOf(raw[i]);
          }
        }
        throw new IllegalArgumentException(d.mnemonic() + " has no field " + name);
      }

      @Override
      public long reg(String regField) {
        return reg.applyAsLong((int) field(regField));
      }

      @Override
      public long count(String operand) {
        for (Field f : fs) {
          if (f.name().equals(operand)) {
            return reg(operand);
          }
        }
        return reg(operand + "_reg") + field(operand + "_imm");
      }
    };
    return d.cost().work().of(v);
  }

  /** What the work of an instruction is counted in. */
  public enum Unit {
    NONE, BYTES, MACS, ELEMENTS,
    /** Bytes each chip sends over the interconnect (rate: interconnect.bandwidth per cycle). */
    LINK_BYTES
  }

  /** Computes the work of one instruction from its field values and its registers. */
  @FunctionalInterface
  public interface Work {
    long of(Values v);
  }

  /** Field values of one instruction, with registers already read at issue. */
  public interface Values {
    /** The numeric value of a field by its table name (enum: ordinal, flag: 0/1). */
    long field(String name);

    /** The value of the register named by a REG field. */
    long reg(String regField);

    /** The value of a COUNT operand: its register plus its immediate (or a REG count's register). */
    long count(String operand);
  }
}
