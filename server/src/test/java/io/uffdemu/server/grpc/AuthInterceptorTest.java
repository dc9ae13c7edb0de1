package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Which TCP bindings count as local (served without tokens); the domain socket: GrpcTransportConfigurationTest. */
class AuthInterceptorTest {
    @Test
    void loopbackAddressesAreLocalOthersAreNot() {
        assertThat(AuthInterceptor.isLoopback("127.0.0.1")).isTrue();
        assertThat(AuthInterceptor.isLoopback("::1")).isTrue();
        assertThat(AuthInterceptor.isLoopback("0.0.0.0")).isFalse();
        assertThat(AuthInterceptor.isLoopback("")).isFalse();
    }
}
