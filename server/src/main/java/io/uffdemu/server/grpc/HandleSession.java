package io.uffdemu.server.grpc;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.ErrnoInfo;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.api.v1.IoctlResultBatch;
import io.uffdemu.api.v1.UffdMsgBatch;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.UffdMsg;
import io.uffdemu.server.mm.Userfaultfd;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One Handle stream: a reader (a virtual thread doing read(2) on the uffd) pushes messages while the client
 * can take them — when it cannot, messages stay queued in the uffd, as in the kernel — and resolutions sent
 * by the client run in order.
 *
 * <p>Where resolutions run: when the backend says none of them can wait without bound
 * ({@link MemoryBackend#resolutionsMayBlock} false: the emulated backend, whose ioctls only take its kernel
 * lock, never held across a wait) they run inline in {@link #onNext}, on the call's own thread: gRPC delivers
 * onNext/onCompleted/onError and the cancel handler of one call one at a time, in order, so batch items, single
 * resolutions and onCompleted keep their order, and no hand-off to another thread is paid per message. Otherwise
 * (the Linux backend: a UFFDIO_POISON, or a COPY over remembered hugetlb bookkeeping, takes the process's mapping
 * lock, which a munmap or mremap holds while the kernel waits for its uffd event to be read — by this stream's
 * reader, which waits for the client) they run in order on their own virtual thread ({@code ops}), so that a
 * cancel or an error of the stream is still delivered at once and ends the reader and orphans the uffd, instead
 * of waiting behind a resolution that waits for that very reader.
 *
 * <p>Inbound flow control is manual: gRPC's automatic mode asks the transport for one more message after each
 * one, which wakes the Netty event loop every message. Here at most {@link #INBOUND_WINDOW} messages are asked
 * for and not yet processed, and more are asked for {@link #INBOUND_REFILL} at a time. A message is processed when
 * its resolutions have run: when its onNext returns if they run inline, when {@code ops} has run them otherwise, so
 * that a client sending resolutions faster than the backend applies them is held back by the transport instead of
 * growing {@code ops}'s queue without bound. (Held back messages occupy HTTP/2 flow-control window, the stream's
 * and the connection's: while a resolution is stuck, a client that keeps sending on the Handle stream can fill
 * the connection's window and stall its other calls on that connection until the resolution runs. The SDK never
 * blocks a transport thread on this, and its other calls still complete once the window reopens.)
 *
 * <p>Batching (issue 9): with {@code HandleAttach.max_batch > 1} each HandleResponse carries up to that many of
 * the messages one read(2) returned ({@code msgs}); a {@code HandleRequest.batch} of resolutions runs in order
 * and is answered by one {@code results}. Neither side waits to fill a batch. Consecutive COPYs of a batch go to
 * the backend as one {@link MemoryBackend#uffdCopyBatch} (one kernel lock acquisition in the emulated backend),
 * with the same results as one by one.
 *
 * <p>Results with messages ({@code HandleAttach.results_with_msgs}, issue 9): a batch's results are held instead
 * of sent, and go out in the next message batch ({@code UffdMsgBatch.results}). A batch of resolutions wakes
 * faulting threads that usually fault again at once, so their messages follow within a few scheduling rounds and
 * the stream carries one message where it carried two (one write and one event-loop wake-up on each side fewer;
 * and the result's serialization no longer delays the woken threads). Results that no message batch picks up are
 * sent on their own by a virtual thread started when the first of them was held ({@link #flushHeld}), which first
 * yields {@link #HELD_YIELDS} times. On one carrier (the emulated backend's default on 2 processors) that puts it
 * behind the woken threads, then behind the reader they wake, and many results travel with messages
 * (docs/benchmarks.md item 26). With idle carriers a yield returns at once, and on the Linux backend the woken
 * threads are another process's: there results often go on their own, as before, after one virtual thread's start
 * per batch. Held results are sent before the stream completes (onCompleted), and on their own before more than
 * {@link #MAX_BATCH} would be held; a stream that fails loses them, as it loses results in flight.
 */
final class HandleSession implements StreamObserver<HandleRequest> {
    private final UserfaultfdGrpcService service;
    private final MemoryBackend backend;
    private final ServerCallStreamObserver<HandleResponse> out;
    /** Where resolutions run when they may block (see the class comment); null = inline. Set by attach. */
    private volatile ExecutorService ops;
    /**
     * The stream's hold on its copy region (HandleAttach.copy_region_bytes): the region and the generation it was
     * given at, and whether it is kept for the client after the stream (keep_copy_region). Null when there is none
     * or it was retired: each stream retires its region once, and never one that has gone to another stream since.
     */
    private record RegionLease(CopyRegion region, int generation, boolean keep) {
    }

    private volatile RegionLease region;
    private static final java.util.concurrent.atomic.AtomicBoolean REGION_WARNED =
            new java.util.concurrent.atomic.AtomicBoolean();
    private static final System.Logger LOG = System.getLogger(HandleSession.class.getName());
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition ready = lock.newCondition();
    private volatile boolean finished;
    private Thread reader;
    private long key = -1;
    private int pid;
    private int fd;
    private int maxBatch = 1;
    /** HandleAttach.results_with_msgs (and max_batch > 1): batch results are held for the next message batch. */
    private volatile boolean resultsWithMsgs;
    /** Batch results held for the next message batch (see the class comment), in order. Guarded by {@code out}. */
    private List<IoctlResult> held;
    /** A virtual thread is on its way to send {@link #held} if no message batch takes them. Guarded by out. */
    private boolean heldFlusher;
    /** Tests: runs in the held results' flusher before it looks at them. */
    volatile Runnable beforeHeldFlush;
    private final String tenant;
    private boolean stopped;
    /** Messages processed (see the class comment): by onNext, or by {@code ops} for the ones it ran. */
    private final java.util.concurrent.atomic.AtomicLong processed = new java.util.concurrent.atomic.AtomicLong();

    /** The most inbound messages asked of the transport and not yet processed (see the class comment). */
    static final int INBOUND_WINDOW = 4;
    /** How many more are asked for at once, each time that many were processed (at most INBOUND_WINDOW). */
    static final int INBOUND_REFILL = 3;

    HandleSession(UserfaultfdGrpcService service, MemoryBackend backend, ServerCallStreamObserver<HandleResponse> out,
            String tenant) {
        this.service = service;
        this.tenant = tenant;
        this.backend = backend;
        this.out = out;
        out.setOnReadyHandler(() -> {
            lock.lock();
            try {
                ready.signalAll();
            } finally {
                lock.unlock();
            }
        });
        out.setOnCancelHandler(() -> stop(true));
        // a call closed by the server without this session's doing (TenantInterceptor refusing a message for
        // another tenant's process) is neither cancelled nor completed from here: without this the reader would
        // wait for a ready stream forever and the uffd would stay attached, refusing every later Handle stream
        out.setOnCloseHandler(() -> {
            if (!finished) {
                stop(true);
            }
        });
        // runs inside the service method (UserfaultfdGrpcService.handle), where gRPC still lets us turn off its
        // request(1) after every message
        out.disableAutoRequest();
        out.request(INBOUND_WINDOW);
    }

    @Override
    public void onNext(HandleRequest r) {
        boolean queued = false;
        try {
            queued = receive(r);
        } finally {
            if (!queued) {
                processed();
            }
        }
    }

    /** One more message processed: asks the transport for more once per {@link #INBOUND_REFILL}. Any thread. */
    private void processed() {
        if (processed.incrementAndGet() % INBOUND_REFILL == 0 && !finished) {
            out.request(INBOUND_REFILL);
        }
    }

    /** Handles one inbound message; true when its resolutions were queued on {@code ops} (processed later). */
    private boolean receive(HandleRequest r) {
        if (finished) {
            return false;
        }
        if (key < 0) {
            if (r.getKindCase() != HandleRequest.KindCase.ATTACH) {
                fail(Status.INVALID_ARGUMENT.withDescription("the first HandleRequest must be attach")
                        .asRuntimeException());
                return false;
            }
            int mb = r.getAttach().getMaxBatch();
            if (mb < 0 || mb > MAX_BATCH) {
                fail(Status.INVALID_ARGUMENT.withDescription("max_batch must be between 0 and " + MAX_BATCH)
                        .asRuntimeException());
                return false;
            }
            maxBatch = Math.max(1, mb);
            resultsWithMsgs = maxBatch > 1 && r.getAttach().getResultsWithMsgs();
            attach(r.getAttach().getPid(), r.getAttach().getFd(),
                    service.copyRegionSize(r.getAttach().getCopyRegionBytes()),
                    r.getAttach().hasReuseCopyRegion() ? r.getAttach().getReuseCopyRegion() : null,
                    r.getAttach().getKeepCopyRegion());
            return false;
        }
        if (r.getKindCase() == HandleRequest.KindCase.BATCH) {
            List<HandleRequest> items = r.getBatch().getRequestsList();
            if (items.size() > MAX_BATCH) {
                fail(Status.INVALID_ARGUMENT.withDescription("a batch holds at most " + MAX_BATCH + " requests")
                        .asRuntimeException(), true);
                return false;
            }
            return run(() -> withRegion(reg -> resolveBatch(items, reg)));
        }
        return run(() -> withRegion(reg -> {
            IoctlResult res = resolveOne(r, false, reg);
            if (res != null) {
                if (resultsWithMsgs) {
                    sendHeld(); // results go out in the order the resolutions ran
                }
                send(HandleResponse.newBuilder().setResult(res).build());
            }
        }));
    }

    /**
     * Runs one resolution run with the stream's copy region acquired (null when there is none, or it is closed),
     * released after: the region is not unmapped under it.
     */
    private void withRegion(java.util.function.Consumer<CopyRegion> work) {
        RegionLease l = region;
        CopyRegion reg = l != null && l.region().acquire(l.generation()) ? l.region() : null;
        try {
            work.accept(reg);
        } finally {
            if (reg != null) {
                reg.release();
            }
        }
    }

    /** Runs a batch of resolutions in order (consecutive COPYs as one backend call) and sends their results. */
    private void resolveBatch(List<HandleRequest> items, CopyRegion reg) {
        IoctlResult[] results = new IoctlResult[items.size()];
        int i = 0;
        while (i < items.size()) {
            int j = i;
            while (j < items.size() && items.get(j).getKindCase() == HandleRequest.KindCase.COPY) {
                j++;
            }
            if (j - i > 1) {
                if (!copyRun(items.subList(i, j), results, i, reg)) {
                    return;
                }
                i = j;
                continue;
            }
            IoctlResult res = resolveOne(items.get(i), true, reg);
            if (res == null) {
                return;
            }
            results[i++] = res;
        }
        if (resultsWithMsgs && results.length > 0) {
            hold(java.util.Arrays.asList(results));
        } else {
            send(HandleResponse.newBuilder().setResults(IoctlResultBatch.newBuilder()
                    .addAllResults(java.util.Arrays.asList(results))).build());
        }
    }

    /** How many times the held results' flusher yields before it sends them on their own (the class comment). */
    static final int HELD_YIELDS = 3;

    /** Holds a batch's results for the next message batch, and makes sure a flusher will send them if none comes. */
    private void hold(List<IoctlResult> results) {
        boolean start;
        synchronized (out) {
            if (finished) {
                return;
            }
            if (held != null && held.size() + results.size() > MAX_BATCH) {
                sendHeld(); // at most MAX_BATCH held, so one message carries at most that many results
            }
            if (held == null) {
                held = new ArrayList<>(results);
            } else {
                held.addAll(results);
            }
            start = !heldFlusher;
            heldFlusher = true;
        }
        if (start) {
            try {
                Thread.ofVirtual().name("uffdemu-handle-results").start(this::flushHeld);
            } catch (RuntimeException | OutOfMemoryError e) {
                synchronized (out) {
                    heldFlusher = false;
                    sendHeld(); // no thread to be had: now rather than never
                }
            }
        }
    }

    /** The flusher: lets the woken threads fault and the reader take their messages first, then sends what is left. */
    private void flushHeld() {
        Runnable hook = beforeHeldFlush;
        if (hook != null) {
            hook.run();
        }
        for (int i = 0; i < HELD_YIELDS; i++) {
            Thread.yield();
            synchronized (out) {
                if (held == null) {
                    heldFlusher = false;
                    return;
                }
            }
        }
        synchronized (out) {
            heldFlusher = false;
            sendHeld();
        }
    }

    /** Sends the held results on their own, if any and the stream has not ended. */
    private void sendHeld() {
        synchronized (out) {
            List<IoctlResult> h = held;
            held = null;
            if (h != null && !finished) {
                out.onNext(HandleResponse.newBuilder().setResults(IoctlResultBatch.newBuilder().addAllResults(h))
                        .build());
            }
        }
    }

    /**
     * Runs a resolution: inline, or queued on {@code ops} behind the earlier ones (see the class comment), which
     * counts its message processed once it has run. True when queued.
     */
    private boolean run(Runnable resolution) {
        ExecutorService q = ops;
        if (q == null) {
            resolution.run();
            return false;
        }
        try {
            q.submit(() -> {
                try {
                    resolution.run();
                } finally {
                    processed();
                }
            });
            return true;
        } catch (java.util.concurrent.RejectedExecutionException e) {
            return false; // the stream stopped meanwhile (ops shut down): nothing more runs
        }
    }

    static final int MAX_BATCH = 4096;

    /**
     * Runs one resolution: its result, with the errno on failure; null when the stream failed. An item of a batch
     * is checked first ({@link #checkItem}).
     */
    private IoctlResult resolveOne(HandleRequest r, boolean batchItem, CopyRegion reg) {
        try {
            if (batchItem) {
                checkItem(r);
            }
            return copied(r, service.resolve(r, reg));
        } catch (LinuxException e) {
            return failed(r, e);
        } catch (StatusRuntimeException e) {
            return invalid(r);
        } catch (Throwable t) {
            fail(Errors.map(t), true);
            return null;
        }
    }

    /**
     * Consecutive COPY items of a batch: their results at {@code results[base + i]}, exactly as {@link #resolveOne}
     * would give them one by one, but the backend runs the ops in one call ({@link MemoryBackend#uffdCopyBatch}:
     * the emulated backend takes its lock once for all). False when the stream failed.
     */
    private boolean copyRun(List<HandleRequest> items, IoctlResult[] results, int base, CopyRegion reg) {
        List<Userfaultfd.CopyOp> copyOps = new ArrayList<>(items.size());
        int[] at = new int[items.size()];
        Throwable stop = null;
        for (int i = 0; i < items.size(); i++) {
            HandleRequest r = items.get(i);
            try {
                checkItem(r);
                Userfaultfd.CopyOp op = service.copyOp(r.getCopy(), reg);
                at[copyOps.size()] = base + i;
                copyOps.add(op);
            } catch (LinuxException e) {
                results[base + i] = failed(r, e);
            } catch (StatusRuntimeException e) {
                results[base + i] = invalid(r);
            } catch (Throwable t) {
                stop = t; // the items before it still run, as one by one
                break;
            }
        }
        try {
            // when every item failed its checks, nothing goes to the backend (one by one would not call it either)
            if (!copyOps.isEmpty()) {
                backend.uffdCopyBatch(copyOps, new Userfaultfd.CopyOutcome() {
                    @Override
                    public void copied(int index, long bytes) {
                        int slot = at[index];
                        results[slot] = HandleSession.copied(items.get(slot - base), bytes);
                    }

                    @Override
                    public void failed(int index, LinuxException e) {
                        int slot = at[index];
                        results[slot] = HandleSession.failed(items.get(slot - base), e);
                    }
                });
            }
        } catch (Throwable t) {
            stop = t;
        }
        for (int i = 0; i < copyOps.size() && stop == null; i++) {
            if (results[at[i]] == null) {
                stop = new IllegalStateException("the backend reported no outcome for COPY " + i + " of a batch");
            }
        }
        if (stop != null) {
            fail(Errors.map(stop), true);
            return false;
        }
        return true;
    }

    /**
     * An item of a batch is not seen by the TenantInterceptor (it checks only a request's direct sub-messages), so
     * its process is checked here: another tenant's process is ESRCH, as the interceptor's NOT_FOUND would say.
     */
    private void checkItem(HandleRequest r) {
        int p = pidOf(r);
        if (p < 0) {
            throw new LinuxException(io.uffdemu.server.mm.Errno.EINVAL, r.getKindCase().name(), 0,
                    "not a resolution");
        }
        if (!service.guard.owns(tenant, p)) {
            throw new LinuxException(io.uffdemu.server.mm.Errno.ESRCH, r.getKindCase().name(), 0,
                    "no process " + p);
        }
    }

    private static IoctlResult copied(HandleRequest r, long bytes) {
        return IoctlResult.newBuilder().setRequestId(r.getRequestId()).setBytes(bytes).build();
    }

    private static IoctlResult failed(HandleRequest r, LinuxException e) {
        return IoctlResult.newBuilder().setRequestId(r.getRequestId()).setError(ErrnoInfo.newBuilder()
                .setErrno(e.errno().number()).setName(e.errno().name()).setCall(e.call())
                .setBytesDone(e.bytesDone())).build();
    }

    private static IoctlResult invalid(HandleRequest r) {
        return IoctlResult.newBuilder().setRequestId(r.getRequestId()).setError(ErrnoInfo.newBuilder().setErrno(22)
                .setName("EINVAL").setCall(r.getKindCase().name())).build();
    }

    /** The process a resolution names; -1 for what is not a resolution (attach, a nested batch, nothing). */
    private static int pidOf(HandleRequest r) {
        return switch (r.getKindCase()) {
            case COPY -> r.getCopy().getPid();
            case ZEROPAGE -> r.getZeropage().getPid();
            case CONTINUE -> r.getContinue().getPid();
            case WRITE_PROTECT -> r.getWriteProtect().getPid();
            case WAKE -> r.getWake().getPid();
            case POISON -> r.getPoison().getPid();
            case MOVE -> r.getMove().getPid();
            default -> -1;
        };
    }

    private void attach(int pid, int fd, long regionBytes, io.uffdemu.api.v1.CopyRegionReuse reuse, boolean keep) {
        this.pid = pid;
        this.fd = fd;
        long k = UserfaultfdGrpcService.key(pid, fd);
        // a bad pid or fd surfaces from the first read(2) as its errno (ESRCH, EBADF, ENOTTY)
        if (service.sessions.putIfAbsent(k, this) != null) {
            fail(Status.FAILED_PRECONDITION.withDescription("another Handle stream is attached to this uffd")
                    .asRuntimeException());
            return;
        }
        key = k;
        if (backend.resolutionsMayBlock()) {
            ops = Executors.newSingleThreadExecutor(Thread.ofVirtual().name("uffdemu-handle-ops").factory());
        }
        service.adopted(k);
        if (regionBytes > 0) {
            // before the reader starts: the region is the stream's first message, as HandleAttach promises
            try {
                // the one this client asks back, if the pool still has it for this tenant, else a new one
                CopyRegion reg = reuse == null ? null
                        : service.regions.take(tenant, reuse.getName(), reuse.getNonce().toByteArray(), regionBytes);
                if (reg == null) {
                    reg = CopyRegion.create(regionBytes);
                }
                long keepSeconds = keep ? service.regions.keepSeconds() : 0;
                RegionLease l = new RegionLease(reg, reg.generation(), keepSeconds > 0);
                boolean installed = false;
                synchronized (this) { // against stop(), which retires what it finds here
                    if (!stopped) {
                        region = l;
                        installed = true;
                    }
                }
                if (!installed) {
                    retire(l); // the stream ended meanwhile
                } else if (!send(HandleResponse.newBuilder().setCopyRegion(reg.info().toBuilder()
                        .setKeepSeconds((int) Math.min(Integer.MAX_VALUE, keepSeconds))).build())) {
                    retireRegion(); // the stream ended meanwhile (if stop() retired it already, this is a no-op)
                }
            } catch (java.io.IOException | RuntimeException e) {
                // no region: the client sends COPY data inline, as without one
                LOG.log(REGION_WARNED.compareAndSet(false, true) ? System.Logger.Level.WARNING
                        : System.Logger.Level.DEBUG, "no copy region for a Handle stream: {0}", e.toString());
            }
        }
        // published before it starts, under stop()'s monitor: a stop() from now on sees the thread and interrupts
        // it (the read waits without a deadline), and one before this block has set finished, which the loop
        // checks first
        Thread r = Thread.ofVirtual().name("uffdemu-handle-reader-" + pid + "-" + fd).unstarted(this::readLoop);
        synchronized (this) {
            if (finished) {
                return;
            }
            reader = r;
        }
        r.start();
    }

    /**
     * The stream's region, done with (at most once: the lease is taken out of the field): once the resolutions
     * still running are done with it, kept for its client to ask back if the stream asked for that and the client
     * had mapped it (CopyRegionPool), else unmapped.
     */
    private void retireRegion() {
        RegionLease l;
        synchronized (this) {
            l = region;
            region = null;
        }
        if (l != null) {
            retire(l);
        }
    }

    private void retire(RegionLease l) {
        l.region().retire(l.generation(), l.keep() ? r -> service.regions.put(tenant, r) : null);
    }

    private void readLoop() {
        try {
            while (!finished && !Thread.currentThread().isInterrupted()) {
                awaitReady();
                if (finished) {
                    return;
                }
                // no deadline: the stream's end interrupts this thread (the emulated read's wait is interruptible,
                // the Linux backend's polls in 50 ms slices and checks), and a closed fd or an exited process wakes
                // the read. A timed wait here cost a DelayScheduler task and two platform wake-ups per empty read
                List<UffdMsg> msgs = backend.uffdRead(pid, fd, service.maxReadMessages(), Long.MAX_VALUE);
                if (maxBatch > 1 && !msgs.isEmpty() && msgs.size() < maxBatch) {
                    // let the threads that fault right behind this one queue their messages (a resolution batch
                    // wakes many at once), then take them along: one read per batch instead of per fault
                    Thread.yield();
                    try {
                        List<UffdMsg> more = backend.uffdRead(pid, fd, maxBatch - msgs.size(), 0); // 0: do not wait
                        if (!more.isEmpty()) {
                            msgs = new java.util.ArrayList<>(msgs);
                            msgs.addAll(more);
                        }
                    } catch (InterruptedException e) {
                        // the stream is ending: what the first read consumed must still go out (or be woken)
                        Thread.currentThread().interrupt();
                    }
                }
                if (!sendAll(msgs)) {
                    // read(2) consumed these messages but the stream ended first: wake their threads so that they
                    // fault again and the next handler gets fresh messages (the kernel's WAKE without a fix)
                    wakeAll();
                    return;
                }
            }
        } catch (InterruptedException e) {
            // stream ended
        } catch (Throwable t) {
            fail(Errors.map(t));
        }
    }

    private void awaitReady() throws InterruptedException {
        lock.lock();
        try {
            while (!finished && !out.isReady()) {
                ready.await(200, TimeUnit.MILLISECONDS);
            }
        } finally {
            lock.unlock();
        }
    }

    /** Sends {@code r}; false when the stream had already ended (then nothing was sent). */
    private boolean send(HandleResponse r) {
        synchronized (out) {
            if (finished) {
                return false;
            }
            out.onNext(r);
            return true;
        }
    }

    /** Sends messages read off the uffd, batched when the client asked for it; false when the stream ended first. */
    private boolean sendAll(List<UffdMsg> msgs) {
        if (maxBatch == 1) {
            for (UffdMsg m : msgs) {
                if (!send(HandleResponse.newBuilder().setMsg(ProtoMapper.msg(m)).build())) {
                    return false;
                }
            }
            return true;
        }
        for (int i = 0; i < msgs.size(); i += maxBatch) {
            UffdMsgBatch.Builder b = UffdMsgBatch.newBuilder();
            for (UffdMsg m : msgs.subList(i, Math.min(msgs.size(), i + maxBatch))) {
                b.addMsgs(ProtoMapper.msg(m));
            }
            synchronized (out) { // as send(), taking the held results along (see the class comment)
                if (finished) {
                    return false;
                }
                if (held != null) {
                    b.addAllResults(held);
                    held = null;
                }
                out.onNext(HandleResponse.newBuilder().setMsgs(b).build());
            }
        }
        return true;
    }

    /** UFFDIO_WAKE of the whole address space: blocked threads fault again and queue fresh messages. */
    private void wakeAll() {
        try {
            backend.uffdWake(pid, fd, io.uffdemu.server.mm.Linux.MMAP_MIN_ADDR,
                    io.uffdemu.server.mm.Linux.TASK_SIZE - io.uffdemu.server.mm.Linux.MMAP_MIN_ADDR);
        } catch (RuntimeException e) {
            // the uffd or process is gone already
        }
    }

    private void fail(StatusRuntimeException e) {
        fail(e, false);
    }

    /** Ends the stream with an error; {@code abnormal} = the handler's side broke, so the grace period applies. */
    private void fail(StatusRuntimeException e, boolean abnormal) {
        synchronized (out) {
            if (finished) {
                return;
            }
            finished = true;
            try {
                out.onError(e);
            } catch (IllegalStateException ignored) {
                // already closed
            }
        }
        stop(abnormal);
    }

    private synchronized void stop(boolean abnormal) {
        finished = true;
        if (stopped) {
            return;
        }
        stopped = true;
        if (reader != null) {
            reader.interrupt();
        }
        ExecutorService q = ops;
        if (q != null) {
            q.shutdown();
        }
        retireRegion();
        service.guard.streamClosed(tenant);
        if (key >= 0) {
            service.sessions.remove(key, this);
            if (abnormal) {
                // faults this handler read but never resolved re-fault and queue fresh messages for the next
                // handler (a WAKE without a fix, as the kernel defines it)
                wakeAll();
                service.orphaned(key, pid, fd);
            }
        }
    }

    @Override
    public void onError(Throwable t) {
        stop(true);
    }

    @Override
    public void onCompleted() {
        // the handler is done: stop reading at once and free the uffd for the next Handle stream (a client may
        // re-attach right after half-closing), then let queued resolutions finish and complete the stream (inline
        // ones have all finished: they ran in the onNext calls before this one)
        synchronized (this) {
            if (reader != null) {
                reader.interrupt();
            }
            if (key >= 0) {
                service.sessions.remove(key, this);
            }
        }
        ExecutorService q = ops;
        if (q != null) {
            q.shutdown();
            try {
                q.awaitTermination(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        // the region back in the pool before the client sees the stream end (now, or when a resolution still
        // running after the wait above is done with it), so that a handler that half-closed and waited for the
        // end gets it back on its next stream
        retireRegion();
        synchronized (out) {
            if (!finished) {
                sendHeld(); // results no message batch took: before the end, not lost with it
                finished = true;
                out.onCompleted();
            }
        }
        stop(false);
    }
}
