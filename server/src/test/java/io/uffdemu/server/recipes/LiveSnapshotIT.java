package io.uffdemu.server.recipes;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.Linux;
import io.uffdemu.client.Memfd;
import io.uffdemu.client.MemoryType;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.PagemapEntry;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.recipes.LazyRestore;
import io.uffdemu.client.recipes.LiveSnapshot;
import io.uffdemu.client.recipes.RestoreOptions;
import io.uffdemu.client.recipes.RestoreResult;
import io.uffdemu.client.recipes.SnapshotFiles;
import io.uffdemu.client.recipes.SnapshotManifest;
import io.uffdemu.client.recipes.SnapshotOptions;
import io.uffdemu.client.recipes.SnapshotResult;
import io.uffdemu.client.recipes.SnapshotVerifier;
import io.uffdemu.client.recipes.Stamp;
import io.uffdemu.client.recipes.StampedWriters;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Recipes 1 and 4 end to end against the real server: a live snapshot taken while stamping writers run
 * throughout, proven equal to memory at the protect instant, then lazily restored into a fresh process.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
    properties = {"spring.grpc.server.port=0", "uffdemu.emulated.hugepages2m=64"})
class LiveSnapshotIT {
  static final long PAGE = 4096;
  static final long HUGE = 2L << 20;

  @LocalGrpcServerPort
  int port;
  @TempDir
  Path tmp;
  UffdemuClient client;
  final List<Process> procs = new ArrayList<>();

  @BeforeEach
  void connect() {
    client = UffdemuClient.connect("127.0.0.1", port);
  }

  @AfterEach
  void close() {
    for (Process p : procs) {
      try {
        p.exit();
      } catch (RuntimeException ignored) {
        // already gone
      }
    }
    client.close();
  }

  /** A guest with one mapping of {@code type}, its range, and the addresses the writers stamp. */
  record Guest(Process p, AddrRange range, long pageSize, List<Long> slots, int stampLength) {}

  Guest guest(MemoryType type) {
    Process p = client.createProcess("guest-" + type);
    procs.add(p);
    return switch (type) {
      case HUGETLB -> {
        long len = 4 * HUGE;
        long a = p.mmap(MmapOptions.anonymous(len).hugetlb2M());
        List<Long> slots = new ArrayList<>();
        for (long off = 0; off < len; off += 128 * 1024) {
          slots.add(a + off); // 16 stamp slots per huge page
        }
        yield new Guest(p, new AddrRange(a, len), HUGE, slots, 256);
      }
      case SHMEM -> {
        long len = 128 * PAGE;
        Memfd m = p.memfdCreate("guest-ram", Linux.MFD_CLOEXEC);
        m.ftruncate(len);
        long a = m.mmap(len, 0);
        yield new Guest(p, new AddrRange(a, len), PAGE, pages(a, len), 512);
      }
      default -> {
        long len = 128 * PAGE;
        long a = p.mmap(MmapOptions.anonymous(len));
        yield new Guest(p, new AddrRange(a, len), PAGE, pages(a, len), 512);
      }
    };
  }

  static List<Long> pages(long a, long len) {
    List<Long> out = new ArrayList<>();
    for (long off = 0; off < len; off += PAGE) {
      out.add(a + off);
    }
    return out;
  }

  /** Takes a snapshot of g while writers run before, during and after it; proves it with the oracle. */
  SnapshotResult snapshotUnderLoad(Guest g, MemoryType type, Path dir) throws Exception {
    // every third slot stays never-written before the snapshot: holes under WP_UNPOPULATED markers
    // and the last page is never written at all: only the background copiers save it
    long lastPage = g.range().end() - g.pageSize();
    List<Long> stamped = g.slots().stream().filter(a -> (a / 4096) % 3 != 0 && a < lastPage).toList();
    try (StampedWriters w = new StampedWriters(g.p(), stamped, 8, g.stampLength(), 42)) {
      w.start();
      while (w.writes() < 100) {
        Thread.sleep(5);
      }
      LiveSnapshot snap = LiveSnapshot.prepare(client, SnapshotOptions.of(g.p().pid(), dir)
          .withRanges(List.of(g.range())).withSourceServer("127.0.0.1:" + port).withWorkers(2));
      SnapshotResult r;
      long t0;
      long t1;
      try (snap) {
        snap.protect();
        t0 = snap.protectStartNanos();
        t1 = snap.protectEndNanos();
        // let the writers run into protected pages before the copiers start
        Thread.sleep(300);
        r = snap.complete();
      }
      long afterComplete = System.nanoTime();
      while (w.writesStartedAfter(afterComplete) < 50) {
        Thread.sleep(5);
      }
      w.stop();
      System.out.print(r.toTable());

      // the proof: every stamped page holds a version it held at the protect instant
      SnapshotVerifier.Report rep = SnapshotVerifier.verifyAgainst(r.dir(), w, t0, t1);
      System.out.print(rep.toJson());
      rep.throwIfFailed();
      assertThat(rep.pages()).isEqualTo(stamped.size());
      assertThat(rep.exact()).as("pages whose version at the instant is unambiguous").isGreaterThan(0);
      // writers ran throughout: blocked across the instant or faulting on protected pages, and kept writing
      assertThat(r.wpFaults()).as("WP faults while the snapshot ran").isGreaterThan(0);
      assertThat(r.savedOnFault()).isGreaterThan(0);
      assertThat(r.savedInBackground()).isGreaterThan(0);
      assertThat(w.writesStartedAfter(t1)).isGreaterThan(0);
      assertThat(w.writesStartedAfter(afterComplete)).isGreaterThan(0);

      // the manifest describes the mapping
      SnapshotManifest m = SnapshotManifest.read(r.dir());
      assertThat(m.ranges()).hasSize(1);
      assertThat(m.ranges().getFirst().memoryType()).isEqualTo(type);
      assertThat(m.ranges().getFirst().pageSize()).isEqualTo(g.pageSize());
      assertThat(m.pageCount()).isEqualTo(g.range().len() / g.pageSize());
      assertThat(m.pid()).isEqualTo(g.p().pid());
      if (type != MemoryType.HUGETLB) {
        assertThat(m.zeroPages()).as("never-written pages are zero pages").isGreaterThan(0);
      }
      // committed atomically: no temporary directory is left
      try (Stream<Path> s = Files.list(dir.getParent())) {
        assertThat(s.filter(x -> x.getFileName().toString().contains(".tmp-")).toList()).isEmpty();
      }

      // afterwards: memory is unprotected and holds every write (no write lost)
      for (PagemapEntry e : g.p().pagemap(g.range().start(), g.range().len() / PAGE)) {
        assertThat(e.uffdWp()).as("wp left at 0x%x", e.address()).isFalse();
      }
      for (long slot : stamped) {
        Stamp s = Stamp.decode(g.p().read(slot, g.stampLength()).data(), g.stampLength());
        long last = w.lastVersion(slot);
        assertThat(s == null ? 0 : s.version()).as("last write to 0x%x", slot).isEqualTo(last);
      }
      return r;
    }
  }

  @ParameterizedTest
  @EnumSource(value = MemoryType.class, names = {"ANON", "SHMEM", "HUGETLB"})
  @Timeout(120)
  void liveSnapshotEqualsMemoryAtTheInstantThenLazyRestoreReadsItBack(MemoryType type) throws Exception {
    Guest g = guest(type);
    Path dir = tmp.resolve("snap-" + type);
    SnapshotResult snap = snapshotUnderLoad(g, type, dir);
    SnapshotVerifier.verifyFile(snap.dir()).throwIfFailed();

    // recipe 4: restore into a fresh process, touch every page first (faults), then let prefetch finish
    try (LazyRestore restore = LazyRestore.start(client, RestoreOptions.of(dir).withProcessName("restored-" + type)
        .withPrefetch(false));
        SnapshotFiles.Reader reader = new SnapshotFiles.Reader(dir)) {
      Process q = restore.process();
      procs.add(q);
      SnapshotManifest.Range range = reader.manifest().ranges().getFirst();
      for (int i = 0; i < range.pageCount(); i++) {
        byte[] got = readPage(q, range.pageAddress(i), range.pageSize());
        assertThat(Arrays.equals(got, reader.page(range, i))).as("restored page %d", i).isTrue();
      }
      RestoreResult rr = restore.result();
      System.out.print(rr.toTable());
      assertThat(rr.faultCopies() + rr.faultZeros()).isEqualTo(range.pageCount());
      assertThat(rr.faultCopies()).isEqualTo(range.pageCount() - reader.manifest().zeroPages());
    }
  }

  @Test
  @Timeout(120)
  void wholeProcessWithAnonShmemAndHugetlbMappingsIsOneInstant() throws Exception {
    Process p = client.createProcess("guest-mixed");
    procs.add(p);
    long anon = p.mmap(MmapOptions.anonymous(32 * PAGE));
    Memfd m = p.memfdCreate("ram", Linux.MFD_CLOEXEC);
    m.ftruncate(32 * PAGE);
    long shmem = m.mmap(32 * PAGE, 0);
    long huge = p.mmap(MmapOptions.anonymous(2 * HUGE).hugetlb2M());
    List<Long> slots = new ArrayList<>(pages(anon, 32 * PAGE));
    slots.addAll(pages(shmem, 32 * PAGE));
    for (long off = 0; off < 2 * HUGE; off += 256 * 1024) {
      slots.add(huge + off);
    }
    Path dir = tmp.resolve("snap-mixed");
    try (StampedWriters w = new StampedWriters(p, slots, 8, 128, 3)) {
      w.start();
      while (w.writes() < 100) {
        Thread.sleep(5);
      }
      // no ranges: every writable mapping of the process, as `uffdemu snapshot --pid` would do
      LiveSnapshot snap = LiveSnapshot.prepare(client, SnapshotOptions.of(p.pid(), dir));
      long t0;
      long t1;
      SnapshotResult r;
      try (snap) {
        assertThat(snap.ranges()).hasSize(3);
        snap.protect();
        t0 = snap.protectStartNanos();
        t1 = snap.protectEndNanos();
        Thread.sleep(200);
        r = snap.complete();
      }
      long after = System.nanoTime();
      while (w.writesStartedAfter(after) < 20) {
        Thread.sleep(5);
      }
      w.stop();
      System.out.print(r.toTable());
      SnapshotVerifier.verifyAgainst(dir, w, t0, t1).throwIfFailed();
      SnapshotManifest man = SnapshotManifest.read(dir);
      assertThat(man.ranges()).extracting(SnapshotManifest.Range::memoryType)
          .containsExactlyInAnyOrder(MemoryType.ANON, MemoryType.SHMEM, MemoryType.HUGETLB);
      assertThat(man.ranges()).extracting(SnapshotManifest.Range::protectedAt).containsOnly(
          man.ranges().getFirst().protectedAt());
      assertThat(r.wpFaults()).isGreaterThan(0);
    }
    // and the whole process comes back
    try (LazyRestore restore = LazyRestore.start(client, RestoreOptions.of(dir).withProcessName("restored-mixed"));
        SnapshotFiles.Reader reader = new SnapshotFiles.Reader(dir)) {
      procs.add(restore.process());
      restore.awaitPrefetch(Duration.ofSeconds(60));
      for (SnapshotManifest.Range range : reader.manifest().ranges()) {
        for (int i = 0; i < range.pageCount(); i++) {
          assertThat(Arrays.equals(readPage(restore.process(), range.pageAddress(i), range.pageSize()),
              reader.page(range, i))).as("%s page %d", range.memoryType(), i).isTrue();
        }
      }
    }
  }

  static byte[] readPage(Process p, long addr, long pageSize) {
    byte[] out = new byte[(int) pageSize];
    int chunk = (int) Math.min(pageSize, 1 << 20);
    for (int off = 0; off < pageSize; off += chunk) {
      var r = p.read(addr + off, chunk);
      assertThat(r.ok()).as("read 0x%x: signal %d errno %d", addr + off, r.signal(), r.errno()).isTrue();
      System.arraycopy(r.data(), 0, out, off, chunk);
    }
    return out;
  }

  @Test
  @Timeout(120)
  void lazyRestoreWithPrefetchAndBalloonRemoves() throws Exception {
    Guest g = guest(MemoryType.ANON);
    Path dir = tmp.resolve("snap-prefetch");
    SnapshotResult snap = snapshotUnderLoad(g, MemoryType.ANON, dir);

    try (LazyRestore restore = LazyRestore.start(client, RestoreOptions.of(dir).withProcessName("restored-pf"));
        SnapshotFiles.Reader reader = new SnapshotFiles.Reader(dir)) {
      Process q = restore.process();
      procs.add(q);
      SnapshotManifest.Range range = reader.manifest().ranges().getFirst();
      // faults race the prefetch
      for (int i = range.pageCount() - 1; i >= range.pageCount() - 8; i--) {
        assertThat(readPage(q, range.pageAddress(i), PAGE)).isEqualTo(reader.page(range, i));
      }
      restore.awaitPrefetch(Duration.ofSeconds(60));
      RestoreResult rr = restore.result();
      assertThat(rr.prefetchDone()).isTrue();
      assertThat(rr.prefetched()).isGreaterThan(0);
      // every page was populated once, by a fault or by the prefetch (a fault that lost the race is eexist)
      assertThat(rr.prefetched() + rr.faultCopies() + rr.faultZeros()).isEqualTo(range.pageCount());
      for (int i = 0; i < range.pageCount(); i++) {
        assertThat(readPage(q, range.pageAddress(i), PAGE)).as("page %d", i).isEqualTo(reader.page(range, i));
      }
      // after the prefetch every page is present: reads raise no more faults
      assertThat(restore.result().faultCopies() + restore.result().faultZeros())
          .isEqualTo(rr.faultCopies() + rr.faultZeros());

      // balloon: the guest gives 4 pages back; a later touch must see zeroes, not snapshot data
      long first = range.pageAddress(10);
      q.madvise(first, 4 * PAGE, Linux.MADV_DONTNEED);
      for (int i = 10; i < 14; i++) {
        assertThat(readPage(q, range.pageAddress(i), PAGE)).as("removed page %d", i).isEqualTo(new byte[4096]);
      }
      RestoreResult after = restore.result();
      System.out.print(after.toTable());
      assertThat(after.removeEvents()).isEqualTo(1);
      assertThat(after.removedPages()).isEqualTo(4);
      assertThat(after.faultZeros()).isGreaterThanOrEqualTo(rr.faultZeros() + 4);
      assertThat(snap.pages()).isEqualTo(range.pageCount());
    }
  }
}
