package io.uffdemu.server.config;

import java.lang.management.ManagementFactory;
import jdk.management.VirtualThreadSchedulerMXBean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Lazy;

/**
 * How many carrier threads run the server's virtual threads ({@code uffdemu.virtual-threads.parallelism}). The
 * setting is JVM-wide: every gRPC call, every Handle stream's reader and ops thread, every Storm faulting thread,
 * the actuator's HTTP requests and Spring's scheduled tasks are virtual threads.
 *
 * <p>{@code auto} (the default) sets one carrier when the backend is {@code emulated} and the JVM sees at most 2
 * processors (container CPU limits included), unless {@code -Djdk.virtualThreadScheduler.parallelism} was given;
 * otherwise it leaves the JDK's choice (one carrier per processor, or the {@code -D} value). With two carriers on
 * two cores, a virtual thread that one carrier unparks (a faulting thread woken by a COPY, a call handed over by the
 * transport) wakes the other, parked carrier, which runs it and parks again: a cross-core wake-up of a platform
 * thread per hand-off. With one carrier the hand-off is a continuation switch. On 2 cores shared with a same-host
 * handler this saves a third or more of the CPU per remote MISSING fault (docs/benchmarks.md, item 24).
 *
 * <p>The price is that one long CPU-bound call (a populate or COPY of gigabytes, a fork of a large process) holds
 * the carrier and delays every other call, the health endpoints included, for as long as it runs. So do virtual
 * threads that keep each other runnable without parking (a storm of several threads over pages that never fault):
 * a carrier runs its local queue before anything submitted from outside, such as a call handed over by the
 * transport, with one carrier or more; one carrier makes it take fewer such threads.
 *
 * <p>{@code auto} leaves the {@code linux} (and {@code auto}) backend alone: its calls hold their carrier for as long
 * as their native calls run, and one carrier was measured with the emulated backend only (syscalls that wait in the
 * kernel for a handler, such as an munmap until its EVENT_UNMAP is read, run on an access thread, not on the carrier:
 * LinuxBackend.mayWaitForHandler). On larger hosts one carrier would hold the emulation to one core. A number sets
 * the parallelism outright, whatever the backend.
 *
 * <p>The parallelism is set at start through {@link VirtualThreadSchedulerMXBean}, which changes the scheduler in
 * place, so it does not matter whether a virtual thread ran before; it is put back when the context closes.
 */
@Configuration(proxyBeanMethods = false)
public class VirtualThreadSchedulerConfiguration {
    private static final Logger log = LoggerFactory.getLogger(VirtualThreadSchedulerConfiguration.class);
    static final String PROPERTY = "uffdemu.virtual-threads.parallelism";
    static final String JDK_PROPERTY = "jdk.virtualThreadScheduler.parallelism";
    /** The largest number accepted (the JDK's default bound on the scheduler's pool, which a larger value raises). */
    static final int MAX = 256;
    /** {@code auto} sets one carrier at or below this many processors. */
    static final int AUTO_ONE_CARRIER_PROCESSORS = 2;

    /** What was applied: the scheduler's parallelism after start, and why; the one before is put back at close. */
    public record VirtualThreadParallelism(int parallelism, String reason, int before,
            VirtualThreadSchedulerMXBean scheduler) implements AutoCloseable {
        @Override
        public void close() {
            if (scheduler.getParallelism() == parallelism && parallelism != before) {
                scheduler.setParallelism(before);
            }
        }
    }

    @Bean
    @Lazy(false)
    VirtualThreadParallelism uffdemuVirtualThreadParallelism(@Value("${" + PROPERTY + ":auto}") String setting,
            @Value("${uffdemu.backend:emulated}") String backend) {
        VirtualThreadSchedulerMXBean scheduler =
                ManagementFactory.getPlatformMXBean(VirtualThreadSchedulerMXBean.class);
        int processors = Runtime.getRuntime().availableProcessors();
        String jdk = System.getProperty(JDK_PROPERTY);
        int wanted = chosen(setting, backend, processors, jdk);
        boolean auto = isAuto(setting);
        int before = scheduler.getParallelism();
        String reason;
        if (wanted == 0) {
            reason = jdk != null ? "auto: -D" + JDK_PROPERTY + " was given"
                    : !isEmulated(backend) ? "auto: left alone with the " + backend.strip() + " backend"
                    : "auto: the JDK's choice on " + processors + " processors";
        } else {
            try {
                scheduler.setParallelism(wanted);
                reason = auto ? "auto: the emulated backend on " + processors + " processors" : PROPERTY;
            } catch (IllegalArgumentException | UnsupportedOperationException e) {
                if (!auto) {
                    throw new IllegalStateException(PROPERTY + "=" + setting
                            + " could not be applied to the virtual-thread scheduler: " + e.getMessage(), e);
                }
                reason = "auto: the scheduler refused " + wanted + ": " + e.getMessage();
            }
        }
        int now = scheduler.getParallelism();
        log.info("virtual-thread scheduler: parallelism {} ({})", now, reason);
        return new VirtualThreadParallelism(now, reason, before, scheduler);
    }

    static boolean isAuto(String setting) {
        return setting == null || setting.strip().equalsIgnoreCase("auto");
    }

    static boolean isEmulated(String backend) {
        return backend == null || backend.strip().equalsIgnoreCase("emulated");
    }

    /**
     * The parallelism to set, or 0 to leave the scheduler as the JDK made it. {@code setting} is {@code auto} or a
     * number from 1 to {@link #MAX}; anything else stops the server at start, naming the property.
     */
    static int chosen(String setting, String backend, int processors, String jdkProperty) {
        if (isAuto(setting)) {
            return jdkProperty == null && isEmulated(backend) && processors <= AUTO_ONE_CARRIER_PROCESSORS ? 1 : 0;
        }
        String bad = PROPERTY + " must be auto or a number from 1 to " + MAX + ", not '" + setting + "'";
        int n;
        try {
            n = Integer.parseInt(setting.strip());
        } catch (NumberFormatException e) {
            throw new IllegalStateException(bad);
        }
        if (n < 1 || n > MAX) {
            throw new IllegalStateException(bad);
        }
        return n;
    }
}
