package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Linux;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectMapper;

/**
 * A real Prometheus (Debian's {@code prometheus} 2.42, on 127.0.0.1 with an ephemeral port, a temporary config and
 * storage) scrapes this server's /actuator/prometheus every second; after a known workload the test asks Prometheus'
 * HTTP API, not the endpoint, for the fault counter and the latency histogram.
 *
 * <p>The binary is {@code $PROMETHEUS_BIN} or {@code prometheus} on PATH. Without it the test is skipped with the
 * reason, except under {@code CI=true} or {@code CI_REQUIRE_PROMETHEUS=1} (both set by .ci/run), where it fails.
 */
// the extra property gives this class its own application context, hence its own meter registry: counts from
// other ITs in the same JVM cannot leak into the numbers asserted here
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"spring.grpc.server.port=0", "uffdemu.limits.max-read-messages=4095"})
class PrometheusScrapeIT {
    private static final int READ_FAULTS = 3;
    private static final int WRITE_FAULTS = 2;
    /** One fault is left unresolved this long, so the histogram has a known slow observation. */
    private static final Duration SLOW_FAULT = Duration.ofMillis(400);
    private static final int PAGE = 4096;

    @LocalServerPort
    int http;
    @Autowired
    MemoryBackend backend;

    private final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private final ObjectMapper json = new ObjectMapper();
    private Process prometheus;
    private Path workDir;

    @Test
    @Timeout(120)
    void prometheusScrapesTheFaultCounterAndLatencyHistogram() throws Exception {
        Path binary = prometheusBinary();
        workDir = Files.createTempDirectory("uffdemu-prometheus-it");
        int port = startPrometheus(binary);
        String api = "http://127.0.0.1:" + port;

        // the target is up before the workload, so the series exist from the first scrape on
        awaitScrapeAfter(api, 0);
        assertThat(target(api).path("health").asString()).as("target %s", target(api)).isEqualTo("up");

        runWorkload();
        double workloadDone = System.currentTimeMillis() / 1000.0;
        awaitScrapeAfter(api, workloadDone);

        assertThat(query(api, "uffdemu_faults_total{job=\"uffdemu\",memory_type=\"anon\",mode=\"missing\",write=\"false\"}"))
                .isEqualTo(READ_FAULTS);
        assertThat(query(api, "uffdemu_faults_total{job=\"uffdemu\",memory_type=\"anon\",mode=\"missing\",write=\"true\"}"))
                .isEqualTo(WRITE_FAULTS);
        assertThat(query(api, "sum(uffdemu_faults_total{job=\"uffdemu\"})")).isEqualTo(READ_FAULTS + WRITE_FAULTS);
        assertThat(query(api, "uffdemu_ioctls_total{job=\"uffdemu\",ioctl=\"UFFDIO_ZEROPAGE\",result=\"ok\"}"))
                .isEqualTo(READ_FAULTS);
        assertThat(query(api, "uffdemu_ioctls_total{job=\"uffdemu\",ioctl=\"UFFDIO_COPY\",result=\"ok\"}"))
                .isEqualTo(WRITE_FAULTS);

        // the histogram: every fault observed once, one of them at least SLOW_FAULT long, the others short
        int faults = READ_FAULTS + WRITE_FAULTS;
        double slow = SLOW_FAULT.toMillis() / 1000.0;
        assertThat(query(api, "uffdemu_fault_latency_seconds_count{job=\"uffdemu\"}")).isEqualTo(faults);
        assertThat(query(api, "uffdemu_fault_latency_seconds_bucket{job=\"uffdemu\",le=\"+Inf\"}")).isEqualTo(faults);
        assertThat(query(api, "uffdemu_fault_latency_seconds_sum{job=\"uffdemu\"}")).isGreaterThanOrEqualTo(slow);
        assertThat(query(api, "uffdemu_fault_latency_seconds_max{job=\"uffdemu\"}")).isGreaterThanOrEqualTo(slow);
        // buckets below the slow fault hold at most the fast ones; the ones above hold all
        assertThat(query(api, "max(uffdemu_fault_latency_seconds_bucket{job=\"uffdemu\"})")).isEqualTo(faults);
        assertThat(bucketsBelow(api, slow)).allSatisfy(count -> assertThat(count).isLessThanOrEqualTo(faults - 1));
        assertThat(query(api, "histogram_quantile(1, uffdemu_fault_latency_seconds_bucket{job=\"uffdemu\"})"))
                .isGreaterThanOrEqualTo(slow * 0.9);
        assertThat(query(api, "histogram_quantile(0.5, uffdemu_fault_latency_seconds_bucket{job=\"uffdemu\"})"))
                .isLessThan(slow);
        assertThat(query(api, "uffdemu_faults_pending{job=\"uffdemu\"}")).isZero();
        assertThat(query(api, "uffdemu_threads_blocked{job=\"uffdemu\"}")).isZero();
    }

    @AfterEach
    void stopPrometheus() throws Exception {
        if (prometheus != null) {
            prometheus.destroy();
            if (!prometheus.waitFor(10, TimeUnit.SECONDS)) {
                prometheus.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        }
        if (workDir != null) {
            try (Stream<Path> files = Files.walk(workDir)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** READ_FAULTS read faults resolved by ZEROPAGE, then WRITE_FAULTS write faults resolved by COPY, the last late. */
    private void runWorkload() throws Exception {
        int faults = READ_FAULTS + WRITE_FAULTS;
        int pid = backend.createProcess("scraped", 0, true, "t").pid();
        long addr = backend.mmap(pid, 0, (long) faults * PAGE, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        int fd = backend.userfaultfd(pid, 0, false);
        backend.uffdApi(pid, fd, 0xAA, 0);
        backend.uffdRegister(pid, fd, addr, (long) faults * PAGE, Linux.UFFDIO_REGISTER_MODE_MISSING);
        for (int i = 0; i < faults; i++) {
            long page = addr + (long) i * PAGE;
            boolean write = i >= READ_FAULTS;
            CompletableFuture<?> access = CompletableFuture.runAsync(() -> {
                try {
                    backend.access(pid, page, 8, write, write ? new byte[8] : null, AccessMode.USER, Long.MAX_VALUE);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            });
            while (backend.uffdRead(pid, fd, 1, System.nanoTime() + TimeUnit.SECONDS.toNanos(5)).isEmpty()) {
                Thread.onSpinWait();
            }
            if (write) {
                if (i == faults - 1) {
                    Thread.sleep(SLOW_FAULT);
                }
                byte[] content = new byte[PAGE];
                Arrays.fill(content, (byte) i);
                backend.uffdCopy(pid, fd, page, content, 0);
            } else {
                backend.uffdZeropage(pid, fd, page, PAGE, 0);
            }
            access.get(10, TimeUnit.SECONDS);
        }
    }

    private static Path prometheusBinary() {
        String explicit = System.getenv("PROMETHEUS_BIN");
        Stream<Path> candidates = explicit != null && !explicit.isBlank() ? Stream.of(Path.of(explicit))
                : Arrays.stream(System.getenv().getOrDefault("PATH", "/usr/bin").split(":"))
                        .map(dir -> Path.of(dir, "prometheus"));
        Path found = candidates.filter(Files::isExecutable).findFirst().orElse(null);
        if (found == null) {
            String reason = "the prometheus binary is not installed (apt-get install -y prometheus, or set "
                    + "PROMETHEUS_BIN)";
            if ("true".equals(System.getenv("CI")) || "1".equals(System.getenv("CI_REQUIRE_PROMETHEUS"))) {
                throw new AssertionError(reason + "; CI=true / CI_REQUIRE_PROMETHEUS=1 forbid skipping");
            }
            Assumptions.abort(reason);
        }
        return found;
    }

    /** Starts Prometheus on a free loopback port (again on another one if that port was taken meanwhile). */
    private int startPrometheus(Path binary) throws Exception {
        Path config = workDir.resolve("prometheus.yml");
        Files.writeString(config, """
                global:
                  scrape_interval: 1s
                  scrape_timeout: 1s
                scrape_configs:
                  - job_name: uffdemu
                    metrics_path: /actuator/prometheus
                    static_configs:
                      - targets: ['127.0.0.1:%d']
                """.formatted(http));
        Path log = workDir.resolve("prometheus.log");
        for (int attempt = 0; attempt < 3; attempt++) {
            int port = freePort();
            prometheus = new ProcessBuilder(binary.toString(), "--config.file=" + config,
                    "--storage.tsdb.path=" + workDir.resolve("data"), "--web.listen-address=127.0.0.1:" + port,
                    "--storage.tsdb.retention.time=1h")
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (System.nanoTime() < deadline && prometheus.isAlive()) {
                try {
                    HttpResponse<String> ready = client.send(HttpRequest.newBuilder(
                            URI.create("http://127.0.0.1:" + port + "/-/ready")).timeout(Duration.ofSeconds(2)).build(),
                            HttpResponse.BodyHandlers.ofString());
                    if (ready.statusCode() == 200) {
                        return port;
                    }
                } catch (IOException notYet) {
                    // not listening yet
                }
                Thread.sleep(200);
            }
            String output = Files.readString(log);
            prometheus.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            if (!output.contains("address already in use")) {
                throw new AssertionError("prometheus did not get ready on port " + port + ":\n" + output);
            }
        }
        throw new AssertionError("prometheus found no free port in 3 attempts:\n" + Files.readString(log));
    }

    /**
     * Waits until Prometheus has scraped the server successfully at a time after {@code epochSeconds} (the scrape's
     * timestamp is its start, so that scrape saw everything done before).
     */
    private void awaitScrapeAfter(String api, double epochSeconds) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        double last = Double.NaN;
        while (System.nanoTime() < deadline) {
            // timestamp() gives the scrape's time only when applied to a plain selector (not to `up == 1`)
            JsonNode result = queryResult(api, "timestamp(up{job=\"uffdemu\"})");
            if (!result.isEmpty()) {
                last = sample(result.get(0));
                // a scrape that failed (up 0, e.g. timed out on a loaded machine) does not count: wait for the next
                if (last > epochSeconds && query(api, "up{job=\"uffdemu\"}") == 1) {
                    return;
                }
            }
            Thread.sleep(250);
        }
        throw new AssertionError("no successful scrape after " + epochSeconds + " (last " + last + "); target: "
                + target(api));
    }

    /** Counts of the latency buckets whose upper bound is below {@code seconds}. */
    private List<Double> bucketsBelow(String api, double seconds) throws Exception {
        JsonNode result = queryResult(api, "uffdemu_fault_latency_seconds_bucket{job=\"uffdemu\",le!=\"+Inf\"}");
        assertThat(result.size()).as("buckets").isGreaterThan(10);
        return java.util.stream.StreamSupport.stream(result.spliterator(), false)
                .filter(s -> Double.parseDouble(s.path("metric").path("le").asString()) < seconds)
                .map(PrometheusScrapeIT::sample).toList();
    }

    /** The value of an instant query that must return exactly one sample. */
    private double query(String api, String promql) throws Exception {
        JsonNode result = queryResult(api, promql);
        if (result.size() != 1) {
            // say what Prometheus does hold, so a renamed meter or tag shows in the failure
            throw new AssertionError("expected one sample of " + promql + ", got " + result + "; uffdemu series: "
                    + queryResult(api, "{job=\"uffdemu\",__name__=~\"uffdemu_.*\"}"));
        }
        return sample(result.get(0));
    }

    private JsonNode queryResult(String api, String promql) throws Exception {
        HttpResponse<String> response = client.send(HttpRequest.newBuilder(URI.create(api + "/api/v1/query?query="
                + URLEncoder.encode(promql, StandardCharsets.UTF_8))).timeout(Duration.ofSeconds(5)).build(),
                HttpResponse.BodyHandlers.ofString());
        JsonNode body = json.readTree(response.body());
        assertThat(body.path("status").asString()).as("%s -> %s", promql, response.body()).isEqualTo("success");
        return body.path("data").path("result");
    }

    /** The value of one sample of an instant vector: [time, "value"], the value in Go's float syntax. */
    private static double sample(JsonNode sample) {
        String value = sample.path("value").path(1).asString();
        return switch (value) {
            case "+Inf" -> Double.POSITIVE_INFINITY;
            case "-Inf" -> Double.NEGATIVE_INFINITY;
            default -> Double.parseDouble(value);
        };
    }

    private JsonNode target(String api) throws Exception {
        HttpResponse<String> response = client.send(HttpRequest.newBuilder(URI.create(api + "/api/v1/targets"))
                .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
        return json.readTree(response.body()).path("data").path("activeTargets").path(0);
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }
}
