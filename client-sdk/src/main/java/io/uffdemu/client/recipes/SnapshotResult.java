package io.uffdemu.client.recipes;

import io.uffdemu.client.impl.Json;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Outcome of a {@link LiveSnapshot}.
 *
 * @param dir the committed snapshot directory
 * @param pages pages in the snapshot
 * @param zeroPages all-zero pages (holes in pages.bin)
 * @param dataBytes bytes written to pages.bin
 * @param savedOnFault pages saved by the WP fault handler because a writer touched them first
 * @param savedInBackground pages saved by the background copiers
 * @param wpFaults WP faults the handler received
 * @param protectNanos time between the start of the first and the end of the last UFFDIO_WRITEPROTECT
 * @param totalNanos prepare to commit
 */
public record SnapshotResult(Path dir, int pid, int ranges, long pages, long zeroPages, long dataBytes,
    long savedOnFault, long savedInBackground, long wpFaults, long protectNanos, long totalNanos) {

  public Duration protectTime() {
    return Duration.ofNanos(protectNanos);
  }

  public Duration totalTime() {
    return Duration.ofNanos(totalNanos);
  }

  public Map<String, Object> toMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("dir", dir.toString());
    m.put("pid", pid);
    m.put("ranges", ranges);
    m.put("pages", pages);
    m.put("zeroPages", zeroPages);
    m.put("dataBytes", dataBytes);
    m.put("savedOnFault", savedOnFault);
    m.put("savedInBackground", savedInBackground);
    m.put("wpFaults", wpFaults);
    m.put("protectMillis", protectNanos / 1e6);
    m.put("totalMillis", totalNanos / 1e6);
    return m;
  }

  public String toJson() {
    return Json.write(toMap());
  }

  public String toTable() {
    return Tables.keyValue("snapshot", toMap());
  }
}
