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

    public LinuxException(Errno errno, String call) {
        this(errno, call, 0, null);
    }

    public LinuxException(Errno errno, String call, long bytesDone) {
        this(errno, call, bytesDone, null);
    }

    public LinuxException(Errno errno, String call, long bytesDone, String detail) {
        super(call + ": " + errno + (detail == null ? "" : " (" + detail + ")"), null, false, false);
        this.errno = errno;
        this.call = call;
        this.bytesDone = bytesDone;
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
