package io.uffdemu.client;

/**
 * ENOSYS (38) or EOPNOTSUPP (95): the backend or kernel does not support the call or mode.
 *
 * <pre>{@code
 * try { uffd.move(dst, src, len, 0); } catch (EnotsupException e) { fallBackToCopy(); }
 * }</pre>
 */
public class EnotsupException extends ErrnoException {
  public EnotsupException(int errno, String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(errno, name, call, bytesDone, grpcCode, cause);
  }
}
