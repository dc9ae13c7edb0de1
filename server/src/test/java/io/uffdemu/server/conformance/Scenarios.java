package io.uffdemu.server.conformance;

import static io.uffdemu.server.mm.Linux.*;

import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Pagemap;
import io.uffdemu.server.mm.UffdMsg;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The scenario catalogue: reference §9.1 (selftests), §9.3 S1-S16 and §9.4 E1-E7, plus the §6.1 lifecycle
 * table. Each scenario logs a trace and checks the reference's [O] outcome with {@code expect}.
 */
final class Scenarios {
    private Scenarios() {
    }

    static final int W = UFFDIO_REGISTER_MODE_WP;
    static final int M = UFFDIO_REGISTER_MODE_MISSING;
    static final int N = UFFDIO_REGISTER_MODE_MINOR;

    static List<Scenario> all() {
        List<Scenario> s = new ArrayList<>();
        s.add(new Scenario("E1-api", MemType.ANON_ONLY, Scenarios::api));
        s.add(new Scenario("E2-register-matrix", MemType.ALL, Scenarios::registerMatrix));
        s.add(new Scenario("E2-range-validation", MemType.MAIN, Scenarios::rangeValidation));
        s.add(new Scenario("E2-register-rules", MemType.ANON_ONLY, Scenarios::registerRules));
        s.add(new Scenario("E3-copy-partial", MemType.ALL, Scenarios::copyPartial));
        s.add(new Scenario("E4-zeropage", MemType.ALL, Scenarios::zeropage));
        s.add(new Scenario("E4-poison", MemType.ALL, Scenarios::poison));
        s.add(new Scenario("E4-fill-over-marker", Set.of(MemType.ANON, MemType.SHMEM, MemType.HUGETLB),
                Scenarios::fillOverMarker));
        s.add(new Scenario("E5-move", MemType.ANON_ONLY, Scenarios::move));
        s.add(new Scenario("E5-move-not-anon", MemType.FILE, Scenarios::moveNotAnon));
        s.add(new Scenario("E6-remove-event-mmap-changing", Set.of(MemType.ANON, MemType.SHMEM, MemType.HUGETLB),
                Scenarios::removeEvent));
        s.add(new Scenario("wp-unpopulated-missing", MemType.ANON_ONLY, Scenarios::wpUnpopulatedMissing));
        s.add(new Scenario("scan-across-vmas", MemType.ALL, Scenarios::scanAcross));
        s.add(new Scenario("E6-unmap-remap-events", MemType.ALL, Scenarios::unmapRemapEvents));
        s.add(new Scenario("E6-faults-before-events", MemType.ANON_ONLY, Scenarios::faultsBeforeEvents));
        s.add(new Scenario("E7-exited-mm", MemType.ANON_ONLY, Scenarios::exitedMm));
        s.add(new Scenario("msg-flags-and-address", MemType.ALL, Scenarios::msgFlags));
        s.add(new Scenario("continue-minor", Set.of(MemType.SHMEM, MemType.HUGETLB), Scenarios::minor));
        s.add(new Scenario("wp-unpopulated", MemType.ANON_ONLY, Scenarios::wpUnpopulated));
        s.add(new Scenario("wp-unpopulated-whole-tables", MemType.ANON_ONLY, Scenarios::wpUnpopulatedWholeTables));
        s.add(new Scenario("wp-holes", MemType.ALL, Scenarios::wpHoles));
        s.add(new Scenario("S1-baseline", MemType.ALL, Scenarios::baseline));
        for (String op : List.of("none", "read", "DONTNEED", "FREE", "REMOVE", "PUNCH", "PAGEOUT", "mprotect",
                "UNREGISTER", "close")) {
            for (int mode : new int[] {W, M | W}) {
                s.add(new Scenario("S2-lifecycle-" + op + "-" + (mode == W ? "W" : "MW"), lifecycleTypes(op),
                        h -> lifecycle(h, op, mode)));
            }
        }
        s.add(new Scenario("S2-anon-dontneed-event", MemType.ANON_ONLY, Scenarios::anonDontneedEvent));
        s.add(new Scenario("S7-alias", MemType.SHARED_FILE, Scenarios::alias));
        s.add(new Scenario("S8-copy-loses-wp", Set.of(MemType.ANON, MemType.SHMEM, MemType.HUGETLB),
                Scenarios::copyLosesWp));
        s.add(new Scenario("S8-continue-loses-wp", Set.of(MemType.SHMEM, MemType.HUGETLB),
                Scenarios::continueLosesWp));
        s.add(new Scenario("S9-move-loses-wp", MemType.ANON_ONLY, Scenarios::moveLosesWp));
        s.add(new Scenario("S10-mremap", MemType.ALL, Scenarios::mremapNoEvent));
        s.add(new Scenario("S10-mremap-event", MemType.ANON_ONLY, Scenarios::mremapEvent));
        s.add(new Scenario("S10-fork", MemType.ALL, Scenarios::forkWp));
        s.add(new Scenario("S11-kernel-writers", MemType.MAIN, Scenarios::kernelWriters));
        s.add(new Scenario("S12-mprotect", MemType.ALL, Scenarios::mprotectRo));
        s.add(new Scenario("S14-async", Set.of(MemType.ANON, MemType.SHMEM, MemType.HUGETLB), Scenarios::async));
        s.add(new Scenario("S14-scan-args", MemType.ANON_ONLY, Scenarios::scanArgs));
        s.add(new Scenario("S15-stale-copy", MemType.ALL, Scenarios::staleCopy));
        s.add(new Scenario("S16-unregister-wake", MemType.ALL, Scenarios::unregisterWake));
        s.add(new Scenario("S16-unregister-wake-minor", Set.of(MemType.SHMEM, MemType.HUGETLB),
                Scenarios::unregisterWakeMinor));
        s.add(new Scenario("close-wakes", MemType.ALL, Scenarios::closeWakes));
        s.add(new Scenario("wake-refaults", MemType.ALL, Scenarios::wakeRefaults));
        s.add(new Scenario("sigbus-feature", MemType.ALL, Scenarios::sigbus));
        s.add(new Scenario("user-mode-only", MemType.ANON_ONLY, Scenarios::userModeOnly));
        s.add(new Scenario("E2-mixed-ranges", MemType.ANON_ONLY, Scenarios::mixedRanges));
        s.add(new Scenario("syscall-errors", MemType.ALL, Scenarios::syscallErrors));
        s.add(new Scenario("prot-variants", MemType.ALL, Scenarios::protVariants));
        s.add(new Scenario("ranges-with-holes", MemType.ALL, Scenarios::rangesWithHoles));
        s.add(new Scenario("private-over-cache", Set.of(MemType.SHMEM_PRIVATE, MemType.HUGETLB_PRIVATE),
                Scenarios::privateOverCache));
        s.add(new Scenario("two-uffds-events", MemType.MAIN, Scenarios::twoUffdsEvents));
        s.add(new Scenario("populate-holes", MemType.ALL, Scenarios::populateHoles));
        s.add(new Scenario("mremap-events-order", Set.of(MemType.ANON, MemType.SHMEM), Scenarios::mremapOrder));
        s.add(new Scenario("shmem-partial-pages", Set.of(MemType.SHMEM, MemType.SHMEM_PRIVATE),
                Scenarios::shmemPartial));
        s.add(new Scenario("hugetlb-geometry", Set.of(MemType.HUGETLB, MemType.HUGETLB_PRIVATE),
                Scenarios::hugetlbGeometry));
        s.add(new Scenario("anon-zero-page", MemType.ANON_ONLY, Scenarios::anonZeroPage));
        s.add(new Scenario("access-modes", MemType.ALL, Scenarios::accessModes));
        s.add(new Scenario("access-modes-uffd", MemType.ALL, Scenarios::accessModesUffd));
        s.add(new Scenario("minor-only-hole", Set.of(MemType.SHMEM, MemType.HUGETLB), Scenarios::minorOnlyHole));
        s.add(new Scenario("scan-masks", Set.of(MemType.ANON, MemType.SHMEM), Scenarios::scanMasks));
        s.add(new Scenario("selftest-poison", MemType.MAIN, Scenarios::selftestPoison));
        s.add(new Scenario("selftest-events", MemType.MAIN, Scenarios::selftestEvents));
        s.add(new Scenario("bounce-stress", MemType.ALL, Scenarios::bounce));
        s.add(new Scenario("prot-none-registered", MemType.ALL, Scenarios::protNone));
        s.add(new Scenario("close-unread", MemType.ALL, Scenarios::closeUnread));
        s.add(new Scenario("mremap-variants", MemType.ALL, Scenarios::mremapVariants));
        s.add(new Scenario("mremap-fixed-shrink", MemType.ALL, Scenarios::mremapFixedShrink));
        s.add(new Scenario("guard-regions", MemType.ANON_ONLY, Scenarios::guard));
        s.add(new Scenario("wp-over-poison", MemType.ALL, Scenarios::wpOverPoison));
        s.add(new Scenario("E5-move-more", MemType.ANON_ONLY, Scenarios::moveMore));
        s.add(new Scenario("spanning-access", MemType.ALL, Scenarios::spanning));
        s.add(new Scenario("events-range-clip", Set.of(MemType.ANON, MemType.SHMEM), Scenarios::removeClip));
        s.add(new Scenario("wake-and-read-batches", MemType.ANON_ONLY, Scenarios::wakeBatches));
        s.add(new Scenario("S6-thp", MemType.ANON_ONLY, Scenarios::thp));
        s.add(new Scenario("thp-read-zero", MemType.ANON_ONLY, Scenarios::thpReadZero));
        s.add(new Scenario("thp-missing", MemType.ANON_ONLY, Scenarios::thpMissing));
        s.add(new Scenario("thp-wp-registered-first", MemType.ANON_ONLY, Scenarios::thpWpFirst));
        s.add(new Scenario("thp-dontneed", MemType.ANON_ONLY, Scenarios::thpDontneed));
        s.add(new Scenario("thp-mprotect", MemType.ANON_ONLY, Scenarios::thpMprotect));
        s.add(new Scenario("thp-unwp-whole", MemType.ANON_ONLY, Scenarios::thpUnwpWhole));
        s.add(new Scenario("thp-wp-async", MemType.ANON_ONLY, Scenarios::thpAsync));
        s.add(new Scenario("thp-advice", MemType.ANON_ONLY, Scenarios::thpAdvice));
        s.add(new Scenario("thp-partial-register", MemType.ANON_ONLY, Scenarios::thpPartialRegister));
        s.add(new Scenario("thp-munmap-mremap", MemType.ANON_ONLY, Scenarios::thpMunmapMremap));
        s.add(new Scenario("thp-move", MemType.ANON_ONLY, Scenarios::thpMove));
        s.add(new Scenario("thp-collapse", MemType.ANON_ONLY, Scenarios::thpCollapse));
        s.add(new Scenario("thp-partial-advice", MemType.ANON_ONLY, Scenarios::thpPartialAdvice));
        s.add(new Scenario("thp-move-whole", MemType.ANON_ONLY, Scenarios::thpMoveWhole));
        Set<MemType> shm = Set.of(MemType.SHMEM, MemType.SHMEM_PRIVATE);
        s.add(new Scenario("shmem-thp-fault", Set.of(MemType.SHMEM), Scenarios::shmemThpFault));
        s.add(new Scenario("shmem-thp-private", Set.of(MemType.SHMEM), Scenarios::shmemThpPrivate));
        s.add(new Scenario("shmem-thp-wp", Set.of(MemType.SHMEM), Scenarios::shmemThpWp));
        s.add(new Scenario("shmem-thp-zap", Set.of(MemType.SHMEM), Scenarios::shmemThpZap));
        s.add(new Scenario("shmem-thp-punch", Set.of(MemType.SHMEM), Scenarios::shmemThpPunch));
        s.add(new Scenario("shmem-thp-minor", Set.of(MemType.SHMEM), Scenarios::shmemThpMinor));
        s.add(new Scenario("fault-around", shm, Scenarios::faultAround));
        s.add(new Scenario("fault-around-uffd", shm, Scenarios::faultAroundUffd));
        s.add(new Scenario("fault-around-falloc", shm, Scenarios::faultAroundFalloc));
        s.add(new Scenario("fault-around-vma-edge", shm, Scenarios::faultAroundEdge));
        s.add(new Scenario("copy-readonly-vma", MemType.ALL, Scenarios::copyReadonly));
        s.add(new Scenario("E2-vma-split-merge", MemType.ALL, Scenarios::splitMerge));
        s.add(new Scenario("zeropage-alias", MemType.ANON_ONLY, Scenarios::zeropageAlias));
        s.add(new Scenario("minor-fallocate", Set.of(MemType.SHMEM, MemType.HUGETLB), Scenarios::minorFallocate));
        s.add(new Scenario("shmem-fd-io", Set.of(MemType.SHMEM, MemType.SHMEM_PRIVATE), Scenarios::shmemFdIo));
        s.add(new Scenario("zeropage-wp", MemType.ANON_ONLY, Scenarios::zeropageWp));
        s.add(new Scenario("populate-missing", MemType.ALL, Scenarios::populateMissing));
        s.add(new Scenario("truncate-registered", MemType.FILE, Scenarios::truncate));
        s.add(new Scenario("copy-into-cached", Set.of(MemType.SHMEM, MemType.HUGETLB, MemType.SHMEM_PRIVATE,
                MemType.HUGETLB_PRIVATE), Scenarios::copyIntoCached));
        // gaps found by the semantics audit (docs/semantics-coverage.md)
        s.add(new Scenario("register-subset-keeps-modes", MemType.ALL, Scenarios::registerSubset));
        s.add(new Scenario("wp-wake-and-dontwake", MemType.ALL, Scenarios::wpWakeDontwake));
        s.add(new Scenario("continue-without-minor-mode", Set.of(MemType.SHMEM, MemType.HUGETLB),
                Scenarios::continueWithoutMinor));
        s.add(new Scenario("close-wakes-event-raiser", MemType.MAIN, Scenarios::closeWakesEventRaiser));
        s.add(new Scenario("async-missing-stays-sync", MemType.ANON_ONLY, Scenarios::asyncMissing));
        s.add(new Scenario("move-shmem-src", Set.of(MemType.SHMEM), Scenarios::moveShmemSrc));
        s.add(new Scenario("unregister-hugetlb-geometry", Set.of(MemType.HUGETLB, MemType.HUGETLB_PRIVATE),
                Scenarios::unregisterHugetlbGeometry));
        s.add(new Scenario("fdinfo-api-features", MemType.ANON_ONLY, Scenarios::fdinfoApi));
        s.add(new Scenario("thread-id-feature", MemType.MAIN, Scenarios::threadId));
        s.add(new Scenario("wake-unread-fault", MemType.MAIN, Scenarios::wakeUnreadFault));
        s.add(new Scenario("mremap-event-file", MemType.FILE, Scenarios::mremapEventFile));
        s.add(new Scenario("wp-range-only-hole", MemType.ALL, Scenarios::wpRangeOnlyHole));
        s.add(new Scenario("fill-minor-only", Set.of(MemType.SHMEM, MemType.HUGETLB), Scenarios::fillMinorOnly));
        s.add(new Scenario("scan-args-more", MemType.ANON_ONLY, Scenarios::scanArgsMore));
        s.add(new Scenario("partial-fill-wakes", MemType.ALL, Scenarios::partialFillWakes));
        s.add(new Scenario("partial-move-wakes", MemType.ANON_ONLY, Scenarios::partialMoveWakes));
        s.add(new Scenario("wp-bits-after-mode-loss", Set.of(MemType.ANON, MemType.SHMEM, MemType.SHMEM_PRIVATE),
                Scenarios::wpBitsAfterModeLoss));
        s.add(new Scenario("wp-bits-after-mode-loss-hugetlb", Set.of(MemType.HUGETLB, MemType.HUGETLB_PRIVATE),
                Scenarios::wpBitsAfterModeLossHugetlb));
        s.add(new Scenario("wp-bits-after-mode-loss-mprotect", Set.of(MemType.ANON, MemType.SHMEM,
                MemType.SHMEM_PRIVATE), Scenarios::wpBitsAfterModeLossMprotect));
        s.add(new Scenario("wp-range-mixed-vmas", MemType.ALL, Scenarios::wpRangeMixedVmas));
        s.add(new Scenario("fill-across-vmas", MemType.ALL, Scenarios::fillAcrossVmas));
        s.add(new Scenario("partial-continue-wakes", Set.of(MemType.SHMEM, MemType.HUGETLB),
                Scenarios::partialContinueWakes));
        return s;
    }

    static Set<MemType> lifecycleTypes(String op) {
        return switch (op) {
            case "FREE" -> MemType.ANON_ONLY;
            case "REMOVE", "PUNCH" -> MemType.FILE;
            case "PAGEOUT" -> Set.of(MemType.ANON, MemType.SHMEM, MemType.SHMEM_PRIVATE);
            default -> MemType.ALL;
        };
    }

    // ------------------------------------------------------------------ E1 .. E7

    static void api(Harness h) {
        var b = h.b;
        int pid = h.pid;
        int u = b.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        long a = h.map(MemType.ANON, 1);
        h.call("REGISTER before API", "EINVAL", () -> b.uffdRegister(pid, u, a, PAGE_SIZE, M));
        h.call("read before API", "EINVAL", () -> "msgs=" + b.uffdRead(pid, u, 1, 0).size());
        h.call("API(api=0xab)", "EINVAL", () -> b.uffdApi(pid, u, 0xab, 0));
        h.call("API(bit63)", "EINVAL", () -> b.uffdApi(pid, u, UFFD_API, 1L << 63));
        for (int bit = 17; bit < 32; bit++) {
            long f = 1L << bit;
            h.call("API(bit" + bit + ")", "EINVAL", () -> b.uffdApi(pid, u, UFFD_API, f));
        }
        h.call("API(0)", "features=0x1ffff ioctls=0x8000000000000003", () -> b.uffdApi(pid, u, UFFD_API, 0));
        h.call("API again", "EINVAL", () -> b.uffdApi(pid, u, UFFD_API, 0));
        h.call("read nonblock empty", "msgs=0", () -> "msgs=" + b.uffdRead(pid, u, 1, 0).size());
        h.call("userfaultfd(flags=0x4)", "EINVAL", () -> b.userfaultfd(pid, 4, false));
        int u2 = b.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        h.call("API(WP_ASYNC)", "features=0x1ffff ioctls=0x8000000000000003",
                () -> b.uffdApi(pid, u2, UFFD_API, UFFD_FEATURE_WP_ASYNC));
        h.call("API(all features)", "features=0x1ffff ioctls=0x8000000000000003", () -> {
            int u3 = b.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
            return b.uffdApi(pid, u3, UFFD_API, UFFD_API_FEATURES);
        });
        h.call("/dev/userfaultfd IOC_NEW", "OK", () -> b.userfaultfd(pid, O_CLOEXEC, true));
        h.call("/dev/userfaultfd IOC_NEW bad flags", "EINVAL", () -> b.userfaultfd(pid, 4, true));
    }

    static String expectedIoctls(MemType t, int mode) {
        if (mode == 0 || mode > 7) {
            return "EINVAL";
        }
        if (t.anon() && (mode & N) != 0) {
            return "EINVAL";
        }
        long base = t.hugetlb() ? 0x10c : 0x13c;
        if ((mode & W) != 0) {
            base |= 0x40;
        }
        if ((mode & N) != 0) {
            base |= 0x80;
        }
        return "0x" + Long.toHexString(base);
    }

    static void registerMatrix(Harness h) {
        long a = h.map(2);
        int u = h.uffd(0);
        for (int mode = 0; mode <= 8; mode++) {
            int m = mode;
            h.call("REGISTER mode=" + mode, expectedIoctls(h.type, mode),
                    () -> h.b.uffdRegister(h.pid, u, a, 2 * h.ps(), m));
        }
        // re-register replaces: MISSING then WP-only leaves WP only
        h.register(u, a, 2 * h.ps(), M);
        h.register(u, a, 2 * h.ps(), W);
        h.call("COPY into WP-only vma", "0x" + Long.toHexString(h.ps()),
                () -> h.b.uffdCopy(h.pid, u, a, h.fill(1, h.ps()), 0));
        h.call("UNREGISTER", "OK", () -> {
            h.b.uffdUnregister(h.pid, u, a, 2 * h.ps());
            return null;
        });
    }

    static void rangeValidation(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(0);
        var b = h.b;
        int pid = h.pid;
        h.call("REGISTER unaligned start", "EINVAL", () -> b.uffdRegister(pid, u, a + PAGE_SIZE / 2, ps, M));
        h.call("REGISTER unaligned len", "EINVAL", () -> b.uffdRegister(pid, u, a, PAGE_SIZE + 1, M));
        h.call("REGISTER len 0", "EINVAL", () -> b.uffdRegister(pid, u, a, 0, M));
        h.call("REGISTER start 0", "EINVAL", () -> b.uffdRegister(pid, u, 0, ps, M));
        h.call("REGISTER start 1<<47", "EINVAL", () -> b.uffdRegister(pid, u, 1L << 47, ps, M));
        h.call("REGISTER wrapping len", "EINVAL", () -> b.uffdRegister(pid, u, a, -PAGE_SIZE, M));
        if (h.type.hugetlb()) {
            h.call("REGISTER hugetlb start+4K", "EINVAL", () -> b.uffdRegister(pid, u, a + PAGE_SIZE, ps, M));
            h.call("REGISTER hugetlb len 4K", "EINVAL", () -> b.uffdRegister(pid, u, a, PAGE_SIZE, M));
            h.call("REGISTER hugetlb len HP+4K", "EINVAL", () -> b.uffdRegister(pid, u, a, ps + PAGE_SIZE, M));
        }
        h.register(u, a, 2 * ps, M | W);
        h.call("WAKE len 0", "EINVAL", () -> {
            b.uffdWake(pid, u, a, 0);
            return null;
        });
        h.call("WAKE unaligned", "EINVAL", () -> {
            b.uffdWake(pid, u, a + 1, PAGE_SIZE);
            return null;
        });
        h.call("COPY unaligned dst", "EINVAL", () -> b.uffdCopy(pid, u, a + 8, h.fill(1, ps), 0));
        h.call("COPY bad mode", "EINVAL", () -> b.uffdCopy(pid, u, a, h.fill(1, ps), 8));
        h.call("ZEROPAGE bad mode", "EINVAL", () -> b.uffdZeropage(pid, u, a, ps, 2));
        h.call("POISON bad mode", "EINVAL", () -> b.uffdPoison(pid, u, a, ps, 2));
        h.call("WRITEPROTECT WP|DONTWAKE", "EINVAL", () -> {
            b.uffdWriteprotect(pid, u, a, ps, 3);
            return null;
        });
        h.call("WRITEPROTECT bad mode", "EINVAL", () -> {
            b.uffdWriteprotect(pid, u, a, ps, 4);
            return null;
        });
        if (h.type.hugetlb()) {
            h.call("WRITEPROTECT hugetlb 4K", "EINVAL", () -> {
                b.uffdWriteprotect(pid, u, a, PAGE_SIZE, 1);
                return null;
            });
            h.call("COPY hugetlb len 4K", "EINVAL", () -> b.uffdCopy(pid, u, a, h.fill(1, PAGE_SIZE), 0));
        }
    }

    static void registerRules(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long a = h.map(MemType.ANON, 8);
        b.munmap(pid, a + 2 * PAGE_SIZE, PAGE_SIZE);
        int u = h.uffd(0);
        int u2 = h.uffd(0);
        h.call("REGISTER hole only", "EINVAL", () -> b.uffdRegister(pid, u, a + 2 * PAGE_SIZE, PAGE_SIZE, M));
        h.call("REGISTER range with hole", "0x13c", () -> b.uffdRegister(pid, u, a, 5 * PAGE_SIZE, M));
        h.call("REGISTER other uffd", "EBUSY", () -> b.uffdRegister(pid, u2, a, PAGE_SIZE, M));
        h.call("UNREGISTER via other uffd", "EINVAL", () -> {
            b.uffdUnregister(pid, u2, a, PAGE_SIZE);
            return null;
        });
        h.call("UNREGISTER never registered", "OK", () -> {
            b.uffdUnregister(pid, u, a + 6 * PAGE_SIZE, PAGE_SIZE);
            return null;
        });
        h.call("UNREGISTER hole only", "EINVAL", () -> {
            b.uffdUnregister(pid, u, a + 2 * PAGE_SIZE, PAGE_SIZE);
            return null;
        });
        h.call("COPY via other uffd of same mm", "0x1000", () -> b.uffdCopy(pid, u2, a, h.fill(3, PAGE_SIZE), 0));
        h.call("ZEROPAGE into unregistered", "ENOENT", () -> b.uffdZeropage(pid, u, a + 6 * PAGE_SIZE,
                PAGE_SIZE, 0));
        h.call("WRITEPROTECT on MISSING-only", "ENOENT", () -> {
            b.uffdWriteprotect(pid, u, a, PAGE_SIZE, 1);
            return null;
        });
        h.call("CONTINUE on anon", "EINVAL", () -> b.uffdContinue(pid, u, a + PAGE_SIZE, PAGE_SIZE, 0));
        h.call("WAKE on unregistered", "OK", () -> {
            b.uffdWake(pid, u, a + 6 * PAGE_SIZE, PAGE_SIZE);
            return null;
        });
        // partial unregister splits, the neighbour stays registered
        h.call("UNREGISTER page 0", "OK", () -> {
            b.uffdUnregister(pid, u, a + PAGE_SIZE, PAGE_SIZE);
            return null;
        });
        h.call("COPY into unregistered page", "ENOENT", () -> b.uffdCopy(pid, u, a + PAGE_SIZE,
                h.fill(3, PAGE_SIZE), 0));
        h.call("COPY into still registered neighbour", "0x1000", () -> b.uffdCopy(pid, u, a + 3 * PAGE_SIZE,
                h.fill(3, PAGE_SIZE), 0));
        // WRITEPROTECT over hole and past the registered vma
        long c = h.map(MemType.ANON, 4);
        h.register(u, c, 4 * PAGE_SIZE, W);
        h.call("WRITEPROTECT past vma", "ENOENT", () -> {
            b.uffdWriteprotect(pid, u, c + 3 * PAGE_SIZE, 2 * PAGE_SIZE, 1);
            return null;
        });
        // a read-only shared fd cannot be registered (no VM_MAYWRITE) -- not expressible via the SPI: skipped
    }

    static void copyPartial(Harness h) {
        long ps = h.ps();
        long a = h.map(5);
        h.b.munmap(h.pid, a + 4 * ps, ps);
        int u = h.uffd(0);
        var b = h.b;
        int pid = h.pid;
        h.register(u, a, 4 * ps, M);
        h.call("COPY page 2", "0x" + Long.toHexString(ps), () -> b.uffdCopy(pid, u, a + 2 * ps, h.fill(2, ps), 0));
        h.call("COPY page 2 again", "EEXIST", () -> b.uffdCopy(pid, u, a + 2 * ps, h.fill(2, ps), 0));
        h.call("COPY 4 pages, 3rd present", "EAGAIN done=0x" + Long.toHexString(2 * ps),
                () -> b.uffdCopy(pid, u, a, h.fill(1, 4 * ps), 0));
        h.call("COPY MODE_WP on non-WP vma", "EINVAL", () -> b.uffdCopy(pid, u, a + 3 * ps, h.fill(1, ps),
                UFFDIO_COPY_MODE_WP));
        h.call("COPY past the vma", "ENOENT", () -> b.uffdCopy(pid, u, a + 3 * ps, h.fill(1, 2 * ps), 0));
        h.pm("after copies", a, 4);
        h.readData("page0", a, 16);
        h.readData("page2", a + 2 * ps, 16);
    }

    static void zeropage(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, M);
        String exp = h.type.hugetlb() ? "EINVAL" : "0x" + Long.toHexString(ps);
        h.call("ZEROPAGE", exp, () -> h.b.uffdZeropage(h.pid, u, a, ps, 0));
        if (!h.type.hugetlb()) {
            h.call("ZEROPAGE again", "EEXIST", () -> h.b.uffdZeropage(h.pid, u, a, ps, 0));
            h.pmExpect("after zeropage", a, 1, h.type.shared() ? "P--F" : "P---");
            h.readData("page0", a, 64);
            h.writeHandled(u, a, 9);
            h.pm("after write", a, 1);
        }
    }

    static void poison(Harness h) {
        long ps = h.ps();
        long a = h.map(4);
        int u = h.uffd(0);
        var b = h.b;
        int pid = h.pid;
        h.register(u, a, 4 * ps, M);
        h.call("COPY page 0", () -> b.uffdCopy(pid, u, a, h.fill(1, ps), 0));
        h.call("POISON present page", "EEXIST", () -> b.uffdPoison(pid, u, a, ps, 0));
        h.call("POISON 2 pages", "0x" + Long.toHexString(2 * ps), () -> b.uffdPoison(pid, u, a + ps, 2 * ps, 0));
        h.pmExpect("poisoned", a + ps, 2, h.type.hugetlb() ? "---- ----" : "-S-- -S--");
        h.expect("read poisoned", h.read(a + ps).finish(), "SIGBUS/2 at A+0x" + Long.toHexString(ps));
        h.write(a + ps, 1).finish();
        h.call("COPY over poison", "0x" + Long.toHexString(ps), () -> b.uffdCopy(pid, u, a + ps, h.fill(4, ps), 0));
        h.readData("copied over poison", a + ps, 8);
        if (!h.type.hugetlb()) {
            h.call("MADV_DONTNEED poison", () -> {
                b.madvise(pid, a + 2 * ps, ps, MADV_DONTNEED);
                return null;
            });
            h.pm("after dontneed", a + 2 * ps, 1);
        }
        h.call("POISON bad mode", "EINVAL", () -> b.uffdPoison(pid, u, a + 3 * ps, ps, 2));
        h.drain(u);
    }

    static void fillOverMarker(Harness h) {
        long ps = h.ps();
        long a = h.map(3);
        int u = h.uffd(UFFD_FEATURE_WP_UNPOPULATED);
        var b = h.b;
        int pid = h.pid;
        h.register(u, a, 3 * ps, M | W);
        h.wp(u, a, 3 * ps, true);
        h.pmExpect("markers", a, 3, h.type.hugetlb() ? "--W- --W- --W-" : "-SW- -SW- -SW-");
        if (!h.type.hugetlb()) {
            h.call("ZEROPAGE over marker", h.type.anon() ? "EEXIST" : "0x1000",
                    () -> b.uffdZeropage(pid, u, a, ps, 0));
            h.pm("after zeropage", a, 1);
        }
        h.call("COPY over marker", "0x" + Long.toHexString(ps), () -> b.uffdCopy(pid, u, a + ps, h.fill(5, ps), 0));
        h.pmExpect("after copy", a + ps, 1, h.type.anon() ? "P---" : "P--F");
        h.expect("write after COPY", h.writeHandled(u, a + ps, 6), "none");
        h.call("COPY(MODE_WP) over marker", "0x" + Long.toHexString(ps),
                () -> b.uffdCopy(pid, u, a + 2 * ps, h.fill(5, ps), UFFDIO_COPY_MODE_WP));
        h.pmExpect("after copy wp", a + 2 * ps, 1, h.type.anon() ? "P-W-" : "P-WF");
        h.expect("write after COPY(MODE_WP)", h.writeHandled(u, a + 2 * ps, 6), "3");
    }

    static void move(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long src = h.map(MemType.ANON, 4);
        long dst = h.map(MemType.ANON, 4);
        long unreg = h.map(MemType.ANON, 1);
        int u = h.uffd(0);
        h.register(u, dst, 4 * PAGE_SIZE, M);
        h.populate(src, 2, 0x30);
        h.call("MOVE 1 page", "0x1000", () -> b.uffdMove(pid, u, dst, src, PAGE_SIZE, 0));
        h.pm("src/dst after move", src, 1);
        h.pm("dst", dst, 1);
        h.readData("dst", dst, 1);
        h.readData("src", src, 1);
        h.call("MOVE onto populated dst", "EEXIST", () -> b.uffdMove(pid, u, dst, src + PAGE_SIZE, PAGE_SIZE, 0));
        h.call("MOVE from src hole", "ENOENT", () -> b.uffdMove(pid, u, dst + PAGE_SIZE, src + 2 * PAGE_SIZE,
                PAGE_SIZE, 0));
        h.call("MOVE from src hole ALLOW_SRC_HOLES", "0x1000", () -> b.uffdMove(pid, u, dst + PAGE_SIZE,
                src + 2 * PAGE_SIZE, PAGE_SIZE, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES));
        h.pm("dst+1", dst + PAGE_SIZE, 1);
        h.call("MOVE 2 pages, 2nd hole", "EAGAIN done=0x1000", () -> b.uffdMove(pid, u, dst + 2 * PAGE_SIZE,
                src + PAGE_SIZE, 2 * PAGE_SIZE, 0));
        h.call("MOVE into unregistered dst", "EINVAL", () -> b.uffdMove(pid, u, unreg, src + 3 * PAGE_SIZE,
                PAGE_SIZE, 0));
        h.call("MOVE unaligned src", "EINVAL", () -> b.uffdMove(pid, u, dst + 3 * PAGE_SIZE, src + 8,
                PAGE_SIZE, 0));
        h.call("MOVE bad mode", "EINVAL", () -> b.uffdMove(pid, u, dst + 3 * PAGE_SIZE, src, PAGE_SIZE, 4));
    }

    static void moveNotAnon(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        long anon = h.map(MemType.ANON, 1);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, M);
        h.populate(anon, 1, 1);
        h.call("MOVE anon -> file-backed dst", "EINVAL", () -> h.b.uffdMove(h.pid, u, a, anon, PAGE_SIZE, 0));
    }

    static void removeEvent(Harness h) {
        long ps = h.ps();
        long a = h.map(4);
        long anon = h.map(MemType.ANON, 1);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMOVE);
        var b = h.b;
        int pid = h.pid;
        h.populate(a, 4, 1);
        h.populate(anon, 1, 1);
        h.register(u, a, 4 * ps, M | W);
        int advice = h.type.anon() ? MADV_DONTNEED : MADV_REMOVE;
        Harness.Op mad = h.async("madvise page 0", () -> {
            b.madvise(pid, a, ps, advice);
            return null;
        });
        h.expect("madvise while event unread", mad.state(), "blocked");
        h.call("COPY while pending", "EAGAIN", () -> b.uffdCopy(pid, u, a + 3 * ps, h.fill(1, ps), 0));
        h.call("ZEROPAGE while pending", "EAGAIN", () -> b.uffdZeropage(pid, u, a + 3 * ps, ps, 0));
        h.call("POISON while pending", "EAGAIN", () -> b.uffdPoison(pid, u, a + 3 * ps, ps, 0));
        h.call("WRITEPROTECT while pending", "EAGAIN", () -> {
            b.uffdWriteprotect(pid, u, a + 3 * ps, ps, 1);
            return null;
        });
        h.call("MOVE while pending", "EAGAIN", () -> b.uffdMove(pid, u, a + 3 * ps, anon, ps, 0));
        if (!h.type.anon()) {
            h.call("CONTINUE while pending", "EAGAIN", () -> b.uffdContinue(pid, u, a + 3 * ps, ps, 0));
        }
        h.call("WAKE while pending", "OK", () -> {
            b.uffdWake(pid, u, a, ps);
            return null;
        });
        h.register(u, a, 4 * ps, M | W);
        h.drain(u);
        h.expect("madvise after read", mad.finish(), "OK");
        h.pm("after remove", a, 2);
        // MADV_PAGEOUT / COLD / mprotect raise nothing; MADV_FREE (anon) raises REMOVE
        h.call("MADV_COLD", () -> {
            b.madvise(pid, a + ps, ps, MADV_COLD);
            return null;
        });
        h.call("mprotect RO", () -> {
            b.mprotect(pid, a + ps, ps, PROT_READ);
            return null;
        });
        if (h.type.anon()) {
            Harness.Op free = h.async("MADV_FREE", () -> {
                b.madvise(pid, a + 2 * ps, ps, MADV_FREE);
                return null;
            });
            free.state();
            h.drain(u);
            free.finish();
        } else {
            h.call("fallocate PUNCH_HOLE", () -> {
                b.fallocate(pid, h.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * ps, ps);
                return null;
            });
            Harness.Op dn = h.async("MADV_DONTNEED shmem", () -> {
                b.madvise(pid, a + 3 * ps, ps, MADV_DONTNEED);
                return null;
            });
            dn.state();
            h.drain(u);
            dn.finish();
        }
        h.drain(u);
    }

    static void unmapRemapEvents(Harness h) {
        long ps = h.ps();
        long a = h.map(8);
        long d = h.map(2);
        int u = h.uffd(UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP);
        var b = h.b;
        int pid = h.pid;
        h.populate(a, 8, 1);
        h.register(u, a, 8 * ps, M | W);
        Harness.Op un = h.async("munmap 2 pages", () -> {
            b.munmap(pid, a + 5 * ps, 2 * ps);
            return null;
        });
        un.state();
        h.drain(u);
        un.finish();
        Harness.Op mr = h.async("mremap move 2 pages fixed", () -> b.mremap(pid, a + 2 * ps, 2 * ps, 2 * ps,
                MREMAP_MAYMOVE | MREMAP_FIXED, d) == d ? "OK" : "moved elsewhere");
        mr.state();
        h.drain(u);
        mr.finish();
        h.pm("moved", d, 2);
        Harness.Op sh = h.async("mremap shrink", () -> b.mremap(pid, a, 2 * ps, ps, 0, 0) == a ? "OK" : "?");
        sh.state();
        h.drain(u);
        sh.finish();
        if (!h.type.hugetlb()) {
            Harness.Op fx = h.async("mmap MAP_FIXED over registered page", () -> b.mmap(pid, a + 4 * ps, ps,
                    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == a + 4 * ps ? "OK" : "?");
            fx.state();
            h.drain(u);
            fx.finish();
            h.call("COPY into the new mapping", "ENOENT", () -> b.uffdCopy(pid, u, a + 4 * ps, h.fill(1, ps), 0));
        }
        h.drain(u);
    }

    static void faultsBeforeEvents(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long a = h.map(MemType.ANON, 4);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMOVE);
        h.populate(a + 2 * PAGE_SIZE, 1, 1);
        h.register(u, a, 4 * PAGE_SIZE, M);
        Harness.Op mad = h.async("madvise", () -> {
            b.madvise(pid, a + 2 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED);
            return null;
        });
        mad.state();
        Harness.Op rd = h.read(a);
        rd.state();
        List<UffdMsg> got = h.readMsgs(u, 500);
        List<String> order = got.stream().map(h::msg).toList();
        h.log("one read: " + order);
        h.expect("order", String.join(", ", order), "PF flags=0 A+0x0, REMOVE A+0x2000..A+0x3000");
        mad.finish();
        h.call("COPY page 0", () -> b.uffdCopy(pid, u, a, h.fill(1, PAGE_SIZE), 0));
        rd.finish();
        // two threads on one page: two messages; one COPY wakes both
        Harness.Op r1 = h.read(a + PAGE_SIZE);
        Harness.Op r2 = h.read(a + PAGE_SIZE);
        r1.state();
        r2.state();
        List<UffdMsg> two = h.readMsgs(u, 500);
        h.log("two threads: " + two.stream().map(h::msg).toList());
        h.call("COPY", () -> b.uffdCopy(pid, u, a + PAGE_SIZE, h.fill(2, PAGE_SIZE), 0));
        r1.finish();
        r2.finish();
    }

    static void exitedMm(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long a = h.map(MemType.ANON, 2);
        int u = h.uffd(0);
        h.register(u, a, 2 * PAGE_SIZE, M | W);
        // the child inherits the fd (no EVENT_FORK); the owner exits; the child is the monitor now
        int child = h.b.fork(pid).pid();
        try {
            b.exit(pid);
            h.call("COPY after exit", "ESRCH", () -> b.uffdCopy(child, u, a, h.fill(1, PAGE_SIZE), 0));
            h.call("ZEROPAGE after exit", "ESRCH", () -> b.uffdZeropage(child, u, a, PAGE_SIZE, 0));
            h.call("WRITEPROTECT after exit", "ESRCH", () -> {
                b.uffdWriteprotect(child, u, a, PAGE_SIZE, 1);
                return null;
            });
            h.call("REGISTER after exit", "ENOMEM", () -> b.uffdRegister(child, u, a, PAGE_SIZE, M));
            h.call("UNREGISTER after exit", "ENOMEM", () -> {
                b.uffdUnregister(child, u, a, PAGE_SIZE);
                return null;
            });
            h.call("WAKE after exit", "OK", () -> {
                b.uffdWake(child, u, a, PAGE_SIZE);
                return null;
            });
            h.call("read after exit", "msgs=0", () -> "msgs=" + b.uffdRead(child, u, 4, 0).size());
        } finally {
            b.exit(child);
        }
    }

    // ------------------------------------------------------------------ messages, minor, wp-unpopulated

    static void msgFlags(Harness h) {
        long ps = h.ps();
        long a = h.map(4);
        int u = h.uffd(0);
        int mode = h.type.anon() ? M | W : M | W | N;
        h.register(u, a, 4 * ps, mode);
        Harness.Op r = h.read(a + ps + 0x123);
        h.handle(r, u);
        Harness.Op w = h.write(a + 2 * ps + 0x1055, 1);
        h.handle(w, u);
        h.wp(u, a + ps, ps, true);
        h.expect("read of wp'd page", h.read(a + ps).finish().startsWith("ok") ? "ok" : "fault", "ok");
        h.expect("write of wp'd page", h.writeHandled(u, a + ps + 8, 2), "3");
        h.drain(u);
        int ue = h.uffd(UFFD_FEATURE_EXACT_ADDRESS);
        long b2 = h.map(2);
        h.register(ue, b2, 2 * ps, M);
        Harness.Op r2 = h.read(b2 + ps + 0x234);
        h.handle(r2, ue);
    }

    static void minor(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        long b2 = h.alias(2);
        int u = h.uffd(0);
        h.populate(a, 2, 0x40);
        h.register(u, b2, 2 * ps, N);
        Harness.Op r = h.read(b2);
        h.handle(r, u);
        h.pmExpect("after CONTINUE", b2, 1, "P--F");
        h.call("CONTINUE again", "EEXIST", () -> h.b.uffdContinue(h.pid, u, b2, ps, 0));
        Harness.Op w = h.write(b2 + ps, 0x41);
        h.handle(w, u);
        h.readData("page1 via A", a + ps, 1);
        h.call("fallocate PUNCH page 1", () -> {
            h.b.fallocate(h.pid, h.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, ps, ps);
            return null;
        });
        h.call("CONTINUE page not in cache", "EFAULT", () -> h.b.uffdContinue(h.pid, u, b2 + ps, ps, 0));
        h.call("CONTINUE MODE_WP without WP mode", "EINVAL", () -> h.b.uffdContinue(h.pid, u, b2 + ps, ps,
                UFFDIO_CONTINUE_MODE_WP));
    }

    static void wpUnpopulated(Harness h) {
        var b = h.b;
        long a = h.map(MemType.ANON, 4);
        int u = h.uffd(UFFD_FEATURE_WP_UNPOPULATED);
        h.register(u, a, 4 * PAGE_SIZE, W);
        h.wp(u, a, 4 * PAGE_SIZE, true);
        h.pmExpect("wp holes", a, 4, "-SW- -SW- -SW- -SW-");
        h.wp(u, a, PAGE_SIZE, false);
        h.pmExpect("un-wp marker", a, 1, "----");
        h.call("DONTNEED marker", () -> {
            b.madvise(h.pid, a + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED);
            return null;
        });
        h.pmExpect("after dontneed", a + PAGE_SIZE, 1, "----");
        h.expect("write after dontneed", h.writeHandled(u, a + PAGE_SIZE, 1), "none");
        h.readData("read marker", a + 2 * PAGE_SIZE, 8);
        h.pmExpect("read marker", a + 2 * PAGE_SIZE, 1, "P-W-");
        h.expect("write after read", h.writeHandled(u, a + 2 * PAGE_SIZE, 1), "3");
        h.expect("write marker", h.writeHandled(u, a + 3 * PAGE_SIZE, 1), "3");
        h.pm("final", a, 4);
    }

    /**
     * WP_UNPOPULATED over whole PTE tables (the emulator shares one all-markers table between them, copied on
     * write): faults, partial and whole-table un-protect and DONTNEED inside such tables.
     */
    static void wpUnpopulatedWholeTables(Harness h) {
        var b = h.b;
        long raw = b.mmap(h.pid, 0, 3 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        long t = (raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1); // two whole PTE tables from t
        h.name("A", t, 2 * PMD_SIZE);
        int u = h.uffd(UFFD_FEATURE_WP_UNPOPULATED);
        h.register(u, t, 2 * PMD_SIZE, W);
        h.wp(u, t, 2 * PMD_SIZE, true);
        h.pm("first table's start", t, 2);
        h.pm("across the second table's start", t + PMD_SIZE - PAGE_SIZE, 3);
        h.readData("read marker", t + 5 * PAGE_SIZE, 8);
        h.pm("after read", t + 4 * PAGE_SIZE, 3);
        h.expect("write marker", h.writeHandled(u, t + 9 * PAGE_SIZE, 1), "3");
        h.pm("after write", t + 8 * PAGE_SIZE, 3);
        h.wp(u, t + 64 * PAGE_SIZE, 8 * PAGE_SIZE, false);
        h.pm("partial un-wp", t + 63 * PAGE_SIZE, 10);
        h.call("DONTNEED markers", () -> {
            b.madvise(h.pid, t + 100 * PAGE_SIZE, 4 * PAGE_SIZE, MADV_DONTNEED);
            return null;
        });
        h.pm("after dontneed", t + 99 * PAGE_SIZE, 6);
        h.wp(u, t + PMD_SIZE, PMD_SIZE, false);
        h.pm("un-wp the second table", t + PMD_SIZE - PAGE_SIZE, 3);
        h.pm("second table's end", t + 2 * PMD_SIZE - PAGE_SIZE, 1);
        h.expect("write after un-wp", h.writeHandled(u, t + PMD_SIZE + PAGE_SIZE, 1), "none");
        h.wp(u, t + PMD_SIZE, PMD_SIZE, true);
        h.pm("re-wp the second table", t + PMD_SIZE, 3);
        h.expect("write after re-wp", h.writeHandled(u, t + PMD_SIZE + 2 * PAGE_SIZE, 1), "3");
    }

    static void wpHoles(Harness h) {
        long ps = h.ps();
        long a = h.map(4);
        int u = h.uffd(0);
        h.populate(a, 2, 1);
        h.register(u, a, 4 * ps, W);
        h.wp(u, a, 4 * ps, true);
        String present = h.type.shared() ? "P-WF" : "P-W-";
        String hole = h.type.anon() ? "----" : h.type.hugetlb() ? "--W-" : "-SW-";
        h.pmExpect("2 present + 2 holes", a, 4, present + " " + present + " " + hole + " " + hole);
        h.expect("write hole", h.writeHandled(u, a + 2 * ps, 1), h.type.anon() ? "none" : "3");
        h.readData("read hole 3", a + 3 * ps, 4);
        h.pm("after read", a + 3 * ps, 1);
        h.expect("write hole after read", h.writeHandled(u, a + 3 * ps, 1), h.type.anon() ? "none" : "3");
        h.wp(u, a, ps, false);
        h.pm("after un-wp", a, 1);
    }

    // ------------------------------------------------------------------ S scenarios

    static void baseline(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(0);
        h.populate(a, 2, 0x10);
        h.register(u, a, 2 * ps, W);
        h.wp(u, a, 2 * ps, true);
        h.pmExpect("wp", a, 2, h.type.shared() ? "P-WF P-WF" : "P-W- P-W-");
        h.readData("before write", a, 2);
        h.expect("write", h.writeHandled(u, a, 0x77), "3");
        h.pmExpect("after resolve", a, 2, h.type.shared() ? "P--F P-WF" : "P--- P-W-");
        h.readData("after write", a, 2);
        h.drain(u);
    }

    /** Reference §6.1: populate, register, WP, apply {@code op}, write one byte with the handler. */
    static void lifecycle(Harness h, String op, int mode) {
        long ps = h.ps();
        MemType t = h.type;
        var b = h.b;
        int pid = h.pid;
        long a = h.map(2);
        int u = h.uffd(0);
        h.populate(a, 2, 0x20);
        h.register(u, a, 2 * ps, mode);
        h.wp(u, a, 2 * ps, true);
        String present = t.shared() ? "P-WF" : "P-W-";
        h.pmExpect("before", a, 1, present);
        String pmAfter;
        String flags;
        boolean mw = mode == (M | W);
        switch (op) {
            case "none" -> {
                pmAfter = present;
                flags = "3";
            }
            case "read" -> {
                h.readData("read", a, 1);
                pmAfter = present;
                flags = "3";
            }
            case "DONTNEED", "FREE" -> {
                h.call("madvise " + op, () -> {
                    b.madvise(pid, a, ps, op.equals("FREE") ? MADV_FREE : MADV_DONTNEED);
                    return null;
                });
                if (op.equals("FREE")) {
                    // MADV_FREE only marks the page lazily freeable: it stays mapped with its wp bit
                    pmAfter = "P-W-";
                    flags = "3";
                } else if (t.anon()) {
                    pmAfter = "----";
                    flags = mw ? "1" : "none";
                } else {
                    pmAfter = t.hugetlb() ? "--W-" : "-SW-";
                    // a private hugetlb page is dropped: the hole raises MISSING first on M|W
                    flags = mw && t == MemType.HUGETLB_PRIVATE ? "1" : "3";
                }
            }
            case "REMOVE" -> {
                String r = h.call("madvise REMOVE", () -> {
                    b.madvise(pid, a, ps, MADV_REMOVE);
                    return null;
                });
                if (!t.shared()) {
                    h.expect("REMOVE on private", r, "EACCES");
                    pmAfter = present;
                    flags = "3";
                } else {
                    pmAfter = t.hugetlb() ? "--W-" : "-SW-";
                    flags = mw ? "1" : "3";
                }
            }
            case "PUNCH" -> {
                h.call("fallocate PUNCH_HOLE", "OK", () -> {
                    b.fallocate(pid, h.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, ps);
                    return null;
                });
                if (t == MemType.SHMEM_PRIVATE) {
                    pmAfter = present;
                    flags = "3";
                } else {
                    pmAfter = t.hugetlb() ? "--W-" : "-SW-";
                    flags = mw ? "1" : "3";
                }
            }
            case "PAGEOUT" -> {
                h.call("madvise PAGEOUT", "OK", () -> {
                    b.madvise(pid, a, ps, MADV_PAGEOUT);
                    return null;
                });
                flags = "3";
                if (ConformanceTest.swapOn) {
                    pmAfter = "-SW-";
                } else if (t.shared()) {
                    // no swap: reclaim unmaps a shmem folio (marker) and keeps it in the page cache, but only
                    // if the folio already left the per-CPU LRU batch, so the kernel is not deterministic here
                    h.log("pm after PAGEOUT: (not deterministic without swap)");
                    h.expect("write after PAGEOUT", h.writeHandled(u, a, 0x55), flags);
                    h.readData("after", a, 1);
                    return;
                } else {
                    pmAfter = present;
                }
            }
            case "mprotect" -> {
                h.call("mprotect RO", "OK", () -> {
                    b.mprotect(pid, a, ps, PROT_READ);
                    return null;
                });
                h.call("mprotect RW", "OK", () -> {
                    b.mprotect(pid, a, ps, PROT_READ | PROT_WRITE);
                    return null;
                });
                pmAfter = present;
                flags = "3";
            }
            case "UNREGISTER" -> {
                h.call("UNREGISTER", "OK", () -> {
                    b.uffdUnregister(pid, u, a, 2 * ps);
                    return null;
                });
                pmAfter = t.shared() ? "P--F" : "P---";
                flags = "none";
            }
            case "close" -> {
                h.call("close(uffd)", "OK", () -> {
                    b.close(pid, u);
                    return null;
                });
                pmAfter = t.shared() ? "P--F" : "P---";
                h.pmExpect("after close", a, 2, pmAfter + " " + pmAfter);
                Harness.Op w = h.write(a, 0x66);
                h.expect("write after close", w.finish(), "ok");
                h.readData("after", a, 1);
                return;
            }
            default -> throw new IllegalArgumentException(op);
        }
        h.pmExpect("after " + op, a, 1, pmAfter);
        h.expect("write after " + op, h.writeHandled(u, a, 0x55), flags);
        h.pm("after write", a, 2);
        h.readData("after", a, 1);
        h.drain(u);
    }

    static void anonDontneedEvent(Harness h) {
        var b = h.b;
        long a = h.map(MemType.ANON, 2);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMOVE);
        h.populate(a, 2, 1);
        h.register(u, a, 2 * PAGE_SIZE, W);
        h.wp(u, a, 2 * PAGE_SIZE, true);
        Harness.Op mad = h.async("DONTNEED", () -> {
            b.madvise(h.pid, a, PAGE_SIZE, MADV_DONTNEED);
            return null;
        });
        mad.state();
        h.drain(u);
        mad.finish();
        h.expect("write after zap", h.writeHandled(u, a, 2), "none");
    }

    static void alias(Harness h) {
        long ps = h.ps();
        long a = h.map(1);
        long b2 = h.alias(1);
        long c = h.alias(1);
        int u = h.uffd(0);
        h.populate(a, 1, 1);
        h.readData("B", b2, 1);
        h.register(u, a, ps, W);
        h.register(u, b2, ps, W);
        h.wp(u, a, ps, true);
        h.pm("A", a, 1);
        h.pm("B", b2, 1);
        h.pm("C", c, 1);
        h.expect("write via B", h.writeHandled(u, b2, 2), "none");
        h.expect("write via C", h.writeHandled(u, c, 3), "none");
        h.readData("A sees", a, 1);
        h.pmExpect("A still wp", a, 1, "P-WF");
        h.expect("write via A", h.writeHandled(u, a, 4), "3");
    }

    static void copyLosesWp(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(h.type.anon() ? UFFD_FEATURE_WP_UNPOPULATED : 0);
        var b = h.b;
        h.register(u, a, 2 * ps, M | W);
        h.wp(u, a, 2 * ps, true);
        // write to a wp'd hole: MISSING(1); the handler COPYs without MODE_WP; the next write is silent
        h.expect("write hole", h.writeHandled(u, a, 1), "1");
        h.pm("after COPY", a, 1);
        h.expect("next write", h.writeHandled(u, a + 1, 2), "none");
        // same with COPY(MODE_WP): the next write faults with WP
        Harness.Op w = h.write(a + ps, 3);
        for (UffdMsg m : h.settle(w, u)) {
            if (m instanceof UffdMsg.Pagefault) {
                h.call("COPY(MODE_WP)", () -> b.uffdCopy(h.pid, u, a + ps, h.fill(9, ps), UFFDIO_COPY_MODE_WP));
            }
        }
        h.handle(w, u);
        h.pm("after COPY(MODE_WP)", a + ps, 1);
    }

    static void continueLosesWp(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(0);
        h.populate(a, 2, 0x11);
        h.register(u, a, 2 * ps, N | W);
        h.wp(u, a, 2 * ps, true);
        h.call("DONTNEED", () -> {
            h.b.madvise(h.pid, a, 2 * ps, MADV_DONTNEED);
            return null;
        });
        h.pm("markers over cached pages", a, 2);
        Harness.Op r = h.read(a);
        h.handle(r, u);
        h.pmExpect("after CONTINUE", a, 1, "P--F");
        h.expect("write after CONTINUE", h.writeHandled(u, a, 1), "none");
        Harness.Op r2 = h.read(a + ps);
        for (UffdMsg m : h.settle(r2, u)) {
            if (m instanceof UffdMsg.Pagefault) {
                h.call("CONTINUE(MODE_WP)", () -> h.b.uffdContinue(h.pid, u, a + ps, ps, UFFDIO_CONTINUE_MODE_WP));
            }
        }
        r2.finish();
        h.pmExpect("after CONTINUE(MODE_WP)", a + ps, 1, "P-WF");
        h.expect("write after CONTINUE(MODE_WP)", h.writeHandled(u, a + ps, 1), "3");
    }

    static void moveLosesWp(Harness h) {
        long src = h.map(MemType.ANON, 1);
        long dst = h.map(MemType.ANON, 1);
        int u = h.uffd(0);
        h.populate(src, 1, 1);
        h.register(u, src, PAGE_SIZE, W);
        h.wp(u, src, PAGE_SIZE, true);
        h.register(u, dst, PAGE_SIZE, M | W);
        h.call("MOVE wp'd page", "0x1000", () -> h.b.uffdMove(h.pid, u, dst, src, PAGE_SIZE, 0));
        h.pmExpect("dst", dst, 1, "P---");
        h.expect("write dst", h.writeHandled(u, dst, 2), "none");
    }

    static void mremapNoEvent(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        long d = h.map(2);
        int u = h.uffd(0);
        h.populate(a, 2, 1);
        h.register(u, a, 2 * ps, W);
        h.wp(u, a, 2 * ps, true);
        h.call("mremap", "OK", () -> h.b.mremap(h.pid, a, 2 * ps, 2 * ps, MREMAP_MAYMOVE | MREMAP_FIXED, d) == d
                ? "OK" : "elsewhere");
        h.pmExpect("moved", d, 1, h.type.shared() ? "P--F" : "P---");
        h.expect("write moved", h.writeHandled(u, d, 2), "none");
    }

    static void mremapEvent(Harness h) {
        long a = h.map(MemType.ANON, 2);
        long d = h.map(MemType.ANON, 2);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMAP);
        h.populate(a, 2, 1);
        h.register(u, a, 2 * PAGE_SIZE, W);
        h.wp(u, a, 2 * PAGE_SIZE, true);
        Harness.Op mr = h.async("mremap", () -> h.b.mremap(h.pid, a, 2 * PAGE_SIZE, 2 * PAGE_SIZE,
                MREMAP_MAYMOVE | MREMAP_FIXED, d) == d ? "OK" : "elsewhere");
        mr.state();
        h.drain(u);
        mr.finish();
        h.pmExpect("moved", d, 2, "P-W- P-W-");
        h.expect("write moved", h.writeHandled(u, d, 2), "3");
    }

    static void forkWp(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(0);
        h.populate(a, 1, 1);
        h.register(u, a, 2 * ps, W);
        h.wp(u, a, 2 * ps, true);
        int child = h.b.fork(h.pid).pid();
        try {
            long[] pm = h.b.readPagemap(child, a, 1);
            h.log("child pm wp=" + ((pm[0] & PM_UFFD_WP) != 0) + " present=" + ((pm[0] & PM_PRESENT) != 0));
            h.expect("child wp bit", Boolean.toString((pm[0] & PM_UFFD_WP) != 0), "false");
            h.pm("parent", a, 2);
        } finally {
            h.b.exit(child);
        }
    }

    static void kernelWriters(Harness h) {
        var b = h.b;
        long ps = h.ps();
        long a = h.map(4);
        int u = h.uffd(0);
        h.populate(a, 4, 1);
        h.register(u, a, 4 * ps, W);
        h.wp(u, a, 4 * ps, true);
        Harness.Op r = h.access(a, true, AccessMode.REMOTE);
        h.handle(r, u);
        Harness.Op k = h.access(a + ps, true, AccessMode.KERNEL);
        h.handle(k, u);
        Harness.Op p = h.access(a + 2 * ps, true, AccessMode.PROC_MEM);
        h.expect("/proc/self/mem", p.finish(), "EIO");
        h.pmExpect("after proc mem", a + 2 * ps, 1, h.type.shared() ? "P-WF" : "P-W-");
        h.call("POPULATE_READ", "OK", () -> {
            b.madvise(h.pid, a + 3 * ps, ps, MADV_POPULATE_READ);
            return null;
        });
        Harness.Op pw = h.async("POPULATE_WRITE", () -> {
            b.madvise(h.pid, a + 3 * ps, ps, MADV_POPULATE_WRITE);
            return null;
        });
        h.handle(pw, u);
        h.drain(u);
    }

    static void mprotectRo(Harness h) {
        long ps = h.ps();
        long a = h.map(1);
        int u = h.uffd(0);
        h.populate(a, 1, 1);
        h.register(u, a, ps, W);
        h.wp(u, a, ps, true);
        h.call("mprotect RO", () -> {
            h.b.mprotect(h.pid, a, ps, PROT_READ);
            return null;
        });
        Harness.Op w = h.write(a, 2);
        h.expect("write RO", w.finish(), "SIGSEGV/2 at A+0x0");
        h.drain(u);
        h.call("mprotect RW", () -> {
            h.b.mprotect(h.pid, a, ps, PROT_READ | PROT_WRITE);
            return null;
        });
        h.expect("write RW", h.writeHandled(u, a, 3), "3");
    }

    static Pagemap.ScanArg scan(long start, long end, long flags, long mask, long ret) {
        return new Pagemap.ScanArg(start, end, flags, 0, mask, 0, ret, 0, 0);
    }

    static String regions(Harness h, Pagemap.ScanResult r) {
        StringBuilder sb = new StringBuilder();
        for (Pagemap.Region g : r.regions()) {
            sb.append('[').append(h.rel(g.start())).append("..").append(h.relEnd(g.end())).append(" cat=0x")
                    .append(Long.toHexString(g.categories())).append(']');
        }
        return sb.length() == 0 ? "none" : sb.toString();
    }

    static void async(Harness h) {
        long ps = h.ps();
        var b = h.b;
        int pid = h.pid;
        long a = h.map(12);
        int u = h.uffd(UFFD_FEATURE_WP_ASYNC);
        h.populate(a, 8, 1);
        h.register(u, a, 12 * ps, W);
        h.wp(u, a, 12 * ps, true);
        h.pm("p0 p8", a, 1);
        h.pm("p8", a + 8 * ps, 1);
        h.write(a + 2 * ps, 2).finish();
        h.write(a + 9 * ps, 2).finish();
        h.read(a + 10 * ps).finish();
        h.drain(u);
        h.pm("p2 p9 p10", a + 2 * ps, 1);
        h.pm("p9 p10", a + 9 * ps, 2);
        h.call("scan WRITTEN", () -> regions(h, b.pagemapScan(pid, scan(a, a + 12 * ps, 0, PAGE_IS_WRITTEN,
                PAGE_IS_WRITTEN))));
        h.call("scan WRITTEN+WP_MATCHING|CHECK", () -> regions(h, b.pagemapScan(pid, scan(a, a + 12 * ps,
                PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, PAGE_IS_WRITTEN, PAGE_IS_WRITTEN))));
        h.call("scan again", "none", () -> regions(h, b.pagemapScan(pid, scan(a, a + 12 * ps, 0,
                PAGE_IS_WRITTEN, PAGE_IS_WRITTEN))));
        h.call("DONTNEED p4", () -> {
            b.madvise(pid, a + 4 * ps, ps, MADV_DONTNEED);
            return null;
        });
        if (h.type.shmem()) {
            h.call("REMOVE p5", () -> {
                b.madvise(pid, a + 5 * ps, ps, MADV_REMOVE);
                return null;
            });
            h.call("PUNCH p6", () -> {
                b.fallocate(pid, h.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 6 * ps, ps);
                return null;
            });
        }
        h.call("scan WRITTEN after zaps", h.type.anon() ? "[A+0x4000..A+0x5000 cat=0x2]" : "none",
                () -> regions(h, b.pagemapScan(pid, scan(a, a + 12 * ps, 0, PAGE_IS_WRITTEN, PAGE_IS_WRITTEN))));
        h.call("scan all categories", () -> regions(h, b.pagemapScan(pid, scan(a, a + 12 * ps, 0, 0, 0x1ff))));
    }

    static void scanArgs(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long a = h.map(MemType.ANON, 8);
        long sync = h.map(MemType.ANON, 2);
        h.populate(a, 4, 1);
        int u = h.uffd(UFFD_FEATURE_WP_ASYNC);
        h.register(u, a, 8 * PAGE_SIZE, W);
        int us = h.uffd(0);
        h.register(us, sync, 2 * PAGE_SIZE, W);
        h.wp(u, a, 8 * PAGE_SIZE, true);
        h.write(a + 4 * PAGE_SIZE, 1).finish();
        h.write(a + 6 * PAGE_SIZE, 1).finish();
        h.call("bad flags", "EINVAL", () -> regions(h, b.pagemapScan(pid, scan(a, a + PAGE_SIZE, 4, 0, 0xff))));
        h.call("category bit 9", "EINVAL", () -> regions(h, b.pagemapScan(pid, scan(a, a + PAGE_SIZE, 0, 1 << 9,
                0xff))));
        h.call("unaligned start", "EINVAL", () -> regions(h, b.pagemapScan(pid, scan(a + 1, a + PAGE_SIZE, 0, 0,
                0xff))));
        h.call("end < start", "EFAULT", () -> regions(h, b.pagemapScan(pid, scan(a + PAGE_SIZE, a, 0, 0, 0xff))));
        h.call("unaligned end", () -> regions(h, b.pagemapScan(pid, scan(a, a + 100, 0, 0, 0xff))));
        h.call("return_mask 0", () -> regions(h, b.pagemapScan(pid, scan(a, a + 8 * PAGE_SIZE, 0, 0, 0))));
        h.call("max_regions 1", () -> {
            var r = b.pagemapScan(pid, new Pagemap.ScanArg(a, a + 8 * PAGE_SIZE, 0, 0, PAGE_IS_WRITTEN, 0,
                    PAGE_IS_WRITTEN, 0, 1));
            return regions(h, r) + " walk_end=" + h.relEnd(r.walkEnd());
        });
        h.call("max_pages 1", () -> {
            var r = b.pagemapScan(pid, new Pagemap.ScanArg(a, a + 8 * PAGE_SIZE, 0, 0, PAGE_IS_WRITTEN, 0,
                    PAGE_IS_WRITTEN, 1, 0));
            return regions(h, r) + " walk_end=" + h.relEnd(r.walkEnd());
        });
        h.call("CHECK_WPASYNC on sync-WP", "EPERM", () -> regions(h, b.pagemapScan(pid, scan(sync,
                sync + 2 * PAGE_SIZE, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0, 0xff))));
        h.call("WP_MATCHING on sync-WP", "none", () -> regions(h, b.pagemapScan(pid, scan(sync,
                sync + 2 * PAGE_SIZE, PM_SCAN_WP_MATCHING, 0, 0xff))));
        long plain = h.map(MemType.ANON, 4);
        h.populate(plain, 2, 1);
        h.call("plain unregistered", () -> regions(h, b.pagemapScan(pid, scan(plain, plain + 4 * PAGE_SIZE, 0, 0,
                0xff))));
    }

    static void staleCopy(Harness h) {
        long ps = h.ps();
        long a = h.map(1);
        int u = h.uffd(0);
        var b = h.b;
        h.register(u, a, ps, M);
        Harness.Op r = h.read(a);
        List<UffdMsg> got = h.settle(r, u);
        h.call("background COPY (DONTWAKE)", () -> b.uffdCopy(h.pid, u, a, h.fill(0x33, ps),
                UFFDIO_COPY_MODE_DONTWAKE));
        h.expect("reader after DONTWAKE copy", r.state(), "blocked");
        if (!got.isEmpty()) {
            h.call("handler COPY (stale)", "EEXIST", () -> b.uffdCopy(h.pid, u, a, h.fill(0x44, ps), 0));
            h.call("WAKE", "OK", () -> {
                b.uffdWake(h.pid, u, a, ps);
                return null;
            });
        }
        r.finish();
        h.drain(u);
    }

    static void unregisterWake(Harness h) {
        long ps = h.ps();
        long a = h.map(3);
        var b = h.b;
        int u = h.uffd(0);
        h.populate(a, 1, 1);
        // WP-only: the WP waiter stays blocked after UNREGISTER until WAKE
        h.register(u, a, ps, W);
        h.wp(u, a, ps, true);
        Harness.Op w = h.write(a, 2);
        h.settle(w, u);
        h.call("UNREGISTER", "OK", () -> {
            b.uffdUnregister(h.pid, u, a, ps);
            return null;
        });
        h.expect("WP waiter after UNREGISTER", w.state(), "blocked");
        h.call("WAKE", "OK", () -> {
            b.uffdWake(h.pid, u, a, ps);
            return null;
        });
        h.expect("WP waiter after WAKE", w.finish(), "ok");
        // MISSING: woken by UNREGISTER
        h.register(u, a + ps, ps, M);
        Harness.Op r = h.read(a + ps);
        h.settle(r, u);
        h.call("UNREGISTER missing", "OK", () -> {
            b.uffdUnregister(h.pid, u, a + ps, ps);
            return null;
        });
        h.expect("MISSING waiter after UNREGISTER", r.state().startsWith("ok") ? "ok" : "blocked", "ok");
        // MISSING|WP registration: the WP waiter is woken too
        h.populate(a + 2 * ps, 1, 1);
        h.register(u, a + 2 * ps, ps, M | W);
        h.wp(u, a + 2 * ps, ps, true);
        Harness.Op w2 = h.write(a + 2 * ps, 3);
        h.settle(w2, u);
        h.call("UNREGISTER M|W", "OK", () -> {
            b.uffdUnregister(h.pid, u, a + 2 * ps, ps);
            return null;
        });
        h.expect("WP waiter on M|W after UNREGISTER", w2.state(), "ok");
        h.pm("end", a, 3);
    }

    static void unregisterWakeMinor(Harness h) {
        long ps = h.ps();
        long a = h.map(1);
        var b = h.b;
        int u = h.uffd(0);
        h.populate(a, 1, 1);
        h.call("DONTNEED", () -> {
            b.madvise(h.pid, a, ps, MADV_DONTNEED);
            return null;
        });
        h.register(u, a, ps, N);
        Harness.Op r = h.read(a);
        h.settle(r, u);
        h.call("UNREGISTER", "OK", () -> {
            b.uffdUnregister(h.pid, u, a, ps);
            return null;
        });
        h.expect("MINOR waiter after UNREGISTER", r.state(), "blocked");
        h.call("WAKE", () -> {
            b.uffdWake(h.pid, u, a, ps);
            return null;
        });
        r.finish();
    }

    static void closeWakes(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        var b = h.b;
        int u = h.uffd(0);
        h.populate(a + ps, 1, 1);
        h.register(u, a, 2 * ps, M | W);
        h.wp(u, a + ps, ps, true);
        Harness.Op r = h.read(a);
        h.settle(r, u);
        Harness.Op w = h.write(a + ps, 7);
        h.settle(w, u);
        h.call("close(uffd)", "OK", () -> {
            b.close(h.pid, u);
            return null;
        });
        h.expect("MISSING reader after close", r.finish(), "ok 00*1");
        h.expect("WP writer after close", w.finish(), "ok");
        if (h.type.shared() || h.type.anon()) {
            h.pmExpect("after close", a, 2, h.type.shared() ? "P--F P--F" : "P--- P---");
        } else {
            h.pm("after close", a, 2); // the read maps the (private) cache page or a private huge page
        }
        h.readData("written", a + ps, 1);
    }

    static void wakeRefaults(Harness h) {
        long ps = h.ps();
        long a = h.map(1);
        var b = h.b;
        int u = h.uffd(0);
        h.register(u, a, ps, M);
        Harness.Op r = h.read(a);
        h.settle(r, u);
        h.call("WAKE without resolving", "OK", () -> {
            b.uffdWake(h.pid, u, a, ps);
            return null;
        });
        h.settle(r, u);
        h.call("COPY DONTWAKE", () -> b.uffdCopy(h.pid, u, a, h.fill(8, ps), UFFDIO_COPY_MODE_DONTWAKE));
        h.expect("after DONTWAKE", r.state(), "blocked");
        h.call("WAKE", "OK", () -> {
            b.uffdWake(h.pid, u, a, ps);
            return null;
        });
        h.expect("after WAKE", r.finish(), "ok 08*1");
    }

    static void sigbus(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(UFFD_FEATURE_SIGBUS);
        h.populate(a + ps, 1, 1);
        h.register(u, a, 2 * ps, M | W);
        h.wp(u, a + ps, ps, true);
        h.expect("read missing", h.read(a + 5).finish(), "SIGBUS/2 at A+0x5");
        h.expect("write wp", h.write(a + ps, 1).finish(), "SIGBUS/2 at A+0x" + Long.toHexString(ps));
        h.expect("kernel read into missing",
                h.access(a, true, AccessMode.KERNEL).finish(), "EFAULT");
        h.drain(u);
    }

    static void userModeOnly(Harness h) {
        var b = h.b;
        long a = h.map(MemType.ANON, 2);
        int u = b.userfaultfd(h.pid, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, false);
        h.call("API", () -> b.uffdApi(h.pid, u, UFFD_API, 0));
        h.register(u, a, 2 * PAGE_SIZE, M);
        h.expect("kernel write into missing", h.access(a, true, AccessMode.KERNEL).finish(), "EFAULT");
        h.drain(u);
        int u2 = h.uffd(0);
        b.uffdUnregister(h.pid, u, a, 2 * PAGE_SIZE);
        h.register(u2, a, 2 * PAGE_SIZE, M);
        Harness.Op k = h.access(a + PAGE_SIZE, true, AccessMode.KERNEL);
        h.handle(k, u2);
    }

    // ------------------------------------------------------------------ more tables

    static void mixedRanges(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long hp = h.map(MemType.HUGETLB, 1);
        long anon = b.mmap(pid, hp - PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        h.name("Z", anon, PAGE_SIZE);
        int u = h.uffd(0);
        h.call("REGISTER anon4K+hugetlb", "0x10c", () -> b.uffdRegister(pid, u, anon, PAGE_SIZE + PMD_SIZE, M));
        h.maps("after", anon, hp + PMD_SIZE);
        h.call("UNREGISTER", "OK", () -> {
            b.uffdUnregister(pid, u, anon, PAGE_SIZE + PMD_SIZE);
            return null;
        });
        long sh = h.map(MemType.SHMEM, 1);
        long an2 = b.mmap(pid, sh - PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        h.name("Y", an2, PAGE_SIZE);
        h.call("REGISTER anon+shmem MINOR", "EINVAL", () -> b.uffdRegister(pid, u, an2, 2 * PAGE_SIZE, N));
        h.call("REGISTER anon+shmem M|W", "0x17c", () -> b.uffdRegister(pid, u, an2, 2 * PAGE_SIZE, M | W));
        h.maps("mixed", an2, sh + PAGE_SIZE);
        long none = b.mmap(pid, 0, PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        h.name("X", none, PAGE_SIZE);
        h.call("REGISTER PROT_NONE anon", "0x17c", () -> b.uffdRegister(pid, u, none, PAGE_SIZE, M | W));
        long ro = b.mmap(pid, 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        h.name("V", ro, PAGE_SIZE);
        h.call("REGISTER PROT_READ anon", "0x13c", () -> b.uffdRegister(pid, u, ro, PAGE_SIZE, M));
        Harness.Op r = h.read(ro + 5);
        h.handle(r, u);
    }

    static void splitMerge(Harness h) {
        long ps = h.ps();
        var b = h.b;
        int pid = h.pid;
        long a = h.map(4);
        int u = h.uffd(0);
        h.register(u, a + ps, 2 * ps, M);
        h.maps("middle registered", a, a + 4 * ps);
        h.register(u, a + ps, ps, W);
        h.maps("re-register replaces", a, a + 4 * ps);
        h.register(u, a + 2 * ps, ps, W);
        h.maps("merged again", a, a + 4 * ps);
        h.call("mprotect RO page 3", () -> {
            b.mprotect(pid, a + 3 * ps, ps, PROT_READ);
            return null;
        });
        h.register(u, a, 4 * ps, M | W);
        h.maps("whole", a, a + 4 * ps);
        h.call("UNREGISTER page 0", "OK", () -> {
            b.uffdUnregister(pid, u, a, ps);
            return null;
        });
        h.maps("after partial unregister", a, a + 4 * ps);
        h.call("munmap page 2", "OK", () -> {
            b.munmap(pid, a + 2 * ps, ps);
            return null;
        });
        h.maps("after munmap", a, a + 4 * ps);
        h.call("UNREGISTER over the hole", "OK", () -> {
            b.uffdUnregister(pid, u, a, 4 * ps);
            return null;
        });
        h.maps("end", a, a + 4 * ps);
    }

    static void zeropageAlias(Harness h) {
        var b = h.b;
        long a = h.map(MemType.SHMEM, 1);
        long al = h.alias(1);
        int u = h.uffd(0);
        h.register(u, a, PAGE_SIZE, M);
        h.register(u, al, PAGE_SIZE, M);
        h.call("ZEROPAGE via A", "0x1000", () -> b.uffdZeropage(h.pid, u, a, PAGE_SIZE, 0));
        h.call("ZEROPAGE via alias", "EEXIST", () -> b.uffdZeropage(h.pid, u, al, PAGE_SIZE, 0));
        h.call("COPY via alias", "EEXIST", () -> b.uffdCopy(h.pid, u, al, h.fill(1, PAGE_SIZE), 0));
        h.pm("alias", al, 1);
        h.readData("alias", al, 16);
        h.drain(u);
    }

    static void minorFallocate(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(3);
        int u = h.uffd(0);
        h.call("fallocate page 1", "OK", () -> {
            b.fallocate(h.pid, h.memfd, 0, ps, ps);
            return null;
        });
        h.register(u, a, 3 * ps, M | N);
        Harness.Op r0 = h.read(a);
        h.handle(r0, u);
        Harness.Op r1 = h.read(a + ps);
        h.handle(r1, u);
        Harness.Op w2 = h.write(a + 2 * ps, 1);
        h.handle(w2, u);
        h.pm("pages", a, 3);
        h.call("CONTINUE over the copied page", "EEXIST", () -> b.uffdContinue(h.pid, u, a, ps, 0));
    }

    static void shmemFdIo(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long a = h.map(3);
        int u = h.uffd(0);
        h.call("pwrite page 0", "0x10", () -> b.pwrite(pid, h.memfd, 0, h.fill(0x61, 16)));
        h.register(u, a, 3 * PAGE_SIZE, M | W);
        Harness.Op r0 = h.read(a);
        h.handle(r0, u);
        h.pm("page 0", a, 1);
        h.wp(u, a, 3 * PAGE_SIZE, true);
        h.pm("after wp", a, 3);
        h.call("pwrite page 0 through the fd", "0x10", () -> b.pwrite(pid, h.memfd, 0, h.fill(0x62, 16)));
        h.drain(u);
        h.readData("page 0 via mapping", a, 16);
        h.call("pread page 0", () -> Harness.hash(b.pread(pid, h.memfd, 0, 16)));
        h.call("pwrite page 1 (hole)", "0x10", () -> b.pwrite(pid, h.memfd, PAGE_SIZE, h.fill(0x63, 16)));
        h.pm("page 1 after pwrite", a + PAGE_SIZE, 1);
        h.expect("write page 1", h.writeHandled(u, a + PAGE_SIZE, 1), "3");
        h.pm("end", a, 3);
    }

    static void zeropageWp(Harness h) {
        var b = h.b;
        long a = h.map(MemType.ANON, 2);
        int u = h.uffd(0);
        h.register(u, a, 2 * PAGE_SIZE, M | W);
        h.call("ZEROPAGE", "0x2000", () -> b.uffdZeropage(h.pid, u, a, 2 * PAGE_SIZE, 0));
        h.wp(u, a, 2 * PAGE_SIZE, true);
        h.pm("wp zero pages", a, 2);
        h.expect("write wp'd zero page", h.writeHandled(u, a, 1), "3");
        h.pm("after", a, 2);
        h.readData("page 1", a + PAGE_SIZE, 8);
        h.call("MADV_DONTNEED page 1", "OK", () -> {
            b.madvise(h.pid, a + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED);
            return null;
        });
        h.expect("write after dontneed", h.writeHandled(u, a + PAGE_SIZE, 1), "1");
    }

    static void populateMissing(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, M | W);
        Harness.Op pr = h.async("POPULATE_READ", () -> {
            b.madvise(h.pid, a, ps, MADV_POPULATE_READ);
            return null;
        });
        h.handle(pr, u);
        Harness.Op pw = h.async("POPULATE_WRITE", () -> {
            b.madvise(h.pid, a + ps, ps, MADV_POPULATE_WRITE);
            return null;
        });
        h.handle(pw, u);
        h.pm("populated", a, 2);
        h.wp(u, a, 2 * ps, true);
        h.call("POPULATE_READ wp'd", "OK", () -> {
            b.madvise(h.pid, a, 2 * ps, MADV_POPULATE_READ);
            return null;
        });
        h.drain(u);
        Harness.Op pw2 = h.async("POPULATE_WRITE wp'd", () -> {
            b.madvise(h.pid, a, ps, MADV_POPULATE_WRITE);
            return null;
        });
        h.handle(pw2, u);
        h.pm("end", a, 2);
    }

    static void truncate(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(3);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMOVE);
        h.populate(a, 3, 1);
        h.register(u, a, 3 * ps, M | W);
        h.wp(u, a, 3 * ps, true);
        h.call("ftruncate to 1 page", "OK", () -> {
            b.ftruncate(h.pid, h.memfd, ps);
            return null;
        });
        h.drain(u);
        h.pm("after truncate", a, 3);
        h.expect("read beyond EOF", h.read(a + 2 * ps).finish(), "SIGBUS/2 at A+0x" + Long.toHexString(2 * ps));
        h.call("COPY beyond EOF", () -> b.uffdCopy(h.pid, u, a + ps, h.fill(1, ps), 0));
        h.call("ftruncate back to 3 pages", "OK", () -> {
            b.ftruncate(h.pid, h.memfd, 3 * ps);
            return null;
        });
        h.pm("after grow", a, 3);
        h.expect("write page 2", h.writeHandled(u, a + 2 * ps, 1), "1");
        h.pm("end", a, 3);
    }

    static void copyIntoCached(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        long al = b.mmap(h.pid, 0, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd, 0);
        h.name("S", al, 2 * ps);
        h.populate(al, 1, 0x21);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, M);
        h.call("COPY over a cached page", () -> b.uffdCopy(h.pid, u, a, h.fill(1, ps), 0));
        h.pm("page 0", a, 1);
        Harness.Op r = h.read(a);
        h.handle(r, u);
        h.call("COPY page 1", () -> b.uffdCopy(h.pid, u, a + ps, h.fill(2, ps), 0));
        h.readData("page 1 via shared alias", al + ps, 1);
        h.pm("page 1", a + ps, 1);
        h.drain(u);
    }

    // ------------------------------------------------------------------ round 3

    static void mremapVariants(Harness h) {
        long ps = h.ps();
        var b = h.b;
        int pid = h.pid;
        long a = h.map(4);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_UNMAP);
        h.populate(a, 2, 1);
        b.munmap(pid, a + 2 * ps, 2 * ps);
        h.register(u, a, 2 * ps, M | W);
        h.wp(u, a, 2 * ps, true);
        Harness.Op grow = h.async("mremap grow in place", () -> b.mremap(pid, a, 2 * ps, 3 * ps, 0, 0) == a
                ? "OK" : "moved");
        grow.state();
        h.drain(u);
        grow.finish();
        h.maps("after grow", a, a + 4 * ps);
        h.pm("after grow", a, 3);
        if (!h.type.hugetlb()) {
            Harness.Op r = h.read(a + 2 * ps);
            h.handle(r, u);
        }
        long d = h.map(3);
        Harness.Op dontunmap = h.async("mremap DONTUNMAP", () -> b.mremap(pid, a, ps, ps,
                MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, d) == d ? "OK" : "moved");
        dontunmap.state();
        h.drain(u);
        dontunmap.finish();
        h.maps("old after DONTUNMAP", a, a + 3 * ps);
        h.maps("new after DONTUNMAP", d, d + ps);
        h.pm("old", a, 1);
        h.pm("new", d, 1);
        Harness.Op r2 = h.read(a);
        h.handle(r2, u);
        h.drain(u);
    }

    /**
     * mremap(MREMAP_MAYMOVE | MREMAP_FIXED) to a smaller size onto a bigger mapping: mm/mremap.c unmaps the old
     * tail first, so only the first pages move (with their data) and the rest of the destination stays as it was
     * (the emulator once carried the tail's pages past the new end).
     */
    static void mremapFixedShrink(Harness h) {
        long ps = h.ps();
        long a = h.map(4);
        long d = h.map(4);
        h.populate(a, 4, 1);
        h.call("mremap 4 -> 2 pages, FIXED onto a 4-page mapping", "OK", () -> h.b.mremap(h.pid, a, 4 * ps, 2 * ps,
                MREMAP_MAYMOVE | MREMAP_FIXED, d) == d ? "OK" : "elsewhere");
        h.maps("destination", d, d + 4 * ps);
        h.maps("source", a, a + 4 * ps);
        h.pm("destination", d, 4);
        h.readData("moved page 0", d, 1);
        h.readData("moved page 1", d + ps, 1);
    }

    static void guard(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long a = h.map(MemType.ANON, 4);
        h.populate(a, 2, 1);
        int u = h.uffd(UFFD_FEATURE_WP_UNPOPULATED);
        h.register(u, a, 4 * PAGE_SIZE, M | W);
        h.call("GUARD_INSTALL pages 1-2", "OK", () -> {
            b.madvise(pid, a + PAGE_SIZE, 2 * PAGE_SIZE, MADV_GUARD_INSTALL);
            return null;
        });
        h.pm("guards", a, 4);
        h.expect("read guard", h.read(a + PAGE_SIZE).finish(), "SIGSEGV/1 at A+0x1000");
        h.wp(u, a, 4 * PAGE_SIZE, true);
        h.pm("after wp", a, 4);
        h.call("COPY over guard", () -> b.uffdCopy(pid, u, a + 2 * PAGE_SIZE, h.fill(1, PAGE_SIZE), 0));
        h.call("POISON over guard", () -> b.uffdPoison(pid, u, a + 2 * PAGE_SIZE, PAGE_SIZE, 0));
        h.call("DONTNEED keeps guards", "OK", () -> {
            b.madvise(pid, a, 4 * PAGE_SIZE, MADV_DONTNEED);
            return null;
        });
        h.pm("after dontneed", a, 4);
        h.call("GUARD_REMOVE", "OK", () -> {
            b.madvise(pid, a, 4 * PAGE_SIZE, MADV_GUARD_REMOVE);
            return null;
        });
        h.pm("after remove", a, 4);
        Harness.Op r = h.read(a + PAGE_SIZE);
        h.handle(r, u);
    }

    static void wpOverPoison(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(UFFD_FEATURE_WP_UNPOPULATED);
        h.register(u, a, 2 * ps, M | W);
        h.call("POISON page 0", () -> b.uffdPoison(h.pid, u, a, ps, 0));
        h.wp(u, a, 2 * ps, true);
        h.pm("after wp", a, 2);
        h.expect("read poisoned", h.read(a).finish(), "SIGBUS/2 at A+0x0");
        h.wp(u, a, 2 * ps, false);
        h.pm("after un-wp", a, 2);
        h.call("POISON over wp marker", () -> b.uffdPoison(h.pid, u, a + ps, ps, 0));
        h.pm("end", a, 2);
    }

    static void moveMore(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long a = h.map(MemType.ANON, 8);
        int u = h.uffd(0);
        h.register(u, a, 8 * PAGE_SIZE, M);
        h.call("COPY pages 0-1", () -> b.uffdCopy(pid, u, a, h.fill(0x31, 2 * PAGE_SIZE), 0));
        h.call("ZEROPAGE page 2", () -> b.uffdZeropage(pid, u, a + 2 * PAGE_SIZE, PAGE_SIZE, 0));
        h.call("MOVE within the vma", "0x1000", () -> b.uffdMove(pid, u, a + 4 * PAGE_SIZE, a, PAGE_SIZE, 0));
        h.call("MOVE zero page", () -> b.uffdMove(pid, u, a + 5 * PAGE_SIZE, a + 2 * PAGE_SIZE, PAGE_SIZE, 0));
        h.pm("after", a, 8);
        h.call("MOVE overlapping", () -> b.uffdMove(pid, u, a + 5 * PAGE_SIZE, a + 4 * PAGE_SIZE,
                2 * PAGE_SIZE, 0));
        h.call("MOVE DONTWAKE", () -> b.uffdMove(pid, u, a + 6 * PAGE_SIZE, a + PAGE_SIZE, PAGE_SIZE,
                UFFDIO_MOVE_MODE_DONTWAKE));
        h.readData("moved", a + 4 * PAGE_SIZE, 16);
        h.readData("moved zero", a + 5 * PAGE_SIZE, 16);
        h.pm("end", a, 8);
    }

    static void spanning(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.populate(a, 1, 0x41);
        h.register(u, a, 2 * ps, M);
        Harness.Op r = h.async("read across pages", () -> b.access(h.pid, a + ps - 8, 16, false, null,
                AccessMode.USER, System.nanoTime() + Harness.OP_TIMEOUT_MS * 1_000_000L));
        h.handle(r, u);
        r.finish();
    }

    static void removeClip(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(4);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP);
        h.populate(a, 4, 1);
        h.register(u, a + ps, 2 * ps, M);
        Harness.Op mad = h.async("DONTNEED all 4", () -> {
            b.madvise(h.pid, a, 4 * ps, MADV_DONTNEED);
            return null;
        });
        mad.state();
        h.drain(u);
        mad.finish();
        Harness.Op un = h.async("munmap all 4", () -> {
            b.munmap(h.pid, a, 4 * ps);
            return null;
        });
        un.state();
        h.drain(u);
        un.finish();
    }

    static void wakeBatches(Harness h) throws InterruptedException {
        var b = h.b;
        long a = h.map(MemType.ANON, 4);
        int u = h.uffd(0);
        h.register(u, a, 4 * PAGE_SIZE, M);
        List<Harness.Op> ops = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Harness.Op op = h.read(a + i * PAGE_SIZE);
            op.state();
            ops.add(op);
        }
        h.awaitFaults(u, 3);
        h.call("read max 1", () -> "msgs=" + b.uffdRead(h.pid, u, 1, 0).size());
        h.call("read max 16", () -> "msgs=" + b.uffdRead(h.pid, u, 16, 0).size());
        h.call("ZEROPAGE 3 pages DONTWAKE", () -> b.uffdZeropage(h.pid, u, a, 3 * PAGE_SIZE,
                UFFDIO_ZEROPAGE_MODE_DONTWAKE));
        h.call("WAKE page 1 only", "OK", () -> {
            b.uffdWake(h.pid, u, a + PAGE_SIZE, PAGE_SIZE);
            return null;
        });
        for (Harness.Op op : ops) {
            op.state();
        }
        h.call("WAKE all", "OK", () -> {
            b.uffdWake(h.pid, u, a, 4 * PAGE_SIZE);
            return null;
        });
        for (Harness.Op op : ops) {
            op.finish();
        }
    }

    static void thp(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long raw = b.mmap(pid, 0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        long a = (raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
        h.name("A", a, PMD_SIZE);
        h.call("MADV_HUGEPAGE", "OK", () -> {
            b.madvise(pid, a, PMD_SIZE, MADV_HUGEPAGE);
            return null;
        });
        h.populate(a, 1, 1);
        h.call("scan", () -> regions(h, b.pagemapScan(pid, scan(a, a + PMD_SIZE, 0, 0, 0x1ff))));
        int u = h.uffd(0);
        h.register(u, a, PMD_SIZE, W);
        h.wp(u, a, PMD_SIZE, true);
        h.pm("pages 0,1", a, 2);
        h.expect("write page 7", h.writeHandled(u, a + 7 * PAGE_SIZE, 2), "3");
        h.pm("pages 7,8", a + 7 * PAGE_SIZE, 2);
        h.call("mprotect 4K", "OK", () -> {
            b.mprotect(pid, a + 100 * PAGE_SIZE, PAGE_SIZE, PROT_READ);
            return null;
        });
        h.pm("page 511", a + 511 * PAGE_SIZE, 1);
        h.expect("write page 511", h.writeHandled(u, a + 511 * PAGE_SIZE, 2), "3");
    }

    // ------------------------------------------------------------------ anonymous THP

    /** A 2 MiB-aligned block A inside a 4 MiB anonymous mapping; MADV_HUGEPAGE on A when {@code advise}. */
    static long thpBlock(Harness h, String name, boolean advise) {
        var b = h.b;
        long raw = b.mmap(h.pid, 0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        long a = (raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
        h.name(name, a, PMD_SIZE);
        if (advise) {
            h.call("MADV_HUGEPAGE", "OK", r(() -> b.madvise(h.pid, a, PMD_SIZE, MADV_HUGEPAGE)));
        }
        return a;
    }

    static void thpScan(Harness h, String label, long a) {
        h.call("scan " + label, () -> regions(h, h.b.pagemapScan(h.pid, scan(a, a + PMD_SIZE, 0, 0, 0x1ff))));
    }

    static void thpReadZero(Harness h) {
        long a = thpBlock(h, "A", true);
        h.read(a + 3 * PAGE_SIZE).finish();
        thpScan(h, "after read", a);
        h.pm("pages 0,3", a, 1);
        h.pm("page 3", a + 3 * PAGE_SIZE, 1);
        h.populate(a + 5 * PAGE_SIZE, 1, 7);
        thpScan(h, "after write page 5", a);
        h.pm("pages 4..6", a + 4 * PAGE_SIZE, 3);
        h.readData("page 5", a + 5 * PAGE_SIZE, 8);
        h.readData("page 6", a + 6 * PAGE_SIZE, 8);
    }

    static void thpMissing(Harness h) {
        long a = thpBlock(h, "A", true);
        int u = h.uffd(0);
        h.register(u, a, PMD_SIZE, M);
        h.expect("write page 9", h.writeHandled(u, a + 9 * PAGE_SIZE, 1), "1");
        thpScan(h, "after COPY", a);
        h.pm("pages 8..10", a + 8 * PAGE_SIZE, 3);
        h.expect("write page 300", h.writeHandled(u, a + 300 * PAGE_SIZE, 2), "1");
        thpScan(h, "after second COPY", a);
    }

    static void thpWpFirst(Harness h) {
        long a = thpBlock(h, "A", true);
        int u = h.uffd(0);
        h.register(u, a, PMD_SIZE, W);
        h.populate(a, 1, 1);
        thpScan(h, "after populate", a);
        h.wp(u, a, PMD_SIZE, true);
        thpScan(h, "after WP", a);
        h.expect("write page 3", h.writeHandled(u, a + 3 * PAGE_SIZE, 2), "3");
        thpScan(h, "after un-WP of page 3", a);
        h.pm("pages 2..4", a + 2 * PAGE_SIZE, 3);
    }

    static void thpDontneed(Harness h) {
        var b = h.b;
        long a = thpBlock(h, "A", true);
        h.populate(a, 1, 1);
        h.call("DONTNEED whole", "OK", r(() -> b.madvise(h.pid, a, PMD_SIZE, MADV_DONTNEED)));
        thpScan(h, "after DONTNEED whole", a);
        h.populate(a + PAGE_SIZE, 1, 2);
        thpScan(h, "after refault", a);
        h.call("DONTNEED pages 10..12", "OK", r(() -> b.madvise(h.pid, a + 10 * PAGE_SIZE, 3 * PAGE_SIZE,
                MADV_DONTNEED)));
        thpScan(h, "after partial DONTNEED", a);
        h.pm("pages 9..13", a + 9 * PAGE_SIZE, 5);
        h.readData("page 1", a + PAGE_SIZE, 4);
        h.readData("page 11", a + 11 * PAGE_SIZE, 4);
    }

    static void thpMprotect(Harness h) {
        var b = h.b;
        long a = thpBlock(h, "A", true);
        h.populate(a, 1, 1);
        h.call("mprotect RO whole", "OK", r(() -> b.mprotect(h.pid, a, PMD_SIZE, PROT_READ)));
        thpScan(h, "after RO whole", a);
        h.call("mprotect RW whole", "OK", r(() -> b.mprotect(h.pid, a, PMD_SIZE, PROT_READ | PROT_WRITE)));
        h.populate(a + 2 * PAGE_SIZE, 1, 3);
        thpScan(h, "after RW + write", a);
        h.call("mprotect RO pages 0..3", "OK", r(() -> b.mprotect(h.pid, a, 4 * PAGE_SIZE, PROT_READ)));
        thpScan(h, "after partial RO", a);
        h.pm("pages 3..4", a + 3 * PAGE_SIZE, 2);
    }

    static void thpUnwpWhole(Harness h) {
        long a = thpBlock(h, "A", true);
        int u = h.uffd(0);
        h.register(u, a, PMD_SIZE, W);
        h.populate(a, 1, 1);
        h.wp(u, a, PMD_SIZE, true);
        h.wp(u, a, PMD_SIZE, false);
        thpScan(h, "after WP + un-WP whole", a);
        h.expect("write page 3", h.writeHandled(u, a + 3 * PAGE_SIZE, 2), "none");
        thpScan(h, "after write", a);
        h.pm("pages 2..4", a + 2 * PAGE_SIZE, 3);
    }

    static void thpAsync(Harness h) {
        long a = thpBlock(h, "A", true);
        h.populate(a, 1, 1);
        int u = h.uffd(UFFD_FEATURE_WP_ASYNC);
        h.register(u, a, PMD_SIZE, W);
        h.wp(u, a, PMD_SIZE, true);
        thpScan(h, "after WP", a);
        h.write(a + 2 * PAGE_SIZE, 9).finish();
        thpScan(h, "after async write", a);
        h.pm("pages 1..3", a + PAGE_SIZE, 3);
        h.drain(u);
    }

    static void thpAdvice(Harness h) {
        var b = h.b;
        long a = thpBlock(h, "A", false);
        h.populate(a, 1, 1);
        thpScan(h, "no advice", a);
        long c = thpBlock(h, "C", false);
        h.call("MADV_NOHUGEPAGE", "OK", r(() -> b.madvise(h.pid, c, PMD_SIZE, MADV_NOHUGEPAGE)));
        h.populate(c, 1, 1);
        thpScan(h, "NOHUGEPAGE", c);
        long d = thpBlock(h, "D", true);
        h.call("munmap last page of D", "OK", r(() -> b.munmap(h.pid, d + PMD_SIZE - PAGE_SIZE, PAGE_SIZE)));
        h.populate(d, 1, 1);
        h.call("scan D short of 2M", () -> regions(h, b.pagemapScan(h.pid, scan(d, d + PMD_SIZE - PAGE_SIZE, 0, 0,
                0x1ff))));
    }

    static void thpPartialRegister(Harness h) {
        long a = thpBlock(h, "A", true);
        h.populate(a, 1, 1);
        thpScan(h, "before", a);
        int u = h.uffd(0);
        h.register(u, a, PMD_SIZE / 2, W);
        thpScan(h, "after register of the first half", a);
        h.wp(u, a, PMD_SIZE / 2, true);
        h.expect("write page 1", h.writeHandled(u, a + PAGE_SIZE, 2), "3");
        h.expect("write page 300", h.writeHandled(u, a + 300 * PAGE_SIZE, 2), "none");
        h.pm("pages 0,1", a, 2);
    }

    static void thpMunmapMremap(Harness h) {
        var b = h.b;
        long a = thpBlock(h, "A", true);
        h.populate(a, 1, 1);
        long c = thpBlock(h, "C", true);
        h.call("mremap A onto C (FIXED, 2M-aligned)", () -> h.rel(b.mremap(h.pid, a, PMD_SIZE, PMD_SIZE,
                MREMAP_MAYMOVE | MREMAP_FIXED, c)));
        thpScan(h, "C after mremap", c);
        h.readData("C page 0", c, 4);
        h.call("munmap C pages 0..1", "OK", r(() -> b.munmap(h.pid, c, 2 * PAGE_SIZE)));
        h.call("scan C rest", () -> regions(h, b.pagemapScan(h.pid, scan(c + 2 * PAGE_SIZE, c + PMD_SIZE, 0, 0,
                0x1ff))));
        h.pm("C pages 2..3", c + 2 * PAGE_SIZE, 2);
    }

    static void thpMove(Harness h) {
        var b = h.b;
        long a = thpBlock(h, "A", true);
        h.populate(a, 1, 1);
        long c = thpBlock(h, "C", true);
        int u = h.uffd(UFFD_FEATURE_MOVE);
        h.register(u, c, PMD_SIZE, M);
        h.call("MOVE 4K out of a THP", () -> b.uffdMove(h.pid, u, c + PAGE_SIZE, a + PAGE_SIZE, PAGE_SIZE, 0));
        thpScan(h, "A after 4K move", a);
        h.call("scan C", () -> regions(h, b.pagemapScan(h.pid, scan(c, c + PMD_SIZE, 0, 0, 0x1ff))));
        h.readData("C page 1", c + PAGE_SIZE, 4);
        h.pm("A pages 0..2", a, 3);
    }

    static void thpCollapse(Harness h) {
        var b = h.b;
        long a = thpBlock(h, "A", false);
        h.populate(a, 4, 1);
        thpScan(h, "before", a);
        h.call("MADV_COLLAPSE", r(() -> b.madvise(h.pid, a, PMD_SIZE, MADV_COLLAPSE)));
        thpScan(h, "after collapse", a);
        h.readData("page 1", a + PAGE_SIZE, 4);
        h.readData("page 100", a + 100 * PAGE_SIZE, 4);
        int u = h.uffd(0);
        h.register(u, a, PMD_SIZE, W);
        h.wp(u, a, 2 * PAGE_SIZE, true);
        h.call("MADV_COLLAPSE with wp PTEs", r(() -> b.madvise(h.pid, a, PMD_SIZE, MADV_COLLAPSE)));
        thpScan(h, "after second collapse", a);
    }

    static void thpPartialAdvice(Harness h) {
        var b = h.b;
        for (int advice : new int[] {MADV_COLD, MADV_FREE, MADV_PAGEOUT}) {
            String name = advice == MADV_COLD ? "COLD" : advice == MADV_FREE ? "FREE" : "PAGEOUT";
            long a = thpBlock(h, name, true);
            h.populate(a, 1, 1);
            h.call("MADV_" + name + " whole", r(() -> b.madvise(h.pid, a, PMD_SIZE, advice)));
            thpScan(h, name + " after whole", a);
            h.call("MADV_" + name + " pages 4..5", r(() -> b.madvise(h.pid, a + 4 * PAGE_SIZE, 2 * PAGE_SIZE,
                    advice)));
            thpScan(h, name + " after partial", a);
            h.pm(name + " pages 0..5", a, 6);
            h.readData(name + " page 0", a, 4);
        }
    }

    static void thpMoveWhole(Harness h) {
        var b = h.b;
        long a = thpBlock(h, "A", true);
        h.populate(a, 1, 1);
        h.populate(a + 7 * PAGE_SIZE, 1, 7);
        long c = thpBlock(h, "C", true);
        int u = h.uffd(UFFD_FEATURE_MOVE);
        h.register(u, c, PMD_SIZE, M);
        h.call("MOVE 2M", () -> b.uffdMove(h.pid, u, c, a, PMD_SIZE, 0));
        h.call("scan C", () -> regions(h, b.pagemapScan(h.pid, scan(c, c + PMD_SIZE, 0, 0, 0x1ff))));
        h.readData("C page 7", c + 7 * PAGE_SIZE, 4);
        h.populate(a + 3 * PAGE_SIZE, 1, 3);
        thpScan(h, "A refault", a);
    }

    // ------------------------------------------------------------------ shmem THP (run with shmem_enabled=advise)

    /** A 2 MiB memfd mapped shared at a 2 MiB-aligned address (named by {@code name}), MADV_HUGEPAGE. */
    static long shmemThpMap(Harness h, String name, boolean newFile) {
        var b = h.b;
        if (newFile) {
            h.memfd = b.memfdCreate(h.pid, "thp", MFD_CLOEXEC);
            b.ftruncate(h.pid, h.memfd, PMD_SIZE);
        }
        long raw = b.mmap(h.pid, 0, 2 * PMD_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        long a = (raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
        b.mmap(h.pid, a, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, h.memfd, 0);
        h.name(name, a, PMD_SIZE);
        h.call("MADV_HUGEPAGE " + name, "OK", r(() -> b.madvise(h.pid, a, PMD_SIZE, MADV_HUGEPAGE)));
        return a;
    }

    /** A private 2 MiB-aligned mapping of the last memfd, MADV_HUGEPAGE. */
    static long shmemThpPrivateMap(Harness h, String name) {
        var b = h.b;
        long raw = b.mmap(h.pid, 0, 2 * PMD_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        long a = (raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
        b.mmap(h.pid, a, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, h.memfd, 0);
        h.name(name, a, PMD_SIZE);
        h.call("MADV_HUGEPAGE " + name, "OK", r(() -> b.madvise(h.pid, a, PMD_SIZE, MADV_HUGEPAGE)));
        return a;
    }

    static void shmemThpPrivate(Harness h) {
        long a = shmemThpMap(h, "A", true);
        h.populate(a, 1, 1);
        long p = shmemThpPrivateMap(h, "P");
        h.read(p + 5 * PAGE_SIZE).finish();
        thpScan(h, "P after read", p);
        h.pm("P pages 4..6", p + 4 * PAGE_SIZE, 3);
        h.populate(p + 6 * PAGE_SIZE, 1, 6);
        thpScan(h, "P after write", p);
        h.pm("P pages 5..7", p + 5 * PAGE_SIZE, 3);
        h.readData("P page 6", p + 6 * PAGE_SIZE, 2);
        h.readData("A page 6", a + 6 * PAGE_SIZE, 2);
        h.memfd = h.b.memfdCreate(h.pid, "thp2", MFD_CLOEXEC);
        h.b.ftruncate(h.pid, h.memfd, PMD_SIZE);
        long q = shmemThpPrivateMap(h, "Q");
        h.read(q + 3 * PAGE_SIZE).finish();
        thpScan(h, "Q (hole) after read", q);
        h.populate(q + 9 * PAGE_SIZE, 1, 9);
        thpScan(h, "Q after write", q);
        long c = shmemThpMap(h, "C", false);
        h.read(c + 9 * PAGE_SIZE).finish();
        thpScan(h, "C (shared view of Q's file) after read", c);
        h.readData("C page 9", c + 9 * PAGE_SIZE, 2);
    }

    static void shmemThpFault(Harness h) {
        var b = h.b;
        long a = shmemThpMap(h, "A", true);
        h.populate(a + 3 * PAGE_SIZE, 1, 3);
        thpScan(h, "A after write", a);
        h.pm("A pages 0,3", a, 1);
        h.pm("A page 3", a + 3 * PAGE_SIZE, 1);
        long c = shmemThpMap(h, "C", false);
        h.read(c + 9 * PAGE_SIZE).finish();
        thpScan(h, "C after read", c);
        h.readData("C page 3", c + 3 * PAGE_SIZE, 2);
        long small = b.mmap(h.pid, 0, 32 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd, 0);
        h.name("S", small, 32 * PAGE_SIZE);
        h.read(small + 20 * PAGE_SIZE).finish();
        h.pm("S pages 16..23", small + 16 * PAGE_SIZE, 8);
        h.call("scan S", () -> regions(h, b.pagemapScan(h.pid, scan(small, small + 32 * PAGE_SIZE, 0, 0, 0x1ff))));
        h.pm("A page 20 (same folio)", a + 20 * PAGE_SIZE, 1);
    }

    static void shmemThpWp(Harness h) {
        long a = shmemThpMap(h, "A", true);
        h.populate(a, 1, 1);
        int u = h.uffd(0);
        h.register(u, a, PMD_SIZE, W);
        thpScan(h, "after register", a);
        h.wp(u, a, PMD_SIZE, true);
        thpScan(h, "after WP whole", a);
        h.expect("write page 5", h.writeHandled(u, a + 5 * PAGE_SIZE, 5), "3");
        h.pm("pages 4..6", a + 4 * PAGE_SIZE, 3);
        long c = shmemThpMap(h, "C", false);
        h.read(c + 5 * PAGE_SIZE).finish();
        thpScan(h, "C (other mapping) after read", c);
        h.pm("C pages 4..6", c + 4 * PAGE_SIZE, 3);
    }

    static void shmemThpZap(Harness h) {
        var b = h.b;
        long a = shmemThpMap(h, "A", true);
        h.populate(a, 1, 1);
        h.call("DONTNEED pages 8..9", "OK", r(() -> b.madvise(h.pid, a + 8 * PAGE_SIZE, 2 * PAGE_SIZE,
                MADV_DONTNEED)));
        thpScan(h, "after partial DONTNEED", a);
        h.pm("pages 7..10", a + 7 * PAGE_SIZE, 4);
        h.call("DONTNEED whole", "OK", r(() -> b.madvise(h.pid, a, PMD_SIZE, MADV_DONTNEED)));
        thpScan(h, "after DONTNEED whole", a);
        h.read(a + 100 * PAGE_SIZE).finish();
        thpScan(h, "after refault", a);
        h.call("mprotect RO pages 0..1", "OK", r(() -> b.mprotect(h.pid, a, 2 * PAGE_SIZE, PROT_READ)));
        thpScan(h, "after partial mprotect", a);
        h.readData("page 0", a, 2);
    }

    static void shmemThpPunch(Harness h) {
        var b = h.b;
        long a = shmemThpMap(h, "A", true);
        h.populate(a, 1, 1);
        h.populate(a + 6 * PAGE_SIZE, 1, 6);
        h.call("punch pages 2..3", "OK", r(() -> b.fallocate(h.pid, h.memfd, FALLOC_FL_PUNCH_HOLE
                | FALLOC_FL_KEEP_SIZE, 2 * PAGE_SIZE, 2 * PAGE_SIZE)));
        thpScan(h, "after punch", a);
        h.pm("pages 1..6", a + PAGE_SIZE, 6);
        h.readData("page 0", a, 2);
        h.readData("page 6", a + 6 * PAGE_SIZE, 2);
        h.readData("page 2", a + 2 * PAGE_SIZE, 2);
        thpScan(h, "after reading the hole", a);
        long c = shmemThpMap(h, "C", false);
        h.read(c + 7 * PAGE_SIZE).finish();
        thpScan(h, "C after read", c);
    }

    static void shmemThpMinor(Harness h) {
        long a = shmemThpMap(h, "A", true);
        h.populate(a, 1, 1);
        long c = shmemThpMap(h, "C", false);
        int u = h.uffd(UFFD_FEATURE_MINOR_SHMEM);
        h.register(u, c, PMD_SIZE, N);
        h.expect("read C page 4", h.handle(h.read(c + 4 * PAGE_SIZE), u), "ok 00*1");
        thpScan(h, "C after CONTINUE", c);
        h.pm("C pages 3..5", c + 3 * PAGE_SIZE, 3);
    }

    // ------------------------------------------------------------------ fault-around (shmem read faults)

    /** Fills pages [from, to) of the last memfd through write(2), so they sit in the page cache only. */
    static void cache(Harness h, int from, int to) {
        for (int i = from; i < to; i++) {
            int p = i;
            h.call("pwrite page " + i, () -> h.b.pwrite(h.pid, h.memfd, (long) p * PAGE_SIZE,
                    new byte[] {(byte) (p + 1)}));
        }
    }

    static void faultAround(Harness h) {
        long a = h.map(40);
        cache(h, 0, 40);
        h.read(a + 20 * PAGE_SIZE).finish();
        h.pm("pages 14..33", a + 14 * PAGE_SIZE, 20);
        h.populate(a + 35 * PAGE_SIZE, 1, 9);
        h.pm("pages 32..39 after a write fault", a + 32 * PAGE_SIZE, 8);
        h.readData("page 17", a + 17 * PAGE_SIZE, 2);
    }

    static void faultAroundUffd(Harness h) {
        long a = h.map(48);
        cache(h, 0, 8);
        cache(h, 10, 11);
        cache(h, 16, 48);
        int u = h.uffd(0);
        h.register(u, a, 16 * PAGE_SIZE, M);
        h.expect("read page 9 (hole, MISSING)", h.handle(h.read(a + 9 * PAGE_SIZE), u), "ok 5a*1");
        h.pm("pages 0..15", a, 16);
        h.register(u, a + 16 * PAGE_SIZE, 16 * PAGE_SIZE, W);
        h.read(a + 20 * PAGE_SIZE).finish();
        h.pm("WP-registered pages 16..23", a + 16 * PAGE_SIZE, 8);
        int m = h.uffd(0);
        h.register(m, a + 32 * PAGE_SIZE, 16 * PAGE_SIZE, N);
        h.handle(h.read(a + 36 * PAGE_SIZE), m);
        h.pm("MINOR-registered pages 32..39", a + 32 * PAGE_SIZE, 8);
    }

    static void faultAroundFalloc(Harness h) {
        long a = h.map(16);
        h.call("fallocate 16 pages", "OK", r(() -> h.b.fallocate(h.pid, h.memfd, 0, 0, 16 * PAGE_SIZE)));
        cache(h, 3, 4);
        h.read(a + 5 * PAGE_SIZE).finish();
        h.pm("pages 0..7", a, 8);
        h.read(a + 12 * PAGE_SIZE).finish();
        h.pm("pages 8..15", a + 8 * PAGE_SIZE, 8);
    }

    static void faultAroundEdge(Harness h) {
        var b = h.b;
        long a = h.map(64);
        cache(h, 0, 64);
        long off = 7 * PAGE_SIZE;
        long e = b.mmap(h.pid, 0, 20 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                h.type.shared ? MAP_SHARED : MAP_PRIVATE, h.memfd, off);
        h.name("E", e, 20 * PAGE_SIZE);
        h.read(e).finish();
        h.pm("E pages 0..19 after reading page 0", e, 20);
        h.read(e + 19 * PAGE_SIZE).finish();
        h.pm("E pages 0..19 after reading page 19", e, 20);
        h.call("ftruncate to 10 pages", "OK", r(() -> b.ftruncate(h.pid, h.memfd, 10 * PAGE_SIZE)));
        h.read(a).finish();
        h.pm("A pages 0..15 after truncate", a, 16);
    }

    static void copyReadonly(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, M | W);
        h.call("mprotect RO", "OK", () -> {
            b.mprotect(h.pid, a, 2 * ps, PROT_READ);
            return null;
        });
        h.call("COPY into RO vma", () -> b.uffdCopy(h.pid, u, a, h.fill(3, ps), 0));
        h.pm("copied", a, 1);
        h.expect("write RO", h.write(a, 1).finish(), "SIGSEGV/2 at A+0x0");
        h.call("mprotect RW", "OK", () -> {
            b.mprotect(h.pid, a, 2 * ps, PROT_READ | PROT_WRITE);
            return null;
        });
        h.pm("after RW", a, 1);
        h.expect("write after RW", h.writeHandled(u, a, 1), "none");
        h.call("mprotect NONE page 1", "OK", () -> {
            b.mprotect(h.pid, a + ps, ps, PROT_NONE);
            return null;
        });
        h.expect("read PROT_NONE", h.read(a + ps).finish(), "SIGSEGV/2 at A+0x" + Long.toHexString(ps));
        h.drain(u);
    }

    // ------------------------------------------------------------------ round 4

    static Callable0 r(Runnable0 x) {
        return () -> {
            x.run();
            return null;
        };
    }

    interface Runnable0 {
        void run() throws Exception;
    }

    interface Callable0 extends java.util.concurrent.Callable<Object> {
    }

    static void syscallErrors(Harness h) {
        long ps = h.ps();
        var b = h.b;
        int pid = h.pid;
        long a = h.map(4);
        h.populate(a, 4, 1);
        h.call("madvise unaligned", r(() -> b.madvise(pid, a + 8, PAGE_SIZE, MADV_DONTNEED)));
        h.call("madvise bad advice", r(() -> b.madvise(pid, a, PAGE_SIZE, 999)));
        h.call("madvise PAGEOUT", r(() -> b.madvise(pid, a, ps, MADV_PAGEOUT)));
        h.call("madvise COLD", r(() -> b.madvise(pid, a, ps, MADV_COLD)));
        h.call("madvise FREE", r(() -> b.madvise(pid, a, ps, MADV_FREE)));
        h.call("madvise REMOVE", r(() -> b.madvise(pid, a, ps, MADV_REMOVE)));
        h.call("madvise DONTNEED 4K of the mapping", r(() -> b.madvise(pid, a, PAGE_SIZE, MADV_DONTNEED)));
        h.call("madvise len 0", r(() -> b.madvise(pid, a, 0, MADV_DONTNEED)));
        h.call("madvise POPULATE_WRITE", r(() -> b.madvise(pid, a + ps, ps, MADV_POPULATE_WRITE)));
        h.call("madvise GUARD_INSTALL", r(() -> b.madvise(pid, a + 3 * ps, ps, MADV_GUARD_INSTALL)));
        h.call("munmap len 0", r(() -> b.munmap(pid, a, 0)));
        h.call("munmap unaligned", r(() -> b.munmap(pid, a + 8, PAGE_SIZE)));
        h.call("mprotect unaligned", r(() -> b.mprotect(pid, a + 8, PAGE_SIZE, PROT_READ)));
        h.call("mprotect bad prot", r(() -> b.mprotect(pid, a, ps, 0x100)));
        h.call("mprotect 4K of the mapping", r(() -> b.mprotect(pid, a, PAGE_SIZE, PROT_READ)));
        h.call("mmap len 0", () -> b.mmap(pid, 0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        h.call("mmap no type", () -> b.mmap(pid, 0, PAGE_SIZE, PROT_READ, MAP_ANONYMOUS, -1, 0));
        h.call("mmap FIXED_NOREPLACE over A", () -> b.mmap(pid, a, ps, PROT_READ,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == a ? "OK" : "elsewhere");
        h.call("mmap FIXED unaligned", () -> b.mmap(pid, a + 8, PAGE_SIZE, PROT_READ,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
        h.call("mremap bad flags", () -> b.mremap(pid, a, ps, ps, 0x80, 0));
        h.call("mremap FIXED without MAYMOVE", () -> b.mremap(pid, a, ps, ps, MREMAP_FIXED, a + 2 * ps));
        h.call("mremap shrink", () -> b.mremap(pid, a + 2 * ps, 2 * ps, ps, 0, 0) == a + 2 * ps ? "OK" : "?");
        if (h.type.file) {
            int fd = h.memfd;
            h.call("ftruncate unaligned", r(() -> b.ftruncate(pid, fd, 5 * ps + 100)));
            h.call("fallocate PUNCH without KEEP_SIZE", r(() -> b.fallocate(pid, fd, FALLOC_FL_PUNCH_HOLE, 0, ps)));
            h.call("fallocate bad mode", r(() -> b.fallocate(pid, fd, 0x40, 0, ps)));
            h.call("fallocate len 0", r(() -> b.fallocate(pid, fd, 0, 0, 0)));
            h.call("pread beyond EOF", () -> "bytes=" + b.pread(pid, fd, 100 * ps, 16).length);
            h.call("pread", () -> Harness.hash(b.pread(pid, fd, 0, 8)));
            h.call("pwrite", () -> b.pwrite(pid, fd, 8, h.fill(3, 8)));
            h.call("memfd_create bad flags", () -> b.memfdCreate(pid, "x", 0x400));
            h.call("memfd_create HUGE bits without HUGETLB", () -> b.memfdCreate(pid, "x", 21 << 26));
        }
    }

    static void protNone(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, M | W);
        h.call("mprotect NONE", "OK", r(() -> b.mprotect(h.pid, a, 2 * ps, PROT_NONE)));
        h.expect("read PROT_NONE missing", h.read(a).finish(), "SIGSEGV/2 at A+0x0");
        h.drain(u);
        h.call("COPY into PROT_NONE", () -> b.uffdCopy(h.pid, u, a, h.fill(1, ps), 0));
        h.pm("after COPY", a, 1);
        h.wp(u, a, 2 * ps, true);
        h.call("mprotect RW", "OK", r(() -> b.mprotect(h.pid, a, 2 * ps, PROT_READ | PROT_WRITE)));
        h.pm("after RW", a, 2);
        h.writeHandled(u, a, 1);
        h.writeHandled(u, a + ps, 1);
    }

    static void closeUnread(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, M);
        Harness.Op r0 = h.read(a);
        h.expect("reader", r0.state(), "blocked");
        h.call("UNREGISTER page 1 (not the waiter's)", "OK", r(() -> b.uffdUnregister(h.pid, u, a + ps, ps)));
        h.expect("reader after unrelated UNREGISTER", r0.state(), "blocked");
        h.call("close(uffd) with the fault unread", "OK", r(() -> b.close(h.pid, u)));
        h.expect("reader after close", r0.finish(), "ok 00*1");
        h.pm("end", a, 2);
    }

    // ------------------------------------------------------------------ selftests (§9.1, §9.2)

    /** uffd-unit-tests "poison": odd pages COPY (zeros), even pages POISON; reading all gives n/2 SIGBUS. */
    static void selftestPoison(Harness h) {
        long ps = h.ps();
        int n = 4;
        long a = h.map(n);
        int u = h.uffd(UFFD_FEATURE_POISON);
        h.register(u, a, n * ps, M);
        int sigbus = 0;
        // the selftest poisons even pages from the handler; the native backend cannot let a blocked access
        // run into SIGBUS, so even pages are poisoned up front (same outcome: SIGBUS, no message)
        for (int i = 0; i < n; i += 2) {
            long addr = a + i * ps;
            h.call("POISON", () -> h.b.uffdPoison(h.pid, u, addr, ps, 0));
        }
        for (int i = 0; i < n; i++) {
            long addr = a + i * ps;
            Harness.Op r = h.read(addr);
            List<UffdMsg> got = h.settle(r, u);
            if (!got.isEmpty()) {
                h.call("COPY", () -> h.b.uffdCopy(h.pid, u, addr, h.fill(0, ps), 0));
            }
            if (r.finish().startsWith("SIGBUS")) {
                sigbus++;
            }
        }
        h.expect("SIGBUS count", Integer.toString(sigbus), Integer.toString(n / 2));
    }

    /**
     * uffd-unit-tests "events": a forked child (EVENT_FORK) faults half the area, mremaps it, faults the
     * rest, releases; the monitor follows FORK, REMAP and REMOVE. Needs fork: n/a on the native backend.
     */
    static void selftestEvents(Harness h) {
        long ps = h.ps();
        var b = h.b;
        int n = 4;
        long a = h.map(n);
        long d = h.map(n);
        b.munmap(h.pid, d, n * ps);
        int u = h.uffd(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE);
        h.register(u, a, n * ps, M);
        Harness.Op fork = h.async("fork", () -> b.fork(h.pid).pid() > 0 ? "OK" : "?");
        fork.state();
        List<UffdMsg> f = h.readMsgs(u, 1000);
        h.log("msgs: " + f.stream().map(h::msg).toList());
        h.expect("fork done", fork.finish(), "OK");
        int child = b.processes().stream().filter(p -> p.parentPid() == h.pid).findFirst().orElseThrow().pid();
        int cu = ((UffdMsg.Fork) f.get(0)).ufd();
        int missing = 0;
        for (int i = 0; i < n / 2; i++) {
            long addr = a + i * ps;
            Harness.Op r = h.async("child read " + h.rel(addr), () -> b.access(child, addr, 1, false, null,
                    AccessMode.USER, System.nanoTime() + Harness.OP_TIMEOUT_MS * 1_000_000L));
            for (UffdMsg m : h.settle(r, cu)) {
                if (m instanceof UffdMsg.Pagefault) {
                    missing++;
                    h.call("COPY", () -> b.uffdCopy(h.pid, cu, addr, h.fill(0, ps), 0));
                }
            }
            r.finish();
        }
        Harness.Op mr = h.async("child mremap", () -> b.mremap(child, a, n * ps, n * ps,
                MREMAP_MAYMOVE | MREMAP_FIXED, d) == d ? "OK" : "?");
        mr.state();
        h.drain(cu);
        mr.finish();
        for (int i = n / 2; i < n; i++) {
            long addr = d + i * ps;
            Harness.Op r = h.async("child read " + h.rel(addr), () -> b.access(child, addr, 1, false, null,
                    AccessMode.USER, System.nanoTime() + Harness.OP_TIMEOUT_MS * 1_000_000L));
            for (UffdMsg m : h.settle(r, cu)) {
                if (m instanceof UffdMsg.Pagefault) {
                    missing++;
                    h.call("COPY", () -> b.uffdCopy(h.pid, cu, addr, h.fill(0, ps), 0));
                }
            }
            r.finish();
        }
        h.expect("missing faults", Integer.toString(missing), Integer.toString(n));
        Harness.Op rel = h.async("child DONTNEED", () -> {
            b.madvise(child, d, n * ps, MADV_DONTNEED);
            return null;
        });
        rel.state();
        h.drain(cu);
        rel.finish();
        h.drain(u);
        b.exit(child);
    }

    /**
     * A small uffd-stress "bounce": reader threads touch every page in different orders while a background
     * thread COPYs and the handler resolves faults (EEXIST → WAKE). Only the outcome is traced: all readers
     * finish and every page holds the background copy's bytes.
     */
    static void bounce(Harness h) throws Exception {
        long ps = h.ps();
        var b = h.b;
        int n = h.type.hugetlb() ? 4 : 16;
        long a = h.map(n);
        int u = h.uffd(0);
        h.register(u, a, n * ps, M);
        List<Harness.Op> readers = new ArrayList<>();
        for (int t = 0; t < 3; t++) {
            int stride = t + 1;
            readers.add(h.async("reader " + t, () -> {
                StringBuilder sb = new StringBuilder();
                for (int i = 0; i < n; i++) {
                    long addr = a + ((long) (i * stride) % n) * ps;
                    AccessResult0 r = new AccessResult0(b.access(h.pid, addr, 1, false, null, AccessMode.USER,
                            System.nanoTime() + 5_000_000_000L));
                    sb.append(r.ok() ? "" : "!");
                }
                return sb.length() == 0 ? "all ok" : "failures";
            }));
        }
        Harness.Op bg = h.async("background copy", () -> {
            for (int i = n - 1; i >= 0; i -= 2) {
                try {
                    b.uffdCopy(h.pid, u, a + i * ps, h.fill(0x42, ps), 0);
                } catch (io.uffdemu.server.mm.LinuxException e) {
                    b.uffdWake(h.pid, u, a + i * ps, ps);
                }
            }
            return null;
        });
        long deadline = System.nanoTime() + 8_000_000_000L;
        while (System.nanoTime() < deadline && readers.stream().anyMatch(op -> !op.done())) {
            List<UffdMsg> got = h.readMsgs(u, 20);
            for (UffdMsg m : got) {
                if (m instanceof UffdMsg.Pagefault pf) {
                    long page = pf.address() & ~(ps - 1);
                    try {
                        b.uffdCopy(h.pid, u, page, h.fill(0x42, ps), 0);
                    } catch (io.uffdemu.server.mm.LinuxException e) {
                        b.uffdWake(h.pid, u, page, ps);
                    }
                }
            }
        }
        bg.finish();
        for (Harness.Op op : readers) {
            h.expect(op.label, op.finish(), "all ok");
        }
        for (int i = 0; i < n; i++) {
            byte[] d = b.access(h.pid, a + i * ps, 16, false, null, AccessMode.USER,
                    System.nanoTime() + 1_000_000_000L).data();
            h.expect("page " + i, d == null ? "fault" : Harness.hash(d), "42*16");
        }
        h.log("pages checked: " + n);
    }

    record AccessResult0(io.uffdemu.server.mm.AccessResult r) {
        boolean ok() {
            return r.succeeded();
        }
    }

    // ------------------------------------------------------------------ round 5

    static void protVariants(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(4);
        h.populate(a, 4, 9);
        int[] prots = {PROT_WRITE, PROT_EXEC, PROT_READ | PROT_EXEC, PROT_NONE};
        for (int i = 0; i < 4; i++) {
            int prot = prots[i];
            long addr = a + i * ps;
            h.call("mprotect page " + i + " prot=" + prot, r(() -> b.mprotect(h.pid, addr, ps, prot)));
            h.log("read page " + i + ": " + h.read(addr).result());
            h.log("write page " + i + ": " + h.write(addr, 1).result());
        }
        Harness.Op span = h.async("read across the end", () -> b.access(h.pid, a + 4 * ps - 8, 16, false, null,
                AccessMode.USER, System.nanoTime() + 2_000_000_000L));
        h.log("read across the end: " + span.result());
        Harness.Op kspan = h.async("kernel read across the end", () -> b.access(h.pid, a + 4 * ps - 8, 16, false,
                null, AccessMode.KERNEL, System.nanoTime() + 2_000_000_000L));
        h.log("kernel read across the end: " + kspan.result());
    }

    static void scanMasks(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long a = h.map(8);
        h.populate(a, 4, 1);
        int u = h.uffd(UFFD_FEATURE_WP_ASYNC);
        h.register(u, a, 8 * PAGE_SIZE, W);
        h.wp(u, a, 6 * PAGE_SIZE, true);
        h.write(a + PAGE_SIZE, 2).finish();
        long all = 0x1ff;
        h.call("inverted WRITTEN (clean pages)", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(a,
                a + 8 * PAGE_SIZE, 0, PAGE_IS_WRITTEN, PAGE_IS_WRITTEN, 0, all, 0, 0))));
        h.call("anyof PRESENT|SWAPPED", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(a,
                a + 8 * PAGE_SIZE, 0, 0, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, all, 0, 0))));
        h.call("mask WPALLOWED inverted", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(a,
                a + 8 * PAGE_SIZE, 0, PAGE_IS_WPALLOWED, PAGE_IS_WPALLOWED, 0, all, 0, 0))));
        h.call("return only PRESENT", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(a,
                a + 8 * PAGE_SIZE, 0, 0, 0, 0, PAGE_IS_PRESENT, 0, 0))));
        h.call("WP_MATCHING no output", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(a,
                a + 8 * PAGE_SIZE, PM_SCAN_WP_MATCHING, 0, PAGE_IS_WRITTEN, 0, PAGE_IS_WRITTEN, 0, 0))));
        h.pm("after WP_MATCHING", a, 8);
    }

    // ------------------------------------------------------------------ round 6

    static void accessModes(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(3);
        h.populate(a, 3, 0x10);
        h.call("mprotect page 1 RO", r(() -> b.mprotect(h.pid, a + ps, ps, PROT_READ)));
        h.call("mprotect page 2 NONE", r(() -> b.mprotect(h.pid, a + 2 * ps, ps, PROT_NONE)));
        for (AccessMode m : new AccessMode[] {AccessMode.KERNEL, AccessMode.REMOTE, AccessMode.PROC_MEM}) {
            for (int i = 0; i < 3; i++) {
                long addr = a + i * ps + 5;
                h.log(m + " read page " + i + ": " + h.access(addr, false, m).result());
                h.log(m + " write page " + i + ": " + h.access(addr, true, m).result());
            }
        }
        h.pm("end", a, 3);
        h.readData("page 1 after writes", a + ps + 5, 1);
    }

    static void accessModesUffd(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(4);
        h.populate(a + 3 * ps, 1, 1);
        int u = h.uffd(0);
        h.register(u, a, 4 * ps, M | W);
        h.wp(u, a + 3 * ps, ps, true);
        Harness.Op rr = h.access(a, false, AccessMode.REMOTE);
        h.handle(rr, u);
        Harness.Op pr = h.access(a + ps, false, AccessMode.PROC_MEM);
        h.expect("PROC_MEM read of a missing page", pr.finish(), "EIO");
        Harness.Op pw = h.access(a + 3 * ps, true, AccessMode.PROC_MEM);
        h.expect("PROC_MEM write of a wp'd page", pw.finish(), "EIO");
        Harness.Op kr = h.access(a + 2 * ps, false, AccessMode.KERNEL);
        h.handle(kr, u);
        h.drain(u);
        int um = b.userfaultfd(h.pid, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, false);
        h.call("API user-mode-only", () -> b.uffdApi(h.pid, um, UFFD_API, 0));
        long c = h.map(2);
        h.register(um, c, 2 * ps, M);
        h.expect("REMOTE read, user-mode-only", h.access(c, false, AccessMode.REMOTE).finish(), "EFAULT");
        h.drain(um);
    }

    static void minorOnlyHole(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(0);
        h.populate(a + ps, 1, 3);
        h.register(u, a, 2 * ps, N);
        h.call("DONTNEED page 1", r(() -> h.b.madvise(h.pid, a + ps, ps, MADV_DONTNEED)));
        Harness.Op r0 = h.read(a);
        h.handle(r0, u);
        Harness.Op r1 = h.read(a + ps);
        h.handle(r1, u);
        h.pm("end", a, 2);
    }

    // ------------------------------------------------------------------ round 7

    static void hugetlbGeometry(Harness h) {
        long ps = h.ps();
        var b = h.b;
        int pid = h.pid;
        long a = h.map(4);
        int fd = h.memfd;
        h.call("mmap unaligned len", () -> {
            long x = b.mmap(pid, 0, ps + PAGE_SIZE, PROT_READ | PROT_WRITE, h.type.shared() ? MAP_SHARED
                    : MAP_PRIVATE, fd, 0);
            h.name("U", x, 2 * ps);
            return "mapped";
        });
        h.maps("U", a - 8 * ps, a + 8 * ps);
        h.call("mmap unaligned offset", () -> b.mmap(pid, 0, ps, PROT_READ, MAP_SHARED, fd, PAGE_SIZE));
        h.call("munmap 4K", r(() -> b.munmap(pid, a, PAGE_SIZE)));
        h.call("munmap 4K in the middle", r(() -> b.munmap(pid, a + ps + PAGE_SIZE, PAGE_SIZE)));
        h.call("munmap unaligned start", r(() -> b.munmap(pid, a + PAGE_SIZE, ps)));
        h.call("munmap huge page 1", r(() -> b.munmap(pid, a + ps, ps)));
        h.maps("after", a, a + 4 * ps);
        h.call("madvise DONTNEED unaligned start", r(() -> b.madvise(pid, a + PAGE_SIZE, ps, MADV_DONTNEED)));
        h.call("mprotect unaligned len", r(() -> b.mprotect(pid, a, ps + PAGE_SIZE, PROT_READ)));
        h.call("fallocate unaligned punch", r(() -> b.fallocate(pid, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                PAGE_SIZE, PAGE_SIZE)));
        h.call("fallocate allocate", r(() -> b.fallocate(pid, fd, 0, 3 * ps, ps)));
        h.pm("end", a, 4);
    }

    static void anonZeroPage(Harness h) {
        var b = h.b;
        long a = h.map(MemType.ANON, 4);
        h.readData("read page 0", a, 4);
        h.pm("zero page", a, 1);
        h.call("scan", () -> regions(h, b.pagemapScan(h.pid, scan(a, a + 4 * PAGE_SIZE, 0, 0, 0x1ff))));
        int u = h.uffd(0);
        h.register(u, a, 4 * PAGE_SIZE, M);
        h.call("COPY over zero page", () -> b.uffdCopy(h.pid, u, a, h.fill(1, PAGE_SIZE), 0));
        h.call("ZEROPAGE over zero page", () -> b.uffdZeropage(h.pid, u, a, PAGE_SIZE, 0));
        h.call("POISON over zero page", () -> b.uffdPoison(h.pid, u, a, PAGE_SIZE, 0));
        h.call("MOVE zero page to page 2", () -> b.uffdMove(h.pid, u, a + 2 * PAGE_SIZE, a, PAGE_SIZE, 0));
        h.pm("end", a, 4);
        h.call("scan end", () -> regions(h, b.pagemapScan(h.pid, scan(a, a + 4 * PAGE_SIZE, 0, 0, 0x1ff))));
    }

    // ------------------------------------------------------------------ round 8

    static void rangesWithHoles(Harness h) {
        long ps = h.ps();
        var b = h.b;
        int pid = h.pid;
        long a = h.map(6);
        h.populate(a, 6, 1);
        h.call("munmap page 2", r(() -> b.munmap(pid, a + 2 * ps, ps)));
        int u = h.uffd(0);
        h.call("REGISTER over the hole", () -> b.uffdRegister(pid, u, a, 6 * ps, W));
        h.call("WP over the hole", r(() -> b.uffdWriteprotect(pid, u, a, 6 * ps, 1)));
        h.pm("wp", a, 6);
        h.call("DONTNEED over the hole", r(() -> b.madvise(pid, a + ps, 3 * ps, MADV_DONTNEED)));
        h.pm("after dontneed", a, 6);
        h.call("mprotect over the hole", r(() -> b.mprotect(pid, a, 6 * ps, PROT_READ)));
        h.maps("after mprotect", a, a + 6 * ps);
        h.call("POPULATE_READ over the hole", r(() -> b.madvise(pid, a, 6 * ps, MADV_POPULATE_READ)));
        h.call("COLD over the hole", r(() -> b.madvise(pid, a, 6 * ps, MADV_COLD)));
        if (h.type.shared()) {
            h.call("REMOVE over the hole", r(() -> b.madvise(pid, a, 6 * ps, MADV_REMOVE)));
        }
        h.call("munmap over the hole", r(() -> b.munmap(pid, a + ps, 3 * ps)));
        h.maps("end", a, a + 6 * ps);
        h.call("mremap from the hole", () -> h.rel(b.mremap(pid, a + 2 * ps, ps, ps, 0, 0)));
        h.call("mremap across vmas, same size", () -> h.rel(b.mremap(pid, a, 5 * ps, 5 * ps, 0, 0)));
        h.call("mremap across vmas, shrink", () -> h.rel(b.mremap(pid, a, 5 * ps, 4 * ps, 0, 0)));
        h.call("UNREGISTER over holes", r(() -> b.uffdUnregister(pid, u, a, 6 * ps)));
        h.pm("end", a, 6);
    }

    // ------------------------------------------------------------------ round 9

    static void populateHoles(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(4);
        h.call("munmap page 2", r(() -> b.munmap(h.pid, a + 2 * ps, ps)));
        h.call("POPULATE_WRITE over the hole", r(() -> b.madvise(h.pid, a, 4 * ps, MADV_POPULATE_WRITE)));
        h.pm("after", a, 4);
        h.call("POPULATE_READ from the hole", r(() -> b.madvise(h.pid, a + 2 * ps, 2 * ps, MADV_POPULATE_READ)));
        h.pm("end", a, 4);
        h.call("mprotect NONE page 1", r(() -> b.mprotect(h.pid, a + ps, ps, PROT_NONE)));
        h.call("POPULATE_READ over PROT_NONE", r(() -> b.madvise(h.pid, a, 2 * ps, MADV_POPULATE_READ)));
        h.call("POPULATE_WRITE over RO", r(() -> {
            b.mprotect(h.pid, a + 3 * ps, ps, PROT_READ);
            b.madvise(h.pid, a + 3 * ps, ps, MADV_POPULATE_WRITE);
        }));
    }

    static void mremapOrder(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        long blocker = h.map(1);
        h.call("move the blocker right behind A", () -> h.rel(b.mremap(h.pid, blocker, ps, ps,
                MREMAP_MAYMOVE | MREMAP_FIXED, a + 2 * ps)));
        long target = h.map(2);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_UNMAP);
        h.populate(a, 2, 1);
        h.populate(target, 2, 1);
        h.register(u, a, 2 * ps, M | W);
        h.register(u, target, 2 * ps, M);
        Harness.Op grow = h.async("mremap grow must move", () -> {
            long x = b.mremap(h.pid, a, 2 * ps, 3 * ps, MREMAP_MAYMOVE, 0);
            h.name("G", x, 3 * ps);
            return x == a ? "in place" : "moved";
        });
        grow.state();
        List<UffdMsg> got = h.readMsgs(u, 500);
        h.log("grow msgs: " + got.stream().map(m -> m instanceof UffdMsg.Remap rm ? "REMAP len=0x"
                + Long.toHexString(rm.len()) : h.msg(m)).toList());
        grow.finish();
        h.drain(u);
        Harness.Op onto = h.async("mremap FIXED onto a registered range", () -> h.rel(b.mremap(h.pid, blocker == 0
                ? 0 : a + 2 * ps, ps, ps, MREMAP_MAYMOVE | MREMAP_FIXED, target)));
        onto.state();
        h.drain(u);
        onto.finish();
        h.drain(u);
    }

    static void shmemPartial(Harness h) {
        var b = h.b;
        long a = h.map(2);
        h.populate(a, 2, 0x11);
        h.call("pwrite across pages", () -> b.pwrite(h.pid, h.memfd, PAGE_SIZE - 4, h.fill(0x22, 8)));
        h.readData("across via mapping", a + PAGE_SIZE - 4, 8);
        h.call("ftruncate to 1.5 pages", r(() -> b.ftruncate(h.pid, h.memfd, PAGE_SIZE + PAGE_SIZE / 2)));
        h.readData("tail of page 1", a + PAGE_SIZE + PAGE_SIZE / 2 - 2, 4);
        h.call("pread across EOF", () -> Harness.hash(b.pread(h.pid, h.memfd, PAGE_SIZE, (int) PAGE_SIZE)));
        h.call("fallocate PUNCH partial", r(() -> b.fallocate(h.pid, h.memfd,
                FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8, 16)));
        h.readData("page 0 head", a, 32);
        h.pm("end", a, 2);
    }

    // ------------------------------------------------------------------ round 10

    static void privateOverCache(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(3);
        long sh = b.mmap(h.pid, 0, 3 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd, 0);
        h.name("S", sh, 3 * ps);
        h.populate(sh, 3, 0x70);
        int u = h.uffd(0);
        h.register(u, a, 3 * ps, M | W | N);
        Harness.Op r0 = h.read(a);
        h.handle(r0, u);
        h.pm("after minor read", a, 1);
        h.wp(u, a, 3 * ps, true);
        h.pm("after wp", a, 3);
        h.expect("write page 0", h.writeHandled(u, a, 1), "3");
        h.pm("after COW", a, 1);
        h.readData("shared sees", sh, 1);
        Harness.Op w1 = h.write(a + ps, 2);
        h.handle(w1, u);
        h.pm("page 1", a + ps, 1);
        h.call("CONTINUE(MODE_WP) page 2", () -> b.uffdContinue(h.pid, u, a + 2 * ps, ps, UFFDIO_CONTINUE_MODE_WP));
        h.pm("page 2", a + 2 * ps, 1);
        h.expect("write page 2", h.writeHandled(u, a + 2 * ps, 3), "3");
        h.readData("shared page 2", sh + 2 * ps, 1);
        h.readData("private page 2", a + 2 * ps, 1);
    }

    static void twoUffdsEvents(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(4);
        int u1 = h.uffd(UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE);
        int u2 = h.uffd(UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE);
        h.populate(a, 4, 1);
        h.register(u1, a, 2 * ps, M);
        h.register(u2, a + 2 * ps, 2 * ps, M);
        Harness.Op dn = h.async("DONTNEED all", r(() -> b.madvise(h.pid, a, 4 * ps, MADV_DONTNEED)));
        dn.state();
        h.log("u1 first: " + h.readMsgs(u1, 300).stream().map(h::msg).toList());
        h.log("u2 before u1 read: " + h.readMsgs(u2, 100).stream().map(h::msg).toList());
        dn.state();
        h.drain(u2);
        dn.finish();
        Harness.Op un = h.async("munmap all", r(() -> b.munmap(h.pid, a, 4 * ps)));
        un.state();
        h.drain(u2);
        h.drain(u1);
        un.finish();
    }

    // ------------------------------------------------------------------ round 11

    static void wpUnpopulatedMissing(Harness h) {
        var b = h.b;
        long a = h.map(MemType.ANON, 3);
        int u = h.uffd(UFFD_FEATURE_WP_UNPOPULATED);
        h.register(u, a, 3 * PAGE_SIZE, M | W);
        h.wp(u, a, 3 * PAGE_SIZE, true);
        Harness.Op r = h.read(a);
        for (UffdMsg m : h.settle(r, u)) {
            if (m instanceof UffdMsg.Pagefault) {
                h.call("COPY(MODE_WP)", () -> b.uffdCopy(h.pid, u, a, h.fill(4, PAGE_SIZE), UFFDIO_COPY_MODE_WP));
            }
        }
        r.finish();
        h.pm("after", a, 1);
        h.expect("write after COPY(MODE_WP)", h.writeHandled(u, a, 1), "3");
        h.call("ZEROPAGE over marker", "EEXIST", () -> b.uffdZeropage(h.pid, u, a + PAGE_SIZE, PAGE_SIZE, 0));
        h.call("un-WP marker", "OK", r(() -> b.uffdWriteprotect(h.pid, u, a + PAGE_SIZE, PAGE_SIZE, 0)));
        h.call("ZEROPAGE after un-WP", "0x1000", () -> b.uffdZeropage(h.pid, u, a + PAGE_SIZE, PAGE_SIZE, 0));
        h.pm("end", a, 3);
    }

    static void scanAcross(Harness h) {
        long ps = h.ps();
        var b = h.b;
        int pid = h.pid;
        long a = h.map(6);
        h.populate(a, 6, 1);
        h.call("munmap page 2", r(() -> b.munmap(pid, a + 2 * ps, ps)));
        h.call("mprotect page 4 RO", r(() -> b.mprotect(pid, a + 4 * ps, ps, PROT_READ)));
        int u = h.uffd(UFFD_FEATURE_WP_ASYNC);
        h.register(u, a + 3 * ps, 3 * ps, W);
        h.wp(u, a + 3 * ps, 3 * ps, true);
        long end = a + 6 * ps;
        h.call("all", () -> regions(h, b.pagemapScan(pid, scan(a, end, 0, 0, 0x1ff))));
        for (int lim : new int[] {1, 2, 3}) {
            h.call("max_regions " + lim, () -> {
                var res = b.pagemapScan(pid, new Pagemap.ScanArg(a, end, 0, 0, 0, 0, 0x1ff, 0, lim));
                return regions(h, res) + " walk_end=" + h.relEnd(res.walkEnd());
            });
        }
        long pages = h.type.hugetlb() ? 512 * 3 + 7 : 3;
        h.call("max_pages", () -> {
            var res = b.pagemapScan(pid, new Pagemap.ScanArg(a, end, 0, 0, 0, 0, 0x1ff, pages, 0));
            return regions(h, res) + " walk_end=" + h.relEnd(res.walkEnd());
        });
        h.call("WRITTEN only, WP_MATCHING", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(a, end,
                PM_SCAN_WP_MATCHING, 0, PAGE_IS_WRITTEN, 0, 0x1ff, 0, 0))));
        h.pm("end", a, 6);
    }

    // ------------------------------------------------------------------ semantics audit

    /**
     * Reference §3.3: registering again with the same uffd and a subset of the VMA's modes changes nothing
     * (mm/userfaultfd.c userfaultfd_register_range() skips a VMA of the same ctx that already has every requested
     * bit); the returned ioctls still follow the requested mode.
     */
    static void registerSubset(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.populate(a + ps, 1, 1);
        h.register(u, a, 2 * ps, M | W);
        h.call("REGISTER MISSING over M|W", expectedIoctls(h.type, M),
                () -> b.uffdRegister(h.pid, u, a, 2 * ps, M));
        h.maps("after MISSING over M|W", a, a + 2 * ps);
        h.call("WRITEPROTECT page 1", "OK", r(() -> b.uffdWriteprotect(h.pid, u, a + ps, ps,
                UFFDIO_WRITEPROTECT_MODE_WP)));
        h.expect("write wp'd page 1", h.writeHandled(u, a + ps, 2), "3");
        h.call("REGISTER WP over M|W page 0", expectedIoctls(h.type, W),
                () -> b.uffdRegister(h.pid, u, a, ps, W));
        h.maps("after WP over M|W", a, a + 2 * ps);
        Harness.Op rd = h.read(a);
        h.handle(rd, u);
        // not a subset: MINOR (file) or WP|MINOR replaces
        if (!h.type.anon()) {
            h.register(u, a, ps, N);
            h.maps("after MINOR over M|W page 0", a, a + 2 * ps);
        }
        h.drain(u);
    }

    /**
     * Reference §4.4 and §4.6: setting wp never wakes; WAKE without un-protecting makes the writer re-fault with a
     * new WP message; un-WP with DONTWAKE leaves it blocked until UFFDIO_WAKE.
     */
    static void wpWakeDontwake(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(1);
        int u = h.uffd(0);
        h.populate(a, 1, 1);
        h.register(u, a, ps, W);
        h.wp(u, a, ps, true);
        Harness.Op w = h.write(a, 2);
        h.settle(w, u);
        h.wp(u, a, ps, true);
        h.expect("writer after WP again", w.state(), "blocked");
        h.call("WAKE without un-WP", "OK", r(() -> b.uffdWake(h.pid, u, a, ps)));
        h.settle(w, u);
        h.call("un-WP DONTWAKE", "OK", r(() -> b.uffdWriteprotect(h.pid, u, a, ps,
                UFFDIO_WRITEPROTECT_MODE_DONTWAKE)));
        h.expect("writer after un-WP DONTWAKE", w.state(), "blocked");
        h.pmExpect("after un-WP", a, 1, h.type.shared() ? "P--F" : "P---");
        h.call("WAKE", "OK", r(() -> b.uffdWake(h.pid, u, a, ps)));
        h.expect("writer after WAKE", w.finish(), "ok");
        h.readData("written", a, 1);
        h.drain(u);
    }

    /**
     * Reference §4.5: CONTINUE on a shmem/hugetlb VMA registered without MINOR ("check the kernel"); and
     * CONTINUE(MODE_WP) on a WP-only VMA.
     */
    static void continueWithoutMinor(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(3);
        int u = h.uffd(0);
        h.populate(a, 3, 0x31);
        h.call("DONTNEED", "OK", r(() -> b.madvise(h.pid, a, 3 * ps, MADV_DONTNEED)));
        h.register(u, a, ps, M);
        h.register(u, a + ps, 2 * ps, W);
        h.call("CONTINUE on MISSING-only", () -> b.uffdContinue(h.pid, u, a, ps, 0));
        h.pm("page 0", a, 1);
        h.call("CONTINUE on WP-only", () -> b.uffdContinue(h.pid, u, a + ps, ps, 0));
        h.call("CONTINUE(MODE_WP) on WP-only", () -> b.uffdContinue(h.pid, u, a + 2 * ps, ps,
                UFFDIO_CONTINUE_MODE_WP));
        h.pm("pages 1-2", a + ps, 2);
        h.readData("page 2", a + 2 * ps, 1);
        h.drain(u);
    }

    /**
     * Reference §8.1: close(uffd) wakes a thread blocked raising a non-cooperative event (madvise in D until the
     * REMOVE is read); §3.3/§5.6: UNREGISTER and REGISTER succeed while the event is unread; §5.5: MADV_PAGEOUT
     * raises no REMOVE.
     */
    static void closeWakesEventRaiser(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(4);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMOVE);
        h.populate(a, 4, 1);
        h.register(u, a, 4 * ps, M | W);
        if (!h.type.hugetlb()) {
            h.call("MADV_PAGEOUT", "OK", r(() -> b.madvise(h.pid, a + 2 * ps, ps, MADV_PAGEOUT)));
            h.drain(u);
        }
        int advice = h.type.anon() ? MADV_DONTNEED : MADV_REMOVE;
        Harness.Op mad = h.async("madvise page 0", () -> {
            b.madvise(h.pid, a, ps, advice);
            return null;
        });
        h.expect("madvise while event unread", mad.state(), "blocked");
        h.call("UNREGISTER page 3 while pending", "OK", r(() -> b.uffdUnregister(h.pid, u, a + 3 * ps, ps)));
        h.call("REGISTER page 3 while pending", expectedIoctls(h.type, M),
                () -> b.uffdRegister(h.pid, u, a + 3 * ps, ps, M));
        h.expect("madvise after UNREGISTER/REGISTER", mad.state(), "blocked");
        h.call("close(uffd)", "OK", r(() -> b.close(h.pid, u)));
        h.expect("madvise after close", mad.finish(), "OK");
        h.maps("after close", a, a + 4 * ps);
        // page 2 is left out: without swap, whether reclaim unmapped a shmem page is not deterministic
        h.pm("after close", a, 2);
        h.pm("page 3 after close", a + 3 * ps, 1);
    }

    /**
     * Reference §7.2: with WP_ASYNC, MISSING|WP is still allowed on anon and MISSING faults stay synchronous while
     * WP faults resolve in the kernel.
     */
    static void asyncMissing(Harness h) {
        var b = h.b;
        long a = h.map(MemType.ANON, 3);
        int u = h.uffd(UFFD_FEATURE_WP_ASYNC);
        h.populate(a, 1, 1);
        h.call("REGISTER M|W on async ctx", "0x17c", () -> b.uffdRegister(h.pid, u, a, 3 * PAGE_SIZE, M | W));
        h.wp(u, a, 3 * PAGE_SIZE, true);
        h.pm("after WP", a, 3);
        h.expect("write wp'd page 0", h.writeHandled(u, a, 2), "none");
        h.pm("page 0 after write", a, 1);
        h.expect("write wp'd hole 1", h.writeHandled(u, a + PAGE_SIZE, 2), "1");
        h.pm("page 1", a + PAGE_SIZE, 1);
        Harness.Op rd = h.read(a + 2 * PAGE_SIZE);
        h.handle(rd, u);
        h.pm("end", a, 3);
        h.call("scan", () -> regions(h, b.pagemapScan(h.pid, scan(a, a + 3 * PAGE_SIZE, 0, 0, 0x1ff))));
    }

    /** Reference §4.8: a shmem src gives EINVAL (anon dst registered). */
    static void moveShmemSrc(Harness h) {
        var b = h.b;
        long src = h.map(1);
        long dst = h.map(MemType.ANON, 1);
        int u = h.uffd(0);
        h.populate(src, 1, 1);
        h.register(u, dst, PAGE_SIZE, M);
        h.call("MOVE shmem src -> anon dst", "EINVAL", () -> b.uffdMove(h.pid, u, dst, src, PAGE_SIZE, 0));
        h.pm("src", src, 1);
        h.pm("dst", dst, 1);
    }

    /** Reference §3.4: hugetlb UNREGISTER ranges must be huge-page aligned (and below a huge page: EINVAL). */
    static void unregisterHugetlbGeometry(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, M);
        h.call("UNREGISTER len 4K", "EINVAL", r(() -> b.uffdUnregister(h.pid, u, a, PAGE_SIZE)));
        h.call("UNREGISTER start+4K", "EINVAL", r(() -> b.uffdUnregister(h.pid, u, a + PAGE_SIZE, ps)));
        h.call("UNREGISTER len HP+4K", "EINVAL", r(() -> b.uffdUnregister(h.pid, u, a, ps + PAGE_SIZE)));
        h.maps("still registered", a, a + 2 * ps);
        h.call("UNREGISTER page 1", "OK", r(() -> b.uffdUnregister(h.pid, u, a + ps, ps)));
        h.maps("after", a, a + 2 * ps);
    }

    /** Reference §1.1 and §2.2 rule 9: fdinfo features before and after UFFDIO_API, WP_ASYNC implies WP_UNPOPULATED. */
    static void fdinfoApi(Harness h) {
        var b = h.b;
        int pid = h.pid;
        int u = b.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        h.call("fdinfo before API", () -> "0x" + Long.toHexString(b.uffdDescribe(pid, u).features()));
        h.call("API(api=0xab)", "EINVAL", () -> b.uffdApi(pid, u, 0xab, 0));
        h.call("fdinfo after failed API", () -> "0x" + Long.toHexString(b.uffdDescribe(pid, u).features()));
        h.call("API(0)", () -> b.uffdApi(pid, u, UFFD_API, 0));
        h.call("fdinfo after API(0)", () -> "0x" + Long.toHexString(b.uffdDescribe(pid, u).features()));
        int u2 = b.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        h.call("API(WP_ASYNC)", () -> b.uffdApi(pid, u2, UFFD_API, UFFD_FEATURE_WP_ASYNC));
        h.call("fdinfo after API(WP_ASYNC)", () -> "0x" + Long.toHexString(b.uffdDescribe(pid, u2).features()));
        int u3 = b.userfaultfd(pid, O_CLOEXEC | O_NONBLOCK, false);
        h.call("API(EVENT_REMOVE|THREAD_ID)", () -> b.uffdApi(pid, u3, UFFD_API,
                UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_THREAD_ID));
        h.call("fdinfo after API(EVENT_REMOVE|THREAD_ID)",
                () -> "0x" + Long.toHexString(b.uffdDescribe(pid, u3).features()));
    }

    /** Reference §5.3: ptid is set with THREAD_ID and 0 without (the tid itself differs between backends). */
    static void threadId(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(UFFD_FEATURE_THREAD_ID);
        h.register(u, a, ps, M);
        Harness.Op r = h.read(a);
        for (UffdMsg m : h.settle(r, u)) {
            if (m instanceof UffdMsg.Pagefault pf) {
                h.expect("ptid with THREAD_ID", pf.ptid() != 0 ? "tid" : "0", "tid");
                h.log("ptid with THREAD_ID: " + (pf.ptid() != 0 ? "tid" : "0"));
                h.call("COPY", () -> h.b.uffdCopy(h.pid, u, a, h.fill(1, ps), 0));
            }
        }
        r.finish();
        int u0 = h.uffd(0);
        h.register(u0, a + ps, ps, M);
        Harness.Op r0 = h.read(a + ps);
        for (UffdMsg m : h.settle(r0, u0)) {
            if (m instanceof UffdMsg.Pagefault pf) {
                h.expect("ptid without THREAD_ID", Integer.toString(pf.ptid()), "0");
                h.log("ptid without THREAD_ID: " + pf.ptid());
                h.call("COPY", () -> h.b.uffdCopy(h.pid, u0, a + ps, h.fill(1, ps), 0));
            }
        }
        r0.finish();
    }

    /**
     * Reference §1.1 and §4.1: a wake covers faults not read yet. A COPY wakes an unread fault and its message is
     * gone (fs/userfaultfd.c userfaultfd_wake_function() takes it off the pending queue); a WAKE of an unread,
     * unresolved fault leaves exactly one message: the re-fault's.
     */
    static void wakeUnreadFault(Harness h) throws InterruptedException {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, M);
        Harness.Op r = h.read(a);
        h.awaitFaults(u, 1);
        h.call("COPY, fault not read", () -> b.uffdCopy(h.pid, u, a, h.fill(0x21, ps), 0));
        h.expect("reader after COPY", r.finish(), "ok 21*1");
        h.drain(u);
        Harness.Op r2 = h.read(a + ps);
        h.awaitFaults(u, 1);
        h.call("WAKE, fault not read", "OK", r(() -> b.uffdWake(h.pid, u, a + ps, ps)));
        h.awaitFaults(u, 1);
        h.drain(u);
        h.call("COPY page 1", () -> b.uffdCopy(h.pid, u, a + ps, h.fill(0x22, ps), 0));
        h.expect("reader after COPY page 1", r2.finish(), "ok 22*1");
        h.drain(u);
    }

    /** Reference §5.5 and §6.1 (shmem/hugetlb "K: same"): with EVENT_REMAP a moved VMA keeps registration and wp. */
    static void mremapEventFile(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        long d = h.map(2);
        int u = h.uffd(UFFD_FEATURE_EVENT_REMAP);
        h.populate(a, 2, 1);
        h.register(u, a, 2 * ps, W);
        h.wp(u, a, 2 * ps, true);
        Harness.Op mr = h.async("mremap", () -> h.b.mremap(h.pid, a, 2 * ps, 2 * ps,
                MREMAP_MAYMOVE | MREMAP_FIXED, d) == d ? "OK" : "elsewhere");
        mr.state();
        h.drain(u);
        mr.finish();
        h.maps("moved", d, d + 2 * ps);
        String wp = h.type.shared() ? "P-WF" : "P-W-";
        h.pmExpect("moved", d, 2, wp + " " + wp);
        h.expect("write moved", h.writeHandled(u, d, 2), "3");
        h.drain(u);
    }

    /**
     * Reference §4.4: WRITEPROTECT of a range that is wholly a hole gives ENOENT (and a hole inside a registered
     * range is skipped).
     */
    static void wpRangeOnlyHole(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(3);
        int u = h.uffd(0);
        h.populate(a, 1, 1);
        h.register(u, a, 3 * ps, W);
        h.call("munmap page 1", "OK", r(() -> b.munmap(h.pid, a + ps, ps)));
        h.call("WRITEPROTECT hole only", "ENOENT", r(() -> b.uffdWriteprotect(h.pid, u, a + ps, ps,
                UFFDIO_WRITEPROTECT_MODE_WP)));
        h.call("un-WP hole only", "ENOENT", r(() -> b.uffdWriteprotect(h.pid, u, a + ps, ps, 0)));
        h.call("WRITEPROTECT across the hole", "OK", r(() -> b.uffdWriteprotect(h.pid, u, a, 3 * ps,
                UFFDIO_WRITEPROTECT_MODE_WP)));
        h.pm("page 0", a, 1);
    }

    /**
     * Reference §3.1 and §4.2/§4.3: COPY and ZEROPAGE are not filtered by mode; they work in a MINOR-only
     * registration (ZEROPAGE allocates a zeroed page-cache page on shmem).
     */
    static void fillMinorOnly(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.register(u, a, 2 * ps, N);
        h.call("COPY into MINOR-only hole", "0x" + Long.toHexString(ps),
                () -> b.uffdCopy(h.pid, u, a, h.fill(0x44, ps), 0));
        h.pm("page 0", a, 1);
        h.readData("page 0", a, 1);
        h.call("ZEROPAGE into MINOR-only hole", h.type.hugetlb() ? "EINVAL" : "0x" + Long.toHexString(ps),
                () -> b.uffdZeropage(h.pid, u, a + ps, ps, 0));
        h.pm("page 1", a + ps, 1);
        h.drain(u);
    }

    /**
     * Reference §7.3: a category bit >= 9 in any mask gives EINVAL; WP_MATCHING|CHECK_WPASYNC on an unregistered
     * VMA gives EPERM, WP_MATCHING alone skips it.
     */
    static void scanArgsMore(Harness h) {
        var b = h.b;
        int pid = h.pid;
        long plain = h.map(MemType.ANON, 2);
        h.populate(plain, 2, 1);
        long end = plain + 2 * PAGE_SIZE;
        h.call("inverted bit 9", "EINVAL", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(plain, end, 0,
                1 << 9, 0, 0, 0xff, 0, 0))));
        h.call("anyof bit 9", "EINVAL", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(plain, end, 0, 0, 0,
                1 << 9, 0xff, 0, 0))));
        h.call("return bit 9", "EINVAL", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(plain, end, 0, 0, 0,
                0, 0x3ff, 0, 0))));
        h.call("all masks 0x1ff", () -> regions(h, b.pagemapScan(pid, new Pagemap.ScanArg(plain, end, 0, 0, 0,
                0x1ff, 0x1ff, 0, 0))));
        h.call("WP_MATCHING|CHECK_WPASYNC on unregistered", "EPERM", () -> regions(h, b.pagemapScan(pid,
                scan(plain, end, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0, 0xff))));
        h.call("WP_MATCHING on unregistered", "none", () -> regions(h, b.pagemapScan(pid,
                scan(plain, end, PM_SCAN_WP_MATCHING, 0, 0xff))));
        h.pm("unregistered after WP_MATCHING", plain, 2);
    }

    /**
     * Reference §4.1: a COPY (or ZEROPAGE) that stops early (EAGAIN, done = N bytes) still wakes the faults in
     * [dst, dst+N); faults past the stop stay blocked.
     */
    static void partialFillWakes(Harness h) throws InterruptedException {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(4);
        int u = h.uffd(0);
        h.register(u, a, 4 * ps, M);
        h.call("COPY page 2", () -> b.uffdCopy(h.pid, u, a + 2 * ps, h.fill(2, ps), 0));
        Harness.Op r0 = h.read(a);
        Harness.Op r3 = h.read(a + 3 * ps);
        h.awaitFaults(u, 2);
        h.call("COPY pages 0-3, page 2 present", "EAGAIN done=0x" + Long.toHexString(2 * ps),
                () -> b.uffdCopy(h.pid, u, a, h.fill(1, 4 * ps), 0));
        h.expect("reader page 0 after partial COPY", r0.state(), "ok 01*1");
        h.expect("reader page 3 after partial COPY", r3.state(), "blocked");
        h.call("COPY page 3", () -> b.uffdCopy(h.pid, u, a + 3 * ps, h.fill(3, ps), 0));
        h.expect("reader page 3", r3.finish(), "ok 03*1");
        h.drain(u);
        if (!h.type.hugetlb()) {
            long c = h.map(3);
            h.register(u, c, 3 * ps, M);
            h.call("ZEROPAGE page 1", () -> b.uffdZeropage(h.pid, u, c + ps, ps, 0));
            Harness.Op z0 = h.read(c);
            h.awaitFaults(u, 1);
            h.call("ZEROPAGE pages 0-2, page 1 present", "EAGAIN done=0x" + Long.toHexString(ps),
                    () -> b.uffdZeropage(h.pid, u, c, 3 * ps, 0));
            h.expect("reader page 0 after partial ZEROPAGE", z0.state(), "ok 00*1");
            h.drain(u);
        }
    }

    /** Reference §4.1/§4.8: a MOVE that stops early (EAGAIN, done = N) wakes the faults in [dst, dst+N). */
    static void partialMoveWakes(Harness h) throws InterruptedException {
        var b = h.b;
        long src = h.map(MemType.ANON, 2);
        long dst = h.map(MemType.ANON, 2);
        int u = h.uffd(0);
        h.populate(src, 1, 7);
        h.register(u, dst, 2 * PAGE_SIZE, M);
        Harness.Op r0 = h.read(dst);
        h.awaitFaults(u, 1);
        h.call("MOVE 2 pages, 2nd src hole", "EAGAIN done=0x1000",
                () -> b.uffdMove(h.pid, u, dst, src, 2 * PAGE_SIZE, 0));
        h.expect("reader after partial MOVE", r0.state(), "ok 07*1");
        h.drain(u);
    }

    /**
     * Reference §1.3: "If the VMA lost WP mode, any leftover bit is ignored and markers are cleaned up lazily on
     * fault". A WP registration is replaced by MISSING (not a subset), the pages are written, then WP mode comes
     * back: what pagemap shows at each step and which writes fault is the kernel's answer.
     */
    static void wpBitsAfterModeLoss(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(3);
        int u = h.uffd(UFFD_FEATURE_WP_UNPOPULATED);
        h.populate(a, 2, 1);
        h.register(u, a, 3 * ps, W);
        h.wp(u, a, 3 * ps, true);
        h.pm("wp'd", a, 3);
        h.register(u, a, 3 * ps, M);
        h.maps("after MISSING replaces WP", a, a + 3 * ps);
        h.pm("after MISSING replaces WP", a, 3);
        h.expect("write page 0 (MISSING only)", h.writeHandled(u, a, 2), "none");
        h.pm("page 0 after write", a, 1);
        h.log("write page 2 (hole or marker): " + h.writeHandled(u, a + 2 * ps, 2));
        h.pm("page 2 after write", a + 2 * ps, 1);
        h.register(u, a, 3 * ps, W);
        h.pm("after WP mode is back", a, 3);
        h.log("write page 1 after WP is back: " + h.writeHandled(u, a + ps, 3));
        h.log("write page 0 (written while WP was off) after WP is back: " + h.writeHandled(u, a, 4));
        h.pm("end", a, 3);
        h.drain(u);
    }

    /**
     * The hugetlb side of wp-bits-after-mode-loss: a write to a huge page whose uffd-wp bit outlived the VMA's WP
     * mode makes no progress (mm/hugetlb.c hugetlb_wp() refuses to handle a uffd-wp protected page and
     * hugetlb_fault() only reports uffd-wp when the VMA has WP mode): the writer stays stuck, with no message,
     * until WP mode comes back and the fault is reported as WP.
     */
    static void wpBitsAfterModeLossHugetlb(Harness h) {
        long ps = h.ps();
        long a = h.map(2);
        int u = h.uffd(0);
        h.populate(a, 2, 1);
        h.register(u, a, 2 * ps, W);
        h.wp(u, a, 2 * ps, true);
        h.register(u, a, 2 * ps, M);
        h.pm("after MISSING replaces WP", a, 2);
        h.readData("read page 0", a, 1);
        Harness.Op w = h.write(a, 2);
        h.expect("writer while WP mode is off", w.state(), "blocked");
        h.drain(u);
        h.register(u, a, 2 * ps, W);
        h.handle(w, u);
        h.pm("end", a, 2);
        h.readData("written", a, 1);
        h.drain(u);
    }

    /**
     * wp-bits-after-mode-loss, continued: mprotect RO then RW while the VMA has no WP mode, then WP mode comes
     * back (does mprotect make the leftover-wp PTE writable?); and UNREGISTER of a VMA without WP mode leaves the
     * bits (userfaultfd_clear_vma() clears wp only when the VMA has WP mode).
     */
    static void wpBitsAfterModeLossMprotect(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.populate(a, 2, 1);
        h.register(u, a, 2 * ps, W);
        h.wp(u, a, 2 * ps, true);
        h.register(u, a, 2 * ps, M);
        h.call("mprotect RO", "OK", r(() -> b.mprotect(h.pid, a, ps, PROT_READ)));
        h.call("mprotect RW", "OK", r(() -> b.mprotect(h.pid, a, ps, PROT_READ | PROT_WRITE)));
        h.pm("after mprotect", a, 2);
        h.register(u, a, 2 * ps, W);
        h.log("write page 0 after WP is back: " + h.writeHandled(u, a, 2));
        h.pm("after write", a, 2);
        h.register(u, a, 2 * ps, M);
        h.call("UNREGISTER (no WP mode)", "OK", r(() -> b.uffdUnregister(h.pid, u, a, 2 * ps)));
        h.pm("after UNREGISTER", a, 2);
        h.register(u, a, 2 * ps, W);
        h.log("write page 1 after re-register WP: " + h.writeHandled(u, a + ps, 3));
        h.pm("end", a, 2);
        h.drain(u);
    }

    /**
     * Reference §4.4: WRITEPROTECT over a WP-registered VMA followed by a VMA without WP mode gives ENOENT; is the
     * first VMA protected anyway (mm/userfaultfd.c mwriteprotect_range() walks the VMAs in order)? And the other
     * order, and un-protecting.
     */
    static void wpRangeMixedVmas(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(4);
        int u = h.uffd(0);
        h.populate(a, 3, 1);
        h.call("munmap page 3", "OK", r(() -> b.munmap(h.pid, a + 3 * ps, ps)));
        h.register(u, a, ps, W);
        h.register(u, a + ps, ps, M);
        h.call("WRITEPROTECT W vma + M vma", "ENOENT", r(() -> b.uffdWriteprotect(h.pid, u, a, 2 * ps,
                UFFDIO_WRITEPROTECT_MODE_WP)));
        h.pm("after", a, 2);
        h.register(u, a + ps, ps, M | W);
        h.call("UNREGISTER page 0", "OK", r(() -> b.uffdUnregister(h.pid, u, a, ps)));
        h.register(u, a, ps, M);
        h.wp(u, a + ps, ps, true);
        h.maps("M vma + M|W vma", a, a + 2 * ps);
        h.call("un-WP M vma + M|W vma", "ENOENT", r(() -> b.uffdWriteprotect(h.pid, u, a, 2 * ps, 0)));
        h.pm("after un-WP", a, 2);
        h.register(u, a, ps, M | W);
        h.wp(u, a, ps, true);
        h.call("UNREGISTER page 1", "OK", r(() -> b.uffdUnregister(h.pid, u, a + ps, ps)));
        h.register(u, a + ps, ps, M);
        h.pm("before un-WP M|W vma + M vma", a, 2);
        h.call("un-WP M|W vma + M vma", "ENOENT", r(() -> b.uffdWriteprotect(h.pid, u, a, 2 * ps, 0)));
        h.pm("after un-WP M|W vma + M vma", a, 2);
        // a range that runs from a WP-registered VMA into unmapped space (page 3 is a hole, nothing after it
        // in this scenario's mapping)
        h.register(u, a + 2 * ps, ps, W);
        h.call("WRITEPROTECT W vma + unmapped tail", r(() -> b.uffdWriteprotect(h.pid, u, a + 2 * ps, 2 * ps,
                UFFDIO_WRITEPROTECT_MODE_WP)));
        h.pm("page 2", a + 2 * ps, 1);
    }

    /**
     * Reference §4.2: the COPY/ZEROPAGE/POISON destination must lie in one registered VMA; a range over two
     * registered VMAs (different modes) is ENOENT with nothing done.
     */
    static void fillAcrossVmas(Harness h) {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        int u = h.uffd(0);
        h.register(u, a, ps, M);
        h.register(u, a + ps, ps, M | W);
        h.call("COPY across two registered vmas", "ENOENT", () -> b.uffdCopy(h.pid, u, a, h.fill(1, 2 * ps), 0));
        if (!h.type.hugetlb()) {
            h.call("ZEROPAGE across two registered vmas", "ENOENT", () -> b.uffdZeropage(h.pid, u, a, 2 * ps, 0));
        }
        h.call("POISON across two registered vmas", "ENOENT", () -> b.uffdPoison(h.pid, u, a, 2 * ps, 0));
        h.pm("after", a, 2);
    }

    /** Reference §4.1 for CONTINUE: stopping at a page not in the cache (EAGAIN, done = N) wakes [dst, dst+N). */
    static void partialContinueWakes(Harness h) throws InterruptedException {
        long ps = h.ps();
        var b = h.b;
        long a = h.map(2);
        long al = h.alias(2);
        int u = h.uffd(0);
        h.populate(a, 1, 0x61);
        h.register(u, al, 2 * ps, N);
        Harness.Op r0 = h.read(al);
        h.awaitFaults(u, 1);
        h.call("CONTINUE 2 pages, 2nd not in cache", "EAGAIN done=0x" + Long.toHexString(ps),
                () -> b.uffdContinue(h.pid, u, al, 2 * ps, 0));
        h.expect("reader after partial CONTINUE", r0.state(), "ok 61*1");
        h.drain(u);
        h.pm("alias", al, 2);
    }
}
