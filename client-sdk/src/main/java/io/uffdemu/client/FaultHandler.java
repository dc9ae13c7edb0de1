package io.uffdemu.client;

/**
 * User code that serves page faults of a uffd, run by a {@link HandlerLoop}.
 *
 * <p>{@link #onFault} runs on a worker (a virtual thread by default), never concurrently for the same page.
 * Resolve the fault through the context ({@link FaultContext#copy}, {@link FaultContext#zeropage}, ...).
 * EEXIST is absorbed by the context (counted, the page is woken); EAGAIN propagates out of the context and
 * the loop defers the fault until the next non-pagefault event has been delivered to {@link #onEvent}
 * (let it propagate). Any other exception, or overrunning the fault deadline, applies the
 * {@link FallbackPolicy}.
 *
 * <pre>{@code
 * FaultHandler h = new FaultHandler() {
 *   public void onFault(FaultContext ctx) {
 *     if (removed.contains(ctx.pageAddress())) ctx.zeropage(); else ctx.copy(snapshot.page(ctx.pageAddress()));
 *   }
 *   public void onEvent(UffdMessage e) {
 *     if (e instanceof UffdMessage.RemoveEvent r) removed.add(r.start(), r.end());
 *   }
 * };
 * }</pre>
 */
@FunctionalInterface
public interface FaultHandler {
  /** Serves one page fault. */
  void onFault(FaultContext ctx) throws Exception;

  /** A non-pagefault message (FORK, REMAP, REMOVE, UNMAP), delivered in stream order on one thread. */
  default void onEvent(UffdMessage event) {}

  /** A fault could not be resolved (handler error or deadline with {@link FallbackPolicy#FAIL}, or the fallback failed). */
  default void onFailure(UffdMessage.PageFault fault, Throwable cause) {}

  /**
   * The Handle stream failed for good (second handler on the uffd, an errno, or reconnecting gave up with a
   * {@link HandlerDisconnectedException}; a stream failure that {@link HandlerOptions#reconnect()} recovers from
   * is not reported here). Called at most once, not after close.
   */
  default void onError(Throwable error) {}
}
