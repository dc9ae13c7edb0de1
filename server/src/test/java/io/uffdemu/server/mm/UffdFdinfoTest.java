package io.uffdemu.server.mm;

import static io.uffdemu.server.mm.Linux.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** UffdFdinfo: fdinfo counters and registered ranges of a uffd, and the errno of a bad fd or pid. */
@Timeout(30)
class UffdFdinfoTest {
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

    @Test
    void showsFeaturesRangesAndFaultCounters() throws Exception {
        long a = k.vm.mmap(pid, 0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        int fd = k.uffd.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        UffdFdinfo.Description d = UffdFdinfo.describe(k, pid, fd);
        assertThat(d.apiDone()).isFalse();
        assertThat(d.flags()).isEqualTo(O_CLOEXEC | O_NONBLOCK);
        assertThat(d.ranges()).isEmpty();

        k.uffd.api(pid, fd, UFFD_API, UFFD_FEATURE_EVENT_REMOVE);
        k.uffd.register(pid, fd, a, 2 * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
        k.uffd.register(pid, fd, a + 4 * PAGE_SIZE, 2 * PAGE_SIZE,
                UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
        d = UffdFdinfo.describe(k, pid, fd);
        assertThat(d.apiDone()).isTrue();
        assertThat(d.features()).isEqualTo(UFFD_FEATURE_EVENT_REMOVE);
        assertThat(d.ranges()).containsExactly(
                new UffdFdinfo.Range(a, a + 2 * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING),
                new UffdFdinfo.Range(a + 4 * PAGE_SIZE, a + 6 * PAGE_SIZE,
                        UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP));
        assertThat(d.pendingFaults()).isZero();

        // two faulting threads: both pending (unread); after one read, 1 pending and 2 total
        List<CompletableFuture<AccessResult>> faults = List.of(access(a), access(a + PAGE_SIZE));
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (UffdFdinfo.describe(k, pid, fd).pendingFaults() < 2 && System.nanoTime() < end) {
            Thread.sleep(2);
        }
        d = UffdFdinfo.describe(k, pid, fd);
        assertThat(d.pendingFaults()).isEqualTo(2);
        assertThat(d.totalFaults()).isEqualTo(2);
        assertThat(k.uffd.read(pid, fd, 1, 0)).hasSize(1);
        d = UffdFdinfo.describe(k, pid, fd);
        assertThat(d.pendingFaults()).isEqualTo(1);
        assertThat(d.totalFaults()).isEqualTo(2);
        k.uffd.zeropage(pid, fd, a, 2 * PAGE_SIZE, 0);
        for (CompletableFuture<AccessResult> f : faults) {
            assertThat(f.get(5, TimeUnit.SECONDS).succeeded()).isTrue();
        }
        assertThat(UffdFdinfo.describe(k, pid, fd).totalFaults()).isZero();

        k.uffd.unregister(pid, fd, a, 2 * PAGE_SIZE);
        assertThat(UffdFdinfo.describe(k, pid, fd).ranges()).hasSize(1);
        assertThat(UffdFdinfo.list(k, pid)).extracting(UffdFdinfo.Description::fd).containsExactly(fd);
    }

    @Test
    void badInputGetsTheKernelsErrno() {
        int memfd = k.memfdCreate(pid, "m", 0);
        assertThatThrownBy(() -> UffdFdinfo.describe(k, pid, memfd))
                .isInstanceOfSatisfying(LinuxException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOTTY));
        assertThatThrownBy(() -> UffdFdinfo.describe(k, pid, 999))
                .isInstanceOfSatisfying(LinuxException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EBADF));
        assertThatThrownBy(() -> UffdFdinfo.describe(k, pid, -1))
                .isInstanceOfSatisfying(LinuxException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EBADF));
        assertThatThrownBy(() -> UffdFdinfo.list(k, 424242))
                .isInstanceOfSatisfying(LinuxException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ESRCH));
        assertThat(UffdFdinfo.list(k, pid)).as("a memfd is not listed").isEmpty();
    }

    CompletableFuture<AccessResult> access(long addr) {
        CompletableFuture<AccessResult> f = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try {
                f.complete(k.faults.access(pid, addr, 1, false, null, AccessMode.USER,
                        System.nanoTime() + TimeUnit.SECONDS.toNanos(5)));
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }
}
