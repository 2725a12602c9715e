package dev.sohuc.backend;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Sequence parallelism's collectives in SRAM instead of HBM.
 *
 * <p>All_gathers: a gather of a norm's bf16 rows that only qmatmuls read (q, k and v; gate and
 * up) goes from the norm's tiles straight to a region at the top of SRAM, where the qmatmuls
 * find x resident: no store of the norm's rows, no HBM traffic on the link, and no load of x by
 * the qmatmuls (16.8 MB, 2.3 us, in each of a 70B layer's four gathers). At fp8 the norm also
 * does the per-row dynamic_quantize after it, into two regions (the rows, their scales) that
 * two gathers fill. A region is planned only for a norm whose residual add is fused into it
 * (the stream then stores the sum alone and writes the normalized rows into the region), laid
 * out at the rows' bound.
 *
 * <p>Reduce_scatters ({@link #planScatter}): the o and down projections' bf16 partial sums go
 * to a region instead of HBM (a 70B step's 18.9 MB, 2.3 us of DMA, four times a layer), the
 * link scatters them within SRAM, and the norm after them loads its block from there.
 *
 * <p>Every op from the first user of a region to its last lowers below it ({@link #limit});
 * the collectives run on the link while they do. The gathers' regions are planned first, within
 * a quarter of the SRAM; the scatters' in what they leave, within half of it for all regions
 * live at once.
 */
final class SramCollectives {
  /** The gathers' regions live at once stay within this fraction of the SRAM. */
  private static final int GATHER_SHARE = 4;
  /** All regions live at once, the scatters' too, stay within this fraction of the SRAM. */
  private static final int SHARE = 2;

  /** The gathered value to its region's address in SRAM. */
  private final Map<Value, Long> regions = new IdentityHashMap<>();
  /**
   * A reduce-scattered qmatmul's bf16 partial sums and the scatter's result (this chip's block
   * of their sums) to their regions' addresses.
   */
  private final Map<Value, Long> scattered = new IdentityHashMap<>();
  /** Such a qmatmul to its partial sums (the cast's result). */
  private final Map<Node, Value> partials = new IdentityHashMap<>();
  /** The norm to its gather's region, where it writes this chip's block. */
  private final Map<Node, Block> normBlocks = new IdentityHashMap<>();
  /** The gather to its region's address. */
  private final Map<Node, Long> gathers = new IdentityHashMap<>();
  /** The dynamic_quantize ops that the norm before them does (their rows go to SRAM). */
  private final Set<Node> quantizedInNorms = Collections.newSetFromMap(new IdentityHashMap<>());
  /** The ops that lower below a region, to the lowest region's address while they run. */
  private final Map<Node, Long> limits = new IdentityHashMap<>();

  private SramCollectives() {}

  /**
   * Where a norm writes its rows: block {@code rank} of the region at {@code region}, its rows'
   * count times their bytes from it (the count may be known only at run time); with a per-row
   * {@code quantize} (a dynamic_quantize it does in its own stream), its rows' scales likewise
   * into the region at {@code scales}.
   */
  record Block(long region, long scales, long rank, Node quantize) {}

  /** None: every gather and scatter goes through HBM. */
  static SramCollectives none() {
    return new SramCollectives();
  }

  /**
   * Plans the regions of the gathers, then of the scatters, among {@code body}'s ops (one
   * control stream's, in order) in the SRAM from {@code base} on, {@code sramBytes} long; a
   * region's every user must be among them.
   *
   * @param narrowedNorms the norms that write their bf16 cast themselves, to that cast
   * @param fused ops lowered inside their reader, to that reader (a norm's residual add)
   * @param sizeAtBound each value's bytes at the symbols' bounds
   */
  static SramCollectives plan(Function fn, List<Node> body, Map<Node, Node> narrowedNorms,
      Map<Node, Node> fused, Map<Value, Tensor> known, Map<Value, Long> sizeAtBound,
      long sramBytes, long base) {
    SramCollectives s = new SramCollectives();
    Map<Node, Node> normOfCast = new IdentityHashMap<>();
    narrowedNorms.forEach((norm, cast) -> normOfCast.put(cast, norm));
    Map<Value, List<Node>> users = fn.users();
    Set<Value> outputs = fn.outputValues();
    Map<Node, Integer> index = new IdentityHashMap<>();
    for (int i = 0; i < body.size(); i++) {
      index.put(body.get(i), i);
    }
    // the regions placed: address, and the indices of the first and the last op that use them
    List<long[]> placed = new ArrayList<>();
    for (Node g : body) {
      if (!(g.op() instanceof TransformerOp.AllGather a)) {
        continue;
      }
      Value x = a.x();
      Node p = x.producer();
      List<Node> readers = users.getOrDefault(g.result(), List.of());
      if (p == null || readers.isEmpty() || users.get(x).size() != 1
          || !readers.stream().allMatch(index::containsKey)
          || outputs.contains(g.result()) || !x.type().dim(x.type().rank() - 1).isStatic()) {
        continue;
      }
      // bf16 rows the norm casts itself, or the rows and scales of its per-row quantization
      Node norm = x.type().elementType() == ElementType.BF16 ? normOfCast.get(p) : null;
      Node scaleGather = norm == null ? scaleGather(p, x, g, users, outputs) : null;
      if (scaleGather != null) {
        norm = ((QuantOp.DynamicQuantize) p.op()).x().producer();
      }
      Value scales = scaleGather == null ? null : scaleGather.result();
      if (norm == null || !index.containsKey(norm) || !(norm.op() instanceof TransformerOp.RmsNorm)
          || !fusedAdd(norm, fused)
          || !readers.stream().allMatch(r -> takesResidentX(r, g.result(), scales, known))
          || scales != null && !users.get(scales).stream().allMatch(readers::contains)) {
        continue;
      }
      int first = index.get(norm);
      int last = readers.stream().mapToInt(index::get).max().orElseThrow();
      // whole 128-row tiles: an mma reads a last partial tile's rows past x's end
      TensorType t = g.result().type();
      long rowBytes = t.dim(t.rank() - 1).value() * t.elementType().sizeBytes();
      long rows = (sizeAtBound.get(g.result()) / rowBytes + MatmulLowering.TILE - 1)
          / MatmulLowering.TILE * MatmulLowering.TILE;
      long valueBytes = Lowering.align(rows * rowBytes);
      long bytes = valueBytes + (scales == null ? 0 : Lowering.align(rows * 4));
      long address = s.place(body, first, last, bytes, sramBytes / GATHER_SHARE, sramBytes,
          placed);
      if (address < 0) {
        continue;
      }
      address += base;
      s.regions.put(g.result(), address);
      s.gathers.put(g, address);
      if (scales != null) {
        s.regions.put(scales, address + valueBytes);
        s.gathers.put(scaleGather, address + valueBytes);
        s.quantizedInNorms.add(p);
      }
      s.normBlocks.put(norm, new Block(address, scales == null ? 0 : address + valueBytes,
          a.rank(), scales == null ? null : p));
    }
    // the scatters in what the gathers leave: a gather's region saves more (the qmatmuls' x
    // loads and the link's HBM traffic) than a scatter's (the partial sums' stores)
    for (Node r : body) {
      if (r.op() instanceof TransformerOp.ReduceScatter) {
        s.planScatter(r, body, index, users, outputs, fused, sizeAtBound, sramBytes, base,
            placed);
      }
    }
    return s;
  }

  /**
   * A region of {@code bytes} for ops {@code first} to {@code last} of the body: below the
   * SRAM's end and every region placed for ops that overlap these, aligned down, within
   * {@code share} bytes of the SRAM's end; every op of the interval then lowers below it.
   * Returns its address, or -1 when it does not fit.
   */
  private long place(List<Node> body, int first, int last, long bytes, long share,
      long sramBytes, List<long[]> placed) {
    long below = placed.stream().filter(r -> r[1] <= last && r[2] >= first)
        .mapToLong(r -> r[0]).min().orElse(sramBytes);
    long address = (below - bytes) / Lowering.SRAM_ALIGN * Lowering.SRAM_ALIGN;
    if (address < sramBytes - share) {
      return -1;
    }
    placed.add(new long[] {address, first, last});
    for (int j = first; j <= last; j++) {
      limits.merge(body.get(j), address, Math::min);
    }
    return address;
  }

  /**
   * A reduce_scatter done panel by panel inside its qmatmul (CollectiveLowering#scattersPanels)
   * from SRAM: the qmatmul stores its bf16 partial sums (the cast after it, its epilogue) into
   * one region instead of HBM, the link scatters them from there into a second region (this
   * chip's block), and the norm whose residual add reads the block (through the widening cast
   * fused into it) loads its tiles from there. Planned when the qmatmul's result, the cast's and
   * the scatter's each have that one reader; the regions live from the qmatmul to the norm.
   */
  private void planScatter(Node scatter, List<Node> body, Map<Node, Integer> index,
      Map<Value, List<Node>> users, Set<Value> outputs, Map<Node, Node> fused,
      Map<Value, Long> sizeAtBound, long sramBytes, long base, List<long[]> placed) {
    Value partial = scatter.op().operands().get(0);
    Node cast = partial.producer();
    if (!CollectiveLowering.scattersPanels(scatter) || cast == null
        || !(cast.op() instanceof dev.sohuc.ir.op.ElementwiseOp.Cast)
        || partial.type().elementType() != ElementType.BF16
        || !(cast.op().operands().get(0).producer() instanceof Node q)
        || !(q.op() instanceof QuantOp.QMatMul)
        || !onlyReader(q.result(), cast, users, outputs)
        || !onlyReader(partial, scatter, users, outputs)) {
      return;
    }
    List<Node> readers = users.getOrDefault(scatter.result(), List.of());
    if (readers.size() != 1 || outputs.contains(scatter.result())) {
      return;
    }
    // the reader is lowered inside a norm's residual add (through a widening cast), or is it
    Node norm = readers.get(0);
    while (fused.get(norm) != null) {
      norm = fused.get(norm);
    }
    if (!(norm.op() instanceof TransformerOp.RmsNorm) || !fusedAdd(norm, fused)
        || !index.containsKey(q) || !index.containsKey(norm)) {
      return;
    }
    Long partialSize = sizeAtBound.get(partial);
    Long blockSize = sizeAtBound.get(scatter.result());
    if (partialSize == null || blockSize == null) {
      return;
    }
    long partialBytes = Lowering.align(partialSize);
    long blockBytes = Lowering.align(blockSize);
    long address = place(body, index.get(q), index.get(norm), partialBytes + blockBytes,
        sramBytes / SHARE, sramBytes, placed);
    if (address >= 0) {
      scattered.put(partial, base + address);
      scattered.put(scatter.result(), base + address + partialBytes);
      partials.put(q, partial);
    }
  }

  /** Whether {@code reader} alone reads {@code v}, which is no output. */
  private static boolean onlyReader(Value v, Node reader, Map<Value, List<Node>> users,
      Set<Value> outputs) {
    List<Node> r = users.getOrDefault(v, List.of());
    return r.size() == 1 && r.get(0) == reader && !outputs.contains(v);
  }

  /**
   * The all_gather of the scales beside {@code x}, the rows of {@code q}, a per-row dynamic
   * quantization of an rms_norm's result that nothing else reads, when that gather alone reads
   * the scales and moves them as {@code rows} moves x; else null.
   */
  private static Node scaleGather(Node q, Value x, Node rows, Map<Value, List<Node>> users,
      Set<Value> outputs) {
    if (!(q.op() instanceof QuantOp.DynamicQuantize d) || !d.granularity().equals("row")
        || q.results().get(0) != x || d.x().producer() == null
        || users.get(d.x()).size() != 1 || outputs.contains(d.x())) {
      return null;
    }
    Value scales = q.results().get(1);
    List<Node> readers = users.getOrDefault(scales, List.of());
    TransformerOp.AllGather r = (TransformerOp.AllGather) rows.op();
    return readers.size() == 1 && !outputs.contains(scales)
        && readers.get(0).op() instanceof TransformerOp.AllGather a && a.chips() == r.chips()
        && a.rank() == r.rank() && a.axis() == r.axis()
        && !outputs.contains(readers.get(0).result()) ? readers.get(0) : null;
  }

  /** Whether the norm's residual add is lowered inside it. */
  private static boolean fusedAdd(Node norm, Map<Node, Node> fused) {
    Node add = ((TransformerOp.RmsNorm) norm.op()).x().producer();
    return add != null && fused.get(add) == norm;
  }

  /**
   * A qmatmul whose x is {@code x}: with one scale for all of x, or ({@code scales} not null)
   * with those per-row scales.
   */
  private static boolean takesResidentX(Node n, Value x, Value scales, Map<Value, Tensor> known) {
    if (!(n.op() instanceof QuantOp.QMatMul q) || q.x() != x || q.w() == x || q.w() == scales) {
      return false;
    }
    if (scales != null) {
      return q.xScale() == scales;
    }
    Tensor scale = known.get(q.xScale());
    return scale != null && scale.size() == 1;
  }

  /** The SRAM address of the region {@code v} was gathered into, or null (it is in HBM). */
  Long gatheredInSram(Value v) {
    return regions.get(v);
  }

  /**
   * The SRAM address of {@code v}'s region when it is a reduce-scattered qmatmul's partial sums
   * or the scatter's result ({@link #planScatter}), or null (it is in HBM).
   */
  Long scatteredInSram(Value v) {
    return scattered.get(v);
  }

  /** The partial sums the qmatmul {@code n} stores in SRAM for its scatter, or null. */
  Value partialSums(Node n) {
    return partials.get(n);
  }

  /** The SRAM address the gather {@code n} gathers into, or null (HBM). */
  Long gatherRegion(Node n) {
    return gathers.get(n);
  }

  /** Where the norm {@code n} writes its bf16 rows in SRAM (its block of a region), or null. */
  Block normBlock(Node n) {
    return normBlocks.get(n);
  }

  /**
   * The SRAM that {@code n} may use, from its stream's SRAM's start: below every region live
   * while it runs.
   */
  long limit(Node n, long sramBytes) {
    return limits.getOrDefault(n, sramBytes);
  }

  /** Whether {@code n} is a dynamic_quantize that the norm before it does. */
  boolean quantizedInNorm(Node n) {
    return quantizedInNorms.contains(n);
  }
}
