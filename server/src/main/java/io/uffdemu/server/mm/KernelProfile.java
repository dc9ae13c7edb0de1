package io.uffdemu.server.mm;

/**
 * The kernel release and config the emulator imitates: the parts of {@code fs/userfaultfd.c}
 * ({@code userfaultfd_api()}, {@code userfaultfd_register()}, {@code userfaultfd_ioctl()}, {@code new_userfaultfd()}),
 * {@code include/linux/userfaultfd_k.h} ({@code vma_can_userfault()}), {@code include/uapi/linux/userfaultfd.h}
 * ({@code UFFD_API_FEATURES}, {@code UFFD_API_RANGE_IOCTLS[_BASIC]}), {@code drivers/misc} /dev/userfaultfd,
 * {@code mm/madvise.c} ({@code madvise_behavior_valid()}) and {@code fs/proc/task_mmu.c} (PM_UFFD_WP,
 * PAGEMAP_SCAN) that changed between Linux 5.10 and 6.18, plus {@code CONFIG_PTE_MARKER_UFFD_WP}.
 *
 * <p>Every threshold is a mainline release (stable backports are not modelled):
 * <table>
 * <tr><th>since</th><th>what</th><th>checked against</th></tr>
 * <tr><td>5.7</td><td>PAGEFAULT_FLAG_WP, UFFDIO_WRITEPROTECT (anon only), WRITEPROTECT masked out of the REGISTER
 *   answer without MODE_WP</td><td>uapi diff adding {@code _UFFDIO_WRITEPROTECT} to UFFD_API_RANGE_IOCTLS (not
 *   BASIC); fs/userfaultfd.c "Declare the WP ioctl only if the WP mode is specified"</td></tr>
 * <tr><td>5.10</td><td>vma_can_userfault: WP only on anonymous ("FIXME: add WP support to hugetlbfs and shmem");
 *   REGISTER mode bits MISSING|WP; userfaultfd(2) flags O_CLOEXEC|O_NONBLOCK; the EPERM check ignores flags</td>
 *   <td>fs/userfaultfd.c of that era: vma_can_userfault() before the MINOR series; SYSCALL_DEFINE1(userfaultfd)
 *   with {@code if (!sysctl_unprivileged_userfaultfd && !capable(CAP_SYS_PTRACE)) return -EPERM;} before
 *   {@code if (flags & ~UFFD_SHARED_FCNTL_FLAGS) return -EINVAL;}</td></tr>
 * <tr><td>5.11</td><td>UFFD_USER_MODE_ONLY; vm.unprivileged_userfaultfd defaults to 0 (was 1)</td><td>the
 *   USER_MODE_ONLY series: {@code int sysctl_unprivileged_userfaultfd __read_mostly = 1;} becomes 0, the EPERM
 *   check gains {@code (flags & UFFD_USER_MODE_ONLY) == 0}, {@code flags & ~UFFD_SHARED_FCNTL_FLAGS} gains
 *   USER_MODE_ONLY; userfaultfd-rs wrapper.h ("not available before Linux 5.11")</td></tr>
 * <tr><td>5.13</td><td>MINOR_HUGETLBFS, MODE_MINOR on hugetlb only, _UFFDIO_CONTINUE in RANGE and BASIC, CONTINUE
 *   masked without MODE_MINOR, pagemap bit 57</td><td>uapi diff adding {@code _UFFDIO_CONTINUE (0x07)};
 *   vma_can_userfault "FIXME: Add minor fault interception for shmem"</td></tr>
 * <tr><td>5.14</td><td>MINOR_SHMEM, MODE_MINOR on shmem; MADV_POPULATE_READ/WRITE</td><td>vma_can_userfault
 *   "!(is_vm_hugetlb_page(vma) || vma_is_shmem(vma))"; uffd-semantics feature table; commit 4ca9b3859dac
 *   (MADV_POPULATE_(READ|WRITE), committed 2021-06-30, the 5.14 merge window)</td></tr>
 * <tr><td>5.18</td><td>EXACT_ADDRESS</td><td>uffd-semantics feature table</td></tr>
 * <tr><td>5.19</td><td>WP_HUGETLBFS_SHMEM, WP on shmem/hugetlb with PTE markers, _UFFDIO_WRITEPROTECT in
 *   UFFD_API_RANGE_IOCTLS_BASIC; without CONFIG_PTE_MARKER_UFFD_WP: WP only on anonymous and
 *   WP_HUGETLBFS_SHMEM masked out of UFFDIO_API</td><td>uapi diff adding WRITEPROTECT to BASIC;
 *   include/linux/userfaultfd_k.h vma_can_userfault() "#ifndef CONFIG_PTE_MARKER_UFFD_WP"</td></tr>
 * <tr><td>6.0 .. 6.2</td><td>UFFDIO_API neither checks {@code api == 0xAA} nor refuses unknown feature bits: it
 *   drops them ({@code features = uffdio_api.features & UFFD_API_FEATURES}); the check is back in 6.3</td>
 *   <td>914eedcb9ba0 "userfaultfd: don't fail on unrecognized features" (posted 2022-07-22, mm tree for 6.0);
 *   2ff559f31a5d Revert (2023-04-12, upstream for 6.3; also queued for 6.1.y and 6.2.y stable on 2023-04-24,
 *   which this profile does not model)</td></tr>
 * <tr><td>6.1</td><td>/dev/userfaultfd + USERFAULTFD_IOC_NEW; MADV_COLLAPSE</td><td>userfaultfd-rs wrapper.h
 *   ("introduced with Linux 6.1"); commit 7d8faaf15545 (MADV_COLLAPSE, merged for 6.1)</td></tr>
 * <tr><td>6.4</td><td>WP_UNPOPULATED (masked without PTE markers)</td><td>Peter Xu "mm/uffd:
 *   UFFD_FEATURE_WP_UNPOPULATED"; userfaultfd_api() "#ifndef CONFIG_PTE_MARKER_UFFD_WP"</td></tr>
 * <tr><td>6.5</td><td>UFFDIO_CONTINUE_MODE_WP</td><td>uffd-semantics §4.6</td></tr>
 * <tr><td>6.6</td><td>POISON, _UFFDIO_POISON in RANGE and BASIC</td><td>uapi UFFD_API_RANGE_IOCTLS_BASIC with
 *   POISON and without MOVE</td></tr>
 * <tr><td>6.7</td><td>WP_ASYNC (masked without PTE markers; REGISTER admits WP-only with it on any type),
 *   PAGEMAP_SCAN</td><td>userfaultfd_api() diff adding {@code &= ~UFFD_FEATURE_WP_ASYNC}</td></tr>
 * <tr><td>6.8</td><td>MOVE, _UFFDIO_MOVE in RANGE only</td><td>uapi UFFD_API_RANGE_IOCTLS (MOVE) vs BASIC</td></tr>
 * <tr><td>6.10</td><td>UFFDIO_API answers EINVAL for a known but unsupported (config-masked) feature; before,
 *   it was accepted silently</td><td>"fix userfaultfd_api to return EINVAL as expected" (fs/userfaultfd.c:
 *   {@code if (features & ~uffdio_api.features) goto err_out})</td></tr>
 * <tr><td>6.13</td><td>MADV_GUARD_INSTALL / MADV_GUARD_REMOVE</td><td>uapi mman-common.h (102, 103)</td></tr>
 * </table>
 *
 * <p>An ioctl the release does not know answers EINVAL (userfaultfd_ioctl() starts with {@code ret = -EINVAL}
 * and falls out of its switch); an ioctl on /proc/PID/pagemap before 6.7 answers ENOTTY (no
 * {@code unlocked_ioctl}); a madvise advice it does not know answers EINVAL; /dev/userfaultfd before 6.1 does
 * not exist (ENOENT).
 *
 * @param major            release major
 * @param minor            release minor
 * @param pteMarkerUffdWp  {@code CONFIG_PTE_MARKER_UFFD_WP} (only meaningful from 5.19, where it appeared)
 */
public record KernelProfile(int major, int minor, boolean pteMarkerUffdWp) {
    /** The oldest and newest releases modelled. */
    public static final KernelProfile OLDEST = new KernelProfile(5, 10, true);
    public static final KernelProfile NEWEST = new KernelProfile(6, 18, true);
    /** Linux 6.18 with CONFIG_PTE_MARKER_UFFD_WP=y: the machine the conformance suite compares with. */
    public static final KernelProfile DEFAULT = NEWEST;

    public KernelProfile {
        if (code(major, minor) < OLDEST_CODE || code(major, minor) > NEWEST_CODE) {
            throw new IllegalArgumentException("kernel profile " + major + "." + minor
                    + " is outside the modelled range 5.10 .. 6.18");
        }
    }

    private static final int OLDEST_CODE = 5 * 100 + 10;
    private static final int NEWEST_CODE = 6 * 100 + 18;

    private static int code(int major, int minor) {
        return major * 100 + minor;
    }

    /**
     * Parses "6.18", "6.1", "5.19", "5.10" (any release from 5.10 to 6.18; a ".patch" suffix is ignored).
     *
     * @throws IllegalArgumentException with a message naming the accepted forms
     */
    public static KernelProfile parse(String release, boolean pteMarkerUffdWp) {
        String s = release == null ? "" : release.trim();
        String[] parts = s.split("\\.");
        if (parts.length < 2 || parts.length > 3) {
            throw new IllegalArgumentException("kernel profile must look like 6.18, 6.1, 5.19 or 5.10, not '"
                    + release + "'");
        }
        try {
            int maj = Integer.parseInt(parts[0]);
            int min = Integer.parseInt(parts[1]);
            if (parts.length == 3) {
                Integer.parseInt(parts[2]);
            }
            return new KernelProfile(maj, min, pteMarkerUffdWp);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("kernel profile must look like 6.18, 6.1, 5.19 or 5.10, not '"
                    + release + "'");
        }
    }

    /** True when this release is {@code major.minor} or newer. */
    public boolean atLeast(int maj, int min) {
        return code(major, minor) >= code(maj, min);
    }

    /** PTE markers for uffd-wp exist: the config is on and the release has them (5.19+). */
    public boolean uffdWpMarkers() {
        return pteMarkerUffdWp && atLeast(5, 19);
    }

    /** "6.18", "5.10". */
    public String version() {
        return major + "." + minor;
    }

    /** The uname -r the emulated backend reports: "6.18.0-uffdemu", "6.1.0-uffdemu-nopte-marker-uffd-wp". */
    public String release() {
        return version() + ".0-uffdemu" + (pteMarkerUffdWp ? "" : "-nopte-marker-uffd-wp");
    }

    // ------------------------------------------------------------------ UFFDIO_API

    /** {@code UFFD_API_FEATURES} of include/uapi/linux/userfaultfd.h in this release (before config masks). */
    public long uapiFeatures() {
        long f = Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP | Linux.UFFD_FEATURE_EVENT_FORK | Linux.UFFD_FEATURE_EVENT_REMAP
                | Linux.UFFD_FEATURE_EVENT_REMOVE | Linux.UFFD_FEATURE_MISSING_HUGETLBFS
                | Linux.UFFD_FEATURE_MISSING_SHMEM | Linux.UFFD_FEATURE_EVENT_UNMAP | Linux.UFFD_FEATURE_SIGBUS
                | Linux.UFFD_FEATURE_THREAD_ID;
        if (atLeast(5, 13)) {
            f |= Linux.UFFD_FEATURE_MINOR_HUGETLBFS;
        }
        if (atLeast(5, 14)) {
            f |= Linux.UFFD_FEATURE_MINOR_SHMEM;
        }
        if (atLeast(5, 18)) {
            f |= Linux.UFFD_FEATURE_EXACT_ADDRESS;
        }
        if (atLeast(5, 19)) {
            f |= Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
        }
        if (atLeast(6, 4)) {
            f |= Linux.UFFD_FEATURE_WP_UNPOPULATED;
        }
        if (atLeast(6, 6)) {
            f |= Linux.UFFD_FEATURE_POISON;
        }
        if (atLeast(6, 7)) {
            f |= Linux.UFFD_FEATURE_WP_ASYNC;
        }
        if (atLeast(6, 8)) {
            f |= Linux.UFFD_FEATURE_MOVE;
        }
        return f;
    }

    /** The features UFFDIO_API answers: {@link #uapiFeatures()} with the config masks of userfaultfd_api(). */
    public long apiFeatures() {
        long f = uapiFeatures();
        if (!pteMarkerUffdWp) {
            f &= ~(Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM | Linux.UFFD_FEATURE_WP_UNPOPULATED);
            if (atLeast(6, 7)) {
                f &= ~Linux.UFFD_FEATURE_WP_ASYNC;
            }
        }
        return f;
    }

    /**
     * Whether UFFDIO_API checks its input ({@code api == 0xAA}, no unknown feature bits): every release but 6.0,
     * 6.1 and 6.2, which drop unknown bits instead (914eedcb9ba0, reverted by 2ff559f31a5d for 6.3).
     */
    public boolean apiChecksInput() {
        return !atLeast(6, 0) || atLeast(6, 3);
    }

    /**
     * The requested features UFFDIO_API refuses with EINVAL when it {@link #apiChecksInput() checks its input}:
     * those unknown to the release always; those known but masked by the config only from 6.10 (before,
     * userfaultfd_api() checked against UFFD_API_FEATURES alone).
     */
    public long apiRejected(long requested) {
        long allowed = atLeast(6, 10) ? apiFeatures() : uapiFeatures();
        return requested & ~allowed;
    }

    /** {@code UFFD_API_IOCTLS}: REGISTER, UNREGISTER, API in every release modelled. */
    public long apiIoctls() {
        return Linux.UFFD_API_IOCTLS;
    }

    /** {@code UFFD_API_RANGE_IOCTLS}: what REGISTER answers for non-hugetlb ranges, before mode masks. */
    public long rangeIoctls() {
        long m = (1L << Linux._UFFDIO_WAKE) | (1L << Linux._UFFDIO_COPY) | (1L << Linux._UFFDIO_ZEROPAGE)
                | (1L << Linux._UFFDIO_WRITEPROTECT);
        if (atLeast(5, 13)) {
            m |= 1L << Linux._UFFDIO_CONTINUE;
        }
        if (atLeast(6, 6)) {
            m |= 1L << Linux._UFFDIO_POISON;
        }
        if (atLeast(6, 8)) {
            m |= 1L << Linux._UFFDIO_MOVE;
        }
        return m;
    }

    /** {@code UFFD_API_RANGE_IOCTLS_BASIC}: what REGISTER answers when a hugetlb VMA is in the range. */
    public long rangeIoctlsBasic() {
        long m = (1L << Linux._UFFDIO_WAKE) | (1L << Linux._UFFDIO_COPY);
        if (atLeast(5, 13)) {
            m |= 1L << Linux._UFFDIO_CONTINUE;
        }
        if (atLeast(5, 19)) {
            m |= 1L << Linux._UFFDIO_WRITEPROTECT;
        }
        if (atLeast(6, 6)) {
            m |= 1L << Linux._UFFDIO_POISON;
        }
        return m;
    }

    /** Whether userfaultfd_ioctl() of this release knows the ioctl number {@code nr} (_UFFDIO_*). */
    public boolean hasIoctl(int nr) {
        return nr == Linux._UFFDIO_API || (((apiIoctls() | rangeIoctls()) >>> nr) & 1) != 0;
    }

    // ------------------------------------------------------------------ REGISTER

    /** The UFFDIO_REGISTER mode bits this release accepts (MINOR from 5.13). */
    public long registerModes() {
        long m = Linux.UFFDIO_REGISTER_MODE_MISSING | Linux.UFFDIO_REGISTER_MODE_WP;
        if (atLeast(5, 13)) {
            m |= Linux.UFFDIO_REGISTER_MODE_MINOR;
        }
        return m;
    }

    /**
     * {@code vma_can_userfault()} of this release and config, for the memory types the emulator has.
     *
     * @param anon     vma_is_anonymous()
     * @param shmem    vma_is_shmem()
     * @param hugetlb  is_vm_hugetlb_page()
     * @param mode     UFFDIO_REGISTER_MODE_* bits
     * @param wpAsync  the ctx has UFFD_FEATURE_WP_ASYNC
     */
    public boolean vmaCanUserfault(boolean anon, boolean shmem, boolean hugetlb, long mode, boolean wpAsync) {
        boolean wp = (mode & Linux.UFFDIO_REGISTER_MODE_WP) != 0;
        if ((mode & Linux.UFFDIO_REGISTER_MODE_MINOR) != 0) {
            boolean ok = hugetlb || (shmem && atLeast(5, 14));
            if (!ok) {
                return false;
            }
        }
        // 6.7+: "If wp async enabled, and WP is the only mode enabled, allow any memory type."
        if (atLeast(6, 7) && wpAsync && mode == Linux.UFFDIO_REGISTER_MODE_WP) {
            return anon || shmem || hugetlb;
        }
        if (wp && !anon && !uffdWpMarkers()) {
            return false; // before 5.19 (FIXME in vma_can_userfault) or #ifndef CONFIG_PTE_MARKER_UFFD_WP
        }
        return anon || shmem || hugetlb;
    }

    // ------------------------------------------------------------------ other interfaces

    /** userfaultfd(2) flags: O_CLOEXEC | O_NONBLOCK, and UFFD_USER_MODE_ONLY from 5.11. */
    public int userfaultfdFlags() {
        int f = Linux.O_CLOEXEC | Linux.O_NONBLOCK;
        if (atLeast(5, 11)) {
            f |= Linux.UFFD_USER_MODE_ONLY;
        }
        return f;
    }

    /** /dev/userfaultfd and USERFAULTFD_IOC_NEW (6.1+). */
    public boolean hasDevUserfaultfd() {
        return atLeast(6, 1);
    }

    /** UFFDIO_CONTINUE_MODE_WP (6.5+). */
    public boolean hasContinueModeWp() {
        return atLeast(6, 5);
    }

    /** PAGEMAP_SCAN on /proc/PID/pagemap (6.7+). */
    public boolean hasPagemapScan() {
        return atLeast(6, 7);
    }

    /** /proc/PID/pagemap bit 57, PM_UFFD_WP (5.13+). */
    public boolean hasPagemapUffdWp() {
        return atLeast(5, 13);
    }

    /** Whether madvise() of this release knows the advice (the rest is EINVAL, as for any unknown advice). */
    public boolean madviseKnown(int advice) {
        return switch (advice) {
            case Linux.MADV_POPULATE_READ, Linux.MADV_POPULATE_WRITE -> atLeast(5, 14);
            case Linux.MADV_COLLAPSE -> atLeast(6, 1);
            case Linux.MADV_GUARD_INSTALL, Linux.MADV_GUARD_REMOVE -> atLeast(6, 13);
            default -> true;
        };
    }

    @Override
    public String toString() {
        return version() + (pteMarkerUffdWp ? "" : " (CONFIG_PTE_MARKER_UFFD_WP off)");
    }
}
