package io.uffdemu.client.recipes;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.EagainException;
import io.uffdemu.client.EexistException;
import io.uffdemu.client.FaultContext;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MemoryType;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Recipe 4: lazy restore of a {@link LiveSnapshot} into a fresh process, Firecracker-style. Every range is
 * mapped at its original address (anon private, shmem as MAP_SHARED|MAP_ANONYMOUS, hugetlb with its page
 * size) and registered MISSING on one uffd with {@code EVENT_REMOVE}. A fault is served with UFFDIO_COPY of
 * the page from pages.bin (checksum-verified), zero pages with UFFDIO_ZEROPAGE (a zero COPY on hugetlb).
 * REMOVE events (a balloon's MADV_DONTNEED / MADV_REMOVE) are remembered: later faults on those pages get
 * zeroes and the prefetch skips them. The prefetch copies the pages nobody faulted on; EEXIST (a fault won)
 * counts as done, EAGAIN (a REMOVE not read yet) is retried.
 *
 * <p>Limit: a prefetch COPY that lands between a REMOVE's zap and the handler's delivery of the event to
 * {@link FaultHandler#onEvent} repopulates the removed page with snapshot data (the server refuses the COPY
 * with EAGAIN only until the event is read). Stop the prefetch before ballooning if that matters.
 *
 * <pre>{@code
 * try (LazyRestore r = LazyRestore.start(client, RestoreOptions.of(Path.of("snap-1")))) {
 *   r.process().read(addr, 4096);   // served from the snapshot on first touch
 *   r.awaitPrefetch(Duration.ofMinutes(1));
 *   System.out.print(r.result().toTable());
 * }
 * }</pre>
 */
public final class LazyRestore implements AutoCloseable {
  private final RestoreOptions options;
  private final Progress progress;
  private final SnapshotFiles.Reader reader;
  private final Process process;
  private final Userfaultfd uffd;
  private final HandlerLoop loop;
  private final List<RangeState> ranges = new ArrayList<>();
  private final long t0 = System.nanoTime();
  private final AtomicLong faultCopies = new AtomicLong();
  private final AtomicLong faultZeros = new AtomicLong();
  private final AtomicLong prefetched = new AtomicLong();
  private final AtomicLong eexist = new AtomicLong();
  private final AtomicLong removeEvents = new AtomicLong();
  private final AtomicLong removedPages = new AtomicLong();
  private final CompletableFuture<Void> prefetchDone = new CompletableFuture<>();
  private volatile boolean stopping;
  private boolean closed;

  private static final class RangeState {
    final SnapshotManifest.Range m;
    final AtomicIntegerArray populated;
    final BitSet removed = new BitSet();

    RangeState(SnapshotManifest.Range m) {
      this.m = m;
      this.populated = new AtomicIntegerArray(m.pageCount());
    }

    synchronized boolean isRemoved(int i) {
      return removed.get(i);
    }
  }

  private LazyRestore(UffdemuClient client, RestoreOptions options, Progress progress) throws IOException {
    this.options = options;
    this.progress = progress;
    this.reader = new SnapshotFiles.Reader(options.snapshot());
    SnapshotFiles.Reader rd = reader;
    Process p = null;
    try {
      p = client.createProcess(options.processName());
      for (SnapshotManifest.Range r : rd.manifest().ranges()) {
        MmapOptions mo = switch (r.memoryType()) {
          case SHMEM -> MmapOptions.anonymous(r.length()).sharedAnonymous();
          case HUGETLB -> r.pageSize() == 1L << 30 ? MmapOptions.anonymous(r.length()).hugetlb1G()
              : MmapOptions.anonymous(r.length()).hugetlb2M();
          default -> MmapOptions.anonymous(r.length());
        };
        long got = p.mmap(mo.fixedNoReplace(r.start()));
        if (got != r.start()) {
          throw new IllegalStateException("mapped at 0x" + Long.toHexString(got) + ", wanted 0x"
              + Long.toHexString(r.start()));
        }
        ranges.add(new RangeState(r));
      }
      this.process = p;
      this.uffd = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_EVENT_REMOVE
          | Linux.UFFD_FEATURE_MISSING_SHMEM | Linux.UFFD_FEATURE_MISSING_HUGETLBFS));
      for (RangeState r : ranges) {
        uffd.register(r.m.addrRange(), Linux.UFFDIO_REGISTER_MODE_MISSING);
      }
      this.loop = uffd.handle(new MissingHandler(), HandlerOptions.DEFAULT.withWorkers(options.handlerWorkers())
          .withObserver(options.observer()));
    } catch (RuntimeException e) {
      reader.close();
      if (p != null) {
        p.exit();
      }
      throw e;
    }
    if (options.prefetch()) {
      startPrefetch();
    } else {
      prefetchDone.complete(null);
    }
  }

  /** Creates the process, maps and registers the ranges, starts the handler and (when asked) the prefetch. */
  public static LazyRestore start(UffdemuClient client, RestoreOptions options) throws IOException {
    return start(client, options, Progress.NONE);
  }

  /** {@link #start(UffdemuClient, RestoreOptions)} reporting pages prefetched (or found populated) of the total. */
  public static LazyRestore start(UffdemuClient client, RestoreOptions options, Progress progress)
      throws IOException {
    return new LazyRestore(client, options, java.util.Objects.requireNonNull(progress, "progress"));
  }

  /** The restored process. It outlives this object. */
  public Process process() {
    return process;
  }

  public SnapshotManifest manifest() {
    return reader.manifest();
  }

  /** Completes when the prefetch has populated every page (immediately when prefetch is off). */
  public CompletableFuture<Void> prefetchDone() {
    return prefetchDone;
  }

  public void awaitPrefetch(Duration timeout) throws InterruptedException, TimeoutException {
    try {
      prefetchDone.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      throw new IllegalStateException("prefetch failed", e.getCause());
    }
  }

  public RestoreResult result() {
    return new RestoreResult(process.pid(), reader.manifest().pageCount(), faultCopies.get(), faultZeros.get(),
        prefetched.get(), eexist.get(), removeEvents.get(), removedPages.get(),
        prefetchDone.isDone() && !prefetchDone.isCompletedExceptionally(), System.nanoTime() - t0);
  }

  private RangeState find(long addr) {
    for (RangeState r : ranges) {
      if (r.m.addrRange().contains(addr)) {
        return r;
      }
    }
    return null;
  }

  private byte[] content(RangeState r, int i) {
    if (r.isRemoved(i) || r.m.isZero(i)) {
      return null;
    }
    return reader.verifiedPage(r.m, i);
  }

  private final class MissingHandler implements FaultHandler {
    @Override
    public void onFault(FaultContext ctx) {
      long addr = ctx.message().address();
      RangeState r = find(addr);
      if (r == null) {
        ctx.wake();
        return;
      }
      int i = r.m.indexOf(addr);
      long page = r.m.pageAddress(i);
      byte[] data = content(r, i);
      // counted before resolving: the resolution wakes the faulting thread, which may read the counters
      AtomicLong counter = data != null ? faultCopies : faultZeros;
      counter.incrementAndGet();
      long done;
      try {
        if (data != null) {
          done = ctx.copy(page, data, 0);
        } else if (r.m.memoryType() == MemoryType.HUGETLB) {
          done = ctx.copy(page, new byte[(int) r.m.pageSize()], 0);
        } else {
          done = ctx.zeropage(); // 4 KiB pages: the context's page
        }
      } catch (RuntimeException e) {
        counter.decrementAndGet();
        throw e;
      }
      if (done == 0) { // EEXIST, absorbed by the context: the prefetch populated it first
        counter.decrementAndGet();
        eexist.incrementAndGet();
      }
      r.populated.set(i, 1);
    }

    @Override
    public void onEvent(UffdMessage event) {
      if (event instanceof UffdMessage.RemoveEvent rm) {
        removeEvents.incrementAndGet();
        for (RangeState r : ranges) {
          long s = Math.max(rm.start(), r.m.start());
          long e = Math.min(rm.end(), r.m.addrRange().end());
          if (s >= e) {
            continue;
          }
          int from = r.m.indexOf(s);
          int to = (int) ((e - r.m.start() + r.m.pageSize() - 1) / r.m.pageSize());
          synchronized (r) {
            for (int i = from; i < to; i++) {
              if (!r.removed.get(i)) {
                r.removed.set(i);
                removedPages.incrementAndGet();
              }
              r.populated.set(i, 0);
            }
          }
        }
      }
    }
  }

  private void startPrefetch() {
    record Job(RangeState r, int i) {}
    List<Job> jobs = new ArrayList<>();
    for (RangeState r : ranges) {
      for (int i = 0; i < r.m.pageCount(); i++) {
        jobs.add(new Job(r, i));
      }
    }
    AtomicLong next = new AtomicLong();
    AtomicLong done = new AtomicLong();
    progress.update(0, jobs.size());
    List<CompletableFuture<Void>> workers = new ArrayList<>();
    for (int w = 0; w < options.prefetchWorkers(); w++) {
      CompletableFuture<Void> f = new CompletableFuture<>();
      workers.add(f);
      Thread.ofVirtual().name("restore-prefetch-" + w).start(() -> {
        try {
          for (long j; !stopping && (j = next.getAndIncrement()) < jobs.size(); ) {
            prefetch(jobs.get((int) j).r, jobs.get((int) j).i);
            progress.update(done.incrementAndGet(), jobs.size());
          }
          f.complete(null);
        } catch (Throwable t) {
          f.completeExceptionally(t);
        }
      });
    }
    CompletableFuture.allOf(workers.toArray(CompletableFuture[]::new)).whenComplete((v, t) -> {
      if (t != null) {
        prefetchDone.completeExceptionally(t);
      } else {
        prefetchDone.complete(null);
      }
    });
  }

  private void prefetch(RangeState r, int i) throws InterruptedException {
    for (int attempt = 0; !stopping; attempt++) {
      if (r.populated.get(i) != 0 || r.isRemoved(i)) {
        return;
      }
      long page = r.m.pageAddress(i);
      try {
        byte[] data = content(r, i);
        if (data == null && r.m.memoryType() != MemoryType.HUGETLB) {
          uffd.zeropage(new AddrRange(page, r.m.pageSize()), 0);
        } else {
          uffd.copy(page, data == null ? new byte[(int) r.m.pageSize()] : data, 0);
        }
        prefetched.incrementAndGet();
        r.populated.set(i, 1);
        return;
      } catch (EexistException e) {
        eexist.incrementAndGet();
        r.populated.set(i, 1);
        return;
      } catch (EagainException e) {
        // a REMOVE/unmap is pending on the uffd: let the handler read it, then look again
        Thread.sleep(Math.min(50, 1 + attempt));
      }
    }
  }

  /**
   * Stops the prefetch and the handler and closes the uffd. Pages not populated yet then fault as ordinary
   * memory (zeroes): await {@link #prefetchDone()} first for a complete restore.
   */
  @Override
  public synchronized void close() throws IOException {
    if (closed) {
      return;
    }
    closed = true;
    stopping = true;
    try {
      prefetchDone.exceptionally(t -> null).get(10, TimeUnit.SECONDS);
    } catch (Exception ignored) {
      // closing anyway
    }
    try {
      loop.close();
    } finally {
      try {
        uffd.close();
      } finally {
        reader.close();
      }
    }
  }
}
