package dev.sohuc.emu;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.sohuc.isa.Field;
import dev.sohuc.isa.FieldKind;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.InsnDef;
import dev.sohuc.isa.InsnTable;
import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.container.SohuProgram;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Timeout;

/**
 * Jazzer fuzz target for the emulator: a program built from the fuzz bytes (instructions of the
 * table with fuzzed fields, li of fuzzed values, raw words), with a debug entry per instruction,
 * runs in functional and timing mode on the tiny target under a small instruction cap. Only
 * {@link EmulatorException} may escape, with a one-line message, and a {@link Trap} at an
 * instruction names it and its IR op. Without JAZZER_FUZZ=1 it replays the inputs under
 * src/test/resources/dev/sohuc/emu/EmulatorFuzzTestInputs.
 */
class EmulatorFuzzTest {
  private static final List<InsnDef> DEFS = InsnTable.all();
  private static final InsnDef LI = InsnTable.byMnemonic("li");
  private static final long[] EDGES = {0, 1, -1, 2, 4, 8, 64, 128, 4096, 65535, 1L << 31,
      Integer.MAX_VALUE, Integer.MIN_VALUE, Long.MAX_VALUE, Long.MIN_VALUE, 1L << 62, 1L << 32};
  private static final Options OPTIONS = Options.defaults().withMaxInstructions(2_000)
      .withHostHbmBudgetBytes(32L << 20).withParallel(false);

  @Timeout(value = 20, unit = TimeUnit.SECONDS)
  @FuzzTest(maxDuration = "60s")
  void run(FuzzedDataProvider in) {
    SohuProgram p = program(in);
    for (boolean timing : new boolean[] {false, true}) {
      try {
        Emulator emu = new Emulator(p, TestSupport.TINY, OPTIONS);
        if (timing) {
          emu.runTiming(Map.of());
        } else {
          emu.runFunctional(Map.of(), Map.of());
        }
      } catch (Trap t) {
        check(t.getMessage());
        if (t.pc() >= 0 && t.pc() < p.code().size()
            && (t.instruction() == null || !("op" + t.pc()).equals(t.irOp()))) {
          throw new AssertionError("trap without its instruction or IR op: " + t.getMessage(), t);
        }
      } catch (EmulatorException e) {
        check(e.getMessage());
      }
    }
  }

  private static void check(String message) {
    if (message == null || message.isBlank() || message.contains("\n")
        || message.contains("internal emulator error")) {
      throw new AssertionError("bad message: " + message);
    }
  }

  private static SohuProgram program(FuzzedDataProvider in) {
    List<Word> code = new ArrayList<>();
    int n = in.consumeInt(1, 32);
    for (int i = 0; i < n && in.remainingBytes() > 0; i++) {
      int kind = in.consumeInt(0, 7);
      if (kind == 0) {
        code.add(new Word(in.consumeLong(), in.consumeLong()));
      } else if (kind <= 2) {
        long v = in.consumeBoolean() ? in.pickValue(EDGES) : in.consumeLong();
        code.add(InsnCodec.encode(LI, new long[] {in.consumeInt(1, 31), v, 0, 0}));
      } else {
        InsnDef d = in.pickValue(DEFS);
        long[] raw = fields(d, in);
        try {
          code.add(InsnCodec.encode(d, raw));
        } catch (IsaException e) {
          code.add(new Word(d.opcode(), in.consumeLong()));
        }
      }
    }
    code.add(InsnCodec.encode(InsnTable.byMnemonic("halt"), new long[] {0, 0}));
    List<SohuProgram.DebugEntry> debug = new ArrayList<>();
    for (int pc = 0; pc < code.size(); pc++) {
      debug.add(new SohuProgram.DebugEntry(pc, "op" + pc, "fuzz.ir:" + pc));
    }
    return new SohuProgram(new SohuProgram.Target("tiny", SohuProgram.Target.NO_HASH), code,
        null, List.of(), debug, new TreeMap<>(), List.of());
  }

  private static long[] fields(InsnDef d, FuzzedDataProvider in) {
    List<Field> fs = d.operandFields();
    long[] raw = new long[fs.size()];
    for (int i = 0; i < raw.length; i++) {
      Field f = fs.get(i);
      raw[i] = switch (f.kind()) {
        case REG -> in.consumeInt(0, 31);
        case FLAG -> in.consumeBoolean() ? 1 : 0;
        case ENUM -> in.pickValue(f.allowed()).ordinal();
        case F32 -> in.consumeInt() & 0xFFFF_FFFFL;
        case UIMM, SIMM -> {
          long v = f.width() == 64 ? in.consumeLong() : in.consumeLong(f.min(), f.max());
          yield f.kind() == FieldKind.SIMM && f.width() < 64
              ? v & ((1L << f.width()) - 1) : v;
        }
        case OPCODE, RESERVED -> 0;
      };
    }
    return raw;
  }
}
