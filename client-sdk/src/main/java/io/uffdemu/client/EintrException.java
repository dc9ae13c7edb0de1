package io.uffdemu.client;

/**
 * EINTR (4): the call was interrupted.
 *
 * <pre>{@code
 * try { ... } catch (EintrException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EintrException extends ErrnoException {
  public EintrException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.EINTR, name, call, bytesDone, grpcCode, cause);
  }
}
