package io.uffdemu.client.recipes;

import java.io.Closeable;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.UUID;
import java.util.stream.Stream;

/** Crash-safe writing and reading of snapshot directories. */
public final class SnapshotFiles {
  private SnapshotFiles() {}

  /** SHA-256 of {@code data} in lower-case hex, or {@link SnapshotManifest#ZERO} when every byte is 0. */
  public static String checksum(byte[] data) {
    if (isZero(data)) {
      return SnapshotManifest.ZERO;
    }
    return sha256(data);
  }

  static String sha256(byte[] data) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static boolean isZero(byte[] data) {
    for (byte b : data) {
      if (b != 0) {
        return false;
      }
    }
    return true;
  }

  /**
   * Writes a snapshot into a hidden temporary sibling of {@code target}; {@link #commit} makes it appear
   * atomically: pages.bin and manifest.json are fsynced, then the directory, then it is renamed to
   * {@code target} and the parent directory is fsynced. A crash before the rename leaves only the temporary
   * directory ({@code .NAME.tmp-*}), which readers ignore and {@link #cleanTemporaries} removes.
   */
  static final class Writer implements Closeable {
    final Path target;
    final Path tmp;
    final FileChannel data;
    private boolean done;

    Writer(Path target) throws IOException {
      this.target = target.toAbsolutePath();
      if (Files.exists(this.target)) {
        throw new FileAlreadyExistsException(this.target.toString());
      }
      Files.createDirectories(this.target.getParent());
      this.tmp = this.target.resolveSibling("." + this.target.getFileName() + ".tmp-" + UUID.randomUUID());
      Files.createDirectory(tmp);
      this.data = FileChannel.open(tmp.resolve(SnapshotManifest.DATA_FILE), StandardOpenOption.CREATE_NEW,
          StandardOpenOption.WRITE, StandardOpenOption.READ);
    }

    void writePage(long offset, byte[] page) {
      try {
        ByteBuffer b = ByteBuffer.wrap(page);
        long pos = offset;
        while (b.hasRemaining()) {
          pos += data.write(b, pos);
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    Path commit(SnapshotManifest manifest) throws IOException {
      long size = manifest.dataBytes();
      if (data.size() < size) {
        // extend to the logical size: trailing zero pages stay a hole
        data.write(ByteBuffer.wrap(new byte[1]), size - 1);
      }
      data.force(true);
      data.close();
      try (FileChannel m = FileChannel.open(tmp.resolve(SnapshotManifest.MANIFEST_FILE),
          StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        ByteBuffer b = ByteBuffer.wrap(manifest.toJson().getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) {
          m.write(b);
        }
        m.force(true);
      }
      fsyncDir(tmp);
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
      fsyncDir(target.getParent());
      done = true;
      return target;
    }

    @Override
    public void close() throws IOException {
      if (!done) {
        data.close();
        deleteTree(tmp);
      }
    }
  }

  static void fsyncDir(Path dir) throws IOException {
    try (FileChannel c = FileChannel.open(dir, StandardOpenOption.READ)) {
      c.force(true);
    } catch (IOException e) {
      // some platforms cannot open directories; the rename is still atomic there
      if (System.getProperty("os.name", "").toLowerCase().contains("linux")) {
        throw e;
      }
    }
  }

  static void deleteTree(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      for (Path x : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(x);
      }
    }
  }

  /** Deletes the temporary directories that crashed snapshot writers left in {@code parent}; returns how many. */
  public static int cleanTemporaries(Path parent) throws IOException {
    int n = 0;
    try (Stream<Path> s = Files.list(parent)) {
      for (Path p : s.filter(x -> x.getFileName().toString().startsWith(".")
          && x.getFileName().toString().contains(".tmp-")).toList()) {
        deleteTree(p);
        n++;
      }
    }
    return n;
  }

  /** Random access to a committed snapshot. */
  public static final class Reader implements Closeable {
    private final Path dir;
    private final SnapshotManifest manifest;
    private final FileChannel data;

    public Reader(Path dir) throws IOException {
      this.dir = dir;
      this.manifest = SnapshotManifest.read(dir);
      this.data = FileChannel.open(dir.resolve(SnapshotManifest.DATA_FILE), StandardOpenOption.READ);
    }

    public Path dir() {
      return dir;
    }

    public SnapshotManifest manifest() {
      return manifest;
    }

    /** The page's bytes (zeroes for a zero page), not checked against its checksum. */
    public byte[] page(SnapshotManifest.Range r, int index) {
      byte[] out = new byte[(int) r.pageSize()];
      if (r.isZero(index)) {
        return out;
      }
      try {
        ByteBuffer b = ByteBuffer.wrap(out);
        long pos = r.pageOffset(index);
        while (b.hasRemaining()) {
          int n = data.read(b, pos);
          if (n < 0) {
            throw new IOException("pages.bin truncated at " + pos);
          }
          pos += n;
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return out;
    }

    /** The page's bytes, after checking them against the manifest's checksum. */
    public byte[] verifiedPage(SnapshotManifest.Range r, int index) {
      byte[] p = page(r, index);
      String want = r.pages().get(index);
      if (!r.isZero(index) && !want.equals(sha256(p))) {
        throw new IllegalStateException("checksum mismatch at page " + index + " of range 0x"
            + Long.toHexString(r.start()));
      }
      return p;
    }

    @Override
    public void close() throws IOException {
      data.close();
    }
  }
}
