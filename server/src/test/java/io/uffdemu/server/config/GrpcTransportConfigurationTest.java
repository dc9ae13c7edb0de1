package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.netty.NettyServerBuilder;
import java.lang.reflect.Field;
import org.junit.jupiter.api.Test;
import org.springframework.util.unit.DataSize;

class GrpcTransportConfigurationTest {
    private static int windowOf(NettyServerBuilder b) throws ReflectiveOperationException {
        // grpc-java keeps no getter for it; the field is what NettyServer is built from
        Field f = NettyServerBuilder.class.getDeclaredField("flowControlWindow");
        f.setAccessible(true);
        return f.getInt(b);
    }

    @Test
    void theConfiguredWindowReachesTheNettyServerBuilder() throws ReflectiveOperationException {
        NettyServerBuilder b = NettyServerBuilder.forPort(0);
        new GrpcTransportConfiguration().uffdemuFlowControlWindow(DataSize.ofMegabytes(16)).customize(b);
        assertThat(windowOf(b)).isEqualTo(16 << 20);
    }

    @Test
    void theDefaultIsGrpcsOwn() throws ReflectiveOperationException {
        NettyServerBuilder b = NettyServerBuilder.forPort(0);
        int grpcDefault = windowOf(b);
        new GrpcTransportConfiguration().uffdemuFlowControlWindow(DataSize.parse("1MB")).customize(b);
        assertThat(windowOf(b)).isEqualTo(grpcDefault).isEqualTo(1 << 20);
    }

    @Test
    void windowsHttp2CannotCarryStopTheServerWithTheirName() {
        assertThatThrownBy(() -> GrpcTransportConfiguration.checkedWindow(DataSize.ofKilobytes(16)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("uffdemu.grpc.flow-control-window");
        assertThatThrownBy(() -> GrpcTransportConfiguration.checkedWindow(DataSize.ofGigabytes(2)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("uffdemu.grpc.flow-control-window");
        assertThat(GrpcTransportConfiguration.checkedWindow(DataSize.ofBytes(65_535))).isEqualTo(65_535);
    }
}
