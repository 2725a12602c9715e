package dev.sohuc.passes;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;

/**
 * Checks that a transformation keeps a module's meaning: runs the reference interpreter on
 * seeded random inputs before and after, and compares every output. Prints the seed, so a
 * failure can be replayed.
 */
final class MeaningCheck {
  /** Largest error allowed, relative to the largest magnitude in the reference output. */
  static final double RELATIVE_TOLERANCE = 1e-5;

  private MeaningCheck() {}

  /** Runs {@code transform} on {@code module} and asserts the outputs did not change. */
  static void assertPreservesMeaning(Module module, Consumer<Module> transform, long seed) {
    assertPreservesMeaning(module, transform, seed, Map.of());
  }

  /**
   * As above; {@code fixedSymbols} pins sizes of some dim symbols (others get 2..5), and integer
   * inputs get values in [0, 2) when their name mentions a mask or a type, else [0, 16).
   */
  static void assertPreservesMeaning(Module module, Consumer<Module> transform, long seed,
                                     Map<String, Long> fixedSymbols) {
    System.out.println("meaning check of @" + module.name() + ": seed " + seed);
    List<Tensor> inputs = randomInputs(module.main(), seed, fixedSymbols);
    Map<String, Tensor> before = new Interpreter(module).run(inputs);
    transform.accept(module);
    Map<String, Tensor> after = new Interpreter(module).run(inputs);
    assertEquals(before.keySet(), after.keySet(), "output names (seed " + seed + ")");
    for (String name : before.keySet()) {
      assertClose(before.get(name), after.get(name), "output '" + name + "' (seed " + seed + ")");
    }
  }

  static void assertClose(Tensor expected, Tensor actual, String what) {
    assertEquals(expected.type(), actual.type(), what + ": type");
    double maxAbs = 0;
    double maxErr = 0;
    int worst = -1;
    for (int i = 0; i < expected.size(); i++) {
      double e = expected.get(i);
      double a = actual.get(i);
      if (Double.isNaN(e) != Double.isNaN(a)) {
        throw new AssertionError(what + ": element " + i + " is " + a + ", expected " + e);
      }
      if (Double.isNaN(e) || e == a) {
        continue;
      }
      maxAbs = Math.max(maxAbs, Math.abs(e));
      double err = Math.abs(e - a);
      if (err > maxErr) {
        maxErr = err;
        worst = i;
      }
    }
    for (int i = 0; i < expected.size(); i++) {
      if (!Double.isNaN(expected.get(i)) && !Double.isInfinite(expected.get(i))) {
        maxAbs = Math.max(maxAbs, Math.abs(expected.get(i)));
      }
    }
    if (maxErr > RELATIVE_TOLERANCE * Math.max(maxAbs, 1e-30)) {
      throw new AssertionError(what + ": element " + worst + " is " + actual.get(worst) + ", expected "
          + expected.get(worst) + " (error " + maxErr + " against magnitude " + maxAbs + ")");
    }
  }

  static List<Tensor> randomInputs(Function f, long seed, Map<String, Long> fixed) {
    Random rnd = new Random(seed);
    Map<String, Long> bindings = new HashMap<>(fixed);
    List<Tensor> inputs = new ArrayList<>();
    for (Value arg : f.arguments()) {
      for (Dim d : arg.type().dims()) {
        for (String s : d.symbols()) {
          bindings.computeIfAbsent(s, k -> 2L + rnd.nextInt(4));
        }
      }
    }
    for (Value arg : f.arguments()) {
      long[] shape = arg.type().evaluateShape(bindings);
      ElementType t = arg.type().elementType();
      Tensor x = Tensor.zeros(t, shape);
      String lower = arg.name().toLowerCase();
      boolean mask = lower.contains("mask");
      boolean binary = mask || lower.contains("type"); // token_type_ids index a table of 2
      for (int i = 0; i < x.size(); i++) {
        if (t.isFloat()) {
          x.set(i, rnd.nextGaussian());
        } else if (t == ElementType.BOOL) {
          x.set(i, rnd.nextBoolean() ? 1 : 0);
        } else {
          // Masks keep the first position, so no row of attention is fully masked.
          x.set(i, mask && i % shape[shape.length - 1] == 0 ? 1 : rnd.nextInt(binary ? 2 : 16));
        }
      }
      inputs.add(x);
    }
    return inputs;
  }
}
