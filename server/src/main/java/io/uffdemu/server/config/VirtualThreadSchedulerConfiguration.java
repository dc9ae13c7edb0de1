package io.uffdemu.server.config;

import java.lang.management.ManagementFactory;
import jdk.management.VirtualThreadSchedulerMXBean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * How many carrier threads run the server's virtual threads ({@code uffdemu.virtual-threads.parallelism}): every
 * gRPC call, every Handle stream's reader and every Storm's faulting thread is a virtual thread.
 *
 * <p>{@code auto} (the default) sets one carrier on a host with at most 2 processors (as the JVM counts them,
 * container CPU limits included) and otherwise leaves the JDK's own choice (one per processor), as it does when
 * {@code -Djdk.virtualThreadScheduler.parallelism} was given. With two carriers on two cores, a virtual thread
 * that one carrier unparks (a faulting thread woken by a COPY, a call handed over by the transport) wakes the other,
 * parked carrier, which runs it and parks again: a cross-core wake-up of a platform thread per hand-off. With one
 * carrier the hand-off is a continuation switch. On 2 cores shared with a same-host handler this saves a third or
 * more of the CPU per remote MISSING fault (docs/benchmarks.md, item 24). On larger hosts one carrier would cap the
 * emulation at one core, so {@code auto} leaves them alone; a number sets the parallelism outright.
 *
 * <p>The parallelism is set at start through {@link VirtualThreadSchedulerMXBean}, which changes the scheduler in
 * place, so it does not matter whether a virtual thread ran before.
 */
@Configuration(proxyBeanMethods = false)
public class VirtualThreadSchedulerConfiguration {
    private static final Logger log = LoggerFactory.getLogger(VirtualThreadSchedulerConfiguration.class);
    static final String PROPERTY = "uffdemu.virtual-threads.parallelism";
    static final String JDK_PROPERTY = "jdk.virtualThreadScheduler.parallelism";
    /** The JDK's bound on the default scheduler's pool ({@code jdk.virtualThreadScheduler.maxPoolSize}). */
    static final int MAX = 256;
    /** {@code auto} sets one carrier at or below this many processors. */
    static final int AUTO_ONE_CARRIER_PROCESSORS = 2;

    /** What was applied: the scheduler's parallelism after start, and why. */
    public record VirtualThreadParallelism(int parallelism, String reason) {
    }

    @Bean
    VirtualThreadParallelism uffdemuVirtualThreadParallelism(@Value("${" + PROPERTY + ":auto}") String setting) {
        VirtualThreadSchedulerMXBean scheduler =
                ManagementFactory.getPlatformMXBean(VirtualThreadSchedulerMXBean.class);
        int processors = Runtime.getRuntime().availableProcessors();
        int wanted = chosen(setting, processors, System.getProperty(JDK_PROPERTY));
        String reason;
        if (wanted == 0) {
            reason = System.getProperty(JDK_PROPERTY) != null ? "auto: -D" + JDK_PROPERTY + " was given"
                    : "auto: the JDK's choice on " + processors + " processors";
        } else {
            try {
                scheduler.setParallelism(wanted);
            } catch (IllegalArgumentException | UnsupportedOperationException e) {
                throw new IllegalStateException(PROPERTY + "=" + setting
                        + " could not be applied to the virtual-thread scheduler: " + e.getMessage(), e);
            }
            reason = "auto".equalsIgnoreCase(setting.strip()) ? "auto: " + processors + " processors" : PROPERTY;
        }
        int now = scheduler.getParallelism();
        log.info("virtual-thread scheduler: parallelism {} ({})", now, reason);
        return new VirtualThreadParallelism(now, reason);
    }

    /**
     * The parallelism to set, or 0 to leave the scheduler as the JDK made it. {@code setting} is {@code auto} or a
     * number from 1 to {@link #MAX}; anything else stops the server at start, naming the property.
     */
    static int chosen(String setting, int processors, String jdkProperty) {
        String s = setting == null ? "auto" : setting.strip();
        if (s.equalsIgnoreCase("auto")) {
            return jdkProperty == null && processors <= AUTO_ONE_CARRIER_PROCESSORS ? 1 : 0;
        }
        String bad = PROPERTY + " must be auto or a number from 1 to " + MAX + ", not '" + setting + "'";
        int n;
        try {
            n = Integer.parseInt(s);
        } catch (NumberFormatException e) {
            throw new IllegalStateException(bad);
        }
        if (n < 1 || n > MAX) {
            throw new IllegalStateException(bad);
        }
        return n;
    }
}
