package io.uffdemu.client;

/**
 * EINVAL (22): invalid argument (unaligned range, unsupported mode or feature, ...).
 *
 * <pre>{@code
 * try { ... } catch (EinvalException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EinvalException extends ErrnoException {
  public EinvalException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.EINVAL, name, call, bytesDone, grpcCode, cause);
  }
}
