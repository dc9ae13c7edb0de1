package io.uffdemu.client;

/**
 * What the handler loop does with a fault the handler failed to resolve in time (or threw on).
 *
 * <pre>{@code
 * HandlerOptions.DEFAULT.withFaultDeadline(Duration.ofSeconds(2), FallbackPolicy.ZERO_FILL);
 * }</pre>
 */
public enum FallbackPolicy {
  /** Resolve with UFFDIO_ZEROPAGE: the faulting thread continues with a zero page. */
  ZERO_FILL,
  /** UFFDIO_WAKE the page: the thread re-faults and the fault is delivered again. */
  WAKE_RETRY,
  /** Leave the fault unresolved (the thread stays blocked, as with a dead handler); report via onFailure. */
  FAIL
}
