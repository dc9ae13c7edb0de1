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
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import com.github.dockerjava.api.DockerClient;
import io.grpc.health.v1.HealthCheckResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.output.ToStringConsumer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.utility.DockerImageName;

/**
 * Builds the Dockerfile's default target ({@code runtime}: the Maven {@code build} stage, then the runtime stage) the
 * way a user does, {@code docker build .} on the repository, but from the local FROM-scratch bases
 * ({@code deploy/base-image/build.sh --jdk} and {@code build.sh}) passed as BUILD_IMAGE and RUNTIME_IMAGE, since
 * images cannot be pulled here. The build runs with the legacy builder (Debian's dockerd 20.10 has no buildx) on the
 * host network, so the build stage's mvnw downloads Maven and the dependencies from Maven Central. Then the image is
 * started on the host network with free ports and checked: readiness, gRPC health, uid 10001 and the CLI jar.
 * ContainerImageIT covers the runtime behaviour in depth on the {@code prebuilt} target; this test is about the
 * in-image build. Fails instead of skipping when CI_REQUIRE_DOCKER=1 and Docker or a base image is missing.
 */
class DefaultTargetImageIT {

    private static final String BUILD_IMAGE = System.getProperty("uffdemu.build.base.image", "uffdemu/jdk25-base:local");
    private static final String RUNTIME_IMAGE = System.getProperty("uffdemu.base.image", "uffdemu/jre25-base:local");
    private static final String IMAGE_TAG = "uffdemu-it:" + UUID.randomUUID().toString().substring(0, 8);
    /** A legacy-builder build step's result: " ---> 0123456789ab". */
    private static final Pattern STEP_IMAGE = Pattern.compile("^ ---> ([0-9a-f]{12})$");

    /** The images this build made (not the cached or FROM ones), removed after the test when untagged. */
    private static final List<String> createdImages = new ArrayList<>();
    private static boolean buildStarted;
    private static GenericContainer<?> container;
    private static final ToStringConsumer logs = new ToStringConsumer();
    private static int httpPort;
    private static int grpcPort;

    @BeforeAll
    @Timeout(value = 900, unit = TimeUnit.SECONDS)
    static void buildAndStart() throws Exception {
        if (!DockerClientFactory.instance().isDockerAvailable()) {
            String reason = "Docker is not available (start dockerd; see .ci/run)";
            if (RepoFiles.ciRequiresDocker()) {
                throw new AssertionError(reason + "; CI_REQUIRE_DOCKER=1 forbids skipping");
            }
            Assumptions.abort(reason);
        }
        DockerClient docker = DockerClientFactory.instance().client();
        for (String[] base : new String[][] {{BUILD_IMAGE, "deploy/base-image/build.sh --jdk"},
                {RUNTIME_IMAGE, "deploy/base-image/build.sh"}}) {
            boolean exists = !docker.listImagesCmd().withImageNameFilter(base[0]).exec().isEmpty();
            String missing = "base image " + base[0] + " is missing: run " + base[1];
            if (!exists && !RepoFiles.ciRequiresDocker()) {
                Assumptions.abort(missing);
            }
            assertThat(exists).as(missing).isTrue();
        }
        Path dockerCli = Commands.docker();

        // the user's command with the two bases as build args; --no-cache, so that the Maven build really runs.
        // The legacy builder builds every stage up to the target, `prebuilt` too, whose COPY needs a file: JAR and
        // CLI_JAR point it at the pom (the runtime stage takes its jars from the build stage), so the test needs
        // no jars from the host build
        Path log = Path.of("target", "docker-build-" + IMAGE_TAG.replace(':', '-') + ".log").toAbsolutePath();
        long start = System.nanoTime();
        buildStarted = true;
        Commands.Result build = Commands.runLogged(Map.of("DOCKER_BUILDKIT", "0"), 840, log, dockerCli,
                "build", "--network", "host", "--no-cache", "--force-rm",
                "--build-arg", "BUILD_IMAGE=" + BUILD_IMAGE, "--build-arg", "RUNTIME_IMAGE=" + RUNTIME_IMAGE,
                "--build-arg", "JAR=pom.xml", "--build-arg", "CLI_JAR=pom.xml",
                "-t", IMAGE_TAG, ".");
        createdImages.addAll(createdImages(build.output()));
        System.out.printf("docker build of the default target: %.1f s (log: %s)%n",
                (System.nanoTime() - start) / 1e9, log);
        assertThat(build.exit()).as("docker build failed; the end of %s:%n%s", log, tail(build.output(), 40))
                .isZero();

        httpPort = freePort();
        grpcPort = freePort();
        container = new GenericContainer<>(DockerImageName.parse(IMAGE_TAG))
                .withNetworkMode("host")
                .withCommand("--server.port=" + httpPort, "--spring.grpc.server.port=" + grpcPort)
                .withLogConsumer(logs)
                .waitingFor(Wait.forLogMessage(".*Started UffdemuServerApplication.*\\n", 1)
                        .withStartupTimeout(Duration.ofSeconds(120)));
        container.start();
    }

    @AfterAll
    static void removeContainerAndImages() {
        if (container != null) {
            container.stop();
        }
        if (!buildStarted) {
            return;
        }
        DockerClient docker = DockerClientFactory.instance().client();
        try {
            if (!docker.listImagesCmd().withImageNameFilter(IMAGE_TAG).exec().isEmpty()) {
                docker.removeImageCmd(IMAGE_TAG).exec();
            }
        } catch (RuntimeException e) {
            System.err.println("could not remove " + IMAGE_TAG + ": " + e.getMessage());
        }
        // the legacy builder keeps the other stages' images (the build stage with its Maven repository, the
        // prebuilt stage) untagged; remove what this build made, children first, and never a tagged image
        for (String id : createdImages.reversed()) {
            try {
                List<String> tags = docker.inspectImageCmd(id).exec().getRepoTags();
                if (tags != null && tags.stream().anyMatch(t -> !t.equals("<none>:<none>"))) {
                    continue;
                }
                docker.removeImageCmd(id).exec();
            } catch (RuntimeException goneOrInUse) {
                // removed with its child already, or (not ours to judge) still in use
            }
        }
    }

    @Test
    void readinessAndGrpcHealthOnLoopback() throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        HttpResponse<String> readiness = http.send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + httpPort + "/actuator/health/readiness"))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(readiness.statusCode()).isEqualTo(200);
        assertThat(readiness.body()).contains("\"status\":\"UP\"");

        assertThat(GrpcHealth.await(grpcPort, HealthCheckResponse.ServingStatus.SERVING, 20)).isEqualTo("SERVING");
        assertThat(logs.toUtf8String()).doesNotContain("restricted method");
    }

    @Test
    void serverRunsAsUid10001() throws IOException {
        var inspect = DockerClientFactory.instance().client().inspectContainerCmd(container.getContainerId()).exec();
        assertThat(inspect.getConfig().getUser()).isEqualTo("10001:10001");
        List<String> status = Files.readAllLines(Path.of("/proc", String.valueOf(inspect.getState().getPidLong()),
                "status"));
        assertThat(status).anySatisfy(line -> assertThat(line).matches("Uid:\\s+10001\\s+10001\\s+10001\\s+10001"));
    }

    @Test
    void theCliJarBuiltInTheImageRuns() throws Exception {
        var version = container.execInContainer("/opt/java/openjdk/bin/java", "-jar", "/app/uffdemu-cli.jar",
                "--version");
        assertThat(version.getExitCode()).as(version.getStderr()).isZero();
        assertThat(version.getStdout()).startsWith("uffdemu-cli ");

        var backend = container.execInContainer("/opt/java/openjdk/bin/java", "-jar", "/app/uffdemu-cli.jar",
                "--server", "127.0.0.1:" + grpcPort, "--json", "backend");
        assertThat(backend.getExitCode()).as(backend.getStderr()).isZero();
        assertThat(backend.getStdout()).contains("\"name\":\"emulated\"");
    }

    /** The image ids of the build's steps, without those taken from the cache or named by FROM. */
    static List<String> createdImages(String buildOutput) {
        List<String> ids = new ArrayList<>();
        boolean skipNext = false;
        for (String line : buildOutput.split("\n")) {
            if (line.matches("^Step \\d+/\\d+ : FROM .*") || line.equals(" ---> Using cache")) {
                skipNext = true;
                continue;
            }
            Matcher m = STEP_IMAGE.matcher(line);
            if (m.matches()) {
                if (!skipNext) {
                    ids.add(m.group(1));
                }
                skipNext = false;
            }
        }
        return ids;
    }

    private static String tail(String text, int lines) {
        String[] all = text.split("\n");
        return String.join("\n", List.of(all).subList(Math.max(0, all.length - lines), all.length));
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            socket.setReuseAddress(true);
            return socket.getLocalPort();
        }
    }
}
