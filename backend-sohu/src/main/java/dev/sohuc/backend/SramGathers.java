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
 * All_gathers that land in SRAM. A sequence-parallel gather of a norm's bf16 rows that only
 * qmatmuls read (q, k and v; gate and up) goes from the norm's tiles straight to a region at the
 * top of SRAM, where the qmatmuls find x resident, instead of through HBM: no store of the
 * norm's rows, no HBM traffic on the link, and no load of x by the qmatmuls (16.8 MB, 2.3 us, in
 * each of a 70B layer's four gathers). At fp8 the norm also does the per-row dynamic_quantize
 * after it, into two regions (the rows, their scales) that two gathers fill. Every op from the
 * norm to the last of those qmatmuls lowers below the regions ({@link #limit}); the gathers run
 * on the link while they do.
 *
 * <p>A region is planned only for a norm whose residual add is fused into it (the stream then
 * stores the sum alone, and writes the normalized rows straight into the region), laid out at
 * the rows' bound, and within a quarter of the SRAM for all regions live at once.
 */
final class SramGathers {
  /** The SRAM of every live region together stays within this fraction of the SRAM. */
  private static final int SHARE = 4;

  /** The gathered value to its region's address in SRAM. */
  private final Map<Value, Long> regions = new IdentityHashMap<>();
  /** The norm to its gather's region, where it writes this chip's block. */
  private final Map<Node, Block> normBlocks = new IdentityHashMap<>();
  /** The gather to its region's address. */
  private final Map<Node, Long> gathers = new IdentityHashMap<>();
  /** The dynamic_quantize ops that the norm before them does (their rows go to SRAM). */
  private final Set<Node> quantizedInNorms = Collections.newSetFromMap(new IdentityHashMap<>());
  /** The ops that lower below a region, to the lowest region's address while they run. */
  private final Map<Node, Long> limits = new IdentityHashMap<>();

  private SramGathers() {}

  /**
   * Where a norm writes its rows: block {@code rank} of the region at {@code region}, its rows'
   * count times their bytes from it (the count may be known only at run time); with a per-row
   * {@code quantize} (a dynamic_quantize it does in its own stream), its rows' scales likewise
   * into the region at {@code scales}.
   */
  record Block(long region, long scales, long rank, Node quantize) {}

  /** None: every gather goes through HBM. */
  static SramGathers none() {
    return new SramGathers();
  }

  /**
   * Plans the regions of {@code fn}'s gathers.
   *
   * @param narrowedNorms the norms that write their bf16 cast themselves, to that cast
   * @param fused ops lowered inside their reader, to that reader (a norm's residual add)
   * @param sizeAtBound each value's bytes at the symbols' bounds
   */
  static SramGathers plan(Function fn, Map<Node, Node> narrowedNorms, Map<Node, Node> fused,
      Map<Value, Tensor> known, Map<Value, Long> sizeAtBound, long sramBytes) {
    SramGathers s = new SramGathers();
    Map<Node, Node> normOfCast = new IdentityHashMap<>();
    narrowedNorms.forEach((norm, cast) -> normOfCast.put(cast, norm));
    Map<Value, List<Node>> users = fn.users();
    Set<Value> outputs = fn.outputValues();
    List<Node> body = fn.body();
    Map<Node, Integer> index = new IdentityHashMap<>();
    for (int i = 0; i < body.size(); i++) {
      index.put(body.get(i), i);
    }
    // live regions: address, and the index of the last op that reads them
    List<long[]> live = new ArrayList<>();
    for (Node g : body) {
      if (!(g.op() instanceof TransformerOp.AllGather a)) {
        continue;
      }
      Value x = a.x();
      Node p = x.producer();
      List<Node> readers = users.getOrDefault(g.result(), List.of());
      if (p == null || readers.isEmpty() || users.get(x).size() != 1
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
      if (norm == null || !(norm.op() instanceof TransformerOp.RmsNorm) || !fusedAdd(norm, fused)
          || !readers.stream().allMatch(r -> takesResidentX(r, g.result(), scales, known))
          || scales != null && !users.get(scales).stream().allMatch(readers::contains)) {
        continue;
      }
      int first = index.get(norm);
      int last = readers.stream().mapToInt(index::get).max().orElseThrow();
      live.removeIf(r -> r[1] < first);
      // whole 128-row tiles: an mma reads a last partial tile's rows past x's end
      TensorType t = g.result().type();
      long rowBytes = t.dim(t.rank() - 1).value() * t.elementType().sizeBytes();
      long rows = (sizeAtBound.get(g.result()) / rowBytes + MatmulLowering.TILE - 1)
          / MatmulLowering.TILE * MatmulLowering.TILE;
      long valueBytes = Lowering.align(rows * rowBytes);
      long bytes = valueBytes + (scales == null ? 0 : Lowering.align(rows * 4));
      // aligned down from the SRAM's end or the lowest live region
      long below = live.stream().mapToLong(r -> r[0]).min().orElse(sramBytes);
      long address = (below - bytes) / Lowering.SRAM_ALIGN * Lowering.SRAM_ALIGN;
      if (address < sramBytes - sramBytes / SHARE) {
        continue;
      }
      live.add(new long[] {address, last});
      s.regions.put(g.result(), address);
      s.gathers.put(g, address);
      if (scales != null) {
        s.regions.put(scales, address + valueBytes);
        s.gathers.put(scaleGather, address + valueBytes);
        s.quantizedInNorms.add(p);
      }
      s.normBlocks.put(norm, new Block(address, scales == null ? 0 : address + valueBytes,
          a.rank(), scales == null ? null : p));
      for (int j = first; j <= last; j++) {
        s.limits.merge(body.get(j), address, Math::min);
      }
    }
    return s;
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
  Long region(Value v) {
    return regions.get(v);
  }

  /** The SRAM address the gather {@code n} gathers into, or null (HBM). */
  Long gatherRegion(Node n) {
    return gathers.get(n);
  }

  /** Where the norm {@code n} writes its bf16 rows in SRAM (its block of a region), or null. */
  Block normBlock(Node n) {
    return normBlocks.get(n);
  }

  /** The SRAM that {@code n} may use: below every region live while it runs. */
  long limit(Node n, long sramBytes) {
    return limits.getOrDefault(n, sramBytes);
  }

  /** Whether {@code n} is a dynamic_quantize that the norm before it does. */
  boolean quantizedInNorm(Node n) {
    return quantizedInNorms.contains(n);
  }
}
