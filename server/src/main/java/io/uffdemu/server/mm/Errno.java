package io.uffdemu.server.mm;

/**
 * Analogue of the kernel's errno values ({@code include/uapi/asm-generic/errno-base.h}, {@code errno.h}).
 * The only error currency of the emulation core: every failure leaves the core as a {@link LinuxException}
 * carrying one of these.
 */
public enum Errno {
    EPERM(1), ENOENT(2), ESRCH(3), EINTR(4), EIO(5), E2BIG(7), EBADF(9), EAGAIN(11), ENOMEM(12), EACCES(13),
    EFAULT(14), EBUSY(16), EEXIST(17), ENODEV(19), EINVAL(22), ENFILE(23), EMFILE(24), ENOTTY(25), EFBIG(27),
    ENOSPC(28), ESPIPE(29), ERANGE(34), ENOSYS(38), EOVERFLOW(75), EOPNOTSUPP(95), ETIMEDOUT(110), EHWPOISON(133);

    private final int number;

    Errno(int number) {
        this.number = number;
    }

    /** The kernel's numeric value, as userspace sees it in {@code errno}. */
    public int number() {
        return number;
    }

    /** The errno with this number, or {@code null} when the core does not know it. */
    public static Errno of(int number) {
        for (Errno e : values()) {
            if (e.number == number) {
                return e;
            }
        }
        return null;
    }
}
