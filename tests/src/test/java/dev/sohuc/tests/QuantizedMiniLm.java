package dev.sohuc.tests;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.sohuc.backend.BackendOptions;
import dev.sohuc.backend.CompiledProgram;
import dev.sohuc.backend.SohuBackend;
import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.FunctionalResult;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.emu.TimingReport;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.QuantOp;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Engine;
import dev.sohuc.onnx.OnnxImporter;
import dev.sohuc.onnx.TensorFiles;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import dev.sohuc.passes.quant.QuantMode;
import dev.sohuc.passes.quant.QuantOptions;
import dev.sohuc.passes.quant.QuantReport;
import dev.sohuc.passes.quant.Quantizer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * all-MiniLM-L6-v2 quantized, compiled and emulated: 8 calibration sets and 8 different
 * evaluation sets at seq 128 (1 to 112 padding tokens), the emulator's token embeddings against
 * ONNX Runtime f32 (mean and worst cosine over the real tokens), the interpreter's beside them,
 * the timing mode's cycles, MFU, HBM traffic and busy cycles of the MXU, VPU and DMA engines at
 * seq 128, and the bytes of the matmul weights in the constants image.
 */
final class QuantizedMiniLm {
  static final int SEQ = 128;
  static final int HIDDEN = 384;
  static final int SETS = 8;

  /** One mode's figures. */
  record Row(QuantMode mode, double emuMean, double emuWorst, String emuWorstAt, double interpMean,
      double interpWorst, long cycles, double mfu, long hbmBytes, long constantsBytes,
      long matmulWeightBytes, QuantReport report, long mxuBusy, long vpuBusy, long dmaBusy) {

    static String header() {
      return String.format(Locale.ROOT,
          "%-5s  %-22s  %-22s  %12s  %7s  %14s  %14s  %14s  %10s  %10s  %10s%n",
          "mode", "emulated cos mean/worst", "interpreter mean/worst", "cycles", "MFU %",
          "HBM traffic B", "constants B", "mm weights B", "MXU busy", "VPU busy", "DMA busy");
    }

    String line() {
      return String.format(Locale.ROOT, "%-5s  %.6f / %.6f    %.6f / %.6f    %,12d  %7.3f  %,14d  %,14d  %,14d  %,10d  %,10d  %,10d%n",
          mode.flag(), emuMean, emuWorst, interpMean, interpWorst, cycles, 100 * mfu, hbmBytes,
          constantsBytes, matmulWeightBytes, mxuBusy, vpuBusy, dmaBusy);
    }
  }

  final Path model;
  final List<Path> calibration = new ArrayList<>();
  final List<Map<String, long[][]>> eval = new ArrayList<>();
  final List<float[]> reference = new ArrayList<>();

  QuantizedMiniLm(Path work) throws Exception {
    model = Models.miniLm();
    Random r = new Random(2024);
    for (int s = 0; s < SETS; s++) {
      Path d = work.resolve("calib_" + s);
      Models.writeInputs(Models.bertInputs(SEQ, r.nextInt(SEQ - 16), 100 + s), d);
      calibration.add(d);
    }
    Random e = new Random(7777);
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession session = env.createSession(model.toString(), new OrtSession.SessionOptions())) {
      for (int s = 0; s < SETS; s++) {
        Map<String, long[][]> in = Models.bertInputs(SEQ, 1 + e.nextInt(SEQ - 16), 9000 + s);
        eval.add(in);
        reference.add(Models.ort(session, in));
      }
    }
  }

  Row measure(QuantMode mode) {
    Module m = OnnxImporter.importModel(model, MiniLmBenchmark.importOptions());
    new PassManager(PassPipelines.defaultPipeline()).run(m);
    QuantReport report = Quantizer.quantize(m,
        QuantOptions.of(mode).withCalibration(mode == QuantMode.NONE ? List.of() : calibration,
            TensorFiles::read));
    long mmBytes = matmulWeightBytes(m);
    double[] interp = interpreterCosines(m);
    CompiledProgram c = SohuBackend.compile(m, BackendOptions.defaults());
    MachineDescription md = MachineDescription.defaultTarget();
    Emulator emu = new Emulator(c.program(), md, Options.defaults());
    Cosines cos = new Cosines();
    for (int s = 0; s < SETS; s++) {
      FunctionalResult r = emu.runFunctional(host(eval.get(s)), Map.of());
      float[] got = r.outputs().values().iterator().next().toF32();
      cos.add(got, s);
    }
    TimingReport t = new Emulator(c.program(), md, Options.defaults())
        .runTiming(Map.of("batch_1", (long) SEQ));
    long constants = c.program().constants() == null ? 0 : c.program().constants().size();
    return new Row(mode, cos.mean(), cos.worst, cos.worstAt, interp[0], interp[1], t.cycles(),
        t.mfu(), t.hbmBytes(), constants, mmBytes, report, busy(t, Engine.MXU),
        busy(t, Engine.VPU), busy(t, Engine.DMA));
  }

  private static long busy(TimingReport t, Engine e) {
    TimingReport.EngineStats s = t.engines().get(e);
    return s == null ? 0 : s.busyCycles();
  }

  private double[] interpreterCosines(Module m) {
    Interpreter interp = new Interpreter(m);
    Cosines cos = new Cosines();
    String out = m.main().outputs().get(0).name();
    for (int s = 0; s < SETS; s++) {
      List<Tensor> in = new ArrayList<>();
      for (long[][] v : eval.get(s).values()) {
        in.add(Tensor.ofLongs(ElementType.I64, new long[] {1, SEQ}, v[0].clone()));
      }
      cos.add(interp.run(in).get(out).floats(), s);
    }
    return new double[] {cos.mean(), cos.worst};
  }

  /** Cosines of the real tokens' embeddings against ORT. */
  private final class Cosines {
    double sum;
    int n;
    double worst = 2;
    String worstAt = "-";

    void add(float[] got, int set) {
      long[] mask = eval.get(set).get("attention_mask")[0];
      float[] want = reference.get(set);
      for (int t = 0; t < SEQ; t++) {
        if (mask[t] == 0) {
          continue;
        }
        double dot = 0;
        double a = 0;
        double b = 0;
        for (int i = t * HIDDEN; i < (t + 1) * HIDDEN; i++) {
          dot += (double) got[i] * want[i];
          a += (double) got[i] * got[i];
          b += (double) want[i] * want[i];
        }
        double c = dot / Math.sqrt(a * b);
        c = Double.isNaN(c) ? -1 : c;
        sum += c;
        n++;
        if (c < worst) {
          worst = c;
          worstAt = "set " + set + " token " + t;
        }
      }
    }

    double mean() {
      return sum / n;
    }
  }

  private static Map<String, HostTensor> host(Map<String, long[][]> in) {
    Map<String, HostTensor> h = new LinkedHashMap<>();
    for (Map.Entry<String, long[][]> e : in.entrySet()) {
      ByteBuffer b = ByteBuffer.allocate(8 * SEQ).order(ByteOrder.LITTLE_ENDIAN);
      for (long v : e.getValue()[0]) {
        b.putLong(v);
      }
      h.put(e.getKey(), new HostTensor(DType.I64, new long[] {1, SEQ}, b.array()));
    }
    return h;
  }

  /** Bytes of the weights the matmuls and qmatmuls multiply by (not embeddings or norms). */
  static long matmulWeightBytes(Module m) {
    long bytes = 0;
    java.util.Set<String> seen = new java.util.HashSet<>();
    for (Node n : m.main().body()) {
      dev.sohuc.ir.Value w = switch (n.op()) {
        case LinalgOp.MatMul mm -> mm.b();
        case QuantOp.QMatMul q -> q.w();
        default -> null;
      };
      while (w != null && w.producer() != null
          && w.producer().op() instanceof dev.sohuc.ir.op.DataOp.Transpose tr) {
        w = tr.x();
      }
      if (w != null && w.producer() != null && w.producer().op() instanceof SourceOp.WeightRef r
          && seen.add(r.name())) {
        Weight wt = m.weights().get(r.name());
        bytes += wt.sizeBytes();
      }
    }
    return bytes;
  }

  static void write(Path dir) throws Exception {
    Files.createDirectories(dir);
  }
}
