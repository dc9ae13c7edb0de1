package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Which bindings count as local (served without tokens): loopback, or the domain socket Spring really binds. */
class AuthInterceptorTest {
    @Test
    void aDomainSocketCountsOnlyWhenSpringBindsIt() {
        assertThat(AuthInterceptor.servesUnixSocket("/run/uffdemu/grpc.sock", "")).isTrue();
        assertThat(AuthInterceptor.servesUnixSocket("/run/uffdemu/grpc.sock", null)).isTrue();
        assertThat(AuthInterceptor.servesUnixSocket("/run/uffdemu/grpc.sock", "domain-socket")).isTrue();
        assertThat(AuthInterceptor.servesUnixSocket("/run/uffdemu/grpc.sock", "DOMAIN_SOCKET")).isTrue();
        // with transport=tcp Spring ignores the path and binds TCP (all interfaces when no address is given)
        assertThat(AuthInterceptor.servesUnixSocket("/run/uffdemu/grpc.sock", "tcp")).isFalse();
        assertThat(AuthInterceptor.servesUnixSocket("/run/uffdemu/grpc.sock", "TCP")).isFalse();
        assertThat(AuthInterceptor.servesUnixSocket("", "")).isFalse();
        assertThat(AuthInterceptor.servesUnixSocket(null, "domain-socket")).isFalse();
    }

    @Test
    void loopbackAddressesAreLocalOthersAreNot() {
        assertThat(AuthInterceptor.isLoopback("127.0.0.1")).isTrue();
        assertThat(AuthInterceptor.isLoopback("::1")).isTrue();
        assertThat(AuthInterceptor.isLoopback("0.0.0.0")).isFalse();
        assertThat(AuthInterceptor.isLoopback("")).isFalse();
    }
}
