package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.List;

/** Linear quantization in the ONNX sense: {@code q = saturate(round(x / scale) + zero_point)}. */
public sealed interface QuantOp extends Op {

  /** Scale and zero point are scalars (per tensor) or 1-D along {@code axis} (per channel). */
  private static void checkScale(Value x, Value scale, Value zeroPoint, long axis) {
    Shapes.requireFloat(scale, "scale");
    if (scale.type().rank() > 1) {
      throw new OpException("scale must be a scalar or 1-D, got " + scale.type());
    }
    if (!scale.type().dims().equals(zeroPoint.type().dims())) {
      throw new OpException("scale and zero point must have one shape, got " + scale.type()
          + " and " + zeroPoint.type());
    }
    if (scale.type().rank() == 1) {
      int ax = Shapes.axis(axis, x.type().rank(), "axis");
      Shapes.requireSameDim(scale.type().dim(0), x.type().dim(ax), "scale length and the quantized axis");
    }
  }

  /**
   * {@code %q = quantize_linear %x, %scale, %zero_point {axis = 1}}: result type is the zero
   * point's (i8, u8 or an fp8 type); rounding is to nearest even, then saturation.
   */
  record QuantizeLinear(Value x, Value scale, Value zeroPoint, long axis) implements QuantOp {
    @Override
    public String mnemonic() {
      return "quantize_linear";
    }

    @Override
    public List<Value> operands() {
      return List.of(x, scale, zeroPoint);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("axis", axis));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireFloat(x, "input");
      Shapes.requireType(zeroPoint, "zero point", ElementType.I8, ElementType.U8,
          ElementType.F8E4M3, ElementType.F8E5M2);
      checkScale(x, scale, zeroPoint, axis);
      return List.of(x.type().withElementType(zeroPoint.type().elementType()));
    }
  }

  /** {@code %x = dequantize_linear %q, %scale, %zero_point {axis = 1}}: {@code (q - zp) * scale}. */
  record DequantizeLinear(Value x, Value scale, Value zeroPoint, long axis) implements QuantOp {
    @Override
    public String mnemonic() {
      return "dequantize_linear";
    }

    @Override
    public List<Value> operands() {
      return List.of(x, scale, zeroPoint);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("axis", axis));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireType(x, "input", ElementType.I8, ElementType.U8, ElementType.I32,
          ElementType.F8E4M3, ElementType.F8E5M2);
      checkScale(x, scale, zeroPoint, axis);
      if (zeroPoint.type().elementType() != x.type().elementType()) {
        throw new OpException("zero point must have the input's type " + x.type().elementType()
            + ", got " + zeroPoint.type().elementType());
      }
      return List.of(x.type().withElementType(scale.type().elementType()));
    }
  }

  /**
   * {@code %q, %scale, %zp = dynamic_quantize_linear %x}: u8 quantization with scale and zero
   * point computed from the data's range (which always includes 0).
   */
  record DynamicQuantizeLinear(Value x) implements QuantOp {
    @Override
    public String mnemonic() {
      return "dynamic_quantize_linear";
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
      Shapes.requireType(x, "input", ElementType.F32);
      return List.of(x.type().withElementType(ElementType.U8), TensorType.scalar(ElementType.F32),
          TensorType.scalar(ElementType.U8));
    }
  }

  /**
   * {@code %c = matmul_integer %a, %b, %a_zp, %b_zp}: {@code (a - a_zp) @ (b - b_zp)} in i32;
   * zero points are scalars or per-row (a) / per-column (b) vectors.
   */
  record MatMulInteger(Value a, Value b, Value aZeroPoint, Value bZeroPoint) implements QuantOp {
    @Override
    public String mnemonic() {
      return "matmul_integer";
    }

    @Override
    public List<Value> operands() {
      return List.of(a, b, aZeroPoint, bZeroPoint);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireType(a, "a", ElementType.I8, ElementType.U8);
      Shapes.requireType(b, "b", ElementType.I8, ElementType.U8);
      Shapes.requireType(aZeroPoint, "a zero point", a.type().elementType());
      Shapes.requireType(bZeroPoint, "b zero point", b.type().elementType());
      if (aZeroPoint.type().rank() > 1 || bZeroPoint.type().rank() > 1) {
        throw new OpException("zero points must be scalars or 1-D");
      }
      return List.of(new TensorType(LinalgOp.matmulDims(a.type().dims(), b.type().dims()), ElementType.I32));
    }
  }

  /** Element types the MXU multiplies (besides f32/f16, which need no quantized form). */
  List<ElementType> MXU_TYPES = List.of(ElementType.BF16, ElementType.F8E4M3, ElementType.F8E5M2, ElementType.I8);

  /** The largest magnitude of a quantized type: what a scale maps the range onto. */
  static float maxMagnitude(ElementType t) {
    return switch (t) {
      case I8 -> 127f;
      case F8E4M3 -> 448f;
      case F8E5M2 -> 57344f;
      case BF16 -> Float.MAX_VALUE;
      default -> throw new OpException("no quantized range for " + t);
    };
  }

  /** A scale is an f32 scalar (per tensor) or one value per row of {@code x}: x's dims with the last set to 1. */
  private static void checkRowScale(Value x, Value scale, String role) {
    Shapes.requireType(scale, role, ElementType.F32);
    if (scale.type().rank() == 0) {
      return;
    }
    var xd = x.type().dims();
    var sd = scale.type().dims();
    if (sd.size() != xd.size() || !sd.get(sd.size() - 1).equals(dev.sohuc.ir.type.Dim.of(1))) {
      throw new OpException(role + " must be a scalar or one value per row " + Shapes.dimsText(
          withLastOne(xd)) + ", got " + scale.type());
    }
    for (int d = 0; d < xd.size() - 1; d++) {
      Shapes.requireSameDim(sd.get(d), xd.get(d), role + " dim " + d + " and x");
    }
  }

  private static List<dev.sohuc.ir.type.Dim> withLastOne(List<dev.sohuc.ir.type.Dim> dims) {
    var out = new java.util.ArrayList<>(dims);
    out.set(out.size() - 1, dev.sohuc.ir.type.Dim.of(1));
    return out;
  }

  /**
   * The chip's quantized matrix product (an {@code mma} in the operands' type, then the
   * accumulator read out and scaled by {@code accrd}/{@code cvt}):
   *
   * <pre>
   * %y = qmatmul %xq, %wq, %x_scale, %w_scale : tensor&lt;?b x ?s x 1536 x f32&gt;
   * </pre>
   *
   * {@code x} is {@code [..., M, K]} and {@code w} {@code [K, N]}, both of one type among bf16,
   * f8e4m3, f8e5m2 and i8. {@code x_scale} is an f32 scalar (per tensor) or {@code [..., M, 1]}
   * (per row: per token); {@code w_scale} an f32 scalar or {@code [N]} (per output channel).
   * The result is f32 {@code [..., M, N]}:
   *
   * <pre>
   * acc[i][j] = sum over p ascending of x[i][p] * w[p][j]   (float types: f32 fma, one rounding
   *                                                            per step; i8: i32, wrapping)
   * y[i][j]   = f32(f32(f32(acc[i][j]) * x_scale[i]) * w_scale[j])
   * </pre>
   *
   * which is {@code mma} then {@code accrd} (i32 or f32 to f32, times a per-tensor x scale) and
   * {@code cvt mode=row} / {@code mode=col} for per-token and per-channel scales.
   */
  record QMatMul(Value x, Value w, Value xScale, Value wScale) implements QuantOp {
    @Override
    public String mnemonic() {
      return "qmatmul";
    }

    @Override
    public List<Value> operands() {
      return List.of(x, w, xScale, wScale);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      ElementType t = x.type().elementType();
      if (!MXU_TYPES.contains(t)) {
        throw new OpException("qmatmul takes x in one of " + MXU_TYPES + ", got " + t);
      }
      if (w.type().elementType() != t) {
        throw new OpException("qmatmul needs x and w of one type (one mma dtype), got " + t + " and "
            + w.type().elementType());
      }
      Shapes.requireMinRank(x, "x", 2);
      Shapes.requireRank(w, "w", 2);
      var xd = x.type().dims();
      Shapes.requireSameDim(xd.get(xd.size() - 1), w.type().dim(0), "contracted dims");
      checkRowScale(x, xScale, "x scale");
      Shapes.requireType(wScale, "w scale", ElementType.F32);
      if (wScale.type().rank() == 1) {
        Shapes.requireSameDim(wScale.type().dim(0), w.type().dim(1), "w scale length and w's columns");
      } else if (wScale.type().rank() != 0) {
        throw new OpException("w scale must be a scalar or one value per output channel, got " + wScale.type());
      }
      var out = new java.util.ArrayList<>(xd);
      out.set(out.size() - 1, w.type().dim(1));
      return List.of(new TensorType(out, ElementType.F32));
    }
  }

  /**
   * Symmetric quantization with scales from the data itself (the chip's {@code vred max} of
   * {@code |x|}, then {@code cvt ... div=1}):
   *
   * <pre>
   * %q, %scale = dynamic_quantize %x {dtype = f8e4m3, granularity = "row"}
   *     : tensor&lt;?b x ?s x 384 x f8e4m3&gt;, tensor&lt;?b x ?s x 1 x f32&gt;
   * </pre>
   *
   * With granularity {@code row} (per token) the scale is {@code [..., M, 1]}, with
   * {@code tensor} a scalar. {@code amax = max |x|} over the row or tensor (NaN if any element
   * is NaN), {@code scale = max(f32(amax / qmax), 2^-126)} with qmax 127 (i8), 448 (f8e4m3) or
   * 57344 (f8e5m2), and {@code q = convert(f32(x / scale))}: round to nearest even, saturating.
   */
  record DynamicQuantize(Value x, ElementType dtype, String granularity) implements QuantOp {
    @Override
    public String mnemonic() {
      return "dynamic_quantize";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("dtype", dtype), Attr.Named.of("granularity", granularity));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireFloat(x, "input");
      if (dtype != ElementType.I8 && dtype != ElementType.F8E4M3 && dtype != ElementType.F8E5M2) {
        throw new OpException("dynamic_quantize produces i8, f8e4m3 or f8e5m2, got " + dtype);
      }
      TensorType scale = switch (granularity) {
        case "tensor" -> TensorType.scalar(ElementType.F32);
        case "row" -> {
          Shapes.requireMinRank(x, "input", 1);
          yield new TensorType(withLastOne(x.type().dims()), ElementType.F32);
        }
        default -> throw new OpException("granularity must be \"row\" or \"tensor\", got \"" + granularity + "\"");
      };
      return List.of(x.type().withElementType(dtype), scale);
    }
  }

  static void register(OpRegistry.Registrar r) {
    r.op("quantize_linear", 3, "x / scale + zero_point, rounded and saturated",
        (o, a) -> new QuantizeLinear(o.get(0), o.get(1), o.get(2), a.getInt("axis", 1)));
    r.op("dequantize_linear", 3, "(q - zero_point) * scale",
        (o, a) -> new DequantizeLinear(o.get(0), o.get(1), o.get(2), a.getInt("axis", 1)));
    r.op("dynamic_quantize_linear", 1, "u8 quantization with scale and zero point from the data",
        (o, a) -> new DynamicQuantizeLinear(o.get(0)));
    r.op("matmul_integer", 4, "integer matrix product with zero points, in i32",
        (o, a) -> new MatMulInteger(o.get(0), o.get(1), o.get(2), o.get(3)));
    r.op("qmatmul", 4, "quantized matrix product: mma in bf16/fp8/i8, then per-row and per-column scales",
        (o, a) -> new QMatMul(o.get(0), o.get(1), o.get(2), o.get(3)));
    r.op("dynamic_quantize", 1, "symmetric quantization with per-row or per-tensor scales from max |x|",
        (o, a) -> new DynamicQuantize(o.get(0), a.getType("dtype"), a.getString("granularity", "row")));
  }
}
