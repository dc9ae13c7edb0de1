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

    static void check(Kernel k) {
        Map<Long, Integer> mapcounts = new HashMap<>();
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
                prevEnd = v.end;
            }
            for (Map.Entry<Long, long[]> e : mm.pt.tables.entrySet()) {
                long base = e.getKey() << 21;
                long[] tbl = e.getValue();
                if (tbl[PageTable.PMD_SLOT] != 0) {
                    // a PMD-mapped THP: one anonymous VMA covers the whole block and every subpage is present
                    Vma hv = mm.findVma(base);
                    if (hv == null || !hv.isAnonymous() || hv.start > base || hv.end < base + Linux.PMD_SIZE) {
                        throw new IllegalStateException("huge PMD at " + Long.toHexString(base) + " in pid " + t.pid
                                + " not inside one anonymous VMA: " + hv);
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
        }
        checkMemcgs(k);
    }

    /** Each memcg's page counters equal the frames and swap slots charged to it or below it. */
    private static void checkMemcgs(Kernel k) {
        Map<MemCgroup, long[]> real = new java.util.IdentityHashMap<>(); // {pages, hugetlb bytes, swap slots}
        k.frames.forEachCharged((cg, pages, hugetlb) -> {
            for (MemCgroup c = cg; c != null; c = c.parent) {
                long[] r = real.computeIfAbsent(c, x -> new long[3]);
                r[hugetlb ? 1 : 0] += hugetlb ? pages * Linux.PAGE_SIZE : pages;
            }
        });
        k.swap.forEachCharged(cg -> {
            for (MemCgroup c = cg; c != null; c = c.parent) {
                real.computeIfAbsent(c, x -> new long[3])[2]++;
            }
        });
        java.util.List<MemCgroup> all = new java.util.ArrayList<>(k.memcgs.values());
        all.add(k.rootMemcg);
        for (MemCgroup c : all) {
            long[] r = real.getOrDefault(c, new long[3]);
            if (r[0] != c.memoryPages || r[1] != c.hugetlbBytes || r[2] != c.swapPages) {
                throw new IllegalStateException("memcg " + c.name + " counters memory=" + c.memoryPages + " hugetlb="
                        + c.hugetlbBytes + " swap=" + c.swapPages + " but charged frames/slots say " + r[0] + "/" + r[1]
                        + "/" + r[2]);
            }
        }
    }
}
