package io.uffdemu.server.mm;

import static io.uffdemu.server.mm.Linux.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Kernel profiles crossed with {anon, shmem, hugetlb}: what UFFDIO_API answers, which REGISTER modes each memory
 * type takes and which ioctls the answer lists, which ioctls and interfaces exist, and whether uffd-wp survives a
 * zap of file memory. Expected values are written out by hand from the kernel sources cited in
 * {@link KernelProfile} (not computed from it), so a wrong threshold fails here.
 */
@Timeout(30)
class KernelProfileTest {
    enum Mem {
        ANON, SHMEM, HUGETLB;

        long ps() {
            return this == HUGETLB ? PMD_SIZE : PAGE_SIZE;
        }
    }

    static final long MS = 1_000_000L;

    Kernel k;
    int pid;

    Kernel boot(String release, boolean markers) {
        KernelProfile p = KernelProfile.parse(release, markers);
        k = new Kernel(new Kernel.Config(256L << 20, 32L << 20, 16, 0, true, p));
        k.setSysctl("vm/nr_hugepages", "16");
        pid = k.createProcess("t", 0, true, "test").pid();
        return k;
    }

    @AfterEach
    void tearDown() {
        if (k != null) {
            for (Task t : k.tasks()) {
                k.exit(t.pid());
            }
        }
    }

    long map(Mem m, int pages) {
        long len = pages * m.ps();
        if (m == Mem.ANON) {
            return k.vm.mmap(pid, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        }
        int fd = k.memfdCreate(pid, "m", m == Mem.HUGETLB ? MFD_HUGETLB : 0);
        k.ftruncate(pid, fd, len);
        return k.vm.mmap(pid, 0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }

    int uffd(long features) {
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        k.uffd.api(pid, fd, UFFD_API, features);
        return fd;
    }

    CompletableFuture<AccessResult> write(long addr) {
        CompletableFuture<AccessResult> f = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try {
                f.complete(k.faults.access(pid, addr, 1, true, new byte[] {7}, AccessMode.USER,
                        System.nanoTime() + 5000 * MS));
            } catch (Throwable t) {
                f.completeExceptionally(t);
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

    boolean pmWp(long addr) {
        return (k.pagemap.read(pid, addr, 1)[0] & PM_UFFD_WP) != 0;
    }

    static Errno errno(org.junit.jupiter.api.function.Executable r) {
        return assertThrows(LinuxException.class, r).errno();
    }

    // ------------------------------------------------------------------ UFFDIO_API

    @ParameterizedTest(name = "{0} markers={1}")
    @CsvSource({
        // release, CONFIG_PTE_MARKER_UFFD_WP, features UFFDIO_API answers
        "6.18, true,  0x1ffff",
        "6.18, false, 0x14fff", // no WP_HUGETLBFS_SHMEM (12), WP_UNPOPULATED (13), WP_ASYNC (15)
        "6.8,  true,  0x1ffff",
        "6.7,  true,  0x0ffff",
        "6.6,  true,  0x07fff",
        "6.4,  true,  0x03fff",
        "6.1,  true,  0x01fff",
        "6.1,  false, 0x00fff",
        "5.19, true,  0x01fff",
        "5.19, false, 0x00fff",
        "5.18, true,  0x00fff",
        "5.14, true,  0x007ff",
        "5.13, true,  0x003ff",
        "5.10, true,  0x001ff",
        "5.10, false, 0x001ff",
    })
    void apiAnswerPerProfile(String release, boolean markers, String features) {
        boot(release, markers);
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC, false);
        var r = k.uffd.api(pid, fd, UFFD_API, 0);
        assertEquals(Long.decode(features), r.features(), "features of " + release);
        assertEquals(0x8000000000000003L, r.ioctls(), "UFFD_API_IOCTLS: REGISTER, UNREGISTER, API");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"5.10, true", "5.19, true", "6.0, false", "6.1, false", "6.2, false", "6.3, true", "6.18, true"})
    void apiVersionIsCheckedExceptIn60To62(String release, boolean checked) {
        boot(release, true);
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC, false);
        if (checked) {
            assertEquals(Errno.EINVAL, errno(() -> k.uffd.api(pid, fd, 0xAB, 0)));
        } else {
            k.uffd.api(pid, fd, 0xAB, 0);
            assertTrue(k.uffd.info(pid, fd).apiDone());
        }
    }

    @ParameterizedTest(name = "{0} markers={1} request {2}")
    @CsvSource({
        // a feature the release does not know: EINVAL
        "5.10, true,  0x200,  EINVAL",   // MINOR_HUGETLBFS (5.13)
        "5.13, true,  0x400,  EINVAL",   // MINOR_SHMEM (5.14)
        "5.19, true,  0x2000, EINVAL",   // WP_UNPOPULATED (6.4)
        "6.1,  true,  0x4000, IGNORED",  // POISON (6.6): 6.0 .. 6.2 drop unknown bits (914eedcb9ba0)
        "6.2,  true,  0x20000, IGNORED",
        "6.3,  true,  0x4000, EINVAL",   // the check is back (2ff559f31a5d)
        "5.19, true,  0x4000, EINVAL",
        "6.6,  true,  0x10000, EINVAL",  // MOVE (6.8)
        "6.18, true,  0x20000, EINVAL",  // bit 17: unknown to every release
        // known but masked by the config: accepted silently before 6.10, EINVAL from 6.10
        "6.1,  false, 0x1000, OK",
        "5.19, false, 0x1000, OK",
        "6.18, false, 0x1000, EINVAL",
        "6.18, false, 0x2000, EINVAL",
        "6.18, false, 0x8000, EINVAL",
        // supported: OK
        "6.18, true,  0x1000, OK",
        "6.1,  true,  0x1000, OK",
        "5.10, true,  0x100,  OK",
    })
    void apiRefusesWhatTheProfileLacks(String release, boolean markers, String feature, String outcome) {
        boot(release, markers);
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC, false);
        long f = Long.decode(feature);
        if (outcome.equals("OK")) {
            k.uffd.api(pid, fd, UFFD_API, f);
            assertEquals(f, k.uffd.info(pid, fd).features() & f, "the ctx keeps what was requested");
        } else if (outcome.equals("IGNORED")) {
            k.uffd.api(pid, fd, UFFD_API, f | UFFD_FEATURE_THREAD_ID);
            assertEquals(UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_INITIALIZED, k.uffd.info(pid, fd).features(),
                    "the unknown bit is dropped, the known one kept");
        } else {
            assertEquals(Errno.EINVAL, errno(() -> k.uffd.api(pid, fd, UFFD_API, f)));
            assertEquals(false, k.uffd.info(pid, fd).apiDone());
        }
    }

    // ------------------------------------------------------------------ REGISTER: modes × memory types

    /** Expected REGISTER answers for modes 1..7 (-1 = EINVAL), by hand from the uapi masks of each release. */
    static Stream<Arguments> registerTable() {
        List<Arguments> out = new ArrayList<>();
        long x = -1;
        // 6.18: RANGE = WAKE|COPY|ZEROPAGE|MOVE|WP|CONTINUE|POISON, BASIC = WAKE|COPY|WP|CONTINUE|POISON
        out.add(Arguments.of("6.18", true, Mem.ANON, new long[] {0x13c, 0x17c, 0x17c, x, x, x, x}));
        out.add(Arguments.of("6.18", true, Mem.SHMEM, new long[] {0x13c, 0x17c, 0x17c, 0x1bc, 0x1bc, 0x1fc, 0x1fc}));
        out.add(Arguments.of("6.18", true, Mem.HUGETLB, new long[] {0x10c, 0x14c, 0x14c, 0x18c, 0x18c, 0x1cc, 0x1cc}));
        // 6.18 without PTE markers: WP only on anonymous memory
        out.add(Arguments.of("6.18", false, Mem.ANON, new long[] {0x13c, 0x17c, 0x17c, x, x, x, x}));
        out.add(Arguments.of("6.18", false, Mem.SHMEM, new long[] {0x13c, x, x, 0x1bc, 0x1bc, x, x}));
        out.add(Arguments.of("6.18", false, Mem.HUGETLB, new long[] {0x10c, x, x, 0x18c, 0x18c, x, x}));
        // 6.1 and 5.19: no POISON, no MOVE; RANGE = WAKE|COPY|ZEROPAGE|WP|CONTINUE, BASIC = WAKE|COPY|WP|CONTINUE
        for (String r : List.of("6.1", "5.19")) {
            out.add(Arguments.of(r, true, Mem.ANON, new long[] {0x1c, 0x5c, 0x5c, x, x, x, x}));
            out.add(Arguments.of(r, true, Mem.SHMEM, new long[] {0x1c, 0x5c, 0x5c, 0x9c, 0x9c, 0xdc, 0xdc}));
            out.add(Arguments.of(r, true, Mem.HUGETLB, new long[] {0x0c, 0x4c, 0x4c, 0x8c, 0x8c, 0xcc, 0xcc}));
            out.add(Arguments.of(r, false, Mem.ANON, new long[] {0x1c, 0x5c, 0x5c, x, x, x, x}));
            out.add(Arguments.of(r, false, Mem.SHMEM, new long[] {0x1c, x, x, 0x9c, 0x9c, x, x}));
            out.add(Arguments.of(r, false, Mem.HUGETLB, new long[] {0x0c, x, x, 0x8c, 0x8c, x, x}));
        }
        // 5.14: MINOR on shmem too; WP still anonymous only, BASIC has no WRITEPROTECT
        out.add(Arguments.of("5.14", true, Mem.SHMEM, new long[] {0x1c, x, x, 0x9c, 0x9c, x, x}));
        out.add(Arguments.of("5.14", true, Mem.HUGETLB, new long[] {0x0c, x, x, 0x8c, 0x8c, x, x}));
        // 5.13: MINOR on hugetlbfs only
        out.add(Arguments.of("5.13", true, Mem.ANON, new long[] {0x1c, 0x5c, 0x5c, x, x, x, x}));
        out.add(Arguments.of("5.13", true, Mem.SHMEM, new long[] {0x1c, x, x, x, x, x, x}));
        out.add(Arguments.of("5.13", true, Mem.HUGETLB, new long[] {0x0c, x, x, 0x8c, 0x8c, x, x}));
        // 5.10: no MINOR mode at all, WP only on anonymous; RANGE = WAKE|COPY|ZEROPAGE|WP, BASIC = WAKE|COPY
        for (boolean markers : new boolean[] {true, false}) {
            out.add(Arguments.of("5.10", markers, Mem.ANON, new long[] {0x1c, 0x5c, 0x5c, x, x, x, x}));
            out.add(Arguments.of("5.10", markers, Mem.SHMEM, new long[] {0x1c, x, x, x, x, x, x}));
            out.add(Arguments.of("5.10", markers, Mem.HUGETLB, new long[] {0x0c, x, x, x, x, x, x}));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "register {0} markers={1} {2}")
    @MethodSource("registerTable")
    void registerPerProfile(String release, boolean markers, Mem m, long[] want) {
        boot(release, markers);
        long a = map(m, 1);
        int u = uffd(0);
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.register(pid, u, a, m.ps(), 0)), "mode 0");
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.register(pid, u, a, m.ps(), 8)), "mode 8");
        for (int mode = 1; mode <= 7; mode++) {
            int md = mode;
            String what = release + " " + m + " mode " + mode;
            if (want[mode - 1] < 0) {
                assertEquals(Errno.EINVAL, errno(() -> k.uffd.register(pid, u, a, m.ps(), md)), what);
            } else {
                assertEquals(want[mode - 1], k.uffd.register(pid, u, a, m.ps(), mode), what);
                k.uffd.unregister(pid, u, a, m.ps());
            }
        }
    }

    // ------------------------------------------------------------------ uffd-wp across a zap

    @ParameterizedTest(name = "{0} markers={1}")
    @CsvSource({"6.18, true", "6.1, true", "5.19, true", "6.18, false", "5.19, false", "6.1, false", "5.10, true"})
    void shmemWpSurvivesDontneedOnlyWithMarkers(String release, boolean markers) throws Exception {
        boot(release, markers);
        long a = map(Mem.SHMEM, 1);
        assertTrue(write(a).get(5, TimeUnit.SECONDS).succeeded());
        int u = uffd(0);
        boolean hasMarkers = markers && !release.equals("5.10");
        if (!hasMarkers) {
            assertEquals(Errno.EINVAL, errno(() -> k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_WP)),
                    "no WP on shmem without PTE markers");
            return;
        }
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_WP);
        k.uffd.writeprotect(pid, u, a, PAGE_SIZE, UFFDIO_WRITEPROTECT_MODE_WP);
        k.vm.madvise(pid, a, PAGE_SIZE, MADV_DONTNEED);
        assertTrue(pmWp(a), "a uffd-wp marker keeps pagemap bit 57 after the zap");
        CompletableFuture<AccessResult> w = write(a);
        assertTrue(blocked(w), "the write after the zap is a WP fault");
        List<UffdMsg> msgs = k.uffd.read(pid, u, 4, System.nanoTime() + 2000 * MS);
        assertEquals(1, msgs.size());
        UffdMsg.Pagefault pf = (UffdMsg.Pagefault) msgs.get(0);
        assertEquals(UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE, pf.flags());
        k.uffd.writeprotect(pid, u, a, PAGE_SIZE, 0);
        assertTrue(w.get(5, TimeUnit.SECONDS).succeeded());
    }

    @ParameterizedTest(name = "{0} markers={1}")
    @CsvSource({"6.18, true", "6.18, false", "5.10, true"})
    void anonWpIsDroppedByDontneedInEveryProfile(String release, boolean markers) throws Exception {
        boot(release, markers);
        long a = map(Mem.ANON, 1);
        assertTrue(write(a).get(5, TimeUnit.SECONDS).succeeded());
        int u = uffd(0);
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_WP);
        k.uffd.writeprotect(pid, u, a, PAGE_SIZE, UFFDIO_WRITEPROTECT_MODE_WP);
        assertEquals(!release.equals("5.10"), pmWp(a), "pagemap bit 57 exists from 5.13");
        k.vm.madvise(pid, a, PAGE_SIZE, MADV_DONTNEED);
        assertEquals(false, pmWp(a));
        assertTrue(write(a).get(5, TimeUnit.SECONDS).succeeded(), "no marker: the write does not fault to uffd");
    }

    @Test
    void wpUnpopulatedIsRefusedWithoutMarkers() {
        boot("6.18", false);
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC, false);
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.api(pid, fd, UFFD_API, UFFD_FEATURE_WP_UNPOPULATED)));
        assertEquals(Errno.EINVAL, errno(() -> k.uffd.api(pid, fd, UFFD_API, UFFD_FEATURE_WP_ASYNC)));
    }

    // ------------------------------------------------------------------ ioctls that do not exist yet

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"6.18", "6.8", "6.6", "6.1", "5.10"})
    void poisonAndMoveExistFromTheirRelease(String release) {
        boot(release, true);
        KernelProfile p = k.profile();
        long a = map(Mem.ANON, 4);
        int u = uffd(0);
        k.uffd.register(pid, u, a, 4 * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        if (p.atLeast(6, 6)) {
            assertEquals(PAGE_SIZE, k.uffd.poison(pid, u, a, PAGE_SIZE, 0));
        } else {
            assertEquals(Errno.EINVAL, errno(() -> k.uffd.poison(pid, u, a, PAGE_SIZE, 0)), "no UFFDIO_POISON");
        }
        long src = map(Mem.ANON, 1);
        k.faults.populate(pid, src, PAGE_SIZE, "test", true);
        if (p.atLeast(6, 8)) {
            assertEquals(PAGE_SIZE, k.uffd.move(pid, u, a + PAGE_SIZE, src, PAGE_SIZE, 0));
        } else {
            assertEquals(Errno.EINVAL, errno(() -> k.uffd.move(pid, u, a + PAGE_SIZE, src, PAGE_SIZE, 0)),
                    "no UFFDIO_MOVE");
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"6.18, OK, OK", "6.5, OK, OK", "6.1, OK, EINVAL", "5.13, OK, EINVAL", "5.10, EINVAL, EINVAL"})
    void continueAndItsWpMode(String release, String plain, String withWp) {
        boot(release, true);
        int fd = k.memfdCreate(pid, "h", MFD_HUGETLB);
        k.ftruncate(pid, fd, 2 * PMD_SIZE);
        k.fallocate(pid, fd, 0, 0, 2 * PMD_SIZE); // page cache present: CONTINUE has something to map
        long a = k.vm.mmap(pid, 0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        int u = uffd(0);
        KernelProfile p = k.profile();
        long mode = p.atLeast(5, 13) ? UFFDIO_REGISTER_MODE_MINOR : UFFDIO_REGISTER_MODE_MISSING;
        if (p.atLeast(5, 19)) {
            mode |= UFFDIO_REGISTER_MODE_WP; // so that only the release decides CONTINUE_MODE_WP
        }
        k.uffd.register(pid, u, a, 2 * PMD_SIZE, mode);
        String[] outcomes = {plain, withWp};
        long[] modes = {0, UFFDIO_CONTINUE_MODE_WP};
        for (int i = 0; i < 2; i++) {
            long at = a + i * PMD_SIZE;
            long md = modes[i];
            String what = release + " CONTINUE mode " + md;
            if (outcomes[i].equals("OK")) {
                assertEquals(PMD_SIZE, k.uffd.continue_(pid, u, at, PMD_SIZE, md), what);
            } else {
                assertEquals(Errno.EINVAL, errno(() -> k.uffd.continue_(pid, u, at, PMD_SIZE, md)), what);
            }
        }
    }

    // ------------------------------------------------------------------ other interfaces

    @ParameterizedTest(name = "{0}")
    @CsvSource({"6.18, true, true", "6.1, true, true", "5.19, false, true", "5.11, false, true",
        "5.10, false, false"})
    void devUserfaultfdAndUserModeOnly(String release, boolean dev, boolean userModeOnly) {
        boot(release, true);
        if (dev) {
            k.uffd.userfaultfd(pid, 0, true);
        } else {
            assertEquals(Errno.ENOENT, errno(() -> k.uffd.userfaultfd(pid, 0, true)), "no /dev/userfaultfd");
        }
        int nobody = k.createProcess("nobody", 65534, false, "test").pid();
        assertEquals(userModeOnly ? "0" : "1", k.sysctl("vm/unprivileged_userfaultfd"),
                "the default became 0 with USER_MODE_ONLY in 5.11");
        k.setSysctl("vm/unprivileged_userfaultfd", "0");
        if (userModeOnly) {
            k.uffd.userfaultfd(pid, UFFD_USER_MODE_ONLY, false);
            k.uffd.userfaultfd(nobody, UFFD_USER_MODE_ONLY, false);
        } else {
            assertEquals(Errno.EINVAL, errno(() -> k.uffd.userfaultfd(pid, UFFD_USER_MODE_ONLY, false)));
            assertEquals(Errno.EPERM, errno(() -> k.uffd.userfaultfd(nobody, UFFD_USER_MODE_ONLY, false)),
                    "5.10 checks the sysctl first and knows no USER_MODE_ONLY");
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"6.18, true, true, true", "6.13, true, true, true", "6.7, false, true, true",
        "6.1, false, true, true", "5.19, false, false, true", "5.10, false, false, false"})
    void madviseAdvicesPerRelease(String release, boolean guard, boolean collapse, boolean populate) {
        boot(release, true);
        long a = map(Mem.ANON, 1);
        check(guard, () -> k.vm.madvise(pid, a, PAGE_SIZE, MADV_GUARD_INSTALL));
        check(guard, () -> k.vm.madvise(pid, a, PAGE_SIZE, MADV_GUARD_REMOVE));
        check(collapse, () -> k.vm.madvise(pid, a, PAGE_SIZE, MADV_COLLAPSE));
        check(populate, () -> k.vm.madvise(pid, a, PAGE_SIZE, MADV_POPULATE_WRITE));
    }

    private static void check(boolean exists, org.junit.jupiter.api.function.Executable r) {
        if (exists) {
            try {
                r.execute();
            } catch (LinuxException e) {
                assertTrue(e.errno() != Errno.EINVAL || !e.getMessage().contains("unknown to Linux"), e.getMessage());
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
        } else {
            assertEquals(Errno.EINVAL, errno(r));
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"6.18, true", "6.7, true", "6.6, false", "5.10, false"})
    void pagemapScanFrom67(String release, boolean exists) {
        boot(release, true);
        long a = map(Mem.ANON, 1);
        var arg = new Pagemap.ScanArg(a, a + PAGE_SIZE, 0, 0, 0, 0, PM_SCAN_CATEGORIES, 0, 16);
        if (exists) {
            k.pagemap.scan(pid, arg);
        } else {
            assertEquals(Errno.ENOTTY, errno(() -> k.pagemap.scan(pid, arg)));
        }
    }

    // ------------------------------------------------------------------ the profile itself

    @Test
    void defaultIsTodays618() {
        KernelProfile p = KernelProfile.DEFAULT;
        assertEquals("6.18", p.version());
        assertTrue(p.pteMarkerUffdWp());
        assertEquals(UFFD_API_FEATURES, p.apiFeatures());
        assertEquals(UFFD_API_IOCTLS, p.apiIoctls());
        assertEquals(UFFD_API_RANGE_IOCTLS, p.rangeIoctls());
        assertEquals(UFFD_API_RANGE_IOCTLS_BASIC, p.rangeIoctlsBasic());
        assertEquals("6.18.0-uffdemu", p.release());
        assertEquals(p, new Kernel.Config(1 << 20, 0, 0, 0, false).profile());
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "6", "6.x", "4.19", "5.9", "6.19", "7.0", "6.1.2.3", "latest"})
    void badReleasesAreRefused(String release) {
        var e = assertThrows(IllegalArgumentException.class, () -> KernelProfile.parse(release, true));
        assertTrue(e.getMessage().contains("6.18") || e.getMessage().contains("5.10"), e.getMessage());
    }

    @Test
    void patchLevelIsIgnored() {
        assertEquals(new KernelProfile(6, 1, false), KernelProfile.parse(" 6.1.55 ", false));
    }
}
