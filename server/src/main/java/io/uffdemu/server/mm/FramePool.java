package io.uffdemu.server.mm;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Arrays;
import java.util.Set;

/**
 * Emulated physical memory: analogue of the page allocator plus {@code struct page} / {@code struct folio}
 * metadata ({@code mm/page_alloc.c}, {@code include/linux/mm_types.h}).
 *
 * <p>Frames are numbered (pfn). Metadata is kept struct-of-arrays: {@code refcount} (references from page
 * tables, the page cache and the swap cache), {@code mapcount} (page-table mappings), {@code flags} and
 * {@code order}, so resident metadata is 10 bytes of arrays plus the memcg reference (4 bytes with compressed
 * oops) and one bit per frame. A huge folio is a run of contiguous frames; its head holds the counts.
 *
 * <p>Page contents are the emulated physical memory: off-heap slabs of {@value #SLAB_FRAMES} frames, allocated
 * when a frame of the slab is first written with non-zero bytes (a frame that was never written reads as zeros
 * and costs nothing). A per-frame bit says the slab holds the frame's contents; freeing a frame clears it, so
 * every free or newly allocated frame reads as zeros without its bytes being touched (the next partial write
 * zeroes the frame first, a whole-page write just replaces it). The contents stay off the Java heap
 * because 1 GiB of 4 KiB {@code byte[]} pages was copied again and again by young collections (UFFDIO_COPY of
 * 1 GiB spent about half its time in GC pauses). On a Linux host with native access enabled (the service, test
 * and bench JVMs run with it) a slab is 2 MiB of anonymous memory aligned to 2 MiB, advised MADV_HUGEPAGE and
 * populated at once (MADV_POPULATE_WRITE): the host backs it with one transparent huge page, allocated and
 * zeroed in one fault, where zeroing fresh memory from Java takes one host page fault per 4 KiB (the largest cost
 * of a fresh 1 GiB fill) and 256 KiB slabs populated with MAP_POPULATE still cost one PTE each (on these VMs, whose
 * page tables the hypervisor shadows, a UFFDIO_COPY of a 2 MiB hugetlb page into fresh slabs took 3.4 ms against
 * 0.14-0.3 ms now; a host without THP gets 4 KiB pages, as before). Elsewhere slabs come from
 * {@link Arena#ofAuto()}. Either way a slab is
 * released when its pool becomes unreachable, not when its frames are freed: freed frames are reused first
 * (LIFO), so the process keeps the peak of written memory, as the committed Java heap did when pages were
 * {@code byte[]}. Giving a slab back with {@code MADV_DONTNEED} once its last frame is freed was tried: it made
 * a COPY of 1 GiB into just-freed memory 5 times slower (every page faulted in again).
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
    /** Frames per content slab (2 MiB of off-heap memory: one host huge page). */
    static final int SLAB_FRAMES = 512;
    private static final int SLAB_SHIFT = 9;
    private static final int PAGE_SHIFT = 12;
    /** Content slabs by {@code pfn >>> SLAB_SHIFT}; null until a frame in the slab is written. */
    private MemorySegment[] slabs = new MemorySegment[0];
    /** Content slabs allocated so far (they are kept until the pool is unreachable). */
    private long slabCount;
    /** Per chunk, one bit per frame: the slab holds the frame's contents (without it the frame reads as zeros). */
    private long[][] written = new long[0][];
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

    /** Off-heap bytes held for page contents: the slabs allocated so far (a slab outlives its frames' frees). */
    public long contentBytes() {
        return slabCount * ((long) SLAB_FRAMES << PAGE_SHIFT);
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
        return pfn; // its frames read as zeros: never written, or their written bits cleared by free()
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
        written = Arrays.copyOf(written, chunks);
        memcg = Arrays.copyOf(memcg, chunks);
        for (int c = old; c < chunks; c++) {
            refcount[c] = new int[1 << CHUNK_SHIFT];
            mapcount[c] = new int[1 << CHUNK_SHIFT];
            flags[c] = new byte[1 << CHUNK_SHIFT];
            order[c] = new byte[1 << CHUNK_SHIFT];
            written[c] = new long[1 << (CHUNK_SHIFT - 6)];
            memcg[c] = new MemCgroup[1 << CHUNK_SHIFT];
        }
    }

    private void free(long pfn) {
        int p = (int) pfn;
        int ord = order[p >>> CHUNK_SHIFT][p & CHUNK_MASK];
        long n = 1L << ord;
        for (long i = 0; i < n; i++) {
            clearContents(pfn + i);
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

    /** The host's mmap(2) and munmap(2), or null when slabs come from {@link Arena#ofAuto()}. */
    private static final MethodHandle MMAP, MUNMAP, MADVISE;

    static {
        MethodHandle mmap = null, munmap = null, madvise = null;
        // the MAP_* values below are the host's on these architectures (they differ on mips, sparc, alpha, parisc)
        if (FramePool.class.getModule().isNativeAccessEnabled() && System.getProperty("os.name", "").equals("Linux")
                && Set.of("amd64", "aarch64").contains(System.getProperty("os.arch"))) {
            try {
                Linker l = Linker.nativeLinker();
                mmap = l.downcallHandle(l.defaultLookup().find("mmap").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                                ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
                munmap = l.downcallHandle(l.defaultLookup().find("munmap").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
                madvise = l.downcallHandle(l.defaultLookup().find("madvise").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                                ValueLayout.JAVA_INT));
            } catch (RuntimeException | LinkageError e) {
                mmap = null;
                munmap = null;
                madvise = null;
            }
        }
        MMAP = mmap;
        MUNMAP = munmap;
        MADVISE = madvise;
    }

    /** Slabs come from the host's mmap (native access on a Linux amd64/aarch64 host), not from an arena. */
    static boolean hostSlabs() {
        return MMAP != null;
    }

    /**
     * A zeroed slab of {@code bytes} (a power of two): host memory aligned to its size, advised MADV_HUGEPAGE and
     * populated, when {@code hostMmap} and available; else an arena's.
     */
    static MemorySegment newSlab(long bytes, boolean hostMmap) {
        if (hostMmap && MMAP != null) {
            MemorySegment p;
            try {
                // twice the size, so that a slab-aligned run can be kept and the rest given back: the host backs
                // an aligned 2 MiB slab with one transparent huge page (MADV_HUGEPAGE), populated in one fault
                p = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, 2 * bytes,
                        Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0L);
            } catch (Throwable e) {
                throw new IllegalStateException("mmap of a frame slab", e);
            }
            if (p.address() != -1L) { // else MAP_FAILED: fall back to the arena
                long start = p.address();
                long aligned = (start + bytes - 1) & -bytes;
                MemorySegment slab = MemorySegment.ofAddress(aligned);
                try {
                    if (aligned > start) {
                        unmapSlab(MemorySegment.ofAddress(start), aligned - start);
                    }
                    long tail = start + 2 * bytes - (aligned + bytes);
                    if (tail > 0) {
                        unmapSlab(MemorySegment.ofAddress(aligned + bytes), tail);
                    }
                    int ignored = (int) MADVISE.invokeExact(slab, bytes, Linux.MADV_HUGEPAGE);
                    if ((int) MADVISE.invokeExact(slab, bytes, Linux.MADV_POPULATE_WRITE) != 0) {
                        // before Linux 5.14 (no MADV_POPULATE_WRITE): the same run again, populated by mmap
                        MemorySegment q = (MemorySegment) MMAP.invokeExact(slab, bytes,
                                Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS
                                        | Linux.MAP_FIXED | Linux.MAP_POPULATE, -1, 0L);
                        if (q.address() != aligned) {
                            throw new IllegalStateException("mmap(MAP_FIXED) of a frame slab moved or failed");
                        }
                    }
                } catch (Throwable e) {
                    throw new IllegalStateException("mmap of a frame slab", e);
                }
                return slab.reinterpret(bytes, Arena.ofAuto(), s -> unmapSlab(s, bytes));
            }
        }
        return Arena.ofAuto().allocate(bytes, Linux.PAGE_SIZE);
    }

    /** The cleanup of an mmap'd slab, run once it is unreachable. */
    private static void unmapSlab(MemorySegment slab, long bytes) {
        try {
            int ignored = (int) MUNMAP.invokeExact(slab, bytes);
        } catch (Throwable e) {
            throw new IllegalStateException("munmap of a frame slab", e);
        }
    }

    /** The frame's bytes in its slab are its contents; when not, it reads as zeros whatever the slab holds. */
    private boolean isWritten(long pfn) {
        return pfn != ZERO_PFN
                && (written[(int) (pfn >>> CHUNK_SHIFT)][(int) ((pfn & CHUNK_MASK) >>> 6)] & (1L << pfn)) != 0;
    }

    /**
     * The frame's 4 KiB of off-heap memory for a write of {@code len} bytes at {@code off}, allocating its slab if
     * needed. A frame not written since it was last freed holds stale bytes: it is zeroed first unless the write
     * covers all of it. Marks the frame written.
     */
    private MemorySegment frameForWrite(long pfn, int off, int len) {
        int s = (int) (pfn >>> SLAB_SHIFT);
        if (s >= slabs.length) {
            slabs = Arrays.copyOf(slabs, Math.max(s + 1, slabs.length * 2));
        }
        MemorySegment slab = slabs[s];
        if (slab == null) {
            slab = newSlab((long) SLAB_FRAMES << PAGE_SHIFT, true);
            slabs[s] = slab;
            slabCount++;
        }
        MemorySegment m = slab.asSlice((pfn & (SLAB_FRAMES - 1)) << PAGE_SHIFT, pageSize);
        if (!isWritten(pfn)) {
            if (off != 0 || len != pageSize) {
                m.fill((byte) 0);
            }
            written[(int) (pfn >>> CHUNK_SHIFT)][(int) ((pfn & CHUNK_MASK) >>> 6)] |= 1L << pfn;
        }
        return m;
    }

    /** The frame's memory if it was written, else null (it reads as zeros). */
    private MemorySegment frameIfWritten(long pfn) {
        return isWritten(pfn) ? slabs[(int) (pfn >>> SLAB_SHIFT)].asSlice((pfn & (SLAB_FRAMES - 1)) << PAGE_SHIFT,
                pageSize) : null;
    }

    /** The frame reads as zeros again (its stale bytes are zeroed or replaced by its next write). */
    private void clearContents(long pfn) {
        written[(int) (pfn >>> CHUNK_SHIFT)][(int) ((pfn & CHUNK_MASK) >>> 6)] &= ~(1L << pfn);
    }

    /** Copies {@code len} bytes of frame {@code pfn} (a subpage frame) starting at {@code off} into dst. */
    public void read(long pfn, int off, byte[] dst, int dstOff, int len) {
        MemorySegment m = frameIfWritten(pfn);
        if (m == null) {
            Arrays.fill(dst, dstOff, dstOff + len, (byte) 0);
        } else {
            MemorySegment.copy(m, ValueLayout.JAVA_BYTE, off, dst, dstOff, len);
        }
    }

    public void write(long pfn, int off, byte[] src, int srcOff, int len) {
        write(pfn, off, MemorySegment.ofArray(src), srcOff, len);
    }

    /** As {@link #write(long, int, byte[], int, int)}, from {@code len} bytes of {@code src} at {@code srcOff}. */
    public void write(long pfn, int off, MemorySegment src, long srcOff, int len) {
        if (pfn == ZERO_PFN) {
            throw new IllegalStateException("write to the zero page");
        }
        if (!isWritten(pfn) && isZeros(src, srcOff, len)) {
            return;
        }
        MemorySegment.copy(src, srcOff, frameForWrite(pfn, off, len), off, len);
    }

    /** {@code pages_identical(page, ZERO_PAGE(0))}: the frame holds only zero bytes. */
    public boolean isZeroFilled(long pfn) {
        MemorySegment m = frameIfWritten(pfn);
        return m == null || isZeros(m);
    }

    /** Copies a whole 4 KiB subpage frame to another. */
    public void copyPage(long fromPfn, long toPfn) {
        MemorySegment from = frameIfWritten(fromPfn);
        if (from == null) {
            clearContents(toPfn);
        } else {
            frameForWrite(toPfn, 0, pageSize).copyFrom(from);
        }
    }

    public byte[] snapshot(long pfn) {
        byte[] page = new byte[pageSize];
        read(pfn, 0, page, 0, pageSize);
        return page;
    }

    public void restore(long pfn, byte[] page) {
        clearContents(pfn);
        write(pfn, 0, page, 0, pageSize);
    }

    private static boolean isZeros(MemorySegment m) {
        for (long i = 0; i < m.byteSize(); i += Long.BYTES) {
            if (m.get(ValueLayout.JAVA_LONG_UNALIGNED, i) != 0) {
                return false;
            }
        }
        return true;
    }

    /** Zero bytes to compare against ({@link MemorySegment#mismatch} is vectorized; a byte loop was 14 % of a
     * remote round trip's server CPU when every COPY was of a zero page). */
    private static final byte[] ZEROS = new byte[4096];

    private static final MemorySegment ZERO_SEGMENT = MemorySegment.ofArray(ZEROS);

    /** The segment's bytes [off, off + len) are all zero ({@link MemorySegment#mismatch} is vectorized too). */
    static boolean isZeros(MemorySegment m, long off, int len) {
        for (int i = 0; i < len; i += ZEROS.length) {
            int n = Math.min(ZEROS.length, len - i);
            if (MemorySegment.mismatch(m, off + i, off + i + n, ZERO_SEGMENT, 0, n) >= 0) {
                return false;
            }
        }
        return true;
    }

    static boolean isZeros(byte[] b, int off, int len) {
        return isZeros(MemorySegment.ofArray(b), off, len);
    }
}
