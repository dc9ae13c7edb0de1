package io.uffdemu.client.recipes;

import io.uffdemu.client.impl.Json;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.MemoryType;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * {@code manifest.json} of a snapshot directory (see docs/recipes.md, "Snapshot format"). Every page of every
 * range has a slot at {@code range.fileOffset + index * range.pageSize} in {@code pages.bin}; a page whose
 * checksum is {@link #ZERO} was all zeroes and its slot is a hole of the (sparse) file.
 *
 * @param formatVersion {@link #FORMAT_VERSION}
 * @param pid the snapshotted process on its server
 * @param sourceServer "host:port" of the uffdemu server
 * @param createdAt when the snapshot was committed
 * @param checksum the per-page checksum algorithm, "SHA-256"
 * @param cutId id shared by all snapshots of one distributed cut ("" for a single snapshot)
 * @param ranges the snapshotted address ranges, in address order
 */
public record SnapshotManifest(int formatVersion, int pid, String sourceServer, Instant createdAt, String checksum,
    String cutId, List<Range> ranges) {

  public static final int FORMAT_VERSION = 1;
  public static final String FORMAT = "uffdemu-snapshot";
  public static final String MANIFEST_FILE = "manifest.json";
  public static final String DATA_FILE = "pages.bin";
  /** Checksum entry of an all-zero page (not stored in pages.bin). */
  public static final String ZERO = "zero";

  public SnapshotManifest {
    ranges = List.copyOf(ranges);
    Objects.requireNonNull(sourceServer);
    Objects.requireNonNull(createdAt);
    Objects.requireNonNull(cutId);
  }

  /**
   * One snapshotted range.
   *
   * @param protectedAt the instant of its UFFDIO_WRITEPROTECT: the snapshot is memory as of this instant
   * @param pages per-page SHA-256 (lower-case hex) or {@link #ZERO}
   */
  public record Range(long start, long length, MemoryType memoryType, long pageSize, long fileOffset,
      Instant protectedAt, List<String> pages) {
    public Range {
      pages = List.copyOf(pages);
      if (pages.size() * pageSize != length) {
        throw new IllegalArgumentException("range of " + length + " bytes needs " + length / pageSize + " pages, got "
            + pages.size());
      }
    }

    public AddrRange addrRange() {
      return new AddrRange(start, length);
    }

    public int pageCount() {
      return pages.size();
    }

    public long pageAddress(int index) {
      return start + index * pageSize;
    }

    public long pageOffset(int index) {
      return fileOffset + index * pageSize;
    }

    public boolean isZero(int index) {
      return ZERO.equals(pages.get(index));
    }

    /** Index of the page containing {@code addr}, or -1. */
    public int indexOf(long addr) {
      return addrRange().contains(addr) ? (int) ((addr - start) / pageSize) : -1;
    }
  }

  public long pageCount() {
    return ranges.stream().mapToLong(Range::pageCount).sum();
  }

  public long zeroPages() {
    return ranges.stream().mapToLong(r -> r.pages().stream().filter(ZERO::equals).count()).sum();
  }

  /** Logical size of pages.bin. */
  public long dataBytes() {
    return ranges.stream().mapToLong(r -> r.fileOffset() + r.length()).max().orElse(0);
  }

  public String toJson() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("format", FORMAT);
    m.put("formatVersion", formatVersion);
    m.put("pid", pid);
    m.put("sourceServer", sourceServer);
    m.put("createdAt", createdAt.toString());
    m.put("checksum", checksum);
    m.put("cutId", cutId);
    m.put("dataFile", DATA_FILE);
    m.put("dataBytes", dataBytes());
    m.put("pageCount", pageCount());
    m.put("zeroPages", zeroPages());
    List<Object> rs = new ArrayList<>();
    for (Range r : ranges) {
      Map<String, Object> rm = new LinkedHashMap<>();
      rm.put("start", r.start());
      rm.put("startHex", "0x" + Long.toHexString(r.start()));
      rm.put("length", r.length());
      rm.put("memoryType", r.memoryType().name());
      rm.put("pageSize", r.pageSize());
      rm.put("fileOffset", r.fileOffset());
      rm.put("protectedAt", r.protectedAt().toString());
      rm.put("pageCount", r.pageCount());
      rm.put("pages", r.pages());
      rs.add(rm);
    }
    m.put("ranges", rs);
    return Json.write(m);
  }

  @SuppressWarnings("unchecked")
  public static SnapshotManifest fromJson(String json) {
    Map<String, Object> m = (Map<String, Object>) Json.parse(json);
    if (!FORMAT.equals(m.get("format"))) {
      throw new IllegalArgumentException("not a " + FORMAT + " manifest");
    }
    int version = ((Number) m.get("formatVersion")).intValue();
    if (version != FORMAT_VERSION) {
      throw new IllegalArgumentException("unsupported snapshot format version " + version);
    }
    List<Range> ranges = new ArrayList<>();
    for (Object o : (List<Object>) m.get("ranges")) {
      Map<String, Object> r = (Map<String, Object>) o;
      ranges.add(new Range(((Number) r.get("start")).longValue(), ((Number) r.get("length")).longValue(),
          MemoryType.valueOf((String) r.get("memoryType")), ((Number) r.get("pageSize")).longValue(),
          ((Number) r.get("fileOffset")).longValue(), Instant.parse((String) r.get("protectedAt")),
          ((List<Object>) r.get("pages")).stream().map(String.class::cast).toList()));
    }
    return new SnapshotManifest(version, ((Number) m.get("pid")).intValue(), (String) m.get("sourceServer"),
        Instant.parse((String) m.get("createdAt")), (String) m.get("checksum"),
        (String) m.getOrDefault("cutId", ""), ranges);
  }

  public static SnapshotManifest read(Path snapshotDir) throws IOException {
    return fromJson(Files.readString(snapshotDir.resolve(MANIFEST_FILE), StandardCharsets.UTF_8));
  }
}
