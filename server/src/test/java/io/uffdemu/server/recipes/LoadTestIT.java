package io.uffdemu.server.recipes;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.FaultContext;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.MemoryType;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.recipes.BenchOptions;
import io.uffdemu.client.recipes.BenchOptions.Chaos;
import io.uffdemu.client.recipes.BenchOptions.Mode;
import io.uffdemu.client.recipes.BenchOptions.Pattern;
import io.uffdemu.client.recipes.BenchResult;
import io.uffdemu.client.recipes.LoadTest;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/** Recipe 5 end to end: the load tester against the built-in handlers, with chaos, and against buggy handlers. */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
    properties = {"spring.grpc.server.port=0", "uffdemu.emulated.hugepages2m=64"})
class LoadTestIT {
  @LocalGrpcServerPort
  int port;
  UffdemuClient client;

  @BeforeEach
  void connect() {
    client = UffdemuClient.connect("127.0.0.1", port);
  }

  @AfterEach
  void close() {
    client.close();
  }

  static BenchResult report(BenchResult r) {
    System.out.print(r.toTable());
    return r;
  }

  @Test
  @Timeout(120)
  void missingAnonRandomWithChaosPassesTheOracle() {
    BenchResult r = report(LoadTest.run(client, BenchOptions.defaults().withThreads(32).withPages(96)
        .withOpsPerThread(60).withChaos(Set.of(Chaos.ZAP, Chaos.PAGEOUT, Chaos.SPLIT), 5).withSeed(7)));
    assertThat(r.violations()).isEmpty();
    assertThat(r.ok()).isTrue();
    assertThat(r.ops()).isEqualTo(32 * 60);
    assertThat(r.faults()).isGreaterThan(0);
    assertThat(r.handlerFaults()).isGreaterThanOrEqualTo(96);
    assertThat(r.chaos().values().stream().mapToLong(Long::longValue).sum()).isGreaterThan(0);
    assertThat(r.faultLatency().getTotalCount()).isEqualTo(r.faults());
    assertThat(r.toJson()).contains("\"faultLatencyMicros\"", "\"p99.9\"", "\"blocked\"");
    assertThat(r.toHtml()).contains("<svg", "polyline");
  }

  @Test
  @Timeout(120)
  void wpShmemZipfianWithZapAndRemovePassesTheOracle() {
    BenchResult r = report(LoadTest.run(client, BenchOptions.defaults().withThreads(24).withPages(64)
        .withMemory(MemoryType.SHMEM).withMode(Mode.WP).withPattern(Pattern.ZIPFIAN).withWriteRatio(0.6)
        .withOpsPerThread(50).withChaos(Set.of(Chaos.ZAP, Chaos.REMOVE), 5)));
    assertThat(r.violations()).isEmpty();
    assertThat(r.ok()).isTrue();
    assertThat(r.faults()).isGreaterThan(0);
    // "faults" is the oracle's estimate (a store that began while the page was protected); two stores racing
    // on one page may share one WP fault, so the handler can see fewer
    assertThat(r.handlerFaults()).isGreaterThan(0).isLessThanOrEqualTo(r.faults() + 25);
  }

  @Test
  @Timeout(120)
  void hugetlbSequential() {
    BenchResult r = report(LoadTest.run(client, BenchOptions.defaults().withThreads(8).withPages(8)
        .withMemory(MemoryType.HUGETLB).withPattern(Pattern.SEQUENTIAL).withOpsPerThread(24)
        .withChaos(Set.of(Chaos.ZAP), 20)));
    assertThat(r.violations()).isEmpty();
    assertThat(r.ok()).isTrue();
    assertThat(r.options().pageSize()).isEqualTo(2L << 20);
    assertThat(r.faults()).isGreaterThanOrEqualTo(8);
  }

  @Test
  @Timeout(180)
  void aThousandThreads() {
    BenchResult r = report(LoadTest.run(client, BenchOptions.defaults().withThreads(1000).withPages(256)
        .withOpsPerThread(6).withHandlerWorkers(16)));
    assertThat(r.violations()).isEmpty();
    assertThat(r.ok()).isTrue();
    assertThat(r.ops()).isEqualTo(6000);
    assertThat(r.blockedNanos()).hasSize(1000);
  }

  @Test
  @Timeout(120)
  void anExternalHandlerOnItsOwnConnection() {
    // the handler is "elsewhere": its own gRPC connection, attached by pid and uffd fd as any language would
    try (UffdemuClient other = UffdemuClient.connect("127.0.0.1", port)) {
      HandlerLoop[] loop = new HandlerLoop[1];
      BenchResult r = report(LoadTest.run(client, BenchOptions.defaults().withThreads(16).withPages(64)
          .withOpsPerThread(30).withExternalHandler(t -> loop[0] = other.process(t.pid()).userfaultfd(t.uffd())
              .handle(ctx -> ctx.copy(LoadTest.fillPattern((ctx.pageAddress() - t.range().start()) / t.pageSize(),
                  (int) t.pageSize())), HandlerOptions.DEFAULT), true)));
      assertThat(r.violations()).isEmpty();
      assertThat(r.ok()).isTrue();
      assertThat(r.handlerFaults()).isEqualTo(-1);
      assertThat(loop[0].stats().faults()).as("faults served by the external handler").isGreaterThanOrEqualTo(64);
      loop[0].close();
    }
  }

  @Test
  @Timeout(120)
  void theOracleCatchesAHandlerThatCorruptsAPage() {
    FaultHandler corrupt = ctx -> ctx.copy(new byte[4096]); // zeroes instead of the fill pattern
    BenchResult r = report(LoadTest.run(client, BenchOptions.defaults().withThreads(4).withPages(16)
        .withOpsPerThread(10).withHandler(corrupt, true)));
    assertThat(r.ok()).isFalse();
    assertThat(r.violations()).isNotEmpty().first().asString().contains("fill pattern");
  }

  @Test
  @Timeout(120)
  void theOracleCatchesAWpHandlerThatUnprotectsTooMuch() {
    // un-protecting two pages per fault lets the neighbour's first write through without a WP message
    FaultHandler sloppy = new FaultHandler() {
      @Override
      public void onFault(FaultContext ctx) {
        if (ctx.message().wp()) {
          ctx.uffd().writeProtect(new AddrRange(ctx.pageAddress() & ~8191L, 8192), 0);
        } else {
          ctx.wake();
        }
      }
    };
    BenchResult r = report(LoadTest.run(client, BenchOptions.defaults().withThreads(8).withPages(32)
        .withMode(Mode.WP).withWriteRatio(1.0).withOpsPerThread(40).withHandler(sloppy, true)));
    assertThat(r.ok()).isFalse();
    assertThat(r.violations()).anyMatch(v -> v.contains("without a WP fault"));
  }
}
