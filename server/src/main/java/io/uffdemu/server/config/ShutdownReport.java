package io.uffdemu.server.config;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.ProcessInfo;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.stereotype.Component;

/**
 * Graceful shutdown: Spring gRPC stops accepting calls and gives in-flight ones
 * {@code spring.grpc.server.shutdown.grace-period} to finish; after that this reports what was abandoned
 * (processes still alive, userfaults still pending) before the backend closes.
 */
@Component
public class ShutdownReport implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(ShutdownReport.class);
    private final MemoryBackend backend;
    private volatile boolean running;

    public ShutdownReport(MemoryBackend backend) {
        this.backend = backend;
    }

    @Override
    public void start() {
        running = true;
    }

    @Override
    public void stop() {
        running = false;
        try {
            List<ProcessInfo> ps = backend.processes();
            long blocked = 0;
            long pending = 0;
            if (backend instanceof io.uffdemu.server.backend.emulated.EmulatedBackend e) {
                long[] g = e.kernel().faultGauges();
                pending = g[0];
                blocked = g[1];
            }
            log.info("uffdemu shutdown: abandoned {} process(es), {} blocked faulting thread(s), {} unread "
                    + "userfault message(s)", ps.size(), blocked, pending);
        } catch (RuntimeException e) {
            log.info("uffdemu shutdown: backend state unavailable ({})", e.toString());
        }
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    /** Stops after the gRPC server (which stops at a higher phase) has drained. */
    @Override
    public int getPhase() {
        return Integer.MIN_VALUE + 1000;
    }
}
