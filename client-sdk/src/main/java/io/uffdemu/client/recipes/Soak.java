package io.uffdemu.client.recipes;

import io.grpc.ManagedChannel;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.impl.ClientFactory;
import io.uffdemu.client.MemoryType;
import io.uffdemu.client.UffdemuClient;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Soak: mixed load for a long time, with handler restarts, watching that the server's memory stays flat and no
 * write is lost (issue 8; {@code uffdemu soak}).
 *
 * <p>The run is a sequence of {@link LoadTest} rounds that rotate memory type (anonymous, shared), mode (MISSING,
 * WP), access pattern and chaos (zap, page-out, VMA split, REMOVE). Every round's handler runs on a connection
 * of its own and is killed (its connection closed abruptly, not a clean close) every {@code restartEvery} while
 * faults are in flight; the next incarnation attaches by pid and uffd fd, as a restarted handler process would,
 * and the server re-delivers what the dead one held (its handler grace period). Every round checks its
 * integrity oracle: a lost or torn write is a violation.
 *
 * <p>Between rounds it samples the server's Prometheus endpoint: heap in use ({@code jvm_memory_used_bytes},
 * area heap), resident memory ({@code uffdemu_process_resident_bytes}) and emulated memory in use
 * ({@code uffdemu_memory_resident_bytes}). Heap use saw-tooths with garbage collection, so flatness is judged on
 * the minimum of each quarter of the run (the floor the collector returns to): the last quarter's floor must
 * not exceed the first quarter's by more than {@code growthTolerance} (fraction) plus {@code growthSlackBytes}.
 *
 * <pre>{@code
 * Soak.Result r = Soak.run(ClientConfig.DEFAULT.withTarget("127.0.0.1:9090"),
 *     Soak.Options.DEFAULT.withDuration(Duration.ofHours(1)), System.out::println);
 * if (!r.ok()) System.exit(1);
 * }</pre>
 */
public final class Soak {
  private Soak() {
  }

  /**
   * @param duration total wall-clock time
   * @param roundLength length of one load round
   * @param restartEvery how often the running handler is killed and a new one attached (null = never)
   * @param threads faulting threads per round
   * @param pages pages per round's mapping
   * @param metricsUrl the server's /actuator/prometheus, or null to skip the memory checks
   * @param growthTolerance allowed growth of the memory floors, as a fraction (0.10 = 10 %)
   * @param growthSlackBytes allowed growth on top of the fraction
   */
  public record Options(Duration duration, Duration roundLength, Duration restartEvery, int threads, long pages,
      URI metricsUrl, double growthTolerance, long growthSlackBytes) {
    /** 1 hour, 20 s rounds, a handler killed every 3 s, 32 threads on 512 pages, no metrics, 10 % + 32 MiB. */
    public static final Options DEFAULT = new Options(Duration.ofHours(1), Duration.ofSeconds(20),
        Duration.ofSeconds(3), 32, 512, null, 0.10, 32L << 20);

    public Options {
      Objects.requireNonNull(duration, "duration");
      Objects.requireNonNull(roundLength, "roundLength");
      if (threads < 1 || pages < 1 || growthTolerance < 0 || growthSlackBytes < 0 || duration.isNegative()
          || roundLength.isZero() || roundLength.isNegative()) {
        throw new IllegalArgumentException("bad soak options");
      }
    }

    public Options withDuration(Duration d) {
      return new Options(d, roundLength, restartEvery, threads, pages, metricsUrl, growthTolerance,
          growthSlackBytes);
    }

    public Options withRoundLength(Duration d) {
      return new Options(duration, d, restartEvery, threads, pages, metricsUrl, growthTolerance, growthSlackBytes);
    }

    public Options withRestartEvery(Duration d) {
      return new Options(duration, roundLength, d, threads, pages, metricsUrl, growthTolerance, growthSlackBytes);
    }

    public Options withLoad(int threads, long pages) {
      return new Options(duration, roundLength, restartEvery, threads, pages, metricsUrl, growthTolerance,
          growthSlackBytes);
    }

    public Options withMetricsUrl(URI url) {
      return new Options(duration, roundLength, restartEvery, threads, pages, url, growthTolerance,
          growthSlackBytes);
    }

    public Options withGrowth(double tolerance, long slackBytes) {
      return new Options(duration, roundLength, restartEvery, threads, pages, metricsUrl, tolerance, slackBytes);
    }
  }

  /** One sample, taken after a round; memory figures are -1 when not sampled. */
  public record Sample(int round, long elapsedMillis, String load, long ops, long faults, int restarts,
      long violations, long heapUsedBytes, long residentBytes, long emulatedUsedBytes) {
  }

  /** The soak's outcome. {@link #ok()} when nothing was lost and memory stayed flat. */
  public record Result(List<Sample> samples, long ops, long faults, int restarts, long violations,
      List<String> firstViolations, List<String> memoryFindings) {
    public boolean ok() {
      return violations == 0 && memoryFindings.isEmpty() && !samples.isEmpty();
    }

    /** A Markdown table of the samples and the verdict. */
    public String toTable() {
      StringBuilder sb = new StringBuilder();
      sb.append("| round | elapsed s | load | ops | faults | handler restarts | violations | heap MiB | RSS MiB |"
          + " emulated MiB |\n|---|---|---|---|---|---|---|---|---|---|\n");
      for (Sample s : samples) {
        sb.append(String.format("| %d | %.0f | %s | %d | %d | %d | %d | %s | %s | %s |%n", s.round(),
            s.elapsedMillis() / 1000.0, s.load(), s.ops(), s.faults(), s.restarts(), s.violations(),
            mib(s.heapUsedBytes()), mib(s.residentBytes()), mib(s.emulatedUsedBytes())));
      }
      sb.append(String.format("%ntotal: %d ops, %d faults, %d handler restarts, %d violations%n", ops, faults,
          restarts, violations));
      for (String v : firstViolations) {
        sb.append("violation: ").append(v).append('\n');
      }
      for (String f : memoryFindings) {
        sb.append("memory: ").append(f).append('\n');
      }
      sb.append(ok() ? "verdict: OK (no lost write, memory flat)\n" : "verdict: FAILED\n");
      return sb.toString();
    }

    private static String mib(long b) {
      return b < 0 ? "-" : String.format("%.1f", b / 1048576.0);
    }
  }

  private record Load(MemoryType memory, BenchOptions.Mode mode, BenchOptions.Pattern pattern,
      Set<BenchOptions.Chaos> chaos) {
    @Override
    public String toString() {
      return memory + "/" + mode + "/" + pattern + (chaos.isEmpty() ? "" : "/" + chaos);
    }
  }

  private static final List<Load> LOADS = List.of(
      new Load(MemoryType.ANON, BenchOptions.Mode.MISSING, BenchOptions.Pattern.RANDOM,
          Set.of(BenchOptions.Chaos.ZAP, BenchOptions.Chaos.SPLIT)),
      new Load(MemoryType.SHMEM, BenchOptions.Mode.WP, BenchOptions.Pattern.ZIPFIAN,
          Set.of(BenchOptions.Chaos.PAGEOUT, BenchOptions.Chaos.ZAP)),
      new Load(MemoryType.SHMEM, BenchOptions.Mode.MISSING, BenchOptions.Pattern.SEQUENTIAL,
          Set.of(BenchOptions.Chaos.REMOVE)),
      new Load(MemoryType.ANON, BenchOptions.Mode.WP, BenchOptions.Pattern.RANDOM,
          Set.of(BenchOptions.Chaos.PAGEOUT, BenchOptions.Chaos.SPLIT)));

  /**
   * Runs the soak against the server {@code config} names: one connection for the load, one per handler
   * incarnation. {@code onSample} sees each sample as it is taken.
   */
  public static Result run(ClientConfig config, Options o, Consumer<Sample> onSample) {
    List<Sample> samples = new ArrayList<>();
    List<String> firstViolations = new ArrayList<>();
    long ops = 0;
    long faults = 0;
    long violations = 0;
    int restarts = 0;
    long start = System.nanoTime();
    long end = start + o.duration().toNanos();
    HttpClient http = o.metricsUrl() == null ? null : HttpClient.newBuilder()
        .connectTimeout(Duration.ofSeconds(5)).build();
    try (UffdemuClient load = UffdemuClient.connect(config)) {
      for (int round = 0; System.nanoTime() < end || round == 0; round++) {
        Load l = LOADS.get(round % LOADS.size());
        Duration len = Duration.ofNanos(Math.max(1_000_000L, Math.min(o.roundLength().toNanos(),
            end - System.nanoTime())));
        Incarnations inc = new Incarnations(config, o.restartEvery());
        BenchOptions bo = new BenchOptions(o.threads(), o.pages(), l.memory(), l.pattern(), 0.5, l.mode(),
            Long.MAX_VALUE / 4, len, 4, null, true, l.chaos(), 200, 1000L + round, inc::attach);
        BenchResult r;
        try {
          r = LoadTest.run(load, bo);
        } finally {
          inc.stop();
        }
        ops += r.ops();
        faults += r.faults();
        restarts += inc.restarts;
        violations += r.violationCount() + r.errors();
        for (String v : r.violations()) {
          if (firstViolations.size() < 20) {
            firstViolations.add("round " + round + ": " + v);
          }
        }
        long[] mem = http == null ? new long[] {-1, -1, -1} : scrape(http, o.metricsUrl());
        Sample s = new Sample(round, (System.nanoTime() - start) / 1_000_000, l.toString(), r.ops(), r.faults(),
            inc.restarts, r.violationCount() + r.errors(), mem[0], mem[1], mem[2]);
        samples.add(s);
        onSample.accept(s);
      }
    }
    return new Result(List.copyOf(samples), ops, faults, restarts, violations, List.copyOf(firstViolations),
        memoryFindings(samples, o));
  }

  /** Handler incarnations of one round: each on a connection of its own, killed every {@code every}. */
  private static final class Incarnations {
    private final ClientConfig config;
    private final Duration every;
    private volatile boolean stopped;
    private ManagedChannel channel;
    private UffdemuClient current;
    private HandlerLoop loop;
    private Thread killer;
    int restarts;

    Incarnations(ClientConfig config, Duration every) {
      this.config = config;
      this.every = every;
    }

    synchronized void attach(BenchOptions.BenchTarget t) {
      start(t);
      if (every != null && !every.isZero()) {
        killer = Thread.ofVirtual().name("soak-handler-killer").start(() -> {
          while (!stopped) {
            try {
              Thread.sleep(every);
            } catch (InterruptedException e) {
              return;
            }
            synchronized (this) {
              if (stopped) {
                return;
              }
              kill();
              restarts++;
              start(t);
            }
          }
        });
      }
    }

    private void start(BenchOptions.BenchTarget t) {
      channel = ClientFactory.channel(config);
      current = ClientFactory.create(channel, config);
      loop = current.process(t.pid()).userfaultfd(t.uffd()).handle(
          LoadTest.builtInHandler(t.range().start(), t.pageSize(), t.mode()), HandlerOptions.DEFAULT
          .withPageSize(t.pageSize()).withReconnect(io.uffdemu.client.ReconnectPolicy.DISABLED));
    }

    /** The handler dies as a crashed process would: its transport goes, faults it held are in flight. */
    private void kill() {
      channel.shutdownNow();
      current.close();
    }

    synchronized void stop() {
      stopped = true;
      if (killer != null) {
        killer.interrupt();
      }
      if (current != null) {
        try {
          loop.close();
        } catch (RuntimeException ignored) {
          // the round's process is gone already
        }
        current.close();
        channel.shutdownNow();
      }
    }
  }

  /** heap used, resident, emulated used (bytes); -1 for what the endpoint does not have. */
  static long[] scrape(HttpClient http, URI url) {
    try {
      HttpResponse<String> resp = http.send(HttpRequest.newBuilder(url).timeout(Duration.ofSeconds(10)).build(),
          HttpResponse.BodyHandlers.ofString());
      if (resp.statusCode() != 200) {
        throw new IllegalStateException("GET " + url + ": HTTP " + resp.statusCode());
      }
      return parse(resp.body());
    } catch (IOException e) {
      throw new IllegalStateException("GET " + url + ": " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
  }

  /** Sums the heap areas of jvm_memory_used_bytes; reads the two uffdemu gauges. */
  static long[] parse(String text) {
    double heap = -1;
    double rss = -1;
    double emulated = -1;
    for (String line : text.split("\n")) {
      if (line.startsWith("#") || line.isBlank()) {
        continue;
      }
      int sp = line.lastIndexOf(' ');
      if (sp < 0) {
        continue;
      }
      double v;
      try {
        v = Double.parseDouble(line.substring(sp + 1));
      } catch (NumberFormatException e) {
        continue;
      }
      if (line.startsWith("jvm_memory_used_bytes{") && line.contains("area=\"heap\"")) {
        heap = (heap < 0 ? 0 : heap) + v;
      } else if (line.startsWith("uffdemu_process_resident_bytes")) {
        rss = v;
      } else if (line.startsWith("uffdemu_memory_resident_bytes")) {
        emulated = (emulated < 0 ? 0 : emulated) + v;
      }
    }
    return new long[] {(long) heap, (long) rss, (long) emulated};
  }

  /** Compares the floors (minima) of the first and the last quarter of the samples. */
  public static List<String> memoryFindings(List<Sample> samples, Options o) {
    List<String> out = new ArrayList<>();
    if (o.metricsUrl() == null || samples.size() < 4) {
      return out;
    }
    // the first quarter is warm-up (JIT, heap expansion, pools filling): the second quarter is the baseline
    int q = samples.size() / 4;
    List<Sample> first = samples.size() >= 8 ? samples.subList(q, 2 * q) : samples.subList(0, q);
    List<Sample> last = samples.subList(samples.size() - q, samples.size());
    check(out, "heap", first.stream().mapToLong(Sample::heapUsedBytes).min().orElse(-1),
        last.stream().mapToLong(Sample::heapUsedBytes).min().orElse(-1), o);
    check(out, "resident", first.stream().mapToLong(Sample::residentBytes).min().orElse(-1),
        last.stream().mapToLong(Sample::residentBytes).min().orElse(-1), o);
    check(out, "emulated memory", first.stream().mapToLong(Sample::emulatedUsedBytes).min().orElse(-1),
        last.stream().mapToLong(Sample::emulatedUsedBytes).min().orElse(-1), o);
    return out;
  }

  private static void check(List<String> out, String what, long before, long after, Options o) {
    if (before < 0 || after < 0) {
      out.add(what + " was not reported by the metrics endpoint");
      return;
    }
    long allowed = before + (long) (before * o.growthTolerance()) + o.growthSlackBytes();
    if (after > allowed) {
      out.add(String.format("%s floor grew from %.1f MiB to %.1f MiB (allowed %.1f MiB)", what,
          before / 1048576.0, after / 1048576.0, allowed / 1048576.0));
    }
  }
}
