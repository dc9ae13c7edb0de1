package io.uffdemu.server.mm;

import static io.uffdemu.server.mm.Linux.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.function.Consumer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * PTE tables holding only uffd-wp markers are one shared array (PageTable): differential check of every path
 * that writes a PTE against a kernel whose tables are private. Kernel "one" write-protects the whole range in
 * one UFFDIO_WRITEPROTECT (whole tables become the shared one); kernel "paged" does it 4 KiB at a time (each
 * table filled entry by entry). The same operations must leave the same PTEs, pagemap and counters in both;
 * invariants (including "the shared table was never written") are checked after every operation.
 */
class SharedMarkerTableTest {
    static final long BASE = 1L << 32; // 2 MiB aligned
    static final int TABLES = 6;
    static final long LEN = TABLES * PMD_SIZE;
    static final long MS = 1_000_000L;

    static final class Side {
        final Kernel k = new Kernel(new Kernel.Config(256L << 20, 32L << 20, 0, 0, true));
        final int pid = k.createProcess("t", 0, true, "test").pid();
        int child = -1;
        int fd;

        Side(boolean shmem, boolean oneCall) {
            long a;
            if (shmem) {
                int mfd = k.memfdCreate(pid, "m", 0);
                k.ftruncate(pid, mfd, LEN);
                a = k.vm.mmap(pid, BASE, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mfd, 0);
            } else {
                a = k.vm.mmap(pid, BASE, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            }
            assertEquals(BASE, a);
            fd = k.uffd.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
            k.uffd.api(pid, fd, UFFD_API, UFFD_FEATURE_WP_UNPOPULATED);
            k.uffd.register(pid, fd, BASE, LEN, UFFDIO_REGISTER_MODE_WP);
            if (oneCall) {
                k.uffd.writeprotect(pid, fd, BASE, LEN, UFFDIO_WRITEPROTECT_MODE_WP);
            } else {
                for (long o = 0; o < LEN; o += PAGE_SIZE) {
                    k.uffd.writeprotect(pid, fd, BASE + o, PAGE_SIZE, UFFDIO_WRITEPROTECT_MODE_WP);
                }
            }
        }

        long[] ptes(int p) {
            return k.locked(() -> {
                Task t = k.taskLocked(p, "t");
                long[] out = new long[(int) (LEN / PAGE_SIZE)];
                for (int i = 0; i < out.length; i++) {
                    out[i] = t.mm.pt.get(BASE + i * PAGE_SIZE);
                }
                return out;
            });
        }

        long[] state(int p) {
            long[] pm = k.pagemap.read(p, BASE, (int) (LEN / PAGE_SIZE));
            long[] pt = ptes(p);
            long[] counts = k.locked(() -> {
                MmStruct mm = k.taskLocked(p, "t").mm;
                return new long[] {mm.rssAnon, mm.rssShmem, mm.pt.tableCount(), k.frames.usedPages()};
            });
            long[] all = Arrays.copyOf(pm, pm.length + pt.length + counts.length);
            System.arraycopy(pt, 0, all, pm.length, pt.length);
            System.arraycopy(counts, 0, all, pm.length + pt.length, counts.length);
            return all;
        }

        long[] table(int p, int i) {
            return k.locked(() -> k.taskLocked(p, "t").mm.pt.tables.get((BASE >>> 21) + i));
        }
    }

    Side one, paged;

    void both(String what, Consumer<Side> op) {
        op.accept(one);
        op.accept(paged);
        assertArrayEquals(paged.state(paged.pid), one.state(one.pid), what);
        if (one.child >= 0) {
            assertArrayEquals(paged.state(paged.child), one.state(one.child), what + " (child)");
        }
    }

    static void read(Side s, int p, long addr) {
        try {
            assertTrue(s.k.faults.access(p, addr, 1, false, null, AccessMode.USER, System.nanoTime() + 5000 * MS)
                    .succeeded());
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void sharedTablesBehaveLikePrivateOnes(boolean shmem) {
        one = new Side(shmem, true);
        paged = new Side(shmem, false);
        assertArrayEquals(paged.state(paged.pid), one.state(one.pid), "after WRITEPROTECT");
        assertSame(one.table(one.pid, 0), one.table(one.pid, TABLES - 1), "whole tables share one array");
        assertNotSame(paged.table(paged.pid, 0), paged.table(paged.pid, 1));

        byte[] page = new byte[(int) PAGE_SIZE];
        Arrays.fill(page, (byte) 3);
        both("read fault on a marker", s -> read(s, s.pid, BASE + 5 * PAGE_SIZE));
        both("COPY over a marker", s -> s.k.uffd.copy(s.pid, s.fd, BASE + PMD_SIZE + 7 * PAGE_SIZE, page,
                UFFDIO_COPY_MODE_WP | UFFDIO_COPY_MODE_DONTWAKE));
        both("mprotect read-only across tables", s -> s.k.vm.mprotect(s.pid, BASE + PMD_SIZE + PMD_SIZE / 2,
                PMD_SIZE, PROT_READ));
        both("mprotect back", s -> s.k.vm.mprotect(s.pid, BASE, LEN, PROT_READ | PROT_WRITE));
        both("un-protect part of a table", s -> s.k.uffd.writeprotect(s.pid, s.fd, BASE + 2 * PMD_SIZE + 64 * PAGE_SIZE,
                8 * PAGE_SIZE, 0));
        both("un-protect a whole table", s -> s.k.uffd.writeprotect(s.pid, s.fd, BASE + 3 * PMD_SIZE, PMD_SIZE, 0));
        both("re-protect it", s -> s.k.uffd.writeprotect(s.pid, s.fd, BASE + 3 * PMD_SIZE, PMD_SIZE,
                UFFDIO_WRITEPROTECT_MODE_WP));
        both("MADV_DONTNEED over markers", s -> s.k.vm.madvise(s.pid, BASE + 4 * PMD_SIZE + PAGE_SIZE, 16 * PAGE_SIZE,
                MADV_DONTNEED));
        both("fork", s -> s.child = s.k.fork(s.pid).pid());
        both("read fault in the child", s -> read(s, s.child, BASE + 4 * PMD_SIZE + 100 * PAGE_SIZE));
        both("munmap part of a table", s -> s.k.vm.munmap(s.pid, BASE + 5 * PMD_SIZE + PMD_SIZE / 2, PMD_SIZE / 4));
        both("un-protect everything", s -> s.k.uffd.writeprotect(s.pid, s.fd, BASE, LEN, 0));
        both("munmap", s -> s.k.vm.munmap(s.pid, BASE, LEN));
        both("exit the child", s -> {
            s.k.exit(s.child);
            s.child = -1;
        });
        assertTrue(PageTable.sharedMarkerTableIntact());
    }
}
