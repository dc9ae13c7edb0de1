package io.uffdemu.client;

/**
 * A memfd of a process: its page cache is reachable through pread/pwrite without a mapping, and through
 * MAP_SHARED mappings (the usual source for MINOR faults + UFFDIO_CONTINUE).
 *
 * <pre>{@code
 * Memfd m = process.memfdCreate("guest-ram", Linux.MFD_CLOEXEC);
 * m.ftruncate(1 << 20);
 * long shared = m.mmap(1 << 20, 0);
 * m.pwrite(0, page);
 * }</pre>
 */
public interface Memfd extends AutoCloseable {
  Process process();

  int fd();

  void ftruncate(long length);

  void fallocate(int mode, long offset, long len);

  /** FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE. */
  default void punchHole(long offset, long len) {
    fallocate(Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, offset, len);
  }

  byte[] pread(long offset, int len);

  long pwrite(long offset, byte[] data);

  /** MAP_SHARED read/write mapping of {@code [offset, offset + len)}; returns the address. */
  long mmap(long len, long offset);

  /** Grants another tenant the right to receive this memfd; see {@link Process#grantMemfd}. */
  default String grant(String granteeTenant) {
    return process().grantMemfd(fd(), granteeTenant);
  }

  /** close(2) of the fd (existing mappings stay). */
  @Override
  void close();
}
