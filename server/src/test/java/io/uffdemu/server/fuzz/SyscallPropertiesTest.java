package io.uffdemu.server.fuzz;

import io.uffdemu.server.fuzz.SyscallFuzzer.Focus;
import io.uffdemu.server.fuzz.SyscallFuzzer.Step;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.atomic.LongAdder;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.RandomDistribution;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AfterContainer;

/**
 * jqwik properties over random syscall/ioctl sequences on the emulated backend with the invariant checker on
 * (issue 3): whatever the sequence, every call either succeeds or fails with an errno ({@code LinuxException}),
 * never anything else, and the invariants (counters, mapcounts, the wp-write ledger...) hold after every call.
 *
 * <p>A sequence is a list of {@link Step}s (operation + seed of its parameters), so a failing sequence shrinks:
 * steps are dropped and each step's seed simplified. Two properties per memory type (uniform operations, and
 * a uffd-wp-heavy mix), plus the mixed-memory pair; {@code jqwik.tries.default} (12 500, see
 * {@code junit-platform.properties}) tries each: 100 000 sequences per build. Sequences have 1 to 23 steps
 * (12 on average; {@code -Duffdemu.fuzz.maxSteps=N} changes that). jqwik prints the seed of a failure; {@code @Property(seed = "...")} or the failure database
 * ({@code target/jqwik-database}, failed tries run first) replays it.
 */
class SyscallPropertiesTest {
    /** Longest sequence; lengths are uniform in 1..MAX_STEPS. Long runs: {@code -Duffdemu.fuzz.maxSteps=159}. */
    static final int MAX_STEPS = Integer.getInteger("uffdemu.fuzz.maxSteps", 23);
    /** Sequences run per property in this JVM, written to {@code target/syscall-properties.txt} at the end. */
    static final Map<String, LongAdder> RUNS = new ConcurrentSkipListMap<>();

    static void run(String property, Focus focus, List<Step> steps) {
        RUNS.computeIfAbsent(property, k -> new LongAdder()).increment();
        new SyscallFuzzer(0, focus).run(steps);
    }

    @AfterContainer
    static void report() throws IOException {
        long total = RUNS.values().stream().mapToLong(LongAdder::sum).sum();
        StringBuilder sb = new StringBuilder("syscall property tests: " + total + " sequences\n");
        RUNS.forEach((k, v) -> sb.append("  ").append(k).append(": ").append(v.sum()).append('\n'));
        System.out.print(sb);
        Path out = Path.of("target", "syscall-properties.txt");
        Files.createDirectories(out.getParent());
        Files.writeString(out, sb.toString());
    }

    // ------------------------------------------------------------------ arbitraries

    @Provide
    Arbitrary<List<Step>> anyOps() {
        return anyOps(MAX_STEPS);
    }

    static Arbitrary<List<Step>> anyOps(int maxSteps) {
        return sequences(Arbitraries.integers().between(0, SyscallFuzzer.OPS - 1), maxSteps);
    }

    /** Weighted towards the uffd-wp life cycle: register, WRITEPROTECT, accesses, zaps, COPY, fork. */
    @Provide
    Arbitrary<List<Step>> wpOps() {
        return wpOps(MAX_STEPS);
    }

    static Arbitrary<List<Step>> wpOps(int maxSteps) {
        return sequences(Arbitraries.frequency(
                Tuple.of(3, 0), Tuple.of(2, 1), // mmap
                Tuple.of(3, 5), Tuple.of(2, 6), // madvise (DONTNEED, PAGEOUT, REMOVE, ...)
                Tuple.of(2, 7), Tuple.of(1, 8), // memfd, truncate/punch
                Tuple.of(1, 9), // fork
                Tuple.of(3, 11), // uffd (random features, WP_ASYNC / WP_UNPOPULATED among them)
                Tuple.of(4, 13), // register
                Tuple.of(2, 16), // copy
                Tuple.of(5, 18), // writeprotect
                Tuple.of(6, 24), // access
                Tuple.of(2, 27), // pagemap / PAGEMAP_SCAN
                Tuple.of(2, 28), // read every uffd, resolve
                Tuple.of(1, 4), Tuple.of(1, 2), Tuple.of(1, 29)), maxSteps); // mremap, munmap, close
    }

    /** Step seeds uniform over all longs (jqwik's default biases towards small numbers; edge cases still mix in). */
    private static Arbitrary<List<Step>> sequences(Arbitrary<Integer> ops, int maxSteps) {
        return Combinators.combine(ops, Arbitraries.longs().withDistribution(RandomDistribution.uniform()))
                .as(Step::new).list().ofMinSize(1).ofMaxSize(maxSteps)
                .withSizeDistribution(RandomDistribution.uniform());
    }

    // ------------------------------------------------------------------ properties

    @Property
    void anonAnySequence(@ForAll("anyOps") List<Step> steps) {
        run("anonAnySequence", Focus.ANON, steps);
    }

    @Property
    void anonWpSequence(@ForAll("wpOps") List<Step> steps) {
        run("anonWpSequence", Focus.ANON, steps);
    }

    @Property
    void shmemAnySequence(@ForAll("anyOps") List<Step> steps) {
        run("shmemAnySequence", Focus.SHMEM, steps);
    }

    @Property
    void shmemWpSequence(@ForAll("wpOps") List<Step> steps) {
        run("shmemWpSequence", Focus.SHMEM, steps);
    }

    @Property
    void hugetlbAnySequence(@ForAll("anyOps") List<Step> steps) {
        run("hugetlbAnySequence", Focus.HUGETLB, steps);
    }

    @Property
    void hugetlbWpSequence(@ForAll("wpOps") List<Step> steps) {
        run("hugetlbWpSequence", Focus.HUGETLB, steps);
    }

    @Property
    void mixedAnySequence(@ForAll("anyOps") List<Step> steps) {
        run("mixedAnySequence", Focus.ALL, steps);
    }

    @Property
    void mixedWpSequence(@ForAll("wpOps") List<Step> steps) {
        run("mixedWpSequence", Focus.ALL, steps);
    }

    // ------------------------------------------------------------------ coverage of the arbitraries

    /**
     * The same for the property tests' own arbitraries and {@code run(List<Step>)} path, at the old coverage
     * test's depth (60 steps on average): uniform operations over mixed memory, and the wp mix on shmem.
     */
    @net.jqwik.api.Example
    void propertySequencesReachEveryOperation() {
        java.util.Map<String, Integer> total = new java.util.TreeMap<>();
        java.util.Map<String, Integer> wp = new java.util.TreeMap<>();
        sample(anyOps(119), 600, 1).forEach(steps -> {
            SyscallFuzzer f = new SyscallFuzzer(0, SyscallFuzzer.Focus.ALL);
            f.run(steps);
            f.succeeded.forEach((k, v) -> total.merge(k, v, Integer::sum));
        });
        sample(wpOps(119), 200, 2).forEach(steps -> {
            SyscallFuzzer f = new SyscallFuzzer(0, SyscallFuzzer.Focus.SHMEM);
            f.run(steps);
            f.succeeded.forEach((k, v) -> wp.merge(k, v, Integer::sum));
        });
        System.out.println("property sequences, successful operations by kind: " + total + "; wp mix: " + wp);
        org.assertj.core.api.Assertions.assertThat(total).as("successful operations by kind: " + total)
                .containsKeys(SyscallFuzzTest.KINDS).allSatisfy((k, v) -> org.assertj.core.api.Assertions.assertThat(v).as(k)
                        .isGreaterThanOrEqualTo(k.equals("move") || k.equals("continue") ? 2 : 10));
        org.assertj.core.api.Assertions.assertThat(wp).as("wp mix on shmem: " + wp)
                .containsKeys("register", "writeprotect", "copy", "access", "madvise")
                .allSatisfy((k, v) -> org.assertj.core.api.Assertions.assertThat(v).as(k).isGreaterThanOrEqualTo(10));
    }

    /** {@code n} values of an arbitrary from a fixed seed (deterministic, unlike {@code sampleStream()}). */
    static <T> java.util.List<T> sample(net.jqwik.api.Arbitrary<T> a, int n, long seed) {
        java.util.Random r = new java.util.Random(seed);
        net.jqwik.api.RandomGenerator<T> g = a.generator(1000);
        java.util.List<T> out = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(g.next(r).value());
        }
        return out;
    }
}
