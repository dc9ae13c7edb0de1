package io.uffdemu.server.config;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.emulated.EmulatedBackend;
import io.uffdemu.server.mm.Kernel;
import io.micrometer.core.instrument.MeterRegistry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** Picks the backend ({@code uffdemu.backend}); the one place where backend selection happens. */
@Configuration(proxyBeanMethods = false)
public class BackendConfiguration {
    private static final Logger log = LoggerFactory.getLogger(BackendConfiguration.class);

    @Bean(destroyMethod = "close")
    @ConditionalOnMissingBean
    MemoryBackend memoryBackend(UffdemuProperties props, ObjectProvider<MeterRegistry> registry) {
        MemoryBackend backend = BackendFactory.create(props);
        MeterRegistry r = registry.getIfAvailable();
        return r == null ? backend : BackendMetrics.instrument(backend, r);
    }

    /** Selection logic, separate from Spring so it can be unit tested. */
    public static final class BackendFactory {
        private BackendFactory() {
        }

        public static MemoryBackend create(UffdemuProperties props) {
            String which = props.backend() == null ? "emulated" : props.backend().trim().toLowerCase();
            return switch (which) {
                case "emulated" -> emulated(props);
                case "linux", "auto" -> LinuxBackends.createOrFallback(which, props, () -> emulated(props));
                default -> throw new IllegalArgumentException(
                        "uffdemu.backend must be emulated, linux or auto, not '" + props.backend() + "'");
            };
        }

        static MemoryBackend emulated(UffdemuProperties props) {
            UffdemuProperties.Emulated e = props.emulated();
            Kernel.Config cfg = new Kernel.Config(e.memory().toBytes(), e.swap().toBytes(), e.hugepages2m(),
                    e.hugepages1g(), e.checkInvariants());
            log.info("uffdemu backend: emulated ({} memory, {} swap, {} x 2MiB huge pages)", e.memory(), e.swap(),
                    e.hugepages2m());
            return new EmulatedBackend(cfg);
        }
    }
}
