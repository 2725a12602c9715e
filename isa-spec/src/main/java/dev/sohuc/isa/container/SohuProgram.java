package dev.sohuc.isa.container;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.InsnCodec;
import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.Word;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * A whole {@code .sohu} program in memory, immutable. Read it with {@link SohuReader}, write it
 * with {@link SohuWriter}.
 *
 * @param target the machine description the program was compiled for
 * @param code the instruction words; {@code code.get(pc)} is instruction pc (words are kept raw,
 *     so a program may hold an illegal word that traps only when executed)
 * @param constants the HBM image of the weights, inline or in a side file; null when none
 * @param symbols the program's inputs and outputs
 * @param debug per-instruction IR op and source location, by increasing pc
 * @param metadata compiler version, options and the like, sorted by key
 * @param args which symbolic dimension, or which input's values (an argument array), lives in
 *     which argument-block words; the dims first, then the arrays, each in the order given
 */
public record SohuProgram(
    Target target,
    List<Word> code,
    Constants constants,
    List<Symbol> symbols,
    List<DebugEntry> debug,
    SortedMap<String, String> metadata,
    List<ArgSlot> args) {

  /** Format version this code writes and reads. */
  public static final int VERSION_MAJOR = 1;
  public static final int VERSION_MINOR = 1;

  public SohuProgram {
    code = List.copyOf(code);
    symbols = List.copyOf(symbols);
    debug = List.copyOf(debug);
    metadata = java.util.Collections.unmodifiableSortedMap(new TreeMap<>(metadata));
    // the container keeps dims and arrays in two sections: this order survives a round trip
    args = java.util.stream.Stream.concat(args.stream().filter(a -> !a.isArray()),
        args.stream().filter(ArgSlot::isArray)).toList();
  }

  /** A program with only code, for tests and hand-written assembly. */
  public static SohuProgram ofCode(Target target, List<Word> code) {
    return new SohuProgram(target, code, null, List.of(), List.of(), new TreeMap<>(), List.of());
  }

  /** The argument block's length in words: as far as its furthest slot reaches. */
  public int argWords() {
    return args.stream().mapToInt(a -> a.index() + a.words()).max().orElse(0);
  }

  /** Decodes instruction pc; throws IllegalInstructionException for an illegal word. */
  public Insn decode(int pc) {
    return InsnCodec.decode(code.get(pc));
  }

  /** The machine description: its name and the SHA-256 of its JSON, as 64 hex digits. */
  public record Target(String name, String sha256) {
    public static final String NO_HASH = "0".repeat(64);

    public Target {
      if (sha256.length() != 64 || !sha256.chars().allMatch(c -> Character.digit(c, 16) >= 0)) {
        throw new IsaException("target hash must be 64 hex digits: " + sha256);
      }
      sha256 = sha256.toLowerCase(java.util.Locale.ROOT);
    }

    public byte[] hashBytes() {
      return HexFormat.of().parseHex(sha256);
    }
  }

  /** The weights: an HBM image loaded at {@code hbmAddress} before launch. */
  public sealed interface Constants {
    long hbmAddress();

    long size();
  }

  /** Constants stored in the .sohu file itself. */
  public record InlineConstants(long hbmAddress, byte[] bytes) implements Constants {
    public InlineConstants {
      bytes = bytes.clone();
    }

    @Override
    public byte[] bytes() {
      return bytes.clone();
    }

    @Override
    public long size() {
      return bytes.length;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof InlineConstants c && c.hbmAddress == hbmAddress
          && Arrays.equals(c.bytes, bytes);
    }

    @Override
    public int hashCode() {
      return Long.hashCode(hbmAddress) * 31 + Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
      return "InlineConstants[hbmAddress=" + hbmAddress + ", size=" + bytes.length + "]";
    }
  }

  /**
   * Constants in a side file (for models too large to inline), found next to the .sohu file by
   * name and checked by size and SHA-256.
   */
  public record ExternalConstants(long hbmAddress, long size, String sha256, String fileName)
      implements Constants {}

  /** Whether a symbol is read or written by the program. */
  public enum Direction { IN, OUT }

  /** One dimension of a symbol's shape: a number or the name of a symbolic dimension. */
  public sealed interface Dim {
    record Fixed(long size) implements Dim {
      @Override
      public String toString() {
        return Long.toString(size);
      }
    }

    /**
     * A symbolic dimension; with {@code capacity} above 0 its axis is allocated that many
     * entries whatever its run-time size (the layout of a cache appended to in place: the
     * entries of the outer dims lie {@code capacity} apart, the first {@code name} of each
     * valid).
     */
    record Sym(String name, long capacity) implements Dim {
      public Sym(String name) {
        this(name, 0);
      }

      @Override
      public String toString() {
        return capacity > 0 ? name + "@" + capacity : name;
      }
    }
  }

  /**
   * One input or output tensor, row-major at {@code hbmAddress}; {@code byteSize} is its size at
   * the largest value of its symbolic dims (the space reserved). A dim with a capacity
   * ({@link Dim.Sym#capacity}) is laid out at that extent; an output may then share an input's
   * address (a cache the program appends to in place).
   */
  public record Symbol(String name, Direction direction, DType dtype, List<Dim> shape,
      long hbmAddress, long byteSize) {
    public Symbol {
      shape = List.copyOf(shape);
    }
  }

  /** Instruction pc was compiled from IR op {@code irOp}, at source {@code location}. */
  public record DebugEntry(int pc, String irOp, String location) {}

  /**
   * Argument-block word {@code index} holds the value of symbolic dimension {@code name}; or,
   * with {@code values}, words {@code index .. index + capacity - 1} are an argument array that
   * holds the values of the integer input {@code name}.
   */
  public record ArgSlot(String name, int index, Values values) {
    /** The most words an argument block has: word indices are 16-bit in {@code ldarg}. */
    public static final int MAX_WORDS = 1 << 16;

    public ArgSlot {
      if (index < 0 || (long) index + (values == null ? 1 : values.capacity()) > MAX_WORDS) {
        throw new IsaException("argument " + name + " at word " + index + " does not fit the "
            + MAX_WORDS + "-word argument block");
      }
    }

    /** A symbolic dimension's slot. */
    public ArgSlot(String name, int index) {
      this(name, index, null);
    }

    /**
     * An argument array's shape: {@code capacity} words, the input's values flattened row-major
     * (i64 or i32, zeros past its element count), each in [0, value of dim {@code below}).
     */
    public record Values(int capacity, String below) {
      public Values {
        if (capacity < 1) {
          throw new IsaException("an argument array needs a capacity of at least 1, not "
              + capacity);
        }
      }
    }

    public boolean isArray() {
      return values != null;
    }

    /** How many words of the block the slot takes. */
    public int words() {
      return values == null ? 1 : values.capacity();
    }

    /** Whether the two slots share a word of the block. */
    public boolean overlaps(ArgSlot o) {
      return index < o.index + o.words() && o.index < index + words();
    }

    /** The slot in words, for messages: {@code seq (word 0)}, {@code pos (words 3..130)}. */
    public String describe() {
      return name + (values == null ? " (word " + index + ")"
          : " (words " + index + ".." + (index + words() - 1) + ")");
    }
  }
}
