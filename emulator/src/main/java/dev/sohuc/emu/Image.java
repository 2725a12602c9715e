package dev.sohuc.emu;

import dev.sohuc.isa.Field;
import dev.sohuc.isa.IllegalInstructionException;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.InsnDef;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.asm.Disassembler;
import dev.sohuc.isa.container.SohuProgram;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A program prepared for execution: instructions decoded lazily (once per pc) and the debug
 * section indexed by pc, so that every trap can name its instruction and IR op. An emulator
 * keeps one image for all its runs, so a program timed many times (the serving benchmark's
 * step shapes) is decoded once. Not thread-safe.
 */
final class Image {
  final SohuProgram program;
  final int length;
  private final Insn[] insns;
  private final Fields[] fields;
  private final Map<InsnDef, Map<String, Integer>> fieldIndex = new HashMap<>();
  private final Map<Integer, SohuProgram.DebugEntry> debug = new HashMap<>();

  Image(SohuProgram program) {
    this.program = program;
    this.length = program.code().size();
    this.insns = new Insn[length];
    this.fields = new Fields[length];
    for (SohuProgram.DebugEntry e : program.debug()) {
      debug.put(e.pc(), e);
    }
  }

  /** The instruction at pc, decoded once; traps on an illegal word or a pc outside the code. */
  Insn insn(int pc) {
    if (pc < 0 || pc >= length) {
      throw trap(pc, Trap.Kind.ILLEGAL_INSTRUCTION, "pc " + pc + " is outside the code ("
          + length + " instructions): the program ran past its end without halt");
    }
    Insn i = insns[pc];
    if (i == null) {
      try {
        i = InsnCodec.decode(program.code().get(pc));
      } catch (IllegalInstructionException e) {
        throw trap(pc, Trap.Kind.ILLEGAL_INSTRUCTION, e.getMessage());
      } catch (RuntimeException e) {
        throw trap(pc, Trap.Kind.ILLEGAL_INSTRUCTION, "word " + program.code().get(pc)
            + " does not decode: " + e);
      }
      insns[pc] = i;
    }
    return i;
  }

  /**
   * An instruction's operand fields: each one's position by name and its value as the cost
   * formulas read it (a register field's value is its register number).
   */
  record Fields(Map<String, Integer> index, long[] values) {}

  /** The operand fields of the (decodable) instruction at pc, computed once. */
  Fields fields(int pc) {
    Fields f = fields[pc];
    if (f == null) {
      Insn insn = insn(pc);
      List<Field> defined = insn.def().operandFields();
      Map<String, Integer> index = fieldIndex.computeIfAbsent(insn.def(), d -> {
        Map<String, Integer> byName = new HashMap<>();
        for (int i = 0; i < defined.size(); i++) {
          byName.put(defined.get(i).name(), i);
        }
        return byName;
      });
      long[] raw = InsnCodec.rawFields(insn);
      long[] values = new long[raw.length];
      for (int i = 0; i < raw.length; i++) {
        values[i] = defined.get(i).valueOf(raw[i]);
      }
      f = new Fields(index, values);
      fields[pc] = f;
    }
    return f;
  }

  /** The disassembly of pc, or the raw word when it does not decode. */
  String text(int pc) {
    if (pc < 0 || pc >= length) {
      return null;
    }
    Insn i = insns[pc];
    try {
      if (i == null) {
        i = InsnCodec.decode(program.code().get(pc));
      }
      return Disassembler.format(i);
    } catch (RuntimeException e) {
      Word w = program.code().get(pc);
      return ".word " + w;
    }
  }

  /** The debug entry of pc, or null where the debug section has none. */
  SohuProgram.DebugEntry debugEntry(int pc) {
    return debug.get(pc);
  }

  Trap trap(long pc, Trap.Kind kind, String detail) {
    SohuProgram.DebugEntry d = pc >= 0 && pc < length ? debug.get((int) pc) : null;
    return new Trap(kind, pc, text((int) Math.min(Integer.MAX_VALUE, pc)),
        d == null ? null : d.irOp(), d == null ? null : d.location(), detail);
  }

  Trap trap(long pc, Fault f) {
    return trap(pc, f.kind, f.getMessage());
  }
}
