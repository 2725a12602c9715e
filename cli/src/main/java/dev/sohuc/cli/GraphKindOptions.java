package dev.sohuc.cli;

import dev.sohuc.hf.HfOptions;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/**
 * {@code --decode [--ragged]}, {@code --step}, {@code --micro-batches} and
 * {@code --overlap-attention}: which graph a Hugging Face model is imported as.
 */
final class GraphKindOptions {
  @Option(names = "--decode", description = "Hugging Face models: the decode-step graph (KV cache of "
      + "?past tokens in as past_key_values.N.key/value, present.N.* out)")
  boolean decode;

  @Option(names = "--ragged", description = "With --decode (Hugging Face decoders): one token a "
      + "sequence, sequence b at position past_lengths[b] (input past_lengths, ?batch) of caches of "
      + "capacity ?past, its new key and value written there")
  boolean ragged;

  @Option(names = "--step", description = "Hugging Face decoders: the serving-step graph, one prompt "
      + "(input_ids 1x?seq) and ?batch decodes (decode_ids, past_key_values.N.*) through the same "
      + "weights; logits of the prompt's last position and of each decode, present.N.* and "
      + "prompt.present.N.* out")
  boolean step;

  @Option(names = "--micro-batches", paramLabel = "N", description = "With --step: the prompt in N "
      + "micro-batches of ?seq tokens (input_ids Nx?seq), each layer's ops run for one after the "
      + "other so that one's tensor-parallel sums overlap the next one's compute (default 1)")
  int microBatches = 1;

  @Option(names = "--overlap-attention", description = "With --step --micro-batches 2 or more: "
      + "each micro-batch's o projection and MLP after the next one's attention (the last's "
      + "after the first's of the next layer), so that with --two-streams the second stream "
      + "runs the later micro-batches' prompt attention beside an MLP (one of the layouts "
      + "sohuc bench times)")
  boolean overlapAttention;

  /** How to import a Hugging Face model, dims not yet bound. */
  HfOptions options(CommandLine cl) {
    if (decode && step) {
      throw new CommandLine.ParameterException(cl, "--decode and --step name different graphs: "
          + "give one");
    }
    if (ragged && !decode) {
      throw new CommandLine.ParameterException(cl, "--ragged goes with --decode (a --step graph's "
          + "decodes always have their own lengths)");
    }
    if (microBatches < 1 || microBatches > HfOptions.MAX_MICRO_BATCHES
        || (microBatches > 1 && !step)) {
      throw new CommandLine.ParameterException(cl, "--micro-batches " + microBatches
          + ": 1 to " + HfOptions.MAX_MICRO_BATCHES + ", and more than 1 only with --step");
    }
    if (overlapAttention && (!step || microBatches < 2)) {
      throw new CommandLine.ParameterException(cl, "--overlap-attention goes with --step and "
          + "--micro-batches 2 or more (it moves each micro-batch's o projection and MLP past the "
          + "next one's attention)");
    }
    HfOptions.GraphKind kind = step ? HfOptions.GraphKind.STEP
        : decode ? (ragged ? HfOptions.GraphKind.RAGGED_DECODE : HfOptions.GraphKind.DECODE)
        : HfOptions.GraphKind.PREFILL;
    return new HfOptions(kind, java.util.Map.of(), false, microBatches)
        .withOverlapAttention(overlapAttention);
  }
}
