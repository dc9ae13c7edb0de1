package io.uffdemu.client;

/**
 * EPERM (1): operation not permitted, e.g. userfaultfd(2) without CAP_SYS_PTRACE while vm.unprivileged_userfaultfd = 0.
 *
 * <pre>{@code
 * try { ... } catch (EpermException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EpermException extends ErrnoException {
  public EpermException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.EPERM, name, call, bytesDone, grpcCode, cause);
  }
}
