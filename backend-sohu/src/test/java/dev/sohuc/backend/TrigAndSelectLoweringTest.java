package dev.sohuc.backend;

import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.tensor.Tensor;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * sin/cos ({@link TrigLowering}) and comparisons/where ({@link SelectLowering}) compiled and
 * emulated against the interpreter, on arguments that exercise them: angles up to 3000 rad
 * (rotary positions times frequencies), ties in comparisons, -inf in where.
 */
class TrigAndSelectLoweringTest {
  static final long SEED = 91;

  @Test
  void sinAndCosOfLargeAngles() {
    String text = """
        module @trig {
          func @main(%x: tensor<?s x 64 x f32>) -> ("s": tensor<?s x 64 x f32>, "c": tensor<?s x 64 x f32>) {
            %s = sin %x : tensor<?s x 64 x f32>
            %c = cos %x : tensor<?s x 64 x f32>
            return %s, %c
          }
        }
        """;
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "trig.ir"),
        BackendOptions.defaults().withBound("s", 300));
    for (long s : new long[] {3, 200}) {
      Random r = new Random(SEED);
      System.out.println("trig seed " + SEED + " s " + s);
      c.check(List.of(EndToEndHarness.randomF32(r, 3000, s, 64)), 1e-6, "trig s=" + s);
    }
  }

  @Test
  void topTwoRoutingByMaxAndMask() {
    // Mixtral's routing: the 2nd largest logit of each row by max-and-mask, then the rest -inf
    String text = """
        module @route {
          func @main(%x: tensor<?s x 8 x f32>) -> ("y": tensor<?s x 8 x f32>, "lt": tensor<?s x 8 x bool>, "gt": tensor<?s x 8 x bool>, "le": tensor<?s x 8 x bool>) {
            %ninf = constant {value = dense<-inf> : tensor<f32>} : tensor<f32>
            %m1 = reduce_max %x {axes = [-1], keepdims = true} : tensor<?s x 1 x f32>
            %t1 = greater_equal %x, %m1 : tensor<?s x 8 x bool>
            %r1 = where %t1, %ninf, %x : tensor<?s x 8 x f32>
            %m2 = reduce_max %r1 {axes = [-1], keepdims = true} : tensor<?s x 1 x f32>
            %sel = greater_equal %x, %m2 : tensor<?s x 8 x bool>
            %y = where %sel, %x, %ninf : tensor<?s x 8 x f32>
            %lt = less %x, %m2 : tensor<?s x 8 x bool>
            %gt = greater %x, %r1 : tensor<?s x 8 x bool>
            %le = less_equal %x, %r1 : tensor<?s x 8 x bool>
            return %y, %lt, %gt, %le
          }
        }
        """;
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "route.ir"),
        BackendOptions.defaults().withBound("s", 300));
    for (long s : new long[] {5, 140}) {
      Random r = new Random(SEED);
      Tensor x = EndToEndHarness.randomF32(r, 2, s, 8);
      for (int i = 0; i < s; i += 3) {
        x.set(i * 8 + 5, x.get(i * 8 + 1)); // ties
      }
      System.out.println("route seed " + SEED + " s " + s);
      c.check(List.of(x), 0, "route s=" + s);
    }
  }

  /** equal as both ge's product: against a full-shaped tensor, a constant, a constant first. */
  @Test
  void equalOfTensorsAndConstants() {
    String text = """
        module @eq {
          func @main(%x: tensor<?s x 8 x f32>, %y: tensor<?s x 8 x f32>) -> ("e": tensor<?s x 8 x bool>, "c": tensor<?s x 8 x bool>, "d": tensor<?s x 8 x bool>) {
            %one = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
            %e = equal %x, %y : tensor<?s x 8 x bool>
            %c = equal %x, %one : tensor<?s x 8 x bool>
            %d = equal %one, %y : tensor<?s x 8 x bool>
            return %e, %c, %d
          }
        }
        """;
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "eq.ir"),
        BackendOptions.defaults().withBound("s", 300));
    for (long s : new long[] {5, 140}) {
      Random r = new Random(SEED);
      Tensor x = EndToEndHarness.randomF32(r, 2, s, 8);
      Tensor y = EndToEndHarness.randomF32(r, 2, s, 8);
      for (int i = 0; i < s * 8; i += 3) {
        y.set(i, x.get(i)); // equal pairs
        x.set((int) ((i + 1) % (s * 8)), 1.0);
        y.set((int) ((i + 2) % (s * 8)), 1.0);
      }
      System.out.println("equal seed " + SEED + " s " + s);
      c.check(List.of(x, y), 0, "equal s=" + s);
    }
  }
}
