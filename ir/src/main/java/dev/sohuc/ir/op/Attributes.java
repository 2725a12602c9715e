package dev.sohuc.ir.op;

import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;

import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The attributes handed to an op factory, with typed getters whose errors name the attribute.
 * Tracks which attributes were read so that a misspelt one is reported instead of ignored.
 */
public final class Attributes {
  private final Map<String, Attr> values;
  private final Set<String> read = new HashSet<>();
  private java.util.function.Function<String, dev.sohuc.ir.type.TensorType> weightTypes = name -> null;

  public Attributes(Map<String, Attr> values) {
    this.values = new LinkedHashMap<>(values);
  }

  public static Attributes of(List<Attr.Named> named) {
    Map<String, Attr> m = new LinkedHashMap<>();
    named.forEach(n -> m.put(n.name(), n.value()));
    return new Attributes(m);
  }

  private Attr get(String name) {
    read.add(name);
    return values.get(name);
  }

  public boolean has(String name) {
    return values.containsKey(name);
  }

  private <T extends Attr> T required(String name, Class<T> kind, String what) {
    Attr a = get(name);
    if (a == null) {
      throw new OpException("missing attribute '" + name + "' (" + what + ")");
    }
    if (!kind.isInstance(a)) {
      throw new OpException("attribute '" + name + "' must be " + what);
    }
    return kind.cast(a);
  }

  public long getInt(String name) {
    return required(name, Attr.Int.class, "an integer").value();
  }

  public long getInt(String name, long fallback) {
    return has(name) ? getInt(name) : markRead(name, fallback);
  }

  public double getFloat(String name) {
    Attr a = get(name);
    if (a instanceof Attr.Int i) {
      return i.value();
    }
    return required(name, Attr.Float.class, "a number").value();
  }

  public double getFloat(String name, double fallback) {
    return has(name) ? getFloat(name) : markRead(name, fallback);
  }

  public boolean getBool(String name, boolean fallback) {
    return has(name) ? required(name, Attr.Bool.class, "true or false").value() : markRead(name, fallback);
  }

  public String getString(String name) {
    return required(name, Attr.Str.class, "a string").value();
  }

  public String getString(String name, String fallback) {
    return has(name) ? getString(name) : markRead(name, fallback);
  }

  public List<Long> getInts(String name) {
    return required(name, Attr.Ints.class, "a list of integers").values();
  }

  public List<Long> getInts(String name, List<Long> fallback) {
    return has(name) ? getInts(name) : markRead(name, fallback);
  }

  /** A list of dims; a plain integer list is accepted too. */
  public List<Dim> getDims(String name) {
    Attr a = get(name);
    if (a instanceof Attr.Ints ints) {
      return ints.values().stream().map(Dim::of).toList();
    }
    return required(name, Attr.Dims.class, "a list of dims").values();
  }

  public ElementType getType(String name) {
    return required(name, Attr.Type.class, "an element type such as f32").value();
  }

  public Tensor getDense(String name) {
    return required(name, Attr.Dense.class, "dense<...> data").value();
  }

  public String getSymbol(String name) {
    return required(name, Attr.SymbolRef.class, "a symbol such as @name").name();
  }

  /** Lets {@code weight} ops find their type in the module being built. */
  public Attributes resolvingWeights(java.util.function.Function<String, dev.sohuc.ir.type.TensorType> types) {
    this.weightTypes = types;
    return this;
  }

  /** The type of a module weight; throws when the module has no such weight. */
  public dev.sohuc.ir.type.TensorType weightType(String weight) {
    var t = weightTypes.apply(weight);
    if (t == null) {
      throw new OpException("no weight @" + dev.sohuc.ir.type.Names.quoteIfNeeded(weight) + " in the module");
    }
    return t;
  }

  private <T> T markRead(String name, T fallback) {
    read.add(name);
    return fallback;
  }

  /** Throws when an attribute was given that the op never asked for. */
  public void checkAllRead(String mnemonic) {
    for (String name : values.keySet()) {
      if (!read.contains(name)) {
        throw new OpException("'" + mnemonic + "' has no attribute '" + name + "'");
      }
    }
  }
}
