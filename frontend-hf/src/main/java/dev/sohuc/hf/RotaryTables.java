package dev.sohuc.hf;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Optional;

/**
 * Rotary-embedding cos and sin tables {@code [maxPositions, rotaryDim]}, computed at import
 * time the way Hugging Face computes them (f32 inverse frequencies, f32 angle products,
 * {@code cat(freqs, freqs)} for rotate-half), with {@code rope_scaling} types {@code default},
 * {@code linear}, {@code dynamic}, {@code llama3} (Llama 3.1), {@code longrope} (Phi-3's, its
 * short factors and attention factor) and {@code yarn} (Qwen2.5's and DeepSeek's, its ramp and
 * attention factor).
 */
final class RotaryTables {
  final int maxPositions;
  final int rotaryDim;
  final float[] cos;
  final float[] sin;

  private RotaryTables(int maxPositions, int rotaryDim, float[] cos, float[] sin) {
    this.maxPositions = maxPositions;
    this.rotaryDim = rotaryDim;
    this.cos = cos;
    this.sin = sin;
  }

  /** Inverse frequencies of the {@code rotaryDim / 2} pairs, scaled as {@code rope_scaling} says. */
  static float[] inverseFrequencies(HfConfig config, double theta, int rotaryDim) {
    float[] inv = new float[rotaryDim / 2];
    for (int i = 0; i < inv.length; i++) {
      float exponent = (float) (2 * i) / (float) rotaryDim;
      inv[i] = 1.0f / (float) Math.pow(theta, exponent);
    }
    Optional<JsonNode> scaling = config.getObject("rope_scaling");
    if (scaling.isEmpty()) {
      return inv;
    }
    JsonNode s = scaling.get();
    String type = scalingType(config).orElseThrow();
    switch (type) {
      case "default" -> {
        return inv;
      }
      case "longrope", "su" -> {
        // Phi-3's LongRoPE: each pair's frequency divided by its short factor, the ones HF
        // takes while every position is below original_max_position_embeddings (the importer
        // serves no more: tabulatedPositions); past it HF switches to the long factors
        JsonNode shortFactors = s.get("short_factor");
        if (shortFactors == null || !shortFactors.isArray() || shortFactors.size() != inv.length) {
          throw config.error("rope_scaling \"short_factor\" must be an array of " + inv.length
              + " numbers (one per rotary pair)");
        }
        for (int i = 0; i < inv.length; i++) {
          JsonNode f = shortFactors.get(i);
          if (!f.isNumber() || !(f.asDouble() > 0) || Double.isInfinite(f.asDouble())) {
            throw config.error("rope_scaling \"short_factor\" must hold positive numbers, got " + f);
          }
          float exponent = (float) (2 * i) / (float) rotaryDim;
          inv[i] = 1.0f / ((float) f.asDouble() * (float) Math.pow(theta, exponent));
        }
        return inv;
      }
      case "dynamic" -> {
        // dynamic NTK scaling raises theta only for positions past max_position_embeddings,
        // which no program reaches (tabulatedPositions): below them its frequencies are the
        // default ones
        number(config, s, "factor");
        return inv;
      }
      case "linear" -> {
        double factor = number(config, s, "factor");
        for (int i = 0; i < inv.length; i++) {
          inv[i] = (float) (inv[i] / factor);
        }
        return inv;
      }
      case "llama3" -> {
        double factor = number(config, s, "factor");
        double low = number(config, s, "low_freq_factor");
        double high = number(config, s, "high_freq_factor");
        double oldContext = number(config, s, "original_max_position_embeddings");
        if (!(high > low)) {
          throw config.error("rope_scaling: high_freq_factor (" + high + ") must exceed low_freq_factor (" + low + ")");
        }
        double lowWavelen = oldContext / low;
        double highWavelen = oldContext / high;
        for (int i = 0; i < inv.length; i++) {
          double f = inv[i];
          double wavelen = 2 * Math.PI / f;
          if (wavelen > lowWavelen) {
            f = f / factor;
          } else if (wavelen >= highWavelen) {
            double smooth = (oldContext / wavelen - low) / (high - low);
            f = (1 - smooth) * f / factor + smooth * f;
          }
          inv[i] = (float) f;
        }
        return inv;
      }
      case "yarn" -> {
        return yarn(config, s, theta, rotaryDim);
      }
      default -> throw config.error("rope_scaling type \"" + type
          + "\" is not supported (supported: default, linear, dynamic, llama3, longrope, yarn)");
    }
  }

  /**
   * YaRN (Qwen2.5's long-context form, DeepSeek's): each pair's frequency blended between the
   * original one (fast pairs, that turn beta_fast times or more over the original context) and
   * the one divided by factor (slow pairs, beta_slow turns or fewer), on a linear ramp between
   * them, all in f32 as HF computes it. The factor is the one given (transformers 4.53 on;
   * older versions replaced it by max_position_embeddings / original_max_position_embeddings).
   */
  private static float[] yarn(HfConfig config, JsonNode s, double theta, int rotaryDim) {
    double factor = number(config, s, "factor");
    double fast = s.hasNonNull("beta_fast") ? number(config, s, "beta_fast") : 32;
    double slow = s.hasNonNull("beta_slow") ? number(config, s, "beta_slow") : 1;
    double original = s.hasNonNull("original_max_position_embeddings")
        ? number(config, s, "original_max_position_embeddings")
        : config.getPositive("max_position_embeddings");
    boolean truncate = !s.has("truncate") || s.get("truncate").asBoolean(true);
    double low = correctionDim(fast, rotaryDim, theta, original);
    double high = correctionDim(slow, rotaryDim, theta, original);
    if (truncate) {
      low = Math.floor(low);
      high = Math.ceil(high);
    }
    low = Math.max(low, 0);
    high = Math.min(high, rotaryDim - 1);
    if (low == high) {
      high += 0.001;  // HF's guard against a ramp of no width
    }
    float[] inv = new float[rotaryDim / 2];
    for (int i = 0; i < inv.length; i++) {
      float pos = (float) Math.pow(theta, (float) (2 * i) / (float) rotaryDim);
      float extrapolation = 1.0f / pos;
      float interpolation = 1.0f / ((float) factor * pos);
      float ramp = Math.clamp((i - (float) low) / ((float) high - (float) low), 0f, 1f);
      float keep = 1 - ramp;
      inv[i] = interpolation * (1 - keep) + extrapolation * keep;
    }
    return inv;
  }

  /** The pair whose frequency turns {@code rotations} times over {@code context} positions. */
  private static double correctionDim(double rotations, int dim, double theta, double context) {
    return dim * Math.log(context / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
  }

  /** YaRN's attention factor: 0.1 ln(factor) + 1, scaled by mscale over mscale_all_dim. */
  private static float yarnAttentionFactor(HfConfig config, JsonNode s) {
    double factor = number(config, s, "factor");
    // HF takes the ratio only when both are set and not 0
    if (s.path("mscale").asDouble(0) != 0 && s.path("mscale_all_dim").asDouble(0) != 0) {
      return (float) (mscale(factor, number(config, s, "mscale"))
          / mscale(factor, number(config, s, "mscale_all_dim")));
    }
    return (float) mscale(factor, 1);
  }

  private static double mscale(double factor, double mscale) {
    return factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1;
  }

  /** The rope_scaling object's type, or empty without one. */
  private static Optional<String> scalingType(HfConfig config) {
    return config.getObject("rope_scaling").map(s -> {
      JsonNode t = s.has("rope_type") ? s.get("rope_type") : s.get("type");
      return t == null ? "default" : t.asText();
    });
  }

  /**
   * The positions a model whose frequencies change past some position is served for, its
   * tables inline so that every program refuses a position past them: longrope's
   * original_max_position_embeddings (top level as Phi-3 writes it, or in rope_scaling), past
   * which HF takes the long factors, and dynamic's max_position_embeddings, past which HF
   * raises theta; empty for the other types, whose frequencies hold at every position.
   */
  static Optional<Long> tabulatedPositions(HfConfig config) {
    if (longrope(config)) {
      return Optional.of(longropeOriginal(config));
    }
    return scalingType(config).filter(t -> t.equals("dynamic"))
        .map(t -> config.getPositive("max_position_embeddings"));
  }

  /** Whether rope_scaling is Phi-3's LongRoPE ({@code longrope}, or its old name {@code su}). */
  static boolean longrope(HfConfig config) {
    return scalingType(config).filter(t -> t.equals("longrope") || t.equals("su")).isPresent();
  }

  private static long longropeOriginal(HfConfig config) {
    JsonNode n = config.getObject("rope_scaling").get().get("original_max_position_embeddings");
    if (n == null) {
      return config.getPositive("original_max_position_embeddings");
    }
    // a count of positions: 0.5 would truncate to tables of no rows
    if (!n.isIntegralNumber() || !n.canConvertToLong() || n.asLong() <= 0) {
      throw config.error("rope_scaling \"original_max_position_embeddings\" must be a positive integer, got " + n);
    }
    return n.asLong();
  }

  /**
   * What HF multiplies cos and sin by: for longrope and yarn their attention_factor, by default
   * for longrope sqrt(1 + ln(s) / ln(original)) when the context is stretched by s =
   * max_position_embeddings / original_max_position_embeddings > 1, for yarn
   * {@link #yarnAttentionFactor}; 1 for every other type.
   */
  static float attentionFactor(HfConfig config) {
    boolean yarn = scalingType(config).filter(t -> t.equals("yarn")).isPresent();
    if (!longrope(config) && !yarn) {
      return 1.0f;
    }
    JsonNode s = config.getObject("rope_scaling").get();
    if (s.hasNonNull("attention_factor")) {
      return (float) number(config, s, "attention_factor");
    }
    if (yarn) {
      return yarnAttentionFactor(config, s);
    }
    long original = longropeOriginal(config);
    double stretch = (double) config.getPositive("max_position_embeddings") / original;
    if (stretch > 1 && original < 2) {
      throw config.error("original_max_position_embeddings " + original + " makes longrope's "
          + "attention factor sqrt(1 + ln(s) / ln(original)) infinite");
    }
    return stretch <= 1 ? 1.0f : (float) Math.sqrt(1 + Math.log(stretch) / Math.log(original));
  }

  /** A positive, finite number of {@code rope_scaling}: a factor or a length divides frequencies. */
  private static double number(HfConfig config, JsonNode s, String key) {
    JsonNode n = s.get(key);
    if (n == null || !n.isNumber()) {
      throw config.error("rope_scaling needs a number \"" + key + "\"");
    }
    double v = n.asDouble();
    if (!(v > 0) || Double.isInfinite(v)) {
      throw config.error("rope_scaling \"" + key + "\" must be a positive number, got " + n);
    }
    return v;
  }

  static RotaryTables compute(HfConfig config, double theta, int rotaryDim, int maxPositions) {
    float[] inv = inverseFrequencies(config, theta, rotaryDim);
    float scale = attentionFactor(config);
    int half = rotaryDim / 2;
    float[] cos = new float[maxPositions * rotaryDim];
    float[] sin = new float[maxPositions * rotaryDim];
    for (int p = 0; p < maxPositions; p++) {
      for (int i = 0; i < half; i++) {
        float angle = (float) p * inv[i];
        float c = (float) Math.cos(angle) * scale;
        float s = (float) Math.sin(angle) * scale;
        int row = p * rotaryDim;
        cos[row + i] = c;
        cos[row + i + half] = c;
        sin[row + i] = s;
        sin[row + i + half] = s;
      }
    }
    return new RotaryTables(maxPositions, rotaryDim, cos, sin);
  }

  static byte[] bytes(float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return b.array();
  }
}
