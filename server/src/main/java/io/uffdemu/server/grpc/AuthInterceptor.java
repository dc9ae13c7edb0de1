package io.uffdemu.server.grpc;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.uffdemu.server.config.GrpcTransportConfiguration;
import io.uffdemu.server.config.UffdemuProperties;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.core.annotation.Order;
import org.springframework.grpc.server.GlobalServerInterceptor;
import org.springframework.stereotype.Component;

/**
 * Bearer-token authentication: {@code authorization: Bearer <token>} is hashed (SHA-256) and looked up among
 * the configured hashes ({@code uffdemu.auth.tokens}, {@code uffdemu.auth.tokens-file}); the match names the
 * tenant of the call. With {@code uffdemu.auth.mtls.enabled} a verified client certificate names it too
 * ({@link ClientCertificates}). With no tokens configured authentication is off, which the server allows only when
 * bound to loopback or to a Unix domain socket ({@code spring.grpc.server.netty.domain-socket-path}: reachable from this
 * host only, by whoever may write the socket file), or with {@code uffdemu.auth.allow-unauthenticated=true}; it says
 * so at start.
 * Health and reflection stay open.
 */
@Component
@GlobalServerInterceptor
@Order(0)
public class AuthInterceptor implements ServerInterceptor {
    private static final Logger log = LoggerFactory.getLogger(AuthInterceptor.class);
    static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization",
            Metadata.ASCII_STRING_MARSHALLER);
    private final Map<String, String> tenantByHash;
    /** Client-certificate tenants, or null when {@code uffdemu.auth.mtls.enabled} is false. */
    private final ClientCertificates certs;

    public AuthInterceptor(UffdemuProperties props, @Value("${spring.grpc.server.address:}") String address,
            GrpcTransportConfiguration.DomainSocket domainSocket,
            @Value("${spring.grpc.server.ssl.bundle:}") String sslBundle) {
        boolean unix = domainSocket.served();
        if (unix && sslBundle != null && !sslBundle.isBlank()) {
            // Spring gRPC builds the domain-socket server without transport credentials: the bundle would be ignored
            throw new IllegalStateException("uffdemu: spring.grpc.server.ssl.bundle is not applied on a Unix domain "
                    + "socket (" + domainSocket.path() + "): serve TLS on TCP, or drop the bundle (the socket file's "
                    + "permissions and bearer tokens guard the socket)");
        }
        this.tenantByHash = load(props.auth());
        UffdemuProperties.Mtls mtls = props.auth().mtls();
        if (mtls != null && mtls.enabled()) {
            if (sslBundle == null || sslBundle.isBlank()) {
                throw new IllegalStateException("uffdemu.auth.mtls.enabled=true needs server TLS: set "
                        + "spring.grpc.server.ssl.bundle (and spring.grpc.server.ssl.client-auth=optional or require)");
            }
            this.certs = new ClientCertificates(mtls);
            log.info("uffdemu: client-certificate authentication on (tenant from {}, {} mapping(s), CA {})",
                    mtls.tenantFrom(), mtls.tenants().size(), mtls.clientCa());
        } else {
            this.certs = null;
        }
        if (tenantByHash.isEmpty() && certs == null) {
            // a Unix domain socket is reachable from this host only, by whoever may write the socket file
            boolean loopback = unix || isLoopback(address);
            if (!loopback && !props.auth().allowUnauthenticated()) {
                throw new IllegalStateException("uffdemu: refusing to serve without authentication on "
                        + (address.isBlank() ? "all interfaces" : address)
                        + ": configure uffdemu.auth.tokens / uffdemu.auth.tokens-file, bind "
                        + "spring.grpc.server.address=127.0.0.1 (or serve on a Unix domain socket: "
                        + "spring.grpc.server.netty.domain-socket-path), or set uffdemu.auth.allow-unauthenticated=true");
            }
            log.warn("uffdemu: authentication is OFF ({}); every caller is tenant '{}'",
                    unix ? "bound to the Unix domain socket " + domainSocket.path()
                            + " (access: the socket file's permissions)"
                            : loopback ? "bound to loopback " + address : "uffdemu.auth.allow-unauthenticated=true",
                    Tenants.DEFAULT);
        } else {
            log.info("uffdemu: bearer-token authentication on, {} token(s)", tenantByHash.size());
        }
    }

    static boolean isLoopback(String address) {
        if (address == null || address.isBlank()) {
            return false;
        }
        try {
            return InetAddress.getByName(address.trim()).isLoopbackAddress();
        } catch (IOException e) {
            return false;
        }
    }

    static Map<String, String> load(UffdemuProperties.Auth auth) {
        Map<String, String> m = new HashMap<>();
        for (String entry : auth.tokens()) {
            put(m, entry, "uffdemu.auth.tokens");
        }
        if (auth.tokensFile() != null) {
            try {
                List<String> lines = Files.readAllLines(auth.tokensFile(), StandardCharsets.UTF_8);
                for (String line : lines) {
                    String l = line.strip();
                    if (!l.isEmpty() && !l.startsWith("#")) {
                        put(m, l, auth.tokensFile().toString());
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read uffdemu.auth.tokens-file " + auth.tokensFile(), e);
            }
        }
        return m;
    }

    private static void put(Map<String, String> m, String entry, String source) {
        int colon = entry.lastIndexOf(':');
        String tenant = colon > 0 ? entry.substring(0, colon).strip() : "";
        String hash = colon > 0 ? entry.substring(colon + 1).strip().toLowerCase() : "";
        if (hash.startsWith("sha256=")) {
            hash = hash.substring(7);
        }
        if (tenant.isEmpty() || !hash.matches("[0-9a-f]{64}")) {
            throw new IllegalArgumentException(source + ": entries must be tenant:<64 hex chars of sha256(token)>");
        }
        m.put(hash, tenant);
    }

    public static String sha256Hex(String token) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(token.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    public boolean enabled() {
        return !tenantByHash.isEmpty() || certs != null;
    }

    /**
     * The tenant of a call: from the bearer token when one is sent (it must be known), else from the client
     * certificate when mTLS is on. A token and a certificate naming different tenants, a certificate that does not
     * verify against the client CA, or neither credential: UNAUTHENTICATED.
     */
    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
            ServerCallHandler<Q, R> next) {
        String service = call.getMethodDescriptor().getServiceName();
        if (!enabled() || service == null || !service.startsWith("uffdemu.")) {
            return next.startCall(call, headers);
        }
        String auth = headers.get(AUTHORIZATION);
        String tokenTenant = null;
        String refusal = null;
        if (auth != null) {
            if (auth.regionMatches(true, 0, "Bearer ", 0, 7)) {
                tokenTenant = tenantByHash.get(sha256Hex(auth.substring(7).strip()));
            }
            if (tokenTenant == null) {
                refusal = "unknown bearer token";
            }
        }
        String certTenant = null;
        if (refusal == null && certs != null) {
            ClientCertificates.Result r = certs.tenantOf(call.getAttributes().get(io.grpc.Grpc.TRANSPORT_ATTR_SSL_SESSION));
            certTenant = r.tenant();
            refusal = r.refusal();
        }
        String tenant = tokenTenant != null ? tokenTenant : certTenant;
        if (refusal == null && tokenTenant != null && certTenant != null && !tokenTenant.equals(certTenant)) {
            refusal = "bearer token and client certificate name different tenants";
        }
        if (refusal == null && tenant == null) {
            refusal = certs == null ? "missing bearer token" : "missing bearer token or client certificate";
        }
        if (refusal != null) {
            call.close(Status.UNAUTHENTICATED.withDescription(refusal), new Metadata());
            return new ServerCall.Listener<>() {
            };
        }
        return Contexts.interceptCall(Context.current().withValue(Tenants.KEY, tenant), call, headers, next);
    }
}
