package io.uffdemu.server.backend.linux;

import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.LinuxException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Probe-once availability of the real-kernel backend (netty's {@code Epoll} pattern). The probe, run on first use:
 * the opt-out property {@value #DISABLED_PROPERTY}, the platform (Linux x86_64), the kernel release via uname(2),
 * PROCMAP_QUERY on /proc/self/maps (6.11+, how the backend reads VMAs), userfaultfd(2) and, if that fails,
 * /dev/userfaultfd + USERFAULTFD_IOC_NEW, then UFFDIO_API with features 0. The reason for unavailability is kept
 * (no permission, the sysctl, seccomp, an old kernel).
 */
public final class LinuxAvailability {
    public static final String DISABLED_PROPERTY = "uffdemu.linux.disabled";

    private static final Throwable UNAVAILABILITY_CAUSE;
    private static final long FEATURES;
    private static final long IOCTLS;
    private static final String RELEASE;

    static {
        Throwable cause = null;
        long features = 0;
        long ioctls = 0;
        String release = "";
        if (Boolean.getBoolean(DISABLED_PROPERTY)) {
            cause = new UnsupportedOperationException("disabled by " + DISABLED_PROPERTY);
        } else if (!System.getProperty("os.name", "").toLowerCase().startsWith("linux")
                || !System.getProperty("os.arch", "").equals("amd64")) {
            cause = new UnsupportedOperationException("needs Linux on x86_64, running on "
                    + System.getProperty("os.name") + "/" + System.getProperty("os.arch"));
        } else {
            try {
                release = Native.unameRelease();
                int[] v = version(release);
                if (v[0] < 5 || (v[0] == 5 && v[1] < 7)) {
                    throw new UnsupportedOperationException("kernel " + release
                            + " is too old: userfaultfd write-protect needs 5.7 or later");
                }
                probeProcmapQuery();
                int fd = openUffd();
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment api = a.allocate(Uapi.UFFDIO_API_S);
                    api.set(ValueLayout.JAVA_LONG, Uapi.off(Uapi.UFFDIO_API_S, "api"), Linux.UFFD_API);
                    Native.ioctl("UFFDIO_API", fd, Uapi.UFFDIO_API, api);
                    features = api.get(ValueLayout.JAVA_LONG, Uapi.off(Uapi.UFFDIO_API_S, "features"));
                    ioctls = api.get(ValueLayout.JAVA_LONG, Uapi.off(Uapi.UFFDIO_API_S, "ioctls"));
                } finally {
                    Native.close(fd);
                }
            } catch (Throwable t) {
                cause = t;
            }
        }
        UNAVAILABILITY_CAUSE = cause;
        FEATURES = features;
        IOCTLS = ioctls;
        RELEASE = release;
    }

    private LinuxAvailability() {
    }

    /** The backend reads VMAs with PROCMAP_QUERY (6.11+). */
    private static void probeProcmapQuery() {
        int maps = Native.open("/proc/self/maps", Native.O_RDONLY | Native.O_CLOEXEC);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment q = a.allocate(Uapi.PROCMAP_QUERY_S);
            q.set(ValueLayout.JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "size"), Uapi.PROCMAP_QUERY_S.byteSize());
            q.set(ValueLayout.JAVA_LONG, Uapi.off(Uapi.PROCMAP_QUERY_S, "query_flags"),
                    Uapi.PROCMAP_QUERY_COVERING_OR_NEXT_VMA);
            int r = Native.ioctlRaw(maps, Uapi.PROCMAP_QUERY, q);
            if (r < 0 && r != -io.uffdemu.server.mm.Errno.ENOENT.number()) {
                throw new UnsupportedOperationException("PROCMAP_QUERY on /proc/self/maps failed with errno " + -r
                        + " (needs Linux 6.11 or later)");
            }
        } finally {
            Native.close(maps);
        }
    }

    private static int openUffd() {
        LinuxException first;
        try {
            return (int) Native.syscall("userfaultfd", Uapi.SYS_USERFAULTFD, Native.O_CLOEXEC | Native.O_NONBLOCK);
        } catch (LinuxException e) {
            first = e;
        }
        try {
            int dev = Native.open("/dev/userfaultfd", Native.O_RDWR | Native.O_CLOEXEC);
            try {
                return Native.ioctl("USERFAULTFD_IOC_NEW", dev, Uapi.USERFAULTFD_IOC_NEW,
                        (long) (Native.O_CLOEXEC | Native.O_NONBLOCK));
            } finally {
                Native.close(dev);
            }
        } catch (LinuxException second) {
            String why = switch (first.errno()) {
                case EPERM -> epermReason(hasCapSysPtrace(), seccompMode(), sysctl("vm/unprivileged_userfaultfd"));
                case ENOSYS -> "userfaultfd(2): ENOSYS (kernel without CONFIG_USERFAULTFD, or a seccomp filter)";
                default -> "userfaultfd(2): " + first.errno();
            };
            return throwUnavailable(why + "; /dev/userfaultfd: " + second.getMessage());
        }
    }

    /**
     * Why userfaultfd(2) said EPERM, from what the process can see: fs/userfaultfd.c refuses it without
     * CAP_SYS_PTRACE when vm.unprivileged_userfaultfd is 0, and a seccomp filter (Docker's default profile allows
     * the call only with CAP_SYS_PTRACE) refuses it with EPERM too, so the capability alone does not settle it.
     *
     * @param capSysPtrace CAP_SYS_PTRACE is in the effective set
     * @param seccompMode the Seccomp field of /proc/self/status (2: a filter), -1 when unknown
     * @param unprivileged vm.unprivileged_userfaultfd, null when unreadable
     */
    static String epermReason(boolean capSysPtrace, int seccompMode, String unprivileged) {
        boolean filter = seccompMode == 2;
        if (capSysPtrace || "1".equals(unprivileged)) {
            String allowed = capSysPtrace ? "CAP_SYS_PTRACE is effective" : "vm.unprivileged_userfaultfd=1";
            return "userfaultfd(2): EPERM although " + allowed + (filter
                    ? ": a seccomp filter refuses the call (allow userfaultfd in the container's seccomp profile)"
                    : " (an LSM policy refuses the call?)");
        }
        return "userfaultfd(2): EPERM (no CAP_SYS_PTRACE and vm.unprivileged_userfaultfd="
                + (unprivileged == null ? "unknown" : unprivileged)
                + (filter ? "; a seccomp filter is active and may refuse the call as well" : "") + ")";
    }

    /** CAP_SYS_PTRACE (bit 19) in CapEff of /proc/self/status. */
    private static boolean hasCapSysPtrace() {
        String eff = statusField("CapEff");
        try {
            return eff != null && (Long.parseUnsignedLong(eff, 16) & (1L << 19)) != 0;
        } catch (NumberFormatException e) {
            return false;
        }
    }

    private static int seccompMode() {
        String m = statusField("Seccomp");
        try {
            return m == null ? -1 : Integer.parseInt(m);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static String statusField(String name) {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
                if (line.startsWith(name + ":")) {
                    return line.substring(name.length() + 1).trim();
                }
            }
        } catch (java.io.IOException | RuntimeException e) {
            // unknown
        }
        return null;
    }

    private static String sysctl(String name) {
        try {
            return java.nio.file.Files.readString(java.nio.file.Path.of("/proc/sys/" + name)).trim();
        } catch (java.io.IOException | RuntimeException e) {
            return null;
        }
    }

    private static int throwUnavailable(String why) {
        throw new UnsupportedOperationException(why);
    }

    static int[] version(String release) {
        String[] p = release.split("[^0-9]+");
        int major = p.length > 0 && !p[0].isEmpty() ? Integer.parseInt(p[0]) : 0;
        int minor = p.length > 1 && !p[1].isEmpty() ? Integer.parseInt(p[1]) : 0;
        return new int[] {major, minor};
    }

    public static boolean isAvailable() {
        return UNAVAILABILITY_CAUSE == null;
    }

    /** Throws {@link UnsupportedOperationException} with the cause when unavailable. */
    public static void ensureAvailability() {
        if (UNAVAILABILITY_CAUSE != null) {
            throw (UnsupportedOperationException) new UnsupportedOperationException(
                    "the linux backend is unavailable: " + reason()).initCause(UNAVAILABILITY_CAUSE);
        }
    }

    /** Why the backend cannot run, or {@code null}. */
    public static Throwable unavailabilityCause() {
        return UNAVAILABILITY_CAUSE;
    }

    /** {@link #unavailabilityCause()} as a one-line message, "" when available. */
    public static String reason() {
        Throwable t = UNAVAILABILITY_CAUSE;
        if (t == null) {
            return "";
        }
        return t.getMessage() == null ? t.toString() : t.getMessage();
    }

    /** The features UFFDIO_API reported (0 when unavailable). */
    public static long features() {
        return FEATURES;
    }

    /** The ioctls UFFDIO_API reported (0 when unavailable). */
    public static long ioctls() {
        return IOCTLS;
    }

    /** uname -r ("" when not probed). */
    public static String kernelRelease() {
        return RELEASE;
    }
}
