package io.uffdemu.client.impl;

import com.google.protobuf.ByteString;
import io.uffdemu.api.v1.AccessRequest;
import io.uffdemu.api.v1.CloseRequest;
import io.uffdemu.api.v1.ExitRequest;
import io.uffdemu.api.v1.FallocateRequest;
import io.uffdemu.api.v1.ForkRequest;
import io.uffdemu.api.v1.FtruncateRequest;
import io.uffdemu.api.v1.GetProcessRequest;
import io.uffdemu.api.v1.MadviseRequest;
import io.uffdemu.api.v1.MapsRequest;
import io.uffdemu.api.v1.MemfdCreateRequest;
import io.uffdemu.api.v1.MmapRequest;
import io.uffdemu.api.v1.MprotectRequest;
import io.uffdemu.api.v1.MremapRequest;
import io.uffdemu.api.v1.MunmapRequest;
import io.uffdemu.api.v1.OpenRequest;
import io.uffdemu.api.v1.PidfdGetfdRequest;
import io.uffdemu.api.v1.GrantMemfdRequest;
import io.uffdemu.api.v1.AcceptMemfdGrantRequest;
import io.uffdemu.api.v1.RevokeMemfdGrantRequest;
import io.uffdemu.api.v1.PagemapScanRequest;
import io.uffdemu.api.v1.PreadRequest;
import io.uffdemu.api.v1.PwriteRequest;
import io.uffdemu.api.v1.ReadPagemapRequest;
import io.uffdemu.client.AccessMode;
import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AsyncProcess;
import io.uffdemu.client.Memfd;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.PageRegion;
import io.uffdemu.client.PagemapEntry;
import io.uffdemu.client.PagemapScanOptions;
import io.uffdemu.client.PagemapScanResult;
import io.uffdemu.client.Process;
import io.uffdemu.client.ProcessInfo;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.Userfaultfd;
import io.uffdemu.client.Vma;
import io.uffdemu.client.impl.RpcExecutor.Idempotency;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;

final class ProcessImpl implements Process {
  private static final long PAGE = 4096;

  private final ClientImpl client;
  private final int pid;
  private final Duration deadline;

  ProcessImpl(ClientImpl client, int pid, Duration deadline) {
    this.client = client;
    this.pid = pid;
    this.deadline = deadline;
  }

  ClientImpl client() {
    return client;
  }

  Duration deadline() {
    return deadline;
  }

  private <T> T exec(String call, Idempotency idem, java.util.function.Function<RpcExecutor.Stubs, T> rpc) {
    return client.rpc().execute(call, idem, deadline, rpc);
  }

  @Override
  public int pid() {
    return pid;
  }

  @Override
  public Process withDeadline(Duration d) {
    Objects.requireNonNull(d, "deadline");
    return new ProcessImpl(client, pid, d);
  }

  @Override
  public ProcessInfo info() {
    return ProtoMapper.processInfo(exec("getpid", Idempotency.IDEMPOTENT,
        s -> s.process().get(GetProcessRequest.newBuilder().setPid(pid).build())));
  }

  @Override
  public long mmap(MmapOptions o) {
    Objects.requireNonNull(o, "options");
    return exec("mmap", Idempotency.NOT_IDEMPOTENT, s -> s.memory().mmap(MmapRequest.newBuilder().setPid(pid)
        .setAddr(o.addr()).setLen(o.length()).setProt(o.prot()).setFlags(o.flags()).setFd(o.fd())
        .setOffset(o.offset()).build()).getAddr());
  }

  @Override
  public void munmap(long addr, long len) {
    exec("munmap", Idempotency.IDEMPOTENT,
        s -> s.memory().munmap(MunmapRequest.newBuilder().setPid(pid).setAddr(addr).setLen(len).build()));
  }

  @Override
  public long mremap(long oldAddr, long oldLen, long newLen, int flags, long newAddr) {
    return exec("mremap", Idempotency.NOT_IDEMPOTENT, s -> s.memory().mremap(MremapRequest.newBuilder().setPid(pid)
        .setOldAddr(oldAddr).setOldLen(oldLen).setNewLen(newLen).setFlags(flags).setNewAddr(newAddr).build())
        .getAddr());
  }

  @Override
  public void mprotect(long addr, long len, int prot) {
    exec("mprotect", Idempotency.IDEMPOTENT, s -> s.memory().mprotect(
        MprotectRequest.newBuilder().setPid(pid).setAddr(addr).setLen(len).setProt(prot).build()));
  }

  @Override
  public void madvise(long addr, long len, int advice) {
    // not idempotent: DONTNEED/REMOVE queue uffd events each time
    exec("madvise", Idempotency.NOT_IDEMPOTENT, s -> s.memory().madvise(
        MadviseRequest.newBuilder().setPid(pid).setAddr(addr).setLen(len).setAdvice(advice).build()));
  }

  @Override
  public Memfd memfdCreate(String name, int flags) {
    Objects.requireNonNull(name, "name");
    int fd = exec("memfd_create", Idempotency.NOT_IDEMPOTENT, s -> s.memory().memfdCreate(
        MemfdCreateRequest.newBuilder().setPid(pid).setName(name).setFlags(flags).build()).getFd());
    return new MemfdImpl(this, fd);
  }

  @Override
  public void ftruncate(int fd, long length) {
    exec("ftruncate", Idempotency.IDEMPOTENT, s -> s.memory().ftruncate(
        FtruncateRequest.newBuilder().setPid(pid).setFd(fd).setLength(length).build()));
  }

  @Override
  public void fallocate(int fd, int mode, long offset, long len) {
    exec("fallocate", Idempotency.IDEMPOTENT, s -> s.memory().fallocate(FallocateRequest.newBuilder().setPid(pid)
        .setFd(fd).setMode(mode).setOffset(offset).setLen(len).build()));
  }

  @Override
  public byte[] pread(int fd, long offset, int len) {
    return exec("pread", Idempotency.IDEMPOTENT, s -> s.memory().pread(PreadRequest.newBuilder().setPid(pid)
        .setFd(fd).setOffset(offset).setLen(len).build()).getData().toByteArray());
  }

  @Override
  public long pwrite(int fd, long offset, byte[] data) {
    Objects.requireNonNull(data, "data");
    return exec("pwrite", Idempotency.IDEMPOTENT, s -> s.memory().pwrite(PwriteRequest.newBuilder().setPid(pid)
        .setFd(fd).setOffset(offset).setData(ByteString.copyFrom(data)).build()).getWritten());
  }

  @Override
  public void close(int fd) {
    exec("close", Idempotency.NOT_IDEMPOTENT,
        s -> s.memory().close(CloseRequest.newBuilder().setPid(pid).setFd(fd).build()));
  }

  @Override
  public int pidfdGetfd(int targetPid, int targetFd) {
    return exec("pidfd_getfd", Idempotency.NOT_IDEMPOTENT, s -> s.memory().pidfdGetfd(PidfdGetfdRequest.newBuilder()
        .setPid(pid).setTargetPid(targetPid).setTargetFd(targetFd).build()).getFd());
  }

  @Override
  public String grantMemfd(int fd, String granteeTenant) {
    Objects.requireNonNull(granteeTenant, "granteeTenant");
    return exec("GrantMemfd", Idempotency.NOT_IDEMPOTENT, s -> s.memory().grantMemfd(GrantMemfdRequest.newBuilder()
        .setPid(pid).setFd(fd).setGranteeTenant(granteeTenant).build()).getGrantToken());
  }

  @Override
  public int acceptMemfdGrant(String grantToken) {
    Objects.requireNonNull(grantToken, "grantToken");
    return exec("AcceptMemfdGrant", Idempotency.NOT_IDEMPOTENT, s -> s.memory().acceptMemfdGrant(
        AcceptMemfdGrantRequest.newBuilder().setPid(pid).setGrantToken(grantToken).build()).getFd());
  }

  @Override
  public int revokeMemfdGrant(String grantToken) {
    Objects.requireNonNull(grantToken, "grantToken");
    return exec("RevokeMemfdGrant", Idempotency.IDEMPOTENT, s -> s.memory().revokeMemfdGrant(
        RevokeMemfdGrantRequest.newBuilder().setPid(pid).setGrantToken(grantToken).build()).getClosedFds());
  }

  @Override
  public Memfd memfd(int fd) {
    return new MemfdImpl(this, fd);
  }

  @Override
  public Userfaultfd userfaultfd(UffdOptions o) {
    Objects.requireNonNull(o, "options");
    var r = exec("userfaultfd", Idempotency.NOT_IDEMPOTENT, s -> s.uffd().open(OpenRequest.newBuilder().setPid(pid)
        .setFlags(o.flags()).setFeatures(o.features()).setDevUserfaultfd(o.devUserfaultfd()).build()));
    return new UserfaultfdImpl(this, r.getFd(), r.getFeatures(), r.getIoctls());
  }

  @Override
  public Userfaultfd userfaultfd(int fd) {
    return new UserfaultfdImpl(this, fd, 0, 0);
  }

  @Override
  public Userfaultfd userfaultfdWithoutApi(UffdOptions o) {
    Objects.requireNonNull(o, "options");
    var r = exec("userfaultfd", Idempotency.NOT_IDEMPOTENT, s -> s.uffd().open(OpenRequest.newBuilder().setPid(pid)
        .setFlags(o.flags()).setDevUserfaultfd(o.devUserfaultfd()).setDeferApi(true).build()));
    return new UserfaultfdImpl(this, r.getFd(), 0, 0);
  }

  @Override
  public AccessResult read(long addr, int len, AccessMode mode) {
    Objects.requireNonNull(mode, "mode");
    return ProtoMapper.access(exec("access", Idempotency.NOT_IDEMPOTENT, s -> s.process().access(
        AccessRequest.newBuilder().setPid(pid).setAddr(addr).setLen(len).setWrite(false)
            .setMode(ProtoMapper.accessMode(mode)).build())));
  }

  @Override
  public AccessResult write(long addr, byte[] data, AccessMode mode) {
    Objects.requireNonNull(data, "data");
    Objects.requireNonNull(mode, "mode");
    return ProtoMapper.access(exec("access", Idempotency.NOT_IDEMPOTENT, s -> s.process().access(
        AccessRequest.newBuilder().setPid(pid).setAddr(addr).setLen(data.length).setWrite(true)
            .setData(ByteString.copyFrom(data)).setMode(ProtoMapper.accessMode(mode)).build())));
  }

  @Override
  public io.uffdemu.client.StormResult storm(io.uffdemu.client.StormOptions o) {
    Objects.requireNonNull(o, "options");
    var r = exec("storm", Idempotency.NOT_IDEMPOTENT, s -> s.process().storm(io.uffdemu.api.v1.StormRequest
        .newBuilder().setPid(pid).setAddr(o.addr()).setLen(o.len()).setStride(o.stride()).setThreads(o.threads())
        .setWrite(o.write()).setRound(o.round()).setVerify(o.verify()).build()));
    return new io.uffdemu.client.StormResult(r.getAccesses(), r.getFailed(), r.getFirstSignal(), r.getFirstErrno(),
        r.getFirstFaultAddr(), java.time.Duration.ofNanos(r.getElapsedNanos()), r.getLatencyP50Nanos(),
        r.getLatencyP99Nanos(), r.getLatencyMaxNanos(), r.getLostWrites());
  }

  @Override
  public List<Vma> maps() {
    return exec("maps", Idempotency.IDEMPOTENT, s -> s.process().maps(MapsRequest.newBuilder().setPid(pid).build())
        .getVmasList().stream().map(ProtoMapper::vma).toList());
  }

  @Override
  public List<io.uffdemu.client.UffdInfo> userfaultfds() {
    return exec("fdinfo", Idempotency.IDEMPOTENT, s -> s.uffd().list(io.uffdemu.api.v1.ListUffdsRequest.newBuilder()
        .setPid(pid).build()).getUffdsList().stream().map(ProtoMapper::uffdInfo).toList());
  }

  @Override
  public List<PagemapEntry> pagemap(long start, long pages) {
    long first = start & -PAGE;
    List<Long> raw = exec("pagemap", Idempotency.IDEMPOTENT, s -> s.process().readPagemap(
        ReadPagemapRequest.newBuilder().setPid(pid).setStart(first).setPages(pages).build()).getEntriesList());
    List<PagemapEntry> out = new ArrayList<>(raw.size());
    for (int i = 0; i < raw.size(); i++) {
      out.add(PagemapEntry.decode(first + i * PAGE, raw.get(i)));
    }
    return List.copyOf(out);
  }

  @Override
  public PagemapScanResult pagemapScan(PagemapScanOptions o) {
    Objects.requireNonNull(o, "options");
    var r = exec("PAGEMAP_SCAN", Idempotency.NOT_IDEMPOTENT, // WP_MATCHING write-protects
        s -> s.process().pagemapScan(PagemapScanRequest.newBuilder().setPid(pid).setRange(ProtoMapper.range(o.range()))
            .setFlags(o.flags()).setCategoryInverted(o.categoryInverted()).setCategoryMask(o.categoryMask())
            .setCategoryAnyofMask(o.categoryAnyofMask()).setReturnMask(o.returnMask()).setMaxPages(o.maxPages())
            .setMaxRegions(o.maxRegions()).build()));
    return new PagemapScanResult(r.getRegionsList().stream()
        .map(p -> new PageRegion(p.getStart(), p.getEnd(), p.getCategories())).toList(), r.getWalkEnd());
  }

  @Override
  public Process fork() {
    int child = exec("fork", Idempotency.NOT_IDEMPOTENT,
        s -> s.process().fork(ForkRequest.newBuilder().setPid(pid).build()).getPid());
    return new ProcessImpl(client, child, deadline);
  }

  @Override
  public void exit() {
    exec("exit", Idempotency.NOT_IDEMPOTENT, s -> s.process().exit(ExitRequest.newBuilder().setPid(pid).build()));
  }

  @Override
  public AsyncProcess async() {
    return new AsyncView();
  }

  @Override
  public String toString() {
    return "Process[" + pid + "]";
  }

  private final class AsyncView implements AsyncProcess {
    private final java.util.concurrent.Executor ex = client.asyncExecutor();

    @Override
    public Process sync() {
      return ProcessImpl.this;
    }

    @Override
    public CompletableFuture<Long> mmap(MmapOptions options) {
      return Async.run(ex, () -> ProcessImpl.this.mmap(options));
    }

    @Override
    public CompletableFuture<Void> munmap(long addr, long len) {
      return Async.runVoid(ex, () -> ProcessImpl.this.munmap(addr, len));
    }

    @Override
    public CompletableFuture<Long> mremap(long oldAddr, long oldLen, long newLen, int flags, long newAddr) {
      return Async.run(ex, () -> ProcessImpl.this.mremap(oldAddr, oldLen, newLen, flags, newAddr));
    }

    @Override
    public CompletableFuture<Void> mprotect(long addr, long len, int prot) {
      return Async.runVoid(ex, () -> ProcessImpl.this.mprotect(addr, len, prot));
    }

    @Override
    public CompletableFuture<Void> madvise(long addr, long len, int advice) {
      return Async.runVoid(ex, () -> ProcessImpl.this.madvise(addr, len, advice));
    }

    @Override
    public CompletableFuture<Memfd> memfdCreate(String name, int flags) {
      return Async.run(ex, () -> ProcessImpl.this.memfdCreate(name, flags));
    }

    @Override
    public CompletableFuture<byte[]> pread(int fd, long offset, int len) {
      return Async.run(ex, () -> ProcessImpl.this.pread(fd, offset, len));
    }

    @Override
    public CompletableFuture<Long> pwrite(int fd, long offset, byte[] data) {
      return Async.run(ex, () -> ProcessImpl.this.pwrite(fd, offset, data));
    }

    @Override
    public CompletableFuture<AccessResult> read(long addr, int len) {
      return Async.run(ex, () -> ProcessImpl.this.read(addr, len));
    }

    @Override
    public CompletableFuture<AccessResult> read(long addr, int len, AccessMode mode) {
      return Async.run(ex, () -> ProcessImpl.this.read(addr, len, mode));
    }

    @Override
    public CompletableFuture<AccessResult> write(long addr, byte[] data) {
      return Async.run(ex, () -> ProcessImpl.this.write(addr, data));
    }

    @Override
    public CompletableFuture<AccessResult> write(long addr, byte[] data, AccessMode mode) {
      return Async.run(ex, () -> ProcessImpl.this.write(addr, data, mode));
    }

    @Override
    public CompletableFuture<List<Vma>> maps() {
      return Async.run(ex, ProcessImpl.this::maps);
    }

    @Override
    public CompletableFuture<List<io.uffdemu.client.UffdInfo>> userfaultfds() {
      return Async.run(ex, ProcessImpl.this::userfaultfds);
    }

    @Override
    public CompletableFuture<List<PagemapEntry>> pagemap(long start, long pages) {
      return Async.run(ex, () -> ProcessImpl.this.pagemap(start, pages));
    }

    @Override
    public CompletableFuture<PagemapScanResult> pagemapScan(PagemapScanOptions options) {
      return Async.run(ex, () -> ProcessImpl.this.pagemapScan(options));
    }

    @Override
    public CompletableFuture<Process> fork() {
      return Async.run(ex, ProcessImpl.this::fork);
    }

    @Override
    public CompletableFuture<Void> exit() {
      return Async.runVoid(ex, ProcessImpl.this::exit);
    }
  }
}
