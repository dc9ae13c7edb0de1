package io.uffdemu.server.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerObserver;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.HandlerStats;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.ReconnectPolicy;
import io.uffdemu.client.UffdGoneException;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The SDK's automatic reconnect against the real server: the handler's connection goes through a TCP proxy that
 * resets it while faults are in flight (handler busy, resolutions on the wire, messages queued). The writers use
 * their own direct connection. No write may be lost and no writer may stay blocked; the loop must keep running
 * on a re-attached stream. When the server's grace period (3 s here) has passed, re-attaching must end the loop
 * with {@link UffdGoneException}.
 */
class HandlerReconnectIT extends E2eBase {
    static final int PAGES = 48;

    private UffdemuClient viaProxy(TcpProxy proxy) {
        return UffdemuClient.connect(ClientConfig.DEFAULT.withTarget("127.0.0.1:" + proxy.port())
                .withDeadline(Duration.ofSeconds(20)));
    }

    @Test
    @Timeout(120)
    void streamCutWhileFaultsAreInFlightLosesNoWriteAndStrandsNoWriter() throws Exception {
        try (TcpProxy proxy = new TcpProxy(port); UffdemuClient handlerClient = viaProxy(proxy)) {
            Process writer = client().createProcess("reconnect-writer");
            long base = writer.mmap(MmapOptions.anonymous(PAGES * PAGE));
            Userfaultfd uffd = handlerClient.process(writer.pid()).userfaultfd(UffdOptions.DEFAULT);
            uffd.register(new AddrRange(base, PAGES * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);

            List<Throwable> failures = new CopyOnWriteArrayList<>();
            AtomicInteger reconnected = new AtomicInteger();
            FaultHandler h = new FaultHandler() {
                @Override
                public void onFault(io.uffdemu.client.FaultContext ctx) throws Exception {
                    Thread.sleep(20); // keep faults in flight when the cut comes
                    ctx.copy(new byte[PAGE]);
                }

                @Override
                public void onFailure(UffdMessage.PageFault fault, Throwable cause) {
                    failures.add(cause);
                }

                @Override
                public void onError(Throwable error) {
                    failures.add(error);
                }
            };
            HandlerObserver obs = new HandlerObserver() {
                @Override
                public void reconnected(int attempt, Duration downtime) {
                    reconnected.incrementAndGet();
                }
            };
            HandlerOptions opts = HandlerOptions.DEFAULT.withWorkers(4).withObserver(obs).withReconnect(
                    ReconnectPolicy.DEFAULT.withBackoff(Duration.ofMillis(20), Duration.ofMillis(500)));
            for (boolean onStream : new boolean[] {false, true}) {
                reconnected.set(0);
                long region = onStream ? base + (PAGES / 2) * PAGE : base;
                try (HandlerLoop loop = uffd.handle(h, opts.withResolveOnStream(onStream))) {
                    List<CompletableFuture<AccessResult>> writes = new ArrayList<>();
                    for (int i = 0; i < PAGES / 2; i++) {
                        long a = region + (long) i * PAGE;
                        writes.add(writer.async().write(a + 8, stamp(a)));
                    }
                    // cut while the first faults are being served and the rest are queued or not yet read
                    long t0 = System.nanoTime();
                    while (loop.stats().faults() < 4 && System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(10)) {
                        Thread.sleep(1);
                    }
                    proxy.cut();
                    Thread.sleep(150);
                    proxy.cut(); // again, possibly mid-reconnect
                    for (CompletableFuture<AccessResult> w : writes) {
                        AccessResult r = w.get(30, TimeUnit.SECONDS); // no writer stays blocked
                        assertThat(r.ok()).as("write %s", r).isTrue();
                    }
                    assertThat(loop.termination()).as("the loop survives the cuts").isNotDone();
                    // a reconnect is reported once the new stream proved attached: a message, or 1 s up. The writes
                    // may all have been served from the loop's queue (batched delivery hands it every fault at
                    // once), so the new stream need not carry a message: allow it the second
                    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                    while (reconnected.get() < 1 && System.nanoTime() < until) {
                        Thread.sleep(10);
                    }
                    assertThat(reconnected.get()).isGreaterThanOrEqualTo(1);
                    // the re-attached loop still serves new faults
                    assertThat(writer.read(region + (PAGES / 2 - 1) * PAGE, 1).ok()).isTrue();
                    HandlerStats s = loop.stats();
                    System.out.println("HandlerReconnectIT onStream=" + onStream + ": " + s);
                    assertThat(s.reconnects()).isGreaterThanOrEqualTo(1);
                }
                for (int i = 0; i < PAGES / 2; i++) {
                    long a = region + (long) i * PAGE;
                    AccessResult r = writer.read(a + 8, 8);
                    assertThat(r.ok()).isTrue();
                    assertThat(r.data()).as("write to 0x%x survived", a).isEqualTo(stamp(a));
                }
            }
            assertThat(failures).as("no fault failed, the loop never gave up").isEmpty();
        }
    }

    @Test
    @Timeout(60)
    void reattachAfterTheGracePeriodEndsTheLoopWithUffdGone() throws Exception {
        try (TcpProxy proxy = new TcpProxy(port); UffdemuClient handlerClient = viaProxy(proxy)) {
            Process writer = client().createProcess("reconnect-gone");
            long base = writer.mmap(MmapOptions.anonymous(4 * PAGE));
            Userfaultfd uffd = handlerClient.process(writer.pid()).userfaultfd(UffdOptions.DEFAULT);
            uffd.register(new AddrRange(base, 4 * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
            // backoff beyond the server's 3 s grace period: the first re-attach finds the uffd closed
            HandlerLoop loop = uffd.handle(ctx -> ctx.zeropage(), HandlerOptions.DEFAULT.withReconnect(
                    ReconnectPolicy.DEFAULT.withBackoff(Duration.ofSeconds(5), Duration.ofSeconds(5)).withJitter(0)));
            assertThat(writer.read(base, 1).ok()).isTrue();
            proxy.cut();
            assertThat(loop.termination()).failsWithin(Duration.ofSeconds(30))
                    .withThrowableOfType(ExecutionException.class).havingCause()
                    .isInstanceOf(UffdGoneException.class);
            loop.close();
        }
    }

    static byte[] stamp(long addr) {
        return ByteBuffer.allocate(8).putLong(addr ^ 0x5eed5eedL).array();
    }
}
