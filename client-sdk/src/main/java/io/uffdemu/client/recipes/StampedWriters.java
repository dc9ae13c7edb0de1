package io.uffdemu.client.recipes;

import io.uffdemu.client.AccessResult;
import io.uffdemu.client.Process;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Writers that keep stamping pages of a process with increasing versions ({@link Stamp}) and log when each
 * write started and returned: the oracle behind {@link SnapshotVerifier#verifyAgainst}. Writer {@code t} owns
 * the pages whose index {@code % writers == t}, so every page has one writer and its versions are ordered.
 * Each write is one emulated store (one Access call) on its own virtual thread: a write into a
 * write-protected page blocks like a faulting thread.
 *
 * <pre>{@code
 * try (StampedWriters w = new StampedWriters(process, pages, 8, 64, 42)) {
 *   w.start();
 *   ... take a snapshot ...
 *   w.stop();
 *   w.versionsPossible(page, t0, t1); // what the page may have held at an instant in [t0, t1]
 * }
 * }</pre>
 */
public final class StampedWriters implements AutoCloseable {
  private final Process process;
  private final List<Long> pages;
  private final int writers;
  private final int stampLength;
  private final long seed;
  private final Map<Long, PageLog> logs = new HashMap<>();
  private final AtomicLong writes = new AtomicLong();
  private final List<Thread> threads = new ArrayList<>();
  private volatile boolean running;
  private volatile Throwable error;

  private static final class PageLog {
    final int index;
    long[] starts = new long[16];
    long[] ends = new long[16];
    int n; // versions 1..n written

    PageLog(int index) {
      this.index = index;
    }

    synchronized void add(long start, long end) {
      if (n == starts.length) {
        starts = java.util.Arrays.copyOf(starts, n * 2);
        ends = java.util.Arrays.copyOf(ends, n * 2);
      }
      starts[n] = start;
      ends[n] = end;
      n++;
    }
  }

  /**
   * @param pages page addresses to stamp
   * @param stampLength bytes written per store, at the start of the page
   */
  public StampedWriters(Process process, List<Long> pages, int writers, int stampLength, long seed) {
    this.process = process;
    this.pages = List.copyOf(pages);
    this.writers = Math.min(writers, pages.size());
    this.stampLength = stampLength;
    this.seed = seed;
    for (int i = 0; i < this.pages.size(); i++) {
      logs.put(this.pages.get(i), new PageLog(i));
    }
  }

  public int stampLength() {
    return stampLength;
  }

  public List<Long> pages() {
    return pages;
  }

  public synchronized void start() {
    running = true;
    for (int t = 0; t < writers; t++) {
      int id = t;
      List<Long> mine = new ArrayList<>();
      for (int i = id; i < pages.size(); i += writers) {
        mine.add(pages.get(i));
      }
      threads.add(Thread.ofVirtual().name("stamp-writer-" + id).start(() -> run(id, mine)));
    }
  }

  private void run(int id, List<Long> mine) {
    SplittableRandom rnd = new SplittableRandom(seed * 1_000_003 + id);
    try {
      while (running) {
        long page = mine.get(rnd.nextInt(mine.size()));
        PageLog log = logs.get(page);
        long version = log.n + 1;
        long start = System.nanoTime();
        AccessResult r = process.write(page, Stamp.encode(page, version, id, stampLength));
        long end = System.nanoTime();
        if (!r.ok()) {
          throw new IllegalStateException("write to 0x" + Long.toHexString(page) + " failed: signal " + r.signal()
              + " errno " + r.errno());
        }
        log.add(start, end);
        writes.incrementAndGet();
      }
    } catch (Throwable t) {
      error = t;
    }
  }

  /** Logs a write of the next version of {@code page} as if a writer had done it (tests of the verifier). */
  void logWrite(long page, long start, long end) {
    logs.get(page).add(start, end);
    writes.incrementAndGet();
  }

  /** Writes completed so far. */
  public long writes() {
    return writes.get();
  }

  /** Stops the writers and waits for them; rethrows a writer's failure. */
  public synchronized void stop() throws InterruptedException {
    running = false;
    for (Thread t : threads) {
      t.join();
    }
    threads.clear();
    if (error != null) {
      throw new IllegalStateException("writer failed", error);
    }
  }

  /** The last version written to {@code page} (0 when never written). Call after {@link #stop}. */
  public long lastVersion(long page) {
    PageLog l = logs.get(page);
    synchronized (l) {
      return l.n;
    }
  }

  /**
   * The versions {@code page} may have held at some instant in {@code [t0, t1]} ({@link System#nanoTime()}):
   * version v is possible when its write started by t1 and the write of v + 1 had not returned before t0.
   * Version 0 is the page's content before the first write.
   */
  public TreeSet<Long> versionsPossible(long page, long t0, long t1) {
    PageLog l = logs.get(page);
    TreeSet<Long> out = new TreeSet<>();
    synchronized (l) {
      for (int v = 0; v <= l.n; v++) {
        boolean started = v == 0 || l.starts[v - 1] <= t1;
        boolean notOverwritten = v == l.n || l.ends[v] >= t0;
        if (started && notOverwritten) {
          out.add((long) v);
        }
      }
    }
    return out;
  }

  /** Writes (to any page) that started before {@code t} and returned after it: stores that were blocked across t. */
  public long writesSpanning(long t) {
    long n = 0;
    for (PageLog l : logs.values()) {
      synchronized (l) {
        for (int v = 0; v < l.n; v++) {
          if (l.starts[v] <= t && l.ends[v] >= t) {
            n++;
          }
        }
      }
    }
    return n;
  }

  /** Writes that started after {@code t}. */
  public long writesStartedAfter(long t) {
    long n = 0;
    for (PageLog l : logs.values()) {
      synchronized (l) {
        for (int v = 0; v < l.n; v++) {
          if (l.starts[v] > t) {
            n++;
          }
        }
      }
    }
    return n;
  }

  @Override
  public void close() throws InterruptedException {
    stop();
  }
}
