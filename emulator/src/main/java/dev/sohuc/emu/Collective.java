package dev.sohuc.emu;

/**
 * How the chips of a group meet at an {@code allreduce}: the k-th allreduce of every chip is
 * one collective, and it starts when the last chip arrives (isa-spec: allreduce).
 */
interface Collective {

  /** The group size. */
  int chips();

  /**
   * Chip {@code chip} reaches its next allreduce at cycle {@code at}, sending {@code linkBytes}
   * over the interconnect; returns the cycle at which the collective starts on every chip (the
   * latest arrival). May block until the other chips arrive.
   */
  long arrive(int chip, long at, long linkBytes);

  /**
   * All chips run the same program on the same dims, so they reach every allreduce at the same
   * cycle: the collective starts at this chip's own arrival. Exact for symmetric tensor-parallel
   * programs, and N times cheaper than simulating N identical machines.
   */
  record Symmetric(int chips) implements Collective {
    @Override
    public long arrive(int chip, long at, long linkBytes) {
      return at;
    }
  }
}
