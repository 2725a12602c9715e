package dev.sohuc.passes;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import java.util.List;
import java.util.Map;

/**
 * {@code layout-weights}: stores weights the way the compiled code reads them, as a server lays
 * out its weights once at load time, so that no program transposes or widens a weight in HBM on
 * every call.
 *
 * <ul>
 *   <li>{@code embedding(cast(w), ids)} becomes {@code cast(embedding(w, ids))}: the gather reads
 *       the narrow table and only the gathered rows are widened;
 *   <li>a 2-D {@code transpose} of a weight (nn.Linear's [out, in] read as [in, out]) becomes a
 *       weight {@code <name>.T} stored transposed;
 *   <li>a float-to-float {@code cast} of a weight becomes a weight {@code <name>.<type>} stored in
 *       that type.
 * </ul>
 *
 * Weights with data get new inline bytes; shape-only weights just get the new type. It runs
 * last, before the backend: sharding and quantization read weights in their checkpoint layout.
 */
public final class LayoutWeightsPass implements Pass {
  public static final String NAME = "layout-weights";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String summary() {
    return "store transposed or widened weights in the layout the code reads (no per-call copies)";
  }

  @Override
  public PassResult run(Module module) {
    PassResult.Counters c = new PassResult.Counters();
    for (Function f : module.functions()) {
      // embeddings first, so that the cast they read is gone before casts become weights
      rewrite(f, n -> n.op() instanceof TransformerOp.Embedding e
          && weightCast(module, e.table()) != null ? narrowGather(f, n, e, c) : null);
      rewrite(f, n -> switch (n.op()) {
        case DataOp.Transpose t when t.perm().equals(List.of(1L, 0L))
            && t.x().type().elementType().isFloat() && weight(module, t.x()) != null ->
            replace(f, n, module, weight(module, t.x()), ".T", t.x().type().elementType(), true, c);
        case ElementwiseOp.Cast cast when weightCast(module, n.result()) != null ->
            replace(f, n, module, weight(module, cast.x()), "." + cast.to().text(), cast.to(), false, c);
        default -> null;
      });
    }
    module.removeUnreadWeights(List.copyOf(module.weights().keySet()));
    return c.result();
  }

  /** Replaces each node's result by what {@code rule} builds before it (null: left alone). */
  private static void rewrite(Function f, java.util.function.Function<Node, Value> rule) {
    for (Node n : List.copyOf(f.body())) {
      Value replacement = rule.apply(n);
      if (replacement != null) {
        f.replaceAllUses(n.result(), replacement);
        f.body().remove(n);
      }
    }
    DeadCodeEliminationPass.removeDead(f);
  }

  private static Value narrowGather(Function f, Node n, TransformerOp.Embedding e, PassResult.Counters c) {
    ElementwiseOp.Cast cast = (ElementwiseOp.Cast) e.table().producer().op();
    FunctionBuilder b = new FunctionBuilder(f);
    b.insertBefore(n);
    Value rows = b.add(new TransformerOp.Embedding(cast.x(), e.ids()), n.location(),
        n.result().name() + ".narrow");
    c.add("embeddings gathering narrow rows");
    Value wide = b.add(new ElementwiseOp.Cast(rows, cast.to()), n.location(), n.result().name());
    b.insertBefore(null);
    return wide;
  }

  /** The weight a value reads directly, or null. */
  private static Weight weight(Module m, Value v) {
    return v.producer() != null && v.producer().op() instanceof SourceOp.WeightRef r
        ? m.weights().get(r.name()) : null;
  }

  /** The float-to-float cast of a weight that produces {@code v}, or null. */
  private static ElementwiseOp.Cast weightCast(Module m, Value v) {
    return v.producer() != null && v.producer().op() instanceof ElementwiseOp.Cast c
        && c.to().isFloat() && c.x().type().elementType().isFloat() && weight(m, c.x()) != null
        ? c : null;
  }

  /** A reference to {@code w} stored as {@code n}'s result (transposed and/or retyped). */
  private static Value replace(Function f, Node n, Module m, Weight w, String suffix,
      ElementType to, boolean transpose, PassResult.Counters c) {
    String name = w.name() + suffix;
    TensorType type = n.result().type();
    if (!m.weights().containsKey(name)) {
      Weight.Data data = w.data() instanceof Weight.Data.ShapeOnly ? w.data()
          : new Weight.Data.Inline(laidOut(w, to, transpose).toBytes());
      m.addWeight(new Weight(name, type, data));
    }
    c.add(transpose ? "weights stored transposed" : "weights stored widened");
    FunctionBuilder b = new FunctionBuilder(f);
    b.insertBefore(n);
    Value ref = b.add(new SourceOp.WeightRef(name, type), n.location(), name);
    b.insertBefore(null);
    return ref;
  }

  private static Tensor laidOut(Weight w, ElementType to, boolean transpose) {
    Tensor t = Tensor.fromBytes(w.type().elementType(), w.type().evaluateShape(Map.of()), w.bytes());
    return transpose ? t.transposed() : Tensor.ofFloats(to, t.shape(), t.floats());
  }

  @Override
  public boolean shouldApply(Module module) {
    for (Function f : module.functions()) {
      for (Node n : f.body()) {
        Op op = n.op();
        if (op instanceof DataOp.Transpose || op instanceof ElementwiseOp.Cast
            || op instanceof TransformerOp.Embedding) {
          return true;
        }
      }
    }
    return false;
  }
}
