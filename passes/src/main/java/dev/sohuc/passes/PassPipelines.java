package dev.sohuc.passes;

import java.util.ArrayList;
import java.util.List;

/** Named pipelines and the parser for {@code --passes a,b,c}. */
public final class PassPipelines {

  /**
   * The optimization pipeline of {@code sohuc compile}: an f16 model widened to the chip's f32,
   * imported quantized matmuls onto qmatmul (before fold-constants can dequantize small
   * weights), the quantize-dequantize pairs left that the chip cannot quantize as f32
   * arithmetic, clean up, fuse the transformer decompositions into transformer ops, clean up
   * what fusion left.
   */
  public static final List<String> DEFAULT = List.of(
      "widen-half", "fold-qdq", "expand-qdq", "canonicalize", "fold-constants", "cse", "canonicalize",
      "fuse-layer-norm", "fuse-rms-norm", "fuse-gelu", "fuse-silu", "fuse-rope", "fuse-attention",
      "canonicalize", "cse", "dce");

  /** The name that stands for {@link #DEFAULT} inside a pass list. */
  public static final String DEFAULT_NAME = "default";

  private PassPipelines() {}

  /** The passes of the default pipeline. */
  public static List<Pass> defaultPipeline() {
    return parse(DEFAULT_NAME);
  }

  /**
   * Parses a comma-separated list of pass names ({@code default} expands to the default
   * pipeline); throws {@link UnknownPassException} naming the bad entry and the known passes.
   */
  public static List<Pass> parse(String list) {
    List<Pass> out = new ArrayList<>();
    for (String raw : list.split(",")) {
      String name = raw.strip();
      if (name.isEmpty()) {
        continue;
      }
      if (name.equals(DEFAULT_NAME)) {
        for (String p : DEFAULT) {
          out.add(PassRegistry.lookup(p).orElseThrow());
        }
        continue;
      }
      out.add(PassRegistry.lookup(name).orElseThrow(() -> new UnknownPassException(name)));
    }
    return out;
  }

  /** A pass name nobody registered. */
  public static final class UnknownPassException extends IllegalArgumentException {
    private final String pass;

    public UnknownPassException(String pass) {
      super("unknown pass '" + pass + "'; known passes: " + String.join(", ", PassRegistry.names())
          + " (and '" + DEFAULT_NAME + "' for the default pipeline)");
      this.pass = pass;
    }

    public String pass() {
      return pass;
    }
  }
}
