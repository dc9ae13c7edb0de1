package io.uffdemu.client;

import java.time.Duration;

/**
 * A {@link HandlerLoop} could not re-attach its Handle stream within {@link ReconnectPolicy#maxAttempts()} or
 * {@link ReconnectPolicy#maxDowntime()}. The server may still hold the uffd (for its grace period); the cause is
 * the last failure, typically a {@link ServerUnavailableException}.
 *
 * <pre>{@code
 * loop.termination().whenComplete((v, e) -> { if (e instanceof ReconnectExhaustedException) alert(e); });
 * }</pre>
 */
public final class ReconnectExhaustedException extends HandlerDisconnectedException {
  public ReconnectExhaustedException(String message, String grpcCode, int attempts, Duration downtime,
      Throwable cause) {
    super(message, grpcCode, attempts, downtime, cause);
  }
}
