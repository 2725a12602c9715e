package dev.sohuc.ir.text;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Verifier;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.Attr;
import dev.sohuc.ir.op.Attributes;
import dev.sohuc.ir.op.Op;
import dev.sohuc.ir.op.OpException;
import dev.sohuc.ir.op.OpRegistry;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.Names;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.ir.text.IrSyntax.DimContext;
import dev.sohuc.ir.text.IrSyntax.DimFactorContext;
import dev.sohuc.ir.text.IrSyntax.DimTermContext;
import dev.sohuc.ir.text.IrSyntax.NumberContext;
import org.antlr.v4.runtime.BaseErrorListener;
import org.antlr.v4.runtime.CharStream;
import org.antlr.v4.runtime.CharStreams;
import org.antlr.v4.runtime.CommonTokenStream;
import org.antlr.v4.runtime.Parser;
import org.antlr.v4.runtime.RecognitionException;
import org.antlr.v4.runtime.Recognizer;
import org.antlr.v4.runtime.Token;
import org.antlr.v4.runtime.misc.IntervalSet;
import org.antlr.v4.runtime.tree.ParseTree;
import org.antlr.v4.runtime.tree.TerminalNode;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Reads IR text (the syntax {@link IrPrinter} writes) into a verified {@link Module}.
 *
 * <p>Every problem is an {@link IrException} whose message is one line,
 * {@code file:line:col: what is wrong}: syntax errors say what was expected, and the verifier's
 * errors point at the op they are about. Echoed input is cut short, so a 10 MB line gives a
 * short message.
 *
 * <p>Weight files: a relative {@code file "..."} path is relative to the directory of the .ir
 * file. {@link #parse(Path)} resolves it against that directory as the path was given (so
 * {@code sohuc ir models/m.ir} reads {@code models/w.bin} and prints that path); {@link
 * #parse(String, String)} has no directory and keeps paths exactly as written.
 *
 * <p>Tensor types need no spaces around {@code x} between static dims ({@code tensor<2x3xf32>});
 * after a symbol they do, since {@code ?ax3} is the symbol {@code ax3}.
 */
public final class IrParser {
  /** The largest string the JVM makes, so the largest IR text file. */
  private static final long MAX_FILE_BYTES = Integer.MAX_VALUE - 8;
  /** Longest piece of input quoted in a message. */
  private static final int MAX_ECHO = 40;
  /** Far above any real line (dense data is one token); makes a huge line of small tokens fail fast. */
  private static final int MAX_TOKENS_PER_LINE = 100_000;

  private final String fileName;
  private final Path baseDir;
  private final Map<Node, Token> opTokens = new IdentityHashMap<>();
  /** Values for symbolic dims, put in place of each {@code ?name} as it is read. */
  private final Map<String, Long> bindings;
  /** Every symbol the text names, for the message about a binding that names none. */
  private final java.util.SortedSet<String> symbols = new java.util.TreeSet<>();

  private IrParser(String fileName, Path baseDir, Map<String, Long> bindings) {
    this.fileName = fileName;
    this.baseDir = baseDir;
    this.bindings = bindings;
  }

  public static Module parse(Path file) {
    return parse(file, Map.of());
  }

  /**
   * Parses {@code file} with each symbolic dim named in {@code bindings} read as its value (the
   * CLI's {@code --shape seq=128}); a binding of a name the text does not use is an error.
   */
  public static Module parse(Path file, Map<String, Long> bindings) {
    String text;
    try {
      // a Java string holds at most 2^31 - 1 characters: refuse before reading, not by running
      // out of memory
      long size = Files.size(file);
      if (size > MAX_FILE_BYTES) {
        throw new IrException(file + ": " + size + " bytes, more than the " + MAX_FILE_BYTES
            + " an IR text file may have");
      }
      text = Files.readString(file);
    } catch (NoSuchFileException e) {
      throw new IrException(file + ": no such file");
    } catch (CharacterCodingException e) {
      throw new IrException(file + ": not UTF-8 text");
    } catch (IOException e) {
      throw new IrException(file + ": cannot read: " + e.getMessage(), e);
    }
    IrParser parser = new IrParser(file.toString(), file.getParent(), bindings);
    Module m = parser.module(text);
    for (String name : bindings.keySet()) {
      if (!parser.symbols.contains(name)) {
        String dims = parser.symbols.isEmpty() ? "none" : String.join(", ", parser.symbols);
        throw new IrException(file + ": --shape " + name + "=" + bindings.get(name)
            + ": the module has no dim named '" + name + "' (its dims: " + dims + ")");
      }
    }
    return m;
  }

  /** Parses {@code text}; {@code fileName} is only used in messages. */
  public static Module parse(String text, String fileName) {
    return new IrParser(fileName, null, Map.of()).module(text);
  }

  private Module module(String text) {
    IrLexer lexer = new LineBoundedLexer(CharStreams.fromString(text, fileName));
    lexer.removeErrorListeners(); // ERROR_CHAR tokens leave every error to the parser
    CommonTokenStream tokens = new CommonTokenStream(lexer);
    if (tokens.LA(1) == Token.EOF) {
      throw new IrException(fileName + ":1:1: empty file, expected 'module'");
    }
    IrSyntax syntax = new IrSyntax(tokens);
    syntax.removeErrorListeners();
    syntax.addErrorListener(new SyntaxErrors());
    IrSyntax.Module_Context tree = syntax.module_();

    Module m = new Module(name(tree.SYMBOL_ID().getSymbol()));
    Map<String, Token> functionNames = new HashMap<>();
    for (var w : tree.weightDecl()) {
      weight(m, w);
    }
    for (var f : tree.function()) {
      Token nameToken = f.SYMBOL_ID().getSymbol();
      Token first = functionNames.putIfAbsent(name(nameToken), nameToken);
      if (first != null) {
        throw error(nameToken, "function " + nameToken.getText() + " is defined twice (first at "
            + position(first) + ")");
      }
      m.functions().add(function(m, f));
    }
    new Verifier(node -> where(opTokens.get(node)) + ": '" + node.op().mnemonic() + "'").verify(m);
    return m;
  }

  private void weight(Module m, IrSyntax.WeightDeclContext ctx) {
    Token nameToken = ctx.SYMBOL_ID().getSymbol();
    String name = name(nameToken);
    if (m.weights().containsKey(name)) {
      throw error(nameToken, "weight " + nameToken.getText() + " is defined twice");
    }
    TensorType type = type(ctx.tensorType());
    if (!type.isStatic()) {
      throw error(ctx.tensorType().start, "weight " + nameToken.getText() + " has a symbolic type " + type);
    }
    long sizeBytes = type.staticSizeBytes().orElseThrow(() -> error(ctx.tensorType().start,
        "weight type " + type + " has more than 2^63 - 1 bytes"));
    Weight.Data data;
    long dataBytes;
    switch (ctx.weightData()) {
      case IrSyntax.FileDataContext f -> {
        String path = string(f.STRING().getSymbol());
        long offset = integer(f.INT(0).getSymbol(), false);
        dataBytes = integer(f.INT(1).getSymbol(), false);
        data = new Weight.Data.FileSlice(resolve(path, f.STRING().getSymbol()), offset, dataBytes);
      }
      case IrSyntax.InlineDataContext i -> {
        String hex = i.HEX().getText().substring(2);
        if (hex.length() % 2 != 0) {
          throw error(i.HEX().getSymbol(), "inline data has an odd number of hex digits");
        }
        byte[] bytes = HexFormat.of().parseHex(hex);
        dataBytes = bytes.length;
        data = new Weight.Data.Inline(bytes);
      }
      default -> {
        dataBytes = sizeBytes;
        data = new Weight.Data.ShapeOnly();
      }
    }
    if (dataBytes != sizeBytes) {
      throw error(ctx.weightData().start, "weight " + nameToken.getText() + " of type " + type + " needs "
          + sizeBytes + " bytes, the data has " + dataBytes);
    }
    m.addWeight(new Weight(name, type, data));
  }

  private Path resolve(String path, Token at) {
    try {
      Path p = Path.of(path);
      return baseDir == null || p.isAbsolute() ? p : baseDir.resolve(p);
    } catch (InvalidPathException e) {
      throw error(at, "invalid file path " + echo(path));
    }
  }

  /** Values visible in a function body, and the names its nodes define (to tell "later" from "never"). */
  private final class Scope {
    final Map<String, Value> values = new HashMap<>();
    final Map<String, Token> definedAt = new HashMap<>();
    final Set<String> bodyNames = new HashSet<>();

    Scope(List<IrSyntax.NodeContext> nodes) {
      for (var n : nodes) {
        n.results.forEach(v -> bodyNames.add(name(v)));
      }
    }

    void define(Token at, Value v) {
      Token first = definedAt.putIfAbsent(v.name(), at);
      if (first != null) {
        throw error(at, "value " + at.getText() + " is defined twice (first at " + position(first) + ")");
      }
      values.put(v.name(), v);
    }

    Value use(Token at) {
      Value v = values.get(name(at));
      if (v == null) {
        throw error(at, bodyNames.contains(name(at))
            ? at.getText() + " is used before it is defined"
            : "use of undefined value " + at.getText());
      }
      return v;
    }
  }

  private Function function(Module m, IrSyntax.FunctionContext ctx) {
    Scope scope = new Scope(ctx.node());
    List<Value> args = new ArrayList<>();
    for (var a : ctx.argument()) {
      Value v = Value.argument(name(a.VALUE_ID().getSymbol()), type(a.tensorType()));
      scope.define(a.VALUE_ID().getSymbol(), v);
      args.add(v);
    }
    Function f = new Function(name(ctx.SYMBOL_ID().getSymbol()), args);
    for (var n : ctx.node()) {
      Node node = node(m, scope, n);
      f.body().add(node);
      for (int i = 0; i < node.results().size(); i++) {
        scope.define(n.results.get(i), node.results().get(i));
      }
    }
    f.setOutputs(outputs(scope, ctx));
    return f;
  }

  private List<Function.Output> outputs(Scope scope, IrSyntax.FunctionContext ctx) {
    var declared = ctx.output();
    var returned = ctx.returnStmt().VALUE_ID();
    if (declared.size() != returned.size()) {
      throw error(ctx.returnStmt().start, "return gives " + count(returned.size(), "value") + ", the signature declares "
          + count(declared.size(), "output"));
    }
    List<Function.Output> outputs = new ArrayList<>();
    Map<String, Token> seen = new HashMap<>();
    for (int i = 0; i < declared.size(); i++) {
      Token nameToken = declared.get(i).STRING().getSymbol();
      String name = string(nameToken);
      if (seen.putIfAbsent(name, nameToken) != null) {
        throw error(nameToken, "output name " + cut(nameToken.getText()) + " is used twice");
      }
      TensorType type = type(declared.get(i).tensorType());
      Token valueToken = returned.get(i).getSymbol();
      Value v = scope.use(valueToken);
      if (!v.type().equals(type)) {
        throw error(valueToken, "output " + cut(nameToken.getText()) + " is declared " + type + " but "
            + valueToken.getText() + " is " + v.type());
      }
      outputs.add(new Function.Output(name, v));
    }
    return outputs;
  }

  private Node node(Module m, Scope scope, IrSyntax.NodeContext ctx) {
    Token opToken = ctx.opName().start;
    String mnemonic = opToken.getText();
    if (OpRegistry.lookup(mnemonic).isEmpty()) {
      throw error(opToken, "unknown op " + echo(mnemonic));
    }
    List<Value> operands = new ArrayList<>();
    ctx.operands.forEach(v -> operands.add(scope.use(v)));
    Map<String, Attr> attrs = new LinkedHashMap<>();
    if (ctx.attributes() != null) {
      for (var a : ctx.attributes().attribute()) {
        if (attrs.putIfAbsent(a.attrName().getText(), attr(a.attrValue())) != null) {
          throw error(a.start, "attribute '" + a.attrName().getText() + "' is given twice");
        }
      }
    }
    List<String> names = ctx.results.stream().map(this::name).toList();
    List<TensorType> types = ctx.tensorType().stream().map(this::type).toList();
    if (names.size() != types.size()) {
      throw error(opToken, count(names.size(), "value") + " defined but " + count(types.size(), "result type")
          + " given");
    }
    Op op;
    try {
      op = OpRegistry.create(mnemonic, operands,
          new Attributes(attrs).resolvingWeights(w -> m.weights().containsKey(w) ? m.weights().get(w).type() : null));
    } catch (OpException e) {
      // OpRegistry's own messages already start with the op's name.
      String quoted = "'" + mnemonic + "'";
      throw new IrException(where(opToken) + ": "
          + (e.getMessage().startsWith(quoted + " ") ? "" : quoted + ": ") + e.getMessage());
    }
    Location loc = ctx.location() == null ? Location.UNKNOWN
        : new Location(string(ctx.location().STRING().getSymbol()));
    Node node = new Node(op, names, types, loc);
    opTokens.put(node, opToken);
    return node;
  }

  private Attr attr(IrSyntax.AttrValueContext ctx) {
    return switch (ctx) {
      case IrSyntax.NumberAttrContext n -> n.number().INT() != null
          ? new Attr.Int(integer(n.number().INT().getSymbol(), n.number().MINUS() != null))
          : new Attr.Float(floating(n.number()));
      case IrSyntax.TrueAttrContext t -> new Attr.Bool(true);
      case IrSyntax.FalseAttrContext f -> new Attr.Bool(false);
      case IrSyntax.StringAttrContext s -> new Attr.Str(string(s.STRING().getSymbol()));
      case IrSyntax.ListAttrContext l -> list(l.dim());
      case IrSyntax.ElementTypeAttrContext e -> new Attr.Type(elementType(e.BARE_ID().getSymbol()));
      case IrSyntax.SymbolAttrContext s -> new Attr.SymbolRef(name(s.SYMBOL_ID().getSymbol()));
      case IrSyntax.DenseAttrContext d -> new Attr.Dense(dense(d));
      default -> throw new IllegalStateException("attribute syntax without a case: " + ctx.getText());
    };
  }

  /** {@code [1, -2]} is an integer list; any symbol makes it a dim list ({@code [?b, 12]}). */
  private Attr list(List<DimContext> items) {
    List<Dim> dims = items.stream().map(this::dim).toList();
    return dims.stream().allMatch(Dim::isStatic)
        ? new Attr.Ints(dims.stream().map(Dim::value).toList())
        : new Attr.Dims(dims);
  }

  private TensorType type(IrSyntax.TensorTypeContext ctx) {
    List<Dim> dims = new ArrayList<>();
    for (DimContext d : ctx.dim()) {
      Dim dim = dim(d);
      if (dim.isStatic() && dim.value() < 0) {
        throw error(d.start, "negative dim " + dim + " in a tensor type");
      }
      dims.add(dim);
    }
    return new TensorType(dims, elementType(ctx.ELEMENT_TYPE().getSymbol()));
  }

  private ElementType elementType(Token t) {
    return ElementType.fromText(t.getText())
        .orElseThrow(() -> error(t, "unknown element type " + echo(t.getText())));
  }

  /** A sum of signed terms, each a product of integers and symbols. */
  private Dim dim(DimContext ctx) {
    Dim sum = Dim.of(0);
    boolean negative = false;
    try {
      for (ParseTree child : ctx.children) {
        if (child instanceof DimTermContext term) {
          sum = sum.plus(term(term, negative));
        } else {
          negative = ((TerminalNode) child).getSymbol().getType() == IrLexer.MINUS;
        }
      }
    } catch (ArithmeticException overflow) {
      throw error(ctx.start, "dim " + echo(ctx.getText()) + " overflows 64 bits");
    }
    return sum;
  }

  private Dim term(DimTermContext ctx, boolean negative) {
    // A lone integer keeps its sign in the literal, so -9223372036854775808 stays in range.
    if (ctx.dimFactor().size() == 1 && ctx.dimFactor(0).INT() != null) {
      return Dim.of(integer(ctx.dimFactor(0).INT().getSymbol(), negative));
    }
    Dim product = Dim.of(negative ? -1 : 1);
    for (DimFactorContext f : ctx.dimFactor()) {
      product = product.times(f.INT() != null
          ? Dim.of(integer(f.INT().getSymbol(), false))
          : symbol(name(f.DIM_SYMBOL().getSymbol())));
    }
    return product;
  }

  private Dim symbol(String name) {
    symbols.add(name);
    Long value = bindings.get(name);
    return value == null ? Dim.symbol(name) : Dim.of(value);
  }

  private static final Pattern DENSE_INT = Pattern.compile("-?[0-9]+");
  private static final Pattern DENSE_FLOAT = Pattern.compile("-?(inf|nan|[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?)");

  /**
   * Reads the text of a {@code dense<...>} token, checking its brackets against the type's shape
   * as it goes; errors point into the token.
   */
  private Tensor dense(IrSyntax.DenseAttrContext ctx) {
    TensorType type = type(ctx.tensorType());
    if (!type.isStatic()) {
      throw error(ctx.tensorType().start, "dense data needs a static type, got " + type);
    }
    long[] shape = type.evaluateShape(Map.of());
    ElementType et = type.elementType();
    int size;
    try {
      size = Tensor.checkedSize(shape);
    } catch (IrException e) {
      throw error(ctx.tensorType().start, e.getMessage());
    }
    Token data = ctx.DENSE_DATA().getSymbol();
    String text = data.getText();
    // Every value takes at least one character of the token, so data that parses fits in an
    // array as long as the text; a type claiming more elements fails below without allocating them.
    int capacity = Math.min(size, text.length());
    float[] floats = et.isFloat() ? new float[capacity] : null;
    long[] longs = et.isFloat() ? null : new long[capacity];
    int next = 0;
    long[] entries = new long[shape.length]; // entries so far in each open list
    int depth = 0;
    boolean needEntry = true;
    boolean done = false;
    String mismatch = "dense data does not match " + type + ": ";
    int end = text.length() - 1; // the closing '>'
    for (int i = "dense<".length(); ; ) {
      while (i < end && Character.isWhitespace(text.charAt(i))) {
        i++;
      }
      if (i == end) {
        break;
      }
      int at = i;
      char c = text.charAt(i);
      String item;
      if (c == '[' || c == ']' || c == ',') {
        item = String.valueOf(c);
        i++;
      } else {
        while (i < end && (Character.isLetterOrDigit(text.charAt(i)) || "+-._".indexOf(text.charAt(i)) >= 0)) {
          i++;
        }
        if (i == at) {
          throw error(data, at, "unexpected character " + echo(String.valueOf(c)) + " in dense data");
        }
        item = text.substring(at, i);
      }
      if (done) {
        throw error(data, at, mismatch + "unexpected " + echo(item) + " after the data");
      }
      switch (item) {
        case "[" -> {
          if (!needEntry || depth == shape.length) {
            throw error(data, at, mismatch + (depth == shape.length ? "expected a value" : "expected ',' or ']'"));
          }
          countEntry(data, at, entries, shape, depth, mismatch);
          entries[depth++] = 0;
        }
        case "]" -> {
          if (depth == 0 || (needEntry && entries[depth - 1] > 0)) {
            throw error(data, at, mismatch + "unexpected ']'");
          }
          if (entries[depth - 1] != shape[depth - 1]) {
            throw error(data, at, mismatch + "a list at depth " + depth + " has " + entries[depth - 1]
                + " entries, not " + shape[depth - 1]);
          }
          depth--;
          needEntry = false;
          done = depth == 0;
        }
        case "," -> {
          if (needEntry || depth == 0) {
            throw error(data, at, mismatch + "unexpected ','");
          }
          needEntry = true;
        }
        default -> {
          if (depth != shape.length || !needEntry) {
            throw error(data, at, mismatch + (needEntry ? "expected '['" : "expected ',' or ']'"));
          }
          countEntry(data, at, entries, shape, depth, mismatch);
          if (floats != null) {
            floats[next++] = denseFloat(data, at, item);
          } else {
            longs[next++] = denseInteger(data, at, item, et);
          }
          needEntry = false;
          done = depth == 0;
        }
      }
    }
    if (!done) {
      throw error(data, end, mismatch + "the data ends early");
    }
    return floats != null ? Tensor.ofFloats(et, shape, floats) : Tensor.ofLongs(et, shape, longs);
  }

  /** Counts one more entry in the innermost open list (none open: the scalar of a rank-0 type). */
  private void countEntry(Token data, int at, long[] entries, long[] shape, int depth, String mismatch) {
    if (depth > 0 && ++entries[depth - 1] > shape[depth - 1]) {
      throw error(data, at, mismatch + "a list at depth " + depth + " has more than " + shape[depth - 1]
          + " entries");
    }
  }

  private float denseFloat(Token data, int at, String item) {
    if (!DENSE_FLOAT.matcher(item).matches()) {
      throw error(data, at, "expected a number, got " + echo(item));
    }
    boolean negative = item.startsWith("-");
    String magnitude = negative ? item.substring(1) : item;
    float v = switch (magnitude) {
      case "inf" -> Float.POSITIVE_INFINITY;
      case "nan" -> Float.NaN;
      // Parsed as float, not double then float, so that no value is rounded twice.
      default -> Float.parseFloat(magnitude);
    };
    return negative ? -v : v;
  }

  private long denseInteger(Token data, int at, String item, ElementType et) {
    long v;
    if (et == ElementType.BOOL && (item.equals("true") || item.equals("false"))) {
      v = item.equals("true") ? 1 : 0;
    } else if (DENSE_INT.matcher(item).matches()) {
      try {
        v = Long.parseLong(item);
      } catch (NumberFormatException e) {
        throw error(data, at, "integer " + echo(item) + " does not fit in 64 bits");
      }
    } else {
      throw error(data, at, "expected an integer for " + et + " data, got " + echo(item));
    }
    if (Tensor.wrapTo(et, v) != v) {
      throw error(data, at, "value " + v + " does not fit in " + et);
    }
    return v;
  }

  private double floating(NumberContext n) {
    if (n.NAN() != null) {
      return Double.NaN;
    }
    double v = n.INF() != null ? Double.POSITIVE_INFINITY : Double.parseDouble(n.FLOAT().getText());
    return n.MINUS() != null ? -v : v;
  }

  private long integer(Token t, boolean negative) {
    try {
      return Long.parseLong((negative ? "-" : "") + t.getText());
    } catch (NumberFormatException e) {
      throw error(t, "integer " + echo((negative ? "-" : "") + t.getText()) + " does not fit in 64 bits");
    }
  }

  /** The name in a {@code %name}, {@code @name} or {@code ?name} token, unquoted. */
  private String name(Token t) {
    String text = t.getText().substring(1);
    return text.startsWith("\"") ? unquote(t, text) : text;
  }

  private String string(Token t) {
    return unquote(t, t.getText());
  }

  private String unquote(Token t, String literal) {
    try {
      return Names.unquote(literal);
    } catch (RuntimeException badEscape) {
      throw error(t, "bad escape sequence in " + cut(literal));
    }
  }

  private String where(Token t) {
    return fileName + ":" + position(t);
  }

  private static String position(Token t) {
    return t.getLine() + ":" + (t.getCharPositionInLine() + 1);
  }

  private IrException error(Token t, String message) {
    return new IrException(where(t) + ": " + message);
  }

  /** An error at character {@code offset} of a (possibly multi-line) token. */
  private IrException error(Token t, int offset, String message) {
    String text = t.getText();
    int line = t.getLine();
    int lineStart = -t.getCharPositionInLine();
    for (int i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
      line++;
      lineStart = i + 1;
    }
    return new IrException(fileName + ":" + line + ":" + (offset - lineStart + 1) + ": " + message);
  }

  /** Input quoted in a message, cut to {@value #MAX_ECHO} characters. */
  private static String echo(String text) {
    return "'" + cut(text) + "'";
  }

  /** Input (such as a string literal, already quoted) cut to {@value #MAX_ECHO} characters. */
  private static String cut(String text) {
    return text.length() <= MAX_ECHO ? text : text.substring(0, MAX_ECHO) + "...";
  }

  /** {@code 1 value}, {@code 2 values}. */
  private static String count(int n, String noun) {
    return n + " " + noun + (n == 1 ? "" : "s");
  }

  /** A lexer that fails on a line with more than {@value #MAX_TOKENS_PER_LINE} tokens. */
  private final class LineBoundedLexer extends IrLexer {
    private int line;
    private int tokensOnLine;

    LineBoundedLexer(CharStream input) {
      super(input);
    }

    @Override
    public Token nextToken() {
      Token t = super.nextToken();
      if (t.getLine() != line) {
        line = t.getLine();
        tokensOnLine = 0;
      }
      if (++tokensOnLine > MAX_TOKENS_PER_LINE) {
        throw error(t, "line " + line + " has more than " + MAX_TOKENS_PER_LINE + " tokens");
      }
      return t;
    }
  }

  /** Turns the first syntax error into an IrException saying what was expected. */
  private final class SyntaxErrors extends BaseErrorListener {
    @Override
    public void syntaxError(Recognizer<?, ?> recognizer, Object offendingSymbol, int line, int col,
                            String antlrMessage, RecognitionException e) {
      Token t = (Token) offendingSymbol;
      String what = switch (t.getType()) {
        case IrLexer.UNTERMINATED_STRING -> "unterminated string";
        case IrLexer.UNTERMINATED_DENSE -> "unterminated dense<...> data";
        case IrLexer.ERROR_CHAR -> "unexpected character " + echo(t.getText());
        default -> {
          IntervalSet expected = e != null ? e.getExpectedTokens() : ((Parser) recognizer).getExpectedTokens();
          yield "expected " + describe(expected) + ", got " + describe(t);
        }
      };
      throw error(t, what);
    }

    private static String describe(Token t) {
      return t.getType() == Token.EOF ? "end of file" : echo(t.getText());
    }

    /** {@code ',' or ']'}; keywords are left out where any identifier would do. */
    private static String describe(IntervalSet expected) {
      List<String> names = new ArrayList<>();
      boolean anyIdentifier = expected.contains(IrLexer.BARE_ID);
      for (int type : expected.toList()) {
        if (!(anyIdentifier && type >= IrLexer.MODULE && type <= IrLexer.NAN)) {
          names.add(describe(type));
        }
      }
      if (names.size() == 1) {
        return names.get(0);
      }
      return String.join(", ", names.subList(0, names.size() - 1)) + " or " + names.get(names.size() - 1);
    }

    private static String describe(int type) {
      return switch (type) {
        case Token.EOF -> "end of file";
        case IrLexer.VALUE_ID -> "a %value";
        case IrLexer.SYMBOL_ID -> "an @symbol";
        case IrLexer.DIM_SYMBOL -> "a ?symbol";
        case IrLexer.INT -> "an integer";
        case IrLexer.FLOAT -> "a float";
        case IrLexer.HEX -> "hex data";
        case IrLexer.STRING -> "a string";
        case IrLexer.BARE_ID -> "a name";
        case IrLexer.ELEMENT_TYPE -> "an element type";
        case IrLexer.DENSE_DATA -> "dense<...> data";
        // Tokens that both lexer modes spell alike have no literal name in the vocabulary.
        case IrLexer.MINUS -> "'-'";
        case IrLexer.PLUS -> "'+'";
        case IrLexer.STAR -> "'*'";
        default -> IrLexer.VOCABULARY.getLiteralName(type);
      };
    }
  }
}
