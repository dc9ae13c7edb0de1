package io.uffdemu.client;

/**
 * EEXIST (17): the page is already populated (UFFDIO_COPY/ZEROPAGE/CONTINUE lost a race). Handlers usually treat it as resolved.
 *
 * <pre>{@code
 * try { ... } catch (EexistException e) { long done = e.bytesDone(); }
 * }</pre>
 */
public class EexistException extends ErrnoException {
  public EexistException(String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(Linux.EEXIST, name, call, bytesDone, grpcCode, cause);
  }
}
