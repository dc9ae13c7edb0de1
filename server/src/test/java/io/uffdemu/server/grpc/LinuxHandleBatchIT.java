package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.AccessMode;
import io.uffdemu.api.v1.AccessRequest;
import io.uffdemu.api.v1.ExitRequest;
import io.uffdemu.api.v1.HandleAttach;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleRequestBatch;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.api.v1.UffdMsg;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import io.uffdemu.server.backend.linux.LinuxAvailability;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * {@link HandleBatchIT}'s scenarios on the real kernel ({@code uffdemu.backend=linux}): there
 * {@code MemoryBackend.resolutionsMayBlock()} is true, so HandleSession runs every resolution (single and batched)
 * on its {@code ops} thread instead of inline, and these tests are what covers that path: per-item results in
 * order, a half-close answered after the queued resolutions, bad items failing alone. Describe's
 * {@code total_faults} is the kernel's fdinfo {@code total} (faults blocked on the uffd, read or not), the same
 * count the emulated backend gives, so the inherited scenarios use it unchanged.
 *
 * <p>Two scenarios are overridden because the kernel's semantics differ (LinuxBackend's class comment, "Accesses"):
 * a storm whose deadline passes or which is cancelled fails as on the emulated backend, but its access threads
 * stay blocked in the kernel, their faults still queued on the uffd (a real thread in a userfault cannot be
 * interrupted out of it), and their stores land once the faults are resolved (the emulated backend withdraws the
 * faults and drops the stores). The overrides assert exactly that, resolving the faults through a batched Handle
 * stream. {@code uffdemu.emulated.check-invariants} is left out: it means nothing to this backend.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0", "uffdemu.backend=linux", "uffdemu.quotas.max-blocked-threads=64"})
class LinuxHandleBatchIT extends HandleBatchIT {
    @BeforeAll
    static void needsTheNativeBackend() {
        Assumptions.assumeTrue(LinuxAvailability.isAvailable(), () -> "native backend unavailable: "
                + LinuxAvailability.reason());
    }

    /**
     * Exits the test's process (before the channel closes): its uffd closes, which wakes any access thread a failed
     * test left blocked in the kernel, and its address window is freed for the next test.
     */
    @AfterEach
    void exitTheProcess() {
        try {
            procs.exit(ExitRequest.newBuilder().setPid(pid).build());
        } catch (StatusRuntimeException e) {
            // already gone
        }
    }

    /**
     * Kernel semantics: the deadline fails the call with DEADLINE_EXCEEDED, but the 8 access threads stay blocked in
     * the kernel (total_faults stays 8, where the emulated backend drops to 0); resolving their faults through a
     * batched Handle stream frees them and their abandoned stores land.
     */
    @Override
    @Test
    @Timeout(60)
    void aStormsDeadlineFreesItsBlockedThreads() throws Exception {
        stormOfEightPastItsDeadline();
        stayBlockedThenResolve("deadline", false);
    }

    /**
     * Kernel semantics: the cancel fails the call with CANCELLED, but the 8 access threads stay blocked in the kernel
     * until their faults are resolved; then their stores land. The stream asks for results with messages
     * (HandleAttach.results_with_msgs): the freed threads do not fault again, so no message batch carries the
     * results, and they still arrive (on their own, or before the stream completes).
     */
    @Override
    @Test
    @Timeout(60)
    void aCancelledStormFreesItsBlockedThreads() throws Exception {
        cancelAStormOfEightBlockedThreads();
        stayBlockedThenResolve("cancel", true);
    }

    /** The faulting threads are the kernel's, in another process: the flusher may well send the results first. */
    @Override
    boolean wokenThreadsFaultAgainFirst() {
        return false;
    }

    private static boolean sleep() throws InterruptedException {
        Thread.sleep(10);
        return true;
    }

    /**
     * The storm's 8 threads (thread t faulted on page t) are still blocked after the call ended; a Handle stream with
     * max_batch resolves them with batches of COPYs (zero pages), after which none is blocked and each page holds
     * the store its thread was abandoned in (address, round 5), written over the zero page.
     */
    private void stayBlockedThenResolve(String after, boolean resultsWithMsgs) throws Exception {
        awaitBlocked(8, "faults blocked on the uffd");
        Thread.sleep(300);
        assertThat(blocked()).as("access threads blocked in the kernel after the %s", after).isEqualTo(8);

        List<Long> faulted = new ArrayList<>();
        List<IoctlResult> results = new ArrayList<>();
        CompletableFuture<Void> done = new CompletableFuture<>();
        StreamObserver<HandleRequest>[] req = new StreamObserver[1];
        req[0] = UserfaultfdServiceGrpc.newStub(ch).handle(observer(r -> {
            if (r.hasMsgs()) {
                synchronized (results) {
                    results.addAll(r.getMsgs().getResultsList());
                }
                HandleRequestBatch.Builder b = HandleRequestBatch.newBuilder();
                for (UffdMsg m : r.getMsgs().getMsgsList()) {
                    long a = m.getPagefault().getAddress() & -PAGE;
                    synchronized (faulted) {
                        faulted.add(a);
                    }
                    b.addRequests(copy(a, pid, fd, a, PAGE));
                }
                synchronized (req) {
                    req[0].onNext(HandleRequest.newBuilder().setBatch(b).build());
                }
            } else if (r.hasResults()) {
                synchronized (results) {
                    results.addAll(r.getResults().getResultsList());
                }
            }
        }, done));
        synchronized (req) {
            req[0].onNext(HandleRequest.newBuilder()
                    .setAttach(HandleAttach.newBuilder().setPid(pid).setFd(fd).setMaxBatch(32)
                            .setResultsWithMsgs(resultsWithMsgs)).build());
        }
        awaitBlocked(0, "faults blocked on the uffd");
        synchronized (req) {
            req[0].onCompleted();
        }
        done.get(20, TimeUnit.SECONDS);

        TreeSet<Long> want = new TreeSet<>();
        for (int p = 0; p < 8; p++) {
            want.add(addr + (long) p * PAGE);
        }
        synchronized (faulted) {
            assertThat(new TreeSet<>(faulted)).as("pages faulted by the storm's threads").isEqualTo(want);
            assertThat(faulted).as("each fault read once").hasSize(8);
        }
        synchronized (results) {
            assertThat(results).as("one result per COPY").hasSize(8);
            assertThat(results).allSatisfy(r -> {
                assertThat(r.hasError()).as("COPY %x: %s", r.getRequestId(), r.getError()).isFalse();
                assertThat(r.getBytes()).isEqualTo(PAGE);
            });
        }
        // a woken thread leaves the uffd's wait queue (total_faults 0) just before it retries its store: poll
        for (long a : want) {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            ByteBuffer b;
            do {
                var read = procs.access(AccessRequest.newBuilder().setPid(pid).setAddr(a).setLen(16)
                        .setMode(AccessMode.ACCESS_MODE_USER).build());
                assertThat(read.getSignal()).isZero();
                b = read.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
            } while (b.getLong(b.position()) != a && System.nanoTime() < until && sleep());
            assertThat(b.getLong(b.position())).as("the abandoned store at %x landed", a).isEqualTo(a);
            assertThat(b.getLong(b.position() + 8)).as("its round").isEqualTo(5);
        }
    }
}
