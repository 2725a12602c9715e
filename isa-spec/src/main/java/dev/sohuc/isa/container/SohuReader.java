package dev.sohuc.isa.container;

import dev.sohuc.isa.DType;
import dev.sohuc.isa.IsaException;
import dev.sohuc.isa.Word;
import dev.sohuc.isa.container.SohuProgram.ArgSlot;
import dev.sohuc.isa.container.SohuProgram.Constants;
import dev.sohuc.isa.container.SohuProgram.DebugEntry;
import dev.sohuc.isa.container.SohuProgram.Dim;
import dev.sohuc.isa.container.SohuProgram.Direction;
import dev.sohuc.isa.container.SohuProgram.ExternalConstants;
import dev.sohuc.isa.container.SohuProgram.InlineConstants;
import dev.sohuc.isa.container.SohuProgram.Symbol;
import dev.sohuc.isa.container.SohuProgram.Target;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Reads and validates a {@code .sohu} file. Every offset, length, count and the version are
 * checked before anything is allocated, no allocation is larger than the input, and every
 * rejection is a {@link ContainerException} naming the section and byte offset. The sections'
 * checksums are compared last, once the whole file has parsed, so a malformed file is reported
 * by what is malformed rather than as a checksum mismatch.
 */
public final class SohuReader {
  private SohuReader() {}

  /** Maximum number of sections (each kind at most once). */
  static final int MAX_SECTIONS = SectionKind.values().length;
  /** Maximum rank of a symbol. */
  static final int MAX_RANK = 32;

  public static SohuProgram read(Path file) {
    long size;
    try {
      size = Files.size(file);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    if (size > Integer.MAX_VALUE - 16) {
      throw new ContainerException(file.toString(), "header", 0, "file of " + size
          + " bytes is too large to inline; keep the constants in a side file");
    }
    try {
      return read(Files.readAllBytes(file), file.toString());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static SohuProgram read(ByteBuffer data, String source) {
    ByteBuffer b = data.duplicate();
    byte[] bytes = new byte[b.remaining()];
    b.get(bytes);
    return read(bytes, source);
  }

  public static SohuProgram read(byte[] data, String source) {
    return new Parser(data, source).program();
  }

  /** A section table entry; {@code checksumAt} is the file offset of its stored CRC-32C. */
  private record Entry(SectionKind kind, long offset, long length, int checksumAt,
      long checksum) {}

  private static final class Parser {
    private final byte[] d;
    private final String source;
    private String section = "header";
    /** The argument slots read so far, by first word, and their names. */
    private final TreeMap<Integer, ArgSlot> slotsByIndex = new TreeMap<>();
    private final Set<String> slotNames = new HashSet<>();
    private int pos;
    private int end;

    Parser(byte[] d, String source) {
      this.d = d;
      this.source = source;
    }

    private ContainerException fail(long at, String why) {
      return new ContainerException(source, section, at, why);
    }

    SohuProgram program() {
      end = d.length;
      pos = 0;
      if (d.length < SohuWriter.HEADER_BYTES) {
        throw fail(0, "file of " + d.length + " bytes is shorter than the " + SohuWriter.HEADER_BYTES
            + "-byte header; not a .sohu file");
      }
      for (int i = 0; i < SohuWriter.MAGIC.length; i++) {
        if (d[i] != SohuWriter.MAGIC[i]) {
          throw fail(i, "bad magic number; not a .sohu file");
        }
      }
      pos = 8;
      int major = u16();
      int minor = u16();
      if (major != SohuProgram.VERSION_MAJOR || minor != SohuProgram.VERSION_MINOR) {
        throw fail(8, "unsupported format version " + major + "." + minor + " (this sohuc reads "
            + SohuProgram.VERSION_MAJOR + "." + SohuProgram.VERSION_MINOR + ")");
      }
      long count = u32();
      if (count < 2 || count > MAX_SECTIONS) {
        throw fail(12, "section count " + count + " is not in 2.." + MAX_SECTIONS);
      }
      long fileSize = u64();
      if (fileSize != d.length) {
        throw fail(16, "header says the file has " + Long.toUnsignedString(fileSize)
            + " bytes, it has " + d.length + " (truncated or padded?)");
      }
      if (u64() != 0) {
        throw fail(24, "reserved header bytes are not zero");
      }
      long tableEnd = SohuWriter.HEADER_BYTES + count * SohuWriter.ENTRY_BYTES;
      if (tableEnd > d.length) {
        throw fail(SohuWriter.HEADER_BYTES, "section table of " + count
            + " entries runs past the end of the file");
      }
      section = "section table";
      Map<SectionKind, Entry> entries = new EnumMap<>(SectionKind.class);
      List<Entry> ordered = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        int at = pos;
        long id = u32();
        SectionKind k = SectionKind.of((int) id);
        if (id > 255 || k == null) {
          throw fail(at, "unknown section kind " + id);
        }
        long checksum = u32();
        long off = u64();
        long len = u64();
        if (off < tableEnd || off > d.length || len < 0 || len > d.length - off) {
          throw fail(at + 8, k.label() + " section [" + Long.toUnsignedString(off) + ", +"
              + Long.toUnsignedString(len) + ") lies outside the data area [" + tableEnd + ", "
              + d.length + ")");
        }
        for (Entry e : ordered) {
          if (off < e.offset + e.length && e.offset < off + len) {
            throw fail(at + 8, k.label() + " section overlaps the " + e.kind.label() + " section");
          }
        }
        if (entries.containsKey(k)) {
          throw fail(at, "second " + k.label() + " section");
        }
        Entry e = new Entry(k, off, len, at + 4, checksum);
        entries.put(k, e);
        ordered.add(e);
      }
      if (entries.containsKey(SectionKind.CONST_INLINE)
          && entries.containsKey(SectionKind.CONST_EXTERNAL)) {
        throw fail(SohuWriter.HEADER_BYTES, "both inline and external constants");
      }
      for (SectionKind required : List.of(SectionKind.TARGET, SectionKind.CODE)) {
        if (!entries.containsKey(required)) {
          throw fail(SohuWriter.HEADER_BYTES, "no " + required.label() + " section");
        }
      }

      Target target = target(enter(entries.get(SectionKind.TARGET)));
      List<Word> code = code(enter(entries.get(SectionKind.CODE)));
      Constants constants = null;
      if (entries.containsKey(SectionKind.CONST_INLINE)) {
        enter(entries.get(SectionKind.CONST_INLINE));
        long hbm = u64();
        byte[] bytes = java.util.Arrays.copyOfRange(d, pos, end);
        pos = end;
        constants = new InlineConstants(hbm, bytes);
      } else if (entries.containsKey(SectionKind.CONST_EXTERNAL)) {
        enter(entries.get(SectionKind.CONST_EXTERNAL));
        long hbm = u64();
        long size = u64();
        String hash = HexFormat.of().formatHex(bytes(32));
        String name = str();
        if (name.isEmpty() || name.contains("/") || name.contains("\\")) {
          throw fail(pos, "side-file name \"" + name + "\" must be a plain file name");
        }
        constants = new ExternalConstants(hbm, size, hash, name);
        done();
      }
      List<Symbol> symbols = entries.containsKey(SectionKind.SYMBOLS)
          ? symbols(enter(entries.get(SectionKind.SYMBOLS))) : List.of();
      List<DebugEntry> debug = entries.containsKey(SectionKind.DEBUG)
          ? debug(enter(entries.get(SectionKind.DEBUG)), code.size()) : List.of();
      TreeMap<String, String> meta = entries.containsKey(SectionKind.METADATA)
          ? metadata(enter(entries.get(SectionKind.METADATA))) : new TreeMap<>();
      List<ArgSlot> args = new ArrayList<>();
      if (entries.containsKey(SectionKind.ARGS)) {
        args.addAll(args(enter(entries.get(SectionKind.ARGS))));
      }
      if (entries.containsKey(SectionKind.ARG_ARRAYS)) {
        args.addAll(argArrays(enter(entries.get(SectionKind.ARG_ARRAYS))));
      }
      SohuProgram program = new SohuProgram(target, code, constants, symbols, debug, meta, args);
      for (Entry e : ordered) {
        checkChecksum(e);
      }
      return program;
    }

    private void checkChecksum(Entry e) {
      enter(e);
      long actual = SohuWriter.checksum(d, pos, end - pos);
      if (actual != e.checksum) {
        throw fail(e.checksumAt, String.format("checksum 0x%08x does not match the section's "
            + "bytes (0x%08x); the file is corrupt", e.checksum, actual));
      }
    }

    private Entry enter(Entry e) {
      section = e.kind.label() + " section";
      pos = (int) e.offset;
      end = (int) (e.offset + e.length);
      return e;
    }

    private void done() {
      if (pos != end) {
        throw fail(pos, (end - pos) + " unexpected trailing bytes");
      }
    }

    private Target target(Entry e) {
      String name = str();
      String hash = HexFormat.of().formatHex(bytes(32));
      done();
      return new Target(name, hash);
    }

    private List<Word> code(Entry e) {
      if (e.length % Word.BYTES != 0) {
        throw fail(e.offset, "length " + e.length + " is not a multiple of " + Word.BYTES);
      }
      if (e.length == 0) {
        throw fail(e.offset, "no instructions");
      }
      int n = (int) (e.length / Word.BYTES);
      List<Word> words = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        words.add(Word.fromBytes(d, pos));
        pos += Word.BYTES;
      }
      return words;
    }

    private List<Symbol> symbols(Entry e) {
      int n = count(4 + 1 + 1 + 1 + 8 + 8);
      List<Symbol> out = new ArrayList<>(n);
      Set<String> names = new HashSet<>();
      for (int i = 0; i < n; i++) {
        int at = pos;
        String name = str();
        if (!names.add(name)) {
          throw fail(at, "second symbol named \"" + name + "\"");
        }
        int dir = u8();
        if (dir >= Direction.values().length) {
          throw fail(pos - 1, "symbol \"" + name + "\": bad direction " + dir);
        }
        int dt = u8();
        if (dt >= DType.values().length) {
          throw fail(pos - 1, "symbol \"" + name + "\": bad dtype " + dt);
        }
        int rank = u8();
        if (rank > MAX_RANK) {
          throw fail(pos - 1, "symbol \"" + name + "\": rank " + rank + " exceeds " + MAX_RANK);
        }
        List<Dim> shape = new ArrayList<>(rank);
        for (int r = 0; r < rank; r++) {
          int tag = u8();
          if (tag == 0) {
            long v = u64();
            if (v < 0) {
              throw fail(pos - 8, "symbol \"" + name + "\": negative dimension");
            }
            shape.add(new Dim.Fixed(v));
          } else if (tag == 1) {
            shape.add(new Dim.Sym(str()));
          } else if (tag == 2) {
            String dim = str();
            long capacity = u64();
            if (capacity <= 0) {
              throw fail(pos - 8, "symbol \"" + name + "\": dimension " + dim + " with capacity "
                  + capacity);
            }
            shape.add(new Dim.Sym(dim, capacity));
          } else {
            throw fail(pos - 1, "symbol \"" + name + "\": bad dimension tag " + tag);
          }
        }
        long addr = u64();
        long bytes = u64();
        out.add(new Symbol(name, Direction.values()[dir], DType.values()[dt], shape, addr, bytes));
      }
      done();
      return out;
    }

    private List<DebugEntry> debug(Entry e, int codeSize) {
      int n = count(4 + 4 + 4);
      List<DebugEntry> out = new ArrayList<>(n);
      long last = -1;
      for (int i = 0; i < n; i++) {
        int at = pos;
        long pc = u32();
        if (pc <= last || pc >= codeSize) {
          throw fail(at, "debug entry for pc " + pc + " is out of order or past the code ("
              + codeSize + " instructions)");
        }
        last = pc;
        out.add(new DebugEntry((int) pc, str(), str()));
      }
      done();
      return out;
    }

    private TreeMap<String, String> metadata(Entry e) {
      int n = count(8);
      TreeMap<String, String> out = new TreeMap<>();
      String last = null;
      for (int i = 0; i < n; i++) {
        int at = pos;
        String k = str();
        if (last != null && k.compareTo(last) <= 0) {
          throw fail(at, "metadata key \"" + k + "\" is duplicate or out of order");
        }
        last = k;
        out.put(k, str());
      }
      done();
      return out;
    }

    private List<ArgSlot> args(Entry e) {
      int n = count(4 + 4);
      List<ArgSlot> out = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        int at = pos;
        String name = str();
        long idx = u32();
        if (idx >= ArgSlot.MAX_WORDS) {
          throw fail(at, "argument \"" + name + "\" at index " + idx + " is beyond "
              + (ArgSlot.MAX_WORDS - 1));
        }
        out.add(claim(at, new ArgSlot(name, (int) idx)));
      }
      done();
      return out;
    }

    private List<ArgSlot> argArrays(Entry e) {
      int n = count(4 + 4 + 4 + 4);
      List<ArgSlot> out = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        int at = pos;
        String name = str();
        long idx = u32();
        long capacity = u32();
        String below = str();
        if (capacity < 1 || idx + capacity > ArgSlot.MAX_WORDS) {
          throw fail(at, "argument array \"" + name + "\" of " + capacity + " words at index "
              + idx + " is empty or runs past the " + ArgSlot.MAX_WORDS + "-word block");
        }
        out.add(claim(at, new ArgSlot(name, (int) idx, new ArgSlot.Values((int) capacity,
            below))));
      }
      done();
      return out;
    }

    /** Takes the slot's words and name, both of which must still be free. */
    private ArgSlot claim(int at, ArgSlot s) {
      if (!slotNames.add(s.name())) {
        throw fail(at, "second argument named \"" + s.name() + "\"");
      }
      // the slots so far are disjoint: only the last one starting at or before s's end can reach s
      Map.Entry<Integer, ArgSlot> before = slotsByIndex.floorEntry(s.index() + s.words() - 1);
      if (before != null && before.getValue().overlaps(s)) {
        throw fail(at, "argument " + s.describe() + " overlaps argument "
            + before.getValue().describe());
      }
      slotsByIndex.put(s.index(), s);
      return s;
    }

    /** Reads an entry count and checks it against the bytes left before anything is allocated. */
    private int count(int minEntryBytes) {
      int at = pos;
      long n = u32();
      if (n > (end - pos) / minEntryBytes) {
        throw fail(at, "count " + n + " needs at least " + n * minEntryBytes + " bytes, "
            + (end - pos) + " remain");
      }
      return (int) n;
    }

    private void need(int n) {
      if (n < 0 || n > end - pos) {
        throw fail(pos, "needs " + Integer.toUnsignedString(n) + " more bytes, " + (end - pos)
            + " remain");
      }
    }

    private int u8() {
      need(1);
      return d[pos++] & 0xFF;
    }

    private int u16() {
      need(2);
      int v = (d[pos] & 0xFF) | (d[pos + 1] & 0xFF) << 8;
      pos += 2;
      return v;
    }

    private long u32() {
      need(4);
      long v = 0;
      for (int i = 3; i >= 0; i--) {
        v = (v << 8) | (d[pos + i] & 0xFF);
      }
      pos += 4;
      return v;
    }

    private long u64() {
      need(8);
      long v = 0;
      for (int i = 7; i >= 0; i--) {
        v = (v << 8) | (d[pos + i] & 0xFF);
      }
      pos += 8;
      return v;
    }

    private byte[] bytes(int n) {
      need(n);
      byte[] b = java.util.Arrays.copyOfRange(d, pos, pos + n);
      pos += n;
      return b;
    }

    private String str() {
      int at = pos;
      long n = u32();
      if (n > end - pos) {
        throw fail(at, "string of " + n + " bytes runs past the section end");
      }
      try {
        CharBuffer cb = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT)
            .decode(ByteBuffer.wrap(d, pos, (int) n));
        pos += (int) n;
        return cb.toString();
      } catch (CharacterCodingException ex) {
        throw fail(at, "string is not valid UTF-8");
      }
    }
  }

  /** Checks an external constants file against its reference; returns its bytes. */
  public static byte[] readSideFile(Path sohuFile, ExternalConstants ref) {
    Path side = sohuFile.resolveSibling(ref.fileName());
    try {
      long size = Files.size(side);
      if (size != ref.size()) {
        throw new IsaException(side + ": constants side file has " + size + " bytes, "
            + sohuFile + " expects " + ref.size());
      }
      byte[] data = Files.readAllBytes(side);
      String hash = HexFormat.of().formatHex(
          java.security.MessageDigest.getInstance("SHA-256").digest(data));
      if (!hash.equals(ref.sha256())) {
        throw new IsaException(side + ": constants side file hash " + hash + " does not match "
            + ref.sha256() + " recorded in " + sohuFile);
      }
      return data;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
