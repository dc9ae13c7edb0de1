package io.uffdemu.server.backend.linux;

import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * The platform threads the native backend's accesses run on (a real userfault blocks the thread in the kernel, so
 * never a virtual thread's carrier), with a hand-off that avoids sleeping where it can.
 *
 * <p>A cached pool ({@code Executors.newCachedThreadPool}) costs two thread wake-ups per access on top of the two
 * the kernel's own round trip has: the caller's task wakes a parked pool thread (SynchronousQueue), and the pool
 * thread's completion wakes the parked caller (for a virtual caller, a parked carrier). On these VMs each wake-up of
 * a parked thread is 10-15 us, about a whole kernel round trip (reference/perf-notes.md). Here a task goes straight
 * into an idle worker's slot (LIFO: the most recently used worker first) and the result straight to the caller,
 * with no queue and no Future. Idle workers park and exit after {@link #KEEP_ALIVE_NANOS}, like the cached pool.
 * Platform callers without a deadline do not come here at all (LinuxBackend.access runs them inline).
 *
 * <p>{@code -Duffdemu.linux.access-spin-us=N} makes both sides spin up to N us before parking (a worker polls its
 * slot, a caller polls its result, yielding on a virtual thread). Default 0: at 50 us the native round trip got
 * 3-5x <em>slower</em> on the 2 shared cores (load 8-16), the spinning threads taking the CPU the uffd handler
 * needed (docs/benchmarks.md).
 */
final class AccessThreads {
    static final long SPIN_NANOS = TimeUnit.MICROSECONDS.toNanos(Long.getLong("uffdemu.linux.access-spin-us", 0));
    static final long KEEP_ALIVE_NANOS = TimeUnit.SECONDS.toNanos(60);

    /** A submitted access: its body, then its outcome. */
    static final class Task<T> {
        private final Callable<T> body;
        private final Thread caller = Thread.currentThread();
        private volatile boolean done;
        private volatile boolean callerParked;
        private T value;
        private Throwable failure;

        private Task(Callable<T> body) {
            this.body = body;
        }

        private void run() {
            try {
                value = body.call();
            } catch (Throwable t) {
                failure = t;
            }
            done = true; // publishes value/failure
            if (callerParked) {
                LockSupport.unpark(caller);
            }
        }

        /**
         * Waits for the outcome until {@code deadlineNanos} ({@link System#nanoTime()} scale, Long.MAX_VALUE: no
         * deadline). Only the submitting thread may call this.
         */
        T get(long deadlineNanos) throws InterruptedException, TimeoutException, Exception {
            if (!done) {
                long spinEnd = System.nanoTime() + SPIN_NANOS;
                boolean virtual = caller.isVirtual();
                while (!done && System.nanoTime() - spinEnd < 0) {
                    if (Thread.interrupted()) {
                        throw new InterruptedException();
                    }
                    if (virtual) {
                        Thread.yield(); // lets the carrier's other virtual threads run
                    } else {
                        Thread.onSpinWait();
                    }
                }
                if (!done) {
                    callerParked = true; // Dekker with run(): done=true then read callerParked
                    try {
                        while (!done) {
                            if (Thread.interrupted()) {
                                throw new InterruptedException();
                            }
                            if (deadlineNanos == Long.MAX_VALUE) {
                                LockSupport.park(this);
                            } else {
                                long left = deadlineNanos - System.nanoTime();
                                if (left <= 0) {
                                    throw new TimeoutException();
                                }
                                LockSupport.parkNanos(this, left);
                            }
                        }
                    } finally {
                        callerParked = false;
                    }
                }
            }
            if (failure instanceof Exception e) {
                throw e;
            }
            if (failure instanceof Error e) {
                throw e;
            }
            return value;
        }
    }

    private final class Worker implements Runnable {
        private volatile Task<?> slot;
        private volatile boolean parked;
        private Thread thread;

        Worker(Task<?> first) {
            this.slot = first;
        }

        @Override
        public void run() {
            try {
                while (true) {
                    Task<?> t = awaitTask();
                    if (t == null) {
                        return;
                    }
                    slot = null;
                    t.run();
                    if (closed) {
                        return;
                    }
                    idle.offerFirst(this); // LIFO: the most recently busy worker is the one still spinning
                }
            } finally {
                live.decrementAndGet();
            }
        }

        /** The next task, or null when this worker has been idle for the keep-alive and left the idle list. */
        private Task<?> awaitTask() {
            Task<?> t = slot;
            if (t != null) {
                return t;
            }
            long spinEnd = System.nanoTime() + SPIN_NANOS;
            while ((t = slot) == null && System.nanoTime() - spinEnd < 0) {
                Thread.onSpinWait();
            }
            if (t != null) {
                return t;
            }
            long idleEnd = System.nanoTime() + KEEP_ALIVE_NANOS;
            parked = true; // Dekker with submit(): slot=t then read parked
            try {
                while ((t = slot) == null) {
                    if (closed || System.nanoTime() - idleEnd >= 0) {
                        if (idle.removeFirstOccurrence(this)) {
                            return null;
                        }
                        // A submitter took this worker off the idle list: its task is about to land in the slot.
                        idleEnd = Long.MAX_VALUE / 2 + System.nanoTime();
                    }
                    LockSupport.parkNanos(this, closed ? TimeUnit.MILLISECONDS.toNanos(1)
                            : Math.max(1, idleEnd - System.nanoTime()));
                }
                return t;
            } finally {
                parked = false;
            }
        }

        void hand(Task<?> t) {
            slot = t;
            if (parked) {
                LockSupport.unpark(thread);
            }
        }
    }

    private final ConcurrentLinkedDeque<Worker> idle = new ConcurrentLinkedDeque<>();
    private final AtomicInteger live = new AtomicInteger();
    private final AtomicInteger names = new AtomicInteger();
    private volatile boolean closed;

    /** Runs {@code body} on an access thread; the caller then waits with {@link Task#get}. */
    <T> Task<T> submit(Callable<T> body) {
        if (closed) {
            throw new IllegalStateException("access threads shut down");
        }
        Task<T> t = new Task<>(body);
        Worker w = idle.pollFirst();
        if (w != null) {
            w.hand(t);
            return t;
        }
        Worker fresh = new Worker(t);
        live.incrementAndGet();
        fresh.thread = Thread.ofPlatform().daemon().name("uffdemu-access-" + names.getAndIncrement())
                .unstarted(fresh);
        fresh.thread.start();
        return t;
    }

    /** Idle workers exit; busy ones (blocked in a fault) exit when their access returns. */
    void shutdown() {
        closed = true;
        for (Worker w : idle) {
            LockSupport.unpark(w.thread);
        }
    }

    /** Live worker threads (tests). */
    int liveThreads() {
        return live.get();
    }
}
