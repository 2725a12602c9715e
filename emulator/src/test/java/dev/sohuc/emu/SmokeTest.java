package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.sohuc.isa.DType;
import org.junit.jupiter.api.Test;

class SmokeTest {
  @Test
  void addsTwoRows() {
    FunctionalMachine m = TestSupport.machine("""
        li r1, 0
        li r2, 16
        li r3, 32
        li r4, 1
        li r5, 4
        li r6, 16
        vbin add, r3+0, r6, r1+0, r6, r2+0, r6, r4, r5, f32
        halt
        """);
    TestSupport.put(m, 0, DType.F32, 1, 2, 3, 4);
    TestSupport.put(m, 16, DType.F32, 10, 20, 30, 40);
    m.run();
    assertEquals(44f, TestSupport.get(m, 44, DType.F32));
  }
}
