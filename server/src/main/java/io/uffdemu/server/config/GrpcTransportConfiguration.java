package io.uffdemu.server.config;

import io.grpc.netty.NettyServerBuilder;
import io.netty.channel.ChannelOption;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.grpc.server.ServerBuilderCustomizer;
import org.springframework.util.unit.DataSize;

/**
 * The gRPC server's transport settings that uffdemu adds to Spring's.
 *
 * <p>{@code uffdemu.grpc.flow-control-window}: a fixed HTTP/2 flow-control window (per stream and per connection),
 * how many bytes a client may send before the server has taken them. Unset, gRPC's own flow control runs (a 1 MiB
 * initial window that grows with the measured bandwidth-delay product). Handlers that COPY 2 MiB huge pages on a
 * fast same-host link may set a larger fixed window (docs/benchmarks.md, item 18); each connection may then hold
 * that much unread data in the server.
 *
 * <p>{@code spring.grpc.server.netty.domain-socket-path} is checked before Netty binds it: Netty unlinks whatever
 * is at the path and cuts paths longer than {@code sun_path} without a word.
 */
@Configuration(proxyBeanMethods = false)
public class GrpcTransportConfiguration {
    /** HTTP/2's smallest initial window (RFC 9113, 6.9.2). */
    static final long MIN_WINDOW = 65_535;
    /** {@code sizeof(sockaddr_un.sun_path)} on Linux, less the terminating NUL. */
    static final int MAX_SOCKET_PATH_BYTES = 107;

    @Bean
    @ConditionalOnProperty(name = "uffdemu.grpc.flow-control-window")
    ServerBuilderCustomizer<NettyServerBuilder> uffdemuFlowControlWindow(
            @Value("${uffdemu.grpc.flow-control-window}") String window) {
        DataSize size;
        try {
            size = DataSize.parse(window.strip());
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("uffdemu.grpc.flow-control-window is no size (such as 16MB): " + window, e);
        }
        int w = checkedWindow(size);
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

    /**
     * The configured domain socket: {@code path} checked (null: none configured), {@code served} whether the server
     * listens there rather than on TCP.
     */
    public record DomainSocket(Path path, boolean served) {
    }

    /**
     * On a domain socket, takes back the {@code SO_KEEPALIVE} that gRPC's Netty server sets on every accepted
     * channel: a Unix socket has no such option, and Netty logged {@code Unknown channel option 'SO_KEEPALIVE'}
     * as a warning for each connection. (Idle streams are still kept alive by gRPC's HTTP/2 pings.)
     */
    @Bean
    ServerBuilderCustomizer<NettyServerBuilder> uffdemuDomainSocketChannelOptions(DomainSocket socket) {
        return b -> {
            if (socket.served()) {
                b.withChildOption(ChannelOption.SO_KEEPALIVE, null); // a null value removes the option
            }
        };
    }

    /** Refuses a domain socket path Netty would mangle or that names something other than a (stale) socket. */
    @Bean
    DomainSocket uffdemuDomainSocket(@Value("${spring.grpc.server.netty.domain-socket-path:}") String path,
            @Value("${spring.grpc.server.netty.transport:}") String transport) {
        return new DomainSocket(checkedSocketPath(path), servesUnixSocket(path, transport));
    }

    /**
     * Whether the server listens on the domain socket rather than TCP, decided as Spring gRPC decides it: a socket
     * path and a transport that is unset or {@code domain-socket} (with {@code tcp} the path is ignored and TCP is
     * bound).
     */
    static boolean servesUnixSocket(String domainSocket, String transport) {
        if (domainSocket == null || domainSocket.isBlank()) {
            return false;
        }
        String t = transport == null ? ""
                : transport.replace("-", "").replace("_", "").toLowerCase(java.util.Locale.ROOT);
        return t.isEmpty() || t.equals("domainsocket");
    }

    static Path checkedSocketPath(String path) {
        String prop = "spring.grpc.server.netty.domain-socket-path";
        if (path.isBlank()) {
            return null; // not set: TCP
        }
        Path p = Path.of(path);
        if (!p.isAbsolute()) {
            throw new IllegalStateException(prop + " must be an absolute path (clients then name it unix://"
                    + "<the path>), not " + path);
        }
        if (path.getBytes(StandardCharsets.UTF_8).length > MAX_SOCKET_PATH_BYTES) {
            throw new IllegalStateException(prop + " is longer than the " + MAX_SOCKET_PATH_BYTES
                    + " bytes a Unix socket address holds: " + path);
        }
        if (Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
            boolean socket;
            try {
                int mode = (Integer) Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS);
                socket = (mode & 0170000) == 0140000; // S_IFMT, S_IFSOCK
            } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
                socket = false;
            }
            if (!socket) {
                // Netty would unlink it to bind there
                throw new IllegalStateException(prop + " names an existing file that is not a socket: " + path);
            }
        }
        return p;
    }
}
