package dev.sohuc.emu;

import dev.sohuc.isa.IllegalInstructionException;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.asm.Disassembler;
import dev.sohuc.isa.container.SohuProgram;
import java.util.HashMap;
import java.util.Map;

/**
 * A program prepared for execution: instructions decoded lazily (once per pc) and the debug
 * section indexed by pc, so that every trap can name its instruction and IR op.
 */
final class Image {
  final SohuProgram program;
  final int length;
  private final Insn[] insns;
  private final Map<Integer, SohuProgram.DebugEntry> debug = new HashMap<>();

  Image(SohuProgram program) {
    this.program = program;
    this.length = program.code().size();
    this.insns = new Insn[length];
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
