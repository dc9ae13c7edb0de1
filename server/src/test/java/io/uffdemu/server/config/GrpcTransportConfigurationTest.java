package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.lang.reflect.Field;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;
import org.springframework.util.unit.DataSize;

class GrpcTransportConfigurationTest {
    private final ApplicationContextRunner runner = new ApplicationContextRunner()
            .withUserConfiguration(GrpcTransportConfiguration.class);

    private static Object field(NettyServerBuilder b, String name) throws ReflectiveOperationException {
        // grpc-java keeps no getters for them; the fields are what NettyServer is built from
        Field f = NettyServerBuilder.class.getDeclaredField(name);
        f.setAccessible(true);
        return f.get(b);
    }

    @Test
    void theConfiguredWindowReachesTheNettyServerBuilder() throws ReflectiveOperationException {
        NettyServerBuilder b = NettyServerBuilder.forPort(0);
        new GrpcTransportConfiguration().uffdemuFlowControlWindow("16MB").customize(b);
        assertThat(field(b, "flowControlWindow")).isEqualTo(16 << 20);
        assertThat(field(b, "autoFlowControl")).isEqualTo(false);
    }

    @Test
    void unsetGrpcsOwnFlowControlStays() throws ReflectiveOperationException {
        assertThat(field(NettyServerBuilder.forPort(0), "autoFlowControl")).as("gRPC's default").isEqualTo(true);
        runner.run(ctx -> assertThat(ctx).doesNotHaveBean("uffdemuFlowControlWindow"));
        runner.withPropertyValues("uffdemu.grpc.flow-control-window=16MB")
                .run(ctx -> assertThat(ctx).hasBean("uffdemuFlowControlWindow"));
    }

    @Test
    void windowsHttp2CannotCarryStopTheServerWithTheirName() {
        assertThatThrownBy(() -> GrpcTransportConfiguration.checkedWindow(DataSize.ofKilobytes(16)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("uffdemu.grpc.flow-control-window");
        assertThatThrownBy(() -> GrpcTransportConfiguration.checkedWindow(DataSize.ofGigabytes(2)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("uffdemu.grpc.flow-control-window");
        assertThat(GrpcTransportConfiguration.checkedWindow(DataSize.ofBytes(65_535))).isEqualTo(65_535);
        runner.withPropertyValues("uffdemu.grpc.flow-control-window=1KB")
                .run(ctx -> assertThat(ctx).hasFailed());
        runner.withPropertyValues("uffdemu.grpc.flow-control-window=lots")
                .run(ctx -> assertThat(ctx.getStartupFailure()).hasStackTraceContaining("is no size"));
    }

    @Test
    void aDomainSocketIsServedOnlyWhenSpringBindsIt() {
        assertThat(GrpcTransportConfiguration.servesUnixSocket("/run/uffdemu/grpc.sock", "")).isTrue();
        assertThat(GrpcTransportConfiguration.servesUnixSocket("/run/uffdemu/grpc.sock", null)).isTrue();
        assertThat(GrpcTransportConfiguration.servesUnixSocket("/run/uffdemu/grpc.sock", "domain-socket")).isTrue();
        assertThat(GrpcTransportConfiguration.servesUnixSocket("/run/uffdemu/grpc.sock", "DOMAIN_SOCKET")).isTrue();
        // with transport=tcp Spring ignores the path and binds TCP (all interfaces when no address is given)
        assertThat(GrpcTransportConfiguration.servesUnixSocket("/run/uffdemu/grpc.sock", "tcp")).isFalse();
        assertThat(GrpcTransportConfiguration.servesUnixSocket("/run/uffdemu/grpc.sock", "TCP")).isFalse();
        assertThat(GrpcTransportConfiguration.servesUnixSocket("", "")).isFalse();
        assertThat(GrpcTransportConfiguration.servesUnixSocket(null, "domain-socket")).isFalse();
        String path = "spring.grpc.server.netty.domain-socket-path=/nonexistent-uffdemu-dir/grpc.sock";
        runner.withPropertyValues(path).run(ctx -> assertThat(ctx.getBean(GrpcTransportConfiguration.DomainSocket.class)
                .served()).isTrue());
        runner.withPropertyValues(path, "spring.grpc.server.netty.transport=tcp").run(ctx -> assertThat(
                ctx.getBean(GrpcTransportConfiguration.DomainSocket.class).served()).isFalse());
    }

    @Test
    void aSocketPathNettyWouldMangleOrThatNamesAFileStopsTheServer(@TempDir Path dir) throws IOException {
        String prop = "spring.grpc.server.netty.domain-socket-path";
        assertThatThrownBy(() -> GrpcTransportConfiguration.checkedSocketPath("run/grpc.sock"))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining(prop).hasMessageContaining("absolute");
        assertThatThrownBy(() -> GrpcTransportConfiguration.checkedSocketPath("/" + "d".repeat(120) + "/grpc.sock"))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("107 bytes");
        Path file = Files.writeString(dir.resolve("precious.txt"), "data");
        assertThatThrownBy(() -> GrpcTransportConfiguration.checkedSocketPath(file.toString()))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("not a socket");
        assertThat(file).hasContent("data");
        assertThatThrownBy(() -> GrpcTransportConfiguration.checkedSocketPath(dir.toString()))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("not a socket");
        // a stale socket (left by a killed server) and a free path are fine
        Path stale = dir.resolve("stale.sock");
        try (ServerSocketChannel ch = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.bind(UnixDomainSocketAddress.of(stale));
        }
        assertThat(GrpcTransportConfiguration.checkedSocketPath(stale.toString())).isEqualTo(stale);
        assertThat(GrpcTransportConfiguration.checkedSocketPath(dir.resolve("new.sock").toString()))
                .isEqualTo(dir.resolve("new.sock"));
        assertThat(GrpcTransportConfiguration.checkedSocketPath("")).isNull();
    }
}
