package dev.sohuc.backend;

import static dev.sohuc.backend.Emitter.TOK_LOAD;
import static dev.sohuc.backend.Emitter.TOK_MXU;
import static dev.sohuc.backend.Emitter.TOK_STORE;
import static dev.sohuc.backend.Emitter.TOK_VPU;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.Bcast;
import dev.sohuc.isa.BinOp;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.MemSpace;
import dev.sohuc.isa.UnaryFn;
import java.util.List;

/**
 * Fused attention. Loops: batch > kv head > query head of the group (GQA: query head
 * {@code kvh * group + g} reads kv head {@code kvh}) > tiles of 128 query rows. The kv head's K
 * and V ({@code [T, D]}) are loaded once per kv head and shared by its query heads. Per tile:
 * {@code S = Q K^T} in 128-column ACC tiles (unrolled up to the bound of T; columns past the
 * run-time T are never read), {@code accrd} to SRAM (scaled when a mask is added), the mask
 * tile added with {@code vbin}, {@code softmax} over the run-time T with the causal diagonal
 * {@code s0 + T - S}, then {@code O = P V} with k = T from a register.
 *
 * <p>With {@code past_lengths}, batch row b sees its own keys: its key count (its past length
 * plus S, from the argument block: an {@code ldarg} indexed by the row) replaces T in its
 * tiles' loads, softmax and P V, and its K and V heads lie a cache's capacity apart.
 *
 * <p>Schedules: a decode step's stacked heads are software-pipelined over the batch's kv heads
 * ({@link #pipelined}); query tiles without a mask keep two tiles in flight, the MXU's
 * products of one overlapping the VPU's softmax of the other ({@link #prefetched}); the rest
 * (a mask, or two tiles' ACC or SRAM buffers that do not fit) go one tile after another.
 *
 * <p>K and V stored in bf16 (a quantized model's) set the MXU type of both products: each
 * query tile is converted to bf16 in SRAM before {@code Q K^T} and the probabilities after the
 * f32 softmax before {@code P V}; scores, softmax and the output stay f32. f32 K and V keep
 * both products in f32.
 */
final class AttentionLowering {
  static final int TILE = 128;
  /**
   * The most slots the pipelined decode schedule keeps in flight (see {@link #pipelined}). A
   * slot is reloaded once its tile's P V is done: its load's HBM latency, Q K^T, softmax and
   * P V take about four loads' time for a 70B decode's K and V (2k keys), so with six the DMA
   * engine streams without waiting for a slot (with four it idled a fifth of the time).
   */
  static final int MAX_DEPTH = 6;
  /**
   * The fewest slots the pipelined schedule is chosen with: with fewer the loads' HBM latency
   * shows, and the prefetched schedule does as well.
   */
  static final int PIPELINED_MIN_SLOTS = 4;
  /**
   * The most query slots the prefetched schedule keeps in flight (see {@link #prefetched}).
   * Its S = Q K^T is queued with the tile before it, so a query tile's load is queued three
   * tiles before its first use: enough to hide the HBM latency behind a 70B prefill's tiles
   * (with fewer slots the MXU waits for queries).
   */
  static final int PREFETCH_DEPTH = 5;

  private final Lowering l;
  private final Emitter e;
  // per op: the SRAM layout, the shape and the registers its tiles share; a slot is its query
  // tile, output tile, the query in K's type (narrow K) and then K and V (only slot 0 holds
  // K and V in the prefetched schedule, so its further slots end at kOff)
  private long qOff;
  private long oOff;
  private long nqOff;
  private long kOff;
  private long vOff;
  // the buffers P V reads the probabilities from (f32: the scores buffers, softmax in place);
  // two in the overlapped schedule, one tile's P V reading one while the next tile's
  // softmax writes the other
  private long[] pBufs;
  // the pipelined decode schedule's resident query tiles: f32, and in K's type; and its
  // resident output tiles, stored in one DMA after the last
  private long qRes;
  private long nqRes;
  private long oRes;
  // the MXU type (K and V's), its size, and the row bytes of a K or V tile
  private DType mxu;
  private long es;
  private int kvBytes;
  // the scores read out of ACC (softmax in place)
  private long sBuf;
  private long mBuf;
  private boolean mask;
  private boolean causal;
  private long nT;
  private int mTile;
  private long d;
  private float scale;
  private long oFromQ;
  private long vFromK;
  private int tReg;
  // past_lengths (null without): each batch row's key count, its past length plus S, is read
  // from the argument block into tReg before its tiles
  private Value lengths;
  private int sLen;
  /**
   * The positions a K or V head spans when that is a constant (a cache laid out at its capacity,
   * or static keys), else 0 (T, from a register).
   */
  private long kvPositions;
  private int dBytes;
  private int dCols;
  private int padBytes;
  private int padWords;
  // the ACC words of one query tile in flight: its scores S, then at oInRegion its output O
  private long region;
  private long oInRegion;
  // the pipelined decode schedule's window (0: none): each tile loads only its sequence's last
  // keyWindow keys
  private long keyWindow;
  // the sliding window (0: none), put in a register only around each softmax: the prefetched
  // schedule's loops hold every register they can spare
  private long window;
  // the queries' HBM address
  private long qAddr;
  // the prefetched schedule's two tiles' 1 / sum per row
  private long[] sumsBufs;

  AttentionLowering(Lowering l) {
    this.l = l;
    this.e = l.emitter();
  }

  void attention(Node n, TransformerOp.Attention at) {
    TensorType qt = at.q().type();
    TensorType kt = at.k().type();
    long d = qt.dim(3).value();
    long dv = at.v().type().dim(3).value();
    if (dv != d) {
      throw new BackendException(n.describe() + ": value head size " + dv + " differs from "
          + d);
    }
    Dim hq = qt.dim(1);
    Dim hkv = kt.dim(1);
    if (!hq.isStatic() || !hkv.isStatic()) {
      throw new BackendException(n.describe() + ": head counts must be static");
    }
    long group = hq.value() / hkv.value();
    Dim s = qt.dim(2);
    Dim t = kt.dim(2);
    long tBound = t.evaluate(l.bounds());
    // sliding window: softmax masks keys at or before (query position - window); a window of
    // at least the keys at the bounds masks none (Mistral's 4096 over a shorter context)
    window = at.window() < tBound ? at.window() : 0;
    // a decode step (at most one query row per head): the query heads of a kv head are
    // consecutive rows of Q, so they go through as the rows of one tile, reading K and V once
    // per group; one query row sees every key, so the causal diagonal needs no per-head shift
    // (a window would: softmax takes a tile's rows as consecutive positions)
    boolean decode = s.evaluate(l.bounds()) <= 1 && group <= TILE;
    // a decode's one query row sees its sequence's last `window` keys only: with GQA and past
    // lengths each tile loads just those, all visible, so no window is left for softmax and the
    // heads stack (without GQA the softmax's window costs no pipelining, and the register the
    // loads would skip keys by would cost a slot: measured slower on Phi-3)
    keyWindow = decode && group > 1 && window > 0 && at.pastLengths() != null ? window : 0;
    if (keyWindow > 0) {
      window = 0;
    }
    long stack = decode && window == 0 ? group : 1;
    long tPad = Math.max(TILE, (tBound + TILE - 1) / TILE * TILE);
    long nT = tPad / TILE;
    int mTile = s.isStatic() && s.value() * stack < TILE ? (int) Math.max(1, s.value() * stack)
        : TILE;
    oInRegion = TILE * tPad;
    region = oInRegion + TILE * d;
    if (region > l.target().accWords()) {
      throw new BackendException(n.describe() + ": needs " + region
          + " ACC words for keys up to " + tBound + ", the target has "
          + l.target().accWords());
    }
    mxu = QuantLowering.dtype(kt.elementType());
    es = mxu.bytes();
    qOff = 0;
    oOff = TILE * d * 4;
    nqOff = 2 * TILE * d * 4;
    kOff = nqOff + (narrow() ? TILE * d * es : 0);
    vOff = kOff + tPad * d * es;
    long slotBytes = vOff + tPad * d * es;
    long scoreBytes = TILE * tPad * 4;
    // decode without a mask: every kv head is one query tile, so the next heads' K and V load
    // (into further slots) while this head computes, and the batch's query tiles (mTile rows
    // apart, one more for the scores queued past the last) and output tiles are resident: one
    // DMA loads the queries, for narrow K one cvt converts them, and one DMA stores the outputs
    // (where those and four slots do not fit beside the scores and probabilities, the
    // prefetched way)
    long qResBytes = (qt.dim(0).evaluate(l.bounds()) * hkv.value() + 1) * mTile * d * 4;
    long pipelinedSram = 2 * Lowering.align(qResBytes)
        + (narrow() ? Lowering.align(qResBytes / 4 * es) : 0)
        + PIPELINED_MIN_SLOTS * Lowering.align(slotBytes)
        + (narrow() ? 2 : 1) * Lowering.align(TILE * tPad * 4);
    // each tile one kv head with all its query heads: stacked (under a window too, loading the
    // last keys only), or without GQA a head of its own (the softmax keeping Phi-3's window)
    boolean pipelined = decode && stack == group && at.mask() == null
        && l.sramUsed() + pipelinedSram <= l.sramLimit();
    // without a mask, query tiles overlap (see prefetched): two ACC regions, a second query
    // slot and a second probabilities buffer; where they do not fit, tiles go one by one
    long overlapSram = Lowering.align(slotBytes) + Lowering.align(kOff)
        + (narrow() ? 3 : 2) * Lowering.align(scoreBytes) + 2 * Lowering.align(TILE * 4);
    boolean overlap = at.mask() == null && !pipelined
        && 2 * region <= l.target().accWords()
        && l.sramUsed() + overlapSram <= l.sramLimit();
    qRes = pipelined ? l.sram(qResBytes, "the batch's query tiles") : 0;
    nqRes = pipelined && narrow() ? l.sram(qResBytes / 4 * es, "the query tiles in " + mxu) : 0;
    oRes = pipelined ? l.sram(qResBytes, "the batch's output tiles") : 0;
    List<Long> slots = new java.util.ArrayList<>();
    slots.add(l.sram(slotBytes, "keys, values, query and output tiles"));
    // the further slots of the prefetched schedule hold a query and its output only
    long further = pipelined ? slotBytes : kOff;
    if (pipelined || overlap) {
      slots.add(l.sram(further, "the next tile's slot"));
    }
    sBuf = l.sram(scoreBytes, "scores");
    // P in K's type at the scores' row stride (the rest of each row unused), so that P V
    // needs no register of its own for the stride
    pBufs = new long[overlap ? 2 : 1];
    for (int j = 0; j < pBufs.length; j++) {
      pBufs[j] = narrow() ? l.sram(scoreBytes, "probabilities in " + mxu)
          : j == 0 ? sBuf : l.sram(scoreBytes, "the other tile's scores");
    }
    // the overlapped tiles' 1 / sum per row (their softmax defers the division to the readout)
    sumsBufs = overlap ? new long[] {l.sram(TILE * 4, "row sums"), l.sram(TILE * 4, "row sums")}
        : null;
    Value mask = at.mask();
    mBuf = mask == null ? 0 : l.sram(scoreBytes, "mask tile");
    // with past lengths, the prefetched schedule's batch row counter takes a slot's register,
    // and with a window, the register its softmax holds the window in beside the row sums';
    // the pipelined schedule's window, the register its loads skip the earlier keys by
    int depth = pipelined ? MAX_DEPTH - (keyWindow > 0 ? 1 : 0) - registersPastBudget(d, es, tPad)
        : overlap ? PREFETCH_DEPTH - (at.pastLengths() == null ? 0 : 1) - (window > 0 ? 1 : 0)
        : 1;
    while (slots.size() < depth
        && l.sramUsed() + Lowering.align(further) <= l.sramLimit()) {
      slots.add(l.sram(further, "a further tile's slot"));
    }
    this.mask = mask != null;
    this.nT = nT;
    this.mTile = mTile;
    this.d = d;
    scale = (float) at.scale();
    causal = at.causal();

    // run-time dims and strides
    tReg = l.dimReg(t);
    int sReg = l.dimReg(s);
    lengths = at.pastLengths();
    sLen = sReg;
    int rowsReg = stack == 1 ? sReg : l.dimReg(s.times(Dim.of(stack)));
    int qHeadStep = l.dimReg(s.times(Dim.of(d * 4 * stack)));
    // a head's K and V: its positions, or the capacity of a cache appended to in place
    long capacity = l.kvCapacity(at.k());
    kvPositions = capacity > 0 ? capacity : t.isStatic() ? t.value() : 0;
    if (lengths != null && kvPositions == 0) {
      throw new BackendException(n.describe() + ": past_lengths over keys and values not laid out at a "
          + "capacity (kv_cache_write results that only attention reads)");
    }
    int kHeadStep = kvPositions > 0 ? e.li(kvPositions * d * es)
        : l.dimReg(t.times(Dim.of(d * es)));
    qAddr = l.addr(at.q());
    int qP = e.li(qAddr);
    int kP = e.li(l.addr(at.k()));
    // O and V sit at fixed distances from Q and K: one pointer each
    oFromQ = l.addr(n.result()) - l.addr(at.q());
    vFromK = l.addr(at.v()) - l.addr(at.k());
    // mask strides per (batch, head, row); 0 where the mask broadcasts
    int mB = 0;
    int mP = 0;
    int mbStep = 0;
    int mhStep = 0;
    int msStep = 0;
    if (mask != null) {
      TensorType mt = mask.type();
      List<Dim> full = List.of(qt.dim(0), hq, s, t);
      List<Dim> md = new java.util.ArrayList<>();
      for (int i = 0; i < 4 - mt.rank(); i++) {
        md.add(Dim.of(1));
      }
      md.addAll(mt.dims());
      List<Dim> st = Lowering.strides(md, 4);
      mbStep = l.dimReg(md.get(0).is(1) && !full.get(0).is(1) ? Dim.of(0) : st.get(0));
      mhStep = l.dimReg(md.get(1).is(1) && !full.get(1).is(1) ? Dim.of(0) : st.get(1));
      msStep = l.dimReg(md.get(2).is(1) && !full.get(2).is(1) ? Dim.of(0) : st.get(2));
      if (stack > 1) {
        // a stacked tile's rows are heads: the mask's row stride is its head stride
        e.free(msStep);
        msStep = e.copy(mhStep);
        e.mulImm(mhStep, mhStep, stack);
      }
      if (!md.get(3).equals(t)) {
        throw new BackendException(n.describe() + ": a mask that broadcasts over keys");
      }
      mB = e.li(l.addr(mask));
      mP = e.alloc();
    }
    dBytes = e.konst(d * 4);
    dCols = e.konst(d);
    kvBytes = e.konst(d * es);
    padBytes = e.konst(tPad * 4);
    padWords = e.konst(tPad);
    int tileReg = e.konst(TILE);
    if (pipelined) {
      // the query head stride is made where it is used, outside the loop
      e.free(qHeadStep);
      pipelined(qt.dim(0), hkv.value(), slots, qP, kP, s.times(Dim.of(d * 4 * stack)),
          kHeadStep, sReg, rowsReg);
      e.free(tReg, sReg, rowsReg, kHeadStep, qP, kP);
      return;
    }
    if (overlap) {
      // the head strides are made where needed: the loop holds every register it can spare
      e.free(qHeadStep, kHeadStep);
      prefetched(qt.dim(0), hkv.value(), group / stack, slots, qP, kP, sReg, rowsReg);
      e.free(tReg, sReg, rowsReg, qP, kP);
      return;
    }
    int four = e.konst(4);
    Slot slot = Slot.at(slots.get(0));
    int bCount = l.dimReg(qt.dim(0));
    int bIdx = lengths == null ? 0 : e.li(0);
    int bLoop = e.beginLoop(bCount, 0);
    e.free(bCount);
    keysOf(tReg, bIdx);
    if (mask != null) {
      e.add(mP, mB, 0);
    }
    int kvLoop = e.beginLoop(0, hkv.value());
    // K and V of this kv head: queued before the first query tile's load, which carries LOAD
    loadKv(slot, kP, tReg);
    int gLoop = e.beginLoop(0, group / stack);
    int qT = e.copy(qP);
    int mT = mask == null ? 0 : e.copy(mP);
    int rem = e.copy(rowsReg);
    int cur = e.alloc();
    int diag = e.alloc();
    e.sub(diag, tReg, sReg);
    int sTiles = e.alloc();
    e.addImm(sTiles, rowsReg, TILE - 1);
    e.shri(sTiles, sTiles, 7);
    int sLoop = e.beginLoop(sTiles, 0);
    e.free(sTiles);
    e.min(cur, tileReg, rem);
    if (mask != null) {
      // element rows (row_bytes is an immediate, T is not): planes = query rows
      int x1 = e.li(mBuf);
      e.dma(MemSpace.SRAM, x1, four, MemSpace.HBM, mT, four, 4, tReg, 0, cur, 0, padBytes,
          msStep);
      e.free(x1);
    }
    loadQuery(slot, qT, cur);
    compute(slot, slot, cur, diag);
    store(slot, qT, cur);
    int step = e.alloc();
    e.mulImm(step, tileReg, d * 4);
    e.add(qT, qT, step);
    if (mask != null) {
      e.mulImm(step, msStep, TILE);
      e.add(mT, mT, step);
    }
    e.free(step);
    e.sub(rem, rem, tileReg);
    e.add(diag, diag, tileReg);
    e.endLoop(sLoop);
    e.free(qT, mT, rem, cur, diag);
    e.add(qP, qP, qHeadStep);
    if (mask != null) {
      e.add(mP, mP, mhStep);
    }
    e.endLoop(gLoop);
    e.add(kP, kP, kHeadStep);
    e.endLoop(kvLoop);
    if (mask != null) {
      e.add(mB, mB, mbStep);
    }
    nextRow(bIdx);
    e.endLoop(bLoop);
    e.free(tReg, sReg, rowsReg, qHeadStep, kHeadStep, qP, kP, mB, mP, mbStep, mhStep, msStep, bIdx);
  }

  /** {@code rd} = batch row {@code row}'s key count (with past lengths only). */
  private void keysOf(int rd, int row) {
    if (lengths != null) {
      l.loadLength(rd, lengths, row);
      e.add(rd, rd, sLen);
    }
  }

  /** The batch row counter moves on (with past lengths only). */
  private void nextRow(int row) {
    if (lengths != null) {
      e.addImm(row, row, 1);
    }
  }

  /**
   * One query tile per kv head, software-pipelined over the batch's kv heads through a ring of
   * slots: tile i computes while the K and V of tiles i+1 .. i+depth-1 load (the query tiles
   * are resident, loaded and converted before the loop, and the output tiles too, read out
   * into place and stored in one DMA after the loop). A slot is reloaded only after the P V of
   * its previous tile has read it: the reload waits SLOT, which an MXU fence after each P V
   * signals (one signal ahead for the slot no tile used yet, one taken after the loop), so
   * each extra slot hides the HBM latency of a load behind one more compute. The next tile's
   * S = Q K^T is queued between this tile's P V and its read-out, so the MXU and VPU latencies
   * of one tile overlap the other's work (the ACC and SRAM tiles they share are ordered by the
   * engines' queues: the next Q K^T waits behind this P V, which waits for this tile's scores
   * to be read). Loads past the last tile move nothing but still signal LOAD, and the scores
   * past the last tile are never read: their tokens are taken after the loop.
   */
  private void pipelined(Dim batch, long kvHeads, List<Long> slots, int qP, int kP,
      Dim qHeadStep, int kHeadStep, int sReg, int rows) {
    int depth = slots.size();
    int[] ring = new int[depth];
    for (int j = 0; j < depth; j++) {
      ring[j] = e.li(slots.get(j));
    }
    int one = e.konst(1);
    int diag = e.alloc();
    e.sub(diag, tReg, sReg);
    int left = l.dimReg(batch);
    e.mulImm(left, left, kvHeads);
    int count = e.copy(left);
    int tiles = e.copy(left);
    this.kvHeads = kvHeads;
    this.tiles = tiles;
    if (lengths != null && batch.evaluate(l.bounds()) * kvHeads * kvHeads >= 1L << 31) {
      throw new BackendException("a decode batch of " + batch.evaluate(l.bounds()) + " over " + kvHeads
          + " kv heads is too large to find each tile's sequence");
    }
    // with past lengths, the tile computed (its batch row's key count is read per tile)
    int computed = lengths == null ? 0 : e.li(0);
    // the query tiles, tile j at qRes + j * mTile * d * 4 (one DMA), for narrow K converted to
    // nqRes; then qP, not needed in HBM any more, walks the tiles the MXU reads (the loop holds
    // every register it can spare: the head stride and the queries' HBM address are made again
    // for the store after it)
    int x = e.li(qRes);
    int y = e.li(mTile * d * 4);
    int qStep = l.dimReg(qHeadStep);
    int ld = e.dma(MemSpace.SRAM, x, dBytes, MemSpace.HBM, qP, dBytes, d * 4, rows, 0, left, 0,
        y, qStep);
    e.free(qStep);
    if (narrow()) {
      e.patchTokens(ld, 0, TOK_LOAD);
      e.mulImm(y, left, mTile);
      e.emit(new Insn.Li(qP, nqRes, 0, 0));
      e.patchTokens(e.cvt(mxu, qP, kvBytes, DType.F32, x, dBytes, y, dCols), TOK_LOAD, TOK_VPU);
      e.emit(Emitter.fence(dev.sohuc.isa.Engine.MXU, TOK_VPU, 0));
    }
    e.free(x, y);
    e.emit(new Insn.Li(qP, narrow() ? nqRes : qRes, 0, 0));
    Slot query = Slot.in(qP);
    long qTileBytes = mTile * d * es;
    for (int j = 0; j < depth - 1; j++) {
      loadAhead(Slot.in(ring[j]), kP, kHeadStep, left, one, 0);
    }
    Slot now = Slot.in(ring[0]);
    Slot next = Slot.in(ring[1]);
    Slot acc = Slot.at(l.accBase());
    Slot probs = Slot.at(pBufs[0]);
    int out = e.li(oRes);
    scores(now, query, 0, TOK_LOAD, acc);
    e.addImm(qP, qP, qTileBytes);
    // the first reload goes into the slot no tile has used
    e.emit(Emitter.fence(dev.sohuc.isa.Engine.MXU, 0, Emitter.TOK_SLOT));
    int loop = e.beginLoop(count, 0);
    e.free(count);
    if (lengths != null) {
      int row = e.alloc();
      tileRow(row, computed);
      keysOf(tReg, row);
      e.free(row);
      lastKeys(tReg);
      e.sub(diag, tReg, sReg);
      e.addImm(computed, computed, 1);
    }
    softmax(acc, probs, rows, diag);
    weigh(now, acc, probs, rows, diag);
    e.emit(Emitter.fence(dev.sohuc.isa.Engine.MXU, 0, Emitter.TOK_SLOT));
    loadAhead(Slot.in(ring[depth - 1]), kP, kHeadStep, left, one, Emitter.TOK_SLOT);
    scores(next, query, 0, TOK_LOAD, acc);
    e.addImm(qP, qP, qTileBytes);
    readOut(acc, Slot.in(out), null, 0, rows, 0);
    e.addImm(out, out, mTile * d * 4);
    rotate(ring);
    e.endLoop(loop);
    e.emit(Emitter.fence(dev.sohuc.isa.Engine.DMA, Emitter.TOK_SLOT, 0));
    for (int j = 0; j < depth - 2; j++) {
      e.emit(Emitter.fence(dev.sohuc.isa.Engine.MXU, TOK_LOAD, 0));
    }
    e.emit(Emitter.fence(dev.sohuc.isa.Engine.VPU, TOK_MXU, 0));
    // every output tile, once the last is read out (the VPU runs in order)
    e.emit(Emitter.fence(dev.sohuc.isa.Engine.VPU, 0, TOK_STORE));
    int oHbm = e.li(qAddr + oFromQ);
    qStep = l.dimReg(qHeadStep);
    e.emit(new Insn.Li(out, oRes, 0, 0));
    e.patchTokens(e.dma(MemSpace.HBM, oHbm, dBytes, MemSpace.SRAM, out, dBytes, d * 4, rows, 0,
        tiles, 0, qStep, e.konst(mTile * d * 4)), TOK_STORE, 0);
    for (int r : ring) {
      e.free(r);
    }
    e.free(diag, left, tiles, out, oHbm, qStep, computed);
  }

  // the pipelined schedule's kv heads per batch row and its tile count (a register)
  private long kvHeads;
  private int tiles;

  /**
   * {@code rd} = the batch row of tile {@code tile} of the pipelined schedule (a tile per kv
   * head): the tile over the kv heads (for a divisor that is not a power of two, a multiply by
   * ceil(2^31 / kvHeads) and a shift, exact while tile * kvHeads stays below 2^31: its error,
   * under kvHeads, then adds less than one step).
   */
  private void tileRow(int rd, int tile) {
    if (Long.bitCount(kvHeads) == 1) {
      e.shri(rd, tile, Long.numberOfTrailingZeros(kvHeads));
      return;
    }
    e.mulImm(rd, tile, ((1L << 31) + kvHeads - 1) / kvHeads);
    e.shri(rd, rd, 31);
  }

  /**
   * The next tile's K and V into {@code slot} (signals LOAD) and the pointer past them; once
   * {@code left} (tiles not yet loaded) is 0, a load of no rows that still signals LOAD.
   */
  private void loadAhead(Slot slot, int kP, int kHeadStep, int left, int one, int wait) {
    int on = e.alloc();
    e.min(on, left, one);
    int n = e.alloc();
    if (lengths != null) {
      // the key count of the tile loaded: tiles - left, the last tile's once none is left
      // (the first's when there are none: a batch of no rows loads nothing)
      e.max(n, left, one);
      e.sub(n, tiles, n);
      e.max(n, n, 0);
      tileRow(n, n);
      keysOf(n, n);
      e.mul(n, n, on);
    } else {
      e.mul(n, tReg, on);
    }
    // with a window, from the first key the tile sees (its earlier ones skipped)
    int from = kP;
    if (keyWindow > 0) {
      from = e.alloc();
      e.addImm(from, n, -keyWindow);
      e.max(from, from, 0);
      e.sub(n, n, from);
      e.mulImm(from, from, d * es);
      e.add(from, from, kP);
    }
    e.patchTokens(loadKv(slot, from, n), wait, TOK_LOAD);
    e.sub(left, left, on);
    e.add(kP, kP, kHeadStep);
    e.free(on, n);
    if (from != kP) {
      e.free(from);
    }
  }

  /** A tile's key count cut to the last {@link #keyWindow} keys it loads (with a window). */
  private void lastKeys(int keys) {
    if (keyWindow > 0) {
      int w = e.li(keyWindow);
      e.min(keys, keys, w);
      e.free(w);
    }
  }

  /**
   * Query tiles without a mask, the MXU's work on one tile overlapping the VPU's on another:
   * per kv head, its K and V load once into slot 0, then the query tiles of its heads go one
   * after another through a ring of slots (the group's query rows are contiguous, so a load
   * cursor walks them tile by tile, head by head), each tile's load queued {@code depth - 1}
   * tiles ahead, so that its HBM latency hides behind the tiles before it.
   *
   * <p>Per tile i, the MXU computes the next tile's S(i+1) = Q K^T while the VPU reads out S(i)
   * and runs its softmax; then the MXU computes O(i) = P V while the VPU reads out O(i-1):
   * <pre>
   *   VPU: cvt Q(i+1) (narrow K), accrd S(i), softmax(i), cvt P(i) (narrow), accrd O(i-1)
   *   MXU: S(i+1), P V(i)
   *   DMA: load tile i+depth-1 into tile i-1's slot, store O(i-1) from that slot
   * </pre>
   * Two tiles are in flight, so each has its own ACC region (S, then O) and probabilities
   * buffer: tile i those of parity i. Tokens count: the MXU signals S(0), [fence], S(1), P V(0),
   * S(2), P V(1) ... in the order the VPU waits for them (accrd S(0), the 0-row accrd O(-1),
   * accrd S(1), accrd O(0) ...), and for narrow K the VPU signals Q(i+1) before P(i), as the
   * MXU waits for them. A buffer is written only after its last reader is done:
   * <ul>
   *   <li>S(i+1) overwrites S(i-1)'s region after P V(i-1) (MXU order), which waited for the
   *       softmax behind accrd S(i-1); P V(i) overwrites O(i-2) after softmax(i), behind
   *       accrd O(i-2) (VPU order); softmax(i) overwrites P(i-2) after accrd S(i), which
   *       waited for S(i), behind P V(i-2).
   *   <li>A slot's query (and so its conversion, which waits for the load) is reloaded behind
   *       the store of O(i-2) on the DMA queue, which waited for accrd O(i-2), after P V(i-2)
   *       and so after S(i-1) (MXU order) and cvt Q(i-1) (VPU order).
   *   <li>A slot's output tile is rewritten by accrd O(j) after the load of tile j+1 (it waits
   *       the S(j+1) or cvt Q(j+1) that waited for that load), and that load is queued behind
   *       the store of the slot's previous tile.
   * </ul>
   * Loads past the kv head's last tile move nothing but still signal LOAD, and the scores
   * queued past the last tile are never read: their tokens are taken after the head, then its
   * last tile is read out and stored. The next kv head's K and V load is queued behind that
   * store, so after every MXU read of this head's.
   */
  private void prefetched(Dim batch, long kvHeads, long heads, List<Long> slots, int qP,
      int kP, int sReg, int rows) {
    int depth = slots.size();
    Slot kv = Slot.at(slots.get(0));
    int[] ring = new int[depth];
    for (int j = 0; j < depth; j++) {
      ring[j] = e.li(slots.get(j));
    }
    int tileReg = e.konst(TILE);
    int one = e.konst(1);
    // the load cursor: the next query row to load, the rows left in its head, the heads after
    int qLoad = e.copy(qP);
    int loadRows = e.alloc();
    int loadHeads = e.alloc();
    // the parity of the tile now computed (its ACC region and probabilities buffer), and the
    // rows of the tile before it, stored this iteration at qP (the output rows not yet stored)
    int parity = e.alloc();
    int prevRows = e.alloc();
    e.emit(new Insn.Li(parity, 0, 0, 0));
    int bCount = l.dimReg(batch);
    int bIdx = lengths == null ? 0 : e.li(0);
    int bLoop = e.beginLoop(bCount, 0);
    e.free(bCount);
    keysOf(tReg, bIdx);
    int kvLoop = e.beginLoop(0, kvHeads);
    // K and V of this kv head: queued before the first query tile's load, which carries LOAD
    loadKv(kv, kP, tReg);
    e.add(loadRows, rows, 0);
    e.emit(new Insn.Li(loadHeads, heads - 1, 0, 0));
    for (int j = 0; j < depth - 1; j++) {
      loadNextQuery(Slot.in(ring[j]), qLoad, loadRows, loadHeads, rows, tileReg, one);
    }
    // this tile's ACC region and probabilities buffer, and the other tile's region
    Slot acc = region(parity, false);
    Slot probs = Slot.alternating(parity, pBufs[0], pBufs[1]);
    Slot other = region(parity, true);
    // each tile's 1 / sum per row (its softmax defers the division to its readout), and the
    // other tile's
    Slot sums = Slot.alternating(parity, sumsBufs[0], sumsBufs[1]);
    Slot otherSums = Slot.alternating(parity, sumsBufs[1], sumsBufs[0]);
    queryScores(kv, Slot.in(ring[0]), tileReg, acc);
    e.emit(Emitter.fence(dev.sohuc.isa.Engine.MXU, 0, TOK_MXU));
    e.emit(new Insn.Li(prevRows, 0, 0, 0));
    int gLoop = e.beginLoop(0, heads);
    int rem = e.copy(rows);
    int diag = e.alloc();
    e.sub(diag, tReg, sReg);
    int t = e.alloc();
    e.addImm(t, rows, TILE - 1);
    e.shri(t, t, 7);
    int sLoop = e.beginLoop(t, 0);
    e.free(t);
    int rowsNow = e.alloc();
    e.min(rowsNow, tileReg, rem);
    Slot next = Slot.in(ring[1]);
    Slot prev = Slot.in(ring[depth - 1]);
    if (narrow()) {
      convertQuery(next, tileReg);
    }
    softmax(acc, probs, sums, rowsNow, diag);
    slotScores(kv, next, other);
    weigh(kv, acc, probs, rowsNow, diag);
    // queued before the store of O(i-1) for one more tile of lead: it writes only the query
    // of tile i-1's slot, which S(i-1) has read (see above)
    loadNextQuery(prev, qLoad, loadRows, loadHeads, rows, tileReg, one);
    storeTile(other, prev, otherSums, qP, prevRows);
    e.add(prevRows, rowsNow, 0);
    e.free(rowsNow);
    rotate(ring);
    e.sub(parity, one, parity);
    e.sub(rem, rem, tileReg);
    e.add(diag, diag, tileReg);
    e.endLoop(sLoop);
    e.free(rem, diag);
    e.endLoop(gLoop);
    for (int j = 0; j < depth - 2; j++) {
      e.emit(Emitter.fence(loadConsumer(), TOK_LOAD, 0));
    }
    // the scores past the last tile, never read; then the last tile (the parity flipped past
    // it, its slot rotated to the ring's end)
    e.emit(Emitter.fence(dev.sohuc.isa.Engine.VPU, TOK_MXU, 0));
    storeTile(other, Slot.in(ring[depth - 1]), otherSums, qP, prevRows);
    // the next kv head's K: T rows on (or the positions a head spans, when constant)
    if (kvPositions > 0) {
      e.addImm(kP, kP, kvPositions * d * es);
    } else {
      int step = e.alloc();
      e.mulImm(step, tReg, d * es);
      e.add(kP, kP, step);
      e.free(step);
    }
    e.endLoop(kvLoop);
    nextRow(bIdx);
    e.endLoop(bLoop);
    for (int r : ring) {
      e.free(r);
    }
    e.free(qLoad, loadRows, loadHeads, parity, prevRows, bIdx);
  }

  /**
   * The {@code rows} rows of a finished tile, O in the ACC region {@code acc}, read out into
   * its slot (waits MXU), each row times its 1 / sum at {@code sums}, and stored to the output
   * rows at {@code qP}, which then moves past them.
   */
  private void storeTile(Slot acc, Slot slot, Slot sums, int qP, int rows) {
    readOut(acc, slot, sums, rows);
    store(slot, qP, rows);
    int step = e.alloc();
    e.mulImm(step, rows, d * 4);
    e.add(qP, qP, step);
    e.free(step);
  }

  /** The ACC region of the tile of {@code parity}, or of the other tile in flight. */
  private Slot region(int parity, boolean other) {
    long r0 = l.accBase();
    long r1 = l.accBase() + region;
    return other ? Slot.alternating(parity, r1, r0) : Slot.alternating(parity, r0, r1);
  }

  /**
   * The query tile at the load cursor into {@code slot} (signals LOAD): up to 128 of the rows
   * left in its head, then the cursor moves past them, to the next head when this one is done;
   * past the last head, a load of no rows.
   */
  private void loadNextQuery(Slot slot, int qLoad, int loadRows, int loadHeads, int rows,
      int tileReg, int one) {
    int n = e.alloc();
    e.min(n, tileReg, loadRows);
    loadQuery(slot, qLoad, n);
    e.sub(loadRows, loadRows, n);
    e.mulImm(n, n, d * 4);
    e.add(qLoad, qLoad, n);
    // the head is done (no rows left) and another follows: the cursor moves to it
    int next = e.alloc();
    e.min(n, loadRows, one);
    e.sub(n, one, n);
    e.min(next, loadHeads, one);
    e.mul(n, n, next);
    e.sub(loadHeads, loadHeads, n);
    e.mul(n, n, rows);
    e.add(loadRows, loadRows, n);
    e.free(n, next);
  }

  /** The ring of slot registers turns by one: each takes the next's slot, the last the first's. */
  private void rotate(int[] ring) {
    int t = e.copy(ring[0]);
    for (int j = 0; j < ring.length - 1; j++) {
      e.add(ring[j], ring[j + 1], 0);
    }
    e.add(ring[ring.length - 1], t, 0);
    e.free(t);
  }

  /** The engine that waits a query tile's LOAD: the query's conversion, else the first mma. */
  private dev.sohuc.isa.Engine loadConsumer() {
    return narrow() ? dev.sohuc.isa.Engine.VPU : dev.sohuc.isa.Engine.MXU;
  }

  /**
   * The registers the pipelined schedule's constants and the program's symbols take past what
   * MAX_DEPTH leaves them: three symbols, and five distinct constants among the query and K row
   * bytes, the head size, the padded keys in bytes and in words, and the tile (128-wide heads
   * make the head size the tile's). A small model's heads (16 wide) take one more; each is a
   * slot fewer.
   */
  private int registersPastBudget(long d, long es, long tPad) {
    long constants = java.util.stream.LongStream.of(d * 4, d, d * es, tPad * 4, tPad, TILE)
        .distinct().count();
    return (int) Math.max(0, constants - 5) + Math.max(0, e.liveRegisters() - 3);
  }

  /** K and V narrower than f32: both products run in their type. */
  private boolean narrow() {
    return mxu != DType.F32;
  }

  /**
   * A base address, of an SRAM slot or buffer or of an ACC region: a constant, in a register
   * (slots that rotate), or one of two constants by a parity register (buffers that alternate):
   * {@code base + step * reg}.
   */
  private record Slot(int reg, long base, long step) {
    static Slot at(long base) {
      return new Slot(0, base, 0);
    }

    static Slot in(int reg) {
      return new Slot(reg, 0, 1);
    }

    /** {@code at0} while {@code parity} is 0, {@code at1} while it is 1. */
    static Slot alternating(int parity, long at0, long at1) {
      return new Slot(parity, at0, at1 - at0);
    }

    void addr(Emitter e, int x, long off) {
      if (reg == 0 || step == 0) {
        e.emit(new Insn.Li(x, base + off, 0, 0));
      } else if (step == 1) {
        e.addImm(x, reg, base + off);
      } else {
        e.mulImm(x, reg, step);
        e.addImm(x, x, base + off);
      }
    }
  }

  /** A fresh register holding the address of a tile's row sums, or 0 (r0) without them. */
  private int sumsAddress(Slot sums) {
    if (sums == null) {
      return 0;
    }
    int r = e.alloc();
    sums.addr(e, r, 0);
    return r;
  }

  /**
   * The first {@code keys} keys and values of the kv head at {@code kP} (HBM) into the slot:
   * one DMA of two planes, K's and V's, paying the DMA's fixed cost once.
   */
  private int loadKv(Slot slot, int kP, int keys) {
    int a = e.alloc();
    slot.addr(e, a, kOff);
    int dstPlanes = e.li(vOff - kOff);
    int srcPlanes = e.li(vFromK);
    int pc = e.dma(MemSpace.SRAM, a, kvBytes, MemSpace.HBM, kP, kvBytes, d * es, keys, 0, 0, 2,
        dstPlanes, srcPlanes);
    e.free(a, dstPlanes, srcPlanes);
    return pc;
  }

  /** {@code rows} query rows at {@code qT} (HBM) into the slot; the load signals LOAD. */
  private void loadQuery(Slot slot, int qT, int rows) {
    int x = e.alloc();
    slot.addr(e, x, qOff);
    int ld = e.dma(MemSpace.SRAM, x, dBytes, MemSpace.HBM, qT, dBytes, d * 4, rows, 0, 0, 1,
        0, 0);
    e.patchTokens(ld, 0, TOK_LOAD);
    e.free(x);
  }

  /**
   * The slot's query tile against the K and V in {@code kv}: S = Q K^T (the first mma, or for
   * narrow K the query's conversion, waits LOAD), scaled and masked, softmax, O = P V, into the
   * slot's output tile (the last accrd signals STORE); one ACC region and one probabilities
   * buffer.
   */
  private void compute(Slot kv, Slot slot, int cur, int diag) {
    Slot acc = Slot.at(l.accBase());
    Slot probs = Slot.at(pBufs[0]);
    queryScores(kv, slot, cur, acc);
    softmax(acc, probs, cur, diag);
    weigh(kv, acc, probs, cur, diag);
    readOut(acc, slot, null, cur);
  }

  /**
   * S = Q K^T of the slot's query tile into {@code acc} (it waits LOAD); for narrow K its
   * {@code rows} rows converted first.
   */
  private void queryScores(Slot kv, Slot slot, int rows, Slot acc) {
    if (narrow()) {
      convertQuery(slot, rows);
    }
    slotScores(kv, slot, acc);
  }

  /**
   * S = Q K^T of the slot's query tile, already in K's type, into {@code acc}: the first mma
   * waits LOAD, or for narrow K the VPU's conversion.
   */
  private void slotScores(Slot kv, Slot slot, Slot acc) {
    scores(kv, slot, narrow() ? nqOff : qOff, narrow() ? TOK_VPU : TOK_LOAD, acc);
  }

  /** The slot's f32 query tile into K's type beside it (waits LOAD, signals VPU). */
  private void convertQuery(Slot slot, int cur) {
    int x1 = e.alloc();
    int x2 = e.alloc();
    slot.addr(e, x1, qOff);
    slot.addr(e, x2, nqOff);
    e.patchTokens(e.cvt(mxu, x2, kvBytes, DType.F32, x1, dBytes, cur, dCols), TOK_LOAD,
        TOK_VPU);
    e.free(x1, x2);
  }

  /**
   * S = Q K^T into the scores of the ACC region {@code acc}, 128 key columns per mma, the query
   * tile in K's type at {@code q.addr(at)} (the first mma waits {@code wait}, the last signals
   * MXU).
   */
  private void scores(Slot kv, Slot q, long at, int wait, Slot acc) {
    int x1 = e.alloc();
    q.addr(e, x1, at);
    int bT = e.alloc();
    kv.addr(e, bT, kOff);
    int accT = e.alloc();
    acc.addr(e, accT, 0);
    for (int i = 0; i < nT; i++) {
      int mm = e.mma(mxu, accT, padWords, x1, kvBytes, bT, kvBytes, mTile, TILE, 0, (int) d,
          false, true, false);
      if (i == 0) {
        e.patchTokens(mm, wait, 0);
      }
      if (i == nT - 1) {
        e.patchTokens(mm, 0, TOK_MXU);
      }
      e.addImm(bT, bT, TILE * d * es);
      e.addImm(accT, accT, TILE);
    }
    e.free(bT, accT, x1);
  }

  /**
   * The key columns the tile's rows see: T (in tReg), or causal, up to its last row's diagonal
   * (a fresh register): the tile's last row sees keys 0..diag + cur - 1 and no row sees more,
   * so the scores are read out, normalized and multiplied by V over those columns only (the
   * rest would get probability 0).
   */
  private int visibleKeys(int cur, int diag) {
    if (!causal) {
      return tReg;
    }
    int cols = e.alloc();
    e.add(cols, diag, cur);
    e.min(cols, cols, tReg);
    return cols;
  }

  /**
   * The softmax of S in {@code acc} (waits MXU) into the probabilities at {@code probs} for P V
   * (signals VPU). Without a mask the softmax reads S straight from ACC ({@code src_acc}); with
   * one, S is read out to SRAM first (scaled), where the mask tile is added. f32: the
   * probabilities at probs; narrow: in K's type, bf16 by the softmax itself, another type by a
   * cvt from the scores buffer after it.
   */
  private void softmax(Slot acc, Slot probs, int cur, int diag) {
    softmax(acc, probs, null, cur, diag);
  }

  /**
   * {@link #softmax}; with {@code sums} (not null) the probabilities are left unnormalized and
   * each row's 1 / sum goes to that slot, which the readout of O multiplies by.
   */
  private void softmax(Slot acc, Slot probs, Slot sums, int cur, int diag) {
    int cols = visibleKeys(cur, diag);
    // the scores (in SRAM, read out of ACC for the mask, or where the mma left them) and the
    // softmax's output; registers are read at issue, so each is reused once its reader is queued
    int src = e.alloc();
    int dst = e.alloc();
    if (mask) {
      if (narrow()) {
        e.emit(new Insn.Li(src, sBuf, 0, 0));
      } else {
        probs.addr(e, src, 0);
      }
      acc.addr(e, dst, 0);
      e.patchTokens(e.accrd(src, padBytes, dst, padWords, cur, cols, scale, Bcast.NONE, 0,
          UnaryFn.NONE), TOK_MXU, 0);
      e.emit(new Insn.Li(dst, mBuf, 0, 0));
      e.vbin(BinOp.ADD, src, padBytes, src, padBytes, dst, padBytes, cur, cols, Bcast.NONE);
    } else {
      acc.addr(e, src, 0);
    }
    // narrow: the probabilities in bf16 straight from the softmax, another type by a cvt
    boolean toBf16 = mxu == DType.BF16;
    boolean thenCvt = narrow() && !toBf16;
    if (thenCvt) {
      e.emit(new Insn.Li(dst, sBuf, 0, 0));
    } else {
      probs.addr(e, dst, 0);
    }
    int win = window > 0 ? e.li(window) : 0;
    int sum = sumsAddress(sums);
    e.emit(new Insn.Softmax(dst, 0, padBytes, src, 0, mask ? padBytes : padWords, cur, cols,
        DType.F32, mask ? 1.0f : scale, causal, causal || win != 0 ? diag : 0, 0, win, toBf16,
        !mask, sum, mask ? 0 : TOK_MXU, thenCvt ? 0 : TOK_VPU));
    e.free(win, sum);
    if (thenCvt) {
      probs.addr(e, src, 0);
      e.patchTokens(e.cvt(mxu, src, padBytes, DType.F32, dst, padBytes, cur, cols), 0, TOK_VPU);
    }
    e.free(src, dst);
    if (cols != tReg) {
      e.free(cols);
    }
  }

  /**
   * O = P V over the visible keys, P at {@code probs}, into the output of {@code acc} (waits
   * VPU, signals MXU).
   */
  private void weigh(Slot kv, Slot acc, Slot probs, int cur, int diag) {
    int cols = visibleKeys(cur, diag);
    int x1 = e.alloc();
    int x2 = e.alloc();
    int o = e.alloc();
    probs.addr(e, x1, 0);
    kv.addr(e, x2, vOff);
    acc.addr(e, o, oInRegion);
    // O's columns in blocks of the MXU's 128 (a head size above it: Gemma's 256); the MXU runs
    // them in order, so the first waits for P and the last tells that O is done
    for (long c = 0; c < d; c += TILE) {
      if (c > 0) {
        e.addImm(x2, x2, TILE * es);
        e.addImm(o, o, TILE);
      }
      int pv = e.mma(mxu, o, dCols, x1, padBytes, x2, kvBytes, mTile, (int) Math.min(TILE, d - c),
          cols, 0, false, false, false);
      e.patchTokens(pv, c == 0 ? TOK_VPU : 0, c + TILE >= d ? TOK_MXU : 0);
    }
    e.free(x1, x2, o);
    if (cols != tReg) {
      e.free(cols);
    }
  }

  /**
   * O from the ACC region {@code acc} into the slot's output tile (waits MXU, signals STORE),
   * each row times its 1 / sum at {@code sums} when the softmax left P unnormalized (else null).
   */
  private void readOut(Slot acc, Slot slot, Slot sums, int cur) {
    readOut(acc, slot, sums, oOff, cur, TOK_STORE);
  }

  /** O from the ACC region {@code acc} to {@code at} in {@code slot} (waits MXU). */
  private void readOut(Slot acc, Slot slot, Slot sums, long at, int cur, int signal) {
    int x = e.alloc();
    slot.addr(e, x, at);
    int o = e.alloc();
    acc.addr(e, o, oInRegion);
    int sum = sumsAddress(sums);
    int ro = e.emit(new Insn.Accrd(x, 0, dBytes, o, 0, dCols, cur, dCols, DType.F32, false, 1.0f,
        sums == null ? Bcast.NONE : Bcast.COL, sum, 0, UnaryFn.NONE, sums != null, 0, 0));
    e.patchTokens(ro, TOK_MXU, signal);
    e.free(x, o, sum);
  }

  /** The slot's output tile to the rows of O for the query rows at {@code qT} (waits STORE). */
  private void store(Slot slot, int qT, int rows) {
    int oHbm = e.alloc();
    e.addImm(oHbm, qT, oFromQ);
    int x = e.alloc();
    slot.addr(e, x, oOff);
    int st = e.dma(MemSpace.HBM, oHbm, dBytes, MemSpace.SRAM, x, dBytes, d * 4, rows, 0, 0, 1,
        0, 0);
    e.patchTokens(st, TOK_STORE, 0);
    e.free(oHbm, x);
  }
}
