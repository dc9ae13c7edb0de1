package io.uffdemu.bench;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.linux.LinuxAvailability;
import io.uffdemu.server.backend.linux.LinuxBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.UffdMsg;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The native backend's fault round trip through the backend SPI (issue 4's benchmark): the same cases as the
 * yardstick, one handler thread doing read(2) and the resolving ioctl through FFM. The faulting threads are
 * platform threads like the yardstick's pthreads (the access blocks in the kernel on the caller), or virtual
 * threads like the gRPC server's calls (each access is handed to one of the backend's access threads and back).
 */
public final class NativeRoundTrip {
    private NativeRoundTrip() {
    }

    /** faults/s, or -1 when the native backend cannot run here (see {@link LinuxAvailability#reason()}). */
    public static double run(EmulatedRoundTrip.Case c, long pages, int threads) throws Exception {
        return run(c, pages, threads, true);
    }

    /**
     * @param platformCallers the faulting threads are platform threads, like the yardstick's pthreads (the access
     *        runs on the caller, which blocks in the kernel); false: virtual threads, as the gRPC server's calls,
     *        so every access is handed to an access thread and back
     */
    public static double run(EmulatedRoundTrip.Case c, long pages, int threads, boolean platformCallers)
            throws Exception {
        if (!LinuxAvailability.isAvailable()) {
            return -1;
        }
        int nthreads = (int) Math.min(threads, pages);
        long ps = c.pageSize();
        long len = pages * ps;
        try (MemoryBackend b = new LinuxBackend()) {
            int pid = b.createProcess("bench", 0, true, "bench").pid();
            long addr;
            if (c.shmem) {
                int mfd = b.memfdCreate(pid, "bench", c.memfdFlags());
                b.ftruncate(pid, mfd, len);
                addr = b.mmap(pid, 0, len, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED, mfd, 0);
                b.close(pid, mfd);
            } else {
                addr = b.mmap(pid, 0, len, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS,
                        -1, 0);
            }
            int fd = b.userfaultfd(pid, Linux.O_CLOEXEC | Linux.O_NONBLOCK, false);
            b.uffdApi(pid, fd, Linux.UFFD_API, c.wp ? Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0);
            if (c.wp) {
                b.madvise(pid, addr, len, Linux.MADV_POPULATE_WRITE);
            }
            b.uffdRegister(pid, fd, addr, len, c.wp ? Linux.UFFDIO_REGISTER_MODE_WP : Linux.UFFDIO_REGISTER_MODE_MISSING);
            if (c.wp) {
                b.uffdWriteprotect(pid, fd, addr, len, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
            }
            byte[] src = new byte[(int) ps];
            java.util.Arrays.fill(src, (byte) 7);
            AtomicBoolean done = new AtomicBoolean();
            Thread handler = Thread.ofPlatform().name("bench-native-handler").start(() -> {
                try {
                    while (!done.get()) {
                        for (UffdMsg m : b.uffdRead(pid, fd, 64, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50))) {
                            if (m instanceof UffdMsg.Pagefault pf) {
                                long a = pf.address() & ~(ps - 1);
                                try {
                                    if (c.wp) {
                                        b.uffdWriteprotect(pid, fd, a, ps, 0);
                                    } else {
                                        b.uffdCopy(pid, fd, a, src, 0);
                                    }
                                } catch (LinuxException e) {
                                    if (e.errno() != Errno.EEXIST) {
                                        throw e;
                                    }
                                }
                            }
                        }
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            long per = pages / nthreads;
            List<Thread> touchers = new ArrayList<>();
            long t0 = System.nanoTime();
            for (int i = 0; i < nthreads; i++) {
                long from = i * per;
                Thread.Builder tb = platformCallers ? Thread.ofPlatform() : Thread.ofVirtual();
                touchers.add(tb.start(() -> {
                    byte[] one = {1};
                    for (long p = from; p < from + per; p++) {
                        try {
                            b.access(pid, addr + p * ps, 1, true, one, AccessMode.USER, Long.MAX_VALUE);
                        } catch (InterruptedException e) {
                            return;
                        }
                    }
                }));
            }
            for (Thread t : touchers) {
                t.join();
            }
            long t1 = System.nanoTime();
            done.set(true);
            handler.join();
            b.exit(pid);
            return per * nthreads / ((t1 - t0) / 1e9);
        }
    }
}
