package io.uffdemu.server.mm;

import static io.uffdemu.server.mm.Linux.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Anonymous THP behaviour the conformance suite cannot compare with this host's kernel: fork (the native
 * backend cannot fork), page-out with swap (the host has none), and the sysfs policies the host does not run
 * ("always", "never", use_zero_page=0). The THP behaviour the host can show is compared there (thp-* scenarios).
 * The invariant checker runs after every operation (Config.checkInvariants), including the huge-PMD invariants.
 */
class ThpTest {
    Kernel k;
    int pid;

    @BeforeEach
    void setUp() {
        k = new Kernel(new Kernel.Config(64L << 20, 32L << 20, 0, 0, true));
        pid = k.createProcess("t", 0, true, "test").pid();
    }

    @AfterEach
    void tearDown() {
        for (Task t : k.tasks()) {
            k.exit(t.pid());
        }
    }

    /** A 2 MiB-aligned block in a fresh 4 MiB private anonymous mapping. */
    long block(boolean advise) {
        long raw = k.vm.mmap(pid, 0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        long a = (raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
        if (advise) {
            k.vm.madvise(pid, a, PMD_SIZE, MADV_HUGEPAGE);
        }
        return a;
    }

    void write(int p, long addr, int val) throws InterruptedException {
        assertTrue(k.faults.access(p, addr, 1, true, new byte[] {(byte) val}, AccessMode.USER, Long.MAX_VALUE)
                .succeeded());
    }

    int read(int p, long addr) throws InterruptedException {
        AccessResult r = k.faults.access(p, addr, 1, false, null, AccessMode.USER, Long.MAX_VALUE);
        assertTrue(r.succeeded());
        return r.data()[0];
    }

    /** PAGEMAP_SCAN categories of the block, as [start-offset, end-offset, categories] triples. */
    List<Pagemap.Region> scan(int p, long a) {
        return k.pagemap.scan(p, new Pagemap.ScanArg(a, a + PMD_SIZE, 0, 0, 0, 0, 0x1ff, 0, 0)).regions();
    }

    boolean huge(int p, long a) {
        List<Pagemap.Region> r = scan(p, a);
        return r.size() == 1 && (r.get(0).categories() & PAGE_IS_HUGE) != 0 && r.get(0).end() == a + PMD_SIZE;
    }

    @Test
    void policyAlwaysMadviseNever() throws Exception {
        assertEquals("madvise", k.sysctl(Kernel.THP_ENABLED), "default follows the reference host");
        long plain = block(false);
        write(pid, plain, 1);
        assertFalse(huge(pid, plain), "madvise: no THP without MADV_HUGEPAGE");

        k.setSysctl(Kernel.THP_ENABLED, "always");
        long always = block(false);
        write(pid, always, 1);
        assertTrue(huge(pid, always), "always: THP without advice");
        long no = block(false);
        k.vm.madvise(pid, no, PMD_SIZE, MADV_NOHUGEPAGE);
        write(pid, no, 1);
        assertFalse(huge(pid, no), "always: MADV_NOHUGEPAGE still opts out");

        k.setSysctl(Kernel.THP_ENABLED, "never");
        long never = block(true);
        write(pid, never, 1);
        assertFalse(huge(pid, never), "never: not even with MADV_HUGEPAGE");
        assertEquals(Errno.EINVAL, assertThrows(LinuxException.class,
                () -> k.setSysctl(Kernel.THP_ENABLED, "sometimes")).errno());
    }

    @Test
    void useZeroPageOff() throws Exception {
        long a = block(true);
        assertEquals(0, read(pid, a + 5 * PAGE_SIZE));
        assertTrue(huge(pid, a));
        assertEquals(PAGE_IS_PFNZERO, scan(pid, a).get(0).categories() & PAGE_IS_PFNZERO, "huge zero page");
        long before = k.frames.usedPages();
        k.setSysctl(Kernel.THP_USE_ZERO_PAGE, "0");
        long b = block(true);
        assertEquals(0, read(pid, b));
        assertTrue(huge(pid, b));
        assertEquals(0, scan(pid, b).get(0).categories() & PAGE_IS_PFNZERO, "a real huge folio on a read");
        assertEquals(512, k.frames.usedPages() - before);
    }

    @Test
    void forkSharesTheHugeFolioAndCowSplitsTheChildOnly() throws Exception {
        long a = block(true);
        write(pid, a + 3 * PAGE_SIZE, 42);
        int child = k.fork(pid).pid();
        assertTrue(huge(child, a), "copy_huge_pmd: the child maps the THP at PMD level");
        assertTrue(huge(pid, a), "the parent's PMD is write-protected, not split");
        write(child, a + 3 * PAGE_SIZE, 43);
        assertFalse(huge(child, a), "COW of a shared THP splits the PMD and copies 4 KiB");
        assertTrue(huge(pid, a));
        assertEquals(42, read(pid, a + 3 * PAGE_SIZE));
        assertEquals(43, read(child, a + 3 * PAGE_SIZE));
        k.exit(child);
        write(pid, a + 3 * PAGE_SIZE, 44);
        assertTrue(huge(pid, a), "exclusive again: the whole folio is reused writable, still one PMD");
        assertEquals(44, read(pid, a + 3 * PAGE_SIZE));
    }

    @Test
    void pageoutWithSwapWritesEverySubpageOutAndBack() throws Exception {
        long a = block(true);
        write(pid, a, 1);
        write(pid, a + 200 * PAGE_SIZE, 2);
        long used = k.frames.usedPages();
        k.vm.madvise(pid, a, PMD_SIZE, MADV_PAGEOUT);
        assertFalse(huge(pid, a));
        assertEquals(PM_SWAP, k.pagemap.read(pid, a, 1)[0] & PM_SWAP);
        assertTrue(k.frames.usedPages() < used, "frames went to swap");
        assertEquals(1, read(pid, a));
        assertEquals(2, read(pid, a + 200 * PAGE_SIZE));
        assertEquals(0, read(pid, a + 100 * PAGE_SIZE));
    }

    @Test
    void noRoomForAHugeFolioFallsBackTo4K() throws Exception {
        Kernel small = new Kernel(new Kernel.Config(PMD_SIZE + 64 * PAGE_SIZE, 0, 0, 0, true));
        int p = small.createProcess("s", 0, true, "test").pid();
        long raw = small.vm.mmap(p, 0, 4 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        long a = (raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
        small.vm.madvise(p, a, 2 * PMD_SIZE, MADV_HUGEPAGE);
        assertTrue(small.faults.access(p, a, 1, true, new byte[] {1}, AccessMode.USER, Long.MAX_VALUE).succeeded());
        long b = a + PMD_SIZE;
        assertTrue(small.faults.access(p, b, 1, true, new byte[] {2}, AccessMode.USER, Long.MAX_VALUE).succeeded(),
                "THP_FAULT_FALLBACK: a 4 KiB page instead of SIGBUS");
        List<Pagemap.Region> r = small.pagemap.scan(p, new Pagemap.ScanArg(b, b + PAGE_SIZE, 0, 0, 0, 0, 0x1ff, 0, 0))
                .regions();
        assertEquals(0, r.get(0).categories() & PAGE_IS_HUGE);
        small.exit(p);
    }

    @Test
    void hugePmdInvariantCatchesAHole() throws Exception {
        long a = block(true);
        write(pid, a, 1);
        k.lock();
        try {
            // corrupt on purpose: a huge PMD with a non-present subpage must be reported
            long[] table = k.taskLocked(pid, "t").mm.pt.tables.get(a >>> 21);
            long saved = table[7];
            table[7] = Pte.NONE;
            assertThrows(IllegalStateException.class, () -> InvariantChecker.check(k));
            table[7] = saved;
            InvariantChecker.check(k);
        } finally {
            k.lock.unlock();
        }
    }
}
