package io.uffdemu.server.grpc;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Copy regions whose Handle stream ended, kept for {@code uffdemu.limits.copy-region-idle} for the client that had
 * mapped them to ask back ({@code HandleAttach.keep_copy_region}, then {@code reuse_copy_region}). Its next stream
 * then writes its sources into pages both processes already have, where a new region would be faulted in page by
 * page on both sides again (512 page faults per 2 MiB source in each process): a handler that opens a stream per
 * process or per test, or reconnects, pays that once instead of on every stream.
 *
 * <p>Only regions whose stream asked for it and whose client had mapped them (proven) are kept: at most
 * {@link #MAX_IDLE_PER_TENANT} per tenant and {@link #MAX_IDLE} in all, the oldest unmapped first. Only the tenant
 * that had one, naming it and the nonce it last held (which only that stream's client, or a process that can read
 * the file anyway, knows), gets it back, with a new nonce ({@link CopyRegion#renew}). A kept region's memory is
 * what its client wrote into it: at most {@code max-copy-region-bytes}.
 */
final class CopyRegionPool {
    /** Idle regions kept per tenant. */
    static final int MAX_IDLE_PER_TENANT = 4;
    /** Idle regions kept in all. */
    static final int MAX_IDLE = 16;

    private record Idle(String tenant, CopyRegion region, int generation) {}

    private final long idleNanos;
    private final ScheduledExecutorService timer;
    // guarded by this: by tenant and name, oldest first
    private final LinkedHashMap<String, Idle> idle = new LinkedHashMap<>();
    private boolean closed;

    CopyRegionPool(Duration idle, ScheduledExecutorService timer) {
        this.idleNanos = idle.isNegative() ? 0 : idle.toNanos();
        this.timer = timer;
    }

    /** Whether regions are kept at all (copy-region-idle > 0): what an offer's keep_seconds says. */
    long keepSeconds() {
        return idleNanos == 0 ? 0 : Math.max(1, TimeUnit.NANOSECONDS.toSeconds(idleNanos));
    }

    private static String key(String tenant, String name) {
        return tenant + '\0' + name;
    }

    /**
     * The region {@code name} of {@code tenant}, if it is idle here, holds {@code nonce} and is {@code size} bytes:
     * taken out and renewed (a new nonce, no proof); null otherwise (the caller makes a new one).
     */
    CopyRegion take(String tenant, String name, byte[] nonce, long size) {
        CopyRegion r;
        synchronized (this) {
            Idle i = idle.get(key(tenant, name));
            if (i == null || i.region().bytes() != size || !i.region().matches(name, nonce)) {
                return null;
            }
            idle.remove(key(tenant, name));
            r = i.region();
        }
        try {
            r.renew();
            return r;
        } catch (java.io.IOException | RuntimeException e) {
            r.free();
            return null;
        }
    }

    /**
     * Keeps a retired region (no resolution uses it, its client had mapped it) for its client, or unmaps it when
     * regions are not kept (copy-region-idle 0, or shut down).
     */
    void put(String tenant, CopyRegion r) {
        List<CopyRegion> out = new ArrayList<>(1);
        int generation = r.generation();
        synchronized (this) {
            if (closed || idleNanos == 0) {
                out.add(r);
            } else {
                idle.put(key(tenant, r.name()), new Idle(tenant, r, generation));
                int ofTenant = 0;
                for (Idle i : idle.values()) {
                    ofTenant += i.tenant().equals(tenant) ? 1 : 0;
                }
                for (Iterator<Idle> it = idle.values().iterator(); it.hasNext() && ofTenant > MAX_IDLE_PER_TENANT;) {
                    Idle i = it.next();
                    if (i.tenant().equals(tenant)) {
                        out.add(i.region());
                        it.remove();
                        ofTenant--;
                    }
                }
                for (Iterator<Idle> it = idle.values().iterator(); idle.size() > MAX_IDLE;) {
                    out.add(it.next().region());
                    it.remove();
                }
            }
        }
        out.forEach(CopyRegion::free);
        if (!out.contains(r)) {
            try {
                timer.schedule(() -> expire(tenant, r, generation), idleNanos, TimeUnit.NANOSECONDS);
            } catch (RejectedExecutionException e) {
                expire(tenant, r, generation); // shutting down
            }
        }
    }

    /** The idle period that began when {@code r} was at {@code generation} is over: unmapped if it still idles. */
    private void expire(String tenant, CopyRegion r, int generation) {
        synchronized (this) {
            Idle i = idle.get(key(tenant, r.name()));
            // taken and given back since, it is in a later idle period with its own expiry
            if (i == null || i.region() != r || i.generation() != generation) {
                return;
            }
            idle.remove(key(tenant, r.name()));
        }
        r.free();
    }

    /** Regions idle now (tests). */
    synchronized int idleCount() {
        return idle.size();
    }

    /** Server shutdown: every idle region unmapped, none kept from now on. */
    void close() {
        List<CopyRegion> out = new ArrayList<>();
        synchronized (this) {
            closed = true;
            for (Map.Entry<String, Idle> e : idle.entrySet()) {
                out.add(e.getValue().region());
            }
            idle.clear();
        }
        out.forEach(CopyRegion::free);
    }
}
