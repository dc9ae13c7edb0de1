package io.uffdemu.server.mm;

import static io.uffdemu.server.mm.Linux.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The invariant checker's wp-write ledger ("every write to a wp PTE produced a message or a WP_ASYNC dirty
 * bit"): quiet on the correct paths, and failing when the fault path is broken on purpose through
 * {@link Faults#testBreakage}, so the check is known to be able to fail.
 */
class WpWriteLedgerTest {
    static final long MS = 1_000_000L;

    Kernel k;
    int pid;
    long addr;

    @BeforeEach
    void setUp() throws InterruptedException {
        k = new Kernel(new Kernel.Config(64L << 20, 16L << 20, 0, 0, true));
        pid = k.createProcess("t", 0, true, "test").pid();
        addr = k.vm.mmap(pid, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        // populate before registering: plain writes
        for (int i = 0; i < 4; i++) {
            assertTrue(k.faults.access(pid, addr + i * PAGE_SIZE, 1, true, new byte[] {1}, AccessMode.USER,
                    System.nanoTime() + 1000 * MS).succeeded());
        }
    }

    AccessResult write(long a, long deadlineMs) {
        try {
            return k.faults.access(pid, a, 1, true, new byte[] {9}, AccessMode.USER,
                    deadlineMs == 0 ? System.nanoTime() : System.nanoTime() + deadlineMs * MS);
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    int wpRegistered(long features) {
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        k.uffd.api(pid, fd, UFFD_API, features);
        k.uffd.register(pid, fd, addr, 4 * PAGE_SIZE, UFFDIO_REGISTER_MODE_WP);
        k.uffd.writeprotect(pid, fd, addr, 4 * PAGE_SIZE, UFFDIO_WRITEPROTECT_MODE_WP);
        return fd;
    }

    @Test
    void correctWpFaultQueuesAMessageAndPasses() throws Exception {
        int fd = wpRegistered(0);
        // the write raises the WP message; with an expired deadline it is withdrawn (ETIMEDOUT), nothing lands
        LinuxException e = assertThrows(LinuxException.class, () -> write(addr, 0));
        assertEquals(Errno.ETIMEDOUT, e.errno());
        assertEquals(1, k.uffd.info(pid, fd).total(), "one WP message raised");
        AccessResult r = k.faults.access(pid, addr, 1, false, null, AccessMode.USER, System.nanoTime() + 1000 * MS);
        assertEquals(1, r.data()[0], "the withdrawn write did not land");
    }

    @Test
    void wpAsyncWriteLandsWithoutMessageAndPasses() throws Exception {
        int fd = wpRegistered(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED);
        assertTrue(write(addr, 1000).succeeded());
        List<UffdMsg> msgs = k.uffd.read(pid, fd, 16, 0);
        assertTrue(msgs.isEmpty(), "WP_ASYNC queues no message");
        long pm = k.pagemap.read(pid, addr, 1)[0];
        assertFalse((pm & PM_UFFD_WP) != 0, "WP_ASYNC cleared the wp bit (the page is now 'written')");
    }

    @ParameterizedTest(name = "breakage {0}")
    @ValueSource(ints = {Faults.BREAK_WP_IGNORED, Faults.BREAK_SWAPIN_DROPS_WP})
    void brokenFaultPathIsCaught(int breakage) {
        wpRegistered(0);
        if (breakage == Faults.BREAK_SWAPIN_DROPS_WP) {
            k.vm.madvise(pid, addr, PAGE_SIZE, MADV_PAGEOUT);
            assertTrue((k.pagemap.read(pid, addr, 1)[0] & PM_SWAP) != 0, "page swapped out");
        }
        k.faults.testBreakage = breakage;
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> write(addr, 1000));
        assertTrue(e.getMessage().contains("wp-write ledger"), e.getMessage());
        assertTrue(e.getMessage().contains("without a WP message or WP_ASYNC"), e.getMessage());
    }

    @Test
    void breakageOnAnUnprotectedPageIsNotAViolation() {
        // the ledger only looks at writes to uffd-wp PTEs: an unregistered range is free to be written
        k.faults.testBreakage = Faults.BREAK_WP_IGNORED;
        assertTrue(write(addr + PAGE_SIZE, 1000).succeeded());
    }
}
