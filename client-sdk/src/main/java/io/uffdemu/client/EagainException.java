package io.uffdemu.client;

/**
 * EAGAIN (11): retry later. For UFFDIO_COPY/ZEROPAGE/CONTINUE/MOVE this usually means a non-cooperative event (REMOVE, REMAP, UNMAP, FORK) is pending on the uffd: read it first, then retry (the handler loop does that for you). {@link #bytesDone()} is the partial progress.
 *
 * <pre>{@code
 * try { ... } catch (EagainException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EagainException extends ErrnoException {
  public EagainException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.EAGAIN, name, call, bytesDone, grpcCode, cause);
  }
}
