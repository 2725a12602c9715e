package dev.sohuc.emu;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.asm.Assembler;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.num.Numerics;
import java.util.HashMap;
import java.util.Map;

/** Helpers shared by the emulator tests: the tiny target, assembling, SRAM access. */
final class TestSupport {
  private TestSupport() {}

  static final MachineDescription TINY = MachineDescription.resource("tiny");

  static SohuProgram asm(String source) {
    return Assembler.assemble(source, "test.s");
  }

  static Options opts() {
    return Options.defaults().withMaxInstructions(1_000_000);
  }

  /** A functional machine for a program, loaded and ready to run (SRAM may be preset). */
  static FunctionalMachine machine(String source) {
    return new Emulator(asm(source), TINY, opts()).prepareFunctional(Map.of(), Map.of(),
        new HashMap<>());
  }

  static void put(FunctionalMachine m, int addr, DType t, float... values) {
    for (int i = 0; i < values.length; i++) {
      Elem.putBits(m.sram, addr + i * t.bytes(), t, Numerics.fromF32(values[i], t));
    }
  }

  static void putBits(FunctionalMachine m, int addr, DType t, int... bits) {
    for (int i = 0; i < bits.length; i++) {
      Elem.putBits(m.sram, addr + i * t.bytes(), t, bits[i]);
    }
  }

  static float get(FunctionalMachine m, int addr, DType t) {
    return Elem.load(m.sram, addr, t);
  }

  static float[] get(FunctionalMachine m, int addr, DType t, int n) {
    float[] out = new float[n];
    for (int i = 0; i < n; i++) {
      out[i] = Elem.load(m.sram, addr + i * t.bytes(), t);
    }
    return out;
  }

  static int bits(FunctionalMachine m, int addr, DType t) {
    return Elem.bits(m.sram, addr, t);
  }
}
