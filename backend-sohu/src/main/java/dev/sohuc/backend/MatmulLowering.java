package dev.sohuc.backend;

import static dev.sohuc.backend.Emitter.TOK_LOAD;
import static dev.sohuc.backend.Emitter.TOK_MXU;
import static dev.sohuc.backend.Emitter.TOK_STORE;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.Bcast;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Engine;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.MemSpace;
import dev.sohuc.isa.UnaryFn;
import java.util.List;
import java.util.function.IntSupplier;

/**
 * {@code C[M, N] = alpha * A[M, K] @ B[K, N] (+ bias[N]), act}, with B optionally stored
 * transposed ({@code [N, K]}). Loop nest: batch (only when B has batch dims) > panels of 128
 * columns of B > double-buffered row tiles of A. One {@code mma} per tile covers all of K
 * (exact f32 fma chain in k order); ACC tiles are double-buffered so the MXU computes tile i+1
 * while the VPU reads tile i out through {@code accrd} (bias and activation fused there). The
 * next B panel is prefetched while the current one is in use (the weight stream).
 */
final class MatmulLowering {
  static final int TILE = 128;

  private final Lowering l;
  private final Emitter e;

  MatmulLowering(Lowering l) {
    this.l = l;
    this.e = l.emitter();
  }

  void matmul(Node n, Value a, Value b, boolean tb, Value bias, float alpha, UnaryFn act) {
    TensorType at = a.type();
    TensorType bt = b.type();
    int ra = at.rank();
    int rb = bt.rank();
    long k = at.dim(ra - 1).value();
    long cols = bt.dim(tb ? rb - 2 : rb - 1).value();
    boolean batched = rb > 2 && !bt.dims().subList(0, rb - 2).stream().allMatch(d -> d.is(1));
    Dim m = batched ? at.dim(ra - 2) : Lowering.product(at.dims().subList(0, ra - 1));
    Dim batch = batched ? Lowering.product(at.dims().subList(0, ra - 2)) : Dim.of(1);
    long bStep = k * cols * 4;
    int mTile = m.isStatic() && m.value() < TILE ? (int) Math.max(1, m.value()) : TILE;
    long accWords = Lowering.ACC_BASE + 2L * TILE * TILE;
    if (accWords > l.target().accWords()) {
      throw new BackendException(n.describe() + ": needs " + accWords + " ACC words, the target "
          + "has " + l.target().accWords());
    }
    long panelBytes = k * TILE * 4;
    long biasBuf = bias == null ? 0 : l.preload(bias, cols * 4, "bias");
    long bufA = l.sram(panelBytes, "B panel");
    long bufB = l.sram(panelBytes, "B panel");
    // the A tiles and output tiles of the row stream take the rest of the SRAM
    long need = l.sramUsed() + 2 * (TILE * k * 4 + TILE * TILE * 4);
    if (need > l.target().sramBytes()) {
      throw new BackendException(n.describe() + ": needs " + need + " bytes of SRAM for a "
          + TILE + "-row tile with K=" + k + ", the target has " + l.target().sramBytes()
          + " (K-splitting is not implemented)");
    }
    // A resident in SRAM when it fits at its bound: the panels of B re-read A from SRAM instead
    // of HBM, so each step reads A from HBM once and B (the weights) once
    long panels = cols / TILE + (cols % TILE > 0 ? 1 : 0);
    long aBound = batched ? 0 : l.sizeAtBoundOr(a, -1);
    // (with a third panel buffer and the ring of output tiles instead of the row stream's tiles)
    boolean residentCase = !batched && aBound > 0 && panels >= 2 && k * 4 <= (1 << 17) - 1;
    long room = l.target().sramBytes() - (l.sramUsed() + panelBytes + RING_BYTES);
    boolean whole = residentCase && Lowering.align(aBound) <= room;
    // A larger than the SRAM: resident a block of rows at a time (a power of two of 128 or
    // more), the weights streamed once per block, instead of A re-read for every panel
    long blockRows = whole || !residentCase ? 0 : blockRows(room, k * 4);
    boolean blocked = blockRows > 0;
    boolean resident = whole || blocked;
    int aHbm = e.li(l.addr(a));
    long aAt = resident ? l.sram(blocked ? blockRows * k * 4 : aBound, "A (resident)") : 0;
    int aBase = resident ? e.li(aAt) : aHbm;
    aResident = resident;
    if (resident) {
      openRing(n);
    }
    // the group's sum of the result, panel by panel on the link, rides on the ring schedule
    QuantLowering.Epilogue ep = resident ? l.epilogue(n) : null;
    Node sum = ep == null ? null : ep.sum();
    int bPtr = e.li(l.addr(b));
    int cPtr = e.li(l.addr(n.result()));
    int rows = l.dimReg(m);
    int rowsLeft = blocked ? e.copy(rows) : 0;
    // shared constants, made before any loop opens
    int ldc = e.konst(TILE);
    int lda = e.konst(k * 4);
    int ldb = e.konst(tb ? k * 4 : TILE * 4);
    int bSrcStride = e.konst(tb ? k * 4 : cols * 4);
    int kReg = k > 8191 ? e.konst(k) : 0;
    int kImm = k > 8191 ? 0 : (int) k;
    int kRows = e.konst(k);
    int tileK = e.konst(TILE);
    long nFull = cols / TILE;
    long tail = cols % TILE;
    int ntFull = e.konst(TILE);
    int ntTail = tail > 0 ? e.konst(tail) : 0;
    int ntFullBytes = e.konst(TILE * 4);
    int ntTailBytes = tail > 0 ? e.konst(tail * 4) : 0;
    int bCur = e.li(bufA);
    int bNext = e.li(bufB);
    // with resident A the weights stream two panels ahead: a panel's prefetch is queued after
    // the stores of the panel before, which wait for its compute, itself behind its panel's
    // HBM latency; one panel ahead, that chain would pace the weight stream
    int ahead = resident ? 2 : 1;
    int bAhead = resident ? e.li(l.sram(panelBytes, "B panel")) : bNext;
    // the row stream's two ACC tiles (resident A uses its ring instead)
    int accCur = resident ? 0 : e.li(Lowering.ACC_BASE);
    int accNext = resident ? 0 : e.li(Lowering.ACC_BASE + (long) TILE * TILE);
    int biasPtr = bias == null ? 0 : e.alloc();
    int jrem = e.alloc();
    int batchLoop = -1;
    if (batched) {
      int batchCount = l.dimReg(batch);
      batchLoop = e.beginLoop(batchCount, 0);
      e.free(batchCount);
    } else if (blocked) {
      batchLoop = beginRowBlocks(rows, rowsLeft, blockRows);
    }
    if (resident) {
      // A (this block of it) into SRAM; the panels' first load waits for it
      int rs = e.konst(k * 4);
      int dst = e.li(aAt);
      int ld = e.dma(MemSpace.SRAM, dst, rs, MemSpace.HBM, aHbm, rs, k * 4, rows, 0, 0, 1, 0,
          0);
      e.patchTokens(ld, 0, Emitter.TOK_RESIDENT);
      e.free(dst);
    }
    if (bias != null) {
      e.emit(new dev.sohuc.isa.Insn.Li(biasPtr, biasBuf, 0, 0));
    }
    e.emit(new dev.sohuc.isa.Insn.Li(jrem, nFull - 1, 0, 0));
    if (nFull > 0) {
      // panel 0 (no token: the first A tile's load, queued after it, carries LOAD); with A
      // resident it waits for A's arrival, and every later copy of A is queued behind it
      int p0 = loadPanel(bCur, bPtr, bSrcStride, ldb, tb, TILE, tb ? tileK : kRows, k);
      if (resident) {
        // with resident A the panels' loads carry LOAD themselves
        e.patchTokens(p0, Emitter.TOK_RESIDENT, TOK_LOAD);
        if (nFull > 1) {
          e.patchTokens(prefetchPanel(bNext, ldb, bPtr, bSrcStride, tb ? k * 4 : TILE * 4L,
              tb ? tileK : kRows, jrem, 1, tb ? (long) TILE * k * 4 : TILE * 4L), 0, TOK_LOAD);
        }
      }
      int jLoop = e.beginLoop(0, nFull);
      Runnable prefetch = () -> {
        int pf = prefetchPanel(bAhead, ldb, bPtr, bSrcStride, tb ? k * 4 : TILE * 4L,
            tb ? tileK : kRows, jrem, ahead, tb ? (long) TILE * k * 4 : TILE * 4L);
        if (resident) {
          e.patchTokens(pf, 0, TOK_LOAD);
        }
      };
      stream(rows, aBase, lda, k, cPtr, cols * 4, TILE, ntFull, ntFullBytes, bCur, ldb, kReg,
          kImm, tb, mTile, ldc, accCur, accNext, alpha, bias != null, biasPtr, act, prefetch);
      if (sum != null) {
        CollectiveLowering.sumPanel(e, sum, cPtr, rows, TILE, cols * 4, DType.F32);
      }
      e.swap(bCur, bNext);
      if (ahead == 2) {
        e.swap(bNext, bAhead);
      }
      e.addImm(bPtr, bPtr, tb ? (long) TILE * k * 4 : TILE * 4L);
      e.addImm(cPtr, cPtr, TILE * 4L);
      if (bias != null) {
        e.addImm(biasPtr, biasPtr, TILE * 4L);
      }
      e.addImm(jrem, jrem, -1);
      e.endLoop(jLoop);
      if (resident) {
        takeEmptyPrefetches(nFull, ahead);
      }
    }
    if (tail > 0) {
      int tailRows = e.konst(tail);
      int pt = loadPanel(bCur, bPtr, bSrcStride, ldb, tb, tail, tb ? tailRows : kRows, k);
      if (resident) {
        e.patchTokens(pt, 0, TOK_LOAD);  // resident A has two or more panels: p0 waited for A
      }
      stream(rows, aBase, lda, k, cPtr, cols * 4, (int) tail, ntTail, ntTailBytes, bCur, ldb,
          kReg, kImm, tb, mTile, ldc, accCur, accNext, alpha, bias != null, biasPtr, act, null);
      if (sum != null) {
        CollectiveLowering.sumPanel(e, sum, cPtr, rows, (int) tail, cols * 4, DType.F32);
      }
    }
    if (batched) {
      // next batch: A and C move by one matrix, B by one matrix from where this one started
      int t = e.alloc();
      int step = l.dimReg(m.times(Dim.of(k * 4)));
      e.add(aBase, aBase, step);
      e.free(step);
      step = l.dimReg(m.times(Dim.of(cols * 4)));
      e.addImm(t, cPtr, -(nFull * TILE * 4L));
      e.add(cPtr, t, step);
      e.free(step, t);
      e.addImm(bPtr, bPtr, bStep - (tb ? nFull * TILE * k * 4 : nFull * TILE * 4L));
      e.endLoop(batchLoop);
    } else if (blocked) {
      // next block of rows: A and C move by the block, B goes back to its first panel
      e.addImm(aHbm, aHbm, blockRows * k * 4);
      e.addImm(cPtr, cPtr, blockRows * cols * 4 - nFull * TILE * 4L);
      e.addImm(bPtr, bPtr, -(tb ? nFull * TILE * k * 4 : nFull * TILE * 4L));
      endRowBlocks(batchLoop, rows, rowsLeft);
    }
    if (resident) {
      closeRing();
    }
    e.free(aBase, bPtr, cPtr, rows, bCur, bNext, accCur, accNext, biasPtr, jrem, rowsLeft);
    if (aHbm != aBase) {
      e.free(aHbm);
    }
    if (resident) {
      e.free(bAhead);
    }
    if (sum != null) {
      l.doneInside(sum);
    }
  }

  /**
   * Loads the full weight panel {@code ahead} panels after the one at {@code bPtr} (zero rows
   * when the panels left, {@code jrem + 1}, are fewer), so the panel loop needs no branch.
   */
  int prefetchPanel(int dst, int ldb, int bPtr, int srcStride, long rowBytes, int rowsReg,
      int jrem, int ahead, long panelStep) {
    int r = e.alloc();
    int p = e.alloc();
    e.addImm(r, jrem, 1 - ahead);
    e.min(r, r, e.konst(1));
    e.max(r, r, 0);
    e.mul(r, r, rowsReg);
    e.addImm(p, bPtr, ahead * panelStep);
    int pf = e.dma(MemSpace.SRAM, dst, ldb, MemSpace.HBM, p, srcStride, rowBytes, r, 0, 0, 1, 0,
        0);
    e.free(r, p);
    return pf;
  }

  /**
   * Rows of A (or x) kept resident at a time when the whole does not fit: the largest power of
   * two whose rows of {@code rowBytes} fit {@code room} bytes, or 0 when that is under a tile.
   */
  static long blockRows(long room, long rowBytes) {
    long rows = Long.highestOneBit(Math.max(1, room / rowBytes));
    return rows >= TILE ? rows : 0;
  }

  /**
   * Opens the loop over blocks of {@code blockRows} rows: each iteration, {@code rows} holds
   * that block's rows, the lesser of the block and {@code rowsLeft} (all rows at first).
   */
  int beginRowBlocks(int rows, int rowsLeft, long blockRows) {
    int blockRowsReg = e.konst(blockRows);
    int blocks = e.alloc();
    e.addImm(blocks, rows, blockRows - 1);
    e.shri(blocks, blocks, Long.numberOfTrailingZeros(blockRows));
    int loop = e.beginLoop(blocks, 0);
    e.free(blocks);
    e.min(rows, rowsLeft, blockRowsReg);
    return loop;
  }

  /** Closes the loop of {@link #beginRowBlocks}: the block's rows are done. */
  void endRowBlocks(int loop, int rows, int rowsLeft) {
    e.sub(rowsLeft, rowsLeft, rows);
    e.endLoop(loop);
  }

  /** Most weight panels in flight ahead of the one being used. */
  static final int MAX_PANELS_AHEAD = 8;

  /**
   * How many panels ahead to load: enough that the panels in flight cover the target's HBM
   * latency in bytes, at least 2, at most {@link #MAX_PANELS_AHEAD}, and no more than the
   * SRAM left beside the output ring holds ({@code ahead + 1} slots of {@code slotBytes}).
   */
  static int panelsAhead(Lowering l, long slotBytes) {
    long cover = (l.target().hbmLatencyBytes() + slotBytes - 1) / slotBytes + 1;
    int ahead = (int) Math.max(2, Math.min(MAX_PANELS_AHEAD, cover));
    while (ahead > 2 && l.sramUsed() + (ahead + 1L) * slotBytes + RING_BYTES
        > l.target().sramBytes()) {
      ahead--;
    }
    return ahead;
  }

  /**
   * Moves {@code slot} (an SRAM address register) to the next of {@code count} slots of
   * {@code slotBytes} from {@code base}, back to the first after the last, without a branch.
   */
  void nextSlot(int slot, long base, long slotBytes, int count) {
    long end = base + count * slotBytes;
    int past = e.alloc();
    e.addImm(slot, slot, slotBytes);
    // past = 1 when slot reached the end, else 0
    e.addImm(past, slot, 1 - end);
    e.max(past, past, 0);
    e.min(past, past, e.konst(1));
    e.mulImm(past, past, count * slotBytes);
    e.sub(slot, slot, past);
    e.free(past);
  }

  /** The last panels' prefetches moved nothing; their LOADs are taken before the tail's. */
  void takeEmptyPrefetches(long nFull, int ahead) {
    for (int i = 0; i < Math.min(nFull, ahead); i++) {
      e.emit(Emitter.fence(Engine.MXU, TOK_LOAD, 0));
    }
  }

  /** Opens the ring of ACC/output tile pairs for {@link #streamResident}, all free at first. */
  void openRing(Node n) {
    if (Lowering.ACC_BASE + RING * TILE * TILE > l.target().accWords()) {
      throw new BackendException(n.describe() + ": needs " + RING * TILE * TILE + " ACC "
          + "words, the target has " + l.target().accWords());
    }
    outRing = l.sram(RING_BYTES, "output tiles");
    tileNo = e.li(0);
    for (int i = 0; i < RING / GROUP; i++) {
      e.emit(Emitter.fence(Engine.CTRL, 0, Emitter.TOK_FREE));
    }
  }

  /** Takes back the ring's FREE tokens: every pair's store has completed. */
  void closeRing() {
    for (int i = 0; i < RING / GROUP; i++) {
      e.emit(Emitter.fence(Engine.MXU, Emitter.TOK_FREE, 0));
    }
    e.free(tileNo);
  }

  private int loadPanel(int dst, int src, int srcStride, int ldb, boolean tb, long nt,
      int rowsReg, long k) {
    return e.dma(MemSpace.SRAM, dst, ldb, MemSpace.HBM, src, srcStride, tb ? k * 4 : nt * 4, rowsReg, 0,
        0, 1, 0, 0);
  }

  /** Whether the matmul being lowered streams A from SRAM (preloaded whole). */
  private boolean aResident;
  /**
   * With resident A: ACC/output tiles in flight, RING / GROUP groups. A group's tiles are reused
   * once its store has completed, HBM latency included (about 500 cycles after the store's
   * own), so the ring covers that latency even for the shortest mma (a bf16 mma at K = 1024: 11
   * cycles a tile; with 16 tiles, 4 groups, the o projection waited on FREE).
   */
  static final int RING = 64;
  /** Row tiles per store with resident A (a power of two dividing RING). */
  static final int GROUP = 16;
  /** SRAM bytes the ring's output tiles take. */
  static final long RING_BYTES = (long) RING * TILE * TILE * 4;
  /** With resident A: the SRAM output tiles' ring and the register counting groups. */
  private long outRing;
  private int tileNo;

  private void stream(int rows, int aBase, int lda, long k, int cPtr, long outHbmStride, int nt,
      int ntReg, int ntBytesReg, int bSram, int ldb, int kReg, int kImm, boolean tb, int mTile,
      int ldc, int accCur, int accNext, float alpha, boolean hasBias, int biasPtr, UnaryFn act,
      Runnable afterPrologue) {
    long tile = TILE;
    if (aResident) {
      streamResident(rows, aBase, lda, k * 4, cPtr, outHbmStride, 4, nt, ntBytesReg, bSram, ldb,
          kReg, kImm, tb, DType.F32, mTile, ldc, false, (out, acc, r, s) -> {
            int rd = e.accrd(out, ntBytesReg, acc, ldc, r, ntReg, alpha,
                hasBias ? Bcast.ROW : Bcast.NONE, hasBias ? biasPtr : 0, act);
            e.patchTokens(rd, TOK_MXU, 0);
            return rd;
          }, afterPrologue);
      return;
    }
    Lowering.In aIn = new Lowering.In(aBase, k * 4, k * 4);
    l.rowStream(rows, tile, List.of(aIn), cPtr, nt * 4L,
        outHbmStride, (in, out, r, s) -> {
          int mm = e.mma(accCur, ldc, in[0], lda, bSram, ldb, mTile, nt, kReg, kImm, false, tb,
              false);
          e.patchTokens(mm, TOK_LOAD, TOK_MXU);
          int rd = e.accrd(out, ntBytesReg, accCur, ldc, r, ntReg, alpha,
              hasBias ? Bcast.ROW : Bcast.NONE, hasBias ? biasPtr : 0, act);
          e.patchTokens(rd, TOK_MXU, TOK_STORE);
        }, true, new int[] {accCur, accNext}, afterPrologue, false, null);
  }

  /**
   * Reads {@code rows} rows of ACC out into SRAM output rows ({@code accrd}, then any scaling):
   * its first VPU instruction waits MXU; returns its last, which the caller makes signal STORE.
   * {@code rowStart} is the first row's index (0 when not asked for).
   */
  interface Readout {
    int emit(int out, int acc, int rows, int rowStart);
  }

  /**
   * The row tiles of one panel with A resident in SRAM ({@code aRowBytes} a row, in the mma's
   * type {@code dt}): the mma reads each tile of A where it lies, so the DMA queue only streams
   * the weights and stores results. Tiles go in groups of GROUP: one readout and one store per
   * group, since a DMA's fixed cost (64 cycles) and a VPU op's are close to a bf16 mma's time
   * and above an fp8 one's. A group's ACC tiles and output tiles are contiguous (rows one after
   * another), its last mma alone signals MXU (the MXU runs in order), and the readout's last
   * instruction signals STORE. The ring holds RING / GROUP groups; group i's mmas wait FREE (an
   * MXU fence), which the store of group i - RING / GROUP signals. The panel's arrival (its
   * load signals LOAD) is awaited by an MXU fence first. The result has {@code outEs}-byte
   * elements (4, or 2 when the readout rounds to bf16).
   */
  void streamResident(int rows, int aBase, int lda, long aRowBytes, int cPtr, long outHbmStride,
      long outEs, int nt, int ntBytesReg, int bSram, int ldb, int kReg, int kImm, boolean tb,
      DType dt, int mTile, int ldc, boolean needRowStart, Readout readout,
      Runnable afterPrologue) {
    e.emit(Emitter.fence(Engine.MXU, TOK_LOAD, 0));
    if (afterPrologue != null) {
      afterPrologue.run();
    }
    int groupRows = e.konst(GROUP * TILE);
    int outStride = e.konst(outHbmStride);
    int a = e.copy(aBase);
    int c = e.copy(cPtr);
    int rem = e.copy(rows);
    int rowStart = needRowStart ? e.li(0) : 0;
    int groups = e.alloc();
    e.addImm(groups, rows, GROUP * TILE - 1);
    e.shri(groups, groups, Integer.numberOfTrailingZeros(GROUP * TILE));
    int loop = e.beginLoop(groups, 0);
    e.free(groups);
    // this group's rows and tiles, and its slot: group tileNo mod (RING / GROUP)
    int gRows = e.alloc();
    e.min(gRows, groupRows, rem);
    int tiles = e.alloc();
    e.addImm(tiles, gRows, TILE - 1);
    e.shri(tiles, tiles, 7);
    e.addImm(tiles, tiles, -1);
    int gAcc = e.alloc();
    e.shri(gAcc, tileNo, Integer.numberOfTrailingZeros(RING / GROUP));
    e.mulImm(gAcc, gAcc, RING / GROUP);
    e.sub(gAcc, tileNo, gAcc);
    int out = e.alloc();
    e.mulImm(out, gAcc, GROUP * TILE * TILE * 4L);
    e.addImm(out, out, outRing);
    e.mulImm(gAcc, gAcc, GROUP * TILE * TILE);
    e.addImm(gAcc, gAcc, Lowering.ACC_BASE);
    int acc = e.copy(gAcc);
    e.emit(Emitter.fence(Engine.MXU, Emitter.TOK_FREE, 0));
    // all but the last tile's mma, then the last, which signals MXU
    IntSupplier mma = () -> {
      int mm = e.emit(new Insn.Mma(acc, 0, ldc, a, 0, lda, bSram, 0, ldb, mTile, nt, kReg,
          kImm, dt, false, tb, false, 0, 0));
      e.addImm(acc, acc, TILE * TILE);
      e.addImm(a, a, TILE * aRowBytes);
      return mm;
    };
    int tileLoop = e.beginLoop(tiles, 0);
    e.free(tiles);
    mma.getAsInt();
    e.endLoop(tileLoop);
    e.patchTokens(mma.getAsInt(), 0, TOK_MXU);
    // the group's rows lie one after another in ACC (ldc apart) and in its output tiles
    e.patchTokens(readout.emit(out, gAcc, gRows, rowStart), 0, TOK_STORE);
    // the output tiles keep f32 rows; a bf16 result is the first half of each
    int st = e.dma(MemSpace.HBM, c, outStride, MemSpace.SRAM, out, ntBytesReg, nt * outEs, gRows,
        0, 0, 1, 0, 0);
    e.patchTokens(st, TOK_STORE, Emitter.TOK_FREE);
    e.sub(rem, rem, gRows);
    if (needRowStart) {
      e.add(rowStart, rowStart, gRows);
    }
    e.free(acc, out, gAcc, gRows);
    e.addImm(c, c, GROUP * TILE * outHbmStride);
    e.addImm(tileNo, tileNo, 1);
    e.endLoop(loop);
    e.free(a, c, rem, rowStart);
  }
}
