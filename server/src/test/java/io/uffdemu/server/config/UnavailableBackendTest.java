package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.uffdemu.server.backend.BackendStatus;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.UnavailableBackend;
import io.uffdemu.server.grpc.Errors;
import org.junit.jupiter.api.Test;

/** A backend that was asked for but cannot run: health DOWN with the reason, calls UNAVAILABLE with it. */
class UnavailableBackendTest {
    @Test
    void healthAndStatusCarryTheReason() {
        MemoryBackend b = UnavailableBackend.of(new BackendStatus("linux", false, "userfaultfd: EPERM", 0, 0, ""));
        var health = new BackendHealthIndicator(b).health();
        assertThat(health.getStatus().getCode()).isEqualTo("DOWN");
        assertThat(health.getDetails()).containsEntry("reason", "userfaultfd: EPERM");
        Throwable t = org.assertj.core.api.Assertions.catchThrowable(() -> b.mmap(1000, 0, 4096, 3, 0x22, -1, 0));
        var s = Errors.map(t).getStatus();
        assertThat(s.getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(s.getDescription()).contains("userfaultfd: EPERM");
    }
}
