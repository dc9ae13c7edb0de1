package io.uffdemu.client.impl;

import io.uffdemu.client.UffdemuException;

/**
 * A resolution sent on the Handle stream got no result because the stream broke and the loop is reconnecting.
 * Its outcome is unknown; the server woke the fault when the stream died, so it re-faults and comes back on the
 * next stream. The loop counts such a fault as abandoned instead of applying the fallback.
 */
final class StreamLostException extends UffdemuException {
  StreamLostException(UffdemuException cause) {
    super("Handle stream lost before the result arrived; the fault is re-delivered after reconnecting",
        cause.grpcCode(), cause);
  }
}
