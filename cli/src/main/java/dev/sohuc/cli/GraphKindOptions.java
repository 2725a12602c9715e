package dev.sohuc.cli;

import dev.sohuc.hf.HfOptions;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** {@code --decode} and {@code --step}: which graph a Hugging Face model is imported as. */
final class GraphKindOptions {
  @Option(names = "--decode", description = "Hugging Face models: the decode-step graph (KV cache of "
      + "?past tokens in as past_key_values.N.key/value, present.N.* out)")
  boolean decode;

  @Option(names = "--step", description = "Hugging Face decoders: the serving-step graph, one prompt "
      + "(input_ids 1x?seq) and ?batch decodes (decode_ids, past_key_values.N.*) through the same "
      + "weights; logits of the prompt's last position and of each decode, present.N.* and "
      + "prompt.present.N.* out")
  boolean step;

  HfOptions.GraphKind kind(CommandLine cl) {
    if (decode && step) {
      throw new CommandLine.ParameterException(cl, "--decode and --step name different graphs: "
          + "give one");
    }
    return step ? HfOptions.GraphKind.STEP
        : decode ? HfOptions.GraphKind.DECODE : HfOptions.GraphKind.PREFILL;
  }
}
