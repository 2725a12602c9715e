package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;

import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * Every op mnemonic with its operand count, factory and one-line summary: the parser, the
 * rewriters ({@link Op#withOperands}) and the docs all build ops through here.
 */
public final class OpRegistry {

  /** Builds an op from operands and attributes; throws {@link OpException} when they are wrong. */
  @FunctionalInterface
  public interface Factory {
    Op create(List<Value> operands, Attributes attributes);
  }

  /**
   * One op's definition.
   *
   * @param maxOperands {@link Integer#MAX_VALUE} for variadic ops
   */
  public record OpDef(String mnemonic, String category, int minOperands, int maxOperands,
                      String summary, Factory factory) {}

  /** Collects the definitions of one category. */
  public static final class Registrar {
    private final Map<String, OpDef> defs;
    private final String category;

    private Registrar(Map<String, OpDef> defs, String category) {
      this.defs = defs;
      this.category = category;
    }

    public void op(String mnemonic, int operands, String summary, Factory factory) {
      op(mnemonic, operands, operands, summary, factory);
    }

    public void op(String mnemonic, int minOperands, int maxOperands, String summary, Factory factory) {
      if (defs.put(mnemonic, new OpDef(mnemonic, category, minOperands, maxOperands, summary, factory)) != null) {
        throw new IllegalStateException("op " + mnemonic + " defined twice");
      }
    }
  }

  private static final Map<String, OpDef> DEFS;

  static {
    Map<String, OpDef> defs = new TreeMap<>();
    ElementwiseOp.register(new Registrar(defs, "elementwise"));
    LinalgOp.register(new Registrar(defs, "linear algebra"));
    DataOp.register(new Registrar(defs, "data movement"));
    ReductionOp.register(new Registrar(defs, "reduction"));
    SourceOp.register(new Registrar(defs, "source"));
    QuantOp.register(new Registrar(defs, "quantization"));
    TransformerOp.register(new Registrar(defs, "transformer"));
    DEFS = Collections.unmodifiableMap(defs);
  }

  private OpRegistry() {}

  public static Optional<OpDef> lookup(String mnemonic) {
    return Optional.ofNullable(DEFS.get(mnemonic));
  }

  public static Collection<OpDef> all() {
    return DEFS.values();
  }

  /** Builds an op, checking the operand count and that every attribute given was used. */
  public static Op create(String mnemonic, List<Value> operands, Attributes attributes) {
    OpDef def = lookup(mnemonic).orElseThrow(() -> new OpException("unknown op '" + mnemonic + "'"));
    int n = operands.size();
    if (n < def.minOperands() || n > def.maxOperands()) {
      String expected = def.minOperands() == def.maxOperands()
          ? String.valueOf(def.minOperands())
          : def.maxOperands() == Integer.MAX_VALUE
              ? def.minOperands() + " or more"
              : def.minOperands() + " to " + def.maxOperands();
      throw new OpException("'" + mnemonic + "' takes " + expected + " operands, got " + n);
    }
    Op op = def.factory().create(List.copyOf(operands), attributes);
    attributes.checkAllRead(mnemonic);
    return op;
  }

  /** The operand at {@code i}, or null when the op was given fewer (optional operands). */
  static Value optional(List<Value> operands, int i) {
    return i < operands.size() ? operands.get(i) : null;
  }

  /** The operands that are present, for ops with optional trailing operands. */
  static List<Value> present(Value... values) {
    return java.util.Arrays.stream(values).filter(java.util.Objects::nonNull).toList();
  }
}
