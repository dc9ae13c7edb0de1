package io.uffdemu.client;

/**
 * ENOSPC (28): no space, e.g. hugetlb pool exhausted.
 *
 * <pre>{@code
 * try { ... } catch (EnospcException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EnospcException extends ErrnoException {
  public EnospcException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.ENOSPC, name, call, bytesDone, grpcCode, cause);
  }
}
