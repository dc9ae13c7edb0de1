package io.uffdemu.client;

import com.google.protobuf.Any;
import com.google.protobuf.ByteString;
import io.grpc.BindableService;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.*;
import io.uffdemu.api.v1.BackendInfo;
import io.uffdemu.api.v1.PageRegion;
import io.uffdemu.api.v1.ProcessInfo;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A tiny in-memory uffdemu server on the grpc in-process transport: processes with bump-allocated mappings,
 * uffds whose registered pages fault on Access (the Access blocks until a resolution populates or wakes the
 * page), a Handle stream that honours client flow control (sends only while isReady), failure injection per
 * method, and a record of what the client sent.
 */
final class FakeServer implements AutoCloseable {
  static final long PAGE = 4096;

  final Server server;
  final ManagedChannel channel;
  final Map<String, AtomicInteger> calls = new ConcurrentHashMap<>();
  final Map<String, ConcurrentLinkedDeque<Throwable>> failures = new ConcurrentHashMap<>();
  final Map<Integer, FakeUffd> uffds = new ConcurrentHashMap<>();
  final AtomicInteger nextPid = new AtomicInteger(100);
  final AtomicInteger nextFd = new AtomicInteger(3);
  volatile long nextAddr = 0x7f0000000000L;

  FakeServer() throws Exception {
    this(null);
  }

  FakeServer(BindableService uffdOverride) throws Exception {
    String name = InProcessServerBuilder.generateName();
    server = InProcessServerBuilder.forName(name)
        .addService(new Processes()).addService(new Memory()).addService(new Systems())
        .addService(uffdOverride != null ? uffdOverride : new Uffds())
        .build().start();
    channel = InProcessChannelBuilder.forName(name).build();
  }

  UffdemuClient client() {
    return client(ClientConfig.DEFAULT.withDeadline(Duration.ofSeconds(10)).withRetryBackoff(Duration.ofMillis(1)));
  }

  UffdemuClient client(ClientConfig config) {
    return UffdemuClient.create(channel, config);
  }

  int calls(String method) {
    return calls.computeIfAbsent(method, k -> new AtomicInteger()).get();
  }

  void failNext(String method, Throwable t) {
    failures.computeIfAbsent(method, k -> new ConcurrentLinkedDeque<>()).add(t);
  }

  static StatusRuntimeException errno(Status.Code code, int errno, String name, String call, long bytesDone) {
    return errno(code, errno, name, call, bytesDone, "");
  }

  static StatusRuntimeException errno(Status.Code code, int errno, String name, String call, long bytesDone,
      String reason) {
    return StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder().setCode(code.value())
        .setMessage("message text is not an API: " + name)
        .addDetails(Any.pack(ErrnoInfo.newBuilder().setErrno(errno).setName(name).setCall(call)
            .setBytesDone(bytesDone).setReason(reason).build()))
        .build());
  }

  /** Counts the call; fails it when a failure is queued for {@code method}. */
  private boolean injected(String method, StreamObserver<?> o) {
    calls.computeIfAbsent(method, k -> new AtomicInteger()).incrementAndGet();
    var q = failures.get(method);
    Throwable t = q == null ? null : q.poll();
    if (t != null) {
      o.onError(t);
      return true;
    }
    return false;
  }

  private static <T> void reply(StreamObserver<T> o, T v) {
    o.onNext(v);
    o.onCompleted();
  }

  FakeUffd uffd(int fd) {
    return uffds.get(fd);
  }

  FakeUffd uffdFor(int pid, long addr) {
    for (FakeUffd u : uffds.values()) {
      if (u.pid == pid && u.registered(addr)) {
        return u;
      }
    }
    return null;
  }

  /**
   * Breaks the Handle stream of uffd {@code fd} as a dead connection would, then does what the real server does
   * (HandleSession.stop on an abnormal end): wakes every fault the stream held, whose threads re-fault and
   * queue fresh messages for the next stream.
   */
  void cutStream(int fd, Status status) {
    cutStream(uffds.get(fd), status);
  }

  void cutStream(FakeUffd u, Status status) {
    synchronized (u) {
      ServerCallStreamObserver<HandleResponse> h = u.handler;
      u.handler = null;
      u.cut.add(h);
      u.log.add("CUT");
      if (h != null) {
        try {
          h.onError(status.asRuntimeException());
        } catch (RuntimeException ignored) {
          // already closed
        }
      }
      u.wakeAllLocked();
    }
  }

  /** The server closed the uffd (grace period over): a re-attach fails with EBADF. */
  FakeUffd forget(int fd) {
    return uffds.remove(fd);
  }

  @Override
  public void close() throws Exception {
    channel.shutdownNow();
    server.shutdownNow();
    server.awaitTermination(5, TimeUnit.SECONDS);
  }

  // ------------------------------------------------------------------ the fake uffd

  static final class FakeUffd {
    final int pid;
    final int fd;
    final List<long[]> ranges = new ArrayList<>();
    final Map<Long, byte[]> pages = new HashMap<>();
    final Map<Long, List<CompletableFuture<Void>>> waiters = new HashMap<>();
    final ArrayDeque<UffdMsg> queue = new ArrayDeque<>();
    final Map<Long, Integer> sentPerPage = new HashMap<>();
    final List<String> log = new CopyOnWriteArrayList<>();
    long seq;
    ServerCallStreamObserver<HandleResponse> handler;
    /** HandleAttach.max_batch of the attached stream (1: one message per HandleResponse). */
    int maxBatch = 1;
    /** Largest batch sent so far (messages in one HandleResponse) and resolution batches received. */
    int largestBatch;
    int requestBatches;
    /** Most resolutions received in one HandleRequest.batch. */
    int largestRequestBatch;
    /** Resolutions received on the stream outside a batch. */
    int singleRequests;
    /** Largest HandleRequest received on the stream, serialized bytes. */
    int largestRequestBytes;
    final java.util.Set<Object> cut = new java.util.HashSet<>();
    boolean halfClosedByClient;
    int sentFaults;
    int completedFaults;
    int maxOutstanding;
    long armedRemoveStart = -1;
    long armedRemoveEnd;
    boolean removeUnsent;
    /**
     * The next this many answers on the stream are never sent (a server that stalls): a single resolution's result,
     * or a whole batch's results; the resolutions are applied.
     */
    int withheldAnswers;
    /**
     * With an attach that asked for results with messages (HandleAttach.results_with_msgs): a batch's results are
     * held and sent in the next message batch (UffdMsgBatch.results), or on their own 200 ms later if none comes.
     */
    boolean carryResults;
    /** The last attach asked for results with messages. */
    boolean askedResultsWithMsgs;
    List<IoctlResult> heldResults = new ArrayList<>();
    /** Results sent in message batches, and on their own. */
    int carriedResults;
    int separateResults;

    FakeUffd(int pid, int fd) {
      this.pid = pid;
      this.fd = fd;
    }

    synchronized boolean registered(long addr) {
      for (long[] r : ranges) {
        if (addr >= r[0] && addr < r[1]) {
          return true;
        }
      }
      return false;
    }

    synchronized void enqueueFault(long addr, boolean write) {
      queue.add(UffdMsg.newBuilder().setEvent(0x12).setSeq(++seq).setPagefault(
          Pagefault.newBuilder().setAddress(addr & -PAGE).setFlags(write ? 1 : 0)).build());
    }

    synchronized void enqueueRemove(long start, long end) {
      queue.add(UffdMsg.newBuilder().setEvent(0x15).setSeq(++seq).setRemove(
          RangeEvent.newBuilder().setStart(start).setEnd(end)).build());
    }

    /** After the next fill, which fails with EAGAIN, a REMOVE for [start, end) is queued (and fills fail until read). */
    synchronized void armRemove(long start, long end) {
      armedRemoveStart = start;
      armedRemoveEnd = end;
    }

    /** Sends the held results on their own, if any. Under this uffd's monitor. */
    void sendHeldLocked(ServerCallStreamObserver<HandleResponse> so) {
      if (!heldResults.isEmpty()) {
        separateResults += heldResults.size();
        so.onNext(HandleResponse.newBuilder().setResults(IoctlResultBatch.newBuilder().addAllResults(heldResults))
            .build());
        heldResults.clear();
      }
    }

    synchronized int sentFaults() {
      return sentFaults;
    }

    synchronized int outstanding() {
      return sentFaults - completedFaults;
    }

    synchronized boolean populated(long page) {
      return pages.containsKey(page);
    }

    /** Sends queued messages while the client has asked for more (manual flow control). */
    void drain() {
      synchronized (this) {
        while (handler != null && !halfClosedByClient && handler.isReady() && !queue.isEmpty()) {
          List<UffdMsg> batch = new ArrayList<>();
          while (batch.size() < maxBatch && !queue.isEmpty()) {
            UffdMsg m = queue.poll();
            if (m.hasPagefault()) {
              sentFaults++;
              sentPerPage.merge(m.getPagefault().getAddress(), 1, Integer::sum);
              maxOutstanding = Math.max(maxOutstanding, sentFaults - completedFaults);
            }
            if (m.hasRemove()) {
              removeUnsent = false;
            }
            batch.add(m);
          }
          largestBatch = Math.max(largestBatch, batch.size());
          UffdMsgBatch.Builder msgs = UffdMsgBatch.newBuilder().addAllMsgs(batch);
          if (maxBatch > 1 && !heldResults.isEmpty()) {
            msgs.addAllResults(heldResults);
            carriedResults += heldResults.size();
            heldResults.clear();
          }
          handler.onNext(maxBatch == 1 ? HandleResponse.newBuilder().setMsg(batch.getFirst()).build()
              : HandleResponse.newBuilder().setMsgs(msgs).build());
        }
      }
    }

    /** Blocks like a faulting thread until the page is populated. */
    byte[] fault(long addr, boolean write, long timeoutNanos) throws Exception {
      long page = addr & -PAGE;
      long deadline = System.nanoTime() + timeoutNanos;
      while (true) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        synchronized (this) {
          byte[] d = pages.get(page);
          if (d != null) {
            return d;
          }
          waiters.computeIfAbsent(page, k -> new ArrayList<>()).add(f);
          enqueueFault(addr, write);
        }
        drain();
        f.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
      }
    }

    private void completeLocked(long page) {
      Integer n = sentPerPage.remove(page);
      if (n != null) {
        completedFaults += n;
      }
      List<CompletableFuture<Void>> w = waiters.remove(page);
      if (w != null) {
        w.forEach(f -> f.complete(null));
      }
    }

    /** UFFDIO_COPY/ZEROPAGE/CONTINUE semantics: EAGAIN while an event is pending, EEXIST when populated. */
    synchronized IoctlResult fill(String call, long start, long len, byte[] data) {
      log.add(call + " 0x" + Long.toHexString(start));
      if (armedRemoveStart >= 0 || removeUnsent) {
        if (armedRemoveStart >= 0) {
          enqueueRemove(armedRemoveStart, armedRemoveEnd);
          armedRemoveStart = -1;
          removeUnsent = true;
        }
        log.add("EAGAIN");
        return IoctlResult.newBuilder().setBytes(0).setError(ErrnoInfo.newBuilder().setErrno(11).setName("EAGAIN")
            .setCall(call)).build();
      }
      if (pages.containsKey(start & -PAGE)) {
        log.add("EEXIST");
        return IoctlResult.newBuilder().setError(ErrnoInfo.newBuilder().setErrno(17).setName("EEXIST")
            .setCall(call)).build();
      }
      for (long p = start; p < start + len; p += PAGE) {
        byte[] content = new byte[(int) PAGE];
        if (data != null) {
          System.arraycopy(data, (int) (p - start), content, 0, (int) Math.min(PAGE, data.length - (p - start)));
        }
        pages.put(p, content);
        completeLocked(p);
      }
      return IoctlResult.newBuilder().setBytes(len).build();
    }

    void wakeAllLocked() {
      for (Long p : new ArrayList<>(waiters.keySet())) {
        completeLocked(p);
      }
    }

    synchronized IoctlResult wake(long start, long len) {
      log.add("WAKE 0x" + Long.toHexString(start));
      for (long p = start & -PAGE; p < start + len; p += PAGE) {
        completeLocked(p);
      }
      return IoctlResult.newBuilder().build();
    }
  }

  // ------------------------------------------------------------------ services

  final class Processes extends ProcessServiceGrpc.ProcessServiceImplBase {
    @Override
    public void create(CreateProcessRequest r, StreamObserver<ProcessInfo> o) {
      if (!injected("Create", o)) {
        reply(o, ProcessInfo.newBuilder().setPid(nextPid.getAndIncrement()).setName(r.getName())
            .setCredentials(r.getCredentials()).build());
      }
    }

    @Override
    public void get(GetProcessRequest r, StreamObserver<ProcessInfo> o) {
      if (!injected("Get", o)) {
        reply(o, ProcessInfo.newBuilder().setPid(r.getPid()).setName("p").addFds(3).build());
      }
    }

    @Override
    public void fork(ForkRequest r, StreamObserver<ProcessInfo> o) {
      if (!injected("Fork", o)) {
        reply(o, ProcessInfo.newBuilder().setPid(nextPid.getAndIncrement()).setParentPid(r.getPid()).build());
      }
    }

    @Override
    public void exit(ExitRequest r, StreamObserver<ExitResponse> o) {
      if (!injected("Exit", o)) {
        reply(o, ExitResponse.getDefaultInstance());
      }
    }

    @Override
    public void maps(MapsRequest r, StreamObserver<MapsResponse> o) {
      if (!injected("Maps", o)) {
        reply(o, MapsResponse.newBuilder().addVmas(io.uffdemu.api.v1.Vma.newBuilder().setStart(0x1000)
            .setEnd(0x3000).setPerms("rw-s").setPath("/memfd:x (deleted)")
            .setMemoryType(io.uffdemu.api.v1.MemoryType.MEMORY_TYPE_SHMEM).setUffdMissing(true)
            .setPageSize(PAGE)).build());
      }
    }

    @Override
    public void readPagemap(ReadPagemapRequest r, StreamObserver<ReadPagemapResponse> o) {
      if (!injected("ReadPagemap", o)) {
        var b = ReadPagemapResponse.newBuilder();
        b.addEntries((1L << 63) | (1L << 57) | (1L << 56) | 0x1234L); // present, uffd-wp, exclusive, pfn
        b.addEntries((1L << 62) | (1L << 55)); // swapped, soft-dirty
        reply(o, b.build());
      }
    }

    @Override
    public void pagemapScan(PagemapScanRequest r, StreamObserver<PagemapScanResponse> o) {
      if (!injected("PagemapScan", o)) {
        reply(o, PagemapScanResponse.newBuilder().addRegions(PageRegion.newBuilder().setStart(r.getRange().getStart())
            .setEnd(r.getRange().getStart() + PAGE).setCategories(0x9)).setWalkEnd(r.getRange().getStart()
            + r.getRange().getLen()).build());
      }
    }

    @Override
    public void access(AccessRequest r, StreamObserver<AccessResponse> o) {
      if (injected("Access", o)) {
        return;
      }
      FakeUffd u = uffdFor(r.getPid(), r.getAddr());
      byte[] page = new byte[(int) PAGE];
      if (u != null) {
        Deadline d = Context.current().getDeadline();
        long timeout = d == null ? TimeUnit.SECONDS.toNanos(20) : d.timeRemaining(TimeUnit.NANOSECONDS);
        try {
          page = u.fault(r.getAddr(), r.getWrite(), timeout);
        } catch (Exception e) {
          o.onError(Status.DEADLINE_EXCEEDED.withDescription("fault not resolved").asRuntimeException());
          return;
        }
      }
      int off = (int) (r.getAddr() & (PAGE - 1));
      int len = r.getWrite() ? 0 : (int) Math.min(r.getLen(), PAGE - off);
      reply(o, AccessResponse.newBuilder().setData(ByteString.copyFrom(page, off, len)).build());
    }
  }

  final class Memory extends MemoryServiceGrpc.MemoryServiceImplBase {
    @Override
    public void mmap(MmapRequest r, StreamObserver<MmapResponse> o) {
      if (!injected("Mmap", o)) {
        long a;
        synchronized (FakeServer.this) {
          a = nextAddr;
          nextAddr += (r.getLen() + PAGE - 1) & -PAGE;
        }
        reply(o, MmapResponse.newBuilder().setAddr(a).build());
      }
    }

    @Override
    public void munmap(MunmapRequest r, StreamObserver<Empty> o) {
      if (!injected("Munmap", o)) {
        reply(o, Empty.getDefaultInstance());
      }
    }

    @Override
    public void madvise(MadviseRequest r, StreamObserver<Empty> o) {
      if (!injected("Madvise", o)) {
        reply(o, Empty.getDefaultInstance());
      }
    }

    @Override
    public void mprotect(MprotectRequest r, StreamObserver<Empty> o) {
      if (!injected("Mprotect", o)) {
        reply(o, Empty.getDefaultInstance());
      }
    }

    @Override
    public void grantMemfd(io.uffdemu.api.v1.GrantMemfdRequest r,
        StreamObserver<io.uffdemu.api.v1.GrantMemfdResponse> o) {
      if (!injected("GrantMemfd", o)) {
        reply(o, io.uffdemu.api.v1.GrantMemfdResponse.newBuilder()
            .setGrantToken("mg_" + r.getPid() + "_" + r.getFd() + "_" + r.getGranteeTenant()).build());
      }
    }

    @Override
    public void acceptMemfdGrant(io.uffdemu.api.v1.AcceptMemfdGrantRequest r, StreamObserver<FdResponse> o) {
      if (!injected("AcceptMemfdGrant", o)) {
        reply(o, FdResponse.newBuilder().setFd(r.getGrantToken().length()).build());
      }
    }

    @Override
    public void revokeMemfdGrant(io.uffdemu.api.v1.RevokeMemfdGrantRequest r,
        StreamObserver<io.uffdemu.api.v1.RevokeMemfdGrantResponse> o) {
      if (!injected("RevokeMemfdGrant", o)) {
        reply(o, io.uffdemu.api.v1.RevokeMemfdGrantResponse.newBuilder().setClosedFds(2).build());
      }
    }

    @Override
    public void memfdCreate(MemfdCreateRequest r, StreamObserver<FdResponse> o) {
      if (!injected("MemfdCreate", o)) {
        reply(o, FdResponse.newBuilder().setFd(nextFd.getAndIncrement()).build());
      }
    }

    @Override
    public void pread(PreadRequest r, StreamObserver<PreadResponse> o) {
      if (!injected("Pread", o)) {
        reply(o, PreadResponse.newBuilder().setData(ByteString.copyFrom(new byte[(int) r.getLen()])).build());
      }
    }

    @Override
    public void pwrite(PwriteRequest r, StreamObserver<PwriteResponse> o) {
      if (!injected("Pwrite", o)) {
        reply(o, PwriteResponse.newBuilder().setWritten(r.getData().size()).build());
      }
    }

    @Override
    public void close(CloseRequest r, StreamObserver<Empty> o) {
      if (!injected("Close", o)) {
        reply(o, Empty.getDefaultInstance());
      }
    }
  }

  final class Systems extends SystemServiceGrpc.SystemServiceImplBase {
    @Override
    public void getBackend(GetBackendRequest r, StreamObserver<BackendInfo> o) {
      if (!injected("GetBackend", o)) {
        reply(o, BackendInfo.newBuilder().setName("emulated").setAvailable(true).setFeatures(0x1ffff).build());
      }
    }

    @Override
    public void meminfo(MeminfoRequest r, StreamObserver<MeminfoResponse> o) {
      if (!injected("Meminfo", o)) {
        reply(o, MeminfoResponse.newBuilder().putFields("MemTotal", 1L << 30).build());
      }
    }
  }

  final class Uffds extends UserfaultfdServiceGrpc.UserfaultfdServiceImplBase {
    @Override
    public void open(OpenRequest r, StreamObserver<OpenResponse> o) {
      if (!injected("Open", o)) {
        int fd = nextFd.getAndIncrement();
        uffds.put(fd, new FakeUffd(r.getPid(), fd));
        reply(o, OpenResponse.newBuilder().setFd(fd).setFeatures(r.getFeatures()).setIoctls(0x8000000000000003L)
            .build());
      }
    }

    @Override
    public void register(RegisterRequest r, StreamObserver<RegisterResponse> o) {
      if (!injected("Register", o)) {
        FakeUffd u = uffds.get(r.getFd());
        synchronized (u) {
          u.ranges.add(new long[] {r.getRange().getStart(), r.getRange().getStart() + r.getRange().getLen()});
        }
        reply(o, RegisterResponse.newBuilder().setIoctls(0x17c).build());
      }
    }

    @Override
    public void unregister(RangeRequest r, StreamObserver<IoctlResponse> o) {
      if (!injected("Unregister", o)) {
        reply(o, IoctlResponse.getDefaultInstance());
      }
    }

    private void unary(String method, IoctlResult res, StreamObserver<IoctlResponse> o) {
      // a fill may have queued an event (armed REMOVE): push it like the stream path does
      uffds.values().forEach(FakeUffd::drain);
      if (res.hasError()) {
        o.onError(errno(Status.Code.INVALID_ARGUMENT, res.getError().getErrno(), res.getError().getName(), method,
            0));
      } else {
        reply(o, IoctlResponse.newBuilder().setBytes(res.getBytes()).build());
      }
    }

    @Override
    public void copy(CopyRequest r, StreamObserver<IoctlResponse> o) {
      if (!injected("Copy", o)) {
        unary("UFFDIO_COPY", uffds.get(r.getFd()).fill("UFFDIO_COPY", r.getDst(), r.getData().size(),
            r.getData().toByteArray()), o);
      }
    }

    @Override
    public void zeropage(ZeropageRequest r, StreamObserver<IoctlResponse> o) {
      if (!injected("Zeropage", o)) {
        unary("UFFDIO_ZEROPAGE", uffds.get(r.getFd()).fill("UFFDIO_ZEROPAGE", r.getRange().getStart(),
            r.getRange().getLen(), null), o);
      }
    }

    @Override
    public void continue_(ContinueRequest r, StreamObserver<IoctlResponse> o) {
      if (!injected("Continue", o)) {
        unary("UFFDIO_CONTINUE", uffds.get(r.getFd()).fill("UFFDIO_CONTINUE", r.getRange().getStart(),
            r.getRange().getLen(), null), o);
      }
    }

    @Override
    public void writeProtect(WriteProtectRequest r, StreamObserver<IoctlResponse> o) {
      if (!injected("WriteProtect", o)) {
        FakeUffd u = uffds.get(r.getFd());
        unary("UFFDIO_WRITEPROTECT", u == null ? IoctlResult.getDefaultInstance()
            : u.wake(r.getRange().getStart(), r.getRange().getLen()), o);
      }
    }

    @Override
    public void wake(RangeRequest r, StreamObserver<IoctlResponse> o) {
      if (!injected("Wake", o)) {
        FakeUffd u = uffds.get(r.getFd());
        unary("UFFDIO_WAKE", u == null ? IoctlResult.getDefaultInstance()
            : u.wake(r.getRange().getStart(), r.getRange().getLen()), o);
      }
    }

    @Override
    public void read(ReadRequest r, StreamObserver<ReadResponse> o) {
      if (!injected("Read", o)) {
        FakeUffd u = uffds.get(r.getFd());
        var b = ReadResponse.newBuilder();
        synchronized (u) {
          while (!u.queue.isEmpty() && b.getMessagesCount() < r.getMaxMessages()) {
            b.addMessages(u.queue.poll());
          }
        }
        reply(o, b.build());
      }
    }

    @Override
    public StreamObserver<HandleRequest> handle(StreamObserver<HandleResponse> out) {
      calls.computeIfAbsent("Handle", k -> new AtomicInteger()).incrementAndGet();
      ServerCallStreamObserver<HandleResponse> so = (ServerCallStreamObserver<HandleResponse>) out;
      FakeUffd[] attached = new FakeUffd[1];
      so.setOnReadyHandler(() -> {
        if (attached[0] != null) {
          attached[0].drain();
        }
      });
      so.setOnCancelHandler(() -> detach(attached[0], so));
      return new StreamObserver<>() {
        @Override
        public void onNext(HandleRequest r) {
          FakeUffd u = attached[0];
          switch (r.getKindCase()) {
            case ATTACH -> {
              FakeUffd target = uffds.get(r.getAttach().getFd());
              if (target == null) {
                so.onError(errno(Status.Code.NOT_FOUND, 9, "EBADF", "handle", 0));
                return;
              }
              synchronized (target) {
                if (target.handler != null) {
                  so.onError(Status.FAILED_PRECONDITION.withDescription("uffd already has a handler")
                      .asRuntimeException());
                  return;
                }
                target.handler = so;
                target.halfClosedByClient = false;
                target.maxBatch = Math.max(1, r.getAttach().getMaxBatch());
                target.askedResultsWithMsgs = r.getAttach().getResultsWithMsgs();
                target.heldResults.clear(); // an earlier stream's
              }
              attached[0] = target;
              target.drain();
            }
            case BATCH -> {
              List<IoctlResult> results = new ArrayList<>();
              for (HandleRequest item : r.getBatch().getRequestsList()) {
                results.add(resolve(u, item).toBuilder().setRequestId(item.getRequestId()).build());
              }
              synchronized (u) {
                u.requestBatches++;
                u.largestRequestBatch = Math.max(u.largestRequestBatch, r.getBatch().getRequestsCount());
                u.largestRequestBytes = Math.max(u.largestRequestBytes, r.getSerializedSize());
                if (u.cut.contains(so)) {
                  return;
                }
                if (u.withheldAnswers > 0) {
                  u.withheldAnswers--;
                  u.log.add("WITHHELD");
                  return;
                }
                if (u.carryResults && u.askedResultsWithMsgs && u.maxBatch > 1) {
                  u.heldResults.addAll(results);
                  Thread.ofVirtual().start(() -> {
                    try {
                      Thread.sleep(200);
                    } catch (InterruptedException e) {
                      return;
                    }
                    synchronized (u) {
                      if (u.handler == so && !u.cut.contains(so)) {
                        u.sendHeldLocked(so);
                      }
                    }
                  });
                } else {
                  so.onNext(HandleResponse.newBuilder().setResults(IoctlResultBatch.newBuilder()
                      .addAllResults(results)).build());
                }
              }
              u.drain();
            }
            default -> {
              if (u != null) {
                synchronized (u) {
                  u.singleRequests++;
                }
              }
              answer(u, so, r, resolve(u, r));
            }
          }
        }

        @Override
        public void onError(Throwable t) {
          detach(attached[0], so);
        }

        @Override
        public void onCompleted() {
          FakeUffd u = attached[0];
          if (u != null) {
            synchronized (u) {
              u.halfClosedByClient = true;
              u.log.add("HALF_CLOSE");
              if (u.handler == so) {
                u.sendHeldLocked(so); // as the server: what it still holds goes out before the end
              }
            }
          }
          detach(u, so);
          so.onCompleted();
        }
      };
    }

    private IoctlResult resolve(FakeUffd u, HandleRequest r) {
      return switch (r.getKindCase()) {
        case COPY -> u.fill("UFFDIO_COPY", r.getCopy().getDst(), r.getCopy().getData().size(),
            r.getCopy().getData().toByteArray());
        case ZEROPAGE -> u.fill("UFFDIO_ZEROPAGE", r.getZeropage().getRange().getStart(),
            r.getZeropage().getRange().getLen(), null);
        case CONTINUE -> u.fill("UFFDIO_CONTINUE", r.getContinue().getRange().getStart(),
            r.getContinue().getRange().getLen(), null);
        case WAKE -> u.wake(r.getWake().getRange().getStart(), r.getWake().getRange().getLen());
        case WRITE_PROTECT -> u.wake(r.getWriteProtect().getRange().getStart(),
            r.getWriteProtect().getRange().getLen());
        default -> IoctlResult.newBuilder().setError(ErrnoInfo.newBuilder().setErrno(22).setName("EINVAL")).build();
      };
    }

    private void answer(FakeUffd u, ServerCallStreamObserver<HandleResponse> so, HandleRequest r, IoctlResult res) {
      synchronized (u) {
        if (u.cut.contains(so)) {
          return; // the stream was cut: the result is lost with it
        }
        if (u.withheldAnswers > 0) {
          u.withheldAnswers--;
          u.log.add("WITHHELD");
          return;
        }
        if (u.handler == so) {
          u.sendHeldLocked(so); // as the server: a single result goes after the batch results held before it
        }
        so.onNext(HandleResponse.newBuilder().setResult(res.toBuilder().setRequestId(r.getRequestId())).build());
      }
      u.drain();
    }

    private void detach(FakeUffd u, ServerCallStreamObserver<HandleResponse> so) {
      if (u != null) {
        synchronized (u) {
          if (u.handler == so) {
            u.handler = null;
          }
        }
      }
    }
  }

  static List<String> snapshot(List<String> log) {
    return Collections.unmodifiableList(new ArrayList<>(log));
  }
}
