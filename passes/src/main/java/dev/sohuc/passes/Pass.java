package dev.sohuc.passes;

import dev.sohuc.ir.Module;

/**
 * One IR-to-IR transformation. Its {@link #name()} is its command-line flag and the name of its
 * test file ({@code passes/src/test/resources/<name>.ir}); passes are stateless, so one instance
 * may run on many modules.
 */
public interface Pass {

  /** The flag name, e.g. {@code fuse-attention}. */
  String name();

  /** One line for {@code --help} and the registry listing. */
  String summary();

  /**
   * A cheap check (one scan for the ops the pass looks at) that lets the manager skip a pass
   * that cannot change the module. Returning true is always allowed.
   */
  default boolean shouldApply(Module module) {
    return true;
  }

  /** Rewrites the module in place and says what it did. */
  PassResult run(Module module);
}
