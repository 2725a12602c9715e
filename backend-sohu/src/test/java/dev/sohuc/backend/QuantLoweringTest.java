package dev.sohuc.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.emu.HostTensor;
import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.op.TransformerOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import dev.sohuc.passes.quant.QuantMode;
import dev.sohuc.passes.quant.QuantOptions;
import dev.sohuc.passes.quant.Quantizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The quantized ops compiled and emulated against the reference interpreter: what the quantizer
 * emits for every mode (casts, dynamic_quantize, quantize_linear, qmatmul with per-row,
 * per-tensor and per-channel scales), and quantize/dequantize/cast forms written by hand. The
 * interpreter models the chip's rounding rules, so the quantized ops agree exactly (0 error
 * where their input comes straight from the model input: casts, qdq, the f8e5m2 qmatmul). With
 * dynamic per-token scales the f32 layer_norm/gelu before them (a few ulp from the interpreter)
 * move each row's scale by an ulp, which shows as up to ~5e-7 relative; the tolerance is 1e-6.
 */
class QuantLoweringTest {
  static final long SEED = 9090L;
  static final double TOL = 1e-6;
  static final int D = 64;
  static final int HID = 200;  // one full 128-column panel and a 72-column tail
  static final int OUT = 48;

  @TempDir Path tmp;

  /** A module whose main takes x {@code [rows..., k]} f32, with a builder at its end. */
  record Graph(Module module, Function main, Value x, FunctionBuilder b) {
    static Graph of(String name, List<Dim> rows, long k) {
      Module m = new Module(name);
      List<Dim> dims = new ArrayList<>(rows);
      dims.add(Dim.of(k));
      Value x = Value.argument("x", new TensorType(dims, ElementType.F32));
      Function f = new Function("main", List.of(x));
      m.functions().add(f);
      return new Graph(m, f, x, new FunctionBuilder(f));
    }
  }

  /** x [?s, 64] -> layer_norm -> fc1 [64 x 200] -> gelu -> fc2 [200 x 48], seeded weights. */
  static Module mlp() {
    Random rnd = new Random(SEED);
    Graph graph = Graph.of("qmlp", List.of(Dim.symbol("s")), D);
    Module m = graph.module();
    Value x = graph.x();
    Function f = graph.main();
    FunctionBuilder b = graph.b();
    Location loc = new Location("qmlp");
    Value gamma = weight(m, b, "ln.gamma", gaussian(rnd, new long[] {D}, 0.1f, 1f));
    Value beta = weight(m, b, "ln.beta", gaussian(rnd, new long[] {D}, 0.1f, 0f));
    Value h = b.add(new TransformerOp.LayerNorm(x, gamma, beta, -1, 1e-5), loc, "ln");
    Value w1 = weight(m, b, "fc1.w", gaussian(rnd, new long[] {D, HID}, 0.125f, 0f));
    Value y1 = b.add(new LinalgOp.MatMul(h, w1), loc, "fc1");
    Value g = b.add(new TransformerOp.Gelu(y1, false), loc, "act");
    Value w2 = weight(m, b, "fc2.w", gaussian(rnd, new long[] {HID, OUT}, 0.07f, 0f));
    Value y2 = b.add(new LinalgOp.MatMul(g, w2), loc, "fc2");
    f.setOutputs(List.of(new Function.Output("y", y2)));
    return m;
  }

  static Value weight(Module m, FunctionBuilder b, String name, Tensor t) {
    m.addWeight(new Weight(name, t.type(), new Weight.Data.Inline(t.toBytes())));
    return b.add(new SourceOp.WeightRef(name, t.type()), Location.UNKNOWN, name);
  }

  static Tensor gaussian(Random rnd, long[] shape, float sd, float mean) {
    float[] v = new float[Tensor.checkedSize(shape)];
    for (int i = 0; i < v.length; i++) {
      v[i] = mean + sd * (float) rnd.nextGaussian();
    }
    return Tensor.ofFloats(ElementType.F32, shape, v);
  }

  /** Calibration folders whose input_0.pb the reader answers from memory. */
  QuantOptions calibrated(QuantMode mode) {
    Map<Path, Tensor> files = new HashMap<>();
    List<Path> dirs = new ArrayList<>();
    Random rnd = new Random(SEED + 1);
    try {
      for (int s = 0; s < 3; s++) {
        Path dir = tmp.resolve(mode.flag() + "_calib_" + s);
        Files.createDirectories(dir);
        Path file = dir.resolve("input_0.pb");
        Files.write(file, new byte[0]);
        files.put(file, EndToEndHarness.randomF32(rnd, 2.0, 17, D));
        dirs.add(dir);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    // the lowering of every layer in the mode is under test: no output bound moves one to bf16
    return QuantOptions.of(mode).withCalibration(dirs, files::get).withMinOutputCosine(-1);
  }

  /** Compiles the quantized module, checks s = 5, 130 and 300 rows; returns the compiled form. */
  static EndToEndHarness.Compiled check(String label, Supplier<Module> factory) {
    return check(label, factory, TOL);
  }

  /**
   * A bf16 cast right after an f32 norm: the norm's last ulp (the emulator's and the
   * interpreter's differ there) can flip an element's bf16 rounding, 2^-8 of it, which moves a
   * product of 64 terms by up to ~2e-4 relative; the other elements stay exact.
   */
  static final double NORM_THEN_BF16_TOL = 1e-3;

  /**
   * A bf16 cast right after the SwiGLU's f32 silu: its last ulp differs between the emulator and
   * the interpreter as a norm's does, fused into the down projection or not, with the same
   * effect on the products.
   */
  static final double SILU_THEN_BF16_TOL = NORM_THEN_BF16_TOL;

  static EndToEndHarness.Compiled check(String label, Supplier<Module> factory, double tol) {
    EndToEndHarness.Compiled c = EndToEndHarness.compile(factory,
        BackendOptions.defaults().withBound("s", 300));
    for (long s : new long[] {5, 130, 300}) {
      Random r = new Random(SEED + s);
      System.out.println(label + " seed " + (SEED + s) + " s=" + s);
      EndToEndHarness.Result res = c.check(List.of(EndToEndHarness.randomF32(r, 2.0, s, D)), tol,
          label + " s=" + s);
      assertTrue(res.maxError() <= tol);
    }
    return c;
  }

  static Supplier<Module> quantized(QuantOptions o) {
    return () -> {
      Module m = mlp();
      Quantizer.quantize(m, o);
      return m;
    };
  }

  /**
   * {@code y = x @ w}: x {@code [rows..., k]} f32, w {@code [k, n]} seeded Gaussian weights of
   * deviation {@code sd}; the module is named {@code name}.
   */
  static Module linear(String name, List<Dim> rows, long k, long n, float sd) {
    Random rnd = new Random(SEED);
    Graph graph = Graph.of(name, rows, k);
    Module m = graph.module();
    Value x = graph.x();
    Function f = graph.main();
    FunctionBuilder b = graph.b();
    Value w = weight(m, b, "w", gaussian(rnd, new long[] {k, n}, sd, 0f));
    Value y = b.add(new LinalgOp.MatMul(x, w), new Location(name), "y");
    f.setOutputs(List.of(new Function.Output("y", y)));
    return m;
  }

  /** {@link #linear} quantized in {@code mode}. */
  static Supplier<Module> quantizedLinear(String name, List<Dim> rows, long k, long n, float sd,
      QuantMode mode) {
    return () -> {
      Module m = linear(name, rows, k, n, sd);
      Quantizer.quantize(m, QuantOptions.of(mode));
      return m;
    };
  }

  static long count(Module m, Class<?> op) {
    return m.main().body().stream().map(Node::op).filter(op::isInstance).count();
  }

  @Test
  void bf16CastsAndQmatmul() {
    Module m = quantized(QuantOptions.of(QuantMode.BF16)).get();
    assertEquals(2, count(m, QuantOp.QMatMul.class));
    check("bf16", quantized(QuantOptions.of(QuantMode.BF16)));
  }

  /** K above mma's 13-bit immediate (Llama-3-70B's 8192): the reduction length in a register. */
  @Test
  void bf16QmatmulWithKAbove8191() {
    long k = 8200;
    Supplier<Module> factory = quantizedLinear("bigk", List.of(Dim.symbol("s")), k, 24, 0.01f,
        QuantMode.BF16);
    assertEquals(1, count(factory.get(), QuantOp.QMatMul.class));
    EndToEndHarness.Compiled c = EndToEndHarness.compile(factory,
        BackendOptions.defaults().withBound("s", 8));
    Random r = new Random(SEED + 7);
    EndToEndHarness.Result res = c.check(List.of(EndToEndHarness.randomF32(r, 2.0, 5, k)), TOL,
        "bf16 K=8200");
    assertTrue(res.maxError() <= TOL);
  }

  @Test
  void fp8DynamicPerTokenScales() {
    Module m = quantized(QuantOptions.of(QuantMode.FP8)).get();
    assertEquals(2, count(m, QuantOp.DynamicQuantize.class));
    assertLoweredInsideQmatmul(check("fp8 dynamic", quantized(QuantOptions.of(QuantMode.FP8))),
        "dynamic_quantize");
  }

  /**
   * fp8 qmatmul with dynamic per-row x fused in, full weight panels and a tail, and three
   * symbols holding registers (as a served decoder's batch, seq and past length do): the
   * lowering used to run out of scalar registers at the next panel's prefetch (the bench's
   * "out of scalar registers while lowering qmatmul" on tiny-llama, llama-3-8b and 70B).
   */
  @Test
  void fp8DynamicQmatmulWithThreeSymbols() {
    long k = 64;
    long n = 300;
    Supplier<Module> factory = quantizedLinear("fp8sym", List.of(Dim.symbol("a"),
        Dim.symbol("b"), Dim.symbol("c")), k, n, 0.1f, QuantMode.FP8);
    assertEquals(1, count(factory.get(), QuantOp.DynamicQuantize.class));
    EndToEndHarness.Compiled c = EndToEndHarness.compile(factory,
        BackendOptions.defaults().withBound("a", 2).withBound("b", 3).withBound("c", 40));
    assertLoweredInsideQmatmul(c, "dynamic_quantize");
    Random r = new Random(SEED + 11);
    EndToEndHarness.Result res = c.check(List.of(EndToEndHarness.randomF32(r, 2.0, 2, 3, 37,
        k)), TOL, "fp8 three symbols");
    assertTrue(res.maxError() <= TOL);
  }

  /**
   * fp8 dynamic qmatmul on the resident-x ring: 9 row tiles (one group, the last tile 76 rows,
   * so per-row scales are read from the group's first row), 9 full weight panels and a tail
   * (10 groups: the ring of 4 wraps), against the interpreter.
   */
  @Test
  void fp8DynamicQmatmulWrapsTheRingOfTileGroups() {
    long k = 64;
    long n = 9 * 128 + 40;
    Supplier<Module> factory = quantizedLinear("fp8ring", List.of(Dim.symbol("s")), k, n, 0.1f,
        QuantMode.FP8);
    EndToEndHarness.Compiled c = EndToEndHarness.compile(factory,
        BackendOptions.defaults().withBound("s", 1100));
    assertLoweredInsideQmatmul(c, "dynamic_quantize");
    for (long s : new long[] {1100, 130}) {
      Random r = new Random(SEED + s);
      EndToEndHarness.Result res = c.check(List.of(EndToEndHarness.randomF32(r, 2.0, s, k)), TOL,
          "fp8 ring s=" + s);
      assertTrue(res.maxError() <= TOL);
    }
  }

  /**
   * q, k and v style siblings: three linears of one normalized activation. The first qmatmul
   * converts x into SRAM and the other two find it there (no conversion instructions of their
   * own: no {@code vred} of the per-row scales, no {@code cvt} from f32 into the operand type).
   * After an rms_norm in bf16, the norm itself casts each tile it makes into that SRAM, and q
   * converts nothing either.
   */
  @Test
  void siblingQmatmulsShareOneConversion() {
    for (QuantMode mode : new QuantMode[] {QuantMode.BF16, QuantMode.FP8}) {
      for (boolean rms : new boolean[] {false, true}) {
        Supplier<Module> factory = () -> {
          Random rnd = new Random(SEED);
          Graph graph = Graph.of("siblings", List.of(Dim.symbol("s")), D);
          Module m = graph.module();
          Value x = graph.x();
          Function f = graph.main();
          FunctionBuilder b = graph.b();
          Location loc = new Location("attn");
          Value gamma = weight(m, b, "ln.gamma", gaussian(rnd, new long[] {D}, 0.1f, 1f));
          Value beta = weight(m, b, "ln.beta", gaussian(rnd, new long[] {D}, 0.1f, 0f));
          List<Function.Output> outs = new ArrayList<>();
          // rms_norm after a residual add (of x and x * x: single roundings, as the
          // interpreter's), fused into its stream: with the casts into the resident x the
          // only readers of the norm, only the sum is stored
          Value in = x;
          if (rms) {
            Value sq = b.add(new dev.sohuc.ir.op.ElementwiseOp.Binary(
                dev.sohuc.ir.op.ElementwiseOp.BinaryKind.MUL, x, x), loc, "sq");
            in = b.add(new dev.sohuc.ir.op.ElementwiseOp.Binary(
                dev.sohuc.ir.op.ElementwiseOp.BinaryKind.ADD, x, sq), loc, "sum");
            outs.add(new Function.Output("sum", in));
          }
          Value h = b.add(rms ? new TransformerOp.RmsNorm(in, gamma, 1e-5, 0.0)
              : new TransformerOp.LayerNorm(x, gamma, beta, -1, 1e-5), loc, "ln");
          for (String name : new String[] {"q", "k", "v"}) {
            long n = name.equals("q") ? HID : OUT;
            Value w = weight(m, b, name + ".w", gaussian(rnd, new long[] {D, n}, 0.125f, 0f));
            outs.add(new Function.Output(name, b.add(new LinalgOp.MatMul(h, w), loc, name)));
          }
          f.setOutputs(outs);
          Quantizer.quantize(m, QuantOptions.of(mode).withMinOutputCosine(-1));
          return m;
        };
        String label = mode + (rms ? " rms_norm" : " layer_norm") + " siblings";
        EndToEndHarness.Compiled c = check(label, factory,
            rms && mode == QuantMode.BF16 ? NORM_THEN_BF16_TOL : TOL);
        Map<String, List<Insn>> byOp = new HashMap<>();
        for (var d : c.program.debug()) {
          // the quantized linear of %k is %k_1
          byOp.computeIfAbsent(d.irOp().replaceAll("_1$", ""), k -> new ArrayList<>())
              .add(InsnCodec.decode(c.program.code().get(d.pc())));
        }
        assertLoweredInsideQmatmul(c, "cast", "dynamic_quantize");
        // x's conversion: a cvt from f32, the abs-max of a dynamic scale, or a norm writing
        // bf16 itself
        java.util.function.Predicate<Insn> converts = i -> i instanceof Insn.Vred
            || i instanceof Insn.Cvt cv && cv.srcDtype() == DType.F32 && cv.dstDtype() != DType.F32
            || i instanceof Insn.Rmsnorm rn && rn.outBf16();
        for (String reused : new String[] {"qmatmul %k", "qmatmul %v"}) {
          List<Insn> insns = byOp.get(reused);
          assertTrue(insns != null && insns.stream().anyMatch(i -> i instanceof Insn.Mma),
              label + ": " + byOp.keySet());
          assertTrue(insns.stream().noneMatch(converts), label + ": " + reused
              + " converts x again");
        }
        boolean normConverts = rms && mode == QuantMode.BF16;
        String norm = (rms ? "rms_norm" : "layer_norm") + " %ln";
        assertEquals(normConverts, byOp.get(norm).stream().anyMatch(converts), label + ": norm");
        assertEquals(!normConverts, byOp.get("qmatmul %q").stream().anyMatch(converts),
            label + ": q");
      }
    }
  }

  /**
   * A gated MLP: the down projection's conversion stream reads the gate and up rows and applies
   * the SwiGLU's vglu to each tile itself, so the SwiGLU has no code of its own and its
   * activation never goes to HBM; the numbers are the unfused ones.
   */
  @Test
  void downProjectionAppliesTheSwiGluInItsConversion() {
    for (QuantMode mode : new QuantMode[] {QuantMode.BF16, QuantMode.FP8, QuantMode.INT8}) {
      EndToEndHarness.Compiled c = check(mode + " swiglu mlp", gatedMlp(HID, mode),
          mode == QuantMode.BF16 ? SILU_THEN_BF16_TOL : TOL);
      assertLoweredInsideQmatmul(c, "swiglu");
      assertTrue(c.program.code().stream().map(InsnCodec::decode)
          .anyMatch(i -> i instanceof Insn.Vglu), mode + ": no vglu");
    }
  }

  /** x -> down(swiglu(gate(x), up(x))), the projections {@code hid} wide, quantized. */
  static Supplier<Module> gatedMlp(int hid, QuantMode mode) {
    return gatedMlp(hid, mode, false);
  }

  /** {@link #gatedMlp}, or with {@code geglu} down(gelu_tanh(gate(x)) * up(x)) (Gemma's). */
  static Supplier<Module> gatedMlp(int hid, QuantMode mode, boolean geglu) {
    return () -> {
      Random rnd = new Random(SEED);
      Graph graph = Graph.of("mlp", List.of(Dim.symbol("s")), D);
      Module m = graph.module();
      Value x = graph.x();
      Function f = graph.main();
      FunctionBuilder b = graph.b();
      Location loc = new Location("mlp");
      Value gate = b.add(new LinalgOp.MatMul(x, weight(m, b, "gate.w",
          gaussian(rnd, new long[] {D, hid}, 0.125f, 0f))), loc, "gate");
      Value up = b.add(new LinalgOp.MatMul(x, weight(m, b, "up.w",
          gaussian(rnd, new long[] {D, hid}, 0.125f, 0f))), loc, "up");
      Value act = geglu ? b.add(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.MUL,
          b.add(new TransformerOp.Gelu(gate, true), loc, "gelu"), up), loc, "act")
          : b.add(new TransformerOp.SwiGlu(gate, up), loc, "act");
      Value down = b.add(new LinalgOp.MatMul(act, weight(m, b, "down.w",
          gaussian(rnd, new long[] {hid, OUT}, 0.07f, 0f))), loc, "down");
      f.setOutputs(List.of(new Function.Output("down", down)));
      Quantizer.quantize(m, QuantOptions.of(mode).withMinOutputCosine(-1));
      return m;
    };
  }

  /**
   * x -> down(swiglu(split(gate_up(x)))): one projection of both weights whose result a split
   * cuts into the gate and the up halves (Phi-3's gate_up_proj), {@code hid} wide each.
   */
  static Supplier<Module> splitGatedMlp(int hid, QuantMode mode) {
    return () -> {
      Random rnd = new Random(SEED);
      Graph graph = Graph.of("mlp", List.of(Dim.symbol("s")), D);
      Module m = graph.module();
      FunctionBuilder b = graph.b();
      Location loc = new Location("mlp");
      Value both = b.add(new LinalgOp.MatMul(graph.x(), weight(m, b, "gate_up.w",
          gaussian(rnd, new long[] {D, 2L * hid}, 0.125f, 0f))), loc, "gate_up");
      Node halves = b.addNode(new DataOp.Split(both, -1, List.of(Dim.of(hid), Dim.of(hid))),
          loc, List.of("gate", "up"));
      Value act = b.add(new TransformerOp.SwiGlu(halves.results().get(0),
          halves.results().get(1)), loc, "act");
      Value down = b.add(new LinalgOp.MatMul(act, weight(m, b, "down.w",
          gaussian(rnd, new long[] {hid, OUT}, 0.07f, 0f))), loc, "down");
      graph.main().setOutputs(List.of(new Function.Output("down", down)));
      Quantizer.quantize(m, QuantOptions.of(mode).withMinOutputCosine(-1));
      return m;
    };
  }

  /**
   * Gate and up projections of whole 128-column panels (two weights, or the two halves of one,
   * split after it): one loop loads the gate's panel and the up's of the same columns together
   * (their per-channel fp8 and int8 w scales interleaved the same way) and writes the unit's
   * result itself (a SwiGLU, or a GeGLU's gelu then mul), in bf16 when a cast to bf16 is its
   * only reader. The up projection, the split, the unit and that cast have no code of their
   * own, and the
   * outputs are bit for bit those of the ops lowered one by one (fusions off), over row counts
   * that wrap the ring of tile groups.
   */
  @Test
  void gateAndUpRunAsOnePairedQmatmul() {
    for (QuantMode mode : new QuantMode[] {QuantMode.BF16, QuantMode.FP8, QuantMode.INT8}) {
      gateAndUpRunAsOnePairedQmatmul(mode + " swiglu", gatedMlp(384, mode));
    }
    for (QuantMode mode : new QuantMode[] {QuantMode.BF16, QuantMode.FP8}) {
      gateAndUpRunAsOnePairedQmatmul(mode + " geglu", gatedMlp(384, mode, true));
      gateAndUpRunAsOnePairedQmatmul(mode + " gate_up", splitGatedMlp(384, mode));
    }
    // one w scale per weight (as a QDQ import may have them): accglu takes per-row and
    // per-column scales only, so the pair reads out by accrd/accdq, vglu and cvt
    String label = "INT8 per-tensor w scales";
    Supplier<Module> perTensor = perTensorWeightScales(gatedMlp(384, QuantMode.INT8));
    gateAndUpRunAsOnePairedQmatmul(label, perTensor);
    List<Insn> code = check(label, perTensor, TOL).program.code().stream()
        .map(InsnCodec::decode).toList();
    assertTrue(code.stream().anyMatch(i -> i instanceof Insn.Vglu)
        && code.stream().noneMatch(i -> i instanceof Insn.Accglu), label);
  }

  /** {@code factory}'s module with its gate and up qmatmuls' w scales one scalar each. */
  private static Supplier<Module> perTensorWeightScales(Supplier<Module> factory) {
    return () -> {
      Module m = factory.get();
      Function f = m.main();
      for (Node n : List.copyOf(f.body())) {
        if (n.op() instanceof QuantOp.QMatMul q && !n.result().name().startsWith("down")) {
          FunctionBuilder b = new FunctionBuilder(f);
          b.insertBefore(n);
          Value scale = b.add(new SourceOp.Constant(Tensor.scalar(ElementType.F32, 0.004)),
              n.location(), n.result().name() + ".w_scale");
          Value y = b.add(new QuantOp.QMatMul(q.x(), q.w(), q.xScale(), scale), n.location(),
              n.result().name() + ".per_tensor");
          f.replaceAllUses(n.result(), y);
          f.body().remove(n);
        }
      }
      return m;
    };
  }

  /** {@code factory}'s program, ?s bounded at {@code s}, with the ops lowered apart. */
  private static EndToEndHarness.Compiled compiledApart(Supplier<Module> factory, long s) {
    System.setProperty(QuantLowering.FUSE_PROPERTY, "false");
    try {
      return EndToEndHarness.compile(factory, BackendOptions.defaults().withBound("s", s));
    } finally {
      System.clearProperty(QuantLowering.FUSE_PROPERTY);
    }
  }

  private void gateAndUpRunAsOnePairedQmatmul(String label, Supplier<Module> factory) {
    EndToEndHarness.Compiled paired = check(label + " gated pair", factory,
        label.startsWith("BF16") ? SILU_THEN_BF16_TOL : TOL);
    assertLoweredInsideQmatmul(paired, "swiglu", "cast", "gelu", "mul", "split");
    assertTrue(paired.program.debug().stream()
        .noneMatch(d -> d.irOp().startsWith("qmatmul %up")), label + ": up lowered on its own");
    EndToEndHarness.Compiled apart = compiledApart(factory, 1100);
    EndToEndHarness.Compiled big = EndToEndHarness.compile(factory,
        BackendOptions.defaults().withBound("s", 1100));
    for (long s : new long[] {3, 1100}) {
      Map<String, HostTensor> in = Map.of(factory.get().main().arguments().get(0).name(),
          EndToEndHarness.toHost(EndToEndHarness.randomF32(new Random(SEED + s), 2.0, s, D)));
      byte[] want = run(apart, in).outputs().values().iterator().next().data();
      byte[] got = run(big, in).outputs().values().iterator().next().data();
      assertArrayEquals(want, got, label + " s=" + s);
    }
  }

  /**
   * The quantizer converts x once per projection; unless a later pass merges them, the up reads
   * its own conversion of the norm's output (a decode program's gate and up). The pair still
   * forms, converts x once, as the gate's, and gives the numbers of the ops lowered apart.
   */
  @Test
  void gateAndUpWithTheirOwnConversionsOfXStillPair() {
    for (QuantMode mode : new QuantMode[] {QuantMode.BF16, QuantMode.FP8}) {
      Supplier<Module> factory = gatedMlp(256, mode);
      Module m = factory.get();
      new PassManager(PassPipelines.defaultPipeline()).run(m);
      Function f = m.main();
      Node up = f.body().stream().filter(n -> n.op() instanceof QuantOp.QMatMul
          && n.result().name().startsWith("up")).findFirst().orElseThrow();
      QuantOp.QMatMul q = (QuantOp.QMatMul) up.op();
      Node conversion = q.x().producer();
      FunctionBuilder b = new FunctionBuilder(f).insertBefore(up);
      Node own = b.addNode(conversion.op(), up.location(),
          conversion.results().stream().map(r -> r.name() + ".up").toList());
      int scale = conversion.results().indexOf(q.xScale());
      Value upAgain = b.add(new QuantOp.QMatMul(own.results().get(0), q.w(),
          scale < 0 ? q.xScale() : own.results().get(scale), q.wScale()), up.location(), "up");
      f.replaceAllUses(up.result(), upAgain);
      f.body().remove(up);
      assertEquals(2, f.body().stream().filter(n -> n.op().equals(conversion.op())).count());
      SohuProgram paired = SohuBackend.compile(m, BackendOptions.defaults().withBound("s", 300))
          .program();
      assertTrue(paired.debug().stream().noneMatch(d -> d.irOp().startsWith("qmatmul %up")),
          mode + ": up lowered on its own");
      EndToEndHarness.Compiled apart = compiledApart(factory, 300);
      Map<String, HostTensor> in = Map.of(f.arguments().get(0).name(), EndToEndHarness.toHost(
          EndToEndHarness.randomF32(new Random(SEED + 300), 2.0, 300, D)));
      assertArrayEquals(run(apart.program, in).outputs().values().iterator().next().data(),
          run(paired, in).outputs().values().iterator().next().data(), mode.toString());
    }
  }

  private static dev.sohuc.emu.FunctionalResult run(EndToEndHarness.Compiled c,
      Map<String, HostTensor> in) {
    return run(c.program, in);
  }

  private static dev.sohuc.emu.FunctionalResult run(SohuProgram program,
      Map<String, HostTensor> in) {
    return new dev.sohuc.emu.Emulator(program, dev.sohuc.emu.MachineDescription.defaultTarget(),
        dev.sohuc.emu.Options.defaults()).runFunctional(in, Map.of());
  }

  /**
   * A bf16 qmatmul whose x is larger than the SRAM at its bound (a 6 MiB target, ?s up to 8192,
   * so x's cast is not fused either): x resident 512 rows at a time, the weights streamed once
   * per block. s = 1300 is two full blocks and a partial one; the qmatmul's own HBM traffic is
   * x once, the weights three times and y once.
   */
  @Test
  void bf16QmatmulWithXBiggerThanSramGoesInBlocksOfRows() throws IOException {
    Path target = tmp.resolve("small-sram.json");
    Files.writeString(target, "{\"name\": \"small-sram\", \"sram\": "
        + "{\"capacity\": {\"value\": 6291456}}}");
    long k = 512;
    long n = 300;
    Supplier<Module> factory = quantizedLinear("blocks", List.of(Dim.symbol("s")), k, n, 0.05f,
        QuantMode.BF16);
    EndToEndHarness.Compiled c = EndToEndHarness.compile(factory,
        BackendOptions.defaults().withTarget(target).withBound("s", 8192));
    for (long s : new long[] {1300, 100}) {
      Random r = new Random(SEED + s);
      EndToEndHarness.Result res = c.check(List.of(EndToEndHarness.randomF32(r, 2.0, s, k)), TOL,
          "bf16 blocks s=" + s);
      assertTrue(res.maxError() <= TOL);
    }
    var timing = new dev.sohuc.emu.Emulator(c.program,
        dev.sohuc.emu.MachineDescription.defaultTarget(), dev.sohuc.emu.Options.defaults())
        .runTiming(Map.of("s", 1300L));
    long qmatmulBytes = timing.ops().stream().filter(o -> o.op().startsWith("qmatmul "))
        .mapToLong(dev.sohuc.emu.OpTiming::hbmBytes).sum();
    assertEquals(1300 * k * 2 + 3 * k * n * 2 + 1300 * n * 4, qmatmulBytes);
  }

  /**
   * Targets without room for the ring of output tiles (ACC of 512 Ki words, or 3 MiB of SRAM):
   * a qmatmul whose x conversion is fused runs the row stream after it, whose mmas wait LOAD as
   * the conversion's VPU work does. Issued while the conversion ran, an mma could take one of
   * its loads' tokens and the program deadlocked once x spanned three tiles; the stream now
   * starts after the conversion. A gated MLP there lowers its gate and up apart (no pair without
   * the ring), with the gate's w scales loaded alone.
   */
  @Test
  void qmatmulsWithoutTheRingRunPastAFusedConversion() throws IOException {
    for (String room : List.of("\"acc\": {\"capacity\": {\"value\": 524288}}",
        "\"sram\": {\"capacity\": {\"value\": 3145728}}")) {
      Path target = tmp.resolve("no-ring.json");
      Files.writeString(target, "{\"name\": \"no-ring\", " + room + "}");
      for (QuantMode mode : new QuantMode[] {QuantMode.BF16, QuantMode.FP8}) {
        double tol = mode == QuantMode.BF16 ? SILU_THEN_BF16_TOL : TOL;
        for (Supplier<Module> factory : List.of(quantizedLinear("lin", List.of(Dim.symbol("s")),
            D, 384, 0.1f, mode), gatedMlp(384, mode))) {
          EndToEndHarness.Compiled c = EndToEndHarness.compile(factory,
              BackendOptions.defaults().withTarget(target).withBound("s", 300));
          boolean gated = c.program.debug().stream().anyMatch(d -> d.irOp().startsWith("swiglu"));
          assertEquals(gated, c.program.debug().stream()
              .anyMatch(d -> d.irOp().startsWith("qmatmul %up")), "gate and up apart");
          for (long s : new long[] {5, 300}) {
            EndToEndHarness.Result res = c.check(List.of(EndToEndHarness.randomF32(
                new Random(SEED + s), 2.0, s, D)), tol, mode + " no ring s=" + s);
            assertTrue(res.maxError() <= tol);
          }
        }
      }
    }
  }

  /** No code is attributed to these ops: each was fused into the qmatmul that reads it. */
  static void assertLoweredInsideQmatmul(EndToEndHarness.Compiled c, String... mnemonics) {
    for (var d : c.program.debug()) {
      for (String m : mnemonics) {
        assertTrue(!d.irOp().startsWith(m + " "), () -> d.irOp() + " lowered on its own");
      }
    }
  }

  @Test
  void fp8CalibratedPerTensorScales() {
    QuantOptions o = calibrated(QuantMode.FP8);
    assertEquals(2, count(quantized(o).get(), QuantOp.QuantizeLinear.class));
    check("fp8 calibrated", quantized(o));
  }

  @Test
  void int8DynamicPerTokenScales() {
    check("int8 dynamic", quantized(QuantOptions.of(QuantMode.INT8)));
  }

  @Test
  void int8CalibratedWithSmoothQuant() {
    QuantOptions o = calibrated(QuantMode.INT8);
    assertEquals(2, count(quantized(o).get(), QuantOp.QuantizeLinear.class));
    assertTrue(quantized(o).get().main().body().stream().anyMatch(n -> n.op()
        instanceof dev.sohuc.ir.op.ElementwiseOp.Binary b
        && b.kind() == dev.sohuc.ir.op.ElementwiseOp.BinaryKind.MUL), "no smoothing multiply");
    // the smoothing multiply and quantize_linear run inside each qmatmul's conversion stream
    assertLoweredInsideQmatmul(check("int8 calibrated", quantized(o)), "quantize_linear", "mul");
  }

  @Test
  void quantizedWeightsShrinkTheConstantsImage() {
    long f32 = constantsBytes(EndToEndHarness.compile(QuantLoweringTest::mlp, BackendOptions.defaults()));
    long bf16 = constantsBytes(EndToEndHarness.compile(quantized(QuantOptions.of(QuantMode.BF16)),
        BackendOptions.defaults()));
    long fp8 = constantsBytes(EndToEndHarness.compile(quantized(QuantOptions.of(QuantMode.FP8)),
        BackendOptions.defaults()));
    long weights = 4L * (D * HID + HID * OUT);
    System.out.printf("constants: f32 %d, bf16 %d, fp8 %d bytes (f32 matmul weights %d)%n", f32,
        bf16, fp8, weights);
    // the matmul weights are most of the image: halved in bf16, quartered (plus scales) in fp8
    assertTrue(bf16 <= f32 - weights / 2 + 1024, "bf16 " + bf16 + " vs f32 " + f32);
    assertTrue(fp8 <= f32 - weights * 3 / 4 + 4 * (HID + OUT) + 2048, "fp8 " + fp8);
  }

  static long constantsBytes(EndToEndHarness.Compiled c) {
    return c.program.constants() == null ? 0 : c.program.constants().size();
  }

  // ---- hand-written forms ----------------------------------------------------------------

  static Supplier<Module> ir(String name, String func) {
    String text = "module @" + name + " {\n" + func + "\n}\n";
    return () -> IrParser.parse(text, name + ".ir");
  }

  static void checkIr(String name, String func) {
    EndToEndHarness.Compiled c = EndToEndHarness.compile(ir(name, func),
        BackendOptions.defaults().withBound("s", 300));
    for (long s : new long[] {3, 200}) {
      Random r = new Random(SEED + s);
      System.out.println(name + " seed " + (SEED + s) + " s=" + s);
      c.check(List.of(EndToEndHarness.randomF32(r, 3.0, s, 40)), TOL, name + " s=" + s);
    }
  }

  @Test
  void castsBetweenFloatTypes() {
    checkIr("casts", """
        func @main(%x: tensor<?s x 40 x f32>) -> ("a": tensor<?s x 40 x f32>, "b": tensor<?s x 40 x f32>, "c": tensor<?s x 40 x f32>, "d": tensor<?s x 40 x f32>) {
          %xb = cast %x {to = bf16} : tensor<?s x 40 x bf16>
          %a = cast %xb {to = f32} : tensor<?s x 40 x f32>
          %xh = cast %x {to = f16} : tensor<?s x 40 x f16>
          %b = cast %xh {to = f32} : tensor<?s x 40 x f32>
          %x8 = cast %x {to = f8e4m3} : tensor<?s x 40 x f8e4m3>
          %c = cast %x8 {to = f32} : tensor<?s x 40 x f32>
          %x5 = cast %xb {to = f8e5m2} : tensor<?s x 40 x f8e5m2>
          %d = cast %x5 {to = f32} : tensor<?s x 40 x f32>
          return %a, %b, %c, %d
        }""");
  }

  @Test
  void quantizeDequantizeZeroPointZero() {
    float[] ch = new float[40];
    for (int j = 0; j < ch.length; j++) {
      ch[j] = 0.01f + 0.002f * j;
    }
    StringBuilder vec = new StringBuilder();
    for (float v : ch) {
      vec.append(vec.length() == 0 ? "" : ", ").append(v);
    }
    checkIr("qdq", """
        func @main(%x: tensor<?s x 40 x f32>) -> ("a": tensor<?s x 40 x f32>, "b": tensor<?s x 40 x f32>, "c": tensor<?s x 40 x f32>, "d": tensor<?s x 40 x f32>) {
          %s = constant {value = dense<0.0235> : tensor<f32>} : tensor<f32>
          %sc = constant {value = dense<[VEC]> : tensor<40 x f32>} : tensor<40 x f32>
          %z8 = constant {value = dense<0> : tensor<i8>} : tensor<i8>
          %zc = constant {value = dense<[ZEROS]> : tensor<40 x i8>} : tensor<40 x i8>
          %ze4 = constant {value = dense<0.0> : tensor<f8e4m3>} : tensor<f8e4m3>
          %ze5 = constant {value = dense<[FZEROS]> : tensor<40 x f8e5m2>} : tensor<40 x f8e5m2>
          %q = quantize_linear %x, %s, %z8 {axis = 1} : tensor<?s x 40 x i8>
          %a = dequantize_linear %q, %s, %z8 {axis = 1} : tensor<?s x 40 x f32>
          %qc = quantize_linear %x, %sc, %zc {axis = 1} : tensor<?s x 40 x i8>
          %b = dequantize_linear %qc, %sc, %zc {axis = -1} : tensor<?s x 40 x f32>
          %q4 = quantize_linear %x, %s, %ze4 {axis = 1} : tensor<?s x 40 x f8e4m3>
          %c = dequantize_linear %q4, %s, %ze4 {axis = 1} : tensor<?s x 40 x f32>
          %q5 = quantize_linear %x, %sc, %ze5 {axis = 1} : tensor<?s x 40 x f8e5m2>
          %d = dequantize_linear %q5, %sc, %ze5 {axis = 1} : tensor<?s x 40 x f32>
          return %a, %b, %c, %d
        }""".replace("VEC", vec).replace("FZEROS", String.join(", ", java.util.Collections.nCopies(40, "0.0")))
        .replace("ZEROS", String.join(", ", java.util.Collections.nCopies(40, "0"))));
  }

  /**
   * onnxruntime's quantized embeddings: rows of a u8 table gathered by token id, then
   * {@code (q - zp) * s}. fold-qdq makes table and zero point i8, 128 lower: zero point 128
   * (all-MiniLM-L6-v2-q's) leaves 0 (a {@code cvt}), 131 leaves 3 for the whole tensor
   * ({@code cvt}, {@code vbini sub}, {@code cvt}); per channel, the scales. Exact.
   */
  @Test
  void gatheredU8TableRowsDequantize() {
    Random rnd = new Random(SEED);
    byte[] table = new byte[50 * 40];
    rnd.nextBytes(table);
    StringBuilder scales = new StringBuilder();
    for (int j = 0; j < 40; j++) {
      scales.append(j == 0 ? "" : ", ").append(0.01f + 0.002f * j);
    }
    String text = """
        module @qemb {
          weight @t : tensor<50 x 40 x u8> = inline 0xHEX
          func @main(%ids: tensor<?s x i64>) -> ("a": tensor<?s x 40 x f32>, "b": tensor<?s x 40 x f32>, "c": tensor<?s x 40 x f32>) {
            %t = weight {name = @t} : tensor<50 x 40 x u8>
            %rows = gather %t, %ids {axis = 0} : tensor<?s x 40 x u8>
            %s = constant {value = dense<0.0235> : tensor<f32>} : tensor<f32>
            %sc = constant {value = dense<[SCALES]> : tensor<40 x f32>} : tensor<40 x f32>
            %z = constant {value = dense<128> : tensor<u8>} : tensor<u8>
            %z3 = constant {value = dense<131> : tensor<u8>} : tensor<u8>
            %zc = constant {value = dense<[ZC]> : tensor<40 x u8>} : tensor<40 x u8>
            %a = dequantize_linear %rows, %s, %z {axis = 1} : tensor<?s x 40 x f32>
            %b = dequantize_linear %rows, %s, %z3 {axis = 1} : tensor<?s x 40 x f32>
            %c = dequantize_linear %rows, %sc, %zc {axis = 1} : tensor<?s x 40 x f32>
            return %a, %b, %c
          }
        }
        """.replace("HEX", HexFormat.of().formatHex(table)).replace("SCALES", scales)
        .replace("ZC", String.join(", ", java.util.Collections.nCopies(40, "128")));
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "qemb.ir"),
        BackendOptions.defaults().withBound("s", 300));
    for (int s : new int[] {3, 200}) {
      long[] ids = new long[s];
      for (int i = 0; i < s; i++) {
        ids[i] = rnd.nextInt(50);
      }
      c.check(List.of(EndToEndHarness.longs(ElementType.I64, new long[] {s}, ids)), 0,
          "qemb s=" + s);
    }
  }

  /**
   * The o projection's x: an attention's [1, H, S, D] output transposed to [1, S, H, D], its
   * heads merged and converted by the qmatmul (a bf16 cast, or fp8 per-row quantization): the
   * conversion reads each row's H blocks from the heads' rows, and the transpose emits no code.
   * 64 heads (Llama-3-70B's on one chip) are more blocks than a DMA's planes immediate holds.
   */
  @Test
  void theOProjectionReadsItsXFromTheHeads() {
    String bf16 = "%xq = cast %xm {to = bf16} : tensor<1 x ?s x 128 x bf16>\n"
        + "%xs = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>";
    oProjectionReadsItsXFromTheHeads(4, List.of(bf16,
        "%xq, %xs = dynamic_quantize %xm {dtype = f8e4m3, granularity = \"row\"} "
            + ": tensor<1 x ?s x 128 x f8e4m3>, tensor<1 x ?s x 1 x f32>",
        "%xs = constant {value = dense<0.02> : tensor<f32>} : tensor<f32>\n"
            + "%zx = constant {value = dense<0> : tensor<i8>} : tensor<i8>\n"
            + "%xq = quantize_linear %xm, %xs, %zx {axis = 1} : tensor<1 x ?s x 128 x i8>",
        // SmoothQuant's per-channel multiply reads x first: the transpose stays
        "%xs = constant {value = dense<0.02> : tensor<f32>} : tensor<f32>\n"
            + "%zx = constant {value = dense<0> : tensor<i8>} : tensor<i8>\n"
            + "%cs = constant {value = dense<[" + String.join(", ",
                java.util.Collections.nCopies(64, "0.5, 2.0")) + "]> : tensor<128 x f32>} "
            + ": tensor<128 x f32>\n"
            + "%xsm = mul %xm, %cs : tensor<1 x ?s x 128 x f32>\n"
            + "%xq = quantize_linear %xsm, %xs, %zx {axis = 1} : tensor<1 x ?s x 128 x i8>"));
    oProjectionReadsItsXFromTheHeads(64, List.of(bf16));
  }

  private static void oProjectionReadsItsXFromTheHeads(int heads, List<String> conversions) {
    Random rnd = new Random(SEED);
    Tensor w = gaussian(rnd, new long[] {128, 130}, 0.5f, 0f);
    String hex = HexFormat.of().formatHex(w.toBytes());
    int d = 128 / heads;
    for (String conversion : conversions) {
      String wType = conversion.contains("f8e4m3") ? "f8e4m3" : conversion.contains("i8>")
          ? "i8" : "bf16";
      String text = """
          module @oproj {
            weight @w : tensor<128 x 130 x f32> = inline 0xHEX
            func @main(%a: tensor<1 x H x ?s x D x f32>) -> ("y": tensor<1 x ?s x 130 x f32>) {
              %wf = weight {name = @w} : tensor<128 x 130 x f32>
              %sw = constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
              WEIGHT
              %at = transpose %a {perm = [0, 2, 1, 3]} : tensor<1 x ?s x H x D x f32>
              %xm = reshape %at {shape = [1, ?s, 128]} : tensor<1 x ?s x 128 x f32>
              CONVERSION
              %y = qmatmul %xq, %wq, %xs, %sw : tensor<1 x ?s x 130 x f32>
              return %y
            }
          }
          """.replace("HEX", hex).replace("CONVERSION", conversion).replace("WEIGHT",
              wType.equals("bf16") ? "%wq = cast %wf {to = bf16} : tensor<128 x 130 x bf16>"
              : "%z = constant {value = dense<0> : tensor<WT>} : tensor<WT>\n"
              + "%wq = quantize_linear %wf, %sw, %z {axis = 1} : tensor<128 x 130 x WT>")
              .replace("WT", wType).replace(" H ", " " + heads + " ").replace(" D ", " " + d + " ");
      EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "o.ir"),
          BackendOptions.defaults().withBound("s", 300));
      List<String> ops = c.program.debug().stream().map(SohuProgram.DebugEntry::irOp).distinct()
          .toList();
      assertEquals(conversion.contains("mul"), ops.contains("transpose %at"), ops.toString());
      assertTrue(!conversion.contains("mul") || !ops.contains("mul %xsm"), ops.toString());
      for (long s : new long[] {1, 129, 300}) {
        Random r = new Random(SEED + s);
        c.check(List.of(EndToEndHarness.randomF32(r, 1.0, 1, heads, s, d)), TOL,
            "o projection " + wType + " heads=" + heads + " s=" + s);
      }
    }
  }

  @Test
  void qmatmulInF8e5m2WithScalarScales() {
    Random rnd = new Random(SEED);
    Tensor w = gaussian(rnd, new long[] {40, 130}, 0.5f, 0f);
    String hex = HexFormat.of().formatHex(w.toBytes());
    String text = """
        module @q5 {
          weight @w : tensor<40 x 130 x f32> = inline 0xHEX
          func @main(%x: tensor<?s x 40 x f32>) -> ("y": tensor<?s x 130 x f32>, "z": tensor<?s x 130 x f32>) {
            %wf = weight {name = @w} : tensor<40 x 130 x f32>
            %s = constant {value = dense<0.01> : tensor<f32>} : tensor<f32>
            %sw = constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
            %z5 = constant {value = dense<0.0> : tensor<f8e5m2>} : tensor<f8e5m2>
            %wq = quantize_linear %wf, %sw, %z5 {axis = 1} : tensor<40 x 130 x f8e5m2>
            %xq, %xs = dynamic_quantize %x {dtype = f8e5m2, granularity = "row"} : tensor<?s x 40 x f8e5m2>, tensor<?s x 1 x f32>
            %y = qmatmul %xq, %wq, %xs, %sw : tensor<?s x 130 x f32>
            %xt = quantize_linear %x, %s, %z5 {axis = 1} : tensor<?s x 40 x f8e5m2>
            %z = qmatmul %xt, %wq, %s, %sw : tensor<?s x 130 x f32>
            return %y, %z
          }
        }
        """.replace("HEX", hex);
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "q5.ir"),
        BackendOptions.defaults().withBound("s", 300));
    for (long s : new long[] {1, 129}) {
      Random r = new Random(SEED + s);
      c.check(List.of(EndToEndHarness.randomF32(r, 3.0, s, 40)), TOL, "q5 s=" + s);
    }
  }

  /**
   * A row-parallel layer's tail as the quantizer leaves it on a tensor-parallel chip: the
   * qmatmul's partial rounded to bf16, summed in place by an all_reduce of bf16 (a group of one
   * chip here: the functional emulator runs one chip, so the sum is the identity), widened back
   * and added to the f32 residual. The qmatmul rounds its tiles to bf16 itself and sums each
   * finished weight panel (one full, one of 2 columns) on the link: the cast lowers no code,
   * and the all_reduce's code is its two allreduces, each over every row of its panel's
   * columns; the add reads the bf16 sum and widens it in SRAM (the widening cast lowers no
   * code either). bf16 (unit scales: accrd rounds to bf16) and fp8 (per-row and per-channel
   * scales: the last cvt does). Exact against the interpreter, which models each rounding.
   */
  @Test
  void qmatmulRoundsToBf16AndSumsEachPanelOnTheLink() {
    roundAndSumOnTheLink(130, 300, List.of(128L, 2L), 1, 129, 300);
  }

  /**
   * As above with few rows (a decode step's) and 4100 columns: the weight stream bounds the
   * qmatmul, so each load brings 16 panels (32 full in 2 loads, then a 4-column tail), summed
   * in one allreduce; its readouts take the per-channel scales of their own sub-panel and its
   * bf16 result is stored one plane per sub-panel.
   */
  @Test
  void qmatmulOfFewRowsLoadsSeveralPanelsAtOnce() {
    roundAndSumOnTheLink(4100, 100, List.of(2048L, 4L), 1, 5, 100);
  }

  /**
   * A [40, cols] qmatmul (bf16, and fp8 with per-row and per-channel scales) rounded to bf16
   * and summed on the link, compiled at the bound {@code s} and run at each of {@code rows}:
   * the allreduces' widths are {@code sums}, the numbers exact against the interpreter.
   */
  static void roundAndSumOnTheLink(int cols, long bound, List<Long> sums, long... rows) {
    roundAndSumOnTheLink(cols, bound, "all_reduce %pb {chips = 1}",
        c -> assertEquals(sums, EndToEndHarness.linkSums(c)), rows);
  }

  /**
   * Sequence parallelism's form of the same tail: the bf16 partial reduce-scattered over its
   * rows (a group of one). The qmatmul scatters each finished panel in its loop, one
   * reducescatter per panel (the full one and the 2-column tail) of the panel's columns, the
   * scatter's own code only its LINK fence; exact against the interpreter.
   */
  @Test
  void qmatmulReduceScattersEachPanelOnTheLink() {
    roundAndSumOnTheLink(130, 300, "reduce_scatter %pb {chips = 1, rank = 0, axis = 0}", c -> {
      List<Long> widths = new java.util.ArrayList<>();
      for (var d : c.program.debug()) {
        if (dev.sohuc.isa.InsnCodec.decode(c.program.code().get(d.pc()))
            instanceof dev.sohuc.isa.Insn.Reducescatter r) {
          assertEquals("reduce_scatter %sum", d.irOp());
          widths.add(r.elemsImm() + 0L);
        }
      }
      assertEquals(List.of(128L, 2L), widths);
    }, 1, 129, 300);
  }

  /** The tail with {@code collective} (of %pb, as %sum), its link code checked by {@code links}. */
  static void roundAndSumOnTheLink(int cols, long bound, String collective,
      java.util.function.Consumer<EndToEndHarness.Compiled> links, long... rows) {
    Random rnd = new Random(SEED);
    Tensor w = gaussian(rnd, new long[] {40, cols}, 0.5f, 0f);
    StringBuilder scales = new StringBuilder();
    for (int j = 0; j < cols; j++) {
      scales.append(j == 0 ? "" : ", ").append(0.01f + 0.001f * j);
    }
    String bf16 = """
        %wb = cast %wf {to = bf16} : tensor<40 x COLS x bf16>
        %one = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
        %xb = cast %x {to = bf16} : tensor<?s x 40 x bf16>
        %p = qmatmul %xb, %wb, %one, %one : tensor<?s x COLS x f32>""";
    String fp8 = """
        %sw = constant {value = dense<[SCALES]> : tensor<COLS x f32>} : tensor<COLS x f32>
        %z = constant {value = dense<[ZEROS]> : tensor<COLS x f8e4m3>} : tensor<COLS x f8e4m3>
        %wq = quantize_linear %wf, %sw, %z {axis = 1} : tensor<40 x COLS x f8e4m3>
        %xq, %xs = dynamic_quantize %x {dtype = f8e4m3, granularity = "row"} : tensor<?s x 40 x f8e4m3>, tensor<?s x 1 x f32>
        %p = qmatmul %xq, %wq, %xs, %sw : tensor<?s x COLS x f32>""".replace("SCALES", scales)
        .replace("ZEROS", String.join(", ", java.util.Collections.nCopies(cols, "0.0")));
    for (String layer : List.of(bf16, fp8)) {
      String text = """
          module @tp {
            weight @w : tensor<40 x COLS x f32> = inline 0xHEX
            func @main(%x: tensor<?s x 40 x f32>, %res: tensor<?s x COLS x f32>) -> ("y": tensor<?s x COLS x f32>) {
              %wf = weight {name = @w} : tensor<40 x COLS x f32>
          LAYER
              %pb = cast %p {to = bf16} : tensor<?s x COLS x bf16>
              %sum = COLLECTIVE : tensor<?s x COLS x bf16>
              %sf = cast %sum {to = f32} : tensor<?s x COLS x f32>
              %y = add %res, %sf : tensor<?s x COLS x f32>
              return %y
            }
          }
          """.replace("HEX", HexFormat.of().formatHex(w.toBytes())).replace("LAYER", layer)
          .replace("COLLECTIVE", collective)
          .replace("COLS", Integer.toString(cols));
      EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "tp.ir"),
          BackendOptions.defaults().withBound("s", bound));
      for (var d : c.program.debug()) {
        assertTrue(!d.irOp().startsWith("cast %pb") && !d.irOp().startsWith("cast %sf"),
            d.irOp() + " lowered on its own");
      }
      links.accept(c);
      for (long s : rows) {
        Random r = new Random(SEED + s);
        EndToEndHarness.Result res = c.check(List.of(EndToEndHarness.randomF32(r, 3.0, s, 40),
            EndToEndHarness.randomF32(r, 3.0, s, cols)), 0, "tp s=" + s);
        assertEquals(0, res.maxError());
      }
    }
  }
}
