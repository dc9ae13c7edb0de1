package io.uffdemu.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.uffdemu.api.v1.BackendInfo;
import io.uffdemu.api.v1.GetBackendRequest;
import io.uffdemu.api.v1.SystemServiceGrpc;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.output.ToStringConsumer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.images.builder.ImageFromDockerfile;

/**
 * Builds the Dockerfile's {@code prebuilt} target from the local FROM-scratch base (deploy/base-image/build.sh)
 * and the server's exec jar, starts it on the host network with free ports, and checks health, the uid and one
 * gRPC call over 127.0.0.1. Fails instead of skipping when CI_REQUIRE_DOCKER=1 and Docker is missing.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ContainerImageIT {

    private static final String BASE_IMAGE = System.getProperty("uffdemu.base.image", "uffdemu/jre25-base:local");
    private static final String JAR_IN_CONTEXT = "server/target/uffdemu-server-exec.jar";
    private static final String CLI_JAR_IN_CONTEXT = "cli/target/uffdemu-cli.jar";

    /** A tag per run: Ryuk is off here, so the IT removes its image itself (and .ci/run prunes leftovers). */
    private static final String IMAGE_TAG = "uffdemu-it:" + java.util.UUID.randomUUID().toString().substring(0, 8);

    private static GenericContainer<?> container;
    private static final ToStringConsumer logs = new ToStringConsumer();
    private static int httpPort;
    private static int grpcPort;

    @BeforeAll
    static void startImage() throws IOException {
        Path jar = Path.of(System.getProperty("uffdemu.server.jar", "missing")).toAbsolutePath().normalize();
        assertThat(jar).as("the server's exec jar (./mvnw verify builds it before this module; "
                + "alone: ./mvnw -pl server -am package -DskipTests)").isRegularFile();
        Path cliJar = Path.of(System.getProperty("uffdemu.cli.jar", "missing")).toAbsolutePath().normalize();
        assertThat(cliJar).as("the CLI jar (./mvnw verify builds it before this module)").isRegularFile();

        if (!DockerClientFactory.instance().isDockerAvailable()) {
            String reason = "Docker is not available (start dockerd; see .ci/run)";
            if (RepoFiles.ciRequiresDocker()) {
                throw new AssertionError(reason + "; CI_REQUIRE_DOCKER=1 forbids skipping");
            }
            Assumptions.abort(reason);
        }
        boolean baseExists = !DockerClientFactory.instance().client().listImagesCmd()
                .withImageNameFilter(BASE_IMAGE).exec().isEmpty();
        String missingBase = "base image " + BASE_IMAGE + " is missing: run deploy/base-image/build.sh";
        if (!baseExists && !RepoFiles.ciRequiresDocker()) {
            Assumptions.abort(missingBase);
        }
        assertThat(baseExists).as(missingBase).isTrue();

        // the context holds only the Dockerfile and the jar: no Maven, no sources, no pull of BUILD_IMAGE
        ImageFromDockerfile image = new ImageFromDockerfile(IMAGE_TAG, true)
                .withFileFromPath("Dockerfile", RepoFiles.path("Dockerfile"))
                .withFileFromPath(JAR_IN_CONTEXT, jar)
                .withFileFromPath(CLI_JAR_IN_CONTEXT, cliJar)
                .withTarget("prebuilt")
                .withBuildArg("RUNTIME_IMAGE", BASE_IMAGE)
                .withBuildArg("JAR", JAR_IN_CONTEXT)
                .withBuildArg("CLI_JAR", CLI_JAR_IN_CONTEXT);

        httpPort = freePort();
        grpcPort = freePort();
        container = new GenericContainer<>(image)
                .withNetworkMode("host")
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
            try {
                DockerClientFactory.instance().client().removeImageCmd(IMAGE_TAG).withForce(true).exec();
            } catch (RuntimeException e) {
                System.err.println("could not remove " + IMAGE_TAG + ": " + e.getMessage());
            }
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
            // what the Helm chart's gRPC probes ask
            HealthCheckResponse health = HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance());
            assertThat(health.getStatus()).isEqualTo(HealthCheckResponse.ServingStatus.SERVING);

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

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            socket.setReuseAddress(true);
            return socket.getLocalPort();
        }
    }
}
