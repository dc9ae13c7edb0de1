package io.uffdemu.client.recipes;

import io.uffdemu.client.impl.Json;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.UffdemuClient;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Recipe 2: one consistent cut across several processes on several uffdemu servers. A coordinator prepares a
 * {@link LiveSnapshot} per participant, then runs the barrier: it write-protects every participant with WP
 * faults <em>held</em> (writers that store into protected memory block, nobody is un-protected), and only when
 * the last participant is protected releases them all. No participant's memory changes between its own
 * protect and the release, so every snapshot equals its memory at one instant, the end of the barrier, and a
 * message recorded as received is recorded as sent. Then each participant streams its pages as in recipe 1.
 *
 * <p>Output: a directory with {@code cut.json} (cut id, barrier times, participants) and one snapshot
 * directory per participant, committed together by one atomic rename.
 *
 * <pre>{@code
 * CutResult cut = DistributedSnapshot.take(CutOptions.of(Path.of("cut-1"), List.of(
 *     new Participant("a", clientA, pidA, List.of(), "hostA:9090"),
 *     new Participant("b", clientB, pidB, List.of(), "hostB:9090"))));
 * }</pre>
 */
public final class DistributedSnapshot {
  private DistributedSnapshot() {}

  /**
   * One process in the cut.
   *
   * @param name directory name of its snapshot inside the cut
   * @param ranges as {@link SnapshotOptions#ranges()} (empty = every writable mapping)
   * @param server recorded as the snapshot's source server
   */
  public record Participant(String name, UffdemuClient client, int pid, List<AddrRange> ranges, String server) {
    public Participant {
      Objects.requireNonNull(name);
      Objects.requireNonNull(client);
      ranges = List.copyOf(ranges);
      Objects.requireNonNull(server);
    }
  }

  /** Options of a cut; {@code cutId} "" = a random UUID. */
  public record CutOptions(Path output, List<Participant> participants, String cutId, int workers) {
    public CutOptions {
      Objects.requireNonNull(output);
      participants = List.copyOf(participants);
      Objects.requireNonNull(cutId);
      if (participants.isEmpty()) {
        throw new IllegalArgumentException("no participants");
      }
    }

    public static CutOptions of(Path output, List<Participant> participants) {
      return new CutOptions(output, participants, "", 2);
    }

    public CutOptions withCutId(String cutId) {
      return new CutOptions(output, participants, cutId, workers);
    }
  }

  /**
   * @param barrierStartNanos {@link System#nanoTime()} before the first protect
   * @param barrierEndNanos after the last protect, just before the release: the cut instant
   */
  public record CutResult(String cutId, Path dir, List<SnapshotResult> snapshots, long barrierStartNanos,
      long barrierEndNanos) {
    public Map<String, Object> toMap() {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("cutId", cutId);
      m.put("dir", dir.toString());
      m.put("barrierMillis", (barrierEndNanos - barrierStartNanos) / 1e6);
      m.put("participants", snapshots.stream().map(SnapshotResult::toMap).toList());
      return m;
    }

    public String toJson() {
      return Json.write(toMap());
    }

    public String toTable() {
      StringBuilder sb = new StringBuilder("cut " + cutId + "  barrier "
          + String.format("%.3f ms", (barrierEndNanos - barrierStartNanos) / 1e6) + "\n");
      List<List<Object>> rows = new ArrayList<>();
      for (SnapshotResult r : snapshots) {
        rows.add(List.of(r.dir().getFileName().toString(), r.pid(), r.pages(), r.zeroPages(), r.savedOnFault(),
            r.savedInBackground(), r.wpFaults()));
      }
      return sb.append(Tables.grid(List.of("participant", "pid", "pages", "zero", "onFault", "background",
          "wpFaults"), rows)).toString();
    }
  }

  public static CutResult take(CutOptions o) throws IOException {
    String cutId = o.cutId().isEmpty() ? UUID.randomUUID().toString() : o.cutId();
    Path target = o.output().toAbsolutePath();
    if (Files.exists(target)) {
      throw new FileAlreadyExistsException(target.toString());
    }
    Files.createDirectories(target.getParent());
    Path tmp = target.resolveSibling("." + target.getFileName() + ".tmp-" + UUID.randomUUID());
    Files.createDirectory(tmp);
    List<LiveSnapshot> snaps = new ArrayList<>();
    try {
      for (Participant p : o.participants()) {
        snaps.add(LiveSnapshot.prepare(p.client(), SnapshotOptions.of(p.pid(), tmp.resolve(p.name()))
            .withRanges(p.ranges()).withSourceServer(p.server()).withCutId(cutId).withWorkers(o.workers())));
      }
      // the barrier: protect all (in parallel, faults held), then release all
      long b0 = System.nanoTime();
      parallel(snaps, LiveSnapshot::protectHeld);
      long b1 = System.nanoTime();
      snaps.forEach(LiveSnapshot::release);
      List<SnapshotResult> results = new ArrayList<>();
      List<CompletableFuture<SnapshotResult>> fs = snaps.stream().map(s -> CompletableFuture.supplyAsync(() -> {
        try {
          return s.complete();
        } catch (IOException e) {
          throw new CompletionException(e);
        }
      }, r -> Thread.ofVirtual().start(r))).toList();
      for (CompletableFuture<SnapshotResult> f : fs) {
        try {
          results.add(f.join());
        } catch (CompletionException e) {
          throw new IOException("a participant's snapshot failed", e.getCause());
        }
      }
      List<SnapshotResult> moved = new ArrayList<>();
      for (SnapshotResult r : results) {
        moved.add(new SnapshotResult(target.resolve(r.dir().getFileName()), r.pid(), r.ranges(), r.pages(),
            r.zeroPages(), r.dataBytes(), r.savedOnFault(), r.savedInBackground(), r.wpFaults(), r.protectNanos(),
            r.totalNanos()));
      }
      CutResult cut = new CutResult(cutId, target, moved, b0, b1);
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("format", "uffdemu-cut");
      m.put("formatVersion", 1);
      m.put("cutId", cutId);
      m.put("createdAt", Instant.now().toString());
      m.put("barrierMillis", (b1 - b0) / 1e6);
      List<Object> ps = new ArrayList<>();
      for (Participant p : o.participants()) {
        ps.add(Map.of("name", p.name(), "pid", p.pid(), "server", p.server()));
      }
      m.put("participants", ps);
      try (FileChannel c = FileChannel.open(tmp.resolve("cut.json"), StandardOpenOption.CREATE_NEW,
          StandardOpenOption.WRITE)) {
        c.write(ByteBuffer.wrap(Json.write(m).getBytes(StandardCharsets.UTF_8)));
        c.force(true);
      }
      SnapshotFiles.fsyncDir(tmp);
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
      SnapshotFiles.fsyncDir(target.getParent());
      return cut;
    } finally {
      for (LiveSnapshot s : snaps) {
        s.close();
      }
      SnapshotFiles.deleteTree(tmp);
    }
  }

  private static void parallel(List<LiveSnapshot> snaps, java.util.function.Consumer<LiveSnapshot> op) {
    List<CompletableFuture<Void>> fs = snaps.stream().map(s -> CompletableFuture.runAsync(() -> op.accept(s),
        r -> Thread.ofVirtual().start(r))).toList();
    CompletableFuture.allOf(fs.toArray(CompletableFuture[]::new)).join();
  }
}
