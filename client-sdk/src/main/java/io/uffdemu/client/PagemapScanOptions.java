package io.uffdemu.client;

/**
 * Arguments of {@code ioctl(PAGEMAP_SCAN)} ({@code struct pm_scan_arg}) without the output buffer.
 * Masks use the {@code Linux.PAGE_IS_*} categories; flags {@code Linux.PM_SCAN_*}.
 *
 * <pre>{@code
 * var written = process.pagemapScan(PagemapScanOptions.of(range)
 *     .withCategoryMask(Linux.PAGE_IS_WRITTEN).withFlags(Linux.PM_SCAN_WP_MATCHING | Linux.PM_SCAN_CHECK_WPASYNC));
 * }</pre>
 *
 * @param maxPages 0 = unlimited
 * @param maxRegions 0 = server default
 */
public record PagemapScanOptions(AddrRange range, long flags, long categoryInverted, long categoryMask,
    long categoryAnyofMask, long returnMask, long maxPages, int maxRegions) {

  /** Every category returned ({@code 0xff}: WPALLOWED..SOFT_DIRTY), no filter, no flags. */
  public static PagemapScanOptions of(AddrRange range) {
    return new PagemapScanOptions(range, 0, 0, 0, 0, 0xff, 0, 0);
  }

  public PagemapScanOptions withFlags(long flags) {
    return new PagemapScanOptions(range, flags, categoryInverted, categoryMask, categoryAnyofMask, returnMask,
        maxPages, maxRegions);
  }

  public PagemapScanOptions withCategoryInverted(long v) {
    return new PagemapScanOptions(range, flags, v, categoryMask, categoryAnyofMask, returnMask, maxPages,
        maxRegions);
  }

  public PagemapScanOptions withCategoryMask(long v) {
    return new PagemapScanOptions(range, flags, categoryInverted, v, categoryAnyofMask, returnMask, maxPages,
        maxRegions);
  }

  public PagemapScanOptions withCategoryAnyofMask(long v) {
    return new PagemapScanOptions(range, flags, categoryInverted, categoryMask, v, returnMask, maxPages,
        maxRegions);
  }

  public PagemapScanOptions withReturnMask(long v) {
    return new PagemapScanOptions(range, flags, categoryInverted, categoryMask, categoryAnyofMask, v, maxPages,
        maxRegions);
  }

  public PagemapScanOptions withMaxPages(long v) {
    return new PagemapScanOptions(range, flags, categoryInverted, categoryMask, categoryAnyofMask, returnMask, v,
        maxRegions);
  }

  public PagemapScanOptions withMaxRegions(int v) {
    return new PagemapScanOptions(range, flags, categoryInverted, categoryMask, categoryAnyofMask, returnMask,
        maxPages, v);
  }
}
