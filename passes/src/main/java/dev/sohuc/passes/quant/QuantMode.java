package dev.sohuc.passes.quant;

import java.util.Arrays;
import java.util.Locale;

/** What {@code --quantize} asks for. */
public enum QuantMode {
  /** Leave the model in f32. */
  NONE,
  /** bf16 weights and activations into the MXU, f32 accumulation. */
  BF16,
  /** f8e4m3 weights (per output channel) and activations (per tensor, or per token when dynamic). */
  FP8,
  /** i8 weights (per output channel, symmetric) and activations (per tensor), SmoothQuant migration. */
  INT8;

  /** The flag spelling: {@code none}, {@code bf16}, {@code fp8}, {@code int8}. */
  public String flag() {
    return name().toLowerCase(Locale.ROOT);
  }

  public static QuantMode parse(String s) {
    return Arrays.stream(values()).filter(m -> m.flag().equals(s.strip().toLowerCase(Locale.ROOT))).findFirst()
        .orElseThrow(() -> new IllegalArgumentException("unknown quantization mode '" + s
            + "'; use none, bf16, fp8 or int8"));
  }
}
