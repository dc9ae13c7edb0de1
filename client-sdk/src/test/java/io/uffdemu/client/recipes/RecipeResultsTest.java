package io.uffdemu.client.recipes;

import io.uffdemu.client.impl.Json;
import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.HdrHistogram.Histogram;
import org.junit.jupiter.api.Test;

/** The results' table / JSON / HTML forms (what the CLI prints) and their Micrometer meters. */
class RecipeResultsTest {
  static BenchResult bench(long faultMicros) {
    Histogram f = new Histogram(3_600_000_000L, 3);
    Histogram a = new Histogram(3_600_000_000L, 3);
    for (int i = 1; i <= 100; i++) {
      f.recordValue(faultMicros * i);
      a.recordValue(i);
    }
    return new BenchResult(BenchOptions.defaults(), 1000, 300, 100, 100, 2_000_000_000L, 3, 0,
        Map.of("ZAP", 4L), f, a, new long[] {1_000_000, 3_000_000}, List.of(), 0);
  }

  @Test
  @SuppressWarnings("unchecked")
  void benchResultRendersAsTableJsonAndHtml() {
    BenchResult r = bench(10);
    assertThat(r.ok()).isTrue();
    assertThat(r.faultsPerSecond()).isEqualTo(50.0);
    assertThat(r.toTable()).contains("OK", "fault", "p99.9", "(50/s)");
    Map<String, Object> json = (Map<String, Object>) Json.parse(r.toJson());
    assertThat(json).containsEntry("ok", true).containsEntry("faults", 100L).containsKey("faultLatencyMicros");
    assertThat((Map<String, Object>) json.get("faultLatencyMicros")).containsEntry("count", 100L);
    assertThat(r.toHtml()).startsWith("<!doctype html>").contains("<svg", "<polyline");
  }

  @Test
  void snapshotResultRendersAndRecordsMetrics() {
    SnapshotResult s = new SnapshotResult(Path.of("/tmp/s"), 7, 1, 64, 10, 54 * 4096, 20, 44, 21, 1_000_000,
        9_000_000);
    assertThat(s.toTable()).contains("savedOnFault", "20");
    assertThat(Json.parse(s.toJson())).isInstanceOf(Map.class);
    SimpleMeterRegistry reg = new SimpleMeterRegistry();
    RecipeMetrics.record(reg, s);
    assertThat(reg.get("uffdemu.recipe.snapshot.pages").tag("source", "fault").counter().count()).isEqualTo(20);
    assertThat(reg.get("uffdemu.recipe.snapshot.duration").tag("phase", "total").timer().count()).isEqualTo(1);

    RecipeMetrics.record(reg, bench(10));
    RecipeMetrics.record(reg, bench(20));
    assertThat(reg.get("uffdemu.recipe.bench.ops").counter().count()).isEqualTo(2000);
    assertThat(reg.get("uffdemu.recipe.bench.fault.latency").tag("quantile", "max").gauge().value())
        .as("the gauges follow the last run").isBetween(1990.0, 2010.0);
  }
}
