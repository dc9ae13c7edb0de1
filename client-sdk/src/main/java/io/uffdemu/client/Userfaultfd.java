package io.uffdemu.client;

import java.time.Duration;
import java.util.List;

/**
 * A userfaultfd of a process and its ioctls. Resolving ioctls return the bytes done ({@code copy},
 * {@code zeropage}, {@code mapped}, {@code move} fields of the kernel structs); failures throw
 * {@link ErrnoException} subclasses with {@link ErrnoException#bytesDone()} for partial progress.
 *
 * <pre>{@code
 * Userfaultfd uffd = process.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_EVENT_REMOVE));
 * uffd.register(range, Linux.UFFDIO_REGISTER_MODE_MISSING);
 * try (HandlerLoop loop = uffd.handle(ctx -> ctx.copy(pageFor(ctx.pageAddress())), HandlerOptions.DEFAULT)) {
 *   ...
 * }
 * }</pre>
 */
public interface Userfaultfd extends AutoCloseable {
  Process process();

  int fd();

  /** Features answered by UFFDIO_API (0 when this facade was made from a bare fd). */
  long features();

  /** Ioctls answered by UFFDIO_API (0 when this facade was made from a bare fd). */
  long ioctls();

  /**
   * UFFDIO_API (api 0xAA) on a uffd opened with {@link Process#userfaultfdWithoutApi}; returns a facade
   * carrying the answered features and ioctls. A second handshake fails with EINVAL.
   */
  Userfaultfd api(long features);

  /** UFFDIO_REGISTER with UFFDIO_REGISTER_MODE_* bits; returns the ioctls valid on the range. */
  long register(AddrRange range, long mode);

  void unregister(AddrRange range);

  /** UFFDIO_COPY of {@code data} to {@code dst}; {@code mode} UFFDIO_COPY_MODE_*. Never retried. */
  long copy(long dst, byte[] data, long mode);

  long zeropage(AddrRange range, long mode);

  /** UFFDIO_CONTINUE ({@code continue} is a Java keyword). */
  long continue_(AddrRange range, long mode);

  /** UFFDIO_WRITEPROTECT; {@code mode} UFFDIO_WRITEPROTECT_MODE_WP to protect, 0 to unprotect (and wake). */
  void writeProtect(AddrRange range, long mode);

  void wake(AddrRange range);

  long poison(AddrRange range, long mode);

  long move(long dst, long src, long len, long mode);

  /** read(2): up to {@code max} pending messages, waiting up to {@code wait} when none is pending. */
  List<UffdMessage> read(int max, Duration wait);

  /**
   * Starts a handler loop on the Handle stream (one per uffd). Faults are dispatched to
   * {@link FaultHandler#onFault}, other events to {@link FaultHandler#onEvent} in order.
   */
  HandlerLoop handle(FaultHandler handler, HandlerOptions options);

  AsyncUserfaultfd async();

  /** Its fdinfo and registered ranges ({@link UffdInfo}); ENOTTY when the fd is not a userfaultfd. */
  UffdInfo describe();

  /** close(2) of the uffd: the kernel wakes every blocked fault of it. */
  @Override
  void close();
}
