package io.uffdemu.client.recipes;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.client.MemoryType;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The verifier's window rule, and that it rejects snapshots that are not memory at the instant. */
class SnapshotVerifierTest {
  static final long BASE = 0x100000;
  static final int STAMP = 64;

  @TempDir
  Path tmp;

  /** A one-range snapshot whose page i holds the stamp of version versions[i] (0 = zero page). */
  Path snapshot(String name, long... versions) throws Exception {
    List<String> sums = new ArrayList<>();
    try (SnapshotFiles.Writer w = new SnapshotFiles.Writer(tmp.resolve(name))) {
      for (int i = 0; i < versions.length; i++) {
        byte[] page = new byte[4096];
        if (versions[i] > 0) {
          System.arraycopy(Stamp.encode(BASE + i * 4096L, versions[i], 0, STAMP), 0, page, 0, STAMP);
          w.writePage(i * 4096L, page);
        }
        sums.add(SnapshotFiles.checksum(page));
      }
      return w.commit(new SnapshotManifest(1, 1, "test", Instant.now(), "SHA-256", "", List.of(
          new SnapshotManifest.Range(BASE, versions.length * 4096L, MemoryType.ANON, 4096, 0, Instant.now(),
              sums))));
    }
  }

  /**
   * Page 0: v1 [10, 20], v2 [30, 40], v3 [100, 200]. Page 1: v1 [10, 60] (overlaps the window). Page 2: never
   * written. The protect window is [50, 70].
   */
  StampedWriters log() {
    StampedWriters w = new StampedWriters(null, List.of(BASE, BASE + 4096, BASE + 8192), 1, STAMP, 1);
    w.logWrite(BASE, 10, 20);
    w.logWrite(BASE, 30, 40);
    w.logWrite(BASE, 100, 200);
    w.logWrite(BASE + 4096, 10, 60);
    return w;
  }

  @Test
  void windowRule() {
    StampedWriters w = log();
    assertThat(w.versionsPossible(BASE, 50, 70)).containsExactly(2L);
    assertThat(w.versionsPossible(BASE + 4096, 50, 70)).containsExactly(0L, 1L);
    assertThat(w.versionsPossible(BASE + 8192, 50, 70)).containsExactly(0L);
    assertThat(w.versionsPossible(BASE, 150, 160)).containsExactly(2L, 3L);
  }

  @Test
  void acceptsMemoryAtTheInstant() throws Exception {
    SnapshotVerifier.Report r = SnapshotVerifier.verifyAgainst(snapshot("good", 2, 1, 0), log(), 50, 70);
    assertThat(r.errors()).isEmpty();
    assertThat(r.pages()).isEqualTo(3);
    assertThat(r.exact()).isEqualTo(2);
    assertThat(SnapshotVerifier.verifyAgainst(snapshot("good0", 2, 0, 0), log(), 50, 70).ok()).isTrue();
  }

  @Test
  void rejectsALaterWriteAndAMissingEarlierOne() throws Exception {
    SnapshotVerifier.Report later = SnapshotVerifier.verifyAgainst(snapshot("later", 3, 1, 0), log(), 50, 70);
    assertThat(later.errors()).singleElement().asString().contains("version 3", "[2]");
    SnapshotVerifier.Report earlier = SnapshotVerifier.verifyAgainst(snapshot("earlier", 1, 1, 0), log(), 50, 70);
    assertThat(earlier.errors()).singleElement().asString().contains("version 1");
  }
}
