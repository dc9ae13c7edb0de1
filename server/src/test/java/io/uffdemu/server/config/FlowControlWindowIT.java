package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;

/**
 * {@code uffdemu.grpc.flow-control-window} reaches the wire: the server's first HTTP/2 SETTINGS frame announces it
 * as INITIAL_WINDOW_SIZE (read from grpc-netty's frame log).
 */
@ExtendWith(OutputCaptureExtension.class)
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0", "uffdemu.grpc.flow-control-window=16MB",
        "logging.level.io.grpc.netty.NettyServerHandler=DEBUG"})
class FlowControlWindowIT {
    @LocalGrpcServerPort
    int port;

    @Test
    void theServerAnnouncesTheConfiguredWindow(CapturedOutput out) throws InterruptedException {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create())
                .build();
        try {
            HealthGrpc.newBlockingStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance());
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
        assertThat(out.getAll()).contains("OUTBOUND SETTINGS").contains("INITIAL_WINDOW_SIZE=16777216");
    }
}
