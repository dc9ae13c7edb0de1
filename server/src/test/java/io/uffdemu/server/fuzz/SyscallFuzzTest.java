package io.uffdemu.server.fuzz;

import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.Timeout;

/**
 * Seeded random syscall/ioctl sequences with the invariant checker on (issue 8's fuzz figure). Each dynamic
 * test runs a batch of seeds; {@code -Duffdemu.fuzz.sequences=N} (default 100 000: every build runs that many)
 * sets how many sequences run, {@code -Duffdemu.fuzz.steps=N} (default 12) their length,
 * {@code -Duffdemu.fuzz.seed=S} reruns one seed. Longer runs: sequences=20000 steps=80.
 */
class SyscallFuzzTest {
    static final int SEQUENCES = Integer.getInteger("uffdemu.fuzz.sequences", 100_000);
    static final int STEPS = Integer.getInteger("uffdemu.fuzz.steps", 12);
    static final int BATCH = 2500;

    /** The fuzzer must reach deep states: every kind of operation succeeds a fair number of times. */
    @org.junit.jupiter.api.Test
    void fuzzerReachesEveryOperation() {
        java.util.Map<String, Integer> total = new java.util.TreeMap<>();
        for (long s = 0; s < 600; s++) {
            SyscallFuzzer f = new SyscallFuzzer(1_000_000 + s);
            f.run(60);
            f.succeeded.forEach((k, v) -> total.merge(k, v, Integer::sum));
        }
        org.assertj.core.api.Assertions.assertThat(total).as("successful operations by kind: " + total)
                .containsKeys("mmap", "munmap", "mprotect", "mremap", "madvise", "memfd", "fork", "exit", "uffd",
                        "register", "unregister", "copy", "zeropage", "writeprotect", "continue", "poison", "move", "wake",
                        "access", "pagemap")
                .allSatisfy((k, v) -> org.assertj.core.api.Assertions.assertThat(v).as(k)
                        .isGreaterThanOrEqualTo(k.equals("move") || k.equals("continue") ? 2 : 10));
    }

    /**
     * The same sequences against the older kernel profiles and without PTE markers: only errnos, invariants hold
     * ({@code -Duffdemu.fuzz.profileSequences=N} per profile, default 2000).
     */
    @TestFactory
    @Timeout(600)
    Stream<DynamicTest> randomSequencesPerKernelProfile() {
        int n = Integer.getInteger("uffdemu.fuzz.profileSequences", 2000);
        return Stream.of("6.18:false", "6.7:true", "6.1:true", "6.1:false", "5.19:true", "5.19:false", "5.13:true",
                "5.10:true").map(spec -> {
                    String[] p = spec.split(":");
                    io.uffdemu.server.mm.KernelProfile profile = io.uffdemu.server.mm.KernelProfile.parse(p[0],
                            Boolean.parseBoolean(p[1]));
                    return DynamicTest.dynamicTest("profile " + profile, () -> {
                        for (long s = 0; s < n; s++) {
                            new SyscallFuzzer(s, profile).run(STEPS);
                        }
                    });
                });
    }

    @TestFactory
    @Timeout(600)
    Stream<DynamicTest> randomSequences() {
        Long one = Long.getLong("uffdemu.fuzz.seed");
        if (one != null) {
            return Stream.of(DynamicTest.dynamicTest("seed " + one, () -> new SyscallFuzzer(one).run(STEPS)));
        }
        int batches = (SEQUENCES + BATCH - 1) / BATCH;
        return LongStream.range(0, batches).mapToObj(batch -> DynamicTest.dynamicTest(
                "seeds " + batch * BATCH + ".." + Math.min(SEQUENCES, (batch + 1) * BATCH), () -> {
                    for (long s = batch * BATCH; s < Math.min(SEQUENCES, (batch + 1) * BATCH); s++) {
                        new SyscallFuzzer(s).run(STEPS);
                    }
                }));
    }
}
