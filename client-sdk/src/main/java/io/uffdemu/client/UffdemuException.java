package io.uffdemu.client;

/**
 * Base of every exception the SDK throws. Transport failures are {@link ServerUnavailableException};
 * failures the kernel would report with an errno are {@link ErrnoException} subclasses.
 *
 * <pre>{@code
 * try { process.munmap(addr, len); }
 * catch (ErrnoException e) { log(e.name(), e.call()); }
 * catch (UffdemuException e) { log(e.grpcCode()); }
 * }</pre>
 */
public class UffdemuException extends RuntimeException {
  private final String grpcCode;

  public UffdemuException(String message, String grpcCode, Throwable cause) {
    super(message, cause);
    this.grpcCode = grpcCode;
  }

  /** Name of the gRPC status code that carried this failure ("UNKNOWN" when none). */
  public String grpcCode() {
    return grpcCode;
  }
}
