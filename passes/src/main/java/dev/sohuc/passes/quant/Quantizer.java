package dev.sohuc.passes.quant;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.FloatFormats;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.passes.DeadCodeEliminationPass;
import dev.sohuc.passes.quant.QuantReport.Precision;
import dev.sohuc.passes.tp.AllReducePrecision;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.IntFunction;

/**
 * Quantizes every layer of a module: each {@code matmul} whose right operand is a 2-D f32
 * weight (possibly through a {@code transpose}, as the HF frontend writes {@code nn.Linear})
 * becomes a {@code qmatmul} in bf16, f8e4m3 or i8. In bf16 and fp8, attention's products run in
 * bf16 too ({@link Bf16Attention}). Everything else (norms, softmax, residual adds) stays in
 * f32, which the VPU computes anyway.
 *
 * <ul>
 *   <li>bf16: {@code cast x to bf16}, bf16 weights, f32 accumulation, scales 1.
 *   <li>fp8: f8e4m3 weights with per-output-channel scales {@code max_k |W[k][n]| / 448}, rounded
 *       to compensate the layer's error on its calibration inputs when there are some
 *       ({@link ErrorCompensatingRounding}); the activation gets a per-tensor scale
 *       {@code amax / 448} from calibration ({@code quantize_linear}), or, without calibration,
 *       {@code dynamic_quantize} per token.
 *   <li>int8: SmoothQuant first (layers reading one value share one {@code s}:
 *       {@code s_j = max|X_j|^a / max|W_j|^(1-a)}, weights' rows times s, activation divided by
 *       s, folded into the producing layer_norm/rms_norm's gamma (and beta) or else a
 *       {@code mul}), then i8 weights per output channel and an i8 per-tensor activation
 *       scale from the calibrated (smoothed) range; dynamic per-token i8 without calibration.
 * </ul>
 *
 * The accuracy guard then measures every layer on the calibration sets (see {@link QuantReport}
 * for the metric) and keeps a layer above {@code maxLayerError} in bf16 (bf16 mode: in f32), then
 * checks the whole model's outputs against f32 and, below {@code minOutputCosine}, keeps the
 * layers that cost the output most in bf16 too.
 */
public final class Quantizer {
  /** Percentile of |x| the calibration records beside the maximum. */
  static final double PERCENTILE = 99.99;

  private Quantizer() {}

  /** One quantizable matmul. */
  private record Layer(Node node, Value x, Tensor w, String name, String weightName) {
    long k() {
      return w.dim(0);
    }

    long n() {
      return w.dim(1);
    }
  }

  /** Calibrated range of one activation: per input channel max |x|, overall max and percentile. */
  private static final class Range {
    float[] channelMax;
    float percentile;

    void add(Tensor t) {
      float[] v = t.floats();
      int k = (int) t.dim(t.rank() - 1);
      if (channelMax == null) {
        channelMax = new float[k];
      }
      float[] abs = new float[v.length];
      for (int i = 0; i < v.length; i++) {
        float a = Math.abs(v[i]);
        abs[i] = a;
        int c = i % k;
        channelMax[c] = Math.max(channelMax[c], a);
      }
      Arrays.sort(abs);
      if (abs.length > 0) {
        int at = (int) Math.min(abs.length - 1, Math.ceil(PERCENTILE / 100 * abs.length) - 1);
        percentile = Math.max(percentile, abs[Math.max(0, at)]);
      }
    }

    float max() {
      float m = 0;
      for (float c : channelMax) {
        m = Math.max(m, c);
      }
      return m;
    }
  }

  /** The decisions for one layer. */
  private static final class Plan {
    final Layer layer;
    /** SmoothQuant divisor per input channel, or null. */
    float[] smooth;
    /** The weight the quantized layer multiplies: smoothed when smooth != null. */
    Tensor w;
    /** Per-tensor activation scale, or NaN for dynamic per-token scales. */
    float xScale = Float.NaN;
    Precision precision;
    double error = Double.NaN;
    double rejectedError = Double.NaN;
    String activation = "";
    String smoothing = "none";
    String why = "";
    /** The weight in each narrow type, made once (error-compensating rounding is not cheap). */
    final Map<ElementType, QuantizedWeight> quantized = new HashMap<>();

    Plan(Layer layer) {
      this.layer = layer;
      this.w = layer.w();
    }

    QuantizedWeight weight(ElementType dtype) {
      return quantized.computeIfAbsent(dtype, t -> quantizeWeight(w, t));
    }
  }

  /**
   * What {@code --quantize auto} means for {@code m}: the checkpoint's own precision, as serving
   * stacks run a model in its stored dtype. BF16 when every matmul weight (through casts and
   * transposes) is stored in bf16 (a bf16 Hugging Face checkpoint: its values are exactly
   * representable, so only the activations round), NONE (f32) otherwise.
   */
  public static QuantMode autoMode(Module m) {
    boolean any = false;
    for (Node n : m.main().body()) {
      if (n.op() instanceof LinalgOp.MatMul mm) {
        Value v = mm.b();
        while (v.producer() != null && (v.producer().op() instanceof DataOp.Transpose
            || v.producer().op() instanceof ElementwiseOp.Cast)) {
          v = v.producer().op().operands().get(0);
        }
        if (v.producer() == null || !(v.producer().op() instanceof SourceOp.WeightRef)
            || v.type().rank() != 2 || !isLinear(mm.b().type().dim(0).value())) {
          continue;
        }
        if (v.type().elementType() != ElementType.BF16) {
          return QuantMode.NONE;
        }
        any = true;
      }
    }
    return any ? QuantMode.BF16 : QuantMode.NONE;
  }

  /**
   * Quantizes {@code m} in place as {@code o} says and reports every layer; a tensor-parallel
   * shard then sums its qmatmul partials in bf16 ({@link AllReducePrecision}), and in bf16 and
   * fp8 attention reads bf16 K and V from a bf16 KV cache ({@link Bf16Attention}).
   */
  public static QuantReport quantize(Module m, QuantOptions o) {
    QuantReport report = quantizeLayers(m, o);
    attentionInBf16(m, o.mode());
    return report;
  }

  private static QuantReport quantizeLayers(Module m, QuantOptions o) {
    double maxError = o.effectiveMaxLayerError();
    double minCosine = o.effectiveMinOutputCosine();
    if (o.mode() == QuantMode.NONE) {
      return new QuantReport(o.mode(), maxError, 0, List.of(), Double.NaN, minCosine, ROUND_TO_NEAREST);
    }
    Function f = m.main();
    List<QuantReport.Layer> rows = new ArrayList<>(shapeOnlyLayers(m, o.mode()));
    List<Layer> layers = findLayers(m, f);
    List<Calibrator.CalibrationSet> sets = Calibrator.load(o.calibrationDirs(), o.reader(), f);
    if (layers.isEmpty()) {
      return new QuantReport(o.mode(), maxError, sets.size(), rows, Double.NaN, minCosine, ROUND_TO_NEAREST);
    }

    // Calibration: ranges of every layer input, and each layer's f32 input and output per set.
    Map<Value, Range> ranges = new HashMap<>();
    Map<Value, List<Tensor>> seen = new HashMap<>();
    Set<Value> watched = new HashSet<>();
    Set<Value> inputs = new HashSet<>();
    for (Layer l : layers) {
      watched.add(l.x());
      inputs.add(l.x());
      watched.add(l.node().result());
    }
    List<Value> outputs = f.outputs().stream().map(Function.Output::value).toList();
    List<Map<Value, Tensor>> reference = new ArrayList<>(); // the f32 outputs of each set
    if (!sets.isEmpty()) {
      Calibrator.run(m, sets, (set, v, t) -> {
        if (outputs.contains(v)) {
          while (reference.size() <= set) {
            reference.add(new HashMap<>());
          }
          reference.get(set).put(v, t);
        }
        if (watched.contains(v)) {
          seen.computeIfAbsent(v, k -> new ArrayList<>()).add(t);
          if (inputs.contains(v)) {
            ranges.computeIfAbsent(v, k -> new Range()).add(t);
          }
        }
      });
    }
    boolean calibrated = !sets.isEmpty();

    Map<Layer, Plan> plans = new LinkedHashMap<>();
    for (Layer l : layers) {
      plans.put(l, new Plan(l));
    }
    Precision target = switch (o.mode()) {
      case BF16 -> Precision.BF16;
      case FP8 -> Precision.FP8;
      case INT8 -> Precision.INT8;
      case NONE -> throw new IllegalStateException();
    };
    if (target == Precision.INT8 && calibrated) {
      smooth(layers, plans, ranges, o.smoothAlpha());
    }
    for (Plan p : plans.values()) {
      p.precision = target;
      describeActivation(p, ranges.get(p.layer.x()), target, calibrated);
    }
    boolean compensated = target == Precision.FP8 && calibrated;
    if (compensated) {
      roundAgainstCalibration(layers, plans, seen);
    }

    // The accuracy guard.
    Precision fallback = target == Precision.BF16 ? Precision.F32 : Precision.BF16;
    for (Plan p : plans.values()) {
      if (o.excludedLayers().stream().anyMatch(p.layer.name()::contains)) {
        p.precision = fallback;
        p.why = "kept in " + fallback.text() + ": excluded by option";
        if (calibrated) {
          p.error = measure(p, fallback, seen.get(p.layer.x()), seen.get(p.layer.node().result()));
        }
        continue;
      }
      if (!calibrated) {
        p.why = "not measured: no calibration data";
        continue;
      }
      List<Tensor> xs = seen.get(p.layer.x());
      List<Tensor> ys = seen.get(p.layer.node().result());
      p.error = measure(p, target, xs, ys);
      if (p.error <= maxError) {
        p.why = String.format(Locale.ROOT, "error %.5f <= %.4g", p.error, maxError);
      } else {
        p.rejectedError = p.error;
        p.precision = fallback;
        p.error = measure(p, fallback, xs, ys);
        p.why = String.format(Locale.ROOT, "kept in %s: %s error %.5f > %.4g", fallback.text(), target.text(),
            p.rejectedError, maxError);
      }
    }

    double outputCosine = Double.NaN;
    if (calibrated) {
      List<Plan> all = List.copyOf(plans.values());
      outputCosine = keepSensitiveLayers(new OutputCheck(m, sets, outputs, reference, all), all, target, fallback,
          minCosine, seen);
    }

    rewrite(m, f, layers, plans);
    AllReducePrecision.reduceInBf16(f);

    for (Plan p : plans.values()) {
      Layer l = p.layer;
      rows.add(new QuantReport.Layer(l.name(), l.node().location().text(), l.k(), l.n(), p.precision, p.error,
          p.rejectedError, p.precision == Precision.BF16 || p.precision == Precision.F32 ? "unscaled " + p.precision.text()
          : p.activation, p.smoothing, p.why));
    }
    return new QuantReport(o.mode(), maxError, sets.size(), rows, outputCosine, minCosine,
        compensated ? "f8e4m3 rounded to compensate each layer's error on its calibration inputs (GPTQ)"
            : ROUND_TO_NEAREST);
  }

  private static final String ROUND_TO_NEAREST = "rounded to nearest";

  /**
   * Type-only quantization of a shape-only model (no weight data, so nothing to measure or
   * round): every {@code matmul} whose right operand is a 2-D float shape-only weight (possibly
   * through a widening {@code cast} and a 2-D {@code transpose}) becomes the {@code qmatmul}
   * {@link #quantize} would write without calibration: bf16 casts x and reads a [k, n] bf16
   * weight with unit scales; fp8 quantizes x per row ({@code dynamic_quantize}) and reads a
   * [k, n] f8e4m3 weight with a shape-only f32 per-output-channel scale. The new weights are
   * shape-only in their narrow type, so a timing run moves their real byte counts. INT8 is
   * refused (it needs calibration data for SmoothQuant to be what {@link #quantize} would do).
   * A tensor-parallel shard's sums of qmatmul partials go to bf16
   * ({@link AllReducePrecision}) and, in bf16 and fp8, attention reads bf16 K and V from a bf16
   * KV cache ({@link Bf16Attention}), as in {@link #quantize}. Returns the layers rewritten, as
   * report rows.
   */
  public static List<QuantReport.Layer> quantizeShapeOnly(Module m, QuantMode mode) {
    List<QuantReport.Layer> rows = shapeOnlyLayers(m, mode);
    attentionInBf16(m, mode);
    return rows;
  }

  private static void attentionInBf16(Module m, QuantMode mode) {
    if (mode == QuantMode.BF16 || mode == QuantMode.FP8) {
      Bf16Attention.apply(m);
      CastsAtProjections.apply(m);
    }
  }

  private static List<QuantReport.Layer> shapeOnlyLayers(Module m, QuantMode mode) {
    if (mode == QuantMode.NONE) {
      return List.of();
    }
    Function f = m.main();
    boolean any = f.body().stream().anyMatch(n -> n.op() instanceof LinalgOp.MatMul mm
        && shapeOnlyWeight(m, mm.b()) != null);
    if (!any) {
      return List.of();
    }
    if (mode != QuantMode.BF16 && mode != QuantMode.FP8) {
      throw new IllegalArgumentException("--quantize " + mode.flag() + " needs real weights and "
          + "calibration data (SmoothQuant), and this model's weights are shape-only; use bf16 or fp8");
    }
    ElementType dtype = mode == QuantMode.BF16 ? ElementType.BF16 : ElementType.F8E4M3;
    Precision precision = mode == QuantMode.BF16 ? Precision.BF16 : Precision.FP8;
    FunctionBuilder b = new FunctionBuilder(f);
    Set<String> oldWeights = new HashSet<>();
    List<QuantReport.Layer> rows = new ArrayList<>();
    for (Node node : List.copyOf(f.body())) {
      if (!(node.op() instanceof LinalgOp.MatMul mm)) {
        continue;
      }
      Value x = mm.a();
      String wName = shapeOnlyWeight(m, mm.b());
      TensorType bt = mm.b().type();
      if (x.type().elementType() != ElementType.F32 || x.type().rank() < 2 || wName == null
          || bt.rank() != 2 || !bt.isStatic() || !isLinear(bt.dim(0).value())) {
        continue;
      }
      long k = bt.dim(0).value();
      long n = bt.dim(1).value();
      Location loc = node.location();
      String base = node.result().name();
      b.insertBefore(node);
      String qName = wName + (mm.b().producer().op() instanceof DataOp.Transpose ? ".t." : ".")
          + dtype.text();
      rows.add(new QuantReport.Layer(base, loc.text(), k, n, precision, Double.NaN, Double.NaN,
          dtype == ElementType.BF16 ? "unscaled bf16" : "dynamic per-token f8e4m3", "none",
          "type-only: shape-only weights, nothing to measure"));
      TensorType qt = TensorType.of(dtype, k, n);
      if (!m.weights().containsKey(qName)) {
        m.addWeight(new Weight(qName, qt, new Weight.Data.ShapeOnly()));
      }
      Value w = b.add(new SourceOp.WeightRef(qName, qt), loc, qName);
      Value xq;
      Value xScale;
      Value wScale;
      if (dtype == ElementType.BF16) {
        xq = b.add(new ElementwiseOp.Cast(x, ElementType.BF16), loc, base + ".x_bf16");
        xScale = scalar(b, 1f, loc);
        wScale = scalar(b, 1f, loc);
      } else {
        String sName = qName + ".w_scale";
        TensorType st = TensorType.of(ElementType.F32, n);
        if (!m.weights().containsKey(sName)) {
          m.addWeight(new Weight(sName, st, new Weight.Data.ShapeOnly()));
        }
        wScale = b.add(new SourceOp.WeightRef(sName, st), loc, sName);
        Node dq = b.addNode(new QuantOp.DynamicQuantize(x, dtype, "row"), loc,
            List.of(base + ".xq", base + ".x_scale"));
        xq = dq.results().get(0);
        xScale = dq.results().get(1);
      }
      Value y = b.add(new QuantOp.QMatMul(xq, w, xScale, wScale), loc, base);
      f.replaceAllUses(node.result(), y);
      f.body().remove(node);
      oldWeights.add(wName);
    }
    b.insertBefore(null);
    DeadCodeEliminationPass.removeDead(f);
    m.removeUnreadWeights(oldWeights);
    AllReducePrecision.reduceInBf16(f);
    return rows;
  }

  /**
   * The name of the float shape-only weight behind {@code v}: directly, through a widening
   * {@code cast} to f32 (a bf16 checkpoint computed in f32), and/or through a 2-D transpose.
   */
  private static String shapeOnlyWeight(Module m, Value v) {
    if (v.producer() == null) {
      return null;
    }
    return switch (v.producer().op()) {
      case SourceOp.WeightRef r -> {
        Weight w = m.weights().get(r.name());
        yield w != null && w.data() instanceof Weight.Data.ShapeOnly
            && w.type().elementType() == ElementType.F32 ? r.name() : null;
      }
      case ElementwiseOp.Cast c when c.to() == ElementType.F32 -> {
        Weight w = c.x().producer() != null && c.x().producer().op() instanceof SourceOp.WeightRef r
            ? m.weights().get(r.name()) : null;
        yield w != null && w.data() instanceof Weight.Data.ShapeOnly
            && w.type().elementType().isFloat() ? w.name() : null;
      }
      case DataOp.Transpose t when t.perm().equals(List.of(1L, 0L)) -> {
        Op inner = t.x().producer() == null ? null : t.x().producer().op();
        yield inner instanceof SourceOp.WeightRef || inner instanceof ElementwiseOp.Cast
            ? shapeOnlyWeight(m, t.x()) : null;
      }
      default -> null;
    };
  }

  // ---- finding layers ----

  private static List<Layer> findLayers(Module m, Function f) {
    List<Layer> layers = new ArrayList<>();
    for (Node n : f.body()) {
      if (!(n.op() instanceof LinalgOp.MatMul mm)) {
        continue;
      }
      Value x = mm.a();
      if (x.type().elementType() != ElementType.F32 || x.type().rank() < 2) {
        continue;
      }
      WeightTensor w = weightOf(m, mm.b());
      if (w == null || w.tensor().rank() != 2 || w.tensor().elementType() != ElementType.F32
          || !isLinear(w.tensor().dim(0))) {
        continue;
      }
      layers.add(new Layer(n, x, w.tensor(), n.result().name(), w.name()));
    }
    return layers;
  }

  /**
   * Whether a matmul with reduction length {@code k} is a layer worth quantizing: k = 1 is an
   * outer product (RoPE's positions x inv_freq), which gains nothing from a narrow MXU pass and
   * whose positions bf16 would round (2047 -> 2048).
   */
  private static boolean isLinear(long k) {
    return k > 1;
  }

  private record WeightTensor(String name, Tensor tensor) {}

  /** The constant behind a value: a weight, a constant, or a widening cast or 2-D transpose of one. */
  private static WeightTensor weightOf(Module m, Value v) {
    if (v.producer() == null) {
      return null;
    }
    return switch (v.producer().op()) {
      case SourceOp.WeightRef r -> {
        Weight w = m.weights().get(r.name());
        if (w == null || w.data() instanceof Weight.Data.ShapeOnly) {
          yield null;
        }
        yield new WeightTensor(r.name(), Tensor.fromBytes(w.type().elementType(),
            w.type().evaluateShape(Map.of()), w.bytes()));
      }
      case SourceOp.Constant c -> new WeightTensor("", c.value()); // not a module weight
      case ElementwiseOp.Cast c when c.to() == ElementType.F32 -> {
        // a bf16 / f16 checkpoint widened for f32 compute: the values are the weight's
        WeightTensor inner = weightOf(m, c.x());
        yield inner == null || !inner.tensor().isFloat() ? null : new WeightTensor(inner.name(),
            Tensor.ofFloats(ElementType.F32, inner.tensor().shape(), inner.tensor().floats()));
      }
      case DataOp.Transpose t when t.perm().equals(List.of(1L, 0L)) -> {
        WeightTensor inner = weightOf(m, t.x());
        yield inner == null || inner.tensor().rank() != 2 || !inner.tensor().isFloat() ? null
            : new WeightTensor(inner.name(), inner.tensor().transposed());
      }
      default -> null;
    };
  }

  // ---- SmoothQuant ----

  /**
   * Layers that read one activation share one smoothing vector (it is applied to the activation
   * once): {@code s_j = max|X_j|^a / max over the group's weights of max_n |W[j][n]|^(1-a)},
   * clamped to [1e-4, 1e4]; a channel that is all zero on either side keeps s = 1.
   */
  private static void smooth(List<Layer> layers, Map<Layer, Plan> plans, Map<Value, Range> ranges, double alpha) {
    Map<Value, List<Layer>> groups = new LinkedHashMap<>();
    layers.forEach(l -> groups.computeIfAbsent(l.x(), k -> new ArrayList<>()).add(l));
    for (var g : groups.entrySet()) {
      Range r = ranges.get(g.getKey());
      int k = (int) g.getValue().get(0).k();
      float[] wMax = new float[k];
      for (Layer l : g.getValue()) {
        float[] w = l.w().floats();
        int n = (int) l.n();
        for (int i = 0; i < w.length; i++) {
          wMax[i / n] = Math.max(wMax[i / n], Math.abs(w[i]));
        }
      }
      float[] s = new float[k];
      for (int j = 0; j < k; j++) {
        double xm = r.channelMax[j];
        double wm = wMax[j];
        s[j] = xm == 0 || wm == 0 ? 1f
            : (float) Math.min(1e4, Math.max(1e-4, Math.pow(xm, alpha) / Math.pow(wm, 1 - alpha)));
      }
      for (Layer l : g.getValue()) {
        Plan p = plans.get(l);
        p.smooth = s;
        float[] w = l.w().floats();
        int n = (int) l.n();
        float[] ws = new float[w.length];
        for (int i = 0; i < w.length; i++) {
          ws[i] = w[i] * s[i / n];
        }
        p.w = Tensor.ofFloats(ElementType.F32, l.w().shape(), ws);
      }
    }
  }

  /**
   * fp8 weights by {@link ErrorCompensatingRounding} on each layer's calibration inputs (layers
   * reading one value share its H). On MiniLM it removes half the weights' share of the error;
   * int8 keeps rounding to nearest, as its guard and SmoothQuant were tuned with it.
   */
  private static void roundAgainstCalibration(List<Layer> layers, Map<Layer, Plan> plans,
                                              Map<Value, List<Tensor>> seen) {
    Map<Value, List<Layer>> groups = new LinkedHashMap<>();
    layers.forEach(l -> groups.computeIfAbsent(l.x(), k -> new ArrayList<>()).add(l));
    for (var g : groups.entrySet()) {
      int k = (int) g.getValue().get(0).k();
      double[] h = ErrorCompensatingRounding.hessian(seen.get(g.getKey()), k);
      double[] u = ErrorCompensatingRounding.inverseFactor(h, k);
      for (Layer l : g.getValue()) {
        Plan p = plans.get(l);
        p.quantized.put(ElementType.F8E4M3, ErrorCompensatingRounding.round(p.w, u));
      }
    }
  }

  private static void describeActivation(Plan p, Range r, Precision target, boolean calibrated) {
    if (target == Precision.BF16) {
      p.activation = "unscaled bf16";
      return;
    }
    if (!calibrated) {
      p.activation = "dynamic per-token " + target.text() + " scales";
      return;
    }
    float amax = r.max();
    if (p.smooth != null) {
      amax = 0;
      for (int j = 0; j < r.channelMax.length; j++) {
        amax = Math.max(amax, r.channelMax[j] / p.smooth[j]);
      }
    }
    float qmax = QuantOp.maxMagnitude(target == Precision.INT8 ? ElementType.I8 : ElementType.F8E4M3);
    p.xScale = amax == 0 ? 1f : amax / qmax;
    p.activation = String.format(Locale.ROOT, "per-tensor %s scale %.4g (calibrated max %.4g, p%.2f %.4g%s)",
        target.text(), p.xScale, r.max(), PERCENTILE, r.percentile, p.smooth != null
            ? String.format(Locale.ROOT, ", smoothed max %.4g", amax) : "");
  }

  // ---- the guard ----

  /** Relative L2 error of the layer in {@code p} against its recorded f32 outputs, over all sets. */
  private static double measure(Plan plan, Precision p, List<Tensor> xs, List<Tensor> ys) {
    Module scratch = new Module("guard");
    Interpreter interp = new Interpreter(scratch);
    double err = 0;
    double ref = 0;
    for (int s = 0; s < xs.size(); s++) {
      Tensor x = xs.get(s);
      Value arg = Value.argument("x", x.type());
      Function g = new Function("layer", List.of(arg));
      FunctionBuilder b = new FunctionBuilder(g);
      Value y = emit(b, scratch, smoothed(b, arg, plan, Location.UNKNOWN), plan, p, Location.UNKNOWN);
      g.setOutputs(List.of(new Function.Output("y", y)));
      float[] got = interp.run(g, List.of(x)).get("y").floats();
      float[] want = ys.get(s).floats();
      for (int i = 0; i < want.length; i++) {
        double d = (double) got[i] - want[i];
        err += d * d;
        ref += (double) want[i] * want[i];
      }
    }
    return ref == 0 ? (err == 0 ? 0 : Double.POSITIVE_INFINITY) : Math.sqrt(err / ref);
  }

  /** The f32 layer input {@code x} divided by the layer's SmoothQuant s, if it has one. */
  private static Value smoothed(FunctionBuilder b, Value x, Plan plan, Location loc) {
    return plan.smooth == null ? x : b.add(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.MUL, x,
        b.add(new SourceOp.Constant(inverse(plan.smooth)), loc)), loc);
  }

  /**
   * How many calibration sets measure each layer's cost to the output: a run from the layer on
   * per layer per set, so one (MiniLM at seq 128: 36 runs of up to a second). The costs only
   * rank the layers; the whole model is then checked on every set.
   */
  private static final int SENSITIVITY_SETS = 1;

  /**
   * The guard's check of the whole model. When the output cosine on the calibration sets (the
   * worst output's mean cosine) is below {@code min}, each layer still in {@code target} is
   * measured alone (only it quantized, the rest f32: what it costs the output's cosine) and the
   * most costly are kept in
   * {@code fallback}, most costly first, until the whole model meets {@code min} again. The
   * costs add up nearly linearly (MiniLM fp8: the 36 single-layer costs sum to 1.03 times the
   * all-layer loss), so each round moves layers until the costs say the rest fits, then checks
   * the whole model. Returns the final output cosine.
   */
  private static double keepSensitiveLayers(OutputCheck check, List<Plan> plans, Precision target,
                                            Precision fallback, double min, Map<Value, List<Tensor>> seen) {
    double cos = check.cosine(plans, null, check.sets());
    List<Plan> candidates = new ArrayList<>(plans.stream().filter(p -> p.precision == target).toList());
    if (cos >= min || candidates.isEmpty()) {
      return cos;
    }
    double allTarget = cos;
    Map<Plan, Double> cost = new HashMap<>();
    int probeSets = Math.min(SENSITIVITY_SETS, check.sets());
    for (Plan p : candidates) {
      cost.put(p, 1 - check.cosineAlone(p, target, probeSets));
    }
    candidates.sort((a, b) -> Double.compare(cost.get(b), cost.get(a)));
    double remaining = cost.values().stream().mapToDouble(Double::doubleValue).sum();
    int next = 0;
    while (cos < min && next < candidates.size()) {
      double loss = 1 - cos; // the measured loss scales the costs still in target
      double left = remaining;
      do {
        Plan p = candidates.get(next++);
        left -= cost.get(p);
        p.rejectedError = p.error;
        p.precision = fallback;
        p.error = measure(p, fallback, seen.get(p.layer.x()), seen.get(p.layer.node().result()));
        p.why = String.format(Locale.ROOT, "kept in %s: %s here alone costs the output %.2e of cosine "
            + "(most costly %d of %d); all-%s output cosine %.6f < %.6g", fallback.text(), target.text(),
            cost.get(p), next, candidates.size(), target.text(), allTarget, min);
      } while (next < candidates.size() && loss * left / remaining > 1 - min);
      remaining = left;
      cos = check.cosine(plans, null, check.sets());
    }
    return cos;
  }

  /**
   * Runs the f32 model with some layers swapped for their quantized form (in place, undone after
   * each run) and compares its outputs with the f32 model's on the calibration sets.
   */
  private static final class OutputCheck {
    private final Function f;
    private final Module scratch = new Module("output-check"); // the model's weights and the swapped layers'
    private final Interpreter interp = new Interpreter(scratch);
    private final List<Calibrator.CalibrationSet> sets;
    private final List<Value> outputs;
    private final List<Map<Value, Tensor>> reference;
    /** The values live into some layer, which a run starting at that layer reads. */
    private final Set<Value> liveIntoLayers = new HashSet<>();
    /** Those values' f32 tensors on the first sets, recorded once. */
    private final List<Map<Value, Tensor>> state = new ArrayList<>();

    OutputCheck(Module m, List<Calibrator.CalibrationSet> sets, List<Value> outputs,
                List<Map<Value, Tensor>> reference, List<Plan> plans) {
      this.f = m.main();
      this.sets = sets;
      this.outputs = outputs;
      this.reference = reference;
      m.weights().values().forEach(scratch::addWeight);
      List<Node> body = f.body();
      for (Plan p : plans) {
        liveIntoLayers.addAll(liveInto(body.subList(body.indexOf(p.layer.node()), body.size())));
      }
    }

    int sets() {
      return sets.size();
    }

    /**
     * The lowest, over the float outputs, of the mean cosine of the output's last-axis vectors
     * against f32 over the first {@code count} sets (each output on its own: a prefill's KV cache
     * outputs have many more vectors than its logits), with {@code layers} quantized in
     * {@code precision} (null: each in its planned precision).
     */
    double cosine(List<Plan> layers, Precision precision, int count) {
      Set<Node> original = new HashSet<>(f.body());
      List<Value[]> swaps = swap(layers, precision);
      try {
        return compare(f, s -> sets.get(s).inputs(), count);
      } finally {
        undo(original, swaps);
      }
    }

    /**
     * {@link #cosine} with only {@code layer} quantized, run from that layer on (half the model on
     * average): the values live into it are the f32 model's, recorded once per set.
     */
    double cosineAlone(Plan layer, Precision precision, int count) {
      while (state.size() < count) {
        Map<Value, Tensor> values = new HashMap<>();
        interp.run(f, sets.get(state.size()).inputs(), (v, t) -> {
          if (liveIntoLayers.contains(v)) {
            values.put(v, t);
          }
        });
        state.add(values);
      }
      Set<Node> original = new HashSet<>(f.body());
      List<Value[]> swaps = swap(List.of(layer), precision);
      try {
        int start = 0;
        while (original.contains(f.body().get(start))) {
          start++; // to the swapped layer's first node
        }
        List<Node> tail = f.body().subList(start, f.body().size());
        List<Value> in = liveInto(tail);
        Function suffix = new Function(f.name(), in);
        suffix.body().addAll(tail);
        suffix.setOutputs(f.outputs());
        return compare(suffix, s -> in.stream().map(state.get(s)::get).toList(), count);
      } finally {
        undo(original, swaps);
      }
    }

    /** The function's arguments (they bind its symbols), then the other values {@code tail} reads, not defines. */
    private List<Value> liveInto(List<Node> tail) {
      Set<Value> defined = new HashSet<>();
      tail.forEach(n -> defined.addAll(n.results()));
      Set<Value> in = new LinkedHashSet<>(f.arguments());
      for (Node n : tail) {
        n.op().operands().stream().filter(v -> !defined.contains(v)).forEach(in::add);
      }
      outputs.stream().filter(v -> !defined.contains(v)).forEach(in::add);
      return List.copyOf(in);
    }

    /** Inserts each layer's quantized form before it and moves its users there; returns {f32, quantized} pairs. */
    private List<Value[]> swap(List<Plan> layers, Precision precision) {
      List<Value[]> swaps = new ArrayList<>();
      FunctionBuilder b = new FunctionBuilder(f);
      for (Plan p : layers) {
        Node node = p.layer.node();
        b.insertBefore(node);
        Value x = ((LinalgOp.MatMul) node.op()).a(); // a swapped layer's result when it reads one
        Value y = emit(b, scratch, smoothed(b, x, p, node.location()), p,
            precision == null ? p.precision : precision, node.location());
        f.replaceAllUses(node.result(), y);
        swaps.add(new Value[] {node.result(), y});
      }
      return swaps;
    }

    private void undo(Set<Node> original, List<Value[]> swaps) {
      for (int i = swaps.size() - 1; i >= 0; i--) {
        f.replaceAllUses(swaps.get(i)[1], swaps.get(i)[0]);
      }
      f.body().removeIf(node -> !original.contains(node));
    }

    private double compare(Function run, IntFunction<List<Tensor>> inputs, int count) {
      double[] sum = new double[outputs.size()];
      long[] n = new long[outputs.size()];
      for (int s = 0; s < count; s++) {
        Map<String, Tensor> got = interp.run(run, inputs.apply(s));
        int i = 0;
        for (Tensor t : got.values()) {
          Tensor want = reference.get(s).get(outputs.get(i));
          if (t.isFloat() && t.rank() > 0) {
            float[] g = t.floats();
            float[] w = want.floats();
            int d = (int) t.dim(t.rank() - 1);
            for (int at = 0; at + d <= g.length; at += d) {
              sum[i] += cosine(g, w, at, d);
              n[i]++;
            }
          }
          i++;
        }
      }
      double lowest = 1;
      for (int i = 0; i < sum.length; i++) {
        lowest = n[i] == 0 ? lowest : Math.min(lowest, sum[i] / n[i]);
      }
      return lowest;
    }

    /** 1 for two zero vectors, -1 when either has a NaN. */
    private static double cosine(float[] a, float[] b, int at, int d) {
      double dot = 0;
      double na = 0;
      double nb = 0;
      for (int i = at; i < at + d; i++) {
        dot += (double) a[i] * b[i];
        na += (double) a[i] * a[i];
        nb += (double) b[i] * b[i];
      }
      if (na == 0 && nb == 0) {
        return 1;
      }
      double c = dot / Math.sqrt(na * nb);
      return Double.isNaN(c) ? -1 : c;
    }
  }

  private static Tensor inverse(float[] s) {
    float[] inv = new float[s.length];
    for (int j = 0; j < s.length; j++) {
      inv[j] = 1f / s[j];
    }
    return Tensor.ofFloats(ElementType.F32, new long[] {s.length}, inv);
  }

  // ---- emitting the quantized layer ----

  /**
   * Appends the layer in precision {@code p} reading {@code x} (already smoothed), adding the
   * quantized weights to {@code target} under names derived from the layer, and returns y.
   */
  private static Value emit(FunctionBuilder b, Module target, Value x, Plan plan, Precision p, Location loc) {
    String base = plan.layer.name();
    if (p == Precision.F32) {
      Value w = weightRef(b, target, base + ".w", plan.w, loc);
      return b.add(new LinalgOp.MatMul(x, w), loc, base);
    }
    ElementType dtype = switch (p) {
      case BF16 -> ElementType.BF16;
      case FP8 -> ElementType.F8E4M3;
      case INT8 -> ElementType.I8;
      case F32 -> throw new IllegalStateException();
    };
    QuantizedWeight qw = plan.weight(dtype);
    Value w = weightRef(b, target, base + ".w." + dtype.text(), qw.q(), loc);
    Value wScale = qw.scale() == null ? scalar(b, 1f, loc)
        : weightRef(b, target, base + ".w_scale", qw.scale(), loc);
    Value xq;
    Value xScale;
    if (p == Precision.BF16) {
      xq = b.add(new ElementwiseOp.Cast(x, ElementType.BF16), loc, base + ".x_bf16");
      xScale = scalar(b, 1f, loc);
    } else if (Float.isNaN(plan.xScale)) {
      Node dq = b.addNode(new QuantOp.DynamicQuantize(x, dtype, "row"), loc,
          List.of(base + ".xq", base + ".x_scale"));
      xq = dq.results().get(0);
      xScale = dq.results().get(1);
    } else {
      xScale = scalar(b, plan.xScale, loc);
      Value zero = b.add(new SourceOp.Constant(Tensor.zeros(dtype)), loc);
      xq = b.add(new QuantOp.QuantizeLinear(x, xScale, zero, 1), loc, base + ".xq");
    }
    return b.add(new QuantOp.QMatMul(xq, w, xScale, wScale), loc, base);
  }

  private static Value scalar(FunctionBuilder b, float v, Location loc) {
    return b.add(new SourceOp.Constant(Tensor.scalar(ElementType.F32, v)), loc);
  }

  private static Value weightRef(FunctionBuilder b, Module target, String name, Tensor t, Location loc) {
    if (!target.weights().containsKey(name)) {
      target.addWeight(new Weight(name, t.type(), new Weight.Data.Inline(t.toBytes())));
    }
    return b.add(new SourceOp.WeightRef(name, t.type()), loc, name);
  }

  /** A weight in a narrow type, with per-output-channel scales (null for bf16: scale 1). */
  record QuantizedWeight(Tensor q, Tensor scale) {}

  /**
   * {@code scale[n] = max_k |w[k][n]| / qmax} (1 for an all-zero column), {@code q = convert(w / scale)}
   * with the chip's rounding (fp8: nearest even, saturating; i8: half to even, saturating).
   */
  static QuantizedWeight quantizeWeight(Tensor w, ElementType dtype) {
    float[] v = w.floats();
    if (dtype == ElementType.BF16) {
      return new QuantizedWeight(Tensor.ofFloats(ElementType.BF16, w.shape(), v.clone()), null);
    }
    int n = (int) w.dim(1);
    float[] scale = channelScales(v, n, dtype);
    Tensor q;
    if (dtype == ElementType.I8) {
      long[] o = new long[v.length];
      for (int i = 0; i < v.length; i++) {
        o[i] = Math.max(-128, Math.min(127, (long) Math.rint(v[i] / scale[i % n])));
      }
      q = Tensor.ofLongs(ElementType.I8, w.shape(), o);
    } else {
      float[] o = new float[v.length];
      for (int i = 0; i < v.length; i++) {
        o[i] = FloatFormats.Fp8.E4M3.round(v[i] / scale[i % n]);
      }
      q = Tensor.ofFloats(dtype, w.shape(), o);
    }
    return new QuantizedWeight(q, Tensor.ofFloats(ElementType.F32, new long[] {n}, scale));
  }

  /** {@code max_k |w[k][n]| / qmax} per output channel n of a row-major [k, n] weight (1 for an all-zero column). */
  static float[] channelScales(float[] v, int n, ElementType dtype) {
    float qmax = QuantOp.maxMagnitude(dtype);
    float[] scale = new float[n];
    for (int i = 0; i < v.length; i++) {
      scale[i % n] = Math.max(scale[i % n], Math.abs(v[i]));
    }
    for (int j = 0; j < n; j++) {
      scale[j] = scale[j] == 0 ? 1f : scale[j] / qmax;
    }
    return scale;
  }

  // ---- rewriting the module ----

  private static void rewrite(Module m, Function f, List<Layer> layers, Map<Layer, Plan> plans) {
    Set<String> oldWeights = new HashSet<>();
    layers.forEach(l -> oldWeights.add(l.weightName()));
    FunctionBuilder b = new FunctionBuilder(f);
    Map<Value, Value> smoothed = new HashMap<>();
    Map<Value, List<Layer>> groups = new LinkedHashMap<>();
    layers.forEach(l -> groups.computeIfAbsent(l.x(), k -> new ArrayList<>()).add(l));
    for (var g : groups.entrySet()) {
      Plan first = plans.get(g.getValue().get(0));
      if (first.smooth != null) {
        String how = applySmoothing(m, f, b, g.getKey(), g.getValue(), first.smooth, smoothed);
        g.getValue().forEach(l -> plans.get(l).smoothing = how);
      }
    }
    Map<Value, Value> replaced = new HashMap<>(); // a layer's old result -> its quantized one
    for (Layer l : layers) {
      Plan p = plans.get(l);
      Node node = l.node();
      b.insertBefore(node);
      Value x = smoothed.getOrDefault(l.x(), replaced.getOrDefault(l.x(), l.x()));
      Value y = emit(b, m, x, p, p.precision, node.location());
      f.replaceAllUses(node.result(), y);
      replaced.put(node.result(), y);
      f.body().remove(node);
    }
    b.insertBefore(null);
    DeadCodeEliminationPass.removeDead(f);
    m.removeUnreadWeights(oldWeights); // the f32 originals nothing reads any more
  }

  /**
   * Divides the activation {@code x} by s for the group: folded into the layer_norm or rms_norm
   * that produces x (in place when the group's layers are its only readers, else in a copy the
   * group reads), or a {@code mul} by 1/s. Returns how, for the report.
   */
  private static String applySmoothing(Module m, Function f, FunctionBuilder b, Value x, List<Layer> group,
                                       float[] s, Map<Value, Value> smoothed) {
    Node producer = x.producer();
    Op op = producer == null ? null : producer.op();
    Set<Node> groupNodes = new HashSet<>();
    group.forEach(l -> groupNodes.add(l.node()));
    boolean onlyGroup = f.users().getOrDefault(x, List.of()).stream().allMatch(groupNodes::contains)
        && f.outputs().stream().noneMatch(o -> o.value() == x);
    String name = x.name() + ".smooth";
    Op folded = null;
    if (op instanceof TransformerOp.LayerNorm ln && lastAxis(ln.axis(), x) && constant(m, ln.gamma()) != null
        && (ln.beta() == null || constant(m, ln.beta()) != null)) {
      b.insertBefore(onlyGroup ? producer : group.get(0).node());
      Value gamma = weightRef(b, m, name + ".gamma", divide(constant(m, ln.gamma()), s, 0), producer.location());
      Value beta = ln.beta() == null ? null
          : weightRef(b, m, name + ".beta", divide(constant(m, ln.beta()), s, 0), producer.location());
      folded = new TransformerOp.LayerNorm(ln.x(), gamma, beta, ln.axis(), ln.eps());
    } else if (op instanceof TransformerOp.RmsNorm rn && constant(m, rn.gamma()) != null) {
      b.insertBefore(onlyGroup ? producer : group.get(0).node());
      Value gamma = weightRef(b, m, name + ".gamma", divide(constant(m, rn.gamma()), s, (float) rn.gammaOffset()),
          producer.location());
      folded = new TransformerOp.RmsNorm(rn.x(), gamma, rn.eps(), rn.gammaOffset());
    }
    if (folded != null) {
      if (onlyGroup) {
        producer.setOp(folded);
        return "1/s folded into " + producer.op().mnemonic() + " %" + x.name();
      }
      smoothed.put(x, b.add(folded, producer.location(), name));
      return "1/s folded into a copy of " + op.mnemonic() + " %" + x.name();
    }
    b.insertBefore(group.get(0).node());
    Value inv = b.add(new SourceOp.Constant(inverse(s)), group.get(0).node().location(), name + ".inv_s");
    smoothed.put(x, b.add(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.MUL, x, inv),
        group.get(0).node().location(), name));
    return "mul by 1/s";
  }

  private static boolean lastAxis(long axis, Value x) {
    return axis == -1 || axis == x.type().rank() - 1;
  }

  private static Tensor constant(Module m, Value v) {
    WeightTensor w = weightOf(m, v);
    return w == null || w.tensor().elementType() != ElementType.F32 || w.tensor().rank() != 1 ? null : w.tensor();
  }

  /** {@code (v + offset) / s - offset}: a norm's gamma (with its offset) or beta divided by s. */
  private static Tensor divide(Tensor t, float[] s, float offset) {
    float[] v = t.floats();
    float[] o = new float[v.length];
    for (int j = 0; j < v.length; j++) {
      o[j] = (v[j] + offset) / s[j] - offset;
    }
    return Tensor.ofFloats(ElementType.F32, t.shape(), o);
  }

  /** For tests: the type a quantized weight gets. */
  static TensorType weightType(Tensor w, ElementType dtype) {
    return w.type().withElementType(dtype);
  }
}
