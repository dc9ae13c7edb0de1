package io.uffdemu.client.impl;

import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.EexistException;
import io.uffdemu.client.FaultContext;
import io.uffdemu.client.Linux;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.Userfaultfd;
import java.util.Objects;

/** Resolves one fault over the loop's stream; EEXIST counts as resolved (and wakes the page). */
final class FaultContextImpl implements FaultContext {
  private final HandlerLoopImpl loop;
  private final UffdMessage.PageFault fault;
  private final long page;
  private volatile boolean expired;
  private volatile boolean eexist;

  FaultContextImpl(HandlerLoopImpl loop, UffdMessage.PageFault fault, long page) {
    this.loop = loop;
    this.fault = fault;
    this.page = page;
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

  private long fill(HandleRequest.Builder req, String call, AddrRange range, boolean wake) {
    checkLive();
    try {
      return loop.resolve(req, call);
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
    return fill(HandleRequest.newBuilder().setCopy(loop.uffd().copyReq(dst, data, mode)), "UFFDIO_COPY",
        new AddrRange(dst, data.length), (mode & Linux.UFFDIO_COPY_MODE_DONTWAKE) == 0);
  }

  @Override
  public long zeropage() {
    return fill(HandleRequest.newBuilder().setZeropage(loop.uffd().zeropageReq(pageRange(), 0)), "UFFDIO_ZEROPAGE",
        pageRange(), true);
  }

  @Override
  public long continue_() {
    return fill(HandleRequest.newBuilder().setContinue(loop.uffd().continueReq(pageRange(), 0)), "UFFDIO_CONTINUE",
        pageRange(), true);
  }

  @Override
  public void writeUnprotect() {
    checkLive();
    loop.resolve(HandleRequest.newBuilder().setWriteProtect(loop.uffd().writeProtectReq(pageRange(), 0)),
        "UFFDIO_WRITEPROTECT");
  }

  @Override
  public void wake() {
    checkLive();
    loop.resolve(HandleRequest.newBuilder().setWake(loop.uffd().rangeReq(pageRange())), "UFFDIO_WAKE");
  }
}
