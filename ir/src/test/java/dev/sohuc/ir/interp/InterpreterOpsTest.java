package dev.sohuc.ir.interp;

import static dev.sohuc.ir.interp.Harness.assertClose;
import static dev.sohuc.ir.interp.Harness.assertTensor;
import static dev.sohuc.ir.interp.Harness.bool;
import static dev.sohuc.ir.interp.Harness.f32;
import static dev.sohuc.ir.interp.Harness.i64;
import static dev.sohuc.ir.interp.Harness.ints;
import static dev.sohuc.ir.interp.Harness.run;
import static dev.sohuc.ir.interp.Harness.runAll;
import static dev.sohuc.ir.interp.Harness.shape;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.DataOp.PadMode;
import dev.sohuc.ir.op.DataOp.ScatterReduction;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.OpException;
import dev.sohuc.ir.op.OpRegistry;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.op.ReductionOp.ReduceKind;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.op.TransformerOp.RopeStyle;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;

import org.junit.jupiter.api.Test;

/** Every op's result on small tensors, against numbers worked out by hand (or by libm, noted). */
class InterpreterOpsTest {
  private static final double NAN = Double.NaN;
  private static final double INF = Double.POSITIVE_INFINITY;
  /** f32 values computed in double by libm and rounded: allow a couple of ulps. */
  private static final double ULPS = 3e-7;

  /** Mnemonics with a test below; the registry check keeps this list complete. */
  static final Set<String> COVERED = Set.of(
      "neg", "abs", "exp", "log", "sqrt", "reciprocal", "erf", "tanh", "sigmoid", "relu", "sin", "cos",
      "floor", "ceil", "not",
      "add", "sub", "mul", "div", "pow", "max", "min", "mod",
      "equal", "less", "less_equal", "greater", "greater_equal", "and", "or", "xor",
      "where", "clip", "cast",
      "matmul", "gemm",
      "reshape", "transpose", "slice", "gather", "gather_elements", "concat", "split", "expand", "tile",
      "pad", "scatter_nd", "trilu", "shape", "size",
      "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "softmax", "log_softmax", "cumsum",
      "constant", "fill", "range", "weight",
      "quantize_linear", "dequantize_linear", "dynamic_quantize_linear", "matmul_integer",
      "qmatmul", "dynamic_quantize", // QuantizedOpsTest
      "attention", "kv_cache_append", "kv_cache_write", "layer_norm", "rms_norm", "rope", "gelu", "silu", "swiglu", "embedding",
      "all_reduce", "reduce_scatter", "all_gather");

  @Test
  void everyRegisteredOpHasAnInterpreterTest() {
    Set<String> missing = new TreeSet<>();
    OpRegistry.all().forEach(d -> {
      if (!COVERED.contains(d.mnemonic())) {
        missing.add(d.mnemonic());
      }
    });
    assertTrue(missing.isEmpty(), "ops without an interpreter test: " + missing);
  }

  private static List<Dim> dims(long... v) {
    return java.util.Arrays.stream(v).mapToObj(Dim::of).toList();
  }

  private static List<Long> longs(long... v) {
    return java.util.Arrays.stream(v).boxed().toList();
  }

  private static Function<List<Value>, Op> unary(UnaryKind k) {
    return a -> new ElementwiseOp.Unary(k, a.get(0));
  }

  private static Function<List<Value>, Op> binary(BinaryKind k) {
    return a -> new ElementwiseOp.Binary(k, a.get(0), a.get(1));
  }

  // ---- elementwise ----

  @Test
  void unaryFloatMath() {
    Tensor x = f32(shape(3), -1.5, 0.5, 2.0);
    ElementType f = ElementType.F32;
    assertTensor(run(unary(UnaryKind.NEG), x), f, shape(3), 1.5, -0.5, -2.0);
    assertTensor(run(unary(UnaryKind.ABS), x), f, shape(3), 1.5, 0.5, 2.0);
    assertTensor(run(unary(UnaryKind.RELU), x), f, shape(3), 0, 0.5, 2.0);
    assertTensor(run(unary(UnaryKind.FLOOR), x), f, shape(3), -2, 0, 2);
    assertTensor(run(unary(UnaryKind.CEIL), x), f, shape(3), -1, 1, 2);
    // libm values rounded to f32
    assertClose(run(unary(UnaryKind.EXP), x), shape(3), ULPS, 0.22313016653060913, 1.6487212181091309, 7.389056205749512);
    assertClose(run(unary(UnaryKind.ERF), x), shape(3), ULPS, -0.9661051630973816, 0.5204998850822449, 0.9953222870826721);
    assertClose(run(unary(UnaryKind.TANH), x), shape(3), ULPS, -0.9051482677459717, 0.46211716532707214, 0.9640275835990906);
    assertClose(run(unary(UnaryKind.SIGMOID), x), shape(3), ULPS, 0.18242552876472473, 0.622459352016449, 0.8807970881462097);
    assertClose(run(unary(UnaryKind.SIN), x), shape(3), ULPS, -0.9974949955940247, 0.4794255495071411, 0.9092974066734314);
    assertClose(run(unary(UnaryKind.COS), x), shape(3), ULPS, 0.07073719799518585, 0.8775825500488281, -0.416146844625473);
    Tensor pos = f32(shape(5), 0.5, 1, 4, 0, -1);
    assertClose(run(unary(UnaryKind.LOG), pos), shape(5), ULPS, -0.6931471824645996, 0, 1.3862943649291992, -INF, NAN);
    assertTensor(run(unary(UnaryKind.SQRT), pos), f, shape(5), Math.sqrt(0.5), 1, 2, 0, NAN);
    assertTensor(run(unary(UnaryKind.RECIPROCAL), pos), f, shape(5), 2, 1, 0.25, INF, -1);
  }

  @Test
  void unaryOnIntegersAndBool() {
    assertTensor(run(unary(UnaryKind.NEG), i64(shape(3), -2, 0, 7)), ElementType.I64, shape(3), 2, 0, -7);
    assertTensor(run(unary(UnaryKind.ABS), ints(ElementType.I8, shape(2), -5, -128)), ElementType.I8, shape(2),
        5, -128); // |-128| wraps in i8
    assertTensor(run(unary(UnaryKind.NOT), bool(shape(2), 1, 0)), ElementType.BOOL, shape(2), 0, 1);
  }

  @Test
  void binaryFloatBroadcasts() {
    Tensor a = f32(shape(2, 1), 1, 2);
    Tensor b = f32(shape(3), 10, 20, 30);
    ElementType f = ElementType.F32;
    assertTensor(run(binary(BinaryKind.ADD), a, b), f, shape(2, 3), 11, 21, 31, 12, 22, 32);
    assertTensor(run(binary(BinaryKind.SUB), a, b), f, shape(2, 3), -9, -19, -29, -8, -18, -28);
    assertTensor(run(binary(BinaryKind.MUL), a, b), f, shape(2, 3), 10, 20, 30, 20, 40, 60);
    assertTensor(run(binary(BinaryKind.DIV), b, a), f, shape(2, 3), 10, 20, 30, 5, 10, 15);
    assertTensor(run(binary(BinaryKind.POW), f32(shape(2, 1), 2, 3), f32(shape(3), 0, 1, 2)), f, shape(2, 3),
        1, 2, 4, 1, 3, 9);
    assertTensor(run(binary(BinaryKind.MAX), f32(shape(3), 1, 5, NAN), f32(shape(), 3)), f, shape(3), 3, 5, NAN);
    assertTensor(run(binary(BinaryKind.MIN), f32(shape(3), 1, 5, NAN), f32(shape(), 3)), f, shape(3), 1, 3, NAN);
    // fmod: the sign of the dividend
    assertTensor(run(binary(BinaryKind.MOD), f32(shape(2), 5.5, -5.5), f32(shape(2), 2, 2)), f, shape(2), 1.5, -1.5);
  }

  @Test
  void binaryIntegerDivisionAndModulo() {
    ElementType t = ElementType.I64;
    // division truncates toward zero
    assertTensor(run(binary(BinaryKind.DIV), i64(shape(4), -7, 7, -7, 7), i64(shape(4), 2, -2, -2, 2)), t, shape(4),
        -3, -3, 3, 3);
    // ONNX Mod (fmod = 0): the sign of the divisor
    assertTensor(run(binary(BinaryKind.MOD), i64(shape(4), -7, 7, -7, 7), i64(shape(4), 3, 3, -3, -3)), t, shape(4),
        2, 1, -1, -2);
    assertTensor(run(binary(BinaryKind.POW), i64(shape(3), 2, -3, 2), i64(shape(3), 10, 3, -1)), t, shape(3),
        1024, -27, 0);
    // i8 arithmetic wraps
    assertTensor(run(binary(BinaryKind.ADD), ints(ElementType.I8, shape(1), 127), ints(ElementType.I8, shape(1), 1)),
        ElementType.I8, shape(1), -128);
    assertTensor(run(binary(BinaryKind.MAX), i64(shape(2), 4, -9), i64(shape(), 0)), t, shape(2), 4, 0);
    assertTensor(run(binary(BinaryKind.MIN), i64(shape(2), 4, -9), i64(shape(), 0)), t, shape(2), 0, -9);
    assertTensor(run(binary(BinaryKind.SUB), i64(shape(2), 4, -9), i64(shape(), 1)), t, shape(2), 3, -10);
    assertTensor(run(binary(BinaryKind.MUL), i64(shape(2), 4, -9), i64(shape(), 3)), t, shape(2), 12, -27);
  }

  @Test
  void narrowTypesComputeWideAndRound() {
    // bf16: 1 + 2^-8 is computed exactly in f32, then rounds (ties to even) back to 1
    Tensor one = Tensor.ofFloats(ElementType.BF16, shape(1), new float[] {1});
    Tensor tiny = Tensor.ofFloats(ElementType.BF16, shape(1), new float[] {0.00390625f});
    assertTensor(run(binary(BinaryKind.ADD), one, tiny), ElementType.BF16, shape(1), 1.0);
    assertTensor(run(unary(UnaryKind.SQRT), Tensor.ofFloats(ElementType.F16, shape(1), new float[] {2})),
        ElementType.F16, shape(1), 1.4140625); // sqrt(2) rounded to f16
    assertTensor(run(binary(BinaryKind.ADD), ints(ElementType.I32, shape(1), Integer.MAX_VALUE),
        ints(ElementType.I32, shape(1), 1)), ElementType.I32, shape(1), Integer.MIN_VALUE);
    assertTensor(run(binary(BinaryKind.SUB), ints(ElementType.U8, shape(1), 0), ints(ElementType.U8, shape(1), 1)),
        ElementType.U8, shape(1), 255);
  }

  @Test
  void comparisonsAndLogic() {
    Tensor a = f32(shape(3), 1, 2, NAN);
    Tensor b = f32(shape(), 2);
    ElementType bo = ElementType.BOOL;
    assertTensor(run(binary(BinaryKind.EQUAL), a, b), bo, shape(3), 0, 1, 0);
    assertTensor(run(binary(BinaryKind.LESS), a, b), bo, shape(3), 1, 0, 0);
    assertTensor(run(binary(BinaryKind.LESS_EQUAL), a, b), bo, shape(3), 1, 1, 0);
    assertTensor(run(binary(BinaryKind.GREATER), a, b), bo, shape(3), 0, 0, 0);
    assertTensor(run(binary(BinaryKind.GREATER_EQUAL), a, b), bo, shape(3), 0, 1, 0);
    Tensor x = i64(shape(2, 1), 1, 3);
    Tensor y = i64(shape(2), 1, 2);
    assertTensor(run(binary(BinaryKind.LESS), x, y), bo, shape(2, 2), 0, 1, 0, 0);
    assertTensor(run(binary(BinaryKind.GREATER_EQUAL), x, y), bo, shape(2, 2), 1, 0, 1, 1);
    assertTensor(run(binary(BinaryKind.EQUAL), bool(shape(2), 1, 0), bool(shape(2), 1, 1)), bo, shape(2), 1, 0);
    Tensor p = bool(shape(4), 0, 0, 1, 1);
    Tensor q = bool(shape(4), 0, 1, 0, 1);
    assertTensor(run(binary(BinaryKind.AND), p, q), bo, shape(4), 0, 0, 0, 1);
    assertTensor(run(binary(BinaryKind.OR), p, q), bo, shape(4), 0, 1, 1, 1);
    assertTensor(run(binary(BinaryKind.XOR), p, q), bo, shape(4), 0, 1, 1, 0);
  }

  @Test
  void whereBroadcastsAllThree() {
    Tensor r = run(a -> new ElementwiseOp.Where(a.get(0), a.get(1), a.get(2)),
        bool(shape(2, 1), 1, 0), f32(shape(3), 1, 2, 3), f32(shape(), 0));
    assertTensor(r, ElementType.F32, shape(2, 3), 1, 2, 3, 0, 0, 0);
    Tensor ri = run(a -> new ElementwiseOp.Where(a.get(0), a.get(1), a.get(2)),
        bool(shape(2), 0, 1), i64(shape(2), 5, 6), i64(shape(2), 7, 8));
    assertTensor(ri, ElementType.I64, shape(2), 7, 6);
  }

  @Test
  void clipFloatsAndIntegers() {
    assertTensor(run(a -> new ElementwiseOp.Clip(a.get(0), 0, 6), f32(shape(4), -1, 0.5, 7, NAN)),
        ElementType.F32, shape(4), 0, 0.5, 6, NAN);
    assertTensor(run(a -> new ElementwiseOp.Clip(a.get(0), -1.5, 6.5), i64(shape(3), -3, 2, 9)),
        ElementType.I64, shape(3), -1, 2, 6);
    assertTensor(run(a -> new ElementwiseOp.Clip(a.get(0), Double.NEGATIVE_INFINITY, 0), i64(shape(2), Long.MIN_VALUE, 3)),
        ElementType.I64, shape(2), Long.MIN_VALUE, 0);
  }

  private static Function<List<Value>, Op> cast(ElementType to) {
    return a -> new ElementwiseOp.Cast(a.get(0), to);
  }

  @Test
  void castEdgeCases() {
    Tensor x = f32(shape(5), NAN, -2.7, 2.7, 1e10, -0.5);
    // truncation toward zero; NaN -> 0
    assertTensor(run(cast(ElementType.I64), x), ElementType.I64, shape(5), 0, -2, 2, 10_000_000_000L, 0);
    // 1e10 truncates to 10000000000, which wraps to i32 as 10000000000 - 2 * 2^32
    assertTensor(run(cast(ElementType.I32), x), ElementType.I32, shape(5), 0, -2, 2, 1_410_065_408, 0);
    assertTensor(run(cast(ElementType.I8), i64(shape(3), 300, -129, 127)), ElementType.I8, shape(3), 44, 127, 127);
    assertTensor(run(cast(ElementType.U8), i64(shape(2), -1, 256)), ElementType.U8, shape(2), 255, 0);
    // to bool: x != 0, so NaN is true and -0.0 is false
    assertTensor(run(cast(ElementType.BOOL), f32(shape(4), 0, -0.0, NAN, 0.1)), ElementType.BOOL, shape(4), 0, 0, 1, 1);
    assertTensor(run(cast(ElementType.BOOL), i64(shape(2), 0, -5)), ElementType.BOOL, shape(2), 0, 1);
    assertTensor(run(cast(ElementType.F32), bool(shape(2), 1, 0)), ElementType.F32, shape(2), 1, 0);
    assertTensor(run(cast(ElementType.F32), i64(shape(1), 16_777_217)), ElementType.F32, shape(1), 16_777_216);
    // 1 + 2^-8 lies halfway between two bf16 values: ties to even gives 1
    assertTensor(run(cast(ElementType.BF16), f32(shape(2), 1.00390625, 1.01171875)), ElementType.BF16, shape(2),
        1.0, 1.015625);
    // 65520 is halfway between f16's largest finite value and 2^16: rounds to infinity
    assertTensor(run(cast(ElementType.F16), f32(shape(2), 65520, 0.1)), ElementType.F16, shape(2),
        INF, 0.0999755859375);
    // fp8 e4m3 saturates at 448
    assertTensor(run(cast(ElementType.F8E4M3), f32(shape(2), 1000, 0.3)), ElementType.F8E4M3, shape(2), 448, 0.3125);
  }

  // ---- linear algebra ----

  @Test
  void matmulShapes() {
    Tensor a = f32(shape(2, 3), 1, 2, 3, 4, 5, 6);
    Tensor b = f32(shape(3, 2), 7, 8, 9, 10, 11, 12);
    Function<List<Value>, Op> mm = v -> new LinalgOp.MatMul(v.get(0), v.get(1));
    assertTensor(run(mm, a, b), ElementType.F32, shape(2, 2), 58, 64, 139, 154);
    // rank-1 operands are vectors
    assertTensor(run(mm, f32(shape(3), 1, 2, 3), b), ElementType.F32, shape(2), 58, 64);
    assertTensor(run(mm, a, f32(shape(3), 1, 1, 1)), ElementType.F32, shape(2), 6, 15);
    // batch dims broadcast: [2,1,2] @ [3,2,1] -> [3,2,1,1]... here [2,1,2] @ [2,1] -> [2,1,1]
    assertTensor(run(mm, f32(shape(2, 1, 2), 1, 2, 3, 4), f32(shape(2, 1), 10, 1)), ElementType.F32,
        shape(2, 1, 1), 12, 34);
    assertTensor(run(mm, f32(shape(1, 2, 2), 1, 0, 0, 1), f32(shape(2, 2, 1), 1, 2, 3, 4)), ElementType.F32,
        shape(2, 2, 1), 1, 2, 3, 4);
  }

  @Test
  void largeMatmulMatchesNaiveProduct() {
    Random random = new Random(42); // seed printed on failure through the message
    int m = 70;
    int k = 65;
    int n = 90;
    double[] av = random.doubles(2L * m * k, -1, 1).toArray();
    double[] bv = random.doubles((long) k * n, -1, 1).toArray();
    Tensor a = f32(shape(2, m, k), av);
    Tensor b = f32(shape(k, n), bv);
    Tensor c = run(v -> new LinalgOp.MatMul(v.get(0), v.get(1)), a, b);
    for (int bt = 0; bt < 2; bt++) {
      for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
          double s = 0;
          for (int kk = 0; kk < k; kk++) {
            s += a.floats()[(bt * m + i) * k + kk] * (double) b.floats()[kk * n + j];
          }
          assertEquals(s, c.floats()[(bt * m + i) * n + j], 1e-4, "seed 42 at " + bt + "," + i + "," + j);
        }
      }
    }
  }

  @Test
  void gemmTransposesScalesAndAddsBias() {
    // a^T = [[1,3],[2,4]], b^T = [[5,7],[6,8]]: a^T b^T = [[23,31],[34,46]]
    Tensor r = run(v -> new LinalgOp.Gemm(v.get(0), v.get(1), v.get(2), 2, 0.5, true, true),
        f32(shape(2, 2), 1, 2, 3, 4), f32(shape(2, 2), 5, 6, 7, 8), f32(shape(2), 10, 20));
    assertTensor(r, ElementType.F32, shape(2, 2), 51, 72, 73, 102);
    Tensor noBias = run(v -> new LinalgOp.Gemm(v.get(0), v.get(1), null, 1, 1, false, false),
        f32(shape(1, 2), 1, 2), f32(shape(2, 1), 3, 4));
    assertTensor(noBias, ElementType.F32, shape(1, 1), 11);
  }

  // ---- data movement ----

  @Test
  void reshapeInfersMinusOne() {
    Tensor r = run(v -> new DataOp.Reshape(v.get(0), dims(3, -1)), f32(shape(2, 3), 1, 2, 3, 4, 5, 6));
    assertTensor(r, ElementType.F32, shape(3, 2), 1, 2, 3, 4, 5, 6);
  }

  @Test
  void transposePermutes() {
    assertTensor(run(v -> new DataOp.Transpose(v.get(0), longs(1, 0)), i64(shape(2, 3), 1, 2, 3, 4, 5, 6)),
        ElementType.I64, shape(3, 2), 1, 4, 2, 5, 3, 6);
    // [2,2,2] with perm [2,0,1]: r[i][j][k] = x[j][k][i]
    assertTensor(run(v -> new DataOp.Transpose(v.get(0), longs(2, 0, 1)), i64(shape(2, 2, 2), 0, 1, 2, 3, 4, 5, 6, 7)),
        ElementType.I64, shape(2, 2, 2), 0, 2, 4, 6, 1, 3, 5, 7);
  }

  private static Tensor slice1d(long start, long end, long step) {
    Tensor x = i64(shape(10), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
    return run(v -> new DataOp.Slice(v.get(0), dims(start), dims(end), longs(0), longs(step)), x);
  }

  @Test
  void sliceEdgeCasesFollowOnnx() {
    ElementType t = ElementType.I64;
    assertTensor(slice1d(-3, Long.MAX_VALUE, 1), t, shape(3), 7, 8, 9);
    assertTensor(slice1d(8, 2, -2), t, shape(3), 8, 6, 4);
    assertTensor(slice1d(-1, -1000, -1), t, shape(10), 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    // start clamps into [0, dim-1] for negative steps, end into [-1, dim-1]: one element
    assertTensor(slice1d(-100, -200, -1), t, shape(1), 0);
    assertTensor(slice1d(Long.MAX_VALUE, 7, -1), t, shape(2), 9, 8);
    assertTensor(slice1d(5, 100, 3), t, shape(2), 5, 8);
    assertTensor(slice1d(6, 2, 1), t, shape(0));
    Tensor m = i64(shape(2, 3), 1, 2, 3, 4, 5, 6);
    assertTensor(run(v -> new DataOp.Slice(v.get(0), dims(-2, 1), dims(Long.MAX_VALUE, 2), longs(-1, 0), longs(1, 1)), m),
        t, shape(1, 2), 5, 6);
  }

  @Test
  void gatherNegativeIndicesAndScalarIndex() {
    Tensor data = f32(shape(3, 2), 1, 2, 3, 4, 5, 6);
    assertTensor(run(v -> new DataOp.Gather(v.get(0), v.get(1), 0), data, i64(shape(2), -1, 0)),
        ElementType.F32, shape(2, 2), 5, 6, 1, 2);
    assertTensor(run(v -> new DataOp.Gather(v.get(0), v.get(1), -1), data, i64(shape(), 1)),
        ElementType.F32, shape(3), 2, 4, 6);
    assertTensor(run(v -> new DataOp.Gather(v.get(0), v.get(1), 1), data, ints(ElementType.I32, shape(1, 2), 1, 0)),
        ElementType.F32, shape(3, 1, 2), 2, 1, 4, 3, 6, 5);
  }

  @Test
  void gatherElementsAlongAxis() {
    Tensor data = i64(shape(2, 2), 1, 2, 3, 4);
    assertTensor(run(v -> new DataOp.GatherElements(v.get(0), v.get(1), 1), data, i64(shape(2, 2), 0, 0, -1, 0)),
        ElementType.I64, shape(2, 2), 1, 1, 4, 3);
    assertTensor(run(v -> new DataOp.GatherElements(v.get(0), v.get(1), 0), data, i64(shape(1, 2), 1, 0)),
        ElementType.I64, shape(1, 2), 3, 2);
  }

  @Test
  void concatAndSplit() {
    assertTensor(run(v -> new DataOp.Concat(v, 0), f32(shape(1, 2), 1, 2), f32(shape(2, 2), 3, 4, 5, 6)),
        ElementType.F32, shape(3, 2), 1, 2, 3, 4, 5, 6);
    assertTensor(run(v -> new DataOp.Concat(v, -1), i64(shape(2, 1), 1, 2), i64(shape(2, 2), 3, 4, 5, 6)),
        ElementType.I64, shape(2, 3), 1, 3, 4, 2, 5, 6);
    List<Tensor> parts = runAll(v -> new DataOp.Split(v.get(0), -1, dims(1, 2)), i64(shape(2, 3), 1, 2, 3, 4, 5, 6));
    assertEquals(2, parts.size());
    assertTensor(parts.get(0), ElementType.I64, shape(2, 1), 1, 4);
    assertTensor(parts.get(1), ElementType.I64, shape(2, 2), 2, 3, 5, 6);
  }

  @Test
  void expandBroadcastsBothWays() {
    Tensor r = run(v -> new DataOp.Expand(v.get(0), dims(2, 1, 2)), i64(shape(3, 1), 1, 2, 3));
    assertTensor(r, ElementType.I64, shape(2, 3, 2), 1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3);
  }

  @Test
  void tileRepeats() {
    assertTensor(run(v -> new DataOp.Tile(v.get(0), longs(2, 2)), i64(shape(1, 2), 1, 2)),
        ElementType.I64, shape(2, 4), 1, 2, 1, 2, 1, 2, 1, 2);
  }

  @Test
  void padModesAndNegativePads() {
    Tensor x = f32(shape(3), 1, 2, 3);
    assertTensor(run(v -> new DataOp.Pad(v.get(0), longs(2, 1), PadMode.CONSTANT, 9), x), ElementType.F32,
        shape(6), 9, 9, 1, 2, 3, 9);
    assertTensor(run(v -> new DataOp.Pad(v.get(0), longs(2, 2), PadMode.REFLECT, 0), x), ElementType.F32,
        shape(7), 3, 2, 1, 2, 3, 2, 1);
    assertTensor(run(v -> new DataOp.Pad(v.get(0), longs(1, 2), PadMode.EDGE, 0), x), ElementType.F32,
        shape(6), 1, 1, 2, 3, 3, 3);
    assertTensor(run(v -> new DataOp.Pad(v.get(0), longs(-1, 1), PadMode.CONSTANT, 0), x), ElementType.F32,
        shape(3), 2, 3, 0);
    assertTensor(run(v -> new DataOp.Pad(v.get(0), longs(0, 1, 1, 0), PadMode.CONSTANT, -1), i64(shape(2, 2), 1, 2, 3, 4)),
        ElementType.I64, shape(3, 3), -1, 1, 2, -1, 3, 4, -1, -1, -1);
  }

  @Test
  void scatterNdWithReductions() {
    Tensor data = i64(shape(8), 1, 2, 3, 4, 5, 6, 7, 8);
    Tensor idx = i64(shape(4, 1), 4, 3, 1, 7);
    Tensor up = i64(shape(4), 9, 10, 11, 12);
    assertTensor(run(v -> new DataOp.ScatterNd(v.get(0), v.get(1), v.get(2), ScatterReduction.NONE), data, idx, up),
        ElementType.I64, shape(8), 1, 11, 3, 10, 9, 6, 7, 12);
    Tensor d2 = f32(shape(2), 10, 20);
    Tensor same = i64(shape(2, 1), 0, -2); // both address element 0
    Tensor u2 = f32(shape(2), 2, 3);
    Function<ScatterReduction, Function<List<Value>, Op>> op =
        red -> v -> new DataOp.ScatterNd(v.get(0), v.get(1), v.get(2), red);
    assertTensor(run(op.apply(ScatterReduction.ADD), d2, same, u2), ElementType.F32, shape(2), 15, 20);
    assertTensor(run(op.apply(ScatterReduction.MUL), d2, same, u2), ElementType.F32, shape(2), 60, 20);
    assertTensor(run(op.apply(ScatterReduction.MAX), d2, same, u2), ElementType.F32, shape(2), 10, 20);
    assertTensor(run(op.apply(ScatterReduction.MIN), d2, same, u2), ElementType.F32, shape(2), 2, 20);
    // slices: the last index dim addresses rows
    assertTensor(run(op.apply(ScatterReduction.NONE), i64(shape(2, 2), 1, 2, 3, 4), i64(shape(1, 1), 1),
        i64(shape(1, 2), 9, 9)), ElementType.I64, shape(2, 2), 1, 2, 9, 9);
  }

  @Test
  void triluUpperAndLower() {
    Tensor x = i64(shape(3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9);
    assertTensor(run(v -> new DataOp.Trilu(v.get(0), true, 0), x), ElementType.I64, shape(3, 3), 1, 2, 3, 0, 5, 6, 0, 0, 9);
    assertTensor(run(v -> new DataOp.Trilu(v.get(0), false, -1), x), ElementType.I64, shape(3, 3), 0, 0, 0, 4, 0, 0, 7, 8, 0);
    assertTensor(run(v -> new DataOp.Trilu(v.get(0), true, 1), x), ElementType.I64, shape(3, 3), 0, 2, 3, 0, 0, 6, 0, 0, 0);
  }

  @Test
  void shapeClampsLikeOnnxAndSize() {
    Tensor x = f32(shape(2, 3, 4), new double[24]);
    ElementType t = ElementType.I64;
    assertTensor(run(v -> new DataOp.Shape(v.get(0), 0, Long.MAX_VALUE), x), t, shape(3), 2, 3, 4);
    assertTensor(run(v -> new DataOp.Shape(v.get(0), -2, Long.MAX_VALUE), x), t, shape(2), 3, 4);
    assertTensor(run(v -> new DataOp.Shape(v.get(0), 1, -1), x), t, shape(1), 3);
    assertTensor(run(v -> new DataOp.Shape(v.get(0), 5, 9), x), t, shape(0));
    assertTensor(run(v -> new DataOp.Size(v.get(0)), x), t, shape(), 24);
  }

  // ---- reductions ----

  @Test
  void reductionsWithAndWithoutKeepdims() {
    Tensor x = f32(shape(2, 3), 1, 2, 3, 4, 5, 6);
    ElementType f = ElementType.F32;
    Function<ReduceKind, Function<List<Long>, Function<Boolean, Tensor>>> red = k -> axes -> keep ->
        run(v -> new ReductionOp.Reduce(k, v.get(0), axes, keep), x);
    assertTensor(red.apply(ReduceKind.SUM).apply(List.of()).apply(true), f, shape(1, 1), 21);
    assertTensor(red.apply(ReduceKind.SUM).apply(longs(-1)).apply(false), f, shape(2), 6, 15);
    assertTensor(red.apply(ReduceKind.MEAN).apply(longs(0)).apply(false), f, shape(3), 2.5, 3.5, 4.5);
    assertTensor(red.apply(ReduceKind.MAX).apply(longs(1)).apply(true), f, shape(2, 1), 3, 6);
    assertTensor(red.apply(ReduceKind.MIN).apply(longs(1)).apply(false), f, shape(2), 1, 4);
    assertTensor(red.apply(ReduceKind.PROD).apply(longs(1)).apply(false), f, shape(2), 6, 120);
    assertTensor(red.apply(ReduceKind.SUM).apply(List.of()).apply(false), f, shape(), 21);
    assertTensor(run(v -> new ReductionOp.Reduce(ReduceKind.SUM, v.get(0), longs(0), false), i64(shape(2, 2), 1, 2, 3, 4)),
        ElementType.I64, shape(2), 4, 6);
    assertTensor(run(v -> new ReductionOp.Reduce(ReduceKind.MAX, v.get(0), longs(0), false), i64(shape(2), -5, -3)),
        ElementType.I64, shape(), -3);
  }

  @Test
  void softmaxIsStable() {
    Function<Long, Function<List<Value>, Op>> sm = axis -> v -> new ReductionOp.Softmax(v.get(0), axis, false);
    assertClose(run(sm.apply(-1L), f32(shape(3), 1, 2, 3)), shape(3), ULPS,
        0.09003057330846786, 0.2447284758090973, 0.6652409434318542);
    assertTensor(run(sm.apply(-1L), f32(shape(2), 1000, 1000)), ElementType.F32, shape(2), 0.5, 0.5);
    assertTensor(run(sm.apply(-1L), f32(shape(2), 0, Double.NEGATIVE_INFINITY)), ElementType.F32, shape(2), 1, 0);
    // all -inf: NaN, as ONNX Runtime
    assertTensor(run(sm.apply(-1L), f32(shape(2), Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY)),
        ElementType.F32, shape(2), NAN, NAN);
    assertTensor(run(sm.apply(0L), f32(shape(2, 2), 5, 1, 5, 1)), ElementType.F32, shape(2, 2), 0.5, 0.5, 0.5, 0.5);
    assertClose(run(v -> new ReductionOp.Softmax(v.get(0), -1, true), f32(shape(3), 1, 2, 3)), shape(3), ULPS,
        -2.4076058864593506, -1.4076060056686401, -0.40760597586631775);
  }

  @Test
  void cumsumExclusiveAndReverse() {
    Tensor x = i64(shape(4), 1, 2, 3, 4);
    Function<Boolean, Function<Boolean, Tensor>> cs = excl -> rev ->
        run(v -> new ReductionOp.CumSum(v.get(0), 0, excl, rev), x);
    assertTensor(cs.apply(false).apply(false), ElementType.I64, shape(4), 1, 3, 6, 10);
    assertTensor(cs.apply(true).apply(false), ElementType.I64, shape(4), 0, 1, 3, 6);
    assertTensor(cs.apply(false).apply(true), ElementType.I64, shape(4), 10, 9, 7, 4);
    assertTensor(cs.apply(true).apply(true), ElementType.I64, shape(4), 9, 7, 4, 0);
    assertTensor(run(v -> new ReductionOp.CumSum(v.get(0), -2, false, false), f32(shape(2, 2), 1, 2, 3, 4)),
        ElementType.F32, shape(2, 2), 1, 2, 4, 6);
  }

  // ---- sources ----

  @Test
  void constantFillAndRange() {
    Tensor c = i64(shape(2), 4, 5);
    assertTensor(run(v -> new SourceOp.Constant(c)), ElementType.I64, shape(2), 4, 5);
    assertTensor(run(v -> new SourceOp.Fill(dims(2, 1), Double.NEGATIVE_INFINITY, ElementType.F32)), ElementType.F32,
        shape(2, 1), Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY);
    assertTensor(run(v -> new SourceOp.Fill(dims(2), 7, ElementType.BOOL)), ElementType.BOOL, shape(2), 1, 1);
    assertTensor(run(v -> new SourceOp.Range(2, Dim.of(11), 3, ElementType.I64)), ElementType.I64, shape(3), 2, 5, 8);
    assertTensor(run(v -> new SourceOp.Range(5, Dim.of(0), -2, ElementType.F32)), ElementType.F32, shape(3), 5, 3, 1);
    assertTensor(run(v -> new SourceOp.Range(3, Dim.of(3), 1, ElementType.I32)), ElementType.I32, shape(0));
  }

  @Test
  void weightIsDecodedFromBytesAndCached() {
    Module module = new Module("m");
    ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(1.5f).putFloat(-2f);
    TensorType type = TensorType.of(ElementType.F32, 2);
    module.addWeight(new Weight("w", type, new Weight.Data.Inline(b.array())));
    Interpreter interp = new Interpreter(module);
    dev.sohuc.ir.Function f = new dev.sohuc.ir.Function("main", List.of());
    Value w = new dev.sohuc.ir.FunctionBuilder(f).add(new SourceOp.WeightRef("w", type), Harness.LOC);
    f.setOutputs(List.of(new dev.sohuc.ir.Function.Output("w", w)));
    Tensor first = interp.run(f, List.of()).get("w");
    assertTensor(first, ElementType.F32, shape(2), 1.5, -2);
    assertSame(first, interp.run(f, List.of()).get("w"));
  }

  // ---- quantization ----

  @Test
  void quantizeRoundsHalfToEvenAndSaturates() {
    Tensor x = f32(shape(7), 0, 1.5, 2.5, -1.5, 300, -300, 0.49);
    Function<List<Value>, Op> q = v -> new QuantOp.QuantizeLinear(v.get(0), v.get(1), v.get(2), 1);
    assertTensor(run(q, x, f32(shape(), 1), ints(ElementType.I8, shape(), 0)), ElementType.I8, shape(7),
        0, 2, 2, -2, 127, -128, 0);
    // x / 2 = 0, 0.75, 1.25, -0.75, 150, -150, 0.245; + 128, saturated to u8
    assertTensor(run(q, x, f32(shape(), 2), ints(ElementType.U8, shape(), 128)), ElementType.U8, shape(7),
        128, 129, 129, 127, 255, 0, 128);
    // per channel along axis 1
    assertTensor(run(q, f32(shape(2, 2), 1, 4, 3, 8), f32(shape(2), 1, 2), ints(ElementType.I8, shape(2), 0, 1)),
        ElementType.I8, shape(2, 2), 1, 3, 3, 5);
    // fp8: rounded to the format, saturating
    Tensor zero8 = Tensor.ofFloats(ElementType.F8E4M3, shape(), new float[] {0});
    assertTensor(run(q, f32(shape(2), 1000, 0.3), f32(shape(), 1), zero8), ElementType.F8E4M3, shape(2), 448, 0.3125);
  }

  @Test
  void dequantizeSubtractsZeroPointAndScales() {
    Function<List<Value>, Op> dq = v -> new QuantOp.DequantizeLinear(v.get(0), v.get(1), v.get(2), 1);
    assertTensor(run(dq, ints(ElementType.I8, shape(3), -128, 0, 127), f32(shape(), 0.5), ints(ElementType.I8, shape(), -1)),
        ElementType.F32, shape(3), -63.5, 0.5, 64);
    assertTensor(run(dq, ints(ElementType.U8, shape(2, 2), 10, 10, 20, 20), f32(shape(2), 1, 0.25),
        ints(ElementType.U8, shape(2), 10, 0)), ElementType.F32, shape(2, 2), 0, 2.5, 10, 5);
    assertTensor(run(dq, ints(ElementType.I32, shape(1), 100_000), f32(shape(), 0.5), ints(ElementType.I32, shape(), 0)),
        ElementType.F32, shape(1), 50_000);
  }

  @Test
  void dynamicQuantizeLinearOnnxExample() {
    List<Tensor> r = runAll(v -> new QuantOp.DynamicQuantizeLinear(v.get(0)), f32(shape(6), 0, 2, -3, -2.5, 1.34, 0.5));
    assertTensor(r.get(0), ElementType.U8, shape(6), 153, 255, 0, 26, 221, 179);
    assertTensor(r.get(1), ElementType.F32, shape(), 5.0f / 255f);
    assertTensor(r.get(2), ElementType.U8, shape(), 153);
    // positive data: the range still includes 0, so zp = 0; 1 / f32(2/255) = 127.49999 rounds down
    List<Tensor> p = runAll(v -> new QuantOp.DynamicQuantizeLinear(v.get(0)), f32(shape(2), 1, 2));
    assertTensor(p.get(0), ElementType.U8, shape(2), 127, 255);
    assertTensor(p.get(2), ElementType.U8, shape(), 0);
    // all zeros: scale 1 (as ONNX Runtime), no division by zero
    List<Tensor> z = runAll(v -> new QuantOp.DynamicQuantizeLinear(v.get(0)), f32(shape(2), 0, 0));
    assertTensor(z.get(0), ElementType.U8, shape(2), 0, 0);
    assertTensor(z.get(1), ElementType.F32, shape(), 1);
  }

  @Test
  void matmulIntegerWithZeroPoints() {
    Function<List<Value>, Op> mmi = v -> new QuantOp.MatMulInteger(v.get(0), v.get(1), v.get(2), v.get(3));
    // (a - 1) = [[1,2],[3,4]], (b - [1, 0]) = [[0,2],[2,4]]
    assertTensor(run(mmi, ints(ElementType.U8, shape(2, 2), 2, 3, 4, 5), ints(ElementType.U8, shape(2, 2), 1, 2, 3, 4),
        ints(ElementType.U8, shape(), 1), ints(ElementType.U8, shape(2), 1, 0)), ElementType.I32, shape(2, 2), 4, 10, 8, 22);
    // per-row a zero point and signed operands: (-128 - -1) * (1 - -1) + (127 - -1) * 2 = 2
    assertTensor(run(mmi, ints(ElementType.I8, shape(1, 2), -128, 127), ints(ElementType.I8, shape(2, 1), 1, 1),
        ints(ElementType.I8, shape(1), -1), ints(ElementType.I8, shape(), -1)), ElementType.I32, shape(1, 1), 2);
  }

  // ---- transformer ops ----

  @Test
  void attentionDecodeStepWithGqaCausalOffsetAndPaddingMask() {
    // B=1, Hq=2 reading one kv head (GQA), S=1 query at position 3 of T=4 keys, D=1, first key padded.
    Tensor q = f32(shape(1, 2, 1, 1), 1, 2);
    Tensor k = f32(shape(1, 1, 4, 1), 0, 1, 2, 3);
    Tensor v = f32(shape(1, 1, 4, 1), 10, 20, 30, 40);
    Tensor mask = f32(shape(1, 1, 1, 4), Double.NEGATIVE_INFINITY, 0, 0, 0);
    Tensor r = run(a -> new TransformerOp.Attention(a.get(0), a.get(1), a.get(2), a.get(3), 1.0, true, 0), q, k, v, mask);
    // head 0: softmax([1,2,3]) . [20,30,40]; head 1: softmax([2,4,6]) . [20,30,40]
    assertClose(r, shape(1, 2, 1, 1), 1e-6, 35.752105712890625, 38.50937271118164);
  }

  @Test
  void attentionCausalWindowAndHeadGroups() {
    // S=2 queries at positions 1 and 2 of T=3 keys; zero keys give uniform weights.
    Tensor q = f32(shape(1, 1, 2, 1), 1, 1);
    Tensor k = f32(shape(1, 1, 3, 1), 0, 0, 0);
    Tensor v = f32(shape(1, 1, 3, 1), 3, 6, 9);
    Tensor causal = run(a -> new TransformerOp.Attention(a.get(0), a.get(1), a.get(2), null, 1.0, true, 0), q, k, v);
    assertClose(causal, shape(1, 1, 2, 1), 1e-6, 4.5, 6);
    Tensor window = run(a -> new TransformerOp.Attention(a.get(0), a.get(1), a.get(2), null, 1.0, true, 2), q, k, v);
    assertClose(window, shape(1, 1, 2, 1), 1e-6, 4.5, 7.5);
    // Hq=4 over Hkv=2: heads 0,1 read kv head 0 and heads 2,3 read kv head 1; scale applies to q.k
    Tensor q4 = f32(shape(1, 4, 1, 1), 1, 1, 1, 1);
    Tensor k2 = f32(shape(1, 2, 2, 1), 0, 1, 0, 0);
    Tensor v2 = f32(shape(1, 2, 2, 1), 0, 1, 5, 5);
    Tensor gqa = run(a -> new TransformerOp.Attention(a.get(0), a.get(1), a.get(2), null, 0.0, false, 0), q4, k2, v2);
    assertClose(gqa, shape(1, 4, 1, 1), 1e-6, 0.5, 0.5, 5, 5);
    // every key masked: NaN (softmax of all -inf, as ONNX Runtime)
    Tensor all = f32(shape(1, 1, 1, 3), Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY);
    Tensor masked = run(a -> new TransformerOp.Attention(a.get(0), a.get(1), a.get(2), a.get(3), 1.0, false, 0), q, k, v, all);
    assertTensor(masked, ElementType.F32, shape(1, 1, 2, 1), NAN, NAN);
  }

  @Test
  void kvCacheAppendConcatenatesPositions() {
    Tensor r = run(a -> new TransformerOp.KvCacheAppend(a.get(0), a.get(1)),
        f32(shape(1, 2, 2, 1), 1, 2, 5, 6), f32(shape(1, 2, 1, 1), 3, 7));
    assertTensor(r, ElementType.F32, shape(1, 2, 3, 1), 1, 2, 3, 5, 6, 7);
  }

  @Test
  void attentionWithPastLengthsHidesEachRowsUnwrittenKeys() {
    // two sequences over caches of T=3: row 0 holds no past keys (sees key 0), row 1 one (sees 0 and 1)
    Tensor q = f32(shape(2, 1, 1, 1), 1, 1);
    Tensor k = f32(shape(2, 1, 3, 1), 0, 0, 0, 0, 0, 0);
    Tensor v = f32(shape(2, 1, 3, 1), 3, 6, 9, 3, 6, 9);
    Tensor lengths = ints(ElementType.I64, shape(2), 0, 1);
    Tensor r = run(a -> new TransformerOp.Attention(a.get(0), a.get(1), a.get(2), null, a.get(3), 1.0, true, 0),
        q, k, v, lengths);
    assertClose(r, shape(2, 1, 1, 1), 1e-6, 3, 4.5);
    // a window of 1 leaves each query its own key
    Tensor w = run(a -> new TransformerOp.Attention(a.get(0), a.get(1), a.get(2), null, a.get(3), 1.0, true, 1),
        q, k, v, lengths);
    assertClose(w, shape(2, 1, 1, 1), 1e-6, 3, 6);
    IrException full = assertThrows(IrException.class, () -> run(a -> new TransformerOp.Attention(a.get(0), a.get(1),
        a.get(2), null, a.get(3), 1.0, true, 0), q, k, v, ints(ElementType.I64, shape(2), 0, 3)));
    assertEquals("'attention' (%r, at \"test\"): past_lengths[1] = 3 leaves no room for 1 new position in a cache of 3", full.getMessage());
  }

  @Test
  void kvCacheWriteStoresEachRowAtItsLength() {
    Tensor cache = f32(shape(2, 1, 3, 1), 1, 2, 3, 4, 5, 6);
    Tensor current = f32(shape(2, 1, 1, 1), 7, 8);
    Tensor r = run(a -> new TransformerOp.KvCacheWrite(a.get(0), a.get(1), a.get(2)), cache, current,
        ints(ElementType.I64, shape(2), 0, 2));
    assertTensor(r, ElementType.F32, shape(2, 1, 3, 1), 7, 2, 3, 4, 5, 8);
    // the input cache is not written
    assertTensor(cache, ElementType.F32, shape(2, 1, 3, 1), 1, 2, 3, 4, 5, 6);
    IrException negative = assertThrows(IrException.class, () -> run(a -> new TransformerOp.KvCacheWrite(a.get(0),
        a.get(1), a.get(2)), cache, current, ints(ElementType.I64, shape(2), -1, 0)));
    assertEquals("'kv_cache_write' (%r, at \"test\"): past_lengths[0] = -1 leaves no room for 1 new position in a cache of 3",
        negative.getMessage());
  }

  @Test
  void layerNormBiasedVarianceEpsInsideSqrt() {
    // rows have mean 2 (var 2/3) and mean 4 (var 8/3): both normalize to [-1.2247449, 0, 1.2247449]
    Tensor r = run(a -> new TransformerOp.LayerNorm(a.get(0), a.get(1), a.get(2), -1, 0.0),
        f32(shape(2, 3), 1, 2, 3, 2, 4, 6), f32(shape(3), 1, 1, 2), f32(shape(3), 0, 0, 1));
    double n = 1.224744871391589;
    assertClose(r, shape(2, 3), 1e-6, -n, 0, 2 * n + 1, -n, 0, 2 * n + 1);
    // eps = 1 with variance 1: divide by sqrt(2); no beta
    Tensor e = run(a -> new TransformerOp.LayerNorm(a.get(0), a.get(1), null, -1, 1.0), f32(shape(2), 1, 3), f32(shape(2), 1, 1));
    assertClose(e, shape(2), 1e-6, -Math.sqrt(0.5), Math.sqrt(0.5));
    // axis 0 of a [2,2]: all four elements together, mean 2.5, var 1.25
    Tensor all = run(a -> new TransformerOp.LayerNorm(a.get(0), a.get(1), null, 0, 0.0), f32(shape(2, 2), 1, 2, 3, 4),
        f32(shape(), 1));
    double s = Math.sqrt(1.25);
    assertClose(all, shape(2, 2), 1e-6, -1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s);
  }

  @Test
  void rmsNormWithGammaOffset() {
    // mean(x^2) = 12.5; gamma + 1 = [2, 3]
    Tensor r = run(a -> new TransformerOp.RmsNorm(a.get(0), a.get(1), 0.0, 1.0), f32(shape(1, 2), 3, 4), f32(shape(2), 1, 2));
    assertClose(r, shape(1, 2), 1e-6, 1.697056274847714, 3.394112549695428);
    Tensor eps = run(a -> new TransformerOp.RmsNorm(a.get(0), a.get(1), 1.0, 0.0), f32(shape(1), 1), f32(shape(1), 1));
    assertClose(eps, shape(1), 1e-6, Math.sqrt(0.5));
  }

  @Test
  void ropeBothStylesPartialAndBroadcast() {
    Tensor x = f32(shape(4), 1, 2, 3, 4);
    Tensor cos = f32(shape(4), 0.5, 0.25, 0.5, 0.25);
    Tensor sin = f32(shape(4), 0.5, 1, 0.5, 1);
    // rotate_half: y0 = x0c0 - x2s0, y1 = x1c1 - x3s1, y2 = x2c2 + x0s2, y3 = x3c3 + x1s3
    assertTensor(run(a -> new TransformerOp.Rope(a.get(0), a.get(1), a.get(2), RopeStyle.ROTATE_HALF), x, cos, sin),
        ElementType.F32, shape(4), -1, -3.5, 2, 3);
    // interleaved: y0 = x0c0 - x1s0, y1 = x1c1 + x0s1, y2 = x2c2 - x3s2, y3 = x3c3 + x2s3
    assertTensor(run(a -> new TransformerOp.Rope(a.get(0), a.get(1), a.get(2), RopeStyle.INTERLEAVED), x, cos, sin),
        ElementType.F32, shape(4), -0.5, 1.5, -0.5, 4);
    // partial: only the first R = 2 dims rotate (by 90 degrees here)
    assertTensor(run(a -> new TransformerOp.Rope(a.get(0), a.get(1), a.get(2), RopeStyle.ROTATE_HALF),
        f32(shape(6), 1, 2, 3, 4, 5, 6), f32(shape(2), 0, 0), f32(shape(2), 1, 1)), ElementType.F32, shape(6),
        -2, 1, 3, 4, 5, 6);
    // x [heads=2, seq=2, 2], tables [seq=2, 2]: position 0 unchanged, position 1 rotated 90 degrees
    Tensor xs = f32(shape(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8);
    assertTensor(run(a -> new TransformerOp.Rope(a.get(0), a.get(1), a.get(2), RopeStyle.ROTATE_HALF), xs,
        f32(shape(2, 2), 1, 1, 0, 0), f32(shape(2, 2), 0, 0, 1, 1)), ElementType.F32, shape(2, 2, 2),
        1, 2, -4, 3, 5, 6, -8, 7);
  }

  @Test
  void geluExactAndTanh() {
    Tensor x = f32(shape(6), -5, -1, 0, 0.5, 1, 3);
    // libm: 0.5 x (1 + erf(x / sqrt 2)), rounded to f32; -5 keeps its relative accuracy via erfc
    assertClose(run(a -> new TransformerOp.Gelu(a.get(0), false), x), shape(6), ULPS,
        -1.433257807548216e-06, -0.15865525603294373, 0.0, 0.3457312285900116, 0.8413447737693787, 2.995950222015381);
    assertClose(run(a -> new TransformerOp.Gelu(a.get(0), true), x), shape(6), ULPS,
        -2.2917961928214936e-07, -0.15880800783634186, 0.0, 0.3457140028476715, 0.8411920070648193, 2.9963626861572266);
  }

  @Test
  void siluAndSwiglu() {
    assertClose(run(a -> new TransformerOp.Silu(a.get(0)), f32(shape(3), -1, 0, 2)), shape(3), ULPS,
        -0.2689414322376251, 0.0, 1.7615941762924194);
    assertClose(run(a -> new TransformerOp.SwiGlu(a.get(0), a.get(1)), f32(shape(2), 2, -1), f32(shape(2), 3, 4)),
        shape(2), ULPS, 5.284782409667969, -1.0757657289505005);
  }

  @Test
  void allReduceOfOneProgramIsItsOwnPartial() {
    // One program holds one chip's partial sum; the other chips' shares arrive only on hardware
    // (or in the multi-shard test runner), so the single-program semantics is the identity.
    assertTensor(run(a -> new TransformerOp.AllReduce(a.get(0), 8), f32(shape(2), 1.5, -2)),
        ElementType.F32, shape(2), 1.5, -2);
  }

  @Test
  void reduceScatterOfOneProgramKeepsItsBlock() {
    // the sum's other terms come from other chips: one program keeps its own block of its partial
    Tensor x = f32(shape(1, 4, 2), 0, 1, 2, 3, 4, 5, 6, 7);
    assertTensor(run(a -> new TransformerOp.ReduceScatter(a.get(0), 2, 1, 1), x),
        ElementType.F32, shape(1, 2, 2), 4, 5, 6, 7);
    assertTensor(run(a -> new TransformerOp.ReduceScatter(a.get(0), 4, 0, -2), x),
        ElementType.F32, shape(1, 1, 2), 0, 1);
  }

  @Test
  void allGatherOfOneProgramPlacesItsBlock() {
    assertTensor(run(a -> new TransformerOp.AllGather(a.get(0), 3, 1, 0), f32(shape(1, 2), 8, 9)),
        ElementType.F32, shape(3, 2), 0, 0, 8, 9, 0, 0);
  }

  @Test
  void collectivesCheckTheirGroup() {
    Value x = Value.argument("x", TensorType.of(ElementType.F32, 6, 2));
    assertEquals("rank must be in [0, 2), got 2", assertThrows(OpException.class,
        () -> new TransformerOp.AllGather(x, 2, 2, 0).inferResultTypes()).getMessage());
    assertEquals("axis 1 has 2 elements, which do not split into 4 equal blocks",
        assertThrows(OpException.class,
            () -> new TransformerOp.ReduceScatter(x, 4, 0, 1).inferResultTypes()).getMessage());
    assertEquals("axis 2 is out of range for rank 2", assertThrows(OpException.class,
        () -> new TransformerOp.ReduceScatter(x, 2, 0, 2).inferResultTypes()).getMessage());
    assertEquals("4611686018427387904 blocks of 6 along axis 0 overflow a dim",
        assertThrows(OpException.class, () -> new TransformerOp.AllGather(x, 1L << 62, 0, 0)
            .inferResultTypes()).getMessage());
  }

  @Test
  void embeddingLooksUpRows() {
    Tensor table = f32(shape(3, 2), 0, 1, 2, 3, 4, 5);
    assertTensor(run(a -> new TransformerOp.Embedding(a.get(0), a.get(1)), table, i64(shape(1, 2), 2, 0)),
        ElementType.F32, shape(1, 2, 2), 4, 5, 0, 1);
  }

  @Test
  void erfMatchesLibm() {
    // values of libm's erf / erfc (Python math.erf, math.erfc)
    assertEquals(0.5204998778130465, Erf.erf(0.5), 1e-15);
    assertEquals(0.8427007929497149, Erf.erf(1.0), 1e-15);
    assertEquals(-0.9953222650189527, Erf.erf(-2.0), 1e-15);
    assertEquals(0.9999779095030014, Erf.erf(3.0), 1e-15);
    assertEquals(2.209049699858544e-05, Erf.erfc(3.0), 1e-19);
    assertEquals(1.5374597944280349e-12, Erf.erfc(5.0), 1e-25);
    assertEquals(2.0, Erf.erfc(-30.0), 0);
    assertEquals(0.0, Erf.erf(0.0), 0);
  }
}
