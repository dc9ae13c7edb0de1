package io.uffdemu.client;

/**
 * One output region of PAGEMAP_SCAN ({@code struct page_region}).
 *
 * <pre>{@code
 * for (PageRegion r : result.regions()) if ((r.categories() & Linux.PAGE_IS_WRITTEN) != 0) save(r.start(), r.end());
 * }</pre>
 */
public record PageRegion(long start, long end, long categories) {
  public AddrRange range() {
    return AddrRange.ofBounds(start, end);
  }
}
