package io.uffdemu.client;

/**
 * ENOMEM (12): out of memory, or out of mapping slots.
 *
 * <pre>{@code
 * try { ... } catch (EnomemException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EnomemException extends ErrnoException {
  public EnomemException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.ENOMEM, name, call, bytesDone, grpcCode, cause);
  }
}
