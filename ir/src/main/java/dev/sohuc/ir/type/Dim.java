package dev.sohuc.ir.type;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.TreeMap;

/**
 * One dimension of a tensor type: a polynomial with integer coefficients over named symbols,
 * such as {@code 384}, {@code ?seq}, {@code ?past+?seq} or {@code ?batch*?seq}. Polynomials are
 * kept in a canonical form, so two dims are equal exactly when their expressions are; this is
 * what lets one compile serve every sequence length and still check shapes statically.
 *
 * @param terms monomial (sorted symbol names, empty for the constant) to non-zero coefficient
 */
public record Dim(TreeMap<Monomial, Long> terms) {

  /** A product of symbols, sorted so that equal products compare equal. */
  public record Monomial(List<String> symbols) implements Comparable<Monomial> {
    public Monomial {
      symbols = symbols.stream().sorted().toList();
    }

    static final Monomial ONE = new Monomial(List.of());

    @Override
    public int compareTo(Monomial o) {
      // Higher degree first, the constant last, then by names, for a stable printed order.
      if (symbols.size() != o.symbols.size()) {
        return o.symbols.size() - symbols.size();
      }
      for (int i = 0; i < symbols.size(); i++) {
        int c = symbols.get(i).compareTo(o.symbols.get(i));
        if (c != 0) {
          return c;
        }
      }
      return 0;
    }

    Monomial times(Monomial o) {
      List<String> all = new ArrayList<>(symbols);
      all.addAll(o.symbols);
      return new Monomial(all);
    }
  }

  public Dim {
    terms = new TreeMap<>(terms); // copy first: the caller's map stays as it was
    terms.values().removeIf(c -> c == 0L);
  }

  public static Dim of(long value) {
    TreeMap<Monomial, Long> t = new TreeMap<>();
    t.put(Monomial.ONE, value);
    return new Dim(t);
  }

  public static Dim symbol(String name) {
    TreeMap<Monomial, Long> t = new TreeMap<>();
    t.put(new Monomial(List.of(name)), 1L);
    return new Dim(t);
  }

  @Override
  public TreeMap<Monomial, Long> terms() {
    return new TreeMap<>(terms);
  }

  public boolean isStatic() {
    return terms.isEmpty() || (terms.size() == 1 && terms.containsKey(Monomial.ONE));
  }

  /** The value of a static dim; throws when the dim has symbols. */
  public long value() {
    if (!isStatic()) {
      throw new IllegalStateException("dim " + this + " is not static");
    }
    return terms.getOrDefault(Monomial.ONE, 0L);
  }

  public OptionalLong staticValue() {
    return isStatic() ? OptionalLong.of(value()) : OptionalLong.empty();
  }

  /** True when this is the static value {@code v}. */
  public boolean is(long v) {
    return isStatic() && value() == v;
  }

  /** A lone symbol such as {@code ?seq}, as opposed to a constant or a compound expression. */
  public boolean isSymbol() {
    return terms.size() == 1
        && terms.firstKey().symbols.size() == 1
        && terms.firstEntry().getValue() == 1L;
  }

  public List<String> symbols() {
    return terms.keySet().stream().flatMap(m -> m.symbols.stream()).distinct().sorted().toList();
  }

  public Dim plus(Dim o) {
    TreeMap<Monomial, Long> t = new TreeMap<>(terms);
    o.terms.forEach((m, c) -> t.merge(m, c, Math::addExact));
    return new Dim(t);
  }

  public Dim minus(Dim o) {
    return plus(o.times(Dim.of(-1)));
  }

  public Dim times(Dim o) {
    TreeMap<Monomial, Long> t = new TreeMap<>();
    terms.forEach((m1, c1) -> o.terms.forEach((m2, c2) ->
        t.merge(m1.times(m2), Math.multiplyExact(c1, c2), Math::addExact)));
    return new Dim(t);
  }

  /**
   * Exact division by a constant, when every coefficient is divisible; used for reshapes such as
   * {@code ?seq*384 / 12}.
   */
  public java.util.Optional<Dim> dividedBy(long divisor) {
    if (divisor == 0) {
      return java.util.Optional.empty();
    }
    TreeMap<Monomial, Long> t = new TreeMap<>();
    for (var e : terms.entrySet()) {
      if (e.getValue() % divisor != 0) {
        return java.util.Optional.empty();
      }
      t.put(e.getKey(), e.getValue() / divisor);
    }
    return java.util.Optional.of(new Dim(t));
  }

  /** Exact division by another dim when it is a factor (e.g. {@code ?b*?s*384 / ?s}). */
  public java.util.Optional<Dim> dividedBy(Dim divisor) {
    if (divisor.isStatic()) {
      return dividedBy(divisor.value());
    }
    if (divisor.terms.size() != 1) {
      return java.util.Optional.empty();
    }
    var d = divisor.terms.firstEntry();
    TreeMap<Monomial, Long> t = new TreeMap<>();
    for (var e : terms.entrySet()) {
      List<String> rest = new ArrayList<>(e.getKey().symbols);
      for (String s : d.getKey().symbols) {
        if (!rest.remove(s)) {
          return java.util.Optional.empty();
        }
      }
      if (e.getValue() % d.getValue() != 0) {
        return java.util.Optional.empty();
      }
      t.put(new Monomial(rest), e.getValue() / d.getValue());
    }
    return java.util.Optional.of(new Dim(t));
  }

  /** The value under the given symbol bindings; throws when a symbol is unbound. */
  public long evaluate(Map<String, Long> bindings) {
    long sum = 0;
    for (var e : terms.entrySet()) {
      long product = e.getValue();
      for (String s : e.getKey().symbols) {
        Long v = bindings.get(s);
        if (v == null) {
          throw new IllegalArgumentException("symbol ?" + s + " is not bound");
        }
        product = Math.multiplyExact(product, v);
      }
      sum = Math.addExact(sum, product);
    }
    return sum;
  }

  /** Replaces symbols by dims, e.g. binds {@code ?seq} to 128 for {@code --shape seq=128}. */
  public Dim substitute(Map<String, Dim> bindings) {
    Dim result = Dim.of(0);
    for (var e : terms.entrySet()) {
      Dim product = Dim.of(e.getValue());
      for (String s : e.getKey().symbols) {
        product = product.times(bindings.getOrDefault(s, Dim.symbol(s)));
      }
      result = result.plus(product);
    }
    return result;
  }

  /** IR text: {@code 384}, {@code ?seq}, {@code ?past+?seq}, {@code 2*?a*?b-1}. */
  @Override
  public String toString() {
    if (terms.isEmpty()) {
      return "0";
    }
    StringBuilder sb = new StringBuilder();
    for (var e : terms.entrySet()) {
      long c = e.getValue();
      List<String> syms = e.getKey().symbols;
      if (sb.length() > 0) {
        sb.append(c < 0 ? "-" : "+");
        c = Math.abs(c);
      } else if (c < 0 && !syms.isEmpty()) {
        sb.append("-");
        c = -c;
      }
      if (syms.isEmpty()) {
        sb.append(c);
        continue;
      }
      if (c != 1) {
        sb.append(c).append('*');
      }
      sb.append(String.join("*", syms.stream().map(Dim::symbolText).toList()));
    }
    return sb.toString();
  }

  /** {@code ?name}, quoted when the name is not a plain identifier. */
  public static String symbolText(String name) {
    return "?" + Names.quoteIfNeeded(name);
  }

}
