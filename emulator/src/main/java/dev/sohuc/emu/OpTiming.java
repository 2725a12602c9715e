package dev.sohuc.emu;

import dev.sohuc.isa.Engine;
import dev.sohuc.isa.container.SohuProgram;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Where a timing run spent its time, per IR op of the debug section (one node of the compiled
 * graph, or the backend's own glue such as handoffs and output copies).
 *
 * @param op the IR op as the debug section names it ({@code matmul %x}); "?" without debug info
 * @param location its source location
 * @param startCycle when its first instruction started on an engine
 * @param endCycle when its last instruction completed
 * @param selfCycles how far it pushed the run's end: its completion past every earlier op's
 *     (the ops' self cycles add up to the run's cycles, less the control unit's tail); 0 for an
 *     op of a second control stream (fork), which runs beside the first: the time the first
 *     waits for it is the waiting op's
 * @param busyCycles per engine, cycles its instructions occupied
 * @param hbmBytes bytes it moved to or from HBM
 * @param flops 2 x its multiply-accumulates (unpadded)
 */
public record OpTiming(String op, String location, long startCycle, long endCycle,
    long selfCycles, Map<Engine, Long> busyCycles, long hbmBytes, double flops) {

  /** The op's kind: the first word of its name ({@code matmul}, {@code rms_norm}, ...). */
  public String kind() {
    int sp = op.indexOf(' ');
    return sp < 0 ? op : op.substring(0, sp);
  }

  /**
   * Groups per-pc figures by the debug entry of each pc (a pc without one belongs to the entry
   * before it, as in a line table), in program order of first appearance; self cycles are
   * computed over the groups in that order.
   */
  static List<OpTiming> of(Image image, long[] first, long[] done, long[] busy, int[] engine,
      long[] hbm, long[] macs) {
    // the fork bodies that ran: a second stream's code
    boolean[] beside = new boolean[image.length];
    for (int pc = 0; pc < image.length; pc++) {
      if (first[pc] >= 0 && image.insn(pc) instanceof dev.sohuc.isa.Insn.Fork f) {
        java.util.Arrays.fill(beside, pc + 1, pc + 1 + f.body(), true);
      }
    }
    record Acc(String op, String loc, long[] v, long[] busy) {}
    Map<String, Acc> groups = new LinkedHashMap<>();
    String op = "?";
    String loc = "";
    Acc a = null;  // the group of the debug entry in force; looked up once per entry
    for (int pc = 0; pc < image.length; pc++) {
      SohuProgram.DebugEntry d = image.debugEntry(pc);
      if (d != null) {
        String o = d.irOp() == null || d.irOp().isEmpty() ? "?" : d.irOp();
        String l = d.location() == null ? "" : d.location();
        if (a == null || !o.equals(op) || !l.equals(loc)) {
          a = null;
        }
        op = o;
        loc = l;
      }
      if (first[pc] < 0) {
        continue;
      }
      if (a == null) {
        String o = op;
        String l = loc;
        boolean second = beside[pc];
        a = groups.computeIfAbsent(o + "\u0000" + l + (second ? "\u0000" : ""), k -> new Acc(o,
            l, new long[] {Long.MAX_VALUE, 0, 0, 0, second ? 1 : 0},
            new long[Engine.values().length]));
      }
      a.v[0] = Math.min(a.v[0], first[pc]);
      a.v[1] = Math.max(a.v[1], done[pc]);
      a.v[2] += hbm[pc];
      a.v[3] += macs[pc];
      a.busy[engine[pc]] += busy[pc];
    }
    List<OpTiming> out = new ArrayList<>();
    long frontier = 0;
    for (Acc g : groups.values()) {
      long self = g.v[4] != 0 ? 0 : Math.max(0, g.v[1] - frontier);
      frontier = g.v[4] != 0 ? frontier : Math.max(frontier, g.v[1]);
      EnumMap<Engine, Long> busyByEngine = new EnumMap<>(Engine.class);
      for (Engine e : Engine.values()) {
        if (g.busy[e.ordinal()] > 0) {
          busyByEngine.put(e, g.busy[e.ordinal()]);
        }
      }
      out.add(new OpTiming(g.op, g.loc, g.v[0], g.v[1], self, Map.copyOf(busyByEngine), g.v[2],
          2.0 * g.v[3]));
    }
    return out;
  }

  /**
   * A table of the {@code top} ops with the most self time, then the self time of every op
   * kind, as profilers print them.
   */
  public static String render(List<OpTiming> ops, long totalCycles, double clockHz, int top) {
    StringBuilder sb = new StringBuilder();
    double total = Math.max(1, totalCycles);
    sb.append(String.format(Locale.ROOT, "%-9s %6s %9s %9s %9s %9s %10s  %s%n", "self", "share",
        "DMA", "MXU", "VPU", "LINK", "HBM", "op"));
    ops.stream().sorted((a, b) -> Long.compare(b.selfCycles, a.selfCycles)).limit(top)
        .forEach(o -> sb.append(String.format(Locale.ROOT,
            "%-9s %5.1f%% %9s %9s %9s %9s %10s  %s%n",
            us(o.selfCycles, clockHz), 100 * o.selfCycles / total,
            us(o.busy(Engine.DMA), clockHz), us(o.busy(Engine.MXU), clockHz),
            us(o.busy(Engine.VPU), clockHz), us(o.busy(Engine.LINK), clockHz),
            TimingReport.si(o.hbmBytes, "B"), o.op)));
    Map<String, long[]> kinds = new LinkedHashMap<>();
    for (OpTiming o : ops) {
      long[] k = kinds.computeIfAbsent(o.kind(), x -> new long[2]);
      k[0] += o.selfCycles;
      k[1]++;
    }
    sb.append(String.format(Locale.ROOT, "by kind:%n"));
    kinds.entrySet().stream().sorted((a, b) -> Long.compare(b.getValue()[0], a.getValue()[0]))
        .forEach(e -> sb.append(String.format(Locale.ROOT, "  %-24s %5.1f%%  %s over %d op%s%n",
            e.getKey(), 100 * e.getValue()[0] / total, us(e.getValue()[0], clockHz),
            e.getValue()[1], e.getValue()[1] == 1 ? "" : "s")));
    return sb.toString();
  }

  /** Busy cycles on engine {@code e}. */
  public long busy(Engine e) {
    return busyCycles.getOrDefault(e, 0L);
  }

  private static String us(long cycles, double clockHz) {
    return String.format(Locale.ROOT, "%.1fus", cycles / clockHz * 1e6);
  }
}
