package io.uffdemu.client.recipes;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.MemoryType;
import java.time.Duration;
import java.util.Objects;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Options of a {@link LoadTest} run (what {@code uffdemu bench} takes on its command line).
 *
 * @param threads emulated threads issuing accesses (virtual threads; thousands are fine)
 * @param pages pages in the mapping
 * @param memory ANON (private), SHMEM (MAP_SHARED anon) or HUGETLB (2 MiB pages, private)
 * @param pattern which page each access hits
 * @param writeRatio fraction of accesses that are stores (0..1)
 * @param mode which faults the handler serves: MISSING (the handler fills pages) or WP (pages are populated and
 *     write-protected; the handler un-protects on each WP fault)
 * @param opsPerThread accesses per thread (the run also stops at {@code duration} when set)
 * @param duration wall-clock limit, or null
 * @param handlerWorkers workers of the built-in handler loop
 * @param handler null for the built-in handler (MISSING: UFFDIO_COPY of a pattern page; WP: un-protect), or a
 *     user handler. A user handler in MISSING mode must fill pages with {@link LoadTest#fillPattern}, or set
 *     {@code checkFill} false
 * @param checkFill check that never-written bytes hold the fill pattern (MISSING) or zeroes (WP)
 * @param chaos faults injected while the run goes on
 * @param chaosIntervalMillis mean time between chaos events (0 = none)
 * @param seed seeds the access and chaos schedules: the same seed replays the same per-thread sequences
 * @param external null, or a callback that attaches a handler running elsewhere (another process, any language,
 *     over gRPC) to the {@link BenchTarget}'s uffd and returns once it is attached; the bench then starts no
 *     handler of its own. Without a view of that handler, {@code handlerFaults} and {@code eagain} are -1 and
 *     the WP "reached the handler" check is skipped
 */
public record BenchOptions(int threads, long pages, MemoryType memory, Pattern pattern, double writeRatio, Mode mode,
    long opsPerThread, Duration duration, int handlerWorkers, FaultHandler handler, boolean checkFill,
    Set<Chaos> chaos, long chaosIntervalMillis, long seed, Consumer<BenchTarget> external) {

  public enum Pattern { SEQUENTIAL, RANDOM, ZIPFIAN }

  public enum Mode { MISSING, WP }

  public enum Chaos {
    /** MADV_DONTNEED of a random page (anon/hugetlb: content dropped and refilled; shmem: PTE only). */
    ZAP,
    /** MADV_PAGEOUT of a random page (not hugetlb): swapped out, content kept, wp kept. */
    PAGEOUT,
    /** mprotect RO then RW of one 4 KiB page (splits a THP / the VMA), content and wp kept. Not hugetlb. */
    SPLIT,
    /** MADV_REMOVE of a random page (shmem only): a hole again; REMOVE event. */
    REMOVE
  }

  public BenchOptions {
    Objects.requireNonNull(memory);
    Objects.requireNonNull(pattern);
    Objects.requireNonNull(mode);
    chaos = Set.copyOf(chaos);
    if (threads < 1 || pages < 1 || opsPerThread < 1 || handlerWorkers < 1) {
      throw new IllegalArgumentException("threads, pages, opsPerThread and handlerWorkers must be >= 1");
    }
    if (writeRatio < 0 || writeRatio > 1) {
      throw new IllegalArgumentException("writeRatio must be in [0, 1]");
    }
    if (memory == MemoryType.UNSPECIFIED) {
      throw new IllegalArgumentException("memory must be ANON, SHMEM or HUGETLB");
    }
  }

  /** 16 threads, 256 anon pages, random, 30% writes, MISSING, 200 ops per thread, built-in handler, no chaos. */
  public static BenchOptions defaults() {
    return new BenchOptions(16, 256, MemoryType.ANON, Pattern.RANDOM, 0.3, Mode.MISSING, 200, null, 4, null, true,
        Set.of(), 0, 1, null);
  }

  public long pageSize() {
    return memory == MemoryType.HUGETLB ? 2L << 20 : 4096;
  }

  public BenchOptions withThreads(int v) {
    return new BenchOptions(v, pages, memory, pattern, writeRatio, mode, opsPerThread, duration, handlerWorkers,
        handler, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withPages(long v) {
    return new BenchOptions(threads, v, memory, pattern, writeRatio, mode, opsPerThread, duration, handlerWorkers,
        handler, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withMemory(MemoryType v) {
    return new BenchOptions(threads, pages, v, pattern, writeRatio, mode, opsPerThread, duration, handlerWorkers,
        handler, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withPattern(Pattern v) {
    return new BenchOptions(threads, pages, memory, v, writeRatio, mode, opsPerThread, duration, handlerWorkers,
        handler, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withWriteRatio(double v) {
    return new BenchOptions(threads, pages, memory, pattern, v, mode, opsPerThread, duration, handlerWorkers,
        handler, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withMode(Mode v) {
    return new BenchOptions(threads, pages, memory, pattern, writeRatio, v, opsPerThread, duration, handlerWorkers,
        handler, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withOpsPerThread(long v) {
    return new BenchOptions(threads, pages, memory, pattern, writeRatio, mode, v, duration, handlerWorkers,
        handler, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withDuration(Duration v) {
    return new BenchOptions(threads, pages, memory, pattern, writeRatio, mode, opsPerThread, v, handlerWorkers,
        handler, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withHandlerWorkers(int v) {
    return new BenchOptions(threads, pages, memory, pattern, writeRatio, mode, opsPerThread, duration, v,
        handler, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withHandler(FaultHandler v, boolean checkFill) {
    return new BenchOptions(threads, pages, memory, pattern, writeRatio, mode, opsPerThread, duration,
        handlerWorkers, v, checkFill, chaos, chaosIntervalMillis, seed, external);
  }

  public BenchOptions withChaos(Set<Chaos> v, long intervalMillis) {
    return new BenchOptions(threads, pages, memory, pattern, writeRatio, mode, opsPerThread, duration,
        handlerWorkers, handler, checkFill, v, intervalMillis, seed, external);
  }

  /** A handler outside this JVM: see {@link #external()}. */
  public BenchOptions withExternalHandler(Consumer<BenchTarget> attach, boolean checkFill) {
    return new BenchOptions(threads, pages, memory, pattern, writeRatio, mode, opsPerThread, duration,
        handlerWorkers, null, checkFill, chaos, chaosIntervalMillis, seed, attach);
  }

  /**
   * What an external handler attaches to.
   *
   * @param pid the bench process
   * @param uffd its userfaultfd (registered; in WP mode the range is already write-protected)
   * @param range the mapping; page i starts at {@code range.start() + i * pageSize}
   */
  public record BenchTarget(int pid, int uffd, AddrRange range, long pageSize, Mode mode) {}

  public BenchOptions withSeed(long v) {
    return new BenchOptions(threads, pages, memory, pattern, writeRatio, mode, opsPerThread, duration,
        handlerWorkers, handler, checkFill, chaos, chaosIntervalMillis, v, external);
  }
}
