package io.uffdemu.deploy;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import java.util.concurrent.TimeUnit;

/**
 * gRPC health as the Helm chart's probes ask it: again until it answers what is wanted or the time is up. The
 * server reports its health at start (NOT_SERVING while the application is not ready yet) and then every 2 s.
 */
final class GrpcHealth {
    private GrpcHealth() {
    }

    /**
     * Asks 127.0.0.1:{@code port} every 200 ms until it says {@code want} or {@code seconds} have passed; returns
     * the last answer: the status's name, or the error of a call that failed (the server not listening yet).
     */
    static String await(int port, ServingStatus want, int seconds) throws InterruptedException {
        ManagedChannel channel = Grpc.newChannelBuilderForAddress("127.0.0.1", port,
                InsecureChannelCredentials.create()).build();
        try {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
            while (true) {
                String last;
                try {
                    ServingStatus s = HealthGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                            .check(HealthCheckRequest.getDefaultInstance()).getStatus();
                    if (s == want) {
                        return s.name();
                    }
                    last = s.name();
                } catch (StatusRuntimeException notYet) {
                    last = notYet.getStatus().toString();
                }
                if (System.nanoTime() > until) {
                    return last;
                }
                Thread.sleep(200);
            }
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }
}
