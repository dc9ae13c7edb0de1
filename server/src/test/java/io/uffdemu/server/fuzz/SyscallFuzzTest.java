package io.uffdemu.server.fuzz;

/**
 * The fuzzer must reach deep states: over seeded sequences every kind of operation succeeds a fair number of
 * times. The random sequences themselves run as jqwik properties ({@link SyscallPropertiesTest}, 100 000
 * sequences per build), which replaced the plain-JUnit seed loop that was here.
 */
class SyscallFuzzTest {
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
}
