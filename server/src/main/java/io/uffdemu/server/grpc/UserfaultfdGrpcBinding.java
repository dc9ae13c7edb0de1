package io.uffdemu.server.grpc;

import io.grpc.BindableService;
import io.grpc.ServerServiceDefinition;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.config.UffdemuProperties;
import java.util.Set;
import org.springframework.grpc.server.service.GrpcService;

/**
 * The bean that serves uffdemu.v1.UserfaultfdService: {@link UserfaultfdGrpcService}'s methods, with the requests
 * that carry pages (the Handle stream's, unary COPY's) parsed by {@link AliasingRequests}, without a copy of each
 * page.
 */
@GrpcService
public class UserfaultfdGrpcBinding implements BindableService {
    static final Set<String> PAGE_CARRYING = Set.of(UserfaultfdServiceGrpc.getHandleMethod().getFullMethodName(),
            UserfaultfdServiceGrpc.getCopyMethod().getFullMethodName());

    private final UserfaultfdGrpcService service;

    public UserfaultfdGrpcBinding(MemoryBackend backend, UffdemuProperties props, TenantGuard guard) {
        this.service = new UserfaultfdGrpcService(backend, props, guard);
    }

    @Override
    public ServerServiceDefinition bindService() {
        return AliasingRequests.of(service.bindService(), PAGE_CARRYING);
    }

    @jakarta.annotation.PreDestroy
    void shutdown() {
        service.shutdown();
    }
}
