package io.uffdemu.client;

/**
 * A decoded 64-bit {@code /proc/PID/pagemap} entry: bit 63 present, 62 swapped, 61 file-page or
 * shared-anon, 57 uffd-wp, 56 exclusively mapped, 55 soft-dirty, bits 0-54 the PFN (or swap type/offset).
 *
 * <pre>{@code
 * List<PagemapEntry> pm = process.pagemap(addr, 16);
 * long wpPages = pm.stream().filter(PagemapEntry::uffdWp).count();
 * }</pre>
 *
 * @param address virtual address of the page
 * @param raw the raw entry
 * @param present bit 63: page present in RAM
 * @param swapped bit 62: swapped (uffd-wp markers on none PTEs also show here)
 * @param fileOrSharedAnon bit 61: file page or shared anonymous (shmem) page
 * @param uffdWp bit 57: userfaultfd write-protected
 * @param exclusive bit 56: page exclusively mapped
 * @param softDirty bit 55: soft-dirty
 * @param pfn bits 0-54: page frame number (0 without CAP_SYS_ADMIN), or swap type/offset
 */
public record PagemapEntry(long address, long raw, boolean present, boolean swapped, boolean fileOrSharedAnon,
    boolean uffdWp, boolean exclusive, boolean softDirty, long pfn) {

  /** Decodes {@code raw} for the page at {@code address}. */
  public static PagemapEntry decode(long address, long raw) {
    return new PagemapEntry(address, raw,
        bit(raw, Linux.PM_PRESENT_BIT), bit(raw, Linux.PM_SWAP_BIT), bit(raw, Linux.PM_FILE_BIT),
        bit(raw, Linux.PM_UFFD_WP_BIT), bit(raw, Linux.PM_MMAP_EXCLUSIVE_BIT), bit(raw, Linux.PM_SOFT_DIRTY_BIT),
        raw & Linux.PM_PFN_MASK);
  }

  private static boolean bit(long raw, int bit) {
    return (raw >>> bit & 1) != 0;
  }
}
