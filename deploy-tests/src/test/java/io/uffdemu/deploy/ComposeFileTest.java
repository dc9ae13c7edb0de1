package io.uffdemu.deploy;

import static io.uffdemu.deploy.RepoFiles.at;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * docker-compose.yml: validated by the real `docker-compose config` (Debian's compose 1.29, no daemon needed) and
 * its structure asserted; the Prometheus and Grafana files it mounts exist and fit together.
 */
class ComposeFileTest {

    private static final Path COMPOSE = RepoFiles.path("docker-compose.yml");

    @Test
    void servicesRunOnTheHostNetworkAndNativeIsAnOptInProfile() throws IOException {
        Map<String, Object> compose = RepoFiles.loadYaml(COMPOSE);
        assertThat(compose).doesNotContainKey("version");
        Map<String, Object> services = at(compose, "services");
        assertThat(services).containsOnlyKeys("uffdemu", "uffdemu-native", "prometheus", "grafana");
        services.forEach((name, service) ->
                assertThat((Object) at(service, "network_mode")).as(name).isEqualTo("host"));

        Map<String, Object> uffdemu = at(services, "uffdemu");
        assertThat((Object) at(uffdemu, "environment", "UFFDEMU_BACKEND")).isEqualTo("emulated");
        assertThat(uffdemu).doesNotContainKeys("profiles", "cap_add", "devices", "privileged");
        assertThat((Object) at(uffdemu, "user")).isEqualTo("10001:10001");
        assertThat((Object) at(uffdemu, "cap_drop")).isEqualTo(List.of("ALL"));
        assertThat((Object) at(uffdemu, "read_only")).isEqualTo(true);

        Map<String, Object> nativeBackend = at(services, "uffdemu-native");
        assertThat((Object) at(nativeBackend, "profiles")).isEqualTo(List.of("native"));
        assertThat((Object) at(nativeBackend, "environment", "UFFDEMU_BACKEND")).isEqualTo("linux");
        assertThat((Object) at(nativeBackend, "cap_add")).isEqualTo(List.of("SYS_PTRACE"));
        assertThat((Object) at(nativeBackend, "cap_drop")).isEqualTo(List.of("ALL"));
        assertThat((List<Object>) at(nativeBackend, "devices")).containsExactly("/dev/userfaultfd:/dev/userfaultfd");
        assertThat((List<Object>) at(nativeBackend, "security_opt")).anySatisfy(o -> assertThat((String) o).startsWith("seccomp="));
        assertThat((Object) at(nativeBackend, "volumes", 0, "target")).isEqualTo("/dev/hugepages");
        // the two uffdemu services must not collide on the host network
        assertThat((List<Object>) at(nativeBackend, "command")).doesNotContainAnyElementsOf(at(uffdemu, "command"));
    }

    @Test
    void prometheusScrapesTheActuatorAndGrafanaIsProvisioned() throws IOException {
        Map<String, Object> prometheus = RepoFiles.loadYaml(RepoFiles.path("deploy/prometheus/prometheus.yml"));
        Map<String, Object> job = at(prometheus, "scrape_configs", 0);
        assertThat((Object) at(job, "job_name")).isEqualTo("uffdemu");
        assertThat((Object) at(job, "metrics_path")).isEqualTo("/actuator/prometheus");
        assertThat((List<Object>) at(job, "static_configs", 0, "targets")).containsExactly("localhost:8080");

        Map<String, Object> datasource = RepoFiles.loadYaml(
                RepoFiles.path("deploy/grafana/provisioning/datasources/prometheus.yml"));
        assertThat((Object) at(datasource, "datasources", 0, "uid")).isEqualTo("prometheus");
        assertThat(RepoFiles.path("deploy/grafana/provisioning/dashboards/uffdemu.yml")).isRegularFile();

        // JSON is YAML: the dashboard parses and queries the documented metric names through that datasource
        Map<String, Object> dashboard = RepoFiles.loadYaml(RepoFiles.path("deploy/grafana/dashboards/uffdemu.json"));
        List<Map<String, Object>> panels = at(dashboard, "panels");
        List<String> exprs = new ArrayList<>();
        for (Map<String, Object> panel : panels) {
            assertThat((Object) at(panel, "datasource", "uid")).isEqualTo("prometheus");
            List<Map<String, Object>> targets = at(panel, "targets");
            targets.forEach(t -> exprs.add((String) t.get("expr")));
        }
        assertThat(String.join("\n", exprs)).contains("uffdemu_faults_total", "uffdemu_fault_latency_seconds_bucket",
                "uffdemu_faults_pending", "uffdemu_threads_blocked", "uffdemu_memory_resident_bytes",
                "grpc_server_seconds_count", "grpc_server_seconds_bucket");
    }

    @Test
    @Timeout(60)
    void dockerComposeConfigAcceptsTheFileWithAndWithoutTheNativeProfile() throws Exception {
        Path binary = composeBinary();
        Run plain = run(binary, "-f", COMPOSE.toString(), "config", "-q");
        assertThat(plain.exit()).as(plain.output()).isZero();
        Run services = run(binary, "-f", COMPOSE.toString(), "--profile", "native", "config", "--services");
        assertThat(services.exit()).as(services.output()).isZero();
        assertThat(services.output().lines()).containsExactlyInAnyOrder("uffdemu", "uffdemu-native", "prometheus", "grafana");
    }

    @Test
    @Timeout(60)
    void dockerComposeConfigRejectsABrokenFile(@TempDir Path dir) throws Exception {
        Path binary = composeBinary();
        Path broken = dir.resolve("docker-compose.yml");
        Files.writeString(broken, "services:\n  x:\n    image: a\n    restartt: always\n");
        Run run = run(binary, "-f", broken.toString(), "config", "-q");
        assertThat(run.exit()).isNotZero();
        assertThat(run.output()).contains("restartt");
    }

    /** docker-compose v1 from Debian's package (.ci/run installs it); required when CI_REQUIRE_DOCKER=1. */
    private static Path composeBinary() {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            Path candidate = Path.of(dir, "docker-compose");
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        String reason = "docker-compose is not on PATH (apt-get install docker-compose)";
        if (RepoFiles.ciRequiresDocker()) {
            throw new AssertionError(reason + "; CI_REQUIRE_DOCKER=1 forbids skipping");
        }
        Assumptions.abort(reason);
        return null;
    }

    private record Run(int exit, String output) {
    }

    private static Run run(Path binary, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of(binary.toString()));
        command.addAll(List.of(args));
        Process process = new ProcessBuilder(command).directory(RepoFiles.root().toFile()).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.waitFor(50, TimeUnit.SECONDS)).isTrue();
        return new Run(process.exitValue(), output);
    }
}
