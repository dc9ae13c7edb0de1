package io.uffdemu.client;

/**
 * ESRCH (3): no such process, e.g. the target mm has exited (UFFDIO_* after exit).
 *
 * <pre>{@code
 * try { ... } catch (EsrchException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EsrchException extends ErrnoException {
  public EsrchException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.ESRCH, name, call, bytesDone, grpcCode, cause);
  }
}
