package io.uffdemu.client;

/**
 * EBUSY (16): resource busy, e.g. registering a range already registered to another uffd.
 *
 * <pre>{@code
 * try { ... } catch (EbusyException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EbusyException extends ErrnoException {
  public EbusyException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.EBUSY, name, call, bytesDone, grpcCode, cause);
  }
}
