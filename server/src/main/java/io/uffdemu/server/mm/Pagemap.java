package io.uffdemu.server.mm;

import java.util.ArrayList;
import java.util.List;

/**
 * /proc/PID/pagemap and its PAGEMAP_SCAN ioctl: analogue of {@code fs/proc/task_mmu.c}
 * ({@code pte_to_pagemap_entry()}, {@code pagemap_hugetlb_range()}, {@code do_pagemap_scan()}).
 */
public final class Pagemap {
    private final Kernel k;

    Pagemap(Kernel k) {
        this.k = k;
    }

    /** Maximum entries per read, to bound one request. */
    public static final int MAX_PAGES_PER_READ = 1 << 20;

    /** read(2) of /proc/PID/pagemap: one entry per 4 KiB page from {@code start}. */
    public long[] read(int pid, long start, int pages) {
        if ((start & (Linux.PAGE_SIZE - 1)) != 0) {
            throw LinuxException.einval("pagemap", "offset not a multiple of 8 pages entries");
        }
        if (pages < 0 || pages > MAX_PAGES_PER_READ) {
            throw LinuxException.einval("pagemap", "at most " + MAX_PAGES_PER_READ + " entries per read");
        }
        k.lock();
        try {
            Task t = k.taskLocked(pid, "pagemap");
            long[] out = new long[pages];
            for (int i = 0; i < pages; i++) {
                long addr = start + ((long) i << Linux.PAGE_SHIFT);
                if (addr < 0 || addr >= (1L << 47)) {
                    break;
                }
                out[i] = entryLocked(t.mm, addr);
            }
            if (!k.profile.hasPagemapUffdWp()) {
                for (int i = 0; i < pages; i++) {
                    out[i] &= ~Linux.PM_UFFD_WP; // bit 57 is reported from 5.13
                }
            }
            return out;
        } finally {
            k.unlock();
        }
    }

    long entryLocked(MmStruct mm, long addr) {
        Vma v = mm.findVma(addr);
        if (v == null) {
            return 0;
        }
        long base = addr & ~(v.pageSize - 1);
        long pte = mm.pt.get(base);
        if (pte == Pte.NONE) {
            return 0;
        }
        long flags = 0;
        if (Pte.isPresent(pte)) {
            flags |= Linux.PM_PRESENT;
            if ((pte & Pte.UFFD_WP) != 0) {
                flags |= Linux.PM_UFFD_WP;
            }
            if (Pte.isZero(pte) && !v.hugetlb && mm.pt.isTransHuge(base)) {
                // pagemap_pmd_range_thp(): the huge zero folio is not anonymous, so it reads as a file page
                flags |= Linux.PM_FILE;
            }
            if (!Pte.isZero(pte)) {
                long pfn = Pte.pfn(pte) + ((addr - base) >>> Linux.PAGE_SHIFT);
                flags |= pfn & Linux.PM_PFRAME_MASK;
                long head = Pte.pfn(pte);
                if ((k.frames.flags(head) & FramePool.PG_ANON) == 0) {
                    flags |= Linux.PM_FILE;
                }
                // folio_precise_page_mapcount() == 1 (CONFIG_PAGE_MAPCOUNT, as on the reference kernel): PTE
                // mappings of the page plus PMD mappings of its folio, which is what the per-frame mapcount
                // counts; pagemap_pmd_range_thp() asks it of the PMD's first page for every subpage
                long which = !v.hugetlb && mm.pt.isTransHuge(base)
                        ? Pte.pfn(mm.pt.get(base & ~(Linux.PMD_SIZE - 1))) : head;
                if (k.frames.mapcount(which) == 1) {
                    flags |= Linux.PM_MMAP_EXCLUSIVE;
                }
            }
            return flags;
        }
        if (Pte.isUffdWp(pte)) {
            flags |= Linux.PM_UFFD_WP;
        }
        if (v.hugetlb) {
            return flags; // hugetlb markers show only the wp bit
        }
        flags |= Linux.PM_SWAP;
        if (Pte.isSwap(pte)) {
            flags |= (Pte.slot(pte) << 5) & Linux.PM_PFRAME_MASK;
        }
        if (Pte.isGuardMarker(pte)) {
            flags |= Linux.PM_GUARD_REGION;
        }
        return flags;
    }

    /** Arguments of PAGEMAP_SCAN ({@code struct pm_scan_arg}); maxRegions 0 = unlimited, maxPages 0 = unlimited. */
    public record ScanArg(long start, long end, long flags, long categoryInverted, long categoryMask,
            long categoryAnyofMask, long returnMask, long maxPages, int maxRegions) {
    }

    /** One {@code struct page_region}. */
    public record Region(long start, long end, long categories) {
    }

    public record ScanResult(List<Region> regions, long walkEnd) {
    }

    /** ioctl(PAGEMAP_SCAN). */
    public ScanResult scan(int pid, ScanArg a) {
        if (!k.profile.hasPagemapScan()) {
            throw new LinuxException(Errno.ENOTTY, "PAGEMAP_SCAN", 0, "/proc/PID/pagemap has no ioctls before 6.7");
        }
        if ((a.flags() & ~Linux.PM_SCAN_FLAGS) != 0) {
            throw LinuxException.einval("PAGEMAP_SCAN", "unknown flags");
        }
        if (((a.categoryInverted() | a.categoryMask() | a.categoryAnyofMask() | a.returnMask())
                & ~Linux.PM_SCAN_CATEGORIES) != 0) {
            throw LinuxException.einval("PAGEMAP_SCAN", "unknown category bits");
        }
        if ((a.start() & (Linux.PAGE_SIZE - 1)) != 0) {
            throw LinuxException.einval("PAGEMAP_SCAN", "unaligned start");
        }
        long end = VmOps.pageAlignUp(a.end(), Linux.PAGE_SIZE);
        if (a.end() < a.start() || end < a.start() || end > (1L << 47)) {
            throw new LinuxException(Errno.EFAULT, "PAGEMAP_SCAN", 0, "bad range");
        }
        if (a.maxRegions() < 0 || a.maxPages() < 0) {
            throw LinuxException.einval("PAGEMAP_SCAN", "negative limits");
        }
        k.lock();
        try {
            Task t = k.taskLocked(pid, "PAGEMAP_SCAN");
            return new Walk(t.mm, a, end).run();
        } finally {
            k.unlock();
        }
    }

    private final class Walk {
        final MmStruct mm;
        final ScanArg a;
        final long end;
        final List<Region> regions = new ArrayList<>();
        final long maxPages;
        long found;
        long curStart = -1;
        long curEnd;
        long curCats;
        boolean full;
        long walkEnd;

        Walk(MmStruct mm, ScanArg a, long end) {
            this.mm = mm;
            this.a = a;
            this.end = end;
            this.maxPages = a.maxPages() == 0 ? Long.MAX_VALUE : a.maxPages();
            this.walkEnd = end;
        }

        ScanResult run() {
            boolean wpMatching = (a.flags() & Linux.PM_SCAN_WP_MATCHING) != 0;
            for (Vma v : mm.vmasIn(a.start(), end)) {
                boolean wpAllowed = v.uffdWpAsync() && v.uffdWpUseMarkers();
                if (!wpAllowed) {
                    if ((a.flags() & Linux.PM_SCAN_CHECK_WPASYNC) != 0) {
                        throw new LinuxException(Errno.EPERM, "PAGEMAP_SCAN", 0, "mapping is not async uffd-wp");
                    }
                    if (wpMatching) {
                        continue;
                    }
                }
                long vmaCat = wpAllowed ? Linux.PAGE_IS_WPALLOWED : 0;
                long required = a.categoryMask() & Linux.PAGE_IS_WPALLOWED;
                if (((vmaCat ^ a.categoryInverted()) & required) != required) {
                    continue;
                }
                long s = Math.max(a.start(), v.start);
                long e = Math.min(end, v.end);
                if (!walkVma(v, s, e, vmaCat, wpMatching)) {
                    break;
                }
            }
            flush();
            return new ScanResult(regions, walkEnd);
        }

        /** Walks one VMA part; false when the output is full. */
        boolean walkVma(Vma v, long s, long e, long vmaCat, boolean wpMatching) {
            long addr = s;
            while (addr < e) {
                long blockEnd = Math.min(e, ((addr >>> 21) + 1) << 21);
                if (!v.hugetlb && !mm.pt.tables.containsKey(addr >>> 21)) {
                    long cats = vmaCat | (v.uffdWp() ? Linux.PAGE_IS_WRITTEN : 0);
                    if (!emit(v, addr, blockEnd, cats, wpMatching)) {
                        return false;
                    }
                    addr = blockEnd;
                    continue;
                }
                long step = v.hugetlb ? Math.min(v.pageSize, e - addr) : Linux.PAGE_SIZE;
                long base = addr & ~(v.pageSize - 1);
                long next = v.hugetlb ? Math.min(e, base + v.pageSize) : addr + step;
                long cats = vmaCat | category(v, mm.pt.get(base), !v.hugetlb && mm.pt.isTransHuge(base));
                if (!emit(v, addr, next, cats, wpMatching)) {
                    return false;
                }
                addr = next;
            }
            return true;
        }

        long category(Vma v, long pte, boolean hugePmd) {
            long c = 0;
            if (Pte.isPresent(pte)) {
                c |= Linux.PAGE_IS_PRESENT;
                if ((pte & Pte.UFFD_WP) == 0) {
                    c |= Linux.PAGE_IS_WRITTEN;
                }
                if (Pte.isZero(pte)) {
                    c |= Linux.PAGE_IS_PFNZERO;
                } else if ((k.frames.flags(Pte.pfn(pte)) & FramePool.PG_ANON) == 0) {
                    c |= Linux.PAGE_IS_FILE;
                }
                if (v.hugetlb || hugePmd) {
                    c |= Linux.PAGE_IS_HUGE;
                }
            } else if (pte != Pte.NONE) {
                c |= Linux.PAGE_IS_SWAPPED;
                if (v.hugetlb) {
                    c |= Linux.PAGE_IS_HUGE; // pagemap_hugetlb_category() starts from PAGE_IS_HUGE
                }
                if (!Pte.isUffdWp(pte)) {
                    c |= Linux.PAGE_IS_WRITTEN;
                }
                if (Pte.isGuardMarker(pte)) {
                    c |= Linux.PAGE_IS_GUARD;
                }
            } else {
                c |= Linux.PAGE_IS_WRITTEN;
            }
            return c;
        }

        boolean interesting(long cats) {
            long c = cats ^ a.categoryInverted();
            if ((c & a.categoryMask()) != a.categoryMask()) {
                return false;
            }
            return a.categoryAnyofMask() == 0 || (c & a.categoryAnyofMask()) != 0;
        }

        boolean emit(Vma v, long s, long e, long cats, boolean wpMatching) {
            if (!interesting(cats)) {
                return true;
            }
            long pages = (e - s) >>> Linux.PAGE_SHIFT;
            boolean stop = false;
            if (found + pages > maxPages) {
                long tooMuch = found + pages - maxPages;
                e -= tooMuch << Linux.PAGE_SHIFT;
                pages -= tooMuch;
                stop = true;
            }
            long rc = cats & a.returnMask();
            if (pages > 0) {
                if (curStart >= 0 && curEnd == s && curCats == rc) {
                    curEnd = e;
                } else {
                    if (curStart >= 0 && a.maxRegions() != 0 && regions.size() + 1 >= a.maxRegions()) {
                        walkEnd = s;
                        return false;
                    }
                    flush();
                    curStart = s;
                    curEnd = e;
                    curCats = rc;
                }
                found += pages;
                if (wpMatching && (cats & Linux.PAGE_IS_WRITTEN) != 0) {
                    k.uffd.wpRangeLocked(v, s, e, true);
                }
            }
            if (stop) {
                walkEnd = e;
                return false;
            }
            return true;
        }

        void flush() {
            if (curStart >= 0) {
                regions.add(new Region(curStart, curEnd, curCats));
                curStart = -1;
            }
        }
    }
}
