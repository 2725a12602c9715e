package dev.sohuc.backend;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;

/**
 * Whether a rotate-half rope's cos or sin table has equal halves in every row ({@code t[c] ==
 * t[c + R/2]}, as every model builds them, from {@code cat(freqs, freqs)}): the chip's rope
 * instruction reads the first half only. Proven from the data of a constant or an inline weight
 * (a shape-only one holds no numbers),
 * a concat of one value with itself along the last axis, and what keeps rows whole from those
 * (elementwise ops, casts, and copies, slices, gathers or reshapes of rows); anything else is not
 * proven.
 */
final class RopeTables {
  /** How far back through the ops producing a table a proof looks; past it, not proven. */
  private static final int MAX_DEPTH = 32;

  private final Map<Value, Tensor> known;
  private final Map<String, Weight> weights;
  /** Each table proven or not, once: a graph of shared values would otherwise be walked again. */
  private final Map<Value, Boolean> proven = new java.util.IdentityHashMap<>();

  RopeTables(Map<Value, Tensor> known, Map<String, Weight> weights) {
    this.known = known;
    this.weights = weights;
  }

  boolean halvesEqual(Value table) {
    return halvesEqual(table, 0);
  }

  private boolean halvesEqual(Value table, int depth) {
    Boolean done = proven.get(table);
    if (done == null) {
      done = depth <= MAX_DEPTH && prove(table, depth + 1);
      proven.put(table, done);
    }
    return done;
  }

  private boolean prove(Value table, int depth) {
    Tensor t = known.get(table);
    if (t != null) {
      return halvesEqual(t);
    }
    Node p = table.producer();
    if (p == null) {
      return false;
    }
    return switch (p.op()) {
      // a shape-only weight has no numbers to be wrong about: a program compiled for timing
      // (the serving bench's stand-in for tables computed in the graph)
      case SourceOp.WeightRef w -> weights.get(w.name()) instanceof Weight wt
          && (wt.data() instanceof Weight.Data.ShapeOnly || halvesEqual(wt));
      case DataOp.Concat c -> Lowering.lastAxis(c.axis(), table.type()) && c.inputs().size() == 2
          && c.inputs().get(0) == c.inputs().get(1);
      case ElementwiseOp.Unary u -> halvesEqual(u.x(), depth);
      case ElementwiseOp.Cast c -> halvesEqual(c.x(), depth);
      case ElementwiseOp.Binary b -> rowsOrScalar(b.lhs(), depth) && rowsOrScalar(b.rhs(), depth);
      case DataOp.Slice s -> s.axes().stream().noneMatch(a -> Lowering.lastAxis(a, s.x().type()))
          && halvesEqual(s.x(), depth);
      case DataOp.Gather g -> !Lowering.lastAxis(g.axis(), g.data().type()) && halvesEqual(g.data(), depth);
      case TransformerOp.Embedding e -> halvesEqual(e.table(), depth);
      case DataOp.Reshape r -> sameLast(r.x().type(), table.type()) && halvesEqual(r.x(), depth);
      case DataOp.Expand e -> rowsOrScalar(e.x(), depth);
      case DataOp.Transpose tr -> tr.perm().get(tr.perm().size() - 1) == tr.perm().size() - 1
          && halvesEqual(tr.x(), depth);
      default -> false;
    };
  }

  /** An elementwise operand: a table with equal halves, or one that broadcasts a column over them. */
  private boolean rowsOrScalar(Value v, int depth) {
    List<Dim> d = v.type().dims();
    return d.isEmpty() || d.get(d.size() - 1).is(1) || halvesEqual(v, depth);
  }

  /** A weight's rows compared as bytes (an equal value of other bytes, -0.0 and 0.0, fails). */
  private static boolean halvesEqual(Weight w) {
    List<Dim> dims = w.type().dims();
    Dim width = dims.isEmpty() ? Dim.of(1) : dims.get(dims.size() - 1);
    if (!width.isStatic() || width.value() <= 0 || width.value() % 2 != 0) {
      return false;
    }
    ByteBuffer b = w.bytes();
    long rowBytes = width.value() * w.type().elementType().sizeBytes();
    if (rowBytes > b.limit()) {
      return false;
    }
    int half = (int) rowBytes / 2;
    for (int row = 0; row + 2 * half <= b.limit(); row += 2 * half) {
      if (!b.slice(row, half).equals(b.slice(row + half, half))) {
        return false;
      }
    }
    return true;
  }

  private static boolean halvesEqual(Tensor t) {
    long[] shape = t.shape();
    if (shape.length == 0 || shape[shape.length - 1] <= 0 || shape[shape.length - 1] % 2 != 0) {
      return false;
    }
    int width = (int) shape[shape.length - 1];
    int half = width / 2;
    for (int row = 0; row < t.size(); row += width) {
      for (int c = 0; c < half; c++) {
        if (Double.compare(t.get(row + c), t.get(row + c + half)) != 0) {
          return false;
        }
      }
    }
    return true;
  }

  private static boolean sameLast(TensorType a, TensorType b) {
    return a.rank() > 0 && b.rank() > 0 && a.dim(a.rank() - 1).equals(b.dim(b.rank() - 1));
  }
}
