package io.uffdemu.server.mm;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The emulated machine: physical memory, swap, hugetlb pools, sysctls, processes and their files. Entry
 * points are named after syscalls. Memory-management syscalls live in {@link VmOps}, the fault path in
 * {@link Faults}, userfaultfd in {@link Userfaultfd}, /proc/PID/pagemap in {@link Pagemap}.
 *
 * <h2>Locking</h2>
 * One lock, {@link #lock}, guards all state of the core (it plays {@code mmap_lock}, the page-table locks,
 * the page-cache lock and the uffd ctx locks at once). Threads never block while holding it: a thread
 * that must wait for a userfaultfd handler (a fault) or a reader (a non-cooperative event) queues a waiter,
 * releases the lock, waits, and retakes the lock to retry, as {@code handle_userfault()} does with
 * {@code mmap_lock}.
 */
public final class Kernel {
    /** Emulated machine size, debug switches and the kernel release and config imitated ({@link KernelProfile}). */
    public record Config(long memoryBytes, long swapBytes, long nrHugepages2M, long nrHugepages1G,
            boolean checkInvariants, KernelProfile profile) {
        public static final Config DEFAULT = new Config(4L << 30, 1L << 30, 0, 0, false);

        public Config {
            if (profile == null) {
                profile = KernelProfile.DEFAULT;
            }
        }

        /** A machine running {@link KernelProfile#DEFAULT} (Linux 6.18 with PTE markers). */
        public Config(long memoryBytes, long swapBytes, long nrHugepages2M, long nrHugepages1G,
                boolean checkInvariants) {
            this(memoryBytes, swapBytes, nrHugepages2M, nrHugepages1G, checkInvariants, KernelProfile.DEFAULT);
        }

        public Config withProfile(KernelProfile p) {
            return new Config(memoryBytes, swapBytes, nrHugepages2M, nrHugepages1G, checkInvariants, p);
        }
    }

    final ReentrantLock lock = new ReentrantLock();
    final FramePool frames;
    final SwapDevice swap;
    final Map<Long, HugetlbPool> hstates = new TreeMap<>();
    final TreeMap<Integer, Task> tasks = new TreeMap<>();
    /** The root memory cgroup: machine-wide limits; tenants' memcgs are its children, by name. */
    final MemCgroup rootMemcg = new MemCgroup("/", null, MemCgroup.Limits.UNLIMITED);
    final Map<String, MemCgroup> memcgs = new HashMap<>();
    /** hugetlbfs inodes whose resv_map holds hugetlb.rsvd charges ({@link Inode#resvCharged} not empty). */
    final Set<Inode> resvInodes = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
    final Config config;
    /** The release and config imitated; fixed for the machine's life. */
    final KernelProfile profile;
    private int nextPid = 1000;
    private long nextIno = 1;
    private long nextCtx = 1;
    final AtomicInteger nextTid = new AtomicInteger(100000);
    /** vm.unprivileged_userfaultfd */
    int unprivilegedUserfaultfd;
    /** /sys/kernel/mm/transparent_hugepage/enabled: never, madvise (this default, as on the reference host), always. */
    static final int THP_NEVER = 0, THP_MADVISE = 1, THP_ALWAYS = 2;
    public static final java.util.List<String> THP_MODES = java.util.List.of("never", "madvise", "always");
    int thpEnabled = THP_MADVISE;
    /** /sys/kernel/mm/transparent_hugepage/use_zero_page */
    boolean thpUseZeroPage = true;
    /**
     * Whether an anonymous read fault maps the shared zero page: mm/memory.c {@code do_anonymous_page()} (and the
     * huge zero page in mm/huge_memory.c {@code do_huge_pmd_anonymous_page()}, with {@code use_zero_page}). On
     * by default, as in mainline. Some hosts turn it off at boot ({@code pvm_no_zero_page=1}, the kernel of the
     * machines CI runs on): there a read fault allocates a zeroed page (a huge folio for THP) and maps it as a
     * write fault would, while UFFDIO_ZEROPAGE and a THP split still map the zero page (ConformanceTest compares
     * both on such a host). Fixed at boot on a real kernel; a knob here ({@link #READ_FAULT_ZERO_PAGE}).
     */
    boolean readFaultZeroPage = true;
    /** /sys/kernel/mm/transparent_hugepage/shmem_enabled (SHMEM_HUGE_*): never here, as on the reference host. */
    public static final java.util.List<String> SHMEM_THP_MODES = java.util.List.of("never", "always", "within_size",
            "advise", "deny", "force");
    String shmemThpEnabled = "never";

    /** Hooks for metrics; called with the lock held, must not block. */
    public interface Observer {
        default void faultRaised(long flags, Vma vma) {
        }

        default void faultWoken(long waitedNanos) {
        }

        default void eventRaised(int event) {
        }
    }

    /** Debug only: writes that landed on a uffd-wp PTE unseen by the handler (see InvariantChecker). */
    final java.util.List<String> wpWriteViolations = new java.util.ArrayList<>();
    /**
     * Snapshot of the fault gauges: {faults queued and not yet read by any handler, threads parked in a userfault
     * (pending or read, not yet woken)}, across all uffds: the root memcg's counts, every uffd's memcg being the root
     * or below it.
     */
    public long[] faultGauges() {
        lock();
        try {
            return new long[] {rootMemcg.pendingFaults(), rootMemcg.blockedThreads()};
        } finally {
            unlock();
        }
    }

    volatile Observer observer = new Observer() {
    };

    public void setObserver(Observer o) {
        observer = o;
    }

    public final VmOps vm;
    public final Faults faults;
    public final Userfaultfd uffd;
    public final Pagemap pagemap;

    public Kernel(Config config) {
        this.config = config;
        this.profile = config.profile();
        // vm.unprivileged_userfaultfd defaulted to 1 until the UFFD_USER_MODE_ONLY series of 5.11 made it 0
        this.unprivilegedUserfaultfd = profile.atLeast(5, 11) ? 0 : 1;
        this.frames = new FramePool(config.memoryBytes());
        this.frames.active = rootMemcg;
        this.swap = new SwapDevice(config.swapBytes());
        HugetlbPool h2 = new HugetlbPool(Linux.PMD_SIZE);
        HugetlbPool h1 = new HugetlbPool(Linux.PUD_SIZE);
        h2.setNr(config.nrHugepages2M());
        h1.setNr(config.nrHugepages1G());
        hstates.put(h2.pageSize, h2);
        hstates.put(h1.pageSize, h1);
        this.vm = new VmOps(this);
        this.faults = new Faults(this);
        this.uffd = new Userfaultfd(this);
        this.pagemap = new Pagemap(this);
    }

    /** The kernel release and config this machine imitates. */
    public KernelProfile profile() {
        return profile;
    }

    void lock() {
        lock.lock();
        if (lock.getHoldCount() == 1) {
            startCallLocked();
        }
    }

    /**
     * The state every entry point starts from: no task is running yet (charges go to the root) and no charge was
     * refused. {@link #lock()} sets it up; a batch of calls under one acquisition sets it up before each call.
     */
    void startCallLocked() {
        frames.active = rootMemcg;
        FramePool.REFUSED.remove();
    }

    /** Whether another thread waits for the kernel lock (a batch under one acquisition lets it in between). */
    boolean lockWanted() {
        return lock.hasQueuedThreads();
    }

    void unlock() {
        if (config.checkInvariants()) {
            try {
                InvariantChecker.check(this);
            } finally {
                lock.unlock();
            }
        } else {
            lock.unlock();
        }
    }

    // ------------------------------------------------------------------ processes

    /** Creates a process with an empty mm in the root memcg. {@code owner} is an opaque tag (tenant) the core keeps. */
    public Task createProcess(String name, int uid, boolean capSysPtrace, String owner) {
        return createProcess(name, uid, capSysPtrace, owner, null);
    }

    /** Creates a process with an empty mm in {@code memcg} (null = the root memcg). */
    public Task createProcess(String name, int uid, boolean capSysPtrace, String owner, MemCgroup memcg) {
        lock();
        try {
            MemCgroup cg = memcg == null ? rootMemcg : memcg;
            MmStruct mm = new MmStruct();
            mm.vm = vm;
            Task t = new Task(nextPid++, name == null ? "" : name, uid, capSysPtrace, 0, mm, owner, cg);
            tasks.put(t.pid, t);
            cg.tasks.add(t);
            return t;
        } finally {
            unlock();
        }
    }

    // ------------------------------------------------------------------ memory cgroups

    /** The root memcg (its limits are the machine-wide ones). */
    public MemCgroup rootMemcg() {
        return rootMemcg;
    }

    /**
     * mkdir of a child memcg of the root, or the existing one of that name; {@code limits} are applied to a new
     * memcg only (see {@link #setMemcgLimits}).
     */
    public MemCgroup memcg(String name, MemCgroup.Limits limits) {
        lock();
        try {
            return memcgs.computeIfAbsent(name, n -> new MemCgroup(n, rootMemcg, limits));
        } finally {
            unlock();
        }
    }

    /** Writes memory.max and friends; lowering below the usage leaves the usage (later charges fail). */
    public void setMemcgLimits(MemCgroup cg, MemCgroup.Limits limits) {
        lock();
        try {
            cg.limits = limits;
        } finally {
            unlock();
        }
    }

    /** A consistent snapshot of a memcg's counters (memory.current, memory.stat, memory.events). */
    public record MemcgStat(long memoryCurrent, long swapCurrent, long hugetlbCurrent, long hugetlbRsvdCurrent,
            long mapCount, long uffds, long registered, long pendingFaults, long blockedThreads, long eventsMax,
            long eventsOom) {
    }

    public MemcgStat memcgStat(MemCgroup cg) {
        lock();
        try {
            return new MemcgStat(cg.memoryCurrent(), cg.swapCurrent(), cg.hugetlbCurrent(), cg.hugetlbRsvdCurrent(),
                    cg.mapCount(), cg.uffdCount(), cg.registeredCount(), cg.pendingFaults(), cg.blockedThreads(),
                    cg.eventsMax, cg.eventsOom);
        } finally {
            unlock();
        }
    }

    /**
     * Before a call that fills page tables over {@code [addr, addr + len)} without allocating frames (e.g.
     * MADV_GUARD_INSTALL): ENOMEM (quota) when the tables it may need would exceed the memcg's page-table budget.
     */
    public void checkPgtableRoom(int pid, long len, String call) {
        lock();
        try {
            Task t = taskLocked(pid, call);
            long tables = len <= 0 ? 0 : Math.min(len, Linux.TASK_SIZE) / Linux.PMD_SIZE + 2;
            t.memcg.checkPgtableRoom(tables, call);
        } finally {
            unlock();
        }
    }

    /**
     * The memcg whose limit refused this thread's last frame allocation, if the last one failed; the edge uses
     * it to tell a tenant's limit (RESOURCE_EXHAUSTED, quota) from the machine's exhaustion.
     */
    public MemCgroup lastChargeRefusal() {
        return FramePool.REFUSED.get();
    }

    /** Entry points (and per-page loops) that can add page tables without allocating a frame. */
    private static final java.util.Set<String> PGTABLE_GROWING_CALLS = java.util.Set.of("access", "mmap", "madvise",
            "mremap", "fork", "UFFDIO_ZEROPAGE", "UFFDIO_COPY", "UFFDIO_CONTINUE", "UFFDIO_POISON", "UFFDIO_MOVE",
            "UFFDIO_WRITEPROTECT");

    /**
     * The live task with this pid, or ESRCH. Caller holds the lock. The task becomes {@code current}: frames
     * allocated from here on are charged to its memcg, which is first brought back under its limit by a reclaim
     * batch when its margin is low ({@code mem_cgroup_handle_over_high()}; this is a safe point, no folio is held).
     */
    Task taskLocked(int pid, String call) {
        Task t = tasks.get(pid);
        if (t == null || t.exited) {
            throw new LinuxException(Errno.ESRCH, call, 0, "no process " + pid);
        }
        if (frames.active != t.memcg) {
            frames.active = t.memcg;
            if (PGTABLE_GROWING_CALLS.contains(call)) {
                t.memcg.checkPgtableRoom(0, call);
            }
            if (t.memcg != rootMemcg && t.memcg.marginPages() < MemCgroup.RECLAIM_BATCH
                    && t.memcg.swapMarginPages() > 0 && swap.usedPages() < swap.capacityPages()) {
                vm.reclaimMemcgLocked(t.memcg, MemCgroup.RECLAIM_BATCH);
            }
        }
        return t;
    }

    public Task task(int pid) {
        lock();
        try {
            return taskLocked(pid, "getpid");
        } finally {
            unlock();
        }
    }

    /** Runs {@code view} under the kernel lock: a consistent read of a task's mm from outside the core. */
    public <T> T locked(java.util.function.Supplier<T> view) {
        lock();
        try {
            return view.get();
        } finally {
            unlock();
        }
    }

    public List<Task> tasks() {
        lock();
        try {
            List<Task> out = new ArrayList<>();
            for (Task t : tasks.values()) {
                if (!t.exited) {
                    out.add(t);
                }
            }
            return out;
        } finally {
            unlock();
        }
    }

    /** fork(2): see {@link VmOps#dupMmapLocked}. Blocks until every FORK event it raised was read. */
    public Task fork(int pid) {
        List<UserfaultfdCtx.Event> raised = new ArrayList<>();
        Task child;
        lock();
        try {
            Task parent = taskLocked(pid, "fork");
            MmStruct mm = new MmStruct();
            mm.vm = vm;
            parent.memcg.checkMapCount("fork"); // before the child exists: it charges its memcg from birth
            child = new Task(nextPid++, parent.name, parent.uid, parent.capSysPtrace, parent.pid, mm, parent.owner,
                    parent.memcg);
            parent.memcg.tasks.add(child);
            Map<UserfaultfdCtx, UserfaultfdCtx> forked = vm.dupMmapLocked(parent.mm, mm);
            for (Map.Entry<Integer, OpenFile> e : parent.fds.entrySet()) {
                child.fds.put(e.getKey(), e.getValue());
                e.getValue().refs++;
                if (e.getValue().inode != null) {
                    e.getValue().inode.refs++;
                }
            }
            tasks.put(child.pid, child);
            for (Map.Entry<UserfaultfdCtx, UserfaultfdCtx> e : forked.entrySet()) {
                raised.add(uffd.queueEventLocked(e.getKey(), Linux.UFFD_EVENT_FORK, 0, 0, 0, e.getValue(), child));
            }
        } finally {
            unlock();
        }
        uffd.waitEvents(raised);
        return child;
    }

    /** exit(2) of the whole thread group: exit_mmap() then exit_files(). */
    public void exit(int pid) {
        lock();
        try {
            Task t = taskLocked(pid, "exit");
            t.exited = true;
            t.mm.dead = true;
            java.util.Set<UserfaultfdCtx> ctxs = new java.util.HashSet<>();
            for (Vma v : t.mm.vmas.values()) {
                if (v.uffd != null) {
                    ctxs.add(v.uffd);
                }
            }
            vm.exitMmap(t.mm);
            for (UserfaultfdCtx c : ctxs) {
                uffd.wakeAllLocked(c);
            }
            for (Integer fd : new ArrayList<>(t.fds.keySet())) {
                closeLocked(t, fd);
            }
            tasks.remove(pid);
            t.mm.pt.uncharge(); // exitMmap freed the tables; nothing adds one to a dead mm (ESRCH, mm.dead)
            t.memcg.tasks.remove(t);
        } finally {
            unlock();
        }
    }

    // ------------------------------------------------------------------ files

    /** memfd_create(2). */
    public int memfdCreate(int pid, String name, int flags) {
        lock();
        try {
            Task t = taskLocked(pid, "memfd_create");
            int known = Linux.MFD_CLOEXEC | Linux.MFD_ALLOW_SEALING | Linux.MFD_HUGETLB | Linux.MFD_NOEXEC_SEAL
                    | Linux.MFD_EXEC;
            int hugeBits = (flags >>> Linux.MFD_HUGE_SHIFT) & Linux.MFD_HUGE_MASK;
            if ((flags & ~known & ~(Linux.MFD_HUGE_MASK << Linux.MFD_HUGE_SHIFT)) != 0) {
                throw LinuxException.einval("memfd_create", "unknown flags");
            }
            if (hugeBits != 0 && (flags & Linux.MFD_HUGETLB) == 0) {
                throw LinuxException.einval("memfd_create", "MFD_HUGE_* without MFD_HUGETLB");
            }
            if (name == null || name.length() > 249) {
                throw LinuxException.einval("memfd_create", "name longer than 249 bytes");
            }
            long pageSize = Linux.PAGE_SIZE;
            boolean huge = (flags & Linux.MFD_HUGETLB) != 0;
            if (huge) {
                pageSize = hugePageSize(hugeBits, "memfd_create");
            }
            t.checkFdRoom("memfd_create");
            Inode inode = newInode(name, pageSize, huge, false);
            OpenFile f = OpenFile.memfd(inode);
            inode.refs++;
            return t.installFd(f);
        } finally {
            unlock();
        }
    }

    Inode newInode(String name, long pageSize, boolean hugetlb, boolean anonShared) {
        return new Inode(nextIno++, name, pageSize, hugetlb, anonShared);
    }

    /** The huge page size selected by MAP_HUGE_* / MFD_HUGE_* bits (0 = default 2 MiB); EINVAL if unsupported. */
    long hugePageSize(int log2, String call) {
        if (log2 == 0) {
            return Linux.PMD_SIZE;
        }
        if (log2 == 21 || log2 == 30) {
            return 1L << log2;
        }
        throw LinuxException.einval(call, "unsupported huge page size 2^" + log2);
    }

    HugetlbPool hstate(long pageSize) {
        return hstates.get(pageSize);
    }

    OpenFile fileLocked(Task t, int fd, String call) {
        OpenFile f = t.fds.get(fd);
        if (f == null) {
            throw new LinuxException(Errno.EBADF, call, 0, "fd " + fd + " is not open");
        }
        return f;
    }

    Inode memfdLocked(Task t, int fd, String call) {
        OpenFile f = fileLocked(t, fd, call);
        if (f.inode == null) {
            throw LinuxException.einval(call, "fd " + fd + " is not a memfd");
        }
        return f.inode;
    }

    /** ftruncate(2) on a memfd. */
    public void ftruncate(int pid, int fd, long length) {
        lock();
        try {
            Task t = taskLocked(pid, "ftruncate");
            Inode inode = memfdLocked(t, fd, "ftruncate");
            if (length < 0) {
                throw LinuxException.einval("ftruncate", "negative length");
            }
            if (length > (1L << 46)) {
                throw new LinuxException(Errno.EFBIG, "ftruncate");
            }
            if (inode.hugetlb && length % inode.pageSize != 0) {
                throw LinuxException.einval("ftruncate", "hugetlbfs size must be huge page aligned");
            }
            if (length < inode.size) {
                vm.truncateLocked(inode, length);
            }
            inode.size = length;
        } finally {
            unlock();
        }
    }

    /** fallocate(2) on a memfd: allocation, or FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE. */
    public void fallocate(int pid, int fd, int mode, long offset, long len) {
        lock();
        try {
            Task t = taskLocked(pid, "fallocate");
            Inode inode = memfdLocked(t, fd, "fallocate");
            if ((mode & ~(Linux.FALLOC_FL_KEEP_SIZE | Linux.FALLOC_FL_PUNCH_HOLE)) != 0) {
                throw new LinuxException(Errno.EOPNOTSUPP, "fallocate", 0, "unsupported mode");
            }
            if (offset < 0 || len <= 0) {
                throw LinuxException.einval("fallocate", "bad offset or length");
            }
            if (offset + len < 0 || offset + len > (1L << 46)) {
                throw new LinuxException(Errno.EFBIG, "fallocate");
            }
            if ((mode & Linux.FALLOC_FL_PUNCH_HOLE) != 0) {
                if ((mode & Linux.FALLOC_FL_KEEP_SIZE) == 0) {
                    throw new LinuxException(Errno.EOPNOTSUPP, "fallocate", 0, "PUNCH_HOLE needs KEEP_SIZE");
                }
                vm.punchHoleLocked(inode, offset, offset + len);
                return;
            }
            long ps = inode.pageSize;
            long first = offset / ps;
            long last = (offset + len + ps - 1) / ps;
            for (long idx = first; idx < last; idx++) {
                if (inode.cache.get(idx) == null) {
                    long pfn = vm.allocCachePageLocked(inode, idx);
                    if (pfn < 0) {
                        throw new LinuxException(Errno.ENOSPC, "fallocate");
                    }
                    if (!inode.hugetlb) {
                        frames.clearFlags(pfn, FramePool.PG_UPTODATE); // shmem_fallocate(): not uptodate until used
                    }
                }
            }
            if ((mode & Linux.FALLOC_FL_KEEP_SIZE) == 0 && offset + len > inode.size) {
                inode.size = offset + len;
            }
        } finally {
            unlock();
        }
    }

    /** pread(2) on a memfd, through the page cache (holes read as zeros). */
    public byte[] pread(int pid, int fd, long offset, int len) {
        lock();
        try {
            Task t = taskLocked(pid, "pread");
            Inode inode = memfdLocked(t, fd, "pread");
            if (offset < 0 || len < 0) {
                throw LinuxException.einval("pread", "negative offset or length");
            }
            long end = Math.min(inode.size, offset + len);
            if (end <= offset) {
                return new byte[0];
            }
            byte[] out = new byte[(int) (end - offset)];
            long pos = offset;
            while (pos < end) {
                long idx = pos / inode.pageSize;
                long inPage = pos % inode.pageSize;
                int n = (int) Math.min(Linux.PAGE_SIZE - (inPage % Linux.PAGE_SIZE), end - pos);
                Long entry = inode.cache.get(idx);
                if (entry != null) {
                    long pfn = vm.cachePfnLocked(inode, idx, entry);
                    frames.read(pfn + inPage / Linux.PAGE_SIZE, (int) (inPage % Linux.PAGE_SIZE), out,
                            (int) (pos - offset), n);
                }
                pos += n;
            }
            return out;
        } finally {
            unlock();
        }
    }

    /** pwrite(2) on a memfd: allocates page-cache pages for holes; never extends hugetlbfs files. */
    public long pwrite(int pid, int fd, long offset, byte[] data) {
        lock();
        try {
            Task t = taskLocked(pid, "pwrite");
            Inode inode = memfdLocked(t, fd, "pwrite");
            if (offset < 0) {
                throw LinuxException.einval("pwrite", "negative offset");
            }
            if (inode.hugetlb) {
                throw LinuxException.einval("pwrite", "hugetlbfs does not support write(2)");
            }
            long end = offset + data.length;
            if (end > (1L << 46)) {
                throw new LinuxException(Errno.EFBIG, "pwrite");
            }
            long pos = offset;
            while (pos < end) {
                long idx = pos / Linux.PAGE_SIZE;
                int inPage = (int) (pos % Linux.PAGE_SIZE);
                int n = (int) Math.min(Linux.PAGE_SIZE - inPage, end - pos);
                Long entry = inode.cache.get(idx);
                long pfn = entry == null ? vm.allocCachePageLocked(inode, idx) : vm.cachePfnLocked(inode, idx, entry);
                if (pfn < 0) {
                    if (pos == offset) {
                        throw new LinuxException(Errno.ENOSPC, "pwrite");
                    }
                    break;
                }
                frames.write(pfn, inPage, data, (int) (pos - offset), n);
                frames.setFlags(pfn, FramePool.PG_DIRTY | FramePool.PG_UPTODATE);
                pos += n;
            }
            if (pos > inode.size) {
                inode.size = pos;
            }
            return pos - offset;
        } finally {
            unlock();
        }
    }

    /** pidfd_getfd(2): the target's open file, installed in the caller's fd table. */
    public int pidfdGetfd(int pid, int targetPid, int targetFd) {
        lock();
        try {
            Task t = taskLocked(pid, "pidfd_getfd");
            Task target = taskLocked(targetPid, "pidfd_getfd");
            OpenFile f = fileLocked(target, targetFd, "pidfd_getfd");
            t.checkFdRoom("pidfd_getfd");
            if (f.inode != null) {
                f.inode.refs++;
            }
            return t.installFd(f);
        } finally {
            unlock();
        }
    }

    /**
     * {@code fget()} of a memfd for passing it on later: a counted reference to the open file behind {@code fd}
     * that keeps it (and its page cache) alive while in flight, like a file in an SCM_RIGHTS message. EBADF when
     * the fd is not open, EINVAL when it is not a memfd. Release with {@link #fput}.
     */
    public OpenFile fgetMemfd(int pid, int fd, String call) {
        lock();
        try {
            Task t = taskLocked(pid, call);
            Inode inode = memfdLocked(t, fd, call);
            OpenFile f = t.fds.get(fd);
            f.refs++;
            inode.refs++;
            return f;
        } finally {
            unlock();
        }
    }

    /** {@code receive_fd()}: installs an in-flight file (from {@link #fgetMemfd}) in pid's table; the lowest free fd. */
    public int receiveFd(int pid, OpenFile f, String call) {
        lock();
        try {
            Task t = taskLocked(pid, call);
            t.checkFdRoom(call);
            if (f.inode != null) {
                f.inode.refs++;
            }
            return t.installFd(f);
        } finally {
            unlock();
        }
    }

    /** {@code fput()} of a reference taken by {@link #fgetMemfd}. */
    public void fput(OpenFile f) {
        lock();
        try {
            if (--f.refs == 0 && f.uffd != null) {
                uffd.releaseLocked(f.uffd);
            }
            if (f.inode != null) {
                putInodeLocked(f.inode);
            }
        } finally {
            unlock();
        }
    }

    /** close(2) of {@code fd} only if it still refers to {@code f} (and the process lives); true if closed. */
    public boolean closeIfSame(int pid, int fd, OpenFile f) {
        lock();
        try {
            Task t = tasks.get(pid);
            if (t == null || t.exited || t.fds.get(fd) != f) {
                return false;
            }
            closeLocked(t, fd);
            return true;
        } finally {
            unlock();
        }
    }

    /** close(2). */
    public void close(int pid, int fd) {
        lock();
        try {
            Task t = taskLocked(pid, "close");
            fileLocked(t, fd, "close");
            closeLocked(t, fd);
        } finally {
            unlock();
        }
    }

    void closeLocked(Task t, int fd) {
        OpenFile f = t.fds.remove(fd);
        if (f == null) {
            return;
        }
        if (--f.refs == 0) {
            if (f.uffd != null) {
                uffd.releaseLocked(f.uffd);
            }
        } else if (f.uffd != null) {
            // the ctx lives on (a dup, or a fork child's copy of the fd): a read(2) of this task blocked on the fd
            // re-checks and returns (the emulator ends a blocked read whose fd its own task closed; Linux would
            // keep it blocked on the file it holds)
            f.uffd.readable.signalAll();
        }
        if (f.inode != null) {
            putInodeLocked(f.inode);
        }
    }

    void putInodeLocked(Inode inode) {
        if (--inode.refs == 0) {
            vm.truncateLocked(inode, 0); // hugetlbfs_evict_inode(): every page and reservation goes
        }
    }

    // ------------------------------------------------------------------ sysctl and meminfo

    /** Reads a sysctl by its /proc/sys path ("vm/nr_hugepages", ...). ENOENT when unknown. */
    public String sysctl(String name) {
        lock();
        try {
            return switch (name) {
                case "vm/unprivileged_userfaultfd" -> Integer.toString(unprivilegedUserfaultfd);
                case "vm/nr_hugepages" -> Long.toString(hstate(Linux.PMD_SIZE).nrHugepages);
                case "vm/nr_hugepages_1G" -> Long.toString(hstate(Linux.PUD_SIZE).nrHugepages);
                case "vm/mmap_min_addr" -> Long.toString(Linux.MMAP_MIN_ADDR);
                case THP_ENABLED -> THP_MODES.get(thpEnabled);
                case THP_USE_ZERO_PAGE -> thpUseZeroPage ? "1" : "0";
                case READ_FAULT_ZERO_PAGE -> readFaultZeroPage ? "1" : "0";
                case THP_SHMEM_ENABLED -> shmemThpEnabled;
                default -> throw new LinuxException(Errno.ENOENT, "sysctl", 0, "unknown sysctl " + name);
            };
        } finally {
            unlock();
        }
    }

    /** sysfs knobs served through the sysctl interface, named by their path under /sys/kernel. */
    public static final String THP_ENABLED = "mm/transparent_hugepage/enabled";
    public static final String THP_USE_ZERO_PAGE = "mm/transparent_hugepage/use_zero_page";
    public static final String THP_SHMEM_ENABLED = "mm/transparent_hugepage/shmem_enabled";
    /**
     * Not a file of Linux: whether anonymous read faults map the zero page (1, mainline) or allocate (0); see
     * {@link #readFaultZeroPage}. Settable here; read-only on the Linux backend, which probes its host.
     */
    public static final String READ_FAULT_ZERO_PAGE = "mm/read_fault_zero_page";

    public void setSysctl(String name, String value) {
        if (name.equals(THP_ENABLED) || name.equals(THP_SHMEM_ENABLED)) {
            java.util.List<String> modes = name.equals(THP_ENABLED) ? THP_MODES : SHMEM_THP_MODES;
            String mode = value.trim();
            if (!modes.contains(mode)) {
                throw LinuxException.einval("sysctl", String.join(", ", modes));
            }
            lock();
            try {
                if (name.equals(THP_ENABLED)) {
                    thpEnabled = THP_MODES.indexOf(mode);
                } else {
                    shmemThpEnabled = mode;
                }
            } finally {
                unlock();
            }
            return;
        }
        long v;
        try {
            v = Long.parseLong(value.trim());
        } catch (NumberFormatException e) {
            throw LinuxException.einval("sysctl", "not a number: " + value);
        }
        lock();
        try {
            switch (name) {
                case "vm/unprivileged_userfaultfd" -> {
                    if (v != 0 && v != 1) {
                        throw LinuxException.einval("sysctl", "0 or 1");
                    }
                    unprivilegedUserfaultfd = (int) v;
                }
                case "vm/nr_hugepages", "vm/nr_hugepages_1G" -> {
                    HugetlbPool h = hstate(name.endsWith("1G") ? Linux.PUD_SIZE : Linux.PMD_SIZE);
                    if (v < 0 || v * h.pageSize > config.memoryBytes()) {
                        throw LinuxException.einval("sysctl", "nr_hugepages out of range");
                    }
                    h.setNr(v);
                }
                case "vm/mmap_min_addr" -> throw new LinuxException(Errno.EPERM, "sysctl", 0, "read-only here");
                case THP_USE_ZERO_PAGE -> {
                    if (v != 0 && v != 1) {
                        throw LinuxException.einval("sysctl", "0 or 1");
                    }
                    thpUseZeroPage = v == 1;
                }
                case READ_FAULT_ZERO_PAGE -> {
                    if (v != 0 && v != 1) {
                        throw LinuxException.einval("sysctl", "0 or 1");
                    }
                    readFaultZeroPage = v == 1;
                }
                default -> throw new LinuxException(Errno.ENOENT, "sysctl", 0, "unknown sysctl " + name);
            }
        } finally {
            unlock();
        }
    }

    /** Off-heap bytes the emulated physical memory holds for page contents ({@link FramePool#contentBytes}). */
    public long frameContentBytes() {
        lock();
        try {
            return frames.contentBytes();
        } finally {
            unlock();
        }
    }

    /** /proc/meminfo-like counters, in kB as the kernel prints them. */
    public Map<String, Long> meminfo() {
        lock();
        try {
            Map<String, Long> m = new HashMap<>();
            m.put("MemTotal", frames.capacityPages() * 4);
            m.put("MemFree", frames.machineFreePages() * 4);
            m.put("SwapTotal", swap.capacityPages() * 4);
            m.put("SwapFree", (swap.capacityPages() - swap.usedPages()) * 4);
            HugetlbPool h2 = hstate(Linux.PMD_SIZE);
            m.put("HugePages_Total", h2.nrHugepages);
            m.put("HugePages_Free", h2.free);
            m.put("HugePages_Rsvd", h2.resv);
            m.put("Hugepagesize", h2.pageSize / 1024);
            HugetlbPool h1 = hstate(Linux.PUD_SIZE);
            m.put("HugePages1G_Total", h1.nrHugepages);
            m.put("HugePages1G_Free", h1.free);
            long anon = 0;
            long shmem = 0;
            for (Task t : tasks.values()) {
                anon += t.mm.rssAnon;
                shmem += t.mm.rssShmem;
            }
            m.put("AnonPages", anon * 4);
            m.put("ShmemMapped", shmem * 4);
            return m;
        } finally {
            unlock();
        }
    }

    /** /proc/PID/maps: a snapshot of the VMAs (do not mutate). */
    public List<Vma> maps(int pid) {
        lock();
        try {
            MmStruct mm = taskLocked(pid, "maps").mm;
            List<Vma> out = new ArrayList<>();
            for (Vma v : mm.vmas.values()) {
                out.add(v.copyFor(mm));
            }
            return out;
        } finally {
            unlock();
        }
    }

    /** Number of live tasks (for gauges). */
    public int taskCount() {
        lock();
        try {
            return tasks.size();
        } finally {
            unlock();
        }
    }

    long newCtxId() {
        return nextCtx++;
    }

    static long nanosLeft(long deadlineNanos) {
        return deadlineNanos == Long.MAX_VALUE ? Long.MAX_VALUE : deadlineNanos - System.nanoTime();
    }

    static boolean await(java.util.concurrent.CountDownLatch latch, long deadlineNanos) throws InterruptedException {
        if (deadlineNanos == Long.MAX_VALUE) {
            latch.await();
            return true;
        }
        return latch.await(Math.max(0, nanosLeft(deadlineNanos)), TimeUnit.NANOSECONDS);
    }
}
