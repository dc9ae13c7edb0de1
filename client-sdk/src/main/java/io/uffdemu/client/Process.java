package io.uffdemu.client;

import java.time.Duration;
import java.util.List;

/**
 * An emulated process: its memory syscalls, fds, /proc views and emulated loads/stores. Every method is one
 * call; failures throw {@link ErrnoException} subclasses named after the kernel's errno.
 *
 * <pre>{@code
 * Process p = client.createProcess("guest");
 * long a = p.mmap(MmapOptions.anonymous(4 * 4096));
 * p.write(a, "hello".getBytes(), AccessMode.USER);
 * p.madvise(a, 4096, Linux.MADV_DONTNEED);
 * List<PagemapEntry> pm = p.pagemap(a, 4);
 * p.async().read(a, 5).thenAccept(r -> System.out.println(r.ok()));
 * }</pre>
 */
public interface Process {
  int pid();

  /** This process with another default deadline for its calls (e.g. long Access waits). */
  Process withDeadline(Duration deadline);

  ProcessInfo info();

  /** Every userfaultfd of this process with its fdinfo and registered ranges, by fd ({@code uffdemu uffd ls}). */
  List<UffdInfo> userfaultfds();

  // ---- mappings
  /** mmap(2); returns the address. */
  long mmap(MmapOptions options);

  void munmap(long addr, long len);

  /** mremap(2); returns the new address. {@code flags}: MREMAP_*. */
  long mremap(long oldAddr, long oldLen, long newLen, int flags, long newAddr);

  void mprotect(long addr, long len, int prot);

  /** madvise(2) with a {@code Linux.MADV_*} advice. */
  void madvise(long addr, long len, int advice);

  // ---- fds
  /** memfd_create(2). */
  Memfd memfdCreate(String name, int flags);

  void ftruncate(int fd, long length);

  /** fallocate(2): {@code mode} FALLOC_FL_* bits. */
  void fallocate(int fd, int mode, long offset, long len);

  byte[] pread(int fd, long offset, int len);

  /** Returns the number of bytes written. */
  long pwrite(int fd, long offset, byte[] data);

  /** close(2) of any fd of the process. */
  void close(int fd);

  /**
   * pidfd_getfd(2): duplicates fd {@code targetFd} of process {@code targetPid} into this process (lowest free
   * number) and returns the new fd. How two processes share one memfd, or a monitor gets a target's uffd.
   */
  int pidfdGetfd(int targetPid, int targetFd);

  /**
   * Grants tenant {@code granteeTenant} the right to receive memfd {@code fd} of this process: the only way a memfd
   * crosses tenants. Returns the grant token to hand to the grantee out of band. The grant holds the open file
   * until {@link #revokeMemfdGrant revoked} or until this process exits.
   */
  String grantMemfd(int fd, String granteeTenant);

  /**
   * Installs a memfd granted to this client's tenant into this process and returns its fd (lowest free number).
   * An unknown, revoked or someone else's token: {@link EnoentException}.
   */
  int acceptMemfdGrant(String grantToken);

  /**
   * Withdraws a grant this client's tenant made: no further accepts; the fds it installed are closed (mappings the
   * grantee made stay, as a mapping outlives close(2)). Returns how many fds were closed.
   */
  int revokeMemfdGrant(String grantToken);

  /** A {@link Memfd} facade for an existing memfd fd of this process (e.g. one from {@link #pidfdGetfd}); no call is made. */
  Memfd memfd(int fd);

  /** userfaultfd(2) + UFFDIO_API. */
  Userfaultfd userfaultfd(UffdOptions options);

  /** A facade for an existing uffd fd of this process (e.g. the {@code ufd} of a FORK event). */
  Userfaultfd userfaultfd(int fd);

  /**
   * userfaultfd(2) only, without the UFFDIO_API handshake ({@code options.features()} is ignored): call
   * {@link Userfaultfd#api(long)} next, as a C program would. Until then every other ioctl fails with EINVAL.
   */
  Userfaultfd userfaultfdWithoutApi(UffdOptions options);

  // ---- accesses (block while a uffd handles the fault, bounded by the deadline)
  default AccessResult read(long addr, int len) {
    return read(addr, len, AccessMode.USER);
  }

  AccessResult read(long addr, int len, AccessMode mode);

  default AccessResult write(long addr, byte[] data) {
    return write(addr, data, AccessMode.USER);
  }

  AccessResult write(long addr, byte[] data, AccessMode mode);

  /**
   * A fault storm: many threads of this process access a range at once inside the server (no RPC per access), for
   * load tests and benchmarks of fault handlers. Returns when every thread is done.
   */
  StormResult storm(StormOptions options);

  // ---- /proc
  List<Vma> maps();

  /** {@code pages} entries of /proc/PID/pagemap from the page containing {@code start}. */
  List<PagemapEntry> pagemap(long start, long pages);

  PagemapScanResult pagemapScan(PagemapScanOptions options);

  // ---- lifecycle
  /** fork(2); returns the child. */
  Process fork();

  /** exit(2). */
  void exit();

  /** The same operations returning futures (run on virtual threads). */
  AsyncProcess async();
}
