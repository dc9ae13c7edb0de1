package io.uffdemu.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The handler loop re-attaches a broken Handle stream, and gives up with a typed exception when it must. */
@Timeout(30)
class ReconnectTest {
  static final int PAGE = 4096;
  static final ReconnectPolicy FAST = ReconnectPolicy.DEFAULT.withBackoff(Duration.ofMillis(5), Duration.ofMillis(50));

  FakeServer fake;
  UffdemuClient client;
  Process process;
  Userfaultfd uffd;
  long base;
  final Recorder rec = new Recorder();

  /** Observer that records the reconnect hooks. */
  static final class Recorder implements HandlerObserver {
    final List<Integer> attempts = new CopyOnWriteArrayList<>();
    final List<Integer> reconnected = new CopyOnWriteArrayList<>();
    final List<HandlerDisconnectedException> gaveUp = new CopyOnWriteArrayList<>();

    @Override
    public void reconnecting(int attempt, Duration delay, Throwable cause) {
      attempts.add(attempt);
    }

    @Override
    public void reconnected(int attempt, Duration downtime) {
      reconnected.add(attempt);
    }

    @Override
    public void reconnectFailed(HandlerDisconnectedException error) {
      gaveUp.add(error);
    }
  }

  @BeforeEach
  void setUp() throws Exception {
    fake = new FakeServer();
    client = fake.client();
    process = client.createProcess("guest");
    base = process.mmap(MmapOptions.anonymous(64 * PAGE));
    uffd = process.userfaultfd(UffdOptions.DEFAULT);
    uffd.register(new AddrRange(base, 64 * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
  }

  @AfterEach
  void tearDown() throws Exception {
    client.close();
    fake.close();
  }

  static byte[] page(long addr) {
    byte[] b = new byte[PAGE];
    java.util.Arrays.fill(b, (byte) (addr / PAGE));
    return b;
  }

  @Test
  void policyBackoffGrowsIsCappedAndJittered() {
    ReconnectPolicy p = ReconnectPolicy.DEFAULT.withBackoff(Duration.ofMillis(100), Duration.ofSeconds(1))
        .withJitter(0.5);
    assertThat(p.backoff(1, 0.5)).isEqualTo(Duration.ofMillis(100));
    assertThat(p.backoff(3, 0.5)).isEqualTo(Duration.ofMillis(400));
    assertThat(p.backoff(30, 0.5)).isEqualTo(Duration.ofSeconds(1));
    assertThat(p.backoff(1, 0.0)).isEqualTo(Duration.ofMillis(50));
    assertThat(p.backoff(1, 0.999999)).isBetween(Duration.ofMillis(149), Duration.ofMillis(150));
    assertThat(HandlerOptions.DEFAULT.reconnect().enabled()).as("on by default").isTrue();
  }

  /**
   * Faults in flight (handler blocked) and queued when the stream is cut: every faulting thread ends with the
   * right data, nothing goes to the fallback, the loop keeps running on a new stream.
   */
  @ParameterizedTest(name = "resolveOnStream={0}")
  @ValueSource(booleans = {false, true})
  void resumesAfterTheStreamIsCutWithFaultsInFlight(boolean onStream) throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    AtomicInteger entered = new AtomicInteger();
    List<Throwable> failures = new CopyOnWriteArrayList<>();
    java.util.Map<Long, AtomicInteger> active = new java.util.concurrent.ConcurrentHashMap<>();
    AtomicInteger maxSamePage = new AtomicInteger();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) throws Exception {
        AtomicInteger a = active.computeIfAbsent(ctx.pageAddress(), k -> new AtomicInteger());
        maxSamePage.accumulateAndGet(a.incrementAndGet(), Math::max);
        try {
          if (ctx.pageAddress() < base + 2 * PAGE) {
            entered.incrementAndGet();
            release.await(); // pages 0 and 1 stay in flight across the cut
          }
          ctx.copy(page(ctx.pageAddress()));
        } finally {
          a.decrementAndGet();
        }
      }

      @Override
      public void onFailure(UffdMessage.PageFault fault, Throwable cause) {
        failures.add(cause);
      }

      @Override
      public void onError(Throwable error) {
        failures.add(error);
      }
    };
    HandlerOptions o = HandlerOptions.DEFAULT.withWorkers(4).withResolveOnStream(onStream).withObserver(rec)
        .withReconnect(FAST);
    try (HandlerLoop loop = uffd.handle(h, o)) {
      List<CompletableFuture<AccessResult>> reads = new ArrayList<>();
      for (int i = 0; i < 6; i++) { // the first two stay in flight across the cut
        reads.add(process.async().read(base + (long) i * PAGE, 8));
      }
      // pages 0 and 1 in flight, the other four served
      HandlerLoopTest.waitUntil(() -> entered.get() == 2 && loop.stats().resolved() == 4);
      fake.cutStream(uffd.fd(), Status.UNAVAILABLE.withDescription("connection reset"));
      HandlerLoopTest.waitUntil(() -> loop.stats().reconnects() == 1);
      release.countDown();
      for (int i = 0; i < reads.size(); i++) {
        AccessResult r = reads.get(i).get(10, TimeUnit.SECONDS);
        assertThat(r.ok()).isTrue();
        assertThat(r.data()).containsOnly((byte) ((base + (long) i * PAGE) / PAGE));
      }
      assertThat(loop.termination()).isNotDone();
      assertThat(failures).isEmpty();
      // the re-delivered faults of pages still being served waited behind them: one page, one handler at a time
      assertThat(maxSamePage.get()).isEqualTo(1);
      assertThat(rec.attempts).containsExactly(1);
      assertThat(rec.reconnected).containsExactly(1);
      // the loop still serves faults after the reconnect
      assertThat(process.read(base + 20 * PAGE, 1).ok()).isTrue();
      // a worker counts its resolution after the woken thread may already have returned: let the counters settle
      HandlerLoopTest.waitUntil(() -> loop.stats().resolved() + loop.stats().abandoned() >= 7);
      HandlerStats s = loop.stats();
      assertThat(s.fallbacks()).isZero();
      assertThat(s.failed()).isZero();
      // the server re-delivered what the dead stream held: duplicates met EEXIST (resolved), none was lost; a
      // resolution whose result died with the stream counts as abandoned (its re-delivery may find the page
      // filled already and never reach the handler)
      assertThat(s.resolved() + s.abandoned()).isGreaterThanOrEqualTo(7);
      assertThat(s.resolved()).isGreaterThanOrEqualTo(5);
    }
  }

  @Test
  void resolutionLostWithTheStreamIsAbandonedAndServedAfterReDelivery() throws Exception {
    AtomicInteger attaches = new AtomicInteger();
    HostileServerTest.Hostile hostile = new HostileServerTest.Hostile((r, out) -> {
      if (r.hasAttach()) {
        attaches.incrementAndGet();
        out.onNext(HostileServerTest.fault(0x10000, attaches.get())); // the first, then its re-delivery
      } else if (attaches.get() == 1) {
        // the first stream dies before the result of the resolution is sent
        out.onError(Status.UNAVAILABLE.withDescription("reset").asRuntimeException());
      } else {
        out.onNext(HandleResponse.newBuilder().setResult(IoctlResult.newBuilder().setRequestId(r.getRequestId())
            .setBytes(4096)).build());
      }
    });
    List<Throwable> failures = new CopyOnWriteArrayList<>();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        ctx.zeropage();
      }

      @Override
      public void onFailure(UffdMessage.PageFault fault, Throwable cause) {
        failures.add(cause);
      }
    };
    try (FakeServer f = new FakeServer(hostile); UffdemuClient c = f.client()) {
      Userfaultfd u = c.process(1).userfaultfd(UffdOptions.DEFAULT);
      try (HandlerLoop loop = u.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true).withReconnect(FAST))) {
        HandlerLoopTest.waitUntil(() -> loop.stats().resolved() == 1);
        HandlerStats s = loop.stats();
        assertThat(s.abandoned()).isEqualTo(1);
        assertThat(s.reconnects()).isEqualTo(1);
        assertThat(s.faults()).isEqualTo(2);
        assertThat(failures).as("no fallback or failure for a fault the server re-delivers").isEmpty();
      }
    }
  }

  @Test
  void givesUpWithUffdGoneWhenTheServerNoLongerHoldsTheUffd() throws Exception {
    CompletableFuture<Throwable> onError = new CompletableFuture<>();
    AtomicInteger errors = new AtomicInteger();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        ctx.zeropage();
      }

      @Override
      public void onError(Throwable error) {
        errors.incrementAndGet();
        onError.complete(error);
      }
    };
    HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withObserver(rec).withReconnect(FAST));
    assertThat(process.read(base, 1).ok()).isTrue(); // attached and serving
    FakeServer.FakeUffd gone = fake.forget(uffd.fd()); // the grace period passed: the server closed the uffd
    fake.cutStream(gone, Status.UNAVAILABLE);
    Throwable e = onError.get(10, TimeUnit.SECONDS);
    assertThat(e).isInstanceOf(UffdGoneException.class).hasCauseInstanceOf(EbadfException.class);
    assertThat(((UffdGoneException) e).attempts()).isEqualTo(1);
    assertThat(loop.termination()).failsWithin(Duration.ofSeconds(5))
        .withThrowableOfType(ExecutionException.class).withCauseInstanceOf(UffdGoneException.class);
    assertThat(loop.isClosed()).isTrue();
    assertThat(rec.gaveUp).hasSize(1).first().isInstanceOf(UffdGoneException.class);
    loop.close();
    assertThat(errors).hasValue(1);
  }

  @Test
  void givesUpWhenTheBoundPasses() throws Exception {
    AtomicInteger attaches = new AtomicInteger();
    HostileServerTest.Hostile hostile = new HostileServerTest.Hostile((r, out) -> {
      attaches.incrementAndGet();
      out.onError(Status.UNAVAILABLE.withDescription("proxy down").asRuntimeException());
    });
    try (FakeServer f = new FakeServer(hostile); UffdemuClient c = f.client()) {
      Userfaultfd u = c.process(1).userfaultfd(UffdOptions.DEFAULT);
      HandlerLoop loop = u.handle(ctx -> {}, HandlerOptions.DEFAULT.withObserver(rec)
          .withReconnect(FAST.withBound(3, Duration.ofSeconds(10))));
      assertThat(loop.termination()).failsWithin(Duration.ofSeconds(10))
          .withThrowableOfType(ExecutionException.class).havingCause()
          .isInstanceOf(ReconnectExhaustedException.class)
          .satisfies(e -> assertThat(((ReconnectExhaustedException) e).attempts()).isEqualTo(3))
          .withCauseInstanceOf(ServerUnavailableException.class);
      assertThat(attaches).hasValue(4); // the first stream and 3 attempts
      assertThat(rec.attempts).containsExactly(1, 2, 3);
      loop.close();
    }
  }

  @Test
  void closeWhileReconnectingStopsAtOnceAndDeliversNothingAfter() throws Exception {
    AtomicInteger attaches = new AtomicInteger();
    HostileServerTest.Hostile hostile = new HostileServerTest.Hostile((r, out) -> {
      if (attaches.incrementAndGet() == 1) {
        out.onNext(HostileServerTest.fault(0x10000, 1));
        out.onError(Status.UNAVAILABLE.asRuntimeException());
      } else {
        out.onNext(HostileServerTest.fault(0x20000, 2)); // must never reach the handler after close
      }
    });
    AtomicBoolean closed = new AtomicBoolean();
    AtomicInteger afterClose = new AtomicInteger();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        if (closed.get()) {
          afterClose.incrementAndGet();
        }
      }

      @Override
      public void onError(Throwable error) {
        afterClose.incrementAndGet();
      }
    };
    try (FakeServer f = new FakeServer(hostile); UffdemuClient c = f.client()) {
      Userfaultfd u = c.process(1).userfaultfd(UffdOptions.DEFAULT);
      HandlerLoop loop = u.handle(h, HandlerOptions.DEFAULT.withObserver(rec)
          .withReconnect(ReconnectPolicy.DEFAULT.withBackoff(Duration.ofMillis(300), Duration.ofMillis(300))));
      HandlerLoopTest.waitUntil(() -> rec.attempts.size() == 1);
      HostileServerTest.within(Duration.ofSeconds(2), loop::close);
      closed.set(true); // no callback runs after close() returns
      assertThat(loop.termination()).isCompleted();
      Thread.sleep(500); // past the backoff: the reconnect must not happen
      assertThat(attaches).hasValue(1);
      assertThat(afterClose).hasValue(0);
      assertThat(rec.reconnected).isEmpty();
    }
  }

  @Test
  void aShutDownChannelIsNotReconnected() throws Exception {
    HandlerLoop loop = uffd.handle(FaultContext::zeropage, HandlerOptions.DEFAULT.withObserver(rec));
    assertThat(process.read(base, 1).ok()).isTrue();
    fake.channel.shutdownNow(); // the application killed the connection on purpose
    assertThat(loop.termination()).failsWithin(Duration.ofSeconds(5))
        .withThrowableOfType(ExecutionException.class).withCauseInstanceOf(ServerUnavailableException.class);
    assertThat(rec.attempts).isEmpty();
    loop.close();
  }

  @Test
  void disabledPolicyEndsTheLoopOnTheFirstFailure() throws Exception {
    HandlerLoop loop = uffd.handle(FaultContext::zeropage,
        HandlerOptions.DEFAULT.withObserver(rec).withReconnect(ReconnectPolicy.DISABLED));
    assertThat(process.read(base, 1).ok()).isTrue();
    fake.cutStream(uffd.fd(), Status.UNAVAILABLE);
    assertThat(loop.termination()).failsWithin(Duration.ofSeconds(5))
        .withThrowableOfType(ExecutionException.class).withCauseInstanceOf(ServerUnavailableException.class);
    assertThat(rec.attempts).isEmpty();
    loop.close();
  }
}
