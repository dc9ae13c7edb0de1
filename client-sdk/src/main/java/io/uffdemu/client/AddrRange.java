package io.uffdemu.client;

/**
 * A half-open range {@code [start, start + len)} of a process's virtual address space
 * ({@code struct uffdio_range}).
 *
 * <pre>{@code
 * AddrRange r = new AddrRange(addr, 16 * 4096);
 * uffd.register(r, Linux.UFFDIO_REGISTER_MODE_MISSING);
 * }</pre>
 */
public record AddrRange(long start, long len) {
  public AddrRange {
    if (len < 0) {
      throw new IllegalArgumentException("negative len " + len);
    }
  }

  /** The range {@code [start, end)}. */
  public static AddrRange ofBounds(long start, long end) {
    return new AddrRange(start, end - start);
  }

  /** The page of size {@code pageSize} (a power of two) that contains {@code addr}. */
  public static AddrRange page(long addr, long pageSize) {
    return new AddrRange(addr & -pageSize, pageSize);
  }

  /** Exclusive end address. */
  public long end() {
    return start + len;
  }

  public boolean contains(long addr) {
    return Long.compareUnsigned(addr, start) >= 0 && Long.compareUnsigned(addr, end()) < 0;
  }

  @Override
  public String toString() {
    return "[0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end()) + ")";
  }
}
