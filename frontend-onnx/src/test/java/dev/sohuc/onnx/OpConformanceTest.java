package dev.sohuc.onnx;

import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.OperatorSetIdProto;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;

import static dev.sohuc.onnx.Models.attr;
import static dev.sohuc.onnx.Models.floats;
import static dev.sohuc.onnx.Models.ints;
import static dev.sohuc.onnx.Models.tensor;
import static dev.sohuc.ir.type.ElementType.BOOL;
import static dev.sohuc.ir.type.ElementType.F16;
import static dev.sohuc.ir.type.ElementType.F32;
import static dev.sohuc.ir.type.ElementType.I32;
import static dev.sohuc.ir.type.ElementType.I64;
import static dev.sohuc.ir.type.ElementType.I8;
import static dev.sohuc.ir.type.ElementType.U8;

/**
 * One test per supported op and attribute variant: a one-node model built here, imported, run
 * on the reference interpreter and on ONNX Runtime with seeded random inputs, compared
 * element-wise ({@code |a - b| <= 1e-5 * max(1, |b|)} for floats unless a case says otherwise, exact for
 * integers).
 */
class OpConformanceTest {

  /** A node input: a graph input filled from {@code gen}, or an initializer holding {@code constant}. */
  record In(ElementType type, long[] shape, Function<Random, Tensor> gen, Tensor constant) {}

  /** An op of {@code domain}, in a model of default-domain {@code opset}; "" in outputs leaves one out. */
  record Case(String label, String domain, int opset, String op, List<In> inputs, List<AttributeProto> attrs,
              List<String> outputs, double tolerance) {
    Case opset(int v) {
      return new Case(label, domain, v, op, inputs, attrs, outputs, tolerance);
    }

    Case attrs(AttributeProto... a) {
      return new Case(label, domain, opset, op, inputs, List.of(a), outputs, tolerance);
    }

    Case outputs(int n) {
      return outputs(java.util.stream.IntStream.range(0, n).mapToObj(i -> "y" + i).toArray(String[]::new));
    }

    Case outputs(String... names) {
      return new Case(label, domain, opset, op, inputs, attrs, List.of(names), tolerance);
    }

    Case named(String l) {
      return new Case(l, domain, opset, op, inputs, attrs, outputs, tolerance);
    }

    /** Compared within {@code t} instead: a half-precision sum, whose rounding ONNX Runtime orders its own way. */
    Case tolerance(double t) {
      return new Case(label, domain, opset, op, inputs, attrs, outputs, t);
    }

    @Override
    public String toString() {
      return label;
    }
  }

  static Case t(String op, In... inputs) {
    return new Case(op, "", 17, op, java.util.Arrays.asList(inputs), List.of(), List.of("y0"), 1e-5);
  }

  /** A com.microsoft op (ONNX Runtime's contrib ops, opset 1). */
  static Case ms(String op, In... inputs) {
    return new Case(op, OnnxOps.MS_DOMAIN, 17, op, java.util.Arrays.asList(inputs), List.of(), List.of("y0"), 1e-5);
  }

  static In f(long... shape) {
    return new In(F32, shape, r -> random(F32, shape, r, -2, 2), null);
  }

  static In pos(long... shape) {
    return new In(F32, shape, r -> random(F32, shape, r, 0.1, 3), null);
  }

  static In ix(ElementType type, long lo, long hi, long... shape) {
    return new In(type, shape, r -> random(type, shape, r, lo, hi), null);
  }

  static In b(long... shape) {
    return new In(BOOL, shape, r -> random(BOOL, shape, r, 0, 1), null);
  }

  static In c(Tensor t) {
    return new In(t.elementType(), t.shape(), null, t);
  }

  static In ci(long... v) {
    return c(Tensor.ofLongs(I64, new long[] {v.length}, v.clone()));
  }

  static In cs(ElementType type, double v) {
    return c(Tensor.scalar(type, v));
  }

  static In scales(double... v) {
    float[] f = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      f[i] = (float) v[i];
    }
    return c(Tensor.ofFloats(F32, new long[] {v.length}, f));
  }

  static In none() {
    return null;
  }

  static Tensor random(ElementType type, long[] shape, Random r, double lo, double hi) {
    Tensor t = Tensor.zeros(type, shape);
    for (int i = 0; i < t.size(); i++) {
      t.set(i, type.isFloat() ? lo + (hi - lo) * r.nextDouble() : lo + r.nextInt((int) (hi - lo + 1)));
    }
    return t;
  }

  /** {@code count} whole numbers in [0, max] as f32, of the given shape. */
  static Tensor wholeNumbers(Random r, int count, int max, long... shape) {
    float[] v = new float[count];
    for (int i = 0; i < count; i++) {
      v[i] = r.nextInt(max + 1);
    }
    return Tensor.ofFloats(F32, shape, v);
  }

  static List<Case> cases() {
    List<Case> cs = new ArrayList<>();
    for (String op : List.of("Add", "Sub", "Mul", "Div")) {
      cs.add(t(op, f(2, 3, 4), f(4)));
    }
    cs.add(t("Add", ix(I64, -5, 5, 2, 3), ix(I64, -5, 5, 3)).named("Add i64"));
    cs.add(t("Div", ix(I32, -9, 9, 2, 3), ix(I32, 1, 4, 3)).named("Div i32"));
    cs.add(t("Mod", ix(I64, -9, 9, 2, 3), ix(I64, 1, 4, 3)).opset(13).named("Mod i64"));
    cs.add(t("Mod", ix(I32, -9, 9, 2, 3), ix(I32, -4, -1, 3)).opset(13).named("Mod i32 negative divisors"));
    cs.add(t("Mod", ix(I32, -9, 9, 2, 3), ix(I32, -4, -1, 3)).attrs(attr("fmod", 1)).opset(13)
        .named("Mod i32 fmod 1"));
    cs.add(t("Mod", f(2, 3), f(3)).attrs(attr("fmod", 1)).opset(13).named("Mod f32 fmod 1"));
    cs.add(t("Pow", pos(2, 3), f(2, 3)));
    cs.add(t("Pow", pos(2, 3), cs(I64, 2)).named("Pow i64 exponent"));
    cs.add(t("Max", f(2, 3), f(3), f(1, 3)).named("Max variadic"));
    cs.add(t("Min", f(2, 3), f(2, 3)));
    cs.add(t("Min", f(2, 3)).named("Min one input"));
    for (String op : List.of("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")) {
      cs.add(t(op, ix(I64, 0, 3, 3, 4), ix(I64, 0, 3, 4)));
    }
    cs.add(t("Less", f(3, 4), f(3, 4)).named("Less f32"));
    for (String op : List.of("And", "Or", "Xor")) {
      cs.add(t(op, b(3, 4), b(4)));
    }
    cs.add(t("Not", b(3, 4)));
    for (String op : List.of("Neg", "Abs", "Exp", "Erf", "Tanh", "Sigmoid", "Relu", "Floor", "Ceil", "Sin", "Cos")) {
      cs.add(t(op, f(3, 5)));
    }
    for (String op : List.of("Sqrt", "Reciprocal", "Log")) {
      cs.add(t(op, pos(3, 5)));
    }
    cs.add(t("Neg", ix(I64, -9, 9, 4)).named("Neg i64"));
    for (String op : List.of("LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Softplus", "Softsign",
        "ThresholdedRelu")) {
      cs.add(t(op, f(3, 5)));
    }
    cs.add(t("LeakyRelu", f(3, 5)).attrs(attr("alpha", 0.2)).named("LeakyRelu alpha"));
    cs.add(t("Elu", f(3, 5)).attrs(attr("alpha", 0.5)).named("Elu alpha"));
    cs.add(t("Selu", f(3, 5)).attrs(attr("alpha", 2.0), attr("gamma", 0.5)).named("Selu alpha gamma"));
    cs.add(t("Celu", f(3, 5)).attrs(attr("alpha", 2.0)).named("Celu alpha"));
    cs.add(t("HardSigmoid", f(3, 5)).attrs(attr("alpha", 0.4), attr("beta", 0.3)).named("HardSigmoid alpha beta"));
    cs.add(t("ThresholdedRelu", f(3, 5)).attrs(attr("alpha", 0.5)).named("ThresholdedRelu alpha"));
    cs.add(t("Softplus", new In(F32, new long[] {8}, r -> random(F32, new long[] {8}, r, -100, 100), null))
        .named("Softplus far from 0"));
    cs.add(t("Mish", f(3, 5)).opset(18));
    cs.add(t("Shrink", f(3, 5)));
    cs.add(t("Shrink", f(3, 5)).attrs(attr("lambd", 1.0), attr("bias", 0.25)).named("Shrink lambd bias"));
    In special = new In(F32, new long[] {8}, r -> Tensor.ofFloats(F32, new long[] {8}, new float[] {Float.NaN,
        Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f, 1.5f, -2f, Float.MIN_VALUE}), null);
    cs.add(t("Sign", special).named("Sign of special values"));
    cs.add(t("Round", new In(F32, new long[] {4, 6}, r -> Tensor.ofFloats(F32, new long[] {4, 6}, new float[] {
        0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 0.49999997f, -0.49999997f, 0.50000006f, 2.4999998f, 1e-30f, -1e-30f,
        8388607.5f, -8388607.5f, 8388609f, 16777216f, 1e30f, -1e30f, Float.NaN, Float.POSITIVE_INFINITY,
        Float.NEGATIVE_INFINITY, 3.7f, -3.7f, -0f}), null)).named("Round ties, neighbours and large values"));
    cs.add(t("Round", new In(F32, new long[] {64}, r -> random(F32, new long[] {64}, r, -50, 50), null))
        .named("Round random"));
    cs.add(t("Sign", ix(I64, -3, 3, 2, 4)).named("Sign i64"));
    cs.add(t("IsNaN", special));
    cs.add(t("IsInf", special));
    cs.add(t("IsInf", special).attrs(attr("detect_negative", 0)).named("IsInf positive only"));
    cs.add(t("IsInf", special).attrs(attr("detect_positive", 0)).named("IsInf negative only"));
    cs.add(t("IsInf", special).attrs(attr("detect_positive", 0), attr("detect_negative", 0))
        .named("IsInf neither"));
    cs.add(t("PRelu", f(2, 3, 4), f(4)).named("PRelu slope per channel"));
    cs.add(t("PRelu", f(2, 3, 4), f(2, 3, 4)).named("PRelu slope per element"));
    cs.add(t("Sum", f(2, 3), f(3), f(1, 3)).named("Sum variadic"));
    cs.add(t("Sum", f(2, 3)).named("Sum one input"));
    cs.add(t("Mean", f(2, 3), f(3), f(1, 3)).named("Mean variadic"));
    cs.add(t("Gelu", f(3, 5)).opset(20).named("Gelu erf"));
    cs.add(t("Gelu", f(3, 5)).opset(20).attrs(attr("approximate", "tanh")).named("Gelu tanh"));
    cs.add(t("Softmax", f(2, 3, 4)).opset(13).named("Softmax 13 default axis"));
    cs.add(t("Softmax", f(2, 3, 4)).opset(13).attrs(attr("axis", 1)).named("Softmax 13 axis 1"));
    cs.add(t("Softmax", f(2, 3, 4)).opset(11).named("Softmax 11 default axis (flattens)"));
    cs.add(t("Softmax", f(2, 3, 4)).opset(11).attrs(attr("axis", -1)).named("Softmax 11 axis -1"));
    cs.add(t("LogSoftmax", f(2, 3, 4)).opset(13).named("LogSoftmax 13"));
    cs.add(t("LogSoftmax", f(2, 3, 4)).opset(11).attrs(attr("axis", 0)).named("LogSoftmax 11 axis 0"));
    cs.add(t("MatMul", f(2, 3, 4), f(4, 5)));
    cs.add(t("MatMul", f(4), f(2, 4, 5)).named("MatMul vector"));
    cs.add(t("Gemm", f(3, 4), f(4, 5), f(5)));
    cs.add(t("Gemm", f(4, 3), f(5, 4), f(3, 5)).attrs(attr("transA", 1), attr("transB", 1), attr("alpha", 0.5),
        attr("beta", 2.0)).named("Gemm transposed alpha beta"));
    cs.add(t("Gemm", f(3, 4), f(4, 5)).named("Gemm no C"));
    cs.add(t("Transpose", f(2, 3, 4)).attrs(ints("perm", 1, 2, 0)));
    cs.add(t("Transpose", f(2, 3, 4)).named("Transpose default perm"));
    cs.add(t("DepthToSpace", f(2, 8, 3, 4)).attrs(attr("blocksize", 2)).named("DepthToSpace DCR"));
    cs.add(t("DepthToSpace", f(1, 18, 2, 3)).attrs(attr("blocksize", 3), attr("mode", "CRD"))
        .named("DepthToSpace CRD"));
    cs.add(t("SpaceToDepth", f(2, 3, 6, 4)).attrs(attr("blocksize", 2)));
    cs.add(t("Conv", f(2, 3, 8, 12), f(5, 3, 4, 4), f(5)).attrs(ints("kernel_shape", 4, 4), ints("strides", 4, 4))
        .named("Conv patch embedding"));
    cs.add(t("Conv", f(1, 2, 6, 4), f(3, 2, 3, 2)).attrs(ints("strides", 3, 2), ints("pads", 0, 0, 0, 0))
        .named("Conv patch embedding, no bias"));
    cs.add(t("Conv", f(2, 3, 4, 8, 8), f(6, 3, 2, 4, 4), f(6)).attrs(ints("strides", 2, 4, 4))
        .named("Conv 3-D tubelet embedding"));
    cs.add(t("Conv", f(2, 4, 12), f(5, 4, 3)).attrs(ints("strides", 3)).named("Conv 1-D patches"));
    // ConvTranspose as an upsampling by its kernel (SAM's mask decoder: 2 x 2, stride 2)
    cs.add(t("ConvTranspose", f(2, 4, 3, 5), f(4, 6, 2, 2), f(6)).attrs(ints("strides", 2, 2))
        .named("ConvTranspose 2 x 2 upsampling"));
    cs.add(t("ConvTranspose", f(1, 3, 7), f(3, 2, 4)).attrs(ints("strides", 4), ints("kernel_shape", 4))
        .named("ConvTranspose 1-D, no bias"));
    // tap by tap: Whisper's 1-D stem (kernel 3, pad 1, strides 1 and 2), dilation, auto_pad,
    // 2-D 3 x 3 with padding and stride 2, an input past the last position read
    cs.add(t("Conv", f(2, 5, 12), f(6, 5, 3), f(6)).attrs(ints("pads", 1, 1)).named("Conv 1-D k3 pad 1"));
    cs.add(t("Conv", f(1, 4, 11), f(3, 4, 3), f(3)).attrs(ints("pads", 1, 1), ints("strides", 2))
        .named("Conv 1-D k3 pad 1 stride 2"));
    cs.add(t("Conv", f(1, 3, 13), f(2, 3, 3)).attrs(ints("dilations", 2), ints("strides", 3), ints("pads", 2, 0))
        .named("Conv 1-D dilation 2 stride 3, uneven pads"));
    cs.add(t("Conv", f(1, 3, 10), f(2, 3, 4)).attrs(attr("auto_pad", "SAME_UPPER"), ints("strides", 3))
        .named("Conv 1-D SAME_UPPER"));
    cs.add(t("Conv", f(1, 3, 10), f(2, 3, 4)).attrs(attr("auto_pad", "SAME_LOWER")).named("Conv 1-D SAME_LOWER"));
    cs.add(t("Conv", f(2, 3, 9, 7), f(4, 3, 3, 3), f(4)).attrs(ints("pads", 1, 1, 1, 1), ints("strides", 2, 2))
        .named("Conv 2-D 3x3 pad 1 stride 2"));
    cs.add(t("Conv", f(1, 2, 8, 9), f(3, 2, 2, 3)).attrs(ints("strides", 3, 1), ints("dilations", 1, 2))
        .named("Conv 2-D 2x3 dilation, input past the last position read"));
    // groups: two of a 2-D convolution, a depthwise 1-D one (a Conformer's), wav2vec2's
    // positional convolution (128 taps, pad 64, 16 groups; here 2 channels a group)
    cs.add(t("Conv", f(2, 4, 7, 6), f(6, 2, 3, 3), f(6)).attrs(attr("group", 2), ints("pads", 1, 1, 1, 1))
        .named("Conv 2-D two groups"));
    cs.add(t("Conv", f(1, 5, 12), f(5, 1, 5), f(5)).attrs(attr("group", 5), ints("pads", 2, 2), ints("strides", 2))
        .named("Conv 1-D depthwise stride 2"));
    cs.add(t("Conv", f(1, 32, 150), f(32, 2, 128), f(32)).attrs(attr("group", 16), ints("pads", 64, 64))
        .named("Conv 1-D 128 taps 16 groups (wav2vec2 positional)")
        .tolerance(1e-4));  // sums of 256 products, rounded in f32 in another order than ONNX Runtime's
    // pooling over the same windows: ResNet's 3x3 stride 2 pad 1 max, averages with and without
    // the padding counted, 1-D, SAME_UPPER, dilation (MaxPool; AveragePool from opset 19)
    cs.add(t("MaxPool", f(2, 3, 9, 8)).attrs(ints("kernel_shape", 3, 3), ints("strides", 2, 2),
        ints("pads", 1, 1, 1, 1)).named("MaxPool 3x3 stride 2 pad 1"));
    cs.add(t("MaxPool", f(1, 2, 11)).attrs(ints("kernel_shape", 3), ints("dilations", 2), ints("strides", 2))
        .opset(12).named("MaxPool 1-D dilation 2"));
    cs.add(t("MaxPool", f(1, 2, 7, 7)).attrs(ints("kernel_shape", 2, 2), attr("auto_pad", "SAME_UPPER"))
        .named("MaxPool SAME_UPPER"));
    cs.add(t("AveragePool", f(2, 3, 9, 8)).attrs(ints("kernel_shape", 3, 3), ints("strides", 2, 2),
        ints("pads", 1, 1, 1, 1)).named("AveragePool pad 1, padding not counted"));
    cs.add(t("AveragePool", f(2, 3, 9, 8)).attrs(ints("kernel_shape", 3, 3), ints("pads", 1, 0, 2, 1),
        attr("count_include_pad", 1)).named("AveragePool padding counted"));
    cs.add(t("AveragePool", f(1, 4, 10)).attrs(ints("kernel_shape", 4), ints("strides", 3))
        .named("AveragePool 1-D"));
    cs.add(t("AveragePool", f(1, 2, 9, 9)).opset(19).attrs(ints("kernel_shape", 2, 2), ints("dilations", 2, 2),
        ints("pads", 1, 1, 1, 1)).named("AveragePool 19 dilation"));
    // ceil_mode: the last window past the input (8 - 3 is odd), one that would start in the end
    // padding dropped (5 + 2 pads, kernel 2, stride 2: 3 windows, not 4), averages counting the
    // positions inside the input or, with count_include_pad, inside the padded input
    cs.add(t("MaxPool", f(2, 3, 8, 9)).attrs(ints("kernel_shape", 3, 3), ints("strides", 2, 2),
        attr("ceil_mode", 1)).named("MaxPool ceil_mode"));
    // the Indices output: each maximum's flat position in X, row-major or with storage_order 1
    // the spatial axes column-major
    cs.add(t("MaxPool", f(2, 3, 9, 8)).attrs(ints("kernel_shape", 3, 3), ints("strides", 2, 2),
        ints("pads", 1, 1, 1, 1)).outputs(2).named("MaxPool Indices"));
    cs.add(t("MaxPool", f(1, 2, 7, 6)).attrs(ints("kernel_shape", 2, 3), attr("storage_order", 1))
        .outputs(2).named("MaxPool Indices column-major"));
    cs.add(t("MaxPool", f(2, 2, 11)).attrs(ints("kernel_shape", 3), ints("dilations", 2), ints("strides", 2))
        .outputs(2).opset(12).named("MaxPool 1-D Indices"));
    cs.add(t("MaxPool", f(1, 3, 8, 9)).attrs(ints("kernel_shape", 3, 3), ints("strides", 2, 2),
        attr("ceil_mode", 1)).outputs(2).named("MaxPool ceil_mode Indices"));
    cs.add(t("MaxPool", f(1, 2, 5, 5)).attrs(ints("kernel_shape", 2, 2), ints("strides", 2, 2),
        ints("pads", 1, 1, 1, 1), attr("ceil_mode", 1)).named("MaxPool ceil_mode, a window dropped"));
    cs.add(t("AveragePool", f(2, 3, 8, 9)).attrs(ints("kernel_shape", 3, 3), ints("strides", 2, 2),
        ints("pads", 1, 0, 0, 1), attr("ceil_mode", 1)).named("AveragePool ceil_mode"));
    cs.add(t("AveragePool", f(2, 3, 8, 9)).attrs(ints("kernel_shape", 3, 3), ints("strides", 2, 2),
        ints("pads", 1, 0, 0, 1), attr("ceil_mode", 1), attr("count_include_pad", 1))
        .named("AveragePool ceil_mode, padding counted"));
    cs.add(t("AveragePool", f(1, 2, 10)).attrs(ints("kernel_shape", 4), ints("strides", 3),
        attr("ceil_mode", 1), attr("count_include_pad", 1)).named("AveragePool 1-D ceil_mode"));
    cs.add(t("BatchNormalization", f(2, 3, 4, 5), f(3), f(3), f(3), pos(3)).named("BatchNormalization"));
    cs.add(t("BatchNormalization", f(2, 3), f(3), f(3), f(3), pos(3)).attrs(attr("epsilon", 0.1))
        .named("BatchNormalization 2-D, epsilon"));
    cs.add(t("InstanceNormalization", f(2, 3, 5, 4), f(3), f(3)).named("InstanceNormalization"));
    cs.add(t("InstanceNormalization", f(2, 4, 7), f(4), f(4)).attrs(attr("epsilon", 0.01))
        .named("InstanceNormalization 1-D, epsilon"));
    cs.add(t("GroupNormalization", f(2, 6, 5, 3), f(6), f(6)).opset(21).attrs(attr("num_groups", 3L))
        .named("GroupNormalization 21, per channel"));
    cs.add(t("GroupNormalization", f(2, 6, 9), f(2), f(2)).opset(18).attrs(attr("num_groups", 2L))
        .named("GroupNormalization 18, per group"));
    for (Object[] e : new Object[][] {
        {"ij,jk->ik", new long[][] {{3, 4}, {4, 5}}},
        {"bhid,bhjd->bhij", new long[][] {{2, 3, 4, 8}, {2, 3, 5, 8}}},
        {"bhij,bhjd->bhid", new long[][] {{2, 3, 4, 5}, {2, 3, 5, 8}}},
        {"bqhd,bkhd->bhqk", new long[][] {{2, 4, 3, 8}, {2, 5, 3, 8}}},
        {"i,j->ij", new long[][] {{4}, {5}}},
        {"ij,kj->ik", new long[][] {{3, 4}, {5, 4}}},
        {"ij,ij->ij", new long[][] {{3, 4}, {3, 4}}},
        {"ij,k->i", new long[][] {{3, 4}, {5}}},
        {"...ij,...jk->...ik", new long[][] {{2, 3, 4}, {2, 4, 5}}},
        {"bij,bjk", new long[][] {{2, 3, 4}, {2, 4, 5}}},
        {"ij->ji", new long[][] {{3, 4}}},
        {"ijk->ik", new long[][] {{3, 4, 5}}},
        {"ijk->kji", new long[][] {{3, 4, 5}}},
        {"...i->...", new long[][] {{2, 3, 4}}},
        {"ij->ij", new long[][] {{3, 4}}},
        {"ij", new long[][] {{3, 4}}}}) {
      long[][] shapes = (long[][]) e[1];
      In[] ins = java.util.Arrays.stream(shapes).map(OpConformanceTest::f).toArray(In[]::new);
      cs.add(t("Einsum", ins).opset(12).attrs(Models.attr("equation", (String) e[0])).named("Einsum " + e[0]));
    }
    cs.add(t("Reshape", f(2, 3, 4), ci(0, -1)));
    cs.add(t("Reshape", f(2, 3, 4), ci(4, 1, 6)).opset(14).attrs(attr("allowzero", 1)).named("Reshape allowzero"));
    cs.add(t("Flatten", f(2, 3, 4)).named("Flatten default"));
    cs.add(t("Flatten", f(2, 3, 4)).attrs(attr("axis", 0)).named("Flatten axis 0"));
    cs.add(t("Flatten", f(2, 3, 4)).attrs(attr("axis", -1)).named("Flatten axis -1"));
    cs.add(t("Squeeze", f(2, 1, 4, 1)).opset(11).attrs(ints("axes", 1)).named("Squeeze 11 attr"));
    cs.add(t("Squeeze", f(2, 1, 4, 1), ci(-1)).opset(13).named("Squeeze 13 input"));
    cs.add(t("Squeeze", f(2, 1, 4, 1)).opset(13).named("Squeeze all"));
    cs.add(t("Unsqueeze", f(2, 4)).opset(11).attrs(ints("axes", 0, 3)).named("Unsqueeze 11 attr"));
    cs.add(t("Unsqueeze", f(2, 4), ci(-1, 1)).opset(13).named("Unsqueeze 13 input"));
    cs.add(t("Concat", f(2, 3), f(2, 5)).attrs(attr("axis", 1)));
    cs.add(t("Concat", f(2, 3), f(4, 3), f(1, 3)).attrs(attr("axis", -2)).named("Concat three"));
    cs.add(t("Split", f(2, 6)).opset(11).attrs(attr("axis", 1), ints("split", 2, 4)).outputs(2)
        .named("Split 11 attr"));
    cs.add(t("Split", f(2, 6), ci(1, 5)).opset(13).attrs(attr("axis", 1)).outputs(2).named("Split 13 input"));
    cs.add(t("Split", f(6, 2)).opset(13).outputs(3).named("Split equal"));
    cs.add(t("Split", f(7, 2)).opset(18).attrs(attr("num_outputs", 3)).outputs(3).named("Split 18 num_outputs"));
    cs.add(t("Slice", f(5, 6), ci(1), ci(4)).named("Slice starts ends"));
    cs.add(t("Slice", f(5, 6), ci(0, 5), ci(Long.MAX_VALUE, 1), ci(0, 1), ci(2, -2)).named("Slice axes steps"));
    cs.add(t("Slice", f(5, 6), ci(-1), ci(Long.MIN_VALUE), ci(1), ci(-1)).named("Slice reverse"));
    cs.add(t("Gather", f(5, 3), c(Tensor.ofLongs(I64, new long[] {2, 2}, new long[] {0, 2, 4, -1}))));
    cs.add(t("Gather", f(5, 3), ix(I64, 0, 2, 4)).attrs(attr("axis", 1)).named("Gather axis 1 runtime"));
    cs.add(t("Gather", f(5, 3), cs(I64, 3)).named("Gather scalar index"));
    // GatherND: pairs into a 3-D tensor (negative entries), one tuple to a scalar, k = 1, and
    // a sequence classifier's last-token logits at run-time positions (GPT-2's, Llama's)
    cs.add(t("GatherND", f(3, 4, 5), c(Tensor.ofLongs(I64, new long[] {3, 2}, new long[] {0, 1, 2, -1, 1, 3}))));
    cs.add(t("GatherND", f(2, 3), c(Tensor.ofLongs(I64, new long[] {2}, new long[] {1, 2}))).named("GatherND to a scalar"));
    cs.add(t("GatherND", f(4, 3), c(Tensor.ofLongs(I64, new long[] {3, 1}, new long[] {3, 0, -4}))).named("GatherND k 1"));
    cs.add(t("GatherND", f(3, 3, 4), ix(I64, -3, 2, 2, 2, 2)).named("GatherND runtime tuples"));
    // batch_dims: each batch's own rows (pairs, single entries, two batch axes)
    cs.add(t("GatherND", f(2, 3, 4, 5), c(Tensor.ofLongs(I64, new long[] {2, 3, 2},
        new long[] {0, 1, 2, -1, 1, 3, 2, 0, 0, -4, -3, 2}))).attrs(attr("batch_dims", 1))
        .named("GatherND batch_dims 1"));
    cs.add(t("GatherND", f(2, 3, 4), ix(I64, -4, 3, 2, 3, 1)).attrs(attr("batch_dims", 2))
        .named("GatherND batch_dims 2, runtime tuples"));
    cs.add(t("GatherND", f(3, 5), c(Tensor.ofLongs(I64, new long[] {3, 1}, new long[] {4, 0, -2})))
        .attrs(attr("batch_dims", 1)).named("GatherND batch_dims 1 to scalars"));
    cs.add(t("GatherElements", f(3, 4), ix(I64, 0, 3, 3, 2)).attrs(attr("axis", 1)));
    cs.add(t("Expand", f(3, 1), ci(2, 3, 4)));
    cs.add(t("Expand", f(2, 3), ci(1, 1)).named("Expand smaller shape"));
    cs.add(t("Tile", f(2, 3), ci(2, 1)));
    cs.add(t("Where", b(3, 4), f(3, 4), f(4)));
    cs.add(t("Cast", f(3, 4)).attrs(attr("to", 7)).named("Cast f32 to i64"));
    cs.add(t("Cast", ix(I64, -9, 9, 3, 4)).attrs(attr("to", 1)).named("Cast i64 to f32"));
    cs.add(t("Cast", f(3, 4)).attrs(attr("to", 9)).named("Cast f32 to bool"));
    cs.add(t("Cast", f(3, 4)).attrs(attr("to", 10)).named("Cast f32 to f16"));
    cs.add(t("CastLike", f(3, 4), ix(I32, 0, 1, 1)));
    cs.add(t("Shape", f(2, 3, 4)));
    cs.add(t("Shape", f(2, 3, 4)).opset(15).attrs(attr("start", 1), attr("end", -1)).named("Shape start end"));
    cs.add(t("Size", f(2, 3, 4)));
    cs.add(t("ConstantOfShape", ci(2, 3)).named("ConstantOfShape default"));
    cs.add(t("ConstantOfShape", ci(2, 3)).attrs(tensor("value", Tensor.ofLongs(I64, new long[] {1}, new long[] {7})))
        .named("ConstantOfShape i64"));
    cs.add(t("ConstantOfShape", ci(10, 10)).attrs(tensor("value", Tensor.ofFloats(F32, new long[] {1},
        new float[] {0.5f}))).named("ConstantOfShape large (fill)"));
    cs.add(t("Constant").attrs(floats("value_floats", 1, 2, 3)).named("Constant value_floats"));
    cs.add(t("Constant").attrs(ints("value_ints", 1, 2, 3)).named("Constant value_ints"));
    cs.add(t("Constant").attrs(attr("value_float", 2.5)).named("Constant value_float"));
    cs.add(t("Constant").attrs(attr("value_int", 7L)).named("Constant value_int"));
    cs.add(t("Constant").attrs(tensor("value", random(F32, new long[] {10, 10}, new Random(1), -1, 1)))
        .named("Constant large tensor (weight)"));
    cs.add(t("Range", cs(I64, 0), cs(I64, 10), cs(I64, 3)).named("Range i64"));
    cs.add(t("Range", cs(I64, 5), cs(I64, 205), cs(I64, 1)).named("Range long (range op)"));
    cs.add(t("Range", cs(F32, 1), cs(F32, 2), cs(F32, 0.25)).named("Range f32"));
    cs.add(t("ReduceMean", f(2, 3, 4)).opset(13).attrs(ints("axes", -1)).named("ReduceMean 13 attr"));
    cs.add(t("ReduceMean", f(2, 3, 4), ci(0, 2)).opset(18).attrs(attr("keepdims", 0)).named("ReduceMean 18 input"));
    cs.add(t("ReduceSum", f(2, 3, 4), ci(1)).opset(13).named("ReduceSum 13 input"));
    cs.add(t("ReduceSum", f(2, 3, 4)).opset(11).attrs(ints("axes", 1), attr("keepdims", 0)).named("ReduceSum 11 attr"));
    cs.add(t("ReduceSum", f(2, 3, 4)).opset(13).named("ReduceSum all axes"));
    cs.add(t("ReduceSum", f(2, 3, 4), ci()).opset(13).attrs(attr("noop_with_empty_axes", 1)).named("ReduceSum noop"));
    cs.add(t("ReduceMax", f(2, 3, 4)).opset(13).attrs(ints("axes", 1)));
    cs.add(t("ReduceMin", f(2, 3, 4), ci(-1)).opset(18).named("ReduceMin 18 input"));
    cs.add(t("ReduceProd", f(2, 3, 4)).opset(13).attrs(ints("axes", 2)));
    for (String op : List.of("ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp")) {
      cs.add(t(op, f(2, 3, 4)).opset(13).attrs(ints("axes", 1)).named(op + " 13 attr"));
      cs.add(t(op, f(2, 3, 4), ci(0, 2)).opset(18).attrs(attr("keepdims", 0)).named(op + " 18 input"));
    }
    cs.add(t("ReduceLogSum", pos(2, 3, 4)).opset(13).attrs(ints("axes", -1)).named("ReduceLogSum 13 attr"));
    cs.add(t("ReduceL2", f(2, 3, 4)).opset(13).attrs(attr("keepdims", 0)).named("ReduceL2 all axes"));
    cs.add(t("ReduceLogSumExp", f(2, 3, 4)).opset(13).attrs(attr("keepdims", 0)).named("ReduceLogSumExp all axes"));
    cs.add(t("ReduceLogSumExp", new In(F32, new long[] {2, 5}, r -> random(F32, new long[] {2, 5}, r, 80, 120),
        null)).opset(13).attrs(ints("axes", 1)).named("ReduceLogSumExp past exp's f32 range"));
    for (String op : List.of("ReduceSumSquare", "ReduceL2", "ReduceLogSumExp")) {
      cs.add(t(op, f(2, 3, 4), ci()).opset(18).attrs(attr("noop_with_empty_axes", 1)).named(op + " noop"));
    }
    for (String op : List.of("ArgMax", "ArgMin")) {
      cs.add(t(op, f(3, 4, 5)).opset(13).named(op + " default axis"));
      cs.add(t(op, f(3, 4, 5)).opset(13).attrs(attr("axis", -1), attr("keepdims", 0)).named(op + " last axis"));
      // whole numbers in [0, 3]: ties, the first or the last of them
      In ties = new In(F32, new long[] {4, 6}, r -> wholeNumbers(r, 24, 3, 4, 6), null);
      cs.add(t(op, ties).opset(13).attrs(attr("axis", 1)).named(op + " first of ties"));
      cs.add(t(op, ties).opset(13).attrs(attr("axis", 1), attr("select_last_index", 1)).named(op + " last of ties"));
    }
    cs.add(t("TopK", f(3, 4, 5), ci(2)).opset(11).outputs(2).named("TopK last axis"));
    cs.add(t("TopK", f(3, 4, 5), ci(3)).opset(11).attrs(attr("axis", 1), attr("largest", 0))
        .outputs(2).named("TopK smallest, axis 1"));
    cs.add(t("TopK", f(6, 2), ci(1)).opset(11).attrs(attr("axis", 0)).outputs(2).named("TopK 1, axis 0"));
    // whole numbers in [0, 3]: ties, the lower index first; and every element of the axis
    In topTies = new In(F32, new long[] {4, 6}, r -> wholeNumbers(r, 24, 3, 4, 6), null);
    cs.add(t("TopK", topTies, ci(6)).opset(11).outputs(2).named("TopK of ties, the whole axis"));
    cs.add(t("TopK", topTies, ci(3)).opset(11).attrs(attr("largest", 0)).outputs(2)
        .named("TopK smallest of ties"));
    // infinities come out in their turn: a taken element is marked, not overwritten
    cs.add(t("TopK", new In(F32, new long[] {2, 4}, r -> Tensor.ofFloats(F32, new long[] {2, 4},
        new float[] {Float.NEGATIVE_INFINITY, 1, Float.NEGATIVE_INFINITY, 2, Float.POSITIVE_INFINITY, 0, 5,
            Float.POSITIVE_INFINITY}), null), ci(4)).opset(11).outputs(2).named("TopK with infinities"));
    // f16 over 3000 elements: the indices counted in f32 (f16 counts exactly only to 2048)
    cs.add(t("ArgMax", h16(2, 3000)).opset(13).attrs(attr("axis", 1)).named("ArgMax f16 of 3000"));
    cs.add(t("TopK", h16(2, 3000), ci(3)).opset(11).outputs(2).named("TopK f16 of 3000"));
    cs.add(t("Hardmax", f(3, 4, 5)).opset(13));
    cs.add(t("Hardmax", new In(F32, new long[] {4, 6}, r -> wholeNumbers(r, 24, 3, 4, 6), null)).opset(13)
        .attrs(attr("axis", 0)).named("Hardmax first of ties, axis 0"));
    cs.add(t("GlobalAveragePool", f(2, 3, 4, 5)));
    cs.add(t("GlobalMaxPool", f(2, 3, 4, 5)));
    cs.add(t("GlobalAveragePool", f(2, 3, 7)).named("GlobalAveragePool 1-D"));
    cs.add(t("LpNormalization", f(2, 3, 4)));
    cs.add(t("LpNormalization", f(2, 3, 4)).attrs(attr("axis", 1), attr("p", 1)).named("LpNormalization p 1 axis 1"));
    cs.add(t("LpNormalization", new In(F32, new long[] {2, 3}, r -> Tensor.ofFloats(F32, new long[] {2, 3},
        new float[] {0, 0, 0, 3, -4, 0}), null)).named("LpNormalization of a zero row"));
    // Resize: PyTorch's nearest x2 (asymmetric, floor: an expand), nearest to odd sizes with each
    // rounding, bilinear up and down in each coordinate transform, 1-D and 3-D, axes (18)
    cs.add(t("Resize", f(1, 2, 3, 4), none(), scales(1, 1, 2, 2)).attrs(attr("coordinate_transformation_mode",
        "asymmetric"), attr("nearest_mode", "floor")).opset(13).named("Resize nearest x2 (PyTorch)"));
    cs.add(t("Resize", f(1, 2, 3, 4), none(), none(), ci(1, 2, 5, 7)).opset(13).named("Resize nearest sizes"));
    cs.add(t("Resize", f(1, 1, 4, 6), none(), scales(1, 1, 1.5, 0.5)).attrs(attr("nearest_mode", "round_prefer_ceil"))
        .opset(13).named("Resize nearest round_prefer_ceil"));
    cs.add(t("Resize", f(2, 5, 7), none(), none(), ci(2, 5, 3)).attrs(attr("nearest_mode", "ceil"),
        attr("coordinate_transformation_mode", "tf_half_pixel_for_nn")).opset(13).named("Resize nearest 1-D ceil"));
    cs.add(t("Resize", f(1, 2, 3, 4), none(), scales(1, 1, 2, 2)).attrs(attr("mode", "linear")).opset(13)
        .named("Resize bilinear x2 half_pixel"));
    cs.add(t("Resize", f(1, 2, 3, 4), none(), none(), ci(1, 2, 7, 5)).attrs(attr("mode", "linear"),
        attr("coordinate_transformation_mode", "align_corners")).opset(13).named("Resize bilinear align_corners"));
    cs.add(t("Resize", f(1, 2, 8, 6), none(), scales(1, 1, 0.5, 0.75)).attrs(attr("mode", "linear"),
        attr("coordinate_transformation_mode", "pytorch_half_pixel")).opset(13).named("Resize bilinear down"));
    cs.add(t("Resize", f(2, 4, 5), none(), scales(1, 1, 2.5)).attrs(attr("mode", "linear"),
        attr("coordinate_transformation_mode", "asymmetric")).opset(13).named("Resize linear 1-D asymmetric"));
    cs.add(t("Resize", f(1, 3, 4, 5), none(), none(), ci(6, 9)).attrs(attr("mode", "linear"), ints("axes", 2, 3),
        attr("coordinate_transformation_mode", "half_pixel_symmetric")).opset(19).named("Resize axes half_pixel_symmetric"));
    // bicubic (ViT's interpolated position embeddings), Keys' a and exclude_outside
    cs.add(t("Resize", f(1, 2, 4, 5), none(), scales(1, 1, 2, 2)).attrs(attr("mode", "cubic")).opset(13)
        .named("Resize bicubic x2"));
    cs.add(t("Resize", f(1, 2, 5, 4), none(), none(), ci(1, 2, 7, 3)).attrs(attr("mode", "cubic"),
        attr("coordinate_transformation_mode", "align_corners"), attr("cubic_coeff_a", -0.5),
        attr("exclude_outside", 1)).opset(13).named("Resize bicubic align_corners, exclude_outside"));
    cs.add(t("Resize", f(1, 3, 8, 6), none(), scales(1, 1, 0.5, 0.75)).attrs(attr("mode", "cubic"),
        attr("coordinate_transformation_mode", "pytorch_half_pixel")).opset(13).named("Resize bicubic down"));
    cs.add(t("Clip", f(3, 4), cs(F32, -0.5), cs(F32, 0.5)));
    cs.add(t("Clip", f(3, 4), cs(F32, 0)).named("Clip min only"));
    cs.add(t("Clip", f(3, 4), none(), cs(F32, 0)).named("Clip max only"));
    cs.add(t("Clip", ix(I64, -9, 9, 3, 4), cs(I64, -2), cs(I64, 3)).named("Clip i64"));
    cs.add(t("Pad", f(3, 4), ci(1, 0, 2, 3), cs(F32, 1.5)).named("Pad constant"));
    cs.add(t("Pad", f(3, 4), ci(0, 2, 0, 1)).attrs(attr("mode", "reflect")).named("Pad reflect"));
    cs.add(t("Pad", f(3, 4), ci(1, 1, 1, 1)).attrs(attr("mode", "edge")).named("Pad edge"));
    cs.add(t("Pad", f(3, 4), ci(2, 1), none(), ci(1)).opset(18).named("Pad 18 axes"));
    cs.add(t("Trilu", f(2, 4, 5)).named("Trilu upper"));
    cs.add(t("Trilu", f(4, 5), cs(I64, -1)).attrs(attr("upper", 0)).named("Trilu lower k"));
    cs.add(t("CumSum", f(3, 4), cs(I64, 1)));
    cs.add(t("CumSum", f(3, 4), cs(I64, 0)).attrs(attr("exclusive", 1), attr("reverse", 1))
        .named("CumSum exclusive reverse"));
    cs.add(t("Identity", f(3, 4)));
    cs.add(t("Dropout", f(3, 4)).opset(13).outputs(2).named("Dropout with mask"));
    cs.add(t("Dropout", f(3, 4)).opset(11).attrs(attr("ratio", 0.3)).named("Dropout 11"));
    cs.add(t("LayerNormalization", f(2, 3, 8), f(8), f(8)));
    cs.add(t("LayerNormalization", f(2, 3, 8), f(3, 8)).attrs(attr("axis", -2), attr("epsilon", 1e-3))
        .named("LayerNormalization axis -2 no bias"));
    cs.add(t("LayerNormalization", f(2, 3, 8), f(8), f(8)).outputs(3).named("LayerNormalization mean invstd"));
    cs.add(t("SimplifiedLayerNormalization", f(2, 3, 8), f(8)).attrs(attr("epsilon", 1e-6)));
    cs.add(t("SimplifiedLayerNormalization", f(2, 3, 8), f(8)).attrs(attr("axis", -1), attr("stash_type", 1))
        .named("SimplifiedLayerNormalization default epsilon, axis and stash_type given"));
    cs.add(t("ScatterND", f(4, 3), c(Tensor.ofLongs(I64, new long[] {2, 1}, new long[] {1, 3})), f(2, 3)));
    cs.add(t("ScatterND", f(4, 3), c(Tensor.ofLongs(I64, new long[] {2, 1}, new long[] {1, 1})), f(2, 3))
        .attrs(attr("reduction", "add")).named("ScatterND add"));
    cs.add(t("ScatterND", f(4, 3), c(Tensor.ofLongs(I64, new long[] {2, 2}, new long[] {1, 0, 2, 2})), f(2))
        .opset(18).attrs(attr("reduction", "max")).named("ScatterND max"));
    cs.add(t("QuantizeLinear", f(3, 4), cs(F32, 0.02), cs(U8, 128)).named("QuantizeLinear u8"));
    cs.add(t("QuantizeLinear", f(3, 4), cs(F32, 0.02)).named("QuantizeLinear no zero point"));
    cs.add(t("QuantizeLinear", f(3, 4), c(Tensor.ofFloats(F32, new long[] {4}, new float[] {.01f, .02f, .03f, .04f})),
        c(Tensor.ofLongs(I8, new long[] {4}, new long[] {0, 1, -1, 5}))).named("QuantizeLinear per axis i8"));
    cs.add(t("DequantizeLinear", ix(U8, 0, 255, 3, 4), cs(F32, 0.02), cs(U8, 128)).named("DequantizeLinear u8"));
    cs.add(t("DequantizeLinear", ix(I8, -128, 127, 3, 4), cs(F32, 0.05)).named("DequantizeLinear no zero point"));
    cs.add(t("DequantizeLinear", ix(I8, -128, 127, 3, 4),
        c(Tensor.ofFloats(F32, new long[] {3}, new float[] {.01f, .02f, .03f})),
        c(Tensor.ofLongs(I8, new long[] {3}, new long[] {0, 1, -1}))).attrs(attr("axis", 0))
        .named("DequantizeLinear per axis"));
    cs.add(t("DynamicQuantizeLinear", f(3, 4)).outputs(3));
    cs.add(t("MatMulInteger", ix(U8, 0, 255, 3, 4), ix(U8, 0, 255, 4, 5), cs(U8, 12), cs(U8, 100)));
    cs.add(t("MatMulInteger", ix(U8, 0, 255, 3, 4), ix(I8, -128, 127, 4, 5)).named("MatMulInteger no zero points"));
    // requantized exactly as ONNX Runtime does (its f32 multiplier, rounding half to even)
    cs.add(t("QLinearMatMul", ix(U8, 0, 255, 2, 3, 16), cs(F32, 0.02), cs(U8, 128), ix(U8, 0, 255, 16, 8),
        cs(F32, 0.01), cs(U8, 120), cs(F32, 0.37), cs(U8, 128)).named("QLinearMatMul u8, batched a"));
    cs.add(t("QLinearMatMul", ix(I8, -128, 127, 5, 32), cs(F32, 0.03), cs(I8, 0), ix(I8, -127, 127, 32, 6),
        scales(0.01, 0.02, 0.015, 0.03, 0.005, 0.011), c(Tensor.zeros(I8, 6)), cs(F32, 0.4), cs(I8, -3))
        .named("QLinearMatMul i8, b per column"));
    cs.addAll(contribCases());
    return cs;
  }

  /** com.microsoft ops, attribute defaults and optional inputs present and absent. */
  static List<Case> contribCases() {
    List<Case> cs = new ArrayList<>();
    cs.add(ms("Gelu", f(2, 3, 8)).named("ms Gelu"));
    cs.add(ms("BiasGelu", f(2, 3, 8), f(8)));
    cs.add(ms("DynamicQuantizeMatMul", f(2, 4, 24), ix(I8, -127, 127, 24, 10),
        scales(0.01, 0.02, 0.015, 0.03, 0.005, 0.011, 0.02, 0.02, 0.01, 0.04), none(), f(10))
        .named("DynamicQuantizeMatMul, b per column, bias"));
    cs.add(ms("DynamicQuantizeMatMul", f(3, 16), ix(U8, 0, 255, 16, 5), cs(F32, 0.02), cs(U8, 131))
        .named("DynamicQuantizeMatMul u8"));
    cs.add(ms("MatMulIntegerToFloat", ix(U8, 0, 255, 3, 20), ix(I8, -127, 127, 20, 7), cs(F32, 0.03),
        cs(F32, 0.01), cs(U8, 127), none(), f(7)).named("MatMulIntegerToFloat, bias"));
    cs.add(ms("FastGelu", f(2, 3, 8)).named("FastGelu no bias"));
    cs.add(ms("FastGelu", f(2, 3, 8), f(8)).named("FastGelu bias"));
    cs.add(ms("FastGelu", new In(F32, new long[] {4, 8}, r -> random(F32, new long[] {4, 8}, r, -6, 6), null), f(8))
        .named("FastGelu bias, inputs in the tails"));
    cs.add(ms("QuickGelu", f(2, 3, 8)).named("QuickGelu default alpha"));
    cs.add(ms("QuickGelu", f(2, 3, 8)).attrs(attr("alpha", -0.75)).named("QuickGelu alpha -0.75"));
    cs.add(ms("QuickGelu", f(2, 3, 8)).attrs(attr("alpha", 1.0)).named("QuickGelu alpha 1 (silu)"));
    cs.add(ms("SkipLayerNormalization", f(2, 3, 8), f(2, 3, 8), f(8)).named("SkipLayerNormalization default epsilon"));
    cs.add(ms("SkipLayerNormalization", f(2, 3, 8), f(2, 3, 8), f(8), f(8), f(8)).attrs(attr("epsilon", 1e-5))
        .outputs("y0", "", "", "y3").named("SkipLayerNormalization beta bias sum"));
    cs.add(ms("SkipLayerNormalization", f(2, 3, 8), f(3, 8), f(8), none(), f(8)).outputs("y0", "", "", "y3")
        .named("SkipLayerNormalization bias no beta, skip without batch"));
    cs.add(ms("SkipLayerNormalization", f(2, 3, 8), f(1, 3, 8), f(8), f(8))
        .named("SkipLayerNormalization skip batch 1"));
    cs.add(ms("SkipLayerNormalization", f(5, 8), f(5, 8), f(8), f(8)).attrs(attr("epsilon", 1e-3))
        .named("SkipLayerNormalization rank 2"));
    cs.add(ms("SkipSimplifiedLayerNormalization", f(2, 3, 8), f(2, 3, 8), f(8))
        .named("SkipSimplifiedLayerNormalization default epsilon"));
    cs.add(ms("SkipSimplifiedLayerNormalization", f(2, 3, 8), f(3, 8), f(8), f(8)).attrs(attr("epsilon", 1e-6))
        .outputs("y0", "", "", "y3").named("SkipSimplifiedLayerNormalization bias sum, skip without batch"));
    // Attention: x [2, 5, 16], 4 heads of 4 (qkv_hidden_sizes 16, 16, 8: v heads of 2)
    In mask2d = ix(I32, 0, 1, 2, 5);
    In mask2dWide = c(Tensor.ofLongs(I32, new long[] {2, 5}, new long[] {1, 0, 2, -1, 1, 0, 1, 1, 1, 0}));
    In lengths = ix(I32, 1, 5, 2);
    cs.add(ms("Attention", f(2, 5, 16), f(16, 48), f(48)).attrs(attr("num_heads", 4L))
        .named("Attention no mask, default scale"));
    cs.add(ms("Attention", f(2, 5, 16), f(16, 48), f(48), mask2d).attrs(attr("num_heads", 4L))
        .named("Attention 2-D mask"));
    cs.add(ms("Attention", f(2, 5, 16), f(16, 48), f(48), mask2dWide)
        .attrs(attr("num_heads", 2L), attr("mask_filter_value", -50.0), attr("scale", 0.3))
        .named("Attention 2-D mask of other values, mask_filter_value, scale"));
    cs.add(ms("Attention", f(2, 5, 16), f(16, 48), f(48), lengths).attrs(attr("num_heads", 4L))
        .named("Attention 1-D key lengths"));
    cs.add(ms("Attention", f(2, 5, 16), f(16, 48), f(48)).attrs(attr("num_heads", 4L), attr("unidirectional", 1L))
        .named("Attention unidirectional"));
    cs.add(ms("Attention", f(2, 5, 16), f(16, 48), f(48), mask2d)
        .attrs(attr("num_heads", 4L), attr("unidirectional", 1L)).named("Attention unidirectional 2-D mask"));
    cs.add(ms("Attention", f(2, 5, 12), f(12, 40), f(40), mask2d)
        .attrs(attr("num_heads", 4L), ints("qkv_hidden_sizes", 16, 16, 8))
        .named("Attention qkv_hidden_sizes, v narrower, input narrower"));
    // with a past (GPT-2's KV cache): [2, B, N, P, 8] keys and values before the new ones, the present outputs
    cs.add(ms("Attention", f(2, 1, 16), f(16, 48), f(48), ix(I32, 1, 1, 2, 5), f(2, 2, 2, 4, 8))
        .attrs(attr("num_heads", 2L), attr("unidirectional", 1L)).outputs(2)
        .named("Attention one decode step after a past, 2-D mask over past and new keys"));
    cs.add(ms("Attention", f(2, 3, 16), f(16, 48), f(48), ix(I32, 0, 1, 2, 7), f(2, 2, 2, 4, 8))
        .attrs(attr("num_heads", 2L), attr("unidirectional", 1L)).outputs(2)
        .named("Attention three new tokens after a past, unidirectional, padding"));
    cs.add(ms("Attention", f(2, 3, 16), f(16, 48), f(48), none(), f(2, 2, 4, 4, 4))
        .attrs(attr("num_heads", 4L)).outputs(2).named("Attention after a past, not unidirectional")
        .tolerance(1e-4));  // scores of random [-2, 2] weights in the hundreds: their f32 rounding shows
    // MultiHeadAttention: query [2, 5, 16], key and value [2, 7, 16 / 8] (cross) or [2, 5, ..] (self)
    In keyMask = ix(I32, 0, 1, 2, 7);
    cs.add(ms("MultiHeadAttention", f(2, 5, 16), f(2, 7, 16), f(2, 7, 8)).attrs(attr("num_heads", 4L))
        .named("MultiHeadAttention cross, v narrower, default scale"));
    cs.add(ms("MultiHeadAttention", f(2, 5, 16), f(2, 7, 16), f(2, 7, 16), f(48), keyMask)
        .attrs(attr("num_heads", 2L), attr("scale", 0.3)).named("MultiHeadAttention bias, 2-D key_padding_mask, scale"));
    cs.add(ms("MultiHeadAttention", f(2, 5, 16), f(2, 7, 16), f(2, 7, 16), none(), ix(I32, 1, 7, 2))
        .attrs(attr("num_heads", 4L)).named("MultiHeadAttention key lengths"));
    cs.add(ms("MultiHeadAttention", f(2, 5, 16), f(2, 5, 16), f(2, 5, 16), none(), none(), f(1, 4, 5, 5))
        .attrs(attr("num_heads", 4L), attr("unidirectional", 1L))
        .named("MultiHeadAttention unidirectional, attention_bias [1, N, S, T]"));
    cs.add(ms("MultiHeadAttention", f(2, 5, 16), f(2, 5, 16), f(2, 5, 16), f(48), ix(I32, 0, 1, 2, 8), f(2, 1, 5, 8),
        f(2, 4, 3, 4), f(2, 4, 3, 4)).attrs(attr("num_heads", 4L), attr("unidirectional", 1L))
        .outputs(3).named("MultiHeadAttention past and present, unidirectional, mask and bias over past + new keys"));
    // ONNX Runtime's kernel reads the past only while writing the presents: a case with a past asks for both
    cs.add(ms("MultiHeadAttention", f(1, 1, 16), f(1, 1, 16), f(1, 1, 16), none(), none(), none(), f(1, 2, 6, 8),
        f(1, 2, 6, 8)).attrs(attr("num_heads", 2L), attr("unidirectional", 1L)).outputs(3)
        .named("MultiHeadAttention one decode step"));
    cs.add(ms("MultiHeadAttention", f(1, 2, 16), f(1, 2, 16), f(1, 2, 16), none(), none(), none(), f(1, 2, 6, 8),
        f(1, 2, 6, 8)).attrs(attr("num_heads", 2L)).outputs(3).named("MultiHeadAttention two new keys after a past"));
    // RotaryEmbedding: caches of 12 positions; input [2, 5, 16] as 2 heads of 8, or [2, 2, 5, 8]
    In positions = ix(I64, 0, 11, 2, 5);
    In start = c(Tensor.ofLongs(I64, new long[] {1}, new long[] {6}));
    cs.add(ms("RotaryEmbedding", f(2, 5, 16), positions, f(12, 4), f(12, 4))
        .named("RotaryEmbedding rotate-half, heads from the caches' width"));
    cs.add(ms("RotaryEmbedding", f(2, 5, 16), start, f(12, 4), f(12, 4)).attrs(attr("interleaved", 1L))
        .named("RotaryEmbedding interleaved, positions from one start"));
    cs.add(ms("RotaryEmbedding", f(2, 2, 5, 8), positions, f(12, 4), f(12, 4)).named("RotaryEmbedding [B, N, S, H]"));
    cs.add(ms("RotaryEmbedding", f(2, 5, 16), positions, f(12, 2), f(12, 2))
        .attrs(attr("num_heads", 2L), attr("rotary_embedding_dim", 4L)).named("RotaryEmbedding partial rotary dims"));
    cs.add(ms("RotaryEmbedding", f(2, 5, 16), positions, f(12, 2), f(12, 2))
        .attrs(attr("num_heads", 2L), attr("rotary_embedding_dim", 4L), attr("interleaved", 1L))
        .named("RotaryEmbedding partial rotary dims, interleaved"));
    // EmbedLayerNormalization: ids [2, 5] into word [30, 16], position [8, 16], segment [2, 16]
    In ids = ix(I32, 0, 29, 2, 5);
    In segIds = ix(I32, 0, 1, 2, 5);
    In mask = ix(I32, 0, 2, 2, 5);
    cs.add(ms("EmbedLayerNormalization", ids, segIds, f(30, 16), f(8, 16), f(2, 16), f(16), f(16), mask)
        .outputs(3).named("EmbedLayerNormalization segments, mask, sum"));
    cs.add(ms("EmbedLayerNormalization", ids, none(), f(30, 16), f(8, 16), none(), f(16), f(16))
        .attrs(attr("epsilon", 1e-5)).outputs(2).named("EmbedLayerNormalization no segments, no mask"));
    cs.add(ms("EmbedLayerNormalization", ids, segIds, f(30, 16), f(8, 16), f(2, 16), f(16), f(16), none(),
        ix(I32, 0, 7, 2, 5)).outputs("y0", "y1").named("EmbedLayerNormalization position_ids"));
    cs.add(ms("EmbedLayerNormalization", ids, none(), f(30, 16), f(8, 16), none(), f(16), f(16), mask,
        ix(I32, 0, 7, 1, 5)).outputs("y0", "y1", "y2").named("EmbedLayerNormalization position_ids [1, S]"));
    cs.addAll(matMulNBitsCases());
    cs.addAll(groupQueryAttentionCases());
    return cs;
  }

  /**
   * MatMulNBits, 4-bit: N = 6 columns of K = 40 codes (blocks of 16, the last one partial), or
   * K = 64 in blocks of 32; codes, scales and zero points random constants. (ONNX Runtime 1.22's
   * CPU kernel runs 4-bit codes only: 8-bit ones are checked against standard ops below.)
   */
  static List<Case> matMulNBitsCases() {
    List<Case> cs = new ArrayList<>();
    Random r = new Random(11);
    In codes4 = c(random(U8, new long[] {6, 3, 8}, r, 0, 255));
    In scales4 = c(random(F32, new long[] {18}, r, 0.01, 0.2));
    AttributeProto[] at4 = {attr("K", 40L), attr("N", 6L), attr("bits", 4L), attr("block_size", 16L)};
    cs.add(ms("MatMulNBits", f(2, 3, 40), codes4, scales4).attrs(at4)
        .named("MatMulNBits default zero points, partial last block"));
    cs.add(ms("MatMulNBits", f(2, 3, 40), codes4, scales4, c(random(U8, new long[] {12}, r, 0, 255))).attrs(at4)
        .named("MatMulNBits packed zero points"));
    AttributeProto[] at = {attr("K", 64L), attr("N", 6L), attr("bits", 4L), attr("block_size", 32L)};
    In codes = c(random(U8, new long[] {6, 2, 16}, r, 0, 255));
    In scales = c(random(F32, new long[] {6, 2}, r, -0.2, 0.2));
    cs.add(ms("MatMulNBits", f(5, 64), codes, scales, c(random(F32, new long[] {12}, r, 0, 15))).attrs(at)
        .named("MatMulNBits rank-2 A, float zero points, [N, blocks] scales"));
    cs.add(ms("MatMulNBits", f(5, 64), codes, scales, none(), none(), f(6)).attrs(at)
        .named("MatMulNBits bias"));
    cs.add(ms("MatMulNBits", new In(F16, new long[] {5, 64}, rr -> random(F16, new long[] {5, 64}, rr, -2, 2), null),
        codes, c(random(F16, new long[] {12}, r, 0.01, 0.1))).attrs(at).named("MatMulNBits f16")
        .tolerance(4e-3));
    // 4096 x 4160 f32 is over MatMulNBits.INLINE_LIMIT: dequantized into a mapped scratch file
    cs.add(ms("MatMulNBits", f(1, 4096), c(random(U8, new long[] {4160, 32, 64}, r, 0, 255)),
        c(random(F32, new long[] {4160 * 32}, r, 0.001, 0.01))).attrs(attr("K", 4096L), attr("N", 4160L),
        attr("bits", 4L), attr("block_size", 128L)).named("MatMulNBits weight over 64 MiB, in a scratch file"));
    return cs;
  }

  /**
   * GroupQueryAttention: 2 query heads of 8 on 1 kv head (or 4 on 2; heads of 16 or 32 where
   * rotated), past_key / past_value [B, Nkv, P, H], seqlens_k each sequence's total length less
   * one. ONNX Runtime takes a past with more than one new token only for one sequence.
   */
  static List<Case> groupQueryAttentionCases() {
    List<Case> cs = new ArrayList<>();
    AttributeProto h2 = attr("num_heads", 2L);
    AttributeProto kv1 = attr("kv_num_heads", 1L);
    cs.add(ms("GroupQueryAttention", f(1, 1, 16), f(1, 1, 8), f(1, 1, 8), f(1, 1, 5, 8), f(1, 1, 5, 8), lens(5),
        cs(I32, 6)).attrs(h2, kv1).outputs(3).named("GroupQueryAttention one decode step"));
    cs.add(ms("GroupQueryAttention", f(2, 4, 16), f(2, 4, 8), f(2, 4, 8), none(), none(), lens(3, 3), cs(I32, 4))
        .attrs(h2, kv1).outputs(3).named("GroupQueryAttention first prompt, no past"));
    cs.add(ms("GroupQueryAttention", f(1, 3, 32), f(1, 3, 16), f(1, 3, 16), f(1, 2, 4, 8), f(1, 2, 4, 8), lens(6),
        cs(I32, 7)).attrs(attr("num_heads", 4L), attr("kv_num_heads", 2L), attr("scale", 0.2)).outputs(3)
        .named("GroupQueryAttention three new tokens after a past, 4 heads on 2, scale"));
    cs.add(ms("GroupQueryAttention", f(1, 3, 32), none(), none(), f(1, 1, 4, 8), f(1, 1, 4, 8), lens(6), cs(I32, 7))
        .attrs(h2, kv1).outputs(3).named("GroupQueryAttention packed QKV"));
    // ONNX Runtime rotates heads of a multiple of 16
    cs.add(ms("GroupQueryAttention", f(1, 3, 32), f(1, 3, 16), f(1, 3, 16), f(1, 1, 4, 16), f(1, 1, 4, 16), lens(6),
        cs(I32, 7), f(16, 8), f(16, 8)).attrs(h2, kv1, attr("do_rotary", 1L)).outputs(3)
        .named("GroupQueryAttention rotary"));
    cs.add(ms("GroupQueryAttention", f(1, 3, 64), f(1, 3, 32), f(1, 3, 32), f(1, 1, 4, 32), f(1, 1, 4, 32), lens(6),
        cs(I32, 7), f(16, 8), f(16, 8)).attrs(h2, kv1, attr("do_rotary", 1L), attr("rotary_interleaved", 1L))
        .outputs(3).named("GroupQueryAttention interleaved rotary of half the head"));
    cs.add(ms("GroupQueryAttention", f(1, 3, 16), f(1, 3, 8), f(1, 3, 8), f(1, 1, 4, 8), f(1, 1, 4, 8), lens(6),
        cs(I32, 7)).attrs(h2, kv1, attr("local_window_size", 2L)).outputs(3)
        .named("GroupQueryAttention local window"));
    cs.add(ms("GroupQueryAttention", h16(1, 3, 32), h16(1, 3, 16), h16(1, 3, 16), h16(1, 1, 4, 16), h16(1, 1, 4, 16),
        lens(6), cs(I32, 7), h16(16, 8), h16(16, 8)).attrs(h2, kv1, attr("do_rotary", 1L)).outputs(3)
        .named("GroupQueryAttention f16, rotary").tolerance(4e-3));
    // the second sequence holds 2 of its buffer's 4 past rows: the attention is ONNX Runtime's, the presents
    // (the new row after the whole buffer here) are not
    cs.add(ms("GroupQueryAttention", f(2, 1, 16), f(2, 1, 8), f(2, 1, 8), f(2, 1, 4, 8), f(2, 1, 4, 8), lens(4, 2),
        cs(I32, 5)).attrs(h2, kv1).outputs("y0", "unchecked1", "unchecked2").named("GroupQueryAttention sequences of other lengths"));
    return cs;
  }

  private static In h16(long... shape) {
    return new In(F16, shape, r -> random(F16, shape, r, -2, 2), null);
  }

  private static In lens(long... v) {
    return c(Tensor.ofLongs(I32, new long[] {v.length}, v));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void matchesOnnxRuntime(Case c, @TempDir Path dir) throws Exception {
    GraphProto.Builder g = GraphProto.newBuilder().setName("one_" + c.op());
    List<String> inputNames = new ArrayList<>();
    List<String> runtimeNames = new ArrayList<>();
    List<Tensor> runtime = new ArrayList<>();
    Random rnd = new Random(c.label().hashCode());
    for (int i = 0; i < c.inputs().size(); i++) {
      In in = c.inputs().get(i);
      if (in == null) {
        inputNames.add("");
        continue;
      }
      String name = "x" + i;
      inputNames.add(name);
      if (in.constant() != null) {
        g.addInitializer(Models.initializer(name, in.constant()));
      } else {
        g.addInput(Models.input(name, in.type(), in.shape()));
        runtimeNames.add(name);
        runtime.add(in.gen().apply(rnd));
      }
    }
    List<String> outputs = c.outputs().stream().filter(o -> !o.isEmpty()).toList();
    outputs.forEach(o -> g.addOutput(Models.output(o)));
    g.addNode(Models.node(c.op(), inputNames, c.outputs(), c.attrs().toArray(AttributeProto[]::new)).toBuilder()
        .setDomain(c.domain()));
    ModelProto model = Models.model(c.opset(), g.build());
    if (!c.domain().isEmpty()) {
      model = model.toBuilder().addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(c.domain()).setVersion(1))
          .build();
    }
    Path file = Models.write(dir, "model.onnx", model);

    Module m = OnnxImporter.importModel(file, ImportOptions.defaults());
    Map<String, Tensor> ours = new Interpreter(m).run(runtime);
    Map<String, Tensor> ort = OrtSupport.run(file, runtimeNames, runtime);
    for (String out : outputs.stream().filter(o -> !o.startsWith("unchecked")).toList()) {
      OrtSupport.assertClose(c.label() + " output " + out, ort.get(out), ours.get(out), c.tolerance());
    }
  }

  /**
   * 8-bit MatMulNBits (which ONNX Runtime 1.22 runs on GPUs only), checked against the standard
   * ops it stands for: the codes cast, less their block's zero point, times its scale, laid out
   * [N, K], transposed, multiplied.
   */
  @Test
  void eightBitMatMulNBitsIsItsDequantizedMatMul(@TempDir Path dir) throws Exception {
    Random rnd = new Random(8);
    Tensor codes = random(U8, new long[] {6, 3, 16}, rnd, 0, 255);
    Tensor zeros = random(U8, new long[] {6, 3, 1}, rnd, 0, 255);
    Tensor scales = random(F32, new long[] {6, 3, 1}, rnd, 0.001, 0.02);
    Tensor zeroValues = Tensor.zeros(F32, 6, 3, 1);
    for (int i = 0; i < zeros.size(); i++) {
      zeroValues.set(i, zeros.get(i));
    }
    Tensor x = random(F32, new long[] {2, 3, 48}, rnd, -2, 2);
    GraphProto.Builder g = GraphProto.newBuilder().setName("nbits").addInput(Models.input("x", F32, 2, 3, 48))
        .addOutput(Models.output("y")).addInitializer(Models.initializer("codes", codes))
        .addInitializer(Models.initializer("scales", scales));
    ModelProto fused = Models.model(17, g.clone().addInitializer(Models.initializer("zeros", zeros))
        .addNode(Models.node("MatMulNBits", List.of("x", "codes", "scales", "zeros"), List.of("y"), attr("K", 48L),
            attr("N", 6L), attr("bits", 8L), attr("block_size", 16L)).toBuilder().setDomain(OnnxOps.MS_DOMAIN))
        .build()).toBuilder().addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(OnnxOps.MS_DOMAIN)
        .setVersion(1)).build();
    ModelProto standard = Models.model(17, g.addInitializer(Models.initializer("zeros", zeroValues))
        .addInitializer(Models.initializer("rows", Tensor.ofLongs(I64, new long[] {2}, new long[] {6, 48})))
        .addNode(Models.node("Cast", List.of("codes"), List.of("c"), attr("to", 1L)))
        .addNode(Models.node("Sub", List.of("c", "zeros"), List.of("d")))
        .addNode(Models.node("Mul", List.of("d", "scales"), List.of("w")))
        .addNode(Models.node("Reshape", List.of("w", "rows"), List.of("wr")))
        .addNode(Models.node("Transpose", List.of("wr"), List.of("wt")))
        .addNode(Models.node("MatMul", List.of("x", "wt"), List.of("y"))).build());
    Module m = OnnxImporter.importModel(Models.write(dir, "fused.onnx", fused), ImportOptions.defaults());
    Tensor ours = new Interpreter(m).run(List.of(x)).get("y");
    Tensor ort = OrtSupport.run(Models.write(dir, "standard.onnx", standard), List.of("x"), List.of(x)).get("y");
    OrtSupport.assertClose("8-bit MatMulNBits", ort, ours, 1e-5);
  }

  /** ONNX Runtime runs BiasAdd on GPUs only: it is checked against the two Adds it stands for. */
  @Test
  void biasAddIsItsTwoAdds(@TempDir Path dir) throws Exception {
    long[][] shapes = {{2, 3, 8}, {8}, {2, 3, 8}};
    List<String> names = List.of("x", "bias", "skip");
    Random rnd = new Random(5);
    List<Tensor> in = new ArrayList<>();
    GraphProto.Builder g = GraphProto.newBuilder().setName("bias_add").addOutput(Models.output("y"));
    for (int i = 0; i < shapes.length; i++) {
      g.addInput(Models.input(names.get(i), F32, shapes[i]));
      in.add(random(F32, shapes[i], rnd, -2, 2));
    }
    ModelProto fused = Models.model(17, g.clone().addNode(Models.node("BiasAdd", names, List.of("y")).toBuilder()
        .setDomain(OnnxOps.MS_DOMAIN)).build()).toBuilder()
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(OnnxOps.MS_DOMAIN).setVersion(1)).build();
    ModelProto adds = Models.model(17, g.addNode(Models.node("Add", List.of("x", "bias"), List.of("t")))
        .addNode(Models.node("Add", List.of("t", "skip"), List.of("y")).toBuilder().setName("Add_1")).build());
    Module m = OnnxImporter.importModel(Models.write(dir, "fused.onnx", fused), ImportOptions.defaults());
    Tensor ours = new Interpreter(m).run(in).get("y");
    Tensor ort = OrtSupport.run(Models.write(dir, "adds.onnx", adds), names, in).get("y");
    OrtSupport.assertClose("BiasAdd", ort, ours, 0);
  }
}
