package io.uffdemu.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

@Timeout(30)
class HandlerLoopTest extends FakeUffdFixture {
  static byte[] page(int fill) {
    byte[] b = new byte[PAGE];
    java.util.Arrays.fill(b, (byte) fill);
    return b;
  }

  static void waitUntil(java.util.function.BooleanSupplier cond) throws InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!cond.getAsBoolean()) {
      if (System.nanoTime() > end) {
        throw new AssertionError("condition not met in 10 s");
      }
      Thread.sleep(5);
    }
  }

  @ParameterizedTest(name = "resolveOnStream={0}")
  @ValueSource(booleans = {false, true})
  void resolvesFaultsWithCopy(boolean onStream) throws Exception {
    try (HandlerLoop loop = uffd.handle(ctx -> ctx.copy(page(0x5a)), HandlerOptions.DEFAULT.withResolveOnStream(onStream))) {
      AccessResult r = process.read(base + 3 * PAGE + 10, 4);
      assertThat(r.ok()).isTrue();
      assertThat(r.data()).containsExactly(0x5a, 0x5a, 0x5a, 0x5a);
      waitUntil(() -> loop.stats().resolved() == 1);
      assertThat(loop.stats().faults()).isEqualTo(1);
    }
    assertThat(fakeUffd.log).contains("UFFDIO_COPY 0x" + Long.toHexString(base + 3 * PAGE), "HALF_CLOSE");
  }

  @ParameterizedTest(name = "resolveOnStream={0}")
  @ValueSource(booleans = {false, true})
  void neverServesOnePageConcurrently(boolean onStream) throws Exception {
    Map<Long, AtomicInteger> active = new ConcurrentHashMap<>();
    AtomicInteger maxSamePage = new AtomicInteger();
    AtomicInteger concurrent = new AtomicInteger();
    AtomicInteger maxConcurrent = new AtomicInteger();
    FaultHandler h = ctx -> {
      int n = active.computeIfAbsent(ctx.pageAddress(), k -> new AtomicInteger()).incrementAndGet();
      maxSamePage.accumulateAndGet(n, Math::max);
      maxConcurrent.accumulateAndGet(concurrent.incrementAndGet(), Math::max);
      try {
        Thread.sleep(60);
        ctx.copy(page(1));
      } finally {
        concurrent.decrementAndGet();
        active.get(ctx.pageAddress()).decrementAndGet();
      }
    };
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withWorkers(4).withResolveOnStream(onStream))) {
      List<CompletableFuture<AccessResult>> rs = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        rs.add(process.async().read(base, 1)); // three threads fault on page 0
        rs.add(process.async().read(base + PAGE * (i + 1), 1)); // and one each on pages 1..3
      }
      CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(10, TimeUnit.SECONDS);
      assertThat(maxSamePage.get()).isEqualTo(1);
      assertThat(maxConcurrent.get()).as("distinct pages are served in parallel").isGreaterThan(1);
      // the later faults on page 0 found it populated: EEXIST, counted as resolved. (A thread that starts late
      // on a loaded machine may find page 0 filled and not fault at all: 4 to 6 faults.)
      waitUntil(() -> loop.stats().faults() >= 4 && loop.stats().resolved() == loop.stats().faults());
      HandlerStats s = loop.stats();
      assertThat(s.faults()).isBetween(4L, 6L);
      assertThat(s.resolved()).isEqualTo(s.faults());
      assertThat(s.eexist()).isEqualTo(s.faults() - 4);
    }
  }

  /**
   * Batching (HandlerOptions.maxBatch): faults queued before the handler attaches arrive several per stream
   * message; every one is served once with its own data; a flow-control credit stands for a whole batch, so the
   * queue bound holds; with maxBatch 1 the server sends one message per HandleResponse.
   */
  @ParameterizedTest(name = "maxBatch={0}")
  @ValueSource(ints = {1, 8, 64})
  void batchedMessagesAreEachServedOnceWithinTheQueueBound(int maxBatch) throws Exception {
    List<CompletableFuture<AccessResult>> rs = new ArrayList<>();
    for (int i = 0; i < 48; i++) {
      rs.add(process.async().read(base + (long) i * PAGE, 1));
    }
    waitUntil(() -> fakeUffd.queue.size() == 48);
    int capacity = 16;
    int workers = 4;
    try (HandlerLoop loop = uffd.handle(ctx -> ctx.copy(page((int) ((ctx.pageAddress() - base) / PAGE))),
        HandlerOptions.DEFAULT.withQueueCapacity(capacity).withWorkers(workers).withMaxBatch(maxBatch))) {
      CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
      for (int i = 0; i < 48; i++) {
        assertThat(rs.get(i).get().data()).containsExactly(i);
      }
      waitUntil(() -> loop.stats().resolved() == 48);
      assertThat(loop.stats().faults()).isEqualTo(48);
    }
    assertThat(fakeUffd.largestBatch).isEqualTo(Math.min(maxBatch, capacity / 4));
    assertThat(fakeUffd.maxOutstanding).isLessThanOrEqualTo(capacity + workers);
    assertThat(fakeUffd.sentFaults).as("each fault sent once").isEqualTo(48);
  }

  /**
   * Results with messages (HandleAttach.results_with_msgs) are asked for only where batches of resolutions travel
   * on the stream: with batching and resolveOnStream. (BatchFaultHandlerTest takes such results.)
   */
  @ParameterizedTest(name = "maxBatch={0} onStream={1}")
  @org.junit.jupiter.params.provider.CsvSource({"1, true", "8, false", "8, true"})
  void asksForResultsWithMessagesOnlyWhenItBatchesOnTheStream(int maxBatch, boolean onStream) throws Exception {
    try (HandlerLoop loop = uffd.handle(ctx -> ctx.copy(page(7)),
        HandlerOptions.DEFAULT.withResolveOnStream(onStream).withMaxBatch(maxBatch))) {
      assertThat(process.read(base, 1).data()).containsExactly(7);
      waitUntil(() -> loop.stats().resolved() == 1);
    }
    assertThat(fakeUffd.askedResultsWithMsgs).isEqualTo(maxBatch > 1 && onStream);
  }

  /**
   * Resolutions on the stream that workers send at the same time travel as one HandleRequest.batch, and each gets
   * its own result back (a wrong match would fill the wrong page or fail a fault); never with maxBatch 1.
   */
  @ParameterizedTest(name = "maxBatch={0}")
  @ValueSource(ints = {1, 64})
  void concurrentResolutionsOnTheStreamAreBatched(int maxBatch) throws Exception {
    int workers = 16;
    AtomicInteger round = new AtomicInteger();
    java.util.concurrent.CyclicBarrier together = new java.util.concurrent.CyclicBarrier(workers);
    FaultHandler h = ctx -> {
      together.await(5, TimeUnit.SECONDS); // all 16 workers resolve at once
      ctx.copy(page((int) ((ctx.pageAddress() - base) / PAGE)));
    };
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withWorkers(workers).withResolveOnStream(true)
        .withMaxBatch(maxBatch))) {
      // rounds of 16 faults on fresh pages until a batch was seen (64 pages: at most 4 rounds)
      for (int r = 0; r < 4 && (maxBatch == 1 || fakeUffd.requestBatches == 0); r++) {
        List<CompletableFuture<AccessResult>> rs = new ArrayList<>();
        for (int i = 0; i < workers; i++) {
          rs.add(process.async().read(base + (long) (r * workers + i) * PAGE, 1));
        }
        CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
        for (int i = 0; i < workers; i++) {
          assertThat(rs.get(i).get().data()).containsExactly(r * workers + i);
        }
        round.incrementAndGet();
      }
      int faults = round.get() * workers;
      waitUntil(() -> loop.stats().resolved() == faults);
      assertThat(loop.stats().failed()).isZero();
    }
    if (maxBatch == 1) {
      assertThat(fakeUffd.requestBatches).isZero();
    } else {
      assertThat(fakeUffd.requestBatches).as("resolutions sent together were batched").isPositive();
    }
  }

  /**
   * A credit stands for a quarter of the queue at most: a fault parked behind a slow one on its page (it counts
   * as queued and no worker may take it) must not stop the stream, so faults on other pages are still served.
   * (With one credit per whole queue, as a first version had, the page-5 read waited for the slow handler.)
   */
  @Test
  void aFaultParkedBehindASlowOneDoesNotStopOtherPages() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    FaultHandler h = ctx -> {
      if (ctx.pageAddress() == base) {
        release.await(20, TimeUnit.SECONDS);
      }
      ctx.copy(page(1));
    };
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withWorkers(4))) {
      CompletableFuture<AccessResult> first = process.async().read(base, 1);
      waitUntil(() -> loop.stats().faults() == 1);
      CompletableFuture<AccessResult> parked = process.async().read(base + 8, 1); // same page: parked behind it
      waitUntil(() -> loop.stats().faults() == 2);
      AccessResult other = process.async().read(base + 5 * PAGE, 1).get(5, TimeUnit.SECONDS);
      assertThat(other.data()).containsExactly(1);
      assertThat(first).isNotDone();
      release.countDown();
      assertThat(first.get(10, TimeUnit.SECONDS).data()).containsExactly(1);
      assertThat(parked.get(10, TimeUnit.SECONDS).data()).containsExactly(1);
    }
  }

  @Test
  void slowHandlerAppliesBackPressure() throws Exception {
    int capacity = 4;
    int workers = 2;
    FaultHandler slow = ctx -> {
      Thread.sleep(15);
      ctx.zeropage();
    };
    try (HandlerLoop loop = uffd.handle(slow,
        HandlerOptions.DEFAULT.withWorkers(workers).withQueueCapacity(capacity))) {
      List<CompletableFuture<AccessResult>> rs = new ArrayList<>();
      for (int i = 0; i < 40; i++) {
        rs.add(process.async().read(base + (long) i * PAGE, 1));
      }
      CompletableFuture.allOf(rs.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
      waitUntil(() -> loop.stats().resolved() == 40);
    }
    // without flow control the fake would push all 40 at once
    assertThat(fakeUffd.maxOutstanding).isLessThanOrEqualTo(capacity + workers).isGreaterThan(1);
  }

  @ParameterizedTest(name = "resolveOnStream={0}")
  @ValueSource(booleans = {false, true})
  void eagainIsDeferredUntilTheRemoveEventWasDelivered(boolean onStream) throws Exception {
    EagainUntilRemoved h = new EagainUntilRemoved();
    fakeUffd.armRemove(base, base + 2 * PAGE);
    // a backstop longer than the test: only the REMOVE can trigger the retry
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withEagainRetryDelay(Duration.ofMinutes(5)).withResolveOnStream(onStream))) {
      AccessResult r = process.read(base, 4);
      assertThat(r.data()).containsOnly(0);
      waitUntil(() -> loop.stats().resolved() == 1);
      assertThat(h.order).containsExactly("copy", "remove", "zeropage");
      assertThat(loop.stats().eagainDeferrals()).isEqualTo(1);
      assertThat(loop.stats().events()).isEqualTo(1);
    }
  }

  @Test
  void aFaultReadAfterAnEventIsServedOnlyAfterOnEventReturned() throws Exception {
    // found by the lazy-restore recipe: a REMOVE followed by a fault on the removed page was served from
    // stale handler state because the fault ran on a worker while onEvent was still running
    java.util.Set<Long> removed = ConcurrentHashMap.newKeySet();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        if (removed.contains(ctx.pageAddress())) {
          ctx.zeropage();
        } else {
          ctx.copy(page(7));
        }
      }

      @Override
      public void onEvent(UffdMessage event) {
        if (event instanceof UffdMessage.RemoveEvent r) {
          try {
            Thread.sleep(300);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          for (long p = r.start(); p < r.end(); p += PAGE) {
            removed.add(p);
          }
        }
      }
    };
    fakeUffd.enqueueRemove(base, base + PAGE);
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT)) {
      AccessResult r = process.read(base, 4);
      assertThat(r.data()).containsOnly(0);
      // faults that follow no undelivered event are not held back
      assertThat(process.read(base + PAGE, 4).data()).containsOnly(7);
      waitUntil(() -> loop.stats().resolved() == 2);
    }
  }

  @ParameterizedTest(name = "resolveOnStream={0}")
  @ValueSource(booleans = {false, true})
  void eexistIsTreatedAsResolvedAndWakes(boolean onStream) throws Exception {
    AtomicInteger failures = new AtomicInteger();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        assertThat(ctx.copy(page(3))).isZero();
      }

      @Override
      public void onFailure(UffdMessage.PageFault fault, Throwable cause) {
        failures.incrementAndGet();
      }
    };
    synchronized (fakeUffd) {
      fakeUffd.pages.put(base, page(9)); // already populated, yet a fault message arrives (a lost race)
      fakeUffd.enqueueFault(base, false);
    }
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(onStream))) {
      waitUntil(() -> loop.stats().resolved() == 1);
      assertThat(loop.stats().eexist()).isEqualTo(1);
      assertThat(failures).hasValue(0);
      waitUntil(() -> fakeUffd.log.contains("WAKE 0x" + Long.toHexString(base)));
      assertThat(fakeUffd.log).containsSubsequence("UFFDIO_COPY 0x" + Long.toHexString(base), "EEXIST",
          "WAKE 0x" + Long.toHexString(base));
    }
  }

  @ParameterizedTest(name = "resolveOnStream={0}")
  @ValueSource(booleans = {false, true})
  void deadlineFallsBackToZeroFill(boolean onStream) throws Exception {
    FaultHandler stuck = ctx -> Thread.sleep(60_000);
    try (HandlerLoop loop = uffd.handle(stuck, HandlerOptions.DEFAULT.withResolveOnStream(onStream)
        .withFaultDeadline(Duration.ofMillis(200), FallbackPolicy.ZERO_FILL).withCloseTimeout(Duration.ofMillis(500)))) {
      long t0 = System.nanoTime();
      AccessResult r = process.read(base + PAGE, 8);
      assertThat(r.data()).containsOnly(0);
      assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(5));
      waitUntil(() -> loop.stats().fallbacks() == 1);
    }
    assertThat(fakeUffd.log).contains("UFFDIO_ZEROPAGE 0x" + Long.toHexString(base + PAGE));
  }

  @Test
  void handlerExceptionFallsBackToWakeRetryAndTheFaultComesBack() throws Exception {
    AtomicInteger calls = new AtomicInteger();
    FaultHandler flaky = ctx -> {
      if (calls.incrementAndGet() == 1) {
        throw new IllegalStateException("backend hiccup");
      }
      ctx.copy(page(4));
    };
    try (HandlerLoop loop = uffd.handle(flaky, HandlerOptions.DEFAULT
        .withFaultDeadline(Duration.ofSeconds(5), FallbackPolicy.WAKE_RETRY))) {
      assertThat(process.read(base, 1).data()).containsExactly(4);
      waitUntil(() -> loop.stats().resolved() == 1);
      assertThat(calls).hasValue(2);
      assertThat(loop.stats().fallbacks()).isEqualTo(1);
      assertThat(loop.stats().faults()).isEqualTo(2);
    }
  }

  @Test
  void failPolicyReportsAndLeavesTheThreadBlocked() throws Exception {
    CompletableFuture<Throwable> reported = new CompletableFuture<>();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) throws Exception {
        Thread.sleep(60_000);
      }

      @Override
      public void onFailure(UffdMessage.PageFault fault, Throwable cause) {
        reported.complete(cause);
      }
    };
    try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT
        .withFaultDeadline(Duration.ofMillis(100), FallbackPolicy.FAIL).withCloseTimeout(Duration.ofMillis(300)))) {
      Process impatient = process.withDeadline(Duration.ofMillis(600));
      assertThatThrownBy(() -> impatient.read(base, 1)).isInstanceOf(UffdemuException.class)
          .extracting(e -> ((UffdemuException) e).grpcCode()).isEqualTo("DEADLINE_EXCEEDED");
      assertThat(reported.get(5, TimeUnit.SECONDS)).hasMessageContaining("exceeded");
      waitUntil(() -> loop.stats().failed() == 1);
    }
  }

  @ParameterizedTest(name = "resolveOnStream={0}")
  @ValueSource(booleans = {false, true})
  void closeFinishesInFlightResolutionsAndDeliversNothingAfter(boolean onStream) throws Exception {
    CountDownLatch entered = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    AtomicInteger invocations = new AtomicInteger();
    List<UffdMessage> events = new CopyOnWriteArrayList<>();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) throws Exception {
        invocations.incrementAndGet();
        entered.countDown();
        release.await();
        ctx.copy(page(2));
      }

      @Override
      public void onEvent(UffdMessage event) {
        events.add(event);
      }
    };
    HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(onStream));
    CompletableFuture<AccessResult> first = process.async().read(base, 1);
    assertThat(entered.await(5, TimeUnit.SECONDS)).isTrue();

    CompletableFuture<Void> closing = CompletableFuture.runAsync(loop::close);
    Thread.sleep(100);
    assertThat(closing).as("close waits for the in-flight resolution").isNotDone();
    assertThat(loop.isClosed()).isTrue();
    release.countDown();
    closing.get(5, TimeUnit.SECONDS);

    assertThat(first.get(5, TimeUnit.SECONDS).data()).containsExactly(2);
    assertThat(loop.termination()).isCompleted();
    assertThat(fakeUffd.log).containsSubsequence("UFFDIO_COPY 0x" + Long.toHexString(base), "HALF_CLOSE");

    // after close: new messages reach nobody
    synchronized (fakeUffd) {
      fakeUffd.enqueueFault(base + PAGE, false);
      fakeUffd.enqueueRemove(base, base + PAGE);
    }
    fakeUffd.drain();
    Thread.sleep(100);
    assertThat(invocations).hasValue(1);
    assertThat(events).isEmpty();
    loop.close(); // idempotent
  }

  @Test
  void aSecondHandlerOnTheSameUffdFails() throws Exception {
    CompletableFuture<Throwable> onError = new CompletableFuture<>();
    try (HandlerLoop first = uffd.handle(ctx -> ctx.zeropage(), HandlerOptions.DEFAULT)) {
      waitUntil(() -> fakeUffd.handler != null);
      HandlerLoop second = uffd.handle(new FaultHandler() {
        @Override
        public void onFault(FaultContext ctx) {}

        @Override
        public void onError(Throwable error) {
          onError.complete(error);
        }
      }, HandlerOptions.DEFAULT);
      assertThat(second.termination()).failsWithin(Duration.ofSeconds(5))
          .withThrowableOfType(java.util.concurrent.ExecutionException.class)
          .havingCause().isInstanceOf(UffdemuException.class)
          .satisfies(e -> assertThat(((UffdemuException) e).grpcCode()).isEqualTo("FAILED_PRECONDITION"));
      assertThat(onError.get(5, TimeUnit.SECONDS)).isInstanceOf(UffdemuException.class);
      assertThat(second.isClosed()).isTrue();
      second.close();
      assertThat(first.isClosed()).isFalse();
      assertThat(process.read(base, 1).ok()).isTrue();
    }
  }

  @Test
  void closeWakesUnservedFaultsSoTheNextHandlerGetsThem() throws Exception {
    CountDownLatch entered = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    FaultHandler blocking = ctx -> {
      entered.countDown();
      release.await();
      ctx.copy(page(1));
    };
    HandlerLoop first = uffd.handle(blocking, HandlerOptions.DEFAULT.withWorkers(1));
    CompletableFuture<AccessResult> a = process.async().read(base, 1);
    assertThat(entered.await(5, TimeUnit.SECONDS)).isTrue();
    CompletableFuture<AccessResult> b = process.async().read(base + PAGE, 1); // queued behind the only worker
    waitUntil(() -> first.stats().queueDepth() == 1);

    CompletableFuture<Void> closing = CompletableFuture.runAsync(first::close);
    Thread.sleep(50);
    release.countDown();
    closing.get(5, TimeUnit.SECONDS);
    assertThat(a.get(5, TimeUnit.SECONDS).data()).containsExactly(1);
    assertThat(fakeUffd.log).contains("WAKE 0x" + Long.toHexString(base + PAGE));
    assertThat(b).isNotDone(); // woken, re-faulted, waiting for a handler

    try (HandlerLoop second = uffd.handle(ctx -> ctx.copy(page(2)), HandlerOptions.DEFAULT)) {
      assertThat(b.get(5, TimeUnit.SECONDS).data()).containsExactly(2);
    }
  }

  @Test
  void closingTheClientClosesItsLoops() {
    HandlerLoop loop = uffd.handle(ctx -> ctx.zeropage(), HandlerOptions.DEFAULT);
    client.close();
    assertThat(loop.isClosed()).isTrue();
    assertThat(loop.termination()).isCompleted();
  }
}
