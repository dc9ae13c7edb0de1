package io.uffdemu.server.config;

import io.grpc.netty.NettyServerBuilder;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.grpc.server.ServerBuilderCustomizer;
import org.springframework.util.unit.DataSize;

/**
 * The gRPC server's HTTP/2 flow-control window ({@code uffdemu.grpc.flow-control-window}, per stream and per
 * connection): how many bytes a client may send before the server has taken them. gRPC's default (1 MiB) makes a
 * client that COPYs 2 MiB huge pages wait for window updates several times per page; 16 MiB served about 20 %
 * more hugetlb MISSING faults per second over loopback in interleaved runs (docs/benchmarks.md, item 18). A larger
 * window also lets each connection buffer that much unread data in the server, so the default stays gRPC's.
 */
@Configuration(proxyBeanMethods = false)
public class GrpcTransportConfiguration {
    /** HTTP/2's smallest initial window (RFC 9113, 6.9.2). */
    static final long MIN_WINDOW = 65_535;

    @Bean
    ServerBuilderCustomizer<NettyServerBuilder> uffdemuFlowControlWindow(
            @Value("${uffdemu.grpc.flow-control-window:1MB}") DataSize window) {
        int w = checkedWindow(window);
        return b -> b.flowControlWindow(w);
    }

    static int checkedWindow(DataSize window) {
        long bytes = window.toBytes();
        if (bytes < MIN_WINDOW || bytes > Integer.MAX_VALUE) {
            throw new IllegalStateException("uffdemu.grpc.flow-control-window must be between 65535 bytes and 2GB "
                    + "less one byte (HTTP/2), not " + window);
        }
        return (int) bytes;
    }
}
