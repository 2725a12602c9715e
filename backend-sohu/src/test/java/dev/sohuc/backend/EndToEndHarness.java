package dev.sohuc.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.sohuc.emu.Emulator;
import dev.sohuc.emu.FunctionalResult;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.Options;
import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.isa.container.SohuReader;
import dev.sohuc.isa.container.SohuWriter;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Compile, emulate, compare, the way a user runs sohuc: the module goes through the default
 * pass pipeline and the backend, the program through {@link SohuWriter} and {@link SohuReader}
 * bytes, and the emulator runs it on the inputs; its outputs must match the reference
 * interpreter on the same module before any pass, within {@code tol} relative
 * ({@code |a - b| <= tol * max(1, |b|)}).
 */
public final class EndToEndHarness {
  public static final double DEFAULT_TOL = 1e-5;

  private EndToEndHarness() {}

  /** What one comparison measured. */
  public record Result(double maxError, String worstOutput, int worstIndex, SohuProgram program,
      long instructionsIssued) {}

  /** A compiled program, reused for several input sets (one binary, several lengths). */
  public static final class Compiled {
    public final SohuProgram program;
    final Module reference;

    Compiled(SohuProgram program, Module reference) {
      this.program = program;
      this.reference = reference;
    }

    /** Runs the binary and the interpreter on {@code inputs} and returns the max error. */
    public Result check(List<Tensor> inputs, double tol, String label) {
      Map<String, Tensor> expected = new Interpreter(reference).run(inputs);
      Function fn = reference.main();
      Map<String, HostTensor> host = new LinkedHashMap<>();
      for (int i = 0; i < inputs.size(); i++) {
        host.put(fn.arguments().get(i).name(), toHost(inputs.get(i)));
      }
      Emulator emu = new Emulator(program, MachineDescription.defaultTarget(), Options.defaults());
      FunctionalResult got = emu.runFunctional(host, Map.of());
      raceCheck(program, host, got, label);
      double max = 0;
      String worst = "";
      int worstIdx = -1;
      for (Function.Output o : fn.outputs()) {
        Tensor want = expected.get(o.name());
        HostTensor have = got.outputs().get(o.name());
        if (have == null) {
          throw new AssertionError(label + ": the program has no output " + o.name());
        }
        if (!Arrays.equals(want.shape(), have.shape())) {
          throw new AssertionError(label + ": output " + o.name() + " has shape "
              + Arrays.toString(have.shape()) + ", expected " + Arrays.toString(want.shape()));
        }
        float[] h = have.toF32();
        for (int i = 0; i < h.length; i++) {
          double b = want.get(i);
          // equal values (infinities included: masked router logits are -inf) are exact
          double err = h[i] == b ? 0 : Math.abs(h[i] - b) / Math.max(1, Math.abs(b));
          if (Double.isNaN(h[i]) != Double.isNaN(b) || err > max || Double.isNaN(err)) {
            if (!(Double.isNaN(h[i]) && Double.isNaN(b))) {
              max = Double.isNaN(err) ? Double.POSITIVE_INFINITY : Math.max(max, err);
              worst = o.name() + "[" + i + "] = " + h[i] + " (expected " + b + ")";
              worstIdx = i;
            }
          }
        }
      }
      System.out.printf("%s: max error %.3g%s (%d instructions issued)%n", label, max,
          max > 0 ? " at " + worst : "", got.instructions());
      if (!(max <= tol)) {
        throw new AssertionError(label + ": max error " + max + " > " + tol + " at " + worst);
      }
      return new Result(max, worst, worstIdx, program, got.instructions());
    }
  }

  /**
   * Runs the program again with its engines' instructions in a random order the tokens allow
   * ({@link Options#withScheduleSeed}, seeded by the label): a token the lowering forgot leaves
   * two instructions unordered, and the outputs then differ from the in-order run's.
   */
  static void raceCheck(SohuProgram program, Map<String, HostTensor> host,
      FunctionalResult inOrder, String label) {
    long seed = label.hashCode();
    FunctionalResult shuffled = new Emulator(program, MachineDescription.defaultTarget(),
        Options.defaults().withScheduleSeed(seed)).runFunctional(host, Map.of());
    for (var o : inOrder.outputs().entrySet()) {
      if (!Arrays.equals(o.getValue().data(), shuffled.outputs().get(o.getKey()).data())) {
        throw new AssertionError(label + ": output " + o.getKey() + " differs when the engines "
            + "run in another order the tokens allow (schedule seed " + seed + "): a race");
      }
    }
  }

  /**
   * Runs the default pipeline on {@code module} (in place; the reference is re-created by
   * {@code factory}), compiles with {@code options} and round-trips the container bytes.
   */
  public static Compiled compile(java.util.function.Supplier<Module> factory,
      BackendOptions options) {
    Module reference = factory.get();
    Module m = factory.get();
    new PassManager(PassPipelines.defaultPipeline()).verifyEach(true).run(m);
    CompiledProgram c = SohuBackend.compile(m, options);
    byte[] bytes = SohuWriter.write(c.program());
    SohuProgram back = SohuReader.read(bytes, m.name() + ".sohu");
    return new Compiled(back, reference);
  }

  /** One-shot: compile and check one input set. */
  public static Result check(java.util.function.Supplier<Module> factory, List<Tensor> inputs,
      double tol, String label) {
    return compile(factory, BackendOptions.defaults()).check(inputs, tol, label);
  }

  public static HostTensor toHost(Tensor t) {
    return new HostTensor(SymbolTypes.of(t.elementType()), t.shape(), t.toBytes());
  }

  /** Seeded uniform f32 in [-scale, scale]. */
  public static Tensor randomF32(Random r, double scale, long... shape) {
    int n = Tensor.checkedSize(shape);
    float[] d = new float[n];
    for (int i = 0; i < n; i++) {
      d[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
    }
    return Tensor.ofFloats(ElementType.F32, shape, d);
  }

  public static Tensor longs(ElementType t, long[] shape, long... values) {
    return Tensor.ofLongs(t, shape, values);
  }

  /**
   * The widths (elements a row) of the allreduces that sum {@code %sum} on the link, all
   * attributed to it, after checking its one LINK fence: the sums run on past their matmul, and
   * the fence tells the op that reads them.
   */
  static List<Long> linkSums(Compiled c) {
    List<Long> widths = new ArrayList<>();
    int fences = 0;
    for (var d : c.program.debug()) {
      if (dev.sohuc.isa.InsnCodec.decode(c.program.code().get(d.pc()))
          instanceof dev.sohuc.isa.Insn.Allreduce a) {
        assertEquals("all_reduce %sum", d.irOp());
        if (a.isFence()) {
          fences++;
        } else {
          widths.add(a.elemsImm());
        }
      }
    }
    assertEquals(1, fences, "LINK fences of all_reduce %sum");
    return widths;
  }

  static List<Tensor> list(Tensor... ts) {
    return new ArrayList<>(List.of(ts));
  }

  static ByteBuffer le(int n) {
    return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
  }
}
