package io.uffdemu.client;

import static io.uffdemu.client.HandlerLoopTest.page;
import static io.uffdemu.client.HandlerLoopTest.waitUntil;
import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The batch path of {@link BatchFaultHandler}: a stream message's faults served on one worker, their resolutions
 * sent as one HandleRequest.batch, results applied per fault.
 */
@Timeout(30)
class BatchFaultHandlerTest extends FakeUffdFixture {
  int index(long page) {
    return (int) ((page - base) / PAGE);
  }

  /** Reads of pages [0, n) queued as faults before the loop attaches (so the server sends full batches). */
  List<CompletableFuture<AccessResult>> faultsQueued(Process p, int n) throws Exception {
    List<CompletableFuture<AccessResult>> rs = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      rs.add(p.async().read(base + (long) i * PAGE, 1));
    }
    waitUntil(() -> fakeUffd.queue.size() == n);
    return rs;
  }

  /**
   * 48 queued faults, batches of 16 (queue 64 / 4): each batch is served on one thread (no handler thread per
   * fault) and its 16 COPYs go out in one HandleRequest.batch; every page gets its own data.
   */
  @Test
  void aMessageBatchIsServedOnOneThreadAndResolvedWithOneRequestBatch() throws Exception {
    var rs = faultsQueued(process, 48);
    Set<Thread> threads = ConcurrentHashMap.newKeySet();
    BatchFaultHandler h = ctx -> {
      threads.add(Thread.currentThread());
      assertThat(ctx.copy(page(index(ctx.pageAddress())))).isEqualTo(PAGE); // queued: the length asked for
    };
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true).withWorkers(4))) {
      CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
      for (int i = 0; i < 48; i++) {
        assertThat(rs.get(i).get().data()).containsExactly(i);
      }
      waitUntil(() -> loop.stats().resolved() == 48);
      assertThat(loop.stats().failed()).isZero();
      assertThat(loop.stats().fallbacks()).isZero();
    }
    assertThat(fakeUffd.largestBatch).isEqualTo(16);
    // one resolution batch per message batch at most (two workers' batches may share one: the outbox combines)
    assertThat(fakeUffd.requestBatches).as("resolution batches").isBetween(1, 3);
    assertThat(fakeUffd.singleRequests).as("no resolution sent alone").isZero();
    assertThat(fakeUffd.log.stream().filter(l -> l.startsWith("UFFDIO_COPY")).count()).isEqualTo(48);
    assertThat(threads.size()).as("no thread per fault").isLessThanOrEqualTo(3);
  }

  /**
   * Results with messages (HandleAttach.results_with_msgs): a batch's results held by the server and sent with the
   * next message batch (UffdMsgBatch.results) finish their batch, and the faults beside them are served. Chains of
   * reads fault on their next page once the last one was served, as faulting threads do, so a resolution batch is
   * followed by new faults; the first step of every chain is queued before the loop attaches (a first message
   * batch of several faults). With 1 worker every place in flight is taken while results are awaited. Every page
   * gets its own data, every fault is counted resolved (which needs its result) and no result is unknown. A plain
   * FaultHandler on the stream gets them too (its workers' resolutions go as batches when they meet in the outbox,
   * so whether some were carried is left to chance there).
   */
  @ParameterizedTest(name = "workers={0} batchHandler={1}")
  @org.junit.jupiter.params.provider.CsvSource({"1, true", "4, true", "4, false"})
  void resultsThatComeWithTheNextMessagesFinishTheirBatches(int workers, boolean batchHandler) throws Exception {
    fakeUffd.carryResults = true;
    int chains = 4;
    int steps = 12;
    int n = chains * steps;
    BatchFaultHandler batch = ctx -> ctx.copy(page(index(ctx.pageAddress())));
    FaultHandler h = batchHandler ? batch : ctx -> ctx.copy(page(index(ctx.pageAddress())));
    try (var pool = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
      List<CompletableFuture<Void>> rs = new ArrayList<>();
      for (int c = 0; c < chains; c++) {
        int chain = c;
        rs.add(CompletableFuture.runAsync(() -> {
          for (int s = 0; s < steps; s++) {
            int i = s * chains + chain;
            assertThat(process.read(base + (long) i * PAGE, 1).data()).as("page %d", i).containsExactly(i);
          }
        }, pool));
      }
      waitUntil(() -> fakeUffd.queue.size() == chains);
      try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true).withWorkers(workers))) {
        CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
        waitUntil(() -> loop.stats().resolved() == n);
        assertThat(loop.stats().failed()).isZero();
        assertThat(loop.stats().fallbacks()).isZero();
        assertThat(loop.stats().ignored()).as("unknown or unread results").isZero();
      }
    }
    assertThat(fakeUffd.askedResultsWithMsgs).isTrue();
    if (batchHandler) {
      assertThat(fakeUffd.requestBatches).as("resolution batches").isPositive();
      assertThat(fakeUffd.carriedResults).as("results that came with messages").isPositive();
    }
  }

  /**
   * A batch's resolutions are cut at about 1 MiB per HandleRequest: 16 faults each resolved with 512 KiB (as a
   * batch of huge-page COPYs would be, 16 x 2 MiB, over the server's inbound limit) go out in several requests,
   * none much over 1 MiB, and every fault is resolved.
   */
  @Test
  void aLargeBatchIsCutByBytes() throws Exception {
    int span = 128; // pages per fault: each fault is resolved with one COPY of 512 KiB
    Process p = client.createProcess("big");
    long at = p.mmap(MmapOptions.anonymous(16L * span * PAGE));
    Userfaultfd u = p.userfaultfd(UffdOptions.DEFAULT);
    u.register(new AddrRange(at, 16L * span * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
    FakeServer.FakeUffd fu = fake.uffd(u.fd());
    List<CompletableFuture<AccessResult>> rs = new ArrayList<>();
    for (int i = 0; i < 16; i++) {
      rs.add(p.async().read(at + (long) i * span * PAGE, 1));
    }
    waitUntil(() -> fu.queue.size() == 16);
    BatchFaultHandler h = ctx -> {
      byte[] data = new byte[span * (int) PAGE];
      java.util.Arrays.fill(data, (byte) ((ctx.pageAddress() - at) / (span * PAGE) + 1));
      assertThat(ctx.copy(ctx.pageAddress(), data, 0)).isEqualTo(data.length);
    };
    try (HandlerLoop loop = u.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true).withWorkers(1))) {
      CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
      for (int i = 0; i < 16; i++) {
        assertThat(rs.get(i).get().data()).containsExactly(i + 1);
      }
      waitUntil(() -> loop.stats().resolved() == 16);
      assertThat(loop.stats().failed()).isZero();
    }
    assertThat(fu.largestBatch).isEqualTo(16);
    assertThat(fu.requestBatches).as("requests").isGreaterThanOrEqualTo(8);
    assertThat(fu.largestRequestBytes).as("largest request").isLessThan((1 << 20) + span * (int) PAGE + 4096);
  }

  /** Without resolutions on the stream a BatchFaultHandler is a plain handler: a thread per fault, unary calls. */
  @Test
  void withUnaryResolutionsItIsServedPerFault() throws Exception {
    var rs = faultsQueued(process, 16);
    BatchFaultHandler h = ctx -> assertThat(ctx.copy(page(index(ctx.pageAddress())))).isEqualTo(PAGE);
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT)) {
      CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
      for (int i = 0; i < 16; i++) {
        assertThat(rs.get(i).get().data()).containsExactly(i);
      }
      waitUntil(() -> loop.stats().resolved() == 16);
    }
    assertThat(fakeUffd.requestBatches).isZero();
    assertThat(fake.calls("Copy")).isEqualTo(16);
  }

  /**
   * onFault throwing for one fault of a batch fails that fault only: ZERO_FILL zero-fills it, FAIL reports it to
   * onFailure (its thread stays blocked); the batch's other faults are resolved with their data.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(value = FallbackPolicy.class, names = {"ZERO_FILL", "FAIL"})
  void anExceptionFailsThatFaultOnly(FallbackPolicy policy) throws Exception {
    Process p = process.withDeadline(Duration.ofSeconds(3));
    var rs = faultsQueued(p, 16);
    List<Long> reported = new CopyOnWriteArrayList<>();
    List<Throwable> causes = new CopyOnWriteArrayList<>();
    BatchFaultHandler h = new BatchFaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        int i = index(ctx.pageAddress());
        if (i == 5) {
          ctx.copy(page(99)); // queued, then dropped with the failure
          throw new IllegalStateException("no data for page 5");
        }
        ctx.copy(page(i));
      }

      @Override
      public void onFailure(UffdMessage.PageFault fault, Throwable cause) {
        reported.add(fault.address());
        causes.add(cause);
      }
    };
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true)
        .withFaultDeadline(Duration.ofSeconds(5), policy).withCloseTimeout(Duration.ofMillis(500)))) {
      for (int i = 0; i < 16; i++) {
        if (i != 5) {
          assertThat(rs.get(i).get(20, TimeUnit.SECONDS).data()).containsExactly(i);
        }
      }
      waitUntil(() -> loop.stats().resolved() == 15);
      if (policy == FallbackPolicy.ZERO_FILL) {
        assertThat(rs.get(5).get(20, TimeUnit.SECONDS).data()).containsExactly(0);
        waitUntil(() -> loop.stats().fallbacks() == 1);
        assertThat(reported).isEmpty();
      } else {
        waitUntil(() -> loop.stats().failed() == 1);
        assertThat(reported).containsExactly(base + 5 * PAGE);
        assertThat(causes.getFirst()).hasMessage("no data for page 5");
        assertThat(rs.get(5)).isNotDone();
      }
    }
    assertThat(fakeUffd.log).doesNotContain("UFFDIO_COPY 0x" + Long.toHexString(base + 5 * PAGE));
  }

  /** An onFault that returns after the fault deadline: its queued COPY is dropped and the fallback applies. */
  @Test
  void anOnFaultPastTheDeadlineFallsBack() throws Exception {
    BatchFaultHandler slow = ctx -> {
      Thread.sleep(300);
      ctx.copy(page(1));
    };
    try (HandlerLoop loop = uffd.handle(slow, HandlerOptions.DEFAULT.withResolveOnStream(true)
        .withFaultDeadline(Duration.ofMillis(100), FallbackPolicy.ZERO_FILL))) {
      assertThat(process.read(base + PAGE, 4).data()).containsOnly(0);
      waitUntil(() -> loop.stats().fallbacks() == 1);
      assertThat(loop.stats().resolved()).isZero();
    }
    assertThat(fakeUffd.log).doesNotContain("UFFDIO_COPY 0x" + Long.toHexString(base + PAGE))
        .contains("UFFDIO_ZEROPAGE 0x" + Long.toHexString(base + PAGE));
  }

  /**
   * A batch whose result never comes (the server applied the COPY, so the fault's thread went on, and stalls the
   * answer) is finished at the fault deadline, although no thread waits for it: the fallback applies (its
   * ZEROPAGE meets EEXIST, absorbed) and the batch gives its place back, so that with one worker the next fault is
   * served.
   */
  @Test
  void aBatchWhoseResultNeverComesIsFinishedAtTheDeadline() throws Exception {
    synchronized (fakeUffd) {
      fakeUffd.withheldAnswers = 1;
    }
    BatchFaultHandler h = ctx -> ctx.copy(page(index(ctx.pageAddress()) + 1));
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true).withWorkers(1)
        .withFaultDeadline(Duration.ofSeconds(2), FallbackPolicy.ZERO_FILL))) {
      assertThat(process.read(base, 1).data()).containsExactly(1);
      waitUntil(() -> loop.stats().fallbacks() == 1);
      assertThat(loop.stats().resolved()).isZero();
      assertThat(loop.stats().eexist()).isEqualTo(1);
      assertThat(fakeUffd.log).contains("WITHHELD", "UFFDIO_ZEROPAGE 0x" + Long.toHexString(base));
      assertThat(process.read(base + PAGE, 1).data()).containsExactly(2);
      waitUntil(() -> loop.stats().resolved() == 1);
    }
  }

  /**
   * The worker that served a batch does not wait for its results. With one worker, batch A's result is withheld
   * (its deadline 8 s); a REMOVE arrives with fault B behind it, so B takes the per-fault path once onEvent (slow
   * here, 1.5 s) has returned. The one worker serves B at once: B is resolved while A is still unfinished (no
   * fallback yet). Had the worker waited for A's result, B would have been served only after A's deadline and
   * fallback.
   */
  @Test
  void theWorkerDoesNotWaitForABatchsResults() throws Exception {
    synchronized (fakeUffd) {
      fakeUffd.withheldAnswers = 1;
    }
    BatchFaultHandler h = new BatchFaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        ctx.copy(page(index(ctx.pageAddress()) + 1));
      }

      @Override
      public void onEvent(UffdMessage event) {
        try {
          Thread.sleep(1500);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    };
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true).withWorkers(1)
        .withFaultDeadline(Duration.ofSeconds(8), FallbackPolicy.ZERO_FILL))) {
      assertThat(process.read(base, 1).data()).containsExactly(1); // A: applied, its answer withheld
      synchronized (fakeUffd) {
        fakeUffd.enqueueRemove(base + 8 * PAGE, base + 9 * PAGE);
      }
      assertThat(process.read(base + PAGE, 1).data()).containsExactly(2); // B
      assertThat(loop.stats().fallbacks()).as("A not finished yet").isZero();
      waitUntil(() -> loop.stats().resolved() == 1);
      assertThat(loop.stats().resolved()).as("only B resolved").isEqualTo(1);
      waitUntil(() -> loop.stats().fallbacks() == 1); // A, at its deadline (its ZEROPAGE meets EEXIST)
      assertThat(loop.stats().eexist()).isEqualTo(1);
    }
  }

  /** A batch's errno results apply per fault: EEXIST is absorbed (and woken), the others resolved. */
  @Test
  void eexistInABatchIsAbsorbedAndWakes() throws Exception {
    synchronized (fakeUffd) {
      fakeUffd.pages.put(base, page(9)); // already populated, yet a fault message arrives (a lost race)
    }
    List<CompletableFuture<AccessResult>> rs = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      rs.add(process.async().read(base + (long) i * PAGE, 1)); // page 0 is populated: its read does not fault
    }
    waitUntil(() -> fakeUffd.queue.size() == 3);
    synchronized (fakeUffd) {
      fakeUffd.enqueueFault(base, false); // one batch: the 3 faults and the stale one
    }
    AtomicInteger failures = new AtomicInteger();
    BatchFaultHandler h = new BatchFaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        ctx.copy(page(index(ctx.pageAddress()) + 1));
      }

      @Override
      public void onFailure(UffdMessage.PageFault fault, Throwable cause) {
        failures.incrementAndGet();
      }
    };
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true))) {
      for (int i = 1; i < 4; i++) {
        assertThat(rs.get(i).get(20, TimeUnit.SECONDS).data()).containsExactly(i + 1);
      }
      assertThat(rs.get(0).get(20, TimeUnit.SECONDS).data()).containsExactly(9);
      waitUntil(() -> loop.stats().resolved() == 4);
      assertThat(loop.stats().eexist()).isEqualTo(1);
      assertThat(failures).hasValue(0);
      waitUntil(() -> fakeUffd.log.contains("WAKE 0x" + Long.toHexString(base)));
    }
  }

  /**
   * A batch with an errno result is finished on a thread of its own; when the thread factory gives none (after
   * the loop's own threads), a worker finishes it: the EEXIST is absorbed and woken as usual.
   */
  @ParameterizedTest(name = "workers={0}")
  @org.junit.jupiter.params.provider.ValueSource(ints = {1, 2})
  void aBatchWithNoThreadToFinishItIsFinishedByAWorker(int workers) throws Exception {
    synchronized (fakeUffd) {
      fakeUffd.pages.put(base, page(9)); // populated, yet a fault message arrives (a lost race)
      fakeUffd.enqueueFault(base, false);
    }
    AtomicInteger given = new AtomicInteger();
    AtomicInteger refused = new AtomicInteger();
    java.util.concurrent.ThreadFactory virtual = Thread.ofVirtual().factory();
    java.util.concurrent.ThreadFactory scarce = r -> {
      if (given.incrementAndGet() > workers + 1) { // the workers and the event thread only
        refused.incrementAndGet();
        return null;
      }
      return virtual.newThread(r);
    };
    BatchFaultHandler h = ctx -> ctx.copy(page(index(ctx.pageAddress()) + 1));
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true).withWorkers(workers)
        .withThreadFactory(scarce))) {
      waitUntil(() -> loop.stats().resolved() == 1);
      assertThat(loop.stats().eexist()).isEqualTo(1);
      assertThat(loop.stats().failed()).isZero();
      assertThat(refused.get()).as("the slow batch found no thread of its own").isPositive();
      waitUntil(() -> fakeUffd.log.contains("WAKE 0x" + Long.toHexString(base)));
      assertThat(process.read(base + PAGE, 1).data()).containsExactly(2); // and the loop still serves
    }
  }

  /** {@link FakeUffdFixture.EagainUntilRemoved} served a message batch at a time. */
  static final class BatchEagainUntilRemoved extends EagainUntilRemoved implements BatchFaultHandler {
  }

  /** EAGAIN from a batch's COPY defers that fault until the REMOVE was delivered; it is then served again. */
  @Test
  void eagainInABatchIsDeferredUntilTheEventWasDelivered() throws Exception {
    BatchEagainUntilRemoved h = new BatchEagainUntilRemoved();
    fakeUffd.armRemove(base, base + 2 * PAGE);
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withEagainRetryDelay(Duration.ofMinutes(5))
        .withResolveOnStream(true))) {
      assertThat(process.read(base, 4).data()).containsOnly(0);
      waitUntil(() -> loop.stats().resolved() == 1);
      assertThat(h.order).containsExactly("copy", "remove", "zeropage");
      assertThat(loop.stats().eagainDeferrals()).isEqualTo(1);
    }
  }

  /**
   * Flow control still bounds what the server sends: with the handler held (no resolution sent, so no credit is
   * kept open for results) the queue fills to its capacity and each worker holds one message batch, and nothing
   * more is sent: capacity + workers * batch of the 48 queued faults. Released, every fault is served once.
   * (maxBatch is the server's batch here, so no worker joins two batches: the bound is capacity + workers *
   * maxBatch, see {@link #smallBatchesWaitingForAPlaceInFlightAreJoined}.)
   */
  @Test
  void flowControlStillBoundsTheQueue() throws Exception {
    var rs = faultsQueued(process, 48);
    int capacity = 8;
    int workers = 2;
    int batch = capacity / 4;
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    BatchFaultHandler held = ctx -> {
      release.await(20, TimeUnit.SECONDS);
      ctx.copy(page(index(ctx.pageAddress())));
    };
    try (HandlerLoop loop = uffd.handle(held, HandlerOptions.DEFAULT.withResolveOnStream(true)
        .withQueueCapacity(capacity).withWorkers(workers).withMaxBatch(batch))) {
      int bound = capacity + workers * batch;
      waitUntil(() -> fakeUffd.outstanding() == bound);
      Thread.sleep(300); // nothing more may come
      assertThat(fakeUffd.sentFaults).isEqualTo(bound);
      assertThat(loop.stats().queueDepth()).isEqualTo(capacity);
      release.countDown();
      CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
      for (int i = 0; i < 48; i++) {
        assertThat(rs.get(i).get().data()).containsExactly(i);
      }
      waitUntil(() -> loop.stats().resolved() == 48);
    }
    assertThat(fakeUffd.largestBatch).isEqualTo(batch);
    assertThat(fakeUffd.sentFaults).as("each fault sent once").isEqualTo(48);
  }

  /**
   * Message batches that wait for a place in flight are joined when a worker takes them: with one worker and
   * batches of one fault (queue 4 / 4), the worker holds the first batch while the next four queue up behind it as
   * four batches; released, it takes them as one and resolves them with one request batch. (Without joining,
   * each one-fault batch cost a round trip of its own: 5 k faults/s with 64 faulting threads, docs/benchmarks.md
   * item 23.) Each fault is served once, in order, with its own data.
   */
  @Test
  void smallBatchesWaitingForAPlaceInFlightAreJoined() throws Exception {
    List<Long> resolvedBefore = joinedAfterAHeldBatch(64, 4);
    assertThat(resolvedBefore).as("the four served together, after the first").containsExactly(0L, 1L, 1L, 1L, 1L);
  }

  /**
   * Joining stops at maxBatch faults: with 3, the four waiting batches are taken as 3 + 1, so the last fault's
   * onFault runs only after the first three were resolved (their resolutions alone would be cut at 3 anyway).
   */
  @Test
  void joiningStopsAtMaxBatch() throws Exception {
    List<Long> resolvedBefore = joinedAfterAHeldBatch(3, 3);
    assertThat(resolvedBefore).containsExactly(0L, 1L, 1L, 1L, 4L);
  }

  /**
   * Serves five faults (the first held until four more wait, one per stream message) with one worker; returns, for
   * each fault in order, how many faults were resolved when its onFault began.
   */
  private List<Long> joinedAfterAHeldBatch(int maxBatch, int largestRequestBatch) throws Exception {
    java.util.concurrent.CountDownLatch entered = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    List<Long> order = new CopyOnWriteArrayList<>();
    List<Long> resolvedBefore = new CopyOnWriteArrayList<>();
    java.util.concurrent.atomic.AtomicReference<HandlerLoop> running = new java.util.concurrent.atomic.AtomicReference<>();
    BatchFaultHandler h = ctx -> {
      if (order.isEmpty()) {
        entered.countDown();
        release.await(20, TimeUnit.SECONDS);
      }
      resolvedBefore.add(running.get().stats().resolved());
      order.add(ctx.pageAddress());
      ctx.copy(page(index(ctx.pageAddress())));
    };
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true)
        .withQueueCapacity(4).withWorkers(1).withMaxBatch(maxBatch))) {
      running.set(loop);
      List<CompletableFuture<AccessResult>> rs = new ArrayList<>();
      rs.add(process.async().read(base, 1));
      assertThat(entered.await(10, TimeUnit.SECONDS)).as("the first fault is being served").isTrue();
      for (int i = 1; i < 5; i++) {
        rs.add(process.async().read(base + (long) i * PAGE, 1));
        int sent = i + 1;
        waitUntil(() -> fakeUffd.sentFaults() == sent); // one at a time: the server's order is the pages' order
      }
      waitUntil(() -> loop.stats().queueDepth() == 4); // the four later faults wait, each its own batch
      assertThat(fakeUffd.largestBatch).as("the server sent one fault per message").isEqualTo(1);
      release.countDown();
      CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
      for (int i = 0; i < 5; i++) {
        assertThat(rs.get(i).get().data()).containsExactly(i);
      }
      waitUntil(() -> loop.stats().resolved() == 5);
      assertThat(order).containsExactly(base, base + PAGE, base + 2 * PAGE, base + 3 * PAGE, base + 4 * PAGE);
    }
    assertThat(fakeUffd.largestRequestBatch).as("the four waiting batches joined").isEqualTo(largestRequestBatch);
    assertThat(fakeUffd.sentFaults).as("each fault sent once").isEqualTo(5);
    return resolvedBefore;
  }
}
