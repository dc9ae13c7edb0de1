package io.uffdemu.client;

/**
 * EFAULT (14): bad address, e.g. a kernel-mode access to a range whose uffd is USER_MODE_ONLY.
 *
 * <pre>{@code
 * try { ... } catch (EfaultException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EfaultException extends ErrnoException {
  public EfaultException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.EFAULT, name, call, bytesDone, grpcCode, cause);
  }
}
