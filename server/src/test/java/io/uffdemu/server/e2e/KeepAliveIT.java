package io.uffdemu.server.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Found with {@code uffdemu watch}: a Handle stream that stays idle for about a minute is killed when the client
 * uses the SDK's default keep-alive (30 s). The server keeps grpc-java's default permitKeepAliveTime (5 min), so
 * the second early ping is a strike-out: GOAWAY ENHANCE_YOUR_CALM "too_many_pings", the loop terminates with
 * RESOURCE_EXHAUSTED, and faults it had taken are lost with the connection. A client pinging every 5 min is
 * left alone. (Either the server should permit the SDK's keep-alive or the SDK default should be >= 5 min.)
 */
class KeepAliveIT extends E2eBase {

    record Handler(UffdemuClient client, Process process, long addr, HandlerLoop loop) {}

    private Handler idleHandler(Duration keepAlive) {
        UffdemuClient c = UffdemuClient.connect(ClientConfig.DEFAULT.withTarget("127.0.0.1:" + port)
                .withKeepAlive(keepAlive));
        Process p = c.createProcess("keepalive");
        long a = p.mmap(MmapOptions.anonymous(4096));
        Userfaultfd u = p.userfaultfd(UffdOptions.DEFAULT);
        u.register(new AddrRange(a, 4096), Linux.UFFDIO_REGISTER_MODE_MISSING);
        return new Handler(c, p, a, u.handle(ctx -> ctx.zeropage(), HandlerOptions.DEFAULT));
    }

    @Test
    @Timeout(200)
    void anIdleHandleStreamDiesWithTheSdkDefaultKeepAliveButNotWithFiveMinutes() throws Exception {
        Handler sdkDefault = idleHandler(ClientConfig.DEFAULT.keepAlive());
        Handler fiveMinutes = idleHandler(Duration.ofMinutes(5));
        try {
            assertThat(sdkDefault.loop().awaitTermination(Duration.ofSeconds(150))).as("default keep-alive").isTrue();
            assertThat(sdkDefault.loop().termination()).isCompletedExceptionally();
            Throwable t = sdkDefault.loop().termination().handle((v, e) -> e).join();
            assertThat(t).hasMessageContaining("too_many_pings");

            assertThat(fiveMinutes.loop().isClosed()).isFalse();
            assertThat(fiveMinutes.process().async().read(fiveMinutes.addr(), 8).get(10, TimeUnit.SECONDS).ok())
                    .isTrue();
        } finally {
            sdkDefault.client().close();
            fiveMinutes.client().close();
        }
    }
}
