package io.uffdemu.examples;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A live snapshot by write protection: the range is write-protected; the first write to a page raises a WP
 * fault, the handler copies the page's old contents into the snapshot and un-protects it (copy-before-write).
 * Same code as {@code ExampleHandlersIT.wpSnapshotHandlerInUnder30Lines}.
 */
public final class WpSnapshot {
    private WpSnapshot() {
    }

    public static void main(String[] args) {
        try (UffdemuClient client = Args.connect(args)) {
            Process p = client.createProcess("snapshot");
            long len = 8 * 4096;
            long addr = p.mmap(MmapOptions.anonymous(len).populate());
            for (int i = 0; i < 8; i++) {
                byte[] page = new byte[4096];
                Arrays.fill(page, (byte) ('0' + i));
                p.write(addr + i * 4096L, page);
            }
            Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP));
            uffd.register(new AddrRange(addr, len), Linux.UFFDIO_REGISTER_MODE_WP);
            uffd.writeProtect(new AddrRange(addr, len), Linux.UFFDIO_WRITEPROTECT_MODE_WP);
            Map<Long, byte[]> snapshot = new ConcurrentHashMap<>();
            try (HandlerLoop loop = uffd.handle(ctx -> {
                snapshot.put(ctx.pageAddress(), p.read(ctx.pageAddress(), (int) ctx.pageSize()).data());
                ctx.writeUnprotect();
            }, HandlerOptions.DEFAULT)) {
                p.write(addr + 3 * 4096L, "overwritten".getBytes());
                p.write(addr + 6 * 4096L, "overwritten".getBytes());
            }
            snapshot.forEach((a, old) -> System.out.println("saved page 0x" + Long.toHexString(a) + " before its "
                    + "first write: starts with '" + (char) old[0] + "'"));
            System.out.println("page 3 now: " + new String(p.read(addr + 3 * 4096L, 11).data()));
            p.exit();
        }
    }
}
