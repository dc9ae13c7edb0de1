package io.uffdemu.deploy;

import static io.uffdemu.deploy.RepoFiles.at;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

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
        // hugetlb memory needs no mount (the kernel's internal hugetlbfs); a /dev/hugepages bind broke `up` on hosts
        // without that mount (NativeContainerIT runs the service)
        assertThat(nativeBackend).doesNotContainKey("volumes");
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
        Path binary = Commands.dockerCompose();
        Commands.Result plain = Commands.run(binary, "-f", COMPOSE.toString(), "config", "-q");
        assertThat(plain.exit()).as(plain.output()).isZero();
        Commands.Result services = Commands.run(binary, "-f", COMPOSE.toString(), "--profile", "native", "config", "--services");
        assertThat(services.exit()).as(services.output()).isZero();
        assertThat(services.output().lines()).containsExactlyInAnyOrder("uffdemu", "uffdemu-native", "prometheus", "grafana");
    }

    @Test
    @Timeout(60)
    void dockerComposeConfigRejectsABrokenFile(@TempDir Path dir) throws Exception {
        Path binary = Commands.dockerCompose();
        Path broken = dir.resolve("docker-compose.yml");
        Files.writeString(broken, "services:\n  x:\n    image: a\n    restartt: always\n");
        Commands.Result run = Commands.run(binary, "-f", broken.toString(), "config", "-q");
        assertThat(run.exit()).isNotZero();
        assertThat(run.output()).contains("restartt");
    }
}
