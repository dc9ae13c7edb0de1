package io.uffdemu.client.impl;

import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;

/**
 * Waits for a future with a deadline without a timed park. On JDK 25 every timed park of a virtual thread queues a
 * task to the ForkJoinPool's DelayScheduler and cancels it when the thread wakes, and each of the two wakes that
 * scheduler's platform thread: in the remote round trip's profile (64 faulting threads, the SDK's handler loop)
 * those timers were a fifth of the handler process's CPU, for deadlines (a fault's 30 s) that almost never expire.
 * Here one ticker thread expires every wait that is past its deadline, and a waiter parks untimed on its future.
 *
 * <p>A wait expires within {@link #TICK_NANOS} after its deadline. The ticker parks untimed while nothing is
 * watched. The future an {@link #await} waits for is never completed by the watch: a wait gets its own copy ({@link
 * CompletableFuture#copy()}), which expires, so that whoever else observes the future (a staged COPY's slot is
 * freed by the server's answer, not by the handler's deadline) still sees only the real outcome.
 */
final class DeadlineWatch {
  /** How late an expiry may be. */
  static final long TICK_NANOS = TimeUnit.MILLISECONDS.toNanos(10);

  private static final DeadlineWatch SHARED = new DeadlineWatch("uffdemu-sdk-deadlines");

  private final Map<CompletableFuture<?>, Long> watched = new ConcurrentHashMap<>();
  private final Thread ticker;
  private volatile boolean idle;

  /** Thrown into a wait's copy of the future by the ticker; never leaves {@link #await}. */
  private static final class Expired extends TimeoutException {
    Expired() {
      super("deadline passed");
    }

    @Override
    public synchronized Throwable fillInStackTrace() {
      return this;
    }
  }

  DeadlineWatch(String name) {
    ticker = Thread.ofPlatform().daemon().name(name).unstarted(this::tick);
    ticker.start();
  }

  /** The JVM's watch (one daemon thread for every handler loop). */
  static DeadlineWatch shared() {
    return SHARED;
  }

  /**
   * {@code f.get()}, or a {@link TimeoutException} once {@code timeoutNanos} have passed (up to {@link #TICK_NANOS}
   * later). Exceptions as {@link CompletableFuture#get(long, TimeUnit)}.
   */
  <T> T await(CompletableFuture<T> f, long timeoutNanos)
      throws InterruptedException, ExecutionException, TimeoutException {
    if (f.isDone()) {
      return f.get();
    }
    if (timeoutNanos <= 0) {
      throw new TimeoutException();
    }
    long now = System.nanoTime();
    long deadline = now + Math.min(timeoutNanos, Long.MAX_VALUE / 2); // no overflow in the ticker's comparison
    CompletableFuture<T> wait = f.copy();
    watched.put(wait, deadline);
    if (idle) {
      idle = false;
      LockSupport.unpark(ticker);
    }
    try {
      return wait.get();
    } catch (ExecutionException e) {
      if (e.getCause() instanceof Expired) {
        throw new TimeoutException("no result within " + timeoutNanos + " ns");
      }
      throw e;
    } finally {
      watched.remove(wait);
    }
  }

  /**
   * Completes {@code f} exceptionally with a {@link TimeoutException} once {@code timeoutNanos} have passed (up to
   * {@link #TICK_NANOS} later), unless {@link #unwatch} came first; for a future of the caller's own that nobody
   * else completes with a real outcome (a message batch's "all results are in"), so nothing parks for the deadline.
   */
  void watch(CompletableFuture<?> f, long timeoutNanos) {
    long deadline = System.nanoTime() + Math.max(0, Math.min(timeoutNanos, Long.MAX_VALUE / 2));
    watched.put(f, deadline);
    if (idle) {
      idle = false;
      LockSupport.unpark(ticker);
    }
  }

  /** Stops watching {@code f} (it is done). */
  void unwatch(CompletableFuture<?> f) {
    watched.remove(f);
  }

  /** Number of waits being watched (tests). */
  int watching() {
    return watched.size();
  }

  /** Stops the ticker (tests: the shared watch runs as long as the JVM). */
  void stop() {
    ticker.interrupt();
  }

  private void tick() {
    while (!Thread.currentThread().isInterrupted()) {
      try {
        if (watched.isEmpty()) {
          idle = true;
          // re-check after publishing idle: a wait added before this sees the entry, one added after sees idle
          if (watched.isEmpty()) {
            LockSupport.park(this);
            continue;
          }
          idle = false;
        }
        LockSupport.parkNanos(this, TICK_NANOS);
        long now = System.nanoTime();
        for (var e : watched.entrySet()) {
          if (now - e.getValue() >= 0 && watched.remove(e.getKey(), e.getValue())) {
            e.getKey().completeExceptionally(new Expired());
          }
        }
      } catch (Throwable e) {
        // the JVM's only ticker: if it ended, no wait would ever expire again. Keep ticking (an OutOfMemoryError
        // allocating an expiry, say, is retried at the next tick)
        try {
          LOG.log(System.Logger.Level.WARNING, "deadline ticker: " + e);
        } catch (Throwable again) {
          // out of memory for the message, say: still keep ticking
        }
        LockSupport.parkNanos(this, TICK_NANOS);
      }
    }
  }

  private static final System.Logger LOG = System.getLogger(DeadlineWatch.class.getName());
}
