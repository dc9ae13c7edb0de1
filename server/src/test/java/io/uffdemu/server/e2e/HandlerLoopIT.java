package io.uffdemu.server.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.BatchFaultHandler;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.FallbackPolicy;
import io.uffdemu.client.FaultContext;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.StormOptions;
import io.uffdemu.client.StormResult;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.UffdemuException;
import io.uffdemu.client.Userfaultfd;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Issue 5's handler-loop behaviour against the real server. */
class HandlerLoopIT extends E2eBase {

    record Setup(Process process, Userfaultfd uffd, long base) {}

    Setup missing(UffdemuClient client, int pages) {
        Process p = client.createProcess("handler");
        long base = p.mmap(MmapOptions.anonymous((long) pages * PAGE));
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_THREAD_ID));
        uffd.register(new AddrRange(base, (long) pages * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
        return new Setup(p, uffd, base);
    }

    @Test
    @Timeout(60)
    void handlerExceptionAppliesTheFallback() throws Exception {
        Setup s = missing(client(), 2);
        List<Throwable> failures = new ArrayList<>();
        FaultHandler boom = new FaultHandler() {
            @Override
            public void onFault(FaultContext ctx) {
                throw new IllegalStateException("no snapshot for 0x" + Long.toHexString(ctx.pageAddress()));
            }

            @Override
            public void onFailure(UffdMessage.PageFault fault, Throwable cause) {
                failures.add(cause);
            }
        };
        // ZERO_FILL: the faulting thread continues with a zero page, no failure reported
        try (HandlerLoop loop = s.uffd().handle(boom,
                HandlerOptions.DEFAULT.withFaultDeadline(Duration.ofSeconds(5), FallbackPolicy.ZERO_FILL))) {
            assertThat(s.process().read(s.base(), 4).data()).containsOnly(0);
            eventually(() -> loop.stats().fallbacks() == 1);
        }
        assertThat(failures).isEmpty();
        // FAIL: onFailure gets the exception, the thread stays blocked until its access deadline
        try (HandlerLoop loop = ReattachRaceIT.handleRetryingAttachRace(s.uffd(), boom, HandlerOptions.DEFAULT)) {
            Process shortLived = s.process().withDeadline(Duration.ofSeconds(2));
            assertThatThrownBy(() -> shortLived.read(s.base() + PAGE, 4)).isInstanceOf(UffdemuException.class);
            eventually(() -> loop.stats().failed() == 1);
            assertThat(failures).singleElement().isInstanceOf(IllegalStateException.class);
        }
    }

    /**
     * A BatchFaultHandler against the real server: 32 faulting threads of a storm, message batches served whole and
     * resolved with one HandleRequest.batch each; one page's onFault throws and is zero-filled by the fallback.
     * Every write lands (the storm verifies each page), every fault is resolved or fell back once.
     */
    @Test
    @Timeout(120)
    void batchFaultHandlerServesAStormAndFailsOnlyTheFaultThatThrew() throws Exception {
        int pages = 3000;
        Setup s = missing(client(), pages);
        long bad = s.base() + 1234L * PAGE;
        byte[] data = fill(PAGE, 7);
        BatchFaultHandler h = ctx -> {
            if (ctx.pageAddress() == bad) {
                throw new IllegalStateException("no data for this page");
            }
            ctx.copy(data);
        };
        try (HandlerLoop loop = s.uffd().handle(h, HandlerOptions.DEFAULT.withWorkers(8).withResolveOnStream(true)
                .withFaultDeadline(Duration.ofSeconds(10), FallbackPolicy.ZERO_FILL))) {
            StormResult r = s.process().storm(StormOptions.writes(s.base(), (long) pages * PAGE, 32).withRound(1)
                    .withVerify(true));
            assertThat(r.failed()).isZero();
            assertThat(r.lostWrites()).isZero();
            eventually(() -> loop.stats().resolved() + loop.stats().fallbacks() == pages);
            assertThat(loop.stats().fallbacks()).isEqualTo(1);
            assertThat(loop.stats().failed()).isZero();
            assertThat(loop.stats().faults()).isEqualTo(pages);
        }
        // the page that fell back was zero-filled before the storm wrote it: past the storm's 8-byte stamp, zeros
        assertThat(s.process().read(bad + PAGE / 2, 16).data()).containsOnly(0);
        assertThat(s.process().read(s.base() + PAGE / 2, 16).data()).containsOnly(7);
    }

    @Test
    @Timeout(60)
    void faultDeadlineExpiryFallsBackToZeroFill() throws Exception {
        Setup s = missing(client(), 1);
        AtomicBoolean interrupted = new AtomicBoolean();
        try (HandlerLoop loop = s.uffd().handle(ctx -> {
            try {
                Thread.sleep(10_000);
                ctx.copy(fill(PAGE, 1));
            } catch (InterruptedException e) {
                interrupted.set(true);
                throw e;
            }
        }, HandlerOptions.DEFAULT.withFaultDeadline(Duration.ofMillis(300), FallbackPolicy.ZERO_FILL))) {
            long t0 = System.nanoTime();
            AccessResult r = s.process().read(s.base(), 16);
            assertThat(r.ok()).isTrue();
            assertThat(r.data()).containsOnly(0);
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(5));
            eventually(() -> loop.stats().fallbacks() == 1);
        }
        assertThat(interrupted).isTrue();
    }

    @Test
    @Timeout(90)
    void closeUnderLoadWakesUnservedFaultsAndTheNextHandlerServesThem() throws Exception {
        int pages = 64;
        Setup s = missing(client(), pages);
        AtomicInteger served = new AtomicInteger();
        AtomicBoolean closed = new AtomicBoolean();
        AtomicInteger afterClose = new AtomicInteger();
        CountDownLatch someServed = new CountDownLatch(8);
        HandlerLoop first = s.uffd().handle(ctx -> {
            if (closed.get()) {
                afterClose.incrementAndGet();
            }
            Thread.sleep(20);
            ctx.copy(fill(PAGE, 0x11));
            served.incrementAndGet();
            someServed.countDown();
        }, HandlerOptions.DEFAULT.withWorkers(2).withQueueCapacity(4));
        List<CompletableFuture<AccessResult>> reads = new ArrayList<>();
        for (int i = 0; i < pages; i++) {
            reads.add(s.process().async().read(s.base() + (long) i * PAGE + 8, 8));
        }
        assertThat(someServed.await(20, TimeUnit.SECONDS)).isTrue();
        long c0 = System.nanoTime();
        first.close();
        closed.set(true);
        // close drains what the server had already sent (no stall until closeTimeout, 5 s)
        assertThat(Duration.ofNanos(System.nanoTime() - c0)).isLessThan(Duration.ofSeconds(3));
        assertThat(first.termination()).isDone();
        int byFirst = served.get();
        assertThat(byFirst).isLessThan(pages);
        Thread.sleep(200);
        assertThat(afterClose).as("no callback after close()").hasValue(0);
        assertThat(served).hasValue(byFirst);

        Set<Long> second = ConcurrentHashMap.newKeySet();
        // re-attach at once: see ReattachRaceIT for why the attach may need a retry
        try (HandlerLoop loop = ReattachRaceIT.handleRetryingAttachRace(s.uffd(), ctx -> {
            second.add(ctx.pageAddress());
            ctx.copy(fill(PAGE, 0x22));
        }, HandlerOptions.DEFAULT.withWorkers(8))) {
            try {
                CompletableFuture.allOf(reads.toArray(CompletableFuture[]::new)).get(8, TimeUnit.SECONDS);
            } catch (Exception e) {
                List<Integer> hung = new ArrayList<>();
                for (int i = 0; i < pages; i++) {
                    if (!reads.get(i).isDone() || reads.get(i).isCompletedExceptionally()) {
                        hung.add(i);
                    }
                }
                System.out.println("DIAG hung=" + hung + " byFirst=" + byFirst + " first=" + first.stats()
                        + " second=" + loop.stats() + " secondTerm=" + loop.termination()
                        + " secondPages=" + second.size());
                System.out.println("DIAG pagemap=" + s.process().pagemap(s.base(), pages).stream()
                        .map(x -> x.present() ? "1" : "0").reduce("", String::concat));
                throw e;
            }
        }
        for (CompletableFuture<AccessResult> r : reads) {
            assertThat(r.join().ok()).isTrue();
            assertThat(r.join().data()[0]).isIn((byte) 0x11, (byte) 0x22);
        }
        assertThat(byFirst + second.size()).isEqualTo(pages);
    }

    /**
     * A Handle stream that dies mid-fault (its channel is killed: the stream is cancelled, not half-closed)
     * leaves the uffd open for the grace period; a new handle() within it attaches to the same uffd. Faults
     * whose message the dead stream had already taken are not delivered again (read(2) consumed them), so the
     * reconnecting handler wakes the registered range once: the blocked threads re-fault and it serves them.
     */
    @Test
    @Timeout(60)
    void droppedHandleStreamKeepsTheUffdForTheGracePeriodAndAReconnectServesPendingFaults() throws Exception {
        UffdemuClient faulter = client();
        Setup s = missing(faulter, 4);
        int pid = s.process().pid();
        int fd = s.uffd().fd();
        CompletableFuture<AccessResult>[] pending = dropHandlerMidFault(s, 2);

        Userfaultfd again = client().process(pid).userfaultfd(fd);
        try (HandlerLoop loop = ReattachRaceIT.handleRetryingAttachRace(again, ctx -> ctx.copy(fill(PAGE, 0x33)),
                HandlerOptions.DEFAULT)) {
            again.wake(new AddrRange(s.base(), 4 * PAGE));
            for (CompletableFuture<AccessResult> r : pending) {
                assertThat(r.get(10, TimeUnit.SECONDS).data()).containsOnly(0x33);
            }
        }
    }

    /**
     * Server behaviour the reconnect depends on (see the test above): without a wake, a fault already delivered
     * to the dropped stream stays blocked even though a new handler is attached within the grace period.
     */
    @Test
    @Timeout(60)
    void faultsADroppedStreamHadTakenAreDeliveredAgainToTheNextHandler() throws Exception {
        // the server wakes what a dead handler had read (a WAKE without a fix): the thread re-faults and the
        // next handler gets a fresh message, with no wake needed from the reconnecting client
        Setup s = missing(client(), 1);
        CompletableFuture<AccessResult>[] pending = dropHandlerMidFault(s, 1);
        AtomicInteger seen = new AtomicInteger();
        Userfaultfd again = client().process(s.process().pid()).userfaultfd(s.uffd().fd());
        try (HandlerLoop loop = ReattachRaceIT.handleRetryingAttachRace(again, ctx -> {
            seen.incrementAndGet();
            ctx.copy(fill(PAGE, 0x44));
        }, HandlerOptions.DEFAULT)) {
            assertThat(pending[0].get(10, TimeUnit.SECONDS).data()).containsOnly(0x44);
            assertThat(seen).hasValue(1);
        }
    }

    /** Starts a handler on a channel of its own, faults {@code pages} pages, and kills that channel. */
    @SuppressWarnings("unchecked")
    private CompletableFuture<AccessResult>[] dropHandlerMidFault(Setup s, int pages) throws Exception {
        ManagedChannel doomed = Grpc.newChannelBuilderForAddress("127.0.0.1", port,
                InsecureChannelCredentials.create()).build();
        UffdemuClient handlerClient = UffdemuClient.create(doomed, ClientConfig.DEFAULT);
        CountDownLatch gotFault = new CountDownLatch(1);
        HandlerLoop dying = handlerClient.process(s.process().pid()).userfaultfd(s.uffd().fd()).handle(ctx -> {
            gotFault.countDown();
            Thread.sleep(60_000); // never resolves
        }, HandlerOptions.DEFAULT);
        CompletableFuture<AccessResult>[] pending = new CompletableFuture[pages];
        for (int i = 0; i < pages; i++) {
            pending[i] = s.process().async().read(s.base() + (long) i * PAGE, 8);
        }
        assertThat(gotFault.await(10, TimeUnit.SECONDS)).isTrue();
        doomed.shutdownNow();
        assertThat(dying.termination()).failsWithin(Duration.ofSeconds(10));
        Thread.sleep(300);
        for (CompletableFuture<AccessResult> r : pending) {
            assertThat(r).as("the uffd is kept: the thread is still blocked").isNotDone();
        }
        handlerClient.close();
        return pending;
    }

    static void eventually(java.util.function.BooleanSupplier cond) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!cond.getAsBoolean()) {
            assertThat(System.nanoTime()).as("condition not met in 5 s").isLessThan(end);
            Thread.sleep(10);
        }
    }

    @Test
    @Timeout(60)
    void withoutReconnectTheUffdIsClosedWhenTheGracePeriodEnds() throws Exception {
        Setup s = missing(client(), 1);
        ManagedChannel doomed = Grpc.newChannelBuilderForAddress("127.0.0.1", port,
                InsecureChannelCredentials.create()).build();
        UffdemuClient handlerClient = UffdemuClient.create(doomed, ClientConfig.DEFAULT);
        CountDownLatch gotFault = new CountDownLatch(1);
        handlerClient.process(s.process().pid()).userfaultfd(s.uffd().fd()).handle(ctx -> {
            gotFault.countDown();
            Thread.sleep(60_000);
        }, HandlerOptions.DEFAULT);
        CompletableFuture<AccessResult> pending = s.process().async().read(s.base(), 8);
        assertThat(gotFault.await(10, TimeUnit.SECONDS)).isTrue();
        long t0 = System.nanoTime();
        doomed.shutdownNow();
        // grace period 3 s: then close(2) of the uffd wakes the thread, which faults in a zero page
        AccessResult r = pending.get(15, TimeUnit.SECONDS);
        assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThan(Duration.ofMillis(2500));
        assertThat(r.ok()).isTrue();
        assertThat(r.data()).containsOnly(0);
        assertThat(s.process().info().fds()).doesNotContain(s.uffd().fd());
        handlerClient.close();
    }
}
