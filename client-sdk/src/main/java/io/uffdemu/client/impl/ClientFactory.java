package io.uffdemu.client.impl;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ForwardingClientCall;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.TlsChannelCredentials;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.UffdemuException;
import java.io.IOException;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * Internal: builds clients for {@link UffdemuClient#connect} and {@link UffdemuClient#create}. Public only
 * because Java packages are not nested; not an API.
 */
public final class ClientFactory {
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private ClientFactory() {}

  public static UffdemuClient connect(ClientConfig config) {
    ManagedChannel channel = channel(config);
    return new ClientImpl(intercept(channel, config), channel, config);
  }

  /**
   * A channel as {@link #connect} makes it (target, TLS, keep-alive, message size), without the bearer token
   * (which {@link #create} adds): for callers that must own the transport, e.g. to kill it abruptly.
   */
  public static ManagedChannel channel(ClientConfig config) {
    Objects.requireNonNull(config, "config");
    ManagedChannelBuilder<?> b = Grpc.newChannelBuilder(config.target(), credentials(config));
    if (config.keepAlive() != null && !config.keepAlive().isZero()) {
      b.keepAliveTime(config.keepAlive().toNanos(), TimeUnit.NANOSECONDS).keepAliveWithoutCalls(false);
    }
    b.maxInboundMessageSize(64 << 20);
    if (config.target().startsWith("unix:") && b.getClass().getName().equals(ShadedNetty.CHANNEL_BUILDER)) {
      ShadedNetty.withoutKeepAlive(b);
    }
    return b.build();
  }

  /**
   * grpc-netty-shaded, the SDK's transport, touched only when the builder is its: an application may exclude it
   * and bring grpc-netty instead, and then these classes are absent.
   */
  private static final class ShadedNetty {
    static final String CHANNEL_BUILDER = "io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder";

    /**
     * gRPC sets SO_KEEPALIVE on every channel it connects; a Unix socket has no such option, and Netty logged
     * "Unknown channel option 'SO_KEEPALIVE'" as a warning for each connection. A null value removes the option.
     */
    static void withoutKeepAlive(ManagedChannelBuilder<?> b) {
      ((io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder) b)
          .withOption(io.grpc.netty.shaded.io.netty.channel.ChannelOption.SO_KEEPALIVE, null);
    }
  }

  public static UffdemuClient create(Channel channel, ClientConfig config) {
    Objects.requireNonNull(channel, "channel");
    Objects.requireNonNull(config, "config");
    return new ClientImpl(intercept(channel, config), null, channel, config);
  }

  private static ChannelCredentials credentials(ClientConfig config) {
    if (!config.tls()) {
      return InsecureChannelCredentials.create();
    }
    try {
      TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder();
      if (config.trustCertFile() != null) {
        tls.trustManager(config.trustCertFile().toFile());
      }
      if (config.clientCertFile() != null && config.clientKeyFile() != null) {
        tls.keyManager(config.clientCertFile().toFile(), config.clientKeyFile().toFile());
      }
      return tls.build();
    } catch (IOException e) {
      throw new UffdemuException("cannot read TLS material: " + e.getMessage(), "UNKNOWN", e);
    }
  }

  private static Channel intercept(Channel channel, ClientConfig config) {
    String token = config.bearerToken();
    if (token == null || token.isBlank()) {
      return channel;
    }
    ClientInterceptor bearer = new ClientInterceptor() {
      @Override
      public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
        return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
          @Override
          public void start(Listener<R> listener, Metadata headers) {
            headers.put(AUTHORIZATION, "Bearer " + token);
            super.start(listener, headers);
          }
        };
      }
    };
    return ClientInterceptors.intercept(channel, bearer);
  }
}
