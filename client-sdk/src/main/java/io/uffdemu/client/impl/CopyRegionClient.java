package io.uffdemu.client.impl;

import com.google.protobuf.ByteString;
import io.uffdemu.api.v1.CopyRegion;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.HandleRequest;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;

/**
 * The handler's side of a Handle stream's copy region ({@code HandleResponse.copy_region}): the server's memfd,
 * opened through {@code /proc/<server_pid>/fd/<fd>} and mapped here, into which a COPY's bytes are written so
 * that the request names them by offset instead of carrying them. Space is handed out in 4 KiB units, lowest
 * free address first: a slot is taken when its COPY's helper is called ({@link #stage}; or when it is sent, for a
 * COPY that carries its bytes: {@link #substitute}) and given back when its result arrives (the server has then
 * read it; a staged COPY that never went on the wire, once its fault redid it unary). Lowest first keeps the pages
 * in use down to what is in flight at the peak, so they stay resident in both processes instead of each pass
 * over the region faulting in fresh ones (each first touch of a shmem page is a page fault on both sides). When
 * there is no room, or the region is closed, a COPY carries its data as usual: nothing ever waits for room.
 *
 * <p>{@link #open} refuses anything that is not the server's region before writing a byte: the link must name
 * the memfd, the size must match, and the first 16 bytes must be the nonce (another host or pid namespace gives
 * some other file at that path). It then writes the nonce's complement after it, which the server waits for
 * before it reads any source.
 *
 * <p>When its stream ends the region is {@link #retire retired} into the client's {@link CopyRegionCache}, still
 * mapped, for the next stream to ask back; {@link #reopen} takes it again when the server offers the same file
 * with a new nonce.
 */
final class CopyRegionClient implements AutoCloseable {
  /** Units of allocation. */
  static final int UNIT = 4096;
  /** The nonce at the region's start; the proof (its complement) follows it. */
  static final int NONCE_BYTES = 16;

  /**
   * Space of one COPY; {@code pinned} while its fault may still redo the request unary from it (staged),
   * {@code freed} once given back.
   */
  private static final class Slot {
    final long off;
    final int unit;
    final int units;
    boolean pinned;
    boolean freed;

    Slot(long off, int unit, int units) {
      this.off = off;
      this.unit = unit;
      this.units = units;
    }
  }

  /**
   * A COPY's bytes written into the region when its helper was called ({@link #stage}), before its request has
   * an id: the request names them by offset ({@link #src}, {@link #len}); sent on another stream, or redone unary,
   * it carries a copy of them ({@link #copyOut}). The slot and the mapping stay until {@link #unstage}: the
   * helper's fault is done with it.
   */
  static final class Staged {
    final CopyRegionClient region;
    private final Slot slot;
    final int len;
    private long id = -1;

    private Staged(CopyRegionClient region, Slot slot, int len) {
      this.region = region;
      this.slot = slot;
      this.len = len;
    }

    long src() {
      return slot.off;
    }

    /** The bytes, copied out of the region (for a request that cannot name them by offset). */
    ByteString copyOut() {
      return ByteString.copyFrom(region.map.asSlice(slot.off, len).asByteBuffer());
    }
  }

  private final Arena arena;
  private final MemorySegment map;
  private final long start;
  /** The offer it was opened or reopened for (what a later stream asks back by). */
  private final CopyRegion info;
  // guarded by this
  private final java.util.BitSet used = new java.util.BitSet();
  private final int units;
  private final Map<Long, Slot> byId = new HashMap<>();
  private int users;
  private boolean closed;
  /** Set by {@link #retire}: takes the mapping once nothing writes into it (null: unmap it then). */
  private java.util.function.Consumer<CopyRegionClient> whenIdle;

  /**
   * Over {@code map} (owned by {@code arena}: unmapped when this is closed, or when the cache drops it after
   * {@link #retire}; a {@link #reopen}ed twin takes it over), sources in [start, end).
   */
  CopyRegionClient(Arena arena, MemorySegment map, long start, long end) {
    this(arena, map, start, end, null);
  }

  CopyRegionClient(Arena arena, MemorySegment map, long start, long end, CopyRegion info) {
    this.arena = arena;
    this.map = map;
    this.start = start;
    this.units = (int) Math.min(Integer.MAX_VALUE - 1, (end - start) / UNIT);
    this.info = info;
  }

  /** The offer this mapping serves (null for one made by the package's tests). */
  CopyRegion info() {
    return info;
  }

  /** Opens and maps the region the server offered; IOException when it is not reachable from here. */
  static CopyRegionClient open(CopyRegion info) throws IOException {
    long bytes = info.getBytes();
    long start = info.getDataOffset();
    // the header holds the nonce and, after it, the proof (its complement)
    if (info.getNonce().size() != NONCE_BYTES || start < 2L * NONCE_BYTES || start >= bytes
        || info.getName().isEmpty()) {
      throw new IOException("malformed copy region " + info);
    }
    Path p = Path.of("/proc/" + info.getServerPid() + "/fd/" + info.getFd());
    String target = Files.readSymbolicLink(p).toString();
    if (!target.startsWith("/memfd:" + info.getName())) {
      throw new IOException(p + " is " + target + ", not the server's copy region");
    }
    Arena arena = Arena.ofShared();
    boolean ok = false;
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      if (ch.size() != bytes) {
        throw new IOException(p + " has " + ch.size() + " bytes, the copy region " + bytes);
      }
      MemorySegment map = ch.map(FileChannel.MapMode.READ_WRITE, 0, bytes, arena);
      byte[] nonce = map.asSlice(0, info.getNonce().size()).toArray(ValueLayout.JAVA_BYTE);
      if (!ByteString.copyFrom(nonce).equals(info.getNonce())) {
        throw new IOException(p + " does not hold the copy region's nonce");
      }
      prove(map, nonce);
      ok = true;
      return new CopyRegionClient(arena, map, start, bytes, info);
    } finally {
      if (!ok) {
        arena.close();
      }
    }
  }

  /** The proof the server waits for before it reads any source: the nonce's complement right after it. */
  private static void prove(MemorySegment map, byte[] nonce) {
    for (int i = 0; i < nonce.length; i++) {
      map.set(ValueLayout.JAVA_BYTE, nonce.length + i, (byte) ~nonce[i]);
    }
  }

  /**
   * The mapping of {@code idle} (retired: nothing writes into it) serving again for {@code offer}, when the server
   * offered the same file again: the same pid, fd, name and size, and the new nonce is what this mapping holds
   * (so the server wrote it into this very file). The proof is written as by {@link #open}; null when the offer
   * is another region (then {@code idle} is left as it is).
   */
  static CopyRegionClient reopen(CopyRegionClient idle, CopyRegion offer) {
    CopyRegion was = idle.info;
    if (was == null || offer.getServerPid() != was.getServerPid() || offer.getFd() != was.getFd()
        || !offer.getName().equals(was.getName()) || offer.getBytes() != was.getBytes()
        || offer.getDataOffset() != was.getDataOffset() || offer.getNonce().size() != NONCE_BYTES) {
      return null;
    }
    byte[] nonce = idle.map.asSlice(0, NONCE_BYTES).toArray(ValueLayout.JAVA_BYTE);
    if (!ByteString.copyFrom(nonce).equals(offer.getNonce())) {
      return null;
    }
    prove(idle.map, nonce);
    return new CopyRegionClient(idle.arena, idle.map, offer.getDataOffset(), offer.getBytes(), offer);
  }

  /**
   * {@code req} (a COPY with data) with its bytes written into a free slot and named by offset instead; null
   * when there is no room or the region is closed (then {@code req} goes as it is). The slot stays taken until
   * {@link #release} of the request's id.
   */
  HandleRequest substitute(HandleRequest req) {
    CopyRequest c = req.getCopy();
    ByteString data = c.getData();
    int len = data.size();
    if (len == 0 || c.getRegionLen() != 0) {
      return null;
    }
    Slot s = enter(len, false);
    if (s == null) {
      return null;
    }
    boolean ok = false;
    try {
      data.copyTo(map.asSlice(s.off, len).asByteBuffer());
      ok = true;
    } finally {
      synchronized (this) {
        if (ok) {
          byId.put(req.getRequestId(), s); // before the request is sent: its answer cannot come earlier
        } else {
          freeLocked(s);
        }
      }
      leave();
    }
    return req.toBuilder().setCopy(c.toBuilder().clearData().setRegionSrc(s.off).setRegionLen(len)).build();
  }

  /**
   * Writes a COPY's bytes into a free slot now, as its helper is called, so that nothing else copies them (a
   * huge page's 2 MiB copied into the heap per fault was most of a hugetlb storm's cost: the heap grew and shrank
   * under those arrays). Null when there is no room or the region is closed (the request then carries a copy of
   * the bytes, as without a region). The caller must {@link #unstage} it once its fault is done with it.
   */
  Staged stage(byte[] data) {
    int len = data.length;
    if (len == 0) {
      return null;
    }
    Slot s = enter(len, true); // the mapping stays until unstage
    if (s == null) {
      return null;
    }
    boolean ok = false;
    try {
      MemorySegment.copy(data, 0, map, ValueLayout.JAVA_BYTE, s.off, len);
      ok = true;
      return new Staged(this, s, len);
    } finally {
      if (!ok) {
        synchronized (this) {
          freeLocked(s);
        }
        leave();
      }
    }
  }

  /**
   * A slot of {@code len} bytes ({@code pinned} for a staged COPY) for a writer, who holds the mapping until
   * {@link #leave}; null when the region is closed or has no room.
   */
  private synchronized Slot enter(int len, boolean pinned) {
    if (closed) {
      return null;
    }
    Slot s = allocate(len);
    if (s != null) {
      s.pinned = pinned;
      users++;
    }
    return s;
  }

  /**
   * A writer (or a staged COPY's fault) is done with the mapping: the last one out after {@link #retire} lets it
   * go.
   */
  private void leave() {
    boolean idle;
    synchronized (this) {
      users--;
      idle = closed && users == 0;
    }
    if (idle) {
      idle();
    }
  }

  /**
   * A staged COPY goes out on this region's stream as request {@code id}: its slot answers to that id too (the
   * server's result frees it once the fault is done with it). False when the region is closed (the stream ended):
   * then the request must carry the bytes ({@link Staged#copyOut}).
   */
  synchronized boolean bind(Staged st, long id) {
    if (closed || st.region != this || st.id >= 0) {
      return false;
    }
    st.id = id;
    byId.put(id, st.slot);
    return true;
  }

  /**
   * The fault of a {@link #stage}d COPY is done with it (resolved, failed, or dropped): its slot is free again
   * unless it was freed already (by the server's answer, which comes before its fault is done with it) or it was
   * sent and the server has not answered yet (then that answer frees it, as a slot of {@link #substitute}), and
   * the mapping may go.
   */
  void unstage(Staged st) {
    synchronized (this) {
      Slot s = st.slot;
      s.pinned = false;
      if (st.id < 0 || byId.get(st.id) != s) {
        freeLocked(s); // never sent, or not on the wire (an answered one is freed already)
      } // else sent and not answered yet (a deadline passed): freed by the answer
    }
    leave();
  }

  /** The server answered request {@code id}: its slot, if it had one, is free again (it has read the source). */
  synchronized void release(long id) {
    releaseLocked(id);
  }

  /**
   * Request {@code id} never went on the wire (the server will not read it): its slot is free again, unless it
   * is staged, whose fault redoes it unary from the slot ({@link Staged#copyOut}) and gives it back then.
   */
  synchronized void notSent(long id) {
    Slot s = byId.get(id);
    if (s != null && s.pinned) {
      byId.remove(id);
      return;
    }
    releaseLocked(id);
  }

  private void releaseLocked(long id) {
    Slot s = byId.remove(id);
    if (s != null) {
      freeLocked(s);
    }
  }

  private void freeLocked(Slot s) {
    if (!s.freed) {
      s.freed = true;
      used.clear(s.unit, s.unit + s.units);
    }
  }

  /** The lowest free run of units that holds {@code len} bytes, taken; null when there is none. */
  private Slot allocate(long len) {
    long n = (len + UNIT - 1) / UNIT;
    if (n > units) {
      return null;
    }
    int from = 0;
    while (true) {
      int first = used.nextClearBit(from);
      if (first + n > units) {
        return null;
      }
      int taken = used.nextSetBit(first);
      if (taken < 0 || taken >= first + n) {
        used.set(first, (int) (first + n));
        return new Slot(start + (long) first * UNIT, first, (int) n);
      }
      from = taken;
    }
  }

  /** The stream is over: unmapped now, or by the last writer still copying into it. */
  @Override
  public void close() {
    retire(null);
  }

  /**
   * The stream is over: once no writer is still copying into it, the mapping goes to {@code whenIdle} (the
   * client's cache, for a later stream to ask back), or is unmapped when that is null.
   */
  void retire(java.util.function.Consumer<CopyRegionClient> whenIdle) {
    boolean idle;
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      this.whenIdle = whenIdle;
      idle = users == 0;
    }
    if (idle) {
      idle();
    }
  }

  private void idle() {
    java.util.function.Consumer<CopyRegionClient> to;
    synchronized (this) {
      to = whenIdle;
      whenIdle = null;
    }
    if (to != null) {
      to.accept(this);
    } else {
      arena.close();
    }
  }

  /** Unmaps a retired region (the cache's eviction): nothing may use it after. */
  void unmap() {
    arena.close();
  }
}
