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
 * free address first: a slot is taken when its COPY is sent and given back when its result arrives (the server
 * has then read it). Lowest first keeps the pages in use down to what is in flight at the peak, so they stay
 * resident in both processes instead of each pass over the region faulting in fresh ones (each first touch of a
 * shmem page is a page fault on both sides). When there is no room, or the region is closed, a COPY carries its
 * data as usual: nothing ever waits for room.
 *
 * <p>{@link #open} refuses anything that is not the server's region before writing a byte: the link must name
 * the memfd, the size must match, and the first 16 bytes must be the nonce (another host or pid namespace gives
 * some other file at that path). It then writes the nonce's complement after it, which the server waits for
 * before it reads any source.
 */
final class CopyRegionClient implements AutoCloseable {
  /** Units of allocation. */
  static final int UNIT = 4096;
  /** The nonce at the region's start; the proof (its complement) follows it. */
  static final int NONCE_BYTES = 16;

  private record Slot(long off, int unit, int units) {}

  private final Arena arena;
  private final MemorySegment map;
  private final long start;
  // guarded by this
  private final java.util.BitSet used = new java.util.BitSet();
  private final int units;
  private final Map<Long, Slot> byId = new HashMap<>();
  private int users;
  private boolean closed;

  /** Over {@code map} (owned by {@code arena}, closed with this), sources in [start, end). */
  CopyRegionClient(Arena arena, MemorySegment map, long start, long end) {
    this.arena = arena;
    this.map = map;
    this.start = start;
    this.units = (int) Math.min(Integer.MAX_VALUE - 1, (end - start) / UNIT);
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
      // the proof the server waits for before it reads any source: the nonce's complement right after it
      for (int i = 0; i < nonce.length; i++) {
        map.set(ValueLayout.JAVA_BYTE, nonce.length + i, (byte) ~nonce[i]);
      }
      ok = true;
      return new CopyRegionClient(arena, map, start, bytes);
    } finally {
      if (!ok) {
        arena.close();
      }
    }
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
    Slot s;
    synchronized (this) {
      if (closed) {
        return null;
      }
      s = allocate(len);
      if (s == null) {
        return null;
      }
      users++;
      byId.put(req.getRequestId(), s);
    }
    boolean ok = false;
    try {
      data.copyTo(map.asSlice(s.off(), len).asByteBuffer());
      ok = true;
    } finally {
      boolean unmap;
      synchronized (this) {
        users--;
        if (!ok) {
          releaseLocked(req.getRequestId());
        }
        unmap = closed && users == 0;
      }
      if (unmap) {
        arena.close();
      }
    }
    return req.toBuilder().setCopy(c.toBuilder().clearData().setRegionSrc(s.off()).setRegionLen(len)).build();
  }

  /** The server answered request {@code id}: its slot, if it had one, is free again. */
  synchronized void release(long id) {
    releaseLocked(id);
  }

  private void releaseLocked(long id) {
    Slot s = byId.remove(id);
    if (s != null) {
      used.clear(s.unit(), s.unit() + s.units());
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
    boolean unmap;
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      unmap = users == 0;
    }
    if (unmap) {
      arena.close();
    }
  }
}
