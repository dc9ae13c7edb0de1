package io.uffdemu.client;

import java.time.Duration;

/**
 * What a {@link Process#storm} measured. Latencies are per access: a faulting one includes the whole round trip
 * to the handler.
 *
 * @param accesses accesses done
 * @param failed accesses that ended in a signal or errno; the first one's in {@code first*}
 * @param firstSignal its signal (7 SIGBUS, 11 SIGSEGV), 0 if none
 * @param firstErrno its errno (kernel/remote accesses), 0 if none
 * @param firstFaultAddr its faulting address
 * @param elapsed from the first access to the last thread done
 * @param p50Nanos median access latency
 * @param p99Nanos 99th percentile
 * @param maxNanos slowest access
 * @param lostWrites with verify: steps whose stamp was not found
 */
public record StormResult(long accesses, long failed, int firstSignal, int firstErrno, long firstFaultAddr,
    Duration elapsed, long p50Nanos, long p99Nanos, long maxNanos, long lostWrites) {

  /** Accesses per second over the storm. */
  public double accessesPerSecond() {
    return elapsed.isZero() ? 0 : accesses / (elapsed.toNanos() / 1e9);
  }
}
