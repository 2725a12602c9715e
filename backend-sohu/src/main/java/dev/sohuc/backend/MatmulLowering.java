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
import dev.sohuc.isa.InsnTable;
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
    long accWords = 2L * TILE * TILE;
    if (accWords > l.target().accWords()) {
      throw new BackendException(n.describe() + ": needs " + accWords + " ACC words, the target "
          + "has " + l.target().accWords());
    }
    long panelBytes = k * TILE * 4;
    long biasBuf = bias == null ? 0 : l.preload(bias, cols * 4, "bias");
    // A resident in SRAM when it fits at its bound: the panels of B re-read A from SRAM instead
    // of HBM, so each step reads A from HBM once and B (the weights) once
    long panels = cols / TILE + (cols % TILE > 0 ? 1 : 0);
    long nFull = cols / TILE;
    long aBound = batched ? 0 : l.sizeAtBoundOr(a, -1);
    // (with a third panel buffer and the ring of output tiles instead of the row stream's tiles)
    boolean residentCase = !batched && aBound > 0 && panels >= 2 && k * 4 <= (1 << 17) - 1;
    // few rows: several panels a load, A resident whole beside the three loads
    int wide = residentCase ? panelsPerLoad(panelBytes, nFull, aBound / (k * 4), DType.F32, 3,
        Lowering.align(aBound), l.summedOnLink(n)) : 1;
    long loadBytes = wide * panelBytes;
    long bufA = l.sram(loadBytes, "B panels");
    long bufB = l.sram(loadBytes, "B panels");
    // the A tiles and output tiles of the row stream take the rest of the SRAM
    long need = l.sramUsed() + 2 * (TILE * k * 4 + TILE * TILE * 4);
    if (need > l.sramLimit()) {
      throw new BackendException(n.describe() + ": needs " + need + " bytes of SRAM for a "
          + TILE + "-row tile with K=" + k + ", the target has " + l.sramLimit()
          + " (K-splitting is not implemented)");
    }
    long room = l.sramLimit() - (l.sramUsed() + loadBytes + ringBytes(l.target()));
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
    QuantLowering.Epilogue ep = resident ? l.epilogue(n, blocked) : null;
    Node sum = ep == null ? null : ep.sum();
    int bPtr = e.li(l.addr(b));
    int cPtr = e.li(l.addr(n.result()));
    int rows = l.dimReg(m);
    int rowsLeft = blocked ? e.copy(rows) : 0;
    // shared constants, made before any loop opens
    int ldc = e.konst(TILE);
    int lda = e.konst(k * 4);
    int ldb = e.konst(tb ? k * 4 : wide * TILE * 4L);
    int bSrcStride = e.konst(tb ? k * 4 : cols * 4);
    int kReg = k > 8191 ? e.konst(k) : 0;
    int kImm = k > 8191 ? 0 : (int) k;
    int kRows = e.konst(k);
    int loadK = tb ? e.konst(wide * TILE) : 0;
    long loads = nFull / wide;
    long tail = cols % TILE;
    int ntFull = e.konst(TILE);
    int ntTail = tail > 0 ? e.konst(tail) : 0;
    // the output tiles' row bytes: the load's columns in f32
    int ntFullBytes = e.konst(wide * TILE * 4L);
    int ntTailBytes = tail > 0 ? e.konst(tail * 4) : 0;
    if (wide > 1) {
      e.konst(TILE * 4L);  // the store's plane stride, made before the loops open
    }
    // one load: its bytes a row (B stored [K, N]) or its rows ([N, K]), and the next one's step
    long loadRowBytes = tb ? k * 4 : wide * TILE * 4L;
    long loadStep = tb ? wide * TILE * k * 4 : wide * TILE * 4L;
    int bCur = e.li(bufA);
    int bNext = e.li(bufB);
    // with resident A the weights stream two panels ahead: a panel's prefetch is queued after
    // the stores of the panel before, which wait for its compute, itself behind its panel's
    // HBM latency; one panel ahead, that chain would pace the weight stream
    int ahead = resident ? 2 : 1;
    int bAhead = resident ? e.li(l.sram(loadBytes, "B panels")) : bNext;
    // the row stream's two ACC tiles (resident A uses its ring instead)
    int accCur = resident ? 0 : e.li(l.accBase());
    int accNext = resident ? 0 : e.li(l.accBase() + (long) TILE * TILE);
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
      // A (this block of it) into SRAM, queued before the first panel's load: that load's
      // PANEL, which the first mma awaits, comes after A's arrival (the DMA queue runs in order
      // and every HBM read has the same latency), so the weight stream starts without waiting
      int rs = e.konst(k * 4);
      int dst = e.li(aAt);
      e.dma(MemSpace.SRAM, dst, rs, MemSpace.HBM, aHbm, rs, k * 4, rows, 0, 0, 1, 0, 0);
      e.free(dst);
    }
    if (bias != null) {
      e.emit(new dev.sohuc.isa.Insn.Li(biasPtr, biasBuf, 0, 0));
    }
    e.emit(new dev.sohuc.isa.Insn.Li(jrem, loads - 1, 0, 0));
    if (nFull > 0) {
      // panel 0 (no token: the first A tile's load, queued after it, carries LOAD)
      int p0 = e.dma(MemSpace.SRAM, bCur, ldb, MemSpace.HBM, bPtr, bSrcStride, loadRowBytes,
          tb ? loadK : kRows, 0, 0, 1, 0, 0);
      if (resident) {
        // with resident A the panels' loads signal PANEL themselves
        e.patchTokens(p0, 0, Emitter.TOK_PANEL);
        if (loads > 1) {
          e.patchTokens(prefetchPanel(bNext, ldb, bPtr, bSrcStride, loadRowBytes,
              tb ? loadK : kRows, jrem, 1, loadStep), 0, Emitter.TOK_PANEL);
        }
      }
      // made before the loop: the last panel's urgent flag needs it (sumPanel)
      e.konst(1);
      int jLoop = e.beginLoop(0, loads);
      Runnable prefetch = () -> {
        int pf = prefetchPanel(bAhead, ldb, bPtr, bSrcStride, loadRowBytes,
            tb ? loadK : kRows, jrem, ahead, loadStep);
        if (resident) {
          e.patchTokens(pf, 0, Emitter.TOK_PANEL);
        }
      };
      stream(rows, aBase, lda, k, cPtr, cols * 4, TILE, ntFull, ntFullBytes,
          new Panels(bCur, ldb, tb, wide, tb ? TILE * k * 4 : TILE * 4L), kReg, kImm, mTile, ldc,
          accCur, accNext, alpha, bias != null, biasPtr, act, prefetch);
      if (sum != null) {
        sumPanel(sum, cPtr, rows, wide * TILE, cols * 4, DType.F32, tail == 0 ? jrem : 0);
      }
      e.swap(bCur, bNext);
      if (ahead == 2) {
        e.swap(bNext, bAhead);
      }
      e.addImm(bPtr, bPtr, loadStep);
      e.addImm(cPtr, cPtr, wide * TILE * 4L);
      if (bias != null) {
        e.addImm(biasPtr, biasPtr, wide * TILE * 4L);
      }
      e.addImm(jrem, jrem, -1);
      e.endLoop(jLoop);
      if (resident) {
        takeEmptyPrefetches(loads, ahead);
      }
    }
    if (tail > 0) {
      int tailRows = e.konst(tail);
      int pt = e.dma(MemSpace.SRAM, bCur, ldb, MemSpace.HBM, bPtr, bSrcStride,
          tb ? k * 4 : tail * 4, tb ? tailRows : kRows, 0, 0, 1, 0, 0);
      if (resident) {
        e.patchTokens(pt, 0, Emitter.TOK_PANEL);
      }
      stream(rows, aBase, lda, k, cPtr, cols * 4, (int) tail, ntTail, ntTailBytes,
          Panels.one(bCur, ldb, tb), kReg, kImm, mTile, ldc, accCur, accNext, alpha,
          bias != null, biasPtr, act, null);
      if (sum != null) {
        sumPanel(sum, cPtr, rows, (int) tail, cols * 4, DType.F32, -1);
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
   * The sum of a finished panel on the link (CollectiveLowering.sumPanel), urgent when it is the
   * last: {@code left} is the register of the panels still to come in the loop (the last panel
   * is the one at 0), -1 for a panel known to be the last (the tail), or 0 for one that is not.
   */
  void sumPanel(Node sum, int cPtr, int rows, int nt, long rowStride, DType dtype, int left) {
    if (sum.op() instanceof dev.sohuc.ir.op.TransformerOp.ReduceScatter r) {
      // from the partial sums' region to the block's (SramCollectives), or within HBM
      Long from = l.inSram().scatteredInSram(r.x());
      CollectiveLowering.scatterPanel(e, sum, cPtr, rows, nt, rowStride, dtype,
          from != null ? l.inSram().scatteredInSram(sum.result()) - from
              : l.addr(sum.result()) - l.addr(r.x()), from != null ? MemSpace.SRAM : MemSpace.HBM);
      return;
    }
    if (left <= 0) {
      CollectiveLowering.sumPanel(e, sum, cPtr, rows, nt, rowStride, dtype,
          left < 0 ? e.konst(1) : 0);
      return;
    }
    int urgent = e.alloc();
    CollectiveLowering.lastPanel(e, urgent, left, e.konst(1));
    CollectiveLowering.sumPanel(e, sum, cPtr, rows, nt, rowStride, dtype, urgent);
    e.free(urgent);
  }

  /**
   * Loads the full weight panel {@code ahead} panels after the one at {@code bPtr} (zero rows
   * when the panels left, {@code jrem + 1}, are fewer), so the panel loop needs no branch.
   */
  int prefetchPanel(int dst, int ldb, int bPtr, int srcStride, long rowBytes, int rowsReg,
      int jrem, int ahead, long panelStep) {
    return prefetchPanel(dst, ldb, bPtr, srcStride, rowBytes, rowsReg, jrem, ahead, panelStep,
        PanelPlanes.ONE);
  }

  /** {@link #prefetchPanel}, the load in {@code planes} (each of {@code rowBytes} a row). */
  int prefetchPanel(int dst, int ldb, int bPtr, int srcStride, long rowBytes, int rowsReg,
      int jrem, int ahead, long panelStep, PanelPlanes planes) {
    int r = e.alloc();
    int p = e.alloc();
    e.addImm(r, jrem, 1 - ahead);
    e.min(r, r, e.konst(1));
    e.max(r, r, 0);
    e.mul(r, r, rowsReg);
    e.addImm(p, bPtr, ahead * panelStep);
    int pf = e.dma(MemSpace.SRAM, dst, ldb, MemSpace.HBM, p, srcStride, rowBytes, r, 0, 0,
        planes.count(), planes.dstStride(), planes.srcStride());
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
   * Panels in flight that cover the target's HBM latency in bytes, one more for the panel in
   * use, at least 2 and at most {@link #MAX_PANELS_AHEAD}.
   */
  static int panelsToCover(TargetInfo t, long slotBytes) {
    long cover = (t.hbmLatencyBytes() + slotBytes - 1) / slotBytes + 1;
    return (int) Math.max(2, Math.min(MAX_PANELS_AHEAD, cover));
  }

  /**
   * How many panels ahead to load: enough that the panels in flight cover the target's HBM
   * latency in bytes, at least 2, at most {@link #MAX_PANELS_AHEAD}, and no more than the
   * SRAM left beside the output ring holds ({@code ahead + 1} slots of {@code slotBytes}).
   */
  static int panelsAhead(Lowering l, long slotBytes) {
    int ahead = panelsToCover(l.target(), slotBytes);
    while (ahead > 2 && l.sramUsed() + (ahead + 1L) * slotBytes + ringBytes(l.target())
        > l.sramLimit()) {
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

  /** The last panels' prefetches moved nothing; their PANELs are taken before the tail's. */
  void takeEmptyPrefetches(long nFull, int ahead) {
    for (int i = 0; i < Math.min(nFull, ahead); i++) {
      e.emit(Emitter.fence(Engine.MXU, Emitter.TOK_PANEL, 0));
    }
  }

  /**
   * Walks a pointer into a per-column vector (bias, scales) of a load's sub-panels: before
   * sub-panel {@code sub}'s readout ({@code after} false) it moves to that sub-panel's columns;
   * after the last sub-panel's it steps back to the load's first column. No register of its own.
   */
  void stepSubPanel(int ptr, int sub, int subs, boolean after) {
    if (ptr == 0) {
      return;
    }
    if (!after && sub > 0) {
      e.addImm(ptr, ptr, TILE * 4L);
    } else if (after && sub == subs - 1 && subs > 1) {
      e.addImm(ptr, ptr, -(subs - 1) * TILE * 4L);
    }
  }

  /**
   * The ACC address of the ring group whose output tiles start at {@code out}: group g's tiles
   * are g * GROUP tiles into both, 4 bytes of output tile a word of ACC.
   */
  private void accOfOut(int acc, int out) {
    e.addImm(acc, out, -outRing);
    e.shri(acc, acc, 2);
    e.addImm(acc, acc, l.accBase());
  }

  /** Opens the ring of ACC/output tile pairs for {@link #streamResident}, all free at first. */
  void openRing(Node n) {
    int ring = ring(l.target());
    if ((long) ring * TILE * TILE > l.target().accWords()) {
      throw new BackendException(n.describe() + ": needs " + ring * TILE * TILE + " ACC "
          + "words, the target has " + l.target().accWords());
    }
    outRing = l.sram(ringBytes(l.target()), "output tiles");
    tileNo = e.li(0);
    for (int i = 0; i < ring / GROUP; i++) {
      e.emit(Emitter.fence(Engine.CTRL, 0, Emitter.TOK_FREE));
    }
  }

  /** Takes back the ring's FREE tokens: every pair's store has completed. */
  void closeRing() {
    for (int i = 0; i < ring(l.target()) / GROUP; i++) {
      e.emit(Emitter.fence(Engine.MXU, Emitter.TOK_FREE, 0));
    }
    e.free(tileNo);
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
  /**
   * The deeper ring where it costs little: 128 tiles (8 MiB of output tiles) where that is at
   * most 1/16 of the SRAM and fits ACC. More groups in flight let a row group's readout and
   * store lag further behind the MXU: the 70B serving step was 0.9% faster in bf16 and 3.6% in
   * fp8 with it.
   */
  static final int DEEP_RING = 128;
  /** Row tiles per store with resident A (a power of two dividing the ring). */
  static final int GROUP = 16;

  /** Row tiles in flight with resident A on {@code t}: DEEP_RING or RING. */
  static int ring(TargetInfo t) {
    long deepBytes = (long) DEEP_RING * TILE * TILE * 4;
    return 16 * deepBytes <= t.sramBytes()
        && (long) DEEP_RING * TILE * TILE <= t.accWords() ? DEEP_RING : RING;
  }

  /** SRAM bytes the ring's output tiles take on {@code t}. */
  static long ringBytes(TargetInfo t) {
    return (long) ring(t) * TILE * TILE * 4;
  }
  /** With resident A: the SRAM output tiles' ring and the register counting groups. */
  private long outRing;
  private int tileNo;

  private void stream(int rows, int aBase, int lda, long k, int cPtr, long outHbmStride, int nt,
      int ntReg, int outRowBytes, Panels b, int kReg, int kImm, int mTile, int ldc, int accCur,
      int accNext, float alpha, boolean hasBias, int biasPtr, UnaryFn act,
      Runnable afterPrologue) {
    long tile = TILE;
    if (aResident) {
      streamResident(rows, aBase, lda, k * 4, cPtr, MemSpace.HBM, outHbmStride, 4, nt,
          outRowBytes, b, kReg, kImm, DType.F32, mTile, ldc, false, (out, acc, r, s, sub) -> {
            // the sub-panel's bias columns: the pointer walks them and steps back after
            stepSubPanel(hasBias ? biasPtr : 0, sub, b.count(), false);
            int rd = e.accrd(out, outRowBytes, acc, ldc, r, ntReg, alpha,
                hasBias ? Bcast.ROW : Bcast.NONE, hasBias ? biasPtr : 0, act);
            if (sub == 0) {
              e.patchTokens(rd, TOK_MXU, 0);
            }
            stepSubPanel(hasBias ? biasPtr : 0, sub, b.count(), true);
            return rd;
          }, afterPrologue);
      return;
    }
    Lowering.In aIn = new Lowering.In(aBase, k * 4, k * 4);
    l.rowStream(rows, tile, List.of(aIn), cPtr, nt * 4L,
        outHbmStride, (in, out, r, s) -> {
          int mm = e.mma(accCur, ldc, in[0], lda, b.sram(), b.ldb(), mTile, nt, kReg, kImm, false,
              b.transposed(), false);
          e.patchTokens(mm, TOK_LOAD, TOK_MXU);
          int rd = e.accrd(out, outRowBytes, accCur, ldc, r, ntReg, alpha,
              hasBias ? Bcast.ROW : Bcast.NONE, hasBias ? biasPtr : 0, act);
          e.patchTokens(rd, TOK_MXU, TOK_STORE);
        }, true, new int[] {accCur, accNext}, afterPrologue, false, null);
  }

  /**
   * Reads {@code rows} rows of ACC out into SRAM output rows ({@code accrd}, then any scaling);
   * returns its last instruction, which the caller makes signal STORE. {@code rowStart} is the
   * first row's index (0 when not asked for). {@code sub} is the 128-column sub-panel of the
   * load the tile belongs to (0 outside {@link #streamResident}): its columns start at
   * {@code sub * 128} of the load's (for bias and scale vectors), and only sub-panel 0's first
   * VPU instruction waits MXU (the group's last mma alone signals it).
   */
  interface Readout {
    int emit(int out, int acc, int rows, int rowStart, int sub);

    /** How many of a load's {@code count} sub-panels' output columns are stored. */
    default int storedSubPanels(int count) {
      return count;
    }
  }

  /**
   * How a weight load is laid out: {@code count} planes, each a row of the slot, their SRAM and
   * HBM strides in registers (r0 for one plane). Two planes make a gated pair's load, a gate
   * panel and an up panel from two weights.
   */
  record PanelPlanes(int count, int dstStride, int srcStride) {
    static final PanelPlanes ONE = new PanelPlanes(1, 0, 0);
  }

  /**
   * The weight panels of one load in SRAM at register {@code sram}, row stride {@code ldb}
   * ({@code transposed}: stored {@code [N, K]}): {@code count} sub-panels of up to 128 columns,
   * {@code stride} bytes apart.
   */
  record Panels(int sram, int ldb, boolean transposed, int count, long stride) {
    static Panels one(int sram, int ldb, boolean transposed) {
      return new Panels(sram, ldb, transposed, 1, 0);
    }
  }

  /** Most bytes of weights one load brings. */
  static final long WIDE_LOAD_BYTES = 32L << 20;
  /** The fixed cycles of a DMA, whatever its size: the ISA table's. */
  static final int DMA_FIXED_CYCLES = InsnTable.byMnemonic("dma").cost().fixedCycles();

  /**
   * The most allreduces a matmul whose result is summed on the link issues (one a load): the
   * LINK queue's depth, so that its sums queue without stalling the control unit for long, which
   * goes on issuing the next ops while they run (SohuBackend: sums that run past their matmul).
   * Fewer, wider loads cost more than they save: a wide load's row groups are shorter (GROUP
   * tiles a group), so its readouts and stores are more and smaller (on the 70B step program, 8
   * was 1% slower in bf16 and 2% in fp8, and 4 slower still).
   */
  static final int MAX_LINK_SUMS = 16;

  /**
   * 128-column weight panels per load: 1, or when streaming the weights bounds the matmul at
   * {@code rowsBound} rows (a decode step's few rows), the power of two nearest the count that
   * balances two costs. Each load's DMA and each group's store cost DMA_FIXED_CYCLES however
   * big (15% on top of a 4 MB panel's stream when paid per panel): {@code nFull} panels in
   * loads of p pay 2 x DMA_FIXED_CYCLES x nFull / p. After the last load arrives the MXU works
   * on its p panels with the DMA queue idle: p times a panel's MXU time. The sum is least at
   * p = sqrt(2 x DMA_FIXED_CYCLES x nFull / panel MXU cycles). At most GROUP, dividing the
   * full panels, a load of at most WIDE_LOAD_BYTES, and {@code slots} such loads beside
   * {@code reserve} bytes and the output ring within the SRAM left. A result {@code summed} on
   * the link (one allreduce a load) takes at least nFull / MAX_LINK_SUMS panels a load, within
   * those limits.
   */
  int panelsPerLoad(long panelBytes, long nFull, long rowsBound, DType dt, int slots,
      long reserve, boolean summed) {
    if (nFull < 2) {
      return 1;
    }
    double mxuOverStream = l.target().mxuOverStream(rowsBound, dt);
    int p = 1;
    if (mxuOverStream < 1) {
      double panelMxuCycles = mxuOverStream * panelBytes / l.target().hbmBytesPerCycle();
      double best = Math.sqrt(2.0 * DMA_FIXED_CYCLES * nFull / Math.max(1, panelMxuCycles));
      // doubling while the next power of two is nearer best on a log scale
      while (2 * p <= GROUP && 2 * p * panelBytes <= WIDE_LOAD_BYTES
          && best >= p * Math.sqrt(2)) {
        p *= 2;
      }
    }
    while (summed && nFull > (long) p * MAX_LINK_SUMS && 2 * p <= GROUP
        && 2 * p * panelBytes <= WIDE_LOAD_BYTES) {
      p *= 2;
    }
    while (p > 1 && (nFull % p != 0 || l.sramUsed() + reserve + ringBytes(l.target())
        + slots * Lowering.align(p * panelBytes) > l.sramLimit())) {
      p /= 2;
    }
    return p;
  }

  /**
   * The row tiles of one load of weight panels with A resident in SRAM ({@code aRowBytes} a
   * row, in the mma's type {@code dt}): the mma reads each tile of A where it lies, so the DMA
   * queue only streams the weights and stores results. Tiles go in groups of GROUP / count
   * row tiles times the load's {@code count} sub-panels: one readout per sub-panel and one
   * store per group (its planes the sub-panels), since a DMA's fixed cost (64 cycles) and a VPU
   * op's are close to a bf16 mma's time and above an fp8 one's. A group's ACC tiles are
   * contiguous per sub-panel (rows one after another), its output tiles hold rows of all its
   * sub-panels ({@code outRowBytes} apart, sub-panel j at column j * nt), its last mma alone
   * signals MXU (the MXU runs in order), and the readout's last instruction signals STORE. The
   * ring holds ring / GROUP groups ({@link #ring}); group i's mmas wait FREE (an MXU fence),
   * which the store of group i - ring / GROUP signals. The load's arrival (it signals PANEL) is
   * awaited by an MXU fence first. The result has {@code outEs}-byte elements (4, or 2 when the readout rounds
   * to bf16).
   */
  void streamResident(int rows, int aBase, int lda, long aRowBytes, int cPtr, MemSpace cSpace,
      long outHbmStride, long outEs, int nt, int outRowBytes, Panels b, int kReg, int kImm,
      DType dt, int mTile, int ldc, boolean needRowStart, Readout readout,
      Runnable afterPrologue) {
    e.emit(Emitter.fence(Engine.MXU, Emitter.TOK_PANEL, 0));
    if (afterPrologue != null) {
      afterPrologue.run();
    }
    long groupTiles = GROUP / b.count();
    int groupRows = e.konst(groupTiles * TILE);
    int outStride = e.konst(outHbmStride);
    int a = e.copy(aBase);
    int c = e.copy(cPtr);
    int rem = e.copy(rows);
    int rowStart = needRowStart ? e.li(0) : 0;
    int groups = e.alloc();
    e.addImm(groups, rows, groupTiles * TILE - 1);
    e.shri(groups, groups, Long.numberOfTrailingZeros(groupTiles * TILE));
    int loop = e.beginLoop(groups, 0);
    e.free(groups);
    // this group's rows and tiles, and its slot: group tileNo mod (ring / GROUP)
    int gRows = e.alloc();
    e.min(gRows, groupRows, rem);
    int tiles = e.alloc();
    e.addImm(tiles, gRows, TILE - 1);
    e.shri(tiles, tiles, 7);
    e.addImm(tiles, tiles, -1);
    int gAcc = e.alloc();
    int slots = ring(l.target()) / GROUP;
    e.shri(gAcc, tileNo, Integer.numberOfTrailingZeros(slots));
    e.mulImm(gAcc, gAcc, slots);
    e.sub(gAcc, tileNo, gAcc);
    int out = e.alloc();
    e.mulImm(out, gAcc, GROUP * TILE * TILE * 4L);
    e.addImm(out, out, outRing);
    e.mulImm(gAcc, gAcc, GROUP * TILE * TILE);
    e.addImm(gAcc, gAcc, l.accBase());
    e.emit(Emitter.fence(Engine.MXU, Emitter.TOK_FREE, 0));
    // per sub-panel: all but the last tile's mma, then the last; the group's very last
    // signals MXU. Each sub-panel walks A from the group's first row (then steps back), the
    // load's register walks the sub-panels (then steps back), and gAcc walks the sub-panel's
    // ACC tiles (remade from out after): no registers of their own.
    for (int j = 0; j < b.count(); j++) {
      if (j > 0) {
        accOfOut(gAcc, out);
        e.addImm(gAcc, gAcc, j * groupTiles * TILE * TILE);
        e.addImm(b.sram(), b.sram(), b.stride());
      }
      IntSupplier mma = () -> {
        int mm = e.emit(new Insn.Mma(gAcc, 0, ldc, a, 0, lda, b.sram(), 0, b.ldb(), mTile, nt,
            kReg, kImm, dt, false, b.transposed(), false, 0, 0));
        e.addImm(gAcc, gAcc, TILE * TILE);
        e.addImm(a, a, TILE * aRowBytes);
        return mm;
      };
      int tileLoop = e.beginLoop(tiles, 0);
      mma.getAsInt();
      e.endLoop(tileLoop);
      int last = mma.getAsInt();
      if (j == b.count() - 1) {
        e.patchTokens(last, 0, TOK_MXU);
      } else {
        int walked = e.alloc();
        e.addImm(walked, tiles, 1);
        e.mulImm(walked, walked, TILE * aRowBytes);
        e.sub(a, a, walked);
        e.free(walked);
      }
    }
    if (b.count() > 1) {
      e.addImm(b.sram(), b.sram(), -(b.count() - 1) * b.stride());
    }
    e.free(tiles);
    accOfOut(gAcc, out);
    // the sub-panels' rows lie one after another in ACC (ldc apart); their readouts fill the
    // group's output rows side by side, the last signals STORE (gAcc and out walk the
    // sub-panels, out stepping back for the store)
    for (int j = 0; j < b.count(); j++) {
      if (j > 0) {
        e.addImm(gAcc, gAcc, groupTiles * TILE * TILE);
        e.addImm(out, out, nt * 4L);
      }
      int last = readout.emit(out, gAcc, gRows, rowStart, j);
      if (j == b.count() - 1) {
        e.patchTokens(last, 0, TOK_STORE);
      }
    }
    if (b.count() > 1) {
      e.addImm(out, out, -(b.count() - 1) * nt * 4L);
    }
    // the output tiles keep f32 rows (a bf16 result is the first half of each sub-panel's):
    // one store, a plane per sub-panel the readout leaves
    int stored = readout.storedSubPanels(b.count());
    int dstPlanes = stored > 1 ? e.konst(nt * outEs) : 0;
    int srcPlanes = stored > 1 ? e.konst(nt * 4L) : 0;
    int st = e.dma(cSpace, c, outStride, MemSpace.SRAM, out, outRowBytes, nt * outEs, gRows, 0,
        0, stored, dstPlanes, srcPlanes);
    e.patchTokens(st, TOK_STORE, Emitter.TOK_FREE);
    e.sub(rem, rem, gRows);
    if (needRowStart) {
      e.add(rowStart, rowStart, gRows);
    }
    e.free(out, gAcc, gRows);
    e.addImm(c, c, groupTiles * TILE * outHbmStride);
    e.addImm(tileNo, tileNo, 1);
    e.endLoop(loop);
    e.free(a, c, rem, rowStart);
  }
}
