package io.uffdemu.server.mm;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * userfaultfd(2) and its ioctls: analogue of {@code fs/userfaultfd.c} (the file, API handshake, REGISTER,
 * read, wake, release, events) and {@code mm/userfaultfd.c} ({@code mfill_atomic()} for COPY / ZEROPAGE /
 * CONTINUE / POISON, {@code mwriteprotect_range()}, {@code move_pages()}).
 *
 * <p>Every ioctl takes the caller's pid and fd, like an ioctl on the caller's fd table; addresses are in the
 * ctx's mm (the creator's), as in the kernel. Errors follow the kernel's order of checks; partial progress is
 * reported as EAGAIN with {@link LinuxException#bytesDone()}.
 */
public final class Userfaultfd {
    private final Kernel k;

    Userfaultfd(Kernel k) {
        this.k = k;
    }

    /** MFILL modes ({@code enum mfill_atomic_mode}). */
    enum Mfill { COPY, ZEROPAGE, CONTINUE, POISON }

    // ------------------------------------------------------------------ creation and API

    /** userfaultfd(2), or open("/dev/userfaultfd") + USERFAULTFD_IOC_NEW when {@code dev}. */
    public int userfaultfd(int pid, int flags, boolean dev) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "userfaultfd");
            String call = dev ? "USERFAULTFD_IOC_NEW" : "userfaultfd";
            KernelProfile p = k.profile;
            if (dev && !p.hasDevUserfaultfd()) {
                throw new LinuxException(Errno.ENOENT, "open", 0, "no /dev/userfaultfd before Linux 6.1");
            }
            if (!p.atLeast(5, 11) && !dev && !t.capSysPtrace && k.unprivilegedUserfaultfd == 0) {
                // 5.10: the EPERM check comes first and knows no UFFD_USER_MODE_ONLY
                throw new LinuxException(Errno.EPERM, call, 0, "needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1");
            }
            // the open() of /dev/userfaultfd, and userfaultfd_syscall_allowed() in SYSCALL_DEFINE1(userfaultfd),
            // both come before new_userfaultfd() looks at the flags
            if (dev) {
                if (t.uid != 0) {
                    throw new LinuxException(Errno.EACCES, "open", 0, "/dev/userfaultfd is root-owned 0600");
                }
            } else if ((flags & Linux.UFFD_USER_MODE_ONLY) == 0 && !t.capSysPtrace
                    && k.unprivilegedUserfaultfd == 0) {
                throw new LinuxException(Errno.EPERM, call, 0,
                        "needs CAP_SYS_PTRACE, UFFD_USER_MODE_ONLY or vm.unprivileged_userfaultfd=1");
            }
            if ((flags & ~p.userfaultfdFlags()) != 0) {
                throw LinuxException.einval(call, "unknown flags");
            }
            t.checkFdRoom(call);
            t.memcg.checkUffdRoom(call);
            UserfaultfdCtx ctx = new UserfaultfdCtx(k.newCtxId(), t.mm, flags, k.lock.newCondition(), t.memcg);
            t.memcg.uffds.add(ctx);
            return t.installFd(OpenFile.userfaultfd(ctx));
        } finally {
            k.unlock();
        }
    }

    /** The answer of UFFDIO_API. */
    public record ApiResult(long features, long ioctls) {
    }

    /** UFFDIO_API. */
    public ApiResult api(int pid, int fd, long api, long features) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "UFFDIO_API");
            UserfaultfdCtx ctx = ctxOf(t, fd, "UFFDIO_API", false);
            if (ctx.apiDone) {
                throw LinuxException.einval("UFFDIO_API", "already initialized");
            }
            if (k.profile.apiChecksInput()) {
                if (api != Linux.UFFD_API) {
                    throw LinuxException.einval("UFFDIO_API", "api must be 0xAA");
                }
                if (k.profile.apiRejected(features) != 0) {
                    throw LinuxException.einval("UFFDIO_API", "feature bits not supported by " + k.profile);
                }
            } else {
                features &= k.profile.uapiFeatures(); // 6.0 .. 6.2: "Ignore unsupported features"
            }
            if ((features & Linux.UFFD_FEATURE_EVENT_FORK) != 0 && !t.capSysPtrace) {
                throw new LinuxException(Errno.EPERM, "UFFDIO_API", 0, "EVENT_FORK needs CAP_SYS_PTRACE");
            }
            if ((features & Linux.UFFD_FEATURE_WP_ASYNC) != 0) {
                features |= Linux.UFFD_FEATURE_WP_UNPOPULATED;
            }
            ctx.features = features;
            ctx.apiDone = true;
            return new ApiResult(k.profile.apiFeatures(), k.profile.apiIoctls());
        } finally {
            k.unlock();
        }
    }

    /** userfaultfd_ioctl(): an ioctl this release does not know falls out of the switch with EINVAL. */
    private void requireIoctl(int nr, String call) {
        if (!k.profile.hasIoctl(nr)) {
            throw LinuxException.einval(call, "no such ioctl in Linux " + k.profile.version());
        }
    }

    private UserfaultfdCtx ctxOf(Task t, int fd, String call, boolean needApi) {
        OpenFile f = k.fileLocked(t, fd, call);
        if (f.uffd == null) {
            throw new LinuxException(Errno.ENOTTY, call, 0, "fd " + fd + " is not a userfaultfd");
        }
        if (needApi && !f.uffd.apiDone) {
            throw LinuxException.einval(call, "UFFDIO_API not done");
        }
        return f.uffd;
    }

    /** validate_range(): page aligned, non-empty, within [mmap_min_addr, TASK_SIZE). */
    private static void validateRange(long start, long len, String call) {
        if ((start & (Linux.PAGE_SIZE - 1)) != 0 || (len & (Linux.PAGE_SIZE - 1)) != 0 || len == 0) {
            throw LinuxException.einval(call, "range not page aligned or empty");
        }
        if (start < Linux.MMAP_MIN_ADDR || start >= Linux.TASK_SIZE || len > Linux.TASK_SIZE - start || len < 0) {
            throw LinuxException.einval(call, "range outside the address space");
        }
    }

    // ------------------------------------------------------------------ REGISTER / UNREGISTER

    /** UFFDIO_REGISTER: returns the ioctls valid on the range. */
    public long register(int pid, int fd, long start, long len, long mode) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "UFFDIO_REGISTER");
            UserfaultfdCtx ctx = ctxOf(t, fd, "UFFDIO_REGISTER", true);
            long modes = k.profile.registerModes();
            if (mode == 0 || (mode & ~modes) != 0) {
                throw LinuxException.einval("UFFDIO_REGISTER", "bad mode");
            }
            validateRange(start, len, "UFFDIO_REGISTER");
            MmStruct mm = ctx.mm;
            if (mm.dead) {
                throw new LinuxException(Errno.ENOMEM, "UFFDIO_REGISTER", 0, "the mm has exited");
            }
            long end = start + len;
            List<Vma> vs = mm.vmasIn(start, end);
            if (vs.isEmpty()) {
                throw LinuxException.einval("UFFDIO_REGISTER", "no mapping in range");
            }
            Vma first = vs.get(0);
            if (first.hugetlb && (start & (first.pageSize - 1)) != 0) {
                throw LinuxException.einval("UFFDIO_REGISTER", "hugetlb start not huge page aligned");
            }
            boolean wpAsync = (ctx.features & Linux.UFFD_FEATURE_WP_ASYNC) != 0;
            boolean basic = false;
            for (Vma v : vs) {
                if (!k.profile.vmaCanUserfault(v.isAnonymous(), v.isShmem(), v.hugetlb, mode, wpAsync)) {
                    throw LinuxException.einval("UFFDIO_REGISTER", "memory type does not support this mode");
                }
                if (!v.mayWrite) {
                    throw new LinuxException(Errno.EPERM, "UFFDIO_REGISTER", 0, "mapping lacks VM_MAYWRITE");
                }
                if (v.hugetlb && end <= v.end && end > v.start && (end & (v.pageSize - 1)) != 0) {
                    throw LinuxException.einval("UFFDIO_REGISTER", "hugetlb end not huge page aligned");
                }
                if (v.uffd != null && v.uffd != ctx) {
                    throw new LinuxException(Errno.EBUSY, "UFFDIO_REGISTER", 0, "registered with another uffd");
                }
                basic |= v.hugetlb;
            }
            if (mm.owner != null) {
                long adding = vs.stream().filter(v -> v.uffd == null).count();
                mm.owner.memcg.checkRegisteredRoom(adding, "UFFDIO_REGISTER");
            }
            // mm/userfaultfd.c userfaultfd_register_range(): a VMA already registered with this ctx that has
            // every requested mode bit is skipped ("nothing to do"), so a subset re-register keeps its modes
            // (M|W then MISSING stays M|W); any other mode replaces the bits.
            boolean change = false;
            for (Vma v : vs) {
                change |= !(v.uffd == ctx && (v.uffdFlags & mode) == mode);
            }
            if (change) {
                for (Vma v : mm.splitRange(start, end)) {
                    if (v.uffd == ctx && (v.uffdFlags & mode) == mode) {
                        continue;
                    }
                    v.uffd = ctx;
                    v.uffdFlags = (int) mode;
                }
                mm.mergeAround(start, end);
            }
            long ioctls = basic ? k.profile.rangeIoctlsBasic() : k.profile.rangeIoctls();
            if ((mode & Linux.UFFDIO_REGISTER_MODE_WP) == 0) {
                ioctls &= ~(1L << Linux._UFFDIO_WRITEPROTECT);
            }
            if ((mode & Linux.UFFDIO_REGISTER_MODE_MINOR) == 0) {
                ioctls &= ~(1L << Linux._UFFDIO_CONTINUE);
            }
            return ioctls;
        } finally {
            k.unlock();
        }
    }

    /** UFFDIO_UNREGISTER. */
    public void unregister(int pid, int fd, long start, long len) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "UFFDIO_UNREGISTER");
            UserfaultfdCtx ctx = ctxOf(t, fd, "UFFDIO_UNREGISTER", true);
            validateRange(start, len, "UFFDIO_UNREGISTER");
            MmStruct mm = ctx.mm;
            if (mm.dead) {
                throw new LinuxException(Errno.ENOMEM, "UFFDIO_UNREGISTER", 0, "the mm has exited");
            }
            long end = start + len;
            List<Vma> vs = mm.vmasIn(start, end);
            if (vs.isEmpty()) {
                throw LinuxException.einval("UFFDIO_UNREGISTER", "no mapping in range");
            }
            Vma first = vs.get(0);
            if (first.hugetlb && (start & (first.pageSize - 1)) != 0) {
                throw LinuxException.einval("UFFDIO_UNREGISTER", "hugetlb start not huge page aligned");
            }
            for (Vma v : vs) {
                if (v.hugetlb && end <= v.end && end > v.start && (end & (v.pageSize - 1)) != 0) {
                    throw LinuxException.einval("UFFDIO_UNREGISTER", "hugetlb end not huge page aligned");
                }
                if (v.uffd != null && v.uffd != ctx) {
                    throw LinuxException.einval("UFFDIO_UNREGISTER", "registered with another uffd");
                }
            }
            for (Vma v : mm.splitRange(start, end)) {
                if (v.uffd == null) {
                    continue;
                }
                if (v.uffdMissing()) {
                    wakeRangeLocked(v.uffd, v.start, v.end - v.start);
                }
                clearVmaLocked(v);
            }
            mm.mergeAround(start, end);
        } finally {
            k.unlock();
        }
    }

    /** userfaultfd_clear_vma(): drop the registration and every uffd-wp bit and marker. */
    private void clearVmaLocked(Vma v) {
        if (v.uffdWp()) {
            wpRangeLocked(v, v.start, v.end, false);
        }
        v.uffd = null;
        v.uffdFlags = 0;
    }

    // ------------------------------------------------------------------ mfill: COPY, ZEROPAGE, CONTINUE, POISON

    /** UFFDIO_COPY: {@code src} holds the bytes (its length is the len). Returns bytes copied. */
    public long copy(int pid, int fd, long dst, byte[] src, long mode) {
        return copy(pid, fd, dst, MemorySegment.ofArray(src), mode);
    }

    /**
     * UFFDIO_COPY from a buffer: the bytes from its position to its limit (the len), copied straight into the
     * frames (a heap or direct, read-only or writable buffer; its position is left alone).
     */
    public long copy(int pid, int fd, long dst, ByteBuffer src, long mode) {
        return copy(pid, fd, dst, MemorySegment.ofBuffer(src), mode);
    }

    private long copy(int pid, int fd, long dst, MemorySegment src, long mode) {
        return mfill(pid, fd, "UFFDIO_COPY", Mfill.COPY, dst, src.byteSize(), src, mode,
                Linux.UFFDIO_COPY_MODE_DONTWAKE | Linux.UFFDIO_COPY_MODE_WP, Linux.UFFDIO_COPY_MODE_WP,
                Linux.UFFDIO_COPY_MODE_DONTWAKE);
    }

    /**
     * One UFFDIO_COPY of a {@link #copyBatch}: the arguments of {@link #copy}; the source is the bytes from
     * {@code src}'s position to its limit (read-only is fine: a gRPC payload's {@code asReadOnlyByteBuffer()}).
     */
    public record CopyOp(int pid, int fd, long dst, ByteBuffer src, long mode) {
        public CopyOp(int pid, int fd, long dst, byte[] src, long mode) {
            this(pid, fd, dst, ByteBuffer.wrap(src), mode);
        }
    }

    /** Where a {@link #copyBatch} reports each op's result, by the op's index, right after the op ran. */
    public interface CopyOutcome {
        void copied(int index, long bytes);

        void failed(int index, LinuxException e);
    }

    /**
     * UFFDIO_COPY of each op, in order, under one acquisition of the kernel lock (a gRPC batch of resolutions:
     * docs/benchmarks.md item 11). Each op runs exactly as {@link #copy} would on its own: from the state of a
     * fresh entry ({@link Kernel#startCallLocked}), with its own checks, fill and wake; a failing op stops only
     * itself. Its result goes to {@code outcome} before the next op starts, so {@link Kernel#lastChargeRefusal}
     * is still the op's own then. An exception other than {@link LinuxException} stops the batch: the ops after
     * it do not run. A long batch lets go of the lock every {@link #COPY_BATCH_OPS} ops or
     * {@link #COPY_BATCH_BYTES} bytes and yields when another thread waits for it, so faulting threads and other
     * callers get a chance in between (the lock is not fair: a waiter may still lose the race to the next chunk).
     */
    public void copyBatch(List<CopyOp> ops, CopyOutcome outcome) {
        int i = 0;
        while (i < ops.size()) {
            k.lock();
            try {
                long bytes = 0;
                int end = Math.min(ops.size(), i + COPY_BATCH_OPS);
                while (i < end && bytes <= COPY_BATCH_BYTES) {
                    CopyOp op = ops.get(i);
                    bytes += op.src().remaining();
                    k.startCallLocked();
                    long n;
                    try {
                        n = copy(op.pid(), op.fd(), op.dst(), op.src(), op.mode());
                    } catch (LinuxException e) {
                        outcome.failed(i++, e);
                        continue;
                    }
                    outcome.copied(i++, n);
                }
            } finally {
                k.unlock();
            }
            if (i < ops.size() && k.lockWanted()) {
                Thread.yield();
            }
        }
    }

    /** The most ops, and (about) the most bytes, a {@link #copyBatch} runs under one acquisition of the lock. */
    static final int COPY_BATCH_OPS = 64;
    static final long COPY_BATCH_BYTES = 1L << 20;

    /** UFFDIO_ZEROPAGE. */
    public long zeropage(int pid, int fd, long start, long len, long mode) {
        return mfill(pid, fd, "UFFDIO_ZEROPAGE", Mfill.ZEROPAGE, start, len, null, mode,
                Linux.UFFDIO_ZEROPAGE_MODE_DONTWAKE, 0, Linux.UFFDIO_ZEROPAGE_MODE_DONTWAKE);
    }

    /** UFFDIO_CONTINUE. */
    public long continue_(int pid, int fd, long start, long len, long mode) {
        long valid = Linux.UFFDIO_CONTINUE_MODE_DONTWAKE
                | (k.profile.hasContinueModeWp() ? Linux.UFFDIO_CONTINUE_MODE_WP : 0);
        return mfill(pid, fd, "UFFDIO_CONTINUE", Mfill.CONTINUE, start, len, null, mode, valid,
                Linux.UFFDIO_CONTINUE_MODE_WP, Linux.UFFDIO_CONTINUE_MODE_DONTWAKE);
    }

    /** UFFDIO_POISON. */
    public long poison(int pid, int fd, long start, long len, long mode) {
        return mfill(pid, fd, "UFFDIO_POISON", Mfill.POISON, start, len, null, mode,
                Linux.UFFDIO_POISON_MODE_DONTWAKE, 0, Linux.UFFDIO_POISON_MODE_DONTWAKE);
    }

    private long mfill(int pid, int fd, String call, Mfill kind, long dst, long len, MemorySegment src, long mode,
            long validModes, long wpBit, long dontwakeBit) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, call);
            UserfaultfdCtx ctx = ctxOf(t, fd, call, true);
            requireIoctl(switch (kind) {
                case COPY -> Linux._UFFDIO_COPY;
                case ZEROPAGE -> Linux._UFFDIO_ZEROPAGE;
                case CONTINUE -> Linux._UFFDIO_CONTINUE;
                case POISON -> Linux._UFFDIO_POISON;
            }, call);
            if (ctx.mmapChanging > 0) {
                throw new LinuxException(Errno.EAGAIN, call, 0, "non-cooperative event pending");
            }
            validateRange(dst, len, call);
            if ((mode & ~validModes) != 0) {
                throw LinuxException.einval(call, "unknown mode bits");
            }
            if (ctx.mm.dead) {
                throw new LinuxException(Errno.ESRCH, call, 0, "the mm has exited");
            }
            boolean wp = (mode & wpBit) != 0 && wpBit != 0;
            long done;
            try {
                done = mfillAtomicLocked(ctx, call, kind, dst, len, src, wp);
            } catch (LinuxException e) {
                // fs/userfaultfd.c userfaultfd_copy()/_zeropage()/_continue()/_poison(): a partial fill (EAGAIN,
                // ret = bytes done > 0) still wakes [dst, dst + ret) before returning -EAGAIN
                if (e.bytesDone() > 0 && (mode & dontwakeBit) == 0) {
                    wakeRangeLocked(ctx, dst, e.bytesDone());
                }
                throw e;
            }
            if ((mode & dontwakeBit) == 0) {
                wakeRangeLocked(ctx, dst, done);
            }
            return done;
        } finally {
            k.unlock();
        }
    }

    /** mfill_atomic(): page by page; stops at the first failure and reports partial progress. */
    private long mfillAtomicLocked(UserfaultfdCtx ctx, String call, Mfill kind, long dst, long len,
            MemorySegment src, boolean wp) {
        MmStruct mm = ctx.mm;
        Vma v = mm.findVma(dst);
        if (v == null || dst + len > v.end || v.uffd == null) {
            throw new LinuxException(Errno.ENOENT, call, 0, "destination not in one registered mapping");
        }
        if (wp && !v.uffdWp()) {
            throw LinuxException.einval(call, "MODE_WP on a mapping not registered for WP");
        }
        if (v.hugetlb) {
            if (kind == Mfill.ZEROPAGE) {
                throw LinuxException.einval(call, "ZEROPAGE is not supported on hugetlb");
            }
            if (((dst | len) & (v.pageSize - 1)) != 0) {
                throw LinuxException.einval(call, "hugetlb range not huge page aligned");
            }
        } else if (kind == Mfill.CONTINUE && !v.isShmem()) {
            throw LinuxException.einval(call, "CONTINUE needs shmem or hugetlb");
        }
        long done = 0;
        Errno err = null;
        while (done < len) {
            long addr = dst + done;
            if (done > 0 && (addr & (Linux.PMD_SIZE - 1)) == 0 && mm.owner != null) {
                try { // each 2 MiB may need a new page table: the memcg's page-table budget bounds one call
                    mm.owner.memcg.checkPgtableRoom(1, call);
                } catch (LinuxException e) {
                    err = Errno.ENOMEM;
                    break;
                }
            }
            err = mfillPteLocked(v, kind, addr, src, (int) done, wp);
            if (err != null) {
                break;
            }
            done += v.pageSize;
        }
        if (err == null) {
            return done;
        }
        if (done > 0) {
            throw new LinuxException(Errno.EAGAIN, call, done, "stopped at a page that failed with " + err);
        }
        throw new LinuxException(err, call, 0);
    }

    /** mfill_atomic_pte() and its per-type variants for one (huge) page. Returns null on success. */
    private Errno mfillPteLocked(Vma v, Mfill kind, long addr, MemorySegment src, int srcOff, boolean wp) {
        MmStruct mm = v.mm;
        long pte = mm.pt.get(addr);
        boolean fileBacked = v.inode != null;
        // mfill_file_over_size() guards every PTE-level fill; hugetlb_mfill_atomic_pte() checks i_size only
        // for a shared COPY (a private COPY or a POISON beyond EOF succeeds, seen on 6.18)
        boolean sizeChecked = !v.hugetlb || (kind == Mfill.COPY && v.shared) || kind == Mfill.CONTINUE;
        if (fileBacked && sizeChecked && v.pgoff(addr) * v.inode.pageSize >= v.inode.size) {
            return Errno.EFAULT;
        }
        switch (kind) {
            case POISON -> {
                if (pte != Pte.NONE) {
                    return Errno.EEXIST;
                }
                mm.pt.set(addr, Pte.marker(Pte.MARKER_POISONED, v.hugetlb));
                return null;
            }
            case CONTINUE -> {
                Long entry = v.inode.cache.get(v.pgoff(addr));
                if (entry == null) {
                    return Errno.EFAULT;
                }
                if (!Pte.isNoneMostly(pte)) {
                    return Errno.EEXIST;
                }
                long pfn = k.vm.cachePfnLocked(v.inode, v.pgoff(addr), entry);
                if (pfn < 0) {
                    return Errno.ENOMEM;
                }
                k.frames.setFlags(pfn, FramePool.PG_UPTODATE);
                mm.pt.set(addr, Pte.NONE);
                k.vm.installPteLocked(v, addr, pfn, v.shared && v.canWrite() && !wp, wp, true);
                return null;
            }
            case ZEROPAGE -> {
                if (!v.shared) {
                    if (pte != Pte.NONE) {
                        return Errno.EEXIST;
                    }
                    k.vm.installPteLocked(v, addr, FramePool.ZERO_PFN, false, false, false);
                    return null;
                }
                return sharedFillLocked(v, addr, null, 0, false);
            }
            case COPY -> {
                if (v.shared) {
                    return sharedFillLocked(v, addr, src, srcOff, wp);
                }
                if (!Pte.isNoneMostly(pte)) {
                    return Errno.EEXIST;
                }
                long pfn = k.vm.allocAnonLocked(v);
                if (pfn < 0) {
                    return Errno.ENOMEM;
                }
                fillFromSrc(pfn, v.pageSize, src, srcOff);
                mm.pt.set(addr, Pte.NONE);
                k.vm.installPteLocked(v, addr, pfn, v.canWrite() && !wp, wp, true);
                k.frames.put(pfn);
                return null;
            }
            default -> throw new IllegalStateException();
        }
    }

    /** shmem_mfill_atomic_pte() / hugetlb shared: a new page-cache page, then the PTE. */
    private Errno sharedFillLocked(Vma v, long addr, MemorySegment src, int srcOff, boolean wp) {
        long pte = v.mm.pt.get(addr);
        long idx = v.pgoff(addr);
        if (v.inode.cache.containsKey(idx)) {
            return Errno.EEXIST;
        }
        if (!Pte.isNoneMostly(pte)) {
            return Errno.EEXIST;
        }
        long pfn = k.vm.allocCachePageLocked(v.inode, idx);
        if (pfn < 0) {
            return Errno.ENOMEM;
        }
        if (src != null) {
            fillFromSrc(pfn, v.pageSize, src, srcOff);
        }
        k.frames.setFlags(pfn, FramePool.PG_DIRTY);
        v.mm.pt.set(addr, Pte.NONE);
        k.vm.installPteLocked(v, addr, pfn, v.canWrite() && !wp, wp, true);
        return null;
    }

    private void fillFromSrc(long pfn, long pageSize, MemorySegment src, int srcOff) {
        long pages = pageSize / Linux.PAGE_SIZE;
        for (long i = 0; i < pages; i++) {
            k.frames.write(pfn + i, 0, src, (int) (srcOff + i * Linux.PAGE_SIZE), (int) Linux.PAGE_SIZE);
        }
    }

    // ------------------------------------------------------------------ WRITEPROTECT

    /** UFFDIO_WRITEPROTECT. */
    public void writeprotect(int pid, int fd, long start, long len, long mode) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "UFFDIO_WRITEPROTECT");
            UserfaultfdCtx ctx = ctxOf(t, fd, "UFFDIO_WRITEPROTECT", true);
            validateRange(start, len, "UFFDIO_WRITEPROTECT");
            if ((mode & ~(Linux.UFFDIO_WRITEPROTECT_MODE_WP | Linux.UFFDIO_WRITEPROTECT_MODE_DONTWAKE)) != 0) {
                throw LinuxException.einval("UFFDIO_WRITEPROTECT", "unknown mode bits");
            }
            boolean enable = (mode & Linux.UFFDIO_WRITEPROTECT_MODE_WP) != 0;
            if (enable && (mode & Linux.UFFDIO_WRITEPROTECT_MODE_DONTWAKE) != 0) {
                throw LinuxException.einval("UFFDIO_WRITEPROTECT", "WP with DONTWAKE");
            }
            if (ctx.mmapChanging > 0) {
                throw new LinuxException(Errno.EAGAIN, "UFFDIO_WRITEPROTECT", 0, "non-cooperative event pending");
            }
            if (ctx.mm.dead) {
                throw new LinuxException(Errno.ESRCH, "UFFDIO_WRITEPROTECT", 0, "the mm has exited");
            }
            long end = start + len;
            MmStruct mm = ctx.mm;
            List<Vma> vs = mm.vmasIn(start, end);
            if (vs.isEmpty()) {
                throw new LinuxException(Errno.ENOENT, "UFFDIO_WRITEPROTECT", 0, "range not mapped");
            }
            // mm/userfaultfd.c mwriteprotect_range(): the VMAs are walked in order and each one is changed before
            // the next is checked, so a VMA without WP mode (ENOENT) or an unaligned hugetlb VMA (EINVAL) stops
            // the walk with the earlier VMAs already done; unmapped space in the range (also at its end) is skipped
            for (Vma v : vs) {
                if (!v.uffdWp()) {
                    throw new LinuxException(Errno.ENOENT, "UFFDIO_WRITEPROTECT", 0, "mapping not registered for WP");
                }
                if (v.hugetlb && ((start | len) & (v.pageSize - 1)) != 0) {
                    throw LinuxException.einval("UFFDIO_WRITEPROTECT", "hugetlb range not huge page aligned");
                }
                wpRangeLocked(v, Math.max(start, v.start), Math.min(end, v.end), enable);
            }
            if (!enable && (mode & Linux.UFFDIO_WRITEPROTECT_MODE_DONTWAKE) == 0) {
                wakeRangeLocked(ctx, start, len);
            }
        } finally {
            k.unlock();
        }
    }

    /** uffd_wp_range() → change_protection(MM_CP_UFFD_WP / MM_CP_UFFD_WP_RESOLVE) over one VMA. */
    void wpRangeLocked(Vma v, long start, long end, boolean enable) {
        PageTable pt = v.mm.pt;
        // change_pmd_range(): pgtable_split_needed() for uffd-wp on a file VMA splits (zaps) every huge PMD
        k.vm.splitFileHugePmdsLocked(v, start, end, true);
        if (enable) {
            pt.update(start, end, pte -> {
                if (Pte.isMarker(pte)) {
                    return Pte.isPoisonMarker(pte) || Pte.isGuardMarker(pte) ? pte : pte | Pte.MARKER_UFFD_WP;
                }
                return Pte.isSwap(pte) ? pte | Pte.UFFD_WP : Pte.mkUffdWp(pte);
            });
            if (v.uffdWpUseMarkers() && k.profile.uffdWpMarkers()) {
                if (v.mm.owner != null) { // markers need page tables for the whole range
                    v.mm.owner.memcg.checkPgtableRoom((end - start + Linux.PMD_SIZE - 1) / Linux.PMD_SIZE + 1,
                            "UFFDIO_WRITEPROTECT");
                }
                pt.fillNone(start, end, v.pageSize, Pte.marker(Pte.MARKER_UFFD_WP, v.hugetlb));
            }
            return;
        }
        pt.update(start, end, pte -> {
            if (!Pte.isUffdWp(pte)) {
                return pte;
            }
            long n = Pte.clearUffdWp(pte);
            if (Pte.isPresent(n) && !Pte.isZero(n) && v.canWrite()) {
                long pfn = Pte.pfn(n);
                boolean anon = (k.frames.flags(pfn) & FramePool.PG_ANON) != 0;
                if ((v.shared && !anon) || (anon && k.frames.mapcount(pfn) == 1)) {
                    n |= Pte.WRITE;
                }
            }
            return n;
        });
    }

    // ------------------------------------------------------------------ WAKE and MOVE

    /** UFFDIO_WAKE. */
    public void wake(int pid, int fd, long start, long len) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "UFFDIO_WAKE");
            UserfaultfdCtx ctx = ctxOf(t, fd, "UFFDIO_WAKE", true);
            validateRange(start, len, "UFFDIO_WAKE");
            wakeRangeLocked(ctx, start, len);
        } finally {
            k.unlock();
        }
    }

    /** UFFDIO_MOVE (anonymous memory only). Returns bytes moved. */
    public long move(int pid, int fd, long dst, long src, long len, long mode) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "UFFDIO_MOVE");
            UserfaultfdCtx ctx = ctxOf(t, fd, "UFFDIO_MOVE", true);
            requireIoctl(Linux._UFFDIO_MOVE, "UFFDIO_MOVE");
            if (ctx.mmapChanging > 0) {
                throw new LinuxException(Errno.EAGAIN, "UFFDIO_MOVE", 0, "non-cooperative event pending");
            }
            validateRange(src, len, "UFFDIO_MOVE");
            validateRange(dst, len, "UFFDIO_MOVE");
            if ((mode & ~(Linux.UFFDIO_MOVE_MODE_DONTWAKE | Linux.UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)) != 0) {
                throw LinuxException.einval("UFFDIO_MOVE", "unknown mode bits");
            }
            if (ctx.mm.dead) {
                throw new LinuxException(Errno.ESRCH, "UFFDIO_MOVE", 0, "the mm has exited");
            }
            MmStruct mm = ctx.mm;
            Vma dv = mm.findVma(dst);
            Vma sv = mm.findVma(src);
            if (dv == null || sv == null || dst + len > dv.end || src + len > sv.end) {
                throw new LinuxException(Errno.ENOENT, "UFFDIO_MOVE", 0, "ranges not inside mappings");
            }
            if (sv.prot != dv.prot || !sv.canWrite() || dv.uffd != ctx || !sv.isAnonymous() || !dv.isAnonymous()) {
                throw LinuxException.einval("UFFDIO_MOVE", "incompatible mappings");
            }
            boolean holes = (mode & Linux.UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES) != 0;
            long done = 0;
            Errno err = null;
            while (done < len) {
                long d = dst + done;
                long s = src + done;
                long dpte = mm.pt.get(d);
                long spte = mm.pt.get(s);
                if (dpte != Pte.NONE) {
                    err = Errno.EEXIST;
                    break;
                }
                if (mm.pt.isTransHuge(s) && (s & (Linux.PMD_SIZE - 1)) == 0 && (d & (Linux.PMD_SIZE - 1)) == 0
                        && len - done >= Linux.PMD_SIZE && mm.pt.pmdNone(d)
                        && k.frames.mapcount(Pte.pfn(spte)) == 1) {
                    // move_pages_huge_pmd(): the whole huge PMD moves
                    for (int i = 0; i < 512; i++) {
                        long off = (long) i << Linux.PAGE_SHIFT;
                        long p = mm.pt.get(s + off);
                        long n = Pte.clearUffdWp(p) | Pte.DIRTY;
                        if (!Pte.isZero(n) && dv.canWrite()) {
                            n |= Pte.WRITE;
                        }
                        mm.pt.set(s + off, Pte.NONE);
                        mm.pt.set(d + off, n);
                    }
                    mm.pt.setTransHuge(d);
                    mm.pt.freeEmptyTables(s, s + Linux.PMD_SIZE); // the src PMD is none afterwards
                    done += Linux.PMD_SIZE;
                    continue;
                }
                if (Pte.isPresent(spte) && !Pte.isZero(spte)
                        && (k.frames.flags(Pte.pfn(spte)) & FramePool.PG_LARGE) != 0) {
                    k.vm.splitFolioLocked(mm, s); // move_pages_pte(): a large src folio is split first
                    spte = mm.pt.get(s);
                }
                if (spte == Pte.NONE || Pte.isMarker(spte)) {
                    if (!holes) {
                        err = Errno.ENOENT;
                        break;
                    }
                    done += Linux.PAGE_SIZE;
                    continue;
                }
                if (Pte.isSwap(spte)) {
                    if (k.swap.count(Pte.slot(spte)) != 1) {
                        err = Errno.EBUSY;
                        break;
                    }
                    mm.pt.set(s, Pte.NONE);
                    mm.pt.set(d, spte & ~Pte.UFFD_WP);
                    done += Linux.PAGE_SIZE;
                    continue;
                }
                if (!Pte.isZero(spte) && k.frames.mapcount(Pte.pfn(spte)) != 1) {
                    err = Errno.EBUSY;
                    break;
                }
                mm.pt.set(s, Pte.NONE);
                long n = Pte.clearUffdWp(spte) | Pte.DIRTY;
                if (!Pte.isZero(n) && dv.canWrite()) {
                    n |= Pte.WRITE;
                }
                mm.pt.set(d, n);
                done += Linux.PAGE_SIZE;
            }
            if (done > 0 && (mode & Linux.UFFDIO_MOVE_MODE_DONTWAKE) == 0) {
                wakeRangeLocked(ctx, dst, done);
            }
            if (err != null) {
                if (done > 0) {
                    throw new LinuxException(Errno.EAGAIN, "UFFDIO_MOVE", done, "stopped at a page: " + err);
                }
                throw new LinuxException(err, "UFFDIO_MOVE");
            }
            return done;
        } finally {
            k.unlock();
        }
    }

    /**
     * wake_userfault(): wakes pending and read faults whose message address is in [start, start+len). With many
     * faults queued it costs the faults woken (plus a lookup in the ctx's address index), not the faults queued;
     * with few ({@link UserfaultfdCtx#INDEX_AT}) a scan of them, which is cheaper than keeping the index.
     */
    void wakeRangeLocked(UserfaultfdCtx ctx, long start, long len) {
        if (len <= 0 || ctx.pending.size() + ctx.waiting.size() == 0) {
            return;
        }
        long end = start + len;
        if (end <= start) {
            return; // start + len overflowed: no address is in [start, end)
        }
        if (ctx.byAddress == null) {
            // few faults queued: a scan of the two queues (pending first, then read: the kernel's two wait queues)
            wakeScan(ctx, ctx.pending, start, end);
            wakeScan(ctx, ctx.waiting, start, end);
            return;
        }
        var it = ctx.byAddress.subMap(start, end).values().iterator();
        while (it.hasNext()) {
            UserfaultfdCtx.Fault f = it.next();
            it.remove();
            while (f != null) {
                UserfaultfdCtx.Fault next = f.nextAtAddress;
                f.clearIndexLinks();
                ctx.dequeue(f);
                woken(f);
                f = next;
            }
        }
        ctx.dropIndexIfEmpty();
    }

    private void wakeScan(UserfaultfdCtx ctx, UserfaultfdCtx.FaultQueue q, long start, long end) {
        for (UserfaultfdCtx.Fault f = q.head; f != null;) {
            UserfaultfdCtx.Fault next = f.qNext;
            if (f.address >= start && f.address < end) {
                ctx.dequeue(f);
                woken(f);
            }
            f = next;
        }
    }

    /** A fault just taken off its queue: counted out and its thread released. */
    private void woken(UserfaultfdCtx.Fault f) {
        f.ctx.countUserfaults(f.read ? 0 : -1, -1);
        k.observer.faultWoken(System.nanoTime() - f.queuedNanos);
        f.woken.countDown();
    }

    /** Wakes every fault and every event waiter of the ctx. */
    void wakeAllLocked(UserfaultfdCtx ctx) {
        wakeRangeLocked(ctx, 0, Long.MAX_VALUE);
        for (UserfaultfdCtx.Event e : ctx.events) {
            e.done.countDown();
        }
        ctx.events.clear();
        ctx.readable.signalAll();
    }

    // ------------------------------------------------------------------ read(2) and events

    /**
     * read(2): up to {@code max} messages; page faults first, then events (the kernel's order). Waits until
     * {@code deadlineNanos} when nothing is pending (a non-blocking read passes 0 and gets an empty list, the
     * EAGAIN case). Reading a FORK event installs the child's uffd in the reader's fd table.
     */
    public List<UffdMsg> read(int pid, int fd, int max, long deadlineNanos) throws InterruptedException {
        if (max <= 0) {
            throw LinuxException.einval("read", "buffer smaller than one uffd_msg");
        }
        k.lock();
        try {
            Task t = k.taskLocked(pid, "read");
            UserfaultfdCtx ctx = ctxOf(t, fd, "read", true);
            OpenFile file = t.fds.get(fd); // the file this read is on: the fd number may be closed and reused
            boolean yielded = false;
            while (true) {
                List<UffdMsg> out = new ArrayList<>();
                while (out.size() < max && !ctx.pending.isEmpty()) {
                    UserfaultfdCtx.Fault f = ctx.readNext();
                    ctx.countUserfaults(-1, 0);
                    out.add(new UffdMsg.Pagefault(++ctx.seq, f.flags, f.address, f.ptid));
                }
                while (out.size() < max && !ctx.events.isEmpty()) {
                    out.add(deliverEventLocked(t, ctx, ctx.events.poll()));
                }
                if (!out.isEmpty() || ctx.released || deadlineNanos == 0) {
                    return out;
                }
                if (t.exited || t.fds.get(fd) != file) {
                    return out; // closed (or closed and its number reused) by this task meanwhile
                }
                long left = Kernel.nanosLeft(deadlineNanos);
                if (left <= 0) {
                    return out;
                }
                if (!yielded && Thread.currentThread().isVirtual()) {
                    // once, before waiting: a faulting thread that can run now (one this reader's last resolution
                    // woke, typically) gets the carrier first, and its message is here without parking the reader
                    // (a park, and the signal that ends it, cost more than the yield; a timed park on JDK 25 also
                    // queues a task to the ForkJoinPool's DelayScheduler and wakes its platform thread twice)
                    yielded = true;
                    k.unlock();
                    try {
                        Thread.yield();
                    } finally {
                        k.lock();
                    }
                } else if (deadlineNanos == Long.MAX_VALUE) {
                    ctx.readable.await();
                } else {
                    ctx.readable.await(left, TimeUnit.NANOSECONDS);
                }
            }
        } finally {
            k.unlock();
        }
    }

    private UffdMsg deliverEventLocked(Task reader, UserfaultfdCtx ctx, UserfaultfdCtx.Event e) {
        e.done.countDown();
        long seq = ++ctx.seq;
        return switch (e.type) {
            case Linux.UFFD_EVENT_FORK -> {
                OpenFile f = OpenFile.userfaultfd(e.child);
                int ufd = reader.installFd(f);
                yield new UffdMsg.Fork(seq, ufd, e.childTask.pid);
            }
            case Linux.UFFD_EVENT_REMAP -> new UffdMsg.Remap(seq, e.a, e.b, e.c);
            case Linux.UFFD_EVENT_REMOVE -> new UffdMsg.Remove(seq, e.a, e.b);
            case Linux.UFFD_EVENT_UNMAP -> new UffdMsg.Unmap(seq, e.a, e.b);
            default -> throw new IllegalStateException("event " + e.type);
        };
    }

    /**
     * The *_prep() half of a non-cooperative event: mmap_changing goes up now; the message itself is queued by
     * {@link #waitEvents}, one event at a time, as userfaultfd_event_wait_completion() does (a REMAP is read
     * before the UNMAP that follows it is even queued).
     */
    UserfaultfdCtx.Event queueEventLocked(UserfaultfdCtx ctx, int type, long a, long b, long c, UserfaultfdCtx child,
            Task childTask) {
        UserfaultfdCtx.Event e = new UserfaultfdCtx.Event(type, a, b, c, child, childTask);
        ctx.mmapChanging++;
        e.owner = ctx;
        return e;
    }

    /** Queues one prepared event for readers; a released ctx gets none (the raiser does not wait). */
    private void publishEvent(UserfaultfdCtx.Event e) {
        k.lock();
        try {
            UserfaultfdCtx ctx = e.owner;
            if (ctx.released) {
                e.done.countDown();
                if (e.child != null) {
                    releaseLocked(e.child);
                }
                return;
            }
            ctx.events.add(e);
            ctx.readable.signalAll();
            k.observer.eventRaised(e.type);
        } finally {
            k.unlock();
        }
    }

    /**
     * The raising thread queues each event and waits until it is read (or its uffd released); then
     * mmap_changing drops. Interruption (a cancelled call) withdraws events not yet read, like a fatal signal.
     */
    void waitEvents(List<UserfaultfdCtx.Event> events) {
        boolean interrupted = false;
        for (UserfaultfdCtx.Event e : events) {
            if (!interrupted) {
                publishEvent(e);
                try {
                    e.done.await();
                } catch (InterruptedException ie) {
                    interrupted = true;
                }
            }
            k.lock();
            try {
                if (e.done.getCount() > 0) {
                    e.owner.events.remove(e);
                    if (e.child != null) {
                        releaseLocked(e.child);
                    }
                }
                e.owner.mmapChanging--;
            } finally {
                k.unlock();
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
            throw new LinuxException(Errno.EINTR, "event wait", 0, "interrupted while the event was unread");
        }
    }

    /** dup_userfaultfd(): the child's ctx, same flags and features. */
    UserfaultfdCtx forkCtxLocked(UserfaultfdCtx parent, MmStruct childMm) {
        // the child's memcg (fork creates the child task before copying the mm: it is its owner by now)
        MemCgroup cg = childMm.owner != null ? childMm.owner.memcg : parent.memcg;
        UserfaultfdCtx c = new UserfaultfdCtx(k.newCtxId(), childMm, parent.flags, k.lock.newCondition(), cg);
        c.features = parent.features;
        c.apiDone = true;
        cg.uffds.add(c); // counted, never refused: fork's process quota bounds it
        return c;
    }

    /**
     * userfaultfd_release(): the last fd went away. Every VMA of the ctx is unregistered with its uffd-wp state
     * cleared; every waiter (faults and events) is woken and retries without uffd.
     */
    void releaseLocked(UserfaultfdCtx ctx) {
        if (ctx.released) {
            return;
        }
        ctx.released = true;
        MmStruct mm = ctx.mm;
        if (mm.owner != null) {
            mm.owner.memcg.uffds.remove(ctx);
        }
        if (!mm.dead) {
            for (Vma v : new ArrayList<>(mm.vmas.values())) {
                if (v.uffd == ctx) {
                    clearVmaLocked(v);
                }
            }
            mm.mergeAround(0, Long.MAX_VALUE);
        }
        for (UserfaultfdCtx.Event e : new ArrayList<>(ctx.events)) {
            if (e.child != null) {
                releaseLocked(e.child);
            }
        }
        wakeAllLocked(ctx);
    }

    /** fdinfo-like view of a uffd, for tests and diagnostics. */
    public record CtxInfo(long features, boolean apiDone, int pending, int waiting, int events, int mmapChanging,
            long total, boolean released) {
    }

    public CtxInfo info(int pid, int fd) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "fdinfo");
            UserfaultfdCtx ctx = ctxOf(t, fd, "fdinfo", false);
            return new CtxInfo(ctx.features | (ctx.apiDone ? Linux.UFFD_FEATURE_INITIALIZED : 0), ctx.apiDone,
                    ctx.pending.size(), ctx.waiting.size(), ctx.events.size(), ctx.mmapChanging, ctx.total,
                    ctx.released);
        } finally {
            k.unlock();
        }
    }
}
