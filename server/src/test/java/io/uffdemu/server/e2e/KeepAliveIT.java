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
 * Found with {@code uffdemu watch}: with grpc-java's default permitKeepAliveTime (5 min) the server killed idle
 * Handle streams of clients pinging every 30 s (the SDK default) with GOAWAY "too_many_pings", and the faults
 * they had taken were lost. The server now permits pings every 10 s
 * ({@code spring.grpc.server.keepalive.permit.time}); a handler pinging at that rate survives a long idle spell
 * (two pings too early would strike it out within ~30 s) and still serves faults.
 */
class KeepAliveIT extends E2eBase {

    @Test
    @Timeout(120)
    void anIdleHandleStreamPingingEveryTenSecondsSurvives() throws Exception {
        try (UffdemuClient c = UffdemuClient.connect(ClientConfig.DEFAULT.withTarget("127.0.0.1:" + port)
                .withKeepAlive(Duration.ofSeconds(10)))) {
            Process p = c.createProcess("keepalive");
            long a = p.mmap(MmapOptions.anonymous(4096));
            Userfaultfd u = p.userfaultfd(UffdOptions.DEFAULT);
            u.register(new AddrRange(a, 4096), Linux.UFFDIO_REGISTER_MODE_MISSING);
            try (HandlerLoop loop = u.handle(ctx -> ctx.zeropage(), HandlerOptions.DEFAULT)) {
                Thread.sleep(Duration.ofSeconds(35));
                assertThat(loop.isClosed()).as("idle handler still attached after 35 s of pings").isFalse();
                assertThat(loop.termination()).isNotDone();
                assertThat(p.async().read(a, 8).get(10, TimeUnit.SECONDS).ok()).isTrue();
            }
        }
    }
}
