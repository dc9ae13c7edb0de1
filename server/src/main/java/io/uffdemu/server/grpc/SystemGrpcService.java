package io.uffdemu.server.grpc;

import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.BackendInfo;
import io.uffdemu.api.v1.GetBackendRequest;
import io.uffdemu.api.v1.MeminfoRequest;
import io.uffdemu.api.v1.MeminfoResponse;
import io.uffdemu.api.v1.SysctlRequest;
import io.uffdemu.api.v1.SysctlValue;
import io.uffdemu.api.v1.SystemServiceGrpc;
import io.uffdemu.server.backend.BackendStatus;
import io.uffdemu.server.backend.MemoryBackend;
import org.springframework.grpc.server.service.GrpcService;

/** Adapter: uffdemu.v1.SystemService → {@link MemoryBackend}. */
@GrpcService
public class SystemGrpcService extends SystemServiceGrpc.SystemServiceImplBase {
    private final MemoryBackend backend;

    private final TenantGuard guard;

    public SystemGrpcService(MemoryBackend backend, TenantGuard guard) {
        this.backend = backend;
        this.guard = guard;
    }

    @Override
    public void getBackend(GetBackendRequest r, StreamObserver<BackendInfo> out) {
        Calls.unary(out, () -> {
            BackendStatus s = backend.status();
            return BackendInfo.newBuilder().setName(s.name()).setAvailable(s.available())
                    .setUnavailableReason(s.unavailableReason()).setFeatures(s.features()).setIoctls(s.ioctls())
                    .setKernelRelease(s.kernelRelease()).build();
        });
    }

    @Override
    public void getSysctl(SysctlRequest r, StreamObserver<SysctlValue> out) {
        Calls.unary(out, () -> SysctlValue.newBuilder().setName(r.getName()).setValue(backend.sysctl(r.getName()))
                .build());
    }

    @Override
    public void setSysctl(SysctlValue r, StreamObserver<SysctlValue> out) {
        Calls.unary(out, () -> {
            guard.checkAdmin("sysctl");
            backend.setSysctl(r.getName(), r.getValue());
            return SysctlValue.newBuilder().setName(r.getName()).setValue(backend.sysctl(r.getName())).build();
        });
    }

    @Override
    public void meminfo(MeminfoRequest r, StreamObserver<MeminfoResponse> out) {
        Calls.unary(out, () -> MeminfoResponse.newBuilder().putAllFields(backend.meminfo()).build());
    }
}
