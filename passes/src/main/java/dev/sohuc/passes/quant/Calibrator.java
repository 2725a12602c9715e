package dev.sohuc.passes.quant;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.interp.Interpreter;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.TensorType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Loads calibration sets (folders of {@code input_N.pb}, the ONNX backend-test layout) and runs
 * the f32 IR over them on the reference interpreter, showing every value to an observer. Every
 * error names the folder or file: a missing or empty folder, files that do not match the model's
 * inputs in count, dtype or shape, and NaN or infinite values.
 */
public final class Calibrator {
  private static final Pattern INPUT_FILE = Pattern.compile("input_(\\d+)\\.pb");

  private Calibrator() {}

  /** One calibration set: the folder it came from and one tensor per model input. */
  public record CalibrationSet(Path dir, List<Tensor> inputs) {}

  /** Reads and checks every folder against {@code f}'s arguments. */
  public static List<CalibrationSet> load(List<Path> dirs, QuantOptions.TensorReader reader, Function f) {
    List<CalibrationSet> sets = new ArrayList<>();
    for (Path dir : dirs) {
      sets.add(load(dir, reader, f));
    }
    return sets;
  }

  static CalibrationSet load(Path dir, QuantOptions.TensorReader reader, Function f) {
    List<Value> args = f.arguments();
    String expected = "input_0.pb .. input_" + (args.size() - 1) + ".pb for the model's inputs "
        + args.stream().map(a -> "'" + a.name() + "'").toList();
    if (!Files.isDirectory(dir)) {
      throw new CalibrationException("calibration folder " + dir + " does not exist (expected " + expected + ")");
    }
    List<Integer> present = new ArrayList<>();
    try (Stream<Path> files = Files.list(dir)) {
      files.forEach(p -> {
        Matcher m = INPUT_FILE.matcher(p.getFileName().toString());
        if (m.matches()) {
          present.add(Integer.parseInt(m.group(1)));
        }
      });
    } catch (IOException e) {
      throw new CalibrationException("calibration folder " + dir + ": cannot list it: " + e.getMessage(), e);
    }
    if (present.isEmpty()) {
      throw new CalibrationException("calibration folder " + dir + " is empty: expected " + expected);
    }
    for (int i = 0; i < args.size(); i++) {
      if (!present.contains(i)) {
        throw new CalibrationException(dir.resolve("input_" + i + ".pb") + " is missing: expected " + expected);
      }
    }
    for (int i : present) {
      if (i >= args.size()) {
        throw new CalibrationException(dir.resolve("input_" + i + ".pb") + ": the model takes only "
            + args.size() + " inputs (" + expected + ")");
      }
    }
    List<Tensor> inputs = new ArrayList<>();
    for (int i = 0; i < args.size(); i++) {
      Path file = dir.resolve("input_" + i + ".pb");
      Tensor t;
      try {
        t = reader.read(file);
      } catch (RuntimeException e) {
        String msg = e.getMessage() == null ? e.toString() : e.getMessage();
        throw new CalibrationException(msg.contains(file.toString()) ? msg : file + ": " + msg, e);
      }
      check(file, args.get(i), t);
      inputs.add(t);
    }
    try {
      Interpreter.bindSymbols(f, inputs);
    } catch (IrException e) {
      throw new CalibrationException("calibration folder " + dir + ": " + e.getMessage(), e);
    }
    return new CalibrationSet(dir, List.copyOf(inputs));
  }

  /** dtype, rank, static dims, and finite values of one input file. */
  private static void check(Path file, Value arg, Tensor t) {
    TensorType type = arg.type();
    String what = file + " (input '" + arg.name() + "' of type " + type + ")";
    if (t.elementType() != type.elementType()) {
      throw new CalibrationException(what + ": has dtype " + t.elementType() + ", the model takes "
          + type.elementType());
    }
    if (t.rank() != type.rank()) {
      throw new CalibrationException(what + ": has shape " + Arrays.toString(t.shape()) + ", the model takes rank "
          + type.rank());
    }
    for (int d = 0; d < type.rank(); d++) {
      Dim dim = type.dim(d);
      if (dim.isStatic() && dim.value() != t.dim(d)) {
        throw new CalibrationException(what + ": has shape " + Arrays.toString(t.shape()) + ", dim " + d
            + " must be " + dim.value());
      }
    }
    if (t.isFloat()) {
      float[] v = t.floats();
      for (int i = 0; i < v.length; i++) {
        if (!Float.isFinite(v[i])) {
          throw new CalibrationException(what + ": element " + i + " is " + v[i]
              + "; calibration data must be finite");
        }
      }
    }
  }

  /** Runs the module's f32 entry function on every set, showing each value to {@code observer(set, value, tensor)}. */
  public static void run(Module m, List<CalibrationSet> sets, SetObserver observer) {
    Interpreter interp = new Interpreter(m);
    for (int s = 0; s < sets.size(); s++) {
      int set = s;
      try {
        interp.run(m.main(), sets.get(s).inputs(), (v, t) -> observer.onValue(set, v, t));
      } catch (IrException e) {
        throw new CalibrationException("calibration folder " + sets.get(s).dir() + ": the f32 model fails: "
            + e.getMessage(), e);
      }
    }
  }

  /** Sees each value of each calibration run. */
  @FunctionalInterface
  public interface SetObserver {
    void onValue(int set, Value value, Tensor tensor);
  }
}
