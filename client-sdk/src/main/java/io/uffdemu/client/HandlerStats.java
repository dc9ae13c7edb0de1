package io.uffdemu.client;

/**
 * Counters of a {@link HandlerLoop} since it started.
 *
 * <pre>{@code
 * HandlerStats s = loop.stats();
 * assert s.faults() == s.resolved() + s.eexist() + s.fallbacks() + s.failed() + s.abandoned() + s.inFlight();
 * }</pre>
 *
 * @param faults page faults received
 * @param events non-pagefault events delivered
 * @param resolved faults whose handler returned normally
 * @param eexist resolutions that hit EEXIST (treated as resolved)
 * @param eagainDeferrals times a fault was deferred on EAGAIN
 * @param fallbacks faults resolved by the fallback policy (ZERO_FILL or WAKE_RETRY)
 * @param failed faults left unresolved
 * @param ignored messages ignored as malformed or unknown
 * @param queueDepth messages waiting for a worker now
 * @param deferred faults waiting for an event after EAGAIN now
 * @param reconnects times the Handle stream was re-attached after a failure
 * @param abandoned faults whose resolution was on a stream that broke before answering: the server woke
 *     them, they re-fault and come back as new faults (counted again in {@code faults})
 * @param regionCopies COPYs whose bytes went through the Handle stream's copy region instead of the request
 *     ({@link HandlerOptions#copyRegionBytes()})
 */
public record HandlerStats(long faults, long events, long resolved, long eexist, long eagainDeferrals,
    long fallbacks, long failed, long ignored, int queueDepth, int deferred, long reconnects, long abandoned,
    long regionCopies) {}
