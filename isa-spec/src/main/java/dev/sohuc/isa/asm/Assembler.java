package dev.sohuc.isa.asm;

import dev.sohuc.isa.AsmEnum;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Field;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.InsnDef;
import dev.sohuc.isa.InsnTable;
import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.Operand;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.asm.AsmParser.AddSubContext;
import dev.sohuc.isa.asm.AsmParser.ArgContext;
import dev.sohuc.isa.asm.AsmParser.DimContext;
import dev.sohuc.isa.asm.AsmParser.DirectiveContext;
import dev.sohuc.isa.asm.AsmParser.ExprContext;
import dev.sohuc.isa.asm.AsmParser.FloatContext;
import dev.sohuc.isa.asm.AsmParser.InstructionContext;
import dev.sohuc.isa.asm.AsmParser.IntContext;
import dev.sohuc.isa.asm.AsmParser.LabelContext;
import dev.sohuc.isa.asm.AsmParser.LineContext;
import dev.sohuc.isa.asm.AsmParser.MulDivContext;
import dev.sohuc.isa.asm.AsmParser.NameContext;
import dev.sohuc.isa.asm.AsmParser.OperandContext;
import dev.sohuc.isa.asm.AsmParser.ParensContext;
import dev.sohuc.isa.asm.AsmParser.ShiftContext;
import dev.sohuc.isa.asm.AsmParser.UnaryContext;
import dev.sohuc.isa.container.SohuProgram;
import dev.sohuc.isa.container.SohuProgram.ArgSlot;
import dev.sohuc.isa.container.SohuProgram.DebugEntry;
import dev.sohuc.isa.container.SohuProgram.Dim;
import dev.sohuc.isa.container.SohuProgram.Direction;
import dev.sohuc.isa.container.SohuProgram.Symbol;
import dev.sohuc.isa.container.SohuProgram.Target;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.antlr.v4.runtime.BaseErrorListener;
import org.antlr.v4.runtime.CharStream;
import org.antlr.v4.runtime.CharStreams;
import org.antlr.v4.runtime.CommonTokenStream;
import org.antlr.v4.runtime.ParserRuleContext;
import org.antlr.v4.runtime.RecognitionException;
import org.antlr.v4.runtime.Recognizer;
import org.antlr.v4.runtime.Token;

/**
 * The assembler: sohu assembly text to a {@link SohuProgram}. Operand kinds, order, keywords and
 * ranges all come from {@link InsnTable}. Every error is an {@link IsaException} whose message is
 * {@code file:line:col: what is wrong (in "the instruction")}.
 */
public final class Assembler {
  /**
   * Bounds the depth of an expression's tree, which the parser and the evaluator both recurse
   * on: far above any real line ({@code li r10, 128 * K * 2}), far below a stack overflow.
   */
  private static final int MAX_OPERATORS_PER_LINE = 256;
  private static final Set<String> OPERATORS = Set.of("(", "-", "+", "~", "*", "/", "%", "<<", ">>");
  /** Longest piece of a line quoted in a message. */
  private static final int MAX_QUOTE = 80;

  private final String file;
  private final String[] lines;
  private final Map<String, Integer> labels = new HashMap<>();
  private final Map<String, Number> constants = new HashMap<>();
  private final Map<String, Integer> regAliases = new HashMap<>();
  private int pc;

  private Assembler(String file, String source) {
    this.file = file;
    this.lines = source.split("\r?\n", -1);
  }

  /** Assembles a whole program, with its directives. */
  public static SohuProgram assemble(String source, String file) {
    return new Assembler(file, source).run(source);
  }

  /** Assembles instructions only (directives other than .equ and .reg are accepted and ignored). */
  public static List<Word> assembleCode(String source, String file) {
    return assemble(source, file).code();
  }

  private SohuProgram run(String source) {
    if (!source.endsWith("\n")) {
      source = source + "\n";
    }
    AsmLexer lexer = new OperatorBoundedLexer(CharStreams.fromString(source, file));
    AsmParser parser = new AsmParser(new CommonTokenStream(lexer));
    BaseErrorListener thrower = new BaseErrorListener() {
      @Override
      public void syntaxError(Recognizer<?, ?> r, Object sym, int line, int col, String msg,
          RecognitionException e) {
        throw new IsaException(file + ":" + line + ":" + (col + 1) + ": syntax error: " + msg
            + inLine(line));
      }
    };
    lexer.removeErrorListeners();
    lexer.addErrorListener(thrower);
    parser.removeErrorListeners();
    parser.addErrorListener(thrower);
    List<LineContext> program = parser.program().line();

    // Pass 1: label addresses (every instruction is one word, so they are known up front).
    pc = 0;
    for (LineContext l : program) {
      for (LabelContext lab : l.label()) {
        String name = lab.IDENT().getText();
        checkNewName(name, lab.start);
        labels.put(name, pc);
      }
      if (l.statement() != null && l.statement().instruction() != null) {
        pc++;
      }
    }
    // Pass 2: everything else, in order.
    Target target = new Target("none", Target.NO_HASH);
    List<Word> code = new ArrayList<>();
    List<Symbol> symbols = new ArrayList<>();
    List<DebugEntry> debug = new ArrayList<>();
    TreeMap<String, String> meta = new TreeMap<>();
    List<ArgSlot> args = new ArrayList<>();
    SohuProgram.Constants consts = null;
    DebugEntry pendingDebug = null;
    pc = 0;
    for (LineContext l : program) {
      if (l.statement() == null) {
        continue;
      }
      if (l.statement().instruction() != null) {
        code.add(instruction(l.statement().instruction()));
        if (pendingDebug != null) {
          debug.add(new DebugEntry(pc, pendingDebug.irOp(), pendingDebug.location()));
          pendingDebug = null;
        }
        pc++;
        continue;
      }
      DirectiveContext d = l.statement().directive();
      List<ArgContext> a = d.arg();
      String name = d.DIRECTIVE().getText();
      switch (name) {
        case ".equ" -> {
          arity(d, 2);
          String n = ident(a.get(0));
          checkNewName(n, a.get(0).start);
          constants.put(n, number(expr(a.get(1)), "value of " + n));
        }
        case ".reg" -> {
          arity(d, 2);
          String n = ident(a.get(0));
          checkNewName(n, a.get(0).start);
          regAliases.put(n, register(expr(a.get(1)), "register of " + n));
        }
        case ".target" -> {
          arity(d, 2);
          String hash = string(a.get(1));
          if (!hash.matches("[0-9a-fA-F]{64}")) {
            throw error(a.get(1).start, "target hash must be 64 hex digits (SHA-256)");
          }
          target = new Target(string(a.get(0)), hash);
        }
        case ".meta" -> {
          arity(d, 2);
          if (meta.put(string(a.get(0)), string(a.get(1))) != null) {
            throw error(a.get(0).start, "metadata key defined twice");
          }
        }
        case ".arg" -> {
          if (a.size() != 2 && a.size() != 4) {
            throw error(d.start, ".arg takes 2 arguments (a dim: name, index) or 4 (an array: "
                + "input name, index, capacity, below), got " + a.size());
          }
          String n = name(a.get(0));
          long idx = integer(expr(a.get(1)), "argument index");
          ArgSlot.Values values = null;
          if (a.size() == 4) {
            long capacity = integer(expr(a.get(2)), "argument array capacity");
            if (capacity < 1 || capacity > ArgSlot.MAX_WORDS) {
              throw error(a.get(2).start, "argument array capacity " + capacity
                  + " is out of range 1.." + ArgSlot.MAX_WORDS);
            }
            values = new ArgSlot.Values((int) capacity, name(a.get(3)));
          }
          long words = values == null ? 1 : values.capacity();
          if (idx < 0 || idx + words > ArgSlot.MAX_WORDS) {
            throw error(a.get(1).start, "argument index " + idx + (words > 1 ? " with "
                + words + " words" : "") + " does not fit the " + ArgSlot.MAX_WORDS
                + "-word argument block");
          }
          ArgSlot slot = new ArgSlot(n, (int) idx, values);
          for (ArgSlot s : args) {
            if (s.name().equals(n)) {
              throw error(a.get(0).start, "argument " + n + " defined twice");
            }
            if (s.overlaps(slot)) {
              throw error(a.get(1).start, "argument " + slot.describe() + " overlaps argument "
                  + s.describe());
            }
          }
          args.add(slot);
        }
        case ".symbol" -> {
          arity(d, 6);
          String dir = ident(a.get(0));
          if (!dir.equals("in") && !dir.equals("out")) {
            throw error(a.get(0).start, "symbol direction must be in or out, not " + dir);
          }
          String n = string(a.get(1));
          DType dt = enumValue(expr(a.get(2)), DType.class, List.of(DType.values()), "dtype");
          if (a.get(3).shape() == null) {
            throw error(a.get(3).start, "expected a shape like [\"seq\", 384] (a symbolic dim "
                + "laid out at a capacity: \"past\"@2176)");
          }
          List<Dim> shape = new ArrayList<>();
          for (DimContext dim : a.get(3).shape().dim()) {
            if (dim.STRING() != null) {
              long capacity = dim.capacity == null ? 0 : integer(dim.capacity, "capacity");
              if (dim.capacity != null && capacity <= 0) {
                throw error(dim.capacity.start, "capacity " + capacity + " is not positive");
              }
              shape.add(new Dim.Sym(unquote(dim.STRING().getSymbol()), capacity));
            } else {
              long v = integer(dim.expr(), "dimension");
              if (v < 0) {
                throw error(dim.start, "dimension " + v + " is negative");
              }
              shape.add(new Dim.Fixed(v));
            }
          }
          for (Symbol s : symbols) {
            if (s.name().equals(n)) {
              throw error(a.get(1).start, "symbol " + n + " defined twice");
            }
          }
          long bytes = integer(expr(a.get(5)), "byte size");
          long needed = laidOutBytes(shape, dt);
          if (needed > bytes) {
            throw error(a.get(5).start, "symbol " + n + " of " + dt.asmName() + " " + shape
                + " needs " + (needed == Long.MAX_VALUE ? "more than 2^63 - 1" : needed)
                + " bytes, more than the " + bytes + " it reserves");
          }
          symbols.add(new Symbol(n, dir.equals("in") ? Direction.IN : Direction.OUT, dt, shape,
              integer(expr(a.get(4)), "HBM address"), bytes));
        }
        case ".constfile" -> {
          arity(d, 4);
          String hash = string(a.get(2));
          if (!hash.matches("[0-9a-fA-F]{64}")) {
            throw error(a.get(2).start, "constants hash must be 64 hex digits (SHA-256)");
          }
          consts = new SohuProgram.ExternalConstants(integer(expr(a.get(0)), "HBM address"),
              integer(expr(a.get(1)), "size"), hash.toLowerCase(Locale.ROOT), string(a.get(3)));
        }
        case ".debug" -> {
          arity(d, 2);
          pendingDebug = new DebugEntry(pc, string(a.get(0)), string(a.get(1)));
        }
        default -> throw error(d.start, "unknown directive " + name
            + " (known: .equ, .reg, .target, .meta, .arg, .symbol, .constfile, .debug)");
      }
    }
    if (code.isEmpty()) {
      throw new IsaException(file + ":1:1: the program has no instructions");
    }
    return new SohuProgram(target, code, consts, symbols, debug, meta, args);
  }

  // ---------------------------------------------------------------------------------------------
  // Instructions

  private Word instruction(InstructionContext ic) {
    String mnemonic = ic.IDENT().getText();
    InsnDef def = InsnTable.byMnemonic(mnemonic);
    if (def == null) {
      throw error(ic.start, "unknown mnemonic '" + mnemonic + "'");
    }
    List<Operand> positional = def.operands().stream().filter(o -> !o.keyword()).toList();
    Map<String, Operand> keywords = new LinkedHashMap<>();
    def.operands().stream().filter(Operand::keyword).forEach(o -> keywords.put(o.name(), o));
    List<Field> fields = def.operandFields();
    long[] raw = new long[fields.size()];
    boolean[] set = new boolean[fields.size()];
    int nPos = 0;
    boolean sawKeyword = false;
    for (OperandContext oc : ic.operand()) {
      Operand o;
      if (oc.key != null) {
        sawKeyword = true;
        String key = oc.key.getText();
        o = keywords.get(key);
        if (o == null) {
          boolean isPositional = positional.stream().anyMatch(p -> p.name().equals(key));
          throw error(oc.start, mnemonic + " has no keyword operand '" + key + "'"
              + (isPositional ? " ('" + key + "' is positional)" : "")
              + " (keywords: " + String.join(", ", keywords.keySet()) + ")", ic);
        }
        if (set[fields.indexOf(o.first())]) {
          throw error(oc.start, "operand '" + key + "' of " + mnemonic + " given twice", ic);
        }
      } else {
        if (sawKeyword) {
          throw error(oc.start, "positional operand after keyword operands", ic);
        }
        if (nPos >= positional.size()) {
          throw error(oc.start, "too many operands: " + mnemonic + " takes " + positional.size()
              + " (" + names(positional) + ") and then keywords", ic);
        }
        o = positional.get(nPos++);
      }
      long[] vals = operandValue(def, o, oc.expr(), ic);
      for (int i = 0; i < vals.length; i++) {
        int fi = fields.indexOf(o.fields().get(i));
        raw[fi] = vals[i];
        set[fi] = true;
      }
    }
    if (nPos < positional.size() && !positional.get(nPos).optional()) {
      throw error(ic.stop, "missing operand '" + positional.get(nPos).name() + "': " + mnemonic
          + " takes " + positional.size() + " (" + names(positional) + ")", ic);
    }
    for (Operand o : def.operands()) {
      if (!o.optional()) {
        continue;
      }
      for (int i = 0; i < o.fields().size(); i++) {
        int fi = fields.indexOf(o.fields().get(i));
        if (!set[fi]) {
          raw[fi] = o.defaults()[i];
        }
      }
    }
    return InsnCodec.encode(def, raw);
  }

  private static String names(List<Operand> ops) {
    return String.join(", ", ops.stream().map(o -> o.optional() ? "[" + o.name() + "]"
        : o.name()).toList());
  }

  private long[] operandValue(InsnDef def, Operand o, ExprContext e, InstructionContext ic) {
    String what = "operand '" + o.name() + "' of " + def.mnemonic();
    Field f = o.first();
    try {
      return switch (o.form()) {
        case REG -> new long[] {register(e, what)};
        case ENUM -> new long[] {enumValue(e, f.enumType(), f.allowed(), what).ordinal()};
        case F32 -> new long[] {f32(e, what)};
        case FLAG, IMM -> {
          long v;
          if (o.labelRelative() && e instanceof NameContext n && labels.containsKey(n.getText())) {
            v = labels.get(n.getText()) - (pc + 1L);
          } else {
            v = integer(e, what);
          }
          yield new long[] {checked(f, v, what, e)};
        }
        case ADDR, COUNT -> {
          Lin l = lin(e, what);
          Field imm = o.fields().get(1);
          yield new long[] {Math.max(l.reg, 0), checked(imm, l.c, what
              + (o.form() == Operand.Form.ADDR ? " (offset)" : " (immediate part)"), e)};
        }
      };
    } catch (IsaException ex) {
      throw ex.getMessage().contains(" (in \"") ? ex : new IsaException(ex.getMessage()
          + inLine(ic.start.getLine()));
    }
  }

  private long checked(Field f, long v, String what, ExprContext e) {
    if (!f.legal(v)) {
      throw error(e.start, what + ": " + v + " is out of range " + f.range());
    }
    return v;
  }

  // ---------------------------------------------------------------------------------------------
  // Expressions

  /** A register (or none: reg = -1) plus a constant. */
  private record Lin(int reg, long c) {}

  private Lin lin(ExprContext e, String what) {
    if (e instanceof ParensContext p) {
      return lin(p.expr(), what);
    }
    if (e instanceof IntContext i) {
      return new Lin(-1, parseInt(i.INT().getSymbol()));
    }
    if (e instanceof FloatContext) {
      throw error(e.start, what + ": expected an integer, got the float " + e.getText());
    }
    if (e instanceof NameContext n) {
      String name = n.getText();
      Integer r = registerOrNull(name);
      if (r != null) {
        return new Lin(r, 0);
      }
      if (constants.containsKey(name)) {
        Number v = constants.get(name);
        if (v instanceof Double) {
          throw error(e.start, what + ": " + name + " is a float constant, expected an integer");
        }
        return new Lin(-1, v.longValue());
      }
      if (labels.containsKey(name)) {
        return new Lin(-1, labels.get(name));
      }
      throw error(e.start, what + ": " + unknownName(name));
    }
    if (e instanceof UnaryContext u) {
      long v = constOnly(lin(u.expr(), what), u.expr(), what);
      return new Lin(-1, switch (u.op.getText()) {
        case "-" -> exact(() -> Math.negateExact(v), u, what);
        case "~" -> ~v;
        default -> v;
      });
    }
    if (e instanceof AddSubContext a) {
      Lin l = lin(a.expr(0), what);
      Lin r = lin(a.expr(1), what);
      if (a.op.getText().equals("-")) {
        long rc = constOnly(r, a.expr(1), what);
        return new Lin(l.reg, exact(() -> Math.subtractExact(l.c, rc), a, what));
      }
      if (l.reg >= 0 && r.reg >= 0) {
        throw error(a.expr(1).start, what + ": an address or count takes one register");
      }
      return new Lin(Math.max(l.reg, r.reg), exact(() -> Math.addExact(l.c, r.c), a, what));
    }
    if (e instanceof MulDivContext m) {
      long l = constOnly(lin(m.expr(0), what), m.expr(0), what);
      long r = constOnly(lin(m.expr(1), what), m.expr(1), what);
      if (!m.op.getText().equals("*") && r == 0) {
        throw error(m.expr(1).start, what + ": division by zero");
      }
      return new Lin(-1, switch (m.op.getText()) {
        case "*" -> exact(() -> Math.multiplyExact(l, r), m, what);
        case "/" -> exact(() -> Math.divideExact(l, r), m, what);
        default -> l % r;
      });
    }
    ShiftContext s = (ShiftContext) e;
    long l = constOnly(lin(s.expr(0), what), s.expr(0), what);
    long r = constOnly(lin(s.expr(1), what), s.expr(1), what);
    // Java would take the count mod 64 (1 << 64 is 1) and drop the bits shifted out
    if (r < 0 || r > 63) {
      throw error(s.expr(1).start, what + ": a shift by " + r + ", outside 0..63");
    }
    boolean left = s.op.getText().equals("<<");
    if (left && (l << r) >> r != l) {
      throw overflow(s, what);
    }
    return new Lin(-1, left ? l << r : l >> r);
  }

  /**
   * The bytes a symbol's shape takes laid out (a symbolic dim at its capacity): 0 where a dim's
   * extent is known only at run time, Long.MAX_VALUE past 2^63 - 1.
   */
  private static long laidOutBytes(List<Dim> shape, DType dt) {
    long n = dt.bytes();
    for (Dim dim : shape) {
      long extent = dim instanceof Dim.Fixed f ? f.size() : ((Dim.Sym) dim).capacity();
      if (extent == 0 && dim instanceof Dim.Sym) {
        return 0;
      }
      try {
        n = Math.multiplyExact(n, extent);
      } catch (ArithmeticException overflow) {
        return Long.MAX_VALUE;
      }
    }
    return n;
  }

  /** A constant expression's value, refused where it does not fit 64 bits. */
  private long exact(java.util.function.LongSupplier value, ExprContext e, String what) {
    try {
      return value.getAsLong();
    } catch (ArithmeticException overflow) {
      throw overflow(e, what);
    }
  }

  private IsaException overflow(ExprContext e, String what) {
    String text = e.start.getInputStream().getText(org.antlr.v4.runtime.misc.Interval.of(
        e.start.getStartIndex(), e.stop.getStopIndex()));
    return error(e.start, what + ": " + text + " overflows 64 bits");
  }

  private long constOnly(Lin l, ExprContext e, String what) {
    if (l.reg >= 0) {
      throw error(e.start, what + ": a register cannot be used here");
    }
    return l.c;
  }

  private long integer(ExprContext e, String what) {
    Lin l = lin(e, what);
    if (l.reg >= 0) {
      throw error(e.start, what + ": expected an integer, got a register");
    }
    return l.c;
  }

  private int register(ExprContext e, String what) {
    if (e instanceof NameContext n) {
      Integer r = registerOrNull(n.getText());
      if (r != null) {
        return r;
      }
      if (!constants.containsKey(n.getText()) && !labels.containsKey(n.getText())) {
        throw error(e.start, what + ": " + unknownName(n.getText()));
      }
    }
    throw error(e.start, what + ": expected a register r0..r31, got '" + e.getText() + "'");
  }

  private Integer registerOrNull(String name) {
    if (name.equals("zero")) {
      return 0;
    }
    if (name.matches("r(0|[1-9][0-9]?)")) {
      int r = Integer.parseInt(name.substring(1));
      return r < 32 ? r : null;
    }
    return regAliases.get(name);
  }

  private static String unknownName(String name) {
    if (name.matches("r[0-9]+")) {
      return "unknown register '" + name + "' (registers are r0..r31)";
    }
    return "unknown name '" + name + "'";
  }

  private <E extends AsmEnum> E enumValue(ExprContext e, Class<? extends AsmEnum> type,
      List<? extends AsmEnum> allowed, String what) {
    String legal = String.join(", ", allowed.stream().map(AsmEnum::asmName).toList());
    if (e instanceof NameContext n) {
      for (AsmEnum c : type.getEnumConstants()) {
        if (c.asmName().equals(n.getText())) {
          if (!allowed.contains(c)) {
            throw error(e.start, what + ": " + n.getText() + " is not allowed here (one of "
                + legal + ")");
          }
          @SuppressWarnings("unchecked")
          E result = (E) c;
          return result;
        }
      }
    }
    throw error(e.start, what + ": expected one of " + legal + ", got '" + e.getText() + "'");
  }

  /** An f32 operand: a float literal (exact), inf, nan, a hex literal (raw bits), or arithmetic. */
  private long f32(ExprContext e, String what) {
    if (e instanceof IntContext i && i.getText().toLowerCase(Locale.ROOT).startsWith("0x")) {
      long bits = parseInt(i.INT().getSymbol());
      if (bits < 0 || bits > 0xFFFF_FFFFL) {
        throw error(e.start, what + ": raw f32 bits " + i.getText() + " do not fit 32 bits");
      }
      return bits;
    }
    if (e instanceof FloatContext f) {
      return Float.floatToRawIntBits(Float.parseFloat(f.getText().replace("_", ""))) & 0xFFFF_FFFFL;
    }
    if (e instanceof UnaryContext u && u.op.getText().equals("-")
        && (u.expr() instanceof FloatContext || u.expr() instanceof NameContext)) {
      return f32(u.expr(), what) ^ 0x8000_0000L;
    }
    return Float.floatToRawIntBits((float) real(e, what)) & 0xFFFF_FFFFL;
  }

  private double real(ExprContext e, String what) {
    if (e instanceof FloatContext f) {
      return Double.parseDouble(f.getText().replace("_", ""));
    }
    if (e instanceof NameContext n) {
      switch (n.getText()) {
        case "inf": return Double.POSITIVE_INFINITY;
        case "nan": return Double.NaN;
        default:
          if (constants.get(n.getText()) instanceof Double dv) {
            return dv;
          }
      }
    }
    if (e instanceof ParensContext p) {
      return real(p.expr(), what);
    }
    if (e instanceof UnaryContext u && !u.op.getText().equals("~")) {
      double v = real(u.expr(), what);
      return u.op.getText().equals("-") ? -v : v;
    }
    if (e instanceof AddSubContext a) {
      double l = real(a.expr(0), what);
      double r = real(a.expr(1), what);
      return a.op.getText().equals("+") ? l + r : l - r;
    }
    if (e instanceof MulDivContext m && !m.op.getText().equals("%")) {
      double l = real(m.expr(0), what);
      double r = real(m.expr(1), what);
      return m.op.getText().equals("*") ? l * r : l / r;
    }
    return integer(e, what);
  }

  private Number number(ExprContext e, String what) {
    return containsFloat(e) ? (Number) real(e, what) : (Number) integer(e, what);
  }

  private boolean containsFloat(ParserRuleContext e) {
    if (e instanceof FloatContext) {
      return true;
    }
    if (e instanceof NameContext n) {
      return constants.get(n.getText()) instanceof Double || n.getText().equals("inf")
          || n.getText().equals("nan");
    }
    for (int i = 0; i < e.getChildCount(); i++) {
      if (e.getChild(i) instanceof ParserRuleContext c && containsFloat(c)) {
        return true;
      }
    }
    return false;
  }

  private long parseInt(Token t) {
    String s = t.getText().replace("_", "").toLowerCase(Locale.ROOT);
    try {
      if (s.startsWith("0x")) {
        return Long.parseUnsignedLong(s.substring(2), 16);
      }
      if (s.startsWith("0b")) {
        return Long.parseUnsignedLong(s.substring(2), 2);
      }
      return Long.parseUnsignedLong(s);
    } catch (NumberFormatException ex) {
      throw error(t, "integer " + t.getText() + " does not fit 64 bits");
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Directive arguments and errors

  private void arity(DirectiveContext d, int n) {
    if (d.arg().size() != n) {
      throw error(d.start, d.DIRECTIVE().getText() + " takes " + n + " arguments, got "
          + d.arg().size());
    }
  }

  /** A directive argument that must be an expression, not a "string" or a [shape]. */
  private ExprContext expr(ArgContext a) {
    if (a.expr() == null) {
      throw error(a.start, "expected a number or a name, got '" + a.getText() + "'");
    }
    return a.expr();
  }

  private String ident(ArgContext a) {
    if (a.expr() instanceof NameContext n) {
      return n.getText();
    }
    throw error(a.start, "expected a name, got '" + a.getText() + "'");
  }

  /** A name written bare or as a "string". */
  private String name(ArgContext a) {
    return a.STRING() != null ? string(a) : ident(a);
  }

  private String string(ArgContext a) {
    if (a.STRING() == null) {
      throw error(a.start, "expected a \"string\", got '" + a.getText() + "'");
    }
    return unquote(a.STRING().getSymbol());
  }

  private static String unquote(Token t) {
    String s = t.getText();
    StringBuilder sb = new StringBuilder();
    for (int i = 1; i < s.length() - 1; i++) {
      char c = s.charAt(i);
      if (c == '\\') {
        char n = s.charAt(++i);
        sb.append(switch (n) {
          case 'n' -> '\n';
          case 't' -> '\t';
          case 'r' -> '\r';
          default -> n;
        });
      } else {
        sb.append(c);
      }
    }
    return sb.toString();
  }

  private void checkNewName(String name, Token at) {
    if (registerOrNull(name) != null || name.equals("inf") || name.equals("nan")
        || name.matches("r[0-9]+")) {
      throw error(at, "'" + name + "' is a register or reserved name");
    }
    if (constants.containsKey(name) || regAliases.containsKey(name) || labels.containsKey(name)) {
      throw error(at, "'" + name + "' is already defined");
    }
  }

  private IsaException error(Token t, String msg) {
    return new IsaException(file + ":" + t.getLine() + ":" + (t.getCharPositionInLine() + 1)
        + ": " + msg + inLine(t.getLine()));
  }

  private IsaException error(Token t, String msg, InstructionContext ic) {
    return error(t, msg);
  }

  private String inLine(int line) {
    if (line < 1 || line > lines.length) {
      return "";
    }
    String text = lines[line - 1].strip();
    if (text.length() > MAX_QUOTE) {
      text = text.substring(0, MAX_QUOTE) + "...";
    }
    return text.isEmpty() ? "" : " (in \"" + text + "\")";
  }

  /** A lexer that fails on a line with more than {@value #MAX_OPERATORS_PER_LINE} operators. */
  private final class OperatorBoundedLexer extends AsmLexer {
    private int line;
    private int operatorsOnLine;

    OperatorBoundedLexer(CharStream input) {
      super(input);
    }

    @Override
    public Token nextToken() {
      Token t = super.nextToken();
      if (t.getLine() != line) {
        line = t.getLine();
        operatorsOnLine = 0;
      }
      if (OPERATORS.contains(t.getText()) && ++operatorsOnLine > MAX_OPERATORS_PER_LINE) {
        throw error(t, "more than " + MAX_OPERATORS_PER_LINE
            + " operators and parentheses on one line; split the expression with .equ");
      }
      return t;
    }
  }
}
