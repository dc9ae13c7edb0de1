package io.uffdemu.client;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;

/**
 * Immutable client configuration. {@link #DEFAULT}: {@code localhost:9090}, plaintext, no token,
 * keep-alive 30 s, deadline 30 s per call, 3 attempts for idempotent calls with a 50 ms initial backoff.
 *
 * <pre>{@code
 * ClientConfig cfg = ClientConfig.DEFAULT.withTarget("uffdemu:9090")
 *     .withTls(Path.of("ca.pem"), null, null).withBearerToken(System.getenv("UFFDEMU_TOKEN"))
 *     .withDeadline(Duration.ofSeconds(5));
 * try (UffdemuClient client = UffdemuClient.connect(cfg)) { ... }
 * }</pre>
 *
 * @param target gRPC target ("host:port" or any grpc-java target URI)
 * @param tls use TLS; with {@code trustCertFile} null the JVM trust store is used
 * @param trustCertFile PEM CA bundle, or null
 * @param clientCertFile PEM client certificate for mTLS, or null
 * @param clientKeyFile PEM client key for mTLS, or null
 * @param bearerToken sent as {@code authorization: Bearer <token>} on every call, or null
 * @param keepAlive HTTP/2 keep-alive ping interval; null or zero disables
 * @param deadline default deadline per call (an Access that waits on a fault is bounded by it)
 * @param retryAttempts total attempts (>= 1) for idempotent calls failing with UNAVAILABLE
 * @param retryBackoff first backoff, doubled at each retry
 */
public record ClientConfig(String target, boolean tls, Path trustCertFile, Path clientCertFile, Path clientKeyFile,
    String bearerToken, Duration keepAlive, Duration deadline, int retryAttempts, Duration retryBackoff) {

  public static final ClientConfig DEFAULT = new ClientConfig("localhost:9090", false, null, null, null, null,
      Duration.ofSeconds(30), Duration.ofSeconds(30), 3, Duration.ofMillis(50));

  public ClientConfig {
    Objects.requireNonNull(target, "target");
    Objects.requireNonNull(deadline, "deadline");
    Objects.requireNonNull(retryBackoff, "retryBackoff");
    if (retryAttempts < 1) {
      throw new IllegalArgumentException("retryAttempts must be >= 1");
    }
    if (deadline.isNegative() || deadline.isZero()) {
      throw new IllegalArgumentException("deadline must be positive");
    }
  }

  public ClientConfig withTarget(String target) {
    return new ClientConfig(target, tls, trustCertFile, clientCertFile, clientKeyFile, bearerToken, keepAlive,
        deadline, retryAttempts, retryBackoff);
  }

  /** Enables TLS; any argument may be null (JVM trust store, no client certificate). */
  public ClientConfig withTls(Path trustCertFile, Path clientCertFile, Path clientKeyFile) {
    return new ClientConfig(target, true, trustCertFile, clientCertFile, clientKeyFile, bearerToken, keepAlive,
        deadline, retryAttempts, retryBackoff);
  }

  /**
   * mTLS: presents this PEM client certificate and key (the server maps its subject CN or SAN to a tenant, see
   * {@code uffdemu.auth.mtls.*}); turns TLS on and keeps the trust settings.
   */
  public ClientConfig withClientCertificate(Path clientCertFile, Path clientKeyFile) {
    Objects.requireNonNull(clientCertFile, "clientCertFile");
    Objects.requireNonNull(clientKeyFile, "clientKeyFile");
    return new ClientConfig(target, true, trustCertFile, clientCertFile, clientKeyFile, bearerToken, keepAlive,
        deadline, retryAttempts, retryBackoff);
  }

  public ClientConfig withBearerToken(String bearerToken) {
    return new ClientConfig(target, tls, trustCertFile, clientCertFile, clientKeyFile, bearerToken, keepAlive,
        deadline, retryAttempts, retryBackoff);
  }

  public ClientConfig withKeepAlive(Duration keepAlive) {
    return new ClientConfig(target, tls, trustCertFile, clientCertFile, clientKeyFile, bearerToken, keepAlive,
        deadline, retryAttempts, retryBackoff);
  }

  public ClientConfig withDeadline(Duration deadline) {
    return new ClientConfig(target, tls, trustCertFile, clientCertFile, clientKeyFile, bearerToken, keepAlive,
        deadline, retryAttempts, retryBackoff);
  }

  public ClientConfig withRetryAttempts(int retryAttempts) {
    return new ClientConfig(target, tls, trustCertFile, clientCertFile, clientKeyFile, bearerToken, keepAlive,
        deadline, retryAttempts, retryBackoff);
  }

  public ClientConfig withRetryBackoff(Duration retryBackoff) {
    return new ClientConfig(target, tls, trustCertFile, clientCertFile, clientKeyFile, bearerToken, keepAlive,
        deadline, retryAttempts, retryBackoff);
  }

  @Override
  public String toString() {
    return "ClientConfig[target=" + target + ", tls=" + tls + ", clientCert=" + clientCertFile
        + ", token=" + (bearerToken == null ? "none" : "***")
        + ", deadline=" + deadline + ", retryAttempts=" + retryAttempts + "]";
  }
}
