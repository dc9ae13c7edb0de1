package io.uffdemu.server.grpc;

import com.google.protobuf.ByteString;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.AccessRequest;
import io.uffdemu.api.v1.AccessResponse;
import io.uffdemu.api.v1.StormRequest;
import io.uffdemu.api.v1.StormResponse;
import io.uffdemu.api.v1.CreateProcessRequest;
import io.uffdemu.api.v1.ExitRequest;
import io.uffdemu.api.v1.ExitResponse;
import io.uffdemu.api.v1.ForkRequest;
import io.uffdemu.api.v1.GetProcessRequest;
import io.uffdemu.api.v1.ListProcessesRequest;
import io.uffdemu.api.v1.ListProcessesResponse;
import io.uffdemu.api.v1.MapsRequest;
import io.uffdemu.api.v1.MapsResponse;
import io.uffdemu.api.v1.PageRegion;
import io.uffdemu.api.v1.PagemapScanRequest;
import io.uffdemu.api.v1.PagemapScanResponse;
import io.uffdemu.api.v1.ProcessInfo;
import io.uffdemu.api.v1.ProcessServiceGrpc;
import io.uffdemu.api.v1.ReadPagemapRequest;
import io.uffdemu.api.v1.ReadPagemapResponse;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.config.UffdemuProperties;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Pagemap;
import org.springframework.grpc.server.service.GrpcService;

/** Adapter: uffdemu.v1.ProcessService → {@link MemoryBackend}. */
@GrpcService
public class ProcessGrpcService extends ProcessServiceGrpc.ProcessServiceImplBase {
    private final MemoryBackend backend;
    private final UffdemuProperties.Limits limits;

    private final TenantGuard guard;
    private final MemfdGrants grants;

    public ProcessGrpcService(MemoryBackend backend, UffdemuProperties props, TenantGuard guard, MemfdGrants grants) {
        this.backend = backend;
        this.guard = guard;
        this.grants = grants;
        this.limits = props.limits();
    }

    @Override
    public void create(CreateProcessRequest req, StreamObserver<ProcessInfo> out) {
        Calls.unary(out, () -> {
            guard.beforeCreate("create");
            io.uffdemu.server.backend.ProcessInfo p;
            try {
                p = backend.createProcess(req.getName(), req.getCredentials().getUid(),
                        req.getCredentials().getCapSysPtrace(), Tenants.current());
            } catch (RuntimeException e) {
                guard.createFailed();
                throw e;
            }
            guard.created(p.pid());
            return ProtoMapper.process(p);
        });
    }

    @Override
    public void fork(ForkRequest req, StreamObserver<ProcessInfo> out) {
        Calls.unary(out, () -> {
            guard.beforeCreate("fork");
            io.uffdemu.server.backend.ProcessInfo child;
            try {
                child = backend.fork(req.getPid());
            } catch (RuntimeException e) {
                guard.createFailed();
                throw e;
            }
            guard.created(child.pid());
            return ProtoMapper.process(child);
        });
    }

    @Override
    public void exit(ExitRequest req, StreamObserver<ExitResponse> out) {
        Calls.unary(out, () -> {
            backend.exit(req.getPid());
            guard.exited(req.getPid());
            grants.processExited(req.getPid());
            return ExitResponse.getDefaultInstance();
        });
    }

    @Override
    public void list(ListProcessesRequest req, StreamObserver<ListProcessesResponse> out) {
        Calls.unary(out, () -> ListProcessesResponse.newBuilder()
                .addAllProcesses(backend.processes().stream().filter(p -> guard.owns(p.pid()))
                        .map(ProtoMapper::process).toList()).build());
    }

    @Override
    public void get(GetProcessRequest req, StreamObserver<ProcessInfo> out) {
        Calls.unary(out, () -> ProtoMapper.process(backend.process(req.getPid())));
    }

    @Override
    public void maps(MapsRequest req, StreamObserver<MapsResponse> out) {
        Calls.unary(out, () -> MapsResponse.newBuilder()
                .addAllVmas(backend.maps(req.getPid()).stream().map(ProtoMapper::vma).toList()).build());
    }

    @Override
    public void readPagemap(ReadPagemapRequest req, StreamObserver<ReadPagemapResponse> out) {
        Calls.unary(out, () -> {
            if (req.getPages() < 0 || req.getPages() > limits.maxPagemapPages()) {
                throw Errors.invalid("pages must be between 0 and " + limits.maxPagemapPages());
            }
            long[] entries = backend.readPagemap(req.getPid(), req.getStart(), (int) req.getPages());
            ReadPagemapResponse.Builder b = ReadPagemapResponse.newBuilder();
            for (long e : entries) {
                b.addEntries(e);
            }
            return b.build();
        });
    }

    @Override
    public void pagemapScan(PagemapScanRequest req, StreamObserver<PagemapScanResponse> out) {
        Calls.unary(out, () -> {
            if (req.getMaxRegions() < 0 || req.getMaxRegions() > limits.maxPagemapPages()) {
                throw Errors.invalid("max_regions must be at most " + limits.maxPagemapPages());
            }
            int maxRegions = req.getMaxRegions() == 0 ? limits.maxPagemapPages() : req.getMaxRegions();
            Pagemap.ScanResult r = backend.pagemapScan(req.getPid(), new Pagemap.ScanArg(req.getRange().getStart(),
                    req.getRange().getStart() + req.getRange().getLen(), req.getFlags(), req.getCategoryInverted(),
                    req.getCategoryMask(), req.getCategoryAnyofMask(), req.getReturnMask(), req.getMaxPages(),
                    maxRegions));
            PagemapScanResponse.Builder b = PagemapScanResponse.newBuilder().setWalkEnd(r.walkEnd());
            for (Pagemap.Region g : r.regions()) {
                b.addRegions(PageRegion.newBuilder().setStart(g.start()).setEnd(g.end()).setCategories(g.categories()));
            }
            return b.build();
        });
    }

    @Override
    public void access(AccessRequest req, StreamObserver<AccessResponse> out) {
        Calls.unary(out, () -> {
            long len = req.getWrite() ? req.getData().size() : req.getLen();
            if (len < 0 || len > limits.maxAccessBytes().toBytes()) {
                throw Errors.invalid("access length must be between 0 and " + limits.maxAccessBytes().toBytes());
            }
            long deadline = Calls.deadlineNanos(limits.defaultWait().toNanos());
            AccessResult r = backend.access(req.getPid(), req.getAddr(), (int) len, req.getWrite(),
                    req.getWrite() ? req.getData().toByteArray() : null, ProtoMapper.accessMode(req.getMode()), deadline);
            AccessResponse.Builder b = AccessResponse.newBuilder().setSignal(r.signal()).setSiCode(r.siCode())
                    .setFaultAddr(r.faultAddr()).setErrno(r.errno() == null ? 0 : r.errno().number());
            if (r.data() != null) {
                b.setData(ByteString.copyFrom(r.data()));
            }
            return b.build();
        });
    }

    @Override
    public void storm(StormRequest req, StreamObserver<StormResponse> out) {
        Calls.unary(out, () -> {
            long deadline = Calls.deadlineNanos(limits.defaultWait().toNanos());
            Storm storm = Storm.of(backend, req, ProtoMapper.accessMode(req.getMode()), deadline);
            guard.checkStormThreads(req.getThreads(), "storm");
            return storm.run();
        });
    }
}
