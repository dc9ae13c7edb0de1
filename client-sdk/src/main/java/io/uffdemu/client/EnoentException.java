package io.uffdemu.client;

/**
 * ENOENT (2): e.g. UFFDIO_COPY/ZEROPAGE on a range that is no longer registered (unmapped or unregistered).
 *
 * <pre>{@code
 * try { ... } catch (EnoentException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EnoentException extends ErrnoException {
  public EnoentException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.ENOENT, name, call, bytesDone, grpcCode, cause);
  }
}
