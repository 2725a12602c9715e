package dev.sohuc.ir.text;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The verifier rules that IR text cannot reach, because the parser reports the same problem
 * first with its position (see parse-errors.ir): here modules are built directly. The rules text
 * can reach are in verify-errors.ir.
 */
class VerifierRulesTest {
  private static final TensorType F32x2 = TensorType.of(ElementType.F32, 2);

  private static String verify(Module m) {
    return assertThrows(IrException.class, () -> new Verifier().verify(m)).getMessage();
  }

  private static Module withFunction(Function f) {
    Module m = new Module("m");
    m.functions().add(f);
    return m;
  }

  private static Node exp(Value x, String result) {
    return new Node(new ElementwiseOp.Unary(ElementwiseOp.UnaryKind.EXP, x), List.of(result), List.of(x.type()),
        new Location("/layer/Exp"));
  }

  @Test
  void argumentWithANegativeDim() {
    Function f = new Function("f", List.of(Value.argument("a", TensorType.of(ElementType.F32, -1))));
    assertEquals("function @f, argument %a has a negative dim in tensor<-1 x f32>", verify(withFunction(f)));
  }

  @Test
  void argumentDefinedTwice() {
    Function f = new Function("f", List.of(Value.argument("a", F32x2), Value.argument("a", F32x2)));
    assertEquals("function @f: argument %a is defined twice", verify(withFunction(f)));
  }

  @Test
  void operandFromElsewhere() {
    Function f = new Function("f", List.of());
    f.body().add(exp(Value.argument("stray", F32x2), "y"));
    assertEquals("'exp' (%y, at \"/layer/Exp\"): operand %stray is used before it is defined",
        verify(withFunction(f)));
  }

  @Test
  void valueDefinedTwice() {
    Value a = Value.argument("a", F32x2);
    Function f = new Function("f", List.of(a));
    f.body().add(exp(a, "a"));
    assertEquals("'exp' (%a, at \"/layer/Exp\"): value %a is defined twice", verify(withFunction(f)));
  }

  @Test
  void missingWeightAndWeightOfAnotherType() {
    Function f = new Function("f", List.of());
    f.body().add(new Node(new SourceOp.WeightRef("w", F32x2), List.of("w"), List.of(F32x2), Location.UNKNOWN));
    Module m = withFunction(f);
    assertEquals("'weight' (%w): no weight @w in the module", verify(m));
    m.addWeight(new Weight("w", TensorType.of(ElementType.F32, 3), new Weight.Data.ShapeOnly()));
    assertEquals("'weight' (%w): weight @w has type tensor<3 x f32>, not tensor<2 x f32>", verify(m));
  }

  @Test
  void outputNotDefinedAndOutputNameTwice() {
    Value a = Value.argument("a", F32x2);
    Function f = new Function("f", List.of(a));
    f.setOutputs(List.of(new Function.Output("out", Value.argument("ghost", F32x2))));
    assertEquals("function @f: output \"out\" returns %ghost, which is not defined", verify(withFunction(f)));
    f.setOutputs(List.of(new Function.Output("out", a), new Function.Output("out", a)));
    assertEquals("function @f: output name \"out\" is used twice", verify(withFunction(f)));
  }
}
