package io.uffdemu.client.impl;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.uffdemu.api.v1.CopyRegion;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.HandleRequest;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * The handler's side of a copy region over plain memory: which space a COPY gets (lowest free first, reused only
 * once its result arrived), what the request then says, and when it keeps its data. The server's side and the
 * real memfd are CopyRegionIT's (server module).
 */
class CopyRegionClientTest {
  private static final int UNIT = CopyRegionClient.UNIT;

  /** A region of {@code units} 4 KiB units after a one-page header, over heap-free shared memory. */
  private static CopyRegionClient region(int units, MemorySegment[] out) {
    Arena arena = Arena.ofShared();
    MemorySegment m = arena.allocate((long) (units + 1) * UNIT, UNIT);
    out[0] = m;
    return new CopyRegionClient(arena, m, UNIT, (long) (units + 1) * UNIT);
  }

  private static HandleRequest copy(long id, int len, int fill) {
    byte[] d = new byte[len];
    Arrays.fill(d, (byte) fill);
    return HandleRequest.newBuilder().setRequestId(id)
        .setCopy(CopyRequest.newBuilder().setPid(1).setFd(3).setDst(0x10000).setData(ByteString.copyFrom(d)))
        .build();
  }

  @Test
  void slotsAreTheLowestFreeAndReusedOnlyAfterTheirResult() {
    MemorySegment[] m = new MemorySegment[1];
    try (CopyRegionClient r = region(4, m)) {
      HandleRequest a = r.substitute(copy(1, UNIT, 0xa));
      HandleRequest b = r.substitute(copy(2, 2 * UNIT, 0xb));
      HandleRequest c = r.substitute(copy(3, UNIT, 0xc));
      assertThat(a.getCopy().getRegionSrc()).isEqualTo(UNIT);
      assertThat(b.getCopy().getRegionSrc()).isEqualTo(2L * UNIT);
      assertThat(c.getCopy().getRegionSrc()).isEqualTo(4L * UNIT);
      for (HandleRequest q : new HandleRequest[] {a, b, c}) {
        assertThat(q.getCopy().getData().isEmpty()).as("the bytes are in the region, not the request").isTrue();
        assertThat(q.getRequestId()).isIn(1L, 2L, 3L);
        assertThat(q.getCopy().getDst()).isEqualTo(0x10000);
      }
      assertThat(b.getCopy().getRegionLen()).isEqualTo(2 * UNIT);
      assertThat(m[0].get(java.lang.foreign.ValueLayout.JAVA_BYTE, 2L * UNIT + 5)).isEqualTo((byte) 0xb);
      assertThat(r.substitute(copy(4, UNIT, 0xd))).as("full: the COPY keeps its data").isNull();

      r.release(2); // b's result: its two units are free again, the lowest free space
      r.release(2); // twice: nothing more
      HandleRequest d = r.substitute(copy(5, UNIT, 0xd));
      assertThat(d.getCopy().getRegionSrc()).isEqualTo(2L * UNIT);
      assertThat(r.substitute(copy(6, 2 * UNIT, 0xe))).as("one unit left, not two in a row").isNull();
      HandleRequest e = r.substitute(copy(7, UNIT, 0xe));
      assertThat(e.getCopy().getRegionSrc()).isEqualTo(3L * UNIT);
      assertThat(m[0].get(java.lang.foreign.ValueLayout.JAVA_BYTE, 1L * UNIT)).as("a's bytes untouched")
          .isEqualTo((byte) 0xa);

      r.release(99); // not a region COPY: nothing
      assertThat(r.substitute(copy(8, 5 * UNIT, 1))).as("larger than the region").isNull();
      assertThat(r.substitute(HandleRequest.newBuilder().setRequestId(9).setCopy(CopyRequest.newBuilder()).build()))
          .as("no data").isNull();
    }
  }

  @Test
  void aClosedRegionTakesNothing() {
    MemorySegment[] m = new MemorySegment[1];
    CopyRegionClient r = region(4, m);
    r.close();
    assertThat(r.substitute(copy(1, UNIT, 1))).isNull();
    assertThat(m[0].scope().isAlive()).as("unmapped").isFalse();
    r.close(); // twice: nothing
  }

  private static byte[] bytes(int len, int fill) {
    byte[] d = new byte[len];
    Arrays.fill(d, (byte) fill);
    return d;
  }

  @Test
  void aStagedCopyKeepsItsSlotUntilTheServerReadItOrItsFaultRedidItUnary() {
    MemorySegment[] m = new MemorySegment[1];
    CopyRegionClient r = region(4, m);
    byte[] a = bytes(UNIT, 0xa);
    CopyRegionClient.Staged sa = r.stage(a);
    assertThat(sa.src()).as("the lowest free slot").isEqualTo(UNIT);
    assertThat(sa.len).isEqualTo(UNIT);
    Arrays.fill(a, (byte) 0); // the caller reuses its array once the helper returned: the region has the bytes
    assertThat(m[0].get(java.lang.foreign.ValueLayout.JAVA_BYTE, UNIT + 7)).isEqualTo((byte) 0xa);
    assertThat(sa.copyOut().toByteArray()).isEqualTo(bytes(UNIT, 0xa));

    // sent as request 1 and answered: the server has read it, the slot is free at once (before its fault is done)
    assertThat(r.bind(sa, 1)).isTrue();
    assertThat(r.bind(sa, 2)).as("bound once").isFalse();
    CopyRegionClient.Staged sb = r.stage(bytes(UNIT, 0xb));
    assertThat(sb.src()).as("a's slot is a's until its answer").isEqualTo(2L * UNIT);
    r.release(1);
    CopyRegionClient.Staged sc = r.stage(bytes(UNIT, 0xc));
    assertThat(sc.src()).as("freed by the answer").isEqualTo(UNIT);
    r.unstage(sa); // its fault is done: nothing more to free (c's slot stays c's)
    CopyRegionClient.Staged sd = r.stage(bytes(UNIT, 0xd));
    assertThat(sd.src()).as("c's slot not freed twice").isEqualTo(3L * UNIT);

    // sent as request 2 but never on the wire: its fault redoes it unary from the slot, which stays until then
    assertThat(r.bind(sb, 2)).isTrue();
    r.notSent(2);
    assertThat(r.stage(bytes(UNIT, 0xe)).src()).as("b's slot kept for the redo").isEqualTo(4L * UNIT);
    assertThat(sb.copyOut().toByteArray()).isEqualTo(bytes(UNIT, 0xb));
    r.unstage(sb);
    CopyRegionClient.Staged sf = r.stage(bytes(UNIT, 0xf));
    assertThat(sf.src()).as("free once the redo is done").isEqualTo(2L * UNIT);

    // sent as request 3, its fault done before the answer (a deadline passed): the answer frees it
    assertThat(r.bind(sc, 3)).isTrue();
    r.unstage(sc);
    assertThat(r.stage(bytes(UNIT, 1))).as("all four taken: c's waits for its answer").isNull();
    r.release(3);
    CopyRegionClient.Staged sg = r.stage(bytes(UNIT, 0x9));
    assertThat(sg.src()).isEqualTo(UNIT);
    // never sent at all (its fault failed first): free at once
    r.unstage(sg);
    assertThat(r.stage(bytes(UNIT, 2)).src()).isEqualTo(UNIT);
    assertThat(r.stage(bytes(5 * UNIT, 1))).as("larger than the region").isNull();
    assertThat(r.stage(new byte[0])).isNull();
  }

  @Test
  void aStagedCopyHoldsTheMappingAndIsNotBoundByAnEndedStream() {
    MemorySegment[] m = new MemorySegment[1];
    CopyRegionClient r = region(4, m);
    MemorySegment[] m2 = new MemorySegment[1];
    CopyRegionClient other = region(4, m2);
    CopyRegionClient.Staged st = r.stage(bytes(UNIT, 0x5));
    assertThat(other.bind(st, 1)).as("staged in another region").isFalse();
    CopyRegionClient[] retired = new CopyRegionClient[1];
    r.retire(x -> retired[0] = x);
    assertThat(retired[0]).as("a fault still holds staged bytes").isNull();
    assertThat(r.bind(st, 2)).as("the stream ended: the request carries the bytes instead").isFalse();
    assertThat(st.copyOut().byteAt(0)).as("still mapped for that copy").isEqualTo((byte) 0x5);
    assertThat(r.stage(bytes(UNIT, 1))).as("a retired region stages nothing").isNull();
    r.unstage(st);
    assertThat(retired[0]).as("retired once the fault was done with it").isSameAs(r);
    assertThat(m[0].scope().isAlive()).isTrue();
    r.unmap();
    other.close();
  }

  @Test
  @org.junit.jupiter.api.condition.EnabledOnOs(value = org.junit.jupiter.api.condition.OS.LINUX,
      disabledReason = "reads /proc/self/fd")
  void openRefusesWhatIsNotTheServersRegion() throws IOException {
    CopyRegion good = CopyRegion.newBuilder().setServerPid((int) ProcessHandle.current().pid()).setFd(0)
        .setBytes(8192).setName("uffdemu-copy-region-x").setNonce(ByteString.copyFrom(new byte[16]))
        .setDataOffset(4096).build();
    assertThatThrownBy(() -> CopyRegionClient.open(good.toBuilder().setNonce(ByteString.copyFrom(new byte[8]))
        .build())).isInstanceOf(IOException.class).hasMessageContaining("malformed");
    assertThatThrownBy(() -> CopyRegionClient.open(good.toBuilder().setDataOffset(16).build()))
        .as("no room for the proof").isInstanceOf(IOException.class).hasMessageContaining("malformed");
    assertThatThrownBy(() -> CopyRegionClient.open(good.toBuilder().setDataOffset(8192).build()))
        .isInstanceOf(IOException.class).hasMessageContaining("malformed");
    // a path that is some other file (here a temporary file open in this JVM): refused before a byte is written
    Path f = Files.createTempFile("not-a-region", ".bin");
    try (var ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.READ)) {
      int fd = -1;
      for (Path p : Files.newDirectoryStream(Path.of("/proc/self/fd"))) {
        try {
          if (Files.readSymbolicLink(p).equals(f)) {
            fd = Integer.parseInt(p.getFileName().toString());
          }
        } catch (IOException ignored) {
          // gone meanwhile
        }
      }
      assertThat(fd).isPositive();
      int theFd = fd;
      assertThatThrownBy(() -> CopyRegionClient.open(good.toBuilder().setFd(theFd).build()))
          .isInstanceOf(IOException.class).hasMessageContaining("not the server's copy region");
      assertThat(Files.size(f)).as("untouched").isZero();
    } finally {
      Files.deleteIfExists(f);
    }
    assertThatThrownBy(() -> CopyRegionClient.open(good.toBuilder().setServerPid(Integer.MAX_VALUE).build()))
        .as("no such process here").isInstanceOf(IOException.class);
  }
}
