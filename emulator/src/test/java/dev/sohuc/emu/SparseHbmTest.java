package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** A program for the 144 GB chip costs only the HBM pages it writes. */
class SparseHbmTest {
  @Test
  void writesNearTheTopOfA144GbHbmTouchOnePage() {
    String src = """
        li r1, 143999999000
        li r2, 1
        li r3, 4
        vfill r0+0, r0, 3.5, r2, r3, f32
        dma hbm, r1+0, r0, sram, r0+0, r0, 16, 1, signal=1
        dma sram, r0+64, r0, hbm, r1+0, r0, 16, 1, wait=1
        dma sram, r0+128, r0, hbm, r0+0, r0, 16, 1
        halt
        """;
    MachineDescription sohu = MachineDescription.defaultTarget();
    FunctionalMachine m = new Emulator(TestSupport.asm(src), sohu, TestSupport.opts())
        .prepareFunctional(Map.of(), Map.of(), new HashMap<>());
    m.run();
    assertEquals(3.5f, TestSupport.get(m, 64 + 12, dev.sohuc.isa.DType.F32));
    assertEquals(0f, TestSupport.get(m, 128, dev.sohuc.isa.DType.F32), "unwritten HBM reads 0");
    assertEquals(1, m.hbm.pagesAllocated());
    assertTrue(m.hbm.size() == 144L << 30);
  }
}
