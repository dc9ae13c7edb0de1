package io.uffdemu.client;

/**
 * A {@link FaultHandler} whose {@link #onFault} resolves a fault synchronously and does not block (a COPY of data
 * it already holds, an un-protect), so that a {@link HandlerLoop} can serve a whole message batch with one
 * hand-off and send the batch's resolutions back as one stream message.
 *
 * <p>Used when {@link HandlerOptions#resolveOnStream()} is on (with {@link HandlerOptions#maxBatch()} &gt; 1 the
 * server sends batches); otherwise it is served exactly like a plain {@link FaultHandler}. On that path:
 * <ul>
 *   <li>The faults of one stream message (a batch) that can be served at once (no earlier fault of the same page
 *       being served or queued, no earlier event still to be delivered to {@link #onEvent}) go to one worker,
 *       which calls {@link #onFault} for each of them in message order, on the worker itself (no handler thread
 *       per fault). The others take the per-fault path, as with a plain handler. Batches that wait for a place in
 *       flight (see below) are joined when a worker takes them, in order, up to that worker's share of the waiting
 *       faults (spread over the places in flight left) and at most {@code maxBatch} faults (for pages over 4 KiB:
 *       no more than 16 MiB of pages, or the server's batch if that is more): the server sends the faults a
 *       read(2) returned, and those come a few at a time. "The batch" below is what a worker took.</li>
 *   <li>The context's helpers ({@link FaultContext#copy}, {@link FaultContext#zeropage},
 *       {@link FaultContext#continue_}, {@link FaultContext#writeUnprotect}, {@link FaultContext#wake}) queue
 *       the resolution instead of waiting for it, and return the length they asked for ({@code data.length} for
 *       a copy, the page size for a zeropage or continue), not the server's answer. The data is copied when the
 *       helper is called, so a buffer may be reused at once. The resolutions of the whole batch go out as one
 *       {@code HandleRequest.batch} after the last {@code onFault} returned (cut into several when they exceed
 *       {@code maxBatch} requests or about 1 MiB, e.g. huge-page COPYs, in order); the helpers must be called from
 *       within {@code onFault} (afterwards they throw {@link IllegalStateException}). The worker then goes back
 *       for work: it does not wait for the results.</li>
 *   <li>The batch is finished when its last result arrives. When every result is clean, that happens on the
 *       thread that received it (the gRPC transport's: {@link HandlerObserver#faultDone} is called there), or on
 *       the worker when every result was in before it had finished sending.
 *       Otherwise the batch goes to a thread of the thread factory, which applies the results to each fault as on
 *       the per-fault path: EEXIST is absorbed (counted, the page woken), EAGAIN defers the fault until the next
 *       event, any other errno applies the {@link FallbackPolicy} to that fault (and {@link #onFailure} with
 *       {@link FallbackPolicy#FAIL}).</li>
 *   <li>An exception from {@code onFault} fails that fault only (its queued resolutions are dropped, the
 *       fallback policy applies; EAGAIN defers it); the batch's other faults are served.</li>
 *   <li>Deadline: a running {@code onFault} cannot be abandoned on this path. A fault whose {@code onFault}
 *       returns after {@link HandlerOptions#faultDeadline()} (counted from when the worker took its batch) is
 *       treated as having missed it: its resolutions are dropped and the fallback policy applies. So is a fault
 *       whose results have not all arrived by then (the resolution may have been applied: a fill's fallback then
 *       meets EEXIST).</li>
 * </ul>
 * Flow control: the server's batch still costs one credit, and a worker taking a batch frees its queue slots; at
 * most {@code workers} batches are in flight (taken and not finished), and a worker whose batch is in flight may
 * take a single fault, so at most {@code queueCapacity + workers * (maxBatch + 1)} faults are outstanding, plus the
 * credit kept open for awaited results; the server's batch is {@code min(maxBatch, queueCapacity / 4)}, and a
 * worker's joined batch at most {@code maxBatch} faults.
 * Measured on a shared 2-core machine: when a worker still waited for its batch's results this path cost about
 * the same client CPU per fault as the per-fault path (docs/benchmarks.md item 11: 31-35 against 32-40 us with 64
 * faulting threads); finished by its results instead, a batch costs one hand-off less, and the remote round trip
 * with 64 faulting threads went from 83-95 k to 116-151 k faults/s (item 22: anon MISSING, interleaved pairs).
 * Joining waiting batches took 1 worker from 5 k to 93-107 k faults/s there, and 2 workers from 71-86 k to
 * 90-120 k (item 23, anon MISSING); with 4 or more workers a batch rarely waits, and the figures did not move.
 *
 * <pre>{@code
 * BatchFaultHandler h = ctx -> ctx.copy(snapshot.page(ctx.pageAddress()));
 * try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withResolveOnStream(true))) { ... }
 * }</pre>
 */
@FunctionalInterface
public interface BatchFaultHandler extends FaultHandler {}
