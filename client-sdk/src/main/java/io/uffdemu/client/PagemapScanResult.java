package io.uffdemu.client;

import java.util.List;

/**
 * Result of PAGEMAP_SCAN: the matching regions and {@code walk_end}, where the walk stopped.
 *
 * <pre>{@code
 * PagemapScanResult r = process.pagemapScan(PagemapScanOptions.of(range));
 * boolean complete = r.walkEnd() == range.end();
 * }</pre>
 */
public record PagemapScanResult(List<PageRegion> regions, long walkEnd) {
  public PagemapScanResult {
    regions = List.copyOf(regions);
  }
}
