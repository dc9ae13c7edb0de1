package io.uffdemu.client.recipes;

import io.uffdemu.client.impl.Json;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.HistogramIterationValue;

/**
 * Outcome of a {@link LoadTest}. Latencies are in microseconds, measured around each emulated access (so a
 * fault's latency is the faulting thread's blocked time: server queueing + handler + resolution + wake).
 *
 * @param ops accesses done
 * @param writes stores among them
 * @param faults accesses that faulted (by the oracle's page state: first touch since the page was dropped in
 *     MISSING mode, a store into a protected page in WP mode)
 * @param handlerFaults fault messages the handler loop received
 * @param elapsedNanos run time
 * @param eagain resolutions deferred on EAGAIN
 * @param errors failed accesses, chaos calls and unresolved faults
 * @param chaos chaos events done, per kind
 * @param faultLatency HdrHistogram of faulting accesses (us)
 * @param accessLatency HdrHistogram of all accesses (us)
 * @param blockedNanos per thread: time spent in faulting accesses
 * @param violations the first integrity violations
 * @param violationCount all integrity violations
 */
public record BenchResult(BenchOptions options, long ops, long writes, long faults, long handlerFaults,
    long elapsedNanos, long eagain, long errors, Map<String, Long> chaos, Histogram faultLatency,
    Histogram accessLatency, long[] blockedNanos, List<String> violations, long violationCount) {

  /** No integrity violation and no error. */
  public boolean ok() {
    return violationCount == 0 && errors == 0;
  }

  public double faultsPerSecond() {
    return elapsedNanos == 0 ? 0 : faults * 1e9 / elapsedNanos;
  }

  public double opsPerSecond() {
    return elapsedNanos == 0 ? 0 : ops * 1e9 / elapsedNanos;
  }

  static Map<String, Object> percentiles(Histogram h) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("count", h.getTotalCount());
    m.put("p50", h.getValueAtPercentile(50));
    m.put("p90", h.getValueAtPercentile(90));
    m.put("p99", h.getValueAtPercentile(99));
    m.put("p99.9", h.getValueAtPercentile(99.9));
    m.put("max", h.getMaxValue());
    m.put("mean", h.getTotalCount() == 0 ? 0.0 : h.getMean());
    return m;
  }

  public Map<String, Object> toMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("ok", ok());
    Map<String, Object> opt = new LinkedHashMap<>();
    opt.put("threads", options.threads());
    opt.put("pages", options.pages());
    opt.put("memory", options.memory());
    opt.put("pageSize", options.pageSize());
    opt.put("pattern", options.pattern());
    opt.put("writeRatio", options.writeRatio());
    opt.put("mode", options.mode());
    opt.put("opsPerThread", options.opsPerThread());
    opt.put("duration", options.duration() == null ? null : options.duration().toString());
    opt.put("handler", options.external() != null ? "external"
        : options.handler() == null ? "built-in" : options.handler().getClass().getName());
    opt.put("handlerWorkers", options.handlerWorkers());
    opt.put("chaos", options.chaos().stream().map(Enum::name).sorted().toList());
    opt.put("chaosIntervalMillis", options.chaosIntervalMillis());
    opt.put("seed", options.seed());
    m.put("options", opt);
    m.put("ops", ops);
    m.put("writes", writes);
    m.put("faults", faults);
    m.put("handlerFaults", handlerFaults);
    m.put("elapsedMillis", elapsedNanos / 1e6);
    m.put("opsPerSecond", opsPerSecond());
    m.put("faultsPerSecond", faultsPerSecond());
    m.put("eagain", eagain);
    m.put("errors", errors);
    m.put("chaos", chaos);
    m.put("faultLatencyMicros", percentiles(faultLatency));
    m.put("accessLatencyMicros", percentiles(accessLatency));
    LongSummary b = LongSummary.of(blockedNanos);
    Map<String, Object> bm = new LinkedHashMap<>();
    bm.put("minMillis", b.min / 1e6);
    bm.put("meanMillis", b.mean / 1e6);
    bm.put("maxMillis", b.max / 1e6);
    bm.put("perThreadMillis", Arrays.stream(blockedNanos).mapToObj(x -> x / 1e6).toList());
    m.put("blocked", bm);
    m.put("violationCount", violationCount);
    m.put("violations", violations);
    return m;
  }

  private record LongSummary(long min, double mean, long max) {
    static LongSummary of(long[] v) {
      var s = Arrays.stream(v).summaryStatistics();
      return new LongSummary(s.getCount() == 0 ? 0 : s.getMin(), s.getAverage(), s.getCount() == 0 ? 0 : s.getMax());
    }
  }

  public String toJson() {
    return Json.write(toMap());
  }

  public String toTable() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("result", ok() ? "OK" : "FAILED (" + violationCount + " violations, " + errors + " errors)");
    m.put("threads x ops", options.threads() + " x " + options.opsPerThread());
    m.put("memory / mode", options.memory() + " " + options.pageSize() + " B / " + options.mode());
    m.put("pattern / writes", options.pattern() + " / " + options.writeRatio());
    m.put("ops", ops + String.format(" (%.0f/s)", opsPerSecond()));
    m.put("faults", faults + String.format(" (%.0f/s), handler saw %d", faultsPerSecond(), handlerFaults));
    m.put("eagain / errors", eagain + " / " + errors);
    m.put("chaos", chaos.toString());
    LongSummary b = LongSummary.of(blockedNanos);
    m.put("blocked per thread", String.format("min %.1f ms, mean %.1f ms, max %.1f ms", b.min / 1e6, b.mean / 1e6,
        b.max / 1e6));
    StringBuilder sb = new StringBuilder(Tables.keyValue("bench", m));
    List<List<Object>> rows = new ArrayList<>();
    for (var e : Map.of("fault", faultLatency, "access", accessLatency).entrySet().stream()
        .sorted(Map.Entry.comparingByKey(java.util.Comparator.reverseOrder())).toList()) {
      Histogram h = e.getValue();
      rows.add(List.of(e.getKey(), h.getTotalCount(), h.getValueAtPercentile(50), h.getValueAtPercentile(90),
          h.getValueAtPercentile(99), h.getValueAtPercentile(99.9), h.getMaxValue()));
    }
    sb.append(Tables.grid(List.of("latency us", "count", "p50", "p90", "p99", "p99.9", "max"), rows));
    for (String v : violations) {
      sb.append("  violation: ").append(v).append('\n');
    }
    return sb.toString();
  }

  /** A self-contained HTML report: the table, and the latency percentile distributions as an SVG plot. */
  public String toHtml() {
    StringBuilder sb = new StringBuilder("<!doctype html><html><head><meta charset=\"utf-8\"><title>uffdemu bench"
        + "</title><style>body{font-family:sans-serif}pre{background:#f4f4f4;padding:1em}</style></head><body>");
    sb.append("<h1>uffdemu bench: ").append(ok() ? "OK" : "FAILED").append("</h1><pre>")
        .append(escape(toTable())).append("</pre><h2>Latency by percentile (us, log scale)</h2>");
    sb.append(svg()).append("<h2>JSON</h2><pre>").append(escape(toJson())).append("</pre></body></html>\n");
    return sb.toString();
  }

  private String svg() {
    int w = 720;
    int h = 360;
    double maxLog = Math.log10(Math.max(10, Math.max(faultLatency.getMaxValue(), accessLatency.getMaxValue())));
    StringBuilder sb = new StringBuilder("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + w + "\" height=\""
        + h + "\" style=\"border:1px solid #ccc\">");
    String[] colors = {"#d62728", "#1f77b4"};
    Histogram[] hs = {faultLatency, accessLatency};
    String[] names = {"fault", "access"};
    for (int k = 0; k < 2; k++) {
      if (hs[k].getTotalCount() == 0) {
        continue;
      }
      StringBuilder pts = new StringBuilder();
      for (HistogramIterationValue v : hs[k].percentiles(5)) {
        double pct = v.getPercentileLevelIteratedTo();
        // x: "nines" scale, 0 = p0, 1 = p90, 2 = p99, 3 = p99.9, capped at 5
        double nines = pct >= 100 ? 5 : Math.min(5, -Math.log10(1 - pct / 100));
        double x = 40 + nines / 5 * (w - 60);
        double y = h - 30 - Math.log10(Math.max(1, v.getValueIteratedTo())) / maxLog * (h - 50);
        pts.append(String.format("%.1f,%.1f ", x, y));
      }
      sb.append("<polyline fill=\"none\" stroke=\"").append(colors[k]).append("\" stroke-width=\"2\" points=\"")
          .append(pts).append("\"/>");
      sb.append("<text x=\"50\" y=\"").append(20 + 16 * k).append("\" fill=\"").append(colors[k]).append("\">")
          .append(names[k]).append("</text>");
    }
    String[] labels = {"p0", "p90", "p99", "p99.9", "p99.99", "max"};
    for (int i = 0; i <= 5; i++) {
      sb.append("<text x=\"").append(30 + i * (w - 60) / 5).append("\" y=\"").append(h - 10).append("\">")
          .append(labels[i]).append("</text>");
    }
    for (int d = 0; d <= (int) maxLog; d++) {
      double y = h - 30 - d / maxLog * (h - 50);
      sb.append(String.format("<text x=\"2\" y=\"%.1f\">1e%d</text>", y, d));
    }
    return sb.append("</svg>").toString();
  }

  private static String escape(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
  }
}
