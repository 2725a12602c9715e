package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
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
    // L: each sequence's valid past, its queries' first position (0 in a first prompt)
    Value total = n.temp(new ElementwiseOp.Cast(n.value(5), ElementType.I64));  // the last position
    Value past = n.temp(new ElementwiseOp.Binary(BinaryKind.MAX, n.temp(new ElementwiseOp.Binary(
        BinaryKind.SUB, total, n.dimScalar(s.minus(Dim.of(1))))), n.constant(Tensor.scalar(ElementType.I64, 0))));
    Value queryPos = n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, n.reshape(past, List.of(b, Dim.of(1))),
        n.reshape(n.temp(new SourceOp.Range(0, s, 1, ElementType.I64)), List.of(Dim.of(1), s))));
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
      q = n.temp(OnnxOps.rope(n, q, cos, sin, queryPos, interleaved));
      k = n.temp(OnnxOps.rope(n, k, cos, sin, queryPos, interleaved));
    }
    Dim pastRows = Dim.of(0);
    if (n.has(3) != n.has(4)) {
      throw n.error("past_key and past_value must both be given, or neither");
    }
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
    Value mask = mask(n, total, past, pastRows, b, s, k.type().dim(2), qt.elementType());
    Value attended = n.temp(new TransformerOp.Attention(q, k, v, mask, OnnxOps.scale(n, h), false, 0));
    n.emit(new DataOp.Reshape(n.temp(new DataOp.Transpose(attended, TO_HEADS)), List.of(b, s, Dim.of(heads * h))));
  }

  /**
   * The additive [B, 1, S, P + S] mask: 0 where query i of sequence b sees key j (a valid past
   * row, j below L, or a new row no later than its own, P <= j <= P + i; at a position within the
   * sequence's total length, seqlens_k[b], which cuts a padded prompt's keys; with a window, no
   * more than local_window_size positions back), the type's lowest value elsewhere. A padded
   * first prompt's rows past its length are padding (ONNX Runtime's own are unspecified there).
   */
  private static Value mask(OnnxNode n, Value total, Value past, Dim pastRows, Dim b, Dim s, Dim t,
      ElementType et) {
    List<Dim> perSequence = List.of(b, Dim.of(1), Dim.of(1), Dim.of(1));
    Value first = n.reshape(past, perSequence);
    Value key = n.reshape(n.temp(new SourceOp.Range(0, t, 1, ElementType.I64)),
        List.of(Dim.of(1), Dim.of(1), Dim.of(1), t));
    Value row = n.reshape(n.temp(new SourceOp.Range(0, s, 1, ElementType.I64)),
        List.of(Dim.of(1), Dim.of(1), s, Dim.of(1)));
    Value sincePast = binary(n, BinaryKind.SUB, key, n.dimScalar(pastRows));
    Value isNew = binary(n, BinaryKind.GREATER_EQUAL, sincePast, n.constant(Tensor.scalar(ElementType.I64, 0)));
    // positions: a past row's is its row, a new one's counts on from the sequence's past
    Value keyPos = n.temp(new ElementwiseOp.Where(isNew, binary(n, BinaryKind.ADD, first, sincePast), key));
    Value visible = binary(n, BinaryKind.AND,
        binary(n, BinaryKind.OR, binary(n, BinaryKind.LESS, key, first),
            binary(n, BinaryKind.AND, isNew, binary(n, BinaryKind.LESS_EQUAL, sincePast, row))),
        binary(n, BinaryKind.LESS_EQUAL, keyPos, n.reshape(total, perSequence)));
    long window = n.attrInt("local_window_size", -1);
    if (window > 0) {  // ONNX Runtime's kernel takes 0 as no window, as -1
      Value back = binary(n, BinaryKind.SUB, binary(n, BinaryKind.ADD, first, row), keyPos);
      visible = binary(n, BinaryKind.AND, visible, binary(n, BinaryKind.LESS_EQUAL, back,
          n.constant(Tensor.scalar(ElementType.I64, window))));
    }
    return n.temp(new ElementwiseOp.Where(visible, n.constant(Tensor.scalar(et, 0)),
        n.constant(Tensor.scalar(et, -Float.MAX_VALUE))));
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
