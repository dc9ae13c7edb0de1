package io.uffdemu.server.mm;

import java.util.Arrays;

/**
 * Emulated physical memory: analogue of the page allocator plus {@code struct page} / {@code struct folio}
 * metadata ({@code mm/page_alloc.c}, {@code include/linux/mm_types.h}).
 *
 * <p>Frames are numbered (pfn). Metadata is kept struct-of-arrays: {@code refcount} (references from page
 * tables, the page cache and the swap cache), {@code mapcount} (page-table mappings), {@code flags} and
 * {@code order}; page contents are allocated lazily (a frame that was never written reads as zeros), so
 * resident metadata is 10 bytes of arrays plus two references (contents and memcg, 4 bytes each with compressed oops) per frame. A huge folio is a run of contiguous frames; its head holds
 * the counts.
 *
 * <p>Pfn 0 is the shared zero page and is never allocated. Guarded by the kernel lock ({@link Kernel}).
 */
public final class FramePool {
    public static final long ZERO_PFN = 0;
    public static final int PG_DIRTY = 1, PG_ANON = 1 << 1, PG_HEAD = 1 << 2, PG_HUGETLB = 1 << 3, PG_UPTODATE = 1 << 4;
    /**
     * A subpage of an anonymous THP ({@code folio_test_large()}): THP subpages are order-0 frames that carry
     * this flag until the folio is split; the folio is the flagged frames one 2 MiB block of an mm maps.
     */
    public static final int PG_LARGE = 1 << 5;
    /**
     * A hugetlb folio allocated without consuming a reservation: it carries its own hugetlb.rsvd charge
     * ({@code alloc_hugetlb_folio()}'s {@code deferred_reserve}, the folio's {@code hugetlb_cgroup_rsvd}), which
     * goes when the folio is freed ({@code hugetlb_cgroup_uncharge_folio_rsvd()}).
     */
    public static final int PG_HUGETLB_RSVD = 1 << 6;

    private final int pageSize = (int) Linux.PAGE_SIZE;
    private final long capacityPages;
    /** Metadata lives in chunks of 2^16 frames: growth never copies, and no array is a humongous object. */
    private static final int CHUNK_SHIFT = 16;
    private static final int CHUNK_MASK = (1 << CHUNK_SHIFT) - 1;
    private int[][] refcount = new int[0][];
    private int[][] mapcount = new int[0][];
    private byte[][] flags = new byte[0][];
    private byte[][] order = new byte[0][];
    private byte[][][] data = new byte[0][][];
    /** {@code folio->memcg_data}: the memcg a folio (its head frame) is charged to; null for uncharged frames. */
    private MemCgroup[][] memcg = new MemCgroup[0][];
    /**
     * The memcg new folios are charged to ({@code current}'s, or {@code set_active_memcg()}); the root when no
     * task is running. Set by {@link Kernel#taskLocked}, reset when the kernel lock is taken.
     */
    MemCgroup active;
    /** The memcg whose limit refused this thread's last allocation (null after a successful one). */
    static final ThreadLocal<MemCgroup> REFUSED = new ThreadLocal<>();
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

    /**
     * Pages the running allocation context can still get: the machine's free pages, capped by the active
     * memcg's {@code mem_cgroup_margin()} (so the huge-folio paths fall back when the memcg is full).
     */
    public long freePages() {
        long free = capacityPages - used;
        return active == null ? free : Math.min(free, active.marginPages());
    }

    /** The machine's free pages, whatever the memcg. */
    public long machineFreePages() {
        return capacityPages - used;
    }

    /**
     * Receives one charged folio: its memcg, its size in 4 KiB frames, whether it is a hugetlb folio and whether
     * it carries a hugetlb.rsvd charge too ({@link #PG_HUGETLB_RSVD}).
     */
    interface ChargeVisitor {
        void visit(MemCgroup memcg, long pages, boolean hugetlb, boolean hugetlbRsvd);
    }

    /** Every charged folio (for the invariant checker; walks all frames). */
    void forEachCharged(ChargeVisitor v) {
        for (long pfn = 1; pfn < top; pfn++) {
            int p = (int) pfn;
            MemCgroup cg = memcg[p >>> CHUNK_SHIFT][p & CHUNK_MASK];
            if (cg != null) {
                int f = flags[p >>> CHUNK_SHIFT][p & CHUNK_MASK];
                v.visit(cg, 1L << order[p >>> CHUNK_SHIFT][p & CHUNK_MASK], (f & PG_HUGETLB) != 0,
                        (f & PG_HUGETLB_RSVD) != 0);
            }
        }
    }

    /** The memcg the folio at {@code pfn} is charged to, or null. */
    public MemCgroup memcg(long pfn) {
        return pfn == ZERO_PFN ? null : memcg[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)];
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
        MemCgroup cg = active;
        if (cg != null) {
            boolean charged;
            if ((pgFlags & PG_HUGETLB) == 0) {
                charged = cg.tryChargeMemory(n);
            } else {
                // alloc_hugetlb_folio(): the rsvd charge of an unreserved folio first, then the fault counter
                boolean rsvd = (pgFlags & PG_HUGETLB_RSVD) != 0;
                long bytes = n * Linux.PAGE_SIZE;
                charged = !rsvd || cg.tryChargeHugetlb(bytes, true);
                if (charged && !cg.tryChargeHugetlb(bytes, false)) {
                    charged = false;
                    if (rsvd) {
                        cg.unchargeHugetlb(bytes, true);
                    }
                }
            }
            if (!charged) {
                REFUSED.set(cg);
                return -1;
            }
            REFUSED.remove();
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
        refcount[p >>> CHUNK_SHIFT][p & CHUNK_MASK] = 1;
        mapcount[p >>> CHUNK_SHIFT][p & CHUNK_MASK] = 0;
        flags[p >>> CHUNK_SHIFT][p & CHUNK_MASK] = (byte) (pgFlags | (ord > 0 ? PG_HEAD : 0));
        order[p >>> CHUNK_SHIFT][p & CHUNK_MASK] = (byte) ord;
        memcg[p >>> CHUNK_SHIFT][p & CHUNK_MASK] = cg;
        for (long i = 0; i < n; i++) {
            data[(int) ((pfn + i) >>> CHUNK_SHIFT)][(int) ((pfn + i) & CHUNK_MASK)] = null;
        }
        return pfn;
    }

    private void ensure(long limit) {
        if (limit > Integer.MAX_VALUE - 8) {
            throw new LinuxException(Errno.ENOMEM, "alloc_pages", 0, "frame numbers exhausted");
        }
        int chunks = (int) ((limit + CHUNK_MASK) >>> CHUNK_SHIFT);
        if (chunks <= refcount.length) {
            return;
        }
        int old = refcount.length;
        refcount = Arrays.copyOf(refcount, chunks);
        mapcount = Arrays.copyOf(mapcount, chunks);
        flags = Arrays.copyOf(flags, chunks);
        order = Arrays.copyOf(order, chunks);
        data = Arrays.copyOf(data, chunks);
        memcg = Arrays.copyOf(memcg, chunks);
        for (int c = old; c < chunks; c++) {
            refcount[c] = new int[1 << CHUNK_SHIFT];
            mapcount[c] = new int[1 << CHUNK_SHIFT];
            flags[c] = new byte[1 << CHUNK_SHIFT];
            order[c] = new byte[1 << CHUNK_SHIFT];
            data[c] = new byte[1 << CHUNK_SHIFT][];
            memcg[c] = new MemCgroup[1 << CHUNK_SHIFT];
        }
    }

    private void free(long pfn) {
        int p = (int) pfn;
        int ord = order[p >>> CHUNK_SHIFT][p & CHUNK_MASK];
        long n = 1L << ord;
        for (long i = 0; i < n; i++) {
            data[(int) ((pfn + i) >>> CHUNK_SHIFT)][(int) ((pfn + i) & CHUNK_MASK)] = null;
        }
        MemCgroup cg = memcg[p >>> CHUNK_SHIFT][p & CHUNK_MASK];
        if (cg != null) { // mem_cgroup_uncharge() / hugetlb_cgroup_uncharge_folio()
            int f = flags[p >>> CHUNK_SHIFT][p & CHUNK_MASK];
            if ((f & PG_HUGETLB_RSVD) != 0) {
                cg.unchargeHugetlb(n * Linux.PAGE_SIZE, true);
            }
            if ((f & PG_HUGETLB) != 0) {
                cg.unchargeHugetlb(n * Linux.PAGE_SIZE, false);
            } else {
                cg.unchargeMemory(n);
            }
            memcg[p >>> CHUNK_SHIFT][p & CHUNK_MASK] = null;
        }
        flags[p >>> CHUNK_SHIFT][p & CHUNK_MASK] = 0;
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
            refcount[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)]++;
        }
    }

    /** {@code folio_put()}: frees the folio when the last reference goes. */
    public void put(long pfn) {
        if (pfn == ZERO_PFN) {
            return;
        }
        int p = (int) pfn;
        if (--refcount[p >>> CHUNK_SHIFT][p & CHUNK_MASK] == 0) {
            free(pfn);
        } else if (refcount[p >>> CHUNK_SHIFT][p & CHUNK_MASK] < 0) {
            throw new IllegalStateException("refcount underflow on pfn " + pfn);
        }
    }

    public int refcount(long pfn) {
        return pfn == ZERO_PFN ? Integer.MAX_VALUE : refcount[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)];
    }

    public int mapcount(long pfn) {
        return pfn == ZERO_PFN ? 0 : mapcount[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)];
    }

    /** A new page-table mapping of the folio: mapcount and refcount both go up. */
    public void map(long pfn) {
        if (pfn != ZERO_PFN) {
            mapcount[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)]++;
            refcount[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)]++;
        }
    }

    /** A page-table mapping went away. */
    public void unmap(long pfn) {
        if (pfn != ZERO_PFN) {
            mapcount[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)]--;
            put(pfn);
        }
    }

    public int flags(long pfn) {
        return flags[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)];
    }

    public void setFlags(long pfn, int f) {
        flags[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)] |= (byte) f;
    }

    public void clearFlags(long pfn, int f) {
        flags[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)] &= (byte) ~f;
    }

    public int order(long pfn) {
        return order[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)];
    }

    /** Copies {@code len} bytes of frame {@code pfn} (a subpage frame) starting at {@code off} into dst. */
    public void read(long pfn, int off, byte[] dst, int dstOff, int len) {
        if (pfn == ZERO_PFN) {
            Arrays.fill(dst, dstOff, dstOff + len, (byte) 0);
            return;
        }
        byte[] d = data[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)];
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
        byte[] d = data[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)];
        if (d == null) {
            if (isZeros(src, srcOff, len)) {
                return;
            }
            d = new byte[pageSize];
            data[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)] = d;
        }
        System.arraycopy(src, srcOff, d, off, len);
    }

    /** {@code pages_identical(page, ZERO_PAGE(0))}: the frame holds only zero bytes. */
    public boolean isZeroFilled(long pfn) {
        byte[] d = pfn == ZERO_PFN ? null : data[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)];
        return d == null || isZeros(d, 0, d.length);
    }

    /** Copies a whole 4 KiB subpage frame to another. */
    public void copyPage(long fromPfn, long toPfn) {
        byte[] d = fromPfn == ZERO_PFN ? null : data[(int) (fromPfn >>> CHUNK_SHIFT)][(int) (fromPfn & CHUNK_MASK)];
        data[(int) (toPfn >>> CHUNK_SHIFT)][(int) (toPfn & CHUNK_MASK)] = d == null ? null : d.clone();
    }

    public byte[] snapshot(long pfn) {
        byte[] d = pfn == ZERO_PFN ? null : data[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)];
        return d == null ? new byte[pageSize] : d.clone();
    }

    public void restore(long pfn, byte[] page) {
        data[(int) (pfn >>> CHUNK_SHIFT)][(int) (pfn & CHUNK_MASK)] = isZeros(page, 0, page.length) ? null : page.clone();
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
