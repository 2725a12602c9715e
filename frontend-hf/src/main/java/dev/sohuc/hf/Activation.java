package dev.sohuc.hf;

/** The {@code hidden_act} functions the frontend maps onto IR ops. */
enum Activation {
  SILU, GELU_ERF, GELU_TANH;

  static Activation parse(HfConfig config, String key, String name) {
    return switch (name) {
      case "silu", "swish" -> SILU;
      case "gelu" -> GELU_ERF;
      case "gelu_new", "gelu_pytorch_tanh", "gelu_fast" -> GELU_TANH;
      default -> throw config.error("\"" + key + "\": \"" + name
          + "\" is not supported (supported: silu, swish, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)");
    };
  }
}
