package io.uffdemu.client;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * A running handler on a uffd's Handle stream. Close it to stop: in-flight resolutions finish (bounded by
 * {@link HandlerOptions#closeTimeout()}), the stream is half-closed, faults received but not yet served are
 * woken (UFFDIO_WAKE: their threads re-fault and the next handler gets a fresh message), and no callback runs
 * after {@code close()} returns.
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
