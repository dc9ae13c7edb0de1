package io.uffdemu.server.mm;

import static io.uffdemu.server.mm.Linux.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Memory cgroups (mm/memcontrol.c): charges on allocation, reclaim of the memcg's own anonymous pages to swap
 * when a charge would go over memory.max, then ENOMEM / SIGBUS; uncharge on munmap and exit; the per-memcg
 * object counts with the kernel's errno; a second memcg ("B") is never affected. The invariant checker (which
 * recomputes every memcg counter from the charged frames and swap slots) runs after every call.
 */
@Timeout(60)
class MemCgroupTest {
    static final long PAGE = PAGE_SIZE;
    static final MemCgroup.Limits UNLIMITED = MemCgroup.Limits.UNLIMITED;

    /** One thread per blocked access (the common pool may have a single worker on a small host). */
    static final java.util.concurrent.Executor THREADS = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor();

    Kernel k;
    MemCgroup a;
    MemCgroup b;
    int pa;
    int pb;

    @BeforeEach
    void setUp() {
        k = new Kernel(new Kernel.Config(64L << 20, 16L << 20, 4, 0, true));
        b = k.memcg("b", UNLIMITED);
        pb = k.createProcess("b", 0, true, "b", b).pid();
    }

    /** Tenant A with these limits, and one process. */
    void tenantA(long memoryPages, long swapPages, long hugetlbBytes, int maps, int uffds, int registered,
            int pending, int blocked) {
        a = k.memcg("a", new MemCgroup.Limits(memoryPages * PAGE, swapPages * PAGE, hugetlbBytes, Long.MAX_VALUE,
                maps, uffds, registered, pending, blocked));
        pa = k.createProcess("a", 0, true, "a", a).pid();
    }

    void tenantA(long memoryPages, long swapPages) {
        tenantA(memoryPages, swapPages, Long.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE,
                Integer.MAX_VALUE, Integer.MAX_VALUE);
    }

    long anon(int pid, long pages) {
        return k.vm.mmap(pid, 0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }

    AccessResult write(int pid, long addr, int val) throws InterruptedException {
        return k.faults.access(pid, addr, 1, true, new byte[] {(byte) val}, AccessMode.USER, Long.MAX_VALUE);
    }

    int read(int pid, long addr) throws InterruptedException {
        AccessResult r = k.faults.access(pid, addr, 1, false, null, AccessMode.USER, Long.MAX_VALUE);
        assertTrue(r.succeeded(), "read at " + Long.toHexString(addr) + ": " + r);
        return r.data()[0] & 0xff;
    }

    @Test
    void overTheLimitReclaimsOwnAnonPagesToSwapThenSigbus() throws Exception {
        tenantA(256, 512);
        long bBase = anon(pb, 64);
        for (int i = 0; i < 64; i++) {
            assertTrue(write(pb, bBase + i * PAGE, 7).succeeded());
        }
        long base = anon(pa, 1024);
        for (int i = 0; i < 600; i++) {
            assertTrue(write(pa, base + i * PAGE, i).succeeded(), "page " + i + " fits memory.max + swap.max");
            assertTrue(k.memcgStat(a).memoryCurrent() <= 256 * PAGE, "memory.current never above memory.max");
        }
        Kernel.MemcgStat st = k.memcgStat(a);
        assertTrue(st.swapCurrent() > 0, "reclaim moved A's own pages to swap");
        assertTrue(k.task(pa).mm().swapEntries() > 0);
        for (int i = 0; i < 600; i++) {
            assertEquals(i & 0xff, read(pa, base + i * PAGE), "page " + i + " survives reclaim and swap-in");
        }
        // B was never reclaimed for A
        assertEquals(0, k.task(pb).mm().swapEntries());
        assertEquals(64, k.task(pb).mm().rssAnonPages());
        assertEquals(64 * PAGE, k.memcgStat(b).memoryCurrent());

        // beyond memory.max + memory.swap.max: the fault gets SIGBUS (VM_FAULT_OOM)
        AccessResult last = null;
        int i = 600;
        for (; i < 1024; i++) {
            last = write(pa, base + i * PAGE, 1);
            if (!last.succeeded()) {
                break;
            }
        }
        assertNotNull(last);
        assertEquals(SIGBUS, last.signal(), "the fault over the limit is SIGBUS");
        assertTrue(i <= 256 + 512 && i > 256 + 512 - MemCgroup.RECLAIM_BATCH - 2, "failed at page " + i);
        assertTrue(k.memcgStat(a).eventsOom() > 0);
        assertEquals(512 * PAGE, k.memcgStat(a).swapCurrent());
        // B still allocates and its pages stay put
        long more = anon(pb, 128);
        for (int j = 0; j < 128; j++) {
            assertTrue(write(pb, more + j * PAGE, 9).succeeded());
        }
        assertEquals(7, read(pb, bBase));
        assertEquals(0, k.task(pb).mm().swapEntries());
    }

    @Test
    void uffdioCopyOverTheLimitIsEnomemMarkedQuota() {
        tenantA(16, 0);
        int fa = uffd(pa);
        long dst = anon(pa, 64);
        k.uffd.register(pa, fa, dst, 64 * PAGE, UFFDIO_REGISTER_MODE_MISSING);
        byte[] page = new byte[(int) PAGE];
        int copied = 0;
        LinuxException e = null;
        for (; copied < 64; copied++) {
            try {
                assertEquals(PAGE, k.uffd.copy(pa, fa, dst + copied * PAGE, page, 0));
            } catch (LinuxException x) {
                e = x;
                break;
            }
        }
        assertNotNull(e, "the copy over memory.max fails");
        assertEquals(15, copied, "memory.max less the one page table (charged too) was copied; no swap to reclaim to");
        assertEquals(Errno.ENOMEM, e.errno());
        assertEquals(a, k.lastChargeRefusal(), "the refusal is attributed to A's memcg");
        // B, unlimited, copies on
        int fb = uffd(pb);
        long bdst = anon(pb, 64);
        k.uffd.register(pb, fb, bdst, 64 * PAGE, UFFDIO_REGISTER_MODE_MISSING);
        for (int i = 0; i < 64; i++) {
            assertEquals(PAGE, k.uffd.copy(pb, fb, bdst + i * PAGE, page, 0));
        }
        assertNull(k.lastChargeRefusal());
    }

    int uffd(int pid) {
        int fd = k.uffd.userfaultfd(pid, 0, false);
        k.uffd.api(pid, fd, UFFD_API, 0);
        return fd;
    }

    /** Through the backend edge: a memcg refusal becomes a quota failure with the kernel's errno. */
    @Test
    void backendMarksMemcgFailuresAsQuota() {
        var be = new io.uffdemu.server.backend.emulated.EmulatedBackend(new Kernel.Config(64L << 20, 0, 0, 0, true))
                .withMemcgLimits(new MemCgroup.Limits(16 * PAGE, 0, 0, 0, 100, 10, 10, 10, 10), UNLIMITED);
        int p = be.createProcess("q", 0, true, "tenant-q").pid();
        long a = be.mmap(p, 0, 1L << 40, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        LinuxException pop = assertThrows(LinuxException.class,
                () -> be.madvise(p, a, 64 * PAGE, MADV_POPULATE_WRITE));
        assertEquals(Errno.ENOMEM, pop.errno(), "GUP on VM_FAULT_OOM is ENOMEM");
        assertTrue(pop.isQuota());
        int fd = be.memfdCreate(p, "m", 0);
        LinuxException fa = assertThrows(LinuxException.class, () -> be.fallocate(p, fd, 0, 0, 1L << 40));
        assertEquals(Errno.ENOSPC, fa.errno());
        assertTrue(fa.isQuota());
        // MAP_POPULATE of a read-only terabyte maps only the zero page, but its page tables are charged: it stops
        // at the memcg's page-table budget instead of running the server out of heap
        long b = be.mmap(p, 0, 1L << 40, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE, -1, 0);
        assertTrue(b > 0);
        assertTrue(be.memcgOf("tenant-q").memoryCurrent() <= 16 * PAGE + 16 * PAGE / 2);
        LinuxException pt = assertThrows(LinuxException.class,
                () -> be.madvise(p, b, 1L << 40, MADV_POPULATE_READ));
        assertEquals(Errno.ENOMEM, pt.errno());
        assertTrue(pt.isQuota());
        LinuxException guard = assertThrows(LinuxException.class,
                () -> be.madvise(p, b, 1L << 40, MADV_GUARD_INSTALL));
        assertEquals(Errno.ENOMEM, guard.errno());
        // a machine-wide failure of the same kind is not a quota
        LinuxException bad = assertThrows(LinuxException.class, () -> be.fallocate(p, 99, 0, 0, PAGE));
        assertFalse(bad.isQuota());
    }

    /** Page-table pages of a memcg's tasks as they are now: the count kept incrementally must equal them. */
    long tablesOf(int... pids) {
        long n = 0;
        for (int pid : pids) {
            n += k.tasks.get(pid).mm.pt.tableCount();
        }
        return n;
    }

    /**
     * Page-table pages count toward memory.current as tables are allocated and freed: faults in new 2 MiB blocks,
     * fork (the child's copies), munmap and exit, each the tables the memcg's tasks hold at that moment (kept as
     * they change, not by walking the tasks on every charge); the root, unlimited, reports none.
     */
    @Test
    void pageTablesAreChargedAsTheyComeAndGo() throws Exception {
        tenantA(1024, 1024);
        long base = anon(pa, 3 * 512);
        java.util.Set<Long> blocks = new java.util.HashSet<>();
        for (long addr = base; addr < base + 3 * 512 * PAGE; addr += 256 * PAGE) {
            write(pa, addr, 1);
            blocks.add(addr >>> 21);
        }
        assertEquals(blocks.size(), tablesOf(pa), "one PTE table per 2 MiB block touched");
        assertEquals(tablesOf(pa), a.pgtablePages());
        long frames = k.memcgStat(a).memoryCurrent() / PAGE - a.pgtablePages();
        int child = k.fork(pa).pid();
        assertEquals(tablesOf(pa, child), a.pgtablePages(), "the child's tables are charged too");
        assertTrue(tablesOf(child) > 0);
        k.vm.munmap(pa, base, 512 * PAGE);
        assertEquals(tablesOf(pa, child), a.pgtablePages(), "munmap frees the parent's tables of that range");
        k.exit(child);
        assertEquals(tablesOf(pa), a.pgtablePages(), "exit uncharges the child's tables");
        k.exit(pa);
        assertEquals(0, a.pgtablePages());
        assertEquals(0, k.rootMemcg().pgtablePages(), "the unlimited root reports none");
        assertTrue(frames > 0);
    }

    @Test
    void munmapAndExitUncharge() throws Exception {
        tenantA(1024, 1024);
        long base = anon(pa, 64);
        for (int i = 0; i < 64; i++) {
            write(pa, base + i * PAGE, 1);
        }
        int mfd = k.memfdCreate(pa, "m", 0);
        k.pwrite(pa, mfd, 0, new byte[8 * (int) PAGE]);
        k.pwrite(pa, mfd, 0, new byte[] {1});
        assertTrue(k.memcgStat(a).memoryCurrent() >= 64 * PAGE);
        k.vm.madvise(pa, base, 16 * PAGE, MADV_PAGEOUT);
        assertEquals(16 * PAGE, k.memcgStat(a).swapCurrent(), "MADV_PAGEOUT charges A's swap");
        k.vm.munmap(pa, base, 64 * PAGE);
        assertEquals(0, k.memcgStat(a).swapCurrent(), "munmap frees the swap slots and uncharges them");
        assertTrue(k.memcgStat(a).memoryCurrent() > 0, "the memfd's page cache is still charged");
        uffd(pa);
        k.exit(pa);
        Kernel.MemcgStat st = k.memcgStat(a);
        assertEquals(0, st.memoryCurrent());
        assertEquals(0, st.swapCurrent());
        assertEquals(0, st.mapCount());
        assertEquals(0, st.uffds());
        assertEquals(0, k.rootMemcg().memoryCurrent() - k.memcgStat(b).memoryCurrent(), "root = sum of children");
    }

    @Test
    void hugetlbLimit() throws Exception {
        tenantA(1024, 0, PMD_SIZE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE,
                Integer.MAX_VALUE);
        long h = k.vm.mmap(pa, 0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        assertTrue(write(pa, h, 1).succeeded());
        assertEquals(PMD_SIZE, k.memcgStat(a).hugetlbCurrent());
        assertTrue(k.memcgStat(a).memoryCurrent() < PMD_SIZE,
                "hugetlb is charged to the hugetlb controller only (memory.current has just the page table)");
        AccessResult r = write(pa, h + PMD_SIZE, 1);
        assertEquals(SIGBUS, r.signal(), "a second huge page is over A's hugetlb max");
        assertEquals(1, k.hstate(PMD_SIZE).resvHugepages(), "the refused fault left its reservation in place");
        long hb = k.vm.mmap(pb, 0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1,
                0);
        assertTrue(write(pb, hb, 1).succeeded());
        assertTrue(write(pb, hb + PMD_SIZE, 1).succeeded(), "B gets its huge pages");
        k.vm.munmap(pa, h, 2 * PMD_SIZE);
        assertEquals(0, k.memcgStat(a).hugetlbCurrent());
    }

    /** A shrinking MREMAP_FIXED move unmaps the old tail first (mremap_to()): its pages are freed and uncharged. */
    @Test
    void mremapFixedShrinkFreesTheTail() throws Exception {
        tenantA(1024, 0);
        long src = anon(pa, 4);
        for (int i = 0; i < 4; i++) {
            assertTrue(write(pa, src + i * PAGE, 10 + i).succeeded());
        }
        long before = k.memcgStat(a).memoryCurrent();
        long dst = anon(pa, 8) + 4 * PAGE;
        assertEquals(dst, k.vm.mremap(pa, src, 4 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst));
        assertEquals(10, read(pa, dst));
        assertEquals(11, read(pa, dst + PAGE));
        assertEquals(2, k.task(pa).mm().rssAnonPages());
        assertTrue(k.memcgStat(a).memoryCurrent() <= before - 2 * PAGE, "the tail's two pages were uncharged");
    }

    @Test
    void mappingLimitIsEnomemLikeMaxMapCount() {
        tenantA(1024, 0, Long.MAX_VALUE, 8, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE,
                Integer.MAX_VALUE);
        long first = 0;
        for (int i = 0; i < 8; i++) {
            // alternating protections keep neighbours from merging
            long addr = k.vm.mmap(pa, 0, 4 * PAGE, i % 2 == 0 ? PROT_READ : PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            first = i == 0 ? addr : first;
        }
        assertEquals(8, k.memcgStat(a).mapCount());
        LinuxException e = assertThrows(LinuxException.class, () -> anon(pa, 1));
        assertEquals(Errno.ENOMEM, e.errno());
        assertTrue(e.isQuota());
        long any = k.maps(pa).get(0).start();
        LinuxException split = assertThrows(LinuxException.class,
                () -> k.vm.mprotect(pa, any + PAGE, PAGE, PROT_NONE));
        assertEquals(Errno.ENOMEM, split.errno(), "a split at the limit is ENOMEM, as __split_vma()");
        for (int i = 0; i < 32; i++) {
            anon(pb, 1 + i % 3);
            k.vm.mmap(pb, 0, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        }
        k.vm.munmap(pa, any, 4 * PAGE);
        anon(pa, 1); // room again
    }

    @Test
    void uffdAndRegisteredRangeLimits() {
        tenantA(1024, 0, Long.MAX_VALUE, Integer.MAX_VALUE, 2, 2, Integer.MAX_VALUE, Integer.MAX_VALUE);
        int f1 = uffd(pa);
        uffd(pa);
        LinuxException e = assertThrows(LinuxException.class, () -> k.uffd.userfaultfd(pa, 0, false));
        assertEquals(Errno.EMFILE, e.errno());
        assertTrue(e.isQuota());
        for (int i = 0; i < 2; i++) {
            long r = k.vm.mmap(pa, 0, 4 * PAGE, i % 2 == 0 ? PROT_READ | PROT_WRITE : PROT_READ | PROT_WRITE | PROT_EXEC,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            k.uffd.register(pa, f1, r, 4 * PAGE, UFFDIO_REGISTER_MODE_MISSING);
        }
        long r3 = anon(pa, 4);
        LinuxException reg = assertThrows(LinuxException.class,
                () -> k.uffd.register(pa, f1, r3, 4 * PAGE, UFFDIO_REGISTER_MODE_MISSING));
        assertEquals(Errno.ENOMEM, reg.errno());
        for (int i = 0; i < 5; i++) {
            uffd(pb);
        }
        k.close(pa, f1);
        int f3 = uffd(pa); // closing one gave the room back, and dropped its registrations
        k.uffd.register(pa, f3, r3, 4 * PAGE, UFFDIO_REGISTER_MODE_MISSING);
    }

    @Test
    void pendingFaultLimitIsEagainAndOtherTenantKeepsFaulting() throws Exception {
        tenantA(1024, 0, Long.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, 1, 1);
        int fa = uffd(pa);
        long base = anon(pa, 4);
        k.uffd.register(pa, fa, base, 4 * PAGE, UFFDIO_REGISTER_MODE_MISSING);
        CompletableFuture<AccessResult> blocked = CompletableFuture.supplyAsync(() -> {
            try {
                return write(pa, base, 5);
            } catch (InterruptedException ex) {
                throw new IllegalStateException(ex);
            }
        }, THREADS);
        while (k.memcgStat(a).pendingFaults() == 0) {
            assertFalse(blocked.isDone(), () -> "the fault should block: " + blocked.join());
            Thread.sleep(5);
        }
        LinuxException e = assertThrows(LinuxException.class, () -> write(pa, base + PAGE, 1));
        assertEquals(Errno.EAGAIN, e.errno());
        assertTrue(e.isQuota());
        // B's faults queue regardless
        int fb = uffd(pb);
        long bb = anon(pb, 4);
        k.uffd.register(pb, fb, bb, 4 * PAGE, UFFDIO_REGISTER_MODE_MISSING);
        CompletableFuture<AccessResult> bFaults = CompletableFuture.supplyAsync(() -> {
            try {
                return write(pb, bb, 6);
            } catch (InterruptedException ex) {
                throw new IllegalStateException(ex);
            }
        }, THREADS);
        while (k.memcgStat(b).pendingFaults() == 0) {
            Thread.sleep(5);
        }
        k.uffd.copy(pa, fa, base, new byte[(int) PAGE], 0);
        k.uffd.copy(pb, fb, bb, new byte[(int) PAGE], 0);
        assertTrue(blocked.get(10, TimeUnit.SECONDS).succeeded());
        assertTrue(bFaults.get(10, TimeUnit.SECONDS).succeeded());
        assertEquals(0, k.memcgStat(a).pendingFaults());
        assertEquals(0, k.memcgStat(a).blockedThreads());
    }

    // ------------------------------------------------------------------ hugetlb reservations (hugetlb.rsvd)

    static final long HP = PMD_SIZE;

    /** Tenant A limited only in hugetlb.max and hugetlb.rsvd.max (the machine's pool is 4 huge pages). */
    void tenantAHugetlb(long hugetlbBytes, long rsvdBytes) {
        a = k.memcg("a", new MemCgroup.Limits(1024 * PAGE, 0, hugetlbBytes, rsvdBytes, Integer.MAX_VALUE,
                Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE));
        pa = k.createProcess("a", 0, true, "a", a).pid();
    }

    long hugeAnon(int pid, long pages, int extraFlags) {
        return k.vm.mmap(pid, 0, pages * HP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB
                | extraFlags, -1, 0);
    }

    long resvPages() {
        return k.hstate(HP).resvHugepages();
    }

    static void assertQuotaEnomem(LinuxException e) {
        assertEquals(Errno.ENOMEM, e.errno());
        assertTrue(e.isQuota(), "a tenant limit, not the machine's pool: " + e);
    }

    /**
     * A private MAP_HUGETLB mapping charges its whole length to hugetlb.rsvd at mmap (hugetlb_reserve_pages()); an
     * mmap over hugetlb.rsvd.max is ENOMEM. A fault consumes the pool reservation but keeps the rsvd charge, and
     * charges hugetlb.current: nothing more. munmap uncharges the unmapped length (hugetlb_vm_op_close()).
     */
    @Test
    void privateHugetlbReservationIsChargedAtMmapAndReleasedByMunmap() throws Exception {
        tenantAHugetlb(4 * HP, 2 * HP);
        long h = hugeAnon(pa, 2, 0);
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(0, k.memcgStat(a).hugetlbCurrent(), "nothing faulted yet");
        assertEquals(2, resvPages());
        assertQuotaEnomem(assertThrows(LinuxException.class, () -> hugeAnon(pa, 1, 0)));
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent(), "the failed mmap charged nothing");
        assertEquals(2, resvPages(), "and reserved nothing");
        assertEquals(1, k.maps(pa).size());

        assertTrue(write(pa, h, 1).succeeded());
        assertTrue(write(pa, h + HP, 2).succeeded());
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent(), "a reserved fault is not charged to rsvd again");
        assertEquals(2 * HP, k.memcgStat(a).hugetlbCurrent());
        assertEquals(0, resvPages(), "the faults consumed the pool's reservations");

        k.vm.munmap(pa, h + HP, HP);
        assertEquals(HP, k.memcgStat(a).hugetlbRsvdCurrent(), "the unmapped half is uncharged, faulted or not");
        assertEquals(HP, k.memcgStat(a).hugetlbCurrent());
        long h2 = hugeAnon(pa, 1, 0); // room again
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent());
        k.vm.munmap(pa, h, HP);
        k.vm.munmap(pa, h2, HP);
        assertEquals(0, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(0, k.memcgStat(a).hugetlbCurrent());
        assertEquals(0, resvPages());
        assertEquals(0, k.rootMemcg().hugetlbRsvdCurrent());
    }

    /**
     * A shared hugetlbfs mapping charges only the file pages its resv_map does not hold yet (region_chg()); the
     * charge belongs to the file's regions, so it outlives munmap and goes with a hole punch, a truncate or the
     * file's last reference (region_del()).
     */
    @Test
    void sharedHugetlbReservationStaysWithTheFileUntilPunchTruncateOrClose() throws Exception {
        tenantAHugetlb(4 * HP, 3 * HP);
        int fd = k.memfdCreate(pa, "h", MFD_HUGETLB);
        k.ftruncate(pa, fd, 4 * HP);
        long m1 = k.vm.mmap(pa, 0, 3 * HP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assertEquals(3 * HP, k.memcgStat(a).hugetlbRsvdCurrent());
        long m2 = k.vm.mmap(pa, 0, 2 * HP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, HP);
        assertEquals(3 * HP, k.memcgStat(a).hugetlbRsvdCurrent(), "pages already reserved are not charged again");
        assertEquals(3, resvPages());
        assertQuotaEnomem(assertThrows(LinuxException.class,
                () -> k.vm.mmap(pa, 0, 4 * HP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)));
        assertEquals(3 * HP, k.memcgStat(a).hugetlbRsvdCurrent());

        assertTrue(write(pa, m1, 1).succeeded());
        assertEquals(3 * HP, k.memcgStat(a).hugetlbRsvdCurrent(), "the faulted page keeps its region's charge");
        assertEquals(HP, k.memcgStat(a).hugetlbCurrent());
        assertEquals(2, resvPages());
        k.vm.munmap(pa, m1, 3 * HP);
        k.vm.munmap(pa, m2, 2 * HP);
        assertEquals(3 * HP, k.memcgStat(a).hugetlbRsvdCurrent(), "munmap leaves the file's reservations");
        assertEquals(2, resvPages());

        k.fallocate(pa, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, HP, HP);
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent(), "the punched reserved page is uncharged");
        assertEquals(1, resvPages());
        k.ftruncate(pa, fd, HP);
        assertEquals(HP, k.memcgStat(a).hugetlbRsvdCurrent(), "truncate drops the regions beyond the new size");
        assertEquals(0, resvPages());
        assertEquals(HP, k.memcgStat(a).hugetlbCurrent(), "page 0 is still in the file");
        k.fallocate(pa, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, HP);
        assertEquals(0, k.memcgStat(a).hugetlbRsvdCurrent(), "punching the faulted page drops its region too");
        assertEquals(0, k.memcgStat(a).hugetlbCurrent());

        // eviction: the last reference (here the fd, after a mapping went) releases everything
        k.ftruncate(pa, fd, 2 * HP);
        long m3 = k.vm.mmap(pa, 0, 2 * HP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assertTrue(write(pa, m3 + HP, 1).succeeded());
        k.vm.munmap(pa, m3, 2 * HP);
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent());
        k.close(pa, fd);
        assertEquals(0, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(0, k.memcgStat(a).hugetlbCurrent());
        assertEquals(0, resvPages());
    }

    /**
     * Pages allocated without a reservation (MAP_NORESERVE, fallocate of unreserved file pages, a fork child's
     * private mapping, which owns no reservation) are charged to hugetlb.rsvd at allocation (alloc_hugetlb_folio()'s
     * deferred_reserve): over rsvd.max a fault gets SIGBUS and fallocate ENOSPC; freeing the page uncharges.
     */
    @Test
    void unreservedHugePagesAreChargedToRsvdAtFault() throws Exception {
        tenantAHugetlb(4 * HP, 2 * HP);
        long nr = hugeAnon(pa, 3, MAP_NORESERVE);
        assertEquals(0, k.memcgStat(a).hugetlbRsvdCurrent(), "MAP_NORESERVE reserves nothing");
        assertTrue(write(pa, nr, 1).succeeded());
        assertEquals(HP, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(HP, k.memcgStat(a).hugetlbCurrent());
        int fd = k.memfdCreate(pa, "h", MFD_HUGETLB);
        k.fallocate(pa, fd, 0, 0, HP);
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent(), "fallocate of an unreserved file page");
        LinuxException fa = assertThrows(LinuxException.class, () -> k.fallocate(pa, fd, 0, HP, HP));
        assertEquals(Errno.ENOSPC, fa.errno());
        assertEquals(a, k.lastChargeRefusal());
        assertEquals(SIGBUS, write(pa, nr + HP, 1).signal(), "over hugetlb.rsvd.max the fault is SIGBUS");
        k.close(pa, fd);
        assertEquals(HP, k.memcgStat(a).hugetlbRsvdCurrent());
        k.vm.munmap(pa, nr, 3 * HP);
        assertEquals(0, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(0, k.memcgStat(a).hugetlbCurrent());

        // fork: the child owns no reservation, nothing is charged for it; its own faults are charged as they go
        long p = hugeAnon(pa, 2, 0);
        assertTrue(write(pa, p, 1).succeeded());
        int child = k.fork(pa).pid();
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent(), "fork charges no reservation to the child");
        assertEquals(1, read(child, p));
        assertEquals(SIGBUS, write(child, p + HP, 1).signal(),
                "the child's unreserved fault needs room in hugetlb.rsvd.max, which the parent's reservation fills");
        k.exit(child);
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(HP, k.memcgStat(a).hugetlbCurrent());
        k.exit(pa);
        assertEquals(0, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(0, k.memcgStat(a).hugetlbCurrent());
        assertEquals(0, resvPages());
    }

    /** A fork child's unreserved faults are charged to rsvd and uncharged when its pages go. */
    @Test
    void forkChildFaultsAreChargedToRsvdAndUnchargedAtExit() throws Exception {
        tenantAHugetlb(4 * HP, 3 * HP);
        long p = hugeAnon(pa, 2, 0);
        assertTrue(write(pa, p, 1).succeeded());
        int child = k.fork(pa).pid();
        assertTrue(write(child, p + HP, 2).succeeded());
        assertEquals(3 * HP, k.memcgStat(a).hugetlbRsvdCurrent(), "the parent's 2 reserved + the child's fault");
        assertEquals(2 * HP, k.memcgStat(a).hugetlbCurrent());
        assertEquals(1, resvPages(), "the parent's second page is still reserved for it");
        k.exit(child);
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(HP, k.memcgStat(a).hugetlbCurrent());
        assertTrue(write(pa, p + HP, 3).succeeded(), "the parent's reservation is intact");
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent());
    }

    /**
     * The starvation the limit exists for: A may reserve up to its hugetlb.rsvd.max and no further, without faulting
     * anything; B reserves and faults the rest of the pool. The pool running out is ENOMEM without the quota mark.
     */
    @Test
    void tenantCannotReserveThePoolAwayFromAnother() throws Exception {
        tenantAHugetlb(Long.MAX_VALUE, 2 * HP);
        hugeAnon(pa, 2, 0);
        assertQuotaEnomem(assertThrows(LinuxException.class, () -> hugeAnon(pa, 1, 0)));
        int fd = k.memfdCreate(pa, "h", MFD_HUGETLB);
        k.ftruncate(pa, fd, 2 * HP);
        assertQuotaEnomem(assertThrows(LinuxException.class,
                () -> k.vm.mmap(pa, 0, HP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)));
        assertEquals(2, resvPages());

        long hb = hugeAnon(pb, 2, 0);
        assertTrue(write(pb, hb, 1).succeeded());
        assertTrue(write(pb, hb + HP, 1).succeeded(), "B gets the half of the pool A could not take");
        assertEquals(2 * HP, k.memcgStat(b).hugetlbRsvdCurrent());
        LinuxException pool = assertThrows(LinuxException.class, () -> hugeAnon(pb, 1, 0));
        assertEquals(Errno.ENOMEM, pool.errno());
        assertFalse(pool.isQuota(), "the pool itself is exhausted: not a quota");
        assertEquals(4 * HP, k.rootMemcg().hugetlbRsvdCurrent(), "the root counts both tenants");
    }

    /**
     * mremap moves a private reservation and its charge with the VMA (clear_vma_resv_huge_pages()); a shrinking
     * move unmaps the old tail first (mremap_to()), which uncharges it.
     */
    @Test
    void mremapMovesThePrivateReservationCharge() throws Exception {
        tenantAHugetlb(4 * HP, 3 * HP);
        long h = hugeAnon(pa, 3, 0);
        assertTrue(write(pa, h, 7).succeeded());
        long dst = k.vm.mmap(pa, 0, 8 * HP, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        long target = ((dst + HP - 1) & -HP) + HP;
        long moved = k.vm.mremap(pa, h, 3 * HP, 2 * HP, MREMAP_MAYMOVE | MREMAP_FIXED, target);
        assertEquals(target, moved);
        assertEquals(2 * HP, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(7, read(pa, moved));
        assertEquals(1, resvPages());
        k.vm.munmap(pa, moved, 2 * HP);
        assertEquals(0, k.memcgStat(a).hugetlbRsvdCurrent());
        assertEquals(0, resvPages());
    }
}
