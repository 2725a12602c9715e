package dev.sohuc.backend;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.emu.TimingReport;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.isa.Engine;
import dev.sohuc.passes.quant.QuantMode;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A weight-dominated block, {@code y[2048, 4096] = x[2048, 4096] @ w[4096, 4096]}, compiled in
 * f32, bf16 (cast), fp8 and int8 (dynamic per-token scales, no calibration) and run in timing
 * mode only. Facts of the cost model, not wall-clock timings: the quantized programs move fewer
 * HBM bytes than f32 (weights at 2 or 1 bytes, x's conversion fused into the qmatmul so the
 * quantized x never goes to HBM) and keep the MXU busy for fewer cycles (the target's bf16 and
 * f8/i8 rates). The unfused lowering (every cast/dynamic_quantize its own op) is measured too,
 * and the fused one must move fewer bytes than it.
 */
class QuantizedLinearTimingTest {
  static final int SEQ = 2048;
  static final int D = 4096;

  record Row(String label, long cycles, double mfu, long hbmBytes, long mxuBusy, long vpuBusy,
      long dmaBusy) {
    String line() {
      return String.format("%-14s %12d %8.2f %16d %14d %14d %14d%n", label, cycles, 100 * mfu,
          hbmBytes, mxuBusy, vpuBusy, dmaBusy);
    }
  }

  static final Map<QuantMode, Row> fused = new EnumMap<>(QuantMode.class);
  static final Map<QuantMode, Row> unfused = new EnumMap<>(QuantMode.class);

  static Row measure(QuantMode mode, boolean fuse) {
    Module m = QuantLoweringTest.quantizedLinear("linear", List.of(Dim.of(SEQ)), D, D, 0.02f,
        mode).get();
    String old = System.getProperty(QuantLowering.FUSE_PROPERTY);
    System.setProperty(QuantLowering.FUSE_PROPERTY, Boolean.toString(fuse));
    CompiledProgram c;
    try {
      c = SohuBackend.compile(m, BackendOptions.defaults());
    } finally {
      if (old == null) {
        System.clearProperty(QuantLowering.FUSE_PROPERTY);
      } else {
        System.setProperty(QuantLowering.FUSE_PROPERTY, old);
      }
    }
    TimingReport t = new Emulator(c.program(), MachineDescription.defaultTarget(),
        Options.defaults()).runTiming(Map.of());
    return new Row(mode.flag() + (fuse ? "" : " unfused"), t.cycles(), t.mfu(), t.hbmBytes(),
        t.engines().get(Engine.MXU).busyCycles(), t.engines().get(Engine.VPU).busyCycles(),
        t.engines().get(Engine.DMA).busyCycles());
  }

  @BeforeAll
  static void measureAll() {
    StringBuilder table = new StringBuilder(String.format("%-14s %12s %8s %16s %14s %14s %14s%n",
        "mode", "cycles", "MFU %", "HBM bytes", "MXU busy cyc", "VPU busy cyc", "DMA busy cyc"));
    for (QuantMode mode : QuantMode.values()) {
      Row r = measure(mode, true);
      fused.put(mode, r);
      table.append(r.line());
      if (mode != QuantMode.NONE) {
        Row u = measure(mode, false);
        unfused.put(mode, u);
        table.append(u.line());
      }
    }
    System.out.println("linear x[" + SEQ + ", " + D + "] @ w[" + D + ", " + D
        + "], timing mode, default target");
    System.out.print(table);
  }

  @Test
  void quantizedMovesFewerHbmBytesThanF32() {
    Row f32 = fused.get(QuantMode.NONE);
    for (QuantMode m : List.of(QuantMode.BF16, QuantMode.FP8, QuantMode.INT8)) {
      Row r = fused.get(m);
      assertTrue(r.hbmBytes() < f32.hbmBytes(), () -> r.line() + " vs f32 " + f32.line());
      Row u = unfused.get(m);
      assertTrue(r.hbmBytes() < u.hbmBytes(), () -> r.line() + " vs " + u.line());
    }
    // x is read once in f32 and y written in f32 either way: the saving is the weights' bytes,
    // halved in bf16 and quartered in fp8/int8 (plus a few KB of scales)
    long wF32 = 4L * D * D;
    long slack = 1 << 20;
    assertTrue(fused.get(QuantMode.BF16).hbmBytes() <= f32.hbmBytes() - wF32 / 2 + slack);
    assertTrue(fused.get(QuantMode.FP8).hbmBytes() <= f32.hbmBytes() - wF32 * 3 / 4 + slack);
    assertTrue(fused.get(QuantMode.INT8).hbmBytes() <= f32.hbmBytes() - wF32 * 3 / 4 + slack);
  }

  /**
   * x's conversion fused into a qmatmul on the resident ring, at row counts that left a tile
   * of the conversion stream in flight when the MXU began waiting for weight panels: the ring
   * waits its own token, so the timing run ends instead of trapping on a deadlock (it did
   * when both waited LOAD).
   */
  @Test
  void fusedConversionBesideTheWeightRingRunsToTheEnd() {
    for (QuantMode mode : List.of(QuantMode.BF16, QuantMode.FP8)) {
      for (long rows : new long[] {129, 300}) {
        Module m = QuantLoweringTest.quantizedLinear("linear", List.of(Dim.of(rows)), 4096, 1024,
            0.02f, mode).get();
        TimingReport t = new Emulator(SohuBackend.compile(m, BackendOptions.defaults())
            .program(), MachineDescription.defaultTarget(), Options.defaults())
            .runTiming(Map.of());
        assertTrue(t.cycles() > 0, mode + " rows " + rows);
      }
    }
  }

  @Test
  void quantizedKeepsTheMxuBusyForFewerCycles() {
    Row f32 = fused.get(QuantMode.NONE);
    Row bf16 = fused.get(QuantMode.BF16);
    assertTrue(bf16.mxuBusy() < f32.mxuBusy(), () -> bf16.line() + " vs f32 " + f32.line());
    for (QuantMode m : List.of(QuantMode.FP8, QuantMode.INT8)) {
      Row r = fused.get(m);
      assertTrue(r.mxuBusy() < bf16.mxuBusy(), () -> r.line() + " vs bf16 " + bf16.line());
    }
  }
}
