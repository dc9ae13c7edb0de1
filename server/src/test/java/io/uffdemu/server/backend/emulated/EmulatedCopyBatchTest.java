package io.uffdemu.server.backend.emulated;

import static io.uffdemu.server.mm.Linux.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.MemCgroup;
import io.uffdemu.server.mm.Userfaultfd;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link EmulatedBackend#uffdCopyBatch} (one kernel lock acquisition for a batch of UFFDIO_COPYs) gives what
 * {@link MemoryBackend#uffdCopy} one op at a time gives: the same bytes or errno per op in the same order (a
 * failing op in the middle changes nothing for the others), the same page tables and contents, the same faults
 * woken, and a tenant's refused charge in one op does not make a later op's failure a quota failure.
 */
@Timeout(60)
class EmulatedCopyBatchTest {
    static final int PAGE = (int) PAGE_SIZE;
    static final int PAGES = 8;

    /** A backend with one process: anon pages [anon, anon+8p), a shmem file of 1 page mapped over 2 pages. */
    record Setup(EmulatedBackend b, int pid, int fd, long anon, long shm) {
        static Setup of(long tenantMemoryPages) {
            EmulatedBackend b = new EmulatedBackend(new Kernel.Config(64L << 20, 0, 0, 0, true)).withMemcgLimits(
                    new MemCgroup.Limits(tenantMemoryPages * PAGE_SIZE, 0, Long.MAX_VALUE, Long.MAX_VALUE,
                            Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE,
                            Integer.MAX_VALUE), MemCgroup.Limits.UNLIMITED);
            int pid = b.createProcess("p", 0, true, "tenant").pid();
            long anon = b.mmap(pid, 0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            int mfd = b.memfdCreate(pid, "m", 0);
            b.ftruncate(pid, mfd, PAGE_SIZE);
            long shm = b.mmap(pid, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
            int fd = b.userfaultfd(pid, 0, false);
            b.uffdApi(pid, fd, UFFD_API, 0);
            b.uffdRegister(pid, fd, anon, PAGES * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
            b.uffdRegister(pid, fd, shm, 2 * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
            return new Setup(b, pid, fd, anon, shm);
        }

        CompletableFuture<AccessResult> read(long addr) {
            CompletableFuture<AccessResult> f = new CompletableFuture<>();
            Thread.ofVirtual().start(() -> {
                try {
                    f.complete(b.access(pid, addr, 1, false, null, AccessMode.USER, System.nanoTime() + 20_000_000_000L));
                } catch (Throwable t) {
                    f.completeExceptionally(t);
                }
            });
            return f;
        }

        void awaitBlocked(int n) throws InterruptedException {
            long until = System.nanoTime() + 5_000_000_000L;
            while (b.kernel().faultGauges()[1] < n && System.nanoTime() < until) {
                Thread.sleep(2);
            }
            assertThat(b.kernel().faultGauges()[1]).isEqualTo(n);
        }

        /** Pagemap and the first byte of every present page of the anon range. */
        List<String> memory() throws InterruptedException {
            List<String> out = new ArrayList<>();
            long[] pm = b.readPagemap(pid, anon, PAGES);
            for (int i = 0; i < PAGES; i++) {
                String s = Long.toHexString(pm[i] & (PM_PRESENT | PM_SWAP | PM_FILE | PM_UFFD_WP));
                if ((pm[i] & PM_PRESENT) != 0) {
                    s += ":" + b.access(pid, anon + (long) i * PAGE, 1, false, null, AccessMode.USER, Long.MAX_VALUE)
                            .data()[0];
                }
                out.add(s);
            }
            return out;
        }
    }

    static byte[] page(int v) {
        byte[] p = new byte[PAGE];
        Arrays.fill(p, (byte) v);
        return p;
    }

    static String describe(LinuxException e) {
        return e.errno() + " " + e.call() + " done=" + e.bytesDone() + (e.isQuota() ? " quota" : "");
    }

    /** The batch through the emulated backend's override. */
    static List<String> batch(MemoryBackend b, List<Userfaultfd.CopyOp> ops) {
        String[] out = new String[ops.size()];
        b.uffdCopyBatch(ops, new Userfaultfd.CopyOutcome() {
            @Override
            public void copied(int index, long bytes) {
                assertThat(out[index]).isNull();
                out[index] = "ok " + bytes;
            }

            @Override
            public void failed(int index, LinuxException e) {
                assertThat(out[index]).isNull();
                out[index] = describe(e);
            }
        });
        return Arrays.asList(out);
    }

    /** The same ops as separate calls. */
    static List<String> oneByOne(MemoryBackend b, List<Userfaultfd.CopyOp> ops) {
        List<String> out = new ArrayList<>();
        for (Userfaultfd.CopyOp op : ops) {
            try {
                byte[] src = new byte[op.src().remaining()];
                op.src().get(op.src().position(), src);
                out.add("ok " + b.uffdCopy(op.pid(), op.fd(), op.dst(), src, op.mode()));
            } catch (LinuxException e) {
                out.add(describe(e));
            }
        }
        return out;
    }

    static List<Userfaultfd.CopyOp> mixedOps(Setup s) {
        long a = s.anon();
        int pid = s.pid();
        int fd = s.fd();
        return List.of(
                new Userfaultfd.CopyOp(pid, fd, a, page(1), 0),
                new Userfaultfd.CopyOp(pid, fd, a, page(2), 0), // EEXIST
                new Userfaultfd.CopyOp(pid, fd + 7, a + PAGE, page(3), 0), // EBADF
                new Userfaultfd.CopyOp(pid + 100, fd, a + PAGE, page(3), 0), // ESRCH
                new Userfaultfd.CopyOp(pid, fd, a + PAGE, page(4), 0),
                new Userfaultfd.CopyOp(pid, fd, a + 2 * PAGE + 8, page(5), 0), // EINVAL: unaligned
                new Userfaultfd.CopyOp(pid, fd, a + 6 * PAGE, new byte[3 * PAGE], 0), // ENOENT: past the mapping
                new Userfaultfd.CopyOp(pid, fd, a + 2 * PAGE, new byte[2 * PAGE], UFFDIO_COPY_MODE_DONTWAKE),
                new Userfaultfd.CopyOp(pid, fd, a + 4 * PAGE, new byte[2 * PAGE], 0), // pages 4, 5
                new Userfaultfd.CopyOp(pid, fd, a + 3 * PAGE, new byte[3 * PAGE], 0), // EEXIST at once
                new Userfaultfd.CopyOp(pid, fd, a + 6 * PAGE, page(6), UFFDIO_COPY_MODE_WP), // EINVAL: no WP mode
                new Userfaultfd.CopyOp(pid, fd, s.shm() + PAGE, page(7), 0), // EFAULT: past the file's end
                new Userfaultfd.CopyOp(pid, fd, a + 6 * PAGE, page(8), 0));
    }

    @Test
    void aBatchGivesWhatTheOpsGiveOneByOne() throws Exception {
        Setup one = Setup.of(1024);
        Setup all = Setup.of(1024);
        List<CompletableFuture<AccessResult>> waitersOne = new ArrayList<>();
        List<CompletableFuture<AccessResult>> waitersAll = new ArrayList<>();
        for (int p : new int[] {0, 1, 2, 3, 7}) { // 2 and 3: DONTWAKE; 7: never filled
            waitersOne.add(one.read(one.anon() + (long) p * PAGE));
            one.awaitBlocked(waitersOne.size());
            waitersAll.add(all.read(all.anon() + (long) p * PAGE));
            all.awaitBlocked(waitersAll.size());
        }
        List<String> expected = oneByOne(one.b(), mixedOps(one));
        List<String> got = batch(all.b(), mixedOps(all));
        assertThat(got).isEqualTo(expected);
        assertThat(expected).containsExactly("ok 4096", "EEXIST UFFDIO_COPY done=0", "EBADF UFFDIO_COPY done=0",
                "ESRCH UFFDIO_COPY done=0", "ok 4096", "EINVAL UFFDIO_COPY done=0", "ENOENT UFFDIO_COPY done=0",
                "ok 8192", "ok 8192", "EEXIST UFFDIO_COPY done=0", "EINVAL UFFDIO_COPY done=0",
                "EFAULT UFFDIO_COPY done=0", "ok 4096");
        for (int i = 0; i < waitersOne.size(); i++) {
            boolean woken = i < 2;
            if (woken) {
                assertThat(waitersOne.get(i).get(5, TimeUnit.SECONDS).data()[0]).isEqualTo((byte) (i == 0 ? 1 : 4));
                assertThat(waitersAll.get(i).get(5, TimeUnit.SECONDS).data()[0]).isEqualTo((byte) (i == 0 ? 1 : 4));
            }
        }
        Thread.sleep(50);
        for (int i = 2; i < waitersOne.size(); i++) {
            assertThat(waitersOne.get(i)).as("waiter %d", i).isNotDone();
            assertThat(waitersAll.get(i)).as("waiter %d", i).isNotDone();
        }
        assertThat(all.b().kernel().faultGauges()).containsExactly(one.b().kernel().faultGauges());
        assertThat(all.memory()).isEqualTo(one.memory());
        assertThat(all.b().uffdDescribe(all.pid(), all.fd()).pendingFaults())
                .isEqualTo(one.b().uffdDescribe(one.pid(), one.fd()).pendingFaults());
        for (Setup s : List.of(one, all)) {
            s.b().uffdWake(s.pid(), s.fd(), s.anon(), PAGES * PAGE_SIZE);
            s.b().uffdCopy(s.pid(), s.fd(), s.anon() + 7 * PAGE_SIZE, page(9), 0);
        }
        for (int i = 2; i < waitersOne.size(); i++) {
            assertThat(waitersOne.get(i).get(5, TimeUnit.SECONDS).succeeded()).isTrue();
            assertThat(waitersAll.get(i).get(5, TimeUnit.SECONDS).succeeded()).isTrue();
        }
    }

    /**
     * A tenant at its memory limit: the op that needs a frame fails ENOMEM as a quota failure; a later op of the
     * same batch that fails for its own reason (EFAULT past a file's end) is not made a quota ENOMEM by it.
     */
    @Test
    void aRefusedChargeStaysWithItsOp() {
        Setup one = Setup.of(3);
        Setup all = Setup.of(3);
        List<String> expected = oneByOne(one.b(), quotaOps(one));
        List<String> got = batch(all.b(), quotaOps(all));
        assertThat(got).isEqualTo(expected);
        assertThat(expected.getLast()).isEqualTo("EFAULT UFFDIO_COPY done=0");
        assertThat(expected).anyMatch(r -> r.startsWith("ENOMEM") && r.endsWith("quota"));
    }

    static List<Userfaultfd.CopyOp> quotaOps(Setup s) {
        List<Userfaultfd.CopyOp> ops = new ArrayList<>();
        for (int p = 0; p < PAGES; p++) {
            ops.add(new Userfaultfd.CopyOp(s.pid(), s.fd(), s.anon() + (long) p * PAGE, page(p + 1), 0));
        }
        ops.add(new Userfaultfd.CopyOp(s.pid(), s.fd(), s.shm() + PAGE, page(7), 0));
        return ops;
    }

    /** A batch longer than one lock acquisition's share (ops and bytes) is cut, each op still answered once. */
    @Test
    void aLongBatchAnswersEveryOpOnce() {
        Setup one = Setup.of(4096);
        Setup all = Setup.of(4096);
        int pages = 600;
        List<List<Userfaultfd.CopyOp>> opsOf = new ArrayList<>();
        List<long[]> bases = new ArrayList<>();
        for (Setup s : List.of(one, all)) {
            long a = s.b().mmap(s.pid(), 0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
            s.b().uffdRegister(s.pid(), s.fd(), a, pages * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
            List<Userfaultfd.CopyOp> ops = new ArrayList<>();
            for (int p = 0; p < 200; p++) {
                ops.add(new Userfaultfd.CopyOp(s.pid(), s.fd(), a + p * PAGE_SIZE, page(p), 0));
                if (p % 7 == 3) {
                    ops.add(new Userfaultfd.CopyOp(s.pid(), s.fd(), a + p * PAGE_SIZE, page(p), 0)); // EEXIST
                }
            }
            ops.add(new Userfaultfd.CopyOp(s.pid(), s.fd(), a + 200 * PAGE_SIZE, new byte[300 * PAGE], 0)); // 1.2 MB
            for (int p = 500; p < 600; p++) {
                ops.add(new Userfaultfd.CopyOp(s.pid(), s.fd(), a + p * PAGE_SIZE, page(p), 0));
            }
            opsOf.add(ops);
            bases.add(new long[] {a});
        }
        List<String> expected = oneByOne(one.b(), opsOf.get(0));
        List<String> got = batch(all.b(), opsOf.get(1));
        assertThat(got).hasSize(opsOf.get(1).size()).doesNotContainNull().isEqualTo(expected);
        assertThat(expected).filteredOn(r -> r.startsWith("EEXIST")).hasSize(29);
        for (int i = 0; i < pages; i += 37) {
            assertThat(all.b().readPagemap(all.pid(), bases.get(1)[0] + (long) i * PAGE, 1)[0] & PM_PRESENT)
                    .isEqualTo(one.b().readPagemap(one.pid(), bases.get(0)[0] + (long) i * PAGE, 1)[0] & PM_PRESENT)
                    .isNotZero();
        }
    }

    /**
     * A COPY source is the bytes from a buffer's position to its limit (a gRPC payload's read-only view may start
     * inside a larger array), through the emulated override and through the SPI's default uffdCopyBatch (the one
     * the Linux backend's per-op loop stands in for); the buffer's position is left alone; a zero source fills a
     * zero page.
     */
    @Test
    void aCopyFromABufferWindowWritesExactlyTheWindow() throws Exception {
        byte[] big = new byte[3 * PAGE];
        for (int i = 0; i < big.length; i++) {
            big[i] = (byte) (i * 7 + 1);
        }
        int at = PAGE / 2 + 5;
        java.nio.ByteBuffer window = java.nio.ByteBuffer.wrap(big, at, PAGE).asReadOnlyBuffer();
        java.nio.ByteBuffer zeros = java.nio.ByteBuffer.wrap(new byte[2 * PAGE], PAGE / 3, PAGE).asReadOnlyBuffer();
        java.nio.ByteBuffer direct = java.nio.ByteBuffer.allocateDirect(2 * PAGE);
        direct.put(big, 0, 2 * PAGE).position(PAGE - 3).limit(2 * PAGE - 3);
        Setup s = Setup.of(16);
        MemoryBackend viaDefault = (MemoryBackend) java.lang.reflect.Proxy.newProxyInstance(
                MemoryBackend.class.getClassLoader(), new Class<?>[] {MemoryBackend.class}, (proxy, m, a) -> {
                    if (m.isDefault()) {
                        return java.lang.reflect.InvocationHandler.invokeDefault(proxy, m, a);
                    }
                    return m.invoke(s.b(), a);
                });
        long a = s.anon();
        assertThat(batch(s.b(), List.of(new Userfaultfd.CopyOp(s.pid(), s.fd(), a, window, 0),
                new Userfaultfd.CopyOp(s.pid(), s.fd(), a + PAGE, zeros, 0))))
                .containsExactly("ok " + PAGE, "ok " + PAGE);
        assertThat(batch(viaDefault, List.of(new Userfaultfd.CopyOp(s.pid(), s.fd(), a + 2 * PAGE, window, 0),
                new Userfaultfd.CopyOp(s.pid(), s.fd(), a + 3 * PAGE, direct, 0))))
                .containsExactly("ok " + PAGE, "ok " + PAGE);
        assertThat(window.position()).isEqualTo(at);
        assertThat(direct.position()).isEqualTo(PAGE - 3);
        byte[] want = Arrays.copyOfRange(big, at, at + PAGE);
        byte[] wantDirect = Arrays.copyOfRange(big, PAGE - 3, 2 * PAGE - 3);
        for (int p = 0; p < 4; p++) {
            byte[] got = s.b().access(s.pid(), a + (long) p * PAGE, PAGE, false, null, AccessMode.USER, Long.MAX_VALUE)
                    .data();
            assertThat(got).as("page %d", p).isEqualTo(p == 1 ? new byte[PAGE] : p == 3 ? wantDirect : want);
        }
    }

    @Test
    void anEmptyBatchDoesNothing() {
        Setup s = Setup.of(16);
        assertThat(batch(s.b(), List.of())).isEmpty();
    }
}
