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
