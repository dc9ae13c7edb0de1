package io.uffdemu.client.recipes;

import io.uffdemu.client.impl.Json;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Checks a snapshot: the files against the manifest ({@link #verifyFile}), and the content against an oracle
 * of what memory held at the snapshot instant ({@link #verifyAgainst}).
 *
 * <pre>{@code
 * SnapshotVerifier.verifyFile(dir).throwIfFailed();
 * SnapshotVerifier.verifyAgainst(dir, writers, snap.protectStartNanos(), snap.protectEndNanos()).throwIfFailed();
 * }</pre>
 */
public final class SnapshotVerifier {
  private SnapshotVerifier() {}

  /**
   * @param pages pages checked
   * @param exact pages whose oracle allowed exactly one version at the instant (no write overlapped it)
   * @param errors mismatches, empty when the snapshot is good
   */
  public record Report(long pages, long exact, List<String> errors) {
    public boolean ok() {
      return errors.isEmpty();
    }

    public Report throwIfFailed() {
      if (!ok()) {
        throw new IllegalStateException(errors.size() + " snapshot errors, first: " + errors.getFirst());
      }
      return this;
    }

    public String toJson() {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("ok", ok());
      m.put("pages", pages);
      m.put("exact", exact);
      m.put("errors", errors.subList(0, Math.min(100, errors.size())));
      return Json.write(m);
    }
  }

  /** Every page of pages.bin matches its manifest checksum; zero pages read back as zeroes. */
  public static Report verifyFile(Path dir) throws IOException {
    List<String> errors = new ArrayList<>();
    long pages = 0;
    try (SnapshotFiles.Reader r = new SnapshotFiles.Reader(dir)) {
      for (SnapshotManifest.Range range : r.manifest().ranges()) {
        for (int i = 0; i < range.pageCount(); i++) {
          pages++;
          byte[] p = r.page(range, i);
          String want = range.pages().get(i);
          String got = SnapshotFiles.checksum(p);
          if (!want.equals(got)) {
            errors.add("page 0x" + Long.toHexString(range.pageAddress(i)) + ": checksum " + got + " != manifest "
                + want);
          }
        }
      }
    }
    return new Report(pages, pages, errors);
  }

  /**
   * Every page that {@code writers} stamped holds, in the snapshot, a version that page held at some instant
   * in {@code [t0, t1]} (the protect window): no later write leaked in, no earlier one is missing, and no stamp
   * is torn. Includes {@link #verifyFile}.
   */
  public static Report verifyAgainst(Path dir, StampedWriters writers, long t0, long t1) throws IOException {
    Report file = verifyFile(dir);
    List<String> errors = new ArrayList<>(file.errors());
    long pages = 0;
    long exact = 0;
    try (SnapshotFiles.Reader r = new SnapshotFiles.Reader(dir)) {
      for (long page : writers.pages()) {
        SnapshotManifest.Range range = r.manifest().ranges().stream().filter(x -> x.addrRange().contains(page))
            .findFirst().orElse(null);
        if (range == null) {
          errors.add("page 0x" + Long.toHexString(page) + " is not in the snapshot");
          continue;
        }
        pages++;
        byte[] data = r.page(range, range.indexOf(page));
        int off = (int) (page - range.pageAddress(range.indexOf(page)));
        byte[] stamp = java.util.Arrays.copyOfRange(data, off, off + writers.stampLength());
        long version;
        try {
          Stamp s = Stamp.decode(stamp, writers.stampLength());
          version = s == null ? 0 : s.version();
          if (s != null && s.address() != page) {
            errors.add("page 0x" + Long.toHexString(page) + " holds the stamp of 0x" + Long.toHexString(s.address()));
            continue;
          }
        } catch (IllegalArgumentException e) {
          errors.add("page 0x" + Long.toHexString(page) + ": " + e.getMessage());
          continue;
        }
        TreeSet<Long> possible = writers.versionsPossible(page, t0, t1);
        if (possible.size() == 1) {
          exact++;
        }
        if (!possible.contains(version)) {
          errors.add("page 0x" + Long.toHexString(page) + ": snapshot has version " + version
              + ", memory held " + possible + " at the snapshot instant");
        }
      }
    }
    return new Report(pages, exact, errors);
  }
}
