package io.uffdemu.client;

/**
 * Arguments of mmap(2) as one immutable value ({@code addr, length, prot, flags, fd, offset}).
 * {@link #DEFAULT} is a private anonymous read/write mapping with no length yet; the withers return copies.
 *
 * <pre>{@code
 * long a = process.mmap(MmapOptions.anonymous(64 * 4096));
 * long s = process.mmap(MmapOptions.DEFAULT.withLength(2 << 20).sharedFile(memfd.fd(), 0));
 * long h = process.mmap(MmapOptions.anonymous(2 << 20).hugetlb2M().populate());
 * }</pre>
 */
public record MmapOptions(long addr, long length, int prot, int flags, int fd, long offset) {
  public static final MmapOptions DEFAULT = new MmapOptions(0, 0, Linux.PROT_READ | Linux.PROT_WRITE,
      Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);

  /** A private anonymous read/write mapping of {@code length} bytes. */
  public static MmapOptions anonymous(long length) {
    return DEFAULT.withLength(length);
  }

  public MmapOptions withAddr(long addr) {
    return new MmapOptions(addr, length, prot, flags, fd, offset);
  }

  public MmapOptions withLength(long length) {
    return new MmapOptions(addr, length, prot, flags, fd, offset);
  }

  public MmapOptions withProt(int prot) {
    return new MmapOptions(addr, length, prot, flags, fd, offset);
  }

  public MmapOptions withFlags(int flags) {
    return new MmapOptions(addr, length, prot, flags, fd, offset);
  }

  public MmapOptions withFd(int fd) {
    return new MmapOptions(addr, length, prot, flags, fd, offset);
  }

  public MmapOptions withOffset(long offset) {
    return new MmapOptions(addr, length, prot, flags, fd, offset);
  }

  /** MAP_SHARED of {@code fd} at {@code offset} (clears MAP_PRIVATE and MAP_ANONYMOUS). */
  public MmapOptions sharedFile(int fd, long offset) {
    return new MmapOptions(addr, length, prot,
        (flags & ~(Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS)) | Linux.MAP_SHARED, fd, offset);
  }

  /** MAP_PRIVATE of {@code fd} at {@code offset} (clears MAP_SHARED and MAP_ANONYMOUS). */
  public MmapOptions privateFile(int fd, long offset) {
    return new MmapOptions(addr, length, prot,
        (flags & ~(Linux.MAP_SHARED | Linux.MAP_ANONYMOUS)) | Linux.MAP_PRIVATE, fd, offset);
  }

  /** MAP_SHARED | MAP_ANONYMOUS (shmem-backed). */
  public MmapOptions sharedAnonymous() {
    return new MmapOptions(addr, length, prot,
        (flags & ~Linux.MAP_PRIVATE) | Linux.MAP_SHARED | Linux.MAP_ANONYMOUS, -1, 0);
  }

  /** MAP_FIXED at {@code addr}. */
  public MmapOptions fixed(long addr) {
    return new MmapOptions(addr, length, prot, flags | Linux.MAP_FIXED, fd, offset);
  }

  /** MAP_FIXED_NOREPLACE at {@code addr}. */
  public MmapOptions fixedNoReplace(long addr) {
    return new MmapOptions(addr, length, prot, flags | Linux.MAP_FIXED_NOREPLACE, fd, offset);
  }

  public MmapOptions populate() {
    return withFlags(flags | Linux.MAP_POPULATE);
  }

  public MmapOptions noReserve() {
    return withFlags(flags | Linux.MAP_NORESERVE);
  }

  public MmapOptions hugetlb2M() {
    return withFlags(flags | Linux.MAP_HUGETLB | Linux.MAP_HUGE_2MB);
  }

  public MmapOptions hugetlb1G() {
    return withFlags(flags | Linux.MAP_HUGETLB | Linux.MAP_HUGE_1GB);
  }
}
