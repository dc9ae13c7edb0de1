package io.uffdemu.deploy;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import java.util.concurrent.TimeUnit;

/**
 * gRPC health as the Helm chart's probes ask it: again until it answers SERVING or the time is up. The server
 * reports its health at start (NOT_SERVING while the application is not ready yet) and then every 2 s.
 */
final class GrpcHealth {
    private GrpcHealth() {
    }

    /** The last status seen on 127.0.0.1:{@code port} within {@code seconds}: SERVING as soon as it says so. */
    static HealthCheckResponse.ServingStatus awaitServing(int port, int seconds) throws InterruptedException {
        ManagedChannel channel = Grpc.newChannelBuilderForAddress("127.0.0.1", port,
                InsecureChannelCredentials.create()).build();
        try {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
            HealthCheckResponse.ServingStatus last;
            while (true) {
                last = HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                        .check(HealthCheckRequest.getDefaultInstance()).getStatus();
                if (last == HealthCheckResponse.ServingStatus.SERVING || System.nanoTime() > until) {
                    return last;
                }
                Thread.sleep(200);
            }
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }
}
