package io.uffdemu.server.mm;

import static io.uffdemu.server.mm.Linux.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Core unit tests of the userfaultfd emulation, without Spring and without the backend SPI: the parts the
 * differential conformance suite cannot compare with the real kernel (fork, EVENT_FORK, fdinfo, credentials,
 * exited owners) plus the main tables of the reference, crossed with the memory types. Invariants are checked
 * after every kernel operation. Faulting accesses run on virtual threads with deadlines.
 */
@Timeout(30)
class UffdUnitTest {
    enum Mem {
        ANON, SHMEM, SHMEM_PRIVATE, HUGETLB;

        boolean hugetlb() {
            return this == HUGETLB;
        }

        boolean shared() {
            return this == SHMEM || this == HUGETLB;
        }

        long ps() {
            return hugetlb() ? PMD_SIZE : PAGE_SIZE;
        }
    }

    static final long MS = 1_000_000L;

    Kernel k;
    int pid;

    @BeforeEach
    void setUp() {
        k = new Kernel(new Kernel.Config(256L << 20, 32L << 20, 16, 0, true));
        k.setSysctl("vm/nr_hugepages", "16");
        pid = k.createProcess("t", 0, true, "test").pid();
    }

    @AfterEach
    void tearDown() {
        for (Task t : k.tasks()) {
            k.exit(t.pid());
        }
    }

    long map(Mem m, int pages) {
        long len = pages * m.ps();
        if (m == Mem.ANON) {
            return k.vm.mmap(pid, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        }
        int fd = k.memfdCreate(pid, "m", m.hugetlb() ? MFD_HUGETLB : 0);
        k.ftruncate(pid, fd, len);
        return k.vm.mmap(pid, 0, len, PROT_READ | PROT_WRITE, m.shared() ? MAP_SHARED : MAP_PRIVATE, fd, 0);
    }

    int uffd(long features) {
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        k.uffd.api(pid, fd, UFFD_API, features);
        return fd;
    }

    CompletableFuture<AccessResult> access(int p, long addr, boolean write) {
        CompletableFuture<AccessResult> f = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try {
                f.complete(k.faults.access(p, addr, 1, write, write ? new byte[] {7} : null, AccessMode.USER,
                        System.nanoTime() + 5000 * MS));
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }

    void touch(long addr, boolean write) throws Exception {
        assertTrue(access(pid, addr, write).get(5, TimeUnit.SECONDS).succeeded());
    }

    /** read(2) of up to 16 messages without a deadline, on a virtual thread (as a Handle stream's reader). */
    CompletableFuture<List<UffdMsg>> readWithoutDeadline(int p, int fd) {
        CompletableFuture<List<UffdMsg>> f = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try {
                f.complete(k.uffd.read(p, fd, 16, Long.MAX_VALUE));
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        });
        return f;
    }

    static boolean blocked(CompletableFuture<?> f) throws Exception {
        try {
            f.get(150, TimeUnit.MILLISECONDS);
            return false;
        } catch (TimeoutException e) {
            return true;
        }
    }

    List<UffdMsg> read(int p, int fd) throws InterruptedException {
        return k.uffd.read(p, fd, 16, System.nanoTime() + 2000 * MS);
    }

    String pm(int p, long addr) {
        long e = k.pagemap.read(p, addr, 1)[0];
        return "" + ((e & PM_PRESENT) != 0 ? 'P' : '-') + ((e & PM_SWAP) != 0 ? 'S' : '-')
                + ((e & PM_UFFD_WP) != 0 ? 'W' : '-') + ((e & PM_FILE) != 0 ? 'F' : '-');
    }

    static Errno errno(org.junit.jupiter.api.function.Executable r) {
        return assertThrows(LinuxException.class, r).errno();
    }

    // ------------------------------------------------------------------ §2 handshake and credentials

    @Test
    void apiHandshakeAndFdinfo() {
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC, false);
        assertEquals(0, k.uffd.info(pid, fd).features());
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.register(pid, fd, 1 << 20, PAGE_SIZE, 1)));
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.api(pid, fd, 0xab, 0)));
        assertFalse(k.uffd.info(pid, fd).apiDone(), "a failed API does not initialize the fd");
        var r = k.uffd.api(pid, fd, UFFD_API, UFFD_FEATURE_WP_ASYNC);
        assertEquals(0x1ffffL, r.features());
        assertEquals(0x8000000000000003L, r.ioctls());
        assertEquals(0x8000a000L, k.uffd.info(pid, fd).features(), "WP_ASYNC implies WP_UNPOPULATED");
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.api(pid, fd, UFFD_API, 0)));
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.read(pid, fd, 0, 0)), "read count < 32");
    }

    @Test
    void credentials() {
        int nobody = k.createProcess("nobody", 65534, false, "test").pid();
        assertEquals(Errno.EPERM, errno(() -> k.uffd.userfaultfd(nobody, 0, false)));
        assertEquals(Errno.EPERM, errno(() -> k.uffd.userfaultfd(nobody, 0x4000_0000, false)),
                "userfaultfd_syscall_allowed() comes before the flags check");
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.userfaultfd(nobody, 0x4000_0000 | UFFD_USER_MODE_ONLY, false)));
        int fd = k.uffd.userfaultfd(nobody, UFFD_USER_MODE_ONLY, false);
        assertEquals(Errno.EPERM, errno(() -> k.uffd.api(nobody, fd, UFFD_API, UFFD_FEATURE_EVENT_FORK)));
        assertEquals(Errno.EACCES, errno(() -> k.uffd.userfaultfd(nobody, 0, true)));
        k.setSysctl("vm/unprivileged_userfaultfd", "1");
        k.uffd.userfaultfd(nobody, 0, false);
        k.setSysctl("vm/unprivileged_userfaultfd", "0");
    }

    // ------------------------------------------------------------------ §3.1 REGISTER table

    @ParameterizedTest
    @EnumSource(Mem.class)
    void registerMatrix(Mem m) {
        long a = map(m, 1);
        int u = uffd(0);
        long[] anon = {-1, 0x13c, 0x17c, 0x17c, -1, -1, -1, -1, -1};
        long[] shmem = {-1, 0x13c, 0x17c, 0x17c, 0x1bc, 0x1bc, 0x1fc, 0x1fc, -1};
        long[] huge = {-1, 0x10c, 0x14c, 0x14c, 0x18c, 0x18c, 0x1cc, 0x1cc, -1};
        long[] want = m == Mem.ANON ? anon : m.hugetlb() ? huge : shmem;
        for (int mode = 0; mode <= 8; mode++) {
            int md = mode;
            if (want[mode] < 0) {
                assertEquals(Errno.EINVAL, errno(() -> k.uffd.register(pid, u, a, m.ps(), md)), "mode " + mode);
            } else {
                assertEquals(want[mode], k.uffd.register(pid, u, a, m.ps(), mode), "mode " + mode);
            }
        }
    }

    @Test
    void mixedRanges() {
        long h = map(Mem.HUGETLB, 1);
        long anon = k.vm.mmap(pid, h - PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        int u = uffd(0);
        // a hugetlb start must be huge page aligned; here the anon page starts the range
        assertEquals(0x10cL, k.uffd.register(pid, u, anon, PAGE_SIZE + PMD_SIZE, UFFDIO_REGISTER_MODE_MISSING));
        k.uffd.unregister(pid, u, anon, PAGE_SIZE + PMD_SIZE);
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.register(pid, u, anon, PAGE_SIZE + PMD_SIZE,
                UFFDIO_REGISTER_MODE_MINOR)));
        long none = k.vm.mmap(pid, 0, PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assertEquals(0x17cL, k.uffd.register(pid, u, none, PAGE_SIZE, 3), "PROT_NONE anon registers");
    }

    // ------------------------------------------------------------------ §6.2 fork

    @ParameterizedTest
    @EnumSource(Mem.class)
    void forkWithoutEventForkDropsWp(Mem m) throws Exception {
        long a = map(m, 2);
        touch(a, true);
        int u = uffd(0);
        k.uffd.register(pid, u, a, 2 * m.ps(), UFFDIO_REGISTER_MODE_WP);
        k.uffd.writeprotect(pid, u, a, 2 * m.ps(), UFFDIO_WRITEPROTECT_MODE_WP);
        int child = k.fork(pid).pid();
        if (m.shared()) {
            assertEquals("----", pm(child, a), "shared child gets no PTEs");
        } else {
            assertEquals("P---", pm(child, a), "private child loses wp");
        }
        assertTrue(k.maps(child).stream().allMatch(v -> v.uffdFlags() == 0), "child VMAs are unregistered");
        assertTrue(access(child, a, true).get(5, TimeUnit.SECONDS).succeeded(), "child writes are silent");
        assertEquals(List.of(), k.uffd.read(pid, u, 16, 0));
        assertEquals(m.shared() ? "P-WF" : "P-W-", pm(pid, a), "the parent keeps wp");
    }

    @ParameterizedTest
    @EnumSource(Mem.class)
    void forkWithEventFork(Mem m) throws Exception {
        long a = map(m, 2);
        touch(a, true);
        int u = uffd(UFFD_FEATURE_EVENT_FORK);
        k.uffd.register(pid, u, a, 2 * m.ps(), UFFDIO_REGISTER_MODE_WP);
        k.uffd.writeprotect(pid, u, a, 2 * m.ps(), UFFDIO_WRITEPROTECT_MODE_WP);
        CompletableFuture<Task> fork = CompletableFuture.supplyAsync(() -> k.fork(pid),
                r -> Thread.ofVirtual().start(r));
        assertTrue(blocked(fork), "fork blocks until FORK is read");
        List<UffdMsg> msgs = read(pid, u);
        assertEquals(1, msgs.size());
        UffdMsg.Fork fm = assertInstanceOf(UffdMsg.Fork.class, msgs.get(0));
        int child = fork.get(5, TimeUnit.SECONDS).pid();
        assertEquals(child, fm.childPid());
        assertTrue(k.task(pid).fdNumbers().contains(fm.ufd()), "the child's uffd lands in the reader's table");
        // checked with a C probe on 6.18: present PTEs are copied with wp, and so are markers
        assertEquals(m.shared() ? "P-WF" : "P-W-", pm(child, a));
        assertEquals(m == Mem.ANON ? "----" : m.hugetlb() ? "--W-" : "-SW-", pm(child, a + m.ps()));
        CompletableFuture<AccessResult> w = access(child, a, true);
        assertTrue(blocked(w), "a child write to a wp'd page blocks the child");
        List<UffdMsg> cm = read(pid, fm.ufd());
        UffdMsg.Pagefault pf = assertInstanceOf(UffdMsg.Pagefault.class, cm.get(0));
        assertEquals(3, pf.flags());
        assertEquals(List.of(), k.uffd.read(pid, u, 16, 0), "nothing on the parent's uffd");
        k.uffd.writeprotect(pid, fm.ufd(), a, m.ps(), 0);
        assertTrue(w.get(5, TimeUnit.SECONDS).succeeded());
    }

    @Test
    void forkUffdFeaturesAndFlags() throws Exception {
        long a = map(Mem.ANON, 1);
        int u = uffd(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE
                | UFFD_FEATURE_EVENT_UNMAP);
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        CompletableFuture<Task> fork = CompletableFuture.supplyAsync(() -> k.fork(pid),
                r -> Thread.ofVirtual().start(r));
        UffdMsg.Fork fm = (UffdMsg.Fork) read(pid, u).get(0);
        fork.get(5, TimeUnit.SECONDS);
        assertEquals(0x8000004eL, k.uffd.info(pid, fm.ufd()).features(), "the child ctx copies the features");
    }

    @Test
    void sigbusFeatureWithForkedChild() throws Exception {
        long a = map(Mem.ANON, 1);
        int u = uffd(UFFD_FEATURE_SIGBUS | UFFD_FEATURE_EVENT_FORK);
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        CompletableFuture<Task> fork = CompletableFuture.supplyAsync(() -> k.fork(pid),
                r -> Thread.ofVirtual().start(r));
        read(pid, u);
        int child = fork.get(5, TimeUnit.SECONDS).pid();
        AccessResult r = access(child, a, false).get(5, TimeUnit.SECONDS);
        assertEquals(SIGBUS, r.signal());
        assertEquals(BUS_ADRERR, r.siCode());
        assertEquals(0, k.uffd.info(pid, u).pending());
    }

    // ------------------------------------------------------------------ §8.1 / §8.3 close and exit

    @Test
    void closeWakesEventRaiser() throws Exception {
        long a = map(Mem.ANON, 1);
        touch(a, true);
        int u = uffd(UFFD_FEATURE_EVENT_REMOVE);
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        CompletableFuture<Void> mad = CompletableFuture.runAsync(() -> k.vm.madvise(pid, a, PAGE_SIZE,
                MADV_DONTNEED), r -> Thread.ofVirtual().start(r));
        assertTrue(blocked(mad));
        assertEquals(1, k.uffd.info(pid, u).mmapChanging());
        k.close(pid, u);
        mad.get(5, TimeUnit.SECONDS);
        assertEquals("----", pm(pid, a));
    }

    @Test
    void blockingReadEndsWhenItsTaskClosesTheFd() throws Exception {
        // the Handle stream's reader reads without a deadline: a close of the fd by the reading task must end it
        // even when the file lives on (here: the fork child's copy of the fd, no EVENT_FORK), not only a release
        int u = uffd(0);
        int child = k.fork(pid).pid();
        CompletableFuture<List<UffdMsg>> r = readWithoutDeadline(child, u);
        assertTrue(blocked(r));
        k.close(child, u);
        assertEquals(List.of(), r.get(5, TimeUnit.SECONDS));
        assertEquals(List.of(), k.uffd.read(pid, u, 16, 0), "the parent's fd is still open and readable");

        // closed and its number taken again before the reader runs: the read is on the old file, and ends
        int child2 = k.fork(pid).pid();
        CompletableFuture<List<UffdMsg>> r2 = readWithoutDeadline(child2, u);
        assertTrue(blocked(r2));
        int again;
        k.lock();
        try {
            k.close(child2, u);
            again = k.uffd.userfaultfd(child2, O_CLOEXEC | O_NONBLOCK, false);
        } finally {
            k.unlock();
        }
        assertEquals(u, again, "the lowest free number is taken again");
        assertEquals(List.of(), r2.get(5, TimeUnit.SECONDS));
    }

    @Test
    void exitedOwner() throws Exception {
        long a = map(Mem.ANON, 1);
        int u = uffd(0);
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
        int monitor = k.fork(pid).pid();
        CompletableFuture<AccessResult> r = access(pid, a, false);
        assertTrue(blocked(r));
        k.exit(pid);
        assertThrows(Exception.class, () -> r.get(5, TimeUnit.SECONDS));
        assertEquals(Errno.ESRCH, errno(() -> k.uffd.copy(monitor, u, a, new byte[(int) PAGE_SIZE], 0)));
        assertEquals(Errno.ESRCH, errno(() -> k.uffd.zeropage(monitor, u, a, PAGE_SIZE, 0)));
        assertEquals(Errno.ESRCH, errno(() -> k.uffd.writeprotect(monitor, u, a, PAGE_SIZE, 1)));
        assertEquals(Errno.ENOMEM, errno(() -> k.uffd.register(monitor, u, a, PAGE_SIZE, 1)));
        assertEquals(Errno.ENOMEM, errno(() -> k.uffd.unregister(monitor, u, a, PAGE_SIZE)));
        k.uffd.wake(monitor, u, a, PAGE_SIZE);
        assertEquals(List.of(), k.uffd.read(monitor, u, 16, 0));
    }

    // ------------------------------------------------------------------ messages

    @Test
    void threadIdAndExactAddress() throws Exception {
        long a = map(Mem.ANON, 2);
        int u = uffd(UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS);
        k.uffd.register(pid, u, a, 2 * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        CompletableFuture<AccessResult> r = access(pid, a + 0x1055, true);
        UffdMsg.Pagefault pf = (UffdMsg.Pagefault) read(pid, u).get(0);
        assertEquals(a + 0x1055, pf.address());
        assertEquals(UFFD_PAGEFAULT_FLAG_WRITE, pf.flags());
        assertNotEquals(0, pf.ptid());
        k.uffd.copy(pid, u, a + PAGE_SIZE, new byte[(int) PAGE_SIZE], 0);
        assertTrue(r.get(5, TimeUnit.SECONDS).succeeded());
        int u2 = uffd(0);
        long b = map(Mem.ANON, 1);
        k.uffd.register(pid, u2, b, PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        CompletableFuture<AccessResult> r2 = access(pid, b + 8, false);
        UffdMsg.Pagefault pf2 = (UffdMsg.Pagefault) read(pid, u2).get(0);
        assertEquals(0, pf2.ptid());
        assertEquals(b, pf2.address());
        k.uffd.zeropage(pid, u2, b, PAGE_SIZE, 0);
        assertArrayEquals(new byte[] {0}, r2.get(5, TimeUnit.SECONDS).data());
    }

    @ParameterizedTest
    @EnumSource(Mem.class)
    void writeprotectDontwakeKeepsWriterBlocked(Mem m) throws Exception {
        long a = map(m, 1);
        touch(a, true);
        int u = uffd(0);
        k.uffd.register(pid, u, a, m.ps(), UFFDIO_REGISTER_MODE_WP);
        k.uffd.writeprotect(pid, u, a, m.ps(), UFFDIO_WRITEPROTECT_MODE_WP);
        CompletableFuture<AccessResult> w = access(pid, a, true);
        assertEquals(3, ((UffdMsg.Pagefault) read(pid, u).get(0)).flags());
        k.uffd.writeprotect(pid, u, a, m.ps(), UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
        assertTrue(blocked(w));
        k.uffd.wake(pid, u, a, m.ps());
        assertTrue(w.get(5, TimeUnit.SECONDS).succeeded());
        assertEquals(m.shared() ? "P--F" : "P---", pm(pid, a));
    }

    @Test
    void wakeWithoutUnprotectRefaults() throws Exception {
        long a = map(Mem.ANON, 1);
        touch(a, true);
        int u = uffd(0);
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_WP);
        k.uffd.writeprotect(pid, u, a, PAGE_SIZE, UFFDIO_WRITEPROTECT_MODE_WP);
        CompletableFuture<AccessResult> w = access(pid, a, true);
        read(pid, u);
        k.uffd.wake(pid, u, a, PAGE_SIZE);
        List<UffdMsg> again = read(pid, u);
        assertEquals(1, again.size(), "woken without a fix, the writer re-faults");
        assertEquals(3, ((UffdMsg.Pagefault) again.get(0)).flags());
        k.uffd.writeprotect(pid, u, a, PAGE_SIZE, 0);
        assertTrue(w.get(5, TimeUnit.SECONDS).succeeded());
    }

    /**
     * Reference §4.8: MOVE of a src page that is shared with a forked child gives EBUSY (nothing moved); once the
     * child is gone the page is exclusive again and moves. Emulated only: the native backend cannot fork.
     */
    @Test
    void moveOfPageSharedWithForkedChildIsEbusy() throws Exception {
        long src = map(Mem.ANON, 1);
        long dst = map(Mem.ANON, 1);
        touch(src, true);
        int u = uffd(0);
        k.uffd.register(pid, u, dst, PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        int child = k.fork(pid).pid();
        assertEquals(Errno.EBUSY, errno(() -> k.uffd.move(pid, u, dst, src, PAGE_SIZE, 0)));
        assertEquals("P---", pm(pid, src));
        assertEquals("----", pm(pid, dst));
        k.exit(child);
        assertEquals(PAGE_SIZE, k.uffd.move(pid, u, dst, src, PAGE_SIZE, 0));
        assertEquals("----", pm(pid, src));
        assertEquals("P---", pm(pid, dst));
    }

    /**
     * Reference §3.3: a re-REGISTER with a subset of the VMA's modes keeps them (mirrors the conformance scenario
     * register-subset-keeps-modes, here with the per-range modes fdinfo shows).
     */
    @Test
    void registerSubsetKeepsModes() {
        long a = map(Mem.ANON, 2);
        int u = uffd(0);
        k.uffd.register(pid, u, a, 2 * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
        assertEquals(0x13cL, k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING));
        assertTrue(k.maps(pid).stream().filter(v -> v.start() <= a && a < v.end())
                .allMatch(v -> v.uffdFlags() == 3 && v.end() == a + 2 * PAGE_SIZE), "kept M|W, not split");
        k.uffd.unregister(pid, u, a, 2 * PAGE_SIZE);
        k.uffd.register(pid, u, a, 2 * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_WP);
        assertTrue(k.maps(pid).stream().filter(v -> v.start() <= a && a < v.end())
                .allMatch(v -> v.uffdFlags() == UFFDIO_REGISTER_MODE_WP), "not a subset: replaced");
    }
}
