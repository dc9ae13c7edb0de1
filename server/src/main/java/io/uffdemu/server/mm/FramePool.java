package io.uffdemu.server.mm;

import java.util.Arrays;

/**
 * Emulated physical memory: analogue of the page allocator plus {@code struct page} / {@code struct folio}
 * metadata ({@code mm/page_alloc.c}, {@code include/linux/mm_types.h}).
 *
 * <p>Frames are numbered (pfn). Metadata is kept struct-of-arrays: {@code refcount} (references from page
 * tables, the page cache and the swap cache), {@code mapcount} (page-table mappings) and {@code flags}; page
 * contents are allocated lazily (a frame that was never written reads as zeros), so resident metadata is
 * 12 bytes of arrays plus one reference per frame. A huge folio is a run of contiguous frames; its head holds
 * the counts.
 *
 * <p>Pfn 0 is the shared zero page and is never allocated. Guarded by the kernel lock ({@link Kernel}).
 */
public final class FramePool {
    public static final long ZERO_PFN = 0;
    public static final int PG_DIRTY = 1, PG_ANON = 1 << 1, PG_HEAD = 1 << 2, PG_HUGETLB = 1 << 3, PG_UPTODATE = 1 << 4;

    private final int pageSize = (int) Linux.PAGE_SIZE;
    private final long capacityPages;
    private int[] refcount = new int[1024];
    private int[] mapcount = new int[1024];
    private int[] flags = new int[1024];
    private int[] order = new int[1024];
    private byte[][] data = new byte[1024][];
    private long top = 1; // pfn 0 = zero page
    private long used;
    // free lists of single frames, and of huge runs by order (2 MiB = 9, 1 GiB = 18)
    private long[] freeSingles = new long[256];
    private int freeSinglesLen;
    private final java.util.Map<Integer, java.util.ArrayDeque<Long>> freeRuns = new java.util.HashMap<>();

    public FramePool(long capacityBytes) {
        this.capacityPages = capacityBytes / Linux.PAGE_SIZE;
    }

    public long capacityPages() {
        return capacityPages;
    }

    public long usedPages() {
        return used;
    }

    public long freePages() {
        return capacityPages - used;
    }

    /** Allocates one order-0 frame with refcount 1, zero contents; -1 when memory is exhausted. */
    public long alloc(int pgFlags) {
        return allocOrder(0, pgFlags);
    }

    /** Allocates a folio of {@code 2^ord} contiguous frames; -1 when memory is exhausted. */
    public long allocOrder(int ord, int pgFlags) {
        long n = 1L << ord;
        if (used + n > capacityPages) {
            return -1;
        }
        long pfn;
        if (ord == 0 && freeSinglesLen > 0) {
            pfn = freeSingles[--freeSinglesLen];
        } else {
            java.util.ArrayDeque<Long> runs = freeRuns.get(ord);
            if (runs != null && !runs.isEmpty()) {
                pfn = runs.pop();
            } else {
                pfn = top;
                top += n;
                ensure(top);
            }
        }
        used += n;
        int p = (int) pfn;
        refcount[p] = 1;
        mapcount[p] = 0;
        flags[p] = pgFlags | (ord > 0 ? PG_HEAD : 0);
        order[p] = ord;
        for (long i = 0; i < n; i++) {
            data[(int) (pfn + i)] = null;
        }
        return pfn;
    }

    private void ensure(long limit) {
        if (limit > Integer.MAX_VALUE - 8) {
            throw new LinuxException(Errno.ENOMEM, "alloc_pages", 0, "frame numbers exhausted");
        }
        if (limit <= refcount.length) {
            return;
        }
        int cap = refcount.length;
        while (cap < limit) {
            cap = cap * 2;
        }
        refcount = Arrays.copyOf(refcount, cap);
        mapcount = Arrays.copyOf(mapcount, cap);
        flags = Arrays.copyOf(flags, cap);
        order = Arrays.copyOf(order, cap);
        data = Arrays.copyOf(data, cap);
    }

    private void free(long pfn) {
        int p = (int) pfn;
        int ord = order[p];
        long n = 1L << ord;
        for (long i = 0; i < n; i++) {
            data[(int) (pfn + i)] = null;
        }
        flags[p] = 0;
        used -= n;
        if (ord == 0) {
            if (freeSinglesLen == freeSingles.length) {
                freeSingles = Arrays.copyOf(freeSingles, freeSingles.length * 2);
            }
            freeSingles[freeSinglesLen++] = pfn;
        } else {
            freeRuns.computeIfAbsent(ord, k -> new java.util.ArrayDeque<>()).push(pfn);
        }
    }

    /** {@code folio_get()}. */
    public void get(long pfn) {
        if (pfn != ZERO_PFN) {
            refcount[(int) pfn]++;
        }
    }

    /** {@code folio_put()}: frees the folio when the last reference goes. */
    public void put(long pfn) {
        if (pfn == ZERO_PFN) {
            return;
        }
        int p = (int) pfn;
        if (--refcount[p] == 0) {
            free(pfn);
        } else if (refcount[p] < 0) {
            throw new IllegalStateException("refcount underflow on pfn " + pfn);
        }
    }

    public int refcount(long pfn) {
        return pfn == ZERO_PFN ? Integer.MAX_VALUE : refcount[(int) pfn];
    }

    public int mapcount(long pfn) {
        return pfn == ZERO_PFN ? 0 : mapcount[(int) pfn];
    }

    /** A new page-table mapping of the folio: mapcount and refcount both go up. */
    public void map(long pfn) {
        if (pfn != ZERO_PFN) {
            mapcount[(int) pfn]++;
            refcount[(int) pfn]++;
        }
    }

    /** A page-table mapping went away. */
    public void unmap(long pfn) {
        if (pfn != ZERO_PFN) {
            mapcount[(int) pfn]--;
            put(pfn);
        }
    }

    public int flags(long pfn) {
        return flags[(int) pfn];
    }

    public void setFlags(long pfn, int f) {
        flags[(int) pfn] |= f;
    }

    public void clearFlags(long pfn, int f) {
        flags[(int) pfn] &= ~f;
    }

    public int order(long pfn) {
        return order[(int) pfn];
    }

    /** Copies {@code len} bytes of frame {@code pfn} (a subpage frame) starting at {@code off} into dst. */
    public void read(long pfn, int off, byte[] dst, int dstOff, int len) {
        if (pfn == ZERO_PFN) {
            Arrays.fill(dst, dstOff, dstOff + len, (byte) 0);
            return;
        }
        byte[] d = data[(int) pfn];
        if (d == null) {
            Arrays.fill(dst, dstOff, dstOff + len, (byte) 0);
        } else {
            System.arraycopy(d, off, dst, dstOff, len);
        }
    }

    public void write(long pfn, int off, byte[] src, int srcOff, int len) {
        if (pfn == ZERO_PFN) {
            throw new IllegalStateException("write to the zero page");
        }
        byte[] d = data[(int) pfn];
        if (d == null) {
            if (isZeros(src, srcOff, len)) {
                return;
            }
            d = new byte[pageSize];
            data[(int) pfn] = d;
        }
        System.arraycopy(src, srcOff, d, off, len);
    }

    /** Copies a whole 4 KiB subpage frame to another. */
    public void copyPage(long fromPfn, long toPfn) {
        byte[] d = fromPfn == ZERO_PFN ? null : data[(int) fromPfn];
        data[(int) toPfn] = d == null ? null : d.clone();
    }

    public byte[] snapshot(long pfn) {
        byte[] d = pfn == ZERO_PFN ? null : data[(int) pfn];
        return d == null ? new byte[pageSize] : d.clone();
    }

    public void restore(long pfn, byte[] page) {
        data[(int) pfn] = isZeros(page, 0, page.length) ? null : page.clone();
    }

    private static boolean isZeros(byte[] b, int off, int len) {
        for (int i = off; i < off + len; i++) {
            if (b[i] != 0) {
                return false;
            }
        }
        return true;
    }
}
