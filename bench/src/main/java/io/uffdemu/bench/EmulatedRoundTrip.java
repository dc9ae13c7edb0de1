package io.uffdemu.bench;

import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.Task;
import io.uffdemu.server.mm.UffdMsg;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.HdrHistogram.Recorder;

/**
 * The in-process emulated fault round trip, shaped like {@code uffd_kernel_bench.c}: T faulting threads touch
 * one byte of each page of their slice; one handler thread reads messages (up to 64 per read) and resolves
 * each (UFFDIO_COPY of the page for MISSING, UFFDIO_WRITEPROTECT clear for WP). The hugetlb cases are
 * {@code uffd_hugetlb_bench.c}'s: a MFD_HUGETLB memfd of 2 MiB pages, mapped shared. Faulting and handler threads
 * are virtual threads (perf-notes: platform-thread wake-ups cost as much as a kernel round trip here).
 */
public final class EmulatedRoundTrip {
    private EmulatedRoundTrip() {
    }

    /** One of the yardstick's cases. */
    public enum Case {
        ANON_MISSING("anon-missing", false, false, false), SHMEM_MISSING("shmem-missing", true, false, false),
        ANON_WP("anon-wp", false, true, false), SHMEM_WP("shmem-wp", true, true, false),
        HUGETLB_MISSING("hugetlb-missing", true, false, true), HUGETLB_WP("hugetlb-wp", true, true, true);

        final String label;
        /** A shared memfd mapping (shmem, or hugetlbfs when {@link #hugetlb}). */
        final boolean shmem;
        final boolean wp;
        /** 2 MiB hugetlbfs pages (a MFD_HUGETLB memfd); a "page" of the case is one huge page. */
        final boolean hugetlb;

        Case(String label, boolean shmem, boolean wp, boolean hugetlb) {
            this.label = label;
            this.shmem = shmem;
            this.wp = wp;
            this.hugetlb = hugetlb;
        }

        /** The size of one of the case's pages (one fault each). */
        public long pageSize() {
            return hugetlb ? Linux.PMD_SIZE : Linux.PAGE_SIZE;
        }

        /** memfd_create flags of the case's memfd. */
        int memfdFlags() {
            // 2 MiB pages whatever the host's default huge page size (MFD_HUGE_2MB)
            return hugetlb ? Linux.MFD_HUGETLB | (21 << Linux.MFD_HUGE_SHIFT) : 0;
        }

        public String label() {
            return label;
        }

        public static Case of(String label) {
            for (Case c : values()) {
                if (c.label.equals(label)) {
                    return c;
                }
            }
            throw new IllegalArgumentException("unknown case " + label);
        }
    }

    /** faults/s and the round-trip latency distribution (per faulting access, in nanoseconds). */
    public record Result(Case c, int threads, long pages, double faultsPerSecond, org.HdrHistogram.Histogram latency) {
        public double usPerFault() {
            return 1e6 / faultsPerSecond;
        }
    }

    /**
     * The emulated machine, kept across runs as the real one is: each run's process exits and frees its pages,
     * which the next run reuses, as the yardstick's runs reuse pages the kernel has handed out before. A fresh
     * machine per run made every run pay for host memory never touched before (on these VMs the first touch of
     * a page since boot is a hypervisor fault: a 2 MiB hugetlb COPY took 3.4 ms, 0.3 ms once the memory had been
     * used).
     */
    private static Kernel machine;
    private static long machineMemory;
    private static final long MACHINE_MEMORY = 4L << 30;

    private static synchronized Kernel machine(long memory, long hugePages) {
        if (machine == null || machineMemory < memory) {
            // sized for every case of a usual table at once (memory the emulator has not used costs nothing), so
            // that one machine serves them all
            long m = Math.max(memory, MACHINE_MEMORY);
            machine = new Kernel(new Kernel.Config(m, 0, 0, 0, false));
            machineMemory = m;
        }
        machine.setSysctl("vm/nr_hugepages", Long.toString(hugePages));
        return machine;
    }

    /** {@code threads} at most {@code pages} (each thread touches at least one page). */
    public static Result run(Case c, long pages, int threads) throws Exception {
        threads = (int) Math.min(threads, pages);
        Kernel k = machine(pages * c.pageSize() * 2 + (64L << 20), c.hugetlb ? pages : 0);
        Task t = k.createProcess("bench", 0, true, "bench");
        int pid = t.pid();
        try {
            return runIn(k, pid, c, pages, threads);
        } finally {
            k.exit(pid); // its pages go back to the machine's free lists, for the next run
        }
    }

    private static Result runIn(Kernel k, int pid, Case c, long pages, int threads) throws Exception {
        long ps = c.pageSize();
        long len = pages * ps;
        long addr;
        if (c.shmem) {
            int mfd = k.memfdCreate(pid, "bench", c.memfdFlags());
            k.ftruncate(pid, mfd, len);
            addr = k.vm.mmap(pid, 0, len, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED, mfd, 0);
            k.close(pid, mfd);
        } else {
            addr = k.vm.mmap(pid, 0, len, Linux.PROT_READ | Linux.PROT_WRITE,
                    Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        }
        int fd = k.uffd.userfaultfd(pid, Linux.O_CLOEXEC | Linux.O_NONBLOCK, false);
        k.uffd.api(pid, fd, Linux.UFFD_API, c.wp ? Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0);
        if (c.wp) {
            k.vm.madvise(pid, addr, len, Linux.MADV_POPULATE_WRITE);
        }
        k.uffd.register(pid, fd, addr, len, c.wp ? Linux.UFFDIO_REGISTER_MODE_WP : Linux.UFFDIO_REGISTER_MODE_MISSING);
        if (c.wp) {
            k.uffd.writeprotect(pid, fd, addr, len, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
        }
        byte[] src = new byte[(int) ps];
        java.util.Arrays.fill(src, (byte) 7);
        AtomicBoolean done = new AtomicBoolean();
        Thread handler = Thread.ofVirtual().name("bench-handler").start(() -> {
            try {
                while (!done.get()) {
                    List<UffdMsg> msgs = k.uffd.read(pid, fd, 64, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50));
                    for (UffdMsg m : msgs) {
                        if (m instanceof UffdMsg.Pagefault pf) {
                            long a = pf.address() & ~(ps - 1);
                            if (c.wp) {
                                k.uffd.writeprotect(pid, fd, a, ps, 0);
                            } else {
                                try {
                                    k.uffd.copy(pid, fd, a, src, 0);
                                } catch (io.uffdemu.server.mm.LinuxException e) {
                                    if (e.errno() != io.uffdemu.server.mm.Errno.EEXIST) {
                                        throw e;
                                    }
                                }
                            }
                        }
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        Recorder rec = new Recorder(3);
        long per = pages / threads;
        List<Thread> touchers = new ArrayList<>();
        long t0 = System.nanoTime();
        for (int i = 0; i < threads; i++) {
            long from = i * per;
            touchers.add(Thread.ofVirtual().start(() -> {
                byte[] one = {1};
                for (long p = from; p < from + per; p++) {
                    long s = System.nanoTime();
                    try {
                        k.faults.access(pid, addr + p * ps, 1, true, one, AccessMode.USER, Long.MAX_VALUE);
                    } catch (InterruptedException e) {
                        return;
                    }
                    rec.recordValue(System.nanoTime() - s);
                }
            }));
        }
        for (Thread th : touchers) {
            th.join();
        }
        long t1 = System.nanoTime();
        done.set(true);
        handler.join();
        long n = per * threads;
        return new Result(c, threads, n, n / ((t1 - t0) / 1e9), rec.getIntervalHistogram());
    }
}
