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
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

import com.github.dockerjava.api.command.InspectContainerResponse;
import com.github.dockerjava.api.model.Capability;
import com.github.dockerjava.api.model.Device;
import com.marcnuri.helm.Helm;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.BackendInfo;
import io.uffdemu.client.EnoentException;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.Memfd;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.output.ToStringConsumer;
import org.testcontainers.containers.wait.strategy.Wait;

/**
 * Runs the image with the privileges the deployment files give the linux (native) backend, on this host's real
 * kernel, and proves they are enough and no more than declared:
 * <ul>
 *   <li><b>compose</b>: the real {@code docker-compose --profile native up uffdemu-native} from docker-compose.yml
 *       (no copy of its settings here: a wrong privilege in the file fails this test), with the image built from
 *       the host's jars and free loopback ports;</li>
 *   <li><b>helm</b>: the chart rendered with {@code backend.native.enabled=true}; its container securityContext and
 *       its emptyDir mounts are translated to Docker settings (an unknown securityContext key fails the test
 *       rather than being dropped), which the test runs with Testcontainers.</li>
 * </ul>
 * Both must serve gRPC health SERVING, report backend {@code linux} on the host's kernel release, and pass two
 * fault round trips through the SDK: MISSING on anonymous memory (handler loop, UFFDIO_COPY) and WP on a shmem
 * memfd mapping (UFFDIO_WRITEPROTECT, handler un-protects). The running container's credentials are read from the
 * host's {@code /proc/<pid>/status}: uid 0, CapEff exactly CAP_SYS_PTRACE, no_new_privs. Last, the same image
 * without CAP_SYS_PTRACE, without the device and with Docker's default seccomp profile must report the backend
 * unavailable with the kernel's reason (health NOT_SERVING), which shows the privileges are load-bearing.
 * Fails instead of skipping when CI_REQUIRE_DOCKER=1 and Docker, docker-compose or the base image are missing.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class NativeContainerIT {

    private static final String IMAGE_TAG = PrebuiltImage.newTag();
    private static final String PROJECT = "uffdemunative" + IMAGE_TAG.substring(IMAGE_TAG.indexOf(':') + 1);
    private static final String SERVICE = "uffdemu-native";
    private static final int PAGE = 4096;
    /** CapEff/CapPrm/CapBnd of a process holding CAP_SYS_PTRACE (19) and nothing else. */
    private static final String SYS_PTRACE_ONLY = String.format("%016x", 1L << 19);

    private static Path compose;
    private static Map<String, String> composeEnv;
    private static boolean composeStarted;
    private static String composeId;
    private static int composeGrpc;
    private static int composeHttp;
    private static GenericContainer<?> helm;
    private static final ToStringConsumer helmLogs = new ToStringConsumer();
    private static int helmGrpc;
    private static int helmHttp;

    @BeforeAll
    static void buildImageAndStartBoth() throws Exception {
        var image = PrebuiltImage.prepare(IMAGE_TAG);
        compose = Commands.dockerCompose();
        image.get(); // build now: compose runs it with --no-build

        composeGrpc = freePort();
        composeHttp = freePort();
        composeEnv = Map.of("UFFDEMU_IMAGE", IMAGE_TAG,
                "UFFDEMU_NATIVE_GRPC_PORT", String.valueOf(composeGrpc),
                "UFFDEMU_NATIVE_HTTP_PORT", String.valueOf(composeHttp));
        composeStarted = true;
        Commands.Result up = compose("up", "-d", "--no-build", SERVICE);
        assertThat(up.exit()).as(up.output()).isZero();
        Commands.Result ps = compose("ps", "-q", SERVICE);
        composeId = ps.output().strip();
        assertThat(composeId).as(ps.output()).isNotEmpty();

        HelmNative chart = HelmNative.render();
        helmGrpc = freePort();
        helmHttp = freePort();
        helm = chart.applyTo(new GenericContainer<>(IMAGE_TAG))
                .withNetworkMode("host")
                .withCommand("--server.port=" + helmHttp, "--spring.grpc.server.port=" + helmGrpc)
                .withLogConsumer(helmLogs)
                .waitingFor(Wait.forLogMessage(".*Started UffdemuServerApplication.*\\n", 1)
                        .withStartupTimeout(Duration.ofSeconds(120)));
        helm.start();

        awaitHealthy(composeHttp, composeGrpc, NativeContainerIT::composeLogs);
        awaitHealthy(helmHttp, helmGrpc, helmLogs::toUtf8String);
    }

    @AfterAll
    static void cleanUp() throws Exception {
        try {
            if (helm != null) {
                helm.stop();
            }
            if (composeStarted) {
                Commands.Result down = compose("down", "--timeout", "10");
                if (down.exit() != 0) {
                    System.err.println("docker-compose down failed: " + down.output());
                }
            }
        } finally {
            PrebuiltImage.remove(IMAGE_TAG);
        }
    }

    @Test
    void composeServiceRunsWithExactlyTheDeclaredPrivileges() throws IOException {
        InspectContainerResponse inspect = DockerClientFactory.instance().client().inspectContainerCmd(composeId).exec();
        var host = inspect.getHostConfig();
        assertThat(inspect.getConfig().getUser()).isEqualTo("0:0");
        assertThat(inspect.getConfig().getEnv()).contains("UFFDEMU_BACKEND=linux");
        assertThat(host.getNetworkMode()).isEqualTo("host");
        assertThat(host.getPrivileged()).isFalse();
        assertThat(host.getReadonlyRootfs()).isTrue();
        assertThat(host.getTmpFs()).containsOnlyKeys("/tmp");
        assertThat(host.getCapDrop()).containsExactly(Capability.ALL);
        assertThat(host.getCapAdd()).containsExactly(Capability.SYS_PTRACE);
        assertThat(host.getSecurityOpts()).containsExactlyInAnyOrder("no-new-privileges:true", "seccomp=unconfined");
        assertThat(host.getDevices()).extracting(Device::getPathOnHost, Device::getPathInContainer)
                .containsExactly(org.assertj.core.groups.Tuple.tuple("/dev/userfaultfd", "/dev/userfaultfd"));
        assertThat(inspect.getMounts()).as("no host paths or volumes").isNullOrEmpty();
        assertThat(host.getPidMode()).as("own pid namespace").isNullOrEmpty();

        // what the kernel actually gave pid 1 of the container
        Map<String, String> status = procStatus(inspect.getState().getPidLong());
        assertThat(status.get("Uid")).matches("0\\s+0\\s+0\\s+0");
        assertThat(status.get("CapEff")).isEqualTo(SYS_PTRACE_ONLY);
        assertThat(status.get("CapPrm")).isEqualTo(SYS_PTRACE_ONLY);
        assertThat(status.get("CapBnd")).isEqualTo(SYS_PTRACE_ONLY);
        assertThat(status.get("CapAmb")).isEqualTo("0000000000000000");
        assertThat(status.get("NoNewPrivs")).isEqualTo("1");
        assertThat(status.get("Seccomp")).as("seccomp=unconfined").isEqualTo("0");
    }

    @Test
    void helmNativeSecurityContextGivesTheSameCredentials() throws Exception {
        InspectContainerResponse inspect = DockerClientFactory.instance().client()
                .inspectContainerCmd(helm.getContainerId()).exec();
        Map<String, String> status = procStatus(inspect.getState().getPidLong());
        assertThat(status.get("Uid")).matches("0\\s+0\\s+0\\s+0");
        assertThat(status.get("CapEff")).isEqualTo(SYS_PTRACE_ONLY);
        assertThat(status.get("CapBnd")).isEqualTo(SYS_PTRACE_ONLY);
        assertThat(status.get("NoNewPrivs")).isEqualTo("1");
        assertThat(status.get("Seccomp")).as("seccompProfile Unconfined").isEqualTo("0");
        assertThat(inspect.getHostConfig().getDevices()).as("the chart offers no device").isNullOrEmpty();
        assertThat(inspect.getHostConfig().getReadonlyRootfs()).isTrue();
        // so a client that opens /dev/userfaultfd gets the kernel's ENOENT (docs/deployment.md: not offered)
        try (UffdemuClient client = UffdemuClient.connect("127.0.0.1", helmGrpc)) {
            Process p = client.createProcess("native-helm-device");
            try {
                assertThatThrownBy(() -> p.userfaultfd(UffdOptions.DEFAULT.withDevUserfaultfd(true)))
                        .isInstanceOf(EnoentException.class);
            } finally {
                p.exit();
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"compose", "helm"})
    void theLinuxBackendOfThisHostsKernelServes(String setup) throws Exception {
        try (UffdemuClient client = UffdemuClient.connect("127.0.0.1", grpcPort(setup))) {
            BackendInfo backend = client.backend();
            assertThat(backend.name()).isEqualTo("linux");
            assertThat(backend.available()).as(backend.unavailableReason()).isTrue();
            assertThat(backend.kernelRelease()).as("the host's kernel, not an emulated one")
                    .isEqualTo(Files.readString(Path.of("/proc/sys/kernel/osrelease")).strip());
            assertThat(backend.features() & Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM).isNotZero();
        }
    }

    /**
     * A write to a MISSING-registered anonymous page faults; the handler loop fills the page by UFFDIO_COPY. The uffd
     * comes from userfaultfd(2) (needs CAP_SYS_PTRACE and a seccomp profile that allows it) or, in compose, from
     * /dev/userfaultfd (needs the device): each grant serves one of the kernel's two entry points.
     */
    @ParameterizedTest(name = "{0}, /dev/userfaultfd {1}")
    @CsvSource({"compose, false", "compose, true", "helm, false"})
    void missingFaultRoundTrip(String setup, boolean device) throws Exception {
        try (UffdemuClient client = UffdemuClient.connect("127.0.0.1", grpcPort(setup))) {
            Process p = client.createProcess("native-missing-" + setup);
            try {
                long base = p.mmap(MmapOptions.anonymous(2L * PAGE));
                Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT.withDevUserfaultfd(device));
                uffd.register(new AddrRange(base, 2L * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
                List<UffdMessage.PageFault> faults = new CopyOnWriteArrayList<>();
                byte[] update = ("written through " + setup).getBytes(StandardCharsets.UTF_8);
                byte[] expected;
                try (HandlerLoop loop = uffd.handle(ctx -> {
                    faults.add(ctx.message());
                    ctx.copy(pattern(ctx.pageAddress() - base));
                }, HandlerOptions.DEFAULT)) {
                    AccessResult write = p.write(base + PAGE + 100, update);
                    assertThat(write.ok()).as(write.toString()).isTrue();
                    expected = pattern(PAGE);
                    System.arraycopy(update, 0, expected, 100, update.length);
                    assertThat(p.read(base + PAGE, PAGE).data()).isEqualTo(expected);
                    assertThat(loop.stats().faults()).isEqualTo(1);
                }
                assertThat(faults).singleElement().satisfies(f -> {
                    assertThat(f.address() & -PAGE).isEqualTo(base + PAGE);
                    assertThat(f.write()).isTrue();
                    assertThat(f.wp()).isFalse();
                });
                // the other page was never touched: still not present in the real page table
                assertThat(p.pagemap(base, 2)).extracting(e -> e.present()).containsExactly(false, true);
            } finally {
                p.exit();
            }
        }
    }

    /**
     * A shmem (memfd) mapping registered WP and write-protected: a write faults with the WP flag, the handler
     * un-protects, the write lands in the page cache (pread of the memfd sees it).
     */
    @ParameterizedTest
    @ValueSource(strings = {"compose", "helm"})
    void writeProtectRoundTripOnAShmemMemfd(String setup) throws Exception {
        try (UffdemuClient client = UffdemuClient.connect("127.0.0.1", grpcPort(setup))) {
            Process p = client.createProcess("native-wp-" + setup);
            try (Memfd memfd = p.memfdCreate("native-wp", Linux.MFD_CLOEXEC)) {
                memfd.ftruncate(2L * PAGE);
                byte[] old = pattern(0);
                assertThat(memfd.pwrite(0, old)).isEqualTo(PAGE);
                // MAP_POPULATE: the pages are mapped (read-only PTEs) before the test touches them. A USER access to a
                // file page that is not mapped yet makes the backend stat /proc/self/map_files/..., which needs
                // CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN: see notYetMappedMemfdPage... below
                long base = p.mmap(MmapOptions.DEFAULT.withLength(2L * PAGE).sharedFile(memfd.fd(), 0).populate());
                assertThat(p.pagemap(base, 2)).extracting(e -> e.present()).containsExactly(true, true);
                Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(
                        Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP | Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM));
                AddrRange range = new AddrRange(base, 2L * PAGE);
                uffd.register(range, Linux.UFFDIO_REGISTER_MODE_WP);
                uffd.writeProtect(range, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
                assertThat(p.read(base, PAGE).data()).as("reads do not fault").isEqualTo(old);

                List<UffdMessage.PageFault> faults = new CopyOnWriteArrayList<>();
                byte[] update = ("wp through " + setup).getBytes(StandardCharsets.UTF_8);
                try (HandlerLoop loop = uffd.handle(ctx -> {
                    faults.add(ctx.message());
                    ctx.writeUnprotect();
                }, HandlerOptions.DEFAULT)) {
                    CompletableFuture<AccessResult> write = p.async().write(base + 300, update);
                    assertThat(write.get(30, TimeUnit.SECONDS).ok()).isTrue();
                    assertThat(loop.stats().faults()).isEqualTo(1);
                }
                assertThat(faults).singleElement().satisfies(f -> {
                    assertThat(f.address() & -PAGE).isEqualTo(base);
                    assertThat(f.write()).isTrue();
                    assertThat(f.wp()).isTrue();
                });
                byte[] expected = old.clone();
                System.arraycopy(update, 0, expected, 300, update.length);
                assertThat(memfd.pread(0, PAGE)).as("the page cache has the write").isEqualTo(expected);
                assertThat(p.pagemap(base, 2)).extracting(e -> e.uffdWp()).as("only the written page lost WP")
                        .containsExactly(false, true);
            } finally {
                p.exit();
            }
        }
    }

    /**
     * A USER access to a page of a memfd mapping that is not mapped yet makes the linux backend ask the file's size
     * (is the page beyond EOF, i.e. SIGBUS?). /proc/self/map_files/<vma> needs CAP_CHECKPOINT_RESTORE or
     * CAP_SYS_ADMIN, which the compose and Helm settings do not grant (Docker 20.10 does not even know the first):
     * the backend then stats an open fd of the same inode. Before that fallback this read failed with EIO.
     */
    @ParameterizedTest
    @ValueSource(strings = {"compose", "helm"})
    void notYetMappedMemfdPageIsReadable(String setup) throws Exception {
        try (UffdemuClient client = UffdemuClient.connect("127.0.0.1", grpcPort(setup))) {
            Process p = client.createProcess("native-map-files-" + setup);
            try (Memfd memfd = p.memfdCreate("native-map-files", Linux.MFD_CLOEXEC)) {
                memfd.ftruncate(PAGE);
                assertThat(memfd.pwrite(0, pattern(0))).isEqualTo(PAGE);
                long base = memfd.mmap(PAGE, 0);
                assertThat(p.read(base, PAGE).data()).isEqualTo(pattern(0));
            } finally {
                p.exit();
            }
        }
    }

    /**
     * The compose settings without CAP_SYS_PTRACE, without /dev/userfaultfd and with Docker's default seccomp
     * profile: the server starts, but the backend is unavailable with the reason and gRPC health is NOT_SERVING.
     */
    @Test
    void withoutTheGrantsTheBackendIsUnavailableWithTheReason() throws Exception {
        ToStringConsumer logs = new ToStringConsumer();
        int grpc = freePort();
        try (GenericContainer<?> bare = new GenericContainer<>(IMAGE_TAG)
                .withNetworkMode("host")
                .withEnv("UFFDEMU_BACKEND", "linux")
                .withTmpFs(Map.of("/tmp", ""))
                .withCreateContainerCmdModifier(cmd -> {
                    cmd.withUser("0:0");
                    cmd.getHostConfig().withCapDrop(Capability.ALL).withReadonlyRootfs(true)
                            .withSecurityOpts(List.of("no-new-privileges:true"));
                })
                .withCommand("--server.port=" + freePort(), "--spring.grpc.server.port=" + grpc)
                .withLogConsumer(logs)
                .waitingFor(Wait.forLogMessage(".*Started UffdemuServerApplication.*\\n", 1)
                        .withStartupTimeout(Duration.ofSeconds(120)))) {
            bare.start();
            Map<String, String> status = procStatus(DockerClientFactory.instance().client()
                    .inspectContainerCmd(bare.getContainerId()).exec().getState().getPidLong());
            assertThat(status.get("CapEff")).isEqualTo("0000000000000000");
            assertThat(status.get("Seccomp")).as("Docker's default profile").isEqualTo("2");

            awaitStatus(grpc, ServingStatus.NOT_SERVING, logs::toUtf8String);
            try (UffdemuClient client = UffdemuClient.connect("127.0.0.1", grpc)) {
                BackendInfo backend = client.backend();
                assertThat(backend.name()).isEqualTo("linux");
                assertThat(backend.available()).isFalse();
                assertThat(backend.unavailableReason()).contains("userfaultfd(2): EPERM", "/dev/userfaultfd: open: ENOENT");
            }
            assertThat(logs.toUtf8String()).contains("uffdemu.backend=linux but it cannot run");
        }
    }

    private static int grpcPort(String setup) {
        return switch (setup) {
            case "compose" -> composeGrpc;
            case "helm" -> helmGrpc;
            default -> throw new IllegalArgumentException(setup);
        };
    }

    /** A page whose bytes depend on its offset, so a wrong page or offset shows. */
    private static byte[] pattern(long offset) {
        byte[] page = new byte[PAGE];
        for (int i = 0; i < PAGE; i++) {
            page[i] = (byte) (i * 7 + offset / PAGE * 13 + 1);
        }
        return page;
    }

    /**
     * The chart's native pod, as Docker settings: the container securityContext (falling back to the pod's for user
     * and group) and an emptyDir per mount (tmpfs). Keys it cannot translate fail the render, so a privilege the
     * chart adds later is not silently left out of the test.
     */
    record HelmNative(Map<String, String> env, String user, List<String> capAdd, List<String> capDrop,
            String seccomp, boolean readOnly, boolean noNewPrivileges, boolean privileged, List<String> tmpfs) {

        private static final Set<String> KNOWN = Set.of("runAsUser", "runAsGroup", "runAsNonRoot",
                "readOnlyRootFilesystem", "allowPrivilegeEscalation", "privileged", "capabilities", "seccompProfile");

        static HelmNative render() {
            String yaml = new Helm(RepoFiles.path("helm/uffdemu")).template().withName("it").withKubeVersion("1.32.0")
                    .set("auth.allowUnauthenticated", true).set("backend.native.enabled", true).call();
            Map<String, Object> pod = RepoFiles.loadAll(yaml).stream().filter(d -> "Deployment".equals(d.get("kind")))
                    .findFirst().map(d -> RepoFiles.<Map<String, Object>>at(d, "spec", "template", "spec")).orElseThrow();
            Map<String, Object> container = RepoFiles.at(pod, "containers", 0);
            Map<String, Object> podSc = RepoFiles.at(pod, "securityContext");
            Map<String, Object> sc = RepoFiles.at(container, "securityContext");
            assertThat(sc.keySet()).as("securityContext keys this test translates").isSubsetOf(KNOWN);

            Map<String, String> env = new HashMap<>();
            for (Map<String, Object> e : RepoFiles.<List<Map<String, Object>>>at(container, "env")) {
                if (e.get("value") != null) {
                    env.put((String) e.get("name"), e.get("value").toString());
                }
            }
            Object uid = sc.getOrDefault("runAsUser", podSc.get("runAsUser"));
            Object gid = sc.getOrDefault("runAsGroup", podSc.get("runAsGroup"));
            assertThat(sc.get("runAsNonRoot")).isEqualTo(false);
            String seccompType = RepoFiles.at(sc, "seccompProfile", "type");
            String seccomp = switch (seccompType) {
                case "Unconfined" -> "seccomp=unconfined";
                case "RuntimeDefault" -> null;
                default -> throw new AssertionError("seccompProfile " + seccompType + " is not translated");
            };
            Map<String, Object> volumes = new HashMap<>();
            for (Map<String, Object> v : RepoFiles.<List<Map<String, Object>>>at(pod, "volumes")) {
                volumes.put((String) v.get("name"), v);
            }
            List<String> tmpfs = new ArrayList<>();
            for (Map<String, Object> m : RepoFiles.<List<Map<String, Object>>>at(container, "volumeMounts")) {
                Map<String, Object> v = RepoFiles.at(volumes, m.get("name"));
                if (v.containsKey("emptyDir")) {
                    tmpfs.add((String) m.get("mountPath"));
                }
            }
            return new HelmNative(env, uid + ":" + gid,
                    RepoFiles.<List<String>>at(sc, "capabilities", "add"),
                    RepoFiles.<List<String>>at(sc, "capabilities", "drop"), seccomp,
                    Boolean.TRUE.equals(sc.get("readOnlyRootFilesystem")),
                    Boolean.FALSE.equals(sc.get("allowPrivilegeEscalation")),
                    Boolean.TRUE.equals(sc.get("privileged")), tmpfs);
        }

        GenericContainer<?> applyTo(GenericContainer<?> c) {
            assertThat(env).containsEntry("UFFDEMU_BACKEND", "linux");
            assertThat(privileged).isFalse();
            assertThat(tmpfs).contains("/tmp");
            List<String> opts = new ArrayList<>();
            if (noNewPrivileges) {
                opts.add("no-new-privileges:true");
            }
            if (seccomp != null) {
                opts.add(seccomp);
            }
            Map<String, String> mounts = new HashMap<>();
            tmpfs.forEach(t -> mounts.put(t, ""));
            return c.withEnv("UFFDEMU_BACKEND", env.get("UFFDEMU_BACKEND"))
                    .withTmpFs(mounts)
                    .withCreateContainerCmdModifier(cmd -> {
                        cmd.withUser(user);
                        cmd.getHostConfig()
                                .withCapDrop(capDrop.stream().map(Capability::valueOf).toArray(Capability[]::new))
                                .withCapAdd(capAdd.stream().map(Capability::valueOf).toArray(Capability[]::new))
                                .withReadonlyRootfs(readOnly).withPrivileged(privileged).withSecurityOpts(opts);
                    });
        }
    }

    private static Commands.Result compose(String... args) throws Exception {
        String[] all = new String[args.length + 6];
        System.arraycopy(new String[] {"-p", PROJECT, "-f", "docker-compose.yml", "--profile", "native"}, 0, all, 0, 6);
        System.arraycopy(args, 0, all, 6, args.length);
        return Commands.run(composeEnv, 90, compose, all);
    }

    private static String composeLogs() {
        try {
            return compose("logs", "--no-color", SERVICE).output();
        } catch (Exception e) {
            return "(no logs: " + e + ")";
        }
    }

    /**
     * Waits for the actuator's health (computed on request, backend included) to be UP, then for gRPC health SERVING.
     * gRPC health alone is not enough: it is refreshed from the actuator every 2 s and says SERVING before the first
     * refresh, even when the backend is down.
     */
    private static void awaitHealthy(int httpPort, int grpcPort, Supplier<String> logs) throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        HttpRequest health = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + "/actuator/health"))
                .timeout(Duration.ofSeconds(5)).build();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        String body = "no answer";
        int code = 0;
        while (System.nanoTime() < deadline && code != 200) {
            try {
                HttpResponse<String> r = http.send(health, HttpResponse.BodyHandlers.ofString());
                code = r.statusCode();
                body = r.body();
            } catch (IOException notYet) {
                body = notYet.toString();
            }
            if (code != 200) {
                if (body.contains("\"backend\":{\"details\":{\"reason\"")) {
                    break; // the backend is DOWN (for good: it is probed once), and the body says why
                }
                Thread.sleep(500);
            }
        }
        assertThat(code).as("/actuator/health on 127.0.0.1:%d: %s%ncontainer log:%n%s", httpPort, body, logs.get())
                .isEqualTo(200);
        assertThat(body).contains("\"backend\":{\"details\":{\"backend\":\"linux\"");
        awaitStatus(grpcPort, ServingStatus.SERVING, logs);
    }

    /** Polls grpc.health.v1 over 127.0.0.1 until it reports {@code want}; the container's log on failure. */
    private static void awaitStatus(int port, ServingStatus want, Supplier<String> logs) throws InterruptedException {
        String last = GrpcHealth.await(port, want, 120);
        if (!last.equals(want.name())) {
            throw new AssertionError("gRPC health on 127.0.0.1:" + port + " did not become " + want
                    + " in 120 s (last: " + last + "); container log:\n" + logs.get());
        }
    }

    /** The host's view of a container process: /proc/PID/status as key to value. */
    private static Map<String, String> procStatus(long pid) throws IOException {
        Map<String, String> status = new HashMap<>();
        for (String line : Files.readAllLines(Path.of("/proc", String.valueOf(pid), "status"))) {
            int colon = line.indexOf(':');
            if (colon > 0) {
                status.put(line.substring(0, colon), line.substring(colon + 1).strip());
            }
        }
        return status;
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            socket.setReuseAddress(true);
            return socket.getLocalPort();
        }
    }
}
