package io.uffdemu.server.backend.linux;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.UffdMsg;
import io.uffdemu.server.mm.Userfaultfd;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The real-kernel backend against the kernel of this machine; skipped only when LinuxAvailability says so. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LinuxBackendTest {
    private static final long PAGE = 4096;
    private static final int RW = Linux.PROT_READ | Linux.PROT_WRITE;
    private static final int ANON = Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS;

    private LinuxBackend b;
    private int pid;
    private final ExecutorService threads = Executors.newCachedThreadPool(Thread.ofPlatform().daemon().factory());

    @BeforeEach
    void setUp() {
        Assumptions.assumeTrue(LinuxAvailability.isAvailable(),
                () -> "linux backend unavailable: " + LinuxAvailability.reason());
        b = new LinuxBackend();
        pid = b.createProcess("t", 0, true, "test").pid();
    }

    @AfterEach
    void tearDown() {
        if (b != null) {
            b.close();
        }
        threads.shutdownNow();
    }

    private static long deadline(long ms) {
        return System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(ms);
    }

    private int uffd(long features) {
        int fd = b.userfaultfd(pid, Linux.O_CLOEXEC | Linux.O_NONBLOCK, false);
        b.uffdApi(pid, fd, Linux.UFFD_API, features);
        return fd;
    }

    private static byte[] filled(int len, int v) {
        byte[] d = new byte[len];
        Arrays.fill(d, (byte) v);
        return d;
    }

    private Future<AccessResult> accessAsync(long addr, int len, boolean write, byte[] data) {
        return threads.submit(() -> b.access(pid, addr, len, write, data, AccessMode.USER, deadline(20_000)));
    }

    private UffdMsg.Pagefault onePagefault(int fd) throws InterruptedException {
        List<UffdMsg> msgs = b.uffdRead(pid, fd, 4, deadline(10_000));
        assertThat(msgs).hasSize(1);
        assertThat(msgs.get(0)).isInstanceOf(UffdMsg.Pagefault.class);
        return (UffdMsg.Pagefault) msgs.get(0);
    }

    @Test
    void describeShowsWhatTheBackendNegotiatedAndRegisteredAndTheKernelsCounters() throws Exception {
        long a = b.mmap(pid, 0, 8 * PAGE, RW, ANON, -1, 0);
        int fd = uffd(Linux.UFFD_FEATURE_EVENT_REMOVE);
        b.uffdRegister(pid, fd, a, 2 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        b.uffdRegister(pid, fd, a + 4 * PAGE, 4 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        b.uffdUnregister(pid, fd, a + 6 * PAGE, 2 * PAGE);
        var d = b.uffdDescribe(pid, fd);
        assertThat(d.apiDone()).isTrue();
        assertThat(d.flags()).isEqualTo(Linux.O_CLOEXEC | Linux.O_NONBLOCK);
        assertThat(d.features()).isEqualTo(Linux.UFFD_FEATURE_EVENT_REMOVE);
        assertThat(d.ranges()).containsExactly(
                new io.uffdemu.server.mm.UffdFdinfo.Range(a, a + 2 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING),
                new io.uffdemu.server.mm.UffdFdinfo.Range(a + 4 * PAGE, a + 6 * PAGE,
                        Linux.UFFDIO_REGISTER_MODE_MISSING));
        assertThat(d.totalFaults()).isZero();
        Future<AccessResult> r = accessAsync(a, 1, false, null);
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (b.uffdDescribe(pid, fd).pendingFaults() == 0 && System.nanoTime() < end) {
            Thread.sleep(5);
        }
        assertThat(b.uffdDescribe(pid, fd).pendingFaults()).isEqualTo(1);
        onePagefault(fd);
        d = b.uffdDescribe(pid, fd);
        assertThat(d.pendingFaults()).isZero();
        assertThat(d.totalFaults()).isEqualTo(1);
        b.uffdZeropage(pid, fd, a, PAGE, 0);
        assertThat(r.get(10, TimeUnit.SECONDS).succeeded()).isTrue();
        assertThat(b.uffdList(pid)).extracting(io.uffdemu.server.mm.UffdFdinfo.Description::fd).containsExactly(fd);
        int memfd = b.memfdCreate(pid, "m", 0);
        assertThatThrownBy(() -> b.uffdDescribe(pid, memfd))
                .isInstanceOfSatisfying(LinuxException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOTTY));
        assertThatThrownBy(() -> b.uffdDescribe(pid, 77))
                .isInstanceOfSatisfying(LinuxException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EBADF));
    }

    @Test
    void statusAndApiHandshake() {
        assertThat(b.status().available()).isTrue();
        assertThat(b.status().name()).isEqualTo("linux");
        assertThat(b.status().kernelRelease()).isNotEmpty();
        int fd = b.userfaultfd(pid, Linux.O_CLOEXEC, false);
        var r = b.uffdApi(pid, fd, Linux.UFFD_API, 0);
        assertThat(r.features()).isEqualTo(0x1ffffL);
        assertThat(r.ioctls()).isEqualTo(0x8000000000000003L);
        assertThatThrownBy(() -> b.uffdApi(pid, fd, Linux.UFFD_API, 0))
                .isInstanceOfSatisfying(LinuxException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.EINVAL);
                    assertThat(e.call()).isEqualTo("UFFDIO_API");
                });
        int dev = b.userfaultfd(pid, Linux.O_CLOEXEC, true);
        assertThat(b.uffdApi(pid, dev, Linux.UFFD_API, 0).features()).isEqualTo(0x1ffffL);
        assertThat(b.process(pid).fds()).contains(fd, dev);
    }

    @Test
    void registerIoctlMasksMatchTheReferenceTable() {
        int fd = uffd(0);
        long anon = b.mmap(pid, 0, 4 * PAGE, RW, ANON, -1, 0);
        assertThat(anon).isBetween(LinuxBackend.WINDOW_BASE, Linux.TASK_SIZE);
        assertThat(b.uffdRegister(pid, fd, anon, 4 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING)).isEqualTo(0x13cL);
        assertThat(b.uffdRegister(pid, fd, anon, 4 * PAGE, Linux.UFFDIO_REGISTER_MODE_WP)).isEqualTo(0x17cL);
        assertThat(b.maps(pid)).anySatisfy(v -> {
            assertThat(v.start()).isEqualTo(anon);
            assertThat(v.uffdFlags()).isEqualTo(Linux.UFFDIO_REGISTER_MODE_WP);
        });
        assertErrno(() -> b.uffdRegister(pid, fd, anon, 4 * PAGE, Linux.UFFDIO_REGISTER_MODE_MINOR), Errno.EINVAL,
                "UFFDIO_REGISTER");
        assertErrno(() -> b.uffdRegister(pid, fd, anon, 4 * PAGE, 8), Errno.EINVAL, "UFFDIO_REGISTER");

        int mfd = b.memfdCreate(pid, "shm", 0);
        b.ftruncate(pid, mfd, 4 * PAGE);
        long shm = b.mmap(pid, 0, 4 * PAGE, RW, Linux.MAP_SHARED, mfd, 0);
        assertThat(b.uffdRegister(pid, fd, shm, 4 * PAGE, Linux.UFFDIO_REGISTER_MODE_MINOR)).isEqualTo(0x1bcL);
        assertThat(b.uffdRegister(pid, fd, shm, 4 * PAGE, 7)).isEqualTo(0x1fcL);
        assertThat(b.maps(pid)).anySatisfy(v -> {
            assertThat(v.start()).isEqualTo(shm);
            assertThat(v.perms()).isEqualTo("rw-s");
            assertThat(v.memoryType()).isEqualTo(io.uffdemu.server.backend.VmaInfo.MemoryType.SHMEM);
            assertThat(v.uffdFlags()).isEqualTo(7);
        });
        b.uffdUnregister(pid, fd, shm, 4 * PAGE);
    }

    @Test
    void missingFaultRoundTrip() throws Exception {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        Future<AccessResult> read = accessAsync(a + 16, 8, false, null);
        UffdMsg.Pagefault pf = onePagefault(fd);
        assertThat(pf.flags()).isZero();
        assertThat(pf.address()).isEqualTo(a);
        assertThat(read.isDone()).isFalse();
        assertThat(b.uffdCopy(pid, fd, a, filled((int) PAGE, 42), 0)).isEqualTo(PAGE);
        AccessResult r = read.get(10, TimeUnit.SECONDS);
        assertThat(r.succeeded()).isTrue();
        assertThat(r.data()).containsOnly(42);
        assertThat(b.readPagemap(pid, a, 1)[0] & Linux.PM_PRESENT).isNotZero();
    }

    @Test
    void writeProtectRoundTripOnAnon() throws Exception {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, 2 * PAGE, RW, ANON, -1, 0);
        assertThat(b.access(pid, a, 4, true, new byte[] {1, 2, 3, 4}, AccessMode.USER, deadline(5000)).succeeded())
                .isTrue();
        b.uffdRegister(pid, fd, a, 2 * PAGE, Linux.UFFDIO_REGISTER_MODE_WP);
        b.uffdWriteprotect(pid, fd, a, PAGE, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
        assertThat(b.readPagemap(pid, a, 1)[0] & Linux.PM_UFFD_WP).isNotZero();
        // reads of a wp'd page do not fault
        assertThat(b.access(pid, a, 4, false, null, AccessMode.USER, deadline(5000)).data())
                .containsExactly(1, 2, 3, 4);
        Future<AccessResult> write = accessAsync(a + 1, 1, true, new byte[] {9});
        UffdMsg.Pagefault pf = onePagefault(fd);
        assertThat(pf.flags()).isEqualTo(Linux.UFFD_PAGEFAULT_FLAG_WRITE | Linux.UFFD_PAGEFAULT_FLAG_WP);
        assertThat(pf.address()).isEqualTo(a);
        b.uffdWriteprotect(pid, fd, a, PAGE, 0);
        assertThat(write.get(10, TimeUnit.SECONDS).succeeded()).isTrue();
        assertThat(b.access(pid, a, 4, false, null, AccessMode.USER, deadline(5000)).data())
                .containsExactly(1, 9, 3, 4);
        assertThat(b.readPagemap(pid, a, 1)[0] & Linux.PM_UFFD_WP).isZero();
    }

    @Test
    void writeProtectRoundTripOnSharedMemfdIsPerMapping() throws Exception {
        int fd = uffd(0);
        int mfd = b.memfdCreate(pid, "wp", 0);
        b.ftruncate(pid, mfd, PAGE);
        b.pwrite(pid, mfd, 0, new byte[] {5, 6, 7});
        long mA = b.mmap(pid, 0, PAGE, RW, Linux.MAP_SHARED, mfd, 0);
        long mB = b.mmap(pid, 0, PAGE, RW, Linux.MAP_SHARED, mfd, 0);
        assertThat(mA).isNotEqualTo(mB);
        b.uffdRegister(pid, fd, mA, PAGE, Linux.UFFDIO_REGISTER_MODE_WP);
        b.uffdWriteprotect(pid, fd, mA, PAGE, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
        long pm = b.readPagemap(pid, mA, 1)[0];
        assertThat(pm & Linux.PM_UFFD_WP).isNotZero(); // a marker (not present) or a wp'd present PTE
        // the other mapping of the same page is not protected
        assertThat(b.access(pid, mB, 1, true, new byte[] {50}, AccessMode.USER, deadline(5000)).succeeded()).isTrue();
        Future<AccessResult> write = accessAsync(mA + 2, 1, true, new byte[] {70});
        UffdMsg.Pagefault pf = onePagefault(fd);
        assertThat(pf.flags()).isEqualTo(Linux.UFFD_PAGEFAULT_FLAG_WRITE | Linux.UFFD_PAGEFAULT_FLAG_WP);
        assertThat(pf.address()).isEqualTo(mA);
        b.uffdWriteprotect(pid, fd, mA, PAGE, 0);
        assertThat(write.get(10, TimeUnit.SECONDS).succeeded()).isTrue();
        assertThat(b.pread(pid, mfd, 0, 3)).containsExactly(50, 6, 70);
    }

    @Test
    void errnoCases() {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, 4 * PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, 2 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        assertThat(b.uffdCopy(pid, fd, a, filled((int) PAGE, 1), 0)).isEqualTo(PAGE);
        assertErrno(() -> b.uffdCopy(pid, fd, a, filled((int) PAGE, 1), 0), Errno.EEXIST, "UFFDIO_COPY");
        assertErrno(() -> b.uffdCopy(pid, fd, a + 2 * PAGE, filled((int) PAGE, 1), 0), Errno.ENOENT, "UFFDIO_COPY");
        assertErrno(() -> b.uffdCopy(pid, fd, a + PAGE + 1, filled((int) PAGE, 1), 0), Errno.EINVAL,
                "UFFDIO_COPY");
        assertErrno(() -> b.uffdZeropage(pid, fd, a + 1, PAGE, 0), Errno.EINVAL, "UFFDIO_ZEROPAGE");
        assertErrno(() -> b.uffdWake(pid, fd, a, 0), Errno.EINVAL, "UFFDIO_WAKE");
        assertErrno(() -> b.uffdContinue(pid, fd, a + PAGE, PAGE, 0), Errno.EINVAL, "UFFDIO_CONTINUE");
        assertErrno(() -> b.uffdPoison(pid, fd, a, PAGE, 0), Errno.EEXIST, "UFFDIO_POISON");
        assertErrno(() -> b.close(pid, 99), Errno.EBADF, "close");
        assertErrno(() -> b.mmap(pid, 0, PAGE, RW, Linux.MAP_SHARED, 42, 0), Errno.EBADF, "mmap");
        assertErrno(() -> b.maps(4242), Errno.ESRCH, "maps");
        assertErrno(() -> b.munmap(pid, 0x10000, PAGE), Errno.ENOSYS, "munmap");
        // ranges that would reach the server's own memory are refused, never passed through
        assertErrno(() -> b.munmap(pid, 0x1000, 1L << 46), Errno.ENOSYS, "munmap");
        assertErrno(() -> b.mprotect(pid, 0x1000, 1L << 62, Linux.PROT_NONE), Errno.ENOSYS, "mprotect");
        assertErrno(() -> b.madvise(pid, a, 1L << 46, Linux.MADV_DONTNEED), Errno.ENOSYS, "madvise");
        assertErrno(() -> b.mmap(pid, 0x1000, PAGE, RW, ANON | Linux.MAP_FIXED, -1, 0), Errno.ENOSYS, "mmap");
        // ranges the kernel rejects by itself get the kernel's errno
        assertErrno(() -> b.munmap(pid, 0x1001, PAGE), Errno.EINVAL, "munmap");
        assertErrno(() -> b.munmap(pid, a, 0), Errno.EINVAL, "munmap");
        assertErrno(() -> b.uffdRegister(pid, fd, 0, PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING), Errno.EINVAL,
                "UFFDIO_REGISTER");
        assertErrno(() -> b.uffdWake(pid, fd, 1L << 47, PAGE), Errno.EINVAL, "UFFDIO_WAKE");
        assertErrno(() -> b.uffdWake(pid, fd, a, -PAGE), Errno.EINVAL, "UFFDIO_WAKE");
    }

    /** A batch's COPY source is its buffer from position to limit (here inside a larger array), each op alone. */
    @Test
    void copyBatchTakesEachBufferFromItsPosition() throws Exception {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, 2 * PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, 2 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        byte[] big = new byte[(int) (3 * PAGE)];
        for (int i = 0; i < big.length; i++) {
            big[i] = (byte) (i * 7 + 1);
        }
        int at = (int) PAGE / 2 + 5;
        java.nio.ByteBuffer window = java.nio.ByteBuffer.wrap(big, at, (int) PAGE).asReadOnlyBuffer();
        List<String> got = new java.util.ArrayList<>();
        b.uffdCopyBatch(List.of(new Userfaultfd.CopyOp(pid, fd, a, window, 0),
                new Userfaultfd.CopyOp(pid, fd, a, window, 0)), new Userfaultfd.CopyOutcome() {
                    @Override
                    public void copied(int index, long bytes) {
                        got.add(index + " ok " + bytes);
                    }

                    @Override
                    public void failed(int index, LinuxException e) {
                        got.add(index + " " + e.errno());
                    }
                });
        assertThat(got).containsExactly("0 ok " + PAGE, "1 EEXIST");
        assertThat(window.position()).isEqualTo(at);
        assertThat(b.access(pid, a, (int) PAGE, false, null, AccessMode.USER, deadline(5000)).data())
                .isEqualTo(Arrays.copyOfRange(big, at, at + (int) PAGE));
    }

    @Test
    void partialCopyReportsBytesDone() {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, 4 * PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, 4 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        b.uffdCopy(pid, fd, a + 2 * PAGE, filled((int) PAGE, 3), 0);
        assertThatThrownBy(() -> b.uffdCopy(pid, fd, a, filled((int) (4 * PAGE), 4), 0))
                .isInstanceOfSatisfying(LinuxException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.EAGAIN);
                    assertThat(e.call()).isEqualTo("UFFDIO_COPY");
                    assertThat(e.bytesDone()).isEqualTo(8192);
                });
        // the first mapping sits at the top of the window: a COPY running past it gets the kernel's ENOENT
        assertThat(b.maps(pid).getLast().end()).isEqualTo(a + 4 * PAGE);
        assertErrno(() -> b.uffdCopy(pid, fd, a + 3 * PAGE, filled((int) (2 * PAGE), 4), 0), Errno.ENOENT,
                "UFFDIO_COPY");
    }

    @Test
    void hugetlbCopyOfTwoMegabytes() throws Exception {
        String old = b.sysctl("vm/nr_hugepages");
        long free = b.meminfo().getOrDefault("HugePages_Free", 0L);
        long want = Long.parseLong(old) + Math.max(0, 2 - free);
        try {
            if (want != Long.parseLong(old)) {
                b.setSysctl("vm/nr_hugepages", Long.toString(want));
            }
            Assumptions.assumeTrue(b.meminfo().getOrDefault("HugePages_Free", 0L) >= 2,
                    "the kernel could not allocate 2 free 2 MiB huge pages");
            int fd = uffd(0);
            long hp = Linux.PMD_SIZE;
            long a = b.mmap(pid, 0, hp, RW, ANON | Linux.MAP_HUGETLB, -1, 0);
            assertThat(a % hp).isZero();
            assertThat(b.maps(pid)).anySatisfy(v -> {
                assertThat(v.start()).isEqualTo(a);
                assertThat(v.pageSize()).isEqualTo(hp);
                assertThat(v.memoryType()).isEqualTo(io.uffdemu.server.backend.VmaInfo.MemoryType.HUGETLB);
            });
            assertThat(b.uffdRegister(pid, fd, a, hp, Linux.UFFDIO_REGISTER_MODE_MISSING)).isEqualTo(0x10cL);
            assertErrno(() -> b.uffdCopy(pid, fd, a, filled((int) PAGE, 1), 0), Errno.EINVAL, "UFFDIO_COPY");
            Future<AccessResult> read = accessAsync(a + hp - 8, 8, false, null);
            UffdMsg.Pagefault pf = onePagefault(fd);
            assertThat(pf.address()).isEqualTo(a);
            assertThat(b.uffdCopy(pid, fd, a, filled((int) hp, 7), 0)).isEqualTo(hp);
            assertThat(read.get(10, TimeUnit.SECONDS).data()).containsOnly(7);
            b.munmap(pid, a, hp);

            // pagemap does not show hugetlb poison markers: the backend remembers them
            long p2 = b.mmap(pid, 0, hp, RW, ANON | Linux.MAP_HUGETLB, -1, 0);
            b.uffdRegister(pid, fd, p2, hp, Linux.UFFDIO_REGISTER_MODE_MISSING);
            assertThat(b.uffdPoison(pid, fd, p2, hp, 0)).isEqualTo(hp);
            AccessResult bus = b.access(pid, p2 + 5, 1, false, null, AccessMode.USER, deadline(5000));
            assertThat(bus.signal()).isEqualTo(Linux.SIGBUS);
            assertThat(bus.faultAddr()).isEqualTo(p2 + 5);
            assertThat(b.uffdCopy(pid, fd, p2, filled((int) hp, 8), 0)).isEqualTo(hp);
            assertThat(b.access(pid, p2 + 5, 1, false, null, AccessMode.USER, deadline(5000)).data())
                    .containsExactly(8);
        } finally {
            b.close();
            b.setSysctl("vm/nr_hugepages", old);
        }
        assertThat(b.sysctl("vm/nr_hugepages")).isEqualTo(old);
    }

    @Test
    void noreserveHugetlbWithoutAnUnreservedPageIsRefusedNotCrashed() throws Exception {
        String old = b.sysctl("vm/nr_hugepages");
        try {
            b.setSysctl("vm/nr_hugepages", Long.toString(Long.parseLong(old) + 1));
            Map<String, Long> mi = b.meminfo();
            long avail = mi.getOrDefault("HugePages_Free", 0L) - mi.getOrDefault("HugePages_Rsvd", 0L);
            Assumptions.assumeTrue(avail >= 1, "the kernel could not allocate a 2 MiB huge page");
            long hp = Linux.PMD_SIZE;
            long reserved = b.mmap(pid, 0, avail * hp, RW, ANON | Linux.MAP_HUGETLB, -1, 0);
            long nr = b.mmap(pid, 0, hp, RW, ANON | Linux.MAP_HUGETLB | Linux.MAP_NORESERVE, -1, 0);
            assertErrno(() -> b.access(pid, nr + 8, 1, false, null, AccessMode.USER, deadline(5000)), Errno.ENOSYS,
                    "access");
            // the reserved mapping still faults in fine
            assertThat(b.access(pid, reserved, 1, true, new byte[] {1}, AccessMode.USER, deadline(5000))
                    .succeeded()).isTrue();
            b.munmap(pid, nr, hp);
            b.munmap(pid, reserved, avail * hp);
        } finally {
            b.close();
            b.setSysctl("vm/nr_hugepages", old);
        }
    }

    /**
     * madvise(MADV_DONTNEED) on hugetlb runs outside the process lock (it may wait for its EVENT_REMOVE to be read),
     * so an access checked while the page was present could touch it after the zap; with no free huge page the
     * refault raises SIGBUS in the server. While such a zap is running, accesses to its range are refused, and a zap
     * over an access already blocked there is refused too. A range registered for MISSING refaults into a userfault,
     * not an allocation: a zap there goes through (postcopy's discard while vCPUs fault).
     */
    @Test
    void aHugetlbZapRefusesAccessesToItsRangeWhileItRuns() throws Exception {
        String old = b.sysctl("vm/nr_hugepages");
        try {
            b.setSysctl("vm/nr_hugepages", Long.toString(Long.parseLong(old) + 1));
            Assumptions.assumeTrue(b.meminfo().getOrDefault("HugePages_Free", 0L) >= 1,
                    "the kernel could not allocate a 2 MiB huge page");
            long hp = Linux.PMD_SIZE;
            long a = b.mmap(pid, 0, hp, RW, ANON | Linux.MAP_HUGETLB, -1, 0);
            long other = b.mmap(pid, 0, PAGE, RW, ANON, -1, 0);
            assertThat(b.access(pid, a, 1, true, new byte[] {5}, AccessMode.USER, deadline(5000)).succeeded())
                    .isTrue();
            // WP registration: EVENT_REMOVE applies, and a refault after the zap allocates a huge page
            int fd = uffd(Linux.UFFD_FEATURE_EVENT_REMOVE | Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
            b.uffdRegister(pid, fd, a, hp, Linux.UFFDIO_REGISTER_MODE_WP);

            // the zap waits for its EVENT_REMOVE to be read: meanwhile the huge page is still present
            Future<?> zap = threads.submit(() -> {
                b.madvise(pid, a, hp, Linux.MADV_DONTNEED);
                return null;
            });
            LinuxException refused = null;
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (refused == null && System.nanoTime() < end) {
                try {
                    b.access(pid, a + hp - 8, 1, false, null, AccessMode.USER, deadline(5000));
                    Thread.sleep(2);
                } catch (LinuxException e) {
                    refused = e;
                }
            }
            assertThat(refused).as("an access during the zap").isNotNull();
            assertThat(refused.errno()).isEqualTo(Errno.ENOSYS);
            assertThat(refused.getMessage()).contains("zapping");
            // memory outside the zap is unaffected
            assertThat(b.access(pid, other, 1, true, new byte[] {1}, AccessMode.USER, deadline(5000)).succeeded())
                    .isTrue();
            List<UffdMsg> msgs = b.uffdRead(pid, fd, 4, deadline(10_000));
            assertThat(msgs).hasSize(1).first().isInstanceOf(UffdMsg.Remove.class);
            zap.get(10, TimeUnit.SECONDS);

            // after it: the huge page is gone and a read gets a fresh zeroed one
            assertThat(b.access(pid, a + 8, 1, false, null, AccessMode.USER, deadline(5000)).data())
                    .containsExactly(0);
            // a zap over an access blocked there (a write to a write-protected page) is refused: its refault
            // could find no huge page
            b.uffdWriteprotect(pid, fd, a, hp, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
            Future<AccessResult> write = accessAsync(a + 8, 1, true, new byte[] {9});
            assertThat(onePagefault(fd).address()).isEqualTo(a + 8 & -hp);
            // (on a thread of its own: a zap let through would wait for its EVENT_REMOVE to be read)
            Future<?> second = threads.submit(() -> {
                b.madvise(pid, a, hp, Linux.MADV_DONTNEED);
                return null;
            });
            assertThatThrownBy(() -> second.get(10, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class)
                    .cause().isInstanceOfSatisfying(LinuxException.class, e -> {
                        assertThat(e.errno()).isEqualTo(Errno.ENOSYS);
                        assertThat(e.call()).isEqualTo("madvise");
                    });
            b.uffdWriteprotect(pid, fd, a, hp, 0);
            assertThat(write.get(10, TimeUnit.SECONDS).succeeded()).isTrue();
            b.munmap(pid, a, hp);

            // MISSING-registered: the refault is a userfault, so a zap over a blocked access goes through
            int fd2 = uffd(0);
            long m = b.mmap(pid, 0, hp, RW, ANON | Linux.MAP_HUGETLB, -1, 0);
            b.uffdRegister(pid, fd2, m, hp, Linux.UFFDIO_REGISTER_MODE_MISSING);
            Future<AccessResult> read = accessAsync(m + 8, 1, false, null);
            assertThat(onePagefault(fd2).address()).isEqualTo(m);
            b.madvise(pid, m, hp, Linux.MADV_DONTNEED);
            assertThat(b.uffdCopy(pid, fd2, m, filled((int) hp, 3), 0)).isEqualTo(hp);
            assertThat(read.get(10, TimeUnit.SECONDS).data()).containsExactly(3);
            b.munmap(pid, m, hp);
        } finally {
            b.close();
            b.setSysctl("vm/nr_hugepages", old);
        }
    }

    @Test
    void signalsArePredictedWithoutTouchingMemory() throws Exception {
        long a = b.mmap(pid, 0, 2 * PAGE, Linux.PROT_READ, ANON, -1, 0);
        // unmapped hole above the mapping
        AccessResult r = b.access(pid, a + 2 * PAGE, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(r.signal()).isEqualTo(Linux.SIGSEGV);
        assertThat(r.siCode()).isEqualTo(Linux.SEGV_MAPERR);
        assertThat(r.faultAddr()).isEqualTo(a + 2 * PAGE);
        // write to a read-only mapping
        r = b.access(pid, a + 5, 1, true, new byte[] {1}, AccessMode.USER, deadline(5000));
        assertThat(r.signal()).isEqualTo(Linux.SIGSEGV);
        assertThat(r.siCode()).isEqualTo(Linux.SEGV_ACCERR);
        // outside the process's window entirely
        r = b.access(pid, 0x10000, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(r.signal()).isEqualTo(Linux.SIGSEGV);
        assertThat(r.siCode()).isEqualTo(Linux.SEGV_MAPERR);
        // kernel-mode accesses get EFAULT, /proc/PID/mem EIO
        r = b.access(pid, a + 2 * PAGE, 1, false, null, AccessMode.KERNEL, deadline(5000));
        assertThat(r.errno()).isEqualTo(Errno.EFAULT);
        r = b.access(pid, a + 2 * PAGE, 1, false, null, AccessMode.REMOTE, deadline(5000));
        assertThat(r.errno()).isEqualTo(Errno.EFAULT);
        r = b.access(pid, a + 2 * PAGE, 1, false, null, AccessMode.PROC_MEM, deadline(5000));
        assertThat(r.errno()).isEqualTo(Errno.EIO);
        // a read spanning into the hole returns the signal at the first bad byte
        r = b.access(pid, a + 2 * PAGE - 4, 8, false, null, AccessMode.USER, deadline(5000));
        assertThat(r.signal()).isEqualTo(Linux.SIGSEGV);
        assertThat(r.faultAddr()).isEqualTo(a + 2 * PAGE);
        // PROT_NONE
        b.mprotect(pid, a, PAGE, Linux.PROT_NONE);
        r = b.access(pid, a, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(r.siCode()).isEqualTo(Linux.SEGV_ACCERR);
    }

    @Test
    void poisonAndMemfdEofGiveSigbus() throws Exception {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, 2 * PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, 2 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        assertThat(b.uffdPoison(pid, fd, a, PAGE, 0)).isEqualTo(PAGE);
        long pm = b.readPagemap(pid, a, 1)[0];
        assertThat(LinuxBackend.markerBits(pm) & 2).as("poison marker in pagemap 0x%x", pm).isNotZero();
        AccessResult r = b.access(pid, a + 3, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(r.signal()).isEqualTo(Linux.SIGBUS);
        assertThat(r.siCode()).isEqualTo(Linux.BUS_ADRERR);
        assertThat(r.faultAddr()).isEqualTo(a + 3);

        int mfd = b.memfdCreate(pid, "eof", 0);
        b.ftruncate(pid, mfd, PAGE);
        long m = b.mmap(pid, 0, 2 * PAGE, RW, Linux.MAP_SHARED, mfd, 0);
        assertThat(b.access(pid, m, 1, true, new byte[] {1}, AccessMode.USER, deadline(5000)).succeeded()).isTrue();
        r = b.access(pid, m + PAGE, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(r.signal()).isEqualTo(Linux.SIGBUS);
        assertThat(r.faultAddr()).isEqualTo(m + PAGE);
    }

    @Test
    void uffdSigbusFeatureIsPredicted() throws Exception {
        int fd = uffd(Linux.UFFD_FEATURE_SIGBUS);
        long a = b.mmap(pid, 0, 2 * PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, 2 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING | Linux.UFFDIO_REGISTER_MODE_WP);
        AccessResult r = b.access(pid, a + 1, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(r.signal()).isEqualTo(Linux.SIGBUS);
        assertThat(r.siCode()).isEqualTo(Linux.BUS_ADRERR);
        assertThat(b.access(pid, a, 1, false, null, AccessMode.KERNEL, deadline(5000)).errno())
                .isEqualTo(Errno.EFAULT);
        b.uffdCopy(pid, fd, a, filled((int) PAGE, 2), Linux.UFFDIO_COPY_MODE_WP);
        assertThat(b.access(pid, a, 1, false, null, AccessMode.USER, deadline(5000)).data()).containsExactly(2);
        r = b.access(pid, a, 1, true, new byte[] {3}, AccessMode.USER, deadline(5000));
        assertThat(r.signal()).isEqualTo(Linux.SIGBUS);
        assertThat(b.uffdRead(pid, fd, 4, 0).size()).isZero();
    }

    @Test
    void deadlineOnABlockedAccessGivesEtimedoutAndCloseWakesTheThread() throws Exception {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        long t0 = System.nanoTime();
        assertThatThrownBy(() -> b.access(pid, a, 8, false, null, AccessMode.USER, deadline(300)))
                .isInstanceOfSatisfying(LinuxException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.ETIMEDOUT);
                    assertThat(e.call()).isEqualTo("access");
                });
        assertThat(System.nanoTime() - t0).isLessThan(TimeUnit.SECONDS.toNanos(5));
        // the fault is still queued in the real uffd
        assertThat(onePagefault(fd).address()).isEqualTo(a);
        // while the thread is blocked, unmapping the range would kill it with SIGSEGV: refused
        assertErrno(() -> b.munmap(pid, a, PAGE), Errno.ENOSYS, "munmap");
        b.close(pid, fd);
        // closing the uffd woke it; the page now reads as zeros and the range can go
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (true) {
            try {
                b.munmap(pid, a, PAGE);
                break;
            } catch (LinuxException e) {
                assertThat(e.errno()).isEqualTo(Errno.ENOSYS);
                assertThat(System.nanoTime()).isLessThan(until);
                Thread.sleep(10);
            }
        }
    }

    /**
     * Accesses check their range under the process's shared lock and mapping changes take it exclusively: many
     * concurrent accesses (platform callers run inline, virtual ones on access threads) against a thread that keeps
     * unmapping, remapping and mprotecting the same pages. A mapping change slipping between an access's check and
     * its touch would raise a real SIGSEGV in this JVM and kill the test run; every access must instead see the
     * page mapped and succeed, or get the SIGSEGV the kernel would give the process.
     */
    @Test
    void concurrentAccessesNeverRaceAMappingChange() throws Exception {
        int pages = 16;
        long a = b.mmap(pid, 0, pages * PAGE, RW, ANON, -1, 0);
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicLong ok = new java.util.concurrent.atomic.AtomicLong();
        java.util.concurrent.atomic.AtomicLong segv = new java.util.concurrent.atomic.AtomicLong();
        List<Thread> accessors = new java.util.ArrayList<>();
        java.util.Queue<Throwable> failures = new java.util.concurrent.ConcurrentLinkedQueue<>();
        for (int t = 0; t < 8; t++) {
            int me = t;
            Thread.Builder tb = t % 2 == 0 ? Thread.ofPlatform() : Thread.ofVirtual();
            accessors.add(tb.start(() -> {
                java.util.Random rnd = new java.util.Random(me);
                try {
                    while (!stop.get()) {
                        long at = a + rnd.nextInt(pages) * PAGE + rnd.nextInt(8) * 8;
                        byte[] data = {(byte) me, (byte) (me + 1)};
                        AccessResult w = b.access(pid, at, 2, true, data, AccessMode.USER, Long.MAX_VALUE);
                        if (w.succeeded()) {
                            ok.incrementAndGet();
                        } else {
                            assertThat(w.signal()).isEqualTo(Linux.SIGSEGV);
                            segv.incrementAndGet();
                        }
                        AccessResult r = b.access(pid, at, 2, false, null, AccessMode.USER, Long.MAX_VALUE);
                        assertThat(r.succeeded() || r.signal() == Linux.SIGSEGV).isTrue();
                    }
                } catch (Throwable e) {
                    failures.add(e);
                }
            }));
        }
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(3);
        int changes = 0;
        java.util.Random rnd = new java.util.Random(42);
        while (System.nanoTime() < until) {
            long at = a + rnd.nextInt(pages) * PAGE;
            try {
                switch (changes++ % 3) {
                    case 0 -> {
                        b.munmap(pid, at, PAGE);
                        // a MAP_FIXED over a page an access is checking or touching is refused (ENOSYS) too:
                        // retry, so that the page is mapped again before the next change
                        while (true) {
                            try {
                                b.mmap(pid, at, PAGE, RW, ANON | Linux.MAP_FIXED, -1, 0);
                                break;
                            } catch (LinuxException e) {
                                assertThat(e.errno()).isEqualTo(Errno.ENOSYS);
                                Thread.onSpinWait();
                            }
                        }
                    }
                    case 1 -> b.mprotect(pid, at, PAGE, Linux.PROT_READ);
                    default -> b.mprotect(pid, at, PAGE, RW);
                }
            } catch (LinuxException e) {
                // an access blocked on the range refuses the change (none here: no uffd), anything else is a bug
                assertThat(e.errno()).isEqualTo(Errno.ENOSYS);
            }
        }
        stop.set(true);
        for (Thread t : accessors) {
            t.join(TimeUnit.SECONDS.toMillis(20));
            assertThat(t.isAlive()).isFalse();
        }
        assertThat(failures).isEmpty();
        assertThat(changes).isGreaterThan(100);
        assertThat(ok.get()).isGreaterThan(100);
        assertThat(segv.get()).isGreaterThan(0);
    }

    /**
     * The precheck caches the last VMA it queried and skips pagemap for private anonymous memory until a marker
     * (guard region, poison) exists: after a warm-up access, a mapping change or a marker must still stop the next
     * access with the kernel's signal (a stale answer would touch the page: a real SIGSEGV/SIGBUS kills the JVM).
     */
    @Test
    void vmaAndMarkerChangesReachTheAccessPrecheck() throws Exception {
        long a = b.mmap(pid, 0, 4 * PAGE, RW, ANON, -1, 0);
        byte[] one = {1};
        assertThat(b.access(pid, a, 1, true, one, AccessMode.USER, deadline(5000)).succeeded()).isTrue();
        b.mprotect(pid, a + PAGE, PAGE, Linux.PROT_READ);
        AccessResult ro = b.access(pid, a + PAGE, 1, true, one, AccessMode.USER, deadline(5000));
        assertThat(ro.signal()).isEqualTo(Linux.SIGSEGV);
        assertThat(ro.siCode()).isEqualTo(Linux.SEGV_ACCERR);
        assertThat(b.access(pid, a, 1, true, one, AccessMode.USER, deadline(5000)).succeeded()).isTrue();
        b.munmap(pid, a + 2 * PAGE, PAGE);
        AccessResult gone = b.access(pid, a + 2 * PAGE, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(gone.signal()).isEqualTo(Linux.SIGSEGV);
        assertThat(gone.siCode()).isEqualTo(Linux.SEGV_MAPERR);
        assertThat(b.access(pid, a + 3 * PAGE, 1, true, one, AccessMode.USER, deadline(5000)).succeeded()).isTrue();
        b.madvise(pid, a + 3 * PAGE, PAGE, Linux.MADV_GUARD_INSTALL);
        AccessResult guarded = b.access(pid, a + 3 * PAGE, 1, true, one, AccessMode.USER, deadline(5000));
        assertThat(guarded.signal()).isEqualTo(Linux.SIGSEGV);
        assertThat(guarded.faultAddr()).isEqualTo(a + 3 * PAGE);
        int fd = uffd(Linux.UFFD_FEATURE_POISON);
        b.uffdRegister(pid, fd, a, PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        b.madvise(pid, a, PAGE, Linux.MADV_DONTNEED);
        b.uffdPoison(pid, fd, a, PAGE, 0);
        AccessResult poisoned = b.access(pid, a, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(poisoned.signal()).isEqualTo(Linux.SIGBUS);
    }

    /**
     * Closing a uffd and UFFDIO_UNREGISTER merge and split VMAs without the mapping lock: the precheck's cached VMA
     * must not outlive them. A stale VMA's bounds name no /proc/self/map_files entry; if that were taken as "no
     * EOF" the read beyond EOF below would touch the page: a real SIGBUS kills the test JVM.
     */
    @Test
    void uffdCloseAndUnregisterReachTheAccessPrecheck() throws Exception {
        for (boolean unregister : new boolean[] {false, true}) {
            int mfd = b.memfdCreate(pid, "merge", 0);
            b.ftruncate(pid, mfd, 4 * PAGE);
            long a = b.mmap(pid, 0, 8 * PAGE, RW, Linux.MAP_SHARED, mfd, 0);
            int fd = uffd(0);
            b.uffdRegister(pid, fd, a, 2 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
            // caches the VMA [a+2p, a+8p) split off by the registration
            assertThat(b.access(pid, a + 2 * PAGE, 1, false, null, AccessMode.USER, deadline(5000)).succeeded())
                    .isTrue();
            if (unregister) {
                b.uffdUnregister(pid, fd, a, 2 * PAGE); // merges [a, a+8p) again
            } else {
                b.close(pid, fd); // the release merges it too
            }
            assertThat(b.pwrite(pid, mfd, 0, new byte[] {1})).isEqualTo(1); // clears the file-size cache
            AccessResult beyond = b.access(pid, a + 5 * PAGE, 1, false, null, AccessMode.USER, deadline(5000));
            assertThat(beyond.signal()).as("unregister=%s", unregister).isEqualTo(Linux.SIGBUS);
            assertThat(beyond.faultAddr()).isEqualTo(a + 5 * PAGE);
            if (unregister) {
                b.close(pid, fd);
            }
            b.munmap(pid, a, 8 * PAGE);
            b.close(pid, mfd);
        }
    }

    /** poll(2)'s pollfd and errno state fit the scratch memory even when the pool is exhausted (exact-size blocks). */
    @Test
    void pollWorksWithTheScratchPoolExhausted() {
        List<Scratch> held = new java.util.ArrayList<>();
        int dev = Native.open("/dev/null", Native.O_RDONLY | Native.O_CLOEXEC);
        try {
            for (int i = 0; i < Scratch.MAX_POOLED + 8; i++) {
                held.add(Scratch.of(8));
            }
            assertThat(Native.poll1(dev, (short) 1, 0) & 1).isEqualTo(1); // POLLIN
        } finally {
            held.forEach(Scratch::close);
            Native.close(dev);
        }
    }

    /**
     * The precheck caches a mapped file's size; every size change through the backend must reach it. A stale
     * larger size would let an access touch a page beyond EOF: a real SIGBUS in this JVM, the test run dies. A
     * stale smaller size would report a SIGBUS the kernel would not raise.
     */
    @Test
    void fileSizeChangesReachTheAccessPrecheck() throws Exception {
        int mfd = b.memfdCreate(pid, "eof", 0);
        b.ftruncate(pid, mfd, 4 * PAGE);
        long a = b.mmap(pid, 0, 4 * PAGE, RW, Linux.MAP_SHARED, mfd, 0);
        // pages 2 and 3 are not present: each access needs the size (and caches it)
        assertThat(b.access(pid, a + 3 * PAGE, 1, false, null, AccessMode.USER, deadline(5000)).succeeded()).isTrue();
        b.madvise(pid, a, 4 * PAGE, Linux.MADV_REMOVE);
        b.ftruncate(pid, mfd, PAGE + 1);
        AccessResult beyond = b.access(pid, a + 2 * PAGE, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(beyond.signal()).isEqualTo(Linux.SIGBUS);
        assertThat(beyond.faultAddr()).isEqualTo(a + 2 * PAGE);
        assertThat(b.access(pid, a + PAGE, 1, true, new byte[] {5}, AccessMode.USER, deadline(5000)).succeeded())
                .isTrue();
        // pwrite grows the file: the page is inside EOF again
        assertThat(b.pwrite(pid, mfd, 4 * PAGE - 1, new byte[] {9})).isEqualTo(1);
        AccessResult inside = b.access(pid, a + 3 * PAGE, 1, false, null, AccessMode.USER, deadline(5000));
        assertThat(inside.succeeded()).isTrue();
        // fallocate without KEEP_SIZE after another shrink
        b.ftruncate(pid, mfd, PAGE);
        assertThat(b.access(pid, a + 3 * PAGE, 1, false, null, AccessMode.USER, deadline(5000)).signal())
                .isEqualTo(Linux.SIGBUS);
        b.fallocate(pid, mfd, 0, 0, 4 * PAGE);
        assertThat(b.access(pid, a + 3 * PAGE, 1, false, null, AccessMode.USER, deadline(5000)).succeeded())
                .isTrue();
    }

    @Test
    void uffdReadHonoursTheDeadline() throws Exception {
        int fd = uffd(0);
        assertThat(b.uffdRead(pid, fd, 4, 0)).isEmpty();
        long t0 = System.nanoTime();
        assertThat(b.uffdRead(pid, fd, 4, deadline(200))).isEmpty();
        assertThat(System.nanoTime() - t0).isGreaterThanOrEqualTo(TimeUnit.MILLISECONDS.toNanos(150));
    }

    @Test
    void kernelModeAccessRaisesAUserfaultToo() throws Exception {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        Future<AccessResult> w = threads.submit(() -> b.access(pid, a, 3, true, new byte[] {1, 2, 3},
                AccessMode.KERNEL, deadline(20_000)));
        UffdMsg.Pagefault pf = onePagefault(fd);
        assertThat(pf.flags()).isEqualTo(Linux.UFFD_PAGEFAULT_FLAG_WRITE);
        b.uffdZeropage(pid, fd, a, PAGE, 0);
        assertThat(w.get(10, TimeUnit.SECONDS).succeeded()).isTrue();
        assertThat(b.access(pid, a, 4, false, null, AccessMode.REMOTE, deadline(5000)).data())
                .containsExactly(1, 2, 3, 0);
        assertThat(b.access(pid, a, 4, false, null, AccessMode.PROC_MEM, deadline(5000)).data())
                .containsExactly(1, 2, 3, 0);
    }

    @Test
    void probeStatusAndVersionParsing() {
        assertThat(LinuxBackend.probeStatus().available()).isTrue();
        assertThat(LinuxAvailability.unavailabilityCause()).isNull();
        assertThat(LinuxAvailability.version("6.18.44-fc-v1272")).containsExactly(6, 18);
        assertThat(LinuxAvailability.version("5.4")).containsExactly(5, 4);
        // EPERM: the reason names what the process can see (capability, sysctl, seccomp filter)
        assertThat(LinuxAvailability.epermReason(false, 0, "0"))
                .isEqualTo("userfaultfd(2): EPERM (no CAP_SYS_PTRACE and vm.unprivileged_userfaultfd=0)");
        assertThat(LinuxAvailability.epermReason(false, 2, "0")).startsWith("userfaultfd(2): EPERM (no CAP_SYS_PTRACE")
                .contains("a seccomp filter is active");
        assertThat(LinuxAvailability.epermReason(true, 2, "0"))
                .isEqualTo("userfaultfd(2): EPERM although CAP_SYS_PTRACE is effective: a seccomp filter refuses the "
                        + "call (allow userfaultfd in the container's seccomp profile)");
        assertThat(LinuxAvailability.epermReason(false, 2, "1")).contains("vm.unprivileged_userfaultfd=1: a seccomp");
        assertThat(LinuxAvailability.epermReason(false, -1, null)).contains("vm.unprivileged_userfaultfd=unknown");
    }

    @Test
    void exitWakesABlockedAccessAndUnmapsTheWindow() throws Exception {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        Future<AccessResult> read = accessAsync(a, 4, false, null);
        assertThat(onePagefault(fd).address()).isEqualTo(a);
        b.exit(pid);
        assertThat(read.get(10, TimeUnit.SECONDS).data()).containsOnly(0);
        assertErrno(() -> b.maps(pid), Errno.ESRCH, "maps");
        int next = b.createProcess("next", 0, true, "test").pid();
        assertThat(b.maps(next)).isEmpty();
    }

    @Test
    void readOnAMemfdIsNotAUserfaultfd() {
        int mfd = b.memfdCreate(pid, "x", 0);
        assertErrno(() -> b.uffdRead(pid, mfd, 1, 0), Errno.ENOTTY, "read");
        assertErrno(() -> b.uffdApi(pid, mfd, Linux.UFFD_API, 0), Errno.ENOTTY, "UFFDIO_API");
    }

    @Test
    void disabledPropertyIsHonouredByAFreshProbe() throws Exception {
        assertThat(LinuxAvailability.isAvailable()).isTrue(); // this loader's probe ran before the property is set
        java.net.URL classes = LinuxAvailability.class.getProtectionDomain().getCodeSource().getLocation();
        System.setProperty(LinuxAvailability.DISABLED_PROPERTY, "true");
        try (var loader = new java.net.URLClassLoader(new java.net.URL[] {classes},
                ClassLoader.getPlatformClassLoader())) {
            Class<?> fresh = Class.forName(LinuxAvailability.class.getName(), true, loader);
            assertThat(fresh).isNotSameAs(LinuxAvailability.class);
            assertThat((Boolean) fresh.getMethod("isAvailable").invoke(null)).isFalse();
            assertThat((String) fresh.getMethod("reason").invoke(null))
                    .isEqualTo("disabled by uffdemu.linux.disabled");
            assertThatThrownBy(() -> {
                try {
                    fresh.getMethod("ensureAvailability").invoke(null);
                } catch (java.lang.reflect.InvocationTargetException e) {
                    throw e.getCause();
                }
            }).isInstanceOf(UnsupportedOperationException.class).hasMessageContaining("disabled by");
        } finally {
            System.clearProperty(LinuxAvailability.DISABLED_PROPERTY);
        }
    }

    @Test
    void everyAccessModeReadsAndWrites() throws Exception {
        long a = b.mmap(pid, 0, 2 * PAGE, RW, ANON, -1, 0);
        int v = 10;
        for (AccessMode m : AccessMode.values()) {
            v++;
            byte[] d = filled(100, v);
            // straddles the page boundary
            AccessResult w = b.access(pid, a + PAGE - 50, 100, true, d, m, deadline(5000));
            assertThat(w.succeeded()).as("write %s", m).isTrue();
            for (AccessMode r : AccessMode.values()) {
                assertThat(b.access(pid, a + PAGE - 50, 100, false, null, r, deadline(5000)).data())
                        .as("write %s, read %s", m, r).isEqualTo(d);
            }
        }
        // a large KERNEL-mode transfer goes through the pipe in chunks
        byte[] big = new byte[(int) (2 * PAGE)];
        for (int i = 0; i < big.length; i++) {
            big[i] = (byte) i;
        }
        assertThat(b.access(pid, a, big.length, true, big, AccessMode.KERNEL, deadline(5000)).succeeded()).isTrue();
        assertThat(b.access(pid, a, big.length, false, null, AccessMode.KERNEL, deadline(5000)).data())
                .isEqualTo(big);
    }

    @Test
    void aSafepointDoesNotWaitForAnAccessBlockedInTheKernel() throws Exception {
        int fd = uffd(0);
        long a = b.mmap(pid, 0, PAGE, RW, ANON, -1, 0);
        b.uffdRegister(pid, fd, a, PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        Future<AccessResult> read = accessAsync(a, 1, false, null);
        onePagefault(fd);
        // the access thread sits in a userfault inside a native memcpy: GC must still reach its safepoint
        Future<?> gc = threads.submit(System::gc);
        gc.get(20, TimeUnit.SECONDS);
        assertThat(read.isDone()).isFalse();
        b.uffdZeropage(pid, fd, a, PAGE, 0);
        assertThat(read.get(10, TimeUnit.SECONDS).data()).containsExactly(0);
    }

    @Test
    void forkIsEnosys() {
        assertErrno(() -> b.fork(pid), Errno.ENOSYS, "fork");
    }

    @Test
    void mmapFamilyStaysInsideTheWindow() {
        long a = b.mmap(pid, 0, 4 * PAGE, RW, ANON, -1, 0);
        long moved = b.mremap(pid, a, 4 * PAGE, 1024 * PAGE, Linux.MREMAP_MAYMOVE, 0);
        var vmas = b.maps(pid);
        assertThat(vmas).allSatisfy(v -> assertThat(v.start()).isGreaterThanOrEqualTo(LinuxBackend.WINDOW_BASE));
        assertThat(vmas).anySatisfy(v -> assertThat(v.start()).isEqualTo(moved));
        long fixed = b.mmap(pid, moved, PAGE, Linux.PROT_READ, ANON | Linux.MAP_FIXED, -1, 0);
        assertThat(fixed).isEqualTo(moved);
        assertThat(b.process(pid).mappingCount()).isEqualTo(b.maps(pid).size());
        b.munmap(pid, moved, 1024 * PAGE);
        assertThat(b.maps(pid)).isEmpty();
        int other = b.createProcess("o", 0, true, "test").pid();
        assertErrno(() -> b.mmap(other, moved, PAGE, RW, ANON | Linux.MAP_FIXED, -1, 0), Errno.ENOSYS, "mmap");
    }

    @Test
    void sysctlAndMeminfo() {
        assertThat(b.sysctl("vm/unprivileged_userfaultfd")).isIn("0", "1");
        assertThat(b.meminfo()).containsKeys("MemTotal", "MemFree", "HugePages_Total");
        assertErrno(() -> b.sysctl("vm/nope"), Errno.ENOENT, "sysctl");
        int unpriv = b.createProcess("u", 65534, false, "test").pid();
        if (b.sysctl("vm/unprivileged_userfaultfd").equals("0")) {
            assertErrno(() -> b.userfaultfd(unpriv, 0, false), Errno.EPERM, "userfaultfd");
        }
        assertErrno(() -> b.userfaultfd(unpriv, 0, true), Errno.EACCES, "open");
        assertThat(b.userfaultfd(unpriv, Linux.UFFD_USER_MODE_ONLY, false)).isGreaterThanOrEqualTo(0);
    }

    /**
     * The probe behind {@code mm/read_fault_zero_page} (pagemap's exclusive bit of a page just read) agrees with
     * PAGEMAP_SCAN's PAGE_IS_PFNZERO for a page this backend's process reads, whichever way this host does it
     * (this machine's kernel boots with pvm_no_zero_page=1: "0"); the value is the host's, not settable.
     */
    @Test
    void readFaultZeroPageIsWhatThisHostDoes() throws Exception {
        String z = b.sysctl(io.uffdemu.server.mm.Kernel.READ_FAULT_ZERO_PAGE);
        assertThat(z).isIn("0", "1");
        long a = b.mmap(pid, 0, PAGE, RW, ANON, -1, 0);
        assertThat(b.access(pid, a, 1, false, null, AccessMode.USER, deadline(5000)).succeeded()).isTrue();
        long cat = b.pagemapScan(pid, new io.uffdemu.server.mm.Pagemap.ScanArg(a, a + PAGE, 0, 0, 0, 0, 0x1ff, 0, 0))
                .regions().getFirst().categories();
        assertThat(cat & Linux.PAGE_IS_PRESENT).isNotZero();
        assertThat((cat & Linux.PAGE_IS_PFNZERO) != 0).isEqualTo(z.equals("1"));
        assertErrno(() -> b.setSysctl(io.uffdemu.server.mm.Kernel.READ_FAULT_ZERO_PAGE, z), Errno.EPERM, "sysctl");
    }

    private static void assertErrno(org.assertj.core.api.ThrowableAssert.ThrowingCallable c, Errno errno,
            String call) {
        assertThatThrownBy(c).isInstanceOfSatisfying(LinuxException.class, e -> {
            assertThat(e.errno()).isEqualTo(errno);
            assertThat(e.call()).isEqualTo(call);
        });
    }

    /**
     * munmap and madvise(DONTNEED) on a range registered with EVENT_UNMAP / EVENT_REMOVE wait in the kernel until
     * the event is read. Called from a virtual thread (every gRPC call is one) they must not wait on its carrier: the
     * reader is a virtual thread too, and with one carrier (uffdemu.virtual-threads.parallelism=1) it could never
     * run.
     */
    @Test
    void syscallsThatWaitForTheirEventLeaveAVirtualCallersCarrier() throws Exception {
        var scheduler = java.lang.management.ManagementFactory
                .getPlatformMXBean(jdk.management.VirtualThreadSchedulerMXBean.class);
        int before = scheduler.getParallelism();
        long a = b.mmap(pid, 0, 4 * PAGE, RW, ANON, -1, 0);
        int fd = uffd(Linux.UFFD_FEATURE_EVENT_UNMAP | Linux.UFFD_FEATURE_EVENT_REMOVE);
        b.uffdRegister(pid, fd, a, 4 * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        scheduler.setParallelism(1);
        try {
            assertEventReadWhileAVirtualThreadWaits(fd, () -> b.munmap(pid, a + 2 * PAGE, 2 * PAGE),
                    UffdMsg.Unmap.class);
            assertEventReadWhileAVirtualThreadWaits(fd, () -> b.madvise(pid, a, 2 * PAGE, Linux.MADV_DONTNEED),
                    UffdMsg.Remove.class);
        } finally {
            scheduler.setParallelism(before);
        }
    }

    private void assertEventReadWhileAVirtualThreadWaits(int fd, Runnable syscall, Class<?> event) throws Exception {
        var done = new java.util.concurrent.CountDownLatch(1);
        var read = new java.util.concurrent.atomic.AtomicReference<List<UffdMsg>>();
        Thread caller = Thread.ofVirtual().start(() -> {
            syscall.run();
            done.countDown();
        });
        Thread reader = Thread.ofVirtual().start(() -> {
            try {
                read.set(b.uffdRead(pid, fd, 4, deadline(10_000)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        boolean finished = done.await(10, TimeUnit.SECONDS);
        if (!finished) {
            // the carrier is pinned in the kernel: read the event here (a platform thread) to free it, then fail
            b.uffdRead(pid, fd, 4, deadline(10_000));
        }
        caller.join(TimeUnit.SECONDS.toMillis(20));
        reader.join(TimeUnit.SECONDS.toMillis(20));
        assertThat(finished).as("the syscall returned once a virtual thread read its event").isTrue();
        assertThat(read.get()).hasSize(1).first().isInstanceOf(event);
    }
}
