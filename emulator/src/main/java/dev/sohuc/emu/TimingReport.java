package dev.sohuc.emu;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.Engine;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What a timing run measured.
 *
 * @param cycles total simulated cycles, from the first issue to the last completion
 * @param seconds cycles / clock
 * @param engines per engine: instructions, busy cycles, busy share of the total
 * @param macsByType multiply-accumulates issued to the MXU, by input dtype (unpadded)
 * @param flops 2 x all MACs
 * @param peakFlops the peak for this program's dtype mix: flops / sum(flops_t / peak_t), i.e.
 *     the rate at which the MXU would do exactly this mix of work at full speed
 * @param mfu achieved FLOP/s / peakFlops
 * @param mfuFp8 achieved FLOP/s / the FP8 peak (the headline number)
 * @param hbmBytes bytes moved to or from HBM by DMA (HBM-to-HBM copies count twice)
 * @param intensity flops / hbmBytes (FLOP per byte)
 * @param ridge peakFlops / HBM bandwidth: the intensity where the roofline bends
 * @param computeBound intensity >= ridge
 * @param attainableFlops min(peakFlops, intensity x HBM bandwidth)
 * @param fractionOfBound achieved FLOP/s / attainableFlops (for a program without MXU work:
 *     achieved HBM bytes/s / HBM bandwidth)
 * @param ops where the time went, per IR op of the debug section, in program order
 */
public record TimingReport(
    String target,
    double clockHz,
    long cycles,
    double seconds,
    long instructions,
    Map<Engine, EngineStats> engines,
    Map<DType, Long> macsByType,
    double flops,
    double peakFlops,
    double mfu,
    double mfuFp8,
    long hbmBytes,
    double hbmBandwidth,
    double intensity,
    double ridge,
    boolean computeBound,
    double attainableFlops,
    double fractionOfBound,
    Path trace,
    List<OpTiming> ops,
    long traceSlices,
    boolean traceTruncated) {

  public TimingReport {
    engines = java.util.Collections.unmodifiableMap(new java.util.EnumMap<>(engines));
    java.util.EnumMap<DType, Long> macs = new java.util.EnumMap<>(DType.class);
    macs.putAll(macsByType);
    macsByType = java.util.Collections.unmodifiableMap(macs);
    ops = List.copyOf(ops);
  }

  /** One engine's share of the run. */
  public record EngineStats(long instructions, long busyCycles, double busyShare) {}

  public double achievedFlops() {
    return seconds > 0 ? flops / seconds : 0;
  }

  /** A human-readable report, one fact per line. */
  public String render() {
    StringBuilder sb = new StringBuilder();
    sb.append(String.format(Locale.ROOT, "target            %s (%.3f GHz)%n", target,
        clockHz / 1e9));
    sb.append(String.format(Locale.ROOT, "time              %,d cycles = %s%n", cycles,
        si(seconds, "s")));
    sb.append(String.format(Locale.ROOT, "instructions      %,d issued%n", instructions));
    for (Map.Entry<Engine, EngineStats> e : engines.entrySet()) {
      EngineStats s = e.getValue();
      sb.append(String.format(Locale.ROOT, "  %-5s           %,14d insns  %,16d busy cycles  %5.1f%%%n",
          e.getKey(), s.instructions(), s.busyCycles(), 100 * s.busyShare()));
    }
    sb.append(String.format(Locale.ROOT, "MXU work          %s", si(flops, "FLOP")));
    if (!macsByType.isEmpty()) {
      sb.append(" (");
      String sep = "";
      for (Map.Entry<DType, Long> e : macsByType.entrySet()) {
        sb.append(sep).append(e.getKey().asmName()).append(' ').append(si(2.0 * e.getValue(),
            "FLOP"));
        sep = ", ";
      }
      sb.append(')');
    }
    sb.append(String.format(Locale.ROOT, "%n"));
    sb.append(String.format(Locale.ROOT, "achieved          %s/s%n", si(achievedFlops(), "FLOP")));
    sb.append(String.format(Locale.ROOT, "MFU               %.1f%% of the dtype-mix peak %s/s; "
        + "%.1f%% of the FP8 peak%n", 100 * mfu, si(peakFlops, "FLOP"), 100 * mfuFp8));
    sb.append(String.format(Locale.ROOT, "HBM traffic       %s (%s/s of %s/s)%n",
        si(hbmBytes, "B"), si(seconds > 0 ? hbmBytes / seconds : 0, "B"),
        si(hbmBandwidth, "B")));
    sb.append(String.format(Locale.ROOT, "intensity         %s FLOP/B (ridge %.1f FLOP/B)%n",
        Double.isInfinite(intensity) ? "inf" : String.format(Locale.ROOT, "%.1f", intensity),
        ridge));
    sb.append(String.format(Locale.ROOT, "roofline          %s-bound, at %.1f%% of the bound "
        + "(attainable %s/s)%n", computeBound ? "compute" : "memory", 100 * fractionOfBound,
        si(attainableFlops, "FLOP")));
    if (trace != null) {
      sb.append(String.format(Locale.ROOT, "trace             %s (%,d slices%s)%n", trace,
          traceSlices, traceTruncated ? ", truncated" : ""));
    }
    return sb.toString();
  }

  /** The op profile: the {@code top} ops by self time, then every op kind. */
  public String renderProfile(int top) {
    return OpTiming.render(ops, cycles, clockHz, top);
  }

  static String si(double v, String unit) {
    String[] prefixes = {"", "k", "M", "G", "T", "P", "E"};
    int i = 0;
    double a = Math.abs(v);
    while (a >= 1000 && i < prefixes.length - 1) {
      a /= 1000;
      v /= 1000;
      i++;
    }
    if (unit.equals("s")) {
      if (v != 0 && Math.abs(v) < 1e-3) {
        return String.format(Locale.ROOT, "%.3f us", v * 1e6);
      } else if (v != 0 && Math.abs(v) < 1) {
        return String.format(Locale.ROOT, "%.3f ms", v * 1e3);
      }
    }
    return String.format(Locale.ROOT, "%.3f %s%s", v, prefixes[i], unit);
  }
}
