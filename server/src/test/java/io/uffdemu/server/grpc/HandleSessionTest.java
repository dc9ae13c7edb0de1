package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.stub.ServerCallStreamObserver;
import io.uffdemu.api.v1.AddrRange;
import io.uffdemu.api.v1.HandleAttach;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleRequestBatch;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.api.v1.RangeRequest;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.config.UffdemuProperties;
import io.uffdemu.server.mm.UffdMsg;
import java.lang.reflect.Proxy;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.util.unit.DataSize;

/**
 * {@link HandleSession} without a transport. Manual inbound flow control: automatic request(1) per message is off,
 * at most {@link HandleSession#INBOUND_WINDOW} messages are asked for and not yet processed, never none (the
 * stream must not stall), and the transport is asked for more once per {@link HandleSession#INBOUND_REFILL}
 * messages. Where resolutions run: inline when the backend says they cannot block, else off the call's thread,
 * and onCompleted still waits for them.
 */
class HandleSessionTest {
    static UffdemuProperties props() {
        return new UffdemuProperties("emulated",
                new UffdemuProperties.Emulated(DataSize.ofMegabytes(64), DataSize.ofMegabytes(0), 0, 0, false, "6.18",
                        true),
                new UffdemuProperties.Limits(DataSize.ofMegabytes(16), 1 << 20, 4096, Duration.ofHours(1),
                        DataSize.ofMegabytes(64), Duration.ofSeconds(30)),
                new UffdemuProperties.Auth(List.of(), null, false, List.of("admin")),
                new UffdemuProperties.Quotas(256, 20000, 1024), new UffdemuProperties.Handler(Duration.ZERO));
    }

    interface Wake {
        void run(long start) throws InterruptedException;
    }

    /** A backend whose resolutions succeed at once and whose uffd stays empty. */
    static MemoryBackend backend() {
        return backend(false, start -> {
        });
    }

    /** A backend whose uffd stays empty; a WAKE runs {@code wake}. */
    static MemoryBackend backend(boolean mayBlock, Wake wake) {
        return (MemoryBackend) Proxy.newProxyInstance(MemoryBackend.class.getClassLoader(),
                new Class<?>[] {MemoryBackend.class}, (proxy, m, a) -> switch (m.getName()) {
                    case "resolutionsMayBlock" -> mayBlock;
                    case "uffdRead" -> {
                        long left = (long) a[3] - System.nanoTime();
                        if (left > 0) {
                            Thread.sleep(Math.min(50, left / 1_000_000));
                        }
                        yield List.of();
                    }
                    case "uffdWake" -> {
                        wake.run((long) a[2]);
                        yield null;
                    }
                    case "hashCode" -> System.identityHashCode(proxy);
                    case "equals" -> proxy == a[0];
                    case "toString" -> "test backend";
                    default -> throw new UnsupportedOperationException(m.getName());
                });
    }

    static final class Out extends ServerCallStreamObserver<HandleResponse> {
        volatile boolean autoRequestDisabled;
        volatile int requested;
        volatile int requestCalls;
        final List<HandleResponse> sent = new CopyOnWriteArrayList<>();
        volatile boolean completed;

        @Override
        public boolean isCancelled() {
            return false;
        }

        @Override
        public void setOnCancelHandler(Runnable r) {
        }

        @Override
        public void setOnCloseHandler(Runnable r) {
        }

        @Override
        public void setCompression(String c) {
        }

        @Override
        public void disableAutoRequest() {
            autoRequestDisabled = true;
        }

        @Override
        public boolean isReady() {
            return true;
        }

        @Override
        public void setOnReadyHandler(Runnable r) {
        }

        @Override
        public void disableAutoInboundFlowControl() {
            autoRequestDisabled = true;
        }

        @Override
        public synchronized void request(int n) {
            requested += n;
            requestCalls++;
        }

        @Override
        public void setMessageCompression(boolean b) {
        }

        @Override
        public void onNext(HandleResponse r) {
            sent.add(r);
        }

        @Override
        public void onError(Throwable t) {
            throw new AssertionError("stream failed", t);
        }

        @Override
        public void onCompleted() {
            completed = true;
        }
    }

    @Test
    @Timeout(20)
    void asksForMessagesInBulkWithABoundedWindowThatNeverEmpties() {
        UffdemuProperties props = props();
        TenantGuard guard = new TenantGuard(props);
        MemoryBackend backend = backend();
        var service = new UserfaultfdGrpcService(backend, props, guard);
        Out out = new Out();
        guard.streamOpened(Tenants.DEFAULT);
        HandleSession s = new HandleSession(service, backend, out, Tenants.DEFAULT);
        assertThat(out.autoRequestDisabled).isTrue();
        assertThat(out.requested).isEqualTo(HandleSession.INBOUND_WINDOW);

        int n = 31;
        s.onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(1).setFd(3)).build());
        int processed = 1;
        for (int i = 1; i < n; i++) {
            int outstanding = out.requested - processed;
            assertThat(outstanding).as("asked for and not processed, after %d", processed)
                    .isBetween(1, HandleSession.INBOUND_WINDOW);
            s.onNext(HandleRequest.newBuilder().setRequestId(i).setWake(RangeRequest.newBuilder().setPid(1).setFd(3)
                    .setRange(AddrRange.newBuilder().setStart(0x10000).setLen(4096))).build());
            processed++;
        }
        assertThat(out.requested - processed).isBetween(1, HandleSession.INBOUND_WINDOW);
        // one request up front, then one per INBOUND_REFILL messages processed
        assertThat(out.requestCalls).isEqualTo(1 + n / HandleSession.INBOUND_REFILL);
        s.onCompleted();
        assertThat(out.completed).isTrue();
        // resolutions run inline: every answer is out by the time onNext returns, in order
        assertThat(out.sent.stream().map(r -> r.getResult().getRequestId()).toList())
                .containsExactlyElementsOf(java.util.stream.LongStream.range(1, n).boxed().toList());
    }

    /**
     * A backend whose resolutions may block: they run off the call's thread, so onNext returns while one is stuck
     * (a cancel would be delivered at once), and onCompleted still waits for it before completing the stream.
     */
    @Test
    @Timeout(20)
    void resolutionsThatMayBlockRunOffTheCallThreadAndOnCompletedWaitsForThem() throws Exception {
        UffdemuProperties props = props();
        TenantGuard guard = new TenantGuard(props);
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        List<Thread> ran = new CopyOnWriteArrayList<>();
        MemoryBackend backend = backend(true, start -> {
            if (start == 0x10000) {
                ran.add(Thread.currentThread());
                release.await();
            }
        });
        var service = new UserfaultfdGrpcService(backend, props, guard);
        Out out = new Out();
        guard.streamOpened(Tenants.DEFAULT);
        HandleSession s = new HandleSession(service, backend, out, Tenants.DEFAULT);
        s.onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(1).setFd(3)).build());
        s.onNext(HandleRequest.newBuilder().setRequestId(7).setWake(RangeRequest.newBuilder().setPid(1).setFd(3)
                .setRange(AddrRange.newBuilder().setStart(0x10000).setLen(4096))).build());
        long until = System.nanoTime() + 5_000_000_000L;
        while (ran.isEmpty() && System.nanoTime() < until) {
            Thread.sleep(5);
        }
        assertThat(ran).hasSize(1).doesNotContain(Thread.currentThread());
        assertThat(out.sent).isEmpty();
        Thread.ofVirtual().start(() -> {
            try {
                Thread.sleep(200);
            } catch (InterruptedException e) {
                return;
            }
            release.countDown();
        });
        s.onCompleted();
        assertThat(out.completed).isTrue();
        assertThat(out.sent.stream().map(r -> r.getResult().getRequestId()).toList()).containsExactly(7L);
    }

    /**
     * Resolutions that may block are counted processed when they have run, not when queued: while one is stuck,
     * the transport is asked for no more than the window, so a client cannot grow the queue of resolutions
     * without bound; once they run, the window refills and every result goes out in order.
     */
    @Test
    @Timeout(20)
    void queuedResolutionsHoldTheWindowUntilTheyHaveRun() throws Exception {
        UffdemuProperties props = props();
        TenantGuard guard = new TenantGuard(props);
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        MemoryBackend backend = backend(true, start -> release.await());
        var service = new UserfaultfdGrpcService(backend, props, guard);
        Out out = new Out();
        guard.streamOpened(Tenants.DEFAULT);
        HandleSession s = new HandleSession(service, backend, out, Tenants.DEFAULT);
        s.onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(1).setFd(3)).build());
        int n = 20;
        for (int i = 1; i <= n; i++) {
            s.onNext(HandleRequest.newBuilder().setRequestId(i).setWake(RangeRequest.newBuilder().setPid(1).setFd(3)
                    .setRange(AddrRange.newBuilder().setStart(0x10000).setLen(4096))).build());
        }
        Thread.sleep(100); // the ops thread is stuck in the first WAKE
        assertThat(out.requested).as("asked for while %d resolutions wait to run", n)
                .isLessThanOrEqualTo(HandleSession.INBOUND_WINDOW);
        release.countDown();
        long until = System.nanoTime() + 5_000_000_000L;
        while (out.sent.size() < n && System.nanoTime() < until) {
            Thread.sleep(5);
        }
        s.onCompleted(); // waits for ops: each resolution has counted itself processed (after sending its result)
        assertThat(out.completed).isTrue();
        // 1 + n processed: one request up front, one per INBOUND_REFILL processed
        assertThat(out.requested).isEqualTo(HandleSession.INBOUND_WINDOW
                + (1 + n) / HandleSession.INBOUND_REFILL * HandleSession.INBOUND_REFILL);
        assertThat(out.sent.stream().map(r -> r.getResult().getRequestId()).toList())
                .containsExactlyElementsOf(java.util.stream.LongStream.rangeClosed(1, n).boxed().toList());
    }

    /** A backend whose uffd holds the messages in {@code msgs}, and whose resolutions succeed at once. */
    static MemoryBackend queued(java.util.concurrent.BlockingQueue<UffdMsg> msgs) {
        return (MemoryBackend) Proxy.newProxyInstance(MemoryBackend.class.getClassLoader(),
                new Class<?>[] {MemoryBackend.class}, (proxy, m, a) -> switch (m.getName()) {
                    case "resolutionsMayBlock" -> false;
                    case "uffdRead" -> {
                        long left = (long) a[3] - System.nanoTime();
                        UffdMsg got = left > 0 ? msgs.poll(Math.min(50_000_000L, left),
                                java.util.concurrent.TimeUnit.NANOSECONDS) : msgs.poll();
                        yield got == null ? List.of() : List.of(got);
                    }
                    case "uffdWake" -> null;
                    case "hashCode" -> System.identityHashCode(proxy);
                    case "equals" -> proxy == a[0];
                    case "toString" -> "test backend";
                    default -> throw new UnsupportedOperationException(m.getName());
                });
    }

    static HandleRequest wakes(long start, long... ids) {
        HandleRequestBatch.Builder b = HandleRequestBatch.newBuilder();
        for (long id : ids) {
            b.addRequests(HandleRequest.newBuilder().setRequestId(id).setWake(RangeRequest.newBuilder().setPid(1)
                    .setFd(3).setRange(AddrRange.newBuilder().setStart(start).setLen(4096))));
        }
        return HandleRequest.newBuilder().setBatch(b).build();
    }

    static HandleRequest attach(int maxBatch, boolean resultsWithMsgs) {
        return HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(1).setFd(3)
                .setMaxBatch(maxBatch).setResultsWithMsgs(resultsWithMsgs)).build();
    }

    static void waitFor(java.util.function.BooleanSupplier c) throws InterruptedException {
        long until = System.nanoTime() + 5_000_000_000L;
        while (!c.getAsBoolean() && System.nanoTime() < until) {
            Thread.sleep(2);
        }
        assertThat(c.getAsBoolean()).as("condition within 5 s").isTrue();
    }

    record Setup(HandleSession s, Out out, java.util.concurrent.BlockingQueue<UffdMsg> msgs) {
    }

    static Setup session() {
        UffdemuProperties props = props();
        TenantGuard guard = new TenantGuard(props);
        guard.created(1);
        var msgs = new java.util.concurrent.LinkedBlockingQueue<UffdMsg>();
        MemoryBackend backend = queued(msgs);
        var service = new UserfaultfdGrpcService(backend, props, guard);
        Out out = new Out();
        guard.streamOpened(Tenants.DEFAULT);
        return new Setup(new HandleSession(service, backend, out, Tenants.DEFAULT), out, msgs);
    }

    /** Holds the session's held-results flusher at its start until {@code open}; counts the flushers that came. */
    record Gate(java.util.concurrent.CountDownLatch open, java.util.concurrent.atomic.AtomicInteger entered) {
    }

    static Gate gate(HandleSession s) {
        Gate g = new Gate(new java.util.concurrent.CountDownLatch(1), new java.util.concurrent.atomic.AtomicInteger());
        s.beforeHeldFlush = () -> {
            g.entered().incrementAndGet();
            try {
                g.open().await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        };
        return g;
    }

    static List<Long> ids(List<IoctlResult> rs) {
        return rs.stream().map(IoctlResult::getRequestId).toList();
    }

    /**
     * results_with_msgs: a batch's results are held, and the message batch that follows (as when the woken thread
     * faults again) carries them, whole and in order; nothing else is sent for them.
     */
    @Test
    @Timeout(20)
    void heldResultsTravelWithTheNextMessageBatch() throws Exception {
        Setup t = session();
        Gate flusher = gate(t.s());
        t.s().onNext(attach(8, true));
        t.s().onNext(wakes(0x20000, 5, 6, 7)); // inline: held when onNext returns
        assertThat(t.out().sent).isEmpty();
        t.msgs().add(new UffdMsg.Pagefault(1, 1, 0x20000, 0));
        waitFor(() -> !t.out().sent.isEmpty());
        HandleResponse r = t.out().sent.getFirst();
        assertThat(r.getKindCase()).isEqualTo(HandleResponse.KindCase.MSGS);
        assertThat(r.getMsgs().getMsgsList()).extracting(m -> m.getPagefault().getAddress()).containsExactly(0x20000L);
        assertThat(ids(r.getMsgs().getResultsList())).containsExactly(5L, 6L, 7L);
        assertThat(r.getMsgs().getResultsList()).allMatch(x -> !x.hasError());
        flusher.open().countDown();
        Thread.sleep(100); // the flusher finds nothing left
        assertThat(t.out().sent).hasSize(1);
        t.s().onCompleted();
        assertThat(t.out().sent).hasSize(1);
        assertThat(t.out().completed).isTrue();
    }

    /** Results that no message batch follows are sent on their own; several batches' results in order. */
    @Test
    @Timeout(20)
    void heldResultsThatNoMessageFollowsAreSentOnTheirOwn() throws Exception {
        Setup t = session();
        t.s().onNext(attach(8, true));
        t.s().onNext(wakes(0x30000, 1, 2));
        t.s().onNext(wakes(0x30000, 3));
        waitFor(() -> t.out().sent.stream().mapToInt(x -> x.getResults().getResultsCount()).sum() == 3);
        assertThat(t.out().sent).allMatch(x -> x.getKindCase() == HandleResponse.KindCase.RESULTS);
        assertThat(t.out().sent.stream().flatMap(x -> ids(x.getResults().getResultsList()).stream()).toList())
                .containsExactly(1L, 2L, 3L);
        // a single resolution's result goes after the batch results held before it
        Gate flusher = gate(t.s());
        int before = t.out().sent.size();
        t.s().onNext(wakes(0x30000, 4));
        t.s().onNext(HandleRequest.newBuilder().setRequestId(9).setWake(RangeRequest.newBuilder().setPid(1).setFd(3)
                .setRange(AddrRange.newBuilder().setStart(0x30000).setLen(4096))).build());
        List<HandleResponse> after = t.out().sent.subList(before, t.out().sent.size());
        assertThat(after).extracting(HandleResponse::getKindCase)
                .containsExactly(HandleResponse.KindCase.RESULTS, HandleResponse.KindCase.RESULT);
        assertThat(ids(after.getFirst().getResults().getResultsList())).containsExactly(4L);
        assertThat(after.get(1).getResult().getRequestId()).isEqualTo(9);
        flusher.open().countDown();
        t.s().onCompleted();
    }

    /** A stream the client completes sends the results still held before it completes; none is sent after. */
    @Test
    @Timeout(20)
    void heldResultsGoOutBeforeTheStreamCompletes() throws Exception {
        Setup t = session();
        Gate flusher = gate(t.s());
        t.s().onNext(attach(8, true));
        t.s().onNext(wakes(0x30000, 11, 12));
        assertThat(t.out().sent).isEmpty();
        t.s().onCompleted();
        assertThat(t.out().completed).isTrue();
        assertThat(t.out().sent).hasSize(1);
        assertThat(ids(t.out().sent.getFirst().getResults().getResultsList())).containsExactly(11L, 12L);
        flusher.open().countDown();
        Thread.sleep(100);
        assertThat(t.out().sent).as("nothing after the end").hasSize(1);
    }

    /** Without results_with_msgs (or with max_batch 1) a batch's results go out at once, on their own. */
    @Test
    @Timeout(20)
    void withoutTheOptionResultsAreSentAtOnce() throws Exception {
        for (HandleRequest a : List.of(attach(8, false), attach(1, true))) {
            Setup t = session();
            java.util.concurrent.atomic.AtomicBoolean flusher = new java.util.concurrent.atomic.AtomicBoolean();
            t.s().beforeHeldFlush = () -> flusher.set(true);
            t.s().onNext(a);
            t.s().onNext(wakes(0x30000, 21, 22));
            assertThat(t.out().sent).as("%s", a.getAttach()).hasSize(1);
            assertThat(ids(t.out().sent.getFirst().getResults().getResultsList())).containsExactly(21L, 22L);
            t.s().onCompleted();
            assertThat(flusher).as("a flusher started: results were held").isFalse();
        }
    }

    /**
     * At most 4096 results are held (one message never carries more): a batch that would take the held ones past
     * that sends them first, on their own. An empty batch is answered at once, with nothing held.
     */
    @Test
    @Timeout(20)
    void heldResultsAreBoundedAndAnEmptyBatchIsAnsweredAtOnce() throws Exception {
        Setup t = session();
        Gate flusher = gate(t.s());
        t.s().onNext(attach(8, true));
        t.s().onNext(HandleRequest.newBuilder().setBatch(HandleRequestBatch.getDefaultInstance()).build());
        assertThat(t.out().sent).hasSize(1);
        assertThat(t.out().sent.getFirst().getKindCase()).isEqualTo(HandleResponse.KindCase.RESULTS);
        assertThat(t.out().sent.getFirst().getResults().getResultsCount()).isZero();
        Thread.sleep(50);
        assertThat(flusher.entered().get()).as("no flusher for an empty batch").isZero();
        long[] first = java.util.stream.LongStream.range(0, 3000).toArray();
        long[] second = java.util.stream.LongStream.range(3000, 5000).toArray();
        t.s().onNext(wakes(0x30000, first));
        assertThat(t.out().sent).as("3000 held").hasSize(1);
        t.s().onNext(wakes(0x30000, second)); // 5000 would be held: the 3000 go first
        assertThat(t.out().sent).hasSize(2);
        assertThat(ids(t.out().sent.get(1).getResults().getResultsList()))
                .containsExactlyElementsOf(java.util.stream.LongStream.of(first).boxed().toList());
        t.s().onCompleted(); // the 2000 still held go before the end
        assertThat(t.out().sent).hasSize(3);
        assertThat(ids(t.out().sent.get(2).getResults().getResultsList()))
                .containsExactlyElementsOf(java.util.stream.LongStream.of(second).boxed().toList());
        waitFor(() -> flusher.entered().get() == 1);
        flusher.open().countDown();
    }
}
