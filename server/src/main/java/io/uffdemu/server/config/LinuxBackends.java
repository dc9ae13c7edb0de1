package io.uffdemu.server.config;

import io.uffdemu.server.backend.BackendStatus;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.UnavailableBackend;
import io.uffdemu.server.backend.linux.LinuxAvailability;
import io.uffdemu.server.backend.linux.LinuxBackend;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Creates the native backend when asked for. {@code linux}: the native backend or, when it cannot run, an
 * {@link UnavailableBackend} that answers every call with UNAVAILABLE and the reason (health DOWN /
 * NOT_SERVING). {@code auto}: the native backend when available, else the emulated one.
 */
final class LinuxBackends {
    private static final Logger log = LoggerFactory.getLogger(LinuxBackends.class);

    private LinuxBackends() {
    }

    static MemoryBackend createOrFallback(String which, UffdemuProperties props, Supplier<MemoryBackend> emulated) {
        if (LinuxAvailability.isAvailable()) {
            log.info("uffdemu backend: linux (kernel {}), features {}", LinuxAvailability.kernelRelease(),
                    Long.toHexString(LinuxAvailability.features()));
            return new LinuxBackend();
        }
        String reason = LinuxAvailability.reason();
        if ("auto".equals(which)) {
            log.info("uffdemu.backend=auto: linux unavailable ({}), using emulated", reason);
            return emulated.get();
        }
        log.warn("uffdemu.backend=linux but it cannot run: {}", reason);
        return UnavailableBackend.of(new BackendStatus("linux", false, reason, 0, 0, ""));
    }
}
