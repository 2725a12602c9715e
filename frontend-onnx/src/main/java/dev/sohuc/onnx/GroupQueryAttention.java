package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import java.util.List;

/**
 * ONNX Runtime's GroupQueryAttention, the attention of onnxruntime-genai's decoder exports:
 * query [B, S, Nq * H] with key and value [B, S, Nkv * H] (or all three packed in the query),
 * the new keys and values after past_key / past_value [B, Nkv, P, H], and causal attention of
 * each query head over its group's kv head, optionally rotated (do_rotary, with cos_cache and
 * sin_cache) and windowed (local_window_size).
 *
 * <p>seqlens_k [B] holds each sequence's total length less one: sequence b has
 * {@code L = seqlens_k[b] + 1 - S} valid past tokens (none in a first prompt) and its queries
 * sit at positions {@code L .. L + S - 1}. The presents are the past buffer followed by the new
 * keys, [B, Nkv, P + S, H], and the attention reads them through a mask built from seqlens_k:
 * query i of sequence b sees the past rows below L and the new rows up to its own. That is
 * ONNX Runtime's attention for any lengths; the presents are its presents when each sequence's
 * past fills its buffer (L = P, separate past and present buffers, no padding), the layout a
 * decode loop feeding each present back as the next past keeps.
 */
final class GroupQueryAttention {
  private static final List<Long> TO_HEADS = List.of(0L, 2L, 1L, 3L);

  private GroupQueryAttention() {}

  static void importNode(OnnxNode n) {
    String[] unsupported = {"position_ids", "attention_bias", "head_sink"};
    for (int i = 9; i < n.inputCount(); i++) {
      if (n.has(i)) {
        throw n.error("input " + i + " (" + unsupported[Math.min(i - 9, 2)] + ") is not supported");
      }
    }
    if (n.wants(3)) {
      throw n.error("output 3 (output_qk) is not supported");
    }
    if (n.attrFloat("softcap", 0) != 0) {
      throw n.error("softcap is not supported");
    }
    if (n.attrInt("smooth_softmax", 0) != 0) {
      throw n.error("smooth_softmax is not supported");
    }
    long heads = n.attrInt("num_heads", 0);
    long kvHeads = n.attrInt("kv_num_heads", 0);
    if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) {
      throw n.error("num_heads (" + heads + ") and kv_num_heads (" + kvHeads
          + ") must be positive, the first a multiple of the second");
    }
    TensorType qt = n.type(0);
    if (qt.rank() != 3 || !qt.dim(2).isStatic()) {
      throw n.error("query must be [batch, sequence, hidden] with a static hidden size, got " + qt);
    }
    if (n.has(1) != n.has(2)) {
      throw n.error("key and value must both be given, or neither (packed QKV in the query)");
    }
    boolean packed = !n.has(1);
    long width = qt.dim(2).value();
    if (heads > width || kvHeads > width) {
      throw n.error("num_heads (" + heads + ") and kv_num_heads (" + kvHeads + ") must not exceed the query's "
          + width + " columns");
    }
    long perHead = packed ? heads + 2 * kvHeads : heads;
    if (width % perHead != 0) {
      throw n.error("query's " + width + " columns do not split into " + perHead + " heads");
    }
    long h = width / perHead;
    Dim b = qt.dim(0);
    Dim s = qt.dim(1);
    Value query = n.value(0);
    Value q;
    Value k;
    Value v;
    if (packed) {
      q = heads(n, slice(n, query, 0, heads * h), b, s, heads, h);
      k = heads(n, slice(n, query, heads * h, kvHeads * h), b, s, kvHeads, h);
      v = heads(n, slice(n, query, (heads + kvHeads) * h, kvHeads * h), b, s, kvHeads, h);
    } else {
      List<Dim> kv = List.of(b, s, Dim.of(kvHeads * h));
      if (!n.type(1).dims().equals(kv) || !n.type(2).dims().equals(kv)) {
        throw n.error("key " + n.type(1) + " and value " + n.type(2) + " must be [" + b + ", " + s + ", "
            + kvHeads * h + "] (kv_num_heads x the query's head size)");
      }
      q = heads(n, query, b, s, heads, h);
      k = heads(n, n.value(1), b, s, kvHeads, h);
      v = heads(n, n.value(2), b, s, kvHeads, h);
    }
    if (!n.has(5) || n.type(5).elementType() != ElementType.I32 || n.type(5).rank() != 1
        || !n.type(5).dim(0).equals(b)) {
      throw n.error("seqlens_k must be given, int32 [" + b + "]" + (n.has(5) ? ", got " + n.type(5) : ""));
    }
    if (n.has(3) != n.has(4)) {
      throw n.error("past_key and past_value must both be given, or neither");
    }
    // in f32, exact for whole numbers below 2^24, which the chip computes (it has no integer
    // arithmetic): the last position (seqlens_k) and L, each sequence's valid past, its queries'
    // first position. Without past inputs a first prompt: its queries at 0 .. S - 1 in every
    // sequence, as ONNX Runtime takes a prompt (one table of positions for all)
    Value last = lastPosition(n, n.value(5));
    Value past = !n.has(3) ? n.reshape(scalar(n, 0), List.of(Dim.of(1)))
        : binary(n, BinaryKind.MAX, binary(n, BinaryKind.SUB, binary(n, BinaryKind.ADD, last, scalar(n, 1)),
            count(n, s)), scalar(n, 0));
    Value queryPos = binary(n, BinaryKind.ADD, n.reshape(past, List.of(past.type().dim(0), Dim.of(1))),
        n.reshape(n.temp(new SourceOp.Range(0, s, 1, ElementType.F32)), List.of(Dim.of(1), s)));
    if (n.attrInt("do_rotary", 0) != 0) {
      Value cos = n.value(7, "cos_cache");
      Value sin = n.value(8, "sin_cache");
      TensorType ct = cos.type();
      if (ct.rank() != 2 || !ct.dim(1).isStatic() || !sin.type().equals(ct) || ct.elementType() != qt.elementType()
          || ct.dim(1).value() < 1 || 2 * ct.dim(1).value() > h) {
        throw n.error("cos_cache and sin_cache must be [positions, rotary dims / 2] of the query's type, at most "
            + "half the head size " + h + ", got " + ct + " and " + sin.type());
      }
      boolean interleaved = n.attrInt("rotary_interleaved", 0) != 0;
      Value rowIds = n.temp(new ElementwiseOp.Cast(queryPos, ElementType.I32));
      q = OnnxOps.rope(n, q, cos, sin, rowIds, interleaved);
      k = OnnxOps.rope(n, k, cos, sin, rowIds, interleaved);
    }
    Dim pastRows = Dim.of(0);
    if (n.has(3)) {
      TensorType pt = n.type(3);
      if (pt.rank() != 4 || !pt.dim(0).equals(b) || !pt.dim(1).is(kvHeads) || !pt.dim(3).is(h)
          || !n.type(4).equals(pt)) {
        throw n.error("past_key and past_value must be [" + b + ", " + kvHeads + ", past, " + h + "], got " + pt
            + " and " + n.type(4));
      }
      pastRows = pt.dim(2);
      k = n.temp(new TransformerOp.KvCacheAppend(n.value(3), k));
      v = n.temp(new TransformerOp.KvCacheAppend(n.value(4), v));
    }
    if (n.wants(1)) {
      n.set(1, k);
    }
    if (n.wants(2)) {
      n.set(2, v);
    }
    Value mask = mask(n, last, past, queryPos, pastRows, b, s, qt.elementType());
    Value attended = n.temp(new TransformerOp.Attention(q, k, v, mask, OnnxOps.scale(n, h), false, 0));
    n.emit(new DataOp.Reshape(n.temp(new DataOp.Transpose(attended, TO_HEADS)), List.of(b, s, Dim.of(heads * h))));
  }

  /**
   * The additive [B, 1, S, P + S] mask, the past rows' part beside the new rows': 0 where query
   * i of sequence b sees key j (a valid past row, below L, or a new row no later than its own; at
   * a position no later than the sequence's last, seqlens_k[b], which cuts a padded prompt's keys;
   * with a window, no more than local_window_size positions back), the type's lowest value
   * elsewhere. A padded first prompt's rows past its length are padding (ONNX Runtime's own are
   * unspecified there). Each condition is a 0 / lowest-value term and the mask their minimum.
   */
  private static Value mask(OnnxNode n, Value last, Value past, Value positions, Dim pastRows, Dim b, Dim s,
      ElementType et) {
    Dim sequences = past.type().dim(0);
    Value first = n.reshape(past, List.of(sequences, Dim.of(1), Dim.of(1), Dim.of(1)));
    Value end = n.reshape(last, List.of(b, Dim.of(1), Dim.of(1), Dim.of(1)));
    Value row = n.reshape(n.temp(new SourceOp.Range(0, s, 1, ElementType.F32)),
        List.of(Dim.of(1), Dim.of(1), s, Dim.of(1)));
    Value queryPos = n.reshape(positions, List.of(sequences, Dim.of(1), s, Dim.of(1)));
    long window = n.attrInt("local_window_size", -1);
    // the past rows: positions 0 .. P - 1
    Value pastKey = n.reshape(n.temp(new SourceOp.Range(0, pastRows, 1, ElementType.F32)),
        List.of(Dim.of(1), Dim.of(1), Dim.of(1), pastRows));
    Value pastTerm = visibleIf(n, BinaryKind.LESS, pastKey, first, et);
    // the new rows: positions L .. L + S - 1
    Value newKey = n.reshape(n.temp(new SourceOp.Range(0, s, 1, ElementType.F32)),
        List.of(Dim.of(1), Dim.of(1), Dim.of(1), s));
    Value newPos = binary(n, BinaryKind.ADD, first, newKey);
    Value newTerm = binary(n, BinaryKind.MIN, visibleIf(n, BinaryKind.LESS_EQUAL, newKey, row, et),
        visibleIf(n, BinaryKind.LESS_EQUAL, newPos, end, et));
    if (window > 0) {  // ONNX Runtime's kernel takes 0 as no window, as -1
      pastTerm = binary(n, BinaryKind.MIN, pastTerm, withinWindow(n, queryPos, pastKey, window, et));
      newTerm = binary(n, BinaryKind.MIN, newTerm, withinWindow(n, queryPos, newPos, window, et));
    }
    List<Dim> scores = List.of(b, Dim.of(1), s, pastRows);
    return pastRows.is(0) ? newTerm : n.temp(new DataOp.Concat(List.of(n.temp(new DataOp.Expand(pastTerm, scores)),
        n.temp(new DataOp.Expand(newTerm, List.of(b, Dim.of(1), s, s)))), 3));
  }

  /**
   * 0 where {@code a kind b}, the type's lowest value elsewhere; compared as {@code a - b} against
   * 0, a scalar the chip compares with in any direction (of two broadcast operands, it compares
   * only with >= and <).
   */
  private static Value visibleIf(OnnxNode n, BinaryKind kind, Value a, Value b, ElementType et) {
    return n.temp(new ElementwiseOp.Where(binary(n, kind, binary(n, BinaryKind.SUB, a, b), scalar(n, 0)),
        n.constant(Tensor.scalar(et, 0)), n.constant(Tensor.scalar(et, -Float.MAX_VALUE))));
  }

  private static Value withinWindow(OnnxNode n, Value queryPos, Value keyPos, long window, ElementType et) {
    return visibleIf(n, BinaryKind.LESS_EQUAL, binary(n, BinaryKind.SUB, queryPos, keyPos), scalar(n, window), et);
  }

  /**
   * seqlens_k, each sequence's last position, as f32 [B]. onnxruntime-genai computes it from the
   * attention mask, {@code int32(ReduceSum(mask, last axis) - 1)}: that is summed in f32 here
   * instead (the integer ops left unread are removed), as the chip can; a seqlens_k input is
   * converted.
   */
  private static Value lastPosition(OnnxNode n, Value seqlens) {
    Value v = seqlens;
    while (v.producer() != null && v.producer().op() instanceof ElementwiseOp.Cast c
        && !c.x().type().elementType().isFloat()) {
      v = c.x();
    }
    if (v.producer() != null && v.producer().op() instanceof ElementwiseOp.Binary sub
        && sub.kind() == BinaryKind.SUB && isOne(sub.rhs()) && sub.lhs().producer() != null
        && sub.lhs().producer().op() instanceof ReductionOp.Reduce r && r.kind() == ReductionOp.ReduceKind.SUM
        && !r.keepdims() && r.x().type().rank() == 2 && r.reducedAxes().equals(List.of(1))) {
      Value mask = n.temp(new ElementwiseOp.Cast(r.x(), ElementType.F32));
      Value sum = n.temp(new ReductionOp.Reduce(ReductionOp.ReduceKind.SUM, mask, List.of(1L), false));
      return binary(n, BinaryKind.SUB, sum, scalar(n, 1));
    }
    return n.temp(new ElementwiseOp.Cast(seqlens, ElementType.F32));
  }

  private static boolean isOne(Value v) {
    return v.producer() != null && v.producer().op() instanceof SourceOp.Constant c && c.value().size() == 1
        && c.value().get(0) == 1;
  }

  private static Value scalar(OnnxNode n, double v) {
    return n.constant(Tensor.scalar(ElementType.F32, v));
  }

  /**
   * A positive dim's value in f32: a constant when static, else a sum of ones over it (the chip
   * holds a dim's value in its control unit, not as data, but sums over a symbolic length).
   */
  private static Value count(OnnxNode n, Dim d) {
    if (d.isStatic()) {
      return scalar(n, d.value());
    }
    Value range = n.temp(new SourceOp.Range(0, d, 1, ElementType.F32));
    Value ones = binary(n, BinaryKind.ADD, binary(n, BinaryKind.MUL, range, scalar(n, 0)), scalar(n, 1));
    return n.temp(new ReductionOp.Reduce(ReductionOp.ReduceKind.SUM, n.reshape(ones, List.of(Dim.of(1), d)),
        List.of(1L), false));
  }

  private static Value binary(OnnxNode n, BinaryKind kind, Value a, Value b) {
    return n.temp(new ElementwiseOp.Binary(kind, a, b));
  }

  /** Columns [start, start + width) of the packed projection. */
  private static Value slice(OnnxNode n, Value x, long start, long width) {
    return n.temp(new DataOp.Slice(x, List.of(Dim.of(start)), List.of(Dim.of(start + width)), List.of(2L),
        List.of(1L)));
  }

  /** [B, S, heads * h] as [B, heads, S, h]. */
  private static Value heads(OnnxNode n, Value x, Dim b, Dim s, long heads, long h) {
    return n.temp(new DataOp.Transpose(n.reshape(x, List.of(b, s, Dim.of(heads), Dim.of(h))), TO_HEADS));
  }
}
