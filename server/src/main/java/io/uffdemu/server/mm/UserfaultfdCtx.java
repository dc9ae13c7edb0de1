package io.uffdemu.server.mm;

import java.util.ArrayDeque;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.Condition;

/**
 * A userfaultfd: analogue of {@code struct userfaultfd_ctx} ({@code fs/userfaultfd.c}). Guarded by the
 * kernel lock.
 *
 * <p>{@link #pending} holds faults not yet read (POLLIN), in arrival order, {@link #waiting} faults read but not
 * woken; a wake covers both. Both are intrusive lists (no allocation per fault, O(1) removal of a woken one). With
 * more than {@link #INDEX_AT} faults queued, {@link #byAddress} indexes them by message address, so a wake of a
 * range touches only the faults it wakes (a COPY of one page among many blocked faults: docs/benchmarks.md
 * item 11); with fewer, a wake scans the two lists, which is cheaper than keeping the index. They change together,
 * through {@link #queue}, {@link #readNext}, {@link #unlink} and {@link #dequeue}.
 * {@link #events} holds unread non-cooperative events; each blocks the thread that raised it
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
    /** Unread faults in arrival order (what read(2) returns first). */
    final FaultQueue pending = new FaultQueue();
    /** Faults read by a handler and not woken yet. */
    final FaultQueue waiting = new FaultQueue();
    /**
     * The faults of {@link #pending} and {@link #waiting} by message address, or null while few are queued (see
     * {@link #INDEX_AT}); faults at one address are chained through {@link Fault#nextAtAddress} in arrival order.
     */
    TreeMap<Long, Fault> byAddress;
    /** Queued faults above which wakes use {@link #byAddress} (built then, dropped when the queues empty). */
    static final int INDEX_AT = 32;
    final ArrayDeque<Event> events = new ArrayDeque<>();
    final Condition readable;
    /** Total faults queued on this ctx (fdinfo "total:"). */
    long total;
    /**
     * The memcg whose {@code uffds} holds this ctx (its creator's), counting its queued faults; kept after release,
     * so that faults woken then are counted out where they were counted in. Every memcg is the root or below it, so
     * the root's counts are the whole kernel's ({@link Kernel#faultGauges}).
     */
    final MemCgroup memcg;

    /** Queued faults changed: {@code pending} unread and {@code blocked} threads, in the memcg's counters. */
    void countUserfaults(long pending, long blocked) {
        memcg.countUserfaults(pending, blocked);
    }

    UserfaultfdCtx(long id, MmStruct mm, int flags, Condition readable, MemCgroup memcg) {
        this.id = id;
        this.mm = mm;
        this.flags = flags;
        this.readable = readable;
        this.memcg = memcg;
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

    /** handle_userfault() queued {@code f}: it is pending until read or woken. */
    void queue(Fault f) {
        f.queued = true;
        pending.add(f);
        if (byAddress != null) {
            indexAdd(f);
        } else if (pending.size + waiting.size > INDEX_AT) {
            byAddress = new TreeMap<>();
            for (Fault g = waiting.head; g != null; g = g.qNext) { // read ones arrived before any unread one
                indexAdd(g);
            }
            for (Fault g = pending.head; g != null; g = g.qNext) {
                indexAdd(g);
            }
        }
    }

    private void indexAdd(Fault f) {
        Fault first = byAddress.putIfAbsent(f.address, f);
        if (first == null) {
            f.lastAtAddress = f;
        } else { // O(1) however many threads wait on the address (a fault storm on one page)
            Fault last = first.lastAtAddress;
            last.nextAtAddress = f;
            f.prevAtAddress = last;
            first.lastAtAddress = f;
        }
    }

    /** read(2) takes the oldest pending fault: it moves to {@link #waiting}. Null when none is pending. */
    Fault readNext() {
        if (pending.isEmpty()) {
            return null;
        }
        Fault f = pending.removeFirst();
        f.read = true;
        waiting.add(f);
        return f;
    }

    /**
     * Withdraws {@code f} (its thread gave up: deadline or interrupt) from the queues and the index; false when
     * it is not queued any more (already woken).
     */
    boolean unlink(Fault f) {
        if (!f.queued) {
            return false;
        }
        dequeue(f);
        if (byAddress != null) {
            Fault next = f.nextAtAddress;
            if (f.prevAtAddress == null) { // the first at its address
                if (next == null) {
                    byAddress.remove(f.address);
                } else {
                    next.prevAtAddress = null;
                    next.lastAtAddress = f.lastAtAddress;
                    byAddress.put(f.address, next);
                }
            } else {
                f.prevAtAddress.nextAtAddress = next;
                if (next != null) {
                    next.prevAtAddress = f.prevAtAddress;
                } else {
                    byAddress.get(f.address).lastAtAddress = f.prevAtAddress;
                }
            }
            f.clearIndexLinks();
            dropIndexIfEmpty();
        }
        return true;
    }

    /**
     * Takes {@code f} off its queue (not the index: a wake through the index removes the index entry itself, a
     * wake by scan has no index). Caller then wakes it.
     */
    void dequeue(Fault f) {
        (f.read ? waiting : pending).remove(f);
        f.queued = false;
    }

    /** Drops the index once nothing is queued: the next faults start with the cheap scan again. */
    void dropIndexIfEmpty() {
        if (pending.size + waiting.size == 0) {
            byAddress = null;
        }
    }

    /** Debug ({@link InvariantChecker}): the queues are well linked and the address index holds exactly their faults. */
    void checkQueues() {
        pending.check(this, false);
        waiting.check(this, true);
        if (byAddress == null) {
            return;
        }
        int indexed = 0;
        for (var e : byAddress.entrySet()) {
            Fault last = null;
            for (Fault f = e.getValue(); f != null; f = f.nextAtAddress) {
                indexed++;
                if (f.prevAtAddress != last) {
                    throw new IllegalStateException("uffd " + id + ": broken back link at 0x"
                            + Long.toHexString(e.getKey()));
                }
                last = f;
                if (f.address != e.getKey() || f.ctx != this || !f.queued) {
                    throw new IllegalStateException("uffd " + id + ": fault at 0x" + Long.toHexString(f.address)
                            + " indexed at 0x" + Long.toHexString(e.getKey()) + " but not queued");
                }
            }
            if (e.getValue().lastAtAddress != last) {
                throw new IllegalStateException("uffd " + id + ": stale last link at 0x" + Long.toHexString(e.getKey()));
            }
        }
        if (indexed != pending.size + waiting.size) {
            throw new IllegalStateException("uffd " + id + ": " + indexed + " faults indexed, " + pending.size
                    + " pending + " + waiting.size + " read queued");
        }
    }

    /** An intrusive FIFO of faults: O(1) append, removal and size, no allocation per fault. Kernel lock. */
    static final class FaultQueue {
        Fault head;
        Fault tail;
        int size;

        void add(Fault f) {
            f.qPrev = tail;
            f.qNext = null;
            if (tail == null) {
                head = f;
            } else {
                tail.qNext = f;
            }
            tail = f;
            size++;
        }

        void remove(Fault f) {
            if (f.qPrev == null) {
                head = f.qNext;
            } else {
                f.qPrev.qNext = f.qNext;
            }
            if (f.qNext == null) {
                tail = f.qPrev;
            } else {
                f.qNext.qPrev = f.qPrev;
            }
            f.qPrev = null;
            f.qNext = null;
            size--;
        }

        Fault removeFirst() {
            Fault f = head;
            remove(f);
            return f;
        }

        boolean isEmpty() {
            return size == 0;
        }

        int size() {
            return size;
        }

        private void check(UserfaultfdCtx ctx, boolean read) {
            int n = 0;
            Fault prev = null;
            for (Fault f = head; f != null; f = f.qNext) {
                if (f.qPrev != prev || f.read != read || !f.queued || f.ctx != ctx) {
                    throw new IllegalStateException("uffd " + ctx.id + ": " + (read ? "read" : "pending")
                            + " queue broken at 0x" + Long.toHexString(f.address));
                }
                prev = f;
                n++;
            }
            if (prev != tail || n != size) {
                throw new IllegalStateException("uffd " + ctx.id + ": " + (read ? "read" : "pending") + " queue holds "
                        + n + " faults, size says " + size);
            }
        }
    }

    /** A thread blocked in handle_userfault(): {@code struct userfaultfd_wait_queue}. */
    static final class Fault {
        final UserfaultfdCtx ctx;
        final long address;
        final long flags;
        final int ptid;
        final CountDownLatch woken = new CountDownLatch(1);
        final long queuedNanos = System.nanoTime();
        /** Read by a handler: in {@link #waiting}, not {@link #pending}. Guarded by the kernel lock. */
        boolean read;
        /** In {@link #pending} or {@link #waiting} (not woken, not withdrawn). Guarded by the kernel lock. */
        boolean queued;
        /** Links of the queue the fault is in. Guarded by the kernel lock. */
        Fault qPrev;
        Fault qNext;
        /**
         * The next and previous fault at the same address in {@link #byAddress}, and (on the first one only) the
         * last. Guarded by the kernel lock.
         */
        Fault nextAtAddress;
        Fault prevAtAddress;
        Fault lastAtAddress;

        /** The fault has left {@link #byAddress}. */
        void clearIndexLinks() {
            nextAtAddress = null;
            prevAtAddress = null;
            lastAtAddress = null;
        }

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
