package dev.sohuc.emu;

import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.container.SohuProgram;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The timing model of N chips running their programs together: one {@link TimingMachine} per
 * chip, each on its own thread, meeting at every LINK collective ({@code allreduce},
 * {@code reducescatter}, {@code allgather}). A collective starts when the last chip of the group
 * arrives and then costs what the table says (over the machine description's interconnect), so
 * a chip that arrives early waits. A chip that halts while others wait in a collective is a
 * deadlock trap naming both.
 */
public final class MultiChipTiming {
  private MultiChipTiming() {}

  /**
   * What a group run measured.
   *
   * @param cycles the group's time: the slowest chip's cycles
   * @param seconds cycles / clock
   * @param chips each chip's own timing report (its cycles include the time it waited)
   * @param collectives LINK collectives each chip executed
   * @param linkBytes bytes each chip sent over the interconnect, summed over chips
   */
  public record Report(long cycles, double seconds, List<TimingReport> chips, long collectives,
      long linkBytes) {}

  /** Runs chip i's program with dims {@code dims.get(i)}; programs may differ (pipeline stages). */
  public static Report run(List<SohuProgram> programs, MachineDescription target, Options options,
      List<Map<String, Long>> dims) {
    return run(programs, target, options, dims, Collections.nCopies(dims.size(), Map.of()));
  }

  /**
   * Runs chip i's program with dims {@code dims.get(i)} and argument arrays
   * {@code arrays.get(i)} (by input name, as {@link Emulator#runTiming(Map, Map)} takes them).
   */
  public static Report run(List<SohuProgram> programs, MachineDescription target, Options options,
      List<Map<String, Long>> dims, List<Map<String, long[]>> arrays) {
    int n = programs.size();
    if (n == 0 || dims.size() != n || arrays.size() != n) {
      throw new IllegalArgumentException("need one program, one dims map and one arrays map per "
          + "chip");
    }
    Group group = new Group(n);
    List<Emulator> emus = new ArrayList<>();
    List<TimingMachine> machines = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      Emulator e = new Emulator(programs.get(i), target, options);
      TimingMachine t;
      try {
        t = e.newTimingMachine(dims.get(i), arrays.get(i));
      } catch (IsaException ex) {
        throw new EmulatorException(ex.getMessage(), ex);
      }
      t.joinGroup(group, i);
      emus.add(e);
      machines.add(t);
    }
    long[] cycles = new long[n];
    RuntimeException[] failure = new RuntimeException[n];
    List<Thread> threads = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      final int chip = i;
      Thread th = new Thread(() -> {
        try {
          cycles[chip] = machines.get(chip).run();
        } catch (RuntimeException ex) {
          failure[chip] = ex;
        } finally {
          group.finished(chip);
        }
      }, "chip-" + i);
      threads.add(th);
      th.start();
    }
    for (Thread th : threads) {
      try {
        th.join();
      } catch (InterruptedException ex) {
        Thread.currentThread().interrupt();
        throw new EmulatorException("interrupted while chips were running");
      }
    }
    // the first failure in chip order; a chip's own trap outranks the deadlock it caused others
    RuntimeException first = null;
    for (int i = 0; i < n && first == null; i++) {
      if (failure[i] != null && !(failure[i] instanceof Trap t
          && t.kind() == Trap.Kind.DEADLOCK && group.victims.contains(i))) {
        first = failure[i];
      }
    }
    for (int i = 0; i < n && first == null; i++) {
      first = failure[i];
    }
    if (first != null) {
      throw first instanceof EmulatorException ? first
          : new EmulatorException("chip group failed: " + first, first);
    }
    return report(emus, machines, cycles, target);
  }

  /** N identical chips on identical dims: one machine simulated, collectives exact. */
  public static Report runSymmetric(SohuProgram program, int chips, MachineDescription target,
      Options options, Map<String, Long> dims) {
    return runSymmetric(program, chips, target, options, dims, Map.of());
  }

  /** N identical chips on identical dims and argument arrays: one machine simulated. */
  public static Report runSymmetric(SohuProgram program, int chips, MachineDescription target,
      Options options, Map<String, Long> dims, Map<String, long[]> arrays) {
    return runSymmetric(new Emulator(program, target, options), chips, dims, arrays);
  }

  /**
   * N identical chips running {@code e}'s program: one machine simulated. An emulator kept for
   * many runs decodes its program once.
   */
  public static Report runSymmetric(Emulator e, int chips, Map<String, Long> dims,
      Map<String, long[]> arrays) {
    MachineDescription target = e.target();
    TimingMachine t;
    try {
      t = e.newTimingMachine(dims, arrays);
    } catch (IsaException ex) {
      throw new EmulatorException(ex.getMessage(), ex);
    }
    t.joinGroup(new Collective.Symmetric(chips), 0);
    long c = t.run();
    TimingReport r = e.report(t, c);
    List<TimingReport> all = new ArrayList<>();
    for (int i = 0; i < chips; i++) {
      all.add(r);
    }
    return new Report(c, c / target.clockHz(), all, t.collectives, t.linkBytes * chips);
  }

  private static Report report(List<Emulator> emus, List<TimingMachine> machines, long[] cycles,
      MachineDescription target) {
    long max = 0;
    long link = 0;
    List<TimingReport> reports = new ArrayList<>();
    for (int i = 0; i < cycles.length; i++) {
      max = Math.max(max, cycles[i]);
      link += machines.get(i).linkBytes;
      reports.add(emus.get(i).report(machines.get(i), cycles[i]));
    }
    return new Report(max, max / target.clockHz(), reports, machines.get(0).collectives, link);
  }

  /**
   * The threaded rendezvous: round k collects every chip's k-th arrival, which must be the same
   * instruction over as many bytes.
   */
  static final class Group implements Collective {
    private final int n;
    private final Map<Long, long[]> arrivals = new HashMap<>();
    private final Map<Long, Integer> arrived = new HashMap<>();
    private final long[] next;
    private final long[] bytes;
    private final String[] kinds;
    private final boolean[] done;
    private final long[] doneAfter;
    private final long[] completed;
    final java.util.Set<Integer> victims = java.util.concurrent.ConcurrentHashMap.newKeySet();

    Group(int n) {
      this.n = n;
      this.next = new long[n];
      this.bytes = new long[n];
      this.kinds = new String[n];
      this.done = new boolean[n];
      this.doneAfter = new long[n];
      this.completed = new long[n];
    }

    @Override
    public int chips() {
      return n;
    }

    @Override
    public synchronized long arrive(int chip, long at, String kind, long linkBytes) {
      long round = next[chip]++;
      long[] a = arrivals.computeIfAbsent(round, r -> new long[n]);
      a[chip] = at;
      bytes[chip] = linkBytes;
      kinds[chip] = kind;
      int count = arrived.merge(round, 1, Integer::sum);
      if (count == n) {
        for (int c = 0; c < n; c++) {
          if (!kinds[c].equals(kind)) {
            throw Fault.bad("collective #" + (round + 1) + ": chip " + chip + " runs " + kind
                + " but chip " + c + " runs " + kinds[c]
                + " (the k-th collective must be the same instruction on every chip)");
          }
          if (bytes[c] != linkBytes) {
            throw Fault.bad("collective #" + (round + 1) + " (" + kind + "): chip " + chip
                + " sends " + linkBytes + " bytes but chip " + c + " sends " + bytes[c]
                + " (the buffers must have the same size on every chip)");
          }
        }
        notifyAll();
      }
      while (arrived.get(round) < n) {
        for (int c = 0; c < n; c++) {
          if (done[c] && doneAfter[c] <= round) {
            victims.add(chip);
            throw new Fault(Trap.Kind.DEADLOCK, "chip " + chip + " waits in collective #"
                + (round + 1) + " (" + kind + ") but chip " + c + " stopped after "
                + doneAfter[c] + " collective(s)");
          }
        }
        try {
          wait();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new Fault(Trap.Kind.DEADLOCK, "interrupted in collective #" + (round + 1));
        }
      }
      long start = 0;
      for (long t : a) {
        start = Math.max(start, t);
      }
      completed[chip]++;
      return start;
    }

    /** Chip {@code chip} stopped (halted or trapped): it joins no further collective. */
    synchronized void finished(int chip) {
      done[chip] = true;
      doneAfter[chip] = completed[chip];
      notifyAll();
    }
  }
}
