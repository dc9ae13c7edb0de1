package io.uffdemu.server.mm;

import java.util.HashMap;
import java.util.Map;

/**
 * Debug invariant checker (enabled by {@link Kernel.Config#checkInvariants()}): recomputes what the cached
 * counters and links claim and throws {@link IllegalStateException} on the first mismatch. Like gVisor's
 * {@code realUsageAS} comparison, it exists so tests can catch a counter with two mutators.
 */
final class InvariantChecker {
    private InvariantChecker() {
    }

    /**
     * The wp-write ledger (see {@link Faults#faultLocked}): called for a write's fault attempt that started on a
     * uffd-wp PTE or marker in a WP-armed VMA. Legal ends: a userfault was queued (the WP message, or MISSING,
     * which takes priority on a marker), a signal or errno (nothing written), WP_ASYNC cleared the bit (the
     * kernel's dirty tracking), or a retry that left the PTE uffd-wp (swap-in, a page allocated under a marker).
     * Anything else means a write would land on a wp page unseen by the handler: recorded, and thrown by
     * {@link #check} when the lock is released.
     */
    static void recordWpWrite(Kernel k, MmStruct mm, Vma v, long addr, int kind, boolean asyncCleared, long pteNow) {
        boolean ok = switch (kind) {
            case Faults.USERFAULT, Faults.SIGNAL, Faults.ERRNO -> true;
            case Faults.RETRY -> asyncCleared || Pte.isUffdWp(pteNow);
            default -> asyncCleared; // OK: the write lands now
        };
        if (!ok) {
            k.wpWriteViolations.add("write at 0x" + Long.toHexString(addr) + " in " + v + " landed on a uffd-wp PTE"
                    + " without a WP message or WP_ASYNC (" + (kind == Faults.RETRY ? "the retry lost the wp bit: PTE 0x"
                    + Long.toHexString(pteNow) : "fault path returned OK") + ")");
        }
    }

    static void check(Kernel k) {
        if (!k.wpWriteViolations.isEmpty()) {
            String first = k.wpWriteViolations.getFirst();
            k.wpWriteViolations.clear();
            throw new IllegalStateException("wp-write ledger: " + first);
        }
        if (!PageTable.sharedMarkerTableIntact()) {
            throw new IllegalStateException("the shared all-markers PTE table was written");
        }
        Map<Long, Integer> mapcounts = new HashMap<>();
        java.util.Set<UserfaultfdCtx> checkedUffds = java.util.Collections.newSetFromMap(
                new java.util.IdentityHashMap<>());
        for (Task t : k.tasks.values()) {
            MmStruct mm = t.mm;
            long prevEnd = 0;
            long anon = 0;
            long shmem = 0;
            long swapEnts = 0;
            for (Vma v : mm.vmas.values()) {
                if (v.start >= v.end || v.start < prevEnd || (v.start & (v.pageSize - 1)) != 0
                        || (v.end & (v.pageSize - 1)) != 0) {
                    throw new IllegalStateException("bad VMA layout in pid " + t.pid + ": " + v);
                }
                if ((v.uffd == null) != (v.uffdFlags == 0)) {
                    throw new IllegalStateException("uffd ctx iff mode bits violated: " + v);
                }
                if (v.uffd != null && checkedUffds.add(v.uffd)) {
                    v.uffd.checkQueues();
                }
                prevEnd = v.end;
            }
            for (Map.Entry<Long, long[]> e : mm.pt.tables.entrySet()) {
                long base = e.getKey() << 21;
                long[] tbl = e.getValue();
                if (tbl[PageTable.PMD_SLOT] != 0) {
                    // a PMD-mapped THP: one anonymous VMA covers the whole block and every subpage is present
                    Vma hv = mm.findVma(base);
                    if (hv == null || hv.hugetlb || hv.start > base
                            || hv.end < base + Linux.PMD_SIZE) {
                        throw new IllegalStateException("huge PMD at " + Long.toHexString(base) + " in pid " + t.pid
                                + " not inside one anonymous or shmem VMA: " + hv);
                    }
                    if (!hv.isAnonymous()) {
                        // a file PMD maps one PMD-order folio of the page cache, subpage by subpage
                        long hidx = hv.pgoff(base);
                        for (int i = 0; i < PageTable.PMD_SLOT; i++) {
                            Long ce = hv.inode.cache.get(hidx + i);
                            if (ce == null || ce != Pte.pfn(tbl[i])
                                    || (k.frames.flags(ce) & FramePool.PG_LARGE) == 0) {
                                throw new IllegalStateException("huge file PMD at " + Long.toHexString(base)
                                        + " in pid " + t.pid + " does not map the cache folio at subpage " + i);
                            }
                        }
                    }
                    for (int i = 0; i < PageTable.PMD_SLOT; i++) {
                        if (!Pte.isPresent(tbl[i])) {
                            throw new IllegalStateException("huge PMD at " + Long.toHexString(base) + " in pid "
                                    + t.pid + " has a non-present subpage " + i);
                        }
                    }
                }
                for (int i = 0; i < PageTable.PMD_SLOT; i++) {
                    long pte = tbl[i];
                    if (pte == Pte.NONE) {
                        continue;
                    }
                    long addr = base + ((long) i << 12);
                    Vma v = mm.findVma(addr);
                    if (v == null) {
                        throw new IllegalStateException("PTE outside any VMA at " + Long.toHexString(addr)
                                + " in pid " + t.pid);
                    }
                    long pages = v.pageSize / Linux.PAGE_SIZE;
                    if (Pte.isPresent(pte) && !Pte.isZero(pte)) {
                        long pfn = Pte.pfn(pte);
                        mapcounts.merge(pfn, 1, Integer::sum);
                        if ((k.frames.flags(pfn) & FramePool.PG_ANON) != 0) {
                            anon += pages;
                        } else {
                            shmem += pages;
                        }
                    } else if (Pte.isSwap(pte)) {
                        swapEnts++;
                    }
                }
            }
            if (anon != mm.rssAnon || shmem != mm.rssShmem || swapEnts != mm.swapEnts) {
                throw new IllegalStateException("rss counters of pid " + t.pid + " claim anon=" + mm.rssAnon
                        + " shmem=" + mm.rssShmem + " swap=" + mm.swapEnts + " but page tables map anon=" + anon
                        + " shmem=" + shmem + " swap=" + swapEnts);
            }
        }
        for (Map.Entry<Long, Integer> e : mapcounts.entrySet()) {
            int mc = k.frames.mapcount(e.getKey());
            if (mc != e.getValue()) {
                throw new IllegalStateException("mapcount of pfn " + e.getKey() + " is " + mc + " but "
                        + e.getValue() + " PTEs map it");
            }
            if (k.frames.refcount(e.getKey()) < mc) {
                throw new IllegalStateException("refcount below mapcount on pfn " + e.getKey());
            }
        }
        for (HugetlbPool h : k.hstates.values()) {
            if (h.free < 0 || h.resv < 0 || h.resv > h.free || h.free > h.nrHugepages) {
                throw new IllegalStateException("hugetlb pool " + h.pageSize + " free=" + h.free + " resv=" + h.resv
                        + " nr=" + h.nrHugepages);
            }
            // resv_huge_pages: the private reservations left plus the shared ones not consumed yet
            long held = 0;
            for (Task t : k.tasks.values()) {
                for (Vma v : t.mm.vmas.values()) {
                    held += v.hugetlb && v.pageSize == h.pageSize ? v.privateResv : 0;
                }
            }
            for (Inode inode : k.resvInodes) {
                held += inode.pageSize == h.pageSize ? inode.reserved.size() : 0;
            }
            if (held != h.resv) {
                throw new IllegalStateException("hugetlb pool " + h.pageSize + " resv=" + h.resv
                        + " but mappings and files hold " + held + " reservations");
            }
        }
        checkMemcgs(k);
    }

    /**
     * Each memcg's page counters equal what is charged to it or below it: frames and swap slots; for
     * hugetlb.rsvd, the reservations held (the whole length of each reservation-owning private VMA, each charged
     * region of a hugetlbfs file's resv_map) plus the folios allocated without a reservation.
     */
    private static void checkMemcgs(Kernel k) {
        Map<MemCgroup, long[]> real = new java.util.IdentityHashMap<>(); // {pages, hugetlb, swap slots, hugetlb rsvd}
        k.frames.forEachCharged((cg, pages, hugetlb, hugetlbRsvd) -> {
            charge(real, cg, hugetlb ? 1 : 0, hugetlb ? pages * Linux.PAGE_SIZE : pages);
            if (hugetlbRsvd) {
                charge(real, cg, 3, pages * Linux.PAGE_SIZE);
            }
        });
        k.swap.forEachCharged(cg -> charge(real, cg, 2, 1));
        for (Task t : k.tasks.values()) {
            for (Vma v : t.mm.vmas.values()) {
                if (v.resvMemcg != null) {
                    if (!v.hugetlb || v.shared || v.noreserve) {
                        throw new IllegalStateException("a reservation charge on a VMA that owns none: " + v);
                    }
                    charge(real, v.resvMemcg, 3, v.end - v.start);
                }
            }
        }
        for (Inode inode : k.resvInodes) {
            if (inode.resvCharged.isEmpty() || !inode.resvCharged.keySet().containsAll(inode.reserved)) {
                throw new IllegalStateException("resv_map of " + inode.path() + ": reserved " + inode.reserved
                        + " not all charged (" + inode.resvCharged.keySet() + ")");
            }
            for (MemCgroup cg : inode.resvCharged.values()) {
                charge(real, cg, 3, inode.pageSize);
            }
        }
        java.util.List<MemCgroup> all = new java.util.ArrayList<>(k.memcgs.values());
        all.add(k.rootMemcg);
        for (MemCgroup c : all) {
            c.checkPgtables();
            c.checkUserfaultCounts();
            long[] r = real.getOrDefault(c, new long[4]);
            if (r[0] != c.memoryPages || r[1] != c.hugetlbBytes || r[2] != c.swapPages || r[3] != c.hugetlbRsvdBytes) {
                throw new IllegalStateException("memcg " + c.name + " counters memory=" + c.memoryPages + " hugetlb="
                        + c.hugetlbBytes + " swap=" + c.swapPages + " hugetlb.rsvd=" + c.hugetlbRsvdBytes
                        + " but charged frames/slots/reservations say " + r[0] + "/" + r[1] + "/" + r[2] + "/" + r[3]);
            }
        }
    }

    /** Adds {@code n} to counter {@code i} of {@code cg} and of every ancestor (page_counter is hierarchical). */
    private static void charge(Map<MemCgroup, long[]> real, MemCgroup cg, int i, long n) {
        for (MemCgroup c = cg; c != null; c = c.parent) {
            real.computeIfAbsent(c, x -> new long[4])[i] += n;
        }
    }
}
