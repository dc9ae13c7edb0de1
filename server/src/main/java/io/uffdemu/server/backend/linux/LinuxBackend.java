package io.uffdemu.server.backend.linux;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.uffdemu.server.backend.BackendStatus;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.ProcessInfo;
import io.uffdemu.server.backend.VmaInfo;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.Pagemap;
import io.uffdemu.server.mm.UffdMsg;
import io.uffdemu.server.mm.Userfaultfd;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The real-kernel backend: every SPI call is proxied to the Linux kernel this server runs on, through FFM
 * ({@link Native}). Emulated processes live <em>inside the server process</em>.
 *
 * <h2>Address translation: none</h2>
 * Each emulated process owns a disjoint <em>window</em> of the server's address space, {@value #WINDOW_SIZE_GIB} GiB
 * starting at {@code 0x200000000000 + slot * 128 GiB} (far below the kernel's top-down mmap area and far above the
 * JVM's heap). The addresses clients see are the real addresses: mmap results, uffd message addresses, maps and
 * pagemap are all real. Non-fixed mmap picks a free spot top-down inside the window (MAP_FIXED_NOREPLACE);
 * MAP_FIXED and every range argument must lie inside the caller's window. Nothing is reserved: whatever
 * /proc/self/maps shows inside a window is that process's mappings (queried with PROCMAP_QUERY).
 *
 * <h2>What the single server process cannot do (ENOSYS, mapped to UNIMPLEMENTED)</h2>
 * <table>
 *   <caption>Refused operations</caption>
 *   <tr><th>call</th><th>why</th></tr>
 *   <tr><td>fork</td><td>all emulated processes share one real mm; fork(2) of the JVM is not an option</td></tr>
 *   <tr><td>any range outside the caller's window (mmap MAP_FIXED, munmap, mprotect, madvise, mremap target,
 *       uffd ranges)</td><td>it would touch the server's own memory; ranges the kernel rejects anyway (unaligned,
 *       below mmap_min_addr, beyond TASK_SIZE, zero length) are passed through for the kernel's errno</td></tr>
 *   <tr><td>munmap, mremap, mprotect, mmap MAP_FIXED, MADV_GUARD_INSTALL, UFFDIO_POISON, REGISTER on a
 *       SIGBUS-feature uffd, shrinking ftruncate while an access is in flight on the range</td><td>the
 *       blocked access thread would take SIGSEGV/SIGBUS, which would kill the JVM</td></tr>
 *   <tr><td>a USER access the backend cannot prove safe: MINOR-registered page under a SIGBUS-feature uffd,
 *       hugetlb page not present while no huge page is free, a MAP_NORESERVE hugetlb page not present (or
 *       written) while no huge page is unreserved, a hugetlb page in a range a madvise(DONTNEED/REMOVE) is
 *       zapping right now</td><td>the kernel might raise SIGBUS</td></tr>
 *   <tr><td>MADV_HWPOISON, MADV_SOFT_OFFLINE</td><td>real memory-failure handling of server pages</td></tr>
 * </table>
 *
 * <h2>Known limits of the signal prediction</h2>
 * pagemap shows no hugetlb PTE markers, so huge pages poisoned by UFFDIO_POISON are remembered by the backend
 * (forgotten on munmap, MAP_FIXED over them and COPY; kept, conservatively, across MADV_DONTNEED, where the
 * backend may then report a SIGBUS the kernel would not raise). MAP_NORESERVE hugetlb ranges are remembered the
 * same way. fallocate(PUNCH_HOLE) of a hugetlb memfd is refused while an access is in flight, and so is
 * madvise(DONTNEED/REMOVE) over an access in flight on a hugetlb range (it runs outside the lock, since it may wait
 * for its EVENT_REMOVE to be read; accesses to its range are refused while it runs). Thread ids
 * (UFFD_FEATURE_THREAD_ID) are the real tids
 * of the access threads. The JVM must not fork(2) for real while a uffd with EVENT_FORK exists (the JDK's
 * default posix_spawn/vfork launch does not dup the mm and is fine).
 *
 * <h2>Accesses</h2>
 * USER accesses are a native memcpy on a platform thread, never on a virtual thread (a real fault blocks the
 * carrier): a virtual caller, or any caller with a deadline, hands the access to an {@link AccessThreads} worker
 * and waits; a platform caller without a deadline runs it itself and, like a real thread in a userfault, is not
 * interrupted out of it (it returns once the fault is resolved, woken or its uffd closed). Before touching memory the backend checks the VMA, its protection, guard and
 * poison markers (pagemap), the memfd EOF and the uffd SIGBUS feature, and returns the signal the kernel would
 * give without touching. On the deadline the caller gets ETIMEDOUT while the thread stays blocked in the kernel
 * (its fault stays queued on the uffd, unlike the emulated backend which withdraws it); closing the uffd,
 * unregistering the range or exiting the process wakes it. Such an abandoned store still lands when its fault is
 * finally resolved (the emulated backend drops it). Costs: a MISSING or WP round trip through the SPI is about
 * 0.4-0.7x the C yardstick's faults/s from platform faulting threads and about 0.2-0.4x from virtual ones (two
 * more thread wake-ups per access); see docs/benchmarks.md. KERNEL = write(2)/read(2) through a pipe
 * (copy_from_user / copy_to_user), REMOTE = process_vm_readv/writev on the server's own pid, PROC_MEM =
 * pread/pwrite on /proc/self/mem.
 *
 * <h2>Permissions</h2>
 * The server runs as root, so the uid checks the kernel would make for an unprivileged process (userfaultfd(2)
 * without CAP_SYS_PTRACE under vm.unprivileged_userfaultfd=0, /dev/userfaultfd mode 0600, EVENT_FORK without
 * CAP_SYS_PTRACE) are made here, with the kernel's errno.
 */
public final class LinuxBackend implements MemoryBackend {
    static final int WINDOW_SIZE_GIB = 64;
    static final long WINDOW_BASE = 0x2000_0000_0000L;
    static final long WINDOW_SIZE = (long) WINDOW_SIZE_GIB << 30;
    static final long WINDOW_STRIDE = WINDOW_SIZE * 2;
    static final int MAX_SLOTS = 512;
    private static final long PAGE = Linux.PAGE_SIZE;
    private static final int PIPE_CHUNK = 16 * 4096;
    private static final int MADV_HWPOISON = 100, MADV_SOFT_OFFLINE = 101;

    private final Map<Integer, Proc> procs = new ConcurrentHashMap<>();
    private final BitSet slots = new BitSet();
    private final AtomicInteger nextPid = new AtomicInteger(1000);
    private final AccessThreads accessThreads = new AccessThreads();
    private final int mapsFd;
    private final int pagemapFd;
    /**
     * Whether any process ever installed a PTE marker an access must stop at (UFFDIO_POISON, MADV_GUARD_INSTALL):
     * set under the process's mapping lock before the call. Until then an access to a private anonymous VMA needs
     * no pagemap read in its precheck: nothing but the VMA's protection can make it take a signal. All processes
     * share the server's one mm, hence one flag for the backend.
     */
    private volatile boolean markersInstalled;
    /**
     * i_size of mapped files as the access precheck last stat'ed them, keyed by (inode, page size: shmem and each
     * hugetlbfs size are separate mounts), valid while {@link #fileSizeEpoch} is unchanged. A stat of
     * /proc/self/map_files per missing shmem page was the precheck's costliest step; a file's size only changes
     * through this backend (ftruncate, fallocate, pwrite), each of which bumps the epoch before and after the call,
     * so a size read under an unchanged epoch is current.
     */
    private final ConcurrentHashMap<FileKey, long[]> fileSizes = new ConcurrentHashMap<>();
    private final AtomicLong fileSizeEpoch = new AtomicLong();

    private record FileKey(long inode, long pageSize) {
    }
    private final int memFd;
    private final int selfPid = (int) ProcessHandle.current().pid();
    private volatile boolean closed;

    public LinuxBackend() {
        LinuxAvailability.ensureAvailability();
        mapsFd = Native.open("/proc/self/maps", Native.O_RDONLY | Native.O_CLOEXEC);
        pagemapFd = Native.open("/proc/self/pagemap", Native.O_RDONLY | Native.O_CLOEXEC);
        memFd = Native.open("/proc/self/mem", Native.O_RDWR | Native.O_CLOEXEC);
    }

    // ------------------------------------------------------------------ state

    private enum Kind { MEMFD, UFFD }

    private static final class FdEntry {
        final int real;
        final Kind kind;
        final long hugePageSize;
        final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
        final AtomicLong seq = new AtomicLong();
        volatile boolean closed;
        volatile long features;
        volatile boolean registered;
        /** For fdinfo: the userfaultfd(2) flags asked for, whether UFFDIO_API was answered. */
        volatile int openFlags;
        volatile boolean apiDone;
        /** Ranges registered through this fd, start to end (guarded by itself); clipped to live VMAs on read. */
        final TreeMap<Long, Long> registeredRanges = new TreeMap<>();

        FdEntry(int real, Kind kind, long hugePageSize) {
            this.real = real;
            this.kind = kind;
            this.hugePageSize = hugePageSize;
        }
    }

    /** An access running (or blocked) on an access thread. */
    private static final class Inflight {
        final long start;
        final long end;
        final boolean user;
        volatile boolean abandoned;

        Inflight(long start, long end, boolean user) {
            this.start = start;
            this.end = end;
            this.user = user;
        }
    }

    /** A VMA from PROCMAP_QUERY and the {@link Proc#mapEpoch} it was queried in. */
    private record CachedVma(RVma vma, long epoch) {
    }

    /**
     * A process's exclusive (mapping-change) lock: the write lock of its read-write lock, and every acquisition
     * invalidates the access precheck's VMA cache, so no mapping change can be missed by it.
     */
    private static final class MappingLock implements Lock {
        private final Proc p;
        private final Lock w;

        MappingLock(Proc p, Lock w) {
            this.p = p;
            this.w = w;
        }

        @Override
        public void lock() {
            w.lock();
            p.mapEpoch.incrementAndGet();
        }

        @Override
        public void lockInterruptibly() throws InterruptedException {
            w.lockInterruptibly();
            p.mapEpoch.incrementAndGet();
        }

        @Override
        public boolean tryLock() {
            if (w.tryLock()) {
                p.mapEpoch.incrementAndGet();
                return true;
            }
            return false;
        }

        @Override
        public boolean tryLock(long time, TimeUnit unit) throws InterruptedException {
            if (w.tryLock(time, unit)) {
                p.mapEpoch.incrementAndGet();
                return true;
            }
            return false;
        }

        @Override
        public void unlock() {
            w.unlock();
        }

        @Override
        public java.util.concurrent.locks.Condition newCondition() {
            return w.newCondition();
        }
    }

    private static final class Proc {
        final int pid;
        final String name;
        final int uid;
        final boolean cap;
        final String owner;
        final int slot;
        final long base;
        final long end;
        final TreeMap<Integer, FdEntry> fds = new TreeMap<>();
        /**
         * Serialises mapping changes against access starts (see {@link #checkNoInflight}): a mapping change holds
         * {@link #lock} (the write lock), an access holds {@link #accessLock} (the read lock) only while it checks
         * the range and registers itself in {@link #inflight}, so accesses do not wait for each other (with 8
         * faulting threads one exclusive lock made every access queue behind the others' PROCMAP_QUERY and pagemap
         * read, and each queued platform thread cost a wake-up: docs/benchmarks.md).
         */
        final ReentrantReadWriteLock rw = new ReentrantReadWriteLock();
        final Lock lock = new MappingLock(this, rw.writeLock());
        final Lock accessLock = rw.readLock();
        /**
         * Bumped by every hold of {@link #lock} (mmap, munmap, mremap, mprotect, madvise, register, exit), and
         * after the VMA changes that run outside it (closing a uffd and UFFDIO_UNREGISTER merge or split VMAs, and
         * so do the madvise advices that change VMA flags): a VMA the access precheck queried under
         * {@link #accessLock} with the epoch read before the query is the kernel's as long as the epoch is
         * unchanged (see {@link #vmaCache}). Those outside changes keep the VMA's protection, so a lookup racing
         * one sees the right rwx; only its bounds may be stale until the bump, and nothing the precheck does with
         * the bounds trusts them blindly (see {@link LinuxBackend#fileSize}).
         */
        final AtomicLong mapEpoch = new AtomicLong();
        /** The last VMA an access precheck queried and the {@link #mapEpoch} it was valid in (or null). */
        volatile CachedVma vmaCache;
        /** Accesses in flight: added under {@link #accessLock}, removed without a lock when the access returns. */
        final Set<Inflight> inflight = ConcurrentHashMap.newKeySet();
        /**
         * Huge pages that may carry a UFFDIO_POISON marker: pagemap does not show hugetlb markers, so they are
         * remembered here (guarded by {@link #lock}). Kept conservatively: only munmap, MAP_FIXED over them and a
         * successful COPY forget them.
         */
        final TreeMap<Long, Long> hugePoison = new TreeMap<>();
        /**
         * Whether {@link #hugePoison} or {@link #hugeNoreserve} may hold an entry (set under {@link #lock} when
         * one is added, never cleared): lets a UFFDIO_COPY skip the write lock when the process has neither, so
         * the handler's resolutions do not queue behind the accesses' read lock.
         */
        volatile boolean hugeBookkeeping;
        /**
         * Hugetlb ranges a madvise(DONTNEED/REMOVE) is zapping right now, as {start, end} (see
         * {@link LinuxBackend#hugetlbZap}): added under {@link #lock} after checking no access is in flight there,
         * removed when the call returns (it runs outside the lock: it may wait for an EVENT_REMOVE to be read). An
         * access checked while one overlaps is refused: its huge page may vanish between the check and the touch,
         * and the refault may find none (SIGBUS kills the server).
         */
        final Set<long[]> hugeZaps = ConcurrentHashMap.newKeySet();
        /** MAP_NORESERVE hugetlb ranges, start to end (guarded by {@link #lock}): their faults may find no page. */
        final TreeMap<Long, Long> hugeNoreserve = new TreeMap<>();
        volatile boolean exited;

        Proc(int pid, String name, int uid, boolean cap, String owner, int slot) {
            this.pid = pid;
            this.name = name;
            this.uid = uid;
            this.cap = cap;
            this.owner = owner;
            this.slot = slot;
            this.base = WINDOW_BASE + slot * WINDOW_STRIDE;
            this.end = base + WINDOW_SIZE;
        }

        boolean privileged() {
            return uid == 0 || cap;
        }
    }

    private Proc proc(int pid, String call) {
        Proc p = procs.get(pid);
        if (p == null || p.exited) {
            throw new LinuxException(Errno.ESRCH, call, 0, "no process " + pid);
        }
        return p;
    }

    private FdEntry fd(Proc p, int fd, String call) {
        FdEntry e;
        synchronized (p.fds) {
            e = p.fds.get(fd);
        }
        if (e == null || e.closed) {
            throw new LinuxException(Errno.EBADF, call, 0, "fd " + fd + " not open in process " + p.pid);
        }
        return e;
    }

    private int install(Proc p, FdEntry e) {
        synchronized (p.fds) {
            int n = 0;
            for (Integer used : p.fds.keySet()) {
                if (used != n) {
                    break;
                }
                n++;
            }
            p.fds.put(n, e);
            return n;
        }
    }

    /** Runs {@code op} on the real fd with the entry's read lock held, so close cannot recycle the number. */
    private <T> T withFd(Proc p, int fd, String call, java.util.function.IntFunction<T> op) {
        FdEntry e = fd(p, fd, call);
        e.lock.readLock().lock();
        try {
            if (e.closed) {
                throw new LinuxException(Errno.EBADF, call, 0, "fd " + fd + " closed");
            }
            return op.apply(e.real);
        } finally {
            e.lock.readLock().unlock();
        }
    }

    // ------------------------------------------------------------------ address guards

    private static long alignUp(long v, long a) {
        return (v + a - 1) & -a;
    }

    /**
     * Whether the kernel rejects (or ignores) this range before touching any mapping, so it is safe to pass through
     * for the kernel's own errno even though it is not in the caller's window. Per call, because the rules differ:
     * every call rejects an unaligned start, nothing is mapped at or above TASK_SIZE and an empty range does
     * nothing; the uffd ioctls' validate_range() also rejects an unaligned or oversized length and a start below
     * mmap_min_addr; munmap rejects a length past TASK_SIZE. mprotect and madvise do not (madvise even walks on
     * past holes), and as root mmap(MAP_FIXED) may map below mmap_min_addr, so those get nothing more.
     */
    private static boolean kernelRejects(String call, long start, long len) {
        if ((start & (PAGE - 1)) != 0 || start < 0 || start >= Linux.TASK_SIZE || len == 0) {
            return true;
        }
        if (call.startsWith("UFFDIO_")) {
            return len < 0 || (len & (PAGE - 1)) != 0 || start < Linux.MMAP_MIN_ADDR
                    || len > Linux.TASK_SIZE - start;
        }
        if (call.equals("munmap")) {
            return len < 0 || len > Linux.TASK_SIZE - start;
        }
        return false;
    }

    private static boolean inWindow(Proc p, long start, long len) {
        long end = start + alignUp(len, PAGE);
        return start >= p.base && end <= p.end && end >= start;
    }

    /**
     * Accepts a range inside the window, or one the kernel will reject by itself; otherwise ENOSYS. Calls that do
     * not create mappings may also reach half-way into the unmapped gap above the window (which nothing ever
     * maps), so ranges running past a mapping at the window's top get the kernel's answer for a hole.
     */
    private static void guard(Proc p, String call, long start, long len) {
        guard(p, call, start, len, false);
    }

    private static void guard(Proc p, String call, long start, long len, boolean creating) {
        if (inWindow(p, start, len) || kernelRejects(call, start, len)) {
            return;
        }
        long slack = creating ? 0 : (WINDOW_STRIDE - WINDOW_SIZE) / 2;
        long end = start + alignUp(len, PAGE);
        if (len > 0 && end >= start && start >= p.base && end <= p.end + slack) {
            return;
        }
        throw new LinuxException(Errno.ENOSYS, call, 0, String.format(
                "range 0x%x+0x%x is outside process %d's address window [0x%x, 0x%x) of the server", start, len,
                p.pid, p.base, p.end));
    }

    /** Caller holds p.lock. */
    private static void checkNoInflight(Proc p, long start, long end, String call) {
        for (Inflight f : p.inflight) {
            if (f.user && f.start < end && start < f.end) {
                throw new LinuxException(Errno.ENOSYS, call, 0, String.format(
                        "an access to 0x%x-0x%x is blocked in the kernel on this range; the SIGSEGV/SIGBUS the "
                                + "kernel would raise in it would kill the server", f.start, f.end));
            }
        }
    }

    // ------------------------------------------------------------------ VMAs from the kernel (PROCMAP_QUERY)

    /** One VMA as PROCMAP_QUERY reports it. */
    record RVma(long start, long end, long flags, long pageSize, long offset, long inode, String name) {
        boolean readable() {
            return (flags & Uapi.PROCMAP_QUERY_VMA_READABLE) != 0;
        }

        boolean writable() {
            return (flags & Uapi.PROCMAP_QUERY_VMA_WRITABLE) != 0;
        }

        boolean executable() {
            return (flags & Uapi.PROCMAP_QUERY_VMA_EXECUTABLE) != 0;
        }

        boolean shared() {
            return (flags & Uapi.PROCMAP_QUERY_VMA_SHARED) != 0;
        }

        boolean hugetlb() {
            return pageSize > PAGE;
        }

        boolean file() {
            return inode != 0;
        }
    }

    /**
     * {@link #queryVma(long, boolean) queryVma(addr, false)} through the process's one-entry cache: the faulting
     * threads of a round trip all hit the same VMA, and a PROCMAP_QUERY per access was a syscall the kernel's own
     * faulting thread does not make. Caller holds {@code p.accessLock}, so no mapping change runs meanwhile and the
     * epoch read here is the one the queried VMA is valid in.
     */
    private RVma cachedVma(Proc p, long pos) {
        long epoch = p.mapEpoch.get();
        CachedVma c = p.vmaCache;
        if (c != null && c.epoch() == epoch && c.vma().start() <= pos && pos < c.vma().end()) {
            return c.vma();
        }
        RVma v = queryVma(pos, false);
        if (v != null && v.start() <= pos && pos < v.end()) {
            p.vmaCache = new CachedVma(v, epoch);
        }
        return v;
    }

    /** The VMA covering {@code addr} or the next one above it; null when none. */
    private RVma queryVma(long addr) {
        return queryVma(addr, true);
    }

    /** As {@link #queryVma(long)}; {@code withName == false} skips the name (empty): the access precheck's case. */
    private RVma queryVma(long addr, boolean withName) {
        long qsize = Uapi.PROCMAP_QUERY_S.byteSize();
        try (Scratch a = Scratch.of(qsize + 4096)) {
            MemorySegment q = a.zeroed(0, qsize);
            MemorySegment name = withName ? a.zeroed(qsize, 4096) : MemorySegment.NULL;
            q.set(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "size"), Uapi.PROCMAP_QUERY_S.byteSize());
            q.set(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "query_flags"), Uapi.PROCMAP_QUERY_COVERING_OR_NEXT_VMA);
            q.set(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "query_addr"), addr);
            q.set(JAVA_INT, Uapi.off(Uapi.PROCMAP_QUERY_S, "vma_name_size"), withName ? 4096 : 0);
            q.set(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "vma_name_addr"), name.address());
            int r = Native.ioctlRaw(mapsFd, Uapi.PROCMAP_QUERY, q);
            if (r == -Errno.ENOENT.number()) {
                return null;
            }
            if (r < 0) {
                throw Native.fail("PROCMAP_QUERY", -r, 0);
            }
            int nameSize = q.get(JAVA_INT, Uapi.off(Uapi.PROCMAP_QUERY_S, "vma_name_size"));
            return new RVma(q.get(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "vma_start")),
                    q.get(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "vma_end")),
                    q.get(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "vma_flags")),
                    q.get(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "vma_page_size")),
                    q.get(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "vma_offset")),
                    q.get(JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "inode")),
                    nameSize > 0 ? name.getString(0) : "");
        }
    }

    /** The VMAs intersecting [from, to), in address order. */
    private List<RVma> vmas(long from, long to) {
        List<RVma> out = new ArrayList<>();
        long pos = from;
        while (pos < to) {
            RVma v = queryVma(pos);
            if (v == null || v.start() >= to) {
                break;
            }
            out.add(v);
            pos = v.end();
        }
        return out;
    }

    /**
     * Where top-down allocation starts in a window: the same offset below a 2 MiB boundary as the emulated
     * kernel's {@link Linux#MMAP_BASE} (0x7ffff7fff000, one page below one), so mappings sit at the same offsets
     * relative to huge-page boundaries on both backends and traces line up.
     */
    static long mmapTop(long windowEnd) {
        return windowEnd - Linux.PMD_SIZE + (Linux.MMAP_BASE & (Linux.PMD_SIZE - 1));
    }

    /** Top-down first fit inside the window (the kernel's default allocator, confined to the window). */
    private long findGap(Proc p, long len, long align) {
        long top = mmapTop(p.end);
        List<RVma> vs = vmas(p.base, top);
        for (int i = vs.size() - 1; i >= -1; i--) {
            long floor = i >= 0 ? vs.get(i).end() : p.base;
            long cand = (top - len) & -align;
            if (top - len >= floor && cand >= floor) {
                return cand;
            }
            if (i >= 0) {
                top = vs.get(i).start();
            }
        }
        throw new LinuxException(Errno.ENOMEM, "mmap", 0, "no room in the process's address window");
    }

    // ------------------------------------------------------------------ processes

    @Override
    public String name() {
        return "linux";
    }

    @Override
    public BackendStatus status() {
        return probeStatus();
    }

    /**
     * Yes: UFFDIO_POISON, and a UFFDIO_COPY once the process has hugetlb bookkeeping, take {@code p.lock}, which
     * munmap and mremap hold across the syscall, and the kernel makes those wait until their EVENT_UNMAP/REMAP is
     * read. The ioctls themselves do not wait (mmap_changing gives EAGAIN).
     */
    @Override
    public boolean resolutionsMayBlock() {
        return true;
    }

    /** The status without constructing a backend (the constructor throws when the kernel is unavailable). */
    public static BackendStatus probeStatus() {
        return new BackendStatus("linux", LinuxAvailability.isAvailable(), LinuxAvailability.reason(),
                LinuxAvailability.features(), LinuxAvailability.ioctls(), LinuxAvailability.kernelRelease());
    }

    @Override
    public ProcessInfo createProcess(String name, int uid, boolean capSysPtrace, String owner) {
        int slot;
        synchronized (slots) {
            slot = -1;
            for (int i = slots.nextClearBit(0); i < MAX_SLOTS; i = slots.nextClearBit(i + 1)) {
                long base = WINDOW_BASE + i * WINDOW_STRIDE;
                if (vmas(base, base + WINDOW_STRIDE).isEmpty()) { // window and gap must be untouched
                    slot = i;
                    break;
                }
                slots.set(i); // something else lives there: never use it
            }
            if (slot < 0) {
                throw new LinuxException(Errno.EAGAIN, "fork", 0, "no free address window left in the server");
            }
            slots.set(slot);
        }
        Proc p = new Proc(nextPid.getAndIncrement(), name == null ? "" : name, uid, capSysPtrace, owner, slot);
        procs.put(p.pid, p);
        return info(p);
    }

    private ProcessInfo info(Proc p) {
        long anon = 0;
        long shmem = 0;
        long swap = 0;
        List<RVma> vs = vmas(p.base, p.end);
        for (RVma v : vs) {
            long[] pm = pagemapRaw(v.start(), (int) Math.min((v.end() - v.start()) / PAGE, 1 << 20));
            for (long e : pm) {
                if ((e & Linux.PM_PRESENT) != 0) {
                    if (v.hugetlb()) {
                        continue;
                    }
                    if (v.file() && (e & Linux.PM_FILE) != 0) {
                        shmem += PAGE;
                    } else {
                        anon += PAGE;
                    }
                } else if ((e & Linux.PM_SWAP) != 0 && markerBits(e) == 0) {
                    swap += PAGE;
                }
            }
        }
        List<Integer> fds;
        synchronized (p.fds) {
            fds = List.copyOf(p.fds.keySet());
        }
        return new ProcessInfo(p.pid, p.name, p.uid, p.cap, 0, anon, shmem, swap, vs.size(), fds, p.owner);
    }

    @Override
    public ProcessInfo fork(int pid) {
        proc(pid, "fork");
        throw new LinuxException(Errno.ENOSYS, "fork", 0,
                "emulated processes share the server's single mm; fork(2) cannot give one of them its own copy");
    }

    @Override
    public void exit(int pid) {
        Proc p = proc(pid, "exit");
        p.exited = true;
        List<FdEntry> all;
        synchronized (p.fds) {
            all = new ArrayList<>(p.fds.values());
            p.fds.clear();
        }
        for (FdEntry e : all) {
            closeEntry(e);
        }
        // Closing the uffds woke every access blocked on them; wait for the access threads to leave the window.
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        boolean drained = false;
        while (System.nanoTime() < until) {
            p.lock.lock();
            try {
                if (p.inflight.isEmpty()) {
                    for (RVma v : vmas(p.base, p.end)) {
                        Native.munmap(v.start(), v.end() - v.start());
                    }
                    drained = true;
                    break;
                }
            } finally {
                p.lock.unlock();
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        procs.remove(pid);
        if (drained) {
            synchronized (slots) {
                slots.clear(p.slot);
            }
        }
    }

    @Override
    public List<ProcessInfo> processes() {
        return procs.values().stream().filter(p -> !p.exited).sorted((a, b) -> Integer.compare(a.pid, b.pid))
                .map(this::info).toList();
    }

    @Override
    public ProcessInfo process(int pid) {
        return info(proc(pid, "process"));
    }

    @Override
    public List<VmaInfo> maps(int pid) {
        Proc p = proc(pid, "maps");
        List<RVma> vs = vmas(p.base, p.end);
        Map<Long, Integer> uffd = anyRegistered(p) ? uffdFlagsFromSmaps(p) : Map.of();
        List<VmaInfo> out = new ArrayList<>();
        for (RVma v : vs) {
            String perms = (v.readable() ? "r" : "-") + (v.writable() ? "w" : "-") + (v.executable() ? "x" : "-")
                    + (v.shared() ? "s" : "p");
            VmaInfo.MemoryType type = v.hugetlb() ? VmaInfo.MemoryType.HUGETLB
                    : v.file() ? VmaInfo.MemoryType.SHMEM : VmaInfo.MemoryType.ANON;
            out.add(new VmaInfo(v.start(), v.end(), perms, v.offset(), v.name(), type,
                    uffd.getOrDefault(v.start(), 0), v.pageSize()));
        }
        return out;
    }

    private static boolean anyRegistered(Proc p) {
        synchronized (p.fds) {
            return p.fds.values().stream().anyMatch(e -> e.registered);
        }
    }

    /** VM_UFFD_* of each VMA in the window, keyed by start, from smaps' VmFlags (um/uw/ui). */
    private static Map<Long, Integer> uffdFlagsFromSmaps(Proc p) {
        Map<Long, Integer> out = new HashMap<>();
        try {
            long cur = -1;
            for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
                int dash = line.indexOf('-');
                int sp = line.indexOf(' ');
                if (dash > 0 && sp > dash && line.charAt(0) != 'V' && isHex(line, 0, dash)) {
                    long s = Long.parseUnsignedLong(line.substring(0, dash), 16);
                    cur = s >= p.base && s < p.end ? s : -1;
                } else if (cur >= 0 && line.startsWith("VmFlags:")) {
                    int f = 0;
                    for (String flag : line.substring(8).trim().split(" ")) {
                        switch (flag) {
                            case "um" -> f |= Linux.UFFDIO_REGISTER_MODE_MISSING;
                            case "uw" -> f |= Linux.UFFDIO_REGISTER_MODE_WP;
                            case "ui" -> f |= Linux.UFFDIO_REGISTER_MODE_MINOR;
                            default -> {
                            }
                        }
                    }
                    out.put(cur, f);
                }
            }
        } catch (IOException e) {
            throw new LinuxException(Errno.EIO, "read /proc/self/smaps", 0, e.toString());
        }
        return out;
    }

    private static boolean isHex(String s, int from, int to) {
        for (int i = from; i < to; i++) {
            if (Character.digit(s.charAt(i), 16) < 0) {
                return false;
            }
        }
        return to > from;
    }

    // ------------------------------------------------------------------ pagemap

    private long[] pagemapRaw(long start, int pages) {
        long[] out = new long[pages];
        if (pages == 0) {
            return out;
        }
        try (Scratch a = Scratch.of(8L * pages)) {
            MemorySegment buf = a.zeroed(0, 8L * pages);
            long want = 8L * pages;
            long got = 0;
            while (got < want) {
                long r = Native.preadRaw(pagemapFd, buf.address() + got, want - got, (start / PAGE) * 8 + got);
                if (r < 0) {
                    throw Native.fail("pread /proc/self/pagemap", (int) -r, 0);
                }
                if (r == 0) {
                    break;
                }
                got += r;
            }
            MemorySegment.copy(buf, JAVA_LONG, 0, out, 0, pages);
        }
        return out;
    }

    /** PTE marker bits (UFFD_WP=1, POISONED=2, GUARD=4) of a non-present swap-format entry, 0 for real swap. */
    static long markerBits(long e) {
        if ((e & Linux.PM_SWAP) == 0) {
            return 0;
        }
        if ((e & Linux.PM_GUARD_REGION) != 0) {
            return 4;
        }
        long frame = e & Linux.PM_PFRAME_MASK;
        long type = frame & 0x1f;
        // Real swap types are below MAX_SWAPFILES (27 here); markers use a special type with the bits in the offset.
        if (type >= 24) {
            return (frame >>> 5) & 7;
        }
        return 0;
    }

    @Override
    public long[] readPagemap(int pid, long start, int pages) {
        Proc p = proc(pid, "pread /proc/PID/pagemap");
        if (pages < 0 || pages > Pagemap.MAX_PAGES_PER_READ) {
            throw LinuxException.einval("pread /proc/PID/pagemap", "page count");
        }
        long[] out = new long[pages];
        long first = start & -PAGE;
        // Only the window's pages belong to this process; anything outside reads as not mapped.
        long lo = Math.max(first, p.base);
        long hi = Math.min(first + pages * PAGE, p.end);
        if (lo < hi) {
            long[] in = pagemapRaw(lo, (int) ((hi - lo) / PAGE));
            System.arraycopy(in, 0, out, (int) ((lo - first) / PAGE), in.length);
        }
        return out;
    }

    @Override
    public Pagemap.ScanResult pagemapScan(int pid, Pagemap.ScanArg arg) {
        Proc p = proc(pid, "PAGEMAP_SCAN");
        if (arg.maxRegions() < 0 || arg.maxPages() < 0) {
            throw LinuxException.einval("PAGEMAP_SCAN", "negative limits");
        }
        if (arg.end() > (1L << 47)) {
            throw new LinuxException(Errno.EFAULT, "PAGEMAP_SCAN", 0, "bad range");
        }
        long start = arg.start();
        long end = arg.end();
        if (end < start) {
            scanOnce(arg, start, end, 1, arg.maxPages()); // the kernel's EFAULT, before any walk
        }
        boolean clipped = start < p.base || end > p.end;
        if (clipped) {
            // Let the kernel validate flags, masks, alignment and ordering on an empty walk first.
            scanOnce(arg, start, start, 1, arg.maxPages());
        }
        long lo = Math.max(start, p.base);
        long hi = Math.min(end, p.end);
        List<Pagemap.Region> regions = new ArrayList<>();
        long walkEnd = alignUp(end, PAGE);
        if (lo < hi) {
            long pos = lo;
            long pagesLeft = arg.maxPages();
            while (true) {
                int vecLen = arg.maxRegions() > 0 ? arg.maxRegions() - regions.size() : 512;
                ScanChunk c = scanOnce(arg, pos, hi, vecLen, pagesLeft);
                regions.addAll(c.regions);
                for (Pagemap.Region r : c.regions) {
                    pagesLeft -= (r.end() - r.start()) / PAGE;
                }
                walkEnd = c.walkEnd;
                boolean more = c.walkEnd < alignUp(hi, PAGE) && c.regions.size() == vecLen
                        && arg.maxRegions() == 0 && (arg.maxPages() == 0 || pagesLeft > 0);
                if (!more) {
                    break;
                }
                pos = c.walkEnd;
            }
            if (walkEnd >= alignUp(hi, PAGE)) {
                walkEnd = alignUp(end, PAGE);
            }
        }
        return new Pagemap.ScanResult(regions, walkEnd);
    }

    private record ScanChunk(List<Pagemap.Region> regions, long walkEnd) {
    }

    private ScanChunk scanOnce(Pagemap.ScanArg arg, long start, long end, int vecLen, long maxPages) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(Uapi.PM_SCAN_ARG);
            MemorySegment vec = a.allocate(Uapi.PAGE_REGION, Math.max(1, vecLen));
            set(s, Uapi.PM_SCAN_ARG, "size", Uapi.PM_SCAN_ARG.byteSize());
            set(s, Uapi.PM_SCAN_ARG, "flags", arg.flags());
            set(s, Uapi.PM_SCAN_ARG, "start", start);
            set(s, Uapi.PM_SCAN_ARG, "end", end);
            set(s, Uapi.PM_SCAN_ARG, "vec", vec.address());
            set(s, Uapi.PM_SCAN_ARG, "vec_len", vecLen);
            set(s, Uapi.PM_SCAN_ARG, "max_pages", maxPages);
            set(s, Uapi.PM_SCAN_ARG, "category_inverted", arg.categoryInverted());
            set(s, Uapi.PM_SCAN_ARG, "category_mask", arg.categoryMask());
            set(s, Uapi.PM_SCAN_ARG, "category_anyof_mask", arg.categoryAnyofMask());
            set(s, Uapi.PM_SCAN_ARG, "return_mask", arg.returnMask());
            int n = Native.ioctl("PAGEMAP_SCAN", pagemapFd, Uapi.PAGEMAP_SCAN, s);
            List<Pagemap.Region> out = new ArrayList<>(n);
            long rs = Uapi.PAGE_REGION.byteSize();
            for (int i = 0; i < n; i++) {
                out.add(new Pagemap.Region(vec.get(JAVA_LONG, i * rs), vec.get(JAVA_LONG, i * rs + 8),
                        vec.get(JAVA_LONG, i * rs + 16)));
            }
            return new ScanChunk(out, get(s, Uapi.PM_SCAN_ARG, "walk_end"));
        }
    }

    private static void set(MemorySegment s, java.lang.foreign.StructLayout l, String field, long v) {
        s.set(JAVA_LONG, Uapi.off(l, field), v);
    }

    private static long get(MemorySegment s, java.lang.foreign.StructLayout l, String field) {
        return s.get(JAVA_LONG, Uapi.off(l, field));
    }

    // ------------------------------------------------------------------ accesses

    /** Where an access must stop and the signal the kernel would raise there ({@code sig == 0}: not mapped). */
    private record Stop(long at, int sig, int code) {
    }

    @Override
    public AccessResult access(int pid, long addr, int len, boolean write, byte[] data, AccessMode mode,
            long deadlineNanos) throws InterruptedException {
        if (len < 0 || (write && data == null)) {
            throw LinuxException.einval("access", "bad length");
        }
        if (write) {
            len = data.length;
        }
        Proc p = proc(pid, "access");
        if (addr < 0 || addr + len < addr || addr + len > (1L << 47) || addr < p.base || addr >= p.end) {
            // Nothing of this process can be mapped there.
            return denied(mode, addr);
        }
        long end = addr + len;
        Stop stop = null;
        Inflight f;
        if (!tryLock(p.accessLock, deadlineNanos)) {
            throw new LinuxException(Errno.ETIMEDOUT, "access", 0, "a mapping change of the process is blocked");
        }
        try {
            if (p.exited) {
                throw new LinuxException(Errno.ESRCH, "access", 0, "process exited");
            }
            long inWindow = Math.min(end, p.end);
            if (mode == AccessMode.USER) {
                stop = precheck(p, addr, inWindow, write);
            }
            if (stop == null && inWindow < end) {
                // The rest lies beyond the window: nothing of this process is mapped there.
                stop = new Stop(inWindow, 0, 0);
            }
            long touchEnd = stop == null ? end : stop.at();
            f = new Inflight(addr, Math.max(touchEnd, addr + 1), mode == AccessMode.USER);
            p.inflight.add(f);
        } finally {
            p.accessLock.unlock();
        }
        final long touchEnd = stop == null ? end : stop.at();
        final int n = (int) (touchEnd - addr);
        final byte[] src = data;
        AccessResult r;
        if (deadlineNanos == Long.MAX_VALUE && !Thread.currentThread().isVirtual()) {
            // A platform caller without a deadline may block in the kernel itself: handing the access to an
            // access thread and back would add two thread wake-ups to the kernel's two (see AccessThreads).
            try {
                r = touch(mode, addr, n, write, src);
            } finally {
                p.inflight.remove(f);
            }
            return stopped(stop, r, mode);
        }
        AccessThreads.Task<AccessResult> task;
        try {
            task = accessThreads.submit(() -> {
                try {
                    return touch(mode, addr, n, write, src);
                } finally {
                    p.inflight.remove(f);
                }
            });
        } catch (RuntimeException e) {
            p.inflight.remove(f);
            throw e;
        }
        try {
            r = task.get(deadlineNanos);
        } catch (TimeoutException e) {
            f.abandoned = true;
            throw new LinuxException(Errno.ETIMEDOUT, "access", 0,
                    "userfault not resolved before the deadline (the access thread stays blocked in the kernel)");
        } catch (InterruptedException e) {
            f.abandoned = true;
            throw e;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
        return stopped(stop, r, mode);
    }

    /** The outcome of an access that stopped early (at {@code stop}) once the part before it succeeded. */
    private static AccessResult stopped(Stop stop, AccessResult r, AccessMode mode) {
        if (stop != null && r.succeeded()) {
            return stop.sig() == 0 ? denied(mode, stop.at())
                    : new AccessResult(stop.sig(), stop.code(), stop.at(), null, null);
        }
        return r;
    }

    private static boolean tryLock(Lock l, long deadlineNanos) throws InterruptedException {
        if (deadlineNanos == Long.MAX_VALUE) {
            l.lockInterruptibly();
            return true;
        }
        return l.tryLock(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
    }

    private static AccessResult denied(AccessMode mode, long addr) {
        return switch (mode) {
            case USER -> new AccessResult(Linux.SIGSEGV, Linux.SEGV_MAPERR, addr, null, null);
            case PROC_MEM -> new AccessResult(0, 0, addr, Errno.EIO, null);
            default -> new AccessResult(0, 0, addr, Errno.EFAULT, null);
        };
    }

    /**
     * Finds the first byte a USER access would take a signal on, from the VMAs and pagemap, without touching
     * memory. Throws ENOSYS where the outcome cannot be predicted safely. Caller holds p.lock.
     */
    private Stop precheck(Proc p, long addr, long end, boolean write) {
        int kinds = registeredUffdKinds(p);
        boolean sigbusUffd = (kinds & SIGBUS_UFFD) != 0;
        boolean plainUffd = (kinds & PLAIN_UFFD) != 0;
        Map<Long, Integer> uffdFlags = sigbusUffd ? uffdFlagsFromSmaps(p) : Map.of();
        long pos = addr;
        do {
            // smaps' uffd flags are keyed by the kernel's VMA starts, which a cached VMA may not match after a
            // REGISTER split or an UNREGISTER merge: no cache then
            RVma v = sigbusUffd ? queryVma(pos, false) : cachedVma(p, pos);
            if (v == null || v.start() > pos || v.end() <= pos) {
                return new Stop(pos, Linux.SIGSEGV, Linux.SEGV_MAPERR);
            }
            boolean allowed = write ? v.writable() : (v.readable() || v.writable() || v.executable());
            if (!allowed) {
                return new Stop(pos, Linux.SIGSEGV, Linux.SEGV_ACCERR);
            }
            long segEnd = Math.min(Math.max(end, pos + 1), v.end());
            if (v.hugetlb()) {
                for (long[] z : p.hugeZaps) {
                    if (z[0] < segEnd && pos < z[1]) {
                        throw new LinuxException(Errno.ENOSYS, "access", 0, String.format(
                                "a madvise is zapping the hugetlb pages at 0x%x-0x%x: the page at 0x%x may be gone "
                                        + "before the access touches it, and its refault may find no huge page "
                                        + "(SIGBUS would kill the server)", z[0], z[1], pos));
                    }
                }
            }
            long firstPage = pos & -PAGE;
            int pages = (int) ((alignUp(segEnd, PAGE) - firstPage) / PAGE);
            int vf = uffdFlags.getOrDefault(v.start(), 0);
            if (!v.hugetlb() && vf == 0 && !markersInstalled
                    && (!v.file() || alignUp(segEnd, PAGE) <= eofOrZero(v))) {
                // No marker anywhere, no SIGBUS-mode uffd, and (for a file) every page below EOF: present, missing
                // or write-protected, the access either succeeds or waits for its userfault; pagemap could only
                // confirm that
                pos = v.end();
                continue;
            }
            long[] pm = pagemapRaw(firstPage, pages);
            long eofPage = Long.MAX_VALUE;
            boolean eofKnown = !v.file(); // the stat is only needed once a page is not present
            // a shmem page that is in the page cache but not mapped here is mapped by the fault, no MISSING
            // userfault (shmem_get_folio_gfp() finds it): mincore() tells page-cache residency of a file mapping
            byte[] cached = vf != 0 && v.file() && !v.hugetlb() ? Native.mincore(firstPage, pages) : null;
            // read from sysfs once a page needs them (two file reads: not for every access to present pages)
            long hugeFree = Long.MIN_VALUE;
            long hugeAvail = Long.MIN_VALUE;
            for (int i = 0; i < pages; i++) {
                long page = firstPage + i * PAGE;
                long at = Math.max(page, pos);
                long e = pm[i];
                boolean present = (e & Linux.PM_PRESENT) != 0;
                long marker = markerBits(e);
                if ((marker & 4) != 0) {
                    return new Stop(at, Linux.SIGSEGV, Linux.SEGV_MAPERR);
                }
                if ((marker & 2) != 0) {
                    return new Stop(at, Linux.SIGBUS, Linux.BUS_ADRERR);
                }
                if (v.hugetlb() && !present && p.hugePoison.containsKey(page & -v.pageSize())) {
                    return new Stop(at, Linux.SIGBUS, Linux.BUS_ADRERR);
                }
                if (!present && !eofKnown) {
                    long eof = eofAddress(v);
                    // unknown (as before the cache): the page is taken to be inside the file
                    eofPage = eof == UNKNOWN_SIZE ? Long.MAX_VALUE : eof;
                    eofKnown = true;
                }
                if (!present && page >= eofPage) {
                    return new Stop(at, Linux.SIGBUS, Linux.BUS_ADRERR);
                }
                if (vf != 0) {
                    boolean inCache = cached != null && (cached[i] & 1) != 0;
                    boolean minorHit = cached != null && (vf & Linux.UFFDIO_REGISTER_MODE_MINOR) != 0 && !present
                            && inCache;
                    boolean hit = ((vf & Linux.UFFDIO_REGISTER_MODE_MISSING) != 0 && !present && !inCache)
                            || ((vf & Linux.UFFDIO_REGISTER_MODE_WP) != 0 && write
                                    && (e & Linux.PM_UFFD_WP) != 0)
                            || minorHit;
                    if (hit && !plainUffd) {
                        return new Stop(at, Linux.SIGBUS, Linux.BUS_ADRERR);
                    }
                    if (hit || (cached == null && (vf & Linux.UFFDIO_REGISTER_MODE_MINOR) != 0 && !present)) {
                        throw new LinuxException(Errno.ENOSYS, "access", 0, String.format(
                                "cannot tell whether the fault at 0x%x raises SIGBUS (UFFD_FEATURE_SIGBUS); the "
                                        + "server would die of it", at));
                    }
                }
                if (v.hugetlb() && (!present || write) && hugeFree == Long.MIN_VALUE) {
                    hugeFree = hugePages(v.pageSize(), "free_hugepages");
                    hugeAvail = hugeFree - hugePages(v.pageSize(), "resv_hugepages");
                }
                if (v.hugetlb() && (!present || write) && hugeAvail <= 0 && overlaps(p.hugeNoreserve, page,
                        page + PAGE)) {
                    throw new LinuxException(Errno.ENOSYS, "access", 0, String.format(
                            "MAP_NORESERVE hugetlb page at 0x%x may need a huge page and none is unreserved: the "
                                    + "kernel may raise SIGBUS, which would kill the server", at));
                }
                if (v.hugetlb() && !present && hugeFree == 0) {
                    throw new LinuxException(Errno.ENOSYS, "access", 0, String.format(
                            "hugetlb page at 0x%x is not present and no huge page is free: the kernel may raise "
                                    + "SIGBUS, which would kill the server", at));
                }
            }
            pos = v.end();
        } while (pos < end);
        return null;
    }

    /** {@link #eofAddress}, or 0 when the size is unknown or cannot be asked here (the pagemap path decides). */
    private long eofOrZero(RVma v) {
        try {
            long eof = eofAddress(v);
            return eof == UNKNOWN_SIZE ? 0 : eof;
        } catch (LinuxException e) {
            return 0; // the pagemap path decides (and stats only for pages that are not present)
        }
    }

    /** The first address past the file's last page as {@code v} maps it, or {@link #UNKNOWN_SIZE}. */
    private long eofAddress(RVma v) {
        long size = cachedFileSize(v);
        return size == UNKNOWN_SIZE ? UNKNOWN_SIZE : v.start() + alignUp(size, v.pageSize()) - v.offset();
    }

    /** {@link #fileSize}'s answer when neither the VMA's map_files entry nor an fd of the inode is found. */
    private static final long UNKNOWN_SIZE = -1;

    /** {@link #fileSize} through the cache; {@link #UNKNOWN_SIZE} is never cached. */
    private long cachedFileSize(RVma v) {
        long epoch = fileSizeEpoch.get();
        FileKey k = new FileKey(v.inode(), v.pageSize());
        long[] c = fileSizes.get(k);
        if (c != null && c[1] == epoch) {
            return c[0];
        }
        long size = fileSize(v);
        if (size != UNKNOWN_SIZE) {
            fileSizes.put(k, new long[] {size, epoch});
        }
        return size;
    }

    /** A file's size may change: forget every cached size, before the call and again after it. */
    private void fileSizeChanging() {
        fileSizeEpoch.incrementAndGet();
        fileSizes.clear();
    }

    /**
     * i_size of the file a VMA maps: stat of /proc/self/map_files/START-END. That link needs CAP_CHECKPOINT_RESTORE
     * or CAP_SYS_ADMIN (fs/proc/base.c proc_map_files_get_link), which a container given only CAP_SYS_PTRACE lacks:
     * then an fd of the same inode that some process of this backend still holds is stat'ed instead
     * (/proc/self/fd/N needs nothing). A file with no fd left cannot be resized any more, but its size is unknown
     * here: EIO then (docs/deployment.md).
     */
    private long fileSize(RVma v) {
        Path link = Path.of(String.format("/proc/self/map_files/%x-%x", v.start(), v.end()));
        try {
            return Files.size(link);
        } catch (NoSuchFileException e) {
            // no VMA with these bounds any more (changed meanwhile, or bounds from before an outside change):
            // the size through an fd of the same inode does not depend on them
            long size = sizeThroughOpenFd(v.inode());
            return size >= 0 ? size : UNKNOWN_SIZE;
        } catch (java.nio.file.FileSystemException e) {
            // EPERM (or EACCES): no CAP_CHECKPOINT_RESTORE / CAP_SYS_ADMIN
            long size = sizeThroughOpenFd(v.inode());
            if (size >= 0) {
                return size;
            }
            throw new LinuxException(Errno.EIO, "stat " + link, 0, "/proc/self/map_files needs CAP_CHECKPOINT_RESTORE "
                    + "or CAP_SYS_ADMIN (" + e.getReason() + "), and no process holds an fd of inode " + v.inode()
                    + " to stat instead");
        } catch (IOException e) {
            throw new LinuxException(Errno.EIO, "stat " + link, 0, e.toString());
        }
    }

    /** Size of the memfd with inode {@code ino} through an fd a process of this backend holds, or -1. */
    private long sizeThroughOpenFd(long ino) {
        for (Proc p : procs.values()) {
            List<FdEntry> entries;
            synchronized (p.fds) {
                entries = new ArrayList<>(p.fds.values());
            }
            for (FdEntry e : entries) {
                if (e.kind != Kind.MEMFD) {
                    continue;
                }
                // the read lock keeps close() from recycling the fd number while it is stat'ed
                e.lock.readLock().lock();
                try {
                    if (e.closed) {
                        continue;
                    }
                    Path fd = Path.of("/proc/self/fd/" + e.real);
                    if (Long.valueOf(ino).equals(Files.getAttribute(fd, "unix:ino"))) {
                        return Files.size(fd);
                    }
                } catch (IOException | RuntimeException ex) {
                    // gone meanwhile: try the next
                } finally {
                    e.lock.readLock().unlock();
                }
            }
        }
        return -1;
    }

    private static long hugePages(long pageSize, String counter) {
        Path p = Path.of("/sys/kernel/mm/hugepages/hugepages-" + (pageSize >> 10) + "kB/" + counter);
        try {
            return Long.parseLong(Files.readString(p).trim());
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
    }

    /** Runs on an access thread: the actual loads/stores. */
    private AccessResult touch(AccessMode mode, long addr, int len, boolean write, byte[] data) {
        try (Scratch a = Scratch.of(Math.max(1, len))) {
            MemorySegment buf = a.segment();
            if (write) {
                MemorySegment.copy(data, 0, buf, JAVA_BYTE, 0, len);
            }
            long done = 0;
            Errno err = null;
            switch (mode) {
                case USER -> {
                    if (write) {
                        Native.memcpy(addr, buf.address(), len);
                    } else {
                        Native.memcpy(buf.address(), addr, len);
                    }
                    done = len;
                }
                case KERNEL -> {
                    int[] pipe = Native.pipe2(Native.O_CLOEXEC);
                    try {
                        while (done < len) {
                            int chunk = (int) Math.min(PIPE_CHUNK, len - done);
                            long r;
                            if (write) {
                                long w = Native.writeRaw(pipe[1], buf.address() + done, chunk);
                                if (w < 0) {
                                    throw Native.fail("write", (int) -w, 0);
                                }
                                r = Native.readRaw(pipe[0], addr + done, w); // copy_to_user
                            } else {
                                r = Native.writeRaw(pipe[1], addr + done, chunk); // copy_from_user
                                if (r > 0) {
                                    long got = Native.readRaw(pipe[0], buf.address() + done, r);
                                    if (got != r) {
                                        throw Native.fail("read", got < 0 ? (int) -got : Errno.EIO.number(), 0);
                                    }
                                }
                            }
                            if (r < 0) {
                                err = Native.errno((int) -r);
                                break;
                            }
                            done += r;
                            if (r < chunk) {
                                err = Errno.EFAULT;
                                break;
                            }
                        }
                    } finally {
                        Native.close(pipe[0]);
                        Native.close(pipe[1]);
                    }
                }
                case REMOTE -> {
                    long r = Native.processVm(write, selfPid, buf.address(), addr, len);
                    if (r < 0) {
                        err = Native.errno((int) -r);
                    } else {
                        done = r;
                        if (r < len) {
                            err = Errno.EFAULT;
                        }
                    }
                }
                case PROC_MEM -> {
                    while (done < len) {
                        long r = write ? Native.pwriteRaw(memFd, buf.address() + done, len - done, addr + done)
                                : Native.preadRaw(memFd, buf.address() + done, len - done, addr + done);
                        if (r <= 0) {
                            err = r == 0 ? Errno.EIO : Native.errno((int) -r);
                            break;
                        }
                        done += r;
                    }
                }
            }
            if (err != null) {
                return new AccessResult(0, 0, addr + done, err, null);
            }
            byte[] out = null;
            if (!write) {
                out = new byte[len];
                MemorySegment.copy(buf, JAVA_BYTE, 0, out, 0, len);
            }
            return new AccessResult(0, 0, 0, null, out);
        }
    }

    /** Wakes abandoned (timed-out) accesses in the range so their threads leave the kernel. */
    private void wakeAbandoned(Proc p, int fd, long start, long len) {
        boolean any;
        p.lock.lock();
        try {
            any = p.inflight.stream().anyMatch(f -> f.abandoned && f.start < start + len && start < f.end);
        } finally {
            p.lock.unlock();
        }
        if (any) {
            withFd(p, fd, "UFFDIO_WAKE", real -> {
                rangeIoctl("UFFDIO_WAKE", real, Uapi.UFFDIO_WAKE, start, len);
                return null;
            });
        }
    }

    /** Caller holds p.lock. */
    private static void forgetPoison(Proc p, long start, long end) {
        p.hugePoison.subMap(start, true, end, false).clear();
        subtract(p.hugeNoreserve, start, end);
    }

    /** Removes [start, end) from a set of disjoint ranges (start to end). */
    private static void subtract(TreeMap<Long, Long> ranges, long start, long end) {
        for (Map.Entry<Long, Long> e : List.copyOf(ranges.entrySet())) {
            long s = e.getKey();
            long t = e.getValue();
            if (s < end && start < t) {
                ranges.remove(s);
                if (s < start) {
                    ranges.put(s, start);
                }
                if (t > end) {
                    ranges.put(end, t);
                }
            }
        }
    }

    private static boolean overlaps(TreeMap<Long, Long> ranges, long start, long end) {
        Map.Entry<Long, Long> e = ranges.lowerEntry(end);
        return e != null && e.getValue() > start;
    }

    /** Remembers the huge pages of [start, start+done) as possibly poisoned. Caller holds p.lock. */
    private void rememberPoison(Proc p, long start, long done) {
        if (done <= 0) {
            return;
        }
        RVma v = queryVma(start);
        if (v == null || !v.hugetlb() || v.start() > start) {
            return;
        }
        for (long a = start & -v.pageSize(); a < start + done; a += v.pageSize()) {
            p.hugeBookkeeping = true;
            p.hugePoison.put(a, v.pageSize());
        }
    }

    // ------------------------------------------------------------------ mappings

    @Override
    public long mmap(int pid, long addr, long len, int prot, int flags, int fd, long offset) {
        Proc p = proc(pid, "mmap");
        boolean anon = (flags & Linux.MAP_ANONYMOUS) != 0;
        FdEntry file = null;
        if (!anon) {
            file = fd(p, fd, "mmap");
        }
        int realFd = file == null ? -1 : file.real;
        boolean fixed = (flags & (Linux.MAP_FIXED | Linux.MAP_FIXED_NOREPLACE)) != 0;
        long huge = hugeSize(flags, file);
        p.lock.lock();
        try {
            if (fixed) {
                guard(p, "mmap", addr, len, true);
                if ((flags & Linux.MAP_FIXED) != 0 && (flags & Linux.MAP_FIXED_NOREPLACE) == 0) {
                    checkNoInflight(p, addr, addr + alignUp(len, PAGE), "mmap");
                }
                // over a registered range the kernel waits until its EVENT_UNMAP is read
                long r = mayWaitForHandler(() -> Native.mmap(addr, len, prot, flags, realFd, offset));
                forgetPoison(p, addr, addr + alignUp(len, PAGE));
                return noreserve(p, r, len, flags, huge);
            }
            if (len <= 0) {
                throw LinuxException.einval("mmap", "length 0");
            }
            long alen = alignUp(len, huge);
            if (alen <= 0 || alen > WINDOW_SIZE) {
                throw new LinuxException(Errno.ENOMEM, "mmap", 0, "larger than the process's address window");
            }
            int f = flags | Linux.MAP_FIXED_NOREPLACE;
            if (addr != 0 && (addr & (huge - 1)) == 0 && inWindow(p, addr, alen)) {
                try {
                    return noreserve(p, Native.mmap(addr, len, prot, f, realFd, offset), len, flags, huge);
                } catch (LinuxException e) {
                    if (e.errno() != Errno.EEXIST) {
                        throw e;
                    }
                }
            }
            long align = huge > PAGE ? huge : (anon && alen % Linux.PMD_SIZE == 0 ? Linux.PMD_SIZE : PAGE);
            for (int attempt = 0; ; attempt++) {
                long at = findGap(p, alen, align);
                try {
                    return noreserve(p, Native.mmap(at, len, prot, f, realFd, offset), len, flags, huge);
                } catch (LinuxException e) {
                    if (e.errno() != Errno.EEXIST || attempt >= 3) {
                        throw e;
                    }
                }
            }
        } finally {
            p.lock.unlock();
        }
    }

    /** Remembers a new MAP_NORESERVE hugetlb mapping. Caller holds p.lock. */
    private static long noreserve(Proc p, long addr, long len, int flags, long huge) {
        if (huge > PAGE && (flags & Linux.MAP_NORESERVE) != 0) {
            p.hugeBookkeeping = true;
            p.hugeNoreserve.put(addr, addr + alignUp(len, huge));
        }
        return addr;
    }

    private static long hugeSize(int flags, FdEntry file) {
        if (file != null) {
            return Math.max(PAGE, file.hugePageSize);
        }
        if ((flags & Linux.MAP_HUGETLB) != 0) {
            int shift = (flags >>> Linux.MAP_HUGE_SHIFT) & Linux.MAP_HUGE_MASK;
            return shift == 0 ? Linux.PMD_SIZE : 1L << shift;
        }
        return PAGE;
    }

    @Override
    public void munmap(int pid, long addr, long len) {
        Proc p = proc(pid, "munmap");
        p.lock.lock();
        try {
            guard(p, "munmap", addr, len);
            checkNoInflight(p, addr, addr + alignUp(len, PAGE), "munmap");
            mayWaitForHandler(() -> {
                Native.munmap(addr, len);
                return null;
            });
            forgetPoison(p, addr, addr + alignUp(len, PAGE));
        } finally {
            p.lock.unlock();
        }
    }

    @Override
    public long mremap(int pid, long oldAddr, long oldLen, long newLen, int flags, long newAddr) {
        Proc p = proc(pid, "mremap");
        p.lock.lock();
        try {
            guard(p, "mremap", oldAddr, Math.max(oldLen, PAGE));
            checkNoInflight(p, oldAddr, oldAddr + alignUp(Math.max(oldLen, 1), PAGE), "mremap");
            if ((flags & Linux.MREMAP_FIXED) != 0) {
                guard(p, "mremap", newAddr, newLen, true);
                checkNoInflight(p, newAddr, newAddr + alignUp(newLen, PAGE), "mremap");
                return moved(p, oldAddr, oldLen, newLen,
                        mayWaitForHandler(() -> Native.mremap(oldAddr, oldLen, newLen, flags, newAddr)));
            }
            boolean mayMove = (flags & Linux.MREMAP_MAYMOVE) != 0;
            boolean mustMove = (flags & Linux.MREMAP_DONTUNMAP) != 0 || (oldLen == 0 && mayMove);
            if (!mustMove) {
                if (oldAddr + alignUp(newLen, PAGE) <= p.end || !inWindow(p, oldAddr, 1)) {
                    try {
                        return moved(p, oldAddr, oldLen, newLen, mayWaitForHandler(
                                () -> Native.mremap(oldAddr, oldLen, newLen, flags & ~Linux.MREMAP_MAYMOVE, 0)));
                    } catch (LinuxException e) {
                        if (!mayMove || e.errno() != Errno.ENOMEM) {
                            throw e;
                        }
                    }
                } else if (!mayMove) {
                    throw new LinuxException(Errno.ENOMEM, "mremap", 0, "would grow past the address window");
                }
            }
            RVma old = queryVma(oldAddr);
            long align = old != null && old.start() <= oldAddr ? old.pageSize() : PAGE;
            long at = findGap(p, alignUp(newLen, align), align);
            return moved(p, oldAddr, oldLen, newLen, mayWaitForHandler(() -> Native.mremap(oldAddr, oldLen, newLen,
                    flags | Linux.MREMAP_FIXED | Linux.MREMAP_MAYMOVE, at)));
        } finally {
            p.lock.unlock();
        }
    }

    /** Poison bookkeeping follows moved page tables (the old entries are kept: conservative). */
    private static long moved(Proc p, long oldAddr, long oldLen, long newLen, long newAddr) {
        if (overlaps(p.hugeNoreserve, oldAddr, oldAddr + Math.max(oldLen, 1))) {
            p.hugeBookkeeping = true;
            p.hugeNoreserve.put(newAddr, newAddr + alignUp(Math.max(newLen, oldLen), Linux.PMD_SIZE));
        }
        if (newAddr != oldAddr) {
            for (Map.Entry<Long, Long> e : List.copyOf(
                    p.hugePoison.subMap(oldAddr, true, oldAddr + oldLen, false).entrySet())) {
                p.hugeBookkeeping = true;
                p.hugePoison.put(newAddr + (e.getKey() - oldAddr), e.getValue());
            }
        }
        return newAddr;
    }

    @Override
    public void mprotect(int pid, long addr, long len, int prot) {
        Proc p = proc(pid, "mprotect");
        p.lock.lock();
        try {
            guard(p, "mprotect", addr, len);
            checkNoInflight(p, addr, addr + alignUp(len, PAGE), "mprotect");
            Native.mprotect(addr, len, prot);
        } finally {
            p.lock.unlock();
        }
    }

    @Override
    public void madvise(int pid, long addr, long len, int advice) {
        Proc p = proc(pid, "madvise");
        if (advice == MADV_HWPOISON || advice == MADV_SOFT_OFFLINE) {
            throw new LinuxException(Errno.ENOSYS, "madvise", 0,
                    "MADV_HWPOISON/MADV_SOFT_OFFLINE would inject memory failures into the server's own pages");
        }
        if (len == 0 && (addr & (PAGE - 1)) == 0) {
            Native.madvise(addr, 0, advice); // the kernel's answer for an empty range (0 or EINVAL)
            return;
        }
        long[] zap = null;
        p.lock.lock();
        try {
            guard(p, "madvise", addr, len);
            if (advice == Linux.MADV_GUARD_INSTALL) {
                checkNoInflight(p, addr, addr + alignUp(len, PAGE), "madvise");
                // Inside the lock: an access checked before the markers exist must not touch after them.
                markersInstalled = true;
                Native.madvise(addr, len, advice);
                return;
            }
            if ((advice == Linux.MADV_DONTNEED || advice == Linux.MADV_DONTNEED_LOCKED
                    || advice == Linux.MADV_REMOVE) && len > 0 && addr >= p.base && addr < p.end) {
                long end = addr + alignUp(len, PAGE);
                // what lies above the window is not this process's (guard let a little slack through)
                zap = hugetlbZap(p, addr, end < addr || end > p.end ? p.end : end, advice == Linux.MADV_REMOVE);
                if (zap != null) {
                    if (advice == Linux.MADV_REMOVE) {
                        checkNoUserInflight(p, "madvise", HUGETLB_HOLE);
                    } else {
                        checkNoInflight(p, zap[0], zap[1], "madvise");
                    }
                    p.hugeZaps.add(zap);
                }
            }
        } finally {
            p.lock.unlock();
        }
        // Outside the lock: DONTNEED/REMOVE/FREE may block until an EVENT_REMOVE is read, MADV_POPULATE_* until a
        // userfault it takes is resolved.
        try {
            mayWaitForHandler(() -> {
                Native.madvise(addr, len, advice);
                return null;
            });
        } finally {
            if (zap != null) {
                p.hugeZaps.remove(zap);
            }
            p.mapEpoch.incrementAndGet(); // advices that change VMA flags split or merge VMAs
        }
    }

    /**
     * The range a madvise(DONTNEED/REMOVE) of [start, end) may take huge pages from whose refault could need a new
     * huge page (and find none: SIGBUS), or null when it takes none. Whole huge pages: some kernels round a hugetlb
     * DONTNEED's end up to the huge page size (5.18 to 6.3). A hugetlb VMA registered for MISSING with a uffd that
     * is not in SIGBUS mode refaults into a userfault, not an allocation: a DONTNEED there needs nothing (the
     * postcopy "discard while vCPUs fault" pattern). MADV_REMOVE punches a hole in the file, which every mapping
     * of it sees: the whole window then, as fallocate(PUNCH_HOLE). Caller holds p.lock.
     */
    private long[] hugetlbZap(Proc p, long start, long end, boolean remove) {
        long zs = Long.MAX_VALUE;
        long ze = Long.MIN_VALUE;
        Map<Long, Integer> uffdFlags = null;
        for (long pos = start; pos < end;) {
            RVma v = queryVma(pos, false);
            if (v == null || v.start() >= end) {
                break;
            }
            if (v.hugetlb()) {
                if (remove) {
                    return new long[] {p.base, p.end};
                }
                if (uffdFlags == null) {
                    uffdFlags = (registeredUffdKinds(p) & SIGBUS_UFFD) != 0 ? Map.of() : uffdFlagsFromSmaps(p);
                }
                if ((uffdFlags.getOrDefault(v.start(), 0) & Linux.UFFDIO_REGISTER_MODE_MISSING) == 0) {
                    zs = Math.min(zs, Math.max(start, v.start()) & -v.pageSize());
                    ze = Math.max(ze, alignUp(Math.min(end, v.end()), v.pageSize()));
                }
            }
            pos = v.end();
        }
        return zs < ze ? new long[] {zs, ze} : null;
    }

    /** {@link #registeredUffdKinds}: a uffd with UFFD_FEATURE_SIGBUS (its faults raise SIGBUS), one without. */
    private static final int SIGBUS_UFFD = 1;
    private static final int PLAIN_UFFD = 2;

    /** Which kinds of uffd ({@link #SIGBUS_UFFD}, {@link #PLAIN_UFFD}) of the process have a registration. */
    private static int registeredUffdKinds(Proc p) {
        int kinds = 0;
        synchronized (p.fds) {
            for (FdEntry e : p.fds.values()) {
                if (e.kind == Kind.UFFD && e.registered) {
                    kinds |= (e.features & Linux.UFFD_FEATURE_SIGBUS) != 0 ? SIGBUS_UFFD : PLAIN_UFFD;
                }
            }
        }
        return kinds;
    }

    /** Why a hole punched in a hugetlb file waits for no access (fallocate(PUNCH_HOLE), MADV_REMOVE). */
    private static final String HUGETLB_HOLE = "a hugetlb hole punched under it may leave its refault without a "
            + "huge page (SIGBUS kills the server)";

    /**
     * Caller holds p.lock: refuses while any USER access of the process is in flight (unlike
     * {@link #checkNoInflight}, anywhere: the change is the file's, seen by every mapping of it).
     */
    private static void checkNoUserInflight(Proc p, String call, String why) {
        if (p.inflight.stream().anyMatch(f -> f.user)) {
            throw new LinuxException(Errno.ENOSYS, call, 0, "an access is in flight: " + why);
        }
    }

    // ------------------------------------------------------------------ files

    @Override
    public int memfdCreate(int pid, String name, int flags) {
        Proc p = proc(pid, "memfd_create");
        int real = Native.memfdCreate(name == null ? "" : name, flags | Linux.MFD_CLOEXEC);
        long huge = 0;
        if ((flags & Linux.MFD_HUGETLB) != 0) {
            int shift = (flags >>> Linux.MFD_HUGE_SHIFT) & Linux.MFD_HUGE_MASK;
            huge = shift == 0 ? Linux.PMD_SIZE : 1L << shift;
        }
        return install(p, new FdEntry(real, Kind.MEMFD, huge));
    }

    @Override
    public void ftruncate(int pid, int fd, long length) {
        Proc p = proc(pid, "ftruncate");
        long size = withFd(p, fd, "ftruncate", real -> {
            try {
                return Files.size(Path.of("/proc/self/fd/" + real));
            } catch (IOException e) {
                return 0L;
            }
        });
        // Lock order everywhere: p.lock before an fd's lock.
        p.lock.lock();
        try {
            if (length < size) {
                checkNoUserInflight(p, "ftruncate", "shrinking the file could raise SIGBUS in it, which would "
                        + "kill the server");
            }
            fileSizeChanging();
            try {
                withFd(p, fd, "ftruncate", real -> {
                    Native.ftruncate(real, length);
                    return null;
                });
            } finally {
                fileSizeChanging();
            }
        } finally {
            p.lock.unlock();
        }
    }

    @Override
    public void fallocate(int pid, int fd, int mode, long offset, long len) {
        Proc p = proc(pid, "fallocate");
        FdEntry e = fd(p, fd, "fallocate");
        p.lock.lock();
        try {
            if (e.hugePageSize > 0 && (mode & Linux.FALLOC_FL_PUNCH_HOLE) != 0) {
                checkNoUserInflight(p, "fallocate", HUGETLB_HOLE);
            }
            fileSizeChanging();
            try {
                withFd(p, fd, "fallocate", real -> {
                    Native.fallocate(real, mode, offset, len);
                    return null;
                });
            } finally {
                fileSizeChanging();
            }
        } finally {
            p.lock.unlock();
        }
    }

    @Override
    public byte[] pread(int pid, int fd, long offset, int len) {
        Proc p = proc(pid, "pread");
        if (len < 0) {
            throw LinuxException.einval("pread", "negative length");
        }
        return withFd(p, fd, "pread", real -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment buf = a.allocate(Math.max(1, len));
                long r = Native.preadRaw(real, buf.address(), len, offset);
                if (r < 0) {
                    throw Native.fail("pread", (int) -r, 0);
                }
                byte[] out = new byte[(int) r];
                MemorySegment.copy(buf, JAVA_BYTE, 0, out, 0, (int) r);
                return out;
            }
        });
    }

    @Override
    public long pwrite(int pid, int fd, long offset, byte[] data) {
        Proc p = proc(pid, "pwrite");
        fileSizeChanging();
        try {
            return pwriteFd(p, fd, offset, data);
        } finally {
            fileSizeChanging();
        }
    }

    private long pwriteFd(Proc p, int fd, long offset, byte[] data) {
        return withFd(p, fd, "pwrite", real -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment buf = a.allocate(Math.max(1, data.length));
                MemorySegment.copy(data, 0, buf, JAVA_BYTE, 0, data.length);
                long r = Native.pwriteRaw(real, buf.address(), data.length, offset);
                if (r < 0) {
                    throw Native.fail("pwrite", (int) -r, 0);
                }
                return r;
            }
        });
    }

    @Override
    public void close(int pid, int fd) {
        Proc p = proc(pid, "close");
        FdEntry e;
        synchronized (p.fds) {
            e = p.fds.remove(fd);
        }
        if (e == null) {
            throw new LinuxException(Errno.EBADF, "close", 0, "fd " + fd + " not open in process " + pid);
        }
        closeEntry(e);
        if (e.kind == Kind.UFFD) {
            p.mapEpoch.incrementAndGet(); // the release cleared the uffd flags of its VMAs, which may merge
        }
    }

    private static void closeEntry(FdEntry e) {
        e.lock.writeLock().lock();
        try {
            if (!e.closed) {
                e.closed = true;
                Native.close(e.real);
            }
        } finally {
            e.lock.writeLock().unlock();
        }
    }

    // ------------------------------------------------------------------ userfaultfd

    @Override
    public int userfaultfd(int pid, int flags, boolean dev) {
        Proc p = proc(pid, "userfaultfd");
        int known = Linux.O_CLOEXEC | Linux.O_NONBLOCK | Linux.UFFD_USER_MODE_ONLY;
        int real;
        if (dev) {
            if (p.uid != 0) {
                throw new LinuxException(Errno.EACCES, "open", 0, "/dev/userfaultfd is root-only (0600)");
            }
            int devFd = Native.open("/dev/userfaultfd", Native.O_RDWR | Native.O_CLOEXEC);
            try {
                real = Native.ioctl("USERFAULTFD_IOC_NEW", devFd, Uapi.USERFAULTFD_IOC_NEW,
                        (long) ((flags & known) == flags ? flags | Linux.O_NONBLOCK | Linux.O_CLOEXEC : flags));
            } finally {
                Native.close(devFd);
            }
        } else {
            if ((flags & known) == flags && (flags & Linux.UFFD_USER_MODE_ONLY) == 0 && !p.privileged()
                    && readSysctl("vm/unprivileged_userfaultfd").equals("0")) {
                throw new LinuxException(Errno.EPERM, "userfaultfd", 0,
                        "no CAP_SYS_PTRACE and vm.unprivileged_userfaultfd=0");
            }
            real = (int) Native.syscall("userfaultfd", Uapi.SYS_USERFAULTFD,
                    (flags & known) == flags ? flags | Linux.O_NONBLOCK | Linux.O_CLOEXEC : flags);
        }
        FdEntry entry = new FdEntry(real, Kind.UFFD, 0);
        entry.openFlags = flags & known;
        return install(p, entry);
    }

    @Override
    public Userfaultfd.ApiResult uffdApi(int pid, int fd, long api, long features) {
        Proc p = proc(pid, "UFFDIO_API");
        FdEntry e = fd(p, fd, "UFFDIO_API");
        if ((features & Linux.UFFD_FEATURE_EVENT_FORK) != 0 && !p.cap && p.uid != 0 && api == Linux.UFFD_API
                && (features & ~LinuxAvailability.features()) == 0) {
            throw new LinuxException(Errno.EPERM, "UFFDIO_API", 0, "UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE");
        }
        return withFd(p, fd, "UFFDIO_API", real -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment s = a.allocate(Uapi.UFFDIO_API_S);
                set(s, Uapi.UFFDIO_API_S, "api", api);
                set(s, Uapi.UFFDIO_API_S, "features", features);
                Native.ioctl("UFFDIO_API", real, Uapi.UFFDIO_API, s);
                e.features = features;
                e.apiDone = true;
                return new Userfaultfd.ApiResult(get(s, Uapi.UFFDIO_API_S, "features"),
                        get(s, Uapi.UFFDIO_API_S, "ioctls"));
            }
        });
    }

    @Override
    public long uffdRegister(int pid, int fd, long start, long len, long mode) {
        Proc p = proc(pid, "UFFDIO_REGISTER");
        FdEntry e = fd(p, fd, "UFFDIO_REGISTER");
        p.lock.lock();
        try {
            guard(p, "UFFDIO_REGISTER", start, len);
            if ((e.features & Linux.UFFD_FEATURE_SIGBUS) != 0) {
                checkNoInflight(p, start, start + alignUp(len, PAGE), "UFFDIO_REGISTER");
            }
            return withFd(p, fd, "UFFDIO_REGISTER", real -> {
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment s = a.allocate(Uapi.UFFDIO_REGISTER_S);
                    s.set(JAVA_LONG, Uapi.off(Uapi.UFFDIO_REGISTER_S, "range", "start"), start);
                    s.set(JAVA_LONG, Uapi.off(Uapi.UFFDIO_REGISTER_S, "range", "len"), len);
                    set(s, Uapi.UFFDIO_REGISTER_S, "mode", mode);
                    Native.ioctl("UFFDIO_REGISTER", real, Uapi.UFFDIO_REGISTER, s);
                    e.registered = true;
                    synchronized (e.registeredRanges) {
                        subtract(e.registeredRanges, start, start + len);
                        e.registeredRanges.put(start, start + len);
                    }
                    return get(s, Uapi.UFFDIO_REGISTER_S, "ioctls");
                }
            });
        } finally {
            p.lock.unlock();
        }
    }

    @Override
    public void uffdUnregister(int pid, int fd, long start, long len) {
        Proc p = proc(pid, "UFFDIO_UNREGISTER");
        guard(p, "UFFDIO_UNREGISTER", start, len);
        FdEntry entry;
        try {
            entry = withFd(p, fd, "UFFDIO_UNREGISTER", real -> {
                rangeIoctl("UFFDIO_UNREGISTER", real, Uapi.UFFDIO_UNREGISTER, start, len);
                return fd(p, fd, "UFFDIO_UNREGISTER");
            });
        } finally {
            p.mapEpoch.incrementAndGet(); // VMAs split or merged
        }
        synchronized (entry.registeredRanges) {
            subtract(entry.registeredRanges, start, start + len);
        }
        wakeAbandoned(p, fd, start, len);
    }

    private static void rangeIoctl(String call, int real, long req, long start, long len) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(Uapi.UFFDIO_RANGE);
            set(s, Uapi.UFFDIO_RANGE, "start", start);
            set(s, Uapi.UFFDIO_RANGE, "len", len);
            Native.ioctl(call, real, req, s);
        }
    }

    /** The mfill convention: 0 = all done; -1/EAGAIN with a positive result = partial; else -errno. */
    private static long mfillResult(String call, int r, long field) {
        if (r >= 0) {
            return field;
        }
        if (-r == Errno.EAGAIN.number() && field > 0) {
            throw new LinuxException(Errno.EAGAIN, call, field);
        }
        throw Native.fail(call, -r, 0);
    }

    @Override
    public long uffdCopy(int pid, int fd, long dst, byte[] src, long mode) {
        return copy(pid, fd, dst, MemorySegment.ofArray(src), mode);
    }

    /** Each op as {@link #uffdCopy}, its bytes copied from its buffer straight into the scratch segment. */
    @Override
    public void uffdCopyBatch(List<Userfaultfd.CopyOp> ops, Userfaultfd.CopyOutcome outcome) {
        MemoryBackend.copyEach(ops, outcome,
                op -> copy(op.pid(), op.fd(), op.dst(), MemorySegment.ofBuffer(op.src()), op.mode()));
    }

    private long copy(int pid, int fd, long dst, MemorySegment src, long mode) {
        Proc p = proc(pid, "UFFDIO_COPY");
        long len = src.byteSize();
        guard(p, "UFFDIO_COPY", dst, len);
        long done;
        try {
            done = withFd(p, fd, "UFFDIO_COPY", real -> {
                long srcRoom = alignUp(Math.max(1, len), 8);
                try (Scratch a = Scratch.of(srcRoom + Uapi.UFFDIO_COPY_S.byteSize())) {
                    MemorySegment buf = a.segment();
                    MemorySegment.copy(src, 0, buf, 0, len);
                    MemorySegment s = a.zeroed(srcRoom, Uapi.UFFDIO_COPY_S.byteSize());
                    s.set(JAVA_LONG, Uapi.COPY_DST, dst);
                    s.set(JAVA_LONG, Uapi.COPY_SRC, buf.address());
                    s.set(JAVA_LONG, Uapi.COPY_LEN, len);
                    s.set(JAVA_LONG, Uapi.COPY_MODE, mode);
                    int r = Native.ioctlRaw(real, Uapi.UFFDIO_COPY, s);
                    return mfillResult("UFFDIO_COPY", r, s.get(JAVA_LONG, Uapi.COPY_COPY));
                }
            });
        } catch (LinuxException e) {
            copied(p, dst, e.bytesDone());
            throw e;
        }
        copied(p, dst, done);
        return done;
    }

    /** A COPY replaced whatever marker sat on [dst, dst+done). */
    private static void copied(Proc p, long dst, long done) {
        if (done <= 0 || !p.hugeBookkeeping) {
            return;
        }
        p.lock.lock();
        try {
            forgetPoison(p, dst, dst + done);
        } finally {
            p.lock.unlock();
        }
    }

    private long rangeModeResult(int pid, int fd, String call, long req, long start, long len, long mode,
            boolean poison) {
        Proc p = proc(pid, call);
        guard(p, call, start, len);
        java.util.function.IntFunction<Long> op = real -> {
            try (Scratch a = Scratch.of(Uapi.UFFDIO_RANGE_MODE_RESULT.byteSize())) {
                MemorySegment s = a.zeroed(0, Uapi.UFFDIO_RANGE_MODE_RESULT.byteSize());
                s.set(JAVA_LONG, Uapi.off(Uapi.UFFDIO_RANGE_MODE_RESULT, "range", "start"), start);
                s.set(JAVA_LONG, Uapi.off(Uapi.UFFDIO_RANGE_MODE_RESULT, "range", "len"), len);
                set(s, Uapi.UFFDIO_RANGE_MODE_RESULT, "mode", mode);
                int r = Native.ioctlRaw(real, req, s);
                return mfillResult(call, r, get(s, Uapi.UFFDIO_RANGE_MODE_RESULT, "result"));
            }
        };
        if (!poison) {
            return withFd(p, fd, call, op);
        }
        p.lock.lock();
        try {
            checkNoInflight(p, start, start + alignUp(len, PAGE), call);
            markersInstalled = true;
            long done;
            try {
                done = withFd(p, fd, call, op);
            } catch (LinuxException e) {
                rememberPoison(p, start, e.bytesDone());
                throw e;
            }
            rememberPoison(p, start, done);
            return done;
        } finally {
            p.lock.unlock();
        }
    }

    @Override
    public long uffdZeropage(int pid, int fd, long start, long len, long mode) {
        return rangeModeResult(pid, fd, "UFFDIO_ZEROPAGE", Uapi.UFFDIO_ZEROPAGE, start, len, mode, false);
    }

    @Override
    public long uffdContinue(int pid, int fd, long start, long len, long mode) {
        return rangeModeResult(pid, fd, "UFFDIO_CONTINUE", Uapi.UFFDIO_CONTINUE, start, len, mode, false);
    }

    @Override
    public long uffdPoison(int pid, int fd, long start, long len, long mode) {
        return rangeModeResult(pid, fd, "UFFDIO_POISON", Uapi.UFFDIO_POISON, start, len, mode, true);
    }

    @Override
    public void uffdWriteprotect(int pid, int fd, long start, long len, long mode) {
        Proc p = proc(pid, "UFFDIO_WRITEPROTECT");
        guard(p, "UFFDIO_WRITEPROTECT", start, len);
        withFd(p, fd, "UFFDIO_WRITEPROTECT", real -> {
            try (Scratch a = Scratch.of(Uapi.UFFDIO_WRITEPROTECT_S.byteSize())) {
                MemorySegment s = a.zeroed(0, Uapi.UFFDIO_WRITEPROTECT_S.byteSize());
                s.set(JAVA_LONG, Uapi.WP_START, start);
                s.set(JAVA_LONG, Uapi.WP_LEN, len);
                s.set(JAVA_LONG, Uapi.WP_MODE, mode);
                Native.ioctl("UFFDIO_WRITEPROTECT", real, Uapi.UFFDIO_WRITEPROTECT, s);
                return null;
            }
        });
    }

    @Override
    public void uffdWake(int pid, int fd, long start, long len) {
        Proc p = proc(pid, "UFFDIO_WAKE");
        guard(p, "UFFDIO_WAKE", start, len);
        withFd(p, fd, "UFFDIO_WAKE", real -> {
            rangeIoctl("UFFDIO_WAKE", real, Uapi.UFFDIO_WAKE, start, len);
            return null;
        });
    }

    @Override
    public long uffdMove(int pid, int fd, long dst, long src, long len, long mode) {
        Proc p = proc(pid, "UFFDIO_MOVE");
        guard(p, "UFFDIO_MOVE", dst, len);
        guard(p, "UFFDIO_MOVE", src, len);
        return withFd(p, fd, "UFFDIO_MOVE", real -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment s = a.allocate(Uapi.UFFDIO_MOVE_S);
                set(s, Uapi.UFFDIO_MOVE_S, "dst", dst);
                set(s, Uapi.UFFDIO_MOVE_S, "src", src);
                set(s, Uapi.UFFDIO_MOVE_S, "len", len);
                set(s, Uapi.UFFDIO_MOVE_S, "mode", mode);
                int r = Native.ioctlRaw(real, Uapi.UFFDIO_MOVE, s);
                return mfillResult("UFFDIO_MOVE", r, get(s, Uapi.UFFDIO_MOVE_S, "move"));
            }
        });
    }

    @Override
    public List<UffdMsg> uffdRead(int pid, int fd, int max, long deadlineNanos) throws InterruptedException {
        if (max <= 0) {
            throw LinuxException.einval("read", "buffer smaller than one uffd_msg");
        }
        Proc p = proc(pid, "read");
        FdEntry e = fd(p, fd, "read");
        if (e.kind != Kind.UFFD) {
            throw new LinuxException(Errno.ENOTTY, "read", 0, "fd " + fd + " is not a userfaultfd");
        }
        long msgSize = Uapi.UFFD_MSG.byteSize();
        try (Scratch a = Scratch.of(msgSize * max)) {
            MemorySegment buf = a.segment();
            while (true) {
                if (Thread.interrupted()) {
                    throw new InterruptedException();
                }
                long r;
                e.lock.readLock().lock();
                try {
                    if (e.closed || p.exited) {
                        return List.of();
                    }
                    r = Native.readRaw(e.real, buf.address(), msgSize * max);
                    if (r == -Native.EAGAIN) {
                        if (deadlineNanos == 0) {
                            return List.of();
                        }
                        long left = deadlineNanos == Long.MAX_VALUE ? Long.MAX_VALUE
                                : deadlineNanos - System.nanoTime();
                        if (left <= 0) {
                            return List.of();
                        }
                        int ms = (int) Math.max(1, Math.min(50, TimeUnit.NANOSECONDS.toMillis(left) + 1));
                        pollIn(e.real, ms);
                        continue;
                    }
                } finally {
                    e.lock.readLock().unlock();
                }
                if (r < 0) {
                    throw Native.fail("read", (int) -r, 0);
                }
                List<UffdMsg> out = new ArrayList<>();
                for (long off = 0; off + msgSize <= r; off += msgSize) {
                    out.add(decode(p, e, buf.asSlice(off, msgSize)));
                }
                return out;
            }
        }
    }

    /**
     * fdinfo of a uffd this backend opened. What it can know: the flags and features it negotiated, the ranges it
     * registered through this fd (clipped to the VMAs that still carry uffd flags in smaps, with their modes),
     * and the kernel's own {@code pending}/{@code total} from {@code /proc/self/fdinfo} of the real fd. The kernel
     * exposes no count of unread events: {@code pendingEvents} is 0.
     */
    @Override
    public io.uffdemu.server.mm.UffdFdinfo.Description uffdDescribe(int pid, int fd) {
        Proc p = proc(pid, "fdinfo");
        FdEntry e = fd(p, fd, "fdinfo");
        if (e.kind != Kind.UFFD) {
            throw new LinuxException(Errno.ENOTTY, "fdinfo", 0, "fd " + fd + " is not a userfaultfd");
        }
        TreeMap<Long, Long> mine;
        synchronized (e.registeredRanges) {
            mine = new TreeMap<>(e.registeredRanges);
        }
        List<io.uffdemu.server.mm.UffdFdinfo.Range> ranges = new ArrayList<>();
        if (!mine.isEmpty()) {
            Map<Long, Integer> flags = uffdFlagsFromSmaps(p);
            for (RVma v : vmas(p.base, p.end)) {
                int mode = flags.getOrDefault(v.start(), 0);
                if (mode == 0) {
                    continue;
                }
                for (Map.Entry<Long, Long> r : mine.entrySet()) {
                    long s = Math.max(v.start(), r.getKey());
                    long t = Math.min(v.end(), r.getValue());
                    if (s < t) {
                        ranges.add(new io.uffdemu.server.mm.UffdFdinfo.Range(s, t, mode));
                    }
                }
            }
        }
        long[] counts = withFd(p, fd, "fdinfo", LinuxBackend::fdinfoCounts);
        // the kernel's ctx->features (API line), not what was requested: WP_ASYNC also sets WP_UNPOPULATED
        long features = counts[2] >= 0 ? counts[2] & ~UFFD_FEATURE_INITIALIZED : e.features;
        return new io.uffdemu.server.mm.UffdFdinfo.Description(pid, fd, e.openFlags, e.apiDone, features,
                List.copyOf(ranges), (int) counts[0], (int) counts[1], 0, e.closed);
    }

    /** fs/userfaultfd.c: the internal "initialized" bit ctx->features carries after UFFDIO_API. */
    private static final long UFFD_FEATURE_INITIALIZED = 1L << 31;

    /**
     * {@code pending}, {@code total} and the ctx features of the {@code API:\taa:FEATURES:IOCTLS} line (-1 when
     * absent) of /proc/self/fdinfo/REAL (fs/userfaultfd.c:userfaultfd_show_fdinfo).
     */
    private static long[] fdinfoCounts(int real) {
        long[] out = {0, 0, -1};
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/fdinfo/" + real))) {
                if (line.startsWith("pending:")) {
                    out[0] = Long.parseLong(line.substring(8).trim());
                } else if (line.startsWith("total:")) {
                    out[1] = Long.parseLong(line.substring(6).trim());
                } else if (line.startsWith("API:")) {
                    String[] f = line.substring(4).trim().split(":");
                    if (f.length == 3) {
                        out[2] = Long.parseLong(f[1], 16);
                    }
                }
            }
        } catch (IOException | NumberFormatException ex) {
            throw new LinuxException(Errno.EIO, "read /proc/self/fdinfo", 0, ex.toString());
        }
        return out;
    }

    /**
     * poll(2) for POLLIN. A virtual thread must not block in a native call: the call pins its carrier for the whole
     * timeout (up to 50 ms here), and with the gRPC Handle readers on virtual threads two idle uffds would stall
     * every carrier of a 2-core machine. Virtual callers therefore wait on an access thread (one hop, paid only
     * when the uffd was empty); platform callers poll themselves.
     */
    private void pollIn(int realFd, int ms) throws InterruptedException {
        if (!Thread.currentThread().isVirtual()) {
            Native.poll1(realFd, Uapi.POLLIN, ms);
            return;
        }
        try {
            accessThreads.submit(() -> Native.poll1(realFd, Uapi.POLLIN, ms)).get(Long.MAX_VALUE);
        } catch (InterruptedException | RuntimeException | Error ex) {
            throw ex;
        } catch (Exception ex) {
            throw new IllegalStateException(ex);
        }
    }

    /**
     * Runs a syscall that may wait in the kernel for a userfaultfd handler: munmap, mremap and a MAP_FIXED mmap until
     * the EVENT_UNMAP / EVENT_REMAP they raise is read, madvise until its EVENT_REMOVE is read or, for
     * MADV_POPULATE_*, until a userfault it takes is resolved. A virtual caller (every gRPC call) hands it to an access
     * thread and parks: blocked in a native call it would pin its carrier, which the scheduler does not replace, while
     * the handler that has to read the event (a Handle stream's reader, a Read call) is a virtual thread too; with
     * the carriers all pinned so (one is enough with {@code uffdemu.virtual-threads.parallelism=1}) nothing reads it
     * and the server stalls. The wait is not interruptible: the syscall cannot be abandoned half way, and munmap and
     * mremap hold {@code p.lock} across it. A platform caller runs the syscall itself.
     */
    private <T> T mayWaitForHandler(java.util.concurrent.Callable<T> syscall) {
        if (!Thread.currentThread().isVirtual()) {
            try {
                return syscall.call();
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
        AccessThreads.Task<T> task = accessThreads.submit(syscall);
        boolean interrupted = false;
        try {
            while (true) {
                try {
                    return task.get(Long.MAX_VALUE);
                } catch (InterruptedException e) {
                    interrupted = true; // wait on: the syscall is under way
                } catch (RuntimeException | Error e) {
                    throw e;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private UffdMsg decode(Proc reader, FdEntry e, MemorySegment m) {
        int event = m.get(JAVA_BYTE, Uapi.MSG_EVENT) & 0xff;
        long a0 = m.get(JAVA_LONG, Uapi.MSG_ARG0);
        long a1 = m.get(JAVA_LONG, Uapi.MSG_ARG1);
        long a2 = m.get(JAVA_LONG, Uapi.MSG_ARG2);
        long seq = e.seq.incrementAndGet();
        return switch (event) {
            case Linux.UFFD_EVENT_PAGEFAULT -> new UffdMsg.Pagefault(seq, a0, a1, (int) a2);
            case Linux.UFFD_EVENT_FORK -> {
                FdEntry child = new FdEntry((int) a0, Kind.UFFD, 0);
                child.features = e.features;
                yield new UffdMsg.Fork(seq, install(reader, child), 0);
            }
            case Linux.UFFD_EVENT_REMAP -> new UffdMsg.Remap(seq, a0, a1, a2);
            case Linux.UFFD_EVENT_REMOVE -> new UffdMsg.Remove(seq, a0, a1);
            case Linux.UFFD_EVENT_UNMAP -> new UffdMsg.Unmap(seq, a0, a1);
            default -> throw new LinuxException(Errno.EIO, "read", 0, "unknown uffd_msg event 0x"
                    + Integer.toHexString(event));
        };
    }

    // ------------------------------------------------------------------ sysctl, meminfo

    private static final Map<String, String> SYSCTLS = Map.of(
            "vm/unprivileged_userfaultfd", "/proc/sys/vm/unprivileged_userfaultfd",
            "vm/nr_hugepages", "/proc/sys/vm/nr_hugepages",
            "vm/nr_hugepages_1G", "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages",
            "vm/mmap_min_addr", "/proc/sys/vm/mmap_min_addr",
            "mm/transparent_hugepage/enabled", "/sys/kernel/mm/transparent_hugepage/enabled",
            "mm/transparent_hugepage/use_zero_page", "/sys/kernel/mm/transparent_hugepage/use_zero_page",
            "mm/transparent_hugepage/shmem_enabled", "/sys/kernel/mm/transparent_hugepage/shmem_enabled");

    /** sysfs multiple-choice files print "always [madvise] never": the bracketed word is the value. */
    private static String selected(String raw) {
        int a = raw.indexOf('[');
        int b = raw.indexOf(']', a + 1);
        return a >= 0 && b > a ? raw.substring(a + 1, b) : raw;
    }

    private static String readSysctl(String name) {
        String path = SYSCTLS.get(name);
        if (path == null) {
            throw new LinuxException(Errno.ENOENT, "sysctl", 0, "unknown sysctl " + name);
        }
        try {
            return selected(Files.readString(Path.of(path)).trim());
        } catch (NoSuchFileException e) {
            return "0";
        } catch (IOException e) {
            throw new LinuxException(Errno.EIO, "sysctl", 0, "read " + path + ": " + e);
        }
    }

    @Override
    public String sysctl(String name) {
        if (name.equals(io.uffdemu.server.mm.Kernel.READ_FAULT_ZERO_PAGE)) {
            return readFaultZeroPage() ? "1" : "0";
        }
        return readSysctl(name);
    }

    /** Whether this host's anonymous read faults map the zero page ({@link #probeReadFaultZeroPage}, once). */
    private static volatile Boolean readFaultZeroPage;

    private boolean readFaultZeroPage() {
        Boolean z = readFaultZeroPage;
        if (z == null) {
            z = probeReadFaultZeroPage();
            readFaultZeroPage = z;
        }
        return z;
    }

    /**
     * No file says whether the kernel maps its shared zero page on an anonymous read fault (mainline does unless
     * {@code mm_forbids_zeropage()}; some hosts turn it off at boot, e.g. {@code pvm_no_zero_page=1}), so this
     * asks the kernel: a read fault on a fresh private anonymous page of this process maps either the zero page,
     * which pagemap never shows as exclusively mapped (no struct page behind its special PTE: no
     * PM_MMAP_EXCLUSIVE), or a page of its own, which it shows as exclusive.
     */
    private boolean probeReadFaultZeroPage() {
        long a = Native.mmap(0, PAGE, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS,
                -1, 0);
        try {
            // a 4 KiB read fault, not a THP one (what pagemap shows for the huge zero page has varied by release)
            Native.madvise(a, PAGE, Linux.MADV_NOHUGEPAGE);
            if (MemorySegment.ofAddress(a).reinterpret(PAGE).get(JAVA_BYTE, 0) != 0) {
                throw new IllegalStateException("a fresh anonymous page read non-zero");
            }
            long pm = pagemapRaw(a, 1)[0];
            if ((pm & Linux.PM_PRESENT) == 0) {
                throw new IllegalStateException("a page just read is not present in pagemap");
            }
            return (pm & Linux.PM_MMAP_EXCLUSIVE) == 0;
        } finally {
            Native.munmap(a, PAGE);
        }
    }

    @Override
    public void setSysctl(String name, String value) {
        if (name.equals(io.uffdemu.server.mm.Kernel.READ_FAULT_ZERO_PAGE)) {
            throw new LinuxException(Errno.EPERM, "sysctl", 0, "fixed when the host kernel booted");
        }
        String path = SYSCTLS.get(name);
        if (path == null) {
            throw new LinuxException(Errno.ENOENT, "sysctl", 0, "unknown sysctl " + name);
        }
        if (name.equals(io.uffdemu.server.mm.Kernel.THP_ENABLED)
                || name.equals(io.uffdemu.server.mm.Kernel.THP_SHMEM_ENABLED)) {
            String mode = value.trim();
            List<String> modes = name.equals(io.uffdemu.server.mm.Kernel.THP_SHMEM_ENABLED)
                    ? io.uffdemu.server.mm.Kernel.SHMEM_THP_MODES
                    : io.uffdemu.server.mm.Kernel.THP_MODES;
            if (!modes.contains(mode)) {
                throw LinuxException.einval("sysctl", String.join(", ", modes));
            }
            writeSysfs(path, mode);
            return;
        }
        long v;
        try {
            v = Long.parseLong(value.trim());
        } catch (NumberFormatException e) {
            throw LinuxException.einval("sysctl", "not a number: " + value);
        }
        if (name.equals(io.uffdemu.server.mm.Kernel.THP_USE_ZERO_PAGE) && v != 0 && v != 1) {
            throw LinuxException.einval("sysctl", "0 or 1");
        }
        if (name.equals("vm/mmap_min_addr")) {
            throw new LinuxException(Errno.EPERM, "sysctl", 0, "read-only here");
        }
        if (name.equals("vm/unprivileged_userfaultfd") && v != 0 && v != 1) {
            throw LinuxException.einval("sysctl", "0 or 1");
        }
        if (v < 0) {
            throw LinuxException.einval("sysctl", "nr_hugepages out of range");
        }
        writeSysfs(path, Long.toString(v));
    }

    private static void writeSysfs(String path, String v) {
        try {
            Files.writeString(Path.of(path), v);
        } catch (NoSuchFileException e) {
            throw new LinuxException(Errno.ENOENT, "sysctl", 0, path + " does not exist on this kernel");
        } catch (IOException e) {
            throw new LinuxException(Errno.EINVAL, "sysctl", 0, "write " + path + ": " + e);
        }
    }

    @Override
    public Map<String, Long> meminfo() {
        Map<String, Long> m = new LinkedHashMap<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                int colon = line.indexOf(':');
                if (colon <= 0) {
                    continue;
                }
                String[] parts = line.substring(colon + 1).trim().split("\\s+");
                try {
                    m.put(line.substring(0, colon), Long.parseLong(parts[0]));
                } catch (NumberFormatException ignored) {
                    // not a number: skip
                }
            }
        } catch (IOException e) {
            throw new LinuxException(Errno.EIO, "read /proc/meminfo", 0, e.toString());
        }
        return m;
    }

    // ------------------------------------------------------------------ lifecycle

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Integer pid : List.copyOf(procs.keySet())) {
            try {
                exit(pid);
            } catch (LinuxException ignored) {
                // already gone
            }
        }
        accessThreads.shutdown();
        Native.close(mapsFd);
        Native.close(pagemapFd);
        Native.close(memFd);
    }
}
