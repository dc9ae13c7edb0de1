package io.uffdemu.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import com.marcnuri.helm.Helm;
import com.marcnuri.helm.TemplateCommand;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.uffdemu.api.v1.BackendInfo;
import io.uffdemu.api.v1.GetBackendRequest;
import io.uffdemu.api.v1.SystemServiceGrpc;
import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.ErrnoException;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.ProcessInfo;
import io.uffdemu.client.ServerUnavailableException;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.output.ToStringConsumer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.images.builder.ImageFromDockerfile;
import org.testcontainers.images.builder.Transferable;

/**
 * Builds the Dockerfile's {@code prebuilt} target from the local FROM-scratch base (deploy/base-image/build.sh)
 * and the server's exec jar, starts it on the host network with free ports, and checks health, the uid and one
 * gRPC call over 127.0.0.1. Fails instead of skipping when CI_REQUIRE_DOCKER=1 and Docker is missing.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ContainerImageIT {

    /** A tag per run: Ryuk is off here, so the IT removes its image itself (and .ci/run prunes leftovers). */
    private static final String IMAGE_TAG = PrebuiltImage.newTag();

    private static GenericContainer<?> container;
    private static final ToStringConsumer logs = new ToStringConsumer();
    private static int httpPort;
    private static int grpcPort;
    private static final int PAGE = 4096;
    /** The emulated memory size the chart's ConfigMap sets for the container, and the MemTotal (kB) it gives. */
    private static final String CHART_MEMORY = "256MB";
    private static final long CHART_MEMORY_KB = 256 * 1024;

    @BeforeAll
    static void startImage() throws IOException {
        ImageFromDockerfile image = PrebuiltImage.prepare(IMAGE_TAG);

        httpPort = freePort();
        grpcPort = freePort();
        // the server settings as the Helm chart delivers them: its ConfigMap's application.yaml at the chart's mount
        // path and the chart's SPRING_CONFIG_ADDITIONAL_LOCATION (the emulated memory size is observable by SDK)
        ChartConfig chart = ChartConfig.render(Map.of("config.uffdemu.emulated.memory", CHART_MEMORY));
        container = new GenericContainer<>(image)
                .withNetworkMode("host")
                .withCopyToContainer(Transferable.of(chart.applicationYaml()), chart.mountPath() + "/application.yaml")
                .withEnv("SPRING_CONFIG_ADDITIONAL_LOCATION", chart.location())
                .withCommand("--server.port=" + httpPort, "--spring.grpc.server.port=" + grpcPort)
                .withLogConsumer(logs)
                .waitingFor(Wait.forLogMessage(".*Started UffdemuServerApplication.*\\n", 1)
                        .withStartupTimeout(Duration.ofSeconds(120)));
        container.start();
    }

    @AfterAll
    static void stop() {
        if (container != null) {
            container.stop();
            PrebuiltImage.remove(IMAGE_TAG);
        }
    }

    @Test
    void actuatorHealthIsUpOnLoopback() throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        for (String path : List.of("/actuator/health", "/actuator/health/liveness", "/actuator/health/readiness")) {
            HttpResponse<String> response = http.send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + httpPort + path)).timeout(Duration.ofSeconds(10)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(response.statusCode()).as(path).isEqualTo(200);
            assertThat(response.body()).as(path).contains("\"status\":\"UP\"");
        }
    }

    @Test
    void theCliInTheImageTalksToTheServer() throws Exception {
        var r = container.execInContainer("/opt/java/openjdk/bin/java", "-jar", "/app/uffdemu-cli.jar",
                "--server", "127.0.0.1:" + grpcPort, "--json", "backend");
        assertThat(r.getExitCode()).as(r.getStderr()).isZero();
        assertThat(r.getStdout()).contains("\"name\":\"emulated\"");
    }

    @Test
    void serverRunsAsUid10001() throws IOException {
        var inspect = DockerClientFactory.instance().client().inspectContainerCmd(container.getContainerId()).exec();
        assertThat(inspect.getConfig().getUser()).isEqualTo("10001:10001");
        // the container's pid 1 is a host process: read its real credentials from the host's /proc
        Long pid = inspect.getState().getPidLong();
        List<String> status = Files.readAllLines(Path.of("/proc", String.valueOf(pid), "status"));
        assertThat(status).anySatisfy(line -> assertThat(line).matches("Uid:\\s+10001\\s+10001\\s+10001\\s+10001"));
        assertThat(status).anySatisfy(line -> assertThat(line).matches("Gid:\\s+10001\\s+10001\\s+10001\\s+10001"));
    }

    @Test
    void grpcHealthServesAndTheEmulatedBackendAnswers() throws Exception {
        ManagedChannel channel = Grpc.newChannelBuilderForAddress("127.0.0.1", grpcPort,
                InsecureChannelCredentials.create()).build();
        try {
            // what the Helm chart's gRPC probes ask, retried as they do
            assertThat(GrpcHealth.await(grpcPort, HealthCheckResponse.ServingStatus.SERVING, 20)).isEqualTo("SERVING");

            BackendInfo backend = SystemServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .getBackend(GetBackendRequest.getDefaultInstance());
            assertThat(backend.getName()).isEqualTo("emulated");
            assertThat(backend.getAvailable()).isTrue();
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /**
     * The compose file's uffdemu service, started by the real docker-compose from the image built above: it comes up
     * healthy as uid 10001 with a read-only root filesystem (tmpfs /tmp) and no capabilities, as the file says.
     */
    @Test
    void composeServiceRunsLockedDownFromTheSameImage() throws Exception {
        Path compose = Commands.dockerCompose();
        int http = freePort();
        Map<String, String> env = Map.of("UFFDEMU_IMAGE", IMAGE_TAG, "UFFDEMU_HTTP_PORT", String.valueOf(http),
                "UFFDEMU_GRPC_PORT", String.valueOf(freePort()));
        String[] project = {"-p", "uffdemuit" + IMAGE_TAG.substring(IMAGE_TAG.indexOf(':') + 1), "-f", "docker-compose.yml"};
        try {
            Commands.Result up = Commands.run(env, 60, compose, concat(project, "up", "-d", "--no-build", "uffdemu"));
            assertThat(up.exit()).as(up.output()).isZero();
            Commands.Result ps = Commands.run(env, 30, compose, concat(project, "ps", "-q", "uffdemu"));
            String id = ps.output().strip();
            assertThat(id).as(ps.output()).isNotEmpty();

            HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
            HttpRequest readiness = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + http
                    + "/actuator/health/readiness")).timeout(Duration.ofSeconds(5)).build();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            String body = "";
            while (System.nanoTime() < deadline && !body.contains("\"status\":\"UP\"")) {
                try {
                    body = client.send(readiness, HttpResponse.BodyHandlers.ofString()).body();
                } catch (IOException notYet) {
                    Thread.sleep(500);
                }
            }
            assertThat(body).as("readiness of the compose service").contains("\"status\":\"UP\"");

            var inspect = DockerClientFactory.instance().client().inspectContainerCmd(id).exec();
            assertThat(inspect.getConfig().getUser()).isEqualTo("10001:10001");
            assertThat(inspect.getHostConfig().getReadonlyRootfs()).isTrue();
            assertThat(inspect.getHostConfig().getCapDrop()).extracting(Object::toString).containsExactly("ALL");
            assertThat(inspect.getHostConfig().getNetworkMode()).isEqualTo("host");
        } finally {
            Commands.run(env, 60, compose, concat(project, "down", "--timeout", "10"));
        }
    }

    private static String[] concat(String[] head, String... tail) {
        String[] all = java.util.Arrays.copyOf(head, head.length + tail.length);
        System.arraycopy(tail, 0, all, head.length, tail.length);
        return all;
    }

    @Test
    void noRestrictedMethodWarningsBecauseTheManifestEnablesNativeAccess() {
        assertThat(logs.toUtf8String()).doesNotContain("restricted method");
    }

    /**
     * The SDK's end-to-end scenario against the image, then a restart of the container: the same client sees a
     * clean kernel (the old process and uffd give NOT_FOUND, the process list is back to what a fresh server
     * shows) and the scenario works again. Last, because it restarts the container the other tests share.
     */
    @Test
    @Order(Integer.MAX_VALUE)
    void sdkScenarioWorksAndARestartLeavesACleanKernel() throws Exception {
        try (UffdemuClient client = UffdemuClient.connect(ClientConfig.DEFAULT.withTarget("127.0.0.1:" + grpcPort)
                .withDeadline(Duration.ofSeconds(20)))) {
            // the chart's ConfigMap reached Spring (MemTotal is in kB)
            assertThat(client.meminfo()).containsEntry("MemTotal", CHART_MEMORY_KB);
            Set<Integer> freshPids = pids(client);

            Scenario before = Scenario.run(client, "before-restart");
            assertThat(pids(client)).contains(before.process().pid());

            var docker = DockerClientFactory.instance().client();
            String startedAt = docker.inspectContainerCmd(container.getContainerId()).exec().getState().getStartedAt();
            docker.restartContainerCmd(container.getContainerId()).withTimeout(10).exec();
            assertThat(docker.inspectContainerCmd(container.getContainerId()).exec().getState().getStartedAt())
                    .as("the container was restarted").isNotEqualTo(startedAt);
            awaitServing(client);

            // everything the old server held is gone, and the SDK says so with the kernel's errno (ESRCH/EBADF ->
            // NOT_FOUND), not with a transport error
            assertThat(pids(client)).as("processes after the restart").isEqualTo(freshPids);
            assertThatThrownBy(() -> before.process().read(before.base(), 8))
                    .isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.grpcCode()).isEqualTo("NOT_FOUND"));
            assertThatThrownBy(() -> before.uffd().read(1, Duration.ZERO))
                    .isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.grpcCode()).isEqualTo("NOT_FOUND"));
            assertThatThrownBy(() -> before.uffd().copy(before.base(), new byte[PAGE], 0))
                    .isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.grpcCode()).isEqualTo("NOT_FOUND"));
            assertThat(client.meminfo()).as("settings survive the restart").containsEntry("MemTotal", CHART_MEMORY_KB);

            Scenario after = Scenario.run(client, "after-restart");
            assertThat(pids(client)).contains(after.process().pid()).hasSize(freshPids.size() + 1);
        }
        assertThat(logs.toUtf8String()).as("no restricted-method warnings after the restart either")
                .doesNotContain("restricted method");
    }

    /**
     * Open a uffd (MISSING|WP), fault a read, resolve it with UFFDIO_COPY(MODE_WP) and check the bytes, then fault
     * a write on the now write-protected page, resolve it by UFFDIO_WRITEPROTECT(0) and check the bytes again.
     */
    record Scenario(Process process, Userfaultfd uffd, long base) {
        static Scenario run(UffdemuClient client, String name) throws Exception {
            Process p = client.createProcess(name);
            long base = p.mmap(MmapOptions.anonymous(2L * PAGE));
            Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP));
            AddrRange range = new AddrRange(base, 2L * PAGE);
            uffd.register(range, Linux.UFFDIO_REGISTER_MODE_MISSING | Linux.UFFDIO_REGISTER_MODE_WP);

            // MISSING: the reader blocks until UFFDIO_COPY installs the page (write-protected)
            CompletableFuture<AccessResult> read = p.async().read(base + 100, 16);
            UffdMessage.PageFault missing = nextFault(uffd);
            assertThat(missing.address() & -PAGE).isEqualTo(base);
            assertThat(missing.write()).isFalse();
            assertThat(missing.wp()).isFalse();
            assertThat(read).as("the reader waits for the handler").isNotDone();
            byte[] page = new byte[PAGE];
            for (int i = 0; i < PAGE; i++) {
                page[i] = (byte) (i * 31 + name.length());
            }
            assertThat(uffd.copy(base, page, Linux.UFFDIO_COPY_MODE_WP)).isEqualTo(PAGE);
            AccessResult got = read.get(20, TimeUnit.SECONDS);
            assertThat(got.ok()).isTrue();
            assertThat(got.data()).isEqualTo(Arrays.copyOfRange(page, 100, 116));
            assertThat(p.pagemap(base, 1).getFirst().uffdWp()).as("COPY(MODE_WP) left the page protected").isTrue();

            // WP: the writer blocks until the range is unprotected
            byte[] update = ("written by " + name).getBytes(StandardCharsets.UTF_8);
            CompletableFuture<AccessResult> write = p.async().write(base + 200, update);
            UffdMessage.PageFault wp = nextFault(uffd);
            assertThat(wp.address() & -PAGE).isEqualTo(base);
            assertThat(wp.write()).isTrue();
            assertThat(wp.wp()).isTrue();
            assertThat(write).as("the writer waits for the handler").isNotDone();
            uffd.writeProtect(new AddrRange(base, PAGE), 0);
            assertThat(write.get(20, TimeUnit.SECONDS).ok()).isTrue();
            assertThat(p.pagemap(base, 1).getFirst().uffdWp()).isFalse();

            byte[] expected = page.clone();
            System.arraycopy(update, 0, expected, 200, update.length);
            assertThat(p.read(base, PAGE).data()).isEqualTo(expected);
            return new Scenario(p, uffd, base);
        }

        private static UffdMessage.PageFault nextFault(Userfaultfd uffd) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (System.nanoTime() < deadline) {
                for (UffdMessage m : uffd.read(1, Duration.ofSeconds(1))) {
                    if (m instanceof UffdMessage.PageFault pf) {
                        return pf;
                    }
                    throw new AssertionError("unexpected uffd message " + m);
                }
            }
            throw new AssertionError("no page fault within 20 s");
        }
    }

    private static Set<Integer> pids(UffdemuClient client) {
        return client.processes().stream().map(ProcessInfo::pid).collect(Collectors.toSet());
    }

    /** The same client, polled until the restarted server answers (the channel reconnects by itself). */
    private static void awaitServing(UffdemuClient client) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        RuntimeException last = null;
        while (System.nanoTime() < deadline) {
            try {
                assertThat(client.backend().name()).isEqualTo("emulated");
                return;
            } catch (ServerUnavailableException notYet) {
                last = notYet;
                Thread.sleep(500);
            }
        }
        throw new AssertionError("the restarted server did not answer within 120 s", last);
    }

    /** What the Helm chart renders for the server's settings: the ConfigMap's file and where the pod finds it. */
    record ChartConfig(String applicationYaml, String mountPath, String location) {
        static ChartConfig render(Map<String, String> values) {
            TemplateCommand template = new Helm(RepoFiles.path("helm/uffdemu")).template().withName("it")
                    .withKubeVersion("1.32.0").set("auth.allowUnauthenticated", true);
            for (Map.Entry<String, String> v : values.entrySet()) {
                template = template.set(v.getKey(), v.getValue());
            }
            List<Map<String, Object>> docs = RepoFiles.loadAll(template.call());
            Map<String, Object> configMap = docs.stream().filter(d -> "ConfigMap".equals(d.get("kind"))).findFirst()
                    .orElseThrow();
            Map<String, Object> pod = docs.stream().filter(d -> "Deployment".equals(d.get("kind"))).findFirst()
                    .map(d -> RepoFiles.<Map<String, Object>>at(d, "spec", "template", "spec")).orElseThrow();
            Map<String, Object> container = RepoFiles.at(pod, "containers", 0);
            String volume = RepoFiles.<List<Map<String, Object>>>at(pod, "volumes").stream()
                    .filter(v -> v.containsKey("configMap")).map(v -> (String) v.get("name")).findFirst().orElseThrow();
            String mountPath = RepoFiles.<List<Map<String, Object>>>at(container, "volumeMounts").stream()
                    .filter(m -> volume.equals(m.get("name"))).map(m -> (String) m.get("mountPath")).findFirst()
                    .orElseThrow();
            String location = RepoFiles.<List<Map<String, Object>>>at(container, "env").stream()
                    .filter(e -> "SPRING_CONFIG_ADDITIONAL_LOCATION".equals(e.get("name")))
                    .map(e -> (String) e.get("value")).findFirst().orElseThrow();
            return new ChartConfig(RepoFiles.at(configMap, "data", "application.yaml"), mountPath, location);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            socket.setReuseAddress(true);
            return socket.getLocalPort();
        }
    }
}
