package io.uffdemu.client;

import java.time.Duration;

/**
 * Hooks of a {@link HandlerLoop} for metrics. All methods must be cheap and non-blocking: {@link #queueDepth} is
 * also called from the gRPC transport's thread (the Handle stream's messages are taken there), under the loop's
 * lock, so a slow observer delays every call on that channel. {@link #faultDone} may run there too (not under
 * the lock): a {@link BatchFaultHandler}'s message batch whose results all arrived clean is finished on the
 * thread that received the last of them.
 * {@link HandlerMetrics} implements it with Micrometer.
 *
 * <pre>{@code
 * HandlerOptions.DEFAULT.withObserver(new HandlerMetrics(registry, "snapshot-restore"));
 * }</pre>
 */
public interface HandlerObserver {
  HandlerObserver NOOP = new HandlerObserver() {};

  /**
   * A fault finished; {@code outcome} is one of "resolved", "eexist", "fallback", "failed", "abandoned" (its
   * resolution went out on a stream that broke: the server re-delivers it).
   */
  default void faultDone(Duration latency, String outcome) {}

  /** Messages received and not yet picked up by a worker (or by the event thread). */
  default void queueDepth(int depth) {}

  default void eagainDeferral() {}

  /** A resolution or fallback failed with {@code errnoName} ("EAGAIN", ...), or "OTHER" when not an errno. */
  default void error(String errnoName) {}

  /**
   * The Handle stream failed with {@code cause} and attempt {@code attempt} of the current outage will start
   * after {@code delay} (see {@link ReconnectPolicy}).
   */
  default void reconnecting(int attempt, Duration delay, Throwable cause) {}

  /**
   * A new Handle stream was attached after {@code attempt} attempts, {@code downtime} after the failure, and
   * held (it received a message or stayed up for a second: the server does not acknowledge an attach).
   */
  default void reconnected(int attempt, Duration downtime) {}

  /** The loop gave up reconnecting ({@link UffdGoneException} or {@link ReconnectExhaustedException}). */
  default void reconnectFailed(HandlerDisconnectedException error) {}
}
