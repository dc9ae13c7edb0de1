package io.uffdemu.client;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * A running handler on a uffd's Handle stream. Close it to stop: in-flight resolutions finish (bounded by
 * {@link HandlerOptions#closeTimeout()}), queued faults are left to the server (their threads stay blocked,
 * as with a real uffd), the stream is half-closed, and no callback runs after {@code close()} returns.
 *
 * <pre>{@code
 * try (HandlerLoop loop = uffd.handle(handler, HandlerOptions.DEFAULT.withWorkers(8))) {
 *   runWorkload();
 *   System.out.println(loop.stats());
 * }
 * }</pre>
 */
public interface HandlerLoop extends AutoCloseable {
  /** Completes when the loop has stopped: normally after close or server completion, exceptionally on stream error. */
  CompletableFuture<Void> termination();

  boolean isClosed();

  HandlerStats stats();

  /** Waits for {@link #termination()} up to {@code timeout}; returns whether it terminated. */
  boolean awaitTermination(Duration timeout) throws InterruptedException;

  @Override
  void close();
}
