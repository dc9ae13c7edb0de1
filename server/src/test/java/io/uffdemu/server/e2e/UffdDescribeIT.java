package io.uffdemu.server.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.EbadfException;
import io.uffdemu.client.ErrnoException;
import io.uffdemu.client.EsrchException;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdInfo;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** UserfaultfdService.Describe / List through the SDK: what `uffdemu uffd ls` shows. */
class UffdDescribeIT extends E2eBase {

    @Test
    @Timeout(60)
    void describesFeaturesRangesPendingFaultsAndTheHandler() throws Exception {
        UffdemuClient c = client();
        Process p = c.createProcess("describe");
        long a = p.mmap(MmapOptions.anonymous(8 * PAGE));
        Userfaultfd u = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_EVENT_REMOVE));
        u.register(new AddrRange(a, 2 * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
        u.register(new AddrRange(a + 4 * PAGE, 2 * PAGE), Linux.UFFDIO_REGISTER_MODE_WP);
        int memfd = p.memfdCreate("not-a-uffd", 0).fd();

        UffdInfo d = u.describe();
        assertThat(d.pid()).isEqualTo(p.pid());
        assertThat(d.fd()).isEqualTo(u.fd());
        assertThat(d.apiDone()).isTrue();
        assertThat(d.features() & Linux.UFFD_FEATURE_EVENT_REMOVE).isNotZero();
        assertThat(d.ranges()).containsExactly(
                new UffdInfo.RegisteredRange(new AddrRange(a, 2 * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING),
                new UffdInfo.RegisteredRange(new AddrRange(a + 4 * PAGE, 2 * PAGE), Linux.UFFDIO_REGISTER_MODE_WP));
        assertThat(d.handlerAttached()).isFalse();
        assertThat(d.pendingFaults()).isZero();

        // a fault with no handler stays pending
        CompletableFuture<AccessResult> r = p.withDeadline(Duration.ofSeconds(30)).async().read(a, 1);
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (u.describe().pendingFaults() == 0 && System.nanoTime() < end) {
            Thread.sleep(10);
        }
        assertThat(u.describe().pendingFaults()).isEqualTo(1);
        assertThat(u.describe().totalFaults()).isEqualTo(1);

        try (HandlerLoop loop = u.handle(ctx -> ctx.zeropage(), HandlerOptions.DEFAULT)) {
            assertThat(r.get(10, TimeUnit.SECONDS).ok()).isTrue();
            UffdInfo attached = u.describe();
            assertThat(attached.handlerAttached()).isTrue();
            assertThat(attached.totalFaults()).isZero();
            // the list holds every uffd of the process, and only uffds
            List<UffdInfo> all = p.userfaultfds();
            assertThat(all).extracting(UffdInfo::fd).containsExactly(u.fd()).doesNotContain(memfd);
            assertThat(all.getFirst().handlerAttached()).isTrue();
            assertThat(u.async().describe().get(10, TimeUnit.SECONDS)).isEqualTo(u.describe());
            assertThat(p.async().userfaultfds().get(10, TimeUnit.SECONDS)).isEqualTo(all);
        }

        // bad input: the kernel's errno, never INTERNAL
        assertThatThrownBy(() -> p.userfaultfd(memfd).describe()).isInstanceOfSatisfying(ErrnoException.class,
                e -> {
                    assertThat(e.errno()).isEqualTo(Linux.ENOTTY);
                    assertThat(e.grpcCode()).isEqualTo("INVALID_ARGUMENT");
                });
        assertThatThrownBy(() -> p.userfaultfd(999).describe()).isInstanceOf(EbadfException.class);
        assertThatThrownBy(() -> c.process(987654).userfaultfds()).isInstanceOf(EsrchException.class);
    }
}
