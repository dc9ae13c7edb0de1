package io.uffdemu.server.oracle;

import static org.junit.jupiter.api.Assertions.fail;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.emulated.EmulatedBackend;
import io.uffdemu.server.backend.linux.LinuxAvailability;
import io.uffdemu.server.backend.linux.LinuxBackend;
import io.uffdemu.server.conformance.MemType;
import io.uffdemu.server.mm.Kernel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The uffd-wp oracle ({@link OracleRound}) crossed with {anon, shmem, hugetlb}: on the emulated backend always,
 * and on the native backend (this machine's kernel) for anon and shmem whenever {@link LinuxAvailability} says
 * it can run, for hugetlb only when enough free huge pages already exist (this test never changes
 * {@code vm.nr_hugepages}: other runs share the host). With {@code CI=true} an unavailable native backend fails
 * the native half instead of skipping it, as in {@code ConformanceTest}.
 *
 * <p>Seeded: the seed is printed; {@code -Duffdemu.oracle.seed=S} reruns it, {@code -Duffdemu.oracle.round=R}
 * only round R, {@code -Duffdemu.oracle.rounds=N} / {@code -Duffdemu.oracle.nativeRounds=N} set the number of
 * rounds per memory type.
 */
class UffdOracleTest {
    static final long SEED = Long.getLong("uffdemu.oracle.seed", System.currentTimeMillis());
    static final int ROUNDS = Integer.getInteger("uffdemu.oracle.rounds", 1000);
    static final int NATIVE_ROUNDS = Integer.getInteger("uffdemu.oracle.nativeRounds", 200);
    static final Integer ONLY_ROUND = Integer.getInteger("uffdemu.oracle.round");
    static final int HUGE_PAGES_PER_ROUND = 4;

    static int pagesFor(MemType t) {
        return t.hugetlb() ? HUGE_PAGES_PER_ROUND : 16;
    }

    static long roundSeed(MemType t, int round) {
        long z = SEED + 0x9E3779B97F4A7C15L * (t.ordinal() * 1_000_003L + round + 1);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    static boolean hostSwapOn() {
        try {
            return Files.readAllLines(Path.of("/proc/swaps")).size() > 1;
        } catch (IOException e) {
            return false;
        }
    }

    @ParameterizedTest(name = "emulated {0}")
    @EnumSource(names = {"ANON", "SHMEM", "HUGETLB"})
    @Timeout(300)
    void emulated(MemType t) throws Exception {
        // the emulated machine has swap, so swap-out and swap-in of wp pages are exercised too
        run("emulated", t, ROUNDS, true, false,
                () -> new EmulatedBackend(new Kernel.Config(256L << 20, 64L << 20, 16, 0, true)));
    }

    @ParameterizedTest(name = "native {0}")
    @EnumSource(names = {"ANON", "SHMEM", "HUGETLB"})
    @Timeout(300)
    void nativeKernel(MemType t) throws Exception {
        if (!LinuxAvailability.isAvailable()) {
            String why = "native backend unavailable: " + LinuxAvailability.reason();
            if ("true".equalsIgnoreCase(System.getenv("CI"))) {
                // in CI (root, this kernel) the comparison with the kernel is the point: fail rather than skip
                fail("CI=true but " + why);
            }
            Assumptions.abort(why);
        }
        String restore = null;
        if (t.hugetlb() && hugePagesFree() < HUGE_PAGES_PER_ROUND + 1
                && "true".equalsIgnoreCase(System.getenv("CI"))) {
            // in CI nothing else runs beside this test: reserve what a round needs, and give it back after. One
            // spare: with the pool exactly used up, the native backend refuses (ENOSYS) a refault of a page that
            // is still in the hugetlbfs page cache, since it cannot tell it from one that needs a new huge page
            // (a SIGBUS would kill the server)
            restore = nrHugepages();
            Files.writeString(Path.of("/proc/sys/vm/nr_hugepages"),
                    Long.toString(Long.parseLong(restore) + HUGE_PAGES_PER_ROUND + 1));
        }
        try {
            if (t.hugetlb()) {
                long free = hugePagesFree();
                Assumptions.assumeTrue(free >= HUGE_PAGES_PER_ROUND + 1, () -> "n/a: HugePages_Free=" + free + " < "
                        + (HUGE_PAGES_PER_ROUND + 1) + " (vm.nr_hugepages=" + nrHugepages()
                        + "; outside CI this test does not change it)");
            }
            run("native", t, NATIVE_ROUNDS, hostSwapOn(), true, LinuxBackend::new);
        } finally {
            if (restore != null) {
                Files.writeString(Path.of("/proc/sys/vm/nr_hugepages"), restore);
            }
        }
    }

    static long hugePagesFree() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (l.startsWith("HugePages_Free:")) {
                    return Long.parseLong(l.substring("HugePages_Free:".length()).trim());
                }
            }
        } catch (IOException | NumberFormatException e) {
            // none
        }
        return 0;
    }

    static String nrHugepages() {
        try {
            return Files.readString(Path.of("/proc/sys/vm/nr_hugepages")).trim();
        } catch (IOException e) {
            return "?";
        }
    }

    static void run(String backend, MemType t, int rounds, boolean swapOn, boolean kernel,
            Supplier<MemoryBackend> factory) throws Exception {
        Map<String, Integer> stats = OracleRound.newStats();
        List<String> failures = new ArrayList<>();
        int from = ONLY_ROUND == null ? 0 : ONLY_ROUND;
        int to = ONLY_ROUND == null ? rounds : ONLY_ROUND + 1;
        long t0 = System.nanoTime();
        try (MemoryBackend b = factory.get()) {
            for (int r = from; r < to && failures.size() < 3; r++) {
                OracleRound round = new OracleRound(b, t, roundSeed(t, r), swapOn, pagesFor(t), stats, kernel);
                try {
                    round.run();
                } catch (Exception | AssertionError e) {
                    round.mismatches.add("round threw " + e);
                }
                if (!round.mismatches.isEmpty()) {
                    failures.add("round " + r + " (rerun: -Duffdemu.oracle.seed=" + SEED + " -Duffdemu.oracle.round="
                            + r + "):\n    " + String.join("\n    ", round.mismatches) + "\n  log:\n    "
                            + String.join("\n    ", round.log));
                }
            }
        }
        String summary = String.format("oracle %s %s: seed=%d rounds=%d swap=%s %.1fs %s", backend, t, SEED, to - from,
                swapOn ? "on" : "off", (System.nanoTime() - t0) / 1e9, stats);
        System.out.println(summary);
        report(summary + (failures.isEmpty() ? "" : " FAILED"));
        if (!failures.isEmpty()) {
            fail(summary + "\n" + String.join("\n", failures));
        }
    }

    static synchronized void report(String line) throws IOException {
        Path out = Path.of("target", "oracle-report.txt");
        Files.createDirectories(out.getParent());
        Files.writeString(out, line + "\n", java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.APPEND);
    }
}
