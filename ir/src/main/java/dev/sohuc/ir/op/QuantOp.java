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

  static void register(OpRegistry.Registrar r) {
    r.op("quantize_linear", 3, "x / scale + zero_point, rounded and saturated",
        (o, a) -> new QuantizeLinear(o.get(0), o.get(1), o.get(2), a.getInt("axis", 1)));
    r.op("dequantize_linear", 3, "(q - zero_point) * scale",
        (o, a) -> new DequantizeLinear(o.get(0), o.get(1), o.get(2), a.getInt("axis", 1)));
    r.op("dynamic_quantize_linear", 1, "u8 quantization with scale and zero point from the data",
        (o, a) -> new DynamicQuantizeLinear(o.get(0)));
    r.op("matmul_integer", 4, "integer matrix product with zero points, in i32",
        (o, a) -> new MatMulInteger(o.get(0), o.get(1), o.get(2), o.get(3)));
  }
}
