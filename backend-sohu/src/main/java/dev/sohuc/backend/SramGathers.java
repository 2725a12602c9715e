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
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * All_gathers that land in SRAM. A sequence-parallel gather of a norm's bf16 rows that only
 * qmatmuls read (q, k and v; gate and up) goes from the norm's tiles straight to a region at the
 * top of SRAM, where the qmatmuls find x resident, instead of through HBM: no store of the
 * norm's rows, no HBM traffic on the link, and no load of x by the qmatmuls (16.8 MB, 2.3 us, in
 * each of a 70B layer's four gathers). Every op from the norm to the last of those qmatmuls
 * lowers below the region ({@link #limit}); the gather runs on the link while they do.
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
  /** The ops that lower below a region, to the lowest region's address while they run. */
  private final Map<Node, Long> limits = new IdentityHashMap<>();

  private SramGathers() {}

  /**
   * Where a norm writes its rows: block {@code rank} of the region at {@code region}, its rows'
   * count times their bytes from it (the count may be known only at run time).
   */
  record Block(long region, long rank) {}

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
    java.util.Set<Value> outputs = fn.outputValues();
    List<Node> body = fn.body();
    Map<Node, Integer> index = new IdentityHashMap<>();
    for (int i = 0; i < body.size(); i++) {
      index.put(body.get(i), i);
    }
    // live regions: address, bytes, and the index of the last op that reads them
    List<long[]> live = new ArrayList<>();
    for (int i = 0; i < body.size(); i++) {
      Node g = body.get(i);
      if (!(g.op() instanceof TransformerOp.AllGather a)) {
        continue;
      }
      Value x = a.x();
      Node norm = x.producer() == null ? null : normOfCast.get(x.producer());
      List<Node> readers = users.getOrDefault(g.result(), List.of());
      if (norm == null || !fusedAdd(norm, fused) || readers.isEmpty()
          || users.get(x).size() != 1
          || outputs.contains(g.result()) || !x.type().dim(x.type().rank() - 1).isStatic()
          || x.type().elementType() != ElementType.BF16
          || !readers.stream().allMatch(r -> takesResidentX(r, g.result(), known))) {
        continue;
      }
      int first = index.get(norm);
      int last = readers.stream().mapToInt(index::get).max().orElseThrow();
      int at = first;
      live.removeIf(r -> r[2] < at);
      // whole 128-row tiles: an mma reads a last partial tile's rows past x's end
      TensorType t = g.result().type();
      long rowBytes = t.dim(t.rank() - 1).value() * 2;
      long rows = sizeAtBound.get(g.result()) / rowBytes;
      long bytes = Lowering.align((rows + MatmulLowering.TILE - 1) / MatmulLowering.TILE
          * MatmulLowering.TILE * rowBytes);
      long below = live.stream().mapToLong(r -> r[0]).min().orElse(sramBytes);
      long address = below - bytes;
      if (address < sramBytes - sramBytes / SHARE) {
        continue;
      }
      live.add(new long[] {address, bytes, last});
      s.regions.put(g.result(), address);
      s.gathers.put(g, address);
      s.normBlocks.put(norm, new Block(address, a.rank()));
      for (int j = first; j <= last; j++) {
        s.limits.merge(body.get(j), address, Math::min);
      }
    }
    return s;
  }

  /** Whether the norm's residual add is lowered inside it. */
  private static boolean fusedAdd(Node norm, Map<Node, Node> fused) {
    Node add = ((TransformerOp.RmsNorm) norm.op()).x().producer();
    return add != null && fused.get(add) == norm;
  }

  /** A qmatmul whose x is {@code x}, with one scale for all of x (no per-row scales). */
  private static boolean takesResidentX(Node n, Value x, Map<Value, Tensor> known) {
    if (!(n.op() instanceof QuantOp.QMatMul q) || q.x() != x || q.w() == x) {
      return false;
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

  /** Whether any gather lands in SRAM. */
  boolean any() {
    return !regions.isEmpty();
  }
}
