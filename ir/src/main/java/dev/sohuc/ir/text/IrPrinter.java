package dev.sohuc.ir.text;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.Attr;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.Names;

import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Collectors;

/**
 * Writes a module as IR text, the syntax {@link IrParser} reads:
 *
 * <pre>
 * module @minilm {
 *   weight @emb.word : tensor&lt;30522 x 384 x f32&gt; = file "model.onnx" offset 1234 length 46881792
 *
 *   func @main(%ids: tensor&lt;?batch x ?seq x i64&gt;) -&gt; ("hidden": tensor&lt;?batch x ?seq x 384 x f32&gt;) {
 *     %w = weight {name = @emb.word} : tensor&lt;30522 x 384 x f32&gt; loc("/embeddings/Gather")
 *     %h = gather %w, %ids {axis = 0} : tensor&lt;?batch x ?seq x 384 x f32&gt; loc("/embeddings/Gather")
 *     return %h
 *   }
 * }
 * </pre>
 *
 * Within a function the {@code =}, {@code :} and {@code loc} columns are aligned, each capped so
 * that one long line does not push every other line right. The output depends only on the
 * module, so printing a parsed printout gives the same text again.
 */
public final class IrPrinter {
  private static final String INDENT = "  ";
  private static final int MAX_RESULTS_WIDTH = 24;
  private static final int MAX_OP_WIDTH = 72;
  private static final int MAX_TYPES_WIDTH = 56;
  private static final int MAX_WEIGHT_NAME_WIDTH = 40;
  private static final int MAX_WEIGHT_TYPE_WIDTH = 48;
  /** Signatures longer than this put one argument (and one output) per line. */
  private static final int MAX_SIGNATURE_WIDTH = 100;

  private IrPrinter() {}

  public static String print(Module m) {
    StringBuilder sb = new StringBuilder();
    sb.append("module ").append(symbol(m.name())).append(" {\n");
    List<Weight> weights = new ArrayList<>(m.weights().values());
    List<String> names = weights.stream().map(w -> symbol(w.name())).toList();
    List<String> types = weights.stream().map(w -> w.type().toString()).toList();
    int nameWidth = columnWidth(names, MAX_WEIGHT_NAME_WIDTH);
    int typeWidth = columnWidth(types, MAX_WEIGHT_TYPE_WIDTH);
    for (int i = 0; i < weights.size(); i++) {
      sb.append(INDENT).append("weight ").append(pad(names.get(i), nameWidth)).append(" : ")
          .append(pad(types.get(i), typeWidth)).append(" = ").append(data(weights.get(i).data())).append('\n');
    }
    for (Function f : m.functions()) {
      if (sb.charAt(sb.length() - 2) != '{') {
        sb.append('\n');
      }
      function(sb, f, INDENT);
    }
    return sb.append("}\n").toString();
  }

  /** One function, unindented: for messages and debugging; a module prints its functions alike. */
  public static String print(Function f) {
    StringBuilder sb = new StringBuilder();
    function(sb, f, "");
    return sb.toString();
  }

  private static void function(StringBuilder sb, Function f, String indent) {
    List<String> args = f.arguments().stream().map(a -> value(a) + ": " + a.type()).toList();
    List<String> outs = f.outputs().stream()
        .map(o -> Names.quote(o.name()) + ": " + o.value().type()).toList();
    String head = "func " + symbol(f.name());
    String inline = indent + head + "(" + String.join(", ", args) + ") -> (" + String.join(", ", outs) + ") {";
    if (inline.length() <= MAX_SIGNATURE_WIDTH) {
      sb.append(inline).append('\n');
    } else {
      String inner = indent + INDENT + INDENT;
      sb.append(indent).append(head).append("(\n").append(inner).append(String.join(",\n" + inner, args))
          .append('\n').append(indent).append(") -> (\n").append(inner).append(String.join(",\n" + inner, outs))
          .append('\n').append(indent).append(") {\n");
    }
    body(sb, f.body(), indent + INDENT);
    sb.append(indent).append(INDENT).append("return");
    if (!f.outputs().isEmpty()) {
      sb.append(' ').append(f.outputs().stream().map(o -> value(o.value())).collect(Collectors.joining(", ")));
    }
    sb.append('\n').append(indent).append("}\n");
  }

  /** The columns of one node line: results, op with operands and attributes, types, location. */
  private record Line(String results, String op, String types, String loc) {}

  private static void body(StringBuilder sb, List<Node> nodes, String indent) {
    List<Line> lines = nodes.stream().map(IrPrinter::line).toList();
    int resultsWidth = columnWidth(lines.stream().map(Line::results).toList(), MAX_RESULTS_WIDTH);
    int opWidth = columnWidth(lines.stream().map(Line::op).toList(), MAX_OP_WIDTH);
    int typesWidth = columnWidth(lines.stream().filter(l -> !l.loc.isEmpty()).map(Line::types).toList(),
        MAX_TYPES_WIDTH);
    for (Line l : lines) {
      sb.append(indent).append(pad(l.results, resultsWidth)).append(" = ").append(pad(l.op, opWidth))
          .append(" : ");
      if (l.loc.isEmpty()) {
        sb.append(l.types);
      } else {
        sb.append(pad(l.types, typesWidth)).append(' ').append(l.loc);
      }
      sb.append('\n');
    }
  }

  private static Line line(Node n) {
    StringBuilder op = new StringBuilder(n.op().mnemonic());
    if (!n.op().operands().isEmpty()) {
      op.append(' ').append(n.op().operands().stream().map(IrPrinter::value).collect(Collectors.joining(", ")));
    }
    List<Attr.Named> attrs = n.op().attributes();
    if (!attrs.isEmpty()) {
      op.append(" {").append(attrs.stream().map(a -> a.name() + " = " + attr(a.value()))
          .collect(Collectors.joining(", "))).append('}');
    }
    return new Line(
        n.results().stream().map(IrPrinter::value).collect(Collectors.joining(", ")),
        op.toString(),
        n.results().stream().map(r -> r.type().toString()).collect(Collectors.joining(", ")),
        n.location().isKnown() ? "loc(" + Names.quote(n.location().text()) + ")" : "");
  }

  private static String data(Weight.Data data) {
    return switch (data) {
      case Weight.Data.FileSlice s -> "file " + Names.quote(s.file().toString()) + " offset " + s.offset()
          + " length " + s.length();
      case Weight.Data.Inline i -> "inline 0x" + HexFormat.of().formatHex(i.bytes());
      case Weight.Data.ShapeOnly s -> "shape_only";
    };
  }

  private static String attr(Attr a) {
    return switch (a) {
      case Attr.Int i -> Long.toString(i.value());
      case Attr.Float f -> number(f.value());
      case Attr.Bool b -> Boolean.toString(b.value());
      case Attr.Str s -> Names.quote(s.value());
      case Attr.Ints l -> "[" + l.values().stream().map(String::valueOf).collect(Collectors.joining(", ")) + "]";
      case Attr.Dims d -> "[" + d.values().stream().map(Dim::toString).collect(Collectors.joining(", ")) + "]";
      case Attr.Type t -> t.value().text();
      case Attr.Dense d -> "dense<" + dense(d.value()) + "> : " + d.value().type();
      case Attr.SymbolRef s -> symbol(s.name());
    };
  }

  /**
   * Shortest text that parses back to the same double; always with a '.' or an exponent, so a
   * float attribute never reads back as an integer one.
   */
  private static String number(double v) {
    if (Double.isNaN(v)) {
      return "nan";
    }
    if (Double.isInfinite(v)) {
      return v > 0 ? "inf" : "-inf";
    }
    return Double.toString(v);
  }

  /** Like {@link #number(double)}; f32 data prints as the shortest text for the float, not the double. */
  private static String number(float v) {
    return Float.isNaN(v) || Float.isInfinite(v) ? number((double) v) : Float.toString(v);
  }

  /** Nested brackets following the shape: {@code [[1, 2], [3, 4]]}; a scalar is the bare value. */
  private static String dense(Tensor t) {
    StringBuilder sb = new StringBuilder();
    dense(sb, t, t.shape(), 0, 0);
    return sb.toString();
  }

  /** Appends the block of axis {@code axis} that starts at element {@code first}; returns its size. */
  private static int dense(StringBuilder sb, Tensor t, long[] shape, int axis, int first) {
    if (axis == shape.length) {
      sb.append(element(t, first));
      return 1;
    }
    sb.append('[');
    int at = first;
    for (long i = 0; i < shape[axis]; i++) {
      if (i > 0) {
        sb.append(", ");
      }
      at += dense(sb, t, shape, axis + 1, at);
    }
    sb.append(']');
    return at - first;
  }

  private static String element(Tensor t, int i) {
    if (t.isFloat()) {
      return number(t.floats()[i]);
    }
    long v = t.longs()[i];
    return t.elementType() == ElementType.BOOL ? Boolean.toString(v != 0) : Long.toString(v);
  }

  private static String value(Value v) {
    return "%" + Names.quoteIfNeeded(v.name());
  }

  private static String symbol(String name) {
    return "@" + Names.quoteIfNeeded(name);
  }

  /** The widest cell that fits under the cap; wider cells overflow on their own line only. */
  private static int columnWidth(List<String> cells, int cap) {
    return cells.stream().mapToInt(IrPrinter::width).filter(w -> w <= cap).max().orElse(0);
  }

  private static String pad(String s, int width) {
    int w = width(s);
    return w >= width ? s : s + " ".repeat(width - w);
  }

  private static int width(String s) {
    return s.codePointCount(0, s.length());
  }
}
