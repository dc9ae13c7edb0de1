package io.uffdemu.client;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Asynchronous view of a {@link Userfaultfd}; futures complete with the synchronous result or exception.
 *
 * <pre>{@code
 * uffd.async().copy(dst, page, 0).exceptionally(e -> e instanceof EexistException ? 0L : fail(e));
 * }</pre>
 */
public interface AsyncUserfaultfd {
  Userfaultfd sync();

  CompletableFuture<Long> register(AddrRange range, long mode);

  CompletableFuture<Void> unregister(AddrRange range);

  CompletableFuture<Long> copy(long dst, byte[] data, long mode);

  CompletableFuture<Long> zeropage(AddrRange range, long mode);

  CompletableFuture<Long> continue_(AddrRange range, long mode);

  CompletableFuture<Void> writeProtect(AddrRange range, long mode);

  CompletableFuture<Void> wake(AddrRange range);

  CompletableFuture<Long> poison(AddrRange range, long mode);

  CompletableFuture<Long> move(long dst, long src, long len, long mode);

  CompletableFuture<List<UffdMessage>> read(int max, Duration wait);

  /** {@link Userfaultfd#describe()}. */
  CompletableFuture<UffdInfo> describe();
}
