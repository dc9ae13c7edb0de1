package io.uffdemu.client;

import java.time.Duration;

/**
 * A {@link HandlerLoop} tried to re-attach its Handle stream and the server answered that it no longer holds the
 * uffd: EBADF (the grace period passed and the server closed it, or its owner closed it), ESRCH (the process
 * exited) or NOT_FOUND. Reconnecting cannot help; a new uffd is needed. The cause is the server's answer
 * (an {@link ErrnoException} when it carried an errno).
 *
 * <pre>{@code
 * try { loop.termination().join(); }
 * catch (CompletionException e) { if (e.getCause() instanceof UffdGoneException) reopen(); }
 * }</pre>
 */
public final class UffdGoneException extends HandlerDisconnectedException {
  public UffdGoneException(String message, String grpcCode, int attempts, Duration downtime, Throwable cause) {
    super(message, grpcCode, attempts, downtime, cause);
  }
}
