package io.uffdemu.client;

import java.time.Duration;

/**
 * A {@link HandlerLoop} lost its Handle stream and gave up reconnecting (see {@link ReconnectPolicy}). The
 * {@link #getCause() cause} is the last failure. Subclasses say why: {@link UffdGoneException} (the server no
 * longer holds the uffd) and {@link ReconnectExhaustedException} (the attempt or time bound passed).
 *
 * <pre>{@code
 * loop.termination().exceptionally(e -> {
 *   if (e instanceof UffdGoneException g) log.warn("uffd gone after {} attempts", g.attempts());
 *   return null;
 * });
 * }</pre>
 */
public abstract sealed class HandlerDisconnectedException extends UffdemuException
    permits UffdGoneException, ReconnectExhaustedException {
  private final int attempts;
  private final Duration downtime;

  protected HandlerDisconnectedException(String message, String grpcCode, int attempts, Duration downtime,
      Throwable cause) {
    super(message + " (" + attempts + " reconnect attempt(s) in " + downtime.toMillis() + " ms)", grpcCode, cause);
    this.attempts = attempts;
    this.downtime = downtime;
  }

  /** Reconnect attempts made in the outage that ended the loop. */
  public int attempts() {
    return attempts;
  }

  /** Time from the stream failure to giving up. */
  public Duration downtime() {
    return downtime;
  }
}
