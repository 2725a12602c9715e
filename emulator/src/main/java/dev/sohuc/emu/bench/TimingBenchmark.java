package dev.sohuc.emu.bench;

import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.emu.TimingReport;
import dev.sohuc.isa.asm.Assembler;
import dev.sohuc.isa.container.SohuProgram;
import java.util.Map;

/**
 * Prints how many simulated instructions per second the timing model runs, on a loop shaped
 * like a matmul layer: DMA a weight tile, mma it, read the accumulator out with the VPU, with
 * scalar address arithmetic and tokens between the engines. Run it with
 * {@code mvn -q -pl emulator validate exec:exec -Dbench=dev.sohuc.emu.bench.TimingBenchmark}.
 */
public final class TimingBenchmark {
  private TimingBenchmark() {}

  static final String PROGRAM = """
      .arg iters, 0
          ldarg r1, 0
          li r2, 128            # rows / cols
          li r3, 256            # SRAM row stride of the weight tile
          li r4, 0              # HBM cursor
          li r9, 8192           # k
          loop r1, done
          addi r4, r4, 4096
          dma sram, r0+0, r3, hbm, r4+0, r3, 256, 128, signal=1
          mma r0+0, r2, r0+0, r3, r0+0, r3, 128, 128, r9, bf16, accumulate=1, wait=1, signal=2
          accrd r0+0, r3, r0+0, r2, r2, r2, bf16, wait=2, signal=3
          nop wait=3
      done:
          halt
      """;

  public static void main(String[] args) {
    long iters = args.length > 0 ? Long.parseLong(args[0]) : 5_000_000;
    SohuProgram p = Assembler.assemble(PROGRAM, "bench.s");
    MachineDescription target = MachineDescription.defaultTarget();
    Emulator emu = new Emulator(p, target, Options.defaults().withMaxInstructions(Long.MAX_VALUE));
    emu.runTiming(Map.of("iters", 100_000L)); // warm up
    long t0 = System.nanoTime();
    TimingReport r = emu.runTiming(Map.of("iters", iters));
    double s = (System.nanoTime() - t0) * 1e-9;
    System.out.print(r.render());
    System.out.printf("simulated %,d instructions in %.2f s: %.1f million instructions/s%n",
        r.instructions(), s, r.instructions() / s / 1e6);
  }
}
