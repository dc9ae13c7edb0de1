package io.uffdemu.client.impl;

import io.grpc.Channel;
import io.uffdemu.api.v1.MemoryServiceGrpc;
import io.uffdemu.api.v1.ProcessServiceGrpc;
import io.uffdemu.api.v1.SystemServiceGrpc;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.UffdemuException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * The one execute path of the SDK: applies the deadline, retries idempotent calls on transport failure
 * (UNAVAILABLE without an errno) with exponential backoff, and maps every failure once via
 * {@link StatusMapper}. Non-idempotent calls (COPY, ZEROPAGE, MMAP, ...) are attempted exactly once.
 */
final class RpcExecutor {
  enum Idempotency { IDEMPOTENT, NOT_IDEMPOTENT }

  /** Blocking stubs with one call's deadline. */
  record Stubs(Channel channel, Duration deadline) {
    ProcessServiceGrpc.ProcessServiceBlockingStub process() {
      return ProcessServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
    }

    MemoryServiceGrpc.MemoryServiceBlockingStub memory() {
      return MemoryServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
    }

    UserfaultfdServiceGrpc.UserfaultfdServiceBlockingStub uffd() {
      return UserfaultfdServiceGrpc.newBlockingStub(channel)
          .withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
    }

    SystemServiceGrpc.SystemServiceBlockingStub system() {
      return SystemServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
    }
  }

  private final Channel channel;
  private final ClientConfig config;

  RpcExecutor(Channel channel, ClientConfig config) {
    this.channel = channel;
    this.config = config;
  }

  Channel channel() {
    return channel;
  }

  ClientConfig config() {
    return config;
  }

  <T> T execute(String call, Idempotency idempotency, Duration deadline, Function<Stubs, T> rpc) {
    Stubs stubs = new Stubs(channel, deadline == null ? config.deadline() : deadline);
    int attempts = idempotency == Idempotency.IDEMPOTENT ? config.retryAttempts() : 1;
    long backoffNanos = config.retryBackoff().toNanos();
    for (int attempt = 1; ; attempt++) {
      try {
        return rpc.apply(stubs);
      } catch (RuntimeException e) {
        if (e instanceof UffdemuException) {
          throw e; // already mapped (e.g. a negative byte count decoded in rpc)
        }
        if (attempt >= attempts || !StatusMapper.retryable(e)) {
          throw StatusMapper.map(e, call);
        }
        try {
          TimeUnit.NANOSECONDS.sleep(backoffNanos);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw StatusMapper.map(e, call);
        }
        backoffNanos = Math.min(backoffNanos * 2, TimeUnit.SECONDS.toNanos(5));
      }
    }
  }
}
