# uffdemu server image.
#
# With a registry (the usual way; `--target runtime` is the default last stage):
#   docker build -t uffdemu:dev .
# Without a registry (CI here): local FROM-scratch bases made from the host's JDK 25 (deploy/base-image/build.sh),
# passed as the build args. CI builds both targets (deploy-tests):
#   deploy/base-image/build.sh                     # tags uffdemu/jre25-base:local (RUNTIME_IMAGE)
#   deploy/base-image/build.sh --jdk               # tags uffdemu/jdk25-base:local (BUILD_IMAGE)
#   # the default target, Maven inside the image (DefaultTargetImageIT); mvnw fetches Maven and the dependencies
#   # from Maven Central, hence the host network
#   DOCKER_BUILDKIT=0 docker build --network host --build-arg BUILD_IMAGE=uffdemu/jdk25-base:local \
#       --build-arg RUNTIME_IMAGE=uffdemu/jre25-base:local --build-arg JAR=pom.xml --build-arg CLI_JAR=pom.xml -t uffdemu:dev .
#   # `prebuilt` from the jars built on the host, which never touches BUILD_IMAGE (ContainerImageIT)
#   ./mvnw -q -pl server,cli -am package -DskipTests
#   DOCKER_BUILDKIT=0 docker build --target prebuilt --build-arg RUNTIME_IMAGE=uffdemu/jre25-base:local -t uffdemu:dev .
#
# Stage order matters for the legacy builder (Debian's dockerd 20.10, Testcontainers): it builds every stage up to
# --target, so `prebuilt` comes before the Maven `build` stage. The price: the legacy builder also builds `prebuilt`
# on the way to the default target, and its COPY needs the jars; without them in server/target and cli/target, point
# JAR and CLI_JAR at any file of the context (pom.xml above): `runtime` takes its jars from `build`. BuildKit skips
# stages the target does not need, so it needs neither.
ARG BUILD_IMAGE=eclipse-temurin:25-jdk
ARG RUNTIME_IMAGE=eclipse-temurin:25-jre

# ---- common runtime settings ------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
# Backend: emulated needs no privileges; linux/auto need userfaultfd access (docs/deployment.md).
# Liveness/readiness health groups are on outside Kubernetes too, so any orchestrator can probe
# /actuator/health/liveness and /actuator/health/readiness on 8080 (gRPC health is served on 9090).
ENV UFFDEMU_BACKEND=emulated \
    MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED=true
WORKDIR /app
# gRPC API (spring.grpc.server.port), HTTP actuator: health + prometheus (server.port)
EXPOSE 9090 8080
# numeric uid/gid so Kubernetes' runAsNonRoot can verify it; no shell or useradd needed in the base
USER 10001:10001
# the jar's manifest carries Enable-Native-Access: ALL-UNNAMED (FFM for the linux backend)
# extra JVM flags: JAVA_TOOL_OPTIONS; extra Spring arguments (--server.port=...): the container command
ENTRYPOINT ["/opt/java/openjdk/bin/java", "-XX:MaxRAMPercentage=40", "-XX:+ExitOnOutOfMemoryError", "-jar", "/app/uffdemu.jar"]

# ---- runtime from a jar built outside the image (CI, no registry) ----------------------------------
FROM runtime-base AS prebuilt
# exactly one exec jar must match
ARG JAR=server/target/uffdemu-server-*-exec.jar
COPY --chown=0:0 ${JAR} /app/uffdemu.jar
# the command-line tool: docker exec <container> /opt/java/openjdk/bin/java -jar /app/uffdemu-cli.jar ps
ARG CLI_JAR=cli/target/uffdemu-cli.jar
COPY --chown=0:0 ${CLI_JAR} /app/uffdemu-cli.jar

# ---- Maven build inside the image ------------------------------------------------------------------
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY .mvn/ .mvn/
COPY mvnw pom.xml ./
COPY api/ api/
COPY client-sdk/ client-sdk/
COPY server/ server/
COPY cli/ cli/
# the reactor lists every module, so their poms must exist even though only server and cli are built
COPY examples/pom.xml examples/pom.xml
COPY bench/pom.xml bench/pom.xml
COPY deploy-tests/pom.xml deploy-tests/pom.xml
RUN ./mvnw -B -ntp -q -pl server,cli -am package -DskipTests \
 && cp server/target/uffdemu-server-*-exec.jar /uffdemu.jar \
 && cp cli/target/uffdemu-cli.jar /uffdemu-cli.jar

# ---- default: runtime from the in-image build ------------------------------------------------------
FROM runtime-base AS runtime
COPY --from=build --chown=0:0 /uffdemu.jar /app/uffdemu.jar
COPY --from=build --chown=0:0 /uffdemu-cli.jar /app/uffdemu-cli.jar
