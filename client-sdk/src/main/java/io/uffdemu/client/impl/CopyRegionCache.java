package io.uffdemu.client.impl;

import io.uffdemu.api.v1.CopyRegion;
import io.uffdemu.api.v1.CopyRegionReuse;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.BiConsumer;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A client's copy regions whose Handle stream ended, still mapped, for its next stream to ask back
 * ({@code HandleAttach.reuse_copy_region}): a stream asks the server to keep its region ({@code keep_copy_region})
 * and the offer says for how long ({@code CopyRegion.keep_seconds}, the server's {@code uffdemu.limits.
 * copy-region-idle}); asked back in that time, the server offers the same file again with a new nonce. The next
 * stream then writes into pages this process has mapped already, instead of faulting in a fresh region page by
 * page (512 page faults per 2 MiB source): a handler per process or per test, or a reconnect, pays that once.
 *
 * <p>A mapping is kept as long as the server keeps its region (at most {@link #MAX_IDLE_SECONDS}), and only when
 * it does; at most {@link #MAX_IDLE} (the oldest is unmapped first); all are unmapped when the client closes. A new
 * stream asks back the newest one that the same {@code copyRegionBytes} asked for.
 */
final class CopyRegionCache implements AutoCloseable {
  static final int MAX_IDLE = 4;
  static final long MAX_IDLE_SECONDS = 600;

  /** An idle mapping and the copyRegionBytes its stream asked for. */
  private record Idle(CopyRegionClient region, long asked) {}

  // guarded by this: by name, oldest first
  private final LinkedHashMap<String, Idle> idle = new LinkedHashMap<>();
  private final BiConsumer<Long, Runnable> expiry;
  private boolean closed;
  /** Regions served again (tests). */
  private final AtomicLong reopened = new AtomicLong();

  CopyRegionCache() {
    this((seconds, check) -> CompletableFuture.delayedExecutor(seconds, TimeUnit.SECONDS).execute(check));
  }

  /** With {@code expiry} running each idle mapping's expiry check after so many seconds (tests pass their own). */
  CopyRegionCache(BiConsumer<Long, Runnable> expiry) {
    this.expiry = expiry;
  }

  /**
   * What a new stream that asks for {@code asked} bytes asks back: the newest idle region a stream asked the same
   * for (the server gives back only one of the size it would make now), or null when there is none.
   */
  synchronized CopyRegionReuse ask(long asked) {
    CopyRegionClient newest = null;
    for (Idle i : idle.values()) {
      if (i.asked() == asked) {
        newest = i.region();
      }
    }
    return newest == null ? null
        : CopyRegionReuse.newBuilder().setName(newest.info().getName()).setNonce(newest.info().getNonce()).build();
  }

  /**
   * The region the server offered, when it is one of these given again: taken out and serving again (its proof
   * written); null otherwise (then the offer is opened as a new region).
   */
  CopyRegionClient take(CopyRegion offer) {
    CopyRegionClient r;
    synchronized (this) {
      Idle i = idle.get(offer.getName());
      if (i == null) {
        return null;
      }
      r = i.region();
      CopyRegionClient again = CopyRegionClient.reopen(r, offer);
      if (again == null) {
        return null; // not the same file as far as this mapping can tell: left to expire
      }
      idle.remove(offer.getName());
      reopened.incrementAndGet();
      return again;
    }
  }

  /**
   * A retired region (nothing writes into it any more), whose stream asked for {@code asked} bytes: kept for a
   * later stream as long as the server keeps it (its offer's keep_seconds), or unmapped when it does not.
   */
  void put(CopyRegionClient r, long asked) {
    List<CopyRegionClient> out = new ArrayList<>(1);
    long keep = r.info() == null ? 0 : Math.min(MAX_IDLE_SECONDS, r.info().getKeepSeconds());
    synchronized (this) {
      if (closed || keep == 0) {
        out.add(r);
      } else {
        Idle was = idle.put(r.info().getName(), new Idle(r, asked));
        if (was != null && was.region() != r) {
          out.add(was.region()); // an older mapping of the same file: this one replaces it
        }
        while (idle.size() > MAX_IDLE) {
          var oldest = idle.entrySet().iterator();
          out.add(oldest.next().getValue().region());
          oldest.remove();
        }
      }
    }
    out.forEach(CopyRegionClient::unmap);
    if (!out.contains(r)) {
      expiry.accept(keep, () -> expire(r));
    }
  }

  /** {@code r}'s idle time is over: unmapped if it is still here (a mapping reopened since is a new object). */
  private void expire(CopyRegionClient r) {
    synchronized (this) {
      Idle i = idle.get(r.info().getName());
      if (i == null || i.region() != r) {
        return;
      }
      idle.remove(r.info().getName());
    }
    r.unmap();
  }

  synchronized int idleCount() {
    return idle.size();
  }

  long reopened() {
    return reopened.get();
  }

  /** The client closed: every idle mapping unmapped, none kept from now on. */
  @Override
  public void close() {
    List<CopyRegionClient> out;
    synchronized (this) {
      closed = true;
      out = new ArrayList<>();
      idle.values().forEach(i -> out.add(i.region()));
      idle.clear();
    }
    out.forEach(CopyRegionClient::unmap);
  }
}
