package io.uffdemu.server.mm;

import java.util.ArrayList;
import java.util.List;

/**
 * What one userfaultfd looks like from outside: analogue of {@code fs/userfaultfd.c:userfaultfd_show_fdinfo()}
 * ({@code /proc/PID/fdinfo/FD}: {@code pending}, {@code total}, {@code API}) plus the ranges registered through
 * it, which the kernel shows only per VMA ({@code /proc/PID/smaps} VmFlags {@code um uw ui}). Read-only: takes the
 * kernel lock, changes nothing.
 */
public final class UffdFdinfo {
    private UffdFdinfo() {
    }

    /** One registered range: a VMA whose {@code vm_userfaultfd_ctx} is this uffd, with its UFFDIO_REGISTER_MODE_* bits. */
    public record Range(long start, long end, long mode) {
    }

    /**
     * @param flags the userfaultfd(2) flags (O_CLOEXEC, O_NONBLOCK, UFFD_USER_MODE_ONLY)
     * @param apiDone UFFDIO_API was answered
     * @param features the negotiated UFFD_FEATURE_* bits (0 before UFFDIO_API)
     * @param ranges registered ranges in address order
     * @param pendingFaults faults queued and not yet read (fdinfo {@code pending})
     * @param totalFaults faults blocked on this uffd, read or not (fdinfo {@code total})
     * @param pendingEvents non-cooperative events queued and not yet read
     * @param released the uffd was closed (its last reference is going away)
     */
    public record Description(int pid, int fd, int flags, boolean apiDone, long features, List<Range> ranges,
            int pendingFaults, int totalFaults, int pendingEvents, boolean released) {
    }

    /** fdinfo of {@code fd} in {@code pid}: ESRCH for no such process, EBADF for no such fd, ENOTTY for another file. */
    public static Description describe(Kernel k, int pid, int fd) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "fdinfo");
            return describeLocked(t, pid, fd, k.fileLocked(t, fd, "fdinfo"));
        } finally {
            k.unlock();
        }
    }

    /** Every userfaultfd in {@code pid}'s fd table, by fd. */
    public static List<Description> list(Kernel k, int pid) {
        k.lock();
        try {
            Task t = k.taskLocked(pid, "fdinfo");
            List<Description> out = new ArrayList<>();
            for (var e : t.fds.entrySet()) {
                if (e.getValue().uffd != null) {
                    out.add(describeLocked(t, pid, e.getKey(), e.getValue()));
                }
            }
            return out;
        } finally {
            k.unlock();
        }
    }

    private static Description describeLocked(Task t, int pid, int fd, OpenFile f) {
        UserfaultfdCtx ctx = f.uffd;
        if (ctx == null) {
            throw new LinuxException(Errno.ENOTTY, "fdinfo", 0, "fd " + fd + " is not a userfaultfd");
        }
        List<Range> ranges = new ArrayList<>();
        if (!ctx.mm.dead) {
            for (Vma v : ctx.mm.vmas.values()) {
                if (v.uffd == ctx) {
                    ranges.add(new Range(v.start, v.end, v.uffdFlags));
                }
            }
        }
        return new Description(pid, fd, ctx.flags, ctx.apiDone, ctx.features, List.copyOf(ranges),
                ctx.pending.size(), ctx.pending.size() + ctx.waiting.size(), ctx.events.size(), ctx.released);
    }
}
