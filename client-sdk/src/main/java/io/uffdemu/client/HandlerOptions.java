package io.uffdemu.client;

import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.ThreadFactory;

/**
 * Options of a {@link HandlerLoop}. {@link #DEFAULT}: 4 workers on virtual threads, 64 queued messages
 * before back-pressure, 4 KiB pages, 30 s per fault then {@link FallbackPolicy#FAIL}, EAGAIN-deferred faults
 * retried after the next event or after 200 ms at the latest, 5 s close timeout, no metrics, resolutions as
 * unary calls, up to 16 messages per stream message (a quarter of the queue), and the Handle stream re-attached after a failure
 * ({@link ReconnectPolicy#DEFAULT}).
 *
 * <pre>{@code
 * HandlerOptions o = HandlerOptions.DEFAULT.withWorkers(16).withQueueCapacity(256)
 *     .withFaultDeadline(Duration.ofSeconds(1), FallbackPolicy.ZERO_FILL)
 *     .withObserver(new HandlerMetrics(registry, "restore"));
 * }</pre>
 *
 * @param workers faults served concurrently (never two of one page)
 * @param queueCapacity messages received but not yet picked up before the stream stops requesting more
 *     (gRPC manual flow control; the server then keeps them queued on the uffd)
 * @param pageSize page granularity for ordering and the context helpers (2 MiB for hugetlb)
 * @param faultDeadline time a handler has for one fault (and a resolution for its result); it is noticed up to
 *     10 ms late (one ticker thread per JVM keeps every deadline, so that no wait needs a timer of its own)
 * @param fallback what happens when it overruns or throws
 * @param eagainRetryDelay backstop: an EAGAIN-deferred fault is retried after this even without an event
 * @param closeTimeout how long close() waits for in-flight resolutions
 * @param threadFactory factory of worker and handler threads (virtual by default), of the threads that
 *     handle the end of a Handle stream (where {@code FaultHandler.onError} runs) and reconnect it, and of those
 *     that finish a {@link BatchFaultHandler}'s message batch whose results were not all clean. It is called on
 *     the gRPC transport's thread and on the SDK's deadline thread too, so it must be quick and must not block
 * @param observer metrics hooks
 * @param resolveOnStream send resolutions on the Handle stream (request_id / IoctlResult) instead of unary
 *     UserfaultfdService calls. Results then share the ordered stream with messages, so a credit kept open
 *     for a result may be spent by the server on another message first: the queue bound becomes best-effort.
 *     Default false: unary resolutions, and at most {@code queueCapacity + workers} messages outstanding.
 * @param reconnect what the loop does when its Handle stream breaks while the server still holds the uffd:
 *     {@link ReconnectPolicy#DEFAULT} re-attaches with jittered exponential backoff, bounded by attempts and time
 * @param maxBatch batching on the Handle stream (default 64; 1 = none). The server packs up to
 *     {@code min(maxBatch, queueCapacity / 4)} of the messages one read(2) returned into one stream message (a
 *     quarter of the queue, so that a few messages no worker can take yet never stop the stream), and
 *     one flow-control credit stands for that many messages, so the queue bound holds (a
 *     {@link BatchFaultHandler}'s workers may join waiting batches up to {@code maxBatch} faults when they take
 *     them, which frees that many queue slots: see its flow-control note). With
 *     {@link #resolveOnStream()} the resolutions that workers send at the same time also travel as one batch
 *     (up to {@code maxBatch}; never delayed to fill it). Batching changes no semantics: messages keep their
 *     order and each resolution its own result.
 * @param copyRegionBytes with {@link #resolveOnStream()}: the copy region the loop asks the server for (default
 *     {@link #DEFAULT_COPY_REGION_BYTES}; 0 = none). When this process can open the server's {@code /proc/<pid>/fd}
 *     (same host and pid namespace; the server's uid and gid, or CAP_SYS_PTRACE), COPY bytes are written into this shared memory and the request names them by offset, instead of
 *     travelling through protobuf, HTTP/2 and both sockets; a COPY that finds no room (more bytes in flight than
 *     the region holds), or a loop whose server is elsewhere, sends its data as before. Results and semantics do
 *     not change; {@link HandlerStats#regionCopies()} counts the COPYs that went through the region.
 */
public record HandlerOptions(int workers, int queueCapacity, long pageSize, Duration faultDeadline,
    FallbackPolicy fallback, Duration eagainRetryDelay, Duration closeTimeout, ThreadFactory threadFactory,
    HandlerObserver observer, boolean resolveOnStream, ReconnectPolicy reconnect, int maxBatch,
    long copyRegionBytes) {

  /**
   * {@link #copyRegionBytes()} by default: 256 MiB, room for 128 huge pages of 2 MiB in flight. Only the space
   * in flight at the peak is ever touched (it is handed out lowest first), so a handler of 4 KiB pages uses no
   * more memory with it than with a small one. The server caps it ({@code uffdemu.limits.max-copy-region-bytes},
   * 256MB by default).
   */
  public static final long DEFAULT_COPY_REGION_BYTES = 256L << 20;

  public static final HandlerOptions DEFAULT = new HandlerOptions(4, 64, 4096, Duration.ofSeconds(30),
      FallbackPolicy.FAIL, Duration.ofMillis(200), Duration.ofSeconds(5),
      Thread.ofVirtual().name("uffd-handler-", 0).factory(), HandlerObserver.NOOP, false, ReconnectPolicy.DEFAULT,
      64, DEFAULT_COPY_REGION_BYTES);


  public HandlerOptions {
    if (workers < 1 || queueCapacity < 1) {
      throw new IllegalArgumentException("workers and queueCapacity must be >= 1");
    }
    if (maxBatch < 1 || maxBatch > 4096) {
      throw new IllegalArgumentException("maxBatch must be between 1 and 4096");
    }
    if (copyRegionBytes < 0) {
      throw new IllegalArgumentException("copyRegionBytes must be >= 0");
    }
    if (pageSize <= 0 || Long.bitCount(pageSize) != 1) {
      throw new IllegalArgumentException("pageSize must be a power of two");
    }
    Objects.requireNonNull(faultDeadline);
    Objects.requireNonNull(fallback);
    Objects.requireNonNull(eagainRetryDelay);
    Objects.requireNonNull(closeTimeout);
    Objects.requireNonNull(threadFactory);
    Objects.requireNonNull(observer);
    Objects.requireNonNull(reconnect);
  }

  /** Reconnection of the Handle stream; {@link ReconnectPolicy#DISABLED} ends the loop on any stream failure. */
  public HandlerOptions withReconnect(ReconnectPolicy reconnect) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withResolveOnStream(boolean resolveOnStream) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withMaxBatch(int maxBatch) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  /** The copy region asked for with {@link #resolveOnStream()} (0: none): see {@link #copyRegionBytes()}. */
  public HandlerOptions withCopyRegionBytes(long copyRegionBytes) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withWorkers(int workers) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withQueueCapacity(int queueCapacity) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withPageSize(long pageSize) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withFaultDeadline(Duration faultDeadline, FallbackPolicy fallback) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withEagainRetryDelay(Duration eagainRetryDelay) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withCloseTimeout(Duration closeTimeout) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withThreadFactory(ThreadFactory threadFactory) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }

  public HandlerOptions withObserver(HandlerObserver observer) {
    return new HandlerOptions(workers, queueCapacity, pageSize, faultDeadline, fallback, eagainRetryDelay,
        closeTimeout, threadFactory, observer, resolveOnStream, reconnect, maxBatch, copyRegionBytes);
  }
}
