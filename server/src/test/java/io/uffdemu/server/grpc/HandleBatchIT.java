package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.AddrRange;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.CreateProcessRequest;
import io.uffdemu.api.v1.Credentials;
import io.uffdemu.api.v1.DescribeRequest;
import io.uffdemu.api.v1.HandleAttach;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleRequestBatch;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.api.v1.MemoryServiceGrpc;
import io.uffdemu.api.v1.MmapRequest;
import io.uffdemu.api.v1.OpenRequest;
import io.uffdemu.api.v1.ProcessServiceGrpc;
import io.uffdemu.api.v1.RegisterRequest;
import io.uffdemu.api.v1.StormRequest;
import io.uffdemu.api.v1.StormResponse;
import io.uffdemu.api.v1.UffdMsg;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Issue 9's batching protocol and ProcessService.Storm over gRPC on loopback: a storm's faults arrive several
 * per HandleResponse (HandleAttach.max_batch), a HandleRequest.batch of resolutions is answered by one results
 * message in order (bad items get their own errno, the rest still run), no write is lost; bad input gets
 * INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED; a storm's deadline frees its blocked threads.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0", "uffdemu.emulated.check-invariants=true", "uffdemu.quotas.max-blocked-threads=64"})
class HandleBatchIT {
    static final int PAGE = 4096;
    static final int PAGES = 64;

    @LocalGrpcServerPort
    int port;
    ManagedChannel ch;
    ProcessServiceGrpc.ProcessServiceBlockingStub procs;
    UserfaultfdServiceGrpc.UserfaultfdServiceBlockingStub uffd;
    int pid;
    int fd;
    long addr;

    @BeforeEach
    void setUp() {
        ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create()).build();
        procs = ProcessServiceGrpc.newBlockingStub(ch);
        uffd = UserfaultfdServiceGrpc.newBlockingStub(ch);
        var mem = MemoryServiceGrpc.newBlockingStub(ch);
        pid = procs.create(CreateProcessRequest.newBuilder().setName("storm")
                .setCredentials(Credentials.newBuilder().setCapSysPtrace(true)).build()).getPid();
        addr = mem.mmap(MmapRequest.newBuilder().setPid(pid).setLen(PAGES * PAGE).setProt(3).setFlags(0x22).setFd(-1)
                .build()).getAddr();
        fd = uffd.open(OpenRequest.newBuilder().setPid(pid).build()).getFd();
        uffd.register(RegisterRequest.newBuilder().setPid(pid).setFd(fd).setMode(1)
                .setRange(AddrRange.newBuilder().setStart(addr).setLen(PAGES * PAGE)).build());
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    StormRequest.Builder storm(int threads) {
        return StormRequest.newBuilder().setPid(pid).setAddr(addr).setLen(PAGES * PAGE).setThreads(threads)
                .setWrite(true).setRound(5).setVerify(true);
    }

    int blocked() {
        return uffd.describe(DescribeRequest.newBuilder().setPid(pid).setFd(fd).build()).getTotalFaults();
    }

    @Test
    @Timeout(60)
    void stormFaultsArriveBatchedAndBatchedResolutionsAnswerInOrder() throws Exception {
        // 16 threads fault on the first 16 pages and wait, with no handler attached yet
        CompletableFuture<StormResponse> storm = CompletableFuture.supplyAsync(() -> procs.storm(storm(16).build()));
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (blocked() < 16 && System.nanoTime() < until) {
            Thread.sleep(10);
        }
        assertThat(blocked()).isEqualTo(16);

        BlockingQueue<HandleResponse> got = new LinkedBlockingQueue<>();
        List<Integer> batchSizes = new ArrayList<>();
        List<List<Long>> sentIds = new ArrayList<>();
        StreamObserver<HandleRequest>[] req = new StreamObserver[1];
        req[0] = UserfaultfdServiceGrpc.newStub(ch).handle(new StreamObserver<>() {
            @Override
            public void onNext(HandleResponse r) {
                got.add(r);
                if (r.hasMsgs()) {
                    synchronized (batchSizes) {
                        batchSizes.add(r.getMsgs().getMsgsCount());
                    }
                    // one batch answers the whole message batch, plus two bad items in the middle
                    HandleRequestBatch.Builder b = HandleRequestBatch.newBuilder();
                    for (UffdMsg m : r.getMsgs().getMsgsList()) {
                        long a = m.getPagefault().getAddress();
                        b.addRequests(HandleRequest.newBuilder().setRequestId(a).setCopy(CopyRequest.newBuilder()
                                .setPid(pid).setFd(fd).setDst(a).setData(ByteString.copyFrom(new byte[PAGE]))));
                        if (b.getRequestsCount() == 1) {
                            b.addRequests(HandleRequest.newBuilder().setRequestId(1)
                                    .setBatch(HandleRequestBatch.getDefaultInstance()));
                            b.addRequests(HandleRequest.newBuilder().setRequestId(2).setCopy(CopyRequest.newBuilder()
                                    .setPid(999_999).setFd(fd).setDst(a).setData(ByteString.copyFrom(new byte[PAGE]))));
                        }
                    }
                    synchronized (batchSizes) {
                        sentIds.add(b.getRequestsList().stream().map(HandleRequest::getRequestId).toList());
                    }
                    synchronized (req) {
                        req[0].onNext(HandleRequest.newBuilder().setBatch(b).build());
                    }
                }
            }

            @Override
            public void onError(Throwable t) {
            }

            @Override
            public void onCompleted() {
            }
        });
        synchronized (req) {
            req[0].onNext(HandleRequest.newBuilder()
                    .setAttach(HandleAttach.newBuilder().setPid(pid).setFd(fd).setMaxBatch(32)).build());
        }

        StormResponse r = storm.get(30, TimeUnit.SECONDS);
        assertThat(r.getAccesses()).isEqualTo(PAGES);
        assertThat(r.getFailed()).isZero();
        assertThat(r.getLostWrites()).as("lost writes").isZero();
        assertThat(r.getLatencyMaxNanos()).isGreaterThanOrEqualTo(r.getLatencyP50Nanos()).isPositive();

        int results = 0;
        int faults = 0;
        for (HandleResponse h : got) {
            if (h.hasMsgs()) {
                faults += h.getMsgs().getMsgsCount();
                assertThat(h.getMsgs().getMsgsList()).allMatch(m -> m.getEvent() == 0x12);
            } else {
                assertThat(h.hasResults()).as("only batches on a max_batch stream: %s", h.getKindCase()).isTrue();
                List<IoctlResult> rs = h.getResults().getResultsList();
                synchronized (batchSizes) {
                    assertThat(rs.stream().map(IoctlResult::getRequestId).toList())
                            .as("results %d answer batch %d item by item, in order", results, results)
                            .isEqualTo(sentIds.get(results));
                }
                results++;
                assertThat(rs.get(1).getRequestId()).isEqualTo(1);
                assertThat(rs.get(1).getError().getErrno()).as("a nested batch").isEqualTo(22);
                assertThat(rs.get(2).getRequestId()).isEqualTo(2);
                assertThat(rs.get(2).getError().getErrno()).as("another tenant's / no process").isEqualTo(3);
                assertThat(rs.get(0).hasError()).isFalse();
                for (int i = 3; i < rs.size(); i++) {
                    assertThat(rs.get(i).hasError()).as("item %d", i).isFalse();
                    assertThat(rs.get(i).getBytes()).isEqualTo(PAGE);
                }
            }
        }
        assertThat(faults).as("every page faulted once").isEqualTo(PAGES);
        assertThat(results).isEqualTo(batchSizes.size());
        assertThat(batchSizes.getFirst()).as("the 16 faults queued before attach came as one batch").isEqualTo(16);
        synchronized (req) {
            req[0].onCompleted();
        }
    }

    /**
     * HandleAttach.results_with_msgs over gRPC: a storm resolved batch by batch gets every batch's results exactly
     * once and in order, in the message batches that follow (UffdMsgBatch.results) or on their own; the storm loses
     * no write. On one carrier with the emulated backend, some results came with messages.
     */
    @Test
    @Timeout(60)
    void resultsTravelWithTheNextMessagesWhenAsked() throws Exception {
        List<Long> sent = new ArrayList<>();
        List<Long> answered = new ArrayList<>();
        List<IoctlResult> failed = new ArrayList<>();
        int[] carried = new int[1];
        CompletableFuture<Void> done = new CompletableFuture<>();
        StreamObserver<HandleRequest>[] req = new StreamObserver[1];
        req[0] = UserfaultfdServiceGrpc.newStub(ch).handle(observer(r -> {
            synchronized (sent) {
                List<IoctlResult> rs = r.hasResults() ? r.getResults().getResultsList()
                        : r.getMsgs().getResultsList();
                rs.forEach(x -> answered.add(x.getRequestId()));
                rs.stream().filter(IoctlResult::hasError).forEach(failed::add);
                if (r.hasMsgs()) {
                    carried[0] += r.getMsgs().getResultsCount();
                    HandleRequestBatch.Builder b = HandleRequestBatch.newBuilder();
                    for (UffdMsg m : r.getMsgs().getMsgsList()) {
                        long a = m.getPagefault().getAddress();
                        b.addRequests(HandleRequest.newBuilder().setRequestId(a).setCopy(CopyRequest.newBuilder()
                                .setPid(pid).setFd(fd).setDst(a).setData(ByteString.copyFrom(new byte[PAGE]))));
                        sent.add(a);
                    }
                    req[0].onNext(HandleRequest.newBuilder().setBatch(b).build());
                }
            }
        }, done));
        synchronized (sent) {
            req[0].onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(pid).setFd(fd)
                    .setMaxBatch(32).setResultsWithMsgs(true)).build());
        }
        StormResponse r = procs.storm(storm(16).build());
        assertThat(r.getAccesses()).isEqualTo(PAGES);
        assertThat(r.getLostWrites()).as("lost writes").isZero();
        synchronized (sent) {
            req[0].onCompleted(); // the server sends what it still holds before it completes
        }
        done.get(10, TimeUnit.SECONDS);
        synchronized (sent) {
            assertThat(sent).as("every page faulted once").hasSize(PAGES);
            assertThat(answered).as("every result once, in the order sent").containsExactlyElementsOf(sent);
            assertThat(failed).as("failed results").isEmpty();
        }
        System.out.printf("results_with_msgs: %d of %d results came with messages%n", carried[0], PAGES);
        if (wokenThreadsFaultAgainFirst()) {
            assertThat(carried[0]).as("results that came with messages").isPositive();
        } else {
            System.out.println("results_with_msgs: how many came with messages is not asserted here (more than one"
                    + " carrier, or the faulting threads are the kernel's)");
        }
    }

    /** A Handle stream's observer: each response to {@code onNext}; {@code done} ends with the stream. */
    static StreamObserver<HandleResponse> observer(java.util.function.Consumer<HandleResponse> onNext,
            CompletableFuture<Void> done) {
        return new StreamObserver<>() {
            @Override
            public void onNext(HandleResponse r) {
                onNext.accept(r);
            }

            @Override
            public void onError(Throwable t) {
                done.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
                done.complete(null);
            }
        };
    }

    /**
     * Whether a batch's woken threads fault again before its held results' flusher gives up (HandleSession): the
     * emulated backend, whose faulting threads are the server's virtual threads, on one carrier.
     */
    boolean wokenThreadsFaultAgainFirst() {
        return java.lang.management.ManagementFactory
                .getPlatformMXBean(jdk.management.VirtualThreadSchedulerMXBean.class).getParallelism() == 1;
    }

    @Test
    @Timeout(30)
    void badInputGetsTheStatusAUserExpects() {
        assertThat(code(() -> procs.storm(storm(0).build()))).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(code(() -> procs.storm(storm(5000).build()))).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(code(() -> procs.storm(storm(65).build()))).as("past the blocked-threads quota")
                .isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(code(() -> procs.storm(storm(1).setStride(8).build()))).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(code(() -> procs.storm(storm(1).setAddr(-4096).setLen(8192).build())))
                .isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(code(() -> procs.storm(storm(1).setStride(16).setLen(1L << 40).build())))
                .as("too many steps").isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(code(() -> procs.storm(storm(1).setPid(424242).build()))).isEqualTo(Status.Code.NOT_FOUND);
        // an unmapped range: every access is a SIGSEGV, reported, not thrown
        StormResponse segv = procs.storm(storm(2).setAddr(0x10000).setLen(2 * PAGE).setVerify(false).build());
        assertThat(segv.getFailed()).isEqualTo(2);
        assertThat(segv.getFirstSignal()).isEqualTo(11);
        assertThat(segv.getFirstFaultAddr()).isIn(0x10000L, 0x11000L);

        BlockingQueue<Throwable> err = new LinkedBlockingQueue<>();
        var s = UserfaultfdServiceGrpc.newStub(ch).handle(new StreamObserver<>() {
            @Override
            public void onNext(HandleResponse r) {
            }

            @Override
            public void onError(Throwable t) {
                err.add(t);
            }

            @Override
            public void onCompleted() {
            }
        });
        s.onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(pid).setFd(fd)
                .setMaxBatch(5000)).build());
        Throwable t;
        try {
            t = err.poll(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
        assertThat(Status.fromThrowable(t).getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    }

    @Test
    @Timeout(30)
    void aStormsDeadlineFreesItsBlockedThreads() throws Exception {
        long t0 = System.nanoTime();
        stormOfEightPastItsDeadline();
        awaitBlocked(0, "threads still blocked in the uffd after the deadline");
        assertThat(System.nanoTime() - t0).isLessThan(TimeUnit.SECONDS.toNanos(10));
    }

    /** A cancelled storm (no deadline) stops its threads: none stays blocked in the uffd. */
    @Test
    @Timeout(30)
    void aCancelledStormFreesItsBlockedThreads() throws Exception {
        cancelAStormOfEightBlockedThreads();
        awaitBlocked(0, "threads still blocked in the uffd after the cancel");
    }

    /** A storm of 8 threads, none of whose faults is resolved, fails at its 300 ms deadline. */
    void stormOfEightPastItsDeadline() {
        assertThatThrownBy(() -> procs.withDeadlineAfter(300, TimeUnit.MILLISECONDS).storm(storm(8).build()))
                .isInstanceOf(StatusRuntimeException.class)
                .satisfies(e -> assertThat(Status.fromThrowable(e).getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED));
    }

    /** A storm of 8 threads (no deadline) is cancelled once all 8 are blocked, and fails with CANCELLED. */
    void cancelAStormOfEightBlockedThreads() throws Exception {
        io.grpc.Context.CancellableContext ctx = io.grpc.Context.current().withCancellation();
        CompletableFuture<Throwable> call = CompletableFuture.supplyAsync(() -> {
            try {
                ctx.run(() -> procs.storm(storm(8).build()));
                return null;
            } catch (RuntimeException e) {
                return e;
            }
        });
        awaitBlocked(8, "faults blocked on the uffd before the cancel");
        ctx.cancel(null);
        assertThat(Status.fromThrowable(call.get(10, TimeUnit.SECONDS)).getCode()).isEqualTo(Status.Code.CANCELLED);
    }

    /** Waits up to 10 s for {@code n} faults blocked on the uffd (Describe total_faults), then asserts it. */
    void awaitBlocked(int n, String what) throws InterruptedException {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (blocked() != n && System.nanoTime() < until) {
            Thread.sleep(10);
        }
        assertThat(blocked()).as(what).isEqualTo(n);
    }

    /**
     * A batch of resolutions with runs of COPYs (which the server hands to the backend as one batch): one result per
     * item in order, a failing COPY in the middle of a run (EEXIST, EBADF, EINVAL, a process not found) fails
     * alone, the others fill their pages, a WAKE between runs still runs in its place.
     */
    @Test
    @Timeout(30)
    void aRunOfCopiesAnswersPerItemWithFailuresInTheMiddle() throws Exception {
        BlockingQueue<HandleResponse> got = new LinkedBlockingQueue<>();
        var s = UserfaultfdServiceGrpc.newStub(ch).handle(new StreamObserver<>() {
            @Override
            public void onNext(HandleResponse r) {
                got.add(r);
            }

            @Override
            public void onError(Throwable t) {
            }

            @Override
            public void onCompleted() {
            }
        });
        s.onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(pid).setFd(fd).setMaxBatch(8))
                .build());
        HandleRequestBatch.Builder b = HandleRequestBatch.newBuilder();
        b.addRequests(copy(10, pid, fd, addr, PAGE));
        b.addRequests(copy(11, pid, fd, addr, PAGE)); // EEXIST
        b.addRequests(copy(12, 999_999, fd, addr + PAGE, PAGE)); // no such process: ESRCH
        b.addRequests(copy(13, pid, fd + 9, addr + PAGE, PAGE)); // EBADF
        b.addRequests(copy(14, pid, fd, addr + PAGE, PAGE));
        b.addRequests(HandleRequest.newBuilder().setRequestId(15).setWake(io.uffdemu.api.v1.RangeRequest.newBuilder()
                .setPid(pid).setFd(fd).setRange(AddrRange.newBuilder().setStart(addr).setLen(PAGE))));
        b.addRequests(copy(16, pid, fd, addr + 2 * PAGE + 16, PAGE)); // EINVAL: unaligned
        b.addRequests(copy(17, pid, fd, addr + 2 * PAGE, 2 * PAGE));
        b.addRequests(copy(18, pid, fd, addr + 3 * PAGE, PAGE)); // EEXIST: filled by 17
        s.onNext(HandleRequest.newBuilder().setBatch(b).build());
        HandleResponse r = got.poll(10, TimeUnit.SECONDS);
        assertThat(r).isNotNull();
        assertThat(r.hasResults()).isTrue();
        List<String> rs = r.getResults().getResultsList().stream().map(x -> x.getRequestId() + " "
                + (x.hasError() ? x.getError().getName() + " " + x.getError().getCall() : "ok " + x.getBytes()))
                .toList();
        assertThat(rs).containsExactly("10 ok 4096", "11 EEXIST UFFDIO_COPY", "12 ESRCH COPY", "13 EBADF UFFDIO_COPY",
                "14 ok 4096", "15 ok 0", "16 EINVAL UFFDIO_COPY", "17 ok 8192", "18 EEXIST UFFDIO_COPY");
        var pm = procs.readPagemap(io.uffdemu.api.v1.ReadPagemapRequest.newBuilder().setPid(pid).setStart(addr)
                .setPages(5).build());
        assertThat(pm.getEntriesList().stream().map(e -> (e & (1L << 63)) != 0).toList())
                .containsExactly(true, true, true, true, false);
        s.onCompleted();
    }

    /**
     * Half-closing right after a batch and a single resolution: both are answered, in order, before the stream
     * completes (onCompleted waits for the resolutions sent before it), and their pages are filled.
     */
    @Test
    @Timeout(30)
    void resolutionsSentBeforeHalfCloseAreAnsweredBeforeTheStreamCompletes() throws Exception {
        List<String> events = java.util.Collections.synchronizedList(new ArrayList<>());
        CompletableFuture<Void> done = new CompletableFuture<>();
        var s = UserfaultfdServiceGrpc.newStub(ch).handle(new StreamObserver<>() {
            @Override
            public void onNext(HandleResponse r) {
                if (r.hasResults()) {
                    events.add("results " + r.getResults().getResultsList().stream()
                            .map(x -> x.getRequestId() + (x.hasError() ? " " + x.getError().getName() : ""))
                            .toList());
                } else if (r.hasResult()) {
                    events.add("result " + r.getResult().getRequestId());
                }
            }

            @Override
            public void onError(Throwable t) {
                done.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
                events.add("completed");
                done.complete(null);
            }
        });
        s.onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(pid).setFd(fd).setMaxBatch(8))
                .build());
        for (int round = 0; round < 4; round++) {
            HandleRequestBatch.Builder b = HandleRequestBatch.newBuilder();
            for (int i = 0; i < 4; i++) {
                b.addRequests(copy(100 * round + i, pid, fd, addr + (8L * round + i) * PAGE, PAGE));
            }
            s.onNext(HandleRequest.newBuilder().setBatch(b).build());
            s.onNext(copy(100 * round + 50, pid, fd, addr + (8L * round + 4) * PAGE, PAGE));
        }
        s.onCompleted();
        done.get(20, TimeUnit.SECONDS);
        List<String> want = new ArrayList<>();
        for (int round = 0; round < 4; round++) {
            int r = 100 * round;
            want.add("results [" + r + ", " + (r + 1) + ", " + (r + 2) + ", " + (r + 3) + "]");
            want.add("result " + (r + 50));
        }
        want.add("completed");
        assertThat(events).containsExactlyElementsOf(want);
        var pm = procs.readPagemap(io.uffdemu.api.v1.ReadPagemapRequest.newBuilder().setPid(pid).setStart(addr)
                .setPages(32).build());
        for (int p = 0; p < 32; p++) {
            assertThat((pm.getEntries(p) & (1L << 63)) != 0).as("page %d", p).isEqualTo(p % 8 < 5);
        }
    }

    static HandleRequest copy(long id, int pid, int fd, long dst, int len) {
        return HandleRequest.newBuilder().setRequestId(id).setCopy(CopyRequest.newBuilder().setPid(pid).setFd(fd)
                .setDst(dst).setData(ByteString.copyFrom(new byte[len]))).build();
    }

    static Status.Code code(Runnable call) {
        try {
            call.run();
        } catch (StatusRuntimeException e) {
            return e.getStatus().getCode();
        }
        return Status.Code.OK;
    }
}
