package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.fail;

import dev.sohuc.isa.AsmEnum;
import dev.sohuc.isa.Field;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.InsnDef;
import dev.sohuc.isa.InsnTable;
import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.container.SohuProgram;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Random programs, decodable and not: the emulator must finish every one, in both modes, and
 * throw nothing but its own exceptions.
 */
class RandomProgramTest {
  private static final int PROGRAMS = 400;
  private static final long SEED = Long.getLong("sohuc.seed", 20240501L);

  @Test
  void randomProgramsOnlyEverRaiseEmulatorExceptions() {
    System.out.println("RandomProgramTest seed " + SEED + " (rerun with -Dsohuc.seed=N)");
    assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
      Random rnd = new Random(SEED);
      Options opts = TestSupport.opts().withMaxInstructions(400)
          .withHostHbmBudgetBytes(64L << 20);
      int traps = 0;
      for (int n = 0; n < PROGRAMS; n++) {
        long seed = rnd.nextLong();
        SohuProgram p = program(new Random(seed));
        for (boolean timing : new boolean[] {false, true}) {
          try {
            Emulator emu = new Emulator(p, TestSupport.TINY, opts);
            if (timing) {
              emu.runTiming(Map.of());
            } else {
              emu.runFunctional(Map.of(), Map.of());
            }
          } catch (EmulatorException e) {
            traps++;
            if (e.getMessage() == null || e.getMessage().contains("\n")
                || e.getMessage().contains("internal emulator error")) {
              fail("program seed " + seed + (timing ? " (timing)" : " (functional)")
                  + ": bad message: " + e.getMessage());
            }
          } catch (Throwable t) {
            throw new AssertionError("program seed " + seed + (timing ? " (timing)"
                : " (functional)") + " escaped with " + t, t);
          }
        }
      }
      System.out.println("RandomProgramTest: " + traps + " of " + 2 * PROGRAMS
          + " runs trapped");
    });
  }

  static SohuProgram program(Random rnd) {
    List<Word> code = new ArrayList<>();
    int len = 1 + rnd.nextInt(40);
    List<InsnDef> defs = InsnTable.all();
    for (int i = 0; i < len; i++) {
      int kind = rnd.nextInt(10);
      if (kind == 0) {
        code.add(new Word(rnd.nextLong(), rnd.nextLong()));
      } else if (kind <= 2) {
        long v = switch (rnd.nextInt(4)) {
          case 0 -> rnd.nextInt(64);
          case 1 -> rnd.nextInt(1 << 18);
          case 2 -> -rnd.nextInt(1000);
          default -> rnd.nextLong();
        };
        code.add(encode(InsnTable.byMnemonic("li"), new long[] {1 + rnd.nextInt(31), v, 0, 0}));
      } else {
        InsnDef d = defs.get(rnd.nextInt(defs.size()));
        try {
          code.add(encode(d, randomFields(d, rnd)));
        } catch (IsaException e) {
          code.add(new Word(d.opcode(), rnd.nextLong()));
        }
      }
    }
    if (rnd.nextInt(4) != 0) {
      code.add(encode(InsnTable.byMnemonic("halt"), new long[] {0, 0}));
    }
    return SohuProgram.ofCode(new SohuProgram.Target("tiny", SohuProgram.Target.NO_HASH), code);
  }

  private static Word encode(InsnDef d, long[] raw) {
    return InsnCodec.encode(d, raw);
  }

  private static long[] randomFields(InsnDef d, Random rnd) {
    List<Field> fs = d.operandFields();
    long[] raw = new long[fs.size()];
    for (int i = 0; i < raw.length; i++) {
      Field f = fs.get(i);
      raw[i] = switch (f.kind()) {
        case REG -> rnd.nextInt(4) == 0 ? 0 : rnd.nextInt(32);
        case FLAG -> rnd.nextInt(2);
        case ENUM -> {
          List<AsmEnum> allowed = f.allowed();
          yield allowed.get(rnd.nextInt(allowed.size())).ordinal();
        }
        case F32 -> Float.floatToRawIntBits(rnd.nextBoolean() ? rnd.nextFloat() * 4 - 2
            : Float.intBitsToFloat(rnd.nextInt()));
        case UIMM -> {
          if (f.name().equals("wait") || f.name().equals("signal")) {
            yield rnd.nextInt(3) == 0 ? rnd.nextInt(4) : 0;
          }
          long span = Math.min(f.max() - f.min(), rnd.nextBoolean() ? 16 : f.max() - f.min());
          yield f.min() + (span <= 0 ? 0 : Math.floorMod(rnd.nextLong(), span + 1));
        }
        case SIMM -> {
          long lo = Math.max(f.min(), -64);
          long hi = Math.min(f.max(), 64);
          long v = lo + Math.floorMod(rnd.nextLong(), hi - lo + 1);
          yield f.width() == 64 ? v : v & ((1L << f.width()) - 1);
        }
        case OPCODE, RESERVED -> 0;
      };
    }
    return raw;
  }
}
