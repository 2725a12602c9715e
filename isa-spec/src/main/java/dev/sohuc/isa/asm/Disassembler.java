package dev.sohuc.isa.asm;

import dev.sohuc.isa.AsmEnum;
import dev.sohuc.isa.Field;
import dev.sohuc.isa.FieldKind;
import dev.sohuc.isa.IllegalInstructionException;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.InsnDef;
import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.Operand;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuProgram.Symbol;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Prints instructions in exactly the syntax {@link Assembler} reads: positional operands (those
 * at the end that are optional and at their default left off), then keyword operands whose value
 * differs from their default. Assembling the output gives the same bytes.
 */
public final class Disassembler {
  private Disassembler() {}

  /** Column at which operands start. */
  private static final int MNEMONIC_WIDTH = 8;

  /** One instruction, without label or comment. */
  public static String format(Insn insn) {
    InsnDef d = insn.def();
    long[] raw = InsnCodec.rawFields(insn);
    List<Field> fields = d.operandFields();
    List<String> parts = new ArrayList<>();
    List<String> keywords = new ArrayList<>();
    int needed = 0; // positional parts up to the last one that is not an omittable default
    for (Operand o : d.operands()) {
      long[] vals = new long[o.fields().size()];
      for (int i = 0; i < vals.length; i++) {
        vals[i] = raw[fields.indexOf(o.fields().get(i))];
      }
      boolean atDefault = o.optional() && java.util.Arrays.equals(vals, o.defaults());
      String text = value(o, vals);
      if (o.keyword()) {
        if (!atDefault) {
          keywords.add(o.name() + "=" + text);
        }
      } else {
        parts.add(text);
        if (!atDefault) {
          needed = parts.size();
        }
      }
    }
    parts.subList(needed, parts.size()).clear();
    parts.addAll(keywords);
    if (parts.isEmpty()) {
      return d.mnemonic();
    }
    return String.format("%-" + MNEMONIC_WIDTH + "s %s", d.mnemonic(), String.join(", ", parts));
  }

  /** One word; throws IllegalInstructionException when it does not decode. */
  public static String format(Word w) {
    return format(InsnCodec.decode(w));
  }

  private static String value(Operand o, long[] raw) {
    Field f = o.first();
    return switch (o.form()) {
      case REG -> "r" + raw[0];
      case IMM -> Long.toString(f.valueOf(raw[0]));
      case FLAG -> Long.toString(raw[0]);
      case ENUM -> ((AsmEnum) f.enumType().getEnumConstants()[(int) raw[0]]).asmName();
      case F32 -> f32(Float.intBitsToFloat((int) raw[0]));
      case ADDR, COUNT -> regPlus((int) raw[0], o.fields().get(1).valueOf(raw[1]));
    };
  }

  static String regPlus(int reg, long imm) {
    if (reg == 0) {
      return Long.toString(imm);
    }
    if (imm == 0) {
      return "r" + reg;
    }
    return "r" + reg + (imm > 0 ? "+" + imm : "-" + Long.toUnsignedString(-imm));
  }

  /** Float.toString round-trips every non-NaN f32; NaNs keep their payload as raw hex bits. */
  static String f32(float v) {
    if (Float.isNaN(v)) {
      return String.format("0x%08x", Float.floatToRawIntBits(v));
    }
    if (Float.isInfinite(v)) {
      return v > 0 ? "inf" : "-inf";
    }
    return Float.toString(v);
  }

  /**
   * A whole program as assembly: directives for target, metadata, arguments and symbols, then
   * the code with debug entries as {@code .debug} lines. Re-assembling it gives the same file
   * (inline constants excepted: they are noted in a comment). An illegal word becomes a
   * ContainerException-free IsaException naming its pc.
   */
  public static String format(SohuProgram p, String source) {
    StringBuilder sb = new StringBuilder();
    sb.append(".target ").append(quote(p.target().name())).append(", ")
        .append(quote(p.target().sha256())).append('\n');
    for (Map.Entry<String, String> e : p.metadata().entrySet()) {
      sb.append(".meta ").append(quote(e.getKey())).append(", ").append(quote(e.getValue()))
          .append('\n');
    }
    for (SohuProgram.ArgSlot a : p.args()) {
      sb.append(".arg ").append(quote(a.name())).append(", ").append(a.index());
      if (a.isArray()) {
        sb.append(", ").append(a.values().capacity()).append(", ")
            .append(quote(a.values().below()));
      }
      sb.append('\n');
    }
    for (Symbol s : p.symbols()) {
      List<String> dims = s.shape().stream().map(d -> d instanceof SohuProgram.Dim.Sym y
          ? quote(y.name()) + (y.capacity() > 0 ? "@" + y.capacity() : "") : d.toString())
          .toList();
      sb.append(".symbol ").append(s.direction().name().toLowerCase(java.util.Locale.ROOT))
          .append(", ").append(quote(s.name())).append(", ").append(s.dtype().asmName())
          .append(", [").append(String.join(", ", dims)).append("], ")
          .append(String.format("0x%x", s.hbmAddress())).append(", ").append(s.byteSize())
          .append('\n');
    }
    if (p.constants() instanceof SohuProgram.ExternalConstants ec) {
      sb.append(".constfile ").append(String.format("0x%x", ec.hbmAddress())).append(", ")
          .append(ec.size()).append(", ").append(quote(ec.sha256())).append(", ")
          .append(quote(ec.fileName())).append('\n');
    } else if (p.constants() != null) {
      sb.append(String.format("# inline constants: %d bytes at HBM 0x%x (not reproduced)%n",
          p.constants().size(), p.constants().hbmAddress()));
    }
    int di = 0;
    for (int pc = 0; pc < p.code().size(); pc++) {
      while (di < p.debug().size() && p.debug().get(di).pc() == pc) {
        SohuProgram.DebugEntry e = p.debug().get(di++);
        sb.append(".debug ").append(quote(e.irOp())).append(", ").append(quote(e.location()))
            .append('\n');
      }
      String text;
      try {
        text = format(p.code().get(pc));
      } catch (IllegalInstructionException ex) {
        throw new IsaException(source + ": code word " + pc + " (byte " + (pc * Word.BYTES)
            + " of the code section): " + ex.getMessage());
      }
      sb.append("    ").append(text).append('\n');
    }
    return sb.toString();
  }

  static String quote(String s) {
    StringBuilder sb = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        case '\n' -> sb.append("\\n");
        case '\t' -> sb.append("\\t");
        case '\r' -> sb.append("\\r");
        default -> sb.append(c);
      }
    }
    return sb.append('"').toString();
  }

  static boolean isReserved(Field f) {
    return f.kind() == FieldKind.RESERVED;
  }
}
