package dev.sohuc.isa.container;

import dev.sohuc.isa.Word;
import dev.sohuc.isa.container.SohuProgram.ArgSlot;
import dev.sohuc.isa.container.SohuProgram.DebugEntry;
import dev.sohuc.isa.container.SohuProgram.Dim;
import dev.sohuc.isa.container.SohuProgram.ExternalConstants;
import dev.sohuc.isa.container.SohuProgram.InlineConstants;
import dev.sohuc.isa.container.SohuProgram.Symbol;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * Writes the {@code .sohu} format, version 1.1 (layout in docs/isa.md). Output is canonical: the
 * same program always gives the same bytes, and {@link SohuReader} accepts exactly what this
 * writes.
 */
public final class SohuWriter {
  private SohuWriter() {}

  /** {@code 0x89 'S' 'O' 'H' 'U' '\r' '\n' 0x1a}: binary, and catches line-ending mangling. */
  static final byte[] MAGIC = {(byte) 0x89, 'S', 'O', 'H', 'U', '\r', '\n', 0x1A};
  static final int HEADER_BYTES = 32;
  static final int ENTRY_BYTES = 24;
  static final int ALIGN = 16;

  public static void write(SohuProgram p, Path file) throws IOException {
    Files.write(file, write(p));
  }

  public static byte[] write(SohuProgram p) {
    List<SectionKind> kinds = new ArrayList<>();
    List<byte[]> payloads = new ArrayList<>();
    Out t = new Out();
    t.str(p.target().name());
    t.raw(p.target().hashBytes());
    add(kinds, payloads, SectionKind.TARGET, t);
    Out c = new Out();
    byte[] w = new byte[Word.BYTES];
    for (Word word : p.code()) {
      word.toBytes(w, 0);
      c.raw(w);
    }
    add(kinds, payloads, SectionKind.CODE, c);
    if (p.constants() instanceof InlineConstants ic) {
      Out o = new Out();
      o.u64(ic.hbmAddress());
      o.raw(ic.bytes());
      add(kinds, payloads, SectionKind.CONST_INLINE, o);
    } else if (p.constants() instanceof ExternalConstants ec) {
      Out o = new Out();
      o.u64(ec.hbmAddress());
      o.u64(ec.size());
      o.raw(HexFormat.of().parseHex(ec.sha256()));
      o.str(ec.fileName());
      add(kinds, payloads, SectionKind.CONST_EXTERNAL, o);
    }
    if (!p.symbols().isEmpty()) {
      Out o = new Out();
      o.u32(p.symbols().size());
      for (Symbol s : p.symbols()) {
        o.str(s.name());
        o.u8(s.direction().ordinal());
        o.u8(s.dtype().ordinal());
        o.u8(s.shape().size());
        for (Dim d : s.shape()) {
          if (d instanceof Dim.Fixed f) {
            o.u8(0);
            o.u64(f.size());
          } else if (d instanceof Dim.Sym sym && sym.capacity() == 0) {
            o.u8(1);
            o.str(sym.name());
          } else if (d instanceof Dim.Sym sym) {
            o.u8(2);
            o.str(sym.name());
            o.u64(sym.capacity());
          }
        }
        o.u64(s.hbmAddress());
        o.u64(s.byteSize());
      }
      add(kinds, payloads, SectionKind.SYMBOLS, o);
    }
    if (!p.debug().isEmpty()) {
      Out o = new Out();
      o.u32(p.debug().size());
      for (DebugEntry d : p.debug()) {
        o.u32(d.pc());
        o.str(d.irOp());
        o.str(d.location());
      }
      add(kinds, payloads, SectionKind.DEBUG, o);
    }
    if (!p.metadata().isEmpty()) {
      Out o = new Out();
      o.u32(p.metadata().size());
      for (Map.Entry<String, String> e : p.metadata().entrySet()) {
        o.str(e.getKey());
        o.str(e.getValue());
      }
      add(kinds, payloads, SectionKind.METADATA, o);
    }
    List<ArgSlot> dims = p.args().stream().filter(a -> !a.isArray()).toList();
    if (!dims.isEmpty()) {
      Out o = new Out();
      o.u32(dims.size());
      for (ArgSlot a : dims) {
        o.str(a.name());
        o.u32(a.index());
      }
      add(kinds, payloads, SectionKind.ARGS, o);
    }
    List<ArgSlot> arrays = p.args().stream().filter(ArgSlot::isArray).toList();
    if (!arrays.isEmpty()) {
      Out o = new Out();
      o.u32(arrays.size());
      for (ArgSlot a : arrays) {
        o.str(a.name());
        o.u32(a.index());
        o.u32(a.values().capacity());
        o.str(a.values().below());
      }
      add(kinds, payloads, SectionKind.ARG_ARRAYS, o);
    }

    long offset = align(HEADER_BYTES + (long) ENTRY_BYTES * kinds.size());
    long[] offsets = new long[kinds.size()];
    for (int i = 0; i < kinds.size(); i++) {
      offsets[i] = offset;
      offset = align(offset + payloads.get(i).length);
    }
    Out f = new Out();
    f.raw(MAGIC);
    f.u16(SohuProgram.VERSION_MAJOR);
    f.u16(SohuProgram.VERSION_MINOR);
    f.u32(kinds.size());
    f.u64(offset);
    f.u64(0);
    for (int i = 0; i < kinds.size(); i++) {
      f.u32(kinds.get(i).id());
      f.u32(checksum(payloads.get(i), 0, payloads.get(i).length));
      f.u64(offsets[i]);
      f.u64(payloads.get(i).length);
    }
    for (int i = 0; i < kinds.size(); i++) {
      f.pad(offsets[i]);
      f.raw(payloads.get(i));
    }
    f.pad(offset);
    return f.toByteArray();
  }

  private static void add(List<SectionKind> kinds, List<byte[]> payloads, SectionKind k, Out o) {
    kinds.add(k);
    payloads.add(o.toByteArray());
  }

  /**
   * The CRC-32C of a section's bytes, kept in its table entry: a flipped bit in the code often
   * still decodes to a valid instruction, and would run silently to a different answer.
   */
  static long checksum(byte[] data, int offset, int length) {
    CRC32C crc = new CRC32C();
    crc.update(data, offset, length);
    return crc.getValue();
  }

  static long align(long v) {
    return (v + ALIGN - 1) & -ALIGN;
  }

  /** Little-endian output. */
  private static final class Out extends ByteArrayOutputStream {
    void u8(int v) {
      write(v);
    }

    void u16(int v) {
      u8(v);
      u8(v >>> 8);
    }

    void u32(long v) {
      for (int i = 0; i < 4; i++) {
        u8((int) (v >>> (8 * i)));
      }
    }

    void u64(long v) {
      for (int i = 0; i < 8; i++) {
        u8((int) (v >>> (8 * i)));
      }
    }

    void raw(byte[] b) {
      write(b, 0, b.length);
    }

    void str(String s) {
      byte[] b = s.getBytes(StandardCharsets.UTF_8);
      u32(b.length);
      raw(b);
    }

    void pad(long to) {
      while (size() < to) {
        u8(0);
      }
    }
  }
}
