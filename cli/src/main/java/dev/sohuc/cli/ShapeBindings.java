package dev.sohuc.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine;

/**
 * The {@code --shape} options: {@code input_ids=1x128} fixes the whole shape of a model input,
 * {@code seq=128} binds a symbolic dim by name. A value with an {@code x} is a shape, a plain
 * number binds a dim.
 */
record ShapeBindings(Map<String, List<Long>> inputShapes, Map<String, Long> dimBindings) {
  /**
   * The largest dim a --shape may give: 2^40 elements along one axis is already more than a
   * chip's HBM holds, and the shape arithmetic after it (past + seq, rows x width) stays within
   * a long.
   */
  static final long MAX_DIM = 1L << 40;

  /** {@link #parse(List)}, with a malformed option reported as a usage error of {@code command}. */
  static ShapeBindings parse(List<String> options, CommandLine command) {
    try {
      return parse(options);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(command, e.getMessage());
    }
  }

  static ShapeBindings parse(List<String> options) {
    Map<String, List<Long>> shapes = new LinkedHashMap<>();
    Map<String, Long> dims = new LinkedHashMap<>();
    for (String option : options) {
      int eq = option.lastIndexOf('=');
      if (eq <= 0 || eq == option.length() - 1) {
        throw new IllegalArgumentException("--shape " + option + ": expected NAME=1x128 or SYMBOL=128");
      }
      String name = option.substring(0, eq);
      String value = option.substring(eq + 1);
      List<Long> numbers = new ArrayList<>();
      for (String part : value.split("x", -1)) {
        try {
          long n = Long.parseLong(part);
          if (n < 0) {
            throw new NumberFormatException();
          }
          numbers.add(n);
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("--shape " + option + ": '" + part
              + "' is not a non-negative number");
        }
        if (numbers.getLast() > MAX_DIM) {
          throw new IllegalArgumentException("--shape " + option + ": " + part + " is more than "
              + "2^40, larger than any tensor a chip holds");
        }
      }
      if (value.contains("x")) {
        shapes.put(name, List.copyOf(numbers));
      } else {
        dims.put(name, numbers.get(0));
      }
    }
    return new ShapeBindings(shapes, dims);
  }
}
