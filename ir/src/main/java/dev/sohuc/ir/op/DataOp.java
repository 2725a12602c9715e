package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.List;

/** Ops that move, select or reshape data without arithmetic on it. */
public sealed interface DataOp extends Op {

  /** Slice bounds at or beyond this mean "to the end", as ONNX exports write INT64_MAX. */
  long TO_END = Integer.MAX_VALUE;

  /**
   * {@code %r = reshape %x {shape = [?b, ?s, 12, 32]}}: same elements, new shape; one dim may
   * be -1 and is then inferred.
   */
  record Reshape(Value x, List<Dim> shape) implements DataOp {
    public Reshape {
      shape = List.copyOf(shape);
    }

    @Override
    public String mnemonic() {
      return "reshape";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.dims("shape", shape));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Dim total = product(x.type().dims());
      Dim known = Dim.of(1);
      int inferred = -1;
      for (int i = 0; i < shape.size(); i++) {
        Dim d = shape.get(i);
        if (d.is(-1)) {
          if (inferred >= 0) {
            throw new OpException("shape " + Shapes.dimsText(shape) + " has more than one -1");
          }
          inferred = i;
        } else if (d.isStatic() && d.value() < 0) {
          throw new OpException("shape " + Shapes.dimsText(shape) + " has a negative dim");
        } else {
          known = known.times(d);
        }
      }
      List<Dim> out = new ArrayList<>(shape);
      if (inferred >= 0) {
        final Dim k = known;
        Dim rest = total.dividedBy(known).orElseThrow(() -> new OpException("cannot infer the -1 in "
            + Shapes.dimsText(shape) + ": " + total + " elements are not a multiple of " + k));
        out.set(inferred, rest);
      } else if (!known.equals(total)) {
        throw new OpException("cannot reshape " + Shapes.dimsText(x.type().dims()) + " (" + total
            + " elements) to " + Shapes.dimsText(shape) + " (" + known + " elements)");
      }
      return List.of(x.type().withDims(out));
    }
  }

  static Dim product(List<Dim> dims) {
    Dim p = Dim.of(1);
    for (Dim d : dims) {
      p = p.times(d);
    }
    return p;
  }

  /** {@code %r = transpose %x {perm = [0, 2, 1, 3]}}: result dim i is input dim perm[i]. */
  record Transpose(Value x, List<Long> perm) implements DataOp {
    public Transpose {
      perm = List.copyOf(perm);
    }

    @Override
    public String mnemonic() {
      return "transpose";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.ints("perm", perm));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      int rank = x.type().rank();
      if (perm.size() != rank) {
        throw new OpException("perm " + perm + " has " + perm.size() + " entries for rank " + rank);
      }
      boolean[] seen = new boolean[rank];
      List<Dim> out = new ArrayList<>();
      for (long p : perm) {
        if (p < 0 || p >= rank || seen[(int) p]) {
          throw new OpException("perm " + perm + " is not a permutation of 0.." + (rank - 1));
        }
        seen[(int) p] = true;
        out.add(x.type().dim((int) p));
      }
      return List.of(x.type().withDims(out));
    }
  }

  /**
   * {@code %r = slice %x {starts = [0], ends = [?seq], axes = [1], steps = [1]}}: ONNX Slice;
   * negative bounds count from the end, bounds clamp, {@value #TO_END} or more means the end.
   */
  record Slice(Value x, List<Dim> starts, List<Dim> ends, List<Long> axes, List<Long> steps)
      implements DataOp {
    public Slice {
      starts = List.copyOf(starts);
      ends = List.copyOf(ends);
      axes = List.copyOf(axes);
      steps = List.copyOf(steps);
    }

    @Override
    public String mnemonic() {
      return "slice";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.dims("starts", starts), Attr.Named.dims("ends", ends),
          Attr.Named.ints("axes", axes), Attr.Named.ints("steps", steps));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      int n = axes.size();
      if (starts.size() != n || ends.size() != n || steps.size() != n) {
        throw new OpException("starts, ends, axes and steps must have the same length");
      }
      Shapes.axes(axes, x.type().rank(), "axis"); // rejects repeated axes
      List<Dim> out = new ArrayList<>(x.type().dims());
      for (int i = 0; i < n; i++) {
        int axis = Shapes.axis(axes.get(i), x.type().rank(), "axis");
        out.set(axis, sliceLength(x.type().dim(axis), starts.get(i), ends.get(i), steps.get(i)));
      }
      return List.of(x.type().withDims(out));
    }
  }

  /** Length of {@code x[start:end:step]} along a dim of size {@code dim}, symbolically where possible. */
  static Dim sliceLength(Dim dim, Dim start, Dim end, long step) {
    if (step == 0) {
      throw new OpException("slice step must not be 0");
    }
    if (dim.isStatic() && start.isStatic() && end.isStatic()) {
      long d = dim.value();
      if (d == 0) {
        return Dim.of(0);
      }
      // ONNX clamps a start into [0, d-1] for negative steps (an end into [-1, d-1]).
      long s = step > 0 ? clampIndex(start.value(), d, true) : Math.max(0, clampIndex(start.value(), d, false));
      long e = clampIndex(end.value(), d, step > 0);
      long len = step > 0 ? Math.max(0, (e - s + step - 1) / step) : Math.max(0, (s - e - step - 1) / -step);
      return Dim.of(len);
    }
    if (step != 1) {
      throw new OpException("a slice with step " + step + " needs static bounds, got " + start + ":" + end
          + " of " + dim);
    }
    Dim s = boundOf(start, dim);
    Dim e = boundOf(end, dim);
    return e.minus(s);
  }

  private static long clampIndex(long i, long dim, boolean forward) {
    long v = i < 0 ? i + dim : i;
    return forward ? Math.max(0, Math.min(v, dim)) : Math.max(-1, Math.min(v, dim - 1));
  }

  /** A bound with symbols: negative constants count from the end, huge ones mean the end. */
  private static Dim boundOf(Dim bound, Dim dim) {
    if (bound.isStatic()) {
      long v = bound.value();
      if (v >= TO_END) {
        return dim;
      }
      return v < 0 ? dim.plus(Dim.of(v)) : bound;
    }
    return bound;
  }

  /**
   * {@code %r = gather %data, %indices {axis = 0}}: picks slices of {@code data} along
   * {@code axis}; negative indices count from the end.
   */
  record Gather(Value data, Value indices, long axis) implements DataOp {
    @Override
    public String mnemonic() {
      return "gather";
    }

    @Override
    public List<Value> operands() {
      return List.of(data, indices);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("axis", axis));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireType(indices, "indices", ElementType.I64, ElementType.I32);
      int ax = Shapes.axis(axis, data.type().rank(), "axis");
      List<Dim> d = data.type().dims();
      List<Dim> out = new ArrayList<>(d.subList(0, ax));
      out.addAll(indices.type().dims());
      out.addAll(d.subList(ax + 1, d.size()));
      return List.of(data.type().withDims(out));
    }
  }

  /** {@code %r = gather_elements %data, %indices {axis = 1}}: result has the indices' shape. */
  record GatherElements(Value data, Value indices, long axis) implements DataOp {
    @Override
    public String mnemonic() {
      return "gather_elements";
    }

    @Override
    public List<Value> operands() {
      return List.of(data, indices);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("axis", axis));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireType(indices, "indices", ElementType.I64, ElementType.I32);
      if (indices.type().rank() != data.type().rank()) {
        throw new OpException("indices must have the rank of data (" + data.type().rank() + ")");
      }
      Shapes.axis(axis, data.type().rank(), "axis");
      return List.of(data.type().withDims(indices.type().dims()));
    }
  }

  /** {@code %r = concat %a, %b {axis = 2}}: joins along {@code axis}; other dims must agree. */
  record Concat(List<Value> inputs, long axis) implements DataOp {
    public Concat {
      inputs = List.copyOf(inputs);
    }

    @Override
    public String mnemonic() {
      return "concat";
    }

    @Override
    public List<Value> operands() {
      return inputs;
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("axis", axis));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      ElementType t = Shapes.sameElementType(inputs, "inputs");
      TensorType first = inputs.get(0).type();
      int ax = Shapes.axis(axis, first.rank(), "axis");
      Dim sum = Dim.of(0);
      for (Value v : inputs) {
        if (v.type().rank() != first.rank()) {
          throw new OpException("inputs must have one rank, got " + first + " and " + v.type());
        }
        for (int i = 0; i < first.rank(); i++) {
          if (i != ax) {
            Shapes.requireSameDim(first.dim(i), v.type().dim(i), "dims " + i + " of the inputs");
          }
        }
        sum = sum.plus(v.type().dim(ax));
      }
      List<Dim> out = new ArrayList<>(first.dims());
      out.set(ax, sum);
      return List.of(new TensorType(out, t));
    }
  }

  /** {@code %a, %b = split %x {axis = 1, sizes = [384, 384]}}: cuts along {@code axis}. */
  record Split(Value x, long axis, List<Dim> sizes) implements DataOp {
    public Split {
      sizes = List.copyOf(sizes);
    }

    @Override
    public String mnemonic() {
      return "split";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("axis", axis), Attr.Named.dims("sizes", sizes));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      int ax = Shapes.axis(axis, x.type().rank(), "axis");
      if (sizes.isEmpty()) {
        throw new OpException("sizes must not be empty");
      }
      Dim sum = Dim.of(0);
      List<TensorType> out = new ArrayList<>();
      for (Dim s : sizes) {
        if (s.isStatic() && s.value() < 0) {
          throw new OpException("sizes " + Shapes.dimsText(sizes) + " has a negative size");
        }
        sum = sum.plus(s);
        List<Dim> d = new ArrayList<>(x.type().dims());
        d.set(ax, s);
        out.add(x.type().withDims(d));
      }
      Shapes.requireSameDim(sum, x.type().dim(ax), "the sum of sizes and the split dim");
      return out;
    }
  }

  /** {@code %r = expand %x {shape = [?b, 12, ?s, 64]}}: broadcasts to a shape (both ways, as ONNX). */
  record Expand(Value x, List<Dim> shape) implements DataOp {
    public Expand {
      shape = List.copyOf(shape);
    }

    @Override
    public String mnemonic() {
      return "expand";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.dims("shape", shape));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      return List.of(x.type().withDims(Shapes.broadcast(x.type().dims(), shape)));
    }
  }

  /** {@code %r = tile %x {repeats = [1, 2]}}: repeats the tensor along each axis. */
  record Tile(Value x, List<Long> repeats) implements DataOp {
    public Tile {
      repeats = List.copyOf(repeats);
    }

    @Override
    public String mnemonic() {
      return "tile";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.ints("repeats", repeats));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      if (repeats.size() != x.type().rank()) {
        throw new OpException("repeats has " + repeats.size() + " entries for rank " + x.type().rank());
      }
      List<Dim> out = new ArrayList<>();
      for (int i = 0; i < repeats.size(); i++) {
        if (repeats.get(i) < 0) {
          throw new OpException("repeats " + repeats + " has a negative entry");
        }
        out.add(x.type().dim(i).times(Dim.of(repeats.get(i))));
      }
      return List.of(x.type().withDims(out));
    }
  }

  /** Pad modes, as ONNX names them. */
  enum PadMode { CONSTANT, REFLECT, EDGE }

  /**
   * {@code %r = pad %x {pads = [0, 1, 0, 1], mode = "constant", value = 0.0}}: pads holds
   * all begins then all ends, as ONNX; negative pads crop.
   */
  record Pad(Value x, List<Long> pads, PadMode mode, double value) implements DataOp {
    public Pad {
      pads = List.copyOf(pads);
    }

    @Override
    public String mnemonic() {
      return "pad";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.ints("pads", pads), Attr.Named.of("mode", mode.name().toLowerCase()),
          Attr.Named.of("value", value));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      int rank = x.type().rank();
      if (pads.size() != 2 * rank) {
        throw new OpException("pads has " + pads.size() + " entries, rank " + rank + " needs " + 2 * rank);
      }
      List<Dim> out = new ArrayList<>();
      for (int i = 0; i < rank; i++) {
        Dim d = x.type().dim(i).plus(Dim.of(pads.get(i) + pads.get(i + rank)));
        if (d.isStatic() && d.value() < 0) {
          throw new OpException("pads " + pads + " crop axis " + i + " below zero");
        }
        // reflect mirrors about the edge value, once: a border as wide as the (cropped) axis has
        // no values to mirror (ONNX Runtime then writes what its buffer held)
        Dim kept = x.type().dim(i).plus(Dim.of(Math.min(0, pads.get(i)) + Math.min(0, pads.get(i + rank))));
        long border = Math.max(pads.get(i), pads.get(i + rank));
        if (border > 0 && kept.isStatic() && (mode == PadMode.REFLECT ? border >= kept.value()
            : mode == PadMode.EDGE && kept.value() == 0)) {
          throw new OpException(mode.name().toLowerCase() + " pad of " + border + " on axis " + i + " of "
              + kept.value() + (mode == PadMode.REFLECT ? " (reflect needs pads below the axis size)"
              : " (edge needs a value to repeat)"));
        }
        out.add(d);
      }
      return List.of(x.type().withDims(out));
    }
  }

  /** ScatterND reductions. */
  enum ScatterReduction { NONE, ADD, MUL, MAX, MIN }

  /**
   * {@code %r = scatter_nd %data, %indices, %updates {reduction = "none"}}: a copy of data with
   * the slices addressed by the last axis of indices replaced (or combined) by updates.
   */
  record ScatterNd(Value data, Value indices, Value updates, ScatterReduction reduction) implements DataOp {
    @Override
    public String mnemonic() {
      return "scatter_nd";
    }

    @Override
    public List<Value> operands() {
      return List.of(data, indices, updates);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("reduction", reduction.name().toLowerCase()));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireType(indices, "indices", ElementType.I64);
      Shapes.requireMinRank(indices, "indices", 1);
      Shapes.sameElementType(List.of(data, updates), "data and updates");
      List<Dim> id = indices.type().dims();
      Dim k = id.get(id.size() - 1);
      if (!k.isStatic() || k.value() > data.type().rank() || k.value() < 1) {
        throw new OpException("the last dim of indices (" + k + ") must be static and in 1.."
            + data.type().rank());
      }
      List<Dim> expected = new ArrayList<>(id.subList(0, id.size() - 1));
      expected.addAll(data.type().dims().subList((int) k.value(), data.type().rank()));
      if (!expected.equals(updates.type().dims())) {
        throw new OpException("updates must have shape " + Shapes.dimsText(expected) + ", got "
            + Shapes.dimsText(updates.type().dims()));
      }
      return List.of(data.type());
    }
  }

  /**
   * {@code %r = trilu %x {upper = true, k = 1}}: keeps the upper (or lower) triangle of the last
   * two dims from diagonal {@code k}, zeroing the rest.
   */
  record Trilu(Value x, boolean upper, long k) implements DataOp {
    @Override
    public String mnemonic() {
      return "trilu";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("upper", upper), Attr.Named.of("k", k));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireMinRank(x, "operand", 2);
      return List.of(x.type());
    }
  }

  /** {@code %r = shape %x {start = 0, end = 2}}: the dims {@code [start, end)} as i64. */
  record Shape(Value x, long start, long end) implements DataOp {
    @Override
    public String mnemonic() {
      return "shape";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("start", start), Attr.Named.of("end", end));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      int rank = x.type().rank();
      long s = Math.max(0, Math.min(start < 0 ? start + rank : start, rank));
      long e = Math.max(0, Math.min(end < 0 ? end + rank : end, rank));
      return List.of(TensorType.of(ElementType.I64, Math.max(0, e - s)));
    }
  }

  /** {@code %n = size %x}: the element count as an i64 scalar. */
  record Size(Value x) implements DataOp {
    @Override
    public String mnemonic() {
      return "size";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      return List.of(TensorType.scalar(ElementType.I64));
    }
  }

  static <E extends Enum<E>> E enumAttr(Attributes a, String name, Class<E> type, E fallback) {
    String v = a.getString(name, fallback.name().toLowerCase());
    for (E e : type.getEnumConstants()) {
      if (e.name().equalsIgnoreCase(v)) {
        return e;
      }
    }
    throw new OpException("attribute '" + name + "' must be one of "
        + java.util.Arrays.stream(type.getEnumConstants()).map(e -> e.name().toLowerCase()).toList()
        + ", got \"" + v + "\"");
  }

  static void register(OpRegistry.Registrar r) {
    r.op("reshape", 1, "same elements, new shape", (o, a) -> new Reshape(o.get(0), a.getDims("shape")));
    r.op("transpose", 1, "permute dims", (o, a) -> new Transpose(o.get(0), a.getInts("perm")));
    r.op("slice", 1, "strided slice along some axes (ONNX Slice)", (o, a) -> new Slice(o.get(0),
        a.getDims("starts"), a.getDims("ends"), a.getInts("axes"), a.getInts("steps")));
    r.op("gather", 2, "pick slices by index along an axis",
        (o, a) -> new Gather(o.get(0), o.get(1), a.getInt("axis", 0)));
    r.op("gather_elements", 2, "pick elements by index along an axis",
        (o, a) -> new GatherElements(o.get(0), o.get(1), a.getInt("axis", 0)));
    r.op("concat", 1, Integer.MAX_VALUE, "join along an axis", (o, a) -> new Concat(o, a.getInt("axis")));
    r.op("split", 1, "cut along an axis", (o, a) -> new Split(o.get(0), a.getInt("axis", 0), a.getDims("sizes")));
    r.op("expand", 1, "broadcast to a shape", (o, a) -> new Expand(o.get(0), a.getDims("shape")));
    r.op("tile", 1, "repeat along each axis", (o, a) -> new Tile(o.get(0), a.getInts("repeats")));
    r.op("pad", 1, "pad (or crop) each axis", (o, a) -> new Pad(o.get(0), a.getInts("pads"),
        enumAttr(a, "mode", PadMode.class, PadMode.CONSTANT), a.getFloat("value", 0.0)));
    r.op("scatter_nd", 3, "write slices at n-d indices (ONNX ScatterND)", (o, a) -> new ScatterNd(
        o.get(0), o.get(1), o.get(2), enumAttr(a, "reduction", ScatterReduction.class, ScatterReduction.NONE)));
    r.op("trilu", 1, "keep the upper or lower triangle", (o, a) -> new Trilu(o.get(0),
        a.getBool("upper", true), a.getInt("k", 0)));
    r.op("shape", 1, "the dims of a tensor as i64", (o, a) -> new Shape(o.get(0),
        a.getInt("start", 0), a.getInt("end", Long.MAX_VALUE)));
    r.op("size", 1, "the element count as i64", (o, a) -> new Size(o.get(0)));
  }
}
