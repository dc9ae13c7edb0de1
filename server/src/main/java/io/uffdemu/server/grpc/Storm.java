package io.uffdemu.server.grpc;

import io.uffdemu.api.v1.StormRequest;
import io.uffdemu.api.v1.StormResponse;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.LinuxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.HdrHistogram.Histogram;

/**
 * ProcessService.Storm: {@code threads} threads of a process access a range at once, inside the server, so that a
 * load test or a benchmark measures the fault round trip to its handler and not one RPC per access. Each thread
 * is a virtual thread, like the threads of Access calls; a faulting access parks it in the userfault like any
 * other. The call's cancellation interrupts every thread and the call fails.
 *
 * <p>The deadline (the call's, or {@code uffdemu.limits.default-wait}) is kept by the call's thread, not by each
 * access: the threads' accesses wait untimed, and when the deadline passes the call's thread interrupts them all
 * (on the emulated backend their blocked faults are withdrawn, as on a timed-out wait; on the Linux backend the
 * access threads stay blocked in the kernel until their faults are resolved, woken or the uffd closed, and their
 * stores then land: LinuxHandleBatchIT), waits for them, and the call fails with
 * DEADLINE_EXCEEDED (ETIMEDOUT), as it did when each access timed out by itself. A timed wait per fault would cost
 * each fault a timer of the virtual-thread scheduler (on JDK 25 a task queued to, and cancelled from, the
 * ForkJoinPool's DelayScheduler thread): about 2 us of CPU per fault in {@code bench remote} with 64 threads, a
 * tenth of the whole round trip.
 */
final class Storm {
    static final int MAX_THREADS = 4096;
    static final long MAX_STEPS = 1L << 24;
    /** A storm thread yields once per 64 accesses. */
    static final int YIELD_EVERY_MASK = 63;
    static final int STAMP = 16;

    private final MemoryBackend backend;
    private final StormRequest req;
    private final long stride;
    private final long steps;
    private final AccessMode mode;
    private final long deadline;
    private final AtomicLong failed = new AtomicLong();
    private final AtomicReference<AccessResult> firstFailure = new AtomicReference<>();
    /** An access that threw (the process exited, a bad address class...): the call fails with it. */
    private final AtomicReference<RuntimeException> thrown = new AtomicReference<>();

    private Storm(MemoryBackend backend, StormRequest req, AccessMode mode, long deadlineNanos) {
        this.backend = backend;
        this.req = req;
        this.stride = req.getStride() == 0 ? 4096 : req.getStride();
        this.steps = req.getLen() == 0 ? 0 : (req.getLen() - 1) / stride + 1;
        this.mode = mode;
        this.deadline = deadlineNanos;
    }

    /** Checks the request's shape (INVALID_ARGUMENT) before any thread starts. */
    static Storm of(MemoryBackend backend, StormRequest req, AccessMode mode, long deadlineNanos) {
        if (req.getThreads() < 1 || req.getThreads() > MAX_THREADS) {
            throw Errors.invalid("threads must be between 1 and " + MAX_THREADS);
        }
        if (req.getStride() != 0 && req.getStride() < STAMP) {
            throw Errors.invalid("stride must be 0 (4096) or at least " + STAMP);
        }
        if (req.getStride() < 0) {
            throw Errors.invalid("stride too large");
        }
        if (req.getLen() < 0 || Long.compareUnsigned(req.getAddr() + req.getLen(), req.getAddr()) < 0) {
            throw Errors.invalid("addr + len overflows");
        }
        Storm s = new Storm(backend, req, mode, deadlineNanos);
        if (s.steps < 0 || s.steps > MAX_STEPS) {
            throw Errors.invalid("at most " + MAX_STEPS + " steps (len / stride)");
        }
        return s;
    }

    StormResponse run() throws InterruptedException {
        int threads = (int) Math.min(req.getThreads(), Math.max(1, steps));
        List<Histogram> histograms = new ArrayList<>(threads);
        List<Thread> started = new ArrayList<>(threads);
        long t0 = System.nanoTime();
        try {
            for (int t = 0; t < threads; t++) {
                Histogram h = new Histogram(3);
                histograms.add(h);
                int first = t;
                started.add(Thread.ofVirtual().name("uffdemu-storm-" + req.getPid() + "-" + t)
                        .start(() -> runThread(first, threads, h)));
            }
            for (Thread th : started) {
                if (!join(th)) {
                    // stopped and waited for below, as on a cancel
                    throw new LinuxException(Errno.ETIMEDOUT, "storm", 0,
                            "the storm's threads did not finish before its deadline");
                }
            }
        } catch (InterruptedException | RuntimeException | Error e) {
            // the deadline passed, the call was cancelled or its gRPC deadline passed (Calls interrupts this
            // thread), or a thread could not start: stop every thread and wait (bounded) for them, so that none
            // outlives the call
            started.forEach(Thread::interrupt);
            boolean interrupted = Thread.interrupted() || e instanceof InterruptedException;
            awaitStopped(started);
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            throw e;
        }
        if (thrown.get() != null) {
            throw thrown.get();
        }
        long elapsed = System.nanoTime() - t0;
        Histogram all = new Histogram(3);
        histograms.forEach(all::add);
        StormResponse.Builder b = StormResponse.newBuilder().setAccesses(all.getTotalCount()).setFailed(failed.get())
                .setElapsedNanos(elapsed).setLatencyP50Nanos(all.getValueAtPercentile(50))
                .setLatencyP99Nanos(all.getValueAtPercentile(99)).setLatencyMaxNanos(all.getMaxValue());
        AccessResult f = firstFailure.get();
        if (f != null) {
            b.setFirstSignal(f.signal()).setFirstErrno(f.errno() == null ? 0 : f.errno().number())
                    .setFirstFaultAddr(f.faultAddr());
        }
        if (req.getVerify() && req.getWrite()) {
            b.setLostWrites(verify());
        }
        return b.build();
    }

    /** Waits up to {@link #STOP_WAIT} in all for interrupted threads to end; gives up early if interrupted. */
    private static void awaitStopped(List<Thread> threads) {
        long until = System.nanoTime() + STOP_WAIT.toNanos();
        try {
            for (Thread t : threads) {
                long left = until - System.nanoTime();
                if (left <= 0 || !t.join(Duration.ofNanos(left))) {
                    return;
                }
            }
        } catch (InterruptedException e) {
            // a second interrupt: stop waiting (the caller restores the status)
        }
    }

    /** How long a failing storm waits for its interrupted threads (each leaves its access at once). */
    static final Duration STOP_WAIT = Duration.ofSeconds(5);

    /** Joins {@code th} until the deadline; false when the deadline passed first. */
    private boolean join(Thread th) throws InterruptedException {
        if (deadline == Long.MAX_VALUE) {
            th.join();
            return true;
        }
        long left = deadline - System.nanoTime();
        return left > 0 && th.join(Duration.ofNanos(left)) || !th.isAlive();
    }

    private void runThread(int first, int threads, Histogram h) {
        byte[] stamp = req.getWrite() ? new byte[STAMP] : null;
        ByteBuffer sb = req.getWrite() ? ByteBuffer.wrap(stamp).order(ByteOrder.LITTLE_ENDIAN) : null;
        int done = 0;
        for (long i = first; i < steps; i += threads) {
            if (Thread.currentThread().isInterrupted()) {
                return;
            }
            if ((++done & YIELD_EVERY_MASK) == 0) {
                // accesses that do not fault never park: give other virtual threads a turn. Only a partial remedy:
                // a carrier runs its local queue before anything submitted from outside, so while other storm threads
                // are runnable they get the turn, and calls handed over by the transport wait until the local queue
                // empties (docs/configuration.md, uffdemu.virtual-threads.parallelism)
                Thread.yield();
            }
            long addr = req.getAddr() + i * stride;
            if (sb != null) {
                sb.putLong(0, addr).putLong(8, req.getRound());
            }
            long s = System.nanoTime();
            AccessResult r;
            try {
                // untimed: the call's thread keeps the deadline (see the class comment)
                r = backend.access(req.getPid(), addr, STAMP, req.getWrite(), stamp, mode, Long.MAX_VALUE);
            } catch (RuntimeException e) {
                thrown.compareAndSet(null, e);
                return;
            } catch (InterruptedException e) {
                return; // the deadline passed, or the call was cancelled: the storm stops
            }
            h.recordValue(Math.max(0, System.nanoTime() - s));
            if (r.signal() != 0 || r.errno() != null) {
                failed.incrementAndGet();
                firstFailure.compareAndSet(null, r);
            }
        }
    }

    private long verify() throws InterruptedException {
        long lost = 0;
        for (long i = 0; i < steps; i++) {
            long addr = req.getAddr() + i * stride;
            AccessResult r = backend.access(req.getPid(), addr, STAMP, false, null, AccessMode.USER, deadline);
            if (r.data() == null || r.data().length < STAMP) {
                lost++;
                continue;
            }
            ByteBuffer b = ByteBuffer.wrap(r.data()).order(ByteOrder.LITTLE_ENDIAN);
            if (b.getLong(0) != addr || b.getLong(8) != req.getRound()) {
                lost++;
            }
        }
        return lost;
    }
}
