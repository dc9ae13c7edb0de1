package io.uffdemu.client.impl;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Supplier;

/** Runs a synchronous SDK call on the client's executor; the future fails with the unwrapped exception. */
final class Async {
  private Async() {}

  static <T> CompletableFuture<T> run(Executor executor, Supplier<T> call) {
    CompletableFuture<T> f = new CompletableFuture<>();
    try {
      executor.execute(() -> {
        try {
          f.complete(call.get());
        } catch (Throwable t) {
          f.completeExceptionally(t);
        }
      });
    } catch (RuntimeException rejected) {
      f.completeExceptionally(rejected);
    }
    return f;
  }

  static CompletableFuture<Void> runVoid(Executor executor, Runnable call) {
    return run(executor, () -> {
      call.run();
      return null;
    });
  }
}
