package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import java.util.List;

/**
 * The integer matrix products of ONNX Runtime's quantized formats, each as the exact i32 product
 * of the zero-point-shifted codes ({@code matmul_integer}) scaled in f32, in the order ONNX
 * Runtime scales it: QLinearMatMul (static QOperator quantization) requantized to 8 bits, and
 * com.microsoft's DynamicQuantizeMatMul and MatMulIntegerToFloat (dynamic quantization, as ONNX
 * Runtime's optimizer fuses it) to f32 with an optional bias. Scales and zero points are per
 * tensor, or per column of B.
 */
final class IntegerMatMuls {
  private IntegerMatMuls() {}

  /**
   * QLinearMatMul (a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
   * round half to even of f32(product) times a_scale * b_scale / y_scale, plus y's zero point,
   * saturated.
   */
  static void qlinearMatMul(OnnxNode n) {
    Value a = n.value(0);
    Value b = n.value(3);
    Value aScale = perTensor(n, 1, "a_scale");
    Value aZero = perTensor(n, 2, "a_zero_point");
    Value bScale = perColumn(n, 4, "b_scale", b);
    Value bZero = perColumn(n, 5, "b_zero_point", b);
    Value yScale = perTensor(n, 6, "y_scale");
    Value yZero = perTensor(n, 7, "y_zero_point");
    requireCodes(n, a, "a", aZero);
    requireCodes(n, b, "b", bZero);
    if (!isCode(n.type(7).elementType())) {
      throw n.error("y_zero_point of type " + n.type(7).elementType() + " (u8 or i8)");
    }
    requireF32(n, List.of(1, 4, 6));
    Value multiplier = Composites.op(n, BinaryKind.DIV,
        Composites.op(n, BinaryKind.MUL, aScale, bScale), yScale);
    Value scaled = Composites.op(n, BinaryKind.MUL, n.temp(new ElementwiseOp.Cast(
        product(n, a, b, aZero, bZero), ElementType.F32)), multiplier);
    n.emit(new QuantOp.QuantizeLinear(scaled, n.constant(Tensor.scalar(ElementType.F32, 1)), yZero,
        1));
  }

  /**
   * DynamicQuantizeMatMul (A, B, b_scale, b_zero_point, bias): A quantized to u8 as
   * DynamicQuantizeLinear does, then f32(product) times a_scale * b_scale, plus the bias.
   */
  static void dynamicQuantizeMatMul(OnnxNode n) {
    if (n.type(0).elementType() != ElementType.F32) {
      throw n.error("A of type " + n.type(0).elementType() + " (f32)");
    }
    Value b = n.value(1);
    Value bZero = n.has(3) ? perColumn(n, 3, "b_zero_point", b)
        : n.zeroScalar(b.type().elementType());
    requireCodes(n, b, "B", bZero);
    requireF32(n, List.of(2));
    List<Value> q = n.tempAll(new QuantOp.DynamicQuantizeLinear(n.value(0)));
    Value multiplier = Composites.op(n, BinaryKind.MUL, q.get(1), perColumn(n, 2, "b_scale", b));
    toFloat(n, product(n, q.get(0), b, q.get(2), bZero), multiplier, 4);
  }

  /**
   * MatMulIntegerToFloat (A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias): f32(product)
   * times a_scale * b_scale, plus the bias.
   */
  static void matMulIntegerToFloat(OnnxNode n) {
    Value a = n.value(0);
    Value b = n.value(1);
    Value aZero = n.has(4) ? perTensor(n, 4, "a_zero_point") : n.zeroScalar(a.type().elementType());
    Value bZero = n.has(5) ? perColumn(n, 5, "b_zero_point", b)
        : n.zeroScalar(b.type().elementType());
    requireCodes(n, a, "A", aZero);
    requireCodes(n, b, "B", bZero);
    requireF32(n, List.of(2, 3));
    Value multiplier = Composites.op(n, BinaryKind.MUL, perTensor(n, 2, "a_scale"),
        perColumn(n, 3, "b_scale", b));
    toFloat(n, product(n, a, b, aZero, bZero), multiplier, 6);
  }

  /** The exact i32 product of the shifted codes. */
  private static Value product(OnnxNode n, Value a, Value b, Value aZero, Value bZero) {
    if (b.type().rank() != 2) {
      throw n.error("B of rank " + b.type().rank() + " (sohuc imports a [K, N] B)");
    }
    return n.temp(new QuantOp.MatMulInteger(a, b, flat(n, aZero), flat(n, bZero)));
  }

  /** f32(product) times {@code multiplier}, plus input {@code bias} (a vector of N) if given. */
  private static void toFloat(OnnxNode n, Value product, Value multiplier, int bias) {
    Value f = n.temp(new ElementwiseOp.Cast(product, ElementType.F32));
    if (!n.has(bias)) {
      n.emit(new ElementwiseOp.Binary(BinaryKind.MUL, f, multiplier));
      return;
    }
    TensorType t = n.type(bias);
    Dim cols = product.type().dim(product.type().rank() - 1);
    if (t.elementType() != ElementType.F32 || t.rank() != 1 || !t.dim(0).equals(cols)) {
      throw n.error("bias " + t + " must be an f32 vector of B's " + cols + " columns");
    }
    n.emit(new ElementwiseOp.Binary(BinaryKind.ADD, Composites.op(n, BinaryKind.MUL, f, multiplier),
        n.value(bias)));
  }

  /** Input {@code i}, a scalar or a one-element vector: per tensor. */
  private static Value perTensor(OnnxNode n, int i, String role) {
    TensorType t = n.type(i);
    if (t.rank() > 1 || t.rank() == 1 && !t.dim(0).is(1)) {
      throw n.error(role + " " + t + " must be a scalar (sohuc imports per-tensor quantization of "
          + "this input)");
    }
    return n.value(i);
  }

  /** Input {@code i}, per tensor or a vector of B's columns. */
  private static Value perColumn(OnnxNode n, int i, String role, Value b) {
    TensorType t = n.type(i);
    if (t.rank() == 1 && b.type().rank() == 2 && t.dim(0).equals(b.type().dim(1))) {
      return n.value(i);
    }
    return perTensor(n, i, role);
  }

  /** A zero point as matmul_integer takes it: a scalar or a vector. */
  private static Value flat(OnnxNode n, Value zero) {
    return zero.type().rank() == 1 && zero.type().dim(0).is(1)
        ? n.reshape(zero, List.<Dim>of()) : zero;
  }

  private static boolean isCode(ElementType t) {
    return t == ElementType.U8 || t == ElementType.I8;
  }

  private static void requireCodes(OnnxNode n, Value codes, String role, Value zero) {
    ElementType t = codes.type().elementType();
    if (!isCode(t) || zero.type().elementType() != t) {
      throw n.error(role + " of type " + t + " with a zero point of type "
          + zero.type().elementType() + " (u8 or i8, the same)");
    }
  }

  private static void requireF32(OnnxNode n, List<Integer> scales) {
    for (int i : scales) {
      if (n.type(i).elementType() != ElementType.F32) {
        throw n.error("input " + i + " (a scale) of type " + n.type(i).elementType() + " (f32)");
      }
    }
  }
}
