package dev.sohuc.passes.rewrite;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.text.IrPrinter;
import dev.sohuc.ir.type.ElementType;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

class RewriteDriverTest {
  private static final Set<String> EVERY_ROOT = Set.of("add", "mul", "neg", "exp");

  /**
   * The driver keeps its use lists as rewrites go instead of rebuilding them: after a value
   * replaced (its readers, one of which reads it twice, and an output), an op given other
   * operands and helper ops rolled back, every rule still sees the readers the body has.
   */
  @Test
  void everyRuleSeesTheUsesTheBodyHas() {
    Module m = IrParser.parse("""
        module @m {
          func @main(%x: tensor<4 x f32>) -> ("y": tensor<4 x f32>, "a": tensor<4 x f32>,
              "n": tensor<4 x f32>) {
            %a = add %x, %x : tensor<4 x f32>
            %b = mul %a, %a : tensor<4 x f32>
            %n = neg %a : tensor<4 x f32>
            %y = exp %b : tensor<4 x f32>
            return %y, %a, %n
          }
        }
        """, "uses.ir");
    List<String> checked = new ArrayList<>();
    RewriteRule usesAgree = RewriteRule.of("uses-agree", EVERY_ROOT, (root, cx) -> {
      Map<Value, List<Node>> body = cx.function().users();
      for (Node n : cx.function().body()) {
        for (Value v : valuesOf(cx.function(), n)) {
          assertEquals(counts(body.getOrDefault(v, List.of())), counts(cx.users(v)),
              "readers of %" + v.name() + " before " + root.op().mnemonic());
        }
      }
      checked.add(root.op().mnemonic());
      return Optional.empty();
    });
    // x + x -> x * 2, through a helper constant: %a's readers (mul twice, neg) and the
    // output "a" move to the new value
    RewriteRule addToMul = RewriteRule.of("add-to-mul", Set.of("add"), (root, cx) -> {
      ElementwiseOp.Binary add = (ElementwiseOp.Binary) root.op();
      if (add.lhs() != add.rhs()) {
        return Optional.empty();
      }
      Value two = cx.scalar(2.0, ElementType.F32);
      return Replacement.value(cx.add(new ElementwiseOp.Binary(BinaryKind.MUL, add.lhs(), two)));
    });
    // neg reads x instead: its old operand loses a reader
    RewriteRule negOfInput = RewriteRule.of("neg-of-input", Set.of("neg"), (root, cx) -> {
      Value x = cx.function().arguments().get(0);
      ElementwiseOp.Unary neg = (ElementwiseOp.Unary) root.op();
      return neg.x() == x ? Optional.empty()
          : Replacement.op(new ElementwiseOp.Unary(UnaryKind.NEG, x));
    });
    // builds a helper reading %b, then declines: the helper and its use go again
    RewriteRule declines = RewriteRule.of("declines", Set.of("exp"), (root, cx) -> {
      cx.add(new ElementwiseOp.Unary(UnaryKind.NEG, root.op().operands().get(0)));
      return Optional.empty();
    });
    RewriteDriver.apply(m, List.of(usesAgree, addToMul, negOfInput, declines));
    // every root kind checked, on the first sweep and again on the sweeps after the rewrites
    assertEquals(EVERY_ROOT, Set.copyOf(checked));
    assertTrue(checked.size() > 2 * EVERY_ROOT.size(), checked.toString());
    String printed = IrPrinter.print(m);
    assertEquals(2, printed.split(" mul ", -1).length - 1, printed);
    assertEquals(1, printed.split(" neg %x", -1).length - 1, printed);
    assertEquals(0, printed.split(" add ", -1).length - 1, printed);
  }

  private static List<Value> valuesOf(Function f, Node n) {
    List<Value> vs = new ArrayList<>(n.results());
    vs.addAll(f.arguments());
    return vs;
  }

  private static Map<Node, Integer> counts(List<Node> readers) {
    Map<Node, Integer> c = new HashMap<>();
    readers.forEach(r -> c.merge(r, 1, Integer::sum));
    return c;
  }
}
