package io.uffdemu.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.Tag;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(20)
class HandlerMetricsTest {

  @Test
  void recordsLatencyDeferralsAndErrorsWithBoundedTags() throws Exception {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    try (FakeServer fake = new FakeServer(); UffdemuClient client = fake.client()) {
      Process p = client.createProcess("m");
      long base = p.mmap(MmapOptions.anonymous(8 * 4096));
      Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
      uffd.register(new AddrRange(base, 8 * 4096), Linux.UFFDIO_REGISTER_MODE_MISSING);
      fake.uffd(uffd.fd()).armRemove(base + 4096, base + 2 * 4096);
      HandlerOptions opts = HandlerOptions.DEFAULT.withObserver(new HandlerMetrics(registry, "restore"));
      try (HandlerLoop loop = uffd.handle(FaultContext::zeropage, opts)) {
        for (int i = 0; i < 3; i++) {
          p.read(base + i * 4096L, 1);
        }
        HandlerLoopTest.waitUntil(() -> loop.stats().resolved() == 3);
      }
    }
    assertThat(registry.get("uffdemu.handler.latency").tag("handler", "restore").tag("outcome", "resolved").timer()
        .count()).isEqualTo(3);
    assertThat(registry.get("uffdemu.handler.eagain.deferrals").counter().count()).isEqualTo(1);
    assertThat(registry.get("uffdemu.handler.queue.depth").gauge().value()).isZero();

    Set<String> tagKeys = registry.getMeters().stream().map(Meter::getId).flatMap(id -> id.getTags().stream())
        .map(Tag::getKey).collect(Collectors.toSet());
    assertThat(tagKeys).isSubsetOf("handler", "outcome", "errno");
  }

  @Test
  void errnoTagIsBounded() {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    HandlerMetrics m = new HandlerMetrics(registry, "h");
    m.error("EAGAIN");
    m.error("0x7f00dead 12345"); // hostile or garbage name
    m.error(null);
    m.faultDone(Duration.ofMillis(1), "resolved");
    assertThat(registry.get("uffdemu.handler.errors").tag("errno", "EAGAIN").counter().count()).isEqualTo(1);
    assertThat(registry.get("uffdemu.handler.errors").tag("errno", "OTHER").counter().count()).isEqualTo(2);
  }

  @Test
  void countsReconnectAttemptsSuccessesAndGiveUps() throws Exception {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    try (FakeServer fake = new FakeServer(); UffdemuClient client = fake.client()) {
      Process p = client.createProcess("m");
      long base = p.mmap(MmapOptions.anonymous(4 * 4096));
      Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
      uffd.register(new AddrRange(base, 4 * 4096), Linux.UFFDIO_REGISTER_MODE_MISSING);
      HandlerOptions opts = HandlerOptions.DEFAULT.withObserver(new HandlerMetrics(registry, "h"))
          .withReconnect(ReconnectPolicy.DEFAULT.withBackoff(Duration.ofMillis(5), Duration.ofMillis(20)));
      HandlerLoop loop = uffd.handle(FaultContext::zeropage, opts);
      p.read(base, 1);
      fake.cutStream(uffd.fd(), io.grpc.Status.UNAVAILABLE);
      HandlerLoopTest.waitUntil(() -> loop.stats().reconnects() == 1);
      p.read(base + 4096, 1); // served on the new stream: the outage is over
      fake.cutStream(fake.forget(uffd.fd()), io.grpc.Status.UNAVAILABLE);
      assertThat(loop.termination()).failsWithin(Duration.ofSeconds(5));
      loop.close();
    }
    assertThat(registry.get("uffdemu.handler.reconnects").tag("outcome", "attempt").counter().count()).isEqualTo(2);
    // the second re-attach was refused (EBADF): only the first counts as reconnected
    assertThat(registry.get("uffdemu.handler.reconnects").tag("outcome", "reconnected").counter().count())
        .isEqualTo(1);
    assertThat(registry.get("uffdemu.handler.reconnects").tag("outcome", "gone").counter().count()).isEqualTo(1);
  }
}
