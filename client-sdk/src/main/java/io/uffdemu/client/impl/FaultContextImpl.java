package io.uffdemu.client.impl;

import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.EexistException;
import io.uffdemu.client.FaultContext;
import io.uffdemu.client.Linux;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.Userfaultfd;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Resolves one fault over the loop's stream; EEXIST counts as resolved (and wakes the page). In batch mode (a
 * {@link io.uffdemu.client.BatchFaultHandler} served a message batch at a time) the helpers queue their
 * resolutions; the loop sends them ({@link #sendQueued}) with the rest of the batch, and once their results are in
 * either counts the fault resolved (every result clean: {@link #resultsClean}) or applies them as the helpers would
 * have ({@link #finishQueued}).
 */
final class FaultContextImpl implements FaultContext {
  private final HandlerLoopImpl loop;
  private final UffdMessage.PageFault fault;
  private final long page;
  private volatile boolean expired;
  private volatile boolean eexist;
  /** Batch mode: the queued resolutions (null: per-fault mode). Guarded by this. */
  private final List<Queued> queued;
  /** COPY bytes written into the copy region by the helpers, until {@link #releaseStaged}. Guarded by this. */
  private List<CopyRegionClient.Staged> staged;
  private boolean stagedReleased;

  /** A queued resolution; {@code wakeRange}: wake it after EEXIST (fills only); {@code sent}: set once sent. */
  private static final class Queued {
    final HandleRequest.Builder req;
    final CopyRegionClient.Staged staged; // where a COPY's bytes are staged; null: none
    final String call;
    final boolean fill;
    final AddrRange wakeRange;
    HandlerLoopImpl.Sent sent;

    Queued(HandleRequest.Builder req, CopyRegionClient.Staged staged, String call, boolean fill,
        AddrRange wakeRange) {
      this.req = req;
      this.staged = staged;
      this.call = call;
      this.fill = fill;
      this.wakeRange = wakeRange;
    }
  }

  FaultContextImpl(HandlerLoopImpl loop, UffdMessage.PageFault fault, long page) {
    this(loop, fault, page, false);
  }

  FaultContextImpl(HandlerLoopImpl loop, UffdMessage.PageFault fault, long page, boolean batch) {
    this.loop = loop;
    this.fault = fault;
    this.page = page;
    this.queued = batch ? new ArrayList<>(1) : null;
  }

  /** Batch mode: queues a resolution (returns false in per-fault mode: the caller sends it now). */
  private boolean enqueue(HandleRequest.Builder req, CopyRegionClient.Staged st, String call, boolean fill,
      AddrRange wakeRange) {
    if (queued == null) {
      return false;
    }
    synchronized (this) {
      checkLive(); // under the monitor: expire() in batch mode takes it too, so nothing is queued after it
      queued.add(new Queued(req, st, call, fill, wakeRange));
    }
    return true;
  }

  /** Batch mode: drops the queued resolutions (the fault failed before they were sent). */
  synchronized void dropQueued() {
    expired = true;
    queued.clear();
  }

  /** Batch mode: no more resolutions may be queued (onFault returned). */
  synchronized void seal() {
    expired = true;
  }

  /** Batch mode: adds the queued resolutions to {@code chunk}, the batch's resolutions for the outbox. */
  synchronized void sendQueued(List<HandlerLoopImpl.Outgoing> chunk) {
    for (Queued q : queued) {
      q.sent = loop.sendOnStream(q.req, q.staged, q.call, chunk);
    }
  }

  /**
   * Batch mode: adds the results of the sent resolutions to {@code out}; false when one of them was not put on a
   * stream (no stream: {@link #finishQueued} sends it unary).
   */
  synchronized boolean sentResults(List<java.util.concurrent.CompletableFuture<io.uffdemu.api.v1.IoctlResult>> out) {
    for (Queued q : queued) {
      if (q.sent == null) {
        return false;
      }
      out.add(q.sent.result());
    }
    return true;
  }

  /**
   * Batch mode, once every result is in: true when each was applied without an errno (nothing left to do but
   * count the fault resolved); false sends the fault through {@link #finishQueued}.
   */
  synchronized boolean resultsClean() {
    for (Queued q : queued) {
      var f = q.sent == null ? null : q.sent.result();
      if (f == null || f.state() != java.util.concurrent.Future.State.SUCCESS || f.resultNow().hasError()) {
        return false;
      }
    }
    return true;
  }

  /**
   * Batch mode: waits for the results of the sent resolutions in order (until {@code deadlineNanos}, a
   * System.nanoTime()), as the helpers would have; EEXIST of a fill is absorbed (counted, the range woken). Throws
   * the first failure.
   */
  void finishQueued(long deadlineNanos) {
    List<Queued> qs;
    synchronized (this) {
      qs = List.copyOf(queued);
    }
    for (Queued q : qs) {
      try {
        loop.awaitSent(q.sent, q.req, q.staged, q.call, deadlineNanos - System.nanoTime());
      } catch (EexistException e) {
        if (!q.fill) {
          throw e;
        }
        eexist = true;
        loop.countEexist();
        if (q.wakeRange != null) {
          loop.wakeAfterEexist(q.wakeRange);
        }
      }
    }
  }

  void expire() {
    expired = true;
  }

  boolean sawEexist() {
    return eexist;
  }

  private void checkLive() {
    if (expired) {
      throw new IllegalStateException("fault context expired (deadline passed or loop closed): " + fault);
    }
  }

  private AddrRange pageRange() {
    return new AddrRange(page, loop.options().pageSize());
  }

  private long fill(HandleRequest.Builder req, CopyRegionClient.Staged st, String call, AddrRange range,
      boolean wake, long asked) {
    if (enqueue(req, st, call, true, wake ? range : null)) {
      return asked;
    }
    checkLive();
    try {
      return loop.resolve(req, st, call);
    } catch (EexistException e) {
      eexist = true;
      loop.countEexist();
      if (wake) {
        loop.wakeAfterEexist(range);
      }
      return 0;
    }
  }

  @Override
  public UffdMessage.PageFault message() {
    return fault;
  }

  @Override
  public long pageAddress() {
    return page;
  }

  @Override
  public long pageSize() {
    return loop.options().pageSize();
  }

  @Override
  public Userfaultfd uffd() {
    return loop.uffd();
  }

  @Override
  public long copy(byte[] data) {
    return copy(page, data, 0);
  }

  @Override
  public long copy(long dst, byte[] data, long mode) {
    Objects.requireNonNull(data, "data");
    checkLive();
    // with a copy region, the bytes go straight into it (no copy of them in the heap) and the request names
    // them by offset; the loop gives it a copy of them only if it goes elsewhere (another stream, unary)
    CopyRegionClient.Staged st = loop.options().resolveOnStream() ? loop.stage(data) : null;
    HandleRequest.Builder req = HandleRequest.newBuilder();
    CopyRegionClient.Staged mine = null;
    try {
      if (st != null) {
        mine = keep(st) ? st : null;
        st = null; // kept (released with the fault, or below) or already unstaged by keep
      }
      if (mine != null) {
        req.setCopy(loop.uffd().copyReq(dst, com.google.protobuf.ByteString.EMPTY, mode).toBuilder()
            .setRegionSrc(mine.src()).setRegionLen(mine.len));
      } else {
        req.setCopy(loop.uffd().copyReq(dst, data, mode));
      }
      return fill(req, mine, "UFFDIO_COPY", new AddrRange(dst, data.length),
          (mode & Linux.UFFDIO_COPY_MODE_DONTWAKE) == 0, data.length);
    } finally {
      if (st != null) {
        st.region.unstage(st); // keep() never ran
      }
      if (queued == null && mine != null) {
        release(mine); // per-fault mode: this COPY is resolved (or failed) by now; other calls keep theirs
      }
    }
  }

  /**
   * Holds a staged COPY until its fault is done with it; false (and unstaged) when that already happened: a
   * helper called after the batch was done.
   */
  private boolean keep(CopyRegionClient.Staged st) {
    synchronized (this) {
      if (!stagedReleased) {
        if (staged == null) {
          staged = new ArrayList<>(1);
        }
        staged.add(st);
        return true;
      }
    }
    st.region.unstage(st);
    return false;
  }

  /** Per-fault mode: one COPY's staged bytes, done with (the other calls of this fault keep theirs). */
  private void release(CopyRegionClient.Staged s) {
    synchronized (this) {
      if (staged == null || !staged.remove(s)) {
        return;
      }
    }
    drop(s);
  }

  /** The region gets the slot back (or lets its answer free it). */
  private void drop(CopyRegionClient.Staged s) {
    s.region.unstage(s);
  }

  /**
   * The fault is done with the bytes its COPYs staged in the copy region (resolved, failed or dropped): their
   * slots may go (an unanswered one when its answer comes). Batch mode: once, after the batch's results; a late
   * helper call after that stages nothing.
   */
  void releaseStaged() {
    List<CopyRegionClient.Staged> out;
    synchronized (this) {
      out = staged;
      staged = null;
      stagedReleased = queued != null;
    }
    if (out != null) {
      out.forEach(this::drop);
    }
  }

  @Override
  public long zeropage() {
    return fill(HandleRequest.newBuilder().setZeropage(loop.uffd().zeropageReq(pageRange(), 0)), null,
        "UFFDIO_ZEROPAGE", pageRange(), true, pageSize());
  }

  @Override
  public long continue_() {
    return fill(HandleRequest.newBuilder().setContinue(loop.uffd().continueReq(pageRange(), 0)), null,
        "UFFDIO_CONTINUE", pageRange(), true, pageSize());
  }

  @Override
  public void writeUnprotect() {
    resolve(HandleRequest.newBuilder().setWriteProtect(loop.uffd().writeProtectReq(pageRange(), 0)),
        "UFFDIO_WRITEPROTECT");
  }

  @Override
  public void wake() {
    resolve(HandleRequest.newBuilder().setWake(loop.uffd().rangeReq(pageRange())), "UFFDIO_WAKE");
  }

  /** A resolution that fills nothing (EEXIST is an error for it): queued in batch mode, else sent now. */
  private void resolve(HandleRequest.Builder req, String call) {
    if (enqueue(req, null, call, false, null)) {
      return;
    }
    checkLive();
    loop.resolve(req, call);
  }
}
