package io.uffdemu.server.grpc;

import io.uffdemu.server.config.UffdemuProperties;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.LinuxException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.springframework.stereotype.Component;

/**
 * Tenancy and per-tenant quotas at the edge. Every process belongs to the tenant that created it (forks
 * inherit it); a call naming another tenant's process gets ESRCH (NOT_FOUND: nothing leaks, not even
 * existence). Quotas give RESOURCE_EXHAUSTED with the errno the kernel would use (see {@link QuotaException}).
 */
@Component
public class TenantGuard {
    private final ConcurrentHashMap<Integer, String> owners = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, AtomicInteger> processCount = new ConcurrentHashMap<>();
    private final AtomicInteger totalProcesses = new AtomicInteger();
    private final ConcurrentHashMap<String, AtomicInteger> streamCount = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Bucket> buckets = new ConcurrentHashMap<>();
    private final UffdemuProperties.Quotas quotas;

    private final java.util.Set<String> admins;
    private final boolean authEnabled;

    public TenantGuard(UffdemuProperties props) {
        this.quotas = props.quotas();
        this.admins = java.util.Set.copyOf(props.auth().adminTenants());
        this.authEnabled = !props.auth().tokens().isEmpty() || props.auth().tokensFile() != null
                || (props.auth().mtls() != null && props.auth().mtls().enabled());
    }

    /** Machine-wide changes (sysctls) are for admin tenants only once authentication is on. */
    public void checkAdmin(String call) {
        if (authEnabled && !admins.contains(Tenants.current())) {
            throw new LinuxException(Errno.EPERM, call, 0, "only admin tenants may change machine-wide settings");
        }
    }

    /** Thrown when a tenant exceeds a quota: RESOURCE_EXHAUSTED, carrying the kernel's errno. */
    public static final class QuotaException extends RuntimeException {
        final LinuxException cause;

        QuotaException(Errno errno, String call, String what) {
            super(what, null, false, false);
            this.cause = LinuxException.quota(errno, call, what);
        }
    }

    /** Checks the caller may use {@code pid} (and spends one request of its rate). */
    public void check(int pid, String call) {
        String tenant = Tenants.current();
        rate(tenant, call);
        if (!tenant.equals(owners.get(pid))) {
            throw new LinuxException(Errno.ESRCH, call, 0, "no process " + pid);
        }
    }

    /** A Storm of {@code threads} threads: at most the tenant's blocked-threads quota (EAGAIN, as a fault would). */
    public void checkStormThreads(int threads, String call) {
        if (threads > quotas.maxBlockedThreads()) {
            throw new QuotaException(Errno.EAGAIN, call, "storm threads (" + threads
                    + ") past the tenant's blocked-threads quota (" + quotas.maxBlockedThreads() + ")");
        }
    }

    public boolean owns(int pid) {
        return owns(Tenants.current(), pid);
    }

    /** Whether {@code tenant} owns {@code pid} (off the call's thread, where there is no current tenant). */
    public boolean owns(String tenant, int pid) {
        return tenant.equals(owners.get(pid));
    }

    /** Before creating a process (create or fork): the tenant's process quota. */
    public void beforeCreate(String call) {
        String tenant = Tenants.current();
        rate(tenant, call);
        AtomicInteger n = processCount.computeIfAbsent(tenant, t -> new AtomicInteger());
        if (n.incrementAndGet() > quotas.maxProcesses()) {
            n.decrementAndGet();
            throw new QuotaException(Errno.EAGAIN, call, "tenant process quota (" + quotas.maxProcesses()
                    + ") reached");
        }
        if (totalProcesses.incrementAndGet() > quotas.global().maxProcesses()) {
            totalProcesses.decrementAndGet();
            n.decrementAndGet();
            throw new QuotaException(Errno.EAGAIN, call, "global process quota (" + quotas.global().maxProcesses()
                    + ") reached");
        }
    }

    /** The create failed: give the quota back. */
    public void createFailed() {
        processCount.get(Tenants.current()).decrementAndGet();
        totalProcesses.decrementAndGet();
    }

    public void created(int pid) {
        owners.put(pid, Tenants.current());
    }

    public void exited(int pid) {
        String t = owners.remove(pid);
        if (t != null) {
            processCount.get(t).decrementAndGet();
            totalProcesses.decrementAndGet();
        }
    }

    /** A Handle stream attaches; false when the tenant's stream quota is used up. */
    public void streamOpened(String tenant) {
        AtomicInteger n = streamCount.computeIfAbsent(tenant, t -> new AtomicInteger());
        if (n.incrementAndGet() > quotas.maxHandleStreams()) {
            n.decrementAndGet();
            throw new QuotaException(Errno.EMFILE, "Handle", "tenant Handle stream quota ("
                    + quotas.maxHandleStreams() + ") reached");
        }
    }

    public void streamClosed(String tenant) {
        streamCount.get(tenant).decrementAndGet();
    }

    private void rate(String tenant, String call) {
        if (quotas.requestsPerSecond() <= 0) {
            return;
        }
        if (!buckets.computeIfAbsent(tenant, t -> new Bucket(quotas.requestsPerSecond())).take()) {
            throw new QuotaException(Errno.EAGAIN, call, "tenant request rate (" + quotas.requestsPerSecond()
                    + "/s) exceeded");
        }
    }

    /** A token bucket refilled continuously at {@code rate} per second, holding at most one second's worth. */
    static final class Bucket {
        private final double rate;
        private double tokens;
        private long last = System.nanoTime();

        Bucket(double rate) {
            this.rate = rate;
            this.tokens = rate;
        }

        synchronized boolean take() {
            long now = System.nanoTime();
            tokens = Math.min(rate, tokens + (now - last) * rate / 1e9);
            last = now;
            if (tokens < 1) {
                return false;
            }
            tokens -= 1;
            return true;
        }
    }
}
