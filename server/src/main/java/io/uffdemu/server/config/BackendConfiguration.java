package io.uffdemu.server.config;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.emulated.EmulatedBackend;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.KernelProfile;
import io.uffdemu.server.mm.MemCgroup;
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
            kernelProfile(props.emulated()); // a bad profile fails the start whichever backend is chosen
            return switch (which) {
                case "emulated" -> emulated(props);
                case "linux", "auto" -> LinuxBackends.createOrFallback(which, props, () -> emulated(props));
                default -> throw new IllegalArgumentException(
                        "uffdemu.backend must be emulated, linux or auto, not '" + props.backend() + "'");
            };
        }

        static MemoryBackend emulated(UffdemuProperties props) {
            UffdemuProperties.Emulated e = props.emulated();
            KernelProfile profile = kernelProfile(e);
            Kernel.Config cfg = new Kernel.Config(e.memory().toBytes(), e.swap().toBytes(), e.hugepages2m(),
                    e.hugepages1g(), e.checkInvariants(), profile);
            log.info("uffdemu backend: emulated Linux {} ({} memory, {} swap, {} x 2MiB huge pages)", profile,
                    e.memory(), e.swap(), e.hugepages2m());
            // resident page contents live off the heap (FramePool's slabs: host memory besides -Xmx), swapped ones
            // in the heap (SwapDevice)
            long heap = Runtime.getRuntime().maxMemory();
            if (heap != Long.MAX_VALUE && e.swap().toBytes() > heap * 3 / 4) {
                log.warn("uffdemu: the emulated swap ({} bytes) can exceed 3/4 of the JVM heap ({} bytes) when full: "
                        + "swapped page contents live in the heap, so raise -Xmx or lower uffdemu.emulated.swap",
                        e.swap().toBytes(), heap);
            }
            long ram = physicalMemory();
            if (ram > 0 && heap != Long.MAX_VALUE && e.memory().toBytes() + heap > ram) {
                log.warn("uffdemu: the emulated memory ({} bytes, held off the heap once written) plus the JVM heap "
                        + "({} bytes) exceed this machine's or container's memory ({} bytes): lower "
                        + "uffdemu.emulated.memory or -Xmx (-XX:MaxRAMPercentage), or give the process more memory",
                        e.memory().toBytes(), heap, ram);
            }
            return new EmulatedBackend(cfg).withMemcgLimits(tenantLimits(props.quotas()), globalLimits(props.quotas()));
        }

        /** Physical memory the JVM sees (the container's limit inside one), or -1. */
        static long physicalMemory() {
            return java.lang.management.ManagementFactory.getOperatingSystemMXBean()
                    instanceof com.sun.management.OperatingSystemMXBean os ? os.getTotalMemorySize() : -1;
        }

        /** uffdemu.quotas.* as the limits of each tenant's memory cgroup. */
        static MemCgroup.Limits tenantLimits(UffdemuProperties.Quotas q) {
            return new MemCgroup.Limits(q.memory().toBytes(), q.swap().toBytes(), q.hugetlb().toBytes(),
                    q.hugetlbRsvd().toBytes(), q.maxMappings(), q.maxUffds(), q.maxRegisteredRanges(),
                    q.maxPendingFaults(), q.maxBlockedThreads());
        }

        /** uffdemu.quotas.global.* as the root memory cgroup's limits (memory: the machine itself). */
        static MemCgroup.Limits globalLimits(UffdemuProperties.Quotas q) {
            UffdemuProperties.Global g = q.global();
            return new MemCgroup.Limits(Long.MAX_VALUE, Long.MAX_VALUE, Long.MAX_VALUE, Long.MAX_VALUE, g.maxMappings(),
                    g.maxUffds(), g.maxRegisteredRanges(), g.maxPendingFaults(), g.maxBlockedThreads());
        }

        /** {@code uffdemu.emulated.kernel-profile} and {@code pte-marker-uffd-wp}; a bad value stops the start. */
        static KernelProfile kernelProfile(UffdemuProperties.Emulated e) {
            String v = e.kernelProfile() == null ? "6.18" : e.kernelProfile();
            try {
                return KernelProfile.parse(v, e.pteMarkerUffdWp());
            } catch (IllegalArgumentException ex) {
                throw new IllegalArgumentException("uffdemu.emulated.kernel-profile: " + ex.getMessage()
                        + " (supported: 6.18 (default), 6.1, 5.19, 5.10, or any release from 5.10 to 6.18)", ex);
            }
        }
    }
}
