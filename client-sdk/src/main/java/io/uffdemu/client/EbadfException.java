package io.uffdemu.client;

/**
 * EBADF (9): bad file descriptor (closed uffd or memfd).
 *
 * <pre>{@code
 * try { ... } catch (EbadfException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EbadfException extends ErrnoException {
  public EbadfException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.EBADF, name, call, bytesDone, grpcCode, cause);
  }
}
