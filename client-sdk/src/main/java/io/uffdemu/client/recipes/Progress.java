package io.uffdemu.client.recipes;

/**
 * Progress of a long recipe run: {@code done} units of {@code total} ({@code total} is -1 when not known in
 * advance, e.g. a load test bounded by time). Units: pages saved ({@link LiveSnapshot}), pages prefetched
 * ({@link LazyRestore}), accesses done ({@link LoadTest}). Called from worker threads, often: keep it cheap,
 * non-blocking and thread-safe (calls may arrive out of order; take the maximum).
 *
 * <pre>{@code
 * AtomicLong seen = new AtomicLong();
 * LiveSnapshot.take(client, SnapshotOptions.of(pid, dir), (done, total) -> seen.accumulateAndGet(done, Math::max));
 * }</pre>
 */
@FunctionalInterface
public interface Progress {
  Progress NONE = (done, total) -> {};

  void update(long done, long total);
}
