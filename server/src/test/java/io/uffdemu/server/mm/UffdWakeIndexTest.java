package io.uffdemu.server.mm;

import static io.uffdemu.server.mm.Linux.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Waking many blocked faults a page at a time and by ranges (the ctx's address index, {@link UserfaultfdCtx}):
 * exactly the faults in the range wake, pending and read ones alike, the unread ones keep their arrival order for
 * read(2), and the counts (fdinfo pending/waiting, the kernel's fault gauges) follow a model after every step.
 * Invariants, the index's included, are checked after every kernel operation.
 */
@Timeout(60)
class UffdWakeIndexTest {
    static final long MS = 1_000_000L;
    static final int PAGES = 64;

    Kernel k;
    int pid;

    /** One blocked access: where it faulted, its message address, whether a handler read it. */
    record Blocked(long addr, long msgAddr, CompletableFuture<AccessResult> result) {
    }

    @BeforeEach
    void setUp() {
        k = new Kernel(new Kernel.Config(256L << 20, 0, 0, 0, true));
        pid = k.createProcess("t", 0, true, "test").pid();
    }

    @AfterEach
    void tearDown() {
        for (Task t : k.tasks()) {
            k.exit(t.pid());
        }
    }

    int uffd(long features) {
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        k.uffd.api(pid, fd, UFFD_API, features);
        return fd;
    }

    CompletableFuture<AccessResult> access(long addr, long deadlineMs) {
        CompletableFuture<AccessResult> f = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try {
                f.complete(k.faults.access(pid, addr, 1, false, null, AccessMode.USER,
                        System.nanoTime() + deadlineMs * MS));
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }

    /** Starts an access and waits until its message is queued, so the arrival order is the start order. */
    Blocked fault(int u, long addr, long msgAddr, long deadlineMs) throws InterruptedException {
        long before = k.uffd.info(pid, u).total();
        CompletableFuture<AccessResult> r = access(addr, deadlineMs);
        long until = System.nanoTime() + 5000 * MS;
        while (k.uffd.info(pid, u).total() == before) {
            assertTrue(System.nanoTime() < until, "fault at 0x" + Long.toHexString(addr) + " never queued");
            Thread.sleep(1);
        }
        return new Blocked(addr, msgAddr, r);
    }

    List<Long> readAddresses(int u, int max) throws InterruptedException {
        List<Long> out = new ArrayList<>();
        for (UffdMsg m : k.uffd.read(pid, u, max, 0)) {
            out.add(((UffdMsg.Pagefault) m).address());
        }
        return out;
    }

    /** The counts of the model: {@code unread} faults not read, {@code read} read and not woken. */
    void assertCounts(int u, List<Blocked> unread, List<Blocked> read) {
        Userfaultfd.CtxInfo info = k.uffd.info(pid, u);
        assertEquals(unread.size(), info.pending(), "pending");
        assertEquals(read.size(), info.waiting(), "waiting");
        assertEquals(List.of((long) unread.size(), (long) (unread.size() + read.size())),
                List.of(k.faultGauges()[0], k.faultGauges()[1]), "faultsPending, threadsBlocked");
    }

    /** Every access of {@code woken} completes; none of {@code blocked} has (after a short grace). */
    static void assertWoken(List<Blocked> woken, List<Blocked> blocked) throws Exception {
        for (Blocked b : woken) {
            assertTrue(b.result().get(5, TimeUnit.SECONDS).succeeded(), "access at 0x" + Long.toHexString(b.addr()));
        }
        Thread.sleep(20);
        for (Blocked b : blocked) {
            assertFalse(b.result().isDone(), "access at 0x" + Long.toHexString(b.addr()) + " woke too early");
        }
    }

    /** Moves the faults whose message address is in [start, end) out of the model's lists. */
    static List<Blocked> take(List<Blocked> unread, List<Blocked> read, long start, long end) {
        List<Blocked> woken = new ArrayList<>();
        for (List<Blocked> l : List.of(unread, read)) {
            for (var it = l.iterator(); it.hasNext();) {
                Blocked b = it.next();
                if (b.msgAddr() >= start && b.msgAddr() < end) {
                    woken.add(b);
                    it.remove();
                }
            }
        }
        return woken;
    }

    static List<Blocked> all(List<Blocked> unread, List<Blocked> read) {
        List<Blocked> out = new ArrayList<>(unread);
        out.addAll(read);
        return out;
    }

    @Test
    void manyBlockedFaultsWokenPageByPageAndByRanges() throws Exception {
        long a = k.vm.mmap(pid, 0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        int u = uffd(0);
        k.uffd.register(pid, u, a, PAGES * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        Random rnd = new Random(42);
        // one fault per page in a shuffled page order, then a second thread on every fourth page
        List<Integer> order = new ArrayList<>();
        for (int p = 0; p < PAGES; p++) {
            order.add(p);
        }
        Collections.shuffle(order, rnd);
        for (int p = 0; p < PAGES; p += 4) {
            order.add(p);
        }
        List<Blocked> unread = new ArrayList<>();
        List<Blocked> read = new ArrayList<>();
        for (int p : order) {
            long addr = a + p * PAGE_SIZE + rnd.nextInt((int) PAGE_SIZE);
            unread.add(fault(u, addr, a + p * PAGE_SIZE, 30_000));
        }
        assertCounts(u, unread, read);

        // a handler reads the first 30 messages: arrival order
        List<Long> msgs = readAddresses(u, 30);
        assertEquals(unread.subList(0, 30).stream().map(Blocked::msgAddr).toList(), msgs);
        read.addAll(unread.subList(0, 30));
        unread.subList(0, 30).clear();
        assertCounts(u, unread, read);

        // pages 0..31 one COPY each, in a random order: each wakes the faults of its page, read or not
        List<Integer> pages = new ArrayList<>();
        for (int p = 0; p < PAGES / 2; p++) {
            pages.add(p);
        }
        Collections.shuffle(pages, rnd);
        byte[] page = new byte[(int) PAGE_SIZE];
        for (int p : pages) {
            long dst = a + p * PAGE_SIZE;
            List<Blocked> woken = take(unread, read, dst, dst + PAGE_SIZE);
            assertFalse(woken.isEmpty());
            assertEquals(PAGE_SIZE, k.uffd.copy(pid, u, dst, page, 0));
            assertCounts(u, unread, read);
            assertWoken(woken, List.of());
        }
        assertWoken(List.of(), all(unread, read));

        // pages 32..63 filled without a wake: nobody wakes, the counts stay
        assertEquals(PAGES / 2 * PAGE_SIZE,
                k.uffd.zeropage(pid, u, a + PAGES / 2 * PAGE_SIZE, PAGES / 2 * PAGE_SIZE, UFFDIO_ZEROPAGE_MODE_DONTWAKE));
        assertCounts(u, unread, read);
        assertWoken(List.of(), all(unread, read));

        // a wake of pages 40..47 takes exactly the faults there; the unread rest keep their arrival order
        long from = a + 40 * PAGE_SIZE;
        List<Blocked> woken = take(unread, read, from, from + 8 * PAGE_SIZE);
        k.uffd.wake(pid, u, from, 8 * PAGE_SIZE);
        assertCounts(u, unread, read);
        assertWoken(woken, all(unread, read));
        List<Long> rest = readAddresses(u, 8);
        assertEquals(unread.subList(0, Math.min(8, unread.size())).stream().map(Blocked::msgAddr).toList(), rest);
        read.addAll(unread.subList(0, rest.size()));
        unread.subList(0, rest.size()).clear();
        assertCounts(u, unread, read);

        // a range ending inside the mapping, then everything left (a range wider than the mapping)
        woken = take(unread, read, a, a + 40 * PAGE_SIZE);
        k.uffd.wake(pid, u, a, 40 * PAGE_SIZE);
        assertCounts(u, unread, read);
        assertWoken(woken, all(unread, read));
        woken = take(unread, read, 0, Long.MAX_VALUE);
        k.uffd.wake(pid, u, a - 16 * PAGE_SIZE, (PAGES + 32) * PAGE_SIZE);
        assertCounts(u, unread, read);
        assertWoken(woken, List.of());
        assertEquals(List.of(), readAddresses(u, 16));
    }

    @Test
    void exactAddressesWakeByTheRangeTheyFallIn() throws Exception {
        long a = k.vm.mmap(pid, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        int u = uffd(UFFD_FEATURE_EXACT_ADDRESS);
        k.uffd.register(pid, u, a, 4 * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        Blocked lastOfPage0 = fault(u, a + PAGE_SIZE - 1, a + PAGE_SIZE - 1, 30_000);
        Blocked firstOfPage1 = fault(u, a + PAGE_SIZE, a + PAGE_SIZE, 30_000);
        Blocked lastOfPage1 = fault(u, a + 2 * PAGE_SIZE - 1, a + 2 * PAGE_SIZE - 1, 30_000);
        Blocked page2 = fault(u, a + 2 * PAGE_SIZE + 0x123, a + 2 * PAGE_SIZE + 0x123, 30_000);
        assertEquals(List.of(a + PAGE_SIZE - 1, a + PAGE_SIZE), readAddresses(u, 2));
        k.uffd.copy(pid, u, a + PAGE_SIZE, new byte[(int) PAGE_SIZE], 0);
        assertWoken(List.of(firstOfPage1, lastOfPage1), List.of(lastOfPage0, page2));
        assertCounts(u, List.of(page2), List.of(lastOfPage0));
        k.uffd.zeropage(pid, u, a, PAGE_SIZE, 0);
        k.uffd.zeropage(pid, u, a + 2 * PAGE_SIZE, PAGE_SIZE, 0);
        assertWoken(List.of(lastOfPage0, page2), List.of());
        assertCounts(u, List.of(), List.of());
    }

    /**
     * Faults that give up (deadline) leave the queues and the index, from the middle of a page's chain too: the
     * others at the same page still wake with its COPY, and the counts stay right.
     */
    @Test
    void withdrawnFaultsLeaveTheIndex() throws Exception {
        long a = k.vm.mmap(pid, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        int u = uffd(0);
        k.uffd.register(pid, u, a, 2 * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        Blocked first = fault(u, a, a, 30_000);
        Blocked readThenGone = fault(u, a + 8, a, 2_000); // read before its deadline, withdrawn after
        Blocked other = fault(u, a + PAGE_SIZE, a + PAGE_SIZE, 30_000);
        Blocked middle = fault(u, a + 16, a, 2_000);
        Blocked last = fault(u, a + 24, a, 30_000);
        assertEquals(List.of(a, a), readAddresses(u, 2));
        for (Blocked gone : List.of(readThenGone, middle)) {
            Throwable t = org.junit.jupiter.api.Assertions.assertThrows(java.util.concurrent.ExecutionException.class,
                    () -> gone.result().get(5, TimeUnit.SECONDS)).getCause();
            assertEquals(Errno.ETIMEDOUT, ((LinuxException) t).errno());
        }
        assertCounts(u, List.of(other, last), List.of(first));
        assertEquals(List.of(a + PAGE_SIZE), readAddresses(u, 1));
        assertCounts(u, List.of(last), List.of(first, other));
        k.uffd.copy(pid, u, a, new byte[(int) PAGE_SIZE], 0);
        assertWoken(List.of(first, last), List.of(other));
        assertCounts(u, List.of(), List.of(other));
        k.uffd.copy(pid, u, a + PAGE_SIZE, new byte[(int) PAGE_SIZE], 0);
        assertWoken(List.of(other), List.of());
        assertCounts(u, List.of(), List.of());
    }
}
