package dev.sohuc.passes.tp;

/**
 * A model that does not shard over the chips asked for (its heads or widths do not split, a
 * row-parallel bias, no attention op): an error in the request, not in sohuc. Names what.
 */
public final class ShardException extends RuntimeException {
  public ShardException(String message) {
    super(message);
  }

  /** The same error said again with more context (the config it came from). */
  public ShardException(String message, ShardException cause) {
    super(message, cause);
  }
}
