package io.uffdemu.client;

/**
 * EACCES (13): permission denied.
 *
 * <pre>{@code
 * try { ... } catch (EaccesException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EaccesException extends ErrnoException {
  public EaccesException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.EACCES, name, call, bytesDone, grpcCode, cause);
  }
}
