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
 * Whether a rope's cos or sin table repeats each value the way the chip's rope instruction
 * reads it, which reads half of each row for both dims of a pair: a rotate-half table's equal
 * halves ({@code t[c] == t[c + R/2]}, as every model builds them, from {@code cat(freqs,
 * freqs)}), an interleaved table's equal pairs ({@code t[2c] == t[2c + 1]}, each value twice in
 * place). Proven from the data of a constant or an inline weight (a shape-only one holds no
 * numbers), the concat that builds the pattern (a value with itself along the last axis; for
 * pairs, a column with itself, its two last dims merged), and what keeps rows whole from those
 * (elementwise ops, casts, and copies, slices, gathers or reshapes of rows); anything else is not
 * proven.
 */
final class RopeTables {
  /** How far back through the ops producing a table a proof looks; past it, not proven. */
  private static final int MAX_DEPTH = 32;

  private final Map<Value, Tensor> known;
  private final Map<String, Weight> weights;
  /** Each table proven or not, once per pattern: a graph of shared values would otherwise be walked again. */
  private final Map<Value, Boolean> halves = new java.util.IdentityHashMap<>();
  private final Map<Value, Boolean> pairs = new java.util.IdentityHashMap<>();

  RopeTables(Map<Value, Tensor> known, Map<String, Weight> weights) {
    this.known = known;
    this.weights = weights;
  }

  boolean halvesEqual(Value table) {
    return repeats(table, false, 0);
  }

  boolean pairsEqual(Value table) {
    return repeats(table, true, 0);
  }

  private boolean repeats(Value table, boolean inPairs, int depth) {
    Map<Value, Boolean> proven = inPairs ? pairs : halves;
    Boolean done = proven.get(table);
    if (done == null) {
      done = depth <= MAX_DEPTH && prove(table, inPairs, depth + 1);
      proven.put(table, done);
    }
    return done;
  }

  private boolean prove(Value table, boolean inPairs, int depth) {
    Tensor t = known.get(table);
    if (t != null) {
      return repeats(t, inPairs);
    }
    Node p = table.producer();
    if (p == null) {
      return false;
    }
    return switch (p.op()) {
      // a shape-only weight has no numbers to be wrong about: a program compiled for timing
      // (the serving bench's stand-in for tables computed in the graph)
      case SourceOp.WeightRef w -> weights.get(w.name()) instanceof Weight wt
          && (wt.data() instanceof Weight.Data.ShapeOnly || repeats(wt, inPairs));
      case DataOp.Concat c -> !inPairs && Lowering.lastAxis(c.axis(), table.type()) && c.inputs().size() == 2
          && c.inputs().get(0) == c.inputs().get(1);
      case ElementwiseOp.Unary u -> repeats(u.x(), inPairs, depth);
      case ElementwiseOp.Cast c -> repeats(c.x(), inPairs, depth);
      case ElementwiseOp.Binary b -> rowsOrScalar(b.lhs(), inPairs, depth) && rowsOrScalar(b.rhs(), inPairs, depth);
      case DataOp.Slice s -> s.axes().stream().noneMatch(a -> Lowering.lastAxis(a, s.x().type()))
          && repeats(s.x(), inPairs, depth);
      case DataOp.Gather g -> !Lowering.lastAxis(g.axis(), g.data().type()) && repeats(g.data(), inPairs, depth);
      case TransformerOp.Embedding e -> repeats(e.table(), inPairs, depth);
      case DataOp.Reshape r -> sameLast(r.x().type(), table.type()) ? repeats(r.x(), inPairs, depth)
          : inPairs && pairedColumns(r, table.type());
      case DataOp.Expand e -> rowsOrScalar(e.x(), inPairs, depth);
      case DataOp.Transpose tr -> tr.perm().get(tr.perm().size() - 1) == tr.perm().size() - 1
          && repeats(tr.x(), inPairs, depth);
      default -> false;
    };
  }

  /**
   * {@code [.., R/2, 2] -> [.., R]} of a column concatenated with itself: each value twice in
   * place.
   */
  private static boolean pairedColumns(DataOp.Reshape r, TensorType out) {
    TensorType in = r.x().type();
    if (!(r.x().producer() != null && r.x().producer().op() instanceof DataOp.Concat c) || in.rank() < 2
        || out.rank() != in.rank() - 1 || !Lowering.lastAxis(c.axis(), in) || c.inputs().size() != 2
        || c.inputs().get(0) != c.inputs().get(1) || !c.inputs().get(0).type().dim(in.rank() - 1).is(1)) {
      return false;
    }
    List<Dim> lead = in.dims().subList(0, in.rank() - 1);
    return out.dims().subList(0, out.rank() - 1).equals(lead.subList(0, lead.size() - 1))
        && out.dim(out.rank() - 1).equals(lead.get(lead.size() - 1).times(Dim.of(2)));
  }

  /** An elementwise operand: a table of the pattern, or one that broadcasts a column over it. */
  private boolean rowsOrScalar(Value v, boolean inPairs, int depth) {
    List<Dim> d = v.type().dims();
    return d.isEmpty() || d.get(d.size() - 1).is(1) || repeats(v, inPairs, depth);
  }

  /** A weight's rows compared as bytes (an equal value of other bytes, -0.0 and 0.0, fails). */
  private static boolean repeats(Weight w, boolean inPairs) {
    List<Dim> dims = w.type().dims();
    Dim width = dims.isEmpty() ? Dim.of(1) : dims.get(dims.size() - 1);
    if (!width.isStatic() || width.value() <= 0 || width.value() % 2 != 0) {
      return false;
    }
    ByteBuffer b = w.bytes();
    int size = w.type().elementType().sizeBytes();
    long rowBytes = width.value() * size;
    if (rowBytes > b.limit()) {
      return false;
    }
    int half = (int) rowBytes / 2;
    for (int row = 0; row + 2 * half <= b.limit(); row += 2 * half) {
      if (inPairs) {
        for (int c = 0; c < half; c += size) {
          if (!b.slice(row + 2 * c, size).equals(b.slice(row + 2 * c + size, size))) {
            return false;
          }
        }
      } else if (!b.slice(row, half).equals(b.slice(row + half, half))) {
        return false;
      }
    }
    return true;
  }

  private static boolean repeats(Tensor t, boolean inPairs) {
    long[] shape = t.shape();
    if (shape.length == 0 || shape[shape.length - 1] <= 0 || shape[shape.length - 1] % 2 != 0) {
      return false;
    }
    int width = (int) shape[shape.length - 1];
    int half = width / 2;
    for (int row = 0; row < t.size(); row += width) {
      for (int c = 0; c < half; c++) {
        int a = inPairs ? row + 2 * c : row + c;
        int other = inPairs ? a + 1 : a + half;
        if (Double.compare(t.get(a), t.get(other)) != 0) {
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
