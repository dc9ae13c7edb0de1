package io.uffdemu.server.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.EbadfException;
import io.uffdemu.client.EinvalException;
import io.uffdemu.client.ErrnoException;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.Memfd;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.PagemapEntry;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Issue 2's three proofs, through the SDK only. */
class Issue2ProofsIT extends E2eBase {

    @Test
    @Timeout(60)
    void proof1_writeProtectFaultOnSharedMemfd() throws Exception {
        UffdemuClient client = client();
        Process p = client.createProcess("proof1");
        Memfd m = p.memfdCreate("guest", Linux.MFD_CLOEXEC);
        m.ftruncate(16 * PAGE);
        long base = m.mmap(16 * PAGE, 0);
        for (int i = 0; i < 16; i++) {
            assertThat(p.write(base + (long) i * PAGE, fill(PAGE, 'a' + i)).ok()).isTrue();
        }
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(
                Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM | Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP));
        assertThat(uffd.features() & Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM).isNotZero();
        AddrRange all = new AddrRange(base, 16 * PAGE);
        uffd.register(all, Linux.UFFDIO_REGISTER_MODE_WP);
        uffd.writeProtect(all, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
        assertThat(p.pagemap(base, 16)).allMatch(PagemapEntry::uffdWp);

        BlockingQueue<UffdMessage.PageFault> seen = new LinkedBlockingQueue<>();
        CompletableFuture<Void> handlerMayRun = new CompletableFuture<>();
        long page5 = base + 5L * PAGE;
        try (HandlerLoop loop = uffd.handle(ctx -> {
            seen.add(ctx.message());
            handlerMayRun.get(10, TimeUnit.SECONDS);
            ctx.writeUnprotect();
        }, HandlerOptions.DEFAULT)) {
            CompletableFuture<AccessResult> write = p.async().write(page5 + 100, "new bytes".getBytes());
            UffdMessage.PageFault pf = seen.poll(10, TimeUnit.SECONDS);
            assertThat(pf).isNotNull();
            assertThat(pf.address() & -PAGE).isEqualTo(page5);
            assertThat(pf.write()).isTrue();
            assertThat(pf.wp()).isTrue();
            assertThat(pf.flags()).isEqualTo(Linux.UFFD_PAGEFAULT_FLAG_WRITE | Linux.UFFD_PAGEFAULT_FLAG_WP);
            Thread.sleep(200);
            assertThat(write).as("the writer blocks while its fault is pending").isNotDone();
            handlerMayRun.complete(null);
            assertThat(write.get(10, TimeUnit.SECONDS).ok()).isTrue();
        }
        byte[] p5 = p.read(page5, PAGE).data();
        assertThat(new String(p5, 100, 9)).isEqualTo("new bytes");
        assertThat(p5[0]).isEqualTo((byte) ('a' + 5));
        List<PagemapEntry> pm = p.pagemap(base, 16);
        for (int i = 0; i < 16; i++) {
            if (i != 5) {
                assertThat(p.read(base + (long) i * PAGE, PAGE).data()).isEqualTo(fill(PAGE, 'a' + i));
            }
            assertThat(pm.get(i).uffdWp()).as("uffd-wp bit 57 of page %d", i).isEqualTo(i != 5);
        }
        assertThat(m.pread(5L * PAGE + 100, 9)).isEqualTo("new bytes".getBytes());
    }

    @Test
    @Timeout(60)
    void proof2_missingAnonymousResolvedByCopyAndByZeropage() throws Exception {
        UffdemuClient client = client();
        Process p = client.createProcess("proof2");
        long base = p.mmap(MmapOptions.anonymous(4 * PAGE));
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
        uffd.register(new AddrRange(base, 4 * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
        BlockingQueue<Long> faults = new LinkedBlockingQueue<>();
        try (HandlerLoop loop = uffd.handle(ctx -> {
            faults.add(ctx.pageAddress());
            if (ctx.pageAddress() == base) {
                ctx.copy(fill(PAGE, 0x5a));
            } else {
                ctx.zeropage();
            }
        }, HandlerOptions.DEFAULT)) {
            assertThat(p.read(base + 10, 4).data()).containsOnly(0x5a);
            assertThat(p.read(base + PAGE, 8).data()).containsOnly(0);
            assertThat(faults).containsExactly(base, base + PAGE);
            // the ioctl wakes the faulting thread before the handler gets to count it: wait for the count
            long until = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(10);
            while (loop.stats().resolved() < 2 && System.nanoTime() < until) {
                Thread.sleep(5);
            }
            assertThat(loop.stats().resolved()).isEqualTo(2);
        }
        assertThat(p.pagemap(base, 2)).allMatch(PagemapEntry::present);
        // ZEROPAGE maps the shared zero page: a later write gets its own page without another uffd fault
        assertThat(p.write(base + PAGE, new byte[] {7}).ok()).isTrue();
        assertThat(p.read(base + PAGE, 1).data()).containsExactly(7);
    }

    @Test
    @Timeout(60)
    void proof3_badInputGetsTheKernelErrno() {
        UffdemuClient client = client();
        Process p = client.createProcess("proof3");
        long base = p.mmap(MmapOptions.anonymous(4 * PAGE));
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);

        assertThatThrownBy(() -> uffd.register(new AddrRange(base + 1, PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING))
                .isInstanceOfSatisfying(EinvalException.class, e -> {
                    assertThat(e.call()).isEqualTo("UFFDIO_REGISTER");
                    assertThat(e.grpcCode()).isEqualTo("INVALID_ARGUMENT");
                });
        assertThatThrownBy(() -> p.userfaultfd(4242).register(new AddrRange(base, PAGE),
                Linux.UFFDIO_REGISTER_MODE_MISSING))
                .isInstanceOfSatisfying(EbadfException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Linux.EBADF);
                    assertThat(e.grpcCode()).isEqualTo("NOT_FOUND");
                });
        assertThatThrownBy(() -> uffd.register(new AddrRange(0x7fff_ffff_0000L, 0x10_0000_0000L),
                Linux.UFFDIO_REGISTER_MODE_MISSING))
                .isInstanceOfSatisfying(ErrnoException.class,
                        e -> assertThat(e.name()).isIn("EINVAL", "ENOMEM"));
        assertThatThrownBy(() -> uffd.register(new AddrRange(-PAGE, PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING))
                .isInstanceOf(EinvalException.class);

        Userfaultfd raw = p.userfaultfdWithoutApi(UffdOptions.DEFAULT);
        assertThatThrownBy(() -> raw.register(new AddrRange(base, PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING))
                .isInstanceOf(EinvalException.class);
        Userfaultfd ready = raw.api(Linux.UFFD_FEATURE_THREAD_ID);
        assertThat(ready.fd()).isEqualTo(raw.fd());
        assertThat(ready.features() & Linux.UFFD_FEATURE_THREAD_ID).isNotZero();
        assertThat(ready.ioctls() & (1L << Linux._UFFDIO_REGISTER)).isNotZero();
        assertThatThrownBy(() -> ready.api(0)).as("a second UFFDIO_API").isInstanceOf(EinvalException.class);
        assertThat(ready.register(new AddrRange(base, PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING)).isNotZero();
    }
}
