package dev.sohuc.hf;

import java.util.Map;

/**
 * How to import a Hugging Face model.
 *
 * @param graph       a prefill graph (the whole prompt, writing the KV cache), a decode step
 *                    (reading {@code past_key_values.N.*}, writing {@code present.N.*}), a ragged
 *                    decode step (one token a sequence, each at its own KV length) or a serving
 *                    step (one prompt and a batch of decodes through the same weights)
 * @param dimBindings symbolic dims to fix, by name: {@code --shape seq=2048} is {@code seq -> 2048};
 *                    the dims are {@code batch}, {@code seq} and {@code past}
 * @param shapeOnly   forces weights to be sized placeholders even when a checkpoint exists; a
 *                    directory with only {@code config.json} is imported shape-only anyway
 * @param microBatches a serving step's prompt in this many micro-batches of {@code seq} tokens
 *                    ({@code input_ids [microBatches, seq]}): each layer runs its ops for every
 *                    micro-batch in turn, so the sum on the link of one micro-batch's layer can
 *                    run while the next one computes (1 for other graphs)
 * @param dimMultiples symbolic dims known to be multiples, by name: {@code seq -> 8} makes the
 *                    prompt {@code 8*?"seq/8"} tokens (a sequence-parallel program splits its
 *                    rows into 8 equal blocks only when the types say they divide)
 * @param overlapAttention a serving step of several micro-batches places each micro-batch's
 *                    o projection and MLP after the next micro-batch's attention (the last
 *                    micro-batch's after the first's of the next layer), so that a second
 *                    control stream can run the attention ({@link #OVERLAPPED_ATTENTION} or
 *                    {@link #EVERY_ATTENTION}) while the first runs an MLP: the attention's
 *                    softmax (vector unit) then overlaps matrix work
 */
public record HfOptions(GraphKind graph, Map<String, Long> dimBindings, boolean shapeOnly,
    int microBatches, Map<String, Long> dimMultiples, boolean overlapAttention) {

  /** The most micro-batches a step's prompt is split into (each is a copy of every layer's ops). */
  public static final int MAX_MICRO_BATCHES = 64;

  /** Which program the graph computes. */
  public enum GraphKind { PREFILL, DECODE, RAGGED_DECODE, STEP }

  public HfOptions(GraphKind graph, Map<String, Long> dimBindings, boolean shapeOnly) {
    this(graph, dimBindings, shapeOnly, 1, Map.of(), false);
  }

  public HfOptions(GraphKind graph, Map<String, Long> dimBindings, boolean shapeOnly,
      int microBatches) {
    this(graph, dimBindings, shapeOnly, microBatches, Map.of(), false);
  }

  public HfOptions {
    if (microBatches < 1 || microBatches > MAX_MICRO_BATCHES
        || (microBatches > 1 && graph != GraphKind.STEP)) {
      throw new HfImportException(microBatches + " micro-batches: a serving step takes 1 to "
          + MAX_MICRO_BATCHES + ", other graphs 1");
    }
    if (overlapAttention && microBatches < 2) {
      throw new HfImportException("overlapped attention needs a serving step of 2 or more "
          + "micro-batches; got " + microBatches);
    }
    dimBindings = Map.copyOf(dimBindings);
    for (var e : dimBindings.entrySet()) {
      if (e.getValue() < 0) {
        throw new HfImportException("--shape " + e.getKey() + "=" + e.getValue() + ": a dim must not be negative");
      }
    }
    dimMultiples = Map.copyOf(dimMultiples);
    for (var e : dimMultiples.entrySet()) {
      if (e.getValue() < 1) {
        throw new HfImportException("dim " + e.getKey() + " as a multiple of " + e.getValue()
            + ": the factor must be at least 1");
      }
    }
  }

  /** A prefill graph with symbolic dims and weights from the checkpoint when there is one. */
  public static HfOptions prefill() {
    return new HfOptions(GraphKind.PREFILL, Map.of(), false);
  }

  /** A decode-step graph with symbolic dims. */
  public static HfOptions decode() {
    return new HfOptions(GraphKind.DECODE, Map.of(), false);
  }

  /**
   * A decode step of one token a sequence, sequence b at position {@code past_lengths[b]} of a
   * cache of capacity {@code past} (Llama-family decoders), with symbolic dims.
   */
  public static HfOptions raggedDecode() {
    return new HfOptions(GraphKind.RAGGED_DECODE, Map.of(), false);
  }

  /**
   * A serving step with symbolic dims: a prompt of {@code seq} tokens and {@code batch} decode
   * sequences at {@code past} cached tokens, one pass over the weights (Llama-family decoders).
   */
  public static HfOptions step() {
    return new HfOptions(GraphKind.STEP, Map.of(), false);
  }

  public HfOptions withDimBindings(Map<String, Long> bindings) {
    return new HfOptions(graph, bindings, shapeOnly, microBatches, dimMultiples,
        overlapAttention);
  }

  public HfOptions withShapeOnly(boolean only) {
    return new HfOptions(graph, dimBindings, only, microBatches, dimMultiples, overlapAttention);
  }

  public HfOptions withMicroBatches(int count) {
    return new HfOptions(graph, dimBindings, shapeOnly, count, dimMultiples, overlapAttention);
  }

  /** See {@code overlapAttention}: with it the second stream takes {@link #OVERLAPPED_ATTENTION}. */
  public HfOptions withOverlapAttention(boolean overlap) {
    return new HfOptions(graph, dimBindings, shapeOnly, microBatches, dimMultiples, overlap);
  }

  /**
   * What the names of a serving step's decode attention ops contain (their ropes, the attention,
   * its rows): they read none of the prompt's results, so a second control stream can run them
   * while the prompt's attention runs (SohuBackend's second stream).
   */
  public static final java.util.regex.Pattern DECODE_ATTENTION =
      java.util.regex.Pattern.compile("decode\\.");

  /**
   * The decode attention and the prompt attention of every micro-batch after the first (their
   * ropes, the attention), which read the first stream's projections; with
   * {@code overlapAttention} they run beside the MLP placed before their o projection. The
   * first micro-batch's prompt attention stays in the first stream, beside the decodes'.
   */
  public static final java.util.regex.Pattern OVERLAPPED_ATTENTION =
      java.util.regex.Pattern.compile("decode\\.|prompt[1-9][0-9]*\\.");

  /**
   * With {@code overlapAttention}: every micro-batch's prompt attention and the decodes'. Their
   * ropes stay in the first stream, right after the projections they read: in the second the
   * prompt's queued behind the decode attention, their loads behind the MLP's weights,
   * lengthening the chain the o projection waits for (70B, 2 chips, ten layers: 5.63 -> 5.55
   * ms; at 8 chips, where the first stream is the longer, the same move in
   * {@link #OVERLAPPED_ATTENTION} cost 1%).
   */
  public static final java.util.regex.Pattern EVERY_ATTENTION =
      java.util.regex.Pattern.compile("decode\\.(?!q_rot|k_rot)|prompt[0-9]+\\.(?!q_rot|k_rot)");

  /** The named symbolic dims as multiples: {@code ?seq} becomes {@code k*?"seq/k"}. */
  public HfOptions withDimMultiples(Map<String, Long> multiples) {
    return new HfOptions(graph, dimBindings, shapeOnly, microBatches, multiples,
        overlapAttention);
  }

  /** The symbol that counts the blocks of a dim taken as a multiple of {@code k}. */
  public static String blocksSymbol(String dim, long k) {
    return dim + "/" + k;
  }
}
