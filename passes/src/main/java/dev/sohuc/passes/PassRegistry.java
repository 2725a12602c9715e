package dev.sohuc.passes;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Supplier;

/** Every pass by its flag name, in the order {@code sohuc opt --help} lists them. */
public final class PassRegistry {
  private static final Map<String, Supplier<Pass>> PASSES = new LinkedHashMap<>();

  static {
    register(WidenHalfPass::new);
    register(CanonicalizePass::new);
    register(FoldConstantsPass::new);
    register(CommonSubexpressionEliminationPass::new);
    register(DeadCodeEliminationPass::new);
    register(FuseLayerNormPass::new);
    register(FuseRmsNormPass::new);
    register(FuseGeluPass::new);
    register(FuseSiluPass::new);
    register(FuseRopePass::new);
    register(FuseAttentionPass::new);
    register(dev.sohuc.passes.quant.FoldQdqPass::new);
    register(dev.sohuc.passes.quant.ExpandQdqPass::new);
    register(dev.sohuc.passes.quant.QuantizePass::new);
    register(dev.sohuc.passes.tp.ShardTensorParallelPass::new);
    register(dev.sohuc.passes.tp.SequenceParallelPass::new);
    register(LayoutWeightsPass::new);
  }

  private PassRegistry() {}

  private static void register(Supplier<Pass> factory) {
    String name = factory.get().name();
    if (PASSES.putIfAbsent(name, factory) != null) {
      throw new IllegalStateException("pass " + name + " registered twice");
    }
  }

  public static List<String> names() {
    return Collections.unmodifiableList(new ArrayList<>(PASSES.keySet()));
  }

  public static Optional<Pass> lookup(String name) {
    Supplier<Pass> f = PASSES.get(name);
    return f == null ? Optional.empty() : Optional.of(f.get());
  }

  /** All passes, one instance each, for listings. */
  public static List<Pass> all() {
    return PASSES.values().stream().map(Supplier::get).toList();
  }
}
