package io.uffdemu.client.impl;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.uffdemu.api.v1.CopyRegion;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.HandleRequest;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The client's cache of copy regions whose stream ended: which one a new stream asks back (the newest), when an
 * offer is one of them given again (same pid, fd, name and size, and the new nonce is in this mapping), what the
 * reopened region proves and hands out, and when mappings are unmapped (count, time, client close). Over plain
 * memory; the server's side and the real memfd are CopyRegionIT's (server module).
 */
class CopyRegionCacheTest {
  private static final int UNIT = CopyRegionClient.UNIT;
  private final List<Runnable> due = new ArrayList<>();
  private final List<Long> dueSeconds = new ArrayList<>();
  private final CopyRegionCache cache = new CopyRegionCache((secs, check) -> {
    dueSeconds.add(secs);
    due.add(check);
  });
  private static final long ASKED = 16L * UNIT;
  private int next;

  private static ByteString nonce(int seed) {
    byte[] n = new byte[16];
    for (int i = 0; i < n.length; i++) {
      n[i] = (byte) (seed * 31 + i);
    }
    return ByteString.copyFrom(n);
  }

  /** A region as if opened from the server's offer: 4 units after a one-page header holding the nonce. */
  private CopyRegionClient region(MemorySegment[] out) {
    int id = ++next;
    CopyRegion info = CopyRegion.newBuilder().setServerPid(4242).setFd(10 + id).setBytes(5L * UNIT)
        .setName("uffdemu-copy-region-" + id).setNonce(nonce(id)).setDataOffset(UNIT).setKeepSeconds(30).build();
    Arena arena = Arena.ofShared();
    MemorySegment m = arena.allocate(5L * UNIT, UNIT);
    MemorySegment.copy(info.getNonce().toByteArray(), 0, m, ValueLayout.JAVA_BYTE, 0, 16);
    out[0] = m;
    return new CopyRegionClient(arena, m, UNIT, 5L * UNIT, info);
  }

  /** The server gives {@code r} again: a new nonce in its header, the same file otherwise. */
  private static CopyRegion renewed(CopyRegionClient r, MemorySegment m, int seed) {
    ByteString n = nonce(seed);
    MemorySegment.copy(n.toByteArray(), 0, m, ValueLayout.JAVA_BYTE, 0, 16);
    return r.info().toBuilder().setNonce(n).build();
  }

  private static HandleRequest copy(long id, int fill) {
    byte[] d = new byte[UNIT];
    java.util.Arrays.fill(d, (byte) fill);
    return HandleRequest.newBuilder().setRequestId(id)
        .setCopy(CopyRequest.newBuilder().setDst(0x10000).setData(ByteString.copyFrom(d))).build();
  }

  @Test
  void aRetiredRegionIsAskedBackAndServesAgainWithTheNewNonceProved() {
    MemorySegment[] m = new MemorySegment[1];
    CopyRegionClient r = region(m);
    assertThat(cache.ask(ASKED)).as("nothing retired yet").isNull();
    HandleRequest inFlight = r.substitute(copy(1, 0xa));
    assertThat(inFlight.getCopy().getRegionSrc()).isEqualTo(UNIT);
    r.retire(x -> cache.put(x, ASKED));
    assertThat(cache.idleCount()).isEqualTo(1);
    assertThat(m[0].scope().isAlive()).as("still mapped").isTrue();
    assertThat(cache.ask(ASKED).getName()).isEqualTo(r.info().getName());
    assertThat(cache.ask(ASKED).getNonce()).isEqualTo(r.info().getNonce());

    CopyRegion offer = renewed(r, m[0], 99);
    CopyRegionClient again = cache.take(offer);
    assertThat(again).isNotNull().isNotSameAs(r);
    assertThat(cache.idleCount()).isZero();
    assertThat(cache.reopened()).isEqualTo(1);
    assertThat(cache.ask(ASKED)).isNull();
    for (int i = 0; i < 16; i++) {
      assertThat(m[0].get(ValueLayout.JAVA_BYTE, 16 + i)).as("proof byte %d", i)
          .isEqualTo((byte) ~offer.getNonce().byteAt(i));
    }
    assertThat(again.info()).isEqualTo(offer);
    // a fresh allocator: the old stream's slots died with it
    HandleRequest first = again.substitute(copy(2, 0xb));
    assertThat(first.getCopy().getRegionSrc()).isEqualTo(UNIT);
    assertThat(m[0].get(ValueLayout.JAVA_BYTE, UNIT)).isEqualTo((byte) 0xb);
    again.close();
    assertThat(m[0].scope().isAlive()).as("closed, not retired: unmapped").isFalse();
  }

  @Test
  void anOfferThatIsNotTheSameFileIsNotTakenAndTheMappingIsKept() {
    MemorySegment[] m = new MemorySegment[1];
    CopyRegionClient r = region(m);
    r.retire(x -> cache.put(x, ASKED));
    CopyRegion was = r.info();
    assertThat(cache.take(was.toBuilder().setNonce(nonce(7)).build())).as("a nonce this mapping does not hold")
        .isNull();
    CopyRegion offer = renewed(r, m[0], 8);
    assertThat(cache.take(offer.toBuilder().setFd(was.getFd() + 1).build())).as("another fd").isNull();
    assertThat(cache.take(offer.toBuilder().setServerPid(1).build())).as("another server").isNull();
    assertThat(cache.take(offer.toBuilder().setBytes(was.getBytes() + UNIT).build())).as("another size").isNull();
    assertThat(cache.take(offer.toBuilder().setName("uffdemu-copy-region-x").build())).as("another name").isNull();
    for (int i = 0; i < 16; i++) {
      assertThat(m[0].get(ValueLayout.JAVA_BYTE, 16 + i)).as("no proof written").isZero();
    }
    assertThat(cache.idleCount()).isEqualTo(1);
    assertThat(cache.take(offer)).isNotNull();
  }

  @Test
  void atMostFourAreKeptTheOldestUnmappedFirstAndTheNewestAskedBack() {
    List<MemorySegment> maps = new ArrayList<>();
    List<CopyRegionClient> rs = new ArrayList<>();
    for (int i = 0; i < CopyRegionCache.MAX_IDLE + 1; i++) {
      MemorySegment[] m = new MemorySegment[1];
      CopyRegionClient r = region(m);
      maps.add(m[0]);
      rs.add(r);
      r.retire(x -> cache.put(x, ASKED));
    }
    assertThat(cache.idleCount()).isEqualTo(CopyRegionCache.MAX_IDLE);
    assertThat(maps.get(0).scope().isAlive()).as("the oldest unmapped").isFalse();
    assertThat(maps.subList(1, maps.size())).allMatch(m -> m.scope().isAlive());
    assertThat(cache.ask(ASKED).getName()).isEqualTo(rs.get(rs.size() - 1).info().getName());

    cache.close();
    assertThat(cache.idleCount()).isZero();
    assertThat(maps).noneMatch(m -> m.scope().isAlive());
    MemorySegment[] late = new MemorySegment[1];
    region(late).retire(x -> cache.put(x, ASKED));
    assertThat(late[0].scope().isAlive()).as("the client closed: unmapped at once").isFalse();
  }

  @Test
  void anIdleMappingIsUnmappedWhenItsTimeIsUpButNotOneServingAgain() {
    MemorySegment[] a = new MemorySegment[1];
    MemorySegment[] b = new MemorySegment[1];
    CopyRegionClient ra = region(a);
    CopyRegionClient rb = region(b);
    ra.retire(x -> cache.put(x, ASKED));
    rb.retire(x -> cache.put(x, ASKED));
    assertThat(due).hasSize(2);
    CopyRegionClient again = cache.take(renewed(rb, b[0], 5)); // b serves again before its time is up
    due.forEach(Runnable::run);
    assertThat(a[0].scope().isAlive()).as("a's time is up").isFalse();
    assertThat(b[0].scope().isAlive()).as("b serves a stream: not unmapped by its old expiry").isTrue();
    assertThat(cache.idleCount()).isZero();
    again.retire(x -> cache.put(x, ASKED)); // its stream ended: a new idle period
    assertThat(due).hasSize(3);
    due.get(2).run();
    assertThat(b[0].scope().isAlive()).isFalse();
  }

  @Test
  void keptOnlyAsLongAsTheServerKeepsItAndAskedBackOnlyForTheSameSize() {
    MemorySegment[] m = new MemorySegment[1];
    CopyRegionClient r = region(m);
    r.retire(x -> cache.put(x, ASKED));
    assertThat(dueSeconds).as("its expiry: the offer's keep_seconds").containsExactly(30L);
    assertThat(cache.ask(ASKED + UNIT)).as("another size asked: the server would not give it").isNull();
    assertThat(cache.ask(ASKED)).isNotNull();

    // a server that does not keep regions (keep_seconds 0): nothing to ask back, unmapped with the stream
    MemorySegment[] n = new MemorySegment[1];
    CopyRegionClient plain = region(n);
    Arena a1 = Arena.ofShared();
    MemorySegment m1 = a1.allocate(5L * UNIT, UNIT);
    CopyRegionClient notKept = new CopyRegionClient(a1, m1, UNIT, 5L * UNIT,
        plain.info().toBuilder().setKeepSeconds(0).build());
    notKept.retire(x -> cache.put(x, ASKED));
    assertThat(m1.scope().isAlive()).as("unmapped with its stream").isFalse();
    assertThat(cache.idleCount()).isEqualTo(1);
    assertThat(dueSeconds).hasSize(1);
    plain.close();

    // a second mapping of the same file (opened anew when reopening failed) replaces the first, which is unmapped
    Arena a2 = Arena.ofShared();
    MemorySegment m2 = a2.allocate(5L * UNIT, UNIT);
    CopyRegionClient twin = new CopyRegionClient(a2, m2, UNIT, 5L * UNIT, r.info());
    twin.retire(x -> cache.put(x, ASKED));
    assertThat(cache.idleCount()).isEqualTo(1);
    assertThat(m[0].scope().isAlive()).as("the displaced mapping").isFalse();
    assertThat(m2.scope().isAlive()).isTrue();
    cache.close();
    assertThat(m2.scope().isAlive()).isFalse();
  }
}
