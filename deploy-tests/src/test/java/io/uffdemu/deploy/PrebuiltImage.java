package io.uffdemu.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.UUID;

import org.junit.jupiter.api.Assumptions;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.images.builder.ImageFromDockerfile;

/**
 * The Dockerfile's {@code prebuilt} target from the local FROM-scratch base (deploy/base-image/build.sh) and the jars
 * built on the host, as ContainerImageIT and NativeContainerIT run it. Each IT gets its own tag ({@code uffdemu-it:*},
 * which .ci/run prunes after a killed run) and removes it; the layers are cached, so a second build of the same jars
 * costs a second or two.
 */
final class PrebuiltImage {

    static final String BASE_IMAGE = System.getProperty("uffdemu.base.image", "uffdemu/jre25-base:local");
    private static final String JAR_IN_CONTEXT = "server/target/uffdemu-server-exec.jar";
    private static final String CLI_JAR_IN_CONTEXT = "cli/target/uffdemu-cli.jar";

    private PrebuiltImage() {
    }

    /** A fresh {@code uffdemu-it:xxxxxxxx} tag. */
    static String newTag() {
        return "uffdemu-it:" + UUID.randomUUID().toString().substring(0, 8);
    }

    /**
     * Checks the jars, Docker and the base image (skips when they are missing, fails instead when CI_REQUIRE_DOCKER=1)
     * and returns the build of the {@code prebuilt} target under {@code tag}, not yet run.
     */
    static ImageFromDockerfile prepare(String tag) {
        Path jar = Path.of(System.getProperty("uffdemu.server.jar", "missing")).toAbsolutePath().normalize();
        assertThat(jar).as("the server's exec jar (./mvnw verify builds it before this module; "
                + "alone: ./mvnw -pl server,cli -am package -DskipTests)").isRegularFile();
        Path cliJar = Path.of(System.getProperty("uffdemu.cli.jar", "missing")).toAbsolutePath().normalize();
        assertThat(cliJar).as("the CLI jar (./mvnw verify builds it before this module)").isRegularFile();

        requireDocker();
        boolean baseExists = !DockerClientFactory.instance().client().listImagesCmd()
                .withImageNameFilter(BASE_IMAGE).exec().isEmpty();
        String missingBase = "base image " + BASE_IMAGE + " is missing: run deploy/base-image/build.sh";
        if (!baseExists && !RepoFiles.ciRequiresDocker()) {
            Assumptions.abort(missingBase);
        }
        assertThat(baseExists).as(missingBase).isTrue();

        // the context holds only the Dockerfile and the jars: no Maven, no sources, no pull of BUILD_IMAGE
        return new ImageFromDockerfile(tag, true)
                .withFileFromPath("Dockerfile", RepoFiles.path("Dockerfile"))
                .withFileFromPath(JAR_IN_CONTEXT, jar)
                .withFileFromPath(CLI_JAR_IN_CONTEXT, cliJar)
                .withTarget("prebuilt")
                .withBuildArg("RUNTIME_IMAGE", BASE_IMAGE)
                .withBuildArg("JAR", JAR_IN_CONTEXT)
                .withBuildArg("CLI_JAR", CLI_JAR_IN_CONTEXT);
    }

    static void requireDocker() {
        if (!DockerClientFactory.instance().isDockerAvailable()) {
            String reason = "Docker is not available (start dockerd; see .ci/run)";
            if (RepoFiles.ciRequiresDocker()) {
                throw new AssertionError(reason + "; CI_REQUIRE_DOCKER=1 forbids skipping");
            }
            Assumptions.abort(reason);
        }
    }

    /** Removes the tag (only the IT's own; the base and the cached layers other tags use stay). */
    static void remove(String tag) {
        try {
            DockerClientFactory.instance().client().removeImageCmd(tag).withForce(true).exec();
        } catch (RuntimeException e) {
            System.err.println("could not remove " + tag + ": " + e.getMessage());
        }
    }
}
