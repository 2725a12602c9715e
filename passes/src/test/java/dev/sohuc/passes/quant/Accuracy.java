package dev.sohuc.passes.quant;

import java.util.Locale;

/**
 * Cosine similarity of output vectors (token embeddings or logits) against a reference: the mean
 * over every compared vector and the worst one, named by set and position.
 */
public record Accuracy(String model, String mode, double meanCosine, double worstCosine, String worstToken, int vectors) {

  /** Accumulates vectors. */
  public static final class Builder {
    private double sum;
    private int count;
    private double worst = Double.POSITIVE_INFINITY;
    private String worstAt = "-";

    public void add(float[] got, int gotOffset, float[] want, int wantOffset, int dim, String where) {
      double dot = 0;
      double a = 0;
      double b = 0;
      for (int i = 0; i < dim; i++) {
        double g = got[gotOffset + i];
        double w = want[wantOffset + i];
        dot += g * w;
        a += g * g;
        b += w * w;
      }
      double cos = dot / Math.sqrt(a * b);
      if (Double.isNaN(cos)) {
        cos = -1;
      }
      sum += cos;
      count++;
      if (cos < worst) {
        worst = cos;
        worstAt = where;
      }
    }

    public Accuracy build(String model, String mode) {
      return new Accuracy(model, mode, sum / count, worst, worstAt, count);
    }
  }

  public String row() {
    return String.format(Locale.ROOT, "%-12s %-5s  mean cosine %.6f  worst %.6f at %s  (%d vectors)",
        model, mode, meanCosine, worstCosine, worstToken, vectors);
  }
}
