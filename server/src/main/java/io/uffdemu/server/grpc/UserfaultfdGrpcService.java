package io.uffdemu.server.grpc;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.ApiRequest;
import io.uffdemu.api.v1.ContinueRequest;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResponse;
import io.uffdemu.api.v1.MoveRequest;
import io.uffdemu.api.v1.OpenRequest;
import io.uffdemu.api.v1.OpenResponse;
import io.uffdemu.api.v1.PoisonRequest;
import io.uffdemu.api.v1.RangeRequest;
import io.uffdemu.api.v1.ReadRequest;
import io.uffdemu.api.v1.ReadResponse;
import io.uffdemu.api.v1.RegisterRequest;
import io.uffdemu.api.v1.RegisterResponse;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import io.uffdemu.api.v1.WriteProtectRequest;
import io.uffdemu.api.v1.ZeropageRequest;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.config.UffdemuProperties;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.Userfaultfd;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Adapter: uffdemu.v1.UserfaultfdService → {@link MemoryBackend}, including the Handle stream. Not a bean itself:
 * {@link UserfaultfdGrpcBinding} binds it (its generated {@code bindService} is final, and the binding swaps the
 * request parsing of the methods that carry pages).
 */
public class UserfaultfdGrpcService extends UserfaultfdServiceGrpc.UserfaultfdServiceImplBase {
    private final MemoryBackend backend;
    private final UffdemuProperties.Limits limits;
    /** (pid, fd) of uffds that have a Handle stream attached: at most one each. */
    final ConcurrentHashMap<Long, HandleSession> sessions = new ConcurrentHashMap<>();

    final TenantGuard guard;
    private final java.time.Duration grace;
    private final java.util.concurrent.ScheduledExecutorService reaper = java.util.concurrent.Executors
            .newSingleThreadScheduledExecutor(Thread.ofPlatform().daemon().name("uffdemu-handler-reaper").factory());
    /** Copy regions of ended Handle streams, kept for their clients to ask back. */
    final CopyRegionPool regions;
    /** uffds whose Handle stream dropped: closed when the grace period ends without a reconnect. */
    final ConcurrentHashMap<Long, java.util.concurrent.ScheduledFuture<?>> orphans = new ConcurrentHashMap<>();

    public UserfaultfdGrpcService(MemoryBackend backend, UffdemuProperties props, TenantGuard guard) {
        this.backend = backend;
        this.limits = props.limits();
        this.guard = guard;
        this.grace = props.handler().gracePeriod();
        this.regions = new CopyRegionPool(limits.copyRegionIdle(), reaper);
    }

    /** A Handle stream died (cancelled or failed): keep the uffd for the grace period, then close(2) it. */
    void orphaned(long key, int pid, int fd) {
        if (grace.isZero() || grace.isNegative()) {
            return;
        }
        var f = reaper.schedule(() -> {
            if (orphans.remove(key) != null && !sessions.containsKey(key)) {
                try {
                    backend.close(pid, fd);
                } catch (RuntimeException e) {
                    // the process or fd is already gone
                }
            }
        }, grace.toNanos(), TimeUnit.NANOSECONDS);
        var old = orphans.put(key, f);
        if (old != null) {
            old.cancel(false);
        }
    }

    /** A Handle stream (re)attached: a pending close is called off. */
    void adopted(long key) {
        var f = orphans.remove(key);
        if (f != null) {
            f.cancel(false);
        }
    }

    void shutdown() {
        reaper.shutdownNow();
        regions.close();
    }

    private static IoctlResponse bytes(long n) {
        return IoctlResponse.newBuilder().setBytes(n).build();
    }

    @Override
    public void open(OpenRequest r, StreamObserver<OpenResponse> out) {
        Calls.unary(out, () -> {
            int fd = backend.userfaultfd(r.getPid(), r.getFlags(), r.getDevUserfaultfd());
            if (r.getDeferApi()) {
                return OpenResponse.newBuilder().setFd(fd).build();
            }
            Userfaultfd.ApiResult api;
            try {
                api = backend.uffdApi(r.getPid(), fd, Linux.UFFD_API, r.getFeatures());
            } catch (RuntimeException e) {
                backend.close(r.getPid(), fd);
                throw e;
            }
            return OpenResponse.newBuilder().setFd(fd).setFeatures(api.features()).setIoctls(api.ioctls()).build();
        });
    }

    @Override
    public void api(ApiRequest r, StreamObserver<OpenResponse> out) {
        Calls.unary(out, () -> {
            Userfaultfd.ApiResult api = backend.uffdApi(r.getPid(), r.getFd(), r.getApi(), r.getFeatures());
            return OpenResponse.newBuilder().setFd(r.getFd()).setFeatures(api.features()).setIoctls(api.ioctls())
                    .build();
        });
    }

    @Override
    public void register(RegisterRequest r, StreamObserver<RegisterResponse> out) {
        Calls.unary(out, () -> RegisterResponse.newBuilder().setIoctls(backend.uffdRegister(r.getPid(), r.getFd(),
                r.getRange().getStart(), r.getRange().getLen(), r.getMode())).build());
    }

    @Override
    public void unregister(RangeRequest r, StreamObserver<IoctlResponse> out) {
        Calls.unary(out, () -> {
            backend.uffdUnregister(r.getPid(), r.getFd(), r.getRange().getStart(), r.getRange().getLen());
            return bytes(0);
        });
    }

    @Override
    public void copy(CopyRequest r, StreamObserver<IoctlResponse> out) {
        Calls.unary(out, () -> bytes(doCopy(r)));
    }

    /**
     * One COPY, as a batch of one ({@link MemoryBackend#uffdCopyBatch} runs each op exactly as uffdCopy would), so
     * that the payload goes to the backend as a read-only view of the request's bytes, not as a copy of them.
     */
    long doCopy(CopyRequest r) {
        return doCopy(r, null);
    }

    /** {@link #doCopy(CopyRequest)} on a Handle stream with its copy region (null: none; acquired by the caller). */
    long doCopy(CopyRequest r, CopyRegion region) {
        long[] done = {-1};
        LinuxException[] failed = new LinuxException[1];
        backend.uffdCopyBatch(List.of(copyOp(r, region)), new Userfaultfd.CopyOutcome() {
            @Override
            public void copied(int index, long bytes) {
                done[0] = bytes;
            }

            @Override
            public void failed(int index, LinuxException e) {
                failed[0] = e;
            }
        });
        if (failed[0] != null) {
            throw failed[0];
        }
        if (done[0] < 0) {
            throw new IllegalStateException("the backend reported no outcome for a COPY"); // as HandleSession.copyRun
        }
        return done[0];
    }

    /**
     * The backend's op for a COPY ({@link MemoryBackend#uffdCopyBatch}): the payload is not copied. Its source is
     * the request's data, or the Handle stream's copy region when the request names one ({@code region_len}):
     * EINVAL without a region (null; it must be acquired by the caller) or with data as well, EFAULT outside it
     * ({@link CopyRegion#source}).
     */
    Userfaultfd.CopyOp copyOp(CopyRequest r, CopyRegion region) {
        if (r.getRegionLen() != 0 || r.getRegionSrc() != 0) {
            if (r.getRegionLen() == 0) {
                throw new LinuxException(io.uffdemu.server.mm.Errno.EINVAL, "UFFDIO_COPY", 0,
                        "region_src without region_len");
            }
            if (region == null) {
                throw new LinuxException(io.uffdemu.server.mm.Errno.EINVAL, "UFFDIO_COPY", 0,
                        "region_len without a copy region (only on a Handle stream that was given one)");
            }
            if (!r.getData().isEmpty()) {
                throw new LinuxException(io.uffdemu.server.mm.Errno.EINVAL, "UFFDIO_COPY", 0,
                        "both data and region_len");
            }
            checkCopySize(r.getRegionLen());
            return new Userfaultfd.CopyOp(r.getPid(), r.getFd(), r.getDst(),
                    region.source(r.getRegionSrc(), r.getRegionLen()), r.getMode());
        }
        checkCopySize(r.getData().size());
        return new Userfaultfd.CopyOp(r.getPid(), r.getFd(), r.getDst(),
                r.getData().asReadOnlyByteBuffer(), r.getMode());
    }

    /** The copy region a Handle stream asked for ({@code HandleAttach.copy_region_bytes}): its size, 0 = none. */
    long copyRegionSize(long asked) {
        return CopyRegion.size(asked, limits.maxCopyRegionBytes().toBytes());
    }

    private void checkCopySize(long bytes) {
        if (bytes > limits.maxAccessBytes().toBytes()) {
            throw Errors.invalid("copy payload larger than " + limits.maxAccessBytes().toBytes());
        }
    }

    @Override
    public void zeropage(ZeropageRequest r, StreamObserver<IoctlResponse> out) {
        Calls.unary(out, () -> bytes(backend.uffdZeropage(r.getPid(), r.getFd(), r.getRange().getStart(),
                r.getRange().getLen(), r.getMode())));
    }

    @Override
    public void continue_(ContinueRequest r, StreamObserver<IoctlResponse> out) {
        Calls.unary(out, () -> bytes(backend.uffdContinue(r.getPid(), r.getFd(), r.getRange().getStart(),
                r.getRange().getLen(), r.getMode())));
    }

    @Override
    public void writeProtect(WriteProtectRequest r, StreamObserver<IoctlResponse> out) {
        Calls.unary(out, () -> {
            backend.uffdWriteprotect(r.getPid(), r.getFd(), r.getRange().getStart(), r.getRange().getLen(),
                    r.getMode());
            return bytes(r.getRange().getLen());
        });
    }

    @Override
    public void wake(RangeRequest r, StreamObserver<IoctlResponse> out) {
        Calls.unary(out, () -> {
            backend.uffdWake(r.getPid(), r.getFd(), r.getRange().getStart(), r.getRange().getLen());
            return bytes(0);
        });
    }

    @Override
    public void describe(io.uffdemu.api.v1.DescribeRequest r, StreamObserver<io.uffdemu.api.v1.UffdInfo> out) {
        Calls.unary(out, () -> info(backend.uffdDescribe(r.getPid(), r.getFd())));
    }

    @Override
    public void list(io.uffdemu.api.v1.ListUffdsRequest r, StreamObserver<io.uffdemu.api.v1.ListUffdsResponse> out) {
        Calls.unary(out, () -> {
            var b = io.uffdemu.api.v1.ListUffdsResponse.newBuilder();
            for (var d : backend.uffdList(r.getPid())) {
                b.addUffds(info(d));
            }
            return b.build();
        });
    }

    private io.uffdemu.api.v1.UffdInfo info(io.uffdemu.server.mm.UffdFdinfo.Description d) {
        var b = io.uffdemu.api.v1.UffdInfo.newBuilder().setPid(d.pid()).setFd(d.fd()).setFlags(d.flags())
                .setApiDone(d.apiDone()).setFeatures(d.features()).setPendingFaults(d.pendingFaults())
                .setTotalFaults(d.totalFaults()).setPendingEvents(d.pendingEvents())
                .setHandlerAttached(sessions.containsKey(key(d.pid(), d.fd())));
        for (var range : d.ranges()) {
            b.addRanges(io.uffdemu.api.v1.RegisteredRange.newBuilder().setRange(io.uffdemu.api.v1.AddrRange
                    .newBuilder().setStart(range.start()).setLen(range.end() - range.start())).setMode(range.mode()));
        }
        return b.build();
    }

    @Override
    public void poison(PoisonRequest r, StreamObserver<IoctlResponse> out) {
        Calls.unary(out, () -> bytes(backend.uffdPoison(r.getPid(), r.getFd(), r.getRange().getStart(),
                r.getRange().getLen(), r.getMode())));
    }

    @Override
    public void move(MoveRequest r, StreamObserver<IoctlResponse> out) {
        Calls.unary(out, () -> bytes(backend.uffdMove(r.getPid(), r.getFd(), r.getDst(), r.getSrc(), r.getLen(),
                r.getMode())));
    }

    @Override
    public void read(ReadRequest r, StreamObserver<ReadResponse> out) {
        Calls.unary(out, () -> {
            int max = r.getMaxMessages() == 0 ? 64 : r.getMaxMessages();
            if (max < 0 || max > limits.maxReadMessages()) {
                throw Errors.invalid("max_messages must be at most " + limits.maxReadMessages());
            }
            long deadline = r.getWaitMillis() == 0 ? 0
                    : Math.min(Calls.deadlineNanos(Long.MAX_VALUE),
                            System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(r.getWaitMillis()));
            ReadResponse.Builder b = ReadResponse.newBuilder();
            for (var m : backend.uffdRead(r.getPid(), r.getFd(), max, deadline)) {
                b.addMessages(ProtoMapper.msg(m));
            }
            return b.build();
        });
    }

    @Override
    public StreamObserver<HandleRequest> handle(StreamObserver<HandleResponse> out) {
        String tenant = Tenants.current();
        guard.streamOpened(tenant);
        return new HandleSession(this, backend, (ServerCallStreamObserver<HandleResponse>) out, tenant);
    }

    /**
     * Maps a resolution request of the Handle stream to the backend, a COPY's source possibly in the stream's copy
     * region (null: none; acquired by the caller); returns bytes done.
     */
    long resolve(HandleRequest r, CopyRegion region) {
        return switch (r.getKindCase()) {
            case COPY -> doCopy(r.getCopy(), region);
            case ZEROPAGE -> {
                ZeropageRequest z = r.getZeropage();
                yield backend.uffdZeropage(z.getPid(), z.getFd(), z.getRange().getStart(), z.getRange().getLen(),
                        z.getMode());
            }
            case CONTINUE -> {
                ContinueRequest c = r.getContinue();
                yield backend.uffdContinue(c.getPid(), c.getFd(), c.getRange().getStart(), c.getRange().getLen(),
                        c.getMode());
            }
            case WRITE_PROTECT -> {
                WriteProtectRequest w = r.getWriteProtect();
                backend.uffdWriteprotect(w.getPid(), w.getFd(), w.getRange().getStart(), w.getRange().getLen(),
                        w.getMode());
                yield w.getRange().getLen();
            }
            case WAKE -> {
                RangeRequest w = r.getWake();
                backend.uffdWake(w.getPid(), w.getFd(), w.getRange().getStart(), w.getRange().getLen());
                yield 0;
            }
            case POISON -> {
                PoisonRequest p = r.getPoison();
                yield backend.uffdPoison(p.getPid(), p.getFd(), p.getRange().getStart(), p.getRange().getLen(),
                        p.getMode());
            }
            case MOVE -> {
                MoveRequest m = r.getMove();
                yield backend.uffdMove(m.getPid(), m.getFd(), m.getDst(), m.getSrc(), m.getLen(), m.getMode());
            }
            case ATTACH -> throw Status.FAILED_PRECONDITION.withDescription("already attached").asRuntimeException();
            case KIND_NOT_SET -> throw Errors.invalid("empty HandleRequest");
            case BATCH -> throw Errors.invalid("a batch inside a batch");
        };
    }

    static long key(int pid, int fd) {
        return ((long) pid << 32) | (fd & 0xffffffffL);
    }

    int maxReadMessages() {
        return Math.min(256, limits.maxReadMessages());
    }
}
