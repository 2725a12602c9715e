package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.OpException;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.ReductionOp.ReduceKind;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The ONNX ops sohuc imports: one table, from which the importer dispatches, the preflight
 * check lists what is missing, and {@code docs/onnx-ops.md} is generated.
 */
final class OnnxOps {
  private OnnxOps() {}

  /** Imports one node: defines its outputs as IR values or as known values. */
  @FunctionalInterface
  interface Handler {
    void apply(OnnxNode n);
  }

  /**
   * One supported op.
   *
   * @param sinceOpset the first opset (of its domain) in which sohuc imports it; every opset up
   *     to {@link GraphImporter#MAX_OPSET} is supported, with the attribute forms of each
   * @param irOps the IR ops it becomes, for the docs
   * @param notes attribute variants and limits, for the docs
   */
  record OnnxOp(String domain, String opType, int sinceOpset, String irOps, String notes, Handler handler) {}

  static final List<OnnxOp> TABLE = new ArrayList<>();

  /** ONNX Runtime's contrib domain, whose ops its transformer optimizer writes (opset 1, the only one). */
  static final String MS_DOMAIN = "com.microsoft";

  private static void op(String opType, int since, String irOps, String notes, Handler h) {
    TABLE.add(new OnnxOp("", opType, Math.max(since, GraphImporter.MIN_OPSET), irOps, notes, h));
  }

  private static void msOp(String opType, String irOps, String notes, Handler h) {
    TABLE.add(new OnnxOp(MS_DOMAIN, opType, 1, irOps, notes, h));
  }

  static {
    for (var e : List.of(List.of("Add", BinaryKind.ADD), List.of("Sub", BinaryKind.SUB), List.of("Mul", BinaryKind.MUL),
        List.of("Div", BinaryKind.DIV), List.of("Equal", BinaryKind.EQUAL), List.of("Less", BinaryKind.LESS),
        List.of("LessOrEqual", BinaryKind.LESS_EQUAL), List.of("Greater", BinaryKind.GREATER),
        List.of("GreaterOrEqual", BinaryKind.GREATER_EQUAL), List.of("And", BinaryKind.AND),
        List.of("Or", BinaryKind.OR), List.of("Xor", BinaryKind.XOR))) {
      BinaryKind k = (BinaryKind) e.get(1);
      op((String) e.get(0), e.get(0).equals("LessOrEqual") || e.get(0).equals("GreaterOrEqual") ? 12 : 1,
          k.mnemonic(), "broadcasting; folded when both inputs are known (shape arithmetic stays symbolic)",
          n -> binary(n, k));
    }
    op("Pow", 1, "pow", "an exponent of another type is cast to the base's type", OnnxOps::pow);
    op("Mod", 10, "mod (integers with fmod 1: div / mul / sub)", "fmod 0 on integers (the sign of the "
        + "divisor), fmod 1 (the sign of the dividend; floats need it); folded when both inputs are known",
        OnnxOps::mod);
    op("Max", 1, "max", "variadic: a chain of binary max", n -> variadic(n, BinaryKind.MAX));
    op("Min", 1, "min", "variadic: a chain of binary min", n -> variadic(n, BinaryKind.MIN));
    for (var e : List.of(List.of("Sqrt", UnaryKind.SQRT), List.of("Reciprocal", UnaryKind.RECIPROCAL),
        List.of("Neg", UnaryKind.NEG), List.of("Abs", UnaryKind.ABS), List.of("Exp", UnaryKind.EXP),
        List.of("Log", UnaryKind.LOG), List.of("Erf", UnaryKind.ERF), List.of("Tanh", UnaryKind.TANH),
        List.of("Sigmoid", UnaryKind.SIGMOID), List.of("Relu", UnaryKind.RELU), List.of("Not", UnaryKind.NOT),
        List.of("Floor", UnaryKind.FLOOR), List.of("Ceil", UnaryKind.CEIL), List.of("Sin", UnaryKind.SIN),
        List.of("Cos", UnaryKind.COS))) {
      UnaryKind k = (UnaryKind) e.get(1);
      op((String) e.get(0), 1, k.mnemonic(), "", n -> unary(n, k));
    }
    op("Sum", 1, "add", "variadic: a chain of binary add", n -> variadic(n, BinaryKind.ADD));
    op("Mean", 1, "add / div", "variadic: the sum over the count", Composites::mean);
    op("LeakyRelu", 6, "less / mul / where", "alpha", Composites::leakyRelu);
    op("PRelu", 9, "less / mul / where", "slope broadcast to x", Composites::prelu);
    op("ThresholdedRelu", 10, "greater / where", "alpha", Composites::thresholdedRelu);
    op("Elu", 6, "exp / sub / mul / where", "alpha", Composites::elu);
    op("Selu", 6, "exp / mul / sub / where", "alpha, gamma", Composites::selu);
    op("Celu", 12, "exp / div / min / relu / add", "alpha", Composites::celu);
    op("HardSigmoid", 6, "mul / add / clip", "alpha, beta", Composites::hardSigmoid);
    op("HardSwish", 14, "mul / add / clip", "", Composites::hardSwish);
    op("Softplus", 1, "abs / exp / log / relu / add", "max(x, 0) + log(exp(-|x|) + 1)", Composites::softplus);
    op("Softsign", 1, "abs / add / div", "", Composites::softsign);
    op("Mish", 18, "abs / exp / log / relu / add / tanh / mul", "x * tanh(softplus(x))", Composites::mish);
    op("Shrink", 9, "greater / less / add / sub / where", "lambd, bias", Composites::shrink);
    op("Sign", 9, "greater / less / where", "NaN gives NaN", Composites::sign);
    op("Round", 11, "floor / sub / mul / less / greater / where", "half to even", Composites::round);
    op("IsNaN", 9, "equal / not", "", Composites::isNaN);
    op("IsInf", 10, "abs / equal", "detect_negative, detect_positive", Composites::isInf);
    op("Gelu", 20, "gelu", "approximate = none | tanh", n -> n.emit(new TransformerOp.Gelu(n.value(0),
        n.attrString("approximate", "none").equals("tanh"))));
    op("Softmax", 1, "softmax", "opset < 13: axis defaults to 1 and flattens to 2-D (reshape around softmax)",
        n -> softmax(n, false));
    op("LogSoftmax", 1, "log_softmax", "as Softmax", n -> softmax(n, true));
    op("MatMul", 1, "matmul", "float types", n -> n.emit(new LinalgOp.MatMul(n.value(0), n.value(1))));
    op("Gemm", 1, "gemm", "alpha, beta, transA, transB; C optional", n -> n.emit(new LinalgOp.Gemm(n.value(0),
        n.value(1), n.has(2) ? n.value(2) : null, n.attrFloat("alpha", 1), n.attrFloat("beta", 1),
        n.attrInt("transA", 0) != 0, n.attrInt("transB", 0) != 0)));
    op("Transpose", 1, "transpose", "perm defaults to reversed dims", OnnxOps::transpose);
    op("Conv", 1, "pad / slice / concat / reshape / transpose / matmul / add", "1-D and 2-D, static sizes; "
        + "strides, pads, auto_pad, dilations, groups (a batched matmul over them); up to " + ConvTaps.MAX_TAPS
        + " kernel taps, each a slice (im2col), or a patch embedding (kernel = stride, no padding; 1-D to 3-D: "
        + "ViT's patches, VideoMAE's tubelets) as one reshape",
        PatchConv::importNode);
    op("ConvTranspose", 1, "transpose / reshape / matmul / add", "the upsampling form whose kernel equals its "
        + "strides (SAM's mask decoder, a U-Net's up-convolutions): 1-D and 2-D, static sizes, no padding, "
        + "output_padding, dilation or groups", PatchConv::importTranspose);
    op("Resize", 11, "expand / gather / mul / add", "nearest (every nearest_mode), linear and cubic (cubic_coeff_a, exclude_outside); "
        + "coordinate transforms half_pixel, half_pixel_symmetric, pytorch_half_pixel, align_corners, asymmetric, "
        + "tf_half_pixel_for_nn; constant scales or sizes, axes (18); static sizes; each axis a constant "
        + "gather, a whole-number nearest upscale an expand; not tf_crop_and_resize or antialiased "
        + "downscaling", ResizeImport::importNode);
    op("MaxPool", 11, "pad / slice / concat / reduce_max (reduce_min)", "1-D and 2-D, static sizes; "
        + "kernel_shape, strides, pads, auto_pad, dilations; up to " + ConvTaps.MAX_TAPS + " taps; ceil_mode; "
        + "the Indices output (storage_order 0 and 1, a static batch)", n -> ConvTaps.importPool(n, true));
    op("AveragePool", 11, "pad / slice / concat / reduce_sum / div", "as MaxPool; count_include_pad; "
        + "dilations (19)", n -> ConvTaps.importPool(n, false));
    op("BatchNormalization", 11, "sub / div / sqrt / mul / add", "inference: (x - mean) / sqrt(var + "
        + "epsilon) * scale + B over the channel axis; not training_mode", Composites::batchNormalization);
    op("InstanceNormalization", 11, "reshape / layer_norm / mul / add", "epsilon; over each channel's positions",
        n -> Composites.groupNormalization(n, true));
    op("GroupNormalization", 18, "reshape / layer_norm / mul / add", "num_groups, epsilon; scale and bias per "
        + "group (18) or per channel (21)", n -> Composites.groupNormalization(n, false));
    op("Einsum", 12, "matmul / transpose / reshape / reduce_sum", "one or two operands; explicit or implicit "
        + "output, ellipsis; not repeated labels (diagonals) nor labels broadcast from 1", Einsum::importNode);
    op("Reshape", 5, "reshape", "shape input folded to dims (symbolic allowed); 0 copies a dim unless allowzero (14)",
        OnnxOps::reshape);
    op("Flatten", 1, "reshape", "axis in [-r, r]", OnnxOps::flatten);
    op("DepthToSpace", 1, "reshape / transpose", "blocksize; mode DCR and CRD (11); static channels and "
        + "sizes", n -> Composites.blockRearrange(n, true));
    op("SpaceToDepth", 1, "reshape / transpose", "blocksize; static channels and sizes",
        n -> Composites.blockRearrange(n, false));
    op("Squeeze", 1, "reshape", "axes: attribute (< 13) or input (>= 13); none squeezes static 1s",
        OnnxOps::squeeze);
    op("Unsqueeze", 1, "reshape", "axes: attribute (< 13) or input (>= 13)", OnnxOps::unsqueeze);
    op("Concat", 1, "concat", "folded on shape vectors", OnnxOps::concat);
    op("Split", 1, "split", "sizes: attribute split (< 13), input (>= 13), num_outputs (>= 18), or equal parts",
        OnnxOps::split);
    op("Slice", 10, "slice", "starts/ends may be symbolic; axes and steps static", OnnxOps::slice);
    op("Gather", 1, "gather", "folded on shape vectors", OnnxOps::gather);
    op("GatherND", 11, "cast / slice / reshape / less / greater_equal / or / where / mul / add / gather",
        "batch_dims (static batch axes, the same in data and indices); each index tuple as one row of the "
        + "data's leading axes flattened (an entry out of its axis's range is an error, as in ONNX Runtime)",
        Composites::gatherNd);
    op("GatherElements", 11, "gather_elements", "", n -> {
      checkConstantIndices(n, n.known(1), n.attrInt("axis", 0));
      n.emit(new DataOp.GatherElements(n.value(0), n.value(1), n.attrInt("axis", 0)));
    });
    op("Expand", 8, "expand", "shape input folded to dims", OnnxOps::expand);
    op("Tile", 6, "tile", "repeats must be static", n -> n.emit(new DataOp.Tile(n.value(0),
        boxed(n.longs(1, "repeats")))));
    op("Where", 9, "where", "folded when all inputs are known", OnnxOps::where);
    op("Cast", 6, "cast", "saturate (19) is the IR's fp8 saturation", n -> cast(n, n.attrType("to")));
    op("CastLike", 15, "cast", "", n -> cast(n, n.type(1).elementType()));
    op("Shape", 1, "(folded)", "start/end (15); becomes a known vector of dims, never an IR op", OnnxOps::shape);
    op("Size", 1, "(folded)", "the element count as a known dim", n -> n.set(0, Known.ofDims(
        List.of(product(n.type(0).dims())), true, ElementType.I64)));
    op("ConstantOfShape", 9, "fill", "small static shapes fold to a constant", OnnxOps::constantOfShape);
    op("Constant", 1, "constant / weight", "value, value_float(s), value_int(s); over "
        + GraphImporter.MAX_INLINE_ELEMENTS + " elements becomes an inline weight", OnnxOps::constant);
    op("Range", 11, "range", "static start and delta; the limit may be symbolic (delta 1)", OnnxOps::range);
    op("ReduceMean", 1, "reduce_mean", "axes: attribute (< 18) or input (>= 18); noop_with_empty_axes",
        n -> reduce(n, ReduceKind.MEAN));
    op("ReduceSum", 1, "reduce_sum", "axes: attribute (< 13) or input (>= 13); noop_with_empty_axes",
        n -> reduce(n, ReduceKind.SUM));
    op("ReduceMax", 1, "reduce_max", "as ReduceMean", n -> reduce(n, ReduceKind.MAX));
    op("ReduceMin", 1, "reduce_min", "as ReduceMean", n -> reduce(n, ReduceKind.MIN));
    op("ReduceProd", 1, "reduce_prod", "as ReduceMean", n -> reduce(n, ReduceKind.PROD));
    op("ReduceSumSquare", 1, "mul / reduce_sum", "as ReduceMean", Composites::reduceSumSquare);
    op("ArgMax", 11, "reduce_max / equal / where / reduce_min / cast", "axis, keepdims, select_last_index (12)",
        n -> Composites.argExtreme(n, true));
    op("ArgMin", 11, "reduce_min / equal / where / reduce_min / cast", "as ArgMax",
        n -> Composites.argExtreme(n, false));
    op("TopK", 11, "reduce_max / equal / where / reduce_min / concat / cast", "K (input, static, 1 "
        + "to " + Composites.MAX_TOP_K + "), axis, largest; sorted results (with sorted = 0 too), "
        + "the lower index first among equal values", Composites::topK);
    op("Hardmax", 13, "reduce_max / equal / where / reduce_min / cast", "axis (default -1); not the "
        + "2-D coercion of opsets before 13", Composites::hardmax);
    op("GlobalAveragePool", 1, "reduce_mean", "over every axis after N and C, kept",
        n -> Composites.globalPool(n, ReduceKind.MEAN));
    op("GlobalMaxPool", 1, "reduce_max", "over every axis after N and C, kept",
        n -> Composites.globalPool(n, ReduceKind.MAX));
    op("LpNormalization", 1, "abs or mul / reduce_sum / sqrt / div", "axis; p = 1 or 2",
        Composites::lpNormalization);
    op("ReduceL1", 1, "abs / reduce_sum", "as ReduceMean", Composites::reduceL1);
    op("ReduceL2", 1, "mul / reduce_sum / sqrt", "as ReduceMean", Composites::reduceL2);
    op("ReduceLogSum", 1, "reduce_sum / log", "as ReduceMean", Composites::reduceLogSum);
    op("ReduceLogSumExp", 1, "reduce_max / sub / exp / reduce_sum / log / add",
        "as ReduceMean; the max subtracted first", Composites::reduceLogSumExp);
    op("Clip", 1, "clip", "min/max: attributes (< 11) or static inputs (>= 11)", OnnxOps::clip);
    op("Pad", 11, "pad", "static pads; constant_value; axes (18); modes constant, reflect, edge", OnnxOps::pad);
    op("Trilu", 14, "trilu", "upper; k input static", n -> n.emit(new DataOp.Trilu(n.value(0),
        n.attrInt("upper", 1) != 0, n.has(1) ? (long) n.scalar(1, "k") : 0)));
    op("CumSum", 11, "cumsum", "axis input static; exclusive, reverse", n -> n.emit(new ReductionOp.CumSum(
        n.value(0), (long) n.scalar(1, "axis"), n.attrInt("exclusive", 0) != 0, n.attrInt("reverse", 0) != 0)));
    op("Identity", 1, "(none)", "aliases its input", n -> passThrough(n, 0, 0));
    op("Dropout", 1, "(none) / fill", "inference: identity; the mask output is all true", OnnxOps::dropout);
    op("LayerNormalization", 17, "layer_norm", "axis, epsilon; Mean and InvStdDev outputs are computed when used",
        OnnxOps::layerNorm);
    op("SimplifiedLayerNormalization", 1, "rms_norm", "ONNX Runtime's RMS norm; axis must be the last",
        OnnxOps::simplifiedLayerNorm);
    op("ScatterND", 11, "scatter_nd", "reduction none, add, mul (16), max, min (18)", n -> n.emit(
        new DataOp.ScatterNd(n.value(0), n.value(1), n.value(2), scatterReduction(n))));
    op("QuantizeLinear", 10, "quantize_linear", "zero point defaults to u8 (or output_dtype, 21) zero; "
        + "axis (13); block_size must be 0", OnnxOps::quantize);
    op("DequantizeLinear", 10, "dequantize_linear", "zero point defaults to zero; axis (13); block_size must be 0",
        OnnxOps::dequantize);
    op("DynamicQuantizeLinear", 11, "dynamic_quantize_linear", "",
        n -> n.emitAll(new QuantOp.DynamicQuantizeLinear(n.value(0))));
    op("QLinearMatMul", 10, "matmul_integer / cast / mul / div / quantize_linear", "u8 and i8; a, y per "
        + "tensor, b per tensor or per column of a [K, N] b; requantized as ONNX Runtime does (f32 product "
        + "times a_scale * b_scale / y_scale, rounded half to even); on the interpreter (the chip's i8 "
        + "MXU takes the dynamic and QDQ forms)", IntegerMatMuls::qlinearMatMul);
    op("MatMulInteger", 10, "matmul_integer", "zero points default to zero", n -> n.emit(new QuantOp.MatMulInteger(
        n.value(0), n.value(1), n.has(2) ? n.value(2) : n.zeroScalar(n.type(0).elementType()),
        n.has(3) ? n.value(3) : n.zeroScalar(n.type(1).elementType()))));

    msOp("DynamicQuantizeMatMul", "dynamic_quantize_linear / matmul_integer / cast / mul (add)", "A f32 "
        + "quantized to u8 per tensor; B u8 or i8 [K, N], per tensor or per column; the optional bias",
        IntegerMatMuls::dynamicQuantizeMatMul);
    msOp("MatMulIntegerToFloat", "matmul_integer / cast / mul (add)", "A per tensor; B [K, N] per tensor "
        + "or per column; the optional bias", IntegerMatMuls::matMulIntegerToFloat);
    msOp("Gelu", "gelu", "the erf form", n -> n.emit(new TransformerOp.Gelu(n.value(0), false)));
    msOp("BiasGelu", "add, gelu", "erf GELU of A + B; B a vector of A's last dim", n -> biasGelu(n, false, true));
    msOp("FastGelu", "gelu (add)", "the tanh form; the optional bias (a vector of the last dim) is added first",
        n -> biasGelu(n, true, false));
    msOp("QuickGelu", "mul, sigmoid / silu", "x * sigmoid(alpha * x), alpha defaults to 1.702; alpha 1 is silu",
        OnnxOps::quickGelu);
    msOp("BiasAdd", "add", "X + bias + skip, bias a vector of the last dim (ONNX Runtime runs it on GPUs only)",
        n -> n.emit(plusSkip(n, plusBias(n, n.value(0), 1, true), 2)));
    msOp("SkipLayerNormalization", "add, layer_norm", "input + skip (+ bias), normalized over the last dim; "
        + "epsilon defaults to 1e-12; input of rank 2 or 3; the input_skip_bias_sum output; not the mean and "
        + "inv_std_var outputs, which ONNX Runtime does not compute either", n -> skipNorm(n, false));
    msOp("SkipSimplifiedLayerNormalization", "add, rms_norm", "as SkipLayerNormalization, with an RMS norm "
        + "and no beta", n -> skipNorm(n, true));
    msOp("Attention", "matmul, add, slice, reshape, transpose, mul, where, softmax (attention after fuse-attention)",
        "BERT's self-attention: input [B, S, D] @ weights [D, 3 * hidden] (or the sizes of qkv_hidden_sizes, "
        + "q and k equal) + bias, split into num_heads heads, softmax(scale * q @ k^T + mask) @ v; scale "
        + "defaults to 1/sqrt(head size); mask_index absent, [B, S] (0 or less masks a key with "
        + "mask_filter_value, default -10000) or [B] (the keys at or after each length masked); unidirectional "
        + "is causal; past [2, B, N, P, H] before the new keys and values, present [2, B, N, P + S, H] (GPT-2 with "
        + "its KV cache; P may be symbolic); not attention_bias, past_sequence_length, do_rotary or the [2B], 3-D "
        + "and 4-D masks", OnnxOps::attention);
    msOp("MultiHeadAttention", "add, reshape, transpose, concat, matmul, mul, where, softmax (attention after "
        + "fuse-attention)", "query [B, S, D], key [B, L, D] and value [B, L, Dv] (+ the optional bias of D + D + "
        + "Dv) split into num_heads heads; past_key and past_value [B, N, P, H] before the new keys and values "
        + "(present_key and present_value outputs); softmax(scale * q @ k^T + attention_bias + mask) @ v with "
        + "attention_bias [B or 1, N or 1, S, P + L] and key_padding_mask as Attention's mask_index over the P + L "
        + "keys; unidirectional is causal over the keys after the past (P static); not packed QKV or KV, "
        + "[B, N, L, H] key and value, past_sequence_length, cache_indirection or the qk output",
        OnnxOps::multiHeadAttention);
    msOp("RotaryEmbedding", "gather, concat, reshape, transpose, rope", "input [B, S, hidden] (num_heads heads, or heads of "
        + "twice cos_cache's width) or [B, N, S, H]; position_ids int64 [B, S], or [1] for positions from that one "
        + "on; cos_cache and sin_cache [positions, R / 2] for the first R dims of each head (rotary_embedding_dim, "
        + "default all); interleaved pairs dims 2i and 2i + 1, else i and i + R / 2; not is_packed_batching or a "
        + "scale other than 1", OnnxOps::rotaryEmbedding);
    msOp("MatMulNBits", "matmul (add)", "4- and 8-bit codes in blocks along K (block_size a power of two, "
        + "16 to 65536), dequantized when imported into a weight of A's type (f32, f16): (code - zero) * scale; "
        + "zero_points packed u8, of the scales' type, or absent (2^(bits - 1)); B, scales and zero points must be "
        + "constants; the optional bias; not g_idx. accuracy_level is ignored: the product is A's type (ONNX "
        + "Runtime's level 4 quantizes A to int8 first)", MatMulNBits::importNode);
    msOp("GroupQueryAttention", "kv_cache_append, attention (a mask from seqlens_k), rope", "onnxruntime-genai's "
        + "attention: query [B, S, Nq * H] with key and value [B, S, Nkv * H], or packed in the query; past_key and "
        + "past_value [B, Nkv, P, H] before the new keys (the presents, [B, Nkv, P + S, H]); sequence b's "
        + "seqlens_k + 1 - S past rows (none in a first prompt) and its new rows up to each query's own are "
        + "attended; do_rotary with cos_cache and sin_cache (rotary_interleaved), local_window_size, scale. The "
        + "presents are ONNX Runtime's when every past fills its buffer (no padding, separate past and present "
        + "buffers). Not softcap, smooth_softmax, position_ids, attention_bias, head_sink or output_qk",
        GroupQueryAttention::importNode);
    msOp("EmbedLayerNormalization", "gather, add, layer_norm, reduce_sum",
        "word + position (+ segment) embeddings of int32 ids, layer-normalized over the hidden dim; epsilon "
        + "defaults to 1e-12; positions 0..S-1 unless position_ids [B, S] or [1, S] are given; mask_index is "
        + "each row's count of mask values equal to 1 (zeros without a mask); the embedding_sum output",
        OnnxOps::embedLayerNorm);
  }

  static boolean isDefaultDomain(String domain) {
    return domain.isEmpty() || domain.equals("ai.onnx");
  }

  /** The op of {@code domain} at that domain's {@code opset}, if sohuc imports it. */
  static Optional<OnnxOp> lookup(String domain, String opType, int opset) {
    String d = isDefaultDomain(domain) ? "" : domain;
    return TABLE.stream().filter(o -> o.domain().equals(d) && o.opType().equals(opType) && o.sinceOpset() <= opset)
        .findFirst();
  }

  /**
   * How many leading inputs a node of an op must give ({@code required}), the most inputs and
   * outputs it may have; {@link #VARIADIC} for no limit.
   */
  record Arity(int required, int inputs, int outputs) {
    static final int VARIADIC = Integer.MAX_VALUE;
  }

  /**
   * How many inputs and outputs the ONNX schema of each op in {@link #TABLE} requires and allows
   * at {@code opset}, optional ones included (from the ONNX operator docs, and ONNX Runtime's
   * contrib schemas for SimplifiedLayerNormalization and {@link #MS_DOMAIN}): a handler reads no
   * more than these, and may read the required ones without checking. An optional input between
   * required ones (EmbedLayerNormalization's segment_ids) is checked by its handler.
   */
  static Arity arity(String domain, String opType, int opset) {
    if (!isDefaultDomain(domain)) {
      return switch (opType) {
        case "Gelu", "QuickGelu" -> new Arity(1, 1, 1);
        case "FastGelu" -> new Arity(1, 2, 1);
        case "BiasGelu" -> new Arity(2, 2, 1);
        case "BiasAdd" -> new Arity(3, 3, 1);
        case "SkipSimplifiedLayerNormalization" -> new Arity(3, 4, 4);
        case "SkipLayerNormalization" -> new Arity(3, 5, 4);
        case "Attention" -> new Arity(2, 7, 2);
        case "MultiHeadAttention" -> new Arity(1, 10, 4);
        case "RotaryEmbedding" -> new Arity(4, 4, 1);
        case "EmbedLayerNormalization" -> new Arity(1, 9, 3);
        case "MatMulNBits" -> new Arity(3, 6, 1);
        case "DynamicQuantizeMatMul" -> new Arity(3, 5, 1);
        case "MatMulIntegerToFloat" -> new Arity(4, 7, 1);
        case "GroupQueryAttention" -> new Arity(1, 12, 4);
        default -> throw new IllegalStateException("no arity for " + domain + "." + opType);
      };
    }
    return switch (opType) {
      case "Constant" -> new Arity(0, 0, 1);
      case "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log", "Erf", "Tanh", "Sigmoid", "Relu", "Not", "Floor",
          "Ceil", "Sin", "Cos", "Gelu", "Softmax", "LogSoftmax", "Transpose", "Flatten", "Cast", "Shape", "Size",
          "DepthToSpace", "SpaceToDepth",
          "ConstantOfShape", "Identity", "LeakyRelu", "ThresholdedRelu", "Elu", "Selu", "Celu", "HardSigmoid",
          "HardSwish", "Softplus", "Softsign", "Mish", "Shrink", "Sign", "Round", "IsNaN",
          "IsInf", "GlobalAveragePool", "GlobalMaxPool", "LpNormalization", "ArgMax",
          "ArgMin", "Hardmax" -> new Arity(1, 1, 1);
      case "Add", "Sub", "Mul", "Div", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or",
          "Xor", "Pow", "Mod", "MatMul", "Reshape", "Gather", "GatherND", "GatherElements", "Expand", "Tile",
          "CastLike",
          "CumSum", "PRelu" -> new Arity(2, 2, 1);
      case "Trilu" -> new Arity(1, 2, 1);
      case "MaxPool" -> new Arity(1, 1, 2);
      case "AveragePool" -> new Arity(1, 1, 1);
      case "BatchNormalization" -> new Arity(5, 5, 3);
      case "InstanceNormalization", "GroupNormalization" -> new Arity(3, 3, 1);
      case "TopK" -> new Arity(2, 2, 2);
      case "Where", "Range", "ScatterND" -> new Arity(3, 3, 1);
      case "Gemm", "QuantizeLinear", "DequantizeLinear", "Conv", "ConvTranspose" -> new Arity(2, 3, 1);
      case "Clip" -> new Arity(1, 3, 1);
      case "Resize" -> new Arity(1, 4, 1);
      case "MatMulInteger" -> new Arity(2, 4, 1);
      case "QLinearMatMul" -> new Arity(8, 8, 1);
      case "Slice" -> new Arity(3, 5, 1);
      case "Max", "Min", "Sum", "Mean", "Concat", "Einsum" -> new Arity(1, Arity.VARIADIC, 1);
      case "Unsqueeze" -> opset >= 13 ? new Arity(2, 2, 1) : new Arity(1, 1, 1);
      case "Squeeze", "ReduceSum" -> new Arity(1, opset >= 13 ? 2 : 1, 1);
      case "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2",
          "ReduceLogSum", "ReduceLogSumExp" -> new Arity(1, opset >= 18 ? 2 : 1, 1);
      case "Split" -> new Arity(1, opset >= 13 ? 2 : 1, Arity.VARIADIC);
      case "Pad" -> new Arity(2, opset >= 18 ? 4 : 3, 1);
      case "Dropout" -> new Arity(1, opset >= 12 ? 3 : 1, 2);
      case "LayerNormalization" -> new Arity(2, 3, 3);
      case "SimplifiedLayerNormalization" -> new Arity(2, 2, 2);
      case "DynamicQuantizeLinear" -> new Arity(1, 1, 3);
      default -> throw new IllegalStateException("no arity for " + opType);
    };
  }

  // ---- elementwise

  private static void binary(OnnxNode n, BinaryKind kind) {
    if (n.allKnown()) {
      Known k = Fold.binary(kind, n.known(0), n.known(1));
      if (k != null) {
        n.set(0, k);
        return;
      }
    }
    n.emit(new ElementwiseOp.Binary(kind, n.value(0), n.value(1)));
  }

  /**
   * Mod: the IR's mod is C's fmod on floats and the divisor's sign on integers (fmod 0); fmod 1
   * on integers is a - trunc(a / b) * b, the IR's integer division truncating.
   */
  private static void mod(OnnxNode n) {
    boolean fmod = n.attrInt("fmod", 0) != 0;
    if (n.type(0).elementType().isFloat() && !fmod) {
      throw n.error("fmod 0 on " + n.type(0).elementType() + " (ONNX requires fmod 1 for floats)");
    }
    if (n.type(0).elementType().isFloat() || !fmod) {
      binary(n, BinaryKind.MOD);
      return;
    }
    Value a = n.value(0);
    Value b = n.value(1);
    Value quotient = n.temp(new ElementwiseOp.Binary(BinaryKind.DIV, a, b));
    n.emit(new ElementwiseOp.Binary(BinaryKind.SUB, a,
        n.temp(new ElementwiseOp.Binary(BinaryKind.MUL, quotient, b))));
  }

  private static void pow(OnnxNode n) {
    if (n.type(0).elementType() == n.type(1).elementType()) {
      binary(n, BinaryKind.POW);
      return;
    }
    Value exponent = n.temp(new ElementwiseOp.Cast(n.value(1), n.type(0).elementType()));
    n.emit(new ElementwiseOp.Binary(BinaryKind.POW, n.value(0), exponent));
  }

  private static void variadic(OnnxNode n, BinaryKind kind) {
    if (n.allKnown()) {
      Known acc = n.known(0);
      for (int i = 1; i < n.inputCount() && acc != null; i++) {
        acc = Fold.binary(kind, acc, n.known(i));
      }
      if (acc != null) {
        n.set(0, acc);
        return;
      }
    }
    if (n.inputCount() == 1) {
      passThrough(n, 0, 0);
      return;
    }
    Value acc = n.value(0);
    for (int i = 1; i < n.inputCount(); i++) {
      Op op = new ElementwiseOp.Binary(kind, acc, n.value(i));
      acc = i == n.inputCount() - 1 ? n.emit(op) : n.temp(op);
    }
  }

  private static void unary(OnnxNode n, UnaryKind kind) {
    if (n.allKnown()) {
      Known k = Fold.unary(kind, n.known(0));
      if (k != null) {
        n.set(0, k);
        return;
      }
    }
    n.emit(new ElementwiseOp.Unary(kind, n.value(0)));
  }

  private static void cast(OnnxNode n, ElementType to) {
    if (n.allKnown()) {
      Known k = Fold.cast(n.known(0), to);
      if (k != null) {
        n.set(0, k);
        return;
      }
    }
    n.emit(new ElementwiseOp.Cast(n.value(0), to));
  }

  private static void where(OnnxNode n) {
    if (n.allKnown()) {
      Known k = Fold.where(n.known(0), n.known(1), n.known(2));
      if (k != null) {
        n.set(0, k);
        return;
      }
    }
    n.emit(new ElementwiseOp.Where(n.value(0), n.value(1), n.value(2)));
  }

  private static void clip(OnnxNode n) {
    double min;
    double max;
    if (n.opset < 11) {
      min = n.attrFloat("min", Double.NEGATIVE_INFINITY);
      max = n.attrFloat("max", Double.POSITIVE_INFINITY);
    } else {
      min = n.has(1) ? n.scalar(1, "min") : Double.NEGATIVE_INFINITY;
      max = n.has(2) ? n.scalar(2, "max") : Double.POSITIVE_INFINITY;
    }
    n.emit(new ElementwiseOp.Clip(n.value(0), min, max));
  }

  // ---- softmax, norms

  private static void softmax(OnnxNode n, boolean log) {
    Value x = n.value(0);
    int rank = x.type().rank();
    long axis = n.attrInt("axis", n.opset >= 13 ? -1 : 1);
    if (n.opset >= 13) {
      n.emit(new ReductionOp.Softmax(x, axis, log));
      return;
    }
    // Opset < 13 flattens to [prod(dims before axis), prod(dims from axis)] first.
    int ax = normalizeAxis(n, axis, rank);
    if (ax == rank - 1) {
      n.emit(new ReductionOp.Softmax(x, -1, log));
      return;
    }
    List<Dim> d = x.type().dims();
    Value flat = n.reshape(x, List.of(product(d.subList(0, ax)), product(d.subList(ax, rank))));
    Value s = n.temp(new ReductionOp.Softmax(flat, 1, log));
    n.emit(new DataOp.Reshape(s, d));
  }

  private static void layerNorm(OnnxNode n) {
    Value x = n.value(0);
    long axis = n.attrInt("axis", -1);
    double eps = n.attrFloat("epsilon", 1e-5);
    n.emit(new TransformerOp.LayerNorm(x, n.value(1), n.has(2) ? n.value(2) : null, axis, eps));
    if (n.wants(1) || n.wants(2)) {
      int rank = x.type().rank();
      int ax = normalizeAxis(n, axis, rank);
      List<Long> axes = new ArrayList<>();
      for (long a = ax; a < rank; a++) {
        axes.add(a);
      }
      Value mean = n.temp(new ReductionOp.Reduce(ReduceKind.MEAN, x, axes, true));
      n.set(1, mean);
      Value centered = n.temp(new ElementwiseOp.Binary(BinaryKind.SUB, x, mean));
      Value sq = n.temp(new ElementwiseOp.Binary(BinaryKind.MUL, centered, centered));
      Value var = n.temp(new ReductionOp.Reduce(ReduceKind.MEAN, sq, axes, true));
      Value epsV = n.constant(Tensor.scalar(x.type().elementType(), eps));
      Value std = n.temp(new ElementwiseOp.Unary(UnaryKind.SQRT,
          n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, var, epsV))));
      n.set(2, n.temp(new ElementwiseOp.Unary(UnaryKind.RECIPROCAL, std)));
    }
  }

  private static void simplifiedLayerNorm(OnnxNode n) {
    Value x = n.value(0);
    int ax = normalizeAxis(n, n.attrInt("axis", -1), x.type().rank());
    if (ax != x.type().rank() - 1) {
      throw n.error("axis " + n.attrInt("axis", -1) + " is not the last axis (unsupported)");
    }
    if (n.wants(1)) {
      throw n.error("the inv_std_var output is not supported");
    }
    n.emit(new TransformerOp.RmsNorm(x, n.value(1), n.attrFloat("epsilon", 1e-5), 0.0));
  }

  // ---- ONNX Runtime's contrib ops (com.microsoft): the fused IR ops their fusions stand for

  /** GELU of input 0 plus the bias of input 1: BiasGelu's is required, FastGelu's optional. */
  private static void biasGelu(OnnxNode n, boolean tanh, boolean biasRequired) {
    n.emit(new TransformerOp.Gelu(plusBias(n, n.value(0), 1, biasRequired), tanh));
  }

  /** {@code x * sigmoid(alpha * x)}; with alpha 1 that is silu, one function on the chip. */
  private static void quickGelu(OnnxNode n) {
    Value x = n.value(0);
    double alpha = n.attrFloat("alpha", 1.702);
    if (alpha == 1) {
      n.emit(new TransformerOp.Silu(x));
      return;
    }
    Value scaled = n.temp(new ElementwiseOp.Binary(BinaryKind.MUL, x,
        n.constant(Tensor.scalar(x.type().elementType(), alpha))));
    n.emit(new ElementwiseOp.Binary(BinaryKind.MUL, x, n.temp(new ElementwiseOp.Unary(UnaryKind.SIGMOID, scaled))));
  }

  /**
   * SkipLayerNormalization and SkipSimplifiedLayerNormalization: the norm over the last dim of
   * {@code (input + skip) + bias}, that sum being output 3. ONNX Runtime's kernel takes inputs of
   * rank 2 or 3 only.
   */
  private static void skipNorm(OnnxNode n, boolean simplified) {
    Value x = n.value(0);
    if (x.type().rank() != 2 && x.type().rank() != 3) {
      throw n.error("input must have rank 2 or 3, got " + x.type());
    }
    Value sum = plusBias(n, n.temp(plusSkip(n, x, 1)), simplified ? 3 : 4, false);
    Value gamma = vector(n, 2, "gamma", x);
    double eps = n.attrFloat("epsilon", 1e-12);
    n.emit(simplified ? new TransformerOp.RmsNorm(sum, gamma, eps, 0.0)
        : new TransformerOp.LayerNorm(sum, gamma, n.has(3) ? vector(n, 3, "beta", x) : null, -1, eps));
    n.set(3, sum);
  }

  /**
   * {@code x + skip} (input {@code i}): the skip has x's shape, or that shape without its leading
   * dims or with 1 for them, as ONNX Runtime's kernels take it.
   */
  private static Op plusSkip(OnnxNode n, Value x, int i) {
    Value skip = n.value(i, "skip");
    List<Dim> xd = x.type().dims();
    List<Dim> sd = skip.type().dims();
    int lead = xd.size() - sd.size();
    boolean fits = lead >= 0;
    for (int j = 0; fits && j < sd.size(); j++) {
      fits = sd.get(j).equals(xd.get(lead + j)) || (j < sd.size() - 2 && sd.get(j).is(1));
    }
    if (!fits) {
      throw n.error("skip " + skip.type() + " does not fit the input " + x.type()
          + " (it must have the input's shape, without its leading dims or with 1 for them)");
    }
    return new ElementwiseOp.Binary(BinaryKind.ADD, x, skip);
  }

  /** {@code x + bias} (input {@code i}), or x when the bias is optional and absent. */
  private static Value plusBias(OnnxNode n, Value x, int i, boolean required) {
    if (!required && !n.has(i)) {
      return x;
    }
    return n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, x, vector(n, i, "bias", x)));
  }

  /** Input {@code i}, which ONNX Runtime's kernels require to be a vector of x's last dim. */
  private static Value vector(OnnxNode n, int i, String role, Value x) {
    Value v = n.value(i, role);
    int rank = x.type().rank();
    if (rank == 0 || v.type().rank() != 1 || !v.type().dim(0).equals(x.type().dim(rank - 1))) {
      throw n.error(role + " (input " + i + ") must be a vector as long as the last dim of the input "
          + x.type() + ", got " + v.type());
    }
    return v;
  }

  /**
   * BERT's fused self-attention, as ONNX Runtime's CPU kernel computes it, in the ops of the
   * unfused graph that {@code fuse-attention} recognizes: q, k and v split from one projection
   * into heads, {@code softmax(q @ k^T * scale + mask) @ v} with the mask additive (and the
   * causal one a {@code triu} of NEG), the heads merged back.
   */
  private static void attention(OnnxNode n) {
    if (n.has(5) || n.has(6)) {
      int i = n.has(5) ? 5 : 6;
      throw n.error("input " + i + " (" + List.of("attention_bias", "past_sequence_length").get(i - 5)
          + ") is not supported");
    }
    if (n.wants(1) && !n.has(4)) {
      throw n.error("output 1 (present) needs input 4 (past)");
    }
    if (n.attrInt("do_rotary", 0) != 0) {
      throw n.error("do_rotary is not supported");
    }
    if (n.attrInt("past_present_share_buffer", 0) != 0) {
      throw n.error("past_present_share_buffer is not supported");
    }
    Value x = n.value(0);
    Value w = n.value(1, "weights");
    if (!n.has(2)) {
      throw n.error("needs input 2 (bias), which ONNX Runtime's CPU kernel requires");
    }
    Value bias = n.value(2, "bias");
    if (x.type().rank() != 3) {
      throw n.error("input must have rank 3 [batch, sequence, hidden], got " + x.type());
    }
    Dim b = x.type().dim(0);
    Dim s = x.type().dim(1);
    if (w.type().rank() != 2 || !w.type().dim(0).equals(x.type().dim(2)) || !w.type().dim(1).isStatic()) {
      throw n.error("weights must be [" + x.type().dim(2) + ", q + k + v hidden sizes] for the input "
          + x.type() + ", got " + w.type());
    }
    long total = w.type().dim(1).value();
    long heads = n.attrInt("num_heads", 0);
    if (!n.hasAttr("num_heads") || heads <= 0) {
      throw n.error("num_heads must be given and positive");
    }
    long qh;
    long vh;
    List<Long> sizes = n.hasAttr("qkv_hidden_sizes") ? n.attrInts("qkv_hidden_sizes") : List.of();
    if (sizes.isEmpty()) {
      if (total % 3 != 0) {
        throw n.error("weights " + w.type() + " must have 3 * hidden columns");
      }
      qh = total / 3;
      vh = qh;
    } else {
      if (sizes.size() != 3 || sizes.get(0) <= 0 || sizes.get(2) <= 0 || !sizes.get(0).equals(sizes.get(1))
          || sizes.get(0) + sizes.get(1) + sizes.get(2) != total) {
        throw n.error("qkv_hidden_sizes " + sizes + " must be three positive sizes, q's equal to k's, summing "
            + "to the " + total + " columns of the weights");
      }
      qh = sizes.get(0);
      vh = sizes.get(2);
    }
    if (qh % heads != 0 || vh % heads != 0) {
      throw n.error("hidden sizes " + qh + " (q, k) and " + vh + " (v) must be multiples of num_heads " + heads);
    }
    if (bias.type().rank() != 1 || !bias.type().dim(0).equals(Dim.of(total))) {
      throw n.error("bias must be a vector of the weights' " + total + " columns, got " + bias.type());
    }
    ElementType et = x.type().elementType();
    Value qkv = n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, n.temp(new LinalgOp.MatMul(x, w)), bias));
    Dim nh = Dim.of(heads);
    List<Long> toHeads = List.of(0L, 2L, 1L, 3L);
    Value q = n.temp(new DataOp.Transpose(headsOf(n, qkv, 0, qh, b, s, nh), toHeads));
    if (n.has(4)) {
      attentionAfterPast(n, q, n.temp(new DataOp.Transpose(headsOf(n, qkv, qh, qh, b, s, nh), toHeads)),
          n.temp(new DataOp.Transpose(headsOf(n, qkv, 2 * qh, vh, b, s, nh), toHeads)), vh);
      return;
    }
    Value kT = n.temp(new DataOp.Transpose(headsOf(n, qkv, qh, qh, b, s, nh), List.of(0L, 2L, 3L, 1L)));
    Value v = n.temp(new DataOp.Transpose(headsOf(n, qkv, 2 * qh, vh, b, s, nh), toHeads));
    List<Value> masks = n.has(3) ? List.of(attentionMask(n, 3, b, s, et)) : List.of();
    n.emit(headsAttention(n, q, kT, v, scale(n, qh / heads), masks, vh));
  }

  /**
   * Attention's past (GPT-2 as ONNX Runtime's optimizer fuses it with its KV cache): keys and
   * values [2, B, N, P, H] before the new ones, present [2, B, N, P + S, H] the two stacked
   * again; the chip's attention over them (P may be symbolic: unidirectional aligns the queries
   * with the last keys), the mask_index over the P + S keys.
   */
  private static void attentionAfterPast(OnnxNode n, Value q, Value k, Value v, long vHidden) {
    TensorType qt = q.type();
    Dim b = qt.dim(0);
    Dim nh = qt.dim(1);
    Dim s = qt.dim(2);
    Dim h = qt.dim(3);
    Value past = n.value(4, "past");
    TensorType pt = past.type();
    if (!v.type().dim(3).equals(h) || pt.rank() != 5 || !pt.dim(0).is(2) || !pt.dim(1).equals(b)
        || !pt.dim(2).equals(nh) || !pt.dim(4).equals(h)) {
      throw n.error("past must be [2, " + b + ", " + nh + ", past, " + h + "] (and v's head size q's), got " + pt);
    }
    Dim p = pt.dim(3);
    List<Dim> cache = List.of(b, nh, p, h);
    Value pastK = n.reshape(n.temp(new DataOp.Slice(past, List.of(Dim.of(0)), List.of(Dim.of(1)), List.of(0L),
        List.of(1L))), cache);
    Value pastV = n.reshape(n.temp(new DataOp.Slice(past, List.of(Dim.of(1)), List.of(Dim.of(2)), List.of(0L),
        List.of(1L))), cache);
    Value keys = n.temp(new TransformerOp.KvCacheAppend(pastK, k));
    Value values = n.temp(new TransformerOp.KvCacheAppend(pastV, v));
    Dim t = keys.type().dim(2);
    if (n.wants(1)) {
      List<Dim> one = List.of(Dim.of(1), b, nh, t, h);
      n.set(1, n.temp(new DataOp.Concat(List.of(n.reshape(keys, one), n.reshape(values, one)), 0)));
    }
    Value mask = n.has(3) ? attentionMask(n, 3, b, t, qt.elementType()) : null;
    Value attended = n.temp(new TransformerOp.Attention(q, keys, values, mask, scale(n, h.value()),
        n.attrInt("unidirectional", 0) != 0, 0));
    n.emit(new DataOp.Reshape(n.temp(new DataOp.Transpose(attended, List.of(0L, 2L, 1L, 3L))),
        List.of(b, s, Dim.of(vHidden))));
  }

  /** The scale attribute, 1 / sqrt(head size) when absent or 0 (as ONNX Runtime takes it). */
  static double scale(OnnxNode n, long headSize) {
    double scale = n.attrFloat("scale", 0.0);
    return scale != 0.0 ? scale : (float) (1.0 / Math.sqrt((float) headSize));
  }

  /**
   * {@code softmax(q @ kT * scale + masks) @ v} over heads ([B, N, S, H] queries, [B, N, H, T]
   * transposed keys, [B, N, T, Hv] values), the heads merged back into [B, S, vHidden]. With
   * {@code unidirectional}, query i sees keys up to {@code i + T - S} (the past before the
   * queries), later ones hidden with the type's lowest value as ONNX Runtime hides them.
   */
  private static Op headsAttention(OnnxNode n, Value q, Value kT, Value v, double scale, List<Value> masks,
      long vHidden) {
    ElementType et = q.type().elementType();
    Dim b = q.type().dim(0);
    Dim s = q.type().dim(2);
    Dim t = kT.type().dim(3);
    Value scores = n.temp(new ElementwiseOp.Binary(BinaryKind.MUL, n.temp(new LinalgOp.MatMul(q, kT)),
        n.constant(Tensor.scalar(et, scale))));
    for (Value m : masks) {
      scores = n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, scores, m));
    }
    if (n.attrInt("unidirectional", 0) != 0) {
      Dim past = t.minus(s);
      if (!past.isStatic() || past.value() < 0) {
        throw n.error("unidirectional needs a known number of keys before the queries; " + t + " keys for " + s
            + " queries is " + past);
      }
      Value neg = n.temp(new SourceOp.Fill(List.of(s, t), -Float.MAX_VALUE, et));
      scores = n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, scores,
          n.temp(new DataOp.Trilu(neg, true, past.value() + 1))));
    }
    Value probs = n.temp(new ReductionOp.Softmax(scores, -1, false));
    Value merged = n.temp(new DataOp.Transpose(n.temp(new LinalgOp.MatMul(probs, v)), List.of(0L, 2L, 1L, 3L)));
    return new DataOp.Reshape(merged, List.of(b, s, Dim.of(vHidden)));
  }

  /**
   * MultiHeadAttention with separate query [B, S, D], key [B, L, D] and value [B, L, Dv]: each
   * split into num_heads heads after the optional input-projection bias (q's, k's, v's slices of
   * one vector), keys and values appended to past_key / past_value ([B, N, P, H]: present_key and
   * present_value are the [B, N, P + L, H] results), and attention over them with the optional
   * key_padding_mask (as Attention's mask_index, over the P + L keys) and attention_bias
   * ([B or 1, N or 1, S, P + L], added to the scaled scores).
   */
  private static void multiHeadAttention(OnnxNode n) {
    for (int i = 8; i < n.inputCount(); i++) {
      if (n.has(i)) {
        throw n.error("input " + i + " (" + (i == 8 ? "past_sequence_length" : "cache_indirection")
            + ") is not supported");
      }
    }
    if (n.wants(3)) {
      throw n.error("output 3 (qk) is not supported");
    }
    Value query = n.value(0, "query");
    if (query.type().rank() != 3) {
      throw n.error("query must be [batch, sequence, hidden], got " + query.type()
          + " (packed QKV is not supported)");
    }
    if (!n.has(1) || !n.has(2)) {
      throw n.error("needs key (input 1) and value (input 2): packed QKV is not supported");
    }
    Value key = n.value(1, "key");
    Value value = n.value(2, "value");
    Dim b = query.type().dim(0);
    Dim s = query.type().dim(1);
    Dim d = query.type().dim(2);
    if (key.type().rank() != 3 || value.type().rank() != 3) {
      throw n.error("key and value must be [batch, kv_sequence, hidden], got " + key.type() + " and "
          + value.type() + " (packed KV and [batch, heads, kv_sequence, head size] forms are not supported)");
    }
    Dim l = key.type().dim(1);
    if (!key.type().dim(0).equals(b) || !key.type().dim(2).equals(d) || !value.type().dim(0).equals(b)
        || !value.type().dim(1).equals(l) || !d.isStatic() || !value.type().dim(2).isStatic()) {
      throw n.error("key " + key.type() + " and value " + value.type() + " do not fit the query "
          + query.type() + ": key must be [" + b + ", L, " + d + "], value [" + b + ", L, Dv], hidden sizes static");
    }
    long heads = n.attrInt("num_heads", 0);
    long hidden = d.value();
    long vHidden = value.type().dim(2).value();
    if (!n.hasAttr("num_heads") || heads <= 0 || hidden % heads != 0 || vHidden % heads != 0) {
      throw n.error("num_heads must be given, positive and divide the hidden sizes " + hidden + " and " + vHidden);
    }
    if (n.has(3)) {
      Value bias = n.value(3, "bias");
      if (bias.type().rank() != 1 || !bias.type().dim(0).equals(Dim.of(2 * hidden + vHidden))) {
        throw n.error("bias must be a vector of " + (2 * hidden + vHidden) + " (q, k and v hidden sizes), got "
            + bias.type());
      }
      query = plusSlice(n, query, bias, 0, hidden);
      key = plusSlice(n, key, bias, hidden, hidden);
      value = plusSlice(n, value, bias, 2 * hidden, vHidden);
    }
    Dim nh = Dim.of(heads);
    List<Long> toHeads = List.of(0L, 2L, 1L, 3L);
    Value q = n.temp(new DataOp.Transpose(n.reshape(query, List.of(b, s, nh, Dim.of(hidden / heads))), toHeads));
    Value k = withPast(n, 6, n.temp(new DataOp.Transpose(n.reshape(key, List.of(b, l, nh, Dim.of(hidden / heads))),
        toHeads)), 1);
    Value v = withPast(n, 7, n.temp(new DataOp.Transpose(n.reshape(value,
        List.of(b, l, nh, Dim.of(vHidden / heads))), toHeads)), 2);
    Dim t = k.type().dim(2);
    List<Value> masks = new ArrayList<>();
    if (n.has(5)) {
      Value bias = n.value(5, "attention_bias");
      TensorType bt = bias.type();
      if (bt.rank() != 4 || !(bt.dim(0).equals(b) || bt.dim(0).is(1)) || !(bt.dim(1).equals(nh) || bt.dim(1).is(1))
          || !bt.dim(2).equals(s) || !bt.dim(3).equals(t)) {
        throw n.error("attention_bias must be [" + b + " or 1, " + heads + " or 1, " + s + ", " + t + "], got " + bt);
      }
      masks.add(bias);
    }
    if (n.has(4)) {
      masks.add(attentionMask(n, 4, b, t, query.type().elementType()));
    }
    n.emit(headsAttention(n, q, n.temp(new DataOp.Transpose(k, List.of(0L, 1L, 3L, 2L))), v,
        scale(n, hidden / heads), masks, vHidden));
  }

  /**
   * RotaryEmbedding: the IR's rope over each head, its tables the cache rows at the positions,
   * each half-width row widened to the rope's R columns as its style pairs them (rotate-half:
   * the row twice; interleaved: each value twice in place).
   */
  private static void rotaryEmbedding(OnnxNode n) {
    if (n.attrInt("is_packed_batching", 0) != 0) {
      throw n.error("is_packed_batching is not supported");
    }
    if (n.attrFloat("scale", 1.0) != 1.0) {
      throw n.error("scale " + n.attrFloat("scale", 1.0) + " is not supported (only 1)");
    }
    Value x = n.value(0, "input");
    Value ids = n.value(1, "position_ids");
    Value cos = n.value(2, "cos_cache");
    Value sin = n.value(3, "sin_cache");
    TensorType ct = cos.type();
    if (ct.rank() != 2 || !ct.dim(1).isStatic() || !sin.type().dims().equals(ct.dims())
        || sin.type().elementType() != ct.elementType() || ct.elementType() != x.type().elementType()) {
      throw n.error("cos_cache and sin_cache must be [positions, rotary dims / 2] of the input's type, got "
          + ct + " and " + sin.type());
    }
    long half = ct.dim(1).value();
    long rotary = n.attrInt("rotary_embedding_dim", 0);
    if (rotary != 0 && rotary != 2 * half) {
      throw n.error("rotary_embedding_dim " + rotary + " must be twice the caches' " + half + " columns");
    }
    TensorType xt = x.type();
    Dim b = xt.dim(0);
    boolean bnsh = xt.rank() == 4;
    if ((xt.rank() != 3 && !bnsh) || !xt.dim(xt.rank() - 1).isStatic()) {
      throw n.error("input must be [batch, sequence, hidden] or [batch, heads, sequence, head size], got " + xt);
    }
    Dim s = xt.dim(bnsh ? 2 : 1);
    long last = xt.dim(xt.rank() - 1).value();
    // divisions only: a cache width or head count near 2^63 must not overflow into a pass
    long heads = bnsh ? 1 : n.attrInt("num_heads", 0) > 0 ? n.attrInt("num_heads", 0)
        : half > 0 ? last / half / 2 : 0;
    if (half == 0 || heads == 0 || last % heads != 0 || half > last / heads / 2) {
      throw n.error("the caches' " + half + " columns (half the rotary dims) do not fit the heads of the input "
          + xt + (bnsh ? "" : " (num_heads " + heads + ")"));
    }
    long headSize = last / heads;
    Value positions;
    TensorType pt = ids.type();
    if (pt.elementType() != ElementType.I64) {
      throw n.error("position_ids must be int64, got " + pt);
    }
    if (pt.rank() == 2 && pt.dim(0).equals(b) && pt.dim(1).equals(s)) {
      positions = ids;
    } else if (pt.rank() == 1 && pt.dim(0).is(1)) {
      positions = n.temp(new ElementwiseOp.Binary(BinaryKind.ADD,
          n.reshape(n.temp(new SourceOp.Range(0, s, 1, ElementType.I64)), List.of(Dim.of(1), s)), ids));
    } else {
      throw n.error("position_ids must be [" + b + ", " + s + "] or [1] (the first position), got " + pt);
    }
    boolean interleaved = n.attrInt("interleaved", 0) != 0;
    if (bnsh) {
      n.set(0, rope(n, x, cos, sin, positions, interleaved));
      return;
    }
    List<Long> swap = List.of(0L, 2L, 1L, 3L);
    Value byHead = n.temp(new DataOp.Transpose(n.reshape(x, List.of(b, s, Dim.of(heads), Dim.of(headSize))), swap));
    Value rotated = rope(n, byHead, cos, sin, positions, interleaved);
    n.emit(new DataOp.Reshape(n.temp(new DataOp.Transpose(rotated, swap)), xt.dims()));
  }

  /**
   * The rope of heads [B, N, S, H] at {@code positions} ([B or 1, S], i64 or i32): the rows of
   * the half-width caches ([positions, R / 2]) there, widened to the R rotated dims as the style
   * pairs them, as a [B or 1, 1, S, R] table the heads share. Several positions of each sequence
   * of several rotate its heads moved ahead of the batch instead, [1, N, B * S, H] against a [1, 1,
   * B * S, R] table: the chip's rope takes one table for every head, or a row per sequence of one
   * position.
   */
  static Value rope(OnnxNode n, Value byHead, Value cos, Value sin, Value positions, boolean interleaved) {
    TensorType xt = byHead.type();
    Dim b = xt.dim(0);
    Dim heads = xt.dim(1);
    Dim s = xt.dim(2);
    Dim rotary = Dim.of(2 * cos.type().dim(1).value());
    // one table for all, or a row per sequence of one position, the chip's rope takes as it is
    boolean direct = positions.type().dim(0).is(1) || s.is(1);
    Dim rows = direct ? s : b.times(s);
    List<Dim> tableShape = direct ? List.of(positions.type().dim(0), Dim.of(1), s, rotary)
        : List.of(Dim.of(1), Dim.of(1), rows, rotary);
    Value cosRows = n.reshape(widen(n, n.temp(new DataOp.Gather(cos, positions, 0)), interleaved), tableShape);
    Value sinRows = n.reshape(widen(n, n.temp(new DataOp.Gather(sin, positions, 0)), interleaved), tableShape);
    TransformerOp.RopeStyle style = interleaved ? TransformerOp.RopeStyle.INTERLEAVED
        : TransformerOp.RopeStyle.ROTATE_HALF;
    if (direct) {
      return n.temp(new TransformerOp.Rope(byHead, cosRows, sinRows, style));
    }
    List<Long> headsFirst = List.of(1L, 0L, 2L, 3L);
    Value flat = n.reshape(n.temp(new DataOp.Transpose(byHead, headsFirst)), List.of(Dim.of(1), heads, rows,
        xt.dim(3)));
    Value rotated = n.temp(new TransformerOp.Rope(flat, cosRows, sinRows, style));
    return n.temp(new DataOp.Transpose(n.reshape(rotated, List.of(heads, b, s, xt.dim(3))), headsFirst));
  }

  /** Half-width table rows [.., R/2] as the rope's [.., R]: twice over, or each value twice. */
  private static Value widen(OnnxNode n, Value rows, boolean interleaved) {
    if (!interleaved) {
      return n.temp(new DataOp.Concat(List.of(rows, rows), -1));
    }
    List<Dim> dims = new ArrayList<>(rows.type().dims());
    dims.add(Dim.of(1));
    Value column = n.reshape(rows, dims);
    Value pairs = n.temp(new DataOp.Concat(List.of(column, column), -1));
    List<Dim> wide = new ArrayList<>(rows.type().dims());
    wide.set(wide.size() - 1, Dim.of(2 * rows.type().dim(rows.type().rank() - 1).value()));
    return n.reshape(pairs, wide);
  }

  /** {@code x + bias[start, start + width)}. */
  private static Value plusSlice(OnnxNode n, Value x, Value bias, long start, long width) {
    Value part = n.temp(new DataOp.Slice(bias, List.of(Dim.of(start)), List.of(Dim.of(start + width)),
        List.of(0L), List.of(1L)));
    return n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, x, part));
  }

  /**
   * New keys or values [B, N, L, H] after the past of input {@code pastInput} ([B, N, P, H]) when
   * given, defining output {@code presentOutput} as the result.
   */
  private static Value withPast(OnnxNode n, int pastInput, Value x, int presentOutput) {
    Value all = x;
    if (n.has(pastInput)) {
      String role = pastInput == 6 ? "past_key" : "past_value";
      Value past = n.value(pastInput, role);
      TensorType pt = past.type();
      if (pt.rank() != 4 || !pt.dim(0).equals(x.type().dim(0)) || !pt.dim(1).equals(x.type().dim(1))
          || !pt.dim(3).equals(x.type().dim(3))) {
        throw n.error(role + " must be [" + x.type().dim(0) + ", "
            + x.type().dim(1) + ", past, " + x.type().dim(3) + "], got " + pt);
      }
      all = n.temp(new DataOp.Concat(List.of(past, x), 2));
    }
    if (n.wants(presentOutput)) {
      n.set(presentOutput, all);
    }
    return all;
  }

  /** Columns {@code [start, start + width)} of the projection, as [B, S, heads, width / heads]. */
  private static Value headsOf(OnnxNode n, Value qkv, long start, long width, Dim b, Dim s, Dim heads) {
    Value cols = n.temp(new DataOp.Slice(qkv, List.of(Dim.of(start)), List.of(Dim.of(start + width)),
        List.of(2L), List.of(1L)));
    return n.reshape(cols, List.of(b, s, heads, Dim.of(width / heads.value())));
  }

  /**
   * Attention's mask_index (input 3) or MultiHeadAttention's key_padding_mask (input 4) as an
   * additive [B, 1, 1, S] mask over the S keys: 0 for a key a query sees, mask_filter_value for
   * one it does not. A [B, S] mask hides the keys where it is 0 or less; a [B] one holds each
   * row's key count, hiding the keys at or after it.
   */
  private static Value attentionMask(OnnxNode n, int input, Dim b, Dim s, ElementType et) {
    Value m = n.value(input, input == 3 ? "mask_index" : "key_padding_mask");
    ElementType mt = m.type().elementType();
    if (mt != ElementType.I32) {
      throw n.error((input == 3 ? "mask_index" : "key_padding_mask") + " must be int32, got " + m.type());
    }
    if (m.type().rank() == 2 && m.type().dim(0).equals(b) && !m.type().dim(1).equals(s)
        && !(m.type().dim(1).isStatic() && s.isStatic())) {
      // a mask over keys of a dim of its own (total_sequence_length beside past_sequence_length + S):
      // its first S keys, the rest past them refused at launch (a slice up to a symbolic end)
      m = n.temp(new DataOp.Slice(m, List.of(Dim.of(0)), List.of(s), List.of(1L), List.of(1L)));
    }
    // compared in f32, which the chip compares: the cast keeps every int32 sign, and lengths below 2^24
    Value fm = n.temp(new ElementwiseOp.Cast(m, ElementType.F32));
    Value keep;
    if (m.type().rank() == 2 && m.type().dim(0).equals(b) && m.type().dim(1).equals(s)) {
      keep = n.temp(new ElementwiseOp.Binary(BinaryKind.GREATER, fm, n.zeroScalar(ElementType.F32)));
    } else if (m.type().rank() == 1 && m.type().dim(0).equals(b)) {
      Value keys = n.temp(new SourceOp.Range(0, s, 1, ElementType.F32));
      keep = n.temp(new ElementwiseOp.Binary(BinaryKind.LESS, keys, n.reshape(fm, List.of(b, Dim.of(1)))));
    } else {
      throw n.error((input == 3 ? "mask_index " : "key_padding_mask ") + m.type() + " is not supported: it must be [" + b + ", " + s
          + "] (0/1 per key) or [" + b + "] (key counts)");
    }
    Value additive = n.temp(new ElementwiseOp.Where(keep, n.constant(Tensor.scalar(et, 0.0)),
        n.constant(Tensor.scalar(et, (float) n.attrFloat("mask_filter_value", -10000.0)))));
    return n.reshape(additive, List.of(b, Dim.of(1), Dim.of(1), s));
  }

  /**
   * BERT's embeddings: word, position and (optional) segment embeddings gathered and added, then
   * layer-normalized; mask_index counts each row's mask values equal to 1, as ONNX Runtime does.
   */
  private static void embedLayerNorm(OnnxNode n) {
    Value ids = n.value(0, "input_ids");
    TensorType it = ids.type();
    if (it.rank() != 2 || it.elementType() != ElementType.I32) {
      throw n.error("input_ids must be int32 [batch, sequence], got " + it);
    }
    Dim b = it.dim(0);
    Dim s = it.dim(1);
    Value word = n.value(2, "word_embedding");
    Value pos = n.value(3, "position_embedding");
    if (word.type().rank() != 2) {
      throw n.error("word_embedding must have rank 2, got " + word.type());
    }
    Dim h = word.type().dim(1);
    if (pos.type().rank() != 2 || !pos.type().dim(1).equals(h)) {
      throw n.error("position_embedding must be [positions, " + h + "], got " + pos.type());
    }
    if (n.has(1) != n.has(4)) {
      throw n.error("segment_ids (input 1) and segment_embedding (input 4) must be given together");
    }
    Value sum = n.temp(new DataOp.Gather(word, ids, 0));
    Value positions;
    if (n.has(8)) {
      Value p = n.value(8, "position_ids");
      TensorType pt = p.type();
      if (pt.rank() != 2 || pt.elementType() != ElementType.I32 || !pt.dim(1).equals(s)
          || !(pt.dim(0).equals(b) || pt.dim(0).is(1))) {
        throw n.error("position_ids must be int32 [" + b + ", " + s + "] or [1, " + s + "], got " + pt);
      }
      positions = p;
    } else {
      positions = n.temp(new SourceOp.Range(0, s, 1, ElementType.I32));
    }
    sum = n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, sum, n.temp(new DataOp.Gather(pos, positions, 0))));
    if (n.has(1)) {
      Value seg = n.value(1, "segment_ids");
      Value segEmb = n.value(4, "segment_embedding");
      if (!seg.type().equals(it)) {
        throw n.error("segment_ids must have the type of input_ids " + it + ", got " + seg.type());
      }
      if (segEmb.type().rank() != 2 || !segEmb.type().dim(1).equals(h)) {
        throw n.error("segment_embedding must be [segments, " + h + "], got " + segEmb.type());
      }
      sum = n.temp(new ElementwiseOp.Binary(BinaryKind.ADD, sum, n.temp(new DataOp.Gather(segEmb, seg, 0))));
    }
    Value gamma = vector(n, 5, "gamma", sum);
    Value beta = vector(n, 6, "beta", sum);
    n.emit(new TransformerOp.LayerNorm(sum, gamma, beta, -1, n.attrFloat("epsilon", 1e-12)));
    if (n.wants(1)) {
      Value maskIndex;
      if (n.has(7)) {
        Value m = n.value(7, "mask");
        if (!m.type().equals(it)) {
          throw n.error("mask must have the type of input_ids " + it + ", got " + m.type());
        }
        // counted in f32, which the chip compares and sums (exact for counts and values below 2^24)
        Value ones = n.temp(new ElementwiseOp.Cast(n.temp(new ElementwiseOp.Binary(BinaryKind.EQUAL,
            n.temp(new ElementwiseOp.Cast(m, ElementType.F32)), n.constant(Tensor.scalar(ElementType.F32, 1)))),
            ElementType.F32));
        maskIndex = n.temp(new ElementwiseOp.Cast(n.temp(new ReductionOp.Reduce(ReduceKind.SUM, ones, List.of(1L),
            false)), ElementType.I32));
      } else {
        maskIndex = n.temp(new SourceOp.Fill(List.of(b), 0, ElementType.I32));
      }
      n.set(1, maskIndex);
    } else if (n.has(7) && !n.value(7, "mask").type().equals(it)) {
      throw n.error("mask must have the type of input_ids " + it + ", got " + n.type(7));
    }
    n.set(2, sum);
  }

  // ---- data movement

  static void passThrough(OnnxNode n, int in, int out) {
    Known k = n.known(in);
    if (k != null) {
      n.set(out, k);
    } else {
      n.set(out, n.value(in));
    }
  }

  private static void dropout(OnnxNode n) {
    if (n.has(2) && n.known(2) instanceof Known.Concrete c && c.tensor().get(0) != 0) {
      throw n.error("training_mode is true; sohuc imports models for inference");
    }
    passThrough(n, 0, 0);
    if (n.wants(1)) {
      n.set(1, n.temp(new SourceOp.Fill(n.type(0).dims(), 1, ElementType.BOOL)));
    }
  }

  private static void transpose(OnnxNode n) {
    int rank = n.type(0).rank();
    List<Long> perm = n.attrInts("perm");
    if (perm == null || perm.isEmpty() && rank > 0) {
      perm = new ArrayList<>();
      for (long i = rank - 1; i >= 0; i--) {
        perm.add(i);
      }
    }
    n.emit(new DataOp.Transpose(n.value(0), perm));
  }

  private static void reshape(OnnxNode n) {
    List<Dim> shape = n.dims(1, "shape");
    boolean allowZero = n.attrInt("allowzero", 0) != 0;
    TensorType in = n.type(0);
    List<Dim> target = new ArrayList<>();
    for (int i = 0; i < shape.size(); i++) {
      Dim d = shape.get(i);
      if (!allowZero && d.is(0)) {
        if (i >= in.rank()) {
          throw n.error("shape " + shape + " copies dim " + i + " (0) of a rank-" + in.rank() + " input");
        }
        target.add(in.dim(i));
      } else {
        target.add(d);
      }
    }
    reshapeTo(n, target);
  }

  /** Reshape output 0 to {@code target} (may hold one -1): folded when the input is known. */
  private static void reshapeTo(OnnxNode n, List<Dim> target) {
    List<Dim> out;
    try {
      out = new DataOp.Reshape(Value.argument("x", n.type(0)), target).inferResultTypes().get(0).dims();
    } catch (OpException e) {
      throw n.error(e.getMessage());
    }
    Known k = n.known(0);
    if (k != null) {
      Known r = reshapeKnown(k, out);
      if (r != null) {
        n.set(0, r);
        return;
      }
    }
    n.emit(new DataOp.Reshape(n.value(0), out));
  }

  private static Known reshapeKnown(Known k, List<Dim> out) {
    if (out.size() <= 1 && Known.dimsOf(k) != null) {
      return Known.ofDims(Known.dimsOf(k), out.isEmpty(), Known.elementType(k));
    }
    if (k instanceof Known.Concrete c && out.stream().allMatch(Dim::isStatic)) {
      Tensor t = c.tensor();
      long[] shape = out.stream().mapToLong(Dim::value).toArray();
      return new Known.Concrete(t.isFloat() ? Tensor.ofFloats(t.elementType(), shape, t.floats().clone())
          : Tensor.ofLongs(t.elementType(), shape, t.longs().clone()));
    }
    return null;
  }

  private static void flatten(OnnxNode n) {
    List<Dim> d = n.type(0).dims();
    long axis = n.attrInt("axis", 1);
    if (axis < -d.size() || axis > d.size()) {
      throw n.error("axis " + axis + " is out of range for rank " + d.size());
    }
    int ax = (int) (axis < 0 ? axis + d.size() : axis);
    reshapeTo(n, List.of(product(d.subList(0, ax)), product(d.subList(ax, d.size()))));
  }

  static List<Long> axesOf(OnnxNode n, int input, int sinceInputOpset) {
    if (n.opset >= sinceInputOpset) {
      return n.has(input) ? boxed(n.longs(input, "axes")) : null;
    }
    return n.attrInts("axes");
  }

  private static void squeeze(OnnxNode n) {
    List<Dim> d = n.type(0).dims();
    List<Long> axes = axesOf(n, 1, 13);
    List<Integer> drop = new ArrayList<>();
    if (axes == null || axes.isEmpty()) {
      for (int i = 0; i < d.size(); i++) {
        if (d.get(i).is(1)) {
          drop.add(i);
        }
      }
    } else {
      for (long a : axes) {
        int ax = normalizeAxis(n, a, d.size());
        if (d.get(ax).isStatic() && !d.get(ax).is(1)) {
          throw n.error("cannot squeeze axis " + a + " of size " + d.get(ax));
        }
        drop.add(ax);
      }
    }
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < d.size(); i++) {
      if (!drop.contains(i)) {
        out.add(d.get(i));
      }
    }
    reshapeTo(n, out);
  }

  private static void unsqueeze(OnnxNode n) {
    List<Dim> d = n.type(0).dims();
    List<Long> axes = axesOf(n, 1, 13);
    if (axes == null) {
      throw n.error("needs axes");
    }
    int rank = d.size() + axes.size();
    boolean[] inserted = new boolean[rank];
    for (long a : axes) {
      int ax = normalizeAxis(n, a, rank);
      if (inserted[ax]) {
        throw n.error("axis " + a + " is repeated");
      }
      inserted[ax] = true;
    }
    List<Dim> out = new ArrayList<>();
    int j = 0;
    for (int i = 0; i < rank; i++) {
      out.add(inserted[i] ? Dim.of(1) : d.get(j++));
    }
    reshapeTo(n, out);
  }

  private static void concat(OnnxNode n) {
    long axis = n.attrInt("axis", 0);
    if (n.allKnown() && n.type(0).rank() == 1) {
      List<Dim> all = new ArrayList<>();
      boolean ok = true;
      for (int i = 0; i < n.inputCount() && ok; i++) {
        List<Dim> d = n.has(i) ? Known.dimsOf(n.known(i)) : null;
        ok = d != null && n.type(i).rank() == 1 && n.type(i).elementType() == n.type(0).elementType();
        if (ok) {
          all.addAll(d);
        }
      }
      if (ok) {
        n.set(0, Known.ofDims(all, false, n.type(0).elementType()));
        return;
      }
    }
    List<Value> inputs = new ArrayList<>();
    for (int i = 0; i < n.inputCount(); i++) {
      inputs.add(n.value(i));
    }
    n.emit(new DataOp.Concat(inputs, axis));
  }

  private static void split(OnnxNode n) {
    TensorType t = n.type(0);
    long axis = n.attrInt("axis", 0);
    int ax = normalizeAxis(n, axis, t.rank());
    Dim total = t.dim(ax);
    List<Dim> sizes;
    if (n.opset >= 13 && n.has(1)) {
      sizes = n.dims(1, "split");
    } else if (n.opset < 13 && n.hasAttr("split")) {
      sizes = n.attrInts("split").stream().map(Dim::of).toList();
    } else {
      long parts = n.hasAttr("num_outputs") ? n.attrInt("num_outputs", 1) : n.outputCount();
      if (parts <= 0) {
        throw n.error("num_outputs must be positive, got " + parts);
      }
      sizes = new ArrayList<>();
      if (total.isStatic()) {
        long chunk = (total.value() + parts - 1) / parts;
        for (long i = 0, left = total.value(); i < parts; i++, left -= chunk) {
          sizes.add(Dim.of(Math.max(0, Math.min(chunk, left))));
        }
      } else {
        Dim chunk = total.dividedBy(parts).orElseThrow(() -> n.error("cannot split " + total + " into "
            + parts + " equal parts"));
        for (int i = 0; i < parts; i++) {
          sizes.add(chunk);
        }
      }
    }
    n.emitAll(new DataOp.Split(n.value(0), axis, sizes));
  }

  private static void slice(OnnxNode n) {
    List<Dim> starts = n.dims(1, "starts");
    List<Dim> ends = n.dims(2, "ends");
    List<Long> axes = new ArrayList<>();
    if (n.has(3)) {
      axes = boxed(n.longs(3, "axes"));
    } else {
      for (long i = 0; i < starts.size(); i++) {
        axes.add(i);
      }
    }
    List<Long> steps = n.has(4) ? boxed(n.longs(4, "steps")) : java.util.Collections.nCopies(starts.size(), 1L);
    Known k = n.known(0);
    if (k != null && n.type(0).rank() == 1 && Known.dimsOf(k) != null && starts.size() == 1
        && starts.get(0).isStatic() && ends.get(0).isStatic()) {
      List<Dim> data = Known.dimsOf(k);
      long len = data.size();
      long step = steps.get(0);
      if (step != 0) {
        long s = clamp(starts.get(0).value(), len, step > 0);
        long e = clamp(ends.get(0).value(), len, step > 0);
        List<Dim> out = new ArrayList<>();
        for (long i = s; step > 0 ? i < e : i > e; i += step) {
          out.add(data.get((int) i));
        }
        n.set(0, Known.ofDims(out, false, Known.elementType(k)));
        return;
      }
    }
    n.emit(new DataOp.Slice(n.value(0), starts, ends, axes, steps));
  }

  private static long clamp(long i, long dim, boolean forward) {
    long v = i < 0 ? i + dim : i;
    return forward ? Math.max(0, Math.min(v, dim)) : Math.max(-1, Math.min(v, dim - 1));
  }

  private static void gather(OnnxNode n) {
    long axis = n.attrInt("axis", 0);
    Known data = n.known(0);
    Known idx = n.known(1);
    if (data != null && idx instanceof Known.Concrete ci && n.type(0).rank() == 1 && Known.dimsOf(data) != null
        && ci.tensor().rank() <= 1 && !ci.tensor().isFloat()) {
      List<Dim> d = Known.dimsOf(data);
      List<Dim> out = new ArrayList<>();
      for (int i = 0; i < ci.tensor().size(); i++) {
        long j = ci.tensor().getLong(i);
        if (j < -d.size() || j >= d.size()) {
          throw n.error("index " + j + " is out of range for " + d.size() + " entries");
        }
        out.add(d.get((int) (j < 0 ? j + d.size() : j)));
      }
      n.set(0, Known.ofDims(out, ci.tensor().rank() == 0, Known.elementType(data)));
      return;
    }
    checkConstantIndices(n, idx, axis);
    n.emit(new DataOp.Gather(n.value(0), n.value(1), axis));
  }

  /**
   * Constant indices must lie in [-size, size) of the data's static dim at {@code axis}: ONNX
   * says an index outside is an error, and a table lookup past its rows would read whatever
   * lies beyond the table instead.
   */
  private static void checkConstantIndices(OnnxNode n, Known idx, long axis) {
    int rank = n.type(0).rank();
    if (!(idx instanceof Known.Concrete ci) || ci.tensor().isFloat() || axis < -rank || axis >= rank) {
      return;  // computed indices, or a bad axis the op itself reports
    }
    Dim d = n.type(0).dim((int) (axis < 0 ? axis + rank : axis));
    if (!d.isStatic()) {
      return;
    }
    long size = d.value();
    for (int i = 0; i < ci.tensor().size(); i++) {
      long j = ci.tensor().getLong(i);
      if (j < -size || j >= size) {
        throw n.error("index " + j + " (element " + i + " of input '" + n.proto.getInput(1)
            + "') is out of range for axis " + axis + " of size " + size);
      }
    }
  }

  private static void expand(OnnxNode n) {
    List<Dim> shape = n.dims(1, "shape");
    if (n.known(0) instanceof Known.Concrete c) {
      List<Dim> out;
      try {
        out = new DataOp.Expand(Value.argument("x", n.type(0)), shape).inferResultTypes().get(0).dims();
      } catch (OpException e) {
        throw n.error(e.getMessage());
      }
      if (out.stream().allMatch(Dim::isStatic)) {
        long[] s = out.stream().mapToLong(Dim::value).toArray();
        if (Tensor.checkedSize(s) <= Fold.MAX_FOLD_ELEMENTS) {
          Tensor src = c.tensor();
          Tensor r = Tensor.zeros(src.elementType(), s);
          for (int i = 0; i < r.size(); i++) {
            r.set(i, src.get(Fold.sourceIndex(s, src.shape(), i)));
          }
          n.set(0, new Known.Concrete(r));
          return;
        }
      }
    }
    n.emit(new DataOp.Expand(n.value(0), shape));
  }

  private static void shape(OnnxNode n) {
    List<Dim> d = n.type(0).dims();
    int rank = d.size();
    long start = n.attrInt("start", 0);
    long end = n.attrInt("end", rank);
    int s = (int) Math.max(0, Math.min(start < 0 ? start + rank : start, rank));
    int e = (int) Math.max(0, Math.min(end < 0 ? end + rank : end, rank));
    n.set(0, Known.ofDims(d.subList(s, Math.max(s, e)), false, ElementType.I64));
  }

  private static void constantOfShape(OnnxNode n) {
    List<Dim> shape = n.dims(0, "shape");
    TensorProto v = n.attrTensor("value");
    Tensor value = v == null ? Tensor.scalar(ElementType.F32, 0)
        : OnnxTensors.toTensor(v, n.graph.where(n) + ": attribute 'value'");
    if (value.size() != 1) {
      throw n.error("attribute 'value' must hold one element, got " + value.type());
    }
    if (shape.stream().allMatch(Dim::isStatic)) {
      long[] s = shape.stream().mapToLong(Dim::value).toArray();
      if (Tensor.checkedSize(s) <= GraphImporter.MAX_INLINE_ELEMENTS) {
        Tensor t = Tensor.zeros(value.elementType(), s);
        for (int i = 0; i < t.size(); i++) {
          t.set(i, value.get(0));
        }
        n.set(0, new Known.Concrete(t));
        return;
      }
    }
    n.emit(new SourceOp.Fill(shape, value.get(0), value.elementType()));
  }

  private static void constant(OnnxNode n) {
    if (n.proto.getAttributeCount() != 1) {
      throw n.error("needs exactly one value attribute, got " + n.proto.getAttributeCount());
    }
    AttributeProto a = n.proto.getAttribute(0);
    String what = n.graph.where(n) + ": attribute '" + a.getName() + "'";
    Tensor t = switch (a.getName()) {
      case "value" -> OnnxTensors.toTensor(a.getT(), what);
      case "value_float" -> Tensor.scalar(ElementType.F32, a.getF());
      case "value_int" -> Tensor.ofLongs(ElementType.I64, new long[0], new long[] {a.getI()});
      case "value_floats" -> {
        float[] f = new float[a.getFloatsCount()];
        for (int i = 0; i < f.length; i++) {
          f[i] = a.getFloats(i);
        }
        yield Tensor.ofFloats(ElementType.F32, new long[] {f.length}, f);
      }
      case "value_ints" -> Tensor.ofLongs(ElementType.I64, new long[] {a.getIntsCount()},
          a.getIntsList().stream().mapToLong(Long::longValue).toArray());
      default -> throw n.error("attribute '" + a.getName() + "' is not supported (strings and sparse tensors)");
    };
    n.set(0, new Known.Concrete(t));
  }

  private static void range(OnnxNode n) {
    ElementType type = n.type(0).elementType();
    Known start = n.known(0);
    Known limit = n.known(1);
    Known delta = n.known(2);
    if (start == null || delta == null || limit == null) {
      throw n.dataDependent(start == null ? 0 : delta == null ? 2 : 1, "range bounds");
    }
    if (type.isFloat()) {
      double s = n.scalar(0, "start");
      double l = n.scalar(1, "limit");
      double d = n.scalar(2, "delta");
      double count = Math.max(Math.ceil((l - s) / d), 0);
      if (!(count <= Fold.MAX_FOLD_ELEMENTS)) {
        throw n.error("a float range of " + count + " elements is not supported");
      }
      Tensor t = Tensor.zeros(type, (long) count);
      for (int i = 0; i < t.size(); i++) {
        t.set(i, s + i * d);
      }
      n.set(0, new Known.Concrete(t));
      return;
    }
    long s = (long) n.scalar(0, "start");
    long d = (long) n.scalar(2, "delta");
    Dim l = n.dims(1, "limit").get(0);
    if (l.isStatic() && d != 0) {
      long count;
      try {
        count = Math.max(0, Math.floorDiv(Math.addExact(Math.subtractExact(l.value(), s), d + (d > 0 ? -1 : 1)), d));
      } catch (ArithmeticException e) {
        throw n.error("range from " + s + " to " + l.value() + " by " + d + " has more elements than 64 bits count");
      }
      if (count <= GraphImporter.MAX_INLINE_ELEMENTS) {
        long[] v = new long[(int) count];
        for (int i = 0; i < v.length; i++) {
          v[i] = s + i * d;
        }
        n.set(0, new Known.Concrete(Tensor.ofLongs(type, new long[] {count}, v)));
        return;
      }
    }
    n.emit(new SourceOp.Range(s, l, d, type));
  }

  private static void reduce(OnnxNode n, ReduceKind kind) {
    List<Long> axes = axesOf(n, 1, kind == ReduceKind.SUM ? 13 : 18);
    boolean keepdims = n.attrInt("keepdims", 1) != 0;
    if ((axes == null || axes.isEmpty()) && n.attrInt("noop_with_empty_axes", 0) != 0) {
      passThrough(n, 0, 0);
      return;
    }
    n.emit(new ReductionOp.Reduce(kind, n.value(0), axes == null ? List.of() : axes, keepdims));
  }

  private static void pad(OnnxNode n) {
    String mode = n.attrString("mode", "constant");
    DataOp.PadMode m = switch (mode) {
      case "constant" -> DataOp.PadMode.CONSTANT;
      case "reflect" -> DataOp.PadMode.REFLECT;
      case "edge" -> DataOp.PadMode.EDGE;
      default -> throw n.error("mode '" + mode + "' is not supported");
    };
    int rank = n.type(0).rank();
    long[] pads = n.longs(1, "pads");
    double value = n.has(2) ? n.scalar(2, "constant_value") : 0;
    long[] full = pads;
    if (n.has(3)) {
      long[] axes = n.longs(3, "axes");
      if (pads.length != 2 * axes.length) {
        throw n.error("pads has " + pads.length + " entries for " + axes.length + " axes");
      }
      full = new long[2 * rank];
      for (int j = 0; j < axes.length; j++) {
        int ax = normalizeAxis(n, axes[j], rank);
        full[ax] = pads[j];
        full[ax + rank] = pads[j + axes.length];
      }
    }
    n.emit(new DataOp.Pad(n.value(0), boxed(full), m, value));
  }

  private static DataOp.ScatterReduction scatterReduction(OnnxNode n) {
    String r = n.attrString("reduction", "none");
    return Arrays.stream(DataOp.ScatterReduction.values()).filter(x -> x.name().equalsIgnoreCase(r)).findFirst()
        .orElseThrow(() -> n.error("reduction '" + r + "' is not supported"));
  }

  // ---- quantization

  private static void quantize(OnnxNode n) {
    requireNoBlocks(n);
    ElementType zpType = n.has(2) ? n.type(2).elementType()
        : n.hasAttr("output_dtype") ? n.attrType("output_dtype") : ElementType.U8;
    Value zp = n.has(2) ? n.value(2) : zeros(n, zpType, n.type(1));
    n.emit(new QuantOp.QuantizeLinear(n.value(0), n.value(1), zp, n.attrInt("axis", 1)));
  }

  private static void dequantize(OnnxNode n) {
    requireNoBlocks(n);
    Value zp = n.has(2) ? n.value(2) : zeros(n, n.type(0).elementType(), n.type(1));
    n.emit(new QuantOp.DequantizeLinear(n.value(0), n.value(1), zp, n.attrInt("axis", 1)));
  }

  private static void requireNoBlocks(OnnxNode n) {
    if (n.attrInt("block_size", 0) != 0) {
      throw n.error("blocked quantization (block_size " + n.attrInt("block_size", 0) + ") is not supported");
    }
  }

  /** A zero point of {@code type} shaped like the scale (ONNX lets it be omitted). */
  private static Value zeros(OnnxNode n, ElementType type, TensorType like) {
    if (!like.isStatic()) {
      throw n.error("the scale's shape " + like + " must be static when the zero point is omitted");
    }
    return n.constant(Tensor.zeros(type, like.evaluateShape(java.util.Map.of())));
  }

  // ---- helpers

  static int normalizeAxis(OnnxNode n, long axis, int rank) {
    if (axis < -rank || axis >= rank) {
      throw n.error("axis " + axis + " is out of range for rank " + rank);
    }
    return (int) (axis < 0 ? axis + rank : axis);
  }

  static Dim product(List<Dim> dims) {
    Dim p = Dim.of(1);
    for (Dim d : dims) {
      p = p.times(d);
    }
    return p;
  }

  private static List<Long> boxed(long[] v) {
    return Arrays.stream(v).boxed().toList();
  }
}
