package io.uffdemu.server.grpc;

import com.google.protobuf.ByteString;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.AcceptMemfdGrantRequest;
import io.uffdemu.api.v1.CloseRequest;
import io.uffdemu.api.v1.GrantMemfdRequest;
import io.uffdemu.api.v1.GrantMemfdResponse;
import io.uffdemu.api.v1.RevokeMemfdGrantRequest;
import io.uffdemu.api.v1.RevokeMemfdGrantResponse;
import io.uffdemu.api.v1.Empty;
import io.uffdemu.api.v1.FallocateRequest;
import io.uffdemu.api.v1.FdResponse;
import io.uffdemu.api.v1.FtruncateRequest;
import io.uffdemu.api.v1.MadviseRequest;
import io.uffdemu.api.v1.MemfdCreateRequest;
import io.uffdemu.api.v1.MemoryServiceGrpc;
import io.uffdemu.api.v1.MmapRequest;
import io.uffdemu.api.v1.MmapResponse;
import io.uffdemu.api.v1.MprotectRequest;
import io.uffdemu.api.v1.MremapRequest;
import io.uffdemu.api.v1.MremapResponse;
import io.uffdemu.api.v1.MunmapRequest;
import io.uffdemu.api.v1.PidfdGetfdRequest;
import io.uffdemu.api.v1.PreadRequest;
import io.uffdemu.api.v1.PreadResponse;
import io.uffdemu.api.v1.PwriteRequest;
import io.uffdemu.api.v1.PwriteResponse;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.config.UffdemuProperties;
import org.springframework.grpc.server.service.GrpcService;

/** Adapter: uffdemu.v1.MemoryService → {@link MemoryBackend}. */
@GrpcService
public class MemoryGrpcService extends MemoryServiceGrpc.MemoryServiceImplBase {
    private static final Empty EMPTY = Empty.getDefaultInstance();
    private final MemoryBackend backend;
    private final UffdemuProperties.Limits limits;
    private final MemfdGrants grants;

    public MemoryGrpcService(MemoryBackend backend, UffdemuProperties props, MemfdGrants grants) {
        this.backend = backend;
        this.limits = props.limits();
        this.grants = grants;
    }

    @Override
    public void mmap(MmapRequest r, StreamObserver<MmapResponse> out) {
        Calls.unary(out, () -> MmapResponse.newBuilder().setAddr(backend.mmap(r.getPid(), r.getAddr(), r.getLen(),
                r.getProt(), r.getFlags(), r.getFd(), r.getOffset())).build());
    }

    @Override
    public void munmap(MunmapRequest r, StreamObserver<Empty> out) {
        Calls.unary(out, () -> {
            backend.munmap(r.getPid(), r.getAddr(), r.getLen());
            return EMPTY;
        });
    }

    @Override
    public void mremap(MremapRequest r, StreamObserver<MremapResponse> out) {
        Calls.unary(out, () -> MremapResponse.newBuilder().setAddr(backend.mremap(r.getPid(), r.getOldAddr(),
                r.getOldLen(), r.getNewLen(), r.getFlags(), r.getNewAddr())).build());
    }

    @Override
    public void mprotect(MprotectRequest r, StreamObserver<Empty> out) {
        Calls.unary(out, () -> {
            backend.mprotect(r.getPid(), r.getAddr(), r.getLen(), r.getProt());
            return EMPTY;
        });
    }

    @Override
    public void madvise(MadviseRequest r, StreamObserver<Empty> out) {
        Calls.unary(out, () -> {
            backend.madvise(r.getPid(), r.getAddr(), r.getLen(), r.getAdvice());
            return EMPTY;
        });
    }

    @Override
    public void memfdCreate(MemfdCreateRequest r, StreamObserver<FdResponse> out) {
        Calls.unary(out, () -> FdResponse.newBuilder().setFd(backend.memfdCreate(r.getPid(), r.getName(), r.getFlags()))
                .build());
    }

    @Override
    public void ftruncate(FtruncateRequest r, StreamObserver<Empty> out) {
        Calls.unary(out, () -> {
            backend.ftruncate(r.getPid(), r.getFd(), r.getLength());
            return EMPTY;
        });
    }

    @Override
    public void fallocate(FallocateRequest r, StreamObserver<Empty> out) {
        Calls.unary(out, () -> {
            backend.fallocate(r.getPid(), r.getFd(), r.getMode(), r.getOffset(), r.getLen());
            return EMPTY;
        });
    }

    @Override
    public void pread(PreadRequest r, StreamObserver<PreadResponse> out) {
        Calls.unary(out, () -> {
            if (r.getLen() < 0 || r.getLen() > limits.maxAccessBytes().toBytes()) {
                throw Errors.invalid("pread length must be at most " + limits.maxAccessBytes().toBytes());
            }
            return PreadResponse.newBuilder().setData(ByteString.copyFrom(
                    backend.pread(r.getPid(), r.getFd(), r.getOffset(), (int) r.getLen()))).build();
        });
    }

    @Override
    public void pwrite(PwriteRequest r, StreamObserver<PwriteResponse> out) {
        Calls.unary(out, () -> PwriteResponse.newBuilder().setWritten(backend.pwrite(r.getPid(), r.getFd(),
                r.getOffset(), r.getData().toByteArray())).build());
    }

    @Override
    public void pidfdGetfd(PidfdGetfdRequest r, StreamObserver<FdResponse> out) {
        Calls.unary(out, () -> FdResponse.newBuilder().setFd(backend.pidfdGetfd(r.getPid(), r.getTargetPid(),
                r.getTargetFd())).build());
    }

    @Override
    public void grantMemfd(GrantMemfdRequest r, StreamObserver<GrantMemfdResponse> out) {
        Calls.unary(out, () -> GrantMemfdResponse.newBuilder().setGrantToken(grants.grant(r.getPid(), r.getFd(),
                r.getGranteeTenant())).build());
    }

    @Override
    public void acceptMemfdGrant(AcceptMemfdGrantRequest r, StreamObserver<FdResponse> out) {
        Calls.unary(out, () -> FdResponse.newBuilder().setFd(grants.accept(r.getPid(), r.getGrantToken())).build());
    }

    @Override
    public void revokeMemfdGrant(RevokeMemfdGrantRequest r, StreamObserver<RevokeMemfdGrantResponse> out) {
        Calls.unary(out, () -> RevokeMemfdGrantResponse.newBuilder().setClosedFds(grants.revoke(r.getGrantToken()))
                .build());
    }

    @Override
    public void close(CloseRequest r, StreamObserver<Empty> out) {
        Calls.unary(out, () -> {
            backend.close(r.getPid(), r.getFd());
            return EMPTY;
        });
    }
}
