package dev.sohuc.cli;

import dev.sohuc.serving.ServingSimulator;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The self-contained HTML report of {@code sohuc bench}: summary, SVG roofline, SVG timeline and
 * where the article batch's time goes.
 */
final class BenchHtml {
  private BenchHtml() {}

  @SuppressWarnings("unchecked")
  static String render(Map<String, Object> m, ServingSimulator.Result res) {
    StringBuilder sb = new StringBuilder("<!doctype html><html><head><meta charset=utf-8>"
        + "<title>sohuc bench</title></head><body style='font-family:sans-serif'>");
    sb.append("<h1>sohuc bench</h1><pre>").append(esc(BenchCommand.render(m))).append("</pre>");
    List<Map<String, Object>> steps = (List<Map<String, Object>>) m.get("steps");
    double peak = (double) m.get("peak_flops_program_dtype");
    // roofline: x = FLOP/byte, y = FLOP/s, log-log over 1e-1..1e4 and 1e11..1e16
    sb.append("<h2>Roofline (per chip)</h2><svg width=600 height=400 style='border:1px solid #ccc'>");
    double ridge = 0;
    for (Map<String, Object> s : steps) {
      double f = (double) s.get("flops_per_chip");
      double b = (double) s.get("hbm_bytes_per_chip");
      double t = (double) s.get("seconds");
      if (b > 0 && t > 0) {
        ridge = peak / (b / (double) s.get("bandwidth_bound_s"));
        sb.append(String.format(Locale.ROOT, "<circle cx=%.1f cy=%.1f r=3 fill=%s/>",
            x(f / b), y(f / t), (int) s.get("prefill_tokens") > 0 ? "'#c33'" : "'#33c'"));
      }
    }
    double bw = ridge > 0 ? peak / ridge : 1;
    sb.append(String.format(Locale.ROOT, "<line x1=%.1f y1=%.1f x2=%.1f y2=%.1f stroke=black/>",
        x(0.1), y(0.1 * bw), x(ridge), y(peak)));
    sb.append(String.format(Locale.ROOT, "<line x1=%.1f y1=%.1f x2=%.1f y2=%.1f stroke=black/>",
        x(ridge), y(peak), x(1e4), y(peak)));
    sb.append("<text x=10 y=20>FLOP/s vs FLOP/byte (log-log); red: steps with prefill</text></svg>");
    // timeline
    sb.append("<h2>Timeline</h2><svg width=900 height=80 style='border:1px solid #ccc'>");
    double span = res.makespan();
    // one lane per data-parallel replica
    double lane = 60.0 / (int) m.get("replicas");
    for (Map<String, Object> s : steps) {
      double x0 = 900 * (double) s.get("start") / span;
      double w = Math.max(0.5, 900 * (double) s.get("seconds") / span);
      sb.append(String.format(Locale.ROOT, "<rect x=%.2f y=%.2f width=%.2f height=%.2f fill=%s "
          + "stroke=white stroke-width=0.2><title>replica %s: prefill %s decode %s</title></rect>",
          x0, 10 + lane * (int) s.get("replica"), w, lane,
          (int) s.get("prefill_tokens") > 0 ? "'#c33'" : "'#33c'", s.get("replica"),
          s.get("prefill_tokens"), s.get("decode_tokens")));
    }
    sb.append("</svg>");
    Map<String, Object> batch = (Map<String, Object>) m.get("article_batch");
    sb.append("<h2>Where the time goes (self time per op kind: the article batch's ")
        .append((boolean) batch.get("one_step_program") ? "step program" : "prefill")
        .append(", and a decode-only step)</h2>");
    sb.append("<svg width=900 height=90 style='border:1px solid #ccc'>");
    timeBar(sb, (boolean) batch.get("one_step_program") ? "step" : "prefill",
        (Map<String, Double>) batch.get("prefill_seconds_by_op_kind"), 10);
    timeBar(sb, "decode", (Map<String, Double>) batch.get("decode_seconds_by_op_kind"), 50);
    sb.append("</svg></body></html>\n");
    return sb.toString();
  }

  private static final String[] COLORS = {"#c33", "#33c", "#3a3", "#c93", "#939", "#399", "#777"};

  /** One horizontal bar at height {@code y}: the op kinds' shares, labelled where wide enough. */
  private static void timeBar(StringBuilder sb, String label, Map<String, Double> kinds, int y) {
    double total = kinds.values().stream().mapToDouble(Double::doubleValue).sum();
    sb.append(String.format(Locale.ROOT, "<text x=5 y=%d>%s</text>", y + 20, label));
    double x = 70;
    int i = 0;
    for (Map.Entry<String, Double> k : kinds.entrySet()) {
      double w = total > 0 ? 820 * k.getValue() / total : 0;
      sb.append(String.format(Locale.ROOT, "<rect x=%.2f y=%d width=%.2f height=30 fill='%s' "
          + "stroke=white stroke-width=0.5><title>%s: %.3f ms (%.1f%%)</title></rect>", x, y, w,
          COLORS[Math.min(i, COLORS.length - 1)], esc(k.getKey()), 1e3 * k.getValue(),
          100 * k.getValue() / total));
      if (w > 60) {
        sb.append(String.format(Locale.ROOT, "<text x=%.2f y=%d fill=white font-size=11>%s "
            + "%.0f%%</text>", x + 3, y + 19, esc(k.getKey()), 100 * k.getValue() / total));
      }
      x += w;
      i++;
    }
  }

  private static double x(double intensity) {
    return 600 * (Math.log10(Math.max(intensity, 0.1)) + 1) / 5;
  }

  private static double y(double flops) {
    return 400 - 400 * (Math.log10(Math.max(flops, 1e11)) - 11) / 5;
  }

  private static String esc(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;");
  }
}
