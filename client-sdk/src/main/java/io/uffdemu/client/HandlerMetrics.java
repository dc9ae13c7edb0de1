package io.uffdemu.client;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;

/**
 * Micrometer meters for a {@link HandlerLoop} (micrometer-core is an optional dependency: add it to use this
 * class). Tags are bounded: {@code handler} (your name for the loop), {@code outcome}, {@code errno}; never a
 * pid, fd or address.
 * <ul>
 *   <li>{@code uffdemu.handler.latency} timer {handler, outcome}: time from a fault reaching a worker to its end</li>
 *   <li>{@code uffdemu.handler.queue.depth} gauge {handler}</li>
 *   <li>{@code uffdemu.handler.eagain.deferrals} counter {handler}</li>
 *   <li>{@code uffdemu.handler.errors} counter {handler, errno}</li>
 *   <li>{@code uffdemu.handler.reconnects} counter {handler, outcome}: {@code attempt} per reconnect attempt
 *       scheduled, {@code reconnected} per stream re-attached, {@code gone} / {@code exhausted} when the loop
 *       gave up ({@link UffdGoneException} / {@link ReconnectExhaustedException})</li>
 * </ul>
 *
 * <pre>{@code
 * HandlerLoop loop = uffd.handle(handler, HandlerOptions.DEFAULT.withObserver(new HandlerMetrics(registry, "restore")));
 * }</pre>
 */
public final class HandlerMetrics implements HandlerObserver {
  private static final Pattern ERRNO_NAME = Pattern.compile("E[A-Z0-9]{1,15}");
  private static final int MAX_ERRNO_TAGS = 32;

  private final MeterRegistry registry;
  private final String handler;
  private final AtomicInteger depth = new AtomicInteger();
  private final Counter eagain;
  private final ConcurrentMap<String, Timer> timers = new ConcurrentHashMap<>();
  private final ConcurrentMap<String, Counter> errors = new ConcurrentHashMap<>();
  private final ConcurrentMap<String, Counter> reconnectCounters = new ConcurrentHashMap<>();

  public HandlerMetrics(MeterRegistry registry, String handler) {
    this.registry = Objects.requireNonNull(registry, "registry");
    this.handler = Objects.requireNonNull(handler, "handler");
    Gauge.builder("uffdemu.handler.queue.depth", depth, AtomicInteger::get)
        .description("uffd messages received and waiting for a handler worker")
        .tag("handler", handler).register(registry);
    this.eagain = Counter.builder("uffdemu.handler.eagain.deferrals")
        .description("faults deferred because a resolution returned EAGAIN (non-cooperative event pending)")
        .tag("handler", handler).register(registry);
  }

  @Override
  public void faultDone(Duration latency, String outcome) {
    timers.computeIfAbsent(outcome, o -> Timer.builder("uffdemu.handler.latency")
        .description("time to serve one page fault").tag("handler", handler).tag("outcome", o)
        .register(registry)).record(latency);
  }

  @Override
  public void reconnecting(int attempt, Duration delay, Throwable cause) {
    reconnects("attempt");
  }

  @Override
  public void reconnected(int attempt, Duration downtime) {
    reconnects("reconnected");
  }

  @Override
  public void reconnectFailed(HandlerDisconnectedException error) {
    reconnects(error instanceof UffdGoneException ? "gone" : "exhausted");
  }

  private void reconnects(String outcome) {
    reconnectCounters.computeIfAbsent(outcome, o -> Counter.builder("uffdemu.handler.reconnects")
        .description("Handle stream reconnection: attempts, successes and give-ups").tag("handler", handler)
        .tag("outcome", o).register(registry)).increment();
  }

  @Override
  public void queueDepth(int d) {
    depth.set(d);
  }

  @Override
  public void eagainDeferral() {
    eagain.increment();
  }

  @Override
  public void error(String errnoName) {
    String tag = errnoName != null && ERRNO_NAME.matcher(errnoName).matches() ? errnoName : "OTHER";
    if (!errors.containsKey(tag) && errors.size() >= MAX_ERRNO_TAGS) {
      tag = "OTHER"; // hard cap on tag values, whatever the server sends
    }
    errors.computeIfAbsent(tag, t -> Counter.builder("uffdemu.handler.errors")
        .description("failed resolutions by errno").tag("handler", handler).tag("errno", t)
        .register(registry)).increment();
  }
}
