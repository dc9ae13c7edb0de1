package io.uffdemu.client.impl;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.stub.ClientCalls;
import io.uffdemu.api.v1.CreateProcessRequest;
import io.uffdemu.api.v1.ProcessServiceGrpc;
import io.uffdemu.client.ClientConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The SDK's channel to a {@code unix://} target: gRPC sets SO_KEEPALIVE on every channel it connects, a Unix socket
 * has no such option, and (grpc-netty-shaded's) Netty logged "Unknown channel option 'SO_KEEPALIVE'" for each
 * connection unless {@link ClientFactory#channel} takes the option back. The server here is grpc-java's own on a
 * domain socket (epoll: Linux on x86_64 and aarch64), with no services: a call reaching it fails UNIMPLEMENTED.
 */
class UnixSocketChannelTest {
  /** Netty's Bootstrap logs through java.util.logging here (the SDK's tests have no SLF4J binding). */
  private static final Logger BOOTSTRAP = Logger.getLogger("io.grpc.netty.shaded.io.netty.bootstrap");
  private static final String CLIENT_BOOTSTRAP = "io.grpc.netty.shaded.io.netty.bootstrap.Bootstrap:";
  private static final String SERVER_BOOTSTRAP = "io.grpc.netty.shaded.io.netty.bootstrap.ServerBootstrap:";

  @Test
  @Timeout(30)
  void aUnixSocketChannelConnectsWithoutTheKeepAliveWarning() throws Exception {
    assumeTrue(Epoll.isAvailable(), "needs Netty's epoll transport (Linux): " + Epoll.unavailabilityCause());
    Path dir = Files.createTempDirectory(Path.of("/tmp"), "uffdemu-sdk-uds");
    Path socket = dir.resolve("grpc.sock");
    List<String> warnings = new CopyOnWriteArrayList<>();
    Handler capture = new Handler() {
      @Override
      public void publish(LogRecord r) {
        warnings.add(r.getLoggerName() + ": " + r.getMessage());
      }

      @Override
      public void flush() {
      }

      @Override
      public void close() {
      }
    };
    BOOTSTRAP.addHandler(capture);
    EventLoopGroup group = new EpollEventLoopGroup(1);
    Server server = NettyServerBuilder.forAddress(new DomainSocketAddress(socket.toString()))
        .channelType(EpollServerDomainSocketChannel.class).bossEventLoopGroup(group)
        .workerEventLoopGroup(group).build().start();
    // the channel alone (the config's deadline is the client's, not the channel's: the call sets its own)
    ManagedChannel channel = ClientFactory.channel(ClientConfig.DEFAULT.withTarget("unix://" + socket));
    try {
      StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
          () -> ClientCalls.blockingUnaryCall(channel, ProcessServiceGrpc.getCreateMethod(),
              CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS),
              CreateProcessRequest.getDefaultInstance()));
      assertThat(e).as("the call reached the server over the socket").isNotNull();
      assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNIMPLEMENTED);
      // the client's (Bootstrap's); the test server's ServerBootstrap, which keeps gRPC's option, still warns
      assertThat(warnings).as("Netty's warnings").anyMatch(w -> w.startsWith(SERVER_BOOTSTRAP))
          .filteredOn(w -> w.startsWith(CLIENT_BOOTSTRAP)).noneMatch(w -> w.contains("Unknown channel option"));
    } finally {
      BOOTSTRAP.removeHandler(capture);
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      group.shutdownGracefully(0, 1, TimeUnit.SECONDS).await(5, TimeUnit.SECONDS);
      Files.deleteIfExists(socket);
      Files.deleteIfExists(dir);
    }
  }
}
