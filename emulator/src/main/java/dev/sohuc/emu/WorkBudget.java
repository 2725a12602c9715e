package dev.sohuc.emu;

import dev.sohuc.isa.Cost;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;

/**
 * Functional mode's bound on work: each engine instruction is charged the cycles the cost model
 * gives it on its engine alone (its fixed cycles plus its work over the engine's rate, nothing
 * overlapped), and the run traps once they add up past the cap. The instruction cap alone does
 * not bound a run: one instruction may stream a whole SRAM through a softmax, and a program of
 * such instructions in a loop would emulate for days. Emulating a cycle of chip work takes about
 * a microsecond of host time whatever the engine, so the cap bounds the run's time too.
 */
final class WorkBudget {
  private final MachineDescription target;
  private final long maxCycles;
  private double cycles;

  WorkBudget(MachineDescription target, long maxCycles) {
    this.target = target;
    this.maxCycles = maxCycles;
  }

  /** Charges {@code insn} with the registers it read at issue; a fault past the cap. */
  void charge(Insn insn, long[] regs) {
    Cost c = insn.def().cost();
    if (c.unit() == Cost.Unit.NONE) {
      return;
    }
    double rate = switch (c.unit()) {
      case BYTES -> target.hbmBytesPerCycle();
      case LINK_BYTES -> target.linkBytesPerCycle();
      case MACS -> target.macsPerCycle(insn instanceof Insn.Mma m ? m.dtype() : DType.F32);
      case ELEMENTS -> target.get(switch (TimingMachine.vpuClass(insn)) {
        case SIMPLE -> "vpu.simple_rate";
        case TRANSCENDENTAL -> "vpu.transcendental_rate";
        case ROW -> "vpu.row_rate";
      });
      case NONE -> throw new AssertionError();
    };
    long work = Cost.workOf(insn, r -> regs[r]);
    cycles += c.fixedCycles() + c.passes() * (double) Math.max(0, work) / rate;
    if (cycles > maxCycles) {
      throw new Fault(Trap.Kind.WORK_LIMIT, String.format(java.util.Locale.ROOT,
          "the work cap of %,d cycles of %s engine time was reached (--max-cycles)", maxCycles,
          target.name()));
    }
  }
}
