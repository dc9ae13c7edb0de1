package io.uffdemu.client.recipes;

import io.uffdemu.client.HandlerObserver;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Options of a {@link LazyRestore} (what {@code uffdemu restore} takes on its command line).
 *
 * @param snapshot a snapshot directory written by {@link LiveSnapshot}
 * @param processName name of the fresh process the snapshot is restored into
 * @param prefetch copy the pages nobody faulted on in the background
 * @param prefetchWorkers background copiers (virtual threads)
 * @param handlerWorkers workers of the MISSING fault handler loop
 * @param observer metrics hooks of the handler loop (e.g. {@code new HandlerMetrics(registry, "restore")})
 */
public record RestoreOptions(Path snapshot, String processName, boolean prefetch, int prefetchWorkers,
    int handlerWorkers, HandlerObserver observer) {

  public RestoreOptions {
    Objects.requireNonNull(snapshot, "snapshot");
    Objects.requireNonNull(processName, "processName");
    Objects.requireNonNull(observer, "observer");
    if (prefetchWorkers < 1 || handlerWorkers < 1) {
      throw new IllegalArgumentException("workers must be >= 1");
    }
  }

  /** Restore into a process named "restored", with background prefetch (2 copiers), 4 handler workers. */
  public static RestoreOptions of(Path snapshot) {
    return new RestoreOptions(snapshot, "restored", true, 2, 4, HandlerObserver.NOOP);
  }

  public RestoreOptions withProcessName(String processName) {
    return new RestoreOptions(snapshot, processName, prefetch, prefetchWorkers, handlerWorkers, observer);
  }

  public RestoreOptions withPrefetch(boolean prefetch) {
    return new RestoreOptions(snapshot, processName, prefetch, prefetchWorkers, handlerWorkers, observer);
  }

  public RestoreOptions withPrefetchWorkers(int prefetchWorkers) {
    return new RestoreOptions(snapshot, processName, prefetch, prefetchWorkers, handlerWorkers, observer);
  }

  public RestoreOptions withHandlerWorkers(int handlerWorkers) {
    return new RestoreOptions(snapshot, processName, prefetch, prefetchWorkers, handlerWorkers, observer);
  }

  public RestoreOptions withObserver(HandlerObserver observer) {
    return new RestoreOptions(snapshot, processName, prefetch, prefetchWorkers, handlerWorkers, observer);
  }
}
