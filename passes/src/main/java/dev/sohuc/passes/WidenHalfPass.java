package dev.sohuc.passes;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code widen-half}: a model in f16 (an ONNX export in half precision) computed in f32, the
 * precision the chip computes in. Its f16 inputs and weights are cast to f32 where they enter
 * (layout-weights then stores the weights in f32), its f16 constants, fills and ranges made f32,
 * its casts to f16 kept as roundings widened again, every other op rebuilt on the widened values;
 * outputs that were f16 are cast back, so the program takes and returns what the model does,
 * computed more precisely (no rounding to f16 between ops but the casts the model asks for; the
 * reference interpreter keeps them all). bf16 stays: the chip multiplies bf16 weights as they
 * are.
 */
public final class WidenHalfPass implements Pass {
  public static final String NAME = "widen-half";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String summary() {
    return "compute an f16 model in f32 (inputs, weights and outputs cast where they cross)";
  }

  @Override
  public boolean shouldApply(Module module) {
    return module.functions().stream().anyMatch(WidenHalfPass::computesHalf);
  }

  @Override
  public PassResult run(Module module) {
    PassResult.Counters c = new PassResult.Counters();
    for (int i = 0; i < module.functions().size(); i++) {
      Function f = module.functions().get(i);
      if (computesHalf(f)) {
        module.functions().set(i, widen(f, c));
      }
    }
    return c.result();
  }

  private static boolean computesHalf(Function f) {
    return f.arguments().stream().anyMatch(WidenHalfPass::half)
        || f.body().stream().anyMatch(n -> n.results().stream().anyMatch(WidenHalfPass::half));
  }

  private static boolean half(Value v) {
    return v.type().elementType() == ElementType.F16;
  }

  private static Function widen(Function f, PassResult.Counters c) {
    Function g = new Function(f.name(), f.arguments());
    FunctionBuilder b = new FunctionBuilder(g);
    Map<Value, Value> map = new IdentityHashMap<>();
    for (Value a : f.arguments()) {
      if (half(a)) {
        map.put(a, b.add(new ElementwiseOp.Cast(a, ElementType.F32), Location.UNKNOWN, a.name() + ".f32"));
        c.add("inputs widened");
      }
    }
    for (Node n : f.body()) {
      List<Value> operands = new ArrayList<>();
      for (Value v : n.op().operands()) {
        operands.add(map.getOrDefault(v, v));
      }
      Op op = switch (n.op()) {
        case SourceOp.Constant k when half(n.result()) -> new SourceOp.Constant(widened(k.value()));
        case SourceOp.Fill fill when fill.dtype() == ElementType.F16 ->
            new SourceOp.Fill(fill.shape(), fill.value(), ElementType.F32);
        case SourceOp.Range r when r.dtype() == ElementType.F16 ->
            new SourceOp.Range(r.start(), r.limit(), r.delta(), ElementType.F32);
        // a rounding to f16 the model asks for is kept, its result widened
        case ElementwiseOp.Cast cast when cast.to() == ElementType.F16 -> new ElementwiseOp.Cast(
            b.add(new ElementwiseOp.Cast(operands.get(0), ElementType.F16), n.location(),
                n.result().name() + ".rounded"), ElementType.F32);
        default -> operands.isEmpty() ? n.op() : n.op().withOperands(operands);
      };
      Node nn = b.addNode(op, n.location(), n.results().stream().map(Value::name).toList());
      for (int k = 0; k < n.results().size(); k++) {
        Value r = nn.results().get(k);
        // a weight stays as stored, cast where it is read (layout-weights stores it widened)
        map.put(n.results().get(k), op instanceof SourceOp.WeightRef && half(r)
            ? b.add(new ElementwiseOp.Cast(r, ElementType.F32), n.location(), r.name() + ".f32") : r);
      }
      if (!op.equals(n.op())) {
        c.add("ops widened");
      }
    }
    List<Function.Output> outs = new ArrayList<>();
    for (Function.Output o : f.outputs()) {
      Value v = map.getOrDefault(o.value(), o.value());
      if (half(o.value()) && !half(v)) {
        v = b.add(new ElementwiseOp.Cast(v, ElementType.F16), Location.UNKNOWN, o.name() + ".f16");
        c.add("outputs narrowed");
      }
      outs.add(new Function.Output(o.name(), v));
    }
    g.setOutputs(outs);
    return g;
  }

  private static Tensor widened(Tensor t) {
    Tensor w = Tensor.zeros(ElementType.F32, t.shape());
    for (int i = 0; i < t.size(); i++) {
      w.set(i, t.get(i));
    }
    return w;
  }
}
