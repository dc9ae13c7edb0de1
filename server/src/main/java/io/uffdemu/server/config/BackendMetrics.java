package io.uffdemu.server.config;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.emulated.EmulatedBackend;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.Vma;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.ToDoubleFunction;

/**
 * Domain meters of uffdemu (catalogue in docs/metrics.md). Tags are bounded: memory type, mode, ioctl,
 * errno name, event type; never an address, pid or fd.
 */
public final class BackendMetrics {
    private BackendMetrics() {
    }

    /**
     * Wraps the backend so every uffd ioctl is counted by name and result ({@link InstrumentedBackend}), and
     * installs the core observer. The wrapper is a plain delegate: the reflective proxy it replaces was a few
     * percent of the server's samples in the remote round trip's profile (docs/benchmarks.md item 11).
     */
    public static MemoryBackend instrument(MemoryBackend backend, MeterRegistry registry) {
        if (backend instanceof EmulatedBackend emu) {
            observe(emu.kernel(), registry);
        }
        gauges(backend, registry);
        return new InstrumentedBackend(backend, registry);
    }

    static String ioctlName(String method) {
        return switch (method) {
            case "uffdApi" -> "UFFDIO_API";
            case "uffdRegister" -> "UFFDIO_REGISTER";
            case "uffdUnregister" -> "UFFDIO_UNREGISTER";
            case "uffdCopy" -> "UFFDIO_COPY";
            case "uffdZeropage" -> "UFFDIO_ZEROPAGE";
            case "uffdContinue" -> "UFFDIO_CONTINUE";
            case "uffdWriteprotect" -> "UFFDIO_WRITEPROTECT";
            case "uffdWake" -> "UFFDIO_WAKE";
            case "uffdPoison" -> "UFFDIO_POISON";
            case "uffdMove" -> "UFFDIO_MOVE";
            default -> method;
        };
    }

    private static void observe(Kernel kernel, MeterRegistry registry) {
        Map<String, Counter> faults = new ConcurrentHashMap<>();
        Map<Integer, Counter> events = new ConcurrentHashMap<>();
        Timer latency = Timer.builder("uffdemu.fault.latency")
                .description("time a faulting thread stays blocked, from the uffd message being queued to its wake-up")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofNanos(1000))
                .maximumExpectedValue(Duration.ofSeconds(30)).register(registry);
        kernel.setObserver(new Kernel.Observer() {
            @Override
            public void faultRaised(long flags, Vma vma) {
                String type = vma.isAnonymous() ? "anon" : vma.isHugetlb() ? "hugetlb" : "shmem";
                String mode = (flags & Linux.UFFD_PAGEFAULT_FLAG_MINOR) != 0 ? "minor"
                        : (flags & Linux.UFFD_PAGEFAULT_FLAG_WP) != 0 ? "wp" : "missing";
                String write = (flags & Linux.UFFD_PAGEFAULT_FLAG_WRITE) != 0 ? "true" : "false";
                faults.computeIfAbsent(type + mode + write, k -> Counter.builder("uffdemu.faults")
                        .description("userfaults raised (messages queued)").tag("memory_type", type)
                        .tag("mode", mode).tag("write", write).register(registry)).increment();
            }

            @Override
            public void faultWoken(long waitedNanos) {
                latency.record(Duration.ofNanos(waitedNanos));
            }

            @Override
            public void eventRaised(int event) {
                events.computeIfAbsent(event, e -> Counter.builder("uffdemu.events")
                        .description("non-cooperative uffd events raised").tag("event", eventName(e))
                        .register(registry)).increment();
            }
        });
        Gauge.builder("uffdemu.faults.pending", kernel, k -> k.faultGauges()[0])
                .description("userfaults queued and not yet read by a handler").register(registry);
        Gauge.builder("uffdemu.threads.blocked", kernel, k -> k.faultGauges()[1])
                .description("emulated threads parked in a userfault").register(registry);
    }

    static String eventName(int e) {
        return switch (e) {
            case Linux.UFFD_EVENT_FORK -> "fork";
            case Linux.UFFD_EVENT_REMAP -> "remap";
            case Linux.UFFD_EVENT_REMOVE -> "remove";
            case Linux.UFFD_EVENT_UNMAP -> "unmap";
            default -> "other";
        };
    }

    /** Resident set of this server process (/proc/self/statm, field 2, in pages): what the soak watches. */
    static double residentBytes() {
        try {
            String[] f = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/self/statm")).trim().split(" ");
            return Long.parseLong(f[1]) * 4096.0;
        } catch (java.io.IOException | RuntimeException e) {
            return Double.NaN;
        }
    }

    private static void gauges(MemoryBackend backend, MeterRegistry registry) {
        Gauge.builder("uffdemu.process.resident.bytes", BackendMetrics::residentBytes)
                .description("resident memory of the server process (RSS)").register(registry);
        meminfo(registry, backend, "uffdemu.memory.resident.bytes", "anon", "AnonPages", 1024);
        meminfo(registry, backend, "uffdemu.memory.resident.bytes", "shmem", "ShmemMapped", 1024);
        Gauge.builder("uffdemu.swap.used.bytes", backend, b -> safe(b, m -> 1024.0
                * (m.getOrDefault("SwapTotal", 0L) - m.getOrDefault("SwapFree", 0L))))
                .description("swap in use").register(registry);
        Gauge.builder("uffdemu.hugepages.free", backend, b -> safe(b, m -> m.getOrDefault("HugePages_Free", 0L)))
                .tag("size", "2MB").description("free huge pages per pool").register(registry);
        Gauge.builder("uffdemu.hugepages.free", backend, b -> safe(b, m -> m.getOrDefault("HugePages1G_Free", 0L)))
                .tag("size", "1GB").description("free huge pages per pool").register(registry);
        Gauge.builder("uffdemu.processes", backend, b -> {
            try {
                return b.processes().size();
            } catch (RuntimeException e) {
                return Double.NaN;
            }
        }).description("live processes").register(registry);
    }

    private static void meminfo(MeterRegistry registry, MemoryBackend backend, String name, String type, String field,
            long unit) {
        Gauge.builder(name, backend, b -> safe(b, m -> (double) m.getOrDefault(field, 0L) * unit))
                .tag("memory_type", type).description("resident memory by type").register(registry);
    }

    private static double safe(MemoryBackend b, ToDoubleFunction<Map<String, Long>> f) {
        try {
            return f.applyAsDouble(b.meminfo());
        } catch (RuntimeException e) {
            return Double.NaN;
        }
    }
}
