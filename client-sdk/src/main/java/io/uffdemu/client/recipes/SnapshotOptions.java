package io.uffdemu.client.recipes;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.HandlerObserver;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * Options of a {@link LiveSnapshot} (what {@code uffdemu snapshot} takes on its command line).
 *
 * @param pid process to snapshot
 * @param ranges address ranges; empty = every writable mapping of the process. Each range must lie inside
 *     mappings; it is split at mapping boundaries (one manifest range per mapping part)
 * @param output the snapshot directory to create (must not exist)
 * @param workers background copier threads (virtual)
 * @param handlerWorkers workers of the WP fault handler loop
 * @param sourceServer recorded in the manifest ("host:port")
 * @param cutId recorded in the manifest; the id of a distributed cut
 * @param observer metrics hooks of the WP handler loop (e.g. {@code new HandlerMetrics(registry, "snapshot")})
 */
public record SnapshotOptions(int pid, List<AddrRange> ranges, Path output, int workers, int handlerWorkers,
    String sourceServer, String cutId, HandlerObserver observer) {

  public SnapshotOptions {
    ranges = List.copyOf(ranges);
    Objects.requireNonNull(output, "output");
    Objects.requireNonNull(sourceServer, "sourceServer");
    Objects.requireNonNull(cutId, "cutId");
    Objects.requireNonNull(observer, "observer");
    if (workers < 1 || handlerWorkers < 1) {
      throw new IllegalArgumentException("workers must be >= 1");
    }
  }

  /** Every writable mapping of {@code pid}, 4 copiers, 4 handler workers. */
  public static SnapshotOptions of(int pid, Path output) {
    return new SnapshotOptions(pid, List.of(), output, 4, 4, "", "", HandlerObserver.NOOP);
  }

  public SnapshotOptions withRanges(List<AddrRange> ranges) {
    return new SnapshotOptions(pid, ranges, output, workers, handlerWorkers, sourceServer, cutId, observer);
  }

  public SnapshotOptions withWorkers(int workers) {
    return new SnapshotOptions(pid, ranges, output, workers, handlerWorkers, sourceServer, cutId, observer);
  }

  public SnapshotOptions withHandlerWorkers(int handlerWorkers) {
    return new SnapshotOptions(pid, ranges, output, workers, handlerWorkers, sourceServer, cutId, observer);
  }

  public SnapshotOptions withSourceServer(String sourceServer) {
    return new SnapshotOptions(pid, ranges, output, workers, handlerWorkers, sourceServer, cutId, observer);
  }

  public SnapshotOptions withCutId(String cutId) {
    return new SnapshotOptions(pid, ranges, output, workers, handlerWorkers, sourceServer, cutId, observer);
  }

  public SnapshotOptions withObserver(HandlerObserver observer) {
    return new SnapshotOptions(pid, ranges, output, workers, handlerWorkers, sourceServer, cutId, observer);
  }
}
