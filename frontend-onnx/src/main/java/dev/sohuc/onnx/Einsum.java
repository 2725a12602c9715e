package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.op.ReductionOp;
import dev.sohuc.ir.type.Dim;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * ONNX Einsum of one or two operands as the IR's ops: a label only one operand has and the
 * output lacks is summed out of it (reduce_sum); two operands become one batched matmul, each
 * transposed to [batch, free, contracted] and reshaped to three dims groups ([batch..., M, K]
 * and [batch..., K, N]), the product reshaped to its labels and transposed to the output's
 * order; one operand is a transpose. Explicit ({@code ->}) and implicit outputs (each label that
 * occurs once, alphabetically), and an ellipsis spanning the same dims in every term.
 * Refused by name: more than two operands, a label repeated within a term (a diagonal), labels
 * whose dims differ between the operands (broadcasting a 1).
 */
final class Einsum {
  private final OnnxNode n;
  /** Each label's dim. */
  private final Map<Character, Dim> dims = new LinkedHashMap<>();
  /** Whether the node's output is defined (by the last op added). */
  private boolean emitted;

  private Einsum(OnnxNode n) {
    this.n = n;
  }

  static void importNode(OnnxNode n) {
    new Einsum(n).run();
  }

  private void run() {
    String equation = n.attrString("equation", null);
    if (equation == null) {
      throw n.error("needs the attribute 'equation'");
    }
    equation = equation.replace(" ", "");
    int count = n.inputCount();
    if (count > 2) {
      throw n.error("an einsum of " + count + " operands (sohuc imports one or two)");
    }
    String[] sides = equation.split("->", -1);
    if (sides.length > 2) {
      throw n.error("equation '" + equation + "' has more than one '->'");
    }
    String[] terms = sides[0].split(",", -1);
    if (terms.length != count) {
      throw n.error("equation '" + equation + "' has " + terms.length + " input terms for " + count
          + " inputs");
    }
    List<List<Character>> inputs = new ArrayList<>();
    int ellipsis = -1;
    for (int i = 0; i < count; i++) {
      int rank = n.type(i).rank();
      List<Character> labels = labels(terms[i], rank, equation);
      if (terms[i].contains("...")) {
        int spanned = (int) labels.stream().filter(Character::isDigit).count();
        if (ellipsis >= 0 && ellipsis != spanned) {
          throw n.error("equation '" + equation + "': its ellipses span " + ellipsis + " and "
              + spanned + " dims (sohuc takes the same number in every term)");
        }
        ellipsis = spanned;
      }
      for (int a = 0; a < labels.size(); a++) {
        Dim d = n.type(i).dim(a);
        Dim seen = dims.putIfAbsent(labels.get(a), d);
        if (seen != null && !seen.equals(d)) {
          throw n.error("equation '" + equation + "': label '" + printable(labels.get(a)) + "' is "
              + seen + " in one operand and " + d + " in another (broadcast labels are not imported)");
        }
      }
      inputs.add(labels);
    }
    List<Character> output = sides.length == 1 ? implicitOutput(inputs) : labels(sides[1],
        sides[1].replace("...", "").length() + (sides[1].contains("...") ? Math.max(0, ellipsis) : 0),
        equation);
    for (char c : output) {
      if (!dims.containsKey(c)) {
        throw n.error("equation '" + equation + "': output label '" + printable(c)
            + "' is in no input");
      }
    }
    if (count == 1) {
      List<Character> a = new ArrayList<>(inputs.get(0));
      List<Character> kept = a.stream().filter(output::contains).toList();
      Value x = summedOut(n.value(0), a, output, List.of(), kept.equals(output));
      transposed(x, a, output, true);
    } else {
      product(inputs.get(0), inputs.get(1), output);
    }
  }

  /** The node's output when {@code last} (named after it), else an intermediate. */
  private Value add(dev.sohuc.ir.op.Op op, boolean last) {
    emitted |= last;
    return last ? n.emit(op) : n.temp(op);
  }

  /** A term's labels, its ellipsis as labels of its own (digits, which no equation uses). */
  private List<Character> labels(String term, int rank, String equation) {
    List<Character> out = new ArrayList<>();
    int dots = term.indexOf("...");
    String letters = term.replace("...", "");
    boolean twoEllipses = dots >= 0 && term.indexOf("...", dots + 1) > dots;
    if (twoEllipses || letters.contains(".")) {
      throw n.error("equation '" + equation + "': a misplaced '.' in '" + term + "'");
    }
    int spanned = rank - letters.length();
    if (spanned < 0 || (dots < 0 && spanned != 0)) {
      throw n.error("equation '" + equation + "': term '" + term + "' has " + letters.length()
          + " labels for a rank-" + rank + " operand");
    }
    if (spanned > 10) {
      throw n.error("equation '" + equation + "': the ellipsis of '" + term + "' spans " + spanned
          + " dims (sohuc takes up to 10)");
    }
    for (int i = 0; i < term.length(); i++) {
      if (i == dots) {
        for (int k = 0; k < spanned; k++) {
          out.add((char) ('0' + k));
        }
        i += 2;
        continue;
      }
      char c = term.charAt(i);
      if (!Character.isLetter(c) || c > 'z') {
        throw n.error("equation '" + equation + "': '" + c + "' is not a label (a-z, A-Z)");
      }
      if (out.contains(c)) {
        throw n.error("equation '" + equation + "': label '" + c + "' repeats in '" + term
            + "' (a diagonal, which sohuc does not import)");
      }
      out.add(c);
    }
    return out;
  }

  /** Without '->': the ellipsis, then each label that occurs once, alphabetically. */
  private static List<Character> implicitOutput(List<List<Character>> inputs) {
    Map<Character, Integer> uses = new java.util.TreeMap<>();
    for (List<Character> labels : inputs) {
      labels.forEach(c -> uses.merge(c, 1, Integer::sum));
    }
    List<Character> out = new ArrayList<>();
    uses.forEach((c, k) -> {
      if (Character.isDigit(c) || k == 1) {
        out.add(c);
      }
    });
    return out;
  }

  /**
   * x with the labels in neither the output nor {@code other} summed out (and removed from
   * {@code labels}); the node's output when {@code last}.
   */
  private Value summedOut(Value x, List<Character> labels, List<Character> output,
      List<Character> other, boolean last) {
    List<Long> axes = new ArrayList<>();
    for (int a = 0; a < labels.size(); a++) {
      if (!output.contains(labels.get(a)) && !other.contains(labels.get(a))) {
        axes.add((long) a);
      }
    }
    if (axes.isEmpty()) {
      return x;
    }
    labels.removeIf(c -> !output.contains(c) && !other.contains(c));
    return add(new ReductionOp.Reduce(ReductionOp.ReduceKind.SUM, x, axes, false), last);
  }

  /** The batched matmul of a and b, in the output's labels. */
  private void product(List<Character> aLabels, List<Character> bLabels, List<Character> output) {
    List<Character> a = new ArrayList<>(aLabels);
    List<Character> b = new ArrayList<>(bLabels);
    Value x = summedOut(n.value(0), a, output, b, false);
    Value w = summedOut(n.value(1), b, output, a, false);
    List<Character> batch = new ArrayList<>();
    List<Character> contracted = new ArrayList<>();
    for (char c : a) {
      if (b.contains(c)) {
        (output.contains(c) ? batch : contracted).add(c);
      }
    }
    List<Character> freeA = a.stream().filter(c -> !b.contains(c)).toList();
    List<Character> freeB = b.stream().filter(c -> !a.contains(c)).toList();
    Value left = grouped(transposed(x, a, concat(batch, freeA, contracted), false), batch, freeA,
        contracted);
    Value right = grouped(transposed(w, b, concat(batch, contracted, freeB), false), batch, contracted,
        freeB);
    List<Character> labels = concat(batch, freeA, freeB);
    List<Dim> grouped = new ArrayList<>(batch.stream().map(dims::get).toList());
    grouped.add(product(freeA));
    grouped.add(product(freeB));
    List<Dim> shape = labels.stream().map(dims::get).toList();
    boolean moves = !labels.equals(output);
    Value product = add(new LinalgOp.MatMul(left, right), !moves && shape.equals(grouped));
    Value ungrouped = shape.equals(grouped) ? product : add(new DataOp.Reshape(product, shape), !moves);
    transposed(ungrouped, labels, output, true);
  }

  /** v (labels batch, first, second) as [batch dims..., product of first, product of second]. */
  private Value grouped(Value v, List<Character> batch, List<Character> first, List<Character> second) {
    List<Dim> shape = new ArrayList<>();
    batch.forEach(c -> shape.add(dims.get(c)));
    shape.add(product(first));
    shape.add(product(second));
    return shape.equals(v.type().dims()) ? v : n.reshape(v, shape);
  }

  private Dim product(List<Character> labels) {
    Dim p = Dim.of(1);
    for (char c : labels) {
      p = p.times(dims.get(c));
    }
    return p;
  }

  /** v, of labels {@code from}, in the order {@code to}; the node's output when {@code last}. */
  private Value transposed(Value v, List<Character> from, List<Character> to, boolean last) {
    List<Long> perm = new ArrayList<>();
    for (char c : to) {
      perm.add((long) from.indexOf(c));
    }
    boolean identity = true;
    for (int i = 0; i < perm.size(); i++) {
      identity &= perm.get(i) == i;
    }
    if (identity) {
      if (last && !emitted) {
        n.set(0, v);  // the einsum moves nothing: its output is its input
      }
      return v;
    }
    return add(new DataOp.Transpose(v, perm), last);
  }

  @SafeVarargs
  private static List<Character> concat(List<Character>... parts) {
    List<Character> out = new ArrayList<>();
    for (List<Character> p : parts) {
      out.addAll(p);
    }
    return out;
  }

  private static String printable(char c) {
    return Character.isDigit(c) ? "..." : String.valueOf(c);
  }
}
