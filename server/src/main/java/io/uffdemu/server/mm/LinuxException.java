package io.uffdemu.server.mm;

/**
 * A syscall or ioctl failure: the errno, the call that failed and, for operations that report partial
 * progress (UFFDIO_COPY and friends, see {@code mm/userfaultfd.c:mfill_atomic()}), the bytes already done.
 * Stack traces are not captured: these are expected results, not bugs.
 */
public final class LinuxException extends RuntimeException {
    private final Errno errno;
    private final String call;
    private final long bytesDone;
    /** The failure is a tenant's limit ({@link MemCgroup}), not the machine's: RESOURCE_EXHAUSTED at the edge. */
    private final boolean quota;

    public LinuxException(Errno errno, String call) {
        this(errno, call, 0, null);
    }

    public LinuxException(Errno errno, String call, long bytesDone) {
        this(errno, call, bytesDone, null);
    }

    public LinuxException(Errno errno, String call, long bytesDone, String detail) {
        this(errno, call, bytesDone, detail, false);
    }

    private LinuxException(Errno errno, String call, long bytesDone, String detail, boolean quota) {
        super(call + ": " + errno + (detail == null ? "" : " (" + detail + ")"), null, false, false);
        this.errno = errno;
        this.call = call;
        this.bytesDone = bytesDone;
        this.quota = quota;
    }

    /** A tenant limit was hit (memcg memory.max, mapping count, ...): same errno as the kernel's, marked as quota. */
    public static LinuxException quota(Errno errno, String call, String detail) {
        return new LinuxException(errno, call, 0, detail, true);
    }

    /** This failure, re-marked as caused by a tenant limit (the errno, call and partial count stay). */
    public LinuxException asQuota() {
        return quota ? this : new LinuxException(errno, call, bytesDone,
                "tenant memory limit (memcg memory.max / memory.swap.max / hugetlb max) reached", true);
    }

    /** True when a tenant limit, not machine-wide exhaustion, caused the failure. */
    public boolean isQuota() {
        return quota;
    }

    public Errno errno() {
        return errno;
    }

    public String call() {
        return call;
    }

    /** Bytes completed before the failure (the positive count an ioctl writes back with EAGAIN); 0 when none. */
    public long bytesDone() {
        return bytesDone;
    }

    public static LinuxException einval(String call, String detail) {
        return new LinuxException(Errno.EINVAL, call, 0, detail);
    }
}
