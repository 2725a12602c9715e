package dev.sohuc.tests;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.sohuc.backend.BackendOptions;
import dev.sohuc.backend.CompiledProgram;
import dev.sohuc.backend.SohuBackend;
import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.emu.TimingReport;
import dev.sohuc.ir.Module;
import dev.sohuc.isa.DType;
import dev.sohuc.onnx.ImportOptions;
import dev.sohuc.onnx.OnnxImporter;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Not a test: prints, for all-MiniLM-L6-v2 at sequence 128, the compile time, the emulator's
 * functional wall time next to ONNX Runtime's (CPU, same machine) and their ratio, and the
 * timing mode's cycles, MFU and HBM bytes. Run with
 * {@code mvn -pl tests test-compile} then the test classpath (see README).
 */
public final class MiniLmBenchmark {
  public static void main(String[] args) throws Exception {
    int seq = args.length > 0 ? Integer.parseInt(args[0]) : 128;
    int reps = args.length > 1 ? Integer.parseInt(args[1]) : 5;
    Path model = Models.miniLm();

    long t0 = System.nanoTime();
    Module m = OnnxImporter.importModel(model, importOptions());
    new PassManager(PassPipelines.defaultPipeline()).run(m);
    CompiledProgram c = SohuBackend.compile(m, BackendOptions.defaults());
    double compileS = (System.nanoTime() - t0) / 1e9;

    Map<String, long[][]> in = Models.bertInputs(seq, 0, 1);
    Map<String, HostTensor> host = new LinkedHashMap<>();
    for (Map.Entry<String, long[][]> e : in.entrySet()) {
      ByteBuffer b = ByteBuffer.allocate(8 * seq).order(ByteOrder.LITTLE_ENDIAN);
      for (long v : e.getValue()[0]) {
        b.putLong(v);
      }
      host.put(e.getKey(), new HostTensor(DType.I64, new long[] {1, seq}, b.array()));
    }
    MachineDescription md = MachineDescription.defaultTarget();
    Emulator emu = new Emulator(c.program(), md, Options.defaults());
    double emuS = best(reps, () -> emu.runFunctional(host, Map.of()));

    OrtEnvironment env = OrtEnvironment.getEnvironment();
    double ortS;
    try (OrtSession s = env.createSession(model.toString(), new OrtSession.SessionOptions())) {
      ortS = best(reps, () -> {
        try {
          Models.ort(s, in);
        } catch (Exception e) {
          throw new RuntimeException(e);
        }
      });
    }
    TimingReport t = new Emulator(c.program(), md, Options.defaults())
        .runTiming(Map.of("batch_1", (long) seq));

    System.out.printf(Locale.ROOT, "all-MiniLM-L6-v2, seq %d, batch 1, %d CPUs (best of %d)%n",
        seq, Runtime.getRuntime().availableProcessors(), reps);
    System.out.printf(Locale.ROOT, "compile (import + passes + backend)  %8.3f s  (%d instructions)%n",
        compileS, c.instructionCount());
    System.out.printf(Locale.ROOT, "emulator, functional                 %8.3f s%n", emuS);
    System.out.printf(Locale.ROOT, "ONNX Runtime, CPU                    %8.3f s%n", ortS);
    System.out.printf(Locale.ROOT, "ratio emulator / ORT                 %8.2f x%n", emuS / ortS);
    System.out.printf(Locale.ROOT, "timing mode: %,d cycles (%.1f us), MFU %.2f%% (FP8 peak %.3f%%), "
        + "HBM %,d bytes%n", t.cycles(), t.seconds() * 1e6, 100 * t.mfu(), 100 * t.mfuFp8(),
        t.hbmBytes());
  }

  static ImportOptions importOptions() {
    return new ImportOptions(Map.of(), Map.of("batch", 1L));
  }

  static double best(int reps, Runnable r) {
    double best = Double.MAX_VALUE;
    for (int i = 0; i < reps + 1; i++) {   // the first run warms up the JIT
      long t0 = System.nanoTime();
      r.run();
      double s = (System.nanoTime() - t0) / 1e9;
      if (i > 0) {
        best = Math.min(best, s);
      }
    }
    return best;
  }
}
