package io.uffdemu.server.load;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Issue 8: handlers killed at random points under load. Writers fault pages in while handler connections are
 * killed (channel shut down mid-stream) and replaced within the grace period; finally the last handler dies for
 * good. No writer may stay blocked past the grace period, and every write must be readable afterwards.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0", "uffdemu.handler.grace-period=1s", "uffdemu.quotas.requests-per-second=0"})
class HandlerChaosIT {
    static final int WRITERS = 8;
    static final int PAGES_PER_WRITER = 150;

    @LocalGrpcServerPort
    int port;

    /** A handler on a connection of its own, so killing the connection kills only the handler. */
    record Handler(ManagedChannel channel, HandlerLoop loop) {
        void kill() {
            channel.shutdownNow();
        }
    }

    Handler startHandler(int pid, int fd) {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create())
                .build();
        UffdemuClient c = UffdemuClient.create(ch, ClientConfig.DEFAULT);
        HandlerLoop loop = c.process(pid).userfaultfd(fd).handle(ctx -> ctx.zeropage(), HandlerOptions.DEFAULT);
        return new Handler(ch, loop);
    }

    @Test
    @Timeout(300)
    void killedHandlersLoseNoWriteAndStrandNoThread() throws Exception {
        try (UffdemuClient client = UffdemuClient.connect(ClientConfig.DEFAULT.withTarget("127.0.0.1:" + port))) {
            Process p = client.createProcess("chaos");
            long len = (long) WRITERS * PAGES_PER_WRITER * 4096;
            long base = p.mmap(MmapOptions.anonymous(len));
            Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
            uffd.register(new AddrRange(base, len), Linux.UFFDIO_REGISTER_MODE_MISSING);
            SplittableRandom rnd = new SplittableRandom(7);
            Handler h = startHandler(p.pid(), uffd.fd());
            List<CompletableFuture<Void>> writers = new ArrayList<>();
            java.util.concurrent.atomic.AtomicInteger written = new java.util.concurrent.atomic.AtomicInteger();
            var exec = Executors.newVirtualThreadPerTaskExecutor();
            for (int w = 0; w < WRITERS; w++) {
                int id = w;
                writers.add(CompletableFuture.runAsync(() -> {
                    for (int i = 0; i < PAGES_PER_WRITER; i++) {
                        long a = base + ((long) id * PAGES_PER_WRITER + i) * 4096;
                        assertThat(p.write(a + 8, ByteBuffer.allocate(8).putInt(id).putInt(i).array()).ok()).isTrue();
                        written.incrementAndGet();
                    }
                }, exec));
            }
            int kills = 0;
            int total = WRITERS * PAGES_PER_WRITER;
            while (true) {
                // the handler lives 50..300 ms or until it served another eighth to sixth of the writes, whichever
                // comes first (so that a fast path still sees kills before half); watch the count closely so the
                // final kill lands right after half of the writes, however fast the rest would go
                long aliveUntil = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50 + rnd.nextInt(250));
                int killAt = written.get() + total / 8 + rnd.nextInt(total / 24);
                while (System.nanoTime() < aliveUntil && written.get() < total / 2 && written.get() < killAt) {
                    Thread.sleep(1);
                }
                if (written.get() >= total / 2) {
                    break;
                }
                h.kill();
                kills++;
                Thread.sleep(rnd.nextInt(400)); // within the 1 s grace period
                h = startHandler(p.pid(), uffd.fd());
            }
            // the last handler dies for good mid-run: the writers still faulting wait out the grace period, then
            // the uffd closes with the kernel's semantics and they finish without a handler
            h.kill();
            int writtenAtLastKill = written.get();
            long killedAt = System.nanoTime();
            CompletableFuture.allOf(writers.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
            long afterLastKillMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedAt);
            exec.close();
            int lost = 0;
            for (int w = 0; w < WRITERS; w++) {
                for (int i = 0; i < PAGES_PER_WRITER; i++) {
                    long a = base + ((long) w * PAGES_PER_WRITER + i) * 4096;
                    ByteBuffer b = ByteBuffer.wrap(p.read(a + 8, 8).data());
                    if (b.getInt(0) != w || b.getInt(4) != i) {
                        lost++;
                    }
                }
            }
            System.out.printf("HandlerChaosIT: %d handler kills, %d writes (%d before the final kill), %d lost, "
                    + "writers done %d ms after the final kill%n", kills, total, writtenAtLastKill, lost, afterLastKillMs);
            assertThat(kills).isPositive();
            assertThat(writtenAtLastKill).as("the final kill happened mid-run").isLessThan(total);
            assertThat(lost).as("lost writes").isZero();
            assertThat(afterLastKillMs).as("no writer blocked much past the 1 s grace period").isLessThan(10_000);
        }
    }
}
