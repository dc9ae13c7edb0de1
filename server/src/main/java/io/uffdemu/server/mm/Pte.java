package io.uffdemu.server.mm;

/**
 * Analogue of {@code pte_t} and the swap-entry encodings of {@code include/linux/swapops.h}: a page table
 * entry is one {@code long}. Zero is {@code pte_none}. The low bits are flags, bits 16 and up hold a frame
 * number (present entries) or a swap slot (swap entries).
 *
 * <pre>
 *  bit 0  PRESENT      bit 1  WRITE       bit 2 DIRTY   bit 3 ACCESSED   bit 4 SOFT_DIRTY
 *  bit 5  UFFD_WP      (present: _PAGE_UFFD_WP; swap: _PAGE_SWP_UFFD_WP)
 *  bit 6  SWAP         a swap entry: the page lives in swap slot {@link #slot}
 *  bit 7  MARKER       a PTE marker (SWP_PTE_MARKER): not present, "none-ish", with marker bits 11..13
 *  bit 8  ZERO         present entry mapping the shared zero page
 *  bit 9  HUGE         a hugetlb (or PMD) leaf: the frame is the head of a huge folio
 *  bit 11 PTE_MARKER_UFFD_WP, bit 12 PTE_MARKER_POISONED, bit 13 PTE_MARKER_GUARD
 * </pre>
 */
public final class Pte {
    private Pte() {
    }

    public static final long NONE = 0;
    public static final long PRESENT = 1, WRITE = 1 << 1, DIRTY = 1 << 2, ACCESSED = 1 << 3, SOFT_DIRTY = 1 << 4;
    public static final long UFFD_WP = 1 << 5, SWAP = 1 << 6, MARKER = 1 << 7, ZERO = 1 << 8, HUGE = 1 << 9;
    public static final long MARKER_UFFD_WP = 1 << 11, MARKER_POISONED = 1 << 12, MARKER_GUARD = 1 << 13;
    private static final int FRAME_SHIFT = 16;

    public static long present(long pfn, boolean write, boolean huge) {
        return PRESENT | (write ? WRITE : 0) | (huge ? HUGE : 0) | (pfn << FRAME_SHIFT);
    }

    public static long zeroPage() {
        return PRESENT | ZERO;
    }

    public static long swap(long slot) {
        return SWAP | (slot << FRAME_SHIFT);
    }

    /** {@code make_pte_marker()} with the given marker bits. */
    public static long marker(long markerBits, boolean huge) {
        return MARKER | markerBits | (huge ? HUGE : 0);
    }

    public static boolean isNone(long pte) {
        return pte == NONE;
    }

    public static boolean isPresent(long pte) {
        return (pte & PRESENT) != 0;
    }

    public static boolean isSwap(long pte) {
        return (pte & SWAP) != 0;
    }

    public static boolean isMarker(long pte) {
        return (pte & MARKER) != 0;
    }

    /** {@code pte_none_mostly()}: none, or a marker (which a fill treats like none). */
    public static boolean isNoneMostly(long pte) {
        return pte == NONE || isMarker(pte);
    }

    public static boolean isZero(long pte) {
        return (pte & ZERO) != 0;
    }

    public static boolean isWritable(long pte) {
        return (pte & WRITE) != 0;
    }

    /** {@code pte_uffd_wp() || pte_swp_uffd_wp() || pte_marker_uffd_wp()}. */
    public static boolean isUffdWp(long pte) {
        return (pte & (UFFD_WP | MARKER_UFFD_WP)) != 0;
    }

    public static boolean isPoisonMarker(long pte) {
        return (pte & MARKER_POISONED) != 0;
    }

    public static boolean isGuardMarker(long pte) {
        return (pte & MARKER_GUARD) != 0;
    }

    public static long pfn(long pte) {
        return pte >>> FRAME_SHIFT;
    }

    public static long slot(long pte) {
        return pte >>> FRAME_SHIFT;
    }

    /** {@code pte_mkuffd_wp()}: sets the bit and takes write permission away (markers get the marker bit). */
    public static long mkUffdWp(long pte) {
        if (isMarker(pte)) {
            return pte | MARKER_UFFD_WP;
        }
        return (pte | UFFD_WP) & ~WRITE;
    }

    /** {@code pte_clear_uffd_wp()}: a marker that carried only the wp bit becomes none. */
    public static long clearUffdWp(long pte) {
        if (isMarker(pte)) {
            long left = pte & ~MARKER_UFFD_WP;
            return (left & (MARKER_POISONED | MARKER_GUARD)) == 0 ? NONE : left;
        }
        return pte & ~UFFD_WP;
    }
}
