package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.uffdemu.api.v1.GetBackendRequest;
import io.uffdemu.api.v1.SystemServiceGrpc;
import io.uffdemu.server.backend.linux.LinuxAvailability;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * The same API driving the real kernel: the WP round trip of {@link FirstFaultRoundTripIT} through the server
 * with {@code uffdemu.backend=linux}. Skips (with the reason) where the native backend cannot run.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"spring.grpc.server.port=0", "uffdemu.backend=linux"})
class LinuxBackendGrpcIT extends FirstFaultRoundTripIT {
    @LocalGrpcServerPort
    int linuxPort;

    @BeforeAll
    static void needsTheNativeBackend() {
        Assumptions.assumeTrue(LinuxAvailability.isAvailable(), () -> "native backend unavailable: "
                + LinuxAvailability.reason());
    }

    @Test
    @Timeout(30)
    void serverReportsTheLinuxBackend() throws InterruptedException {
        ManagedChannel c = Grpc.newChannelBuilderForAddress("127.0.0.1", linuxPort, InsecureChannelCredentials.create())
                .build();
        try {
            var info = SystemServiceGrpc.newBlockingStub(c).getBackend(GetBackendRequest.getDefaultInstance());
            assertThat(info.getName()).isEqualTo("linux");
            assertThat(info.getAvailable()).isTrue();
            assertThat(info.getFeatures()).isEqualTo(0x1ffffL);
        } finally {
            c.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }
}
