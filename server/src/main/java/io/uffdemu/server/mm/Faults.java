package io.uffdemu.server.mm;

/**
 * The fault path: analogue of {@code mm/memory.c: handle_mm_fault()} with {@code do_anonymous_page()},
 * {@code do_wp_page()}, {@code do_swap_page()}, {@code do_fault()}, {@code mm/shmem.c: shmem_get_folio_gfp()},
 * {@code mm/hugetlb.c: hugetlb_fault()}, and {@code fs/userfaultfd.c: handle_userfault()}.
 *
 * <p>{@link #access} runs one load or store as the faulting thread: it faults each page in under the kernel
 * lock; when a userfaultfd must handle the fault it queues a message, drops the lock and waits to be woken,
 * then retries the fault, exactly as a thread blocked in {@code handle_userfault()} does.
 */
public final class Faults {
    private final Kernel k;

    Faults(Kernel k) {
        this.k = k;
    }

    static final int OK = 0, SIGNAL = 1, ERRNO = 2, USERFAULT = 3, RETRY = 4, SPIN = 5;

    /** Result of one fault attempt (one per accessing thread; not shared). */
    static final class Outcome {
        int kind;
        int sig;
        int code;
        Errno errno;
        UserfaultfdCtx.Fault fault;
        long pte;
        Vma vma;
        /** Set by the fault path when WP_ASYNC resolved a write to a wp PTE (no message; the bit is cleared). */
        boolean wpAsyncCleared;

        int ok(Vma v, long pte) {
            this.vma = v;
            this.pte = pte;
            return kind = OK;
        }

        int signal(int s, int c) {
            sig = s;
            code = c;
            return kind = SIGNAL;
        }

        int errno(Errno e) {
            errno = e;
            return kind = ERRNO;
        }

        int userfault(UserfaultfdCtx.Fault f) {
            fault = f;
            return kind = USERFAULT;
        }

        int retry() {
            return kind = RETRY;
        }

        /** The fault returned without progress and will be taken again and again (a kernel livelock). */
        int spin() {
            return kind = SPIN;
        }
    }

    /**
     * One load or store of {@code len} bytes at {@code addr} by a thread of process {@code pid}. Blocks
     * while a userfaultfd handles faults; {@code deadlineNanos} ({@link System#nanoTime()} based, or
     * {@link Long#MAX_VALUE}) bounds the wait, after which the fault is abandoned and ETIMEDOUT thrown.
     */
    public AccessResult access(int pid, long addr, int len, boolean write, byte[] data, AccessMode mode,
            long deadlineNanos) throws InterruptedException {
        if (len < 0 || (write && data == null)) {
            throw LinuxException.einval("access", "bad length");
        }
        if (write) {
            len = data.length;
        }
        if (addr < 0 || addr + len < addr || addr + len > (1L << 47)) {
            return fail(mode, addr, Linux.SEGV_MAPERR);
        }
        byte[] out = write ? null : new byte[len];
        int tid = k.nextTid.incrementAndGet();
        Outcome o = new Outcome();
        long pos = addr;
        long end = addr + len;
        while (pos < end || (len == 0 && pos == addr)) {
            k.lock();
            try {
                Task t = k.taskLocked(pid, "access");
                faultLocked(t.mm, pos, write, mode, tid, o);
                if (o.kind == OK) {
                    if (len == 0) {
                        return AccessResult.ok(out);
                    }
                    int n = (int) Math.min(Linux.PAGE_SIZE - (pos & (Linux.PAGE_SIZE - 1)), end - pos);
                    long sub = (pos - (pos & ~(o.vma.pageSize - 1))) >>> Linux.PAGE_SHIFT;
                    long pfn = Pte.isZero(o.pte) ? FramePool.ZERO_PFN : Pte.pfn(o.pte) + sub;
                    int off = (int) (pos & (Linux.PAGE_SIZE - 1));
                    if (write) {
                        k.frames.write(pfn, off, data, (int) (pos - addr), n);
                    } else {
                        k.frames.read(pfn, off, out, (int) (pos - addr), n);
                    }
                    pos += n;
                    continue;
                }
                if (o.kind == SIGNAL) {
                    return AccessResult.signal(o.sig, o.code, pos);
                }
                if (o.kind == ERRNO) {
                    return AccessResult.error(o.errno, pos);
                }
                if (o.kind == RETRY) {
                    continue;
                }
            } finally {
                k.unlock();
            }
            if (o.kind == SPIN) {
                spinWait(deadlineNanos);
                continue;
            }
            waitFault(o.fault, deadlineNanos);
        }
        return AccessResult.ok(out);
    }

    private static AccessResult fail(AccessMode mode, long addr, int segvCode) {
        return mode == AccessMode.USER ? AccessResult.signal(Linux.SIGSEGV, segvCode, addr)
                : AccessResult.error(mode == AccessMode.PROC_MEM ? Errno.EIO : Errno.EFAULT, addr);
    }

    /** A livelocked fault ({@link Outcome#spin}): pause briefly before taking it again; ETIMEDOUT on the deadline. */
    private static void spinWait(long deadlineNanos) throws InterruptedException {
        if (deadlineNanos != Long.MAX_VALUE && System.nanoTime() - deadlineNanos >= 0) {
            throw new LinuxException(Errno.ETIMEDOUT, "access", 0, "the fault makes no progress (livelock)");
        }
        Thread.sleep(1);
    }

    /** Waits until the fault is woken; on deadline or interrupt, withdraws it from its ctx. */
    void waitFault(UserfaultfdCtx.Fault f, long deadlineNanos) throws InterruptedException {
        boolean woken;
        try {
            woken = Kernel.await(f.woken, deadlineNanos);
        } catch (InterruptedException e) {
            withdraw(f);
            throw e;
        }
        if (!woken) {
            withdraw(f);
            throw new LinuxException(Errno.ETIMEDOUT, "access", 0, "userfault not resolved before the deadline");
        }
    }

    private void withdraw(UserfaultfdCtx.Fault f) {
        k.lock();
        try {
            boolean wasRead = f.read;
            if (f.ctx.unlink(f)) {
                f.ctx.countUserfaults(wasRead ? 0 : -1, -1);
            }
        } finally {
            k.unlock();
        }
    }

    /**
     * MADV_POPULATE_READ/WRITE and MAP_POPULATE: faults every page in as GUP would (not a user access),
     * blocking on userfaults. {@code call} null = MAP_POPULATE (errors ignored by the caller).
     */
    public void populate(int pid, long start, long len, String call, boolean write) {
        Outcome o = new Outcome();
        int tid = k.nextTid.incrementAndGet();
        long pos = start;
        long end = start + len;
        String c = call == null ? "mmap" : call;
        while (pos < end) {
            k.lock();
            try {
                Task t = k.taskLocked(pid, c);
                Vma v = t.mm.findVma(pos);
                if (v == null) {
                    throw new LinuxException(Errno.ENOMEM, c, 0, "range not mapped");
                }
                if (call != null && (write ? !v.canWrite() : !v.isAccessible())) {
                    throw LinuxException.einval(c, "mapping does not allow this access");
                }
                faultLocked(t.mm, pos, write, AccessMode.KERNEL, tid, o);
                switch (o.kind) {
                    case OK -> {
                        pos = (pos & ~(v.pageSize - 1)) + v.pageSize;
                        continue;
                    }
                    case SIGNAL, ERRNO -> throw new LinuxException(Errno.EFAULT, c, 0, "populate failed");
                    case RETRY -> {
                        continue;
                    }
                    default -> {
                    }
                }
            } finally {
                k.unlock();
            }
            if (o.kind == SPIN) {
                try {
                    spinWait(Long.MAX_VALUE);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new LinuxException(Errno.EINTR, c);
                }
                continue;
            }
            try {
                waitFault(o.fault, Long.MAX_VALUE);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new LinuxException(Errno.EINTR, c);
            }
        }
    }

    // ------------------------------------------------------------------ handle_mm_fault

    /** Test hooks that break the wp fault path on purpose, to prove the wp-write ledger catches it. */
    static final int BREAK_NONE = 0, BREAK_WP_IGNORED = 1, BREAK_SWAPIN_DROPS_WP = 2;
    /** One of the BREAK_* hooks; only tests set it. */
    volatile int testBreakage = BREAK_NONE;

    /**
     * {@link #handleMmFaultLocked}, plus the debug wp-write ledger: when the page's PTE (or marker) is uffd-wp in
     * a WP-armed VMA as a write's fault attempt starts, the attempt must end in a userfault, a signal or an
     * errno, in WP_ASYNC clearing the bit, or (a retry) with the PTE still uffd-wp; otherwise
     * {@link InvariantChecker} fails at unlock.
     */
    int faultLocked(MmStruct mm, long addr, boolean write, AccessMode mode, int tid, Outcome o) {
        if (!write || !k.config.checkInvariants()) {
            return handleMmFaultLocked(mm, addr, write, mode, tid, o);
        }
        Vma v = mm.findVma(addr);
        long base = v == null ? 0 : addr & ~(v.pageSize - 1);
        long before = v == null ? Pte.NONE : mm.pt.get(base);
        // a present, writable PTE takes no fault whatever its uffd-wp bit (a leftover bit made writable by
        // mprotect or reuse while the VMA had no WP mode, as on the kernel): only protected ones are armed
        boolean armed = v != null && v.uffdWp() && Pte.isUffdWp(before)
                && !(Pte.isPresent(before) && Pte.isWritable(before));
        o.wpAsyncCleared = false;
        int kind = handleMmFaultLocked(mm, addr, write, mode, tid, o);
        if (armed) {
            InvariantChecker.recordWpWrite(k, mm, v, addr, kind, o.wpAsyncCleared, mm.pt.get(base));
        }
        return kind;
    }

    /** Fault one page in (or decide a userfault / signal). Caller holds the lock. */
    int handleMmFaultLocked(MmStruct mm, long addr, boolean write, AccessMode mode, int tid, Outcome o) {
        Vma v = mm.findVma(addr);
        boolean user = mode == AccessMode.USER;
        if (v == null) {
            return user ? o.signal(Linux.SIGSEGV, Linux.SEGV_MAPERR) : o.errno(kernelErrno(mode));
        }
        boolean force = mode == AccessMode.PROC_MEM;
        if (write && !v.canWrite() && !(force && !v.shared)) {
            return user ? o.signal(Linux.SIGSEGV, Linux.SEGV_ACCERR) : o.errno(kernelErrno(mode));
        }
        // x86 access_error(): a read needs only vma_is_accessible() (PROT_WRITE or PROT_EXEC imply read)
        if (!write && !v.isAccessible() && !force) {
            return user ? o.signal(Linux.SIGSEGV, Linux.SEGV_ACCERR) : o.errno(kernelErrno(mode));
        }
        long base = addr & ~(v.pageSize - 1);
        long pte = mm.pt.get(base);
        if (Pte.isMarker(pte)) {
            if (Pte.isGuardMarker(pte)) {
                return user ? o.signal(Linux.SIGSEGV, Linux.SEGV_MAPERR) : o.errno(kernelErrno(mode));
            }
            if (Pte.isPoisonMarker(pte)) {
                return user ? o.signal(Linux.SIGBUS, Linux.BUS_ADRERR) : o.errno(kernelErrno(mode));
            }
            if (!v.uffdWp()) {
                mm.pt.set(base, Pte.NONE); // stale marker: cleaned up lazily on fault
                pte = Pte.NONE;
            }
        }
        if (Pte.isPresent(pte)) {
            return presentFaultLocked(v, base, addr, pte, write, mode, tid, o);
        }
        if (Pte.isSwap(pte)) {
            return swapInLocked(v, base, pte, o);
        }
        boolean wpMarker = Pte.isMarker(pte) && Pte.isUffdWp(pte);
        if (v.isAnonymous()) {
            return anonFaultLocked(v, base, addr, write, wpMarker, mode, tid, o);
        }
        return fileFaultLocked(v, base, addr, write, wpMarker, mode, tid, o);
    }

    private static Errno kernelErrno(AccessMode mode) {
        return mode == AccessMode.PROC_MEM ? Errno.EIO : Errno.EFAULT;
    }

    private int presentFaultLocked(Vma v, long base, long addr, long pte, boolean write, AccessMode mode, int tid,
            Outcome o) {
        MmStruct mm = v.mm;
        if (!write) {
            mm.pt.set(base, pte | Pte.ACCESSED);
            return o.ok(v, pte);
        }
        if (Pte.isWritable(pte)) {
            // the MMU takes no fault on a writable PTE, whatever its uffd-wp bit (a leftover bit, see below)
            pte |= Pte.DIRTY | Pte.ACCESSED | Pte.SOFT_DIRTY;
            mm.pt.set(base, pte);
            return o.ok(v, pte);
        }
        if ((pte & Pte.UFFD_WP) != 0 && v.uffdWp() && testBreakage != BREAK_WP_IGNORED) {
            if (mode == AccessMode.PROC_MEM) {
                return o.errno(Errno.EIO);
            }
            if (!v.uffdWpAsync()) {
                return userfaultLocked(v, addr, Linux.UFFD_PAGEFAULT_FLAG_WRITE | Linux.UFFD_PAGEFAULT_FLAG_WP,
                        mode, tid, o);
            }
            o.wpAsyncCleared = true;
            pte = Pte.clearUffdWp(pte); // mm/memory.c do_wp_page(): WP_ASYNC resolves by clearing the bit
            mm.pt.set(base, pte);
        }
        if (v.hugetlb && (pte & Pte.UFFD_WP) != 0) {
            // mm/hugetlb.c: hugetlb_fault() hands uffd-wp to the handler only when userfaultfd_wp(vma), and
            // hugetlb_wp() "never handle[s] CoW for uffd-wp protected pages" (returns 0, PTE unchanged): with the
            // VMA's WP mode gone the write faults again and again until WP mode comes back or the bit goes
            return o.spin();
        }
        // A leftover bit on a VMA that lost WP mode (re-REGISTER without WP) is kept: do_wp_page() checks
        // userfaultfd_pte_wp(), which needs the VMA's WP mode, then wp_page_reuse() makes orig_pte (bit included)
        // writable; only wp_page_copy() (COW) installs a fresh PTE without it. pagemap keeps showing bit 57.
        boolean makeWritable = v.canWrite();
        if (!v.hugetlb && !v.isAnonymous() && mm.pt.isTransHuge(base)) {
            // wp_huge_pmd() on a file PMD: split (for a file, zap) and fall back to a PTE fault (COW in a private
            // mapping, write-notify in a shared one)
            k.vm.zapHugePmdLocked(v, base & ~(Linux.PMD_SIZE - 1));
            return o.retry();
        }
        if (!v.hugetlb && mm.pt.isTransHuge(base) && hugeWpFaultLocked(v, base, pte, makeWritable)) {
            return o.ok(v, mm.pt.get(base));
        }
        if (Pte.isZero(pte)) {
            return cowLocked(v, base, pte, makeWritable, o);
        }
        long pfn = Pte.pfn(pte);
        boolean anon = (k.frames.flags(pfn) & FramePool.PG_ANON) != 0;
        if (v.shared && !anon) {
            pte |= (makeWritable ? Pte.WRITE : 0) | Pte.DIRTY | Pte.ACCESSED;
            k.frames.setFlags(pfn, FramePool.PG_DIRTY);
            mm.pt.set(base, pte);
            return o.ok(v, pte);
        }
        if (anon && k.frames.mapcount(pfn) == 1 && k.frames.refcount(pfn) == 1) {
            pte |= (makeWritable ? Pte.WRITE : 0) | Pte.DIRTY | Pte.ACCESSED;
            mm.pt.set(base, pte);
            return o.ok(v, pte);
        }
        return cowLocked(v, base, pte, makeWritable, o);
    }

    /**
     * {@code do_huge_pmd_wp_page()} on a PMD-mapped THP (already past the uffd-wp check): a write to the huge
     * zero page gets a fresh huge folio ({@code do_huge_zero_wp_pmd()}); an exclusively mapped huge folio is
     * reused whole (writable, dirty, still one PMD). False = fall back: the caller splits by changing one PTE
     * and copies 4 KiB, as the kernel does after {@code __split_huge_pmd()}.
     */
    private boolean hugeWpFaultLocked(Vma v, long base, long pte, boolean makeWritable) {
        PageTable pt = v.mm.pt;
        long haddr = base & ~(Linux.PMD_SIZE - 1);
        int n = (int) (Linux.PMD_SIZE >>> Linux.PAGE_SHIFT);
        if (Pte.isZero(pte)) {
            if (k.frames.freePages() < n) {
                return false;
            }
            for (int i = 0; i < n; i++) {
                long a = haddr + ((long) i << Linux.PAGE_SHIFT);
                long pfn = k.frames.alloc(FramePool.PG_ANON | FramePool.PG_LARGE);
                pt.setKeepHuge(a, Pte.NONE);
                k.vm.installPteLocked(v, a, pfn, makeWritable, false, true);
                k.frames.put(pfn);
            }
            pt.setTransHuge(haddr);
            return true;
        }
        for (int i = 0; i < n; i++) {
            long p = pt.get(haddr + ((long) i << Linux.PAGE_SHIFT));
            if (!Pte.isPresent(p) || Pte.isZero(p) || (k.frames.flags(Pte.pfn(p)) & FramePool.PG_ANON) == 0
                    || k.frames.mapcount(Pte.pfn(p)) != 1 || k.frames.refcount(Pte.pfn(p)) != 1) {
                return false;
            }
        }
        for (int i = 0; i < n; i++) {
            long a = haddr + ((long) i << Linux.PAGE_SHIFT);
            pt.setKeepHuge(a, pt.get(a) | (makeWritable ? Pte.WRITE : 0) | Pte.DIRTY | Pte.ACCESSED | Pte.SOFT_DIRTY);
        }
        return true;
    }

    /** do_wp_page() copy path: a private copy of the mapped page (or of the zero page). */
    private int cowLocked(Vma v, long base, long pte, boolean makeWritable, Outcome o) {
        long npfn = k.vm.allocAnonLocked(v);
        if (npfn < 0) {
            return o.signal(Linux.SIGBUS, Linux.BUS_ADRERR);
        }
        if (!Pte.isZero(pte)) {
            long old = Pte.pfn(pte);
            long pages = v.pageSize / Linux.PAGE_SIZE;
            for (long i = 0; i < pages; i++) {
                k.frames.copyPage(old + i, npfn + i);
            }
        }
        k.vm.releasePteLocked(v, pte);
        k.vm.installPteLocked(v, base, npfn, makeWritable, false, true);
        k.frames.put(npfn); // drop the allocation reference: the mapping holds it now
        long n = v.mm.pt.get(base);
        return o.ok(v, n);
    }

    /** do_swap_page(): the uffd-wp bit of the swap entry is carried into the present PTE. */
    private int swapInLocked(Vma v, long base, long pte, Outcome o) {
        long slot = Pte.slot(pte);
        long pfn = k.frames.alloc(FramePool.PG_ANON);
        if (pfn < 0) {
            return o.signal(Linux.SIGBUS, Linux.BUS_ADRERR);
        }
        k.frames.restore(pfn, k.swap.read(slot));
        boolean exclusive = k.swap.count(slot) == 1;
        k.swap.free(slot);
        v.mm.swapEnts--;
        boolean wp = (pte & Pte.UFFD_WP) != 0 && testBreakage != BREAK_SWAPIN_DROPS_WP;
        k.vm.installPteLocked(v, base, pfn, exclusive && v.canWrite() && !wp, wp, false);
        k.frames.put(pfn);
        return o.retry();
    }

    private int anonFaultLocked(Vma v, long base, long addr, boolean write, boolean wpMarker, AccessMode mode, int tid,
            Outcome o) {
        if (v.uffdMissing()) {
            return userfaultLocked(v, addr, write ? Linux.UFFD_PAGEFAULT_FLAG_WRITE : 0, mode, tid, o);
        }
        if (!wpMarker && k.vm.thpAllowedLocked(v, base) && v.mm.pt.pmdNone(base)
                && hugeAnonFaultLocked(v, base, write)) {
            return o.ok(v, v.mm.pt.get(base));
        }
        boolean wp = wpMarker && v.uffdWp();
        if (wpMarker) {
            v.mm.pt.set(base, Pte.NONE);
        }
        if (!write && k.readFaultZeroPage) {
            k.vm.installPteLocked(v, base, FramePool.ZERO_PFN, false, wp, false);
            return o.ok(v, v.mm.pt.get(base));
        }
        // a write, or a read on a host whose read faults do not map the zero page: a zeroed page of its own,
        // mapped the same way for both
        long pfn = k.vm.allocAnonLocked(v);
        if (pfn < 0) {
            return o.signal(Linux.SIGBUS, Linux.BUS_ADRERR);
        }
        k.vm.installPteLocked(v, base, pfn, v.canWrite() && !wp, wp, !wp);
        k.frames.put(pfn);
        if (wp) {
            return o.retry(); // the page exists now; a write raises the WP fault (or async-clears), a read reads
        }
        return o.ok(v, v.mm.pt.get(base));
    }

    /**
     * {@code do_huge_pmd_anonymous_page()}: the 2 MiB block around a fault on a {@code pmd_none()} PMD of a
     * THP-eligible anonymous VMA is mapped as one PMD-mapped THP: the huge zero page on a read fault (when
     * {@code use_zero_page} is on and read faults map zero pages, {@link Kernel#readFaultZeroPage}), else a freshly
     * allocated, dirty huge folio. False means VM_FAULT_FALLBACK (no 2 MiB of free memory): the caller maps a 4 KiB
     * page instead. The caller has already raised a MISSING
     * userfault when the VMA is registered for it ({@code userfaultfd_missing()} comes first in the kernel too).
     */
    private boolean hugeAnonFaultLocked(Vma v, long base, boolean write) {
        long haddr = base & ~(Linux.PMD_SIZE - 1);
        int n = (int) (Linux.PMD_SIZE >>> Linux.PAGE_SHIFT);
        if (!write && k.thpUseZeroPage && k.readFaultZeroPage) {
            for (int i = 0; i < n; i++) {
                k.vm.installPteLocked(v, haddr + ((long) i << Linux.PAGE_SHIFT), FramePool.ZERO_PFN, false, false,
                        false);
            }
            v.mm.pt.setTransHuge(haddr);
            return true;
        }
        if (k.frames.freePages() < n) {
            return false; // THP_FAULT_FALLBACK: no direct reclaim for a huge folio here
        }
        for (int i = 0; i < n; i++) {
            long pfn = k.frames.alloc(FramePool.PG_ANON | FramePool.PG_LARGE);
            k.vm.installPteLocked(v, haddr + ((long) i << Linux.PAGE_SHIFT), pfn, v.canWrite(), false, true);
            k.frames.put(pfn);
        }
        v.mm.pt.setTransHuge(haddr);
        return true;
    }

    private int fileFaultLocked(Vma v, long base, long addr, boolean write, boolean wpMarker, AccessMode mode, int tid,
            Outcome o) {
        Inode inode = v.inode;
        long idx = v.pgoff(base);
        boolean user = mode == AccessMode.USER;
        if (idx * inode.pageSize >= inode.size) {
            return user ? o.signal(Linux.SIGBUS, Linux.BUS_ADRERR) : o.errno(kernelErrno(mode));
        }
        if (!write && !v.hugetlb && !v.uffdWp() && !v.uffdMinor()) {
            // do_read_fault(): should_fault_around() (uffd_disable_fault_around() for WP/MINOR), then
            // do_fault_around() maps what the page cache holds, the faulting page included: a whole THP at
            // PMD level when it can (filemap_map_pmd()), else PTEs
            if (k.vm.filePmdMappableLocked(v, base)) {
                k.vm.mapFilePmdLocked(v, base, false);
                return o.ok(v, v.mm.pt.get(base));
            }
            faultAroundLocked(v, base);
            long now = v.mm.pt.get(base);
            if (Pte.isPresent(now)) {
                return o.ok(v, now);
            }
        }
        Long entry = inode.cache.get(idx);
        if (entry == null && v.uffdMissing()) {
            return userfaultLocked(v, addr, write ? Linux.UFFD_PAGEFAULT_FLAG_WRITE : 0, mode, tid, o);
        }
        if (entry != null && v.uffdMinor()) {
            return userfaultLocked(v, addr, Linux.UFFD_PAGEFAULT_FLAG_MINOR
                    | (write ? Linux.UFFD_PAGEFAULT_FLAG_WRITE : 0), mode, tid, o);
        }
        boolean wp = wpMarker && v.uffdWp();
        boolean cow = !v.shared && (write || (v.hugetlb && entry == null));
        long pfn;
        if (cow && v.hugetlb && entry == null) {
            // hugetlb private hole: a private page straight away (hugetlb_no_page on a MAP_PRIVATE mapping)
            pfn = k.vm.allocAnonLocked(v);
            if (pfn < 0) {
                return user ? o.signal(Linux.SIGBUS, Linux.BUS_ADRERR) : o.errno(Errno.EFAULT);
            }
            if (wpMarker) {
                v.mm.pt.set(base, Pte.NONE);
            }
            k.vm.installPteLocked(v, base, pfn, v.canWrite() && !wp, wp, !wp);
            k.frames.put(pfn);
            return wp || !write ? o.retry() : o.ok(v, v.mm.pt.get(base));
        }
        if (entry == null && !v.hugetlb && k.vm.shmemThpAllowedLocked(v, base)
                && k.vm.allocShmemThpLocked(inode, v.pgoff(base & ~(Linux.PMD_SIZE - 1)))) {
            entry = inode.cache.get(idx); // shmem_alloc_and_add_folio() of a PMD-order folio
        }
        if (entry == null) {
            pfn = k.vm.allocCachePageLocked(inode, idx);
        } else {
            pfn = k.vm.cachePfnLocked(inode, idx, entry);
            if (pfn >= 0 && !v.hugetlb) {
                k.frames.setFlags(pfn, FramePool.PG_UPTODATE); // shmem_get_folio_gfp(): a fallocated folio is zeroed
            }
        }
        if (pfn < 0) {
            return user ? o.signal(Linux.SIGBUS, Linux.BUS_ADRERR) : o.errno(Errno.EFAULT);
        }
        if (wpMarker) {
            v.mm.pt.set(base, Pte.NONE);
        }
        if (cow) {
            long npfn = k.vm.allocAnonLocked(v);
            if (npfn < 0) {
                return user ? o.signal(Linux.SIGBUS, Linux.BUS_ADRERR) : o.errno(Errno.EFAULT);
            }
            long pages = v.pageSize / Linux.PAGE_SIZE;
            for (long i = 0; i < pages; i++) {
                k.frames.copyPage(pfn + i, npfn + i);
            }
            k.vm.installPteLocked(v, base, npfn, v.canWrite() && !wp, wp, !wp);
            k.frames.put(npfn);
            return wp ? o.retry() : o.ok(v, v.mm.pt.get(base));
        }
        if (!wp && k.vm.filePmdMappableLocked(v, base)) {
            k.vm.mapFilePmdLocked(v, base, write); // finish_fault() → do_set_pmd()
            return o.ok(v, v.mm.pt.get(base));
        }
        boolean writable = v.shared && v.canWrite() && !wp;
        k.vm.installPteLocked(v, base, pfn, writable, wp, write && writable);
        if (write && writable) {
            k.frames.setFlags(pfn, FramePool.PG_DIRTY);
        }
        if (write && !writable) {
            return o.retry();
        }
        return o.ok(v, v.mm.pt.get(base));
    }

    /** fault_around_bytes (default 64 KiB) in pages. */
    static final int FAULT_AROUND_PAGES = 16;

    /**
     * {@code do_fault_around()} + {@code filemap_map_pages()} (mm/memory.c, mm/filemap.c): in the
     * fault_around_bytes window around the fault (aligned down, clipped to the VMA and to the PTE table), every
     * none PTE whose file page is in the page cache, uptodate (not a fallocated page nobody used yet), not in
     * swap and below i_size gets mapped, as a read fault would map it.
     */
    private void faultAroundLocked(Vma v, long base) {
        Inode inode = v.inode;
        long pteOff = (base >>> Linux.PAGE_SHIFT) & 511;
        long vmaOff = (base - v.start) >>> Linux.PAGE_SHIFT;
        long fromPte = Math.max(pteOff & ~(FAULT_AROUND_PAGES - 1), pteOff - Math.min(pteOff, vmaOff));
        long vmaPages = (v.end - v.start) >>> Linux.PAGE_SHIFT;
        long toPte = Math.min(Math.min(fromPte + FAULT_AROUND_PAGES, 512), pteOff + vmaPages - vmaOff) - 1;
        long tableBase = base & ~(Linux.PMD_SIZE - 1);
        boolean writable = v.shared && v.canWrite();
        for (long p = fromPte; p <= toPte; p++) {
            long a = tableBase + (p << Linux.PAGE_SHIFT);
            if (v.mm.pt.get(a) != Pte.NONE) {
                continue;
            }
            long idx = v.pgoff(a);
            if (idx * inode.pageSize >= inode.size) {
                continue;
            }
            Long e = inode.cache.get(idx);
            if (e == null || Inode.isSwapEntry(e) || (k.frames.flags(e) & FramePool.PG_UPTODATE) == 0) {
                continue;
            }
            k.vm.installPteLocked(v, a, e, writable, false, false);
        }
    }

    /** handle_userfault(): queue a message on the VMA's uffd, or fail per the ctx's flags and features. */
    private int userfaultLocked(Vma v, long addr, long flags, AccessMode mode, int tid, Outcome o) {
        UserfaultfdCtx ctx = v.uffd;
        if (mode == AccessMode.PROC_MEM) {
            return o.errno(Errno.EIO);
        }
        if (mode != AccessMode.USER && (ctx.flags & Linux.UFFD_USER_MODE_ONLY) != 0) {
            return o.errno(Errno.EFAULT);
        }
        if ((ctx.features & Linux.UFFD_FEATURE_SIGBUS) != 0) {
            return mode == AccessMode.USER ? o.signal(Linux.SIGBUS, Linux.BUS_ADRERR) : o.errno(Errno.EFAULT);
        }
        long msgAddr = (ctx.features & Linux.UFFD_FEATURE_EXACT_ADDRESS) != 0 ? addr : addr & ~(v.pageSize - 1);
        int ptid = (ctx.features & Linux.UFFD_FEATURE_THREAD_ID) != 0 ? tid : 0;
        ctx.memcg.checkUserfaultRoom("handle_userfault"); // tenant quota (the memcg that counts it): EAGAIN
        UserfaultfdCtx.Fault f = new UserfaultfdCtx.Fault(ctx, msgAddr, flags, ptid);
        ctx.queue(f);
        ctx.total++;
        ctx.countUserfaults(1, 1);
        ctx.readable.signalAll();
        k.observer.faultRaised(flags, v);
        return o.userfault(f);
    }

}
