package io.uffdemu.client.impl;

import static com.google.common.util.concurrent.MoreExecutors.directExecutor;

import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.uffdemu.api.v1.HandleAttach;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleRequestBatch;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.BatchFaultHandler;
import io.uffdemu.client.EagainException;
import io.uffdemu.client.ErrnoException;
import io.uffdemu.client.FallbackPolicy;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerObserver;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.HandlerDisconnectedException;
import io.uffdemu.client.HandlerStats;
import io.uffdemu.client.ReconnectExhaustedException;
import io.uffdemu.client.ReconnectPolicy;
import io.uffdemu.client.UffdGoneException;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.UffdemuException;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The handler loop over one Handle stream.
 *
 * <p>Threads: the transport's thread runs {@link Listener}'s onNext (never blocks: the Handle call has a direct
 * executor), its onError/onCompleted go to a thread of the thread factory; {@code workers} worker threads take
 * faults from {@link #ready}, each running the user's {@code onFault} on a fresh handler thread so that the
 * fault deadline can abandon it; one event thread delivers non-pagefault events in order and re-queues
 * EAGAIN-deferred faults after each event (or after {@code eagainRetryDelay}). For a {@link BatchFaultHandler}
 * with resolutions on the stream, the faults of one stream message that can be served at once form a group
 * ({@link #readyGroups}; groups waiting for a place in flight are joined when taken, {@link #takeGroupLocked}):
 * one worker runs onFault for each of them itself and sends their resolutions together
 * ({@link #serveGroup}), and the group's results finish it where they arrive ({@link GroupRun}: the worker does not
 * wait for them); a group's faults hold their pages in {@link #activePages} like any fault being served, until it
 * is finished.
 *
 * <p>Flow control (gRPC manual inbound flow control): {@code credits} messages are requested from the
 * server at any time, so that {@code queued + credits == queueCapacity}: a message taken by a worker frees
 * one credit, so at most {@code queueCapacity + workers} messages are outstanding (for a {@link BatchFaultHandler}
 * on the stream, faults: {@code queueCapacity + workers * (join + 1)}, see {@link #takeGroupLocked}). Resolutions
 * are unary UserfaultfdService calls by default. With {@link HandlerOptions#resolveOnStream()} they travel on the
 * stream and their results come back behind messages, so while a sent resolution awaits its result one credit is
 * kept open even when the queue is full (granted only after the request is on the wire); the server may
 * spend it on another message first, which makes the bound best-effort in that mode.
 *
 * <p>Per-page ordering: {@link #activePages} holds every page with a fault being served or queued; later
 * faults of the same page are parked behind it and released one at a time.
 *
 * <p>Everything below marked "guarded by lock" is only touched with {@code lock} held.
 */
final class HandlerLoopImpl implements HandlerLoop {
  private static final System.Logger LOG = System.getLogger(HandlerLoopImpl.class.getName());

  /** A fault to serve. {@code counted}: it still holds a queue slot (freed when a worker takes it). */
  private static final class Task {
    final UffdMessage.PageFault fault;
    final long page;
    boolean counted;
    long deferredAtNanos;
    long epoch; // eventsDelivered when serving started
    long gen; // streamGen when serving started
    long eventsBefore; // events received before this fault: it is served only after they were delivered

    Task(UffdMessage.PageFault fault, long page, boolean counted) {
      this.fault = fault;
      this.page = page;
      this.counted = counted;
    }
  }

  private final UserfaultfdImpl uffd;
  private final FaultHandler handler;
  private final HandlerOptions opts;
  private final HandlerObserver obs;
  /** A {@link BatchFaultHandler} with resolutions on the stream: message batches are served whole. */
  private final boolean batchPath;
  private final CompletableFuture<Void> termination = new CompletableFuture<>();

  private final Object lock = new Object();
  private final Object sendLock = new Object();
  /**
   * Messages per stream message (HandleAttach.max_batch): one credit stands for up to this many, so credits
   * are granted in units of it ({@code queued + credits * batch <= queueCapacity}).
   */
  private final int batch;
  /**
   * Most faults a joined group reaches ({@link #takeGroupLocked}): maxBatch (a resolution batch's limit), and for
   * large pages no more than {@link #JOIN_BYTES} of pages or the server's own batch, whichever is more, so that
   * huge-page groups keep the size they had (their COPY sources still fit the copy region, 16 x 2 MiB per group).
   */
  private final int join;
  static final long JOIN_BYTES = 16L << 20;

  /** {@link #join}: maxBatch, and no more than JOIN_BYTES of pages or the server's batch, whichever is more. */
  static int joinLimit(int maxBatch, int batch, long pageSize) {
    return (int) Math.min(maxBatch, Math.max(batch, JOIN_BYTES / pageSize));
  }
  /**
   * On-stream resolutions waiting to be sent; whoever finds no flush running sends them all, as one batch when
   * {@code maxBatch > 1}. In chunks: a chunk (one fault's resolution, or a whole message batch's for a
   * {@link BatchFaultHandler}) is never split between sends, except where {@link #offer} cuts a large one at
   * maxBatch requests or {@link #MAX_BATCH_BYTES}.
   */
  private final java.util.concurrent.ConcurrentLinkedQueue<List<Outgoing>> outbox =
      new java.util.concurrent.ConcurrentLinkedQueue<>();
  private final java.util.concurrent.atomic.AtomicBoolean flushing = new java.util.concurrent.atomic.AtomicBoolean();
  /** Largest batch of resolutions by bytes (the first request always goes): well under gRPC's 4 MiB default. */
  private static final int MAX_BATCH_BYTES = 1 << 20;

  /** A resolution for the outbox: its request (with id), the stream it belongs to and its result's future. */
  record Outgoing(HandleRequest req, long gen, CompletableFuture<IoctlResult> result) {}

  /** The outbox could not put a request on the wire: the resolution was never sent. */
  private static final class NotSentException extends RuntimeException {
    NotSentException(RuntimeException cause) {
      super(cause.getMessage(), cause, false, false);
    }
  }
  // guarded by lock
  private ClientCallStreamObserver<HandleRequest> requests;
  private final ArrayDeque<Task> ready = new ArrayDeque<>();
  /** Faults of one stream message for a {@link BatchFaultHandler}, each served in order by one worker. */
  private final ArrayDeque<List<Task>> readyGroups = new ArrayDeque<>();
  /**
   * By page number ({@link #pageKey}), not address: page-aligned keys share their low bits, so in a small table
   * 16 neighbouring 4 KiB pages fell into one bucket and the bins turned into trees (item 22 (e)).
   */
  private final Map<Long, ArrayDeque<Task>> activePages = new HashMap<>();
  private final int pageShift;
  private final ArrayDeque<UffdMessage> events = new ArrayDeque<>();
  private final List<Task> deferred = new ArrayList<>();
  private final Map<Long, CompletableFuture<IoctlResult>> pendingResults = new HashMap<>();
  // requests already on the wire and not answered: only these justify a credit beyond the queue capacity
  private final java.util.Set<Long> sentUnanswered = new java.util.HashSet<>();
  private long nextRequestId = 1;
  /**
   * The current stream's copy region (HandleResponse.copy_region), null when it has none: installed only for the
   * current stream and retired whenever the stream changes (streamFailed, terminate): into the client's cache
   * (CopyRegionCache) once nothing writes into it, for a later stream to ask back. Guarded by lock.
   */
  private CopyRegionClient region;
  private final AtomicLong regionCopies = new AtomicLong();
  private int queued;
  private int credits;
  private int busy; // faults being served + event being delivered
  private int groupsInFlight; // message batches taken by a worker and not yet finished (at most `workers`)
  /** Groups to finish slowly for which no thread could be started ({@link #finishElsewhere}). Guarded by lock. */
  private final ArrayDeque<GroupRun> slowGroups = new ArrayDeque<>();
  private long eventsDelivered; // non-pagefault events whose onEvent has returned
  private boolean closing;
  private boolean terminated;
  private final List<Thread> threads = new java.util.concurrent.CopyOnWriteArrayList<>();
  // reconnection (guarded by lock): the current stream's generation (callbacks of older streams are ignored),
  // when it started and whether it received a message; the current outage's start (0 = none) and attempts
  private long streamGen;
  private long streamStartNanos;
  private boolean streamGotMessage;
  private long outageStartNanos;
  private int outageAttempts;
  private Thread reconnector;
  private final AtomicLong reconnects = new AtomicLong();
  private final AtomicLong abandoned = new AtomicLong();

  private final AtomicLong faults = new AtomicLong();
  private final AtomicLong eventCount = new AtomicLong();
  private final AtomicLong resolved = new AtomicLong();
  private final AtomicLong eexist = new AtomicLong();
  private final AtomicLong deferrals = new AtomicLong();
  private final AtomicLong fallbacks = new AtomicLong();
  /** Pages of faults that arrived after close() began: woken once the stream has ended. Guarded by lock. */
  private final java.util.Set<Long> lateFaults = new java.util.TreeSet<>();
  private final AtomicLong failed = new AtomicLong();
  private final AtomicLong ignored = new AtomicLong();

  HandlerLoopImpl(UserfaultfdImpl uffd, FaultHandler handler, HandlerOptions opts) {
    this.uffd = uffd;
    this.handler = handler;
    this.opts = opts;
    this.obs = opts.observer();
    this.batchPath = handler instanceof BatchFaultHandler && opts.resolveOnStream();
    // at most a quarter of the queue per credit, so that a few messages nobody can take yet (a fault parked behind
    // a slow one on its page, faults waiting for onEvent) do not stop the stream: 4 credits stay grantable
    this.batch = Math.min(opts.maxBatch(), Math.max(1, opts.queueCapacity() / 4));
    this.join = joinLimit(opts.maxBatch(), batch, opts.pageSize());
    this.pageShift = Long.numberOfTrailingZeros(opts.pageSize());
  }

  HandlerOptions options() {
    return opts;
  }

  UserfaultfdImpl uffd() {
    return uffd;
  }

  void start() {
    // threads first: a stream failing at once (second handler, ...) terminates a fully built loop
    for (int i = 0; i < opts.workers(); i++) {
      threads.add(opts.threadFactory().newThread(this::workerLoop));
    }
    threads.add(opts.threadFactory().newThread(this::eventLoop));
    threads.forEach(Thread::start);
    try {
      openStream();
    } catch (RuntimeException e) {
      UffdemuException mapped = StatusMapper.map(e, "handle");
      terminate(mapped);
      throw mapped;
    }
  }

  /**
   * Opens a Handle stream and attaches it to the uffd. Holds {@code sendLock} throughout, so close() either
   * sees no new stream (and this method then sees {@code closing}) or half-closes the attached one.
   */
  private void openStream() {
    // The stream's callbacks run on the transport's thread, not on the channel's executor: a hop to an executor
    // thread per stream message cost each side 2-5 us of CPU per fault in `bench transport` (issue 9). onNext only
    // takes the loop's lock, hands work to the workers and completes result futures, which may finish a message
    // batch whose results are all clean (counting, observer calls, releasing its pages: nothing that waits; any other
    // batch goes to a thread of its own, GroupRun); the terminal callbacks, which can run user code and start
    // reconnects, go to a thread of their own.
    var stub = UserfaultfdServiceGrpc.newStub(uffd.processImpl().client().rpc().channel())
        .withExecutor(directExecutor());
    synchronized (sendLock) {
      long gen;
      synchronized (lock) {
        if (closing || terminated) {
          return;
        }
        gen = ++streamGen;
        streamStartNanos = System.nanoTime();
        streamGotMessage = false;
      }
      var requestObserver = stub.handle(new Listener(gen));
      HandleAttach.Builder attach = HandleAttach.newBuilder().setPid(uffd.process().pid()).setFd(uffd.fd())
          .setMaxBatch(batch).setCopyRegionBytes(opts.resolveOnStream() ? opts.copyRegionBytes() : 0)
          // a batch's results may come with the next message batch (one message where there were two); read in
          // Listener.onNext
          .setResultsWithMsgs(batch > 1 && opts.resolveOnStream());
      if (attach.getCopyRegionBytes() > 0) {
        // keep it after this stream for the next one; and a region of an earlier stream, still mapped here: the
        // server offers it again if it kept it
        attach.setKeepCopyRegion(true);
        var reuse = regions().ask(attach.getCopyRegionBytes());
        if (reuse != null) {
          attach.setReuseCopyRegion(reuse);
        }
      }
      requestObserver.onNext(HandleRequest.newBuilder().setAttach(attach).build());
    }
  }

  // ------------------------------------------------------------------ stream side (the transport's thread)

  private final class Listener implements ClientResponseObserver<HandleRequest, HandleResponse> {
    private final long gen;

    Listener(long gen) {
      this.gen = gen;
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<HandleRequest> rs) {
      int initial;
      synchronized (lock) {
        requests = rs;
        // after a reconnect the queue may still hold messages of the old stream: keep queued + credits == capacity
        initial = Math.max(0, opts.queueCapacity() - queued) / batch;
        credits = initial;
      }
      rs.disableAutoRequestWithInitial(initial);
    }

    @Override
    public void onNext(HandleResponse r) {
      // a copy region is opened and mapped here, outside the loop's lock (readlink, open, mmap), and installed
      // below if this is still the current stream
      CopyRegionClient offered = r.getKindCase() == HandleResponse.KindCase.COPY_REGION ? openRegion(r) : null;
      if (r.getKindCase() == HandleResponse.KindCase.MSGS && r.getMsgs().getResultsCount() > 0) {
        // results of earlier batches that came with these messages (the attach asked, results_with_msgs): completed
        // first, as if they had come in a message of their own before, so that the batches they finish are no
        // longer in flight when the messages are taken (a worker's place, a page still being served)
        List<Answer> carried;
        synchronized (lock) {
          if (gen != streamGen) {
            return; // a stream given up for a newer one
          }
          carried = terminated ? List.of() : answersLocked(r.getMsgs().getResultsList());
        }
        for (Answer a : carried) {
          a.f().complete(a.res());
        }
      }
      int grant;
      List<Answer> answers = null;
      synchronized (lock) {
        if (gen != streamGen) {
          if (offered != null) {
            offered.retire(HandlerLoopImpl.this::retired);
          }
          return; // a stream given up for a newer one
        }
        credits--;
        // the reconnector waits for proof that the attach held: a copy region is not one (the server offers it
        // before its first read(2), which is where a uffd that is gone fails)
        if (!streamGotMessage && r.getKindCase() != HandleResponse.KindCase.COPY_REGION) {
          streamGotMessage = true;
          wakeLocked();
        }
        if (!terminated) {
          switch (r.getKindCase()) {
            case RESULT -> answers = answersLocked(List.of(r.getResult()));
            case RESULTS -> answers = answersLocked(r.getResults().getResultsList());
            case MSG -> acceptGroupLocked(List.of(r.getMsg()));
            case MSGS -> acceptGroupLocked(r.getMsgs().getMsgsList()); // its results were taken above
            case COPY_REGION -> {
              closeRegionLocked();
              region = offered;
              offered = null;
            }
            default -> ignored.incrementAndGet();
          }
        }
        grant = grantLocked();
      }
      if (offered != null) {
        offered.retire(HandlerLoopImpl.this::retired); // the loop terminated meanwhile
      }
      // before the results: finishing a batch below must not hold back the server's next message (results carried
      // with messages were completed above, before the grant: the credit that message used is granted back here)
      request(grant);
      if (answers != null) {
        // outside the lock: completing a result can finish a message batch's faults here ({@link #groupDone})
        for (Answer a : answers) {
          a.f().complete(a.res());
        }
      }
    }

    /**
     * Maps the copy region the server offered this stream (or takes the mapping of an earlier stream's, when the
     * server gave that one again), or null when it cannot be used from here.
     */
    private CopyRegionClient openRegion(HandleResponse r) {
      try {
        CopyRegionClient again = regions().take(r.getCopyRegion());
        return again != null ? again : CopyRegionClient.open(r.getCopyRegion());
      } catch (java.io.IOException | RuntimeException e) {
        LOG.log(Level.DEBUG, "copy region not usable, COPY data goes inline: {0}", e.toString());
        return null;
      }
    }

    @Override
    public void onError(Throwable t) {
      long failedAt = System.nanoTime();
      offTransport(() -> streamFailed(gen, t, failedAt));
    }

    @Override
    public void onCompleted() {
      offTransport(() -> {
        synchronized (lock) {
          if (gen != streamGen) {
            return;
          }
        }
        terminate(null);
      });
    }

    /** Runs a terminal callback's work off the transport thread (it may run user code or block). */
    private void offTransport(Runnable work) {
      try {
        opts.threadFactory().newThread(work).start();
      } catch (RuntimeException | OutOfMemoryError e) {
        work.run(); // no thread to be had: late is better than never
      }
    }
  }

  // ------------------------------------------------------------------ reconnection

  /** Stream {@code gen} failed: reconnect (see {@link ReconnectPolicy}) or end the loop. */
  private void streamFailed(long gen, Throwable t) {
    streamFailed(gen, t, System.nanoTime());
  }

  /** As {@link #streamFailed(long, Throwable)}, the failure seen at {@code now} (System.nanoTime()). */
  private void streamFailed(long gen, Throwable t, long now) {
    UffdemuException mapped = StatusMapper.map(t, "handle");
    ReconnectPolicy policy = opts.reconnect();
    UffdemuException giveUp = null;
    List<CompletableFuture<IoctlResult>> lost;
    int attempt;
    Duration delay;
    synchronized (lock) {
      if (gen != streamGen || terminated) {
        return;
      }
      boolean stable = streamGotMessage || now - streamStartNanos >= STABLE_NANOS;
      boolean reattaching = outageStartNanos != 0 && !stable;
      Retry kind = closing || !policy.enabled() || uffd.processImpl().client().channelShutdown() ? Retry.NO
          : classify(t, reattaching);
      if (kind == Retry.NO) {
        giveUp = mapped;
      } else {
        if (!reattaching) {
          outageStartNanos = now;
          outageAttempts = 0;
        }
        Duration downtime = Duration.ofNanos(now - outageStartNanos);
        if (kind == Retry.GONE) {
          giveUp = new UffdGoneException("handle: the server no longer holds uffd " + uffd.fd() + " of pid "
              + uffd.process().pid(), mapped.grpcCode(), outageAttempts, downtime, mapped);
        } else if (outageAttempts >= policy.maxAttempts() || downtime.compareTo(policy.maxDowntime()) >= 0) {
          giveUp = new ReconnectExhaustedException("handle: could not re-attach the Handle stream",
              mapped.grpcCode(), outageAttempts, downtime, mapped);
        }
      }
      if (giveUp != null) {
        lost = List.of();
        attempt = 0;
        delay = Duration.ZERO;
      } else {
        attempt = ++outageAttempts;
        Duration left = policy.maxDowntime().minus(Duration.ofNanos(now - outageStartNanos));
        delay = policy.backoff(attempt, java.util.concurrent.ThreadLocalRandom.current().nextDouble());
        if (delay.compareTo(left) > 0) {
          delay = left.isNegative() ? Duration.ZERO : left;
        }
        // the stream is gone: its credits with it; on-stream resolutions awaiting a result have an unknown
        // outcome (the server wakes their faults, which re-fault for the next stream)
        streamGen++; // a placeholder generation until the next stream is open
        streamStartNanos = now;
        streamGotMessage = false;
        requests = null;
        credits = 0;
        closeRegionLocked(); // still mapped, in the client's cache: the next stream asks it back
        lost = new ArrayList<>(pendingResults.values());
        pendingResults.clear();
        sentUnanswered.clear();
        wakeLocked(); // workers waiting in lostWithTheStream
      }
    }
    if (giveUp != null) {
      if (giveUp instanceof HandlerDisconnectedException d) {
        obs.reconnectFailed(d);
      }
      terminate(giveUp);
      return;
    }
    StreamLostException sl = new StreamLostException(mapped);
    lost.forEach(f -> f.completeExceptionally(sl));
    obs.reconnecting(attempt, delay, mapped);
    LOG.log(Level.DEBUG, "Handle stream failed ({0}); reconnect attempt {1} in {2}", mapped.getMessage(), attempt,
        delay);
    Duration wait = delay;
    Thread r;
    try {
      r = opts.threadFactory().newThread(() -> reconnect(attempt, wait));
      if (r == null) {
        throw new IllegalStateException("the handler's thread factory gave no thread");
      }
    } catch (RuntimeException | OutOfMemoryError e) {
      // no thread to reconnect on: end the loop rather than leave it with no stream and no reconnector
      terminate(new UffdemuException("handle: cannot start a reconnect thread: " + e, mapped.grpcCode(), e));
      return;
    }
    synchronized (lock) {
      if (closing || terminated) {
        return;
      }
      reconnector = r;
    }
    r.start();
  }

  private void reconnect(int attempt, Duration delay) {
    try {
      Thread.sleep(delay);
    } catch (InterruptedException e) {
      return; // closed meanwhile
    }
    long gen;
    Duration downtime;
    synchronized (lock) {
      if (closing || terminated) {
        return;
      }
      gen = streamGen;
      downtime = Duration.ofNanos(System.nanoTime() - outageStartNanos);
    }
    try {
      openStream();
    } catch (RuntimeException e) {
      long failed;
      synchronized (lock) {
        failed = streamGen; // the new stream's, or the placeholder's if it was never opened
      }
      streamFailed(failed, e);
      return;
    }
    // The server does not acknowledge an attach (a refused one fails at its first read(2)): count the reconnect
    // once the stream has proved itself, with a message or by staying up for STABLE_NANOS.
    synchronized (lock) {
      long opened = streamGen;
      long until = System.nanoTime() + STABLE_NANOS;
      while (streamGen == opened && !streamGotMessage && !closing && !terminated) {
        long left = until - System.nanoTime();
        if (left <= 0) {
          break;
        }
        try {
          TimeUnit.NANOSECONDS.timedWait(lock, left);
        } catch (InterruptedException e) {
          return; // closed meanwhile
        }
      }
      if (closing || terminated || streamGen != opened || opened == gen) {
        return; // failed again (a new attempt is scheduled) or never opened
      }
      // the outage is over: the next failure starts a new one with a fresh attempt count
      outageStartNanos = 0;
      outageAttempts = 0;
    }
    reconnects.incrementAndGet();
    obs.reconnected(attempt, downtime);
  }

  private enum Retry { YES, GONE, NO }

  /** A stream that lived this long (or received a message) was attached: its failure starts a new outage. */
  private static final long STABLE_NANOS = TimeUnit.SECONDS.toNanos(1);

  /**
   * Whether a stream failure is worth a new stream. {@code reattaching}: the stream was a reconnect attempt
   * that never proved attached, so the server's "no such uffd" means the uffd is gone, and FAILED_PRECONDITION
   * ("another Handle stream is attached") is most likely our own dead stream not yet reaped by the server.
   */
  private static Retry classify(Throwable t, boolean reattaching) {
    var info = StatusMapper.errnoInfo(t);
    io.grpc.Status.Code code = io.grpc.Status.fromThrowable(t).getCode();
    if (info != null) {
      int errno = info.getErrno();
      return reattaching && (errno == io.uffdemu.client.Linux.EBADF || errno == io.uffdemu.client.Linux.ESRCH
          || errno == io.uffdemu.client.Linux.ENOENT) ? Retry.GONE : Retry.NO;
    }
    return switch (code) {
      case UNAVAILABLE, CANCELLED, ABORTED, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED -> Retry.YES;
      case FAILED_PRECONDITION -> reattaching ? Retry.YES : Retry.NO;
      case NOT_FOUND -> reattaching ? Retry.GONE : Retry.NO;
      default -> Retry.NO;
    };
  }

  /** The client's cache of copy regions, which a stream's region goes back to when the stream ends. */
  private CopyRegionCache regions() {
    return uffd.processImpl().client().copyRegions();
  }

  /**
   * A COPY's bytes written into the current stream's copy region now ({@link CopyRegionClient#stage}); null when
   * there is none or it has no room. The caller unstages it once its fault is done with it.
   */
  CopyRegionClient.Staged stage(byte[] data) {
    CopyRegionClient r;
    synchronized (lock) {
      r = terminated || closing ? null : region;
    }
    return r == null ? null : r.stage(data);
  }

  /**
   * {@code req} as a request that carries its bytes: a staged COPY ({@code st}, null for none) names them in its
   * region, which another stream or a unary call cannot read; the bytes are copied out of it (still there: a fault
   * unstages them only once it is done with its resolutions). Other requests are returned as they are. The staged
   * bytes travel with their request through resolve, sendOnStream and awaitSent (an identity map from request to
   * staging cost 6 % of the handler's CPU in the remote round trip).
   */
  private static HandleRequest.Builder withData(HandleRequest.Builder req, CopyRegionClient.Staged st) {
    if (st == null) {
      return req;
    }
    return req.clone().setCopy(req.getCopy().toBuilder().clearRegionSrc().clearRegionLen().setData(st.copyOut()));
  }

  /** A stream's region, retired (nothing writes into it): into the client's cache, for a later stream. */
  private void retired(CopyRegionClient r) {
    regions().put(r, opts.copyRegionBytes());
  }

  private void closeRegionLocked() {
    if (region != null) {
      region.retire(this::retired); // still mapped, for a later stream to ask back
      region = null;
    }
  }

  /** A result and the future it completes (after the loop's lock is released). */
  private record Answer(CompletableFuture<IoctlResult> f, IoctlResult res) {}

  /** The futures that results of the stream complete; completed by the caller once it released the lock. */
  private List<Answer> answersLocked(List<IoctlResult> results) {
    List<Answer> out = new ArrayList<>(results.size());
    for (IoctlResult res : results) {
      if (region != null) {
        region.release(res.getRequestId()); // the server has read its source: the slot may be reused
      }
      sentUnanswered.remove(res.getRequestId());
      CompletableFuture<IoctlResult> f = pendingResults.remove(res.getRequestId());
      if (f != null) {
        out.add(new Answer(f, res));
      } else {
        ignored.incrementAndGet();
        LOG.log(Level.DEBUG, "result for unknown request id {0}", res.getRequestId());
      }
    }
    return out;
  }

  /**
   * Accepts the messages of one stream message. For a {@link BatchFaultHandler} its faults that can be served at
   * once (page free, no earlier event undelivered) become one group for one worker; the rest are queued as usual.
   */
  private void acceptGroupLocked(List<io.uffdemu.api.v1.UffdMsg> msgs) {
    List<Task> group = batchPath ? new ArrayList<>(msgs.size()) : null;
    for (var m : msgs) {
      acceptLocked(ProtoMapper.message(m), group);
    }
    if (group != null && !group.isEmpty()) {
      readyGroups.add(group);
      signalWorkerLocked();
    }
  }

  /** A worker takes {@code work} (one fault or a group): its queue slots are freed. */
  private void takeLocked(List<Task> work) {
    int taken = 0;
    for (Task t : work) {
      if (t.counted) {
        t.counted = false;
        taken++;
      }
    }
    if (taken > 0) {
      queued -= taken;
      obs.queueDepth(queued);
    }
    busy++;
  }

  private void acceptLocked(UffdMessage m, List<Task> group) {
    if (m == null) {
      ignored.incrementAndGet();
      return;
    }
    if (closing) {
      // nothing is delivered after close. The server read this message off the uffd (read(2) consumed it), so
      // no later handler will see it: remember the page and wake it once the stream has ended, or the
      // faulting thread would stay blocked for good (found by HandlerLoopIT close-under-load).
      if (m instanceof UffdMessage.PageFault pf) {
        lateFaults.add(pf.address() & -opts.pageSize());
      }
      return;
    }
    if (m instanceof UffdMessage.PageFault pf) {
      faults.incrementAndGet();
      Task t = new Task(pf, pf.address() & -opts.pageSize(), true);
      t.eventsBefore = eventCount.get();
      Long key = pageKey(t.page);
      if (group != null && t.eventsBefore <= eventsDelivered && !activePages.containsKey(key)) {
        activePages.put(key, new ArrayDeque<>());
        group.add(t);
      } else {
        enqueueLocked(t);
      }
    } else {
      eventCount.incrementAndGet();
      events.add(m);
      lock.notifyAll(); // the event thread (a fault woke a worker in enqueueLocked)
    }
    queued++;
    obs.queueDepth(queued);
  }

  private void enqueueLocked(Task t) {
    Long key = pageKey(t.page);
    ArrayDeque<Task> parked = activePages.get(key);
    if (parked != null) {
      parked.add(t);
    } else {
      activePages.put(key, new ArrayDeque<>());
      ready.add(t);
      signalWorkerLocked();
    }
  }

  /** Credits to request so that queued + credits == capacity (at least 1 while results are awaited). */
  private int grantLocked() {
    if (terminated || requests == null) {
      return 0;
    }
    int target;
    if (closing) {
      // the server keeps pushing what it has already read off the uffd until it sees the half-close: drain
      // it (the faults are woken after the stream ends) so the stream can complete
      target = opts.queueCapacity();
    } else {
      target = Math.max(0, opts.queueCapacity() - queued) / batch;
      if (target == 0 && !sentUnanswered.isEmpty()) {
        target = 1;
      }
    }
    int grant = Math.max(0, target - credits);
    credits += grant;
    return grant;
  }

  private void request(int n) {
    if (n > 0) {
      ClientCallStreamObserver<HandleRequest> rs;
      synchronized (lock) {
        rs = requests;
      }
      try {
        rs.request(n);
      } catch (RuntimeException e) {
        LOG.log(Level.DEBUG, "request({0}) failed", n, e);
      }
    }
  }

  private void terminate(UffdemuException error) {
    List<CompletableFuture<IoctlResult>> pending;
    boolean notify;
    synchronized (lock) {
      if (terminated) {
        return;
      }
      terminated = true;
      notify = !closing;
      closeRegionLocked();
      pending = new ArrayList<>(pendingResults.values());
      pendingResults.clear();
      sentUnanswered.clear();
      ready.clear();
      readyGroups.clear();
      activePages.clear();
      events.clear();
      deferred.clear();
      queued = 0;
      wakeLocked();
    }
    abandonSlowGroups();
    UffdemuException cause = error != null ? error
        : new UffdemuException("handle stream completed by the server", "OK", null);
    pending.forEach(f -> f.completeExceptionally(cause));
    obs.queueDepth(0);
    if (error != null && notify) {
      try {
        handler.onError(error);
      } catch (RuntimeException e) {
        LOG.log(Level.WARNING, "FaultHandler.onError threw", e);
      }
    }
    if (error != null) {
      termination.completeExceptionally(error);
    } else {
      termination.complete(null);
    }
    threads.forEach(Thread::interrupt);
    interruptReconnector();
    uffd.processImpl().client().unregister(this);
  }

  private void interruptReconnector() {
    Thread r;
    synchronized (lock) {
      r = reconnector;
    }
    if (r != null) {
      r.interrupt();
    }
  }

  // ------------------------------------------------------------------ resolutions

  /** Performs one resolution (unary call, or on the stream) and returns bytes done. */
  long resolve(HandleRequest.Builder req, String call) {
    return resolve(req, null, call);
  }

  /** As {@link #resolve(HandleRequest.Builder, String)}, for a COPY whose bytes are staged in {@code st}. */
  long resolve(HandleRequest.Builder req, CopyRegionClient.Staged st, String call) {
    synchronized (lock) {
      if (terminated) {
        throw new UffdemuException(call + ": handler stream is closed", "CANCELLED", null);
      }
    }
    return opts.resolveOnStream() ? resolveOnStream(req, st, call) : resolveUnary(withData(req, st).build(), call);
  }

  private long resolveUnary(HandleRequest req, String call) {
    RpcExecutor rpc = uffd.processImpl().client().rpc();
    Duration deadline = opts.faultDeadline();
    return switch (req.getKindCase()) {
      case COPY -> StatusMapper.bytes(call, rpc.execute(call, RpcExecutor.Idempotency.NOT_IDEMPOTENT, deadline,
          s -> s.uffd().copy(req.getCopy()).getBytes()));
      case ZEROPAGE -> StatusMapper.bytes(call, rpc.execute(call, RpcExecutor.Idempotency.NOT_IDEMPOTENT, deadline,
          s -> s.uffd().zeropage(req.getZeropage()).getBytes()));
      case CONTINUE -> StatusMapper.bytes(call, rpc.execute(call, RpcExecutor.Idempotency.NOT_IDEMPOTENT, deadline,
          s -> s.uffd().continue_(req.getContinue()).getBytes()));
      case WRITE_PROTECT -> rpc.execute(call, RpcExecutor.Idempotency.IDEMPOTENT, deadline,
          s -> s.uffd().writeProtect(req.getWriteProtect()).getBytes());
      case WAKE -> rpc.execute(call, RpcExecutor.Idempotency.IDEMPOTENT, deadline,
          s -> s.uffd().wake(req.getWake()).getBytes());
      default -> throw new IllegalArgumentException("not a resolution: " + req.getKindCase());
    };
  }

  /** Sends one resolution on the stream and waits for its result; returns bytes done. */
  private long resolveOnStream(HandleRequest.Builder req, CopyRegionClient.Staged st, String call) {
    Sent s = sendOnStream(req, st, call, null);
    if (s != null) {
      flushOutbox(true);
    }
    return awaitSent(s, req, st, call);
  }

  /** A resolution put into the outbox: its request id and result; null for "no stream, resolve it unary". */
  record Sent(long id, CompletableFuture<IoctlResult> result) {}

  /**
   * Puts one resolution into the outbox (the caller flushes it); null when there is no stream to send on
   * (reconnecting): {@link #awaitSent} then resolves it unary.
   */
  Sent sendOnStream(HandleRequest.Builder req, String call) {
    return sendOnStream(req, null, call, null);
  }

  /**
   * As {@link #sendOnStream(HandleRequest.Builder, String)}, into {@code chunk} (then {@link #offer}ed) if given;
   * {@code st}: where a COPY's bytes are staged (null: none).
   */
  Sent sendOnStream(HandleRequest.Builder req, CopyRegionClient.Staged st, String call, List<Outgoing> chunk) {
    long id;
    CompletableFuture<IoctlResult> f = new CompletableFuture<>();
    ClientCallStreamObserver<HandleRequest> rs;
    long gen;
    CopyRegionClient reg;
    synchronized (lock) {
      if (terminated) {
        throw new UffdemuException(call + ": handler stream is closed", "CANCELLED", null);
      }
      rs = requests;
      gen = streamGen;
      reg = region;
      if (rs != null) {
        id = nextRequestId++;
        pendingResults.put(id, f);
      } else {
        id = -1;
      }
    }
    if (rs == null) {
      return null;
    }
    HandleRequest wire = req.setRequestId(id).build();
    if (st != null && (reg == null || !reg.bind(st, id))) {
      // staged in a region this stream does not have (it changed since): the bytes go as data, or into this one
      wire = withData(req, st).build();
    }
    if (reg != null && wire.getKindCase() == HandleRequest.KindCase.COPY) {
      // the builder keeps the data (or, staged, its slot stays until the fault is done): a resolution never sent
      // is redone unary from it (awaitSent, withData)
      HandleRequest viaRegion = reg.substitute(wire);
      if (viaRegion != null) {
        wire = viaRegion; // counted in regionCopies once on the wire (flushOutbox)
      }
    }
    Outgoing o = new Outgoing(wire, gen, f);
    if (chunk != null) {
      chunk.add(o);
    } else {
      outbox.add(List.of(o));
    }
    return new Sent(id, f);
  }

  /**
   * Puts a chunk of resolutions into the outbox, to be sent together (the caller flushes). A chunk is cut into
   * pieces of at most maxBatch requests (more: a fault resolved in two steps) and, past the first request of a
   * piece, at most {@link #MAX_BATCH_BYTES}: a batch of huge-page COPYs (16 x 2 MiB) would otherwise exceed the
   * server's inbound message limit, and the stream would fail and be rebuilt with the same batch forever.
   */
  void offer(List<Outgoing> chunk) {
    int from = 0;
    int bytes = 0;
    for (int i = 0; i < chunk.size(); i++) {
      int size = chunk.get(i).req().getSerializedSize();
      if (i > from && (i - from >= opts.maxBatch() || bytes + size > MAX_BATCH_BYTES)) {
        outbox.add(chunk.subList(from, i));
        from = i;
        bytes = 0;
      }
      bytes += size;
    }
    if (from < chunk.size()) {
      outbox.add(chunk.subList(from, chunk.size()));
    }
  }

  /** Waits for the result of a resolution from {@link #sendOnStream}; returns bytes done. */
  long awaitSent(Sent s, HandleRequest.Builder req, CopyRegionClient.Staged st, String call) {
    return awaitSent(s, req, st, call, opts.faultDeadline().toNanos());
  }

  /**
   * As {@link #awaitSent(Sent, HandleRequest.Builder, CopyRegionClient.Staged, String)}, within {@code timeoutNanos}.
   */
  long awaitSent(Sent s, HandleRequest.Builder req, CopyRegionClient.Staged st, String call, long timeoutNanos) {
    if (s == null) {
      // reconnecting: no stream to send on; the request was never sent, so the unary call cannot double it
      return resolveUnary(withData(req, st).build(), call);
    }
    long id = s.id();
    CompletableFuture<IoctlResult> f = s.result();
    IoctlResult r;
    try {
      r = DeadlineWatch.shared().await(f, timeoutNanos); // no timed park per result
    } catch (ExecutionException e) {
      if (e.getCause() instanceof StreamLostException lost) {
        return afterStreamLost(req, call, lost);
      }
      if (e.getCause() instanceof NotSentException ns) {
        if (opts.reconnect().enabled()) {
          return resolveUnary(withData(req, st).build(), call); // not on the wire: safe to send once, unary
        }
        throw StatusMapper.map(ns.getCause(), call);
      }
      throw StatusMapper.map(e.getCause(), call);
    } catch (TimeoutException e) {
      throw new UffdemuException(call + ": no result from the server within " + opts.faultDeadline(),
          "DEADLINE_EXCEEDED", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      if (f.isCompletedExceptionally()) {
        // the stream failed and the loop then interrupted us: report the failure, not the interrupt
        if (f.exceptionNow() instanceof StreamLostException lost) {
          throw lost;
        }
        throw StatusMapper.map(f.exceptionNow(), call);
      }
      throw new UffdemuException(call + ": interrupted", "CANCELLED", e);
    } finally {
      synchronized (lock) {
        pendingResults.remove(id);
        sentUnanswered.remove(id);
      }
    }
    if (r.hasError()) {
      throw StatusMapper.fromInfo(r.getError(), call, null, null);
    }
    return StatusMapper.bytes(call, r.getBytes());
  }

  /**
   * Credit for results only once their requests are on the wire: granted earlier, the server could spend it on
   * another message before it has produced the result.
   */
  private void markSent(List<Long> ids) {
    int grant;
    synchronized (lock) {
      for (long id : ids) {
        if (pendingResults.containsKey(id)) {
          sentUnanswered.add(id);
        }
      }
      grant = grantLocked();
    }
    request(grant);
  }

  /**
   * Sends what the outbox holds, as one HandleRequest.batch (or a plain request when it holds one), unless another
   * thread is sending: that one re-checks the outbox after it is done, so nothing is left behind (combining: a
   * batch holds what the workers queued while the previous one was being sent; nothing waits to fill it).
   * Requests of an older stream are dropped: their futures were failed when it broke.
   */
  private void flushOutbox(boolean gather) {
    if (gather && opts.maxBatch() > 1) {
      Thread.yield(); // let the workers resolving the same message batch queue theirs, and send them as one
    }
    while (!outbox.isEmpty()) {
      if (!flushing.compareAndSet(false, true)) {
        return;
      }
      try {
        List<Outgoing> items = new ArrayList<>();
        int bytes = 0;
        // only the flushing thread polls: a peeked chunk is still there to poll
        for (List<Outgoing> c; (c = outbox.peek()) != null
            && (items.isEmpty() || (items.size() + c.size() <= opts.maxBatch() && bytes < MAX_BATCH_BYTES)); ) {
          outbox.poll();
          for (Outgoing o : c) {
            items.add(o);
            bytes += o.req().getSerializedSize();
          }
        }
        ClientCallStreamObserver<HandleRequest> rs;
        long gen;
        synchronized (lock) {
          rs = requests;
          gen = streamGen;
        }
        items.removeIf(o -> o.gen() != gen);
        if (items.isEmpty()) {
          continue;
        }
        HandleRequest msg = items.size() == 1 ? items.getFirst().req()
            : HandleRequest.newBuilder().setBatch(HandleRequestBatch.newBuilder()
                .addAllRequests(items.stream().map(Outgoing::req).toList())).build();
        try {
          if (rs == null) {
            throw new IllegalStateException("no Handle stream");
          }
          synchronized (sendLock) {
            rs.onNext(msg);
          }
        } catch (RuntimeException e) {
          synchronized (lock) {
            items.forEach(o -> {
              pendingResults.remove(o.req().getRequestId());
              if (region != null) {
                region.notSent(o.req().getRequestId()); // never on the wire: the server will not read it
              }
            });
          }
          NotSentException ns = new NotSentException(e);
          items.forEach(o -> o.result().completeExceptionally(ns));
          continue;
        }
        markSent(items.stream().map(o -> o.req().getRequestId()).toList());
        regionCopies.addAndGet(items.stream().filter(o -> o.req().getCopy().getRegionLen() != 0).count());
      } finally {
        flushing.set(false);
      }
    }
  }

  /**
   * A resolution sent on a stream that broke before answering: it may or may not have been applied. WAKE and
   * WRITEPROTECT are idempotent and redone as unary calls. A fill is not redone (a second COPY after a REMOVE
   * would install stale data): the server woke the fault when the stream died, so it re-faults and the next
   * stream brings it back; the StreamLostException makes the loop drop this attempt quietly.
   */
  private long afterStreamLost(HandleRequest.Builder req, String call, StreamLostException lost) {
    return switch (req.getKindCase()) {
      case WAKE, WRITE_PROTECT -> resolveUnary(req.build(), call);
      default -> throw lost;
    };
  }

  void countEexist() {
    eexist.incrementAndGet();
  }

  /** Wakes {@code range} after an EEXIST (the page may have been filled without waking this thread). */
  void wakeAfterEexist(AddrRange range) {
    try {
      resolve(HandleRequest.newBuilder().setWake(uffd.rangeReq(range)), "UFFDIO_WAKE");
    } catch (UffdemuException e) {
      LOG.log(Level.DEBUG, "wake after EEXIST failed", e);
    }
  }

  // ------------------------------------------------------------------ workers

  private void workerLoop() {
    while (true) {
      List<Task> work; // one fault, or a BatchFaultHandler's group
      boolean group;
      int grant;
      GroupRun slow;
      synchronized (lock) {
        if (terminated) {
          return;
        }
        // a group no thread could be started for: first, also while closing (it holds busy, which close() waits for;
        // nothing is queued there once closing began)
        slow = slowGroups.poll();
        if (slow != null) {
          work = null;
          group = false;
          grant = 0;
        } else if (closing) {
          return;
        } else {
          // a group whose resolutions are on the wire holds no worker, but counts as one: at most `workers` of them
          work = groupsInFlight < opts.workers() ? takeGroupLocked() : null;
          group = work != null;
          if (group) {
            groupsInFlight++;
          }
          if (!group) {
            Task t = takeReadyLocked();
            work = t == null ? null : List.of(t);
          }
          if (work == null) {
            idleWorkers++;
            grant = 0;
          } else {
            takeLocked(work);
            grant = grantLocked();
          }
        }
      }
      if (slow != null) {
        finishSlow(slow); // its busy and place in flight are its own
        continue;
      }
      if (work == null) {
        if (!awaitWork()) {
          return;
        }
        continue;
      }
      request(grant);
      if (group) {
        serveGroup(work); // releases its pages and busy once its results are in
        continue;
      }
      try {
        serve(work.getFirst());
      } finally {
        synchronized (lock) {
          busy--;
          // Wake one worker when a page's next fault became ready (enqueue), and close() when it waits for
          // busy: an unconditional notifyAll woke every idle worker after every fault to find nothing, and their
          // monitor contention was the SDK's top frame in the 64-client profile.
          for (Task t : work) {
            pageDoneLocked(t.page);
          }
          if (closing) {
            lock.notifyAll();
          }
        }
      }
    }
  }

  /**
   * The next group, joined by the groups behind it, in order, while the joined group stays within this worker's
   * share of the waiting faults (spread over the places left in flight, this one included) and within
   * {@link #join} faults. The server packs the faults one read(2) returned, and they arrive a few at a time; with
   * every place in flight but this one taken, each small group would otherwise cost a round trip of its own (with
   * 1 worker and 64 faulting threads: 5 k faults/s, docs/benchmarks.md item 23). Joined groups keep their order,
   * their pages are distinct (a fault whose page was active was queued, not grouped), and their events were
   * delivered. The share is a heuristic: it counts places in flight, not idle workers.
   */
  private List<Task> takeGroupLocked() {
    List<Task> first = readyGroups.poll();
    if (first == null) {
      return null;
    }
    if (readyGroups.isEmpty()) {
      return first;
    }
    int waiting = first.size();
    for (List<Task> g : readyGroups) {
      waiting += g.size();
    }
    int places = opts.workers() - groupsInFlight;
    int share = Math.min(join, (waiting + places - 1) / places);
    for (List<Task> g; (g = readyGroups.peek()) != null && first.size() + g.size() <= share; ) {
      first.addAll(readyGroups.poll());
    }
    return first;
  }

  /**
   * Idle workers wait on {@link #workSignal}, not on {@code lock}: a fault made ready wakes one of them
   * ({@link #signalWorkerLocked}), while {@code lock}'s wait set keeps the event thread, close() and the reconnector.
   * (Waking every idle worker for every message — 64 of them with 64 workers — cost more than the fault.) Each
   * {@link #wakeLocked} (a notifyAll of the lock) wakes every idle worker too, so any state change that used to
   * wake workers still does. Idle workers wait without a timeout (a timed park of a virtual thread costs a
   * DelayScheduler task and two platform wake-ups on JDK 25: with a 100 ms poll that was a tenth of the SDK's CPU
   * in the remote round trip), so no signal may be lost: every change that can make a fault takeable is made under
   * {@code lock} and either signals here or wakes every worker, and a worker re-checks the queues under
   * {@code lock} before it counts itself idle. Guarded by lock: idleWorkers (workers between finding no task and
   * taking the signal), signalsInFlight (permits released for them and not yet taken).
   */
  private final java.util.concurrent.Semaphore workSignal = new java.util.concurrent.Semaphore(0);
  private int idleWorkers;
  private int signalsInFlight;

  /** Waits for a signal; false when the loop is terminated (closing: the loop's top decides, slow groups first). */
  private boolean awaitWork() {
    boolean got = false;
    try {
      workSignal.acquire();
      got = true;
    } catch (InterruptedException e) {
      // closing or terminated: checked below
    }
    synchronized (lock) {
      idleWorkers--;
      if (got) {
        signalsInFlight--;
      }
      return !terminated;
    }
  }

  /** One more fault is ready: wake one idle worker unless enough are already woken. */
  private void signalWorkerLocked() {
    if (idleWorkers > signalsInFlight) {
      signalsInFlight++;
      workSignal.release();
    }
  }

  /** notifyAll on the lock, and every idle worker. */
  private void wakeLocked() {
    lock.notifyAll();
    int n = idleWorkers - signalsInFlight;
    if (n > 0) {
      signalsInFlight += n;
      workSignal.release(n);
    }
  }

  /**
   * The first ready fault whose preceding events have all been delivered to onEvent: a fault read after a
   * REMOVE must see the handler's state after that REMOVE (as a single-threaded monitor would).
   */
  private Task takeReadyLocked() {
    for (var it = ready.iterator(); it.hasNext(); ) {
      Task t = it.next();
      if (t.eventsBefore <= eventsDelivered) {
        it.remove();
        return t;
      }
    }
    return null;
  }

  /** The key of page-aligned {@code page} in {@link #activePages}: its page number. */
  private Long pageKey(long page) {
    return page >>> pageShift;
  }

  /** Releases {@code page}; true when a fault parked behind it became ready. */
  private boolean pageDoneLocked(long page) {
    Long key = pageKey(page);
    ArrayDeque<Task> parked = activePages.get(key);
    if (parked == null) {
      return false;
    }
    Task next = parked.poll();
    if (next != null) {
      ready.add(next);
      signalWorkerLocked();
      return true;
    }
    activePages.remove(key);
    return false;
  }

  private void serve(Task t) {
    long start = System.nanoTime();
    synchronized (lock) {
      t.epoch = eventsDelivered;
      t.gen = streamGen;
    }
    FaultContextImpl ctx = new FaultContextImpl(this, t.fault, t.page);
    CompletableFuture<Void> done = new CompletableFuture<>();
    Thread ht = opts.threadFactory().newThread(() -> {
      try {
        handler.onFault(ctx);
        done.complete(null);
      } catch (Throwable e) {
        done.completeExceptionally(e);
      }
    });
    ht.start();
    Throwable failure = null;
    try {
      DeadlineWatch.shared().await(done, opts.faultDeadline().toNanos()); // no timed park per fault
    } catch (ExecutionException e) {
      failure = e.getCause();
    } catch (TimeoutException e) {
      ctx.expire();
      ht.interrupt();
      failure = new UffdemuException("fault handler exceeded " + opts.faultDeadline() + " for " + t.fault,
          "DEADLINE_EXCEEDED", e);
    } catch (InterruptedException e) {
      // closing or terminated: abandon quietly
      ctx.expire();
      ht.interrupt();
      return;
    }
    ctx.expire();
    afterServe(t, ctx, failure, start);
  }

  /**
   * A {@link BatchFaultHandler}'s group being served. Its worker runs onFault for each fault and sends the
   * resolutions; it does not wait for their results: the last result to arrive finishes the group on the thread
   * that received it (the transport's, {@link #groupDone}; the worker's own when every result was in before it had
   * set up the count), so a batch costs one hand-off to a worker instead of two (the results' wake-up of a waiting
   * worker was one of the round trip's hops, docs/benchmarks.md item 22).
   * A group with anything but clean results (an errno, a lost stream, the deadline) is finished on a thread of its
   * own ({@link #finishSlow}), which may send more resolutions and wait for them.
   */
  private final class GroupRun {
    final List<Task> tasks;
    final FaultContextImpl[] ctxs;
    final Throwable[] failures;
    final long start;
    /** Completed when every result is in, or expired by the deadline watch at the fault deadline. */
    final CompletableFuture<Void> results = new CompletableFuture<>();
    final java.util.concurrent.atomic.AtomicInteger pending = new java.util.concurrent.atomic.AtomicInteger();
    final java.util.concurrent.atomic.AtomicBoolean finished = new java.util.concurrent.atomic.AtomicBoolean();

    GroupRun(List<Task> tasks, long start) {
      this.tasks = tasks;
      this.ctxs = new FaultContextImpl[tasks.size()];
      this.failures = new Throwable[tasks.size()];
      this.start = start;
    }

    long deadlineNanos() {
      return start + opts.faultDeadline().toNanos();
    }
  }

  /**
   * Serves the faults of one stream message for a {@link BatchFaultHandler}: onFault for each in order on this
   * thread (the contexts queue their resolutions), then all resolutions to the outbox and out as one batch; the
   * results finish the group when they arrive ({@link GroupRun}). Owns the group's pages and its {@code busy}: they
   * are released when the group is finished, here or later.
   */
  private void serveGroup(List<Task> group) {
    GroupRun run = new GroupRun(group, System.nanoTime());
    boolean slow = true;
    try {
      slow = !sendGroup(run);
    } catch (Throwable e) {
      // not expected (onFault's exceptions are the fault's failure): finish what can be finished
      LOG.log(Level.WARNING, "serving a message batch failed", e);
    }
    if (slow) {
      finishSlow(run);
    }
  }

  /**
   * onFault for each of the group's faults and their resolutions on the wire; true when the results finish the
   * group ({@link #groupDone}), false when this thread must ({@link #finishSlow}: a resolution found no stream).
   */
  private boolean sendGroup(GroupRun run) {
    long deadline = opts.faultDeadline().toNanos();
    synchronized (lock) {
      for (Task t : run.tasks) {
        t.epoch = eventsDelivered;
        t.gen = streamGen;
      }
    }
    int n = run.tasks.size();
    FaultContextImpl[] ctxs = run.ctxs;
    Throwable[] failures = run.failures;
    for (int i = 0; i < n; i++) {
      Task t = run.tasks.get(i);
      FaultContextImpl ctx = new FaultContextImpl(this, t.fault, t.page, true);
      ctxs[i] = ctx;
      try {
        handler.onFault(ctx);
        ctx.seal();
        if (System.nanoTime() - run.start > deadline) {
          ctx.dropQueued();
          failures[i] = new UffdemuException("fault handler exceeded " + opts.faultDeadline() + " for " + t.fault,
              "DEADLINE_EXCEEDED", null);
        }
      } catch (Throwable e) {
        ctx.dropQueued();
        failures[i] = e;
      }
      clearUserInterrupt();
    }
    List<Outgoing> chunk = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      if (failures[i] == null) {
        try {
          ctxs[i].sendQueued(chunk);
        } catch (RuntimeException e) {
          failures[i] = e; // the loop terminated meanwhile ("handler stream is closed"), as resolve() would throw
        }
      }
    }
    List<CompletableFuture<IoctlResult>> results = new ArrayList<>(chunk.size());
    boolean onStream = true;
    for (int i = 0; i < n; i++) {
      if (failures[i] == null && !ctxs[i].sentResults(results)) {
        onStream = false;
      }
    }
    offer(chunk);
    // yield before sending, as the per-fault path does: other workers' batches join this one. Measured (client
    // CPU per fault, 4 runs each): without the yield 42-47 us, with it 31-35 (47 once), the per-fault path 32-40
    flushOutbox(true);
    if (!onStream) {
      return false;
    }
    run.pending.set(results.size() + 1); // + 1: this thread's own, given up below once every hook is in place
    for (CompletableFuture<IoctlResult> f : results) {
      f.whenComplete((r, e) -> resultIn(run));
    }
    DeadlineWatch.shared().watch(run.results, run.deadlineNanos() - System.nanoTime());
    run.results.whenComplete((v, e) -> groupDone(run, e != null));
    resultIn(run);
    return true;
  }

  private void resultIn(GroupRun run) {
    if (run.pending.decrementAndGet() == 0) {
      run.results.complete(null);
    }
  }

  /**
   * Every result of the group is in ({@code expired}: or its deadline passed first). On the thread that completed
   * the last result (the transport's, for results the server sent) when they are all clean; anything else goes to
   * a thread of its own, since finishing it may send resolutions and wait for their results (which only this
   * thread, as the transport's, could deliver).
   */
  private void groupDone(GroupRun run, boolean expired) {
    // a throwable must not end here: this runs as a future's action, which would swallow it with the group unfinished
    try {
      if (!expired) {
        DeadlineWatch.shared().unwatch(run.results);
      }
      boolean clean = !expired;
      for (int i = 0; clean && i < run.ctxs.length; i++) {
        clean = run.failures[i] == null && run.ctxs[i].resultsClean();
      }
      if (clean) {
        finishClean(run); // finishes the group whatever it meets
        return;
      }
    } catch (Throwable e) {
      LOG.log(Level.WARNING, "finishing a message batch failed", e);
    }
    if (!run.finished.get()) {
      try {
        finishElsewhere(run);
      } catch (Throwable e) {
        LOG.log(Level.WARNING, "finishing a message batch failed", e);
        abandon(run);
      }
    }
  }

  /**
   * {@link #finishSlow} on a thread of its own; without one, on a worker ({@link #slowGroups}). Never on the
   * calling thread: the deadline watch's ticker or the transport's, which the slow path may wait for.
   */
  private void finishElsewhere(GroupRun run) {
    try {
      Thread t = opts.threadFactory().newThread(() -> finishSlow(run));
      if (t != null) {
        t.start();
        return;
      }
    } catch (RuntimeException | OutOfMemoryError e) {
      LOG.log(Level.DEBUG, "no thread to finish a message batch on, a worker takes it: {0}", e.toString());
    }
    synchronized (lock) {
      if (!closing && !terminated) {
        slowGroups.add(run);
        signalWorkerLocked();
        return;
      }
    }
    abandon(run); // no worker takes work any more
  }

  /** Slow groups ({@link #finishElsewhere}) no worker will take: closing or terminated. */
  private void abandonSlowGroups() {
    List<GroupRun> left;
    synchronized (lock) {
      left = new ArrayList<>(slowGroups);
      slowGroups.clear();
    }
    left.forEach(this::abandon);
  }

  /** Finishes a group without applying its results (the loop is closing or terminated). */
  private void abandon(GroupRun run) {
    finish(run, () -> releaseStaged(run));
  }

  /**
   * Runs {@code body} as the group's one finish (nothing when it was finished already: the results and the deadline
   * may both try), and releases the group after it whatever it meets.
   */
  private void finish(GroupRun run, Runnable body) {
    if (!run.finished.compareAndSet(false, true)) {
      return;
    }
    try {
      body.run();
    } finally {
      groupReleased(run);
    }
  }

  private static void releaseStaged(GroupRun run) {
    for (FaultContextImpl ctx : run.ctxs) {
      if (ctx != null) {
        try {
          ctx.releaseStaged(); // the batch's COPY bytes in the copy region: results are in (or failed)
        } catch (RuntimeException e) {
          LOG.log(Level.WARNING, "releasing a COPY's staged bytes failed", e);
        }
      }
    }
  }

  /** Every resolution of the group was applied: its faults are resolved. */
  private void finishClean(GroupRun run) {
    finish(run, () -> {
      releaseStaged(run);
      for (int i = 0; i < run.ctxs.length; i++) {
        afterServeLogged(run.tasks.get(i), run.ctxs[i], null, run.start);
      }
    });
  }

  /** {@link #afterServe}, a throwable (from an observer, say) logged: the group's other faults still get theirs. */
  private void afterServeLogged(Task t, FaultContextImpl ctx, Throwable failure, long start) {
    try {
      afterServe(t, ctx, failure, start);
    } catch (Throwable e) {
      LOG.log(Level.WARNING, "finishing " + t.fault + " failed", e);
    }
  }

  /**
   * The per-fault path's handling of each fault's results (EEXIST absorbed, EAGAIN deferred, a lost stream
   * abandoned, the fallback for the rest), in order; waits for results still missing until the fault deadline.
   */
  private void finishSlow(GroupRun run) {
    finish(run, () -> {
      int n = run.tasks.size();
      try {
        for (int i = 0; i < n; i++) {
          if (run.failures[i] == null && run.ctxs[i] != null) {
            try {
              run.ctxs[i].finishQueued(run.deadlineNanos());
            } catch (Throwable e) {
              run.failures[i] = e;
            }
          }
        }
      } finally {
        releaseStaged(run);
      }
      for (int i = 0; i < n; i++) {
        synchronized (lock) {
          if (terminated) {
            return; // abandon quietly, as the per-fault path does
          }
        }
        Throwable failure = run.failures[i];
        if (failure == null && run.ctxs[i] == null) {
          failure = new UffdemuException("fault not served: " + run.tasks.get(i).fault, "INTERNAL", null);
        }
        afterServeLogged(run.tasks.get(i), run.ctxs[i], failure, run.start);
      }
    });
  }

  /** The group is done: its pages (a parked fault behind one becomes ready), its busy and its place in flight. */
  private void groupReleased(GroupRun run) {
    synchronized (lock) {
      busy--;
      groupsInFlight--;
      for (Task t : run.tasks) {
        pageDoneLocked(t.page);
      }
      if (!readyGroups.isEmpty()) {
        signalWorkerLocked(); // a group that waited for a place in flight
      }
      if (closing) {
        lock.notifyAll();
      }
    }
  }

  /**
   * onFault runs on this worker for a whole batch: an interrupt status the handler left set would make the next
   * faults' waits fail at once (resolutions sent and applied reported CANCELLED). Only terminate() interrupts
   * workers, so outside closing or termination the status is the handler's own and is cleared.
   */
  private void clearUserInterrupt() {
    if (Thread.currentThread().isInterrupted()) {
      synchronized (lock) {
        if (!closing && !terminated) {
          Thread.interrupted();
        }
      }
    }
  }

  /**
   * Counts a served fault, or defers it (EAGAIN), drops it (stream lost) or applies the fallback. {@code ctx} is
   * only read for a fault served without failure (null for one whose onFault never ran, which has one).
   */
  private void afterServe(Task t, FaultContextImpl ctx, Throwable failure, long start) {
    if (failure == null) {
      resolved.incrementAndGet();
      obs.faultDone(elapsed(start), ctx.sawEexist() ? "eexist" : "resolved");
      return;
    }
    if (isEagain(failure)) {
      defer(t);
      return;
    }
    if (isStreamLost(failure) || lostWithTheStream(t, failure)) {
      abandoned.incrementAndGet();
      obs.faultDone(elapsed(start), "abandoned");
      return;
    }
    obs.error(errnoName(failure));
    fallback(t, failure, start);
  }

  private void fallback(Task t, Throwable cause, long start) {
    synchronized (lock) {
      if (closing || terminated) {
        return;
      }
    }
    AddrRange page = new AddrRange(t.page, opts.pageSize());
    try {
      switch (opts.fallback()) {
        case ZERO_FILL -> {
          try {
            resolve(HandleRequest.newBuilder().setZeropage(uffd.zeropageReq(page, 0)), "UFFDIO_ZEROPAGE");
          } catch (io.uffdemu.client.EexistException e) {
            countEexist();
            wakeAfterEexist(page);
          }
        }
        case WAKE_RETRY -> resolve(HandleRequest.newBuilder().setWake(uffd.rangeReq(page)), "UFFDIO_WAKE");
        case FAIL -> {
          failed.incrementAndGet();
          obs.faultDone(elapsed(start), "failed");
          notifyFailure(t.fault, cause);
          return;
        }
      }
      fallbacks.incrementAndGet();
      obs.faultDone(elapsed(start), "fallback");
    } catch (EagainException e) {
      defer(t);
    } catch (UffdemuException e) {
      e.addSuppressed(cause);
      failed.incrementAndGet();
      obs.error(errnoName(e));
      obs.faultDone(elapsed(start), "failed");
      notifyFailure(t.fault, e);
    }
  }

  private void notifyFailure(UffdMessage.PageFault fault, Throwable cause) {
    synchronized (lock) {
      if (closing) {
        return;
      }
    }
    try {
      handler.onFailure(fault, cause);
    } catch (RuntimeException e) {
      LOG.log(Level.WARNING, "FaultHandler.onFailure threw", e);
    }
  }

  private void defer(Task t) {
    deferrals.incrementAndGet();
    obs.eagainDeferral();
    synchronized (lock) {
      if (closing || terminated) {
        return;
      }
      if (eventsDelivered != t.epoch) {
        // an event was delivered while this fault was being served: the EAGAIN is stale, retry now
        enqueueLocked(t);
      } else {
        t.deferredAtNanos = System.nanoTime();
        deferred.add(t);
      }
      wakeLocked();
    }
  }

  /**
   * A unary resolution failed in transport (UNAVAILABLE, no errno) and the Handle stream broke too since the
   * fault was taken: one connection failure took both. The server wakes the faults of a dead stream, so this one
   * is either resolved or re-faults for the next stream: drop it instead of applying the fallback (which would
   * fail the same way). The stream's failure may be reported a moment after the call's: wait for it briefly.
   */
  private boolean lostWithTheStream(Task t, Throwable failure) {
    if (!opts.reconnect().enabled() || !isTransport(failure)) {
      return false;
    }
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
    synchronized (lock) {
      while (streamGen == t.gen && !closing && !terminated) {
        long left = end - System.nanoTime();
        if (left <= 0) {
          return false;
        }
        try {
          TimeUnit.NANOSECONDS.timedWait(lock, left);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return false;
        }
      }
      return streamGen != t.gen && !closing;
    }
  }

  private static boolean isTransport(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof io.uffdemu.client.ServerUnavailableException) {
        return true;
      }
      if (c instanceof ErrnoException) {
        return false;
      }
    }
    return false;
  }

  private static boolean isStreamLost(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof StreamLostException) {
        return true;
      }
    }
    return false;
  }

  private static boolean isEagain(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof EagainException) {
        return true;
      }
    }
    return false;
  }

  private static String errnoName(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof ErrnoException e) {
        return e.name();
      }
    }
    return "OTHER";
  }

  private static Duration elapsed(long start) {
    return Duration.ofNanos(System.nanoTime() - start);
  }

  // ------------------------------------------------------------------ events and deferred faults

  private void eventLoop() {
    long retryNanos = opts.eagainRetryDelay().toNanos();
    while (true) {
      UffdMessage ev;
      int grant;
      synchronized (lock) {
        while (true) {
          if (closing || terminated) {
            return;
          }
          if (!events.isEmpty()) {
            break;
          }
          long waitNanos = Long.MAX_VALUE;
          if (!deferred.isEmpty()) {
            long due = deferred.getFirst().deferredAtNanos + retryNanos - System.nanoTime();
            if (due <= 0) {
              requeueDeferredLocked();
              continue;
            }
            waitNanos = due;
          }
          try {
            if (waitNanos == Long.MAX_VALUE) {
              lock.wait();
            } else {
              TimeUnit.NANOSECONDS.timedWait(lock, waitNanos);
            }
          } catch (InterruptedException e) {
            if (closing || terminated) {
              return;
            }
          }
        }
        ev = events.poll();
        queued--;
        obs.queueDepth(queued);
        busy++;
        grant = grantLocked();
      }
      request(grant);
      try {
        handler.onEvent(ev);
      } catch (RuntimeException e) {
        LOG.log(Level.WARNING, "FaultHandler.onEvent threw on " + ev, e);
      } finally {
        synchronized (lock) {
          busy--;
          eventsDelivered++;
          // Firecracker's lesson: faults that met EAGAIN are retried once the pending event has been read
          requeueDeferredLocked();
          wakeLocked();
        }
      }
    }
  }

  private void requeueDeferredLocked() {
    for (Task d : deferred) {
      enqueueLocked(d);
    }
    deferred.clear();
    wakeLocked();
  }

  // ------------------------------------------------------------------ HandlerLoop

  @Override
  public CompletableFuture<Void> termination() {
    return termination;
  }

  @Override
  public boolean isClosed() {
    synchronized (lock) {
      return closing || terminated;
    }
  }

  @Override
  public HandlerStats stats() {
    synchronized (lock) {
      return new HandlerStats(faults.get(), eventCount.get(), resolved.get(), eexist.get(), deferrals.get(),
          fallbacks.get(), failed.get(), ignored.get(), queued, deferred.size(), reconnects.get(), abandoned.get(),
          regionCopies.get());
    }
  }

  @Override
  public boolean awaitTermination(Duration timeout) throws InterruptedException {
    try {
      termination.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
      return true;
    } catch (ExecutionException e) {
      return true;
    } catch (TimeoutException e) {
      return false;
    }
  }

  /** Best-effort UFFDIO_WAKE of the pages of faults that were received but never served. */
  private void wakeDropped(java.util.TreeSet<Long> pages, long deadline) {
    RpcExecutor rpc = uffd.processImpl().client().rpc();
    for (long page : pages) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        break;
      }
      try {
        rpc.execute("UFFDIO_WAKE", RpcExecutor.Idempotency.NOT_IDEMPOTENT, Duration.ofNanos(left),
            s -> s.uffd().wake(uffd.rangeReq(new AddrRange(page, opts.pageSize()))));
      } catch (UffdemuException e) {
        LOG.log(Level.DEBUG, "wake of a dropped fault failed", e);
      }
    }
  }

  @Override
  public void close() {
    long deadline = System.nanoTime() + opts.closeTimeout().toNanos();
    boolean wasTerminated;
    java.util.TreeSet<Long> dropped = new java.util.TreeSet<>();
    synchronized (lock) {
      if (closing) {
        return;
      }
      closing = true;
      wasTerminated = terminated;
      // faults received but never served: their threads are woken below, re-fault, and the next handler
      // gets a fresh message (as after UFFDIO_WAKE on a real uffd)
      ready.forEach(t -> dropped.add(t.page));
      readyGroups.forEach(g -> g.forEach(t -> dropped.add(t.page)));
      readyGroups.clear();
      activePages.values().forEach(q -> q.forEach(t -> dropped.add(t.page)));
      deferred.forEach(t -> dropped.add(t.page));
      ready.clear();
      events.clear();
      deferred.clear();
      activePages.values().forEach(ArrayDeque::clear);
      queued = 0;
      wakeLocked();
      // let in-flight resolutions finish
      while (busy > 0 && !terminated) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          break;
        }
        try {
          TimeUnit.NANOSECONDS.timedWait(lock, left);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
    }
    obs.queueDepth(0);
    abandonSlowGroups(); // left after close's timeout
    interruptReconnector();
    ClientCallStreamObserver<HandleRequest> rs = null;
    if (!wasTerminated) {
      // under sendLock: a reconnect either has attached its stream (half-closed here) or sees closing and stops
      synchronized (sendLock) {
        synchronized (lock) {
          rs = requests;
        }
        if (rs != null) {
          try {
            rs.onCompleted(); // half-close: this handler is done
          } catch (RuntimeException e) {
            LOG.log(Level.DEBUG, "half-close failed", e);
          }
        }
      }
    }
    if (rs == null && !wasTerminated) {
      // closed while reconnecting: no stream to drain; faults we held were woken by the server when the
      // stream died, wake them again in case they were received since
      wakeDropped(dropped, deadline);
    }
    if (rs != null) {
      ClientCallStreamObserver<HandleRequest> requests = rs;
      // open the flow-control window to drain what the server still sends before it completes: with no
      // credit outstanding, grpc-java would hold those messages (and the completion behind them) for good
      int drain;
      synchronized (lock) {
        drain = grantLocked();
      }
      request(drain);
      long left = Math.max(0, deadline - System.nanoTime());
      try {
        termination.get(Math.max(left, TimeUnit.MILLISECONDS.toNanos(100)), TimeUnit.NANOSECONDS);
      } catch (TimeoutException e) {
        requests.cancel("handler loop closed", null);
      } catch (ExecutionException ignoredFailure) {
        // reported through termination()
      } catch (InterruptedException e) {
        requests.cancel("handler loop closed", null);
        Thread.currentThread().interrupt();
      }
      // Wake only once the stream has ended: a thread woken earlier re-faults while the server's session is
      // still reading the uffd for this stream, and a message it reads then can be lost with the session.
      synchronized (lock) {
        dropped.addAll(lateFaults);
        lateFaults.clear();
      }
      wakeDropped(dropped, Math.max(deadline, System.nanoTime() + TimeUnit.SECONDS.toNanos(1)));
    }
    terminate(null);
    threads.forEach(Thread::interrupt);
  }
}
