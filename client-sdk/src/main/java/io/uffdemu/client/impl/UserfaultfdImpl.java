package io.uffdemu.client.impl;

import com.google.protobuf.ByteString;
import io.uffdemu.api.v1.ApiRequest;
import io.uffdemu.api.v1.CloseRequest;
import io.uffdemu.api.v1.ContinueRequest;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.MoveRequest;
import io.uffdemu.api.v1.PoisonRequest;
import io.uffdemu.api.v1.RangeRequest;
import io.uffdemu.api.v1.ReadRequest;
import io.uffdemu.api.v1.RegisterRequest;
import io.uffdemu.api.v1.WriteProtectRequest;
import io.uffdemu.api.v1.ZeropageRequest;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.AsyncUserfaultfd;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.Userfaultfd;
import io.uffdemu.client.impl.RpcExecutor.Idempotency;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Function;

final class UserfaultfdImpl implements Userfaultfd {
  private final ProcessImpl process;
  private final int fd;
  private final long features;
  private final long ioctls;

  UserfaultfdImpl(ProcessImpl process, int fd, long features, long ioctls) {
    this.process = process;
    this.fd = fd;
    this.features = features;
    this.ioctls = ioctls;
  }

  ProcessImpl processImpl() {
    return process;
  }

  // ---- request builders shared with the handler loop
  CopyRequest copyReq(long dst, byte[] data, long mode) {
    return copyReq(dst, ByteString.copyFrom(data), mode);
  }

  CopyRequest copyReq(long dst, ByteString data, long mode) {
    return CopyRequest.newBuilder().setPid(process.pid()).setFd(fd).setDst(dst).setData(data).setMode(mode).build();
  }

  ZeropageRequest zeropageReq(AddrRange r, long mode) {
    return ZeropageRequest.newBuilder().setPid(process.pid()).setFd(fd).setRange(ProtoMapper.range(r)).setMode(mode)
        .build();
  }

  ContinueRequest continueReq(AddrRange r, long mode) {
    return ContinueRequest.newBuilder().setPid(process.pid()).setFd(fd).setRange(ProtoMapper.range(r)).setMode(mode)
        .build();
  }

  WriteProtectRequest writeProtectReq(AddrRange r, long mode) {
    return WriteProtectRequest.newBuilder().setPid(process.pid()).setFd(fd).setRange(ProtoMapper.range(r))
        .setMode(mode).build();
  }

  RangeRequest rangeReq(AddrRange r) {
    return RangeRequest.newBuilder().setPid(process.pid()).setFd(fd).setRange(ProtoMapper.range(r)).build();
  }

  private <T> T exec(String call, Idempotency idem, Function<RpcExecutor.Stubs, T> rpc) {
    return process.client().rpc().execute(call, idem, process.deadline(), rpc);
  }

  @Override
  public Process process() {
    return process;
  }

  @Override
  public int fd() {
    return fd;
  }

  @Override
  public long features() {
    return features;
  }

  @Override
  public long ioctls() {
    return ioctls;
  }

  @Override
  public Userfaultfd api(long features) {
    // not idempotent: a second UFFDIO_API fails with EINVAL
    var r = exec("UFFDIO_API", Idempotency.NOT_IDEMPOTENT, s -> s.uffd().api(ApiRequest.newBuilder()
        .setPid(process.pid()).setFd(fd).setApi(Linux.UFFD_API).setFeatures(features).build()));
    return new UserfaultfdImpl(process, fd, r.getFeatures(), r.getIoctls());
  }

  @Override
  public long register(AddrRange range, long mode) {
    Objects.requireNonNull(range, "range");
    // registering the same range with the same mode again is accepted by the kernel: safe to redo
    return exec("UFFDIO_REGISTER", Idempotency.IDEMPOTENT, s -> s.uffd().register(RegisterRequest.newBuilder()
        .setPid(process.pid()).setFd(fd).setRange(ProtoMapper.range(range)).setMode(mode).build()).getIoctls());
  }

  @Override
  public void unregister(AddrRange range) {
    Objects.requireNonNull(range, "range");
    exec("UFFDIO_UNREGISTER", Idempotency.IDEMPOTENT, s -> s.uffd().unregister(rangeReq(range)));
  }

  @Override
  public long copy(long dst, byte[] data, long mode) {
    Objects.requireNonNull(data, "data");
    CopyRequest req = copyReq(dst, data, mode);
    return StatusMapper.bytes("UFFDIO_COPY",
        exec("UFFDIO_COPY", Idempotency.NOT_IDEMPOTENT, s -> s.uffd().copy(req).getBytes()));
  }

  @Override
  public long zeropage(AddrRange range, long mode) {
    Objects.requireNonNull(range, "range");
    return StatusMapper.bytes("UFFDIO_ZEROPAGE", exec("UFFDIO_ZEROPAGE", Idempotency.NOT_IDEMPOTENT,
        s -> s.uffd().zeropage(zeropageReq(range, mode)).getBytes()));
  }

  @Override
  public long continue_(AddrRange range, long mode) {
    Objects.requireNonNull(range, "range");
    return StatusMapper.bytes("UFFDIO_CONTINUE", exec("UFFDIO_CONTINUE", Idempotency.NOT_IDEMPOTENT,
        s -> s.uffd().continue_(continueReq(range, mode)).getBytes()));
  }

  @Override
  public void writeProtect(AddrRange range, long mode) {
    Objects.requireNonNull(range, "range");
    exec("UFFDIO_WRITEPROTECT", Idempotency.IDEMPOTENT, s -> s.uffd().writeProtect(writeProtectReq(range, mode)));
  }

  @Override
  public void wake(AddrRange range) {
    Objects.requireNonNull(range, "range");
    exec("UFFDIO_WAKE", Idempotency.IDEMPOTENT, s -> s.uffd().wake(rangeReq(range)));
  }

  @Override
  public long poison(AddrRange range, long mode) {
    Objects.requireNonNull(range, "range");
    return StatusMapper.bytes("UFFDIO_POISON", exec("UFFDIO_POISON", Idempotency.NOT_IDEMPOTENT,
        s -> s.uffd().poison(PoisonRequest.newBuilder().setPid(process.pid()).setFd(fd)
            .setRange(ProtoMapper.range(range)).setMode(mode).build()).getBytes()));
  }

  @Override
  public long move(long dst, long src, long len, long mode) {
    return StatusMapper.bytes("UFFDIO_MOVE", exec("UFFDIO_MOVE", Idempotency.NOT_IDEMPOTENT,
        s -> s.uffd().move(MoveRequest.newBuilder().setPid(process.pid()).setFd(fd).setDst(dst).setSrc(src)
            .setLen(len).setMode(mode).build()).getBytes()));
  }

  @Override
  public List<UffdMessage> read(int max, Duration wait) {
    Objects.requireNonNull(wait, "wait");
    // read(2) consumes messages: never redone
    return exec("read", Idempotency.NOT_IDEMPOTENT, s -> s.uffd().read(ReadRequest.newBuilder()
        .setPid(process.pid()).setFd(fd).setMaxMessages(max).setWaitMillis((int) Math.min(wait.toMillis(),
            Integer.MAX_VALUE)).build()).getMessagesList().stream().map(ProtoMapper::message)
        .filter(Objects::nonNull).toList());
  }

  @Override
  public HandlerLoop handle(FaultHandler handler, HandlerOptions options) {
    Objects.requireNonNull(handler, "handler");
    Objects.requireNonNull(options, "options");
    HandlerLoopImpl loop = new HandlerLoopImpl(this, handler, options);
    process.client().register(loop);
    loop.start();
    return loop;
  }

  @Override
  public void close() {
    process.close(fd);
  }

  @Override
  public io.uffdemu.client.UffdInfo describe() {
    return exec("fdinfo", Idempotency.IDEMPOTENT, s -> ProtoMapper.uffdInfo(s.uffd().describe(
        io.uffdemu.api.v1.DescribeRequest.newBuilder().setPid(process.pid()).setFd(fd).build())));
  }

  @Override
  public AsyncUserfaultfd async() {
    return new AsyncView();
  }

  @Override
  public String toString() {
    return "Userfaultfd[pid=" + process.pid() + ", fd=" + fd + "]";
  }

  private final class AsyncView implements AsyncUserfaultfd {
    private final Executor ex = process.client().asyncExecutor();

    @Override
    public Userfaultfd sync() {
      return UserfaultfdImpl.this;
    }

    @Override
    public CompletableFuture<Long> register(AddrRange range, long mode) {
      return Async.run(ex, () -> UserfaultfdImpl.this.register(range, mode));
    }

    @Override
    public CompletableFuture<Void> unregister(AddrRange range) {
      return Async.runVoid(ex, () -> UserfaultfdImpl.this.unregister(range));
    }

    @Override
    public CompletableFuture<Long> copy(long dst, byte[] data, long mode) {
      return Async.run(ex, () -> UserfaultfdImpl.this.copy(dst, data, mode));
    }

    @Override
    public CompletableFuture<Long> zeropage(AddrRange range, long mode) {
      return Async.run(ex, () -> UserfaultfdImpl.this.zeropage(range, mode));
    }

    @Override
    public CompletableFuture<Long> continue_(AddrRange range, long mode) {
      return Async.run(ex, () -> UserfaultfdImpl.this.continue_(range, mode));
    }

    @Override
    public CompletableFuture<Void> writeProtect(AddrRange range, long mode) {
      return Async.runVoid(ex, () -> UserfaultfdImpl.this.writeProtect(range, mode));
    }

    @Override
    public CompletableFuture<Void> wake(AddrRange range) {
      return Async.runVoid(ex, () -> UserfaultfdImpl.this.wake(range));
    }

    @Override
    public CompletableFuture<Long> poison(AddrRange range, long mode) {
      return Async.run(ex, () -> UserfaultfdImpl.this.poison(range, mode));
    }

    @Override
    public CompletableFuture<Long> move(long dst, long src, long len, long mode) {
      return Async.run(ex, () -> UserfaultfdImpl.this.move(dst, src, len, mode));
    }

    @Override
    public CompletableFuture<List<UffdMessage>> read(int max, Duration wait) {
      return Async.run(ex, () -> UserfaultfdImpl.this.read(max, wait));
    }

    @Override
    public CompletableFuture<io.uffdemu.client.UffdInfo> describe() {
      return Async.run(ex, UserfaultfdImpl.this::describe);
    }
  }
}
