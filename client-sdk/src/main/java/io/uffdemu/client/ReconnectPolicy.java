package io.uffdemu.client;

import java.time.Duration;
import java.util.Objects;

/**
 * When and how a {@link HandlerLoop} re-attaches its Handle stream after the stream broke (connection reset,
 * server-side cancellation, proxy restart) while the server still holds the uffd.
 *
 * <p>What the server guarantees (see {@code docs/api.md}, "Handle"): a uffd whose Handle stream dropped is kept
 * for {@code uffdemu.handler.grace-period} (30 s by default); the faults the dead stream had read but not
 * resolved are woken and re-fault, so the next stream gets fresh messages; a new stream may attach at once.
 * The loop therefore resumes where it stopped: faults it still holds are served, events it holds are
 * delivered in order, and re-delivered faults of pages it already filled meet EEXIST (treated as resolved).
 *
 * <p>Backoff: attempt {@code n} (1-based) waits {@code min(maxBackoff, initialBackoff * multiplier^(n-1))},
 * scaled by a random factor in {@code [1 - jitter, 1 + jitter]} so that many handlers cut by one network
 * failure do not reconnect in lock step. An outage ends (and the count starts again) once a new stream has
 * received a message or stayed up for a second. The loop gives up with a {@link UffdGoneException} when a
 * re-attach is answered with EBADF, ESRCH or NOT_FOUND (the grace period passed, the uffd was closed or the
 * process exited), and with a {@link ReconnectExhaustedException} after {@code maxAttempts} failed attempts
 * or {@code maxDowntime} without a stream, whichever comes first. Failures that a retry cannot fix
 * (PERMISSION_DENIED, UNAUTHENTICATED, INVALID_ARGUMENT, an errno from an established stream) end the loop
 * at once, as with reconnection disabled.
 *
 * <p>{@link #DEFAULT} is on: 100 ms doubling to 5 s, ±20 % jitter, at most 20 attempts within 30 s (the
 * server's default grace period; past it the uffd is gone anyway). Turn it off with {@link #DISABLED} when the
 * application wants to see every stream failure and decide itself.
 *
 * <p>Why not resilience4j-retry: its {@code Retry} decorates a synchronous call, while this is an asynchronous
 * stream re-opened from a gRPC callback; only its interval function would be used, for a dependency (plus
 * resilience4j-core) on every SDK user. This record is the whole policy.
 *
 * <pre>{@code
 * HandlerOptions o = HandlerOptions.DEFAULT.withReconnect(ReconnectPolicy.DEFAULT
 *     .withBackoff(Duration.ofMillis(50), Duration.ofSeconds(1)).withBound(10, Duration.ofSeconds(10)));
 * }</pre>
 *
 * @param enabled whether the loop reconnects at all
 * @param maxAttempts failed attempts in one outage before giving up (at least 1)
 * @param initialBackoff wait before the first attempt
 * @param maxBackoff cap of the exponential wait
 * @param multiplier growth of the wait per attempt (at least 1)
 * @param jitter relative random spread of each wait, in [0, 1)
 * @param maxDowntime time from the stream failure after which no new attempt is started
 */
public record ReconnectPolicy(boolean enabled, int maxAttempts, Duration initialBackoff, Duration maxBackoff,
    double multiplier, double jitter, Duration maxDowntime) {

  public static final ReconnectPolicy DEFAULT = new ReconnectPolicy(true, 20, Duration.ofMillis(100),
      Duration.ofSeconds(5), 2.0, 0.2, Duration.ofSeconds(30));

  public static final ReconnectPolicy DISABLED = DEFAULT.withEnabled(false);

  public ReconnectPolicy {
    Objects.requireNonNull(initialBackoff, "initialBackoff");
    Objects.requireNonNull(maxBackoff, "maxBackoff");
    Objects.requireNonNull(maxDowntime, "maxDowntime");
    if (maxAttempts < 1) {
      throw new IllegalArgumentException("maxAttempts must be >= 1");
    }
    if (initialBackoff.isNegative() || maxBackoff.compareTo(initialBackoff) < 0) {
      throw new IllegalArgumentException("need 0 <= initialBackoff <= maxBackoff");
    }
    if (!(multiplier >= 1.0) || !(jitter >= 0.0 && jitter < 1.0)) {
      throw new IllegalArgumentException("need multiplier >= 1 and 0 <= jitter < 1");
    }
    if (maxDowntime.isNegative()) {
      throw new IllegalArgumentException("maxDowntime must not be negative");
    }
  }

  public ReconnectPolicy withEnabled(boolean enabled) {
    return new ReconnectPolicy(enabled, maxAttempts, initialBackoff, maxBackoff, multiplier, jitter, maxDowntime);
  }

  public ReconnectPolicy withBackoff(Duration initialBackoff, Duration maxBackoff) {
    return new ReconnectPolicy(enabled, maxAttempts, initialBackoff, maxBackoff, multiplier, jitter, maxDowntime);
  }

  public ReconnectPolicy withMultiplier(double multiplier) {
    return new ReconnectPolicy(enabled, maxAttempts, initialBackoff, maxBackoff, multiplier, jitter, maxDowntime);
  }

  public ReconnectPolicy withJitter(double jitter) {
    return new ReconnectPolicy(enabled, maxAttempts, initialBackoff, maxBackoff, multiplier, jitter, maxDowntime);
  }

  public ReconnectPolicy withBound(int maxAttempts, Duration maxDowntime) {
    return new ReconnectPolicy(enabled, maxAttempts, initialBackoff, maxBackoff, multiplier, jitter, maxDowntime);
  }

  /**
   * The wait before attempt {@code attempt} (1-based), given {@code random} uniform in [0, 1).
   */
  public Duration backoff(int attempt, double random) {
    double base = initialBackoff.toNanos() * Math.pow(multiplier, Math.max(0, attempt - 1));
    base = Math.min(base, maxBackoff.toNanos());
    double factor = 1.0 - jitter + 2.0 * jitter * Math.min(Math.max(random, 0.0), 1.0);
    return Duration.ofNanos((long) Math.min(base * factor, (double) Long.MAX_VALUE));
  }
}
