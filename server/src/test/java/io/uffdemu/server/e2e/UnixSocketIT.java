package io.uffdemu.server.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.BatchFaultHandler;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.StormOptions;
import io.uffdemu.client.StormResult;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The server on a Unix domain socket ({@code spring.grpc.server.netty.domain-socket-path}, no TCP address or
 * port) and the SDK on {@code unix://} targets: a same-host handler with no network listener. No token and no
 * {@code uffdemu.auth.allow-unauthenticated}: a domain socket counts as local, like loopback (the context would
 * not start otherwise).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"spring.grpc.server.address=", "spring.grpc.server.port=", "uffdemu.handler.grace-period=3s"})
@ExtendWith(OutputCaptureExtension.class)
class UnixSocketIT {
    static final int PAGE = 4096;
    static final Path SOCKET;

    static {
        try {
            // under /tmp, not java.io.tmpdir: a socket path holds at most 107 bytes
            Path dir = Files.createTempDirectory(Path.of("/tmp"), "uffdemu-uds-it");
            dir.toFile().deleteOnExit(); // after the server (a shutdown hook) has removed its socket
            SOCKET = dir.resolve("grpc.sock");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @DynamicPropertySource
    static void socket(DynamicPropertyRegistry r) {
        r.add("spring.grpc.server.netty.domain-socket-path", SOCKET::toString);
    }

    private static UffdemuClient client() {
        return UffdemuClient.connect(ClientConfig.DEFAULT.withTarget("unix://" + SOCKET)
                .withDeadline(Duration.ofSeconds(20)));
    }

    @Test
    @Timeout(60)
    void missingFaultsAreServedByAHandlerOnTheSocket(CapturedOutput output) {
        assertThat(Files.exists(SOCKET) && !Files.isRegularFile(SOCKET) && !Files.isDirectory(SOCKET))
                .as("the socket file exists").isTrue();
        try (UffdemuClient client = client()) {
            Process p = client.createProcess("uds");
            long len = 64L * PAGE;
            long addr = p.mmap(MmapOptions.anonymous(len));
            Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
            uffd.register(new AddrRange(addr, len), Linux.UFFDIO_REGISTER_MODE_MISSING);
            // batching and resolutions on the stream: the remote bench's configuration
            BatchFaultHandler h = ctx -> {
                byte[] page = new byte[(int) ctx.pageSize()];
                Arrays.fill(page, (byte) (1 + (ctx.pageAddress() - addr) / PAGE));
                ctx.copy(page);
            };
            try (HandlerLoop loop = uffd.handle(h, HandlerOptions.DEFAULT.withMaxBatch(64).withResolveOnStream(true))) {
                StormResult r = p.storm(StormOptions.reads(addr, len, 8));
                assertThat(r.failed()).isZero();
                for (int i = 0; i < 64; i++) {
                    assertThat(p.read(addr + (long) i * PAGE, PAGE).data()).containsOnly((byte) (1 + i));
                }
                assertThat(loop.stats().faults()).isEqualTo(64);
            }
        }
        // gRPC's server sets SO_KEEPALIVE on every accepted channel; a Unix socket has none, and Netty's
        // ServerBootstrap warned for each connection (the client's Bootstrap still does here: these tests run the SDK
        // on unshaded grpc-netty, and the SDK takes the option back on grpc-netty-shaded's builder, its own)
        assertThat(output.getAll()).as("the log").contains("Started UnixSocketIT");
        assertThat(output.getAll().lines().filter(l -> l.contains("ServerBootstrap")))
                .as("the server's warnings").noneMatch(l -> l.contains("Unknown channel option"));
    }
}
