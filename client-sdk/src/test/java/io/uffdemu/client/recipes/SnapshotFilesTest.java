package io.uffdemu.client.recipes;

import io.uffdemu.client.impl.Json;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.client.MemoryType;
import java.io.RandomAccessFile;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SnapshotFilesTest {
  @TempDir
  Path tmp;

  static byte[] page(int fill, int size) {
    byte[] b = new byte[size];
    java.util.Arrays.fill(b, (byte) fill);
    return b;
  }

  Path write(Path target) throws Exception {
    List<String> sums = new ArrayList<>();
    try (SnapshotFiles.Writer w = new SnapshotFiles.Writer(target)) {
      for (int i = 0; i < 4; i++) {
        byte[] p = i == 2 ? new byte[4096] : page(i + 1, 4096);
        sums.add(SnapshotFiles.checksum(p));
        if (i != 2) {
          w.writePage(i * 4096L, p);
        }
      }
      List<String> hsums = List.of(SnapshotFiles.checksum(page(9, 2 << 20)), SnapshotManifest.ZERO);
      w.writePage(4 * 4096L, page(9, 2 << 20));
      SnapshotManifest m = new SnapshotManifest(1, 1000, "127.0.0.1:1", Instant.parse("2026-12-06T04:00:00Z"),
          "SHA-256", "", List.of(
              new SnapshotManifest.Range(0x10000, 4 * 4096, MemoryType.ANON, 4096, 0, Instant.EPOCH, sums),
              new SnapshotManifest.Range(0x200000, 2 * (2 << 20), MemoryType.HUGETLB, 2 << 20, 4 * 4096,
                  Instant.EPOCH, hsums)));
      return w.commit(m);
    }
  }

  @Test
  void commitsAtomicallyAndReadsBack() throws Exception {
    Path dir = write(tmp.resolve("snap"));
    assertThat(dir).isDirectory();
    try (Stream<Path> s = Files.list(tmp)) {
      assertThat(s.map(p -> p.getFileName().toString()).toList()).containsExactly("snap");
    }
    SnapshotManifest m = SnapshotManifest.read(dir);
    assertThat(m.pageCount()).isEqualTo(6);
    assertThat(m.zeroPages()).isEqualTo(2);
    assertThat(m.ranges().get(1).memoryType()).isEqualTo(MemoryType.HUGETLB);
    assertThat(SnapshotManifest.fromJson(m.toJson())).isEqualTo(m);
    assertThat(Files.size(dir.resolve("pages.bin"))).isEqualTo(m.dataBytes()).isEqualTo(4 * 4096 + 2 * (2 << 20));
    try (SnapshotFiles.Reader r = new SnapshotFiles.Reader(dir)) {
      assertThat(r.verifiedPage(m.ranges().get(0), 1)).isEqualTo(page(2, 4096));
      assertThat(r.verifiedPage(m.ranges().get(0), 2)).isEqualTo(new byte[4096]);
      assertThat(r.verifiedPage(m.ranges().get(1), 0)).isEqualTo(page(9, 2 << 20));
      assertThat(r.verifiedPage(m.ranges().get(1), 1)).isEqualTo(new byte[2 << 20]);
    }
    assertThat(SnapshotVerifier.verifyFile(dir).ok()).isTrue();
    assertThatThrownBy(() -> write(tmp.resolve("snap"))).isInstanceOf(FileAlreadyExistsException.class);
  }

  @Test
  void verifierFindsACorruptPage() throws Exception {
    Path dir = write(tmp.resolve("snap"));
    try (RandomAccessFile f = new RandomAccessFile(dir.resolve("pages.bin").toFile(), "rw")) {
      f.seek(4096 + 17);
      f.write(0x42);
    }
    SnapshotVerifier.Report r = SnapshotVerifier.verifyFile(dir);
    assertThat(r.ok()).isFalse();
    assertThat(r.errors()).hasSize(1).first().asString().contains("0x11000");
  }

  @Test
  void anAbortedOrCrashedWriterLeavesNoSnapshot() throws Exception {
    Path target = tmp.resolve("snap");
    try (SnapshotFiles.Writer w = new SnapshotFiles.Writer(target)) {
      w.writePage(0, page(1, 4096));
    } // closed without commit: aborted
    try (Stream<Path> s = Files.list(tmp)) {
      assertThat(s.toList()).isEmpty();
    }
    SnapshotFiles.Writer crashed = new SnapshotFiles.Writer(target); // never committed nor closed: a crash
    crashed.writePage(0, page(1, 4096));
    assertThat(target).doesNotExist();
    assertThat(SnapshotFiles.cleanTemporaries(tmp)).isEqualTo(1);
    try (Stream<Path> s = Files.list(tmp)) {
      assertThat(s.toList()).isEmpty();
    }
    crashed.data.close();
  }

  @Test
  void stampsDetectTornAndForeignPages() {
    byte[] s = Stamp.encode(0x7000, 5, 3, 512);
    assertThat(Stamp.decode(s, 512)).isEqualTo(new Stamp(0x7000, 5, 3));
    assertThat(Stamp.decode(new byte[512], 512)).isNull();
    byte[] torn = s.clone();
    System.arraycopy(Stamp.encode(0x7000, 6, 3, 512), 256, torn, 256, 256); // half of v5, half of v6
    assertThatThrownBy(() -> Stamp.decode(torn, 512)).hasMessageContaining("torn");
    byte[] bad = s.clone();
    bad[9] ^= 1;
    assertThatThrownBy(() -> Stamp.decode(bad, 512)).isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  @SuppressWarnings("unchecked")
  void jsonRoundTrip() {
    Object v = Json.parse(Json.write(Map.of("a", List.of(1L, 2.5, "x\"\n\u0001", true), "b", Map.of())));
    assertThat(v).isEqualTo(Map.of("a", List.of(1L, 2.5, "x\"\n\u0001", true), "b", Map.of()));
    assertThat((Map<String, Object>) Json.parse(" {\"k\" : null} ")).containsEntry("k", null);
  }
}
