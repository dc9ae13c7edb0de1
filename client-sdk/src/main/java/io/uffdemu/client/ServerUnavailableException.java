package io.uffdemu.client;

/**
 * The server could not be reached (gRPC UNAVAILABLE without an errno detail), after the retries allowed
 * for the call.
 *
 * <pre>{@code
 * try { client.backend(); } catch (ServerUnavailableException e) { reconnectLater(); }
 * }</pre>
 */
public class ServerUnavailableException extends UffdemuException {
  public ServerUnavailableException(String message, Throwable cause) {
    super(message, "UNAVAILABLE", cause);
  }
}
