package dev.sohuc.emu;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.Engine;
import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuReader;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Runs a {@code .sohu} program, in functional mode (real numbers) or timing mode (the cost
 * model, no data). Every error is an {@link EmulatorException}: {@link Trap} for a program fault,
 * {@link TargetException} for a bad machine description, the base type for bad inputs.
 *
 * <p>Launch protocol. Constants are loaded at their HBM address, inputs at their symbols' HBM
 * addresses, and the argument block (64-bit little-endian words: one per dim slot, an argument
 * array's capacity per array slot) at {@link #argBase()}: the first 4 KiB boundary above every
 * symbol, constant and the program's working memory (its metadata's {@code hbm_bytes}), so that
 * the program's own writes never reach the block it reads lengths from as it runs.
 */
public final class Emulator {
  /** Where the argument block goes: above everything else, aligned. */
  private static final long ARG_ALIGN = 4096;

  private final SohuProgram program;
  private final MachineDescription target;
  private final Options options;
  private final long argBase;
  private final Image image;

  public Emulator(SohuProgram program, MachineDescription target, Options options) {
    this.program = program;
    this.target = target;
    this.options = options == null ? Options.defaults() : options;
    this.image = new Image(program);
    long top = 0;
    if (program.constants() != null) {
      top = Math.max(top, regionEnd("constants", program.constants().hbmAddress(),
          program.constants().size(), target));
    }
    for (SohuProgram.Symbol s : program.symbols()) {
      top = Math.max(top, regionEnd("symbol " + s.name(), s.hbmAddress(), s.byteSize(), target));
    }
    top = Math.max(top, regionEnd("metadata hbm_bytes", 0, workingMemoryEnd(program), target));
    checkDisjoint(program);
    // every region ends within the target's HBM, so none of this overflows
    this.argBase = (top + ARG_ALIGN - 1) / ARG_ALIGN * ARG_ALIGN;
    long blockEnd = argBase + 8L * program.argWords();
    if (blockEnd > target.hbmBytes()) {
      throw new EmulatorException("the program's symbols, constants and argument block need "
          + blockEnd + " bytes of HBM; target " + target.name() + " has " + target.hbmBytes());
    }
    for (SohuProgram.ArgSlot a : program.args()) {
      if (a.isArray() && program.symbols().stream().noneMatch(
          s -> s.direction() == SohuProgram.Direction.IN && s.name().equals(a.name()))) {
        throw new EmulatorException("argument array " + a.describe() + ": the program has no "
            + "input of that name to take its values from");
      }
    }
  }

  /**
   * No symbol lies over the constants, and no two inputs over each other: loading one would
   * overwrite the other (weights or inputs) and the run would compute with them silently. An
   * output may share an input's bytes: a KV cache appended in place.
   */
  private static void checkDisjoint(SohuProgram program) {
    List<SohuProgram.Symbol> symbols = program.symbols();
    SohuProgram.Constants c = program.constants();
    for (int i = 0; i < symbols.size(); i++) {
      SohuProgram.Symbol s = symbols.get(i);
      if (c != null && overlap(s.hbmAddress(), s.byteSize(), c.hbmAddress(), c.size())) {
        throw new EmulatorException("symbol " + s.name() + ": HBM [" + s.hbmAddress() + ", +"
            + s.byteSize() + ") overlaps the constants [" + c.hbmAddress() + ", +" + c.size() + ")");
      }
      for (int j = 0; j < i && s.direction() == SohuProgram.Direction.IN; j++) {
        SohuProgram.Symbol o = symbols.get(j);
        if (o.direction() == SohuProgram.Direction.IN
            && overlap(s.hbmAddress(), s.byteSize(), o.hbmAddress(), o.byteSize())) {
          throw new EmulatorException("inputs " + o.name() + " and " + s.name() + " overlap in HBM ([" + o.hbmAddress()
              + ", +" + o.byteSize() + ") and [" + s.hbmAddress() + ", +" + s.byteSize() + "))");
        }
      }
    }
  }

  /** Whether [a, a+n) and [b, b+m) share a byte (both lie inside HBM: no overflow). */
  private static boolean overlap(long a, long n, long b, long m) {
    return n > 0 && m > 0 && a < b + m && b < a + n;
  }

  /**
   * The end of a region the container places in HBM, checked to lie inside the target's HBM
   * before any sum of addresses can wrap past 2^63 (and so slip under the check of the total).
   */
  private static long regionEnd(String what, long address, long bytes, MachineDescription target) {
    long hbm = target.hbmBytes();
    if (address < 0 || bytes < 0 || address > hbm || bytes > hbm - address) {
      throw new EmulatorException(what + ": HBM [" + Long.toUnsignedString(address) + ", +"
          + Long.toUnsignedString(bytes) + ") lies outside target " + target.name() + "'s "
          + hbm + " bytes of HBM");
    }
    return address + bytes;
  }

  /** The end of the HBM the program says it uses (metadata {@code hbm_bytes}), else 0. */
  private static long workingMemoryEnd(SohuProgram program) {
    String v = program.metadata().get("hbm_bytes");
    if (v == null) {
      return 0;
    }
    try {
      long end = Long.parseLong(v);
      if (end >= 0) {
        return end;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new EmulatorException("metadata hbm_bytes \"" + v + "\" is not a byte count");
  }

  /**
   * The HBM address of argument-block word 0 ({@code ldarg} reads argBase + 8 * (index + rs)).
   */
  public long argBase() {
    return argBase;
  }

  /**
   * The argument-block word {@code ldarg} reads, {@code index + rs}; a fault unless it lies in
   * the block's {@code words} words, so a bad register never reads the HBM beyond the block.
   */
  static int argWord(int index, long rs, int words) {
    if (rs < -index || rs >= words - index) {
      throw Fault.oob("ldarg of argument-block word " + index + " + " + rs + " (rs) is outside "
          + (words == 0 ? "the empty argument block" : "the block's words 0.." + (words - 1)));
    }
    return (int) (index + rs);
  }

  public MachineDescription target() {
    return target;
  }

  /**
   * A one-line warning when the program was compiled for another machine description (by name,
   * or by SHA-256 when the program records one), else null. Running it anyway is allowed: the
   * emulator checks every access against the target it runs on.
   */
  public String targetWarning() {
    SohuProgram.Target t = program.target();
    if (t == null || t.name().equals("none")) {
      return null;
    }
    if (!t.name().equals(target.name())) {
      return "the program was compiled for target " + t.name() + ", running it on "
          + target.name() + " (" + target.origin() + ")";
    }
    if (!t.sha256().equals(SohuProgram.Target.NO_HASH) && !t.sha256().equals(target.sha256())) {
      return "the program was compiled for a different version of target " + t.name()
          + " (SHA-256 " + t.sha256().substring(0, 12) + "..., this one is "
          + target.sha256().substring(0, 12) + "...)";
    }
    return null;
  }

  // ---------------------------------------------------------------------------------------------
  // Functional mode.

  /**
   * Runs the program on real numbers. {@code inputs} binds every input symbol by name;
   * {@code args} gives symbolic dimensions (those not given are taken from the input shapes).
   * Returns every output symbol.
   */
  public FunctionalResult runFunctional(Map<String, HostTensor> inputs, Map<String, Long> args) {
    try {
      Map<String, Long> dims = new LinkedHashMap<>();
      FunctionalMachine m = prepareFunctional(inputs, args, dims);
      m.run();
      Map<String, HostTensor> out = new LinkedHashMap<>();
      for (SohuProgram.Symbol s : program.symbols()) {
        if (s.direction() == SohuProgram.Direction.OUT) {
          long[] shape = shape(s, dims);
          long bytes = bytes(s, shape);
          byte[] data = new byte[(int) bytes];
          transfer(m, s, shape, data, false);
          out.put(s.name(), new HostTensor(s.dtype(), shape, data));
        }
      }
      return new FunctionalResult(out, dims, m.issued());
    } catch (IsaException e) {
      throw new EmulatorException(e.getMessage(), e);
    } catch (Fault f) {
      throw new EmulatorException(f.getMessage());
    } catch (OutOfMemoryError e) {
      throw new EmulatorException("the host ran out of memory emulating this program");
    }
  }

  /** Builds the functional machine with constants, inputs and the argument block loaded. */
  FunctionalMachine prepareFunctional(Map<String, HostTensor> inputs, Map<String, Long> args,
      Map<String, Long> dims) {
    bindDims(inputs, args, dims, true);
    FunctionalMachine m = new FunctionalMachine(image, target, options);
    m.setArgBlock(argBase, program.argWords());
    SohuProgram.Constants c = program.constants();
    if (c != null) {
      byte[] bytes = switch (c) {
        case SohuProgram.InlineConstants in -> in.bytes();
        case SohuProgram.ExternalConstants ex -> {
          if (options.programFile() == null) {
            throw new EmulatorException("the constants live in the side file " + ex.fileName()
                + "; give the .sohu path (Options.withProgramFile) to find it");
          }
          yield SohuReader.readSideFile(options.programFile(), ex);
        }
      };
      load(m, "constants", c.hbmAddress(), bytes);
    }
    for (SohuProgram.Symbol s : program.symbols()) {
      if (s.direction() == SohuProgram.Direction.IN) {
        HostTensor t = inputs.get(s.name());
        try {
          transfer(m, s, t.shape(), t.data(), true);
        } catch (Fault f) {
          throw new EmulatorException("input " + s.name() + ": " + f.getMessage());
        }
      }
    }
    long[] block = argBlock(dims, arrayValues(inputs));
    for (int i = 0; i < block.length; i++) {
      m.hbm.writeLong(argBase + 8L * i, block[i]);
    }
    return m;
  }

  /**
   * The values of the program's argument arrays, by input name, from those of {@code inputs}
   * that fill one: what functional mode writes, for {@link #runTiming(Map, Map)} on real inputs.
   */
  public Map<String, long[]> arrayValues(Map<String, HostTensor> inputs) {
    Map<String, long[]> out = new LinkedHashMap<>();
    for (SohuProgram.ArgSlot a : program.args()) {
      if (a.isArray() && inputs.containsKey(a.name())) {
        try {
          out.put(a.name(), inputs.get(a.name()).integers());
        } catch (EmulatorException e) {
          throw new EmulatorException("input " + a.name() + " fills argument array "
              + a.describe() + ": " + e.getMessage());
        }
      }
    }
    return out;
  }

  /**
   * Copies a symbol's dense host bytes into HBM ({@code write}) or out of it, in its layout: row
   * major, each dim with a capacity allocated at that extent (the contiguous runs are what lies
   * inside the last such dim).
   */
  private static void transfer(FunctionalMachine m, SohuProgram.Symbol s, long[] shape,
      byte[] dense, boolean write) {
    int rank = shape.length;
    long[] laidStride = new long[rank];
    long[] denseStride = new long[rank];
    long laid = s.dtype().bytes();
    long packed = s.dtype().bytes();
    int lastCapacity = -1;
    for (int i = rank - 1; i >= 0; i--) {
      laidStride[i] = laid;
      denseStride[i] = packed;
      long extent = capacity(s.shape().get(i));
      if (extent > 0 && lastCapacity < 0) {
        lastCapacity = i;
      }
      try {
        laid = Math.multiplyExact(laid, extent > 0 ? extent : shape[i]);
      } catch (ArithmeticException e) {
        throw Fault.oob("symbol " + s.name() + " spans more than 2^63 bytes of HBM");
      }
      packed *= shape[i];
    }
    m.hbm.check(s.hbmAddress(), laid);
    if (lastCapacity < 0) {
      if (write) {
        m.hbm.write(s.hbmAddress(), dense, 0, dense.length);
      } else {
        m.hbm.read(s.hbmAddress(), dense, 0, dense.length);
      }
      return;
    }
    // one run per index of the dims before the last dim with a capacity
    long run = shape[lastCapacity] * denseStride[lastCapacity];
    long[] index = new long[lastCapacity];
    for (long done = 0; done < dense.length; done += run) {
      long at = s.hbmAddress();
      long from = 0;
      for (int i = 0; i < lastCapacity; i++) {
        at += index[i] * laidStride[i];
        from += index[i] * denseStride[i];
      }
      m.hbm.check(at, run);
      if (write) {
        m.hbm.write(at, dense, (int) from, (int) run);
      } else {
        m.hbm.read(at, dense, (int) from, (int) run);
      }
      for (int i = lastCapacity - 1; i >= 0 && ++index[i] == shape[i]; i--) {
        index[i] = 0;
      }
    }
  }

  /** The extent a dim is laid out at when that is its capacity, else 0. */
  private static long capacity(SohuProgram.Dim d) {
    return d instanceof SohuProgram.Dim.Sym sym ? sym.capacity() : 0;
  }

  private static void load(FunctionalMachine m, String what, long addr, byte[] bytes) {
    try {
      m.hbm.check(addr, bytes.length);
      m.hbm.write(addr, bytes, 0, bytes.length);
    } catch (Fault f) {
      throw new EmulatorException(what + ": " + f.getMessage());
    }
  }

  private void bindDims(Map<String, HostTensor> inputs, Map<String, Long> args,
      Map<String, Long> dims, boolean withInputs) {
    TreeSet<String> known = new TreeSet<>();
    for (SohuProgram.ArgSlot a : program.args()) {
      if (a.isArray()) {
        known.addAll(symbolsOf(a.values().below()));
      } else {
        known.add(a.name());
      }
    }
    for (SohuProgram.Symbol s : program.symbols()) {
      for (SohuProgram.Dim d : s.shape()) {
        if (d instanceof SohuProgram.Dim.Sym sym) {
          known.add(sym.name());
        }
      }
    }
    for (Map.Entry<String, Long> a : args.entrySet()) {
      if (!known.contains(a.getKey())) {
        throw new EmulatorException("argument " + a.getKey() + ": the program has no symbolic "
            + "dimension of that name (it has: " + (known.isEmpty() ? "none" : String.join(", ",
            known)) + ")");
      }
      if (a.getValue() == null || a.getValue() < 0) {
        throw new EmulatorException("argument " + a.getKey() + " = " + a.getValue()
            + " must be a non-negative number");
      }
      dims.put(a.getKey(), a.getValue());
    }
    List<String> inputNames = new ArrayList<>();
    List<String[]> indexLimits = withInputs ? limits("index_limits", "<") : List.of();
    for (SohuProgram.Symbol s : program.symbols()) {
      if (s.direction() != SohuProgram.Direction.IN) {
        continue;
      }
      inputNames.add(s.name());
      if (!withInputs) {
        continue;
      }
      HostTensor t = inputs.get(s.name());
      if (t == null) {
        throw new EmulatorException("input " + s.name() + ": missing (the program expects "
            + describe(s) + ")");
      }
      if (t.dtype() != s.dtype()) {
        throw new EmulatorException("input " + s.name() + ": dtype " + t.dtype().asmName()
            + ", but the program expects " + describe(s));
      }
      long[] shape = t.shape();
      if (shape.length != s.shape().size()) {
        throw new EmulatorException("input " + s.name() + ": shape " + Arrays.toString(shape)
            + " has rank " + shape.length + ", but the program expects " + describe(s));
      }
      for (int i = 0; i < shape.length; i++) {
        SohuProgram.Dim d = s.shape().get(i);
        if (d instanceof SohuProgram.Dim.Fixed f && f.size() != shape[i]) {
          throw new EmulatorException("input " + s.name() + ": dimension " + i + " is "
              + shape[i] + ", but the program expects " + describe(s));
        }
        if (capacity(d) > 0 && shape[i] > capacity(d)) {
          throw new EmulatorException("input " + s.name() + ": dimension " + i + " is "
              + shape[i] + ", above the capacity " + capacity(d) + " the program lays it out at");
        }
        if (d instanceof SohuProgram.Dim.Sym sym) {
          Long bound = dims.putIfAbsent(sym.name(), shape[i]);
          if (bound != null && bound != shape[i]) {
            throw new EmulatorException("input " + s.name() + ": dimension " + i + " ("
                + sym.name() + ") is " + shape[i] + ", but " + sym.name() + " = " + bound);
          }
        }
      }
      if (laidOutBytes(s, shape) > s.byteSize()) {
        throw new EmulatorException("input " + s.name() + ": " + (long) laidOutBytes(s, shape)
            + " bytes, more than the " + s.byteSize() + " bytes the program reserves for it (a "
            + "symbolic dimension above its compiled bound?)");
      }
      checkIndexLimit(s.name(), t, indexLimits);
    }
    for (String name : inputs.keySet()) {
      if (!inputNames.contains(name)) {
        throw new EmulatorException("input " + name + ": the program has no input of that name "
            + "(inputs: " + (inputNames.isEmpty() ? "none" : String.join(", ", inputNames)) + ")");
      }
    }
    checkSlots(dims);
    checkDimLimits(dims);
  }

  /**
   * The compiler's dim limits (metadata {@code dim_limits}, docs/isa.md "Launch limits"): each
   * bound polynomial at most its number or its other polynomial, as the slices the program reads
   * need (of a static table, or of a symbolic axis up to a symbolic end).
   */
  private void checkDimLimits(Map<String, Long> dims) {
    for (String[] limit : limits("dim_limits", "<=", true)) {
      Long v = polynomial(limit[0], dims);
      Long rows = polynomial(limit[1], dims);
      if (v != null && rows != null && v > rows) {
        boolean table = limit[1].equals(rows.toString());
        throw new EmulatorException("dimensions: " + limit[0] + " = " + v + " exceeds " + limit[1]
            + (table ? ": the program slices a table of " + rows + " rows up to "
            : " = " + rows + ": the program slices its " + rows + " rows up to ") + limit[0]
            + " (metadata dim_limits)");
      }
    }
  }

  /**
   * The compiler's index limit on input {@code name} ({@code indexLimits}, metadata
   * {@code index_limits}): every value in [0, its number), the rows of the table it picks rows
   * of.
   */
  private void checkIndexLimit(String name, HostTensor t, List<String[]> indexLimits) {
    for (String[] limit : indexLimits) {
      if (!limit[0].equals(name)) {
        continue;
      }
      if (t.dtype() != DType.I64 && t.dtype() != DType.I32) {
        throw new EmulatorException("input " + name + ": dtype " + t.dtype().asmName()
            + ", but metadata index_limits takes its values as row indices");
      }
      long rows = Long.parseLong(limit[1]);
      long[] values = t.integers();
      for (int i = 0; i < values.length; i++) {
        if (values[i] < 0 || values[i] >= rows) {
          throw new EmulatorException("input " + name + ": element " + i + " is " + values[i]
              + ", outside [0, " + rows + "): the rows of the table it indexes (metadata "
              + "index_limits)");
        }
      }
    }
  }

  /**
   * Timing mode, which has no input tensors whose sizes functional mode checks: each input at
   * these dims must fit the bytes the program reserves for it (no dim above its compiled bound).
   */
  private void checkInputsFit(Map<String, Long> dims) {
    for (SohuProgram.Symbol s : program.symbols()) {
      if (s.direction() != SohuProgram.Direction.IN) {
        continue;
      }
      long[] shape = new long[s.shape().size()];
      boolean known = true;
      for (int i = 0; i < shape.length && known; i++) {
        SohuProgram.Dim d = s.shape().get(i);
        Long v = d instanceof SohuProgram.Dim.Fixed f ? Long.valueOf(f.size())
            : polynomial(((SohuProgram.Dim.Sym) d).name(), dims);
        known = v != null;
        shape[i] = known ? v : 0;
      }
      if (known && laidOutBytes(s, shape) > s.byteSize()) {
        throw new EmulatorException("input " + s.name() + ": " + describe(s) + " at "
            + Arrays.toString(shape) + " needs " + String.format(java.util.Locale.ROOT, "%.0f",
            laidOutBytes(s, shape)) + " bytes, more than the " + s.byteSize()
            + " the program reserves for it (a symbolic dimension above its compiled bound)");
      }
    }
  }

  /** Metadata {@code key}'s entries, each split at {@code op} into its two sides. */
  private List<String[]> limits(String key, String op) {
    return limits(key, op, false);
  }

  /**
   * As above; with {@code dims}, the right side may be a polynomial of dims too (a slice of a
   * symbolic axis: {@code past+seq<=total}).
   */
  private List<String[]> limits(String key, String op, boolean dims) {
    String text = program.metadata().get(key);
    List<String[]> out = new ArrayList<>();
    if (text == null) {
      return out;
    }
    for (String entry : text.split(",")) {
      int at = entry.indexOf(op);
      String bound = at < 0 ? "" : entry.substring(at + op.length());
      boolean number = bound.matches("[0-9]{1,18}");
      if (at <= 0 || !(number || dims && bound.matches("[A-Za-z0-9_+*\\-\"/.]{1,200}"))) {
        throw new EmulatorException("metadata " + key + ": entry '" + entry + "' is not of the "
            + "form NAME" + op + (dims ? "DIMS" : "NUMBER"));
      }
      out.add(new String[] {entry.substring(0, at), bound});
    }
    return out;
  }

  private void checkSlots(Map<String, Long> dims) {
    for (SohuProgram.ArgSlot a : program.args()) {
      if (!a.isArray() && !dims.containsKey(a.name())) {
        throw new EmulatorException("argument " + a.name() + " (argument-block word " + a.index()
            + "): not given, and no input shape implies it");
      }
    }
  }

  private static String describe(SohuProgram.Symbol s) {
    return s.dtype().asmName() + " " + s.shape();
  }

  private static long[] shape(SohuProgram.Symbol s, Map<String, Long> dims) {
    long[] shape = new long[s.shape().size()];
    for (int i = 0; i < shape.length; i++) {
      SohuProgram.Dim d = s.shape().get(i);
      if (d instanceof SohuProgram.Dim.Fixed f) {
        shape[i] = f.size();
      } else {
        String name = ((SohuProgram.Dim.Sym) d).name();
        Long v = dims.containsKey(name) ? dims.get(name) : polynomial(name, dims);
        if (v == null) {
          throw new EmulatorException("output " + s.name() + ": symbolic dimension " + name
              + " is not bound (give it as an argument)");
        }
        shape[i] = v;
      }
    }
    return shape;
  }

  /**
   * The value of a dimension the compiler wrote as a polynomial of symbols, such as
   * {@code past+seq}, {@code 8*"batch/8"} or {@code 2*a*b-1}; null when a symbol in it is unbound
   * or it is not one.
   *
   * @throws EmulatorException when its value overflows 64 bits
   */
  public static Long polynomial(String text, Map<String, Long> dims) {
    long sum = 0;
    int sign = 1;
    int i = 0;
    String t = text.replace(" ", "");
    try {
      while (i < t.length()) {
        int j = i;
        while (j < t.length() && t.charAt(j) != '+' && (t.charAt(j) != '-' || j == i)) {
          j++;
        }
        long term = 1;
        for (String f : t.substring(i, j).split("\\*")) {
          Long factor = f.matches("-?[0-9]{1,18}") ? Long.valueOf(f) : dims.get(f);
          if (factor == null && f.length() > 2 && f.startsWith("\"") && f.endsWith("\"")) {
            factor = dims.get(f.substring(1, f.length() - 1));  // a quoted name such as "seq/8"
          }
          if (factor == null) {
            return null;
          }
          term = Math.multiplyExact(term, factor);
        }
        sum = Math.addExact(sum, Math.multiplyExact(sign, term));
        if (j < t.length()) {
          sign = t.charAt(j) == '-' ? -1 : 1;
        }
        i = j + 1;
      }
    } catch (ArithmeticException e) {
      throw new EmulatorException("dimension " + text + " overflows 64 bits at " + dims);
    }
    return sum;
  }

  /** The symbol names in a dimension written as a polynomial ({@link #polynomial}'s form). */
  static List<String> symbolsOf(String text) {
    return java.util.Arrays.stream(text.replace(" ", "").split("[-+*]"))
        .filter(f -> !f.isEmpty() && !f.matches("[0-9]+")).toList();
  }

  /** The bytes a symbol of this shape spans in HBM (a dim with a capacity at that extent). */
  private static double laidOutBytes(SohuProgram.Symbol s, long[] shape) {
    double n = s.dtype().bytes();
    for (int i = 0; i < shape.length; i++) {
      n *= Math.max(shape[i], capacity(s.shape().get(i)));
    }
    return n;
  }

  private static long bytes(SohuProgram.Symbol s, long[] shape) {
    double n = s.dtype().bytes();
    for (int i = 0; i < shape.length; i++) {
      if (capacity(s.shape().get(i)) > 0 && shape[i] > capacity(s.shape().get(i))) {
        throw new EmulatorException("output " + s.name() + ": dimension " + i + " is " + shape[i]
            + ", above the capacity " + capacity(s.shape().get(i)) + " it is laid out at");
      }
      n *= shape[i];
    }
    if (laidOutBytes(s, shape) > s.byteSize()) {
      throw new EmulatorException("output " + s.name() + ": shape " + Arrays.toString(shape)
          + " needs " + (long) laidOutBytes(s, shape) + " bytes, more than the " + s.byteSize()
          + " reserved for it");
    }
    if (n > Integer.MAX_VALUE - 16) {
      throw new EmulatorException("output " + s.name() + ": shape " + Arrays.toString(shape)
          + " needs " + (long) n + " bytes, more than one host array holds (2 GiB)");
    }
    return (long) n;
  }

  // ---------------------------------------------------------------------------------------------
  // Timing mode.

  /** Runs the cost model; {@code dims} must give every dim of the argument block. */
  public TimingReport runTiming(Map<String, Long> dims) {
    return runTiming(dims, Map.of());
  }

  /**
   * Runs the cost model; {@code dims} must give every dim of the argument block, and
   * {@code arrays} the values of every argument array by its input's name (timing mode has no
   * input tensors to take them from), checked as functional mode checks the inputs.
   */
  public TimingReport runTiming(Map<String, Long> dims, Map<String, long[]> arrays) {
    TraceWriter trace = null;
    try {
      long[] block = timingArgBlock(dims, arrays);
      if (options.trace() != null) {
        String name = program.metadata().getOrDefault("name", options.programFile() == null
            ? "program" : options.programFile().getFileName().toString());
        trace = new TraceWriter(options.trace(), target, name, options.traceMaxEvents());
      }
      TimingMachine t = new TimingMachine(image, target, options, block, trace);
      long cycles = t.run();
      if (trace != null) {
        trace.close();
      }
      return report(t, cycles, trace);
    } catch (IsaException e) {
      throw new EmulatorException(e.getMessage(), e);
    } catch (java.io.UncheckedIOException e) {
      throw new EmulatorException("cannot write the trace " + options.trace() + ": "
          + e.getCause().getMessage());
    } finally {
      if (trace != null) {
        try {
          trace.close();
        } catch (RuntimeException ignored) {
          // already closed, or the original error is the one to report
        }
      }
    }
  }

  /**
   * A timing machine for these dims and argument arrays, not yet run: one chip of a
   * {@link MultiChipTiming} group.
   */
  TimingMachine newTimingMachine(Map<String, Long> dims, Map<String, long[]> arrays) {
    return new TimingMachine(image, target, options, timingArgBlock(dims, arrays),
        null);
  }

  /**
   * The argument block from {@code dims} and {@code arrays} alone: timing mode has no input
   * tensors whose shapes could bind a dim.
   */
  private long[] timingArgBlock(Map<String, Long> dims, Map<String, long[]> arrays) {
    Map<String, Long> bound = new LinkedHashMap<>();
    bindDims(Map.of(), dims, bound, false);
    checkInputsFit(bound);
    List<String> names = program.args().stream().filter(SohuProgram.ArgSlot::isArray)
        .map(SohuProgram.ArgSlot::name).toList();
    for (String name : arrays.keySet()) {
      if (!names.contains(name)) {
        throw new EmulatorException("argument array " + name + ": the program has no argument "
            + "array of that name (it has: " + (names.isEmpty() ? "none" : String.join(", ",
            names)) + ")");
      }
    }
    return argBlock(bound, arrays);
  }

  /**
   * The argument block: each dim's value, and each argument array's values (zeros after them),
   * checked to fit its capacity and to lie in [0, its bound dim).
   */
  private long[] argBlock(Map<String, Long> dims, Map<String, long[]> arrays) {
    long[] block = new long[program.argWords()];
    for (SohuProgram.ArgSlot a : program.args()) {
      if (!a.isArray()) {
        block[a.index()] = dims.get(a.name());
        continue;
      }
      long[] values = arrays.get(a.name());
      if (values == null) {
        throw new EmulatorException("argument array " + a.describe() + ": not given (the "
            + "values of input " + a.name() + ")");
      }
      if (values.length > a.words()) {
        throw new EmulatorException("input " + a.name() + ": " + values.length + " elements, "
            + "more than the " + a.words() + " words of its argument array " + a.describe());
      }
      String below = a.values().below();
      Long bound = polynomial(below, dims);
      if (bound == null) {
        throw new EmulatorException("input " + a.name() + ": the bound of its argument array, "
            + "symbolic dimension " + below + ", is not bound (give it as an argument)");
      }
      for (int i = 0; i < values.length; i++) {
        if (values[i] < 0 || values[i] >= bound) {
          throw new EmulatorException("input " + a.name() + ": element " + i + " is " + values[i]
              + ", outside [0, " + below + ")" + (symbolsOf(below).isEmpty() ? "" : " with " + below + " = " + bound));
        }
      }
      System.arraycopy(values, 0, block, a.index(), values.length);
    }
    return block;
  }

  TimingReport report(TimingMachine t, long cycles) {
    return report(t, cycles, null);
  }

  private TimingReport report(TimingMachine t, long cycles, TraceWriter trace) {
    double seconds = cycles / target.clockHz();
    Map<Engine, TimingReport.EngineStats> engines = new EnumMap<>(Engine.class);
    for (Engine e : Engine.values()) {
      int i = e.ordinal();
      engines.put(e, new TimingReport.EngineStats(t.count[i], t.busy[i],
          cycles == 0 ? 0 : (double) t.busy[i] / cycles));
    }
    double flops = 0;
    double peakTime = 0;
    Map<DType, Long> macsByType = t.macsByType();
    for (Map.Entry<DType, Long> e : macsByType.entrySet()) {
      double f = 2.0 * e.getValue();
      flops += f;
      peakTime += f / target.peakFlops(e.getKey());
    }
    double peak = peakTime > 0 ? flops / peakTime : target.peakFlops(DType.F8E4M3);
    double achieved = seconds > 0 ? flops / seconds : 0;
    double bw = target.hbmBytesPerSecond();
    double intensity = t.hbmBytes == 0 ? Double.POSITIVE_INFINITY : flops / t.hbmBytes;
    double ridge = peak / bw;
    boolean computeBound = flops > 0 && intensity >= ridge;
    double attainable = Math.min(peak, Double.isInfinite(intensity) ? peak : intensity * bw);
    double fraction;
    if (flops > 0) {
      fraction = achieved / attainable;
    } else {
      fraction = seconds > 0 ? t.hbmBytes / seconds / bw : 0;
    }
    return new TimingReport(target.name(), target.clockHz(), cycles, seconds, t.issued, engines,
        macsByType, flops, peak,
        peak > 0 ? achieved / peak : 0, achieved / target.peakFlops(DType.F8E4M3), t.hbmBytes,
        bw, intensity, ridge, computeBound, attainable, fraction, options.trace(),
        t.opTimings(), trace == null ? 0 : trace.events(), trace != null && trace.truncated());
  }
}
