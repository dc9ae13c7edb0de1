package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * {@code uffdemu.grpc.flow-control-window} reaches the wire: the server's first HTTP/2 SETTINGS frame announces it
 * as INITIAL_WINDOW_SIZE (grpc-netty's frame log, at DEBUG only while this test's connection is made).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0", "uffdemu.grpc.flow-control-window=16MB"})
class FlowControlWindowIT {
    @LocalGrpcServerPort
    int port;

    @Test
    void theServerAnnouncesTheConfiguredWindow() throws InterruptedException {
        Logger frames = (Logger) LoggerFactory.getLogger("io.grpc.netty.NettyServerHandler");
        Level before = frames.getLevel();
        ListAppender<ILoggingEvent> seen = new ListAppender<>();
        seen.start();
        frames.addAppender(seen);
        frames.setLevel(Level.DEBUG);
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create())
                .build();
        try {
            HealthGrpc.newBlockingStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance());
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            frames.setLevel(before);
            frames.detachAppender(seen);
        }
        assertThat(seen.list).map(ILoggingEvent::getFormattedMessage)
                .anySatisfy(m -> assertThat(m).contains("OUTBOUND SETTINGS").contains("INITIAL_WINDOW_SIZE=16777216"));
    }
}
