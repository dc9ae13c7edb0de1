package io.uffdemu.server.e2e;

import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.UffdemuClient;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * End-to-end tests: the public SDK against the real Spring Boot server on a random loopback port (no auth,
 * tenant "default"). The handler grace period is short so the reconnect tests can also see it expire.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"spring.grpc.server.port=0", "uffdemu.handler.grace-period=3s"})
abstract class E2eBase {
    static final int PAGE = 4096;

    @LocalGrpcServerPort
    int port;

    private final List<UffdemuClient> clients = new ArrayList<>();

    /** A fresh client (its own channel) closed after the test. */
    UffdemuClient client() {
        UffdemuClient c = UffdemuClient.connect(ClientConfig.DEFAULT.withTarget("127.0.0.1:" + port)
                .withDeadline(Duration.ofSeconds(20)));
        clients.add(c);
        return c;
    }

    @AfterEach
    void closeClients() {
        clients.forEach(UffdemuClient::close);
        clients.clear();
    }

    static byte[] fill(int len, int b) {
        byte[] d = new byte[len];
        java.util.Arrays.fill(d, (byte) b);
        return d;
    }
}
