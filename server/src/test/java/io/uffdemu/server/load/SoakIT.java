package io.uffdemu.server.load;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.recipes.Soak;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;

/**
 * The short soak of issue 8 (the long one is {@code uffdemu soak --duration 1h}): 40 s of mixed load rounds
 * (anonymous and shared memory, MISSING and WP, zaps, page-outs, VMA splits, REMOVE) against the real server,
 * with the handler killed (connection dropped, faults in flight) every 1.5 s and a new one attached. Every
 * round's integrity oracle must find no lost write. Memory: the emulated memory floor must not grow, and the
 * heap and RSS floors must not grow past Soak's quarter-floor rule with the slack a 40 s run in a JVM that also
 * runs the client needs (100 % + 256 MiB: it catches a leak of the workload's size, not a slow one; the hour-long
 * soak with its 10 % + 32 MiB default is for that).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"spring.grpc.server.port=0", "uffdemu.handler.grace-period=2s"})
class SoakIT {
    @LocalGrpcServerPort
    int grpc;
    @LocalServerPort
    int http;

    @Test
    @Timeout(180)
    void mixedLoadWithHandlerRestartsLosesNothingAndStaysFlat() {
        List<Soak.Sample> seen = new ArrayList<>();
        // 2 s rounds: 20 samples, so each quarter's floor has 5 samples to catch the collector's low point (with
        // 4 s rounds a quarter had 2, and a sample between collections could pass for a grown floor)
        Soak.Options o = Soak.Options.DEFAULT.withDuration(Duration.ofSeconds(40)).withRoundLength(Duration.ofSeconds(2))
                .withRestartEvery(Duration.ofMillis(1500)).withLoad(16, 256)
                .withMetricsUrl(URI.create("http://127.0.0.1:" + http + "/actuator/prometheus"))
                .withGrowth(1.0, 256L << 20);
        // The sampled heap is "used" at a random moment: in 40 s G1 has not started a marking cycle yet (the heap is
        // GBs), so promoted garbage piles up in the old generation and each quarter's floor rises without any leak
        // (CI saw 238 -> 766 MiB with RSS flat). The server shares this JVM, so collect every second: the samples
        // then read the live set plus at most a second of allocation. The hour-long soak needs no help.
        Thread collector = Thread.ofPlatform().daemon().name("soak-it-gc").start(() -> {
            while (!Thread.currentThread().isInterrupted()) {
                System.gc();
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
        Soak.Result r;
        try {
            r = Soak.run(ClientConfig.DEFAULT.withTarget("127.0.0.1:" + grpc), o, seen::add);
        } finally {
            collector.interrupt();
        }
        System.out.println(r.toTable());
        assertThat(r.samples()).hasSizeGreaterThanOrEqualTo(16).isEqualTo(seen);
        assertThat(r.firstViolations()).isEmpty();
        assertThat(r.violations()).isZero();
        assertThat(r.restarts()).as("handlers killed while faults were in flight").isGreaterThanOrEqualTo(10);
        assertThat(r.faults()).isGreaterThan(1000);
        assertThat(r.samples()).allSatisfy(s -> {
            assertThat(s.heapUsedBytes()).isPositive();
            assertThat(s.residentBytes()).isPositive();
            assertThat(s.emulatedUsedBytes()).isGreaterThanOrEqualTo(0);
        });
        assertThat(r.memoryFindings()).isEmpty();
        assertThat(r.ok()).isTrue();
        // every round's process exited: emulated memory goes back to (almost) nothing between rounds
        assertThat(r.samples().get(r.samples().size() - 1).emulatedUsedBytes()).isLessThan(4L << 20);
    }

    @Test
    void theMemoryRuleCatchesGrowth() {
        Soak.Options o = Soak.Options.DEFAULT.withMetricsUrl(URI.create("http://127.0.0.1:1/")).withGrowth(0.10, 0);
        List<Soak.Sample> flat = new ArrayList<>();
        List<Soak.Sample> leaking = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            long saw = (i % 2 == 0 ? 100L : 180L) << 20; // saw-tooth around a flat floor
            long warmup = i < 2 ? 300L << 20 : 0; // the first quarter is warm-up and not the baseline
            flat.add(new Soak.Sample(i, i * 1000L, "x", 1, 1, 0, 0, saw + warmup, 200L << 20, 0));
            leaking.add(new Soak.Sample(i, i * 1000L, "x", 1, 1, 0, 0, (100L + 30L * i) << 20, 200L << 20, 0));
        }
        assertThat(Soak.memoryFindings(flat, o)).isEmpty();
        assertThat(Soak.memoryFindings(leaking, o)).singleElement().asString().contains("heap floor grew");
    }
}
