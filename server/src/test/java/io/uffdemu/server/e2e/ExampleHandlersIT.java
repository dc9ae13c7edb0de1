package io.uffdemu.server.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The two "under 30 lines" handlers of issue 5 (the same code as examples/MissingHandler and
 * examples/WpSnapshot), run for real.
 */
class ExampleHandlersIT extends E2eBase {

    @Test
    @Timeout(60)
    void missingHandlerInUnder30Lines() {
        UffdemuClient client = client();
        // ---- begin handler (mirrors examples/.../MissingHandler.java)
        Process p = client.createProcess("restore");
        long len = 8 * PAGE;
        long addr = p.mmap(MmapOptions.anonymous(len));
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
        uffd.register(new AddrRange(addr, len), Linux.UFFDIO_REGISTER_MODE_MISSING);
        try (HandlerLoop loop = uffd.handle(ctx -> {
            byte[] page = new byte[(int) ctx.pageSize()];
            long n = (ctx.pageAddress() - addr) / ctx.pageSize();
            java.util.Arrays.fill(page, (byte) ('A' + n));   // "load the page from the snapshot"
            ctx.copy(page);
        }, HandlerOptions.DEFAULT)) {
            for (int i = 0; i < 8; i++) {
                assertThat(p.read(addr + (long) i * PAGE, 4).data()).containsOnly('A' + i);
            }
        }
        // ---- end handler
    }

    @Test
    @Timeout(60)
    void wpSnapshotHandlerInUnder30Lines() {
        UffdemuClient client = client();
        Process p = client.createProcess("snapshot");
        long len = 8 * PAGE;
        long addr = p.mmap(MmapOptions.anonymous(len).populate());
        for (int i = 0; i < 8; i++) {
            p.write(addr + (long) i * PAGE, fill(PAGE, i));
        }
        // ---- begin handler (mirrors examples/.../WpSnapshot.java)
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP));
        uffd.register(new AddrRange(addr, len), Linux.UFFDIO_REGISTER_MODE_WP);
        uffd.writeProtect(new AddrRange(addr, len), Linux.UFFDIO_WRITEPROTECT_MODE_WP);
        Map<Long, byte[]> snapshot = new ConcurrentHashMap<>();
        try (HandlerLoop loop = uffd.handle(ctx -> {
            // copy-before-write: save the old contents, then let the writer go
            snapshot.put(ctx.pageAddress(), p.read(ctx.pageAddress(), (int) ctx.pageSize()).data());
            ctx.writeUnprotect();
        }, HandlerOptions.DEFAULT)) {
            p.write(addr + 3L * PAGE, fill(16, 0x7f));
            p.write(addr + 6L * PAGE + 9, fill(1, 0x7f));
        }
        // ---- end handler
        assertThat(snapshot).containsOnlyKeys(addr + 3L * PAGE, addr + 6L * PAGE);
        assertThat(snapshot.get(addr + 3L * PAGE)).isEqualTo(fill(PAGE, 3));
        assertThat(snapshot.get(addr + 6L * PAGE)).isEqualTo(fill(PAGE, 6));
        assertThat(p.read(addr + 3L * PAGE, 16).data()).containsOnly(0x7f);
    }
}
