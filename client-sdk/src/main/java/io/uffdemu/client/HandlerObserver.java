package io.uffdemu.client;

import java.time.Duration;

/**
 * Hooks of a {@link HandlerLoop} for metrics. All methods must be cheap and non-blocking.
 * {@link HandlerMetrics} implements it with Micrometer.
 *
 * <pre>{@code
 * HandlerOptions.DEFAULT.withObserver(new HandlerMetrics(registry, "snapshot-restore"));
 * }</pre>
 */
public interface HandlerObserver {
  HandlerObserver NOOP = new HandlerObserver() {};

  /** A fault finished; {@code outcome} is one of "resolved", "eexist", "fallback", "failed". */
  default void faultDone(Duration latency, String outcome) {}

  /** Messages received and not yet picked up by a worker (or by the event thread). */
  default void queueDepth(int depth) {}

  default void eagainDeferral() {}

  /** A resolution or fallback failed with {@code errnoName} ("EAGAIN", ...), or "OTHER" when not an errno. */
  default void error(String errnoName) {}
}
