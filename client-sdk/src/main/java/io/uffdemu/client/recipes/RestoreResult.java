package io.uffdemu.client.recipes;

import io.uffdemu.client.impl.Json;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Counters of a {@link LazyRestore}.
 *
 * @param pid the restored process
 * @param pages pages in the snapshot
 * @param faultCopies faults served with UFFDIO_COPY of snapshot data
 * @param faultZeros faults served with zeroes (zero pages, and pages removed by MADV_DONTNEED/REMOVE)
 * @param prefetched pages populated by the background prefetch
 * @param eexist resolutions that found the page already present (fault and prefetch racing)
 * @param removeEvents REMOVE events received
 * @param removedPages pages those events covered (later faults on them get zeroes)
 * @param prefetchDone whether the prefetch has finished
 * @param elapsedNanos since the restore started
 */
public record RestoreResult(int pid, long pages, long faultCopies, long faultZeros, long prefetched, long eexist,
    long removeEvents, long removedPages, boolean prefetchDone, long elapsedNanos) {

  public Map<String, Object> toMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("pid", pid);
    m.put("pages", pages);
    m.put("faultCopies", faultCopies);
    m.put("faultZeros", faultZeros);
    m.put("prefetched", prefetched);
    m.put("eexist", eexist);
    m.put("removeEvents", removeEvents);
    m.put("removedPages", removedPages);
    m.put("prefetchDone", prefetchDone);
    m.put("elapsedMillis", elapsedNanos / 1e6);
    return m;
  }

  public String toJson() {
    return Json.write(toMap());
  }

  public String toTable() {
    return Tables.keyValue("restore", toMap());
  }
}
