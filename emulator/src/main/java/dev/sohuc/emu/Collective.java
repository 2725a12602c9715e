package dev.sohuc.emu;

import dev.sohuc.isa.Insn;

/**
 * How the chips of a group meet at their LINK collectives ({@code allreduce},
 * {@code reducescatter}, {@code allgather}): the k-th collective of every chip is one
 * collective, and it starts when the last chip arrives (isa-spec: allreduce).
 */
interface Collective {

  /** The group size. */
  int chips();

  /**
   * Chip {@code chip} reaches its next collective, the instruction {@code kind}, at cycle
   * {@code at}, sending {@code linkBytes} over the interconnect; returns the cycle at which the
   * collective starts on every chip (the latest arrival). May block until the other chips
   * arrive.
   */
  long arrive(int chip, long at, String kind, long linkBytes);

  /**
   * A reducescatter's or allgather's rank must name a chip of its group; the table checks each
   * field alone, so a rank at or past chips is caught here, by both machines.
   */
  static void checkRank(Insn.LinkCollective c) {
    if (c instanceof Insn.BlockCollective b && b.rank() >= b.chips()) {
      throw Fault.bad("rank " + b.rank() + " is not below chips=" + b.chips()
          + " (the rank is this chip's index in its group)");
    }
  }

  /**
   * All chips run the same program on the same dims, so they reach every collective at the
   * same cycle: the collective starts at this chip's own arrival. Exact for symmetric
   * tensor-parallel programs, and N times cheaper than simulating N identical machines.
   */
  record Symmetric(int chips) implements Collective {
    @Override
    public long arrive(int chip, long at, String kind, long linkBytes) {
      return at;
    }
  }
}
