package io.uffdemu.bench;

import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.MemCgroup;
import io.uffdemu.server.mm.Pagemap;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Bulk operations and scale figures of the emulation core (issue 9, items 3 and 4). */
public final class EmulatedBulk {
    private EmulatedBulk() {
    }

    private static Kernel kernel(long memory) {
        return new Kernel(new Kernel.Config(memory, 0, 0, 0, false));
    }

    /** Same operations as uffd_bulk_bench.c: op → microseconds. */
    public static Map<String, Double> bulk(long len) {
        Map<String, Double> out = new LinkedHashMap<>();
        out.put("wp-populated", wp(len, true));
        settle();
        out.put("wp-unpopulated", wp(len, false));
        settle();
        out.put("copy-4k", copy(len, Linux.PAGE_SIZE));
        settle();
        out.put("copy-4k-reused", copyReused(len));
        settle();
        out.put("copy-2m", copy(len, Linux.PMD_SIZE));
        settle();
        for (int i = 0; i < 3; i++) {
            fork(64L << 20); // JIT warm-up of the fork path: a 1 GiB fork is a single call, timed once
        }
        settle();
        out.put("fork-1g", fork(len));
        settle();
        out.put("pagemap-scan", scan(len));
        return out;
    }

    /**
     * Lets the previous case's kernel go before the next case: its frame slabs (off-heap, see FramePool) are
     * unmapped only once the pool is unreachable and collected. Without this the next case's slabs are fresh host
     * memory on top of them, which is slow on this VM (copy-2m right after copy-4k took 2.7 s, 0.37 s after this).
     * The C program unmaps each case's memory before the next, so both sides start each case alike.
     */
    private static void settle() {
        for (int i = 0; i < 3; i++) {
            System.gc();
            try {
                Thread.sleep(100); // the cleaner thread munmaps the collected slabs
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private static double wp(long len, boolean populate) {
        Kernel k = kernel(len + (64L << 20));
        int pid = k.createProcess("b", 0, true, "b").pid();
        long a = k.vm.mmap(pid, 0, len, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        int fd = k.uffd.userfaultfd(pid, Linux.O_NONBLOCK, false);
        k.uffd.api(pid, fd, Linux.UFFD_API, populate ? 0 : Linux.UFFD_FEATURE_WP_UNPOPULATED);
        if (populate) {
            k.vm.madvise(pid, a, len, Linux.MADV_POPULATE_WRITE);
        }
        k.uffd.register(pid, fd, a, len, Linux.UFFDIO_REGISTER_MODE_WP);
        long t0 = System.nanoTime();
        k.uffd.writeprotect(pid, fd, a, len, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
        return (System.nanoTime() - t0) / 1e3;
    }

    /**
     * copy-4k again in the same emulated machine after a first untimed pass was unmapped: the frames come from
     * content slabs the host has already handed over (FramePool keeps them), as the kernel's pages come from its
     * free lists; on a VM where fresh host memory is dear (docs/benchmarks.md item 18) this is the COPY alone.
     */
    private static double copyReused(long len) {
        Kernel k = kernel(len + (64L << 20));
        int pid = k.createProcess("b", 0, true, "b").pid();
        copyLoop(k, pid, len, Linux.PAGE_SIZE, true);
        return copyLoop(k, pid, len, Linux.PAGE_SIZE, false);
    }

    /** UFFDIO_COPY of every page of an anonymous MISSING range, {@code step} bytes per call (4 KiB or 2 MiB). */
    private static double copy(long len, long step) {
        Kernel k = kernel(len + (64L << 20));
        int pid = k.createProcess("b", 0, true, "b").pid();
        return copyLoop(k, pid, len, step, false);
    }

    /** One timed COPY pass over a fresh registered mapping of {@code pid}; {@code unmap}: munmap it afterwards. */
    private static double copyLoop(Kernel k, int pid, long len, long step, boolean unmap) {
        long a = k.vm.mmap(pid, 0, len, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        int fd = k.uffd.userfaultfd(pid, Linux.O_NONBLOCK, false);
        k.uffd.api(pid, fd, Linux.UFFD_API, 0);
        k.uffd.register(pid, fd, a, len, Linux.UFFDIO_REGISTER_MODE_MISSING);
        byte[] src = new byte[(int) step];
        java.util.Arrays.fill(src, (byte) 7);
        long t0 = System.nanoTime();
        for (long off = 0; off < len; off += step) {
            if (k.uffd.copy(pid, fd, a + off, src, Linux.UFFDIO_COPY_MODE_DONTWAKE) != step) {
                throw new IllegalStateException("short UFFDIO_COPY at offset " + off);
            }
        }
        double us = (System.nanoTime() - t0) / 1e3;
        if (unmap) {
            k.vm.munmap(pid, a, len);
            k.close(pid, fd);
        }
        return us;
    }

    /**
     * fork(2) of a process with {@code len} bytes of populated private anonymous memory: the time of
     * {@link Kernel#fork} (dup_mmap(): the child maps the same frames, both sides write-protected for COW).
     */
    private static double fork(long len) {
        Kernel k = kernel(len + (64L << 20));
        int pid = k.createProcess("b", 0, true, "b").pid();
        long a = k.vm.mmap(pid, 0, len, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        k.vm.madvise(pid, a, len, Linux.MADV_POPULATE_WRITE);
        long t0 = System.nanoTime();
        int child = k.fork(pid).pid();
        double us = (System.nanoTime() - t0) / 1e3;
        k.exit(child);
        return us;
    }

    private static double scan(long len) {
        Kernel k = kernel(len + (64L << 20));
        int pid = k.createProcess("b", 0, true, "b").pid();
        long a = k.vm.mmap(pid, 0, len, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        k.vm.madvise(pid, a, len, Linux.MADV_POPULATE_WRITE);
        long t0 = System.nanoTime();
        k.pagemap.scan(pid, new Pagemap.ScanArg(a, a + len, 0, 0, 0, 0, Linux.PM_SCAN_CATEGORIES, 0, 0));
        return (System.nanoTime() - t0) / 1e3;
    }

    private static long heapUsed() {
        for (int i = 0; i < 3; i++) {
            System.gc();
        }
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    /** Faults (a write to each of 40 000 fresh pages) in a memory-limited memcg that has {@code processes}. */
    static double limitedMemcgFaultNanos(Kernel k, int processes) throws InterruptedException {
        MemCgroup cg = k.memcg("limited-" + processes, new MemCgroup.Limits(1L << 30, 0, Long.MAX_VALUE,
                Long.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE,
                Integer.MAX_VALUE));
        byte[] one = {7};
        int first = -1;
        for (int i = 0; i < processes; i++) {
            int p = k.createProcess("m" + i, 0, false, "m", cg).pid();
            long a = k.vm.mmap(p, 0, Linux.PAGE_SIZE, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
            k.faults.access(p, a, 1, true, one, AccessMode.USER, Long.MAX_VALUE); // one page and one table each
            first = first < 0 ? p : first;
        }
        int pages = 40_000;
        long a = k.vm.mmap(first, 0, pages * Linux.PAGE_SIZE, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        for (int p = 0; p < 2_000; p++) { // warm-up, then the measured faults on pages not touched yet
            k.faults.access(first, a + p * Linux.PAGE_SIZE, 1, true, one, AccessMode.USER, Long.MAX_VALUE);
        }
        long t0 = System.nanoTime();
        for (int p = 2_000; p < pages; p++) {
            k.faults.access(first, a + p * Linux.PAGE_SIZE, 1, true, one, AccessMode.USER, Long.MAX_VALUE);
        }
        double perFault = (System.nanoTime() - t0) / (double) (pages - 2_000);
        k.vm.munmap(first, a, pages * Linux.PAGE_SIZE);
        return perFault;
    }

    /** Scale figures: name → value (unit in the name). */
    public static Map<String, Double> scale(long residentPages, int processes, int blockedThreads)
            throws InterruptedException {
        Map<String, Double> out = new LinkedHashMap<>();
        long empty = heapUsed();
        Kernel k = kernel(residentPages * Linux.PAGE_SIZE + (256L << 20));
        int pid = k.createProcess("b", 0, true, "b").pid();
        long len = residentPages * Linux.PAGE_SIZE;
        long before = heapUsed();
        long a = k.vm.mmap(pid, 0, len, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        k.vm.madvise(pid, a, len, Linux.MADV_POPULATE_WRITE);
        long after = heapUsed();
        out.put("metadata-bytes-per-resident-page", (after - before) / (double) residentPages);
        out.put("resident-pages", (double) residentPages);
        // the populated pages read as zeros and hold no contents yet; give each one (a non-zero byte per page, so
        // its frame's contents are stored), then heap and off-heap at that many resident pages with contents
        byte[] one = {7};
        for (long p = 0; p < residentPages; p++) {
            try {
                k.faults.access(pid, a + p * Linux.PAGE_SIZE, 1, true, one, AccessMode.USER, Long.MAX_VALUE);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw e;
            }
        }
        String at = residentPages % 1_000_000 == 0 ? residentPages / 1_000_000 + "M" : Long.toString(residentPages);
        out.put("heap-bytes-at-" + at + "-pages", (double) (heapUsed() - empty)); // the whole kernel's heap
        out.put("offheap-bytes-at-" + at + "-pages", (double) k.frameContentBytes());

        long h0 = heapUsed();
        long t0 = System.nanoTime();
        long big = k.vm.mmap(pid, 0, 1L << 40, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS | Linux.MAP_NORESERVE, -1, 0);
        out.put("mmap-1TiB-us", (System.nanoTime() - t0) / 1e3);
        out.put("mmap-1TiB-heap-bytes", (double) (heapUsed() - h0));
        k.vm.munmap(pid, big, 1L << 40);

        h0 = heapUsed();
        t0 = System.nanoTime();
        for (int i = 0; i < processes; i++) {
            int p = k.createProcess("p" + i, 0, false, "b").pid();
            k.vm.mmap(p, 0, 1 << 20, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        }
        out.put("create-" + processes + "-processes-us", (System.nanoTime() - t0) / 1e3);
        out.put("heap-bytes-per-process", (heapUsed() - h0) / (double) processes);

        // page allocations of a tenant (a memcg with memory.max, as every tenant of the server has) with many
        // processes: a charge counts the memcg's page-table pages, which must not cost a walk of its processes
        limitedMemcgFaultNanos(k, 1); // JIT warm-up of the fault path, so that the two figures compare
        double single = limitedMemcgFaultNanos(k, 1);
        double many = limitedMemcgFaultNanos(k, processes);
        out.put("fault-ns-limited-memcg-1-process", single);
        out.put("fault-ns-limited-memcg-" + processes + "-processes", many);
        out.put("fault-cost-ratio-" + processes + "-processes-to-1", many / single);

        // blocked threads: each faults a distinct MISSING page and parks
        long blen = (long) blockedThreads * Linux.PAGE_SIZE;
        long ba = k.vm.mmap(pid, 0, blen, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        int fd = k.uffd.userfaultfd(pid, Linux.O_NONBLOCK, false);
        k.uffd.api(pid, fd, Linux.UFFD_API, 0);
        k.uffd.register(pid, fd, ba, blen, Linux.UFFDIO_REGISTER_MODE_MISSING);
        h0 = heapUsed();
        t0 = System.nanoTime();
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < blockedThreads; i++) {
            long addr = ba + i * Linux.PAGE_SIZE;
            ts.add(Thread.ofVirtual().start(() -> {
                try {
                    k.faults.access(pid, addr, 1, false, null, AccessMode.USER, Long.MAX_VALUE);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));
        }
        while (k.faultGauges()[1] < blockedThreads) {
            Thread.sleep(1);
        }
        out.put("park-" + blockedThreads + "-threads-us", (System.nanoTime() - t0) / 1e3);
        out.put("heap-bytes-per-blocked-thread", (heapUsed() - h0) / (double) blockedThreads);
        t0 = System.nanoTime();
        k.uffd.zeropage(pid, fd, ba, blen, 0);
        for (Thread t : ts) {
            t.join();
        }
        out.put("wake-" + blockedThreads + "-threads-us", (System.nanoTime() - t0) / 1e3);
        return out;
    }
}
