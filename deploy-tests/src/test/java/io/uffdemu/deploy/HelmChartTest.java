package io.uffdemu.deploy;

import static io.uffdemu.deploy.RepoFiles.at;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;
import org.junit.jupiter.api.Test;

/**
 * Lints and renders helm/uffdemu with the real Helm (helm-java embeds Helm 3 as a native library, offline) and
 * asserts the rendered manifests: locked-down defaults, probes, ports, and the native-backend opt-in.
 */
class HelmChartTest {

    private static final Path CHART = RepoFiles.path("helm/uffdemu");
    /** Where the chart mounts the ConfigMap (values `config`). */
    private static final String CONFIG_DIR = "/etc/uffdemu/config";

    @Test
    void lintsCleanInStrictMode() {
        LintResult result = new Helm(CHART).lint().strict().call();
        boolean failed = result.isFailed();
        assertThat(failed).as("helm lint --strict: %s", result.getMessages()).isFalse();
    }

    @Test
    void defaultsRunOneLockedDownEmulatedReplica() {
        List<Map<String, Object>> docs = render(t -> t);
        Map<String, Object> deployment = kind(docs, "Deployment");

        assertThat((Object) at(deployment, "metadata", "name")).isEqualTo("demo-uffdemu");
        assertThat((Object) at(deployment, "spec", "replicas")).isEqualTo(1);
        assertThat((Object) at(deployment, "spec", "strategy", "type")).isEqualTo("Recreate");
        assertThat((Object) at(deployment, "spec", "template", "spec", "automountServiceAccountToken")).isEqualTo(false);

        Map<String, Object> pod = at(deployment, "spec", "template", "spec", "securityContext");
        assertThat(pod).containsEntry("runAsNonRoot", true).containsEntry("runAsUser", 10001)
                .doesNotContainKey("enabled");
        assertThat((Object) at(pod, "seccompProfile", "type")).isEqualTo("RuntimeDefault");

        Map<String, Object> container = container(deployment);
        Map<String, Object> sc = at(container, "securityContext");
        assertThat(sc).containsEntry("runAsNonRoot", true).containsEntry("runAsUser", 10001)
                .containsEntry("readOnlyRootFilesystem", true).containsEntry("allowPrivilegeEscalation", false)
                .containsEntry("privileged", false).doesNotContainKey("enabled");
        assertThat((Object) at(sc, "capabilities", "drop")).isEqualTo(List.of("ALL"));
        assertThat((Object) at(sc, "capabilities", "add")).isNull();
        assertThat((Object) at(sc, "seccompProfile", "type")).isEqualTo("RuntimeDefault");
        assertThat(env(container)).containsEntry("UFFDEMU_BACKEND", "emulated");

        // the read-only root filesystem leaves /tmp writable through an emptyDir
        assertThat((List<Object>) at(container, "volumeMounts")).contains(Map.of("name", "tmp", "mountPath", "/tmp"));
        assertThat((List<Object>) at(deployment, "spec", "template", "spec", "volumes"))
                .contains(Map.of("name", "tmp", "emptyDir", Map.of()));
        assertThat((Object) at(container, "resources")).as("resources are left to the user").isNull();

        assertThat((List<Object>) at(container, "args"))
                .containsExactly("--spring.grpc.server.port=9090", "--server.port=8080");
        assertThat((List<Object>) at(container, "ports")).containsExactly(
                Map.of("name", "grpc", "containerPort", 9090, "protocol", "TCP"),
                Map.of("name", "http", "containerPort", 8080, "protocol", "TCP"));
        for (String probe : List.of("startupProbe", "livenessProbe", "readinessProbe")) {
            assertThat((Object) at(container, probe, "grpc", "port")).as(probe).isEqualTo(9090);
            assertThat((Map<String, Object>) at(container, probe)).as(probe).doesNotContainKey("enabled");
        }

        Map<String, Object> service = kind(docs, "Service");
        assertThat((List<Object>) at(service, "spec", "ports")).extracting(p -> at(p, "name"), p -> at(p, "port"),
                        p -> at(p, "targetPort"))
                .containsExactly(org.assertj.core.groups.Tuple.tuple("grpc", 9090, "grpc"),
                        org.assertj.core.groups.Tuple.tuple("http", 8080, "http"));
        assertThat((Map<String, Object>) at(service, "spec", "selector"))
                .isEqualTo(at(deployment, "spec", "selector", "matchLabels"));
        assertThat(docs).extracting(d -> d.get("kind")).doesNotContain("ServiceMonitor");
    }

    @Test
    void nativeBackendAddsOnlyTheDocumentedPrivileges() {
        Map<String, Object> deployment = kind(render(t -> t.set("backend.native.enabled", true)
                .set("backend.native.hugepages2Mi", "64Mi")), "Deployment");
        Map<String, Object> container = container(deployment);
        Map<String, Object> sc = at(container, "securityContext");

        assertThat(env(container)).containsEntry("UFFDEMU_BACKEND", "linux");
        assertThat(sc).containsEntry("runAsUser", 0).containsEntry("runAsNonRoot", false)
                // still not loosened:
                .containsEntry("readOnlyRootFilesystem", true).containsEntry("allowPrivilegeEscalation", false)
                .containsEntry("privileged", false);
        assertThat((Object) at(sc, "capabilities", "add")).isEqualTo(List.of("SYS_PTRACE"));
        assertThat((Object) at(sc, "capabilities", "drop")).isEqualTo(List.of("ALL"));
        assertThat((Object) at(sc, "seccompProfile", "type")).isEqualTo("Unconfined");
        assertThat((Object) at(deployment, "spec", "template", "spec", "securityContext", "runAsNonRoot"))
                .isEqualTo(false);

        assertThat((Object) at(container, "resources", "limits", "hugepages-2Mi")).isEqualTo("64Mi");
        assertThat((Object) at(container, "resources", "requests", "hugepages-2Mi")).isEqualTo("64Mi");
        assertThat((List<Object>) at(deployment, "spec", "template", "spec", "volumes"))
                .contains(Map.of("name", "hugepages", "emptyDir", Map.of("medium", "HugePages")));
    }

    @Test
    void probesCanBeSwitchedOffOrPointedAtActuatorHealthGroups() {
        Map<String, Object> container = container(kind(render(t -> t.set("probeMode", "http")
                .set("startupProbe.enabled", false)), "Deployment"));
        assertThat((Object) at(container, "startupProbe")).isNull();
        assertThat((Object) at(container, "livenessProbe", "httpGet", "path")).isEqualTo("/actuator/health/liveness");
        assertThat((Object) at(container, "readinessProbe", "httpGet", "path")).isEqualTo("/actuator/health/readiness");
        assertThat((Object) at(container, "readinessProbe", "httpGet", "port")).isEqualTo("http");
        assertThat(env(container)).containsEntry("MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED", "true");
    }

    @Test
    void serviceMonitorIsOptIn() {
        Map<String, Object> monitor = kind(render(t -> t.set("metrics.serviceMonitor.enabled", true)), "ServiceMonitor");
        assertThat((Object) at(monitor, "spec", "endpoints", 0, "port")).isEqualTo("http");
        assertThat((Object) at(monitor, "spec", "endpoints", 0, "path")).isEqualTo("/actuator/prometheus");
    }

    @Test
    void namesAreTruncatedTo63Characters() {
        String release = "a-release-name-of-the-longest-length-helm-accepts-x"; // 53 characters at most
        Map<String, Object> deployment = kind(render(t -> t.withName(release)
                .set("nameOverride", "uffdemu-with-a-long-name")), "Deployment");
        assertThat((String) at(deployment, "metadata", "name")).hasSizeLessThanOrEqualTo(63).doesNotEndWith("-");
    }

    @Test
    void schemaRejectsMoreThanOneReplica() {
        assertThatThrownBy(() -> render(t -> t.set("replicaCount", 2)))
                .hasMessageContaining("replicaCount");
    }

    @Test
    void defaultsNeitherOpenAuthenticationNorInventTokens() {
        // with no decision the server refuses to start on 0.0.0.0 and says why (never silently open)
        Map<String, Object> env = env(container(kind(RepoFiles.loadAll(new Helm(CHART).template().withName("demo")
                .withNamespace("uffdemu").withKubeVersion("1.32.0").call()), "Deployment")));
        assertThat(env).containsEntry("SPRING_GRPC_SERVER_ADDRESS", "0.0.0.0")
                .doesNotContainKey("UFFDEMU_AUTH_ALLOWUNAUTHENTICATED").doesNotContainKey("UFFDEMU_AUTH_TOKENSFILE");
        // the actuator binds loopback by default; the kubelet's probes reach the pod's IP
        assertThat(env).containsEntry("SERVER_ADDRESS", "0.0.0.0");
    }

    @Test
    void tokensSecretIsMountedAndServerListensOnAllInterfaces() {
        Map<String, Object> deployment = kind(RepoFiles.loadAll(new Helm(CHART).template().withName("demo")
                .withNamespace("uffdemu").withKubeVersion("1.32.0").set("auth.existingSecret", "uffdemu-tokens")
                .call()), "Deployment");
        Map<String, Object> env = env(container(deployment));
        assertThat(env).containsEntry("SPRING_GRPC_SERVER_ADDRESS", "0.0.0.0")
                .containsEntry("UFFDEMU_AUTH_TOKENSFILE", "/etc/uffdemu/auth/tokens")
                .doesNotContainKey("UFFDEMU_AUTH_ALLOWUNAUTHENTICATED");
        List<Map<String, Object>> volumes = at(deployment, "spec", "template", "spec", "volumes");
        assertThat(volumes).anyMatch(v -> "auth".equals(v.get("name")));
    }

    @Test
    void configMapCarriesTheServerSettingsAndIsMountedWhereSpringLooks() {
        List<Map<String, Object>> docs = render(t -> t.set("config.uffdemu.limits.default-wait", "10m"));
        Map<String, Object> configMap = kind(docs, "ConfigMap");
        assertThat((Object) at(configMap, "metadata", "name")).isEqualTo("demo-uffdemu");
        Map<String, Object> settings = RepoFiles.loadAll(at(configMap, "data", "application.yaml")).getFirst();
        // the documented defaults, plus what was set
        assertThat((Object) at(settings, "uffdemu", "emulated", "memory")).isEqualTo("4GB");
        assertThat((Object) at(settings, "uffdemu", "handler", "grace-period")).isEqualTo("30s");
        assertThat((Object) at(settings, "uffdemu", "limits", "default-wait")).isEqualTo("10m");

        Map<String, Object> deployment = kind(docs, "Deployment");
        Map<String, Object> container = container(deployment);
        // Spring reads application.yaml from the directory SPRING_CONFIG_ADDITIONAL_LOCATION names
        assertThat(env(container)).containsEntry("SPRING_CONFIG_ADDITIONAL_LOCATION", "file:" + CONFIG_DIR + "/");
        assertThat((List<Object>) at(container, "volumeMounts"))
                .contains(Map.of("name", "config", "mountPath", CONFIG_DIR, "readOnly", true));
        assertThat((List<Object>) at(deployment, "spec", "template", "spec", "volumes"))
                .contains(Map.of("name", "config", "configMap", Map.of("name", "demo-uffdemu")));
    }

    @Test
    void changingTheSettingsAndOnlyThemRollsThePod() {
        String base = configChecksum(t -> t);
        assertThat(base).matches("[0-9a-f]{64}");
        assertThat(configChecksum(t -> t)).as("stable").isEqualTo(base);
        assertThat(configChecksum(t -> t.set("podLabels.team", "mm"))).as("unrelated change").isEqualTo(base);
        assertThat(configChecksum(t -> t.set("config.uffdemu.emulated.memory", "8GB"))).as("settings changed")
                .isNotEqualTo(base);
        Map<String, Object> annotations = at(kind(render(t -> t.set("podAnnotations.team", "mm")), "Deployment"),
                "spec", "template", "metadata", "annotations");
        assertThat(annotations).containsEntry("team", "mm").containsEntry("checksum/config", base);
    }

    @Test
    void disruptionBudgetLetsDrainsEvictTheSingleReplicaByDefault() {
        List<Map<String, Object>> docs = render(t -> t);
        Map<String, Object> pdb = kind(docs, "PodDisruptionBudget");
        assertThat((Object) at(pdb, "apiVersion")).isEqualTo("policy/v1");
        Map<String, Object> spec = at(pdb, "spec");
        assertThat(spec).containsEntry("maxUnavailable", 1).doesNotContainKey("minAvailable")
                .containsEntry("unhealthyPodEvictionPolicy", "AlwaysAllow");
        assertThat((Object) at(spec, "selector", "matchLabels"))
                .isEqualTo(at(kind(docs, "Deployment"), "spec", "selector", "matchLabels"));

        // the opt-in that blocks drains replaces maxUnavailable (a PDB may not carry both)
        Map<String, Object> blocking = at(kind(render(t -> t.set("pdb.minAvailable", 1)), "PodDisruptionBudget"), "spec");
        assertThat(blocking).containsEntry("minAvailable", 1).doesNotContainKey("maxUnavailable");

        assertThat(render(t -> t.set("pdb.create", false))).extracting(d -> d.get("kind"))
                .doesNotContain("PodDisruptionBudget");
        assertThatThrownBy(() -> render(t -> t.set("pdb.maxUnavailable", "most")))
                .hasMessageContaining("maxUnavailable");
    }

    private static String configChecksum(UnaryOperator<TemplateCommand> options) {
        return at(kind(render(options), "Deployment"), "spec", "template", "metadata", "annotations", "checksum/config");
    }

    /** Renders with the unauthenticated opt-in unless the options decide otherwise. */
    private static List<Map<String, Object>> render(UnaryOperator<TemplateCommand> options) {
        String yaml = options.apply(new Helm(CHART).template().withName("demo").withNamespace("uffdemu")
                .withKubeVersion("1.32.0").set("auth.allowUnauthenticated", true)).call();
        return RepoFiles.loadAll(yaml);
    }

    private static Map<String, Object> kind(List<Map<String, Object>> docs, String kind) {
        return docs.stream().filter(d -> kind.equals(d.get("kind"))).findFirst()
                .orElseThrow(() -> new AssertionError("no " + kind + " rendered"));
    }

    private static Map<String, Object> container(Map<String, Object> deployment) {
        return at(deployment, "spec", "template", "spec", "containers", 0);
    }

    private static Map<String, Object> env(Map<String, Object> container) {
        List<Map<String, Object>> env = at(container, "env");
        return env.stream().collect(java.util.stream.Collectors.toMap(e -> (String) e.get("name"), e -> e.get("value")));
    }
}
