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
 * each (UFFDIO_COPY of 4 KiB for MISSING, UFFDIO_WRITEPROTECT clear for WP). Faulting and handler threads
 * are virtual threads (perf-notes: platform-thread wake-ups cost as much as a kernel round trip here).
 */
public final class EmulatedRoundTrip {
    private EmulatedRoundTrip() {
    }

    /** One of the yardstick's cases. */
    public enum Case {
        ANON_MISSING("anon-missing", false, false), SHMEM_MISSING("shmem-missing", true, false),
        ANON_WP("anon-wp", false, true), SHMEM_WP("shmem-wp", true, true);

        final String label;
        final boolean shmem;
        final boolean wp;

        Case(String label, boolean shmem, boolean wp) {
            this.label = label;
            this.shmem = shmem;
            this.wp = wp;
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

    public static Result run(Case c, long pages, int threads) throws Exception {
        long len = pages * Linux.PAGE_SIZE;
        Kernel k = new Kernel(new Kernel.Config(len * 2 + (64L << 20), 0, 0, 0, false));
        Task t = k.createProcess("bench", 0, true, "bench");
        int pid = t.pid();
        long addr;
        if (c.shmem) {
            int mfd = k.memfdCreate(pid, "bench", 0);
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
        byte[] src = new byte[(int) Linux.PAGE_SIZE];
        java.util.Arrays.fill(src, (byte) 7);
        AtomicBoolean done = new AtomicBoolean();
        Thread handler = Thread.ofVirtual().name("bench-handler").start(() -> {
            try {
                while (!done.get()) {
                    List<UffdMsg> msgs = k.uffd.read(pid, fd, 64, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50));
                    for (UffdMsg m : msgs) {
                        if (m instanceof UffdMsg.Pagefault pf) {
                            long a = pf.address() & ~(Linux.PAGE_SIZE - 1);
                            if (c.wp) {
                                k.uffd.writeprotect(pid, fd, a, Linux.PAGE_SIZE, 0);
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
                        k.faults.access(pid, addr + p * Linux.PAGE_SIZE, 1, true, one, AccessMode.USER, Long.MAX_VALUE);
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
