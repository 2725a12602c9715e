package dev.sohuc.emu;

import java.util.HashMap;
import java.util.Map;

/**
 * HBM for the functional mode: byte addressed, allocated lazily in 1 MiB pages, so a program
 * for a 144 GB chip costs only the pages it writes. Reading a page never written gives zeros
 * without allocating it. A host budget bounds the pages a program may touch.
 */
final class Hbm {
  static final int PAGE_BITS = 20;
  static final int PAGE_BYTES = 1 << PAGE_BITS;
  private static final int PAGE_MASK = PAGE_BYTES - 1;

  private final long size;
  private final long maxPages;
  private final Map<Long, byte[]> pages = new HashMap<>();
  private long lastIndex = -1;
  private byte[] lastPage;

  Hbm(long size, long hostBudgetBytes) {
    this.size = size;
    this.maxPages = Math.max(1, hostBudgetBytes >> PAGE_BITS);
  }

  long size() {
    return size;
  }

  long pagesAllocated() {
    return pages.size();
  }

  void check(long addr, long len) {
    if (addr < 0 || len < 0 || addr > size - len) {
      throw Fault.oob(String.format("HBM access of %d bytes at 0x%x is outside HBM (%d bytes)",
          len, addr, size));
    }
  }

  private byte[] pageForWrite(long index) {
    if (index == lastIndex) {
      return lastPage;
    }
    byte[] p = pages.get(index);
    if (p == null) {
      if (pages.size() >= maxPages) {
        throw new Fault(Trap.Kind.HOST_LIMIT, String.format("the program touched more than %d "
            + "MiB of HBM, the emulator's host budget (Options.hostHbmBudgetBytes)", maxPages));
      }
      p = new byte[PAGE_BYTES];
      pages.put(index, p);
    }
    lastIndex = index;
    lastPage = p;
    return p;
  }

  private byte[] pageForRead(long index) {
    if (index == lastIndex) {
      return lastPage;
    }
    byte[] p = pages.get(index);
    if (p != null) {
      lastIndex = index;
      lastPage = p;
    }
    return p;
  }

  /** Copies {@code len} bytes at {@code addr} into {@code dst[off..]}; bounds already checked. */
  void read(long addr, byte[] dst, int off, int len) {
    while (len > 0) {
      int in = (int) (addr & PAGE_MASK);
      int n = Math.min(len, PAGE_BYTES - in);
      byte[] p = pageForRead(addr >>> PAGE_BITS);
      if (p == null) {
        java.util.Arrays.fill(dst, off, off + n, (byte) 0);
      } else {
        System.arraycopy(p, in, dst, off, n);
      }
      addr += n;
      off += n;
      len -= n;
    }
  }

  /** Copies {@code src[off..off+len)} to {@code addr}; bounds already checked. */
  void write(long addr, byte[] src, int off, int len) {
    while (len > 0) {
      int in = (int) (addr & PAGE_MASK);
      int n = Math.min(len, PAGE_BYTES - in);
      System.arraycopy(src, off, pageForWrite(addr >>> PAGE_BITS), in, n);
      addr += n;
      off += n;
      len -= n;
    }
  }

  long readLong(long addr) {
    byte[] b = new byte[8];
    read(addr, b, 0, 8);
    long v = 0;
    for (int i = 7; i >= 0; i--) {
      v = (v << 8) | (b[i] & 0xFF);
    }
    return v;
  }

  void writeLong(long addr, long v) {
    byte[] b = new byte[8];
    for (int i = 0; i < 8; i++) {
      b[i] = (byte) (v >>> (8 * i));
    }
    write(addr, b, 0, 8);
  }
}
