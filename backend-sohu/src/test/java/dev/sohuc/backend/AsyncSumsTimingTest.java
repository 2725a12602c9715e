package dev.sohuc.backend;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.MultiChipTiming;
import dev.sohuc.emu.OpTiming;
import dev.sohuc.emu.Options;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.isa.Engine;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Two row-parallel matmuls, each summed over a 2-chip group on the link inside its own loop
 * (two micro-batches of a tensor-parallel layer), timed as one chip of the group. With the
 * adds that read the sums last, the first sum runs on the link while the second matmul
 * computes; with the first add between them, the second matmul waits for it, which waits for
 * the first sum. Facts of the cost model (cycles), not wall-clock timings.
 */
class AsyncSumsTimingTest {
  static final String IR = """
      module @tp {
      func @main(%x1: tensor<512 x 1024 x f32>, %x2: tensor<512 x 1024 x f32>, %w1: tensor<1024 x 2048 x f32>, %w2: tensor<1024 x 2048 x f32>, %r1: tensor<512 x 2048 x f32>, %r2: tensor<512 x 2048 x f32>) -> ("y1": tensor<512 x 2048 x f32>, "y2": tensor<512 x 2048 x f32>) {
        %p1 = matmul %x1, %w1 : tensor<512 x 2048 x f32>
        %s1 = all_reduce %p1 {chips = 2} : tensor<512 x 2048 x f32>
      FIRST_ADD
        %p2 = matmul %x2, %w2 : tensor<512 x 2048 x f32>
        %s2 = all_reduce %p2 {chips = 2} : tensor<512 x 2048 x f32>
      LAST_ADD
        %y2 = add %r2, %s2 : tensor<512 x 2048 x f32>
        return %y1, %y2
      }
      }
      """;
  static final String ADD = "  %y1 = add %r1, %s1 : tensor<512 x 2048 x f32>";

  static MultiChipTiming.Report time(boolean interleaved) {
    String text = IR.replace("FIRST_ADD", interleaved ? "" : ADD)
        .replace("LAST_ADD", interleaved ? ADD : "");
    CompiledProgram c = SohuBackend.compile(IrParser.parse(text, "tp.ir"),
        BackendOptions.defaults());
    return MultiChipTiming.runSymmetric(c.program(), 2, MachineDescription.defaultTarget(),
        Options.defaults(), Map.of());
  }

  @Test
  void aSumOnTheLinkOverlapsTheNextMatmul() {
    MultiChipTiming.Report interleaved = time(true);
    MultiChipTiming.Report serial = time(false);
    // each matmul's 16 panels summed in loads of several: at most 8 allreduces each
    assertTrue(interleaved.collectives() <= 2 * MatmulLowering.MAX_LINK_SUMS,
        interleaved.collectives() + " sums");
    long firstSum = 0;
    for (OpTiming o : interleaved.chips().get(0).ops()) {
      if (o.op().equals("all_reduce %s1")) {
        firstSum = o.busyCycles().get(Engine.LINK);
      }
    }
    assertTrue(firstSum > 0);
    // the first sum's link time, hidden behind the second matmul, or most of it
    assertTrue(interleaved.cycles() + firstSum / 2 < serial.cycles(), interleaved.cycles()
        + " cycles interleaved vs " + serial.cycles() + " serial; the first sum is " + firstSum
        + " cycles on the link");
  }
}
