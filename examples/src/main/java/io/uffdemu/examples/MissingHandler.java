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

/**
 * A MISSING-mode handler (lazy restore): every first touch of a page is served by UFFDIO_COPY of the page's
 * contents. The handler itself is the lambda; EEXIST races, EAGAIN while a REMOVE is pending, deadlines and
 * clean close are the SDK's job. Same code as {@code ExampleHandlersIT.missingHandlerInUnder30Lines}.
 * Run: {@code java -cp ... io.uffdemu.examples.MissingHandler [host [port]]}.
 */
public final class MissingHandler {
    private MissingHandler() {
    }

    public static void main(String[] args) {
        try (UffdemuClient client = Args.connect(args)) {
            Process p = client.createProcess("restore");
            long len = 8 * 4096;
            long addr = p.mmap(MmapOptions.anonymous(len));
            Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
            uffd.register(new AddrRange(addr, len), Linux.UFFDIO_REGISTER_MODE_MISSING);
            try (HandlerLoop loop = uffd.handle(ctx -> {
                byte[] page = new byte[(int) ctx.pageSize()];
                long n = (ctx.pageAddress() - addr) / ctx.pageSize();
                Arrays.fill(page, (byte) ('A' + n)); // "load the page from the snapshot"
                ctx.copy(page);
            }, HandlerOptions.DEFAULT)) {
                for (int i = 0; i < 8; i++) {
                    byte[] d = p.read(addr + i * 4096L, 4).data();
                    System.out.println("page " + i + ": " + new String(d));
                }
                System.out.println(loop.stats());
            }
            p.exit();
        }
    }
}
