package io.uffdemu.server.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.Credentials;
import io.uffdemu.client.ProcessInfo;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.UffdemuException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * mTLS tenants on loopback, with certificates made by the {@code openssl} CLI for this run: a client certificate
 * issued by the configured client CA names its tenant (subject CN, mapped); no certificate, a certificate from
 * another CA, or an unmapped identity is UNAUTHENTICATED; bearer tokens keep working over the same TLS port.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0",
        "spring.grpc.server.ssl.bundle=uffdemu-test",
        "spring.grpc.server.ssl.client-auth=optional",
        // the TLS layer accepts any client certificate; AuthInterceptor verifies it against the client CA and
        // answers UNAUTHENTICATED instead of a bare handshake failure
        "spring.grpc.server.ssl.secure=false",
        "uffdemu.auth.tokens[0]=bob:" + TenancyIT.BOB_HASH,
        "uffdemu.auth.mtls.enabled=true",
        "uffdemu.auth.mtls.tenant-from=cn",
        "uffdemu.auth.mtls.tenants[0]=alice-workload=alice",
        "uffdemu.auth.mtls.tenants[1]=carol-workload=carol"})
class MtlsIT {
    static final Path DIR;

    static {
        try {
            DIR = Files.createTempDirectory("uffdemu-mtls");
            ca("ca");
            ca("rogue-ca");
            leaf("server", "ca", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
            leaf("alice", "ca", "alice-workload", "extendedKeyUsage=clientAuth");
            leaf("carol", "ca", "carol-workload", "extendedKeyUsage=clientAuth");
            leaf("mallory", "ca", "mallory-workload", "extendedKeyUsage=clientAuth");
            leaf("forged", "rogue-ca", "alice-workload", "extendedKeyUsage=clientAuth");
        } catch (IOException | InterruptedException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    static void openssl(String... args) throws IOException, InterruptedException {
        List<String> cmd = new java.util.ArrayList<>(List.of("openssl"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(DIR.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("openssl " + String.join(" ", args) + " failed: " + out);
        }
    }

    static void ca(String name) throws IOException, InterruptedException {
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=" + name);
    }

    static void leaf(String name, String ca, String cn, String ext) throws IOException, InterruptedException {
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
                "-out", name + ".csr", "-subj", "/O=uffdemu-test/CN=" + cn);
        Files.writeString(DIR.resolve(name + ".ext"), ext + "\n");
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial",
                "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext");
    }

    @DynamicPropertySource
    static void tls(DynamicPropertyRegistry r) {
        r.add("spring.ssl.bundle.pem.uffdemu-test.keystore.certificate", () -> "file:" + DIR.resolve("server.pem"));
        r.add("spring.ssl.bundle.pem.uffdemu-test.keystore.private-key", () -> "file:" + DIR.resolve("server.key"));
        r.add("uffdemu.auth.mtls.client-ca", () -> DIR.resolve("ca.pem").toString());
    }

    @LocalGrpcServerPort
    int port;

    UffdemuClient connect(String cert, String token) {
        ClientConfig c = ClientConfig.DEFAULT.withTarget("localhost:" + port).withDeadline(Duration.ofSeconds(10))
                .withRetryAttempts(1);
        c = c.withTls(DIR.resolve("ca.pem"), null, null);
        if (cert != null) {
            c = c.withClientCertificate(DIR.resolve(cert + ".pem"), DIR.resolve(cert + ".key"));
        }
        return token == null ? UffdemuClient.connect(c) : UffdemuClient.connect(c.withBearerToken(token));
    }

    static void assertUnauthenticated(UffdemuClient client) {
        assertThatThrownBy(() -> client.createProcess("x", Credentials.user(1000)))
                .isInstanceOfSatisfying(UffdemuException.class,
                        e -> assertThat(e.grpcCode()).isEqualTo("UNAUTHENTICATED"));
    }

    @Test
    @Timeout(60)
    void certificateNamesTheTenantAndTokensStillWork() {
        try (UffdemuClient alice = connect("alice", null); UffdemuClient alice2 = connect("alice", null);
                UffdemuClient carol = connect("carol", null); UffdemuClient bob = connect(null, "bob-token")) {
            int pid = alice.createProcess("a", Credentials.user(1000)).pid();
            // a second connection with the same certificate is the same tenant; others do not see the process
            assertThat(alice2.processes()).extracting(ProcessInfo::pid).contains(pid);
            assertThat(carol.processes()).extracting(ProcessInfo::pid).doesNotContain(pid);
            assertThat(bob.processes()).extracting(ProcessInfo::pid).doesNotContain(pid);
            int bobPid = bob.createProcess("b", Credentials.user(1000)).pid();
            assertThat(alice.processes()).extracting(ProcessInfo::pid).doesNotContain(bobPid);
        }
    }

    @Test
    @Timeout(60)
    void noCertificateForeignCaOrUnmappedIdentityIsUnauthenticated() {
        try (UffdemuClient none = connect(null, null); UffdemuClient forged = connect("forged", null);
                UffdemuClient mallory = connect("mallory", null); UffdemuClient mixed = connect("alice", "bob-token")) {
            assertUnauthenticated(none);
            assertUnauthenticated(forged); // same CN as alice, issued by another CA
            assertUnauthenticated(mallory); // right CA, identity not mapped to a tenant
            assertUnauthenticated(mixed); // token and certificate name different tenants
        }
    }
}
