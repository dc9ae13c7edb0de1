package io.uffdemu.server.config;

import io.uffdemu.server.backend.BackendStatus;
import io.uffdemu.server.backend.MemoryBackend;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.stereotype.Component;

/**
 * Health of the selected backend: DOWN with the reason when the backend asked for cannot run. Spring gRPC maps
 * the overall health into the gRPC health service, so {@code grpc.health.v1.Health/Check} says NOT_SERVING.
 */
@Component("backend")
public class BackendHealthIndicator implements HealthIndicator {
    private final MemoryBackend backend;

    public BackendHealthIndicator(MemoryBackend backend) {
        this.backend = backend;
    }

    @Override
    public Health health() {
        BackendStatus s = backend.status();
        Health.Builder b = s.available() ? Health.up() : Health.down().withDetail("reason", s.unavailableReason());
        return b.withDetail("backend", s.name()).withDetail("kernel", s.kernelRelease()).build();
    }
}
