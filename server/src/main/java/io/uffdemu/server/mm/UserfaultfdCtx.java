package io.uffdemu.server.mm;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.Condition;

/**
 * A userfaultfd: analogue of {@code struct userfaultfd_ctx} ({@code fs/userfaultfd.c}). Guarded by the
 * kernel lock.
 *
 * <p>{@link #pending} holds faults not yet read (POLLIN), {@link #waiting} faults read but not woken; a wake
 * covers both. {@link #events} holds unread non-cooperative events; each blocks the thread that raised it
 * until read. {@link #mmapChanging} is above zero while an event is in flight: the filling ioctls then fail
 * with EAGAIN.
 */
public final class UserfaultfdCtx {
    final long id;
    /** The mm of the process that created the fd; fixed for the fd's life. */
    final MmStruct mm;
    final int flags;
    long features;
    boolean apiDone;
    boolean released;
    int mmapChanging;
    long seq;
    final ArrayDeque<Fault> pending = new ArrayDeque<>();
    final List<Fault> waiting = new ArrayList<>();
    final ArrayDeque<Event> events = new ArrayDeque<>();
    final Condition readable;
    /** Total faults queued on this ctx (fdinfo "total:"). */
    long total;

    UserfaultfdCtx(long id, MmStruct mm, int flags, Condition readable) {
        this.id = id;
        this.mm = mm;
        this.flags = flags;
        this.readable = readable;
    }

    public long id() {
        return id;
    }

    public long features() {
        return features;
    }

    public boolean released() {
        return released;
    }

    public int pendingCount() {
        return pending.size();
    }

    public int waitingCount() {
        return waiting.size();
    }

    /** A thread blocked in handle_userfault(): {@code struct userfaultfd_wait_queue}. */
    static final class Fault {
        final UserfaultfdCtx ctx;
        final long address;
        final long flags;
        final int ptid;
        final CountDownLatch woken = new CountDownLatch(1);
        final long queuedNanos = System.nanoTime();

        Fault(UserfaultfdCtx ctx, long address, long flags, int ptid) {
            this.ctx = ctx;
            this.address = address;
            this.flags = flags;
            this.ptid = ptid;
        }
    }

    /** A non-cooperative event in flight: {@code struct userfaultfd_wait_queue} on the event queue. */
    static final class Event {
        final int type;
        final long a;
        final long b;
        final long c;
        /** FORK: the child's new ctx and task. */
        final UserfaultfdCtx child;
        final Task childTask;
        final CountDownLatch done = new CountDownLatch(1);
        /** The ctx the event was queued on. */
        UserfaultfdCtx owner;

        Event(int type, long a, long b, long c, UserfaultfdCtx child, Task childTask) {
            this.type = type;
            this.a = a;
            this.b = b;
            this.c = c;
            this.child = child;
            this.childTask = childTask;
        }
    }
}
