package dev.sohuc.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.sohuc.backend.BackendException;
import dev.sohuc.backend.BackendOptions;
import dev.sohuc.backend.SohuBackend;
import dev.sohuc.backend.SymbolTypes;
import dev.sohuc.cli.Sohuc;
import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.onnx.ImportOptions;
import dev.sohuc.onnx.OnnxImporter;
import dev.sohuc.onnx.TensorFiles;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/** Shared pieces of the end-to-end model tests and the benchmark. */
final class Models {
  private Models() {}

  /** all-MiniLM-L6-v2 from the langchain4j jar, copied once to a file ORT and sohuc can read. */
  static Path miniLm() throws IOException {
    return model("all-minilm-l6-v2.onnx");
  }

  /** A model file of a langchain4j jar on the test classpath, copied once to a file. */
  static synchronized Path model(String resource) throws IOException {
    Path p = Path.of(System.getProperty("java.io.tmpdir"), "sohuc-" + resource);
    if (!Files.isRegularFile(p)) {
      try (InputStream in = Models.class.getClassLoader().getResourceAsStream(resource)) {
        if (in == null) {
          throw new IOException(resource + " is not on the test classpath");
        }
        Path tmp = Files.createTempFile(p.getParent(), "model", ".onnx");
        Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
        Files.move(tmp, p, StandardCopyOption.REPLACE_EXISTING);
      }
    }
    return p;
  }

  /** The repository root (the tests module runs in tests/). */
  static Path root() {
    Path here = Path.of("").toAbsolutePath();
    return Files.isDirectory(here.resolve("examples")) ? here : here.getParent();
  }

  /** Runs the CLI; fails with its output when the exit code is not 0. */
  static String sohuc(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(args, new PrintWriter(out), new PrintWriter(err));
    if (code != 0) {
      throw new AssertionError("sohuc " + String.join(" ", args) + " exited " + code + ":\n"
          + out + err);
    }
    return out.toString();
  }

  /** BERT inputs: seeded ids in [1000, 30000), the last {@code pad} tokens padding (id 0). */
  static Map<String, long[][]> bertInputs(int seq, int pad, long seed) {
    Random r = new Random(seed);
    long[][] ids = new long[1][seq];
    long[][] mask = new long[1][seq];
    long[][] types = new long[1][seq];
    for (int i = 0; i < seq; i++) {
      boolean real = i < seq - pad;
      ids[0][i] = !real ? 0 : i == 0 ? 101 : i == seq - pad - 1 ? 102 : 1000 + r.nextInt(29000);
      mask[0][i] = real ? 1 : 0;
    }
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", ids);
    m.put("attention_mask", mask);
    m.put("token_type_ids", types);
    return m;
  }

  /** Writes the inputs as input_N.pb, each with its name. */
  static void writeInputs(Map<String, long[][]> inputs, Path dir) throws IOException {
    Files.createDirectories(dir);
    int i = 0;
    for (Map.Entry<String, long[][]> e : inputs.entrySet()) {
      long[][] v = e.getValue();
      long[] flat = new long[v.length * v[0].length];
      for (int b = 0; b < v.length; b++) {
        System.arraycopy(v[b], 0, flat, b * v[0].length, v[0].length);
      }
      TensorFiles.write(dir.resolve("input_" + i++ + ".pb"),
          Tensor.ofLongs(ElementType.I64, new long[] {v.length, v[0].length}, flat), e.getKey());
    }
  }

  /** ONNX Runtime's first output, flattened. */
  static float[] ort(OrtSession session, Map<String, long[][]> inputs) throws Exception {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    Map<String, OnnxTensor> feed = new LinkedHashMap<>();
    try {
      for (Map.Entry<String, long[][]> e : inputs.entrySet()) {
        feed.put(e.getKey(), OnnxTensor.createTensor(env, e.getValue()));
      }
      try (OrtSession.Result r = session.run(feed)) {
        float[][][] out = (float[][][]) r.get(0).getValue();
        float[] flat = new float[out.length * out[0].length * out[0][0].length];
        int k = 0;
        for (float[][] a : out) {
          for (float[] b : a) {
            for (float c : b) {
              flat[k++] = c;
            }
          }
        }
        return flat;
      }
    } finally {
      feed.values().forEach(OnnxTensor::close);
    }
  }

  /** max |a - b| / max(1, |b|); NaN anywhere is infinite. */
  static double maxError(float[] got, float[] want) {
    if (got.length != want.length) {
      throw new AssertionError("length " + got.length + ", expected " + want.length);
    }
    double max = 0;
    for (int i = 0; i < got.length; i++) {
      double e = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
      max = Double.isNaN(e) ? Double.POSITIVE_INFINITY : Math.max(max, e);
    }
    return max;
  }

  /**
   * Runs {@code module} on the reference interpreter, then compiles it (default pipeline, sohu
   * backend) and runs it on the emulator with the same inputs (in argument order), every output
   * within 1e-4 of the interpreter's ({@link #assertNear}). A step that refuses the module with
   * its own error (IrException, BackendException: one line, or the backend's list of ops) ends
   * it; returns whether the chip ran it. Anything else fails naming {@code form}.
   */
  static boolean chipMatchesInterpreter(String form, Module module, List<Tensor> inputs) {
    return chipMatchesInterpreter(form, module, inputs, 1e-4);
  }

  /** As above, the outputs within {@code tol} of the interpreter's largest magnitude. */
  static boolean chipMatchesInterpreter(String form, Module module, List<Tensor> inputs, double tol) {
    Map<String, Tensor> reference;
    try {
      reference = new Interpreter(module).run(inputs);
    } catch (IrException e) {
      assertOneLine(form, e.getMessage());
      return false;
    } catch (RuntimeException e) {
      throw new AssertionError(form + " (interpreter): " + e, e);
    }
    Emulator chip;
    try {
      new PassManager(PassPipelines.defaultPipeline()).verifyEach(true).run(module);
      chip = new Emulator(SohuBackend.compile(module, BackendOptions.defaults()).program(),
          MachineDescription.defaultTarget(), Options.defaults().withScheduleSeed(7L));
    } catch (BackendException | IrException e) {
      if (!e.getMessage().startsWith("unsupported by the sohu backend")) {
        assertOneLine(form, e.getMessage());
      }
      return false;
    } catch (RuntimeException e) {
      throw new AssertionError(form + " (compile): " + e, e);
    }
    Map<String, HostTensor> in = new LinkedHashMap<>();
    for (int k = 0; k < inputs.size(); k++) {
      Tensor t = inputs.get(k);
      in.put(module.main().arguments().get(k).name(), new HostTensor(SymbolTypes.of(t.elementType()),
          t.shape(), t.toBytes()));
    }
    Map<String, HostTensor> got;
    try {
      got = chip.runFunctional(in, Map.of()).outputs();
    } catch (RuntimeException e) {
      throw new AssertionError(form + " (emulator): " + e, e);
    }
    reference.forEach((name, want) -> assertNear(form + ": output " + name, values(want),
        got.get(name).toF32(), tol));
    return true;
  }

  /** A tensor's elements as floats (integers exactly, below 2^24). */
  private static float[] values(Tensor t) {
    float[] f = new float[t.size()];
    for (int i = 0; i < f.length; i++) {
      f[i] = (float) t.get(i);
    }
    return f;
  }

  /**
   * {@code file} imported, or null where the importer refuses it with one line that names the
   * file; anything else fails naming {@code form}.
   */
  static Module importedOrRefused(String form, Path file) {
    try {
      return OnnxImporter.importModel(file, ImportOptions.defaults());
    } catch (IrException e) {
      assertOneLine(form, e.getMessage());
      if (!e.getMessage().startsWith(file.toString())) {
        throw new AssertionError(form + ": the error does not name the file: " + e.getMessage());
      }
      return null;
    } catch (RuntimeException e) {
      throw new AssertionError(form + ": " + e, e);
    }
  }

  /** Floats in [-2, 2], integers in [0, 3] (ids, positions and mask values that exist). */
  static Tensor random(ElementType type, long[] shape, Random r) {
    Tensor t = Tensor.zeros(type, shape);
    for (int i = 0; i < t.size(); i++) {
      t.set(i, type.isFloat() ? -2 + 4 * r.nextDouble() : r.nextInt(4));
    }
    return t;
  }

  static void assertOneLine(String form, String message) {
    if (message.contains("\n")) {
      throw new AssertionError(form + ": not one line: " + message);
    }
  }

  /**
   * Fails naming {@code what} and the first element of {@code have} more than {@code tol} x
   * max(1, max finite |want|) from {@code want} (NaN where both are NaN agrees, as do equal
   * infinities).
   */
  static void assertNear(String what, float[] want, float[] have, double tol) {
    double scale = 1;
    for (float w : want) {
      if (Float.isFinite(w)) {
        scale = Math.max(scale, Math.abs(w));
      }
    }
    for (int j = 0; j < want.length; j++) {
      if (!(Math.abs(have[j] - want[j]) <= tol * scale) && have[j] != want[j]
          && !(Float.isNaN(have[j]) && Float.isNaN(want[j]))) {
        throw new AssertionError(what + ": element " + j + " of " + want.length + " is " + have[j]
            + " on the chip, " + want[j] + " on the interpreter");
      }
    }
  }

  static float[] floats(Path pb) {
    return TensorFiles.read(pb).floats();
  }

  /** {@code sohuc run} of a compiled model on the named inputs, its files under {@code dir}. */
  static Map<String, Tensor> sohucRun(Path bin, Map<String, Tensor> inputs, Path dir)
      throws IOException {
    Path inDir = dir.resolve("in");
    Path outDir = dir.resolve("out");
    Files.createDirectories(inDir);
    int i = 0;
    for (Map.Entry<String, Tensor> e : inputs.entrySet()) {
      TensorFiles.write(inDir.resolve("input_" + i++ + ".pb"), e.getValue(), e.getKey());
    }
    sohuc("run", bin.toString(), "--inputs", inDir.toString(), "--output-dir", outDir.toString());
    Map<String, Tensor> got = new LinkedHashMap<>();
    for (int k = 0; Files.isRegularFile(outDir.resolve("output_" + k + ".pb")); k++) {
      TensorFiles.Named t = TensorFiles.readNamed(outDir.resolve("output_" + k + ".pb"));
      got.put(t.name(), t.tensor());
    }
    return got;
  }

  /**
   * Asserts that {@code got} holds every f32 output ONNX Runtime computes for the model on the
   * (i64, i32 or f32) inputs, of its shape and within {@code tol} ({@link #maxError}); prints each
   * output's error after {@code label}.
   */
  static void assertMatchesOrt(String label, byte[] model, Map<String, Tensor> inputs,
      Map<String, Tensor> got, double tol) throws OrtException {
    System.out.println(matchOrt(label, model, inputs, got, tol));
  }

  /**
   * Runs {@code model} on ONNX Runtime and fails unless every output has {@code got}'s shape and
   * values within {@code tol} ({@link #maxError}); returns the errors as a line.
   */
  static String matchOrt(String label, byte[] model, Map<String, Tensor> inputs,
      Map<String, Tensor> got, double tol) throws OrtException {
    return matchOrt(label, model, inputs, got, tol, new OrtSession.SessionOptions());
  }

  /**
   * As above, with ONNX Runtime's graph optimizations off: each node as the ONNX spec defines it
   * (optimized, ORT fuses an int8 QDQ matmul into an x86 kernel whose 16-bit pair sums saturate
   * on some values).
   */
  static String matchUnoptimizedOrt(String label, byte[] model, Map<String, Tensor> inputs,
      Map<String, Tensor> got, double tol) throws OrtException {
    OrtSession.SessionOptions options = new OrtSession.SessionOptions();
    options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
    return matchOrt(label, model, inputs, got, tol, options);
  }

  private static String matchOrt(String label, byte[] model, Map<String, Tensor> inputs,
      Map<String, Tensor> got, double tol, OrtSession.SessionOptions options) throws OrtException {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    Map<String, OnnxTensor> feed = new LinkedHashMap<>();
    try (OrtSession s = env.createSession(model, options)) {
      for (Map.Entry<String, Tensor> e : inputs.entrySet()) {
        Tensor t = e.getValue();
        feed.put(e.getKey(), switch (t.elementType()) {
          case I64 -> OnnxTensor.createTensor(env, LongBuffer.wrap(t.longs()), t.shape());
          case I32 -> OnnxTensor.createTensor(env,
              IntBuffer.wrap(java.util.Arrays.stream(t.longs()).mapToInt(Math::toIntExact).toArray()), t.shape());
          default -> OnnxTensor.createTensor(env, FloatBuffer.wrap(t.floats()), t.shape());
        });
      }
      try (OrtSession.Result res = s.run(feed)) {
        assertEquals(res.size(), got.size(), label + ": outputs " + got.keySet());
        StringBuilder errors = new StringBuilder();
        double worst = 0;
        for (Map.Entry<String, OnnxValue> o : res) {
          OnnxTensor want = (OnnxTensor) o.getValue();
          Tensor g = got.get(o.getKey());
          assertTrue(g != null, label + ": no output " + o.getKey() + " in " + got.keySet());
          assertArrayEquals(want.getInfo().getShape(), g.shape(), label + ": " + o.getKey());
          FloatBuffer fb = want.getFloatBuffer();
          float[] w = new float[fb.remaining()];
          fb.get(w);
          double err = maxError(g.floats(), w);
          worst = Math.max(worst, err);
          errors.append(String.format(" %s %.3g", o.getKey(), err));
          assertTrue(err <= tol, label + ": " + o.getKey() + " max error " + err + " > " + tol);
        }
        return String.format("%s: max error %.3g;%s", label, worst, errors);
      }
    } finally {
      feed.values().forEach(OnnxTensor::close);
    }
  }
}
