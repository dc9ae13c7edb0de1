package io.uffdemu.server.mm;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Memory-management syscalls: analogue of {@code mm/mmap.c}, {@code mm/vma.c}, {@code mm/mremap.c},
 * {@code mm/mprotect.c}, {@code mm/madvise.c}, {@code mm/memory.c} (zap, copy_page_range) and the page-cache
 * side of {@code mm/shmem.c} / {@code fs/hugetlbfs/inode.c}. Methods ending in {@code Locked} need the kernel
 * lock; the public entry points take it and, after releasing it, wait for the uffd events they raised.
 */
public final class VmOps {
    private final Kernel k;

    VmOps(Kernel k) {
        this.k = k;
    }

    // ------------------------------------------------------------------ validation helpers

    static long pageAlignUp(long v, long ps) {
        return (v + ps - 1) & ~(ps - 1);
    }

    private static void checkProt(int prot, String call) {
        if ((prot & ~(Linux.PROT_READ | Linux.PROT_WRITE | Linux.PROT_EXEC)) != 0) {
            throw LinuxException.einval(call, "unknown prot bits");
        }
    }

    // ------------------------------------------------------------------ mmap

    /** mmap(2). */
    public long mmap(int pid, long addr, long len, int prot, int flags, int fd, long offset) {
        List<UserfaultfdCtx.Event> events = new ArrayList<>();
        long result;
        long populateStart;
        k.lock();
        try {
            Task t = k.taskLocked(pid, "mmap");
            t.memcg.checkMapCount("mmap"); // do_mmap(): map_count over vm.max_map_count gives ENOMEM
            result = mmapLocked(t, addr, len, prot, flags, fd, offset, events);
            populateStart = result;
        } finally {
            k.unlock();
        }
        k.uffd.waitEvents(events);
        if ((flags & Linux.MAP_POPULATE) != 0) {
            try {
                k.faults.populate(pid, populateStart, pageAlignUp(len, Linux.PAGE_SIZE), null, false);
            } catch (LinuxException ignored) {
                // MAP_POPULATE failures are not reported by mmap(2)
            }
        }
        return result;
    }

    private long mmapLocked(Task t, long addr, long len, int prot, int flags, int fd, long offset,
            List<UserfaultfdCtx.Event> events) {
        checkProt(prot, "mmap");
        if (len == 0) {
            throw LinuxException.einval("mmap", "zero length");
        }
        int type = flags & Linux.MAP_TYPE;
        if (type != Linux.MAP_SHARED && type != Linux.MAP_PRIVATE && type != Linux.MAP_SHARED_VALIDATE) {
            throw LinuxException.einval("mmap", "neither MAP_SHARED nor MAP_PRIVATE");
        }
        if (type == Linux.MAP_SHARED_VALIDATE && (flags & ~Linux.MAP_KNOWN) != 0) {
            throw new LinuxException(Errno.EOPNOTSUPP, "mmap", 0, "unknown flags with MAP_SHARED_VALIDATE");
        }
        boolean shared = type != Linux.MAP_PRIVATE;
        boolean anonymous = (flags & Linux.MAP_ANONYMOUS) != 0;
        if ((offset & (Linux.PAGE_SIZE - 1)) != 0 || offset < 0) {
            throw LinuxException.einval("mmap", "unaligned offset");
        }
        Inode inode = null;
        boolean mayWrite = true;
        if (!anonymous) {
            OpenFile f = k.fileLocked(t, fd, "mmap");
            if (f.inode == null) {
                throw new LinuxException(Errno.ENODEV, "mmap", 0, "a userfaultfd cannot be mapped");
            }
            inode = f.inode;
            mayWrite = f.writable || !shared;
        } else if ((flags & Linux.MAP_HUGETLB) != 0) {
            long ps = k.hugePageSize((flags >>> Linux.MAP_HUGE_SHIFT) & Linux.MAP_HUGE_MASK, "mmap");
            inode = k.newInode("anon_hugepage", ps, true, true);
            inode.size = pageAlignUp(len, ps);
            if (inode.size <= 0) {
                throw new LinuxException(Errno.ENOMEM, "mmap", 0, "length overflow");
            }
        } else if (shared) {
            inode = k.newInode("dev/zero", Linux.PAGE_SIZE, false, true);
            inode.size = pageAlignUp(len, Linux.PAGE_SIZE);
            if (inode.size <= 0) {
                throw new LinuxException(Errno.ENOMEM, "mmap", 0, "length overflow");
            }
        }
        long ps = inode != null && inode.hugetlb ? inode.pageSize : Linux.PAGE_SIZE;
        if (inode != null && inode.hugetlb && (offset & (ps - 1)) != 0) {
            throw LinuxException.einval("mmap", "hugetlb offset not huge page aligned");
        }
        long alen = pageAlignUp(len, ps);
        if (alen <= 0 || alen > Linux.TASK_SIZE) {
            throw new LinuxException(Errno.ENOMEM, "mmap", 0, "length too large");
        }
        if (offset + alen < 0) {
            throw new LinuxException(Errno.EOVERFLOW, "mmap");
        }
        MmStruct mm = t.mm;
        boolean fixed = (flags & (Linux.MAP_FIXED | Linux.MAP_FIXED_NOREPLACE)) != 0;
        long start;
        if (fixed) {
            if ((addr & (ps - 1)) != 0) {
                throw LinuxException.einval("mmap", "MAP_FIXED address not aligned");
            }
            if (addr > Linux.TASK_SIZE - alen) {
                throw new LinuxException(Errno.ENOMEM, "mmap", 0, "beyond TASK_SIZE");
            }
            if (addr < Linux.MMAP_MIN_ADDR) {
                throw new LinuxException(Errno.EPERM, "mmap", 0, "below mmap_min_addr");
            }
            if (!mm.vmasIn(addr, addr + alen).isEmpty()) {
                if ((flags & Linux.MAP_FIXED_NOREPLACE) != 0) {
                    throw new LinuxException(Errno.EEXIST, "mmap", 0, "MAP_FIXED_NOREPLACE over a mapping");
                }
                unmapRangeLocked(mm, addr, addr + alen, events, "mmap");
            }
            start = addr;
        } else {
            start = getUnmappedArea(mm, addr, alen, ps);
        }
        if (shared && !mayWrite && (prot & Linux.PROT_WRITE) != 0) {
            throw new LinuxException(Errno.EACCES, "mmap", 0, "PROT_WRITE on a read-only fd");
        }
        // do_mmap(): an anonymous mapping's vm_pgoff is its address (addr >> PAGE_SHIFT); mremap keeps it, so a
        // moved anonymous VMA does not merge with neighbours at its new place (MmStruct.canMerge)
        Vma v = new Vma(mm, start, start + alen, prot, shared, mayWrite, inode, inode == null ? start : offset,
                (flags & Linux.MAP_NORESERVE) != 0);
        if (inode != null && inode.hugetlb) {
            v.resvMemcg = reserveHugetlbLocked(inode, offset, alen, shared, v.noreserve);
            if (v.resvMemcg != null) {
                v.privateResv = alen / ps;
            }
        }
        if (inode != null) {
            inode.mappings.add(v);
            inode.refs++;
        }
        mm.vmas.put(start, v);
        mm.mergeAround(start, start + alen);
        return start;
    }

    /**
     * hugetlb_reserve_pages(): reserves the huge pages of file range [offset, offset + len) for a new mapping,
     * unless MAP_NORESERVE. The reservation is first charged to the mapping task's memcg
     * ({@code hugetlb_cgroup_charge_cgroup_rsvd()}: ENOMEM over hugetlb.rsvd.max, a quota failure), then taken
     * from the pool ({@code hugetlb_acct_memory()}: ENOMEM when too few free huge pages are not yet promised).
     * A shared mapping reserves only the pages its file's resv_map does not hold yet ({@code region_chg()}), and
     * their charge stays with those regions ({@link Inode#resvCharged}) until {@link #regionDelLocked}. A private
     * mapping reserves its whole length; the charge is the VMA's. Returns the memcg a private reservation is
     * charged to (the VMA's {@link Vma#resvMemcg}), null otherwise.
     */
    private MemCgroup reserveHugetlbLocked(Inode inode, long offset, long len, boolean shared, boolean noreserve) {
        if (noreserve) {
            return null;
        }
        HugetlbPool h = k.hstate(inode.pageSize);
        MemCgroup cg = k.frames.active;
        long first = offset / inode.pageSize;
        long n = len / inode.pageSize;
        List<Long> need = new ArrayList<>();
        if (shared) {
            for (long i = first; i < first + n; i++) {
                if (!inode.cache.containsKey(i) && !inode.resvCharged.containsKey(i)) {
                    need.add(i);
                }
            }
        }
        long chg = shared ? need.size() : n;
        cg.chargeHugetlbReservation(chg * inode.pageSize, "mmap");
        if (h.available() < chg) {
            cg.unchargeHugetlb(chg * inode.pageSize, true);
            throw new LinuxException(Errno.ENOMEM, "mmap", 0, "not enough free huge pages");
        }
        h.resv += chg;
        if (!shared) {
            return cg;
        }
        for (long i : need) {
            inode.reserved.add(i);
            inode.resvCharged.put(i, cg);
        }
        if (!need.isEmpty()) {
            k.resvInodes.add(inode);
        }
        return null;
    }

    /**
     * region_del() via hugetlb_unreserve_pages() (truncate, hole punch, eviction): the file's regions in
     * [fromIdx, toIdx) go; reservations not consumed yet return to the pool, and each region's hugetlb.rsvd charge
     * is dropped ({@code hugetlb_cgroup_uncharge_file_region()}), consumed or not.
     */
    private void regionDelLocked(Inode inode, long fromIdx, long toIdx) {
        HugetlbPool h = k.hstate(inode.pageSize);
        for (Long idx : new ArrayList<>(inode.reserved)) {
            if (idx >= fromIdx && idx < toIdx) {
                inode.reserved.remove(idx);
                h.resv--;
            }
        }
        Map<Long, MemCgroup> regions = inode.resvCharged.subMap(fromIdx, toIdx);
        for (MemCgroup cg : regions.values()) {
            cg.unchargeHugetlb(inode.pageSize, true);
        }
        regions.clear();
        if (inode.resvCharged.isEmpty()) {
            k.resvInodes.remove(inode);
        }
    }

    /** Top-down search for a free gap ({@code vm_unmapped_area()}), honouring a free hint. */
    private long getUnmappedArea(MmStruct mm, long hint, long len, long align) {
        if (hint != 0) {
            long h = pageAlignUp(hint, align);
            if (h >= Linux.MMAP_MIN_ADDR && h <= Linux.TASK_SIZE - len && mm.vmasIn(h, h + len).isEmpty()) {
                return h;
            }
        }
        long top = Linux.MMAP_BASE;
        for (Vma v : mm.vmas.descendingMap().values()) {
            if (v.start >= top) {
                top = Math.min(top, v.start);
                continue;
            }
            long cand = (top - len) & ~(align - 1);
            if (cand >= v.end && cand >= Linux.MMAP_MIN_ADDR) {
                return cand;
            }
            top = Math.min(top, v.start);
        }
        long cand = (top - len) & ~(align - 1);
        if (cand >= Linux.MMAP_MIN_ADDR && top >= len) {
            return cand;
        }
        throw new LinuxException(Errno.ENOMEM, "mmap", 0, "no free address range");
    }

    // ------------------------------------------------------------------ munmap

    /** munmap(2). */
    public void munmap(int pid, long addr, long len) {
        List<UserfaultfdCtx.Event> events = new ArrayList<>();
        k.lock();
        try {
            Task t = k.taskLocked(pid, "munmap");
            if ((addr & (Linux.PAGE_SIZE - 1)) != 0 || len == 0) {
                throw LinuxException.einval("munmap", "unaligned address or zero length");
            }
            long alen = pageAlignUp(len, Linux.PAGE_SIZE);
            if (alen <= 0 || addr > Linux.TASK_SIZE || alen > Linux.TASK_SIZE - addr) {
                throw LinuxException.einval("munmap", "range outside the address space");
            }
            long end = addr + alen;
            for (Vma v : t.mm.vmasIn(addr, end)) {
                if (v.hugetlb) {
                    if (addr > v.start && (addr & (v.pageSize - 1)) != 0) {
                        throw LinuxException.einval("munmap", "splitting a hugetlb mapping off its page size");
                    }
                    // the split at the end goes through hugetlb_vm_op_split() too: no rounding up
                    if (end < v.end && (end & (v.pageSize - 1)) != 0) {
                        throw LinuxException.einval("munmap", "splitting a hugetlb mapping off its page size");
                    }
                }
            }
            unmapRangeLocked(t.mm, addr, end, events, "munmap");
        } finally {
            k.unlock();
        }
        k.uffd.waitEvents(events);
    }

    /** do_vmi_munmap(): splits, zaps (dropping markers), frees, and prepares UNMAP events. */
    void unmapRangeLocked(MmStruct mm, long start, long end, List<UserfaultfdCtx.Event> events, String call) {
        List<Vma> vs = mm.vmasIn(start, end);
        if (vs.isEmpty()) {
            return;
        }
        Set<UserfaultfdCtx> unmapCtxs = new java.util.LinkedHashSet<>(); // VMA order, like the unmap list
        for (Vma v : vs) {
            if (v.uffd != null && (v.uffd.features & Linux.UFFD_FEATURE_EVENT_UNMAP) != 0 && !v.uffd.released) {
                unmapCtxs.add(v.uffd);
            }
        }
        for (Vma v : mm.splitRange(start, end)) {
            removeVmaLocked(v);
        }
        for (UserfaultfdCtx ctx : unmapCtxs) {
            events.add(k.uffd.queueEventLocked(ctx, Linux.UFFD_EVENT_UNMAP, start, end, 0, null, null));
        }
    }

    /** Tears a whole VMA down: zap with ZAP_FLAG_DROP_MARKER, drop reservations and the i_mmap link. */
    void removeVmaLocked(Vma v) {
        zapRangeLocked(v, v.start, v.end, true, true);
        v.mm.pt.freeEmptyTables(v.start, v.end);
        v.mm.vmas.remove(v.start);
        if (v.hugetlb && v.privateResv > 0) {
            k.hstate(v.pageSize).resv -= v.privateResv;
            v.privateResv = 0;
        }
        if (v.resvMemcg != null) {
            // hugetlb_vm_op_close() → hugetlb_cgroup_uncharge_counter(): the VMA's whole length, faulted or not
            v.resvMemcg.unchargeHugetlb(v.end - v.start, true);
            v.resvMemcg = null;
        }
        if (v.inode != null) {
            v.inode.mappings.remove(v);
            k.putInodeLocked(v.inode);
        }
    }

    void exitMmap(MmStruct mm) {
        for (Vma v : new ArrayList<>(mm.vmas.values())) {
            removeVmaLocked(v);
        }
    }

    // ------------------------------------------------------------------ zap, page helpers

    /**
     * zap_pte_range() over [start, end) of one VMA. {@code dropMarkers} is ZAP_FLAG_DROP_MARKER (munmap,
     * truncate); without it guard markers stay, and a file-backed uffd-wp VMA gets a uffd-wp marker where a
     * wp PTE was ({@code pte_install_uffd_wp_if_needed()}). {@code evenCows} = zap private COW copies too.
     */
    void zapRangeLocked(Vma v, long start, long end, boolean dropMarkers, boolean evenCows) {
        PageTable pt = v.mm.pt;
        if (!v.isAnonymous() && !v.hugetlb) {
            // zap_pmd_range(): a huge file PMD zapped whole is cleared (pmd_none); one zapped in part is split,
            // which for a file PMD means zapped whole too
            for (long h = start & ~(Linux.PMD_SIZE - 1); h < end; h += Linux.PMD_SIZE) {
                if (pt.isTransHuge(h)) {
                    zapHugePmdLocked(v, h);
                }
            }
        }
        pt.forEach(start, end, (addr, pte) -> {
            if (Pte.isGuardMarker(pte) && !dropMarkers) {
                return;
            }
            if (!evenCows && (Pte.isSwap(pte)
                    || (Pte.isPresent(pte) && !Pte.isZero(pte) && (k.frames.flags(Pte.pfn(pte)) & FramePool.PG_ANON) != 0))) {
                return;
            }
            releasePteLocked(v, pte);
            long n = Pte.NONE;
            if (!dropMarkers && !v.isAnonymous() && v.uffdWp() && Pte.isUffdWp(pte) && k.profile.uffdWpMarkers()) {
                n = Pte.marker(Pte.MARKER_UFFD_WP, v.hugetlb);
            }
            pt.set(addr, n);
        });
    }

    /** Drops whatever a PTE references (page mapping or swap slot) and fixes the rss counters. */
    void releasePteLocked(Vma v, long pte) {
        long pages = v.pageSize / Linux.PAGE_SIZE;
        if (Pte.isPresent(pte)) {
            if (Pte.isZero(pte)) {
                return;
            }
            long pfn = Pte.pfn(pte);
            int fl = k.frames.flags(pfn);
            if ((fl & FramePool.PG_ANON) != 0) {
                v.mm.rssAnon -= pages;
            } else {
                v.mm.rssShmem -= pages;
            }
            if ((pte & Pte.DIRTY) != 0) {
                k.frames.setFlags(pfn, FramePool.PG_DIRTY);
            }
            unmapPageLocked(pfn);
        } else if (Pte.isSwap(pte)) {
            k.swap.free(Pte.slot(pte));
            v.mm.swapEnts--;
        }
    }

    /** A mapping of the folio went away; hugetlb folios go back to their pool when freed. */
    void unmapPageLocked(long pfn) {
        if (k.frames.refcount(pfn) == 1) {
            returnHugeLocked(pfn);
        }
        k.frames.unmap(pfn);
    }

    void putPageLocked(long pfn) {
        if (k.frames.refcount(pfn) == 1) {
            returnHugeLocked(pfn);
        }
        k.frames.put(pfn);
    }

    private void returnHugeLocked(long pfn) {
        if ((k.frames.flags(pfn) & FramePool.PG_HUGETLB) != 0) {
            long ps = Linux.PAGE_SIZE << k.frames.order(pfn);
            k.hstate(ps).free++;
        }
    }

    /** Maps {@code pfn} at {@code addr} in v: mapcount/refcount and rss go up. */
    void installPteLocked(Vma v, long addr, long pfn, boolean write, boolean wp, boolean dirty) {
        long pte;
        if (pfn == FramePool.ZERO_PFN) {
            pte = Pte.zeroPage();
        } else {
            k.frames.map(pfn);
            long pages = v.pageSize / Linux.PAGE_SIZE;
            if ((k.frames.flags(pfn) & FramePool.PG_ANON) != 0) {
                v.mm.rssAnon += pages;
            } else {
                v.mm.rssShmem += pages;
            }
            pte = Pte.present(pfn, write, v.hugetlb);
            if (dirty) {
                pte |= Pte.DIRTY;
            }
        }
        pte |= Pte.ACCESSED;
        if (wp) {
            pte = Pte.mkUffdWp(pte);
        }
        v.mm.pt.set(addr, pte);
    }

    /** A new anonymous (private) folio for v: order 0, or a private huge page from the pool; -1 if none. */
    /**
     * {@code thp_vma_allowable_order(vma, TVA_PAGEFAULT, PMD_ORDER)} for anonymous memory
     * (mm/huge_memory.c): a private anonymous VMA, THP enabled by sysfs ("always", or "madvise" with
     * VM_HUGEPAGE), no VM_NOHUGEPAGE, and the aligned 2 MiB block around addr inside the VMA.
     */
    boolean thpAllowedLocked(Vma v, long addr) {
        if (!v.isAnonymous() || v.nohugepageAdvice || k.thpEnabled == Kernel.THP_NEVER
                || (k.thpEnabled == Kernel.THP_MADVISE && !v.hugepageAdvice)) {
            return false;
        }
        long haddr = addr & ~(Linux.PMD_SIZE - 1);
        return haddr >= v.start && haddr + Linux.PMD_SIZE <= v.end;
    }

    // ------------------------------------------------------------------ shmem THP (mm/shmem.c, mm/huge_memory.c)

    /**
     * Whether a fault at addr of v may allocate a PMD-order shmem folio ({@code shmem_allowable_huge_orders()}
     * with {@code shmem_enabled} and VM_HUGEPAGE, {@code thp_vma_suitable_order()}, and no page of the block in
     * the cache yet), for shared and private mappings alike (a private write fault fills the cache, then copies).
     */
    boolean shmemThpAllowedLocked(Vma v, long addr) {
        if (!filePmdGeometryLocked(v, addr)) {
            return false;
        }
        long hidx = v.pgoff(addr & ~(Linux.PMD_SIZE - 1));
        boolean inSize = (hidx + 512) * Linux.PAGE_SIZE <= v.inode.size;
        boolean policy = switch (k.shmemThpEnabled) {
            case "always", "force", "within_size" -> true;
            case "advise" -> v.hugepageAdvice;
            default -> false;
        };
        return policy && inSize && v.inode.cache.subMap(hidx, true, hidx + 512, false).isEmpty();
    }

    /** shmem VMA (shared or private), not VM_NOHUGEPAGE, the 2 MiB block inside it and aligned in the file too. */
    private boolean filePmdGeometryLocked(Vma v, long addr) {
        if (!v.isShmem() || v.nohugepageAdvice) {
            return false;
        }
        long haddr = addr & ~(Linux.PMD_SIZE - 1);
        return haddr >= v.start && haddr + Linux.PMD_SIZE <= v.end && ((v.start - v.offset) & (Linux.PMD_SIZE - 1)) == 0;
    }

    /** Allocates a PMD-order folio (512 PG_LARGE subpages) at cache index hidx; false when memory is short. */
    boolean allocShmemThpLocked(Inode inode, long hidx) {
        if (k.frames.freePages() < 512) {
            return false;
        }
        for (int i = 0; i < 512; i++) {
            inode.cache.put(hidx + i, k.frames.alloc(FramePool.PG_UPTODATE | FramePool.PG_LARGE));
        }
        return true;
    }

    /** The page-cache block at hidx holds one PMD-order folio. */
    boolean largeCacheFolioLocked(Inode inode, long hidx) {
        Long e = inode.cache.get(hidx);
        return e != null && !Inode.isSwapEntry(e) && (k.frames.flags(e) & FramePool.PG_LARGE) != 0;
    }

    /** {@code do_set_pmd()} preconditions: geometry, {@code pmd_none()}, and a PMD-order folio in the cache. */
    boolean filePmdMappableLocked(Vma v, long addr) {
        return filePmdGeometryLocked(v, addr) && v.mm.pt.pmdNone(addr)
                && largeCacheFolioLocked(v.inode, v.pgoff(addr & ~(Linux.PMD_SIZE - 1)));
    }

    /**
     * {@code do_set_pmd()}: maps the whole folio at PMD level, writable in a shared writable mapping, read-only in
     * a private one (a write there splits the PMD and copies 4 KiB).
     */
    void mapFilePmdLocked(Vma v, long addr, boolean write) {
        long haddr = addr & ~(Linux.PMD_SIZE - 1);
        long hidx = v.pgoff(haddr);
        boolean writable = v.shared && v.canWrite();
        write &= writable;
        for (int i = 0; i < 512; i++) {
            long pfn = v.inode.cache.get(hidx + i);
            k.frames.setFlags(pfn, FramePool.PG_UPTODATE);
            installPteLocked(v, haddr + ((long) i << Linux.PAGE_SHIFT), pfn, writable, false, write);
            if (write) {
                k.frames.setFlags(pfn, FramePool.PG_DIRTY);
            }
        }
        v.mm.pt.setTransHuge(haddr);
    }

    /**
     * {@code __split_huge_pmd_locked()} on a file-backed VMA: the PMD is simply zapped (later faults map PTEs),
     * and the PTE table goes with it ({@code pmd_none()} again).
     */
    void zapHugePmdLocked(Vma v, long haddr) {
        PageTable pt = v.mm.pt;
        pt.forEach(haddr, haddr + Linux.PMD_SIZE, (a, pte) -> releasePteLocked(v, pte));
        pt.dropTable(haddr);
    }

    /** Zaps the huge file PMDs of v that [s, e) covers partly (or at all when {@code always}). */
    void splitFileHugePmdsLocked(Vma v, long s, long e, boolean always) {
        if (v.isAnonymous() || v.hugetlb || s >= e) {
            return;
        }
        for (long h = s & ~(Linux.PMD_SIZE - 1); h < e; h += Linux.PMD_SIZE) {
            if (v.mm.pt.isTransHuge(h) && (always || h < s || h + Linux.PMD_SIZE > e)) {
                zapHugePmdLocked(v, h);
            }
        }
    }

    /**
     * {@code split_folio()} of the PMD-order folio at cache block hidx (truncate_inode_partial_folio()): every
     * PMD mapping of it is zapped first ({@code unmap_folio()}), the subpages stay in the cache as small folios.
     */
    void splitCacheFolioLocked(Inode inode, long hidx) {
        if (!largeCacheFolioLocked(inode, hidx)) {
            return;
        }
        for (Vma v : new ArrayList<>(inode.mappings)) {
            long a = addrOf(v, hidx);
            if (a >= 0 && (a & (Linux.PMD_SIZE - 1)) == 0 && v.mm.pt.isTransHuge(a)) {
                zapHugePmdLocked(v, a);
            }
        }
        for (long i = hidx; i < hidx + 512; i++) {
            Long e = inode.cache.get(i);
            if (e != null && !Inode.isSwapEntry(e)) {
                k.frames.clearFlags(e, FramePool.PG_LARGE);
            }
        }
    }

    /** Splits the cache folios that [fromIdx, toIdx) covers only partly (punch hole, truncate, page-out). */
    void splitPartialCacheFoliosLocked(Inode inode, long fromIdx, long toIdx) {
        if (inode.hugetlb || fromIdx >= toIdx) {
            return;
        }
        for (long h : edgeBlocks(fromIdx, toIdx, 512)) {
            if ((h < fromIdx || h + 512 > toIdx) && largeCacheFolioLocked(inode, h)) {
                splitCacheFolioLocked(inode, h);
            }
        }
    }

    /**
     * {@code split_folio()} of the anonymous THP mapped in the 2 MiB block of {@code mm} around addr
     * (mm/huge_memory.c: {@code __folio_split()}): the PMD is split, the subpages become order-0 folios, and
     * {@code remap_page(RMP_USE_SHARED_ZEROPAGE)} maps each zero-filled subpage to the shared zero page
     * ({@code try_to_map_unused_to_zeropage()}, keeping uffd-wp and soft-dirty) and frees it.
     */
    void splitFolioLocked(MmStruct mm, long addr) {
        long haddr = addr & ~(Linux.PMD_SIZE - 1);
        PageTable pt = mm.pt;
        pt.splitHuge(haddr);
        List<long[]> subpages = new ArrayList<>();
        pt.forEach(haddr, haddr + Linux.PMD_SIZE, (a, pte) -> {
            if (Pte.isPresent(pte) && !Pte.isZero(pte) && (k.frames.flags(Pte.pfn(pte)) & FramePool.PG_LARGE) != 0) {
                subpages.add(new long[] {a, pte});
            }
        });
        for (long[] sp : subpages) {
            long a = sp[0];
            long pte = sp[1];
            long pfn = Pte.pfn(pte);
            k.frames.clearFlags(pfn, FramePool.PG_LARGE);
            if (k.frames.mapcount(pfn) == 1 && k.frames.isZeroFilled(pfn)) {
                Vma v = mm.findVma(a);
                releasePteLocked(v, pte);
                pt.set(a, Pte.zeroPage() | Pte.ACCESSED | (pte & (Pte.UFFD_WP | Pte.SOFT_DIRTY)));
            }
        }
    }

    private boolean mapsLargeLocked(MmStruct mm, long haddr) {
        boolean[] found = {false};
        mm.pt.forEach(haddr, haddr + Linux.PMD_SIZE, (a, pte) -> {
            if (!found[0] && Pte.isPresent(pte) && !Pte.isZero(pte)
                    && (k.frames.flags(Pte.pfn(pte)) & FramePool.PG_LARGE) != 0) {
                found[0] = true;
            }
        });
        return found[0];
    }

    /** Splits the THPs a partial madvise range touches (madvise_cold_or_pageout / madvise_free on part of a folio). */
    void splitPartialFoliosLocked(MmStruct mm, long s, long e) {
        for (long h : edgeBlocks(s, e, Linux.PMD_SIZE)) {
            if ((h < s || h + Linux.PMD_SIZE > e) && mapsLargeLocked(mm, h)) {
                splitFolioLocked(mm, h);
            }
        }
    }

    /** The aligned blocks of {@code size} holding the first and the last unit of [s, e) (once when it is one). */
    private static long[] edgeBlocks(long s, long e, long size) {
        long first = s & -size;
        long last = (e - 1) & -size;
        return first == last ? new long[] {first} : new long[] {first, last};
    }

    /**
     * MADV_COLLAPSE ({@code madvise_collapse()}, mm/khugepaged.c) on private anonymous memory: each 2 MiB
     * block inside the range becomes a PMD-mapped THP regardless of the sysfs policy, unless a PTE is uffd-wp
     * (SCAN_PTE_UFFD_WP) or the VMA is uffd-armed and a PTE is none (SCAN_EXCEED_NONE_PTE); blocks that are
     * already huge count as done. Fails with the errno of the last failure when some block was not collapsed.
     */
    private void collapseLocked(Vma v, long s, long e) {
        long hstart = (s + Linux.PMD_SIZE - 1) & ~(Linux.PMD_SIZE - 1);
        long hend = e & ~(Linux.PMD_SIZE - 1);
        Errno fail = null;
        for (long h = hstart; h < hend; h += Linux.PMD_SIZE) {
            if (v.mm.pt.isTransHuge(h)) {
                continue;
            }
            if (v.mm.pt.pmdNone(h)) {
                fail = Errno.EINVAL; // SCAN_PMD_NULL
                continue;
            }
            boolean armed = v.uffd != null;
            Errno f = null;
            for (int i = 0; i < 512 && f == null; i++) {
                long pte = v.mm.pt.get(h + ((long) i << Linux.PAGE_SHIFT));
                if (Pte.isUffdWp(pte)) {
                    f = Errno.EINVAL; // SCAN_PTE_UFFD_WP
                } else if ((pte == Pte.NONE || Pte.isZero(pte)) && armed) {
                    f = Errno.EBUSY; // SCAN_EXCEED_NONE_PTE
                } else if (Pte.isMarker(pte)) {
                    f = Errno.EINVAL;
                }
            }
            if (f != null) {
                fail = f;
                continue;
            }
            if (k.frames.freePages() < 512) {
                throw new LinuxException(Errno.ENOMEM, "madvise", 0, "no memory for a huge page"); // SCAN_ALLOC_HUGE_PAGE_FAIL
            }
            for (int i = 0; i < 512; i++) {
                long a = h + ((long) i << Linux.PAGE_SHIFT);
                long old = v.mm.pt.get(a);
                long pfn = k.frames.alloc(FramePool.PG_ANON | FramePool.PG_LARGE);
                if (Pte.isPresent(old) && !Pte.isZero(old)) {
                    k.frames.copyPage(Pte.pfn(old), pfn);
                } else if (Pte.isSwap(old)) {
                    k.frames.restore(pfn, k.swap.read(Pte.slot(old)));
                }
                if (old != Pte.NONE) {
                    releasePteLocked(v, old);
                    v.mm.pt.set(a, Pte.NONE);
                }
                installPteLocked(v, a, pfn, v.canWrite(), false, true);
                k.frames.put(pfn);
            }
            v.mm.pt.setTransHuge(h);
        }
        if (fail != null) {
            throw new LinuxException(fail, "madvise", 0, "MADV_COLLAPSE could not collapse every block");
        }
    }

    long allocAnonLocked(Vma v) {
        if (v.hugetlb) {
            boolean reserved = v.privateResv > 0;
            long pfn = allocHugetlbLocked(v.pageSize, reserved, FramePool.PG_ANON);
            if (pfn >= 0 && reserved) {
                v.privateResv--;
                k.hstate(v.pageSize).resv--;
            }
            return pfn;
        }
        long pfn = k.frames.alloc(FramePool.PG_ANON);
        if (pfn < 0) {
            pfn = reclaimAndAllocLocked(FramePool.PG_ANON);
        }
        return pfn;
    }

    /**
     * Under memory pressure: swap out anonymous pages, then retry (shrink_folio_list). When a memcg's limit
     * refused the allocation only that memcg's own pages are reclaimed ({@code try_to_free_mem_cgroup_pages()});
     * other tenants' pages are never touched for it.
     */
    private long reclaimAndAllocLocked(int flags) {
        MemCgroup refused = FramePool.REFUSED.get();
        if (refused != null) {
            if (reclaimMemcgLocked(refused, MemCgroup.RECLAIM_BATCH) == 0) {
                refused.eventsOom++;
                return -1;
            }
            long pfn = k.frames.alloc(flags);
            if (pfn < 0 && FramePool.REFUSED.get() != null) {
                FramePool.REFUSED.get().eventsOom++;
            }
            return pfn;
        }
        outer:
        for (Task t : k.tasks.values()) {
            for (Vma v : t.mm.vmas.values()) {
                if (!v.isAnonymous() || v.hugetlb) {
                    continue;
                }
                long[] victim = {-1};
                v.mm.pt.forEach(v.start, v.end, (addr, pte) -> {
                    if (victim[0] < 0 && Pte.isPresent(pte) && !Pte.isZero(pte)
                            && k.frames.mapcount(Pte.pfn(pte)) == 1) {
                        victim[0] = addr;
                    }
                });
                if (victim[0] >= 0 && pageoutAnonLocked(v, victim[0])) {
                    break outer;
                }
            }
        }
        return k.frames.alloc(flags);
    }

    /**
     * Reclaims up to {@code nr} anonymous pages charged to {@code cg} (or a memcg below it) by swapping them out,
     * as {@code try_to_free_mem_cgroup_pages()} does; only exclusively mapped pages of the memcg's own processes
     * are taken. Returns the pages freed (0 when there is nothing to reclaim or no swap room).
     */
    int reclaimMemcgLocked(MemCgroup cg, int nr) {
        int freed = 0;
        for (Task t : cg.allTasks()) {
            for (Vma v : new ArrayList<>(t.mm.vmas.values())) {
                if (freed >= nr) {
                    return freed;
                }
                if (!v.isAnonymous() || v.hugetlb) {
                    continue;
                }
                List<Long> victims = new ArrayList<>();
                int want = nr - freed;
                v.mm.pt.forEach(v.start, v.end, (addr, pte) -> {
                    if (victims.size() < want && Pte.isPresent(pte) && !Pte.isZero(pte)) {
                        long pfn = Pte.pfn(pte);
                        MemCgroup owner = k.frames.memcg(pfn);
                        if (k.frames.mapcount(pfn) == 1 && k.frames.refcount(pfn) == 1
                                && (k.frames.flags(pfn) & FramePool.PG_LARGE) == 0 && owner != null
                                && owner.isDescendantOf(cg)) {
                            victims.add(addr);
                        }
                    }
                });
                for (long a : victims) {
                    if (!pageoutAnonLocked(v, a)) {
                        return freed; // swap full or memory.swap.max reached
                    }
                    freed++;
                }
            }
        }
        return freed;
    }

    /**
     * alloc_hugetlb_folio(): a huge page from the pool, charged to the running memcg's hugetlb counter and, when
     * it consumes no reservation ({@code deferred_reserve}), to its hugetlb.rsvd counter too (on the folio). -1
     * when the pool has no page that is not promised to a reservation, or a limit refuses. The caller consumes
     * the reservation once the page is there.
     */
    private long allocHugetlbLocked(long pageSize, boolean reserved, int pgFlags) {
        HugetlbPool h = k.hstate(pageSize);
        if (!reserved && h.available() <= 0) {
            return -1;
        }
        long pfn = k.frames.allocOrder(h.order,
                pgFlags | FramePool.PG_HUGETLB | (reserved ? 0 : FramePool.PG_HUGETLB_RSVD));
        if (pfn >= 0) {
            h.free--;
        }
        return pfn;
    }

    /** A page-cache page for (inode, idx), zero-filled, refcount 1 (the cache's reference); -1 if none. */
    long allocCachePageLocked(Inode inode, long idx) {
        long pfn;
        if (inode.hugetlb) {
            boolean reserved = inode.reserved.contains(idx);
            pfn = allocHugetlbLocked(inode.pageSize, reserved, 0);
            if (pfn < 0) {
                return -1;
            }
            if (reserved) {
                inode.reserved.remove(idx);
                k.hstate(inode.pageSize).resv--;
            }
        } else {
            pfn = k.frames.alloc(FramePool.PG_UPTODATE);
            if (pfn < 0) {
                pfn = reclaimAndAllocLocked(FramePool.PG_UPTODATE);
            }
            if (pfn < 0) {
                return -1;
            }
        }
        inode.cache.put(idx, pfn);
        return pfn;
    }

    /** The frame of a cache entry, swapping a shmem page in when needed; -1 if memory is exhausted. */
    long cachePfnLocked(Inode inode, long idx, long entry) {
        if (!Inode.isSwapEntry(entry)) {
            return entry;
        }
        long slot = Inode.swapSlot(entry);
        long pfn = k.frames.alloc(FramePool.PG_UPTODATE);
        if (pfn < 0) {
            return -1;
        }
        k.frames.restore(pfn, k.swap.read(slot));
        k.frames.setFlags(pfn, FramePool.PG_DIRTY); // shmem_swapin_folio(): dirty once out of the swap cache
        k.swap.free(slot);
        inode.cache.put(idx, pfn);
        return pfn;
    }

    /** Removes a cache entry (truncate_inode_folio): the cache's reference or swap slot goes. */
    private void deleteFromCacheLocked(Inode inode, long idx) {
        Long e = inode.cache.remove(idx);
        if (e == null) {
            return;
        }
        if (Inode.isSwapEntry(e)) {
            k.swap.free(Inode.swapSlot(e));
        } else {
            putPageLocked(e);
        }
    }

    /** The user address of file page idx in mapping v, or -1 if v does not map it. */
    static long addrOf(Vma v, long idx) {
        long off = idx * v.pageSize;
        if (off < v.offset || off >= v.offset + (v.end - v.start)) {
            return -1;
        }
        return v.start + (off - v.offset);
    }

    /** Zaps every mapping of file pages [fromIdx, toIdx) (unmap_mapping_range). */
    private void unmapMappingRangeLocked(Inode inode, long fromIdx, long toIdx, boolean dropMarkers, boolean evenCows) {
        for (Vma v : new ArrayList<>(inode.mappings)) {
            long vFirst = v.offset / v.pageSize;
            long vLast = vFirst + (v.end - v.start) / v.pageSize;
            long a = Math.max(vFirst, fromIdx);
            long b = Math.min(vLast, toIdx);
            if (a < b) {
                zapRangeLocked(v, addrOf(v, a), addrOf(v, b - 1) + v.pageSize, dropMarkers, evenCows);
            }
        }
    }

    /** shmem_truncate_range() / hugetlbfs truncate to {@code newSize}. */
    void truncateLocked(Inode inode, long newSize) {
        long ps = inode.pageSize;
        long firstWhole = pageAlignUp(newSize, ps) / ps;
        // shmem: truncate_pagecache() zaps without ZAP_FLAG_DROP_MARKER, so a wp'd PTE leaves a uffd-wp
        // marker behind (seen on 6.18); hugetlb_vmtruncate() passes ZAP_FLAG_DROP_MARKER
        splitPartialCacheFoliosLocked(inode, newSize / ps, (newSize / ps) + 1);
        unmapMappingRangeLocked(inode, firstWhole, Long.MAX_VALUE / ps, inode.hugetlb, true);
        for (Long idx : new ArrayList<>(inode.cache.tailMap(firstWhole, true).keySet())) {
            deleteFromCacheLocked(inode, idx);
        }
        if (inode.hugetlb) {
            regionDelLocked(inode, firstWhole, Long.MAX_VALUE);
        }
        zeroPartialLocked(inode, newSize, firstWhole * ps);
    }

    /** Zeroes bytes [from, to) of the page cache inside one page (partial-page truncate or punch). */
    private void zeroPartialLocked(Inode inode, long from, long to) {
        if (from >= to) {
            return;
        }
        long idx = from / inode.pageSize;
        Long e = inode.cache.get(idx);
        if (e == null) {
            return;
        }
        long pfn = cachePfnLocked(inode, idx, e);
        if (pfn < 0) {
            return;
        }
        long pos = from;
        byte[] zeros = new byte[(int) Linux.PAGE_SIZE];
        while (pos < to) {
            long inPage = pos - idx * inode.pageSize;
            int sub = (int) (inPage / Linux.PAGE_SIZE);
            int off = (int) (inPage % Linux.PAGE_SIZE);
            int n = (int) Math.min(Linux.PAGE_SIZE - off, to - pos);
            k.frames.write(pfn + sub, off, zeros, 0, n);
            pos += n;
        }
    }

    /** fallocate(PUNCH_HOLE) / MADV_REMOVE: shmem_fallocate() / hugetlbfs_punch_hole(). */
    void punchHoleLocked(Inode inode, long from, long to) {
        long ps = inode.pageSize;
        to = Math.min(to, Math.max(inode.size, from));
        long firstWhole = pageAlignUp(from, ps) / ps;
        long lastWhole = to / ps;
        if (!inode.hugetlb && to < Linux.PAGE_SIZE) {
            // shmem_fallocate() quirk: for a punch inside page 0, unmap_end = round_down(end) - 1 = -1 and
            // unmap_mapping_range() unmaps every page from round_up(start) to the end of the file (seen on 6.18)
            unmapMappingRangeLocked(inode, firstWhole, Long.MAX_VALUE / ps, false, false);
        }
        splitPartialCacheFoliosLocked(inode, from / ps, (to + ps - 1) / ps);
        if (firstWhole < lastWhole) {
            unmapMappingRangeLocked(inode, firstWhole, lastWhole, false, inode.hugetlb);
            for (Long idx : new ArrayList<>(inode.cache.subMap(firstWhole, true, lastWhole, false).keySet())) {
                deleteFromCacheLocked(inode, idx);
            }
            if (inode.hugetlb) {
                regionDelLocked(inode, firstWhole, lastWhole); // remove_inode_hugepages()
            }
        }
        if (from < firstWhole * ps) {
            zeroPartialLocked(inode, from, Math.min(to, firstWhole * ps));
        }
        if (to > lastWhole * ps && lastWhole >= firstWhole) {
            zeroPartialLocked(inode, lastWhole * ps, to);
        }
    }

    // ------------------------------------------------------------------ swap-out

    /** Swaps out one exclusively mapped anonymous page; false when swap is full. */
    boolean pageoutAnonLocked(Vma v, long addr) {
        long pte = v.mm.pt.get(addr);
        long pfn = Pte.pfn(pte);
        long slot = k.swap.swapOut(k.frames.snapshot(pfn), k.frames.memcg(pfn));
        if (slot < 0) {
            return false;
        }
        long n = Pte.swap(slot);
        if ((pte & Pte.UFFD_WP) != 0) {
            n |= Pte.UFFD_WP;
        }
        v.mm.rssAnon--;
        v.mm.swapEnts++;
        unmapPageLocked(pfn);
        v.mm.pt.set(addr, n);
        return true;
    }

    /** Swaps out a shmem page-cache page: unmapped everywhere (markers where wp), then written to swap. */
    boolean pageoutShmemLocked(Inode inode, long idx) {
        Long e = inode.cache.get(idx);
        if (e == null || Inode.isSwapEntry(e)) {
            return false;
        }
        if (!inode.hugetlb && (k.frames.flags(e) & FramePool.PG_LARGE) != 0) {
            splitCacheFolioLocked(inode, idx & ~511L); // shmem_writeout() splits a large folio first
        }
        long pfn = e;
        for (Vma v : new ArrayList<>(inode.mappings)) {
            long a = addrOf(v, idx);
            if (a < 0) {
                continue;
            }
            long pte = v.mm.pt.get(a);
            if (Pte.isPresent(pte) && !Pte.isZero(pte) && Pte.pfn(pte) == pfn) {
                zapRangeLocked(v, a, a + Linux.PAGE_SIZE, false, false);
            }
        }
        if (k.frames.refcount(pfn) != 1) {
            return false;
        }
        if ((k.frames.flags(pfn) & FramePool.PG_DIRTY) == 0) {
            // shrink_folio_list(): a clean shmem folio (only ever read-faulted) is freed, not written out; the
            // offset becomes a hole, with or without swap (seen on 6.18: the next access raised MISSING)
            deleteFromCacheLocked(inode, idx);
            return true;
        }
        long slot = k.swap.swapOut(k.frames.snapshot(pfn), k.frames.memcg(pfn));
        if (slot < 0) {
            return false;
        }
        inode.cache.put(idx, Inode.swapEntry(slot));
        k.frames.put(pfn);
        return true;
    }

    // ------------------------------------------------------------------ mprotect

    /** mprotect(2). */
    public void mprotect(int pid, long addr, long len, int prot) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "mprotect");
            checkProt(prot, "mprotect");
            if ((addr & (Linux.PAGE_SIZE - 1)) != 0) {
                throw LinuxException.einval("mprotect", "unaligned address");
            }
            if (len == 0) {
                return;
            }
            long alen = pageAlignUp(len, Linux.PAGE_SIZE);
            if (alen <= 0 || addr + alen < addr) {
                throw new LinuxException(Errno.ENOMEM, "mprotect", 0, "range overflows");
            }
            long fullEnd = addr + alen;
            // do_mprotect_pkey(): VMAs are changed in order up to the first hole, then ENOMEM
            long end = addr;
            for (Vma v : t.mm.vmasIn(addr, fullEnd)) {
                if (v.start > end) {
                    break;
                }
                end = Math.min(fullEnd, v.end);
            }
            if (end == addr) {
                throw new LinuxException(Errno.ENOMEM, "mprotect", 0, "range not mapped");
            }
            for (Vma v : t.mm.vmasIn(addr, end)) {
                if (v.hugetlb && ((Math.max(addr, v.start) & (v.pageSize - 1)) != 0
                        || (Math.min(end, v.end) & (v.pageSize - 1)) != 0)) {
                    throw LinuxException.einval("mprotect", "hugetlb range not huge page aligned");
                }
                if ((prot & Linux.PROT_WRITE) != 0 && v.shared && !v.mayWrite) {
                    throw new LinuxException(Errno.EACCES, "mprotect", 0, "shared mapping of a read-only fd");
                }
            }
            for (Vma v : t.mm.splitRange(addr, end)) {
                v.prot = prot;
                if ((prot & Linux.PROT_WRITE) == 0) {
                    // change_protection(): whole huge PMDs stay huge (change_huge_pmd), partial ones split
                    v.mm.pt.update(v.start, v.end, pte -> Pte.isPresent(pte) ? pte & ~Pte.WRITE : pte);
                } else if (!v.uffdWp() && !v.hugetlb) {
                    // mm/mprotect.c change_pte_range(): on a writable VMA the kernel upgrades PTEs at once when it
                    // can (shared without writenotify: vm_page_prot is writable; private: can_change_pte_writable()
                    // for an exclusive anon page). Its userfaultfd_pte_wp() veto needs the VMA's WP mode, so a
                    // uffd-wp bit left over from a dropped WP registration becomes writable, the bit kept. Only
                    // those PTEs are upgraded here: for the others the emulated write fault gives the same result.
                    v.mm.pt.update(v.start, v.end, pte -> {
                        if (!Pte.isPresent(pte) || (pte & Pte.UFFD_WP) == 0 || Pte.isZero(pte)) {
                            return pte;
                        }
                        long pfn = Pte.pfn(pte);
                        boolean exclusiveAnon = (k.frames.flags(pfn) & FramePool.PG_ANON) != 0
                                && k.frames.mapcount(pfn) == 1 && k.frames.refcount(pfn) == 1;
                        return v.shared || exclusiveAnon ? pte | Pte.WRITE : pte;
                    });
                }
            }
            t.mm.mergeAround(addr, end);
            if (end < fullEnd) {
                throw new LinuxException(Errno.ENOMEM, "mprotect", 0, "range has a hole");
            }
        } finally {
            k.unlock();
        }
    }

    private static void checkFullyMapped(MmStruct mm, long start, long end, String call) {
        long pos = start;
        for (Vma v : mm.vmasIn(start, end)) {
            if (v.start > pos) {
                throw new LinuxException(Errno.ENOMEM, call, 0, "range has unmapped holes");
            }
            pos = v.end;
        }
        if (pos < end) {
            throw new LinuxException(Errno.ENOMEM, call, 0, "range has unmapped holes");
        }
    }

    // ------------------------------------------------------------------ mremap

    /** mremap(2). */
    public long mremap(int pid, long oldAddr, long oldLen, long newLen, int flags, long newAddr) {
        List<UserfaultfdCtx.Event> events = new ArrayList<>();
        long result;
        k.lock();
        try {
            Task t = k.taskLocked(pid, "mremap");
            result = mremapLocked(t.mm, oldAddr, oldLen, newLen, flags, newAddr, events);
        } finally {
            k.unlock();
        }
        k.uffd.waitEvents(events);
        return result;
    }

    private long mremapLocked(MmStruct mm, long oldAddr, long oldLen, long newLen, int flags, long newAddr,
            List<UserfaultfdCtx.Event> events) {
        if ((flags & ~(Linux.MREMAP_MAYMOVE | Linux.MREMAP_FIXED | Linux.MREMAP_DONTUNMAP)) != 0) {
            throw LinuxException.einval("mremap", "unknown flags");
        }
        if ((flags & Linux.MREMAP_FIXED) != 0 && (flags & Linux.MREMAP_MAYMOVE) == 0) {
            throw LinuxException.einval("mremap", "MREMAP_FIXED without MREMAP_MAYMOVE");
        }
        if ((flags & Linux.MREMAP_DONTUNMAP) != 0 && ((flags & Linux.MREMAP_MAYMOVE) == 0 || oldLen != newLen)) {
            throw LinuxException.einval("mremap", "MREMAP_DONTUNMAP needs MAYMOVE and equal lengths");
        }
        if ((oldAddr & (Linux.PAGE_SIZE - 1)) != 0) {
            throw LinuxException.einval("mremap", "unaligned old address");
        }
        long olen = pageAlignUp(oldLen, Linux.PAGE_SIZE);
        long nlen = pageAlignUp(newLen, Linux.PAGE_SIZE);
        if (nlen == 0 || nlen < 0 || olen < 0 || nlen > Linux.TASK_SIZE) {
            throw LinuxException.einval("mremap", "bad length");
        }
        Vma v = mm.findVma(oldAddr);
        if (v == null) {
            throw new LinuxException(Errno.EFAULT, "mremap", 0, "old address not mapped");
        }
        if (olen == 0) {
            throw LinuxException.einval("mremap", "old_len 0 duplication is not supported");
        }
        if (v.hugetlb && ((oldAddr | olen | nlen) & (v.pageSize - 1)) != 0) {
            throw LinuxException.einval("mremap", "hugetlb lengths not huge page aligned");
        }
        if ((flags & (Linux.MREMAP_FIXED | Linux.MREMAP_DONTUNMAP)) == 0 && nlen == olen) {
            return oldAddr; // MREMAP_NO_RESIZE: nothing to do, the old range is not checked further
        }
        if ((flags & (Linux.MREMAP_FIXED | Linux.MREMAP_DONTUNMAP)) == 0 && nlen < olen) {
            // MREMAP_SHRINK: a plain munmap of the tail, whatever VMAs the old range covers (seen on 6.18)
            unmapRangeLocked(mm, oldAddr + nlen, oldAddr + olen, events, "mremap");
            return oldAddr;
        }
        if (oldAddr + olen > v.end || oldAddr + olen < oldAddr) {
            throw new LinuxException(Errno.EFAULT, "mremap", 0, "old range spans several mappings");
        }
        if (v.hugetlb && nlen > olen) {
            throw LinuxException.einval("mremap", "hugetlb mappings cannot grow (split reservations)");
        }
        if (v.hugetlb && (flags & Linux.MREMAP_DONTUNMAP) != 0) {
            throw LinuxException.einval("mremap", "MREMAP_DONTUNMAP on a VM_DONTEXPAND (hugetlb) mapping");
        }
        if ((flags & Linux.MREMAP_FIXED) != 0) {
            if ((newAddr & (Linux.PAGE_SIZE - 1)) != 0 || newAddr > Linux.TASK_SIZE - nlen) {
                throw LinuxException.einval("mremap", "bad new address");
            }
            if (newAddr < oldAddr + olen && oldAddr < newAddr + nlen) {
                throw LinuxException.einval("mremap", "old and new ranges overlap");
            }
            unmapRangeLocked(mm, newAddr, newAddr + nlen, events, "mremap");
            if (nlen < olen) {
                // mremap_to(): a shrinking move unmaps the old tail first and moves new_len only
                unmapRangeLocked(mm, oldAddr + nlen, oldAddr + olen, events, "mremap");
                return moveVmaLocked(mm, v, oldAddr, nlen, newAddr, nlen, flags, events);
            }
            return moveVmaLocked(mm, v, oldAddr, olen, newAddr, nlen, flags, events);
        }
        if (nlen <= olen && (flags & Linux.MREMAP_DONTUNMAP) == 0) {
            if (nlen < olen) {
                unmapRangeLocked(mm, oldAddr + nlen, oldAddr + olen, events, "mremap");
            }
            return oldAddr;
        }
        if ((flags & Linux.MREMAP_DONTUNMAP) == 0 && oldAddr + olen == v.end
                && mm.vmasIn(v.end, oldAddr + nlen).isEmpty() && oldAddr + nlen <= Linux.TASK_SIZE) {
            growInPlaceLocked(v, oldAddr + nlen);
            return oldAddr;
        }
        if ((flags & Linux.MREMAP_MAYMOVE) == 0) {
            throw new LinuxException(Errno.ENOMEM, "mremap", 0, "cannot grow in place");
        }
        long dst = getUnmappedArea(mm, 0, nlen, v.pageSize);
        return moveVmaLocked(mm, v, oldAddr, olen, dst, nlen, flags, events);
    }

    private void growInPlaceLocked(Vma v, long newEnd) {
        if (v.inode != null && v.inode.anonShared) {
            v.inode.size = Math.max(v.inode.size, v.offset + (newEnd - v.start));
        }
        v.end = newEnd; // never hugetlb: mremap refuses to grow one (EINVAL above)
    }

    /** move_vma(): PTEs move with their wp bits; the uffd registration follows only with EVENT_REMAP. */
    private long moveVmaLocked(MmStruct mm, Vma v, long oldAddr, long olen, long dst, long nlen, int flags,
            List<UserfaultfdCtx.Event> events) {
        UserfaultfdCtx ctx = v.uffd;
        boolean remap = ctx != null && !ctx.released && (ctx.features & Linux.UFFD_FEATURE_EVENT_REMAP) != 0;
        Vma src = mm.splitRange(oldAddr, oldAddr + olen).get(0);
        Vma nv = new Vma(mm, dst, dst + nlen, src.prot, src.shared, src.mayWrite, src.inode, src.offset, src.noreserve);
        if (remap) {
            nv.uffd = src.uffd;
            nv.uffdFlags = src.uffdFlags;
        }
        nv.hugepageAdvice = src.hugepageAdvice;
        nv.nohugepageAdvice = src.nohugepageAdvice;
        if (src.inode != null) {
            src.inode.mappings.add(nv);
            src.inode.refs++;
            if (src.inode.anonShared) {
                src.inode.size = Math.max(src.inode.size, src.offset + nlen);
            }
        }
        if (src.resvMemcg != null) {
            // clear_vma_resv_huge_pages(): the reservation and its charge move with the VMA (a hugetlb VMA moves
            // whole: it never grows, and a shrinking move has unmapped the tail first)
            nv.privateResv = src.privateResv;
            src.privateResv = 0;
            nv.resvMemcg = src.resvMemcg;
            src.resvMemcg = null;
        }
        mm.vmas.put(dst, nv);
        List<long[]> moved = new ArrayList<>();
        mm.pt.forEach(oldAddr, oldAddr + olen, (a, pte) -> moved.add(new long[] {a, pte}));
        List<Long> hugeMoved = new ArrayList<>();
        if (((oldAddr ^ dst) & (Linux.PMD_SIZE - 1)) == 0) {
            // move_huge_pmd(): a huge PMD whose whole extent moves (both ends 2 MiB-aligned) stays huge
            for (long h = (oldAddr + Linux.PMD_SIZE - 1) & ~(Linux.PMD_SIZE - 1); h + Linux.PMD_SIZE <= oldAddr + olen;
                    h += Linux.PMD_SIZE) {
                if (mm.pt.isTransHuge(h)) {
                    hugeMoved.add(dst + (h - oldAddr));
                }
            }
        }
        for (long[] m : moved) {
            mm.pt.set(m[0], Pte.NONE);
            long pte = m[1];
            if (!remap) {
                pte = Pte.clearUffdWp(pte);
                if (pte == Pte.NONE) {
                    continue;
                }
            }
            mm.pt.set(dst + (m[0] - oldAddr), pte);
        }
        for (long h : hugeMoved) {
            mm.pt.setTransHuge(h);
        }
        if (remap) {
            events.add(k.uffd.queueEventLocked(ctx, Linux.UFFD_EVENT_REMAP, oldAddr, dst, olen, null, null));
        }
        if ((flags & Linux.MREMAP_DONTUNMAP) == 0) {
            unmapRangeLocked(mm, oldAddr, oldAddr + olen, events, "mremap");
        } else {
            mm.mergeAround(oldAddr, oldAddr + olen); // the emptied old range keeps its flags and rejoins
        }
        mm.mergeAround(dst, dst + nlen);
        return dst;
    }

    // ------------------------------------------------------------------ madvise

    /** madvise(2). */
    public void madvise(int pid, long addr, long len, int advice) {
        if (!k.profile.madviseKnown(advice)) {
            throw LinuxException.einval("madvise", "advice " + advice + " unknown to Linux " + k.profile.version());
        }
        if ((addr & (Linux.PAGE_SIZE - 1)) != 0) {
            throw LinuxException.einval("madvise", "unaligned address");
        }
        long alen = pageAlignUp(len, Linux.PAGE_SIZE);
        if (len < 0 || alen < 0 || addr + alen < addr) {
            throw LinuxException.einval("madvise", "range overflows");
        }
        switch (advice) {
            case Linux.MADV_NORMAL, Linux.MADV_RANDOM, Linux.MADV_SEQUENTIAL, Linux.MADV_WILLNEED,
                    Linux.MADV_DONTFORK, Linux.MADV_DOFORK, Linux.MADV_COLD -> {
                simpleAdvice(pid, addr, alen, advice);
                return;
            }
            case Linux.MADV_DONTNEED, Linux.MADV_FREE -> {
                zapAdvice(pid, addr, alen, advice);
                return;
            }
            case Linux.MADV_REMOVE -> {
                removeAdvice(pid, addr, alen);
                return;
            }
            case Linux.MADV_PAGEOUT, Linux.MADV_HUGEPAGE, Linux.MADV_NOHUGEPAGE, Linux.MADV_COLLAPSE,
                    Linux.MADV_GUARD_INSTALL, Linux.MADV_GUARD_REMOVE -> {
                simpleAdvice(pid, addr, alen, advice);
                return;
            }
            case Linux.MADV_POPULATE_READ, Linux.MADV_POPULATE_WRITE -> {
                if (alen == 0) {
                    return;
                }
                // madvise_populate(): pages before a hole (or a VMA it cannot fault) are populated first
                k.faults.populate(pid, addr, alen, "madvise", advice == Linux.MADV_POPULATE_WRITE);
                return;
            }
            default -> throw LinuxException.einval("madvise", "unknown advice " + advice);
        }
    }

    private void simpleAdvice(int pid, long addr, long alen, int advice) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "madvise");
            if (alen == 0) {
                return;
            }
            long end = addr + alen;
            List<Vma> vs = t.mm.vmasIn(addr, end);
            for (Vma v : vs) {
                boolean bad = switch (advice) {
                    case Linux.MADV_PAGEOUT, Linux.MADV_COLD, Linux.MADV_HUGEPAGE, Linux.MADV_NOHUGEPAGE,
                            Linux.MADV_COLLAPSE, Linux.MADV_GUARD_INSTALL -> v.hugetlb;
                    default -> false;
                };
                if (bad) {
                    throw LinuxException.einval("madvise", "not supported on hugetlb");
                }
            }
            for (Vma v : vs) {
                long s = Math.max(addr, v.start);
                long e = Math.min(end, v.end);
                switch (advice) {
                    case Linux.MADV_PAGEOUT -> {
                        splitPartialFoliosLocked(v.mm, s, e);
                        if (v.isAnonymous() && k.swap.capacityPages() - k.swap.usedPages() < 512) {
                            // shrink_folio_list(): add_to_swap() of a large folio fails, so it is split
                            for (long h = (s + Linux.PMD_SIZE - 1) & ~(Linux.PMD_SIZE - 1); h + Linux.PMD_SIZE <= e;
                                    h += Linux.PMD_SIZE) {
                                if (mapsLargeLocked(v.mm, h)) {
                                    splitFolioLocked(v.mm, h);
                                }
                            }
                        }
                        pageoutRangeLocked(v, s, e);
                    }
                    case Linux.MADV_COLD -> splitPartialFoliosLocked(v.mm, s, e);
                    case Linux.MADV_COLLAPSE -> {
                        if (v.isAnonymous() && !v.shared) {
                            if (v.nohugepageAdvice) {
                                throw LinuxException.einval("madvise", "VM_NOHUGEPAGE");
                            }
                            collapseLocked(v, s, e);
                        }
                    }
                    case Linux.MADV_HUGEPAGE, Linux.MADV_NOHUGEPAGE -> {
                        for (Vma part : t.mm.splitRange(s, e)) {
                            part.hugepageAdvice = advice == Linux.MADV_HUGEPAGE;
                            part.nohugepageAdvice = advice == Linux.MADV_NOHUGEPAGE;
                        }
                    }
                    case Linux.MADV_GUARD_INSTALL -> {
                        zapRangeLocked(v, s, e, true, true);
                        for (long a = s; a < e; a += Linux.PAGE_SIZE) {
                            v.mm.pt.set(a, Pte.marker(Pte.MARKER_GUARD, false));
                        }
                    }
                    case Linux.MADV_GUARD_REMOVE -> v.mm.pt.forEach(s, e, (a, pte) -> {
                        if (Pte.isGuardMarker(pte)) {
                            v.mm.pt.set(a, Pte.NONE);
                        }
                    });
                    default -> {
                    }
                }
            }
            t.mm.mergeAround(addr, end);
            checkFullyMapped(t.mm, addr, end, "madvise");
        } finally {
            k.unlock();
        }
    }

    private void pageoutRangeLocked(Vma v, long s, long e) {
        if (v.isAnonymous()) {
            List<Long> addrs = new ArrayList<>();
            v.mm.pt.forEach(s, e, (a, pte) -> {
                if (Pte.isPresent(pte) && !Pte.isZero(pte) && k.frames.mapcount(Pte.pfn(pte)) == 1) {
                    addrs.add(a);
                }
            });
            for (long a : addrs) {
                if (!pageoutAnonLocked(v, a)) {
                    return;
                }
            }
            return;
        }
        List<long[]> work = new ArrayList<>();
        v.mm.pt.forEach(s, e, (a, pte) -> {
            if (Pte.isPresent(pte) && !Pte.isZero(pte)) {
                work.add(new long[] {a, Pte.pfn(pte)});
            }
        });
        for (long[] w : work) {
            long a = w[0];
            long pfn = w[1];
            if ((k.frames.flags(pfn) & FramePool.PG_ANON) != 0) {
                if (k.frames.mapcount(pfn) == 1 && !pageoutAnonLocked(v, a)) {
                    return;
                }
            } else if (v.inode != null) {
                long idx = v.pgoff(a);
                Long entry = v.inode.cache.get(idx);
                if (entry != null && entry == pfn && k.frames.mapcount(pfn) == 1) {
                    pageoutShmemLocked(v.inode, idx);
                }
            }
        }
    }

    /** MADV_DONTNEED / MADV_FREE: REMOVE event first (userfaultfd_remove()), then zap. */
    private void zapAdvice(int pid, long addr, long alen, int advice) {
        if (alen == 0) {
            k.lock();
            try {
                k.taskLocked(pid, "madvise");
            } finally {
                k.unlock();
            }
            return;
        }
        long end = addr + alen;
        List<UserfaultfdCtx.Event> events = new ArrayList<>();
        k.lock();
        try {
            Task t = k.taskLocked(pid, "madvise");
            for (Vma v : t.mm.vmasIn(addr, end)) {
                if (advice == Linux.MADV_FREE && !v.isAnonymous()) {
                    throw LinuxException.einval("madvise", "MADV_FREE needs private anonymous memory");
                }
                if (v.hugetlb && (Math.max(addr, v.start) & (v.pageSize - 1)) != 0) {
                    throw LinuxException.einval("madvise", "hugetlb range not huge page aligned");
                }
            }
            for (Vma v : t.mm.vmasIn(addr, end)) {
                if (v.uffd != null && !v.uffd.released && (v.uffd.features & Linux.UFFD_FEATURE_EVENT_REMOVE) != 0) {
                    events.add(k.uffd.queueEventLocked(v.uffd, Linux.UFFD_EVENT_REMOVE, Math.max(addr, v.start),
                            Math.min(end, v.end), 0, null, null));
                }
            }
            if (events.isEmpty()) {
                zapAdviceLocked(t, addr, end, advice);
                checkFullyMapped(t.mm, addr, end, "madvise");
                return;
            }
        } finally {
            k.unlock();
        }
        k.uffd.waitEvents(events);
        k.lock();
        try {
            Task t = k.taskLocked(pid, "madvise");
            zapAdviceLocked(t, addr, end, advice);
            checkFullyMapped(t.mm, addr, end, "madvise");
        } finally {
            k.unlock();
        }
    }

    private void zapAdviceLocked(Task t, long addr, long end, int advice) {
        for (Vma v : t.mm.vmasIn(addr, end)) {
            long s = Math.max(addr, v.start);
            long e = Math.min(end, v.end);
            if (advice == Linux.MADV_FREE) {
                lazyfreeRangeLocked(v, s, e);
                continue;
            }
            if (v.hugetlb) {
                e = e & ~(v.pageSize - 1);
                if (e <= s) {
                    continue;
                }
            }
            zapRangeLocked(v, s, e, false, true);
            if (e - s >= Linux.PMD_SIZE) {
                v.mm.pt.freeEmptyTables(s, e);
            }
        }
    }

    /**
     * MADV_FREE ({@code madvise_free_pte_range()}): present pages stay mapped, only marked clean (lazily
     * freed under memory pressure, which the emulator does not model), so their uffd-wp bit survives; swap
     * entries are freed and poison markers cleared (both become none); uffd-wp markers stay.
     */
    private void lazyfreeRangeLocked(Vma v, long s, long e) {
        PageTable pt = v.mm.pt;
        splitPartialFoliosLocked(v.mm, s, e);
        pt.forEach(s, e, (a, pte) -> {
            if (Pte.isPresent(pte)) {
                pt.set(a, pte & ~Pte.DIRTY);
            } else if (Pte.isSwap(pte)) {
                releasePteLocked(v, pte);
                pt.set(a, Pte.NONE);
            } else if (Pte.isPoisonMarker(pte)) {
                pt.set(a, Pte.NONE);
            }
        });
    }

    /** MADV_REMOVE: REMOVE event, then punch the hole in the file (shared writable mappings only). */
    private void removeAdvice(int pid, long addr, long alen) {
        long end = addr + alen;
        List<UserfaultfdCtx.Event> events = new ArrayList<>();
        k.lock();
        try {
            Task t = k.taskLocked(pid, "madvise");
            if (alen == 0) {
                return;
            }
            if (t.mm.vmasIn(addr, end).isEmpty()) {
                throw new LinuxException(Errno.ENOMEM, "madvise", 0, "range not mapped");
            }
            for (Vma v : t.mm.vmasIn(addr, end)) {
                if (v.inode == null) {
                    throw LinuxException.einval("madvise", "MADV_REMOVE needs a file mapping");
                }
                if (!v.shared || !v.mayWrite) { // vma_is_shared_maywrite(): PROT_WRITE is not needed
                    throw new LinuxException(Errno.EACCES, "madvise", 0, "MADV_REMOVE on a read-only mapping");
                }
                if (v.uffd != null && !v.uffd.released && (v.uffd.features & Linux.UFFD_FEATURE_EVENT_REMOVE) != 0) {
                    events.add(k.uffd.queueEventLocked(v.uffd, Linux.UFFD_EVENT_REMOVE, Math.max(addr, v.start),
                            Math.min(end, v.end), 0, null, null));
                }
            }
        } finally {
            k.unlock();
        }
        k.uffd.waitEvents(events);
        k.lock();
        try {
            Task t = k.taskLocked(pid, "madvise");
            for (Vma v : t.mm.vmasIn(addr, end)) {
                long s = Math.max(addr, v.start);
                long e = Math.min(end, v.end);
                long off = v.offset + (s - v.start);
                punchHoleLocked(v.inode, off, off + (e - s));
            }
            // madvise_walk_vmas(): holes are skipped and reported as ENOMEM once the mapped parts are done
            checkFullyMapped(t.mm, addr, end, "madvise");
        } finally {
            k.unlock();
        }
    }

    // ------------------------------------------------------------------ fork

    /**
     * dup_mmap(): copies VMAs and, where {@code vma_needs_copy()}, PTEs (COW for private pages). Returns the
     * parent ctx → child ctx map for EVENT_FORK ({@code dup_userfaultfd()}).
     */
    Map<UserfaultfdCtx, UserfaultfdCtx> dupMmapLocked(MmStruct parent, MmStruct child) {
        Map<UserfaultfdCtx, UserfaultfdCtx> forked = new LinkedHashMap<>();
        for (Vma pv : parent.vmas.values()) {
            Vma cv = pv.copyFor(child);
            UserfaultfdCtx pctx = pv.uffd;
            if (pctx != null && !pctx.released && (pctx.features & Linux.UFFD_FEATURE_EVENT_FORK) != 0) {
                cv.uffd = forked.computeIfAbsent(pctx, c -> k.uffd.forkCtxLocked(c, child));
            } else {
                cv.uffd = null;
                cv.uffdFlags = 0;
            }
            if (pv.hugetlb && !pv.shared && !pv.noreserve) {
                // hugetlb_dup_vma_private(): the child owns no reservation, so none is charged to it; its faults
                // are charged to hugetlb.rsvd as they allocate
                cv.privateResv = 0;
                cv.resvMemcg = null;
            }
            if (cv.inode != null) {
                cv.inode.mappings.add(cv);
                cv.inode.refs++;
            }
            child.vmas.put(cv.start, cv);
            boolean needsCopy = cv.uffdWp() || pv.isAnonymous() || !pv.shared;
            if (!needsCopy) {
                continue;
            }
            // (address, pte) pairs collected first, flat: one long[] per entry was most of a 1 GiB fork's garbage
            long[][] buf = {new long[64]};
            int[] n = {0};
            parent.pt.forEach(pv.start, pv.end, (a, pte) -> {
                if (n[0] + 2 > buf[0].length) {
                    buf[0] = java.util.Arrays.copyOf(buf[0], buf[0].length * 2);
                }
                buf[0][n[0]++] = a;
                buf[0][n[0]++] = pte;
            });
            long[] entries = buf[0];
            List<Long> hugePmds = new ArrayList<>();
            for (long h = (pv.start + Linux.PMD_SIZE - 1) & ~(Linux.PMD_SIZE - 1); h + Linux.PMD_SIZE <= pv.end;
                    h += Linux.PMD_SIZE) {
                if (parent.pt.isTransHuge(h)) {
                    hugePmds.add(h); // copy_huge_pmd(): the child maps the same huge folio, both write-protected
                }
            }
            for (int e = 0; e < n[0]; e += 2) {
                long a = entries[e];
                long pte = entries[e + 1];
                long cpte = pte;
                if (!pv.isAnonymous() && parent.pt.isTransHuge(a)) {
                    continue; // copy_huge_pmd(): a file THP is not copied, the child faults it in again
                }
                if (Pte.isMarker(pte)) {
                    long bits = pte & (Pte.MARKER_POISONED | Pte.MARKER_GUARD);
                    if (Pte.isUffdWp(pte) && cv.uffdWp()) {
                        bits |= Pte.MARKER_UFFD_WP;
                    }
                    if (bits != 0) {
                        child.pt.set(a, Pte.marker(bits, pv.hugetlb));
                    }
                    continue;
                }
                if (Pte.isSwap(pte)) {
                    k.swap.dup(Pte.slot(pte));
                    child.swapEnts++;
                } else if (Pte.isPresent(pte) && !Pte.isZero(pte)) {
                    long pfn = Pte.pfn(pte);
                    boolean anon = (k.frames.flags(pfn) & FramePool.PG_ANON) != 0;
                    if (anon || !pv.shared) {
                        parent.pt.setKeepHuge(a, pte & ~Pte.WRITE);
                        cpte = pte & ~Pte.WRITE;
                    }
                    k.frames.map(pfn);
                    long pages = pv.pageSize / Linux.PAGE_SIZE;
                    if (anon) {
                        child.rssAnon += pages;
                    } else {
                        child.rssShmem += pages;
                    }
                }
                if (!cv.uffdWp()) {
                    cpte = Pte.clearUffdWp(cpte);
                }
                child.pt.set(a, cpte);
            }
            for (long h : hugePmds) {
                if (pv.isAnonymous()) {
                    child.pt.setTransHuge(h);
                }
            }
        }
        return forked;
    }
}
