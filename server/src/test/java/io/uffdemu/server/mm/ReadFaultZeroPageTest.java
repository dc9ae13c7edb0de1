package io.uffdemu.server.mm;

import static io.uffdemu.server.mm.Linux.*;
import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@link Kernel#READ_FAULT_ZERO_PAGE}: whether an anonymous read fault maps the shared zero page (mainline) or a
 * zeroed page of its own (hosts booted with {@code pvm_no_zero_page=1}). ConformanceTest compares the setting of
 * whichever host it runs on with the kernel; this checks both settings on any machine. The invariant checker runs
 * after every operation.
 */
class ReadFaultZeroPageTest {
    Kernel k;
    int pid;

    @BeforeEach
    void setUp() {
        k = new Kernel(new Kernel.Config(64L << 20, 0, 0, 0, true));
        pid = k.createProcess("t", 0, true, "test").pid();
    }

    @AfterEach
    void tearDown() {
        for (Task t : k.tasks()) {
            k.exit(t.pid());
        }
    }

    long anon(long len) {
        return k.vm.mmap(pid, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }

    byte read(long addr) throws InterruptedException {
        AccessResult r = k.faults.access(pid, addr, 1, false, null, AccessMode.USER, Long.MAX_VALUE);
        assertTrue(r.succeeded(), r.toString());
        return r.data()[0];
    }

    long pm(long addr) {
        return k.pagemap.read(pid, addr, 1)[0];
    }

    long categories(long addr) {
        return k.pagemap.scan(pid, new Pagemap.ScanArg(addr, addr + PAGE_SIZE, 0, 0, 0, 0, 0x1ff, 0, 0)).regions()
                .get(0).categories();
    }

    @Test
    void onByDefaultAReadMapsTheSharedZeroPage() throws Exception {
        assertEquals("1", k.sysctl(Kernel.READ_FAULT_ZERO_PAGE));
        long a = anon(2 * PAGE_SIZE);
        assertEquals(0, read(a));
        assertEquals(PM_PRESENT, pm(a) & (PM_PRESENT | PM_MMAP_EXCLUSIVE), "the zero page: present, not exclusive");
        assertEquals(PAGE_IS_PFNZERO, categories(a) & PAGE_IS_PFNZERO);
        assertEquals(0, k.meminfo().get("AnonPages"), "no page of its own");
    }

    @Test
    void offAReadMapsAZeroedPageOfItsOwn() throws Exception {
        k.setSysctl(Kernel.READ_FAULT_ZERO_PAGE, "0");
        assertEquals("0", k.sysctl(Kernel.READ_FAULT_ZERO_PAGE));
        long a = anon(2 * PAGE_SIZE);
        assertEquals(0, read(a));
        assertEquals(PM_PRESENT | PM_MMAP_EXCLUSIVE, pm(a) & (PM_PRESENT | PM_MMAP_EXCLUSIVE));
        assertEquals(0, categories(a) & PAGE_IS_PFNZERO);
        assertEquals(4, k.meminfo().get("AnonPages"), "one page, in kB");
        // mapped as a write fault maps it (writable when the VMA is): the store that follows needs no COW and
        // lands in the same page
        assertTrue(k.faults.access(pid, a, 1, true, new byte[] {7}, AccessMode.USER, Long.MAX_VALUE).succeeded());
        assertEquals(7, read(a));
        assertEquals(4, k.meminfo().get("AnonPages"));
    }

    @Test
    void offAReadOverAWpMarkerKeepsTheProtection() throws Exception {
        k.setSysctl(Kernel.READ_FAULT_ZERO_PAGE, "0");
        long a = anon(PAGE_SIZE);
        int u = k.uffd.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        k.uffd.api(pid, u, UFFD_API, UFFD_FEATURE_WP_UNPOPULATED);
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_WP);
        k.uffd.writeprotect(pid, u, a, PAGE_SIZE, UFFDIO_WRITEPROTECT_MODE_WP);
        assertEquals(PM_SWAP | PM_UFFD_WP, pm(a) & (PM_SWAP | PM_UFFD_WP | PM_PRESENT), "a marker");
        assertEquals(0, read(a));
        // the conformance suite's "pm read marker: P-W-X" on such a host
        assertEquals(PM_PRESENT | PM_UFFD_WP | PM_MMAP_EXCLUSIVE,
                pm(a) & (PM_PRESENT | PM_SWAP | PM_UFFD_WP | PM_MMAP_EXCLUSIVE));
    }

    @Test
    void offUffdioZeropageStillMapsTheZeroPage() throws Exception {
        k.setSysctl(Kernel.READ_FAULT_ZERO_PAGE, "0");
        long a = anon(PAGE_SIZE);
        int u = k.uffd.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        k.uffd.api(pid, u, UFFD_API, 0);
        k.uffd.register(pid, u, a, PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        assertEquals(PAGE_SIZE, k.uffd.zeropage(pid, u, a, PAGE_SIZE, 0));
        assertEquals(PM_PRESENT, pm(a) & (PM_PRESENT | PM_MMAP_EXCLUSIVE));
        assertEquals(PAGE_IS_PFNZERO, categories(a) & PAGE_IS_PFNZERO);
    }

    @Test
    void offAThpReadFaultAllocatesAHugeFolioInsteadOfTheHugeZeroPage() throws Exception {
        k.setSysctl(Kernel.THP_ENABLED, "always");
        k.setSysctl(Kernel.READ_FAULT_ZERO_PAGE, "0");
        long raw = anon(2 * PMD_SIZE);
        long a = (raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
        assertEquals(0, read(a));
        long cat = k.pagemap.scan(pid, new Pagemap.ScanArg(a, a + PMD_SIZE, 0, 0, 0, 0, 0x1ff, 0, 0)).regions()
                .get(0).categories();
        assertEquals(PAGE_IS_HUGE | PAGE_IS_PRESENT, cat & (PAGE_IS_HUGE | PAGE_IS_PRESENT | PAGE_IS_PFNZERO));
        assertEquals(2048, k.meminfo().get("AnonPages"), "a whole huge folio, in kB");

        k.setSysctl(Kernel.READ_FAULT_ZERO_PAGE, "1");
        long raw2 = anon(2 * PMD_SIZE);
        long b = (raw2 + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
        assertEquals(0, read(b));
        assertEquals(PAGE_IS_PFNZERO, categories(b) & PAGE_IS_PFNZERO, "the huge zero page again");
    }

    @Test
    void onlyZeroOrOne() {
        for (String bad : new String[] {"2", "-1", "yes", ""}) {
            LinuxException e = assertThrows(LinuxException.class, () -> k.setSysctl(Kernel.READ_FAULT_ZERO_PAGE, bad));
            assertEquals(Errno.EINVAL, e.errno());
        }
        assertEquals("1", k.sysctl(Kernel.READ_FAULT_ZERO_PAGE));
    }
}
