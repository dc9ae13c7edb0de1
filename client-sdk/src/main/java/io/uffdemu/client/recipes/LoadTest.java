package io.uffdemu.client.recipes;

import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.FaultContext;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerObserver;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.HandlerStats;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MemoryType;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import io.uffdemu.client.recipes.BenchOptions.Chaos;
import io.uffdemu.client.recipes.BenchOptions.Mode;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.HdrHistogram.Histogram;

/**
 * Recipe 5: a load tester for fault handlers. K emulated threads (virtual threads, one blocking Access call
 * per access) run an access pattern against one mapping whose faults a handler serves, while a chaos thread
 * optionally zaps, pages out, splits or removes pages. It measures faults/s and fault latency (HdrHistogram),
 * per-thread blocked time, EAGAIN deferrals and errors, and runs an integrity oracle:
 *
 * <ul>
 *   <li>every thread owns a 16-byte slot in each page it writes ({@code [thread, version]} at
 *       {@code 64 + slot * 16}); at the end every slot must hold its last version, or the base content when a
 *       chaos event legitimately dropped the page (anon/hugetlb zap, shmem remove);</li>
 *   <li>every byte nobody wrote holds the base content: the fill pattern in MISSING mode, zeroes in WP mode;</li>
 *   <li>WP mode: every store into a write-protected page must have reached the handler (a WP fault) before
 *       it completed.</li>
 * </ul>
 *
 * A chaos event takes the page's write lock, so it never races an access to the same page: the oracle stays
 * exact. With the same {@link BenchOptions#seed()} each thread replays the same access sequence and the chaos
 * thread the same event sequence (their interleaving still depends on timing).
 *
 * <pre>{@code
 * BenchResult r = LoadTest.run(client, BenchOptions.defaults().withThreads(1000).withPattern(Pattern.ZIPFIAN));
 * System.out.print(r.toTable());
 * Files.writeString(Path.of("bench.html"), r.toHtml());
 * if (!r.ok()) System.exit(1);
 * }</pre>
 */
public final class LoadTest {
  static final int HEADER = 64;
  static final int SLOT = 16;

  private final UffdemuClient client;
  private final BenchOptions o;
  private final long pageSize;
  private final int slotsPerPage;
  private final int groups;
  private Process process;
  private long base;
  private Userfaultfd uffd;
  private ReentrantReadWriteLock[] locks;
  private AtomicLongArray epoch;
  private AtomicLongArray populated; // 1 once an access completed since the last drop
  private AtomicLongArray wpProtected; // WP mode: 1 while protected
  private final Map<Long, AtomicLong> wpSeen = new ConcurrentHashMap<>();
  private final List<String> violations = new CopyOnWriteArrayList<>();
  private final AtomicLong violationCount = new AtomicLong();
  private final AtomicLong errors = new AtomicLong();
  private final Map<Chaos, AtomicLong> chaosDone = new EnumMap<>(Chaos.class);
  private volatile boolean stop;

  private LoadTest(UffdemuClient client, BenchOptions o) {
    this.client = client;
    this.o = o;
    this.pageSize = o.pageSize();
    this.slotsPerPage = (int) Math.min((pageSize - HEADER) / SLOT, 252);
    this.groups = (o.threads() + slotsPerPage - 1) / slotsPerPage;
    for (Chaos c : Chaos.values()) {
      chaosDone.put(c, new AtomicLong());
    }
  }

  /** Runs the benchmark; the process it creates is exited at the end. */
  public static BenchResult run(UffdemuClient client, BenchOptions options) {
    return run(client, options, Progress.NONE);
  }

  /**
   * {@link #run(UffdemuClient, BenchOptions)} reporting accesses done of {@code threads * opsPerThread} (-1 when a
   * duration bounds the run).
   */
  public static BenchResult run(UffdemuClient client, BenchOptions options, Progress progress) {
    LoadTest t = new LoadTest(client, options);
    t.progress = java.util.Objects.requireNonNull(progress, "progress");
    return t.run();
  }

  private Progress progress = Progress.NONE;
  private final AtomicLong progressOps = new AtomicLong();

  private long progressTotal() {
    if (o.duration() != null) {
      return -1;
    }
    long total = o.threads() * o.opsPerThread();
    return o.opsPerThread() != 0 && total / o.opsPerThread() != o.threads() ? -1 : total; // overflow: unknown
  }

  /** The content the built-in MISSING handler copies into page {@code index} (also what the oracle expects). */
  public static byte[] fillPattern(long index, int pageSize) {
    byte[] b = new byte[pageSize];
    ByteBuffer.wrap(b).putLong(index).putLong(~index);
    for (int i = 16; i < pageSize; i++) {
      b[i] = (byte) (i * 31 + index * 17 + 1);
    }
    return b;
  }

  private void violation(String what) {
    if (violationCount.incrementAndGet() <= 50) {
      violations.add(what);
    }
  }

  private BenchResult run() {
    long len = o.pages() * pageSize;
    process = client.createProcess("bench");
    try {
      MmapOptions mo = switch (o.memory()) {
        case SHMEM -> MmapOptions.anonymous(len).sharedAnonymous();
        case HUGETLB -> MmapOptions.anonymous(len).hugetlb2M();
        default -> MmapOptions.anonymous(len);
      };
      base = process.mmap(mo);
      int n = (int) o.pages();
      locks = new ReentrantReadWriteLock[n];
      for (int i = 0; i < n; i++) {
        locks[i] = new ReentrantReadWriteLock();
      }
      epoch = new AtomicLongArray(n);
      populated = new AtomicLongArray(n);
      wpProtected = new AtomicLongArray(n);
      uffd = process.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_EVENT_REMOVE
          | Linux.UFFD_FEATURE_MISSING_SHMEM | Linux.UFFD_FEATURE_MISSING_HUGETLBFS
          | Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP | Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM
          | Linux.UFFD_FEATURE_WP_UNPOPULATED));
      AddrRange range = new AddrRange(base, len);
      if (o.mode() == Mode.MISSING) {
        uffd.register(range, Linux.UFFDIO_REGISTER_MODE_MISSING);
      } else {
        uffd.register(range, Linux.UFFDIO_REGISTER_MODE_WP);
        uffd.writeProtect(range, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
        for (int i = 0; i < n; i++) {
          wpProtected.set(i, 1);
        }
      }
      FaultHandler h = o.handler() != null ? o.handler() : builtIn();
      if (o.mode() == Mode.WP) {
        FaultHandler user = h;
        h = new FaultHandler() {
          @Override
          public void onFault(FaultContext ctx) throws Exception {
            if (ctx.message().wp()) {
              wpSeen.computeIfAbsent(ctx.pageAddress(), k -> new AtomicLong()).incrementAndGet();
            }
            user.onFault(ctx);
          }

          @Override
          public void onEvent(io.uffdemu.client.UffdMessage event) {
            user.onEvent(event);
          }
        };
      }
      HandlerStats stats;
      long t0;
      long t1;
      Histogram faultLat = new Histogram(3_600_000_000L, 3);
      Histogram allLat = new Histogram(3_600_000_000L, 3);
      long[] blocked = new long[o.threads()];
      long[] opsDone = new long[o.threads()];
      long[] faultsSeen = new long[o.threads()];
      long[] writesDone = new long[o.threads()];
      List<Map<Long, long[]>> expected = new ArrayList<>();
      if (o.external() != null) {
        o.external().accept(new BenchOptions.BenchTarget(process.pid(), uffd.fd(), range, pageSize, o.mode()));
      }
      try (HandlerLoop loop = o.external() != null ? null : uffd.handle(h, HandlerOptions.DEFAULT
          .withWorkers(o.handlerWorkers()).withPageSize(pageSize).withObserver(HandlerObserver.NOOP))) {
        double[] zipf = o.pattern() == BenchOptions.Pattern.ZIPFIAN ? zipfCdf(n, 0.99) : null;
        List<Thread> threads = new ArrayList<>();
        Histogram[] fl = new Histogram[o.threads()];
        Histogram[] al = new Histogram[o.threads()];
        for (int t = 0; t < o.threads(); t++) {
          fl[t] = new Histogram(3_600_000_000L, 3);
          al[t] = new Histogram(3_600_000_000L, 3);
          expected.add(new HashMap<>());
        }
        long deadline = o.duration() == null ? Long.MAX_VALUE : System.nanoTime() + o.duration().toNanos();
        t0 = System.nanoTime();
        Thread chaos = o.chaos().isEmpty() || o.chaosIntervalMillis() <= 0 ? null
            : Thread.ofVirtual().name("bench-chaos").start(this::chaosLoop);
        for (int t = 0; t < o.threads(); t++) {
          int id = t;
          threads.add(Thread.ofVirtual().name("bench-" + t).start(() -> worker(id, deadline, zipf, fl[id], al[id],
              blocked, opsDone, faultsSeen, writesDone, expected.get(id))));
        }
        for (Thread th : threads) {
          th.join();
        }
        t1 = System.nanoTime();
        stop = true;
        if (chaos != null) {
          chaos.join();
        }
        for (int t = 0; t < o.threads(); t++) {
          faultLat.add(fl[t]);
          allLat.add(al[t]);
        }
        verify(expected);
        stats = loop == null ? new HandlerStats(-1, 0, 0, 0, -1, 0, 0, 0, 0, 0, 0, 0, 0) : loop.stats();
      }
      uffd.close();
      long ops = Arrays.stream(opsDone).sum();
      long faults = Arrays.stream(faultsSeen).sum();
      Map<String, Long> chaosCounts = new java.util.LinkedHashMap<>();
      chaosDone.forEach((k, v) -> {
        if (o.chaos().contains(k)) {
          chaosCounts.put(k.name(), v.get());
        }
      });
      return new BenchResult(o, ops, Arrays.stream(writesDone).sum(), faults, stats.faults(), t1 - t0,
          stats.eagainDeferrals(), errors.get() + stats.failed(), chaosCounts, faultLat, allLat, blocked,
          List.copyOf(violations), violationCount.get());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    } finally {
      stop = true;
      try {
        process.exit();
      } catch (RuntimeException ignored) {
        // gone already
      }
    }
  }

  private FaultHandler builtIn() {
    return builtInHandler(base, pageSize, o.mode());
  }

  /**
   * The built-in handler for a mapping at {@code base} (pages of {@code pageSize}): MISSING → UFFDIO_COPY of
   * {@link #fillPattern}; WP → un-protect (a WP-mode uffd's other faults are woken). Also what a handler attached
   * from elsewhere ({@link BenchOptions.BenchTarget}) can run to satisfy the integrity oracle.
   */
  public static FaultHandler builtInHandler(long base, long pageSize, Mode mode) {
    return ctx -> {
      if (mode == Mode.WP) {
        if (ctx.message().wp()) {
          ctx.writeUnprotect();
        } else {
          ctx.wake();
        }
        return;
      }
      long idx = (ctx.pageAddress() - base) / pageSize;
      ctx.copy(fillPattern(idx, (int) pageSize));
    };
  }

  private static double[] zipfCdf(int n, double theta) {
    double[] cdf = new double[n];
    double sum = 0;
    for (int i = 0; i < n; i++) {
      sum += 1 / Math.pow(i + 1, theta);
      cdf[i] = sum;
    }
    for (int i = 0; i < n; i++) {
      cdf[i] /= sum;
    }
    return cdf;
  }

  private int nextPage(SplittableRandom rnd, long op, int id, double[] zipf) {
    int n = (int) o.pages();
    return switch (o.pattern()) {
      case SEQUENTIAL -> (int) ((id * (long) n / o.threads() + op) % n);
      case RANDOM -> rnd.nextInt(n);
      case ZIPFIAN -> {
        int i = Arrays.binarySearch(zipf, rnd.nextDouble());
        yield Math.min(n - 1, i < 0 ? -i - 1 : i);
      }
    };
  }

  private void worker(int id, long deadline, double[] zipf, Histogram fl, Histogram al, long[] blocked,
      long[] opsDone, long[] faultsSeen, long[] writesDone, Map<Long, long[]> expected) {
    SplittableRandom rnd = new SplittableRandom(o.seed() * 0x9E3779B97F4A7C15L + id);
    int slot = id % slotsPerPage;
    int group = id / slotsPerPage;
    for (long op = 0; op < o.opsPerThread() && System.nanoTime() < deadline && violationCount.get() == 0; op++) {
      int page = nextPage(rnd, op, id, zipf);
      boolean write = rnd.nextDouble() < o.writeRatio();
      if (write && groups > 1) {
        int p2 = page - page % groups + group;
        if (p2 >= o.pages()) {
          write = false;
        } else {
          page = p2;
        }
      }
      long addr = base + page * pageSize;
      ReentrantReadWriteLock.ReadLock lock = locks[page].readLock();
      lock.lock();
      try {
        boolean faulting = o.mode() == Mode.MISSING ? populated.get(page) == 0 : write && wpProtected.get(page) == 1;
        long version = 0;
        AccessResult r;
        long start = System.nanoTime();
        if (write) {
          long[] ev = expected.computeIfAbsent((long) page, k -> new long[2]);
          long ep = epoch.get(page);
          version = ev[0] == ep ? ev[1] + 1 : 1;
          ByteBuffer b = ByteBuffer.allocate(SLOT).putLong(id).putLong(version);
          r = process.write(addr + HEADER + (long) slot * SLOT, b.array());
          if (r.ok()) {
            ev[0] = ep;
            ev[1] = version;
          }
        } else {
          r = process.read(addr + HEADER + (long) rnd.nextInt(slotsPerPage) * SLOT, SLOT);
        }
        long lat = System.nanoTime() - start;
        opsDone[id]++;
        progress.update(progressOps.incrementAndGet(), progressTotal());
        al.recordValue(Math.max(1, lat / 1000));
        if (!r.ok()) {
          errors.incrementAndGet();
          violation("thread " + id + (write ? " write" : " read") + " of page " + page + " failed: signal "
              + r.signal() + " errno " + r.errno());
          continue;
        }
        if (write) {
          writesDone[id]++;
        }
        if (faulting) {
          faultsSeen[id]++;
          fl.recordValue(Math.max(1, lat / 1000));
          blocked[id] += lat;
        }
        populated.set(page, 1);
        if (write && o.mode() == Mode.WP && wpProtected.compareAndSet(page, 1, 0) && o.external() == null) {
          AtomicLong seen = wpSeen.get(addr);
          if (seen == null) {
            violation("write to write-protected page " + page + " completed without a WP fault at the handler");
          }
        }
      } finally {
        lock.unlock();
      }
    }
  }

  private void chaosLoop() {
    List<Chaos> kinds = new ArrayList<>();
    for (Chaos c : Chaos.values()) {
      if (!o.chaos().contains(c)) {
        continue;
      }
      boolean applies = switch (c) {
        case ZAP -> true;
        case PAGEOUT, SPLIT -> o.memory() != MemoryType.HUGETLB;
        case REMOVE -> o.memory() == MemoryType.SHMEM;
      };
      if (applies) {
        kinds.add(c);
      }
    }
    if (kinds.isEmpty()) {
      return;
    }
    SplittableRandom rnd = new SplittableRandom(o.seed() ^ 0xC4A05L);
    while (!stop) {
      try {
        Thread.sleep(Math.max(1, (long) (-Math.log(1 - rnd.nextDouble()) * o.chaosIntervalMillis())));
      } catch (InterruptedException e) {
        return;
      }
      Chaos c = kinds.get(rnd.nextInt(kinds.size()));
      int page = rnd.nextInt((int) o.pages());
      long addr = base + page * pageSize;
      ReentrantReadWriteLock.WriteLock lock = locks[page].writeLock();
      lock.lock();
      try {
        if (stop) {
          return;
        }
        boolean drops = switch (c) {
          case ZAP -> {
            process.madvise(addr, pageSize, Linux.MADV_DONTNEED);
            yield o.memory() != MemoryType.SHMEM;
          }
          case PAGEOUT -> {
            process.madvise(addr, pageSize, Linux.MADV_PAGEOUT);
            yield false;
          }
          case SPLIT -> {
            process.mprotect(addr, 4096, Linux.PROT_READ);
            process.mprotect(addr, 4096, Linux.PROT_READ | Linux.PROT_WRITE);
            yield false;
          }
          case REMOVE -> {
            process.madvise(addr, pageSize, Linux.MADV_REMOVE);
            yield true;
          }
        };
        if (drops) {
          epoch.incrementAndGet(page);
          populated.set(page, 0);
          if (o.mode() == Mode.WP && o.memory() == MemoryType.ANON) {
            // an anon zap drops wp with the page (shmem and hugetlb keep a marker): later stores are silent.
            // Not re-armed here: a stale WP message still queued for the page would un-protect it again
            wpProtected.set(page, 0);
          }
        }
        chaosDone.get(c).incrementAndGet();
      } catch (RuntimeException e) {
        errors.incrementAndGet();
        violation("chaos " + c + " on page " + page + " failed: " + e);
      } finally {
        lock.unlock();
      }
    }
  }

  private void verify(List<Map<Long, long[]>> expected) {
    int n = (int) o.pages();
    for (int page = 0; page < n; page++) {
      long addr = base + page * pageSize;
      int len = (int) Math.min(pageSize, HEADER + (long) slotsPerPage * SLOT);
      AccessResult r = process.read(addr, len);
      if (!r.ok()) {
        violation("final read of page " + page + " failed: signal " + r.signal() + " errno " + r.errno());
        continue;
      }
      byte[] data = r.data();
      byte[] want = o.mode() == Mode.MISSING ? fillPattern(page, (int) pageSize) : new byte[(int) pageSize];
      if (o.checkFill() && !Arrays.equals(data, 0, HEADER, want, 0, HEADER)) {
        violation("page " + page + ": header is not the " + (o.mode() == Mode.MISSING ? "fill pattern" : "zeroes"));
      }
      long ep = epoch.get(page);
      for (int slot = 0; slot < slotsPerPage; slot++) {
        int off = HEADER + slot * SLOT;
        long version = 0;
        int owner = -1;
        for (int t = slot; t < o.threads(); t += slotsPerPage) {
          if (groups > 1 && page % groups != t / slotsPerPage) {
            continue;
          }
          long[] ev = expected.get(t).get((long) page);
          if (ev != null && ev[0] == ep) {
            version = ev[1];
            owner = t;
          }
        }
        ByteBuffer b = ByteBuffer.wrap(data, off, SLOT);
        long gotThread = b.getLong();
        long gotVersion = b.getLong();
        if (version > 0) {
          if (gotThread != owner || gotVersion != version) {
            violation("page " + page + " slot " + slot + ": thread " + owner + " wrote version " + version
                + ", memory holds thread " + gotThread + " version " + gotVersion + " (lost write)");
          }
        } else if (o.checkFill() && !Arrays.equals(data, off, off + SLOT, want, off, off + SLOT)) {
          violation("page " + page + " slot " + slot + ": never written (since its last drop) but corrupt");
        }
      }
    }
  }
}
