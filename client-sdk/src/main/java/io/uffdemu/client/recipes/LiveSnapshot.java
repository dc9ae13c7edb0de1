package io.uffdemu.client.recipes;

import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.FaultContext;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MemoryType;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import io.uffdemu.client.Vma;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * Recipe 1: a live (background) snapshot, as QEMU's background snapshot does it. The process keeps running:
 *
 * <ol>
 *   <li>{@link #prepare}: open a uffd with {@code WP_UNPOPULATED | WP_HUGETLBFS_SHMEM}, register the ranges
 *       in WP mode, start a handler loop;</li>
 *   <li>{@link #protect}: UFFDIO_WRITEPROTECT every range, holding WP faults until the last range is
 *       protected: the end of the last call is the snapshot instant (holes get markers, nothing is
 *       pre-faulted);</li>
 *   <li>{@link #complete}: copiers read every page still protected, save it and un-protect it; a writer that
 *       touches a protected page first raises a WP fault, and the handler saves the page <em>before</em>
 *       un-protecting it. Then the directory is committed crash-safely and the uffd is closed.</li>
 * </ol>
 *
 * <p>Works for anon, shmem (memfd, MAP_SHARED anon) and hugetlb (2 MiB pages, aligned ranges) mappings. A
 * page's content is what it held at the snapshot instant. Not handled: MADV_DONTNEED / munmap /
 * mremap of the ranges while the snapshot runs (an anon zap drops the protection, so the pre-zap content is
 * lost), and another uffd already registered on the ranges (EBUSY).
 *
 * <pre>{@code
 * SnapshotResult r = LiveSnapshot.take(client, SnapshotOptions.of(pid, Path.of("snap-1")));
 * System.out.print(r.toTable());
 * SnapshotVerifier.verifyFile(r.dir()).throwIfFailed();
 * }</pre>
 */
public final class LiveSnapshot implements AutoCloseable {
  static final long FEATURES = Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP | Linux.UFFD_FEATURE_WP_UNPOPULATED
      | Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

  private static final int PENDING = 0;
  private static final int SAVING = 1;
  private static final int SAVED = 2;

  private final SnapshotOptions options;
  private final Process process;
  private final List<RangeState> ranges;
  private final long t0 = System.nanoTime();
  private final SnapshotFiles.Writer writer;
  private final Userfaultfd uffd;
  private final HandlerLoop loop;
  private final AtomicLong savedOnFault = new AtomicLong();
  private final AtomicLong savedInBackground = new AtomicLong();
  private final AtomicLong wpFaults = new AtomicLong();
  private final AtomicLong dataBytes = new AtomicLong();
  private final CountDownLatch gate = new CountDownLatch(1);
  private volatile Throwable failure;
  private long protectStart;
  private long protectEnd;
  private boolean protectedAll;
  private boolean closed;

  private static final class RangeState {
    final AddrRange range;
    final MemoryType type;
    final long pageSize;
    final long fileOffset;
    final int pages;
    final AtomicIntegerArray state;
    final String[] sums;
    Instant protectedAt;

    RangeState(AddrRange range, MemoryType type, long pageSize, long fileOffset) {
      this.range = range;
      this.type = type;
      this.pageSize = pageSize;
      this.fileOffset = fileOffset;
      this.pages = (int) (range.len() / pageSize);
      this.state = new AtomicIntegerArray(pages);
      this.sums = new String[pages];
    }

    long pageAddress(int i) {
      return range.start() + i * pageSize;
    }
  }

  private LiveSnapshot(UffdemuClient client, SnapshotOptions options) throws IOException {
    this.options = options;
    this.process = client.process(options.pid());
    this.ranges = resolve(process.maps(), options.ranges());
    if (ranges.isEmpty()) {
      throw new IllegalArgumentException("nothing to snapshot in process " + options.pid());
    }
    this.writer = new SnapshotFiles.Writer(options.output());
    Userfaultfd u = null;
    try {
      u = process.userfaultfd(UffdOptions.DEFAULT.withFeatures(FEATURES));
      for (RangeState r : ranges) {
        u.register(r.range, Linux.UFFDIO_REGISTER_MODE_WP);
      }
      this.uffd = u;
      this.loop = u.handle(new WpHandler(), HandlerOptions.DEFAULT.withWorkers(options.handlerWorkers())
          .withObserver(options.observer()));
    } catch (RuntimeException e) {
      if (u != null) {
        u.close();
      }
      writer.close();
      throw e;
    }
  }

  /** Prepares, protects and completes: the whole snapshot. */
  public static SnapshotResult take(UffdemuClient client, SnapshotOptions options) throws IOException {
    return take(client, options, Progress.NONE);
  }

  /** {@link #take(UffdemuClient, SnapshotOptions)} reporting pages saved of the total to {@code progress}. */
  public static SnapshotResult take(UffdemuClient client, SnapshotOptions options, Progress progress)
      throws IOException {
    try (LiveSnapshot s = prepare(client, options)) {
      s.protect();
      return s.complete(progress);
    }
  }

  /** Opens the uffd, registers the ranges (WP) and starts the handler; nothing is protected yet. */
  public static LiveSnapshot prepare(UffdemuClient client, SnapshotOptions options) throws IOException {
    return new LiveSnapshot(client, options);
  }

  /** The ranges that will be snapshotted (split at mapping boundaries). */
  public List<AddrRange> ranges() {
    return ranges.stream().map(r -> r.range).toList();
  }

  /**
   * Write-protects every range and releases: the snapshot instant. Writers that touch a protected page while
   * the later ranges are still being protected stay blocked until all are, so every range holds its content
   * as of the end of the last UFFDIO_WRITEPROTECT: one instant for the whole process.
   */
  public void protect() {
    protectHeld();
    release();
  }

  /**
   * Write-protects every range and keeps WP faults unresolved (writers block) until {@link #release()}: the
   * barrier of a {@link DistributedSnapshot}. Keep the hold short: a held fault counts against the handler's
   * fault deadline (30 s).
   */
  public synchronized void protectHeld() {
    if (protectedAll) {
      throw new IllegalStateException("already protected");
    }
    protectStart = System.nanoTime();
    for (RangeState r : ranges) {
      uffd.writeProtect(r.range, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
    }
    protectEnd = System.nanoTime();
    Instant at = Instant.now();
    for (RangeState r : ranges) {
      r.protectedAt = at;
    }
    protectedAll = true;
  }

  /** Lets the WP handler save and un-protect pages (after {@link #protectHeld()}). */
  public void release() {
    gate.countDown();
  }

  /** {@link System#nanoTime()} just before the first UFFDIO_WRITEPROTECT was sent. */
  public long protectStartNanos() {
    return protectStart;
  }

  /** {@link System#nanoTime()} just after the last UFFDIO_WRITEPROTECT returned. */
  public long protectEndNanos() {
    return protectEnd;
  }

  /** Copies every page not saved yet, commits the directory, closes the uffd. */
  public SnapshotResult complete() throws IOException {
    return complete(Progress.NONE);
  }

  /** {@link #complete()} reporting pages done (saved or found saved by a WP fault) of the total. */
  public synchronized SnapshotResult complete(Progress progress) throws IOException {
    if (!protectedAll) {
      throw new IllegalStateException("protect() first");
    }
    release();
    record Job(RangeState r, int i) {}
    List<Job> jobs = new ArrayList<>();
    for (RangeState r : ranges) {
      for (int i = 0; i < r.pages; i++) {
        jobs.add(new Job(r, i));
      }
    }
    AtomicLong next = new AtomicLong();
    AtomicLong done = new AtomicLong();
    progress.update(0, jobs.size());
    try (ExecutorService ex = Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("snapshot-copy-", 0)
        .factory())) {
      List<Future<?>> fs = new ArrayList<>();
      for (int w = 0; w < options.workers(); w++) {
        fs.add(ex.submit(() -> {
          for (long j; (j = next.getAndIncrement()) < jobs.size() && failure == null; ) {
            Job job = jobs.get((int) j);
            if (save(job.r, job.i, false)) {
              savedInBackground.incrementAndGet();
            }
            unprotect(job.r, job.i);
            progress.update(done.incrementAndGet(), jobs.size());
          }
          return null;
        }));
      }
      for (Future<?> f : fs) {
        try {
          f.get();
        } catch (ExecutionException e) {
          fail(e.getCause());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("interrupted", e);
        }
      }
    }
    if (failure != null) {
      throw new IOException("snapshot failed", failure);
    }
    teardown();
    List<SnapshotManifest.Range> mr = new ArrayList<>();
    for (RangeState r : ranges) {
      mr.add(new SnapshotManifest.Range(r.range.start(), r.range.len(), r.type, r.pageSize, r.fileOffset,
          r.protectedAt, Arrays.asList(r.sums)));
    }
    SnapshotManifest m = new SnapshotManifest(SnapshotManifest.FORMAT_VERSION, options.pid(),
        options.sourceServer(), Instant.now(), "SHA-256", options.cutId(), mr);
    Path dir = writer.commit(m);
    return new SnapshotResult(dir, options.pid(), ranges.size(), m.pageCount(), m.zeroPages(), dataBytes.get(),
        savedOnFault.get(), savedInBackground.get(), wpFaults.get(), protectEnd - protectStart,
        System.nanoTime() - t0);
  }

  /** Saves the page unless already saved; waits while another thread saves it. Returns whether this call saved it. */
  private boolean save(RangeState r, int i, boolean onFault) {
    if (r.state.compareAndSet(i, PENDING, SAVING)) {
      try {
        long addr = r.pageAddress(i);
        // a read never raises a WP fault: the page still holds its content at the protect instant
        AccessResult a = process.read(addr, (int) r.pageSize);
        if (!a.ok()) {
          throw new IllegalStateException("reading 0x" + Long.toHexString(addr) + " failed: signal "
              + a.signal() + " errno " + a.errno());
        }
        byte[] data = a.data();
        String sum = SnapshotFiles.checksum(data);
        if (!SnapshotManifest.ZERO.equals(sum)) {
          writer.writePage(r.fileOffset + i * r.pageSize, data);
          dataBytes.addAndGet(data.length);
        }
        r.sums[i] = sum;
        r.state.set(i, SAVED);
        return true;
      } catch (RuntimeException e) {
        fail(e);
        r.state.set(i, SAVED);
        throw e;
      }
    }
    while (r.state.get(i) != SAVED) {
      LockSupport.parkNanos(20_000);
    }
    return false;
  }

  private void unprotect(RangeState r, int i) {
    // clears wp and wakes writers blocked on the page
    uffd.writeProtect(new AddrRange(r.pageAddress(i), r.pageSize), 0);
  }

  private void fail(Throwable t) {
    if (failure == null) {
      failure = t;
    }
  }

  private RangeState find(long addr) {
    for (RangeState r : ranges) {
      if (r.range.contains(addr)) {
        return r;
      }
    }
    return null;
  }

  private final class WpHandler implements FaultHandler {
    @Override
    public void onFault(FaultContext ctx) throws InterruptedException {
      long addr = ctx.message().address();
      RangeState r = find(addr);
      if (r == null || !ctx.message().wp()) {
        ctx.wake();
        return;
      }
      wpFaults.incrementAndGet();
      gate.await(); // the barrier: nothing is saved or un-protected before every range is protected
      int i = (int) ((addr - r.range.start()) / r.pageSize);
      if (save(r, i, true)) {
        savedOnFault.incrementAndGet();
      }
      unprotect(r, i);
    }

    @Override
    public void onError(Throwable error) {
      fail(error);
    }
  }

  private void teardown() {
    if (closed) {
      return;
    }
    closed = true;
    release();
    try {
      loop.close();
    } finally {
      try {
        for (RangeState r : ranges) {
          uffd.unregister(r.range);
        }
      } catch (RuntimeException ignored) {
        // close(2) below unregisters as well
      } finally {
        uffd.close();
      }
    }
  }

  /** Stops early if {@link #complete} did not run: the uffd is closed (protection dropped), nothing is committed. */
  @Override
  public synchronized void close() throws IOException {
    try {
      teardown();
    } finally {
      writer.close();
    }
  }

  static List<RangeState> resolve(List<Vma> maps, List<AddrRange> wanted) {
    List<Vma> vmas = maps.stream().sorted(Comparator.comparingLong(Vma::start)).toList();
    List<AddrRange> want = wanted.isEmpty()
        ? vmas.stream().filter(Vma::writable).map(Vma::range).toList()
        : wanted;
    List<RangeState> out = new ArrayList<>();
    long off = 0;
    for (AddrRange w : want) {
      long covered = w.start();
      for (Vma v : vmas) {
        long s = Math.max(v.start(), w.start());
        long e = Math.min(v.end(), w.end());
        if (s >= e) {
          continue;
        }
        if (s != covered) {
          throw new IllegalArgumentException("range " + w + " is not mapped at 0x" + Long.toHexString(covered));
        }
        long ps = v.pageSize() <= 0 ? 4096 : v.pageSize();
        if (s % ps != 0 || e % ps != 0) {
          throw new IllegalArgumentException("range " + w + " is not aligned to the " + ps + "-byte pages of " + v);
        }
        RangeState r = new RangeState(AddrRange.ofBounds(s, e), v.memoryType(), ps, off);
        off += r.range.len();
        out.add(r);
        covered = e;
      }
      if (covered != w.end()) {
        throw new IllegalArgumentException("range " + w + " is not mapped at 0x" + Long.toHexString(covered));
      }
    }
    return out;
  }
}
