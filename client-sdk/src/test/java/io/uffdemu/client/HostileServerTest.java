package io.uffdemu.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResponse;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.api.v1.OpenRequest;
import io.uffdemu.api.v1.OpenResponse;
import io.uffdemu.api.v1.Pagefault;
import io.uffdemu.api.v1.UffdMsg;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import io.uffdemu.api.v1.ZeropageRequest;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A malicious or broken server must never hang the client (Firecracker's malicious_handler, reversed). */
@Timeout(20)
class HostileServerTest {

  /** A uffd service whose Handle stream runs a script. */
  static final class Hostile extends UserfaultfdServiceGrpc.UserfaultfdServiceImplBase {
    final BiConsumer<HandleRequest, StreamObserver<HandleResponse>> script;
    volatile boolean unaryHangs;

    Hostile(BiConsumer<HandleRequest, StreamObserver<HandleResponse>> script) {
      this.script = script;
    }

    @Override
    public void open(OpenRequest r, StreamObserver<OpenResponse> o) {
      o.onNext(OpenResponse.newBuilder().setFd(9).build());
      o.onCompleted();
    }

    @Override
    public void zeropage(ZeropageRequest r, StreamObserver<IoctlResponse> o) {
      if (!unaryHangs) {
        o.onNext(IoctlResponse.newBuilder().setBytes(r.getRange().getLen()).build());
        o.onCompleted();
      } // else: never answers
    }

    @Override
    public StreamObserver<HandleRequest> handle(StreamObserver<HandleResponse> out) {
      return new StreamObserver<>() {
        @Override
        public void onNext(HandleRequest r) {
          synchronized (out) {
            script.accept(r, out);
          }
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {
          try {
            out.onCompleted();
          } catch (RuntimeException ignored) {
            // already closed by the script
          }
        }
      };
    }
  }

  static HandleResponse fault(long addr, long seq) {
    return HandleResponse.newBuilder().setMsg(UffdMsg.newBuilder().setEvent(0x12).setSeq(seq)
        .setPagefault(Pagefault.newBuilder().setAddress(addr))).build();
  }

  static void within(Duration d, Runnable r) throws Exception {
    CompletableFuture.runAsync(r).get(d.toMillis(), TimeUnit.MILLISECONDS);
  }

  @Test
  void garbageAndUnknownOneofsAreIgnored() throws Exception {
    Hostile hostile = new Hostile((r, out) -> {
      switch (r.getKindCase()) {
        case ATTACH -> {
          out.onNext(HandleResponse.getDefaultInstance()); // no oneof set
          out.onNext(HandleResponse.newBuilder().setMsg(UffdMsg.newBuilder().setEvent(0x99)).build()); // no arg
          out.onNext(HandleResponse.newBuilder().setResult(IoctlResult.newBuilder().setRequestId(424242)).build());
          out.onNext(fault(0x10000, 1));
        }
        case ZEROPAGE -> out.onNext(HandleResponse.newBuilder().setResult(IoctlResult.newBuilder()
            .setRequestId(r.getRequestId()).setBytes(4096)).build());
        default -> {}
      }
    });
    try (FakeServer fake = new FakeServer(hostile); UffdemuClient client = fake.client()) {
      Userfaultfd uffd = client.process(1).userfaultfd(UffdOptions.DEFAULT);
      try (HandlerLoop loop = uffd.handle(FaultContext::zeropage, HandlerOptions.DEFAULT.withResolveOnStream(true))) {
        HandlerLoopTest.waitUntil(() -> loop.stats().resolved() == 1);
        assertThat(loop.stats().ignored()).isEqualTo(3);
        assertThat(loop.termination()).isNotDone();
      }
    }
  }

  @Test
  void errorMidStreamFailsPendingResolutionsAndReportsOnce() throws Exception {
    Hostile hostile = new Hostile((r, out) -> {
      switch (r.getKindCase()) {
        case ATTACH -> out.onNext(fault(0x10000, 1));
        default -> out.onError(Status.UNAVAILABLE.withDescription("server crashed").asRuntimeException());
      }
    });
    AtomicInteger onError = new AtomicInteger();
    CompletableFuture<Throwable> handlerSaw = new CompletableFuture<>();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        try {
          ctx.zeropage();
        } catch (RuntimeException e) {
          handlerSaw.complete(e);
          throw e;
        }
      }

      @Override
      public void onError(Throwable error) {
        onError.incrementAndGet();
      }
    };
    try (FakeServer fake = new FakeServer(hostile); UffdemuClient client = fake.client()) {
      Userfaultfd uffd = client.process(1).userfaultfd(UffdOptions.DEFAULT);
      HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true)
          .withReconnect(ReconnectPolicy.DISABLED));
      assertThat(handlerSaw.get(5, TimeUnit.SECONDS)).isInstanceOf(ServerUnavailableException.class);
      assertThat(loop.termination()).failsWithin(Duration.ofSeconds(5));
      assertThat(loop.isClosed()).isTrue();
      within(Duration.ofSeconds(2), loop::close);
      assertThat(onError).hasValue(1);
    }
  }

  @Test
  void unansweredStreamResolutionDoesNotHangCloseOrHandler() throws Exception {
    Hostile hostile = new Hostile((r, out) -> {
      if (r.hasAttach()) {
        out.onNext(fault(0x10000, 1));
      } // resolutions are swallowed; the stream is never completed
    });
    CopyOnWriteArrayList<Throwable> failures = new CopyOnWriteArrayList<>();
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
    try (FakeServer fake = new FakeServer(hostile); UffdemuClient client = fake.client()) {
      Userfaultfd uffd = client.process(1).userfaultfd(UffdOptions.DEFAULT);
      HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true)
          .withFaultDeadline(Duration.ofMillis(300), FallbackPolicy.FAIL).withCloseTimeout(Duration.ofMillis(500)));
      HandlerLoopTest.waitUntil(() -> loop.stats().failed() == 1);
      assertThat(failures).hasSize(1);
      within(Duration.ofSeconds(3), loop::close);
      assertThat(loop.termination()).isDone();
    }
  }

  @Test
  void hangingUnaryResolutionIsBoundedByTheFaultDeadline() throws Exception {
    Hostile hostile = new Hostile((r, out) -> {
      if (r.hasAttach()) {
        out.onNext(fault(0x10000, 1));
      }
    });
    hostile.unaryHangs = true;
    CompletableFuture<Throwable> failure = new CompletableFuture<>();
    FaultHandler h = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        ctx.zeropage();
      }

      @Override
      public void onFailure(UffdMessage.PageFault fault, Throwable cause) {
        failure.complete(cause);
      }
    };
    try (FakeServer fake = new FakeServer(hostile); UffdemuClient client = fake.client()) {
      Userfaultfd uffd = client.process(1).userfaultfd(UffdOptions.DEFAULT);
      HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT
          .withFaultDeadline(Duration.ofMillis(300), FallbackPolicy.ZERO_FILL).withCloseTimeout(Duration.ofMillis(500)));
      // the handler's zeropage hangs -> deadline -> ZERO_FILL, which hangs too -> bounded, reported
      assertThat(failure.get(5, TimeUnit.SECONDS)).isInstanceOf(UffdemuException.class);
      within(Duration.ofSeconds(3), loop::close);
    }
  }

  @Test
  void serverCompletingTheStreamEndsTheLoopQuietly() throws Exception {
    Hostile hostile = new Hostile((r, out) -> out.onCompleted());
    AtomicInteger onError = new AtomicInteger();
    try (FakeServer fake = new FakeServer(hostile); UffdemuClient client = fake.client()) {
      Userfaultfd uffd = client.process(1).userfaultfd(UffdOptions.DEFAULT);
      HandlerLoop loop = uffd.handle(new FaultHandler() {
        @Override
        public void onFault(FaultContext ctx) {}

        @Override
        public void onError(Throwable error) {
          onError.incrementAndGet();
        }
      }, HandlerOptions.DEFAULT);
      assertThat(loop.termination()).succeedsWithin(Duration.ofSeconds(5));
      assertThat(loop.isClosed()).isTrue();
      assertThat(loop.awaitTermination(Duration.ofMillis(10))).isTrue();
      within(Duration.ofSeconds(2), loop::close);
      assertThat(onError).hasValue(0);
    }
  }
}
