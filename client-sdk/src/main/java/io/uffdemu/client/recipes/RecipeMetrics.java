package io.uffdemu.client.recipes;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Micrometer meters of the recipes (needs {@code micrometer-core}, an optional dependency of the SDK). The
 * handler loops of the recipes take a {@link io.uffdemu.client.HandlerMetrics} through their options'
 * {@code observer}; this class adds the recipe-level meters. Tags are bounded: {@code recipe} and the names
 * listed here, never an address or pid.
 *
 * <ul>
 *   <li>{@code uffdemu.recipe.snapshot.pages} counter {source=fault|background|zero}</li>
 *   <li>{@code uffdemu.recipe.snapshot.duration} timer {phase=protect|total}</li>
 *   <li>{@code uffdemu.recipe.restore.pages} function counter {source=fault_copy|fault_zero|prefetch|eexist}</li>
 *   <li>{@code uffdemu.recipe.restore.removed.pages} function counter</li>
 *   <li>{@code uffdemu.recipe.device.wp.faults} function counter, {@code uffdemu.recipe.device.collections}</li>
 *   <li>{@code uffdemu.recipe.bench.ops}, {@code .faults}, {@code .errors}, {@code .violations} counters</li>
 *   <li>{@code uffdemu.recipe.bench.fault.latency} gauge {quantile=0.5|0.9|0.99|0.999|max} (microseconds, last run)</li>
 * </ul>
 *
 * <pre>{@code
 * SnapshotResult r = LiveSnapshot.take(client, opts.withObserver(new HandlerMetrics(registry, "snapshot")));
 * RecipeMetrics.record(registry, r);
 * }</pre>
 */
public final class RecipeMetrics {
  private RecipeMetrics() {}

  public static void record(MeterRegistry registry, SnapshotResult r) {
    Counter.builder("uffdemu.recipe.snapshot.pages").tag("source", "fault").register(registry)
        .increment(r.savedOnFault());
    Counter.builder("uffdemu.recipe.snapshot.pages").tag("source", "background").register(registry)
        .increment(r.savedInBackground());
    Counter.builder("uffdemu.recipe.snapshot.pages").tag("source", "zero").register(registry)
        .increment(r.zeroPages());
    Timer.builder("uffdemu.recipe.snapshot.duration").tag("phase", "protect").register(registry)
        .record(r.protectNanos(), TimeUnit.NANOSECONDS);
    Timer.builder("uffdemu.recipe.snapshot.duration").tag("phase", "total").register(registry)
        .record(r.totalNanos(), TimeUnit.NANOSECONDS);
  }

  /** Live meters of a running restore (they read its counters). */
  public static void bind(MeterRegistry registry, LazyRestore restore) {
    String name = "uffdemu.recipe.restore.pages";
    FunctionCounter.builder(name, restore, x -> x.result().faultCopies()).tag("source", "fault_copy")
        .register(registry);
    FunctionCounter.builder(name, restore, x -> x.result().faultZeros()).tag("source", "fault_zero")
        .register(registry);
    FunctionCounter.builder(name, restore, x -> x.result().prefetched()).tag("source", "prefetch")
        .register(registry);
    FunctionCounter.builder(name, restore, x -> x.result().eexist()).tag("source", "eexist").register(registry);
    FunctionCounter.builder("uffdemu.recipe.restore.removed.pages", restore, x -> x.result().removedPages())
        .register(registry);
  }

  /** Live meters of a device's dirty tracking. */
  public static void bind(MeterRegistry registry, SharedMemoryDevice device) {
    FunctionCounter.builder("uffdemu.recipe.device.wp.faults", device, SharedMemoryDevice::wpFaults)
        .register(registry);
    FunctionCounter.builder("uffdemu.recipe.device.collections", device, SharedMemoryDevice::collections)
        .register(registry);
  }

  private static final Map<MeterRegistry, AtomicReference<BenchResult>> LAST_BENCH =
      Collections.synchronizedMap(new WeakHashMap<>());

  public static void record(MeterRegistry registry, BenchResult r) {
    AtomicReference<BenchResult> last = LAST_BENCH.computeIfAbsent(registry, k -> new AtomicReference<>());
    last.set(r);
    Counter.builder("uffdemu.recipe.bench.ops").register(registry).increment(r.ops());
    Counter.builder("uffdemu.recipe.bench.faults").register(registry).increment(r.faults());
    Counter.builder("uffdemu.recipe.bench.errors").register(registry).increment(r.errors());
    Counter.builder("uffdemu.recipe.bench.violations").register(registry).increment(r.violationCount());
    double[] qs = {50, 90, 99, 99.9};
    String[] names = {"0.5", "0.9", "0.99", "0.999"};
    for (int i = 0; i < qs.length; i++) {
      double q = qs[i];
      Gauge.builder("uffdemu.recipe.bench.fault.latency", last, x -> x.get().faultLatency().getValueAtPercentile(q))
          .tag("quantile", names[i]).baseUnit("microseconds").register(registry);
    }
    Gauge.builder("uffdemu.recipe.bench.fault.latency", last, x -> x.get().faultLatency().getMaxValue())
        .tag("quantile", "max").baseUnit("microseconds").register(registry);
  }
}
