package io.uffdemu.server.fuzz;

import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.Timeout;

/**
 * The fuzzer must reach deep states: over seeded sequences every kind of operation succeeds a fair number of
 * times. The random sequences on the default profile run as jqwik properties ({@link SyscallPropertiesTest},
 * 100 000 sequences per build), which replaced the plain-JUnit seed loop that was here; the per-profile
 * sequences below stay a seeded loop.
 */
class SyscallFuzzTest {
    static final int STEPS = Integer.getInteger("uffdemu.fuzz.steps", 12);
    /** Every kind of operation (the first word of a step's description). */
    static final String[] KINDS = {"mmap", "munmap", "mprotect", "mremap", "madvise", "memfd", "fork", "exit",
        "uffd", "register", "unregister", "copy", "zeropage", "writeprotect", "continue", "poison", "move", "wake",
        "access", "pagemap"};

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
}
