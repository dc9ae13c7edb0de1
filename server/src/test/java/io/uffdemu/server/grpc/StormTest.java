package io.uffdemu.server.grpc;

import static io.uffdemu.server.mm.Linux.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.api.v1.StormRequest;
import io.uffdemu.api.v1.StormResponse;
import io.uffdemu.server.backend.emulated.EmulatedBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.UffdMsg;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link Storm}'s threads wait on their faults untimed and the call's thread keeps the deadline: a storm whose
 * faults nobody resolves fails with ETIMEDOUT at its deadline, with none of its threads left blocked in the uffd,
 * and a storm whose faults are resolved completes, every write in place.
 */
@Timeout(60)
class StormTest {
    static final int PAGES = 32;
    static final int THREADS = 8;

    final EmulatedBackend b = new EmulatedBackend(new Kernel.Config(64L << 20, 0, 0, 0, true));
    final int pid = b.createProcess("p", 0, true, "tenant").pid();
    final long addr = b.mmap(pid, 0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    final int fd = b.userfaultfd(pid, 0, false);

    StormTest() {
        b.uffdApi(pid, fd, UFFD_API, 0);
        b.uffdRegister(pid, fd, addr, PAGES * PAGE_SIZE, UFFDIO_REGISTER_MODE_MISSING);
    }

    StormRequest request() {
        return StormRequest.newBuilder().setPid(pid).setAddr(addr).setLen(PAGES * PAGE_SIZE).setThreads(THREADS)
                .setWrite(true).setRound(3).setVerify(true).build();
    }

    long blocked() {
        return b.kernel().faultGauges()[1];
    }

    @Test
    void aStormPastItsDeadlineFailsWithEtimedoutAndLeavesNoThreadBehind() throws Exception {
        Storm storm = Storm.of(b, request(), AccessMode.USER, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(300));
        CompletableFuture<StormResponse> call = CompletableFuture.supplyAsync(() -> {
            try {
                return storm.run();
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        });
        // bounded: a storm that forgot its deadline fails here instead of hanging the build
        assertThatThrownBy(() -> call.get(20, TimeUnit.SECONDS)).hasCauseInstanceOf(LinuxException.class)
                .satisfies(e -> assertThat(((LinuxException) e.getCause()).errno()).isEqualTo(Errno.ETIMEDOUT));
        // run() waited for its threads: none is still blocked in the uffd when the call fails
        assertThat(blocked()).as("threads still blocked after the storm failed").isZero();
    }

    @Test
    void aStormWhoseFaultsAreResolvedCompletesWithEveryWrite() throws Exception {
        Thread handler = Thread.ofVirtual().start(() -> {
            try {
                while (!Thread.currentThread().isInterrupted()) {
                    List<UffdMsg> msgs = b.uffdRead(pid, fd, 64, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50));
                    for (UffdMsg m : msgs) {
                        if (m instanceof UffdMsg.Pagefault f) {
                            try {
                                b.uffdCopy(pid, fd, f.address() & -PAGE_SIZE, new byte[(int) PAGE_SIZE], 0);
                            } catch (LinuxException e) {
                                if (e.errno() != Errno.EEXIST) {
                                    throw e;
                                }
                            }
                        }
                    }
                }
            } catch (InterruptedException e) {
                // done
            }
        });
        try {
            StormResponse r = Storm.of(b, request(), AccessMode.USER, System.nanoTime() + TimeUnit.SECONDS.toNanos(30))
                    .run();
            assertThat(r.getAccesses()).isEqualTo(PAGES);
            assertThat(r.getFailed()).isZero();
            assertThat(r.getLostWrites()).isZero();
        } finally {
            handler.interrupt();
            handler.join();
        }
        assertThat(blocked()).isZero();
    }
}
