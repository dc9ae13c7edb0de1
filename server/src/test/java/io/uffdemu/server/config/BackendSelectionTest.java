package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.UnavailableBackend;
import io.uffdemu.server.backend.linux.LinuxAvailability;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.util.unit.DataSize;

/** The one factory that picks a backend: emulated, linux (or UNAVAILABLE with the reason), auto. */
class BackendSelectionTest {
    static UffdemuProperties props(String backend) {
        return new UffdemuProperties(backend,
                new UffdemuProperties.Emulated(DataSize.ofMegabytes(64), DataSize.ofMegabytes(0), 0, 0, false, "6.18", true),
                new UffdemuProperties.Limits(DataSize.ofMegabytes(16), 1 << 20, 4096, Duration.ofHours(1),
                        DataSize.ofMegabytes(64), Duration.ofSeconds(30)),
                new UffdemuProperties.Auth(List.of(), null, false, List.of("admin")),
                new UffdemuProperties.Quotas(256, 20000, 1024), new UffdemuProperties.Handler(Duration.ofSeconds(30)));
    }

    @Test
    void emulatedByDefault() {
        try (MemoryBackend b = BackendConfiguration.BackendFactory.create(props("emulated"))) {
            assertThat(b.name()).isEqualTo("emulated");
            assertThat(b.status().available()).isTrue();
        }
    }

    @Test
    void linuxWhenAvailableElseUnavailableWithTheReason() {
        try (MemoryBackend b = BackendConfiguration.BackendFactory.create(props("linux"))) {
            assertThat(b.name()).isEqualTo("linux");
            assertThat(b.status().available()).isEqualTo(LinuxAvailability.isAvailable());
            if (!LinuxAvailability.isAvailable()) {
                assertThat(b.status().unavailableReason()).isEqualTo(LinuxAvailability.reason());
                assertThatThrownBy(() -> b.createProcess("x", 0, true, "t"))
                        .isInstanceOf(UnavailableBackend.BackendUnavailableException.class)
                        .hasMessageContaining(LinuxAvailability.reason());
            }
        }
    }

    @Test
    void autoFallsBackToEmulated() {
        try (MemoryBackend b = BackendConfiguration.BackendFactory.create(props("auto"))) {
            assertThat(b.name()).isEqualTo(LinuxAvailability.isAvailable() ? "linux" : "emulated");
            assertThat(b.status().available()).isTrue();
        }
    }

    @Test
    void unknownBackendIsAConfigurationError() {
        assertThatThrownBy(() -> BackendConfiguration.BackendFactory.create(props("bogus")))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("emulated, linux or auto");
    }
}
